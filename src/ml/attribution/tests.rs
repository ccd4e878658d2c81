//! Hand-computed examples of every model, the Shapley closed form against the permutation
//! definition, the Markov removal identity against one solve per removed channel, and the
//! invariants on random journeys.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;

const DAY: f64 = 86_400.0;

fn journey(touches: &[(&str, f64)], converted: bool, value: f64) -> Journey {
    Journey {
        touches: touches.iter().map(|&(c, at)| Touch::new(c, at)).collect(),
        converted,
        value,
    }
}

/// (channel, conversions, value) of each channel.
fn credits(result: &Attribution) -> Vec<(&str, f64, f64)> {
    result
        .channels
        .iter()
        .map(|c| (c.channel.as_str(), c.conversions, c.value))
        .collect()
}

fn assert_credits(result: &Attribution, expected: &[(&str, f64, f64)]) {
    let actual = credits(result);
    assert_eq!(actual.len(), expected.len(), "{actual:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.0, e.0, "{actual:?}");
        assert!(
            (a.1 - e.1).abs() < 1e-12 && (a.2 - e.2).abs() < 1e-12,
            "{a:?} != {e:?} in {actual:?}"
        );
    }
}

/// Four journeys over four channels (times in days):
/// A: search(0) -> email(7) -> search(14), converted, value 30
/// B: display(0), converted, value 10
/// C: email(0) -> display(1), not converted
/// D: social(0) -> email(7), converted, value 20
fn four_journeys() -> Vec<Journey> {
    vec![
        journey(
            &[
                ("search", 0.0),
                ("email", 7.0 * DAY),
                ("search", 14.0 * DAY),
            ],
            true,
            30.0,
        ),
        journey(&[("display", 0.0)], true, 10.0),
        journey(&[("email", 0.0), ("display", DAY)], false, 99.0),
        journey(&[("social", 0.0), ("email", 7.0 * DAY)], true, 20.0),
    ]
}

#[test]
fn first_and_last_touch() {
    let journeys = four_journeys();
    let first = attribute(&journeys, Model::First).unwrap();
    assert_credits(
        &first,
        &[
            ("display", 1.0, 10.0),
            ("email", 0.0, 0.0),
            ("search", 1.0, 30.0),
            ("social", 1.0, 20.0),
        ],
    );
    assert_eq!((first.conversions, first.value), (3.0, 60.0));
    assert_eq!(first.channels[0].share, Some(1.0 / 3.0));
    assert_eq!(first.channels[0].removal_effect, None);
    let last = attribute(&journeys, Model::Last).unwrap();
    assert_credits(
        &last,
        &[
            ("display", 1.0, 10.0),
            ("email", 1.0, 20.0),
            ("search", 1.0, 30.0),
            ("social", 0.0, 0.0),
        ],
    );
}

#[test]
fn linear() {
    // A: search 2/3, email 1/3. B: display 1. D: social 1/2, email 1/2.
    let result = attribute(&four_journeys(), Model::Linear).unwrap();
    assert_credits(
        &result,
        &[
            ("display", 1.0, 10.0),
            ("email", 1.0 / 3.0 + 0.5, 10.0 + 10.0),
            ("search", 2.0 / 3.0, 20.0),
            ("social", 0.5, 10.0),
        ],
    );
}

#[test]
fn time_decay() {
    // Half-life 7 days. A: weights 2^-2, 2^-1, 1 (total 7/4): search (1/4 + 1)/(7/4) = 5/7,
    // email 2/7. D: 2^-1 and 1: social 1/3, email 2/3.
    let result = attribute(
        &four_journeys(),
        Model::TimeDecay {
            half_life_days: 7.0,
        },
    )
    .unwrap();
    assert_credits(
        &result,
        &[
            ("display", 1.0, 10.0),
            (
                "email",
                2.0 / 7.0 + 2.0 / 3.0,
                30.0 * 2.0 / 7.0 + 20.0 * 2.0 / 3.0,
            ),
            ("search", 5.0 / 7.0, 30.0 * 5.0 / 7.0),
            ("social", 1.0 / 3.0, 20.0 / 3.0),
        ],
    );
    // A half-life of 14 days: A's weights 2^-1, 2^-1/2, 1.
    let result = attribute(
        &four_journeys(),
        Model::TimeDecay {
            half_life_days: 14.0,
        },
    )
    .unwrap();
    let (a, b, c) = (0.5, 0.5f64.sqrt(), 1.0);
    let search = (a + c) / (a + b + c);
    assert!((result.channels[2].conversions - search).abs() < 1e-12);
}

#[test]
fn position() {
    // A (3 touches): search 0.4 + 0.4, email 0.2. B: display 1. D (2 touches): 1/2 each.
    let result = attribute(&four_journeys(), Model::Position { end_share: 0.4 }).unwrap();
    assert_credits(
        &result,
        &[
            ("display", 1.0, 10.0),
            ("email", 0.2 + 0.5, 6.0 + 10.0),
            ("search", 0.8, 24.0),
            ("social", 0.5, 10.0),
        ],
    );
    // Four touches with end share 0.3: 0.3, 0.2, 0.2, 0.3.
    let journeys = [journey(
        &[("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)],
        true,
        1.0,
    )];
    let result = attribute(&journeys, Model::Position { end_share: 0.3 }).unwrap();
    assert_credits(
        &result,
        &[
            ("a", 0.3, 0.3),
            ("b", 0.2, 0.2),
            ("c", 0.2, 0.2),
            ("d", 0.3, 0.3),
        ],
    );
}

#[test]
fn shapley() {
    // Distinct channel sets of the converted journeys: {email, search} (value 30),
    // {display} (10), {email, social} (20).
    let result = attribute(&four_journeys(), Model::Shapley).unwrap();
    assert_credits(
        &result,
        &[
            ("display", 1.0, 10.0),
            ("email", 1.0, 25.0),
            ("search", 0.5, 15.0),
            ("social", 0.5, 10.0),
        ],
    );
}

#[test]
fn markov_classic_example() {
    // C1 -> C2 -> C3 -> conversion, C1 -> null, C2 -> C3 -> null.
    // Transitions: start -> C1 2/3, start -> C2 1/3; C1 -> C2 1/2, C1 -> null 1/2;
    // C2 -> C3 1; C3 -> conversion 1/2, C3 -> null 1/2.
    // P(conversion) = 2/3 * 1/2 * 1 * 1/2 + 1/3 * 1 * 1/2 = 1/6 + 1/6 = 1/3.
    // Without C1: only start -> C2 -> C3 -> conversion is left: 1/6, effect 1 - (1/6)/(1/3)
    // = 1/2. Without C2 or without C3 no path converts: effect 1 each.
    // Credits: 1/2, 1, 1 over 5/2 of one conversion: 0.2, 0.4, 0.4.
    let journeys = [
        journey(&[("C1", 1.0), ("C2", 2.0), ("C3", 3.0)], true, 10.0),
        journey(&[("C1", 1.0)], false, 0.0),
        journey(&[("C2", 1.0), ("C3", 2.0)], false, 0.0),
    ];
    let result = attribute(&journeys, Model::Markov).unwrap();
    assert_credits(
        &result,
        &[("C1", 0.2, 2.0), ("C2", 0.4, 4.0), ("C3", 0.4, 4.0)],
    );
    let effects: Vec<f64> = result
        .channels
        .iter()
        .map(|c| c.removal_effect.unwrap())
        .collect();
    for (effect, expected) in effects.iter().zip([0.5, 1.0, 1.0]) {
        assert!((effect - expected).abs() < 1e-12, "{effects:?}");
    }
    assert!((result.conversion_probability.unwrap() - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn markov_self_loops_and_dead_ends() {
    // A -> A -> B -> conversion, A -> null, D -> null. A self-loop changes nothing: from A
    // the chain goes to B with 1/2 (after the loop) and to null with 1/2.
    // P = start->A 2/3 * 1/2 = 1/3; without A: 0 (effect 1); without B: 0 (effect 1);
    // D never converts: effect 0.
    let journeys = [
        journey(&[("A", 1.0), ("A", 2.0), ("B", 3.0)], true, 1.0),
        journey(&[("A", 1.0)], false, 1.0),
        journey(&[("D", 1.0)], false, 1.0),
    ];
    let result = attribute(&journeys, Model::Markov).unwrap();
    assert_credits(
        &result,
        &[("A", 0.5, 0.5), ("B", 0.5, 0.5), ("D", 0.0, 0.0)],
    );
    assert_eq!(result.channels[2].removal_effect, Some(0.0));
    assert!((result.conversion_probability.unwrap() - 1.0 / 3.0).abs() < 1e-12);
}

#[test]
fn no_conversions_give_zero_credit_and_no_share() {
    let journeys = [
        journey(&[("a", 1.0), ("b", 2.0)], false, 5.0),
        journey(&[("b", 1.0)], false, 5.0),
    ];
    for model in every_model() {
        let result = attribute(&journeys, model).unwrap();
        assert_eq!((result.conversions, result.value), (0.0, 0.0));
        assert_eq!(result.channels.len(), 2);
        for channel in &result.channels {
            assert_eq!((channel.conversions, channel.value), (0.0, 0.0));
            assert_eq!(channel.share, None);
            let markov = model == Model::Markov;
            assert_eq!(channel.removal_effect, markov.then_some(0.0));
        }
    }
    assert_eq!(attribute(&[], Model::Markov).unwrap().channels, vec![]);
}

#[test]
fn touches_are_ordered_by_time_then_channel() {
    // Given out of order, with a tie at t = 5 that channel names break: b before c.
    let journeys = [journey(&[("c", 5.0), ("a", 9.0), ("b", 5.0)], true, 1.0)];
    let first = attribute(&journeys, Model::First).unwrap();
    assert_credits(&first, &[("a", 0.0, 0.0), ("b", 1.0, 1.0), ("c", 0.0, 0.0)]);
    let last = attribute(&journeys, Model::Last).unwrap();
    assert_credits(&last, &[("a", 1.0, 1.0), ("b", 0.0, 0.0), ("c", 0.0, 0.0)]);
}

#[test]
fn bad_input_is_an_error() {
    use AttributionError as E;
    let ok = [journey(&[("a", 1.0)], true, 1.0)];
    assert_eq!(
        Model::from_name("u_shape", None),
        Err(E::UnknownModel {
            name: "u_shape".into()
        })
    );
    assert_eq!(
        Model::from_name("markov", Some(1.0)),
        Err(E::UnexpectedParameter { model: "markov" })
    );
    assert_eq!(
        Model::from_name("Time_Decay", Some(3.0)),
        Ok(Model::TimeDecay {
            half_life_days: 3.0
        })
    );
    assert_eq!(
        Model::from_name("position", None),
        Ok(Model::Position { end_share: 0.4 })
    );
    for days in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            Model::from_name("time_decay", Some(days)),
            Err(E::HalfLife { .. })
        ));
        assert!(matches!(
            attribute(
                &ok,
                Model::TimeDecay {
                    half_life_days: days
                }
            ),
            Err(E::HalfLife { .. })
        ));
    }
    for share in [-0.1, 0.51, f64::NAN] {
        assert!(matches!(
            Model::from_name("position", Some(share)),
            Err(E::EndShare { .. })
        ));
    }
    assert_eq!(
        attribute(&[journey(&[], true, 1.0)], Model::Linear),
        Err(E::EmptyJourney { journey: 0 })
    );
    assert!(matches!(
        attribute(&[journey(&[("a", f64::NAN)], true, 1.0)], Model::Linear),
        Err(E::Time { journey: 0, .. })
    ));
    assert!(matches!(
        attribute(
            &[journey(&[("a", 1.0)], true, f64::INFINITY)],
            Model::Linear
        ),
        Err(E::Value { journey: 0, .. })
    ));
    let many: Vec<(String, f64)> = (0..=MAX_MARKOV_CHANNELS)
        .map(|c| (format!("c{c}"), c as f64))
        .collect();
    let many = Journey {
        touches: many
            .iter()
            .map(|(c, at)| Touch::new(c.as_str(), *at))
            .collect(),
        converted: true,
        value: 1.0,
    };
    let err = attribute(std::slice::from_ref(&many), Model::Markov).unwrap_err();
    assert_eq!(err.sqlstate(), "54000");
    assert_eq!(E::HalfLife { days: 0.0 }.sqlstate(), "22023");
    // The other models have no limit.
    let shapley = attribute(&[many], Model::Shapley).unwrap();
    assert_eq!(shapley.channels.len(), MAX_MARKOV_CHANNELS + 1);
}

fn every_model() -> [Model; 7] {
    [
        Model::First,
        Model::Last,
        Model::Linear,
        Model::TimeDecay {
            half_life_days: 2.0,
        },
        Model::Position { end_share: 0.35 },
        Model::Markov,
        Model::Shapley,
    ]
}

/// Random journeys over `channels` channels named `c0`..: some long, some repeating a
/// channel, some with tied times, about a third converted.
fn random_journeys(rng: &mut ChaCha8Rng, count: usize, channels: usize) -> Vec<Journey> {
    (0..count)
        .map(|_| {
            let n = rng.random_range(1..=6);
            let touches = (0..n)
                .map(|_| {
                    let channel = format!("c{}", rng.random_range(0..channels));
                    Touch::new(channel, f64::from(rng.random_range(0..20u32)) * 3_600.0)
                })
                .collect();
            Journey {
                touches,
                converted: rng.random_bool(0.35),
                value: f64::from(rng.random_range(1..500u32)) / 4.0,
            }
        })
        .collect()
}

#[test]
fn credits_sum_to_the_conversions_and_their_value() {
    let mut rng = ChaCha8Rng::seed_from_u64(10);
    for round in 0..40 {
        let journeys = random_journeys(&mut rng, 1 + round * 5, 1 + round % 9);
        for model in every_model() {
            let result = attribute(&journeys, model).unwrap();
            let names: Vec<&str> = result.channels.iter().map(|c| c.channel.as_str()).collect();
            assert!(names.windows(2).all(|w| w[0] < w[1]), "{names:?}");
            let conversions: f64 = result.channels.iter().map(|c| c.conversions).sum();
            let value: f64 = result.channels.iter().map(|c| c.value).sum();
            let tolerance = 1e-9 * (1.0 + result.value);
            assert!((conversions - result.conversions).abs() < 1e-9, "{model:?}");
            assert!((value - result.value).abs() < tolerance, "{model:?}");
            if result.conversions > 0.0 {
                let shares: f64 = result.channels.iter().map(|c| c.share.unwrap()).sum();
                assert!((shares - 1.0).abs() < 1e-9, "{model:?}");
            }
            for channel in &result.channels {
                assert!(channel.conversions >= 0.0 && channel.value >= 0.0);
                if let Some(effect) = channel.removal_effect {
                    assert!((0.0..=1.0).contains(&effect));
                }
            }
            // The same journeys with their touches and themselves in reverse: the same
            // credits up to the order of the sums.
            let mut reversed = journeys.clone();
            reversed.reverse();
            for journey in &mut reversed {
                journey.touches.reverse();
            }
            let again = attribute(&reversed, model).unwrap();
            for (a, b) in result.channels.iter().zip(&again.channels) {
                assert_eq!(a.channel, b.channel);
                assert!((a.conversions - b.conversions).abs() < 1e-9);
            }
        }
    }
}

/// The Shapley value of the game `v` over `n` players by its definition: the average
/// marginal contribution over all `n!` orders of arrival.
fn permutation_shapley(n: usize, v: &dyn Fn(u32) -> f64) -> Vec<f64> {
    fn orders(prefix: &mut Vec<usize>, n: usize, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == n {
            out.push(prefix.clone());
            return;
        }
        for player in 0..n {
            if !prefix.contains(&player) {
                prefix.push(player);
                orders(prefix, n, out);
                prefix.pop();
            }
        }
    }
    let mut all = Vec::new();
    orders(&mut Vec::new(), n, &mut all);
    let mut phi = vec![0.0; n];
    for order in &all {
        let mut coalition = 0u32;
        for &player in order {
            let with = coalition | 1 << player;
            phi[player] += v(with) - v(coalition);
            coalition = with;
        }
    }
    phi.iter().map(|total| total / all.len() as f64).collect()
}

#[test]
fn shapley_closed_form_is_the_permutation_shapley_value() {
    let mut rng = ChaCha8Rng::seed_from_u64(2018);
    for n in 1..=6 {
        for _ in 0..5 {
            let journeys = random_journeys(&mut rng, 30, n);
            let result = attribute(&journeys, Model::Shapley).unwrap();
            // Players are the channels that appear, by name (the result's order).
            let players: Vec<&str> = result.channels.iter().map(|c| c.channel.as_str()).collect();
            let sets: Vec<(u32, f64)> = journeys
                .iter()
                .filter(|j| j.converted)
                .map(|j| {
                    let set = j.touches.iter().fold(0u32, |set, t| {
                        set | 1 << players.iter().position(|&p| p == t.channel).unwrap()
                    });
                    (set, j.value)
                })
                .collect();
            let count = |s: u32| sets.iter().filter(|(t, _)| t & !s == 0).count() as f64;
            let value = |s: u32| {
                sets.iter()
                    .filter(|(t, _)| t & !s == 0)
                    .map(|(_, v)| v)
                    .sum()
            };
            let phi = permutation_shapley(players.len(), &count);
            let phi_value = permutation_shapley(players.len(), &value);
            for (c, channel) in result.channels.iter().enumerate() {
                assert!((channel.conversions - phi[c]).abs() < 1e-9, "{phi:?}");
                assert!(
                    (channel.value - phi_value[c]).abs() < 1e-9 * (1.0 + phi_value[c]),
                    "{phi_value:?}"
                );
            }
        }
    }
}

/// The conversion probability from `start` of the chain of `journeys` with `removed`
/// redirected to null, by one direct solve (the textbook definition of removal): the
/// transition probabilities of the whole chain, without the removed state's row and column.
fn conversion_probability_without(journeys: &[Journey], removed: Option<&str>) -> f64 {
    let (names, paths) = prepare(journeys).unwrap();
    let k = names.len();
    // States 0 = start, 1 + c = channel c.
    let mut counts = vec![vec![0.0; k + 1]; k + 1];
    let mut conversion = vec![0.0; k + 1];
    let mut leaving = vec![0.0; k + 1];
    for path in &paths {
        let mut from = 0;
        for &channel in &path.channels {
            counts[from][1 + channel] += 1.0;
            leaving[from] += 1.0;
            from = 1 + channel;
        }
        leaving[from] += 1.0;
        if path.converted {
            conversion[from] += 1.0;
        }
    }
    let removed = removed.map(|r| 1 + names.iter().position(|n| n == r).unwrap());
    let kept: Vec<usize> = (0..=k).filter(|&s| Some(s) != removed).collect();
    let m = kept.len();
    let mut a = vec![0.0; m * m];
    let mut r = vec![0.0; m];
    for (i, &from) in kept.iter().enumerate() {
        for (j, &to) in kept.iter().enumerate() {
            let identity = if i == j { 1.0 } else { 0.0 };
            a[i * m + j] = identity - counts[from][to] / leaving[from];
        }
        r[i] = conversion[from] / leaving[from];
    }
    let lu = markov::Lu::factor(a, m).unwrap();
    lu.solve(&mut r);
    r[0]
}

#[test]
fn markov_removal_identity_matches_one_solve_per_channel() {
    let mut rng = ChaCha8Rng::seed_from_u64(2016);
    for round in 0..30 {
        let journeys = random_journeys(&mut rng, 10 + round * 7, 2 + round % 8);
        let result = attribute(&journeys, Model::Markov).unwrap();
        let p = conversion_probability_without(&journeys, None);
        if result.conversions == 0.0 {
            continue;
        }
        assert!((result.conversion_probability.unwrap() - p).abs() < 1e-12);
        for channel in &result.channels {
            let without = conversion_probability_without(&journeys, Some(&channel.channel));
            let direct = 1.0 - without / p;
            let ours = channel.removal_effect.unwrap();
            assert!(
                (ours - direct).abs() < 1e-12,
                "{}: {ours} vs {direct}",
                channel.channel
            );
        }
    }
}

//! Differential check of the attribution models against an independent implementation in
//! Python (benches/peers/attribution_peer.py: numpy transition matrices and one solve per
//! removed channel for Markov, the permutation definition for Shapley, plain loops for
//! the heuristics). Random journeys (1–6 channels, non-ASCII names among them, tied
//! times, journeys that never convert, shuffled rows, a converted flag and a value that
//! vary over a journey's rows, text and integer keys, timestamps and numbers as times)
//! go through `attribution(...)` for every model and are compared to 1e-9 relative. Needs
//! Python with numpy (`MARTDB_PYTHON`, set by scripts/test.sh); without it the test says
//! so and passes only if `MARTDB_REQUIRE_CLIENTS` is unset.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Float64Type;
use martdb::Engine;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

const CHANNELS: [&str; 8] = [
    "search",
    "social",
    "email",
    "push",
    "display",
    "affiliate",
    "ü-partner",
    "短信",
];

/// One journey as the peer gets it: touches (channel, seconds), outcome and value.
struct Journey {
    touches: Vec<(String, f64)>,
    converted: bool,
    value: f64,
}

/// A random set of journeys and the SQL query that returns them as rows.
struct Case {
    journeys: Vec<Journey>,
    query: String,
}

fn random_case(rng: &mut ChaCha8Rng, index: usize) -> Case {
    let mut names: Vec<&str> = CHANNELS.to_vec();
    names.shuffle(rng);
    names.truncate(rng.random_range(1..=6));
    let conversion_rate = if index.is_multiple_of(10) { 0.0 } else { 0.4 };
    let text_keys = index.is_multiple_of(2);
    let timestamps = index.is_multiple_of(3);
    let boolean_flags = !index.is_multiple_of(5);
    let has_value = !index.is_multiple_of(4);
    let base = 1_780_000_000i64;
    let mut journeys = Vec::new();
    let mut rows = Vec::new();
    for j in 0..rng.random_range(1..60usize) {
        let key = if text_keys {
            format!("'u-{j}'")
        } else {
            format!("CAST({} AS BIGINT)", j * 7 + 3)
        };
        let converted = rng.random_bool(conversion_rate);
        let value = f64::from(rng.random_range(1..100_000u32)) / 100.0;
        let n = rng.random_range(1..=7usize);
        // Which row carries the journey's converted flag and its (largest) value.
        let carrier = rng.random_range(0..n);
        let mut touches = Vec::new();
        for t in 0..n {
            let channel = names[rng.random_range(0..names.len())];
            // Few distinct times: ties are common.
            let at = base + 3_600 * rng.random_range(0..30i64);
            touches.push((channel.to_string(), at as f64));
            let flag = converted && (t == carrier || rng.random_bool(0.5));
            let flag = match (boolean_flags, flag) {
                (true, flag) => flag.to_string(),
                (false, flag) => i32::from(flag).to_string(),
            };
            let row_value = if t == carrier {
                format!("CAST({value:?} AS DOUBLE)")
            } else if rng.random_bool(0.3) {
                "CAST(NULL AS DOUBLE)".to_string()
            } else {
                format!("CAST({:?} AS DOUBLE)", value * rng.random::<f64>())
            };
            let time = if timestamps {
                format!("to_timestamp_seconds({at})")
            } else {
                format!("CAST({at} AS DOUBLE)")
            };
            let value_column = if has_value {
                format!(", {row_value}")
            } else {
                String::new()
            };
            rows.push(format!(
                "({key}, {time}, '{channel}', {flag}{value_column})"
            ));
        }
        journeys.push(Journey {
            touches,
            converted,
            value: if has_value { value } else { 1.0 },
        });
    }
    rows.shuffle(rng);
    let columns = if has_value {
        "k, t, c, conv, v"
    } else {
        "k, t, c, conv"
    };
    let query = format!("SELECT * FROM (VALUES {}) AS t({columns})", rows.join(", "));
    Case { journeys, query }
}

/// (model, parameter) pairs to run on a case.
fn models(rng: &mut ChaCha8Rng) -> Vec<(&'static str, Option<f64>)> {
    let half_life = [None, Some(0.25), Some(1.0), Some(30.0)][rng.random_range(0..4)];
    let end_share = [None, Some(0.0), Some(0.25), Some(0.5)][rng.random_range(0..4)];
    vec![
        ("first", None),
        ("last", None),
        ("linear", None),
        ("time_decay", half_life),
        ("position", end_share),
        ("markov", None),
        ("shapley", None),
    ]
}

/// One channel's row of our result.
#[derive(Debug)]
struct Credit {
    channel: String,
    conversions: f64,
    value: f64,
    share: Option<f64>,
    removal_effect: Option<f64>,
}

async fn ours(engine: &Engine, case: &Case, model: &str, parameter: Option<f64>) -> Vec<Credit> {
    let parameter = parameter.map_or(String::new(), |p| format!(", CAST({p:?} AS DOUBLE)"));
    let sql = format!(
        "SELECT channel, conversions, value, share, removal_effect \
         FROM attribution($$ {} $$, '{model}'{parameter})",
        case.query
    );
    let batches = engine
        .sql(&sql)
        .await
        .unwrap_or_else(|e| panic!("{model}: {e}"));
    let mut credits = Vec::new();
    for batch in &batches {
        let channel = batch.column(0).as_string::<i32>();
        let f = |i: usize| batch.column(i).as_primitive::<Float64Type>();
        let optional = |i: usize, row: usize| (!f(i).is_null(row)).then(|| f(i).value(row));
        for row in 0..batch.num_rows() {
            credits.push(Credit {
                channel: channel.value(row).to_string(),
                conversions: f(1).value(row),
                value: f(2).value(row),
                share: optional(3, row),
                removal_effect: optional(4, row),
            });
        }
    }
    credits
}

/// Equal to 1e-9 relative; a difference below 1e-12 of the quantity's scale (the total it
/// is part of) passes too, for values that are zero in one implementation and a rounding
/// residue in the other.
fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) + 1e-12 * scale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attribution_agrees_with_an_independent_implementation() {
    let Some(python) = crate::python_or_skip(
        "attribution_agrees_with_an_independent_implementation",
        "numpy",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20180501);
    let cases: Vec<Case> = (0..40).map(|i| random_case(&mut rng, i)).collect();

    let mut runs = Vec::new();
    let mut request = Vec::new();
    for (c, case) in cases.iter().enumerate() {
        for (model, parameter) in models(&mut rng) {
            runs.push((
                c,
                model,
                parameter,
                ours(&engine, case, model, parameter).await,
            ));
            request.push(json!({
                "model": model,
                "parameter": parameter,
                "journeys": case.journeys.iter().map(|j| json!({
                    "touches": j.touches.iter().map(|(c, at)| json!([c, at])).collect::<Vec<_>>(),
                    "converted": j.converted,
                    "value": j.value,
                })).collect::<Vec<_>>(),
            }));
        }
    }
    let theirs: Value =
        crate::run_python_peer(&python, "attribution_peer.py", &json!({ "cases": request }));
    let theirs = theirs["results"].as_array().unwrap();
    assert_eq!(theirs.len(), runs.len());

    let mut compared = 0;
    for ((c, model, parameter, ours), theirs) in runs.iter().zip(theirs) {
        let case = &cases[*c];
        let conversions = case.journeys.iter().filter(|j| j.converted).count() as f64;
        let value: f64 = case
            .journeys
            .iter()
            .filter(|j| j.converted)
            .map(|j| j.value)
            .sum();
        let theirs = theirs.as_object().unwrap();
        let mut their_channels: Vec<&String> = theirs.keys().collect();
        their_channels.sort();
        let our_channels: Vec<&String> = ours.iter().map(|credit| &credit.channel).collect();
        let what = format!("case {c}, {model} {parameter:?}");
        assert_eq!(our_channels, their_channels, "{what}");
        for credit in ours {
            let reference = &theirs[&credit.channel];
            let optional = |name: &str| reference[name].as_f64();
            let pairs = [
                (
                    "conversions",
                    Some(credit.conversions),
                    optional("conversions"),
                    conversions,
                ),
                ("value", Some(credit.value), optional("value"), value),
                ("share", credit.share, optional("share"), 1.0),
                (
                    "removal_effect",
                    credit.removal_effect,
                    optional("removal_effect"),
                    1.0,
                ),
            ];
            for (name, a, b, scale) in pairs {
                match (a, b) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        assert!(
                            close(a, b, scale),
                            "{what}, {} {name}: martdb {a}, reference {b}\n{}",
                            credit.channel,
                            case.query
                        );
                        compared += 1;
                    }
                    other => panic!("{what}, {} {name}: {other:?}", credit.channel),
                }
            }
        }
    }
    assert!(compared > 2_000, "{compared}");
}

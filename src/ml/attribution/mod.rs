//! Multi-touch attribution: which marketing channels earned the conversions of a set of
//! user journeys. The SQL adapter is the table function `attribution` in
//! `udf/attribution/`.
//!
//! # Input
//!
//! A [`Journey`] is one user's (or one session's) touches, a conversion flag and a
//! conversion value. A [`Touch`] is a channel name and a time `at` in **seconds** (any
//! origin: only differences matter; the SQL adapter uses seconds since the Unix epoch).
//! Touches are taken in time order; touches at the same time in order of channel name, so
//! the result never depends on the order the touches were given in. `value` is the
//! conversion value (1.0 when there is none); it only counts for converted journeys.
//! Every journey has at least one touch; times and values are finite.
//!
//! # Models
//!
//! Let the converted journeys be `J`, each with touches `c_1 .. c_n` (in order), times
//! `t_1 <= .. <= t_n` and value `v`. Every model gives each channel a conversion credit
//! and a value credit.
//!
//! - **Heuristics** split each converted journey's one conversion (and its value `v`)
//!   over its touches with weights `w_1 .. w_n` that sum to 1; a channel gets the weights
//!   of all its touches. Journeys that did not convert give nothing.
//!   - `first`: `w_1 = 1`.   `last`: `w_n = 1`.   `linear`: `w_i = 1/n`.
//!   - `time_decay` with half-life `h` (default 7 days): `w_i` proportional to
//!     `2^(-(t_n - t_i) / h)`. The last touch `t_n` stands in for the conversion time (the
//!     journey does not carry one), so the last touch always has the largest weight.
//!   - `position` with end share `s` (default 0.4, `0 <= s <= 0.5`): `s` to the first
//!     touch, `s` to the last, `1 - 2s` split equally over the `n - 2` touches between;
//!     one touch gets everything, two touches get half each whatever `s` is.
//! - **Markov** (order 1, Anderl et al. 2016): a chain over the states `start`, one per
//!   channel, `conversion` and `null`. Every journey, converted or not, adds the
//!   transitions `start -> c_1 -> .. -> c_n -> conversion` (or `-> null`); transition
//!   probabilities are the counts divided by the counts leaving each state (repeated
//!   touches of one channel are self-loops, which change no probability of absorption).
//!   `P` is the probability of being absorbed in `conversion` from `start`. Removing
//!   channel `c` sends every transition into `c` to `null`; with `P_-c` the conversion
//!   probability of that chain, the **removal effect** is `RE_c = 1 - P_-c / P`, and
//!   `credit_c = RE_c / sum_d RE_d * |J|` (value: `* sum_J v`). If nothing converted
//!   (`P = 0`), every credit and removal effect is 0 and there is no share.
//!
//!   How it is computed: `P` is one solve of `(I - Q) h = r` over the transient states
//!   (`Q` the transient-to-transient probabilities, `r` the probabilities of moving to
//!   `conversion`), by LU factorisation with partial pivoting. A path either reaches
//!   `conversion` without visiting `c` (probability `P_-c`) or visits `c` and converts
//!   from there, so `P = P_-c + H_c h_c` with `H_c = N[start,c] / N[c,c]` the probability
//!   of ever visiting `c` and `N = (I - Q)^-1` the fundamental matrix. Hence
//!   `RE_c = H_c h_c / P`: one factorisation and one inverse for all channels instead of
//!   one solve per removed channel, with no cancellation for channels that matter
//!   little. It costs `O(k^3)` time and `O(k^2)` memory for `k` channels; more than
//!   [`MAX_MARKOV_CHANNELS`] channels is an error (SQLSTATE 54000) rather than minutes of
//!   work: group rare channels first.
//! - **Shapley** (the "simplified Shapley value" of Zhao et al. 2018): the cooperative
//!   game over the channels whose worth `v(S)` is the number (value: the total value) of
//!   converted journeys whose set of distinct channels is a subset of `S`. That game is
//!   the sum, over the distinct channel sets `T` of the converted journeys, of `conv(T)`
//!   times the unanimity game of `T` (worth 1 exactly for the coalitions that contain
//!   `T`), whose Shapley value is `1/|T|` for each member of `T`. Shapley values are
//!   additive over games, so the exact value is
//!   `phi_c = sum over T containing c of conv(T) / |T|`:
//!   each converted journey splits its conversion equally over its distinct channels. It
//!   is exact for any number of channels (no sampling, no limit); the unit tests check it
//!   against the permutation definition (the average marginal contribution over all
//!   orders of arrival).
//!
//! # Output and invariants
//!
//! [`attribute`] returns one [`ChannelCredit`] per channel that appears in any journey,
//! converted or not, in **ascending order of channel name** (byte order), with credits 0
//! where a channel earned nothing.
//!
//! - For every model the conversion credits sum to the number of converted journeys and
//!   the value credits to their total value (up to floating-point rounding).
//! - Credits are never negative when values are not; `share` (a channel's fraction of the
//!   conversion credit) is `None` when nothing converted.
//! - `removal_effect` is `Some` for the Markov model only, between 0 and 1.
//! - Deterministic: the same journeys in the same order give bit-identical results;
//!   sums run over the journeys in the order given (the SQL adapter sorts journeys by
//!   key first, so its results do not depend on the order rows arrive in either).

mod heuristic;
mod markov;
mod shapley;

use std::collections::BTreeMap;

/// The half-life of `time_decay` when none is given, in days.
pub const DEFAULT_HALF_LIFE_DAYS: f64 = 7.0;

/// The share of the first (and of the last) touch of `position` when none is given.
pub const DEFAULT_END_SHARE: f64 = 0.4;

/// The most channels the Markov model takes (its cost grows with the cube of the count).
pub const MAX_MARKOV_CHANNELS: usize = 1_000;

/// Seconds per day, the unit of the half-life.
const SECONDS_PER_DAY: f64 = 86_400.0;

/// One touch of a journey: a channel at a time (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Touch {
    pub channel: String,
    pub at: f64,
}

impl Touch {
    pub fn new(channel: impl Into<String>, at: f64) -> Self {
        Touch {
            channel: channel.into(),
            at,
        }
    }
}

/// One journey: its touches (in any order; see the module docs), whether it converted and
/// the conversion value.
#[derive(Debug, Clone, PartialEq)]
pub struct Journey {
    pub touches: Vec<Touch>,
    pub converted: bool,
    pub value: f64,
}

/// An attribution model and its parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Model {
    First,
    Last,
    Linear,
    TimeDecay { half_life_days: f64 },
    Position { end_share: f64 },
    Markov,
    Shapley,
}

impl Model {
    /// The model called `name` (case-insensitive), with its optional parameter: the
    /// half-life in days for `time_decay`, the end share for `position`; other models take
    /// none.
    pub fn from_name(name: &str, parameter: Option<f64>) -> Result<Model, AttributionError> {
        let model = match name.to_ascii_lowercase().as_str() {
            "first" => Model::First,
            "last" => Model::Last,
            "linear" => Model::Linear,
            "time_decay" => Model::TimeDecay {
                half_life_days: parameter.unwrap_or(DEFAULT_HALF_LIFE_DAYS),
            },
            "position" => Model::Position {
                end_share: parameter.unwrap_or(DEFAULT_END_SHARE),
            },
            "markov" => Model::Markov,
            "shapley" => Model::Shapley,
            _ => {
                return Err(AttributionError::UnknownModel {
                    name: name.to_string(),
                });
            }
        };
        if parameter.is_some() && !matches!(model, Model::TimeDecay { .. } | Model::Position { .. })
        {
            return Err(AttributionError::UnexpectedParameter {
                model: model.name(),
            });
        }
        model.validate()?;
        Ok(model)
    }

    /// The model's SQL name.
    pub fn name(&self) -> &'static str {
        match self {
            Model::First => "first",
            Model::Last => "last",
            Model::Linear => "linear",
            Model::TimeDecay { .. } => "time_decay",
            Model::Position { .. } => "position",
            Model::Markov => "markov",
            Model::Shapley => "shapley",
        }
    }

    fn validate(&self) -> Result<(), AttributionError> {
        match *self {
            Model::TimeDecay { half_life_days }
                if !(half_life_days.is_finite() && half_life_days > 0.0) =>
            {
                Err(AttributionError::HalfLife {
                    days: half_life_days,
                })
            }
            Model::Position { end_share } if !(0.0..=0.5).contains(&end_share) => {
                Err(AttributionError::EndShare { share: end_share })
            }
            _ => Ok(()),
        }
    }
}

/// The credit of one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelCredit {
    pub channel: String,
    /// Credited conversions.
    pub conversions: f64,
    /// Credited conversion value.
    pub value: f64,
    /// `conversions` over all credited conversions; `None` when nothing converted.
    pub share: Option<f64>,
    /// The Markov removal effect (`None` for the other models).
    pub removal_effect: Option<f64>,
}

/// The result of a model over a set of journeys.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    /// One entry per channel, in ascending order of name.
    pub channels: Vec<ChannelCredit>,
    /// The number of converted journeys: what the conversion credits sum to.
    pub conversions: f64,
    /// The total value of the converted journeys: what the value credits sum to.
    pub value: f64,
    /// Markov only: the probability of conversion from `start`.
    pub conversion_probability: Option<f64>,
}

/// What is wrong with an input.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum AttributionError {
    #[error(
        "unknown attribution model '{name}': use first, last, linear, time_decay, position, \
         markov or shapley"
    )]
    UnknownModel { name: String },
    #[error(
        "the {model} model takes no parameter (only time_decay, a half-life in days, and \
         position, the share of the first and of the last touch)"
    )]
    UnexpectedParameter { model: &'static str },
    #[error("time_decay: the half-life must be a positive number of days, found {days}")]
    HalfLife { days: f64 },
    #[error(
        "position: the share of the first and of the last touch must be between 0 and 0.5, \
         found {share}"
    )]
    EndShare { share: f64 },
    #[error("journey {journey} has no touches")]
    EmptyJourney { journey: usize },
    #[error("a touch time must be a finite number, found {at} (journey {journey})")]
    Time { journey: usize, at: f64 },
    #[error("a conversion value must be a finite number, found {value} (journey {journey})")]
    Value { journey: usize, value: f64 },
    #[error(
        "markov: {channels} channels are more than the {limit} the model takes (its cost \
         grows with the cube of the channel count): group rare channels first"
    )]
    TooManyChannels { channels: usize, limit: usize },
    /// The input as a whole has the wrong shape (the SQL adapter's checks of its query).
    #[error("attribution: {message}")]
    Input { message: String },
}

impl AttributionError {
    /// The Postgres SQLSTATE: program limit exceeded for too many channels, invalid
    /// parameter value for everything else.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AttributionError::TooManyChannels { .. } => "54000",
            _ => "22023",
        }
    }
}

/// A journey with its channels interned and its touches in order.
#[derive(Debug)]
struct Path {
    /// Channel indices (into the sorted channel list), in touch order.
    channels: Vec<usize>,
    /// Touch times, in the same order.
    times: Vec<f64>,
    converted: bool,
    value: f64,
}

/// Credits of `model` over `journeys`; see the module docs for the definitions.
pub fn attribute(journeys: &[Journey], model: Model) -> Result<Attribution, AttributionError> {
    model.validate()?;
    let (names, paths) = prepare(journeys)?;
    let converted = paths.iter().filter(|p| p.converted);
    let conversions = converted.clone().count() as f64;
    let value: f64 = converted.map(|p| p.value).sum();
    let k = names.len();
    let mut credit = vec![0.0; k];
    let mut value_credit = vec![0.0; k];
    let mut removal_effects = None;
    let mut conversion_probability = None;
    match model {
        Model::Markov => {
            let chain = markov::removal_effects(&paths, k)?;
            let total: f64 = chain.removal_effects.iter().sum();
            if total > 0.0 {
                for (c, effect) in chain.removal_effects.iter().enumerate() {
                    credit[c] = effect / total * conversions;
                    value_credit[c] = effect / total * value;
                }
            }
            removal_effects = Some(chain.removal_effects);
            conversion_probability = Some(chain.conversion_probability);
        }
        Model::Shapley => shapley::credit(&paths, &mut credit, &mut value_credit),
        heuristic => heuristic::credit(heuristic, &paths, &mut credit, &mut value_credit),
    }
    let channels = names
        .into_iter()
        .enumerate()
        .map(|(c, channel)| ChannelCredit {
            channel,
            conversions: credit[c],
            value: value_credit[c],
            share: (conversions > 0.0).then(|| credit[c] / conversions),
            removal_effect: removal_effects.as_ref().map(|effects| effects[c]),
        })
        .collect();
    Ok(Attribution {
        channels,
        conversions,
        value,
        conversion_probability,
    })
}

/// Validates the journeys, interns their channels (sorted by name) and orders their
/// touches by time, then channel name.
fn prepare(journeys: &[Journey]) -> Result<(Vec<String>, Vec<Path>), AttributionError> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, journey) in journeys.iter().enumerate() {
        if journey.touches.is_empty() {
            return Err(AttributionError::EmptyJourney { journey: j });
        }
        if !journey.value.is_finite() {
            return Err(AttributionError::Value {
                journey: j,
                value: journey.value,
            });
        }
        for touch in &journey.touches {
            if !touch.at.is_finite() {
                return Err(AttributionError::Time {
                    journey: j,
                    at: touch.at,
                });
            }
            index.insert(&touch.channel, 0);
        }
    }
    // BTreeMap iterates in key order: numbering in that order makes index order name order.
    for (position, slot) in index.values_mut().enumerate() {
        *slot = position;
    }
    let mut order = Vec::new();
    let paths = journeys
        .iter()
        .map(|journey| {
            order.clear();
            order.extend(
                journey
                    .touches
                    .iter()
                    .map(|touch| (touch.at + 0.0, index[touch.channel.as_str()])),
            );
            // `+ 0.0` above makes -0 equal to 0 for `total_cmp`.
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            Path {
                channels: order.iter().map(|&(_, c)| c).collect(),
                times: order.iter().map(|&(at, _)| at).collect(),
                converted: journey.converted,
                value: journey.value,
            }
        })
        .collect();
    let names = index.into_keys().map(str::to_string).collect();
    Ok((names, paths))
}

#[cfg(test)]
mod tests;

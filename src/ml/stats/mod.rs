//! Statistics for experiments: assignment of users to buckets and variants, the tests of
//! a treatment against its control (conversion, mean, CUPED, ratio and sequential), the
//! chi-square tests across variants (conversion and sample ratio mismatch), planning
//! (sample size and minimum detectable effect) and the adjustment of p-values for
//! multiple testing. The SQL adapters are in `udf/experiments/`.
//!
//! Invariants: every function here is deterministic (the same input gives the same
//! output on every machine and in every version), and a result is a number, a documented
//! missing value (`None`), or an error: never a NaN passed off as a number.

mod assignment;
mod comparison;
mod contingency;
pub(crate) mod distributions;
mod moments;
mod multiple_testing;
mod power;
mod sequential;

pub use assignment::{bucket, variant};
pub use comparison::{Alternative, Comparison, cuped_test, mean_test, proportion_test, ratio_test};
pub use contingency::{ChiSquare, SRM_THRESHOLD, conversion_chi_square, sample_ratio_mismatch};
pub use moments::{CovariateMoments, MomentSums, Moments};
pub use multiple_testing::{AdjustMethod, adjust_p_values};
pub use power::{Design, mde_mean, mde_proportion, sample_size_mean, sample_size_proportion};
pub use sequential::{DEFAULT_TUNING, sequential_test};

/// What is wrong with an input.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatsError {
    #[error("p-value {value} at row {row} is not between 0 and 1")]
    PValueOutOfRange { row: usize, value: f64 },
    #[error("unknown p-value adjustment '{name}': use bonferroni, holm or fdr_bh")]
    UnknownMethod { name: String },
    #[error("buckets must be between 1 and 1000000, found {buckets}")]
    Buckets { buckets: i64 },
    #[error("an experiment needs at least one variant")]
    NoVariants,
    #[error("unknown alternative '{name}': use two-sided, greater or less")]
    UnknownAlternative { name: String },
    #[error("alpha must be between 0 and 1 (exclusive), found {alpha}")]
    Alpha { alpha: f64 },
    #[error("the {group} group has a value that is not a finite number")]
    NotFinite { group: &'static str },
    #[error("the {group} group has no users")]
    NoUsers { group: &'static str },
    #[error("the {group} group needs at least 2 users for a variance, found {n}")]
    TooFewUsers { group: &'static str, n: f64 },
    #[error("the {group} group has a negative variance")]
    NegativeVariance { group: &'static str },
    #[error(
        "the {group} group has {conversions} conversions for {users} users: conversions must be between 0 and the users"
    )]
    Conversions {
        group: &'static str,
        users: f64,
        conversions: f64,
    },
    #[error("{test} needs ab_moments(value, covariate) summaries for both groups")]
    MissingCovariate { test: &'static str },
    #[error("the {group} group's denominator has mean 0: the ratio is undefined")]
    ZeroDenominator { group: &'static str },
    #[error("the test needs at least two variants, found {found}")]
    TooFewVariants { found: usize },
    #[error("variant {row} has a value that is not a finite number")]
    NotFiniteRow { row: usize },
    #[error("variant {row} has no users")]
    NoUsersRow { row: usize },
    #[error("variant {row} has a negative user count {users}")]
    NegativeUsersRow { row: usize, users: f64 },
    #[error(
        "variant {row} has {conversions} conversions for {users} users: conversions must be between 0 and the users"
    )]
    ConversionsRow {
        row: usize,
        users: f64,
        conversions: f64,
    },
    #[error("the weight of variant {row} must be a positive number, found {weight}")]
    Weight { row: usize, weight: f64 },
    #[error("no variant has any users")]
    NoUsersAtAll,
    #[error("power must be between alpha ({alpha}) and 1, found {power}")]
    Power { power: f64, alpha: f64 },
    #[error("the group ratio must be a positive number, found {ratio}")]
    Ratio { ratio: f64 },
    #[error("a baseline conversion rate must be between 0 and 1 (exclusive), found {rate}")]
    Rate { rate: f64 },
    #[error("the planned users must be a positive number, found {users}")]
    PlannedUsers { users: f64 },
    #[error(
        "the effect must be non-zero and keep the rate between 0 and 1: baseline {baseline}, effect {mde}"
    )]
    Effect { mde: f64, baseline: f64 },
    #[error("the standard deviation must be a positive number, found {std_dev}")]
    StdDev { std_dev: f64 },
    #[error("{users} users cannot detect any increase of a {baseline} rate at this power")]
    Undetectable { users: f64, baseline: f64 },
    #[error("the sequential tuning (users) must be a positive number, found {tuning}")]
    Tuning { tuning: f64 },
}

impl StatsError {
    /// The Postgres SQLSTATE: invalid parameter value.
    pub fn sqlstate(&self) -> &'static str {
        "22023"
    }
}

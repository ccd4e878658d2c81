//! Statistics for experiments: assignment of users to buckets and the adjustment of
//! p-values for multiple testing. The SQL adapters are in `udf/experiments/`.
//!
//! Invariants: every function here is deterministic (the same input gives the same
//! output on every machine and in every version), and a result is a number or an error,
//! never a NaN passed off as one.

mod assignment;
mod multiple_testing;

pub use assignment::bucket;
pub use multiple_testing::{AdjustMethod, adjust_p_values};

/// What is wrong with an input.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatsError {
    #[error("p-value {value} at row {row} is not between 0 and 1")]
    PValueOutOfRange { row: usize, value: f64 },
    #[error("unknown p-value adjustment '{name}': use bonferroni, holm or fdr_bh")]
    UnknownMethod { name: String },
    #[error("buckets must be between 1 and 1000000, found {buckets}")]
    Buckets { buckets: i64 },
}

impl StatsError {
    /// The Postgres SQLSTATE: invalid parameter value.
    pub fn sqlstate(&self) -> &'static str {
        "22023"
    }
}

//! Experiment functions: assignment to buckets and p-value adjustment. The statistics
//! themselves are in [`crate::ml::stats`].

mod ab_bucket;
mod p_adjust;

use datafusion::logical_expr::{DocSection, ScalarUDF, WindowUDF};

pub use ab_bucket::AbBucket;
pub use p_adjust::PAdjust;

const SECTION: DocSection = DocSection {
    include: true,
    label: "Experiment Functions",
    description: Some(
        "Assign users to experiment buckets and correct p-values for multiple testing.",
    ),
};

/// The scalar functions of this area.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(AbBucket::new())]
}

/// The window functions of this area.
pub fn window_functions() -> Vec<WindowUDF> {
    vec![WindowUDF::new_from_impl(PAdjust::new())]
}

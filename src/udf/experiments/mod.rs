//! Experiment functions: assignment (`ab_bucket`, `ab_variant`), per-group summaries
//! (`ab_moments`), tests of a treatment against its control (`ab_proportion_test`,
//! `ab_mean_test`, `ab_cuped_test`, `ab_ratio_test`, `ab_sequential_test`), tests across
//! all variants (`ab_chi_square`, `ab_srm`), planning (`ab_sample_size`,
//! `ab_sample_size_mean`, `ab_mde`, `ab_mde_mean`) and p-value adjustment (`p_adjust`).
//! The statistics themselves are in [`crate::ml::stats`].

mod ab_bucket;
mod ab_chi_square;
mod ab_cuped_test;
mod ab_mde;
mod ab_mde_mean;
mod ab_mean_test;
mod ab_moments;
mod ab_proportion_test;
mod ab_ratio_test;
mod ab_sample_size;
mod ab_sample_size_mean;
mod ab_sequential_test;
mod ab_srm;
mod ab_variant;
mod common;
mod p_adjust;

use datafusion::logical_expr::{AggregateUDF, DocSection, ScalarUDF, WindowUDF};

pub use ab_bucket::AbBucket;
pub use ab_moments::AbMoments;
pub use ab_proportion_test::AbProportionTest;
pub use ab_sequential_test::AbSequentialTest;
pub use ab_variant::AbVariant;
pub use p_adjust::PAdjust;

const SECTION: DocSection = DocSection {
    include: true,
    label: "Experiment Functions",
    description: Some(
        "Assign users to variants, test treatments against controls, check the split, \
         plan sample sizes and correct p-values for multiple testing.",
    ),
};

/// The scalar functions of this area.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(AbBucket::new()),
        ScalarUDF::new_from_impl(AbVariant::new()),
        ScalarUDF::new_from_impl(AbProportionTest::new()),
        ab_mean_test::udf(),
        ab_cuped_test::udf(),
        ab_ratio_test::udf(),
        ScalarUDF::new_from_impl(AbSequentialTest::new()),
        ab_sample_size::udf(),
        ab_sample_size_mean::udf(),
        ab_mde::udf(),
        ab_mde_mean::udf(),
    ]
}

/// The aggregate functions of this area.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![
        AggregateUDF::new_from_impl(AbMoments::new()),
        ab_chi_square::udaf(),
        ab_srm::udaf(),
    ]
}

/// The window functions of this area.
pub fn window_functions() -> Vec<WindowUDF> {
    vec![WindowUDF::new_from_impl(PAdjust::new())]
}

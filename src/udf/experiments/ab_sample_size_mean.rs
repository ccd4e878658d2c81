//! `ab_sample_size_mean(std_dev, mde [, alpha [, power [, ratio]]])`
//! ([`crate::ml::stats::sample_size_mean`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::Planning;
use crate::ml::stats::sample_size_mean;

const NAME: &str = "ab_sample_size_mean";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Users needed in the control group (the treatment group gets `ratio` times as many) for a two-sided z-test to detect a change `mde` of a mean whose users vary with standard deviation `std_dev` (statsmodels' `NormalIndPower` with effect size `mde / std_dev`); not rounded: round up. Errors (22023) for a non-positive standard deviation, a zero effect or a bad design.",
        "ab_sample_size_mean(std_dev, mde [, alpha [, power [, ratio]]])",
    )
    .with_sql_example("```sql\n> SELECT ceil(ab_sample_size_mean(stddev(revenue), 0.5)) FROM orders;\n```")
    .with_argument("std_dev", "The standard deviation of the metric over users.")
    .with_argument("mde", "The smallest change of the mean worth detecting.")
    .with_argument("alpha", "The significance level of the two-sided test (default 0.05).")
    .with_argument("power", "The probability of detecting the effect (default 0.8).")
    .with_argument("ratio", "Treatment users per control user (default 1).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Planning::new(NAME, sample_size_mean, &DOCUMENTATION))
}

//! `ab_sample_size(baseline_rate, mde [, alpha [, power [, ratio]]])`
//! ([`crate::ml::stats::sample_size_proportion`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::Planning;
use crate::ml::stats::sample_size_proportion;

const NAME: &str = "ab_sample_size";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Users needed in the control group (the treatment group gets `ratio` times as many) for a two-sided z-test to detect a change of a conversion rate from `baseline_rate` to `baseline_rate + mde` (absolute: 0.02 is two points) with probability `power` at level `alpha`. Uses Cohen's h, as statsmodels' `NormalIndPower` with `proportion_effectsize`; not rounded: round up. A rate outside (0, 1), an effect that leaves it, power not above alpha or a non-positive ratio is an error (22023).",
        "ab_sample_size(baseline_rate, mde [, alpha [, power [, ratio]]])",
    )
    .with_sql_example("```sql\n> SELECT ceil(ab_sample_size(0.10, 0.02)) AS users_per_group;  -- 3835\n```")
    .with_argument("baseline_rate", "The conversion rate of the control.")
    .with_argument("mde", "The smallest change worth detecting, absolute (e.g. 0.02).")
    .with_argument("alpha", "The significance level of the two-sided test (default 0.05).")
    .with_argument("power", "The probability of detecting the effect (default 0.8).")
    .with_argument("ratio", "Treatment users per control user (default 1).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Planning::new(NAME, sample_size_proportion, &DOCUMENTATION))
}

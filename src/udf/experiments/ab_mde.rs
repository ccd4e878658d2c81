//! `ab_mde(baseline_rate, users [, alpha [, power [, ratio]]])`
//! ([`crate::ml::stats::mde_proportion`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::Planning;
use crate::ml::stats::mde_proportion;

const NAME: &str = "ab_mde";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The smallest increase of a conversion rate from `baseline_rate` that a two-sided z-test detects with probability `power` at level `alpha` with `users` in the control group (the inverse of `ab_sample_size`). An error (22023) when no increase up to a rate of 1 is detectable.",
        "ab_mde(baseline_rate, users [, alpha [, power [, ratio]]])",
    )
    .with_sql_example("```sql\n> SELECT ab_mde(0.10, 5000) AS detectable_change;\n```")
    .with_argument("baseline_rate", "The conversion rate of the control.")
    .with_argument("users", "Users in the control group.")
    .with_argument("alpha", "The significance level of the two-sided test (default 0.05).")
    .with_argument("power", "The probability of detecting the effect (default 0.8).")
    .with_argument("ratio", "Treatment users per control user (default 1).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Planning::new(NAME, mde_proportion, &DOCUMENTATION))
}

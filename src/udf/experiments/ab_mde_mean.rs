//! `ab_mde_mean(std_dev, users [, alpha [, power [, ratio]]])`
//! ([`crate::ml::stats::mde_mean`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::Planning;
use crate::ml::stats::mde_mean;

const NAME: &str = "ab_mde_mean";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The smallest change of a mean that a two-sided z-test detects with probability `power` at level `alpha` with `users` in the control group (the inverse of `ab_sample_size_mean`).",
        "ab_mde_mean(std_dev, users [, alpha [, power [, ratio]]])",
    )
    .with_sql_example("```sql\n> SELECT ab_mde_mean(stddev(revenue), 5000) FROM orders;\n```")
    .with_argument("std_dev", "The standard deviation of the metric over users.")
    .with_argument("users", "Users in the control group.")
    .with_argument("alpha", "The significance level of the two-sided test (default 0.05).")
    .with_argument("power", "The probability of detecting the effect (default 0.8).")
    .with_argument("ratio", "Treatment users per control user (default 1).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Planning::new(NAME, mde_mean, &DOCUMENTATION))
}

//! `ab_cuped_test(control, treatment [, alternative [, alpha]])`: Welch's t-test with
//! CUPED variance reduction ([`crate::ml::stats::cuped_test`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::TwoGroupTest;
use crate::ml::stats::cuped_test;

const NAME: &str = "ab_cuped_test";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "CUPED: Welch's t-test of a metric adjusted by a pre-experiment covariate (the \
         same metric before the experiment started), `y - θ (x - x̄)` with \
         `θ = cov(y, x) / var(x)` over both groups. The adjustment removes the variance \
         the covariate explains, so the intervals narrow without bias (the covariate \
         cannot be affected by the treatment). The summaries are `ab_moments(value, \
         covariate)`; the result is the struct of `ab_mean_test`, with the adjusted \
         means. Errors (22023) as `ab_mean_test`, and when a summary has no covariate.",
        "ab_cuped_test(control, treatment [, alternative [, alpha]])",
    )
    .with_sql_example(
        "```sql\n> WITH g AS (SELECT treatment, ab_moments(revenue, monetary) AS m FROM campaign GROUP BY treatment)\n  SELECT (ab_cuped_test(c.m, t.m)).p_value FROM g t JOIN g c ON c.treatment = 0 AND t.treatment = 1;\n```",
    )
    .with_argument("control", "The control group's `ab_moments(value, covariate)`.")
    .with_argument("treatment", "The treatment group's `ab_moments(value, covariate)`.")
    .with_argument(
        "alternative",
        "'two-sided' (default), 'greater' (treatment larger) or 'less'.",
    )
    .with_argument("alpha", "1 - the confidence of the intervals (default 0.05).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TwoGroupTest::new(NAME, cuped_test, &DOCUMENTATION))
}

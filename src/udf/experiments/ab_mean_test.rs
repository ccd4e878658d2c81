//! `ab_mean_test(control, treatment [, alternative [, alpha]])`: Welch's t-test of a
//! continuous metric ([`crate::ml::stats::mean_test`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::TwoGroupTest;
use crate::ml::stats::mean_test;

const NAME: &str = "ab_mean_test";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Welch's t-test of a continuous metric (revenue per user), treatment against \
         control, from the `ab_moments(value)` summary of each group. Returns a struct: \
         `control` and `treatment` (the means), `difference` (treatment - control) with \
         `difference_low`/`difference_high`, `relative` (treatment / control - 1, \
         delta method) with `relative_low`/`relative_high`, `statistic` (t), `df` \
         (Welch-Satterthwaite) and `p_value` (scipy's `ttest_ind(equal_var=False)`). \
         One-sided tests leave the unbounded side of the intervals NULL; `relative` is \
         NULL when the control mean is 0; `statistic` and `p_value` are NULL when both \
         groups are constant. A group with fewer than 2 users, alpha outside (0, 1) or an \
         unknown alternative is an error (22023).",
        "ab_mean_test(control, treatment [, alternative [, alpha]])",
    )
    .with_sql_example(
        "```sql\n> WITH g AS (SELECT variant, ab_moments(revenue) AS m FROM users GROUP BY variant)\n  SELECT t.variant, (ab_mean_test(c.m, t.m)).p_value\n  FROM g t JOIN g c ON c.variant = 'control' WHERE t.variant <> 'control';\n```",
    )
    .with_argument("control", "The control group's `ab_moments(value)`.")
    .with_argument("treatment", "The treatment group's `ab_moments(value)`.")
    .with_argument(
        "alternative",
        "'two-sided' (default), 'greater' (treatment larger) or 'less'.",
    )
    .with_argument("alpha", "1 - the confidence of the intervals (default 0.05).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TwoGroupTest::new(NAME, mean_test, &DOCUMENTATION))
}

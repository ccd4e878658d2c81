//! `ab_ratio_test(control, treatment [, alternative [, alpha]])`: a ratio metric with
//! the delta method ([`crate::ml::stats::ratio_test`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{Documentation, ScalarUDF};

use super::common::TwoGroupTest;
use crate::ml::stats::ratio_test;

const NAME: &str = "ab_ratio_test";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "A ratio metric such as revenue per order or clicks per view, whose unit (the \
         order) is not the unit of randomisation (the user): each group's ratio is \
         `sum(numerator) / sum(denominator)` over its users, with the delta-method \
         variance `(v_y - 2 R c_yx + R² v_x) / (n x̄²)`, and a z-test of the difference. \
         The summaries are `ab_moments(numerator, denominator)` per user; the result is \
         the struct of `ab_mean_test` with the ratios as `control` and `treatment` and \
         `df` NULL. A denominator with mean 0 is an error (22023).",
        "ab_ratio_test(control, treatment [, alternative [, alpha]])",
    )
    .with_sql_example(
        "```sql\n> WITH per_user AS (SELECT variant, user_id, sum(amount) AS revenue, count(*) AS orders FROM orders GROUP BY 1, 2),\n  g AS (SELECT variant, ab_moments(revenue, orders) AS m FROM per_user GROUP BY variant)\n  SELECT (ab_ratio_test(c.m, t.m)).relative FROM g t JOIN g c ON c.variant = 'control' AND t.variant = 'b';\n```",
    )
    .with_argument("control", "The control group's `ab_moments(numerator, denominator)`.")
    .with_argument("treatment", "The treatment group's `ab_moments(numerator, denominator)`.")
    .with_argument(
        "alternative",
        "'two-sided' (default), 'greater' (treatment larger) or 'less'.",
    )
    .with_argument("alpha", "1 - the confidence of the intervals (default 0.05).")
    .build()
});

pub fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(TwoGroupTest::new(NAME, ratio_test, &DOCUMENTATION))
}

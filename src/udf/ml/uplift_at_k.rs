//! `uplift_at_k(outcome, uplift, treatment, k [, strategy])`: an aggregate evaluating uplift scores
//! ([`crate::ml::uplift::metrics`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{AggregateUDF, Documentation};

use super::metric::{Metric, UpliftMetric};

const NAME: &str = "uplift_at_k";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The response rate of the treated minus that of the control users among the top k by uplift score. `k` is a share (0 < k < 1) or a count; with the strategy 'overall' (default) the top k of all rows, with 'by_group' the top k of each group. Equals scikit-uplift's `uplift_at_k`. NULL when a group has no row in the top.",
        "uplift_at_k(outcome, uplift, treatment, k [, strategy])",
    )
    .with_sql_example("```sql\n> SELECT uplift_at_k(converted, uplift, treatment, 0.3) FROM scored;\n```")
    .with_argument("outcome", "Whether the user converted: 0/1 or a boolean.")
    .with_argument("uplift", "The model's uplift score: higher means treat first.")
    .with_argument("treatment", "Whether the user was treated: 0/1 or a boolean.")
    .with_argument("k", "A constant: a share of the rows (0 < k < 1) or a count of rows.")
    .with_argument("strategy", "Optional constant text: 'overall' (default) or 'by_group'.")
    .build()
});

pub(super) fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(UpliftMetric::new(NAME, Metric::AtK, || &DOCUMENTATION))
}

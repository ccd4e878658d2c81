//! `uplift_auc(outcome, uplift, treatment)`: an aggregate evaluating uplift scores
//! ([`crate::ml::uplift::metrics`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{AggregateUDF, Documentation};

use super::metric::{Metric, UpliftMetric};

const NAME: &str = "uplift_auc";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The area under the uplift curve of an uplift score, normalised like `qini_auc` (1 perfect, 0 random). The uplift curve at the top n rows is `(response rate treated - response rate control) · n`. Equals scikit-uplift's `uplift_auc_score(y_true, uplift, treatment)`. Rows with a NULL are skipped; NULL without both treated and control rows.",
        "uplift_auc(outcome, uplift, treatment)",
    )
    .with_sql_example("```sql\n> SELECT uplift_auc(converted, uplift, treatment) FROM scored;\n```")
    .with_argument("outcome", "Whether the user converted: 0/1 or a boolean.")
    .with_argument("uplift", "The model's uplift score: higher means treat first.")
    .with_argument("treatment", "Whether the user was treated: 0/1 or a boolean.")

    .build()
});

pub(super) fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(UpliftMetric::new(NAME, Metric::Auc, || &DOCUMENTATION))
}

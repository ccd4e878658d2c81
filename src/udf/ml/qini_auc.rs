//! `qini_auc(outcome, uplift, treatment)`: an aggregate evaluating uplift scores
//! ([`crate::ml::uplift::metrics`]).

use std::sync::LazyLock;

use datafusion::logical_expr::{AggregateUDF, Documentation};

use super::metric::{Metric, UpliftMetric};

const NAME: &str = "qini_auc";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The area under the Qini curve of an uplift score, normalised: 1 ranks like the perfect model (treated responders first, control responders last), 0 like random, below 0 worse than random. The Qini curve at the top n rows is `responders_treated - responders_control · treated / control`. Equals scikit-uplift's `qini_auc_score(y_true, uplift, treatment)` (negative_effect=True). Rows with a NULL are skipped; NULL without both treated and control rows.",
        "qini_auc(outcome, uplift, treatment)",
    )
    .with_sql_example("```sql\n> SELECT qini_auc(converted, uplift, treatment) FROM uplift_predict('m', 'SELECT * FROM campaign');\n```")
    .with_argument("outcome", "Whether the user converted: 0/1 or a boolean.")
    .with_argument("uplift", "The model's uplift score: higher means treat first.")
    .with_argument("treatment", "Whether the user was treated: 0/1 or a boolean.")

    .build()
});

pub(super) fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(UpliftMetric::new(NAME, Metric::Qini, || &DOCUMENTATION))
}

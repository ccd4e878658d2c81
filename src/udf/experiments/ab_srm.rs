//! `ab_srm(users, weight)`: the sample ratio mismatch check
//! ([`crate::ml::stats::sample_ratio_mismatch`]).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, Documentation};

use super::common::{AcrossVariants, stats_error, struct_scalar};
use crate::ml::stats::sample_ratio_mismatch;

const NAME: &str = "ab_srm";

static RESULT: LazyLock<DataType> = LazyLock::new(|| {
    DataType::Struct(Fields::from(vec![
        Arc::new(Field::new("statistic", DataType::Float64, true)),
        Arc::new(Field::new("df", DataType::Float64, true)),
        Arc::new(Field::new("p_value", DataType::Float64, true)),
        Arc::new(Field::new("mismatch", DataType::Boolean, true)),
    ]))
});

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The sample ratio mismatch check, over one row per variant (users, intended \
         weight): a chi-square test of the users against the split the experiment was \
         set up with (scipy's `chisquare`). A mismatch (`p_value` < 0.001) means the \
         assignment or the logging is broken, and the experiment's results cannot be \
         trusted. Returns a struct of `statistic`, `df`, `p_value` and `mismatch`. \
         Weights need not sum to 1. Fewer than two variants, a weight that is not \
         positive, negative users or no users at all is an error (22023).",
        "ab_srm(users, weight)",
    )
    .with_sql_example(
        "```sql\n> SELECT (ab_srm(users, weight)).mismatch\n  FROM (VALUES ('control', 5050, 50), ('treatment', 4950, 50)) AS t(variant, users, weight);\n```",
    )
    .with_argument("users", "Users assigned to the variant.")
    .with_argument("weight", "The variant's intended share (any positive scale).")
    .build()
});

fn compute(variants: &[(f64, f64)]) -> Result<ScalarValue> {
    let (test, mismatch) = sample_ratio_mismatch(variants).map_err(stats_error)?;
    struct_scalar(
        &RESULT,
        vec![
            ScalarValue::Float64(Some(test.statistic)),
            ScalarValue::Float64(Some(test.df)),
            ScalarValue::Float64(Some(test.p_value)),
            ScalarValue::Boolean(Some(mismatch)),
        ],
    )
}

pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(AcrossVariants::new(NAME, &RESULT, compute, &DOCUMENTATION))
}

//! `ab_chi_square(users, conversions)`: whether conversion rates differ across all the
//! variants ([`crate::ml::stats::conversion_chi_square`]).

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, Documentation};

use super::common::{AcrossVariants, float_struct, stats_error, struct_scalar};
use crate::ml::stats::conversion_chi_square;

const NAME: &str = "ab_chi_square";

static RESULT: LazyLock<DataType> = LazyLock::new(|| float_struct(&["statistic", "df", "p_value"]));

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The chi-square test of whether the conversion rate differs between any of the \
         variants, over one row per variant (users, conversions): scipy's \
         `chi2_contingency(correction=False)` on the variants x (converted, not) table. \
         Returns a struct of `statistic`, `df` (variants - 1) and `p_value`; all NULL \
         when nobody or everybody converted. Fewer than two variants, a variant without \
         users, or conversions outside 0..users is an error (22023).",
        "ab_chi_square(users, conversions)",
    )
    .with_sql_example(
        "```sql\n> SELECT (ab_chi_square(users, conversions)).p_value\n  FROM (SELECT variant, count(*) AS users, sum(converted) AS conversions FROM users GROUP BY variant);\n```",
    )
    .with_argument("users", "Users of the variant.")
    .with_argument("conversions", "Of them, those who converted.")
    .build()
});

fn compute(variants: &[(f64, f64)]) -> Result<ScalarValue> {
    let test = conversion_chi_square(variants).map_err(stats_error)?;
    let values = [
        test.map(|t| t.statistic),
        test.map(|t| t.df),
        test.map(|t| t.p_value),
    ];
    struct_scalar(
        &RESULT,
        values.into_iter().map(ScalarValue::Float64).collect(),
    )
}

pub fn udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(AcrossVariants::new(NAME, &RESULT, compute, &DOCUMENTATION))
}

//! `ab_proportion_test(control_users, control_conversions, treatment_users,
//! treatment_conversions [, alternative [, alpha]])`: the two-proportion z-test
//! ([`crate::ml::stats::proportion_test`]).

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::{
    COMPARISON_TYPE, alternatives_and_alphas, coerce, comparison_array, floats, stats_error,
};
use crate::ml::stats::proportion_test;
use crate::udf::bitmap::{finish, row_count};

const NAME: &str = "ab_proportion_test";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AbProportionTest {
    signature: Signature,
}

impl Default for AbProportionTest {
    fn default() -> Self {
        Self::new()
    }
}

impl AbProportionTest {
    pub fn new() -> Self {
        AbProportionTest {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The two-proportion z-test of a conversion metric, treatment against control, \
         from users and conversions: the z statistic uses the pooled rate (statsmodels' \
         `proportions_ztest`; its square is the 2x2 chi-square of `ab_chi_square`), the \
         interval of the difference is the unpooled Wald interval \
         (`confint_proportions_2indep`), and the relative lift's is the delta method. \
         Returns the struct of `ab_mean_test` with the rates as `control` and \
         `treatment` and `df` NULL. With no conversions at all (or only conversions) \
         `statistic` and `p_value` are NULL; `relative` is NULL when the control rate \
         is 0. No users, negative conversions or more conversions than users is an \
         error (22023).",
        "ab_proportion_test(control_users, control_conversions, treatment_users, treatment_conversions [, alternative [, alpha]])",
    )
    .with_sql_example(
        "```sql\n> SELECT (ab_proportion_test(1000, 100, 1000, 130)).p_value;\n-- 0.0355\n```",
    )
    .with_argument("control_users", "Users in the control group.")
    .with_argument("control_conversions", "Of them, those who converted.")
    .with_argument("treatment_users", "Users in the treatment group.")
    .with_argument("treatment_conversions", "Of them, those who converted.")
    .with_argument(
        "alternative",
        "'two-sided' (default), 'greater' (treatment larger) or 'less'.",
    )
    .with_argument("alpha", "1 - the confidence of the intervals (default 0.05).")
    .build()
});

impl ScalarUDFImpl for AbProportionTest {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(NAME, arg_types, 0, 4, &[DataType::Utf8, DataType::Float64])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(COMPARISON_TYPE.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let counts = (0..4)
            .map(|i| floats(&args.args, rows, i))
            .collect::<Result<Vec<_>>>()?;
        let options = alternatives_and_alphas(&args.args, rows, 4)?;
        let results = options
            .into_iter()
            .enumerate()
            .map(|(row, (alternative, alpha))| {
                match (
                    counts[0][row],
                    counts[1][row],
                    counts[2][row],
                    counts[3][row],
                ) {
                    (Some(cu), Some(cc), Some(tu), Some(tc)) => {
                        proportion_test((cu, cc), (tu, tc), alternative, alpha).map(Some)
                    }
                    _ => Ok(None),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(stats_error)?;
        finish(comparison_array(&results), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

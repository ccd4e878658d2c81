//! `ab_sequential_test(control, treatment [, alpha [, tuning]])`: always-valid
//! confidence sequences for peeking ([`crate::ml::stats::sequential_test`]).

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::{COMPARISON_TYPE, coerce, comparison_array, floats, moments, stats_error};
use crate::ml::stats::{DEFAULT_TUNING, sequential_test};
use crate::udf::bitmap::{finish, row_count};

const NAME: &str = "ab_sequential_test";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AbSequentialTest {
    signature: Signature,
}

impl Default for AbSequentialTest {
    fn default() -> Self {
        Self::new()
    }
}

impl AbSequentialTest {
    pub fn new() -> Self {
        AbSequentialTest {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The sequential (always-valid) form of `ab_mean_test`, for looking at results \
         while the experiment runs: Howard et al.'s normal-mixture confidence sequence, \
         as GrowthBook computes it. However often it is checked, the chance that it ever \
         excludes the true difference is at most alpha, so the experiment may stop as \
         soon as the interval excludes 0 (`p_value` < alpha). The intervals are wider \
         than the fixed-horizon ones; `tuning` is the number of users (both groups) \
         around which they are tightest. Two-sided; works on proportions too \
         (`ab_moments(converted::double)`). Returns the struct of `ab_mean_test` with \
         `statistic` the z of the difference and `df` NULL.",
        "ab_sequential_test(control, treatment [, alpha [, tuning]])",
    )
    .with_sql_example(
        "```sql\n> WITH g AS (SELECT variant, ab_moments(revenue) AS m FROM users GROUP BY variant)\n  SELECT (ab_sequential_test(c.m, t.m)).p_value FROM g t JOIN g c ON c.variant = 'control' AND t.variant = 'b';\n```",
    )
    .with_argument("control", "The control group's `ab_moments(value)`.")
    .with_argument("treatment", "The treatment group's `ab_moments(value)`.")
    .with_argument("alpha", "1 - the confidence (default 0.05).")
    .with_argument("tuning", "Users at which the sequence is tightest (default 5000).")
    .build()
});

impl ScalarUDFImpl for AbSequentialTest {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(
            NAME,
            arg_types,
            2,
            0,
            &[DataType::Float64, DataType::Float64],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(COMPARISON_TYPE.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let control = moments(NAME, &args.args, rows, 0)?;
        let treatment = moments(NAME, &args.args, rows, 1)?;
        let option = |i: usize| -> Result<Vec<Option<f64>>> {
            if args.args.len() > i {
                floats(&args.args, rows, i)
            } else {
                Ok(vec![None; rows])
            }
        };
        let (alphas, tunings) = (option(2)?, option(3)?);
        let results = (0..rows)
            .map(|row| match (&control[row], &treatment[row]) {
                (Some(c), Some(t)) => sequential_test(
                    c,
                    t,
                    alphas[row].unwrap_or(0.05),
                    tunings[row].unwrap_or(DEFAULT_TUNING),
                )
                .map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(stats_error)?;
        finish(comparison_array(&results), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

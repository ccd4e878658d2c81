//! `ab_variant(user_id, experiment, variants [, weights])`: the variant of a user by
//! weight ([`crate::ml::stats::variant`]).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::common::stats_error;
use crate::udf::bitmap::{finish, row_count};

const NAME: &str = "ab_variant";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AbVariant {
    signature: Signature,
}

impl Default for AbVariant {
    fn default() -> Self {
        Self::new()
    }
}

impl AbVariant {
    pub fn new() -> Self {
        AbVariant {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The variant of a user in an experiment, split by weight: stable like \
         `ab_bucket` (the user's bucket among 1,000,000 is a position in [0, 1), and the \
         variant is the first whose cumulative share of the weights exceeds it; \
         `martdb::ml::stats::variant` documents it with a Python version). Without \
         weights the variants share equally. NULL user or experiment gives NULL; no \
         variants, a weight that is not positive, or as many weights as variants not \
         given is an error (22023).",
        "ab_variant(user_id, experiment, variants [, weights])",
    )
    .with_sql_example(
        "```sql\n> SELECT ab_variant(user_id, 'coupon_size', ['control', '20_off_100', '30_off_150'], [50, 25, 25]) AS variant, count(*)\n  FROM users GROUP BY 1;\n```",
    )
    .with_argument("user_id", "Who is assigned; any type, compared as its text.")
    .with_argument("experiment", "The experiment's name.")
    .with_argument("variants", "The variants' names, an array of text.")
    .with_argument("weights", "Optional: their shares, an array of positive numbers.")
    .build()
});

impl ScalarUDFImpl for AbVariant {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(3..=4).contains(&arg_types.len()) {
            return Err(DataFusionError::Plan(format!(
                "{NAME} takes 3 or 4 arguments, found {}",
                arg_types.len()
            )));
        }
        let list = |t: DataType| DataType::List(Arc::new(Field::new_list_field(t, true)));
        let mut types = vec![arg_types[0].clone(), DataType::Utf8, list(DataType::Utf8)];
        if arg_types.len() == 4 {
            types.push(list(DataType::Float64));
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let users = cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let experiments = args.args[1].to_array(rows)?;
        let variants = args.args[2].to_array(rows)?;
        let weights = args.args.get(3).map(|w| w.to_array(rows)).transpose()?;
        let (users, experiments) = (users.as_string::<i32>(), experiments.as_string::<i32>());
        let variants = variants.as_list::<i32>();
        let weights = weights.as_ref().map(|w| w.as_list::<i32>());
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for row in 0..rows {
            if users.is_null(row) || experiments.is_null(row) || variants.is_null(row) {
                out.append_null();
                continue;
            }
            let names = variants.value(row);
            let names = names.as_string::<i32>();
            let shares: Vec<f64> = match weights {
                Some(w) if w.is_valid(row) => {
                    let w = w.value(row);
                    let w = w.as_primitive::<Float64Type>();
                    if w.len() != names.len() {
                        return Err(DataFusionError::Plan(format!(
                            "{NAME}: {} weights for {} variants",
                            w.len(),
                            names.len()
                        )));
                    }
                    w.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
                }
                _ => vec![1.0; names.len()],
            };
            let index =
                crate::ml::stats::variant(users.value(row), experiments.value(row), &shares)
                    .map_err(stats_error)?;
            if names.is_null(index) {
                out.append_null();
            } else {
                out.append_value(names.value(index));
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

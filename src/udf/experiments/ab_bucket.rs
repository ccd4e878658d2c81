//! `ab_bucket(user_id, experiment [, buckets])`: the stable bucket of a user in an
//! experiment ([`crate::ml::stats::bucket`]).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Int32Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

use crate::udf::bitmap::finish;

const NAME: &str = "ab_bucket";
const DEFAULT_BUCKETS: i64 = 100;

/// `ab_bucket(user_id, experiment [, buckets]) -> integer`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AbBucket {
    signature: Signature,
}

impl Default for AbBucket {
    fn default() -> Self {
        Self::new()
    }
}

impl AbBucket {
    pub fn new() -> Self {
        AbBucket {
            signature: Signature::one_of(
                vec![TypeSignature::Any(2), TypeSignature::Any(3)],
                Volatility::Immutable,
            ),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The bucket (0 to buckets - 1) of a user in an experiment: the same user and \
         experiment always give the same bucket, on every machine and in every version, \
         and a user's buckets in two experiments are independent. The hash is 64-bit \
         FNV-1a of `experiment:user_id` (UTF-8; other types as their text) mixed by \
         SplitMix64's finalizer and mapped by multiply-shift; `martdb::ml::stats::bucket` \
         documents it with a Python version. NULL in any argument gives NULL; buckets \
         outside 1..1000000 is an error (22023).",
        "ab_bucket(user_id, experiment [, buckets])",
    )
    .with_sql_example(
        "```sql\n> SELECT CASE WHEN ab_bucket(user_id, 'new_checkout') < 50 THEN 'treatment' ELSE 'control' END AS variant, count(*)\n  FROM users GROUP BY 1;\n```",
    )
    .with_argument("user_id", "Who is assigned; any type, compared as its text.")
    .with_argument("experiment", "The experiment's name.")
    .with_argument("buckets", "How many buckets (default 100).")
    .build()
});

impl ScalarUDFImpl for AbBucket {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let users = cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let experiments = cast(&args.args[1].to_array(rows)?, &DataType::Utf8)?;
        let buckets = match args.args.get(2) {
            Some(b) => Some(cast(&b.to_array(rows)?, &DataType::Int64)?),
            None => None,
        };
        let (users, experiments) = (users.as_string::<i32>(), experiments.as_string::<i32>());
        let buckets = buckets
            .as_ref()
            .map(|b| b.as_primitive::<datafusion::arrow::datatypes::Int64Type>());
        let mut out = Int32Builder::with_capacity(rows);
        for row in 0..rows {
            let n = match buckets {
                Some(b) if b.is_null(row) => None,
                Some(b) => Some(b.value(row)),
                None => Some(DEFAULT_BUCKETS),
            };
            match (users.is_valid(row), experiments.is_valid(row), n) {
                (true, true, Some(n)) => out.append_value(
                    crate::ml::stats::bucket(users.value(row), experiments.value(row), n)
                        .map_err(|e| DataFusionError::External(Box::new(e)))?
                        as i32,
                ),
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `pg_collation_is_visible(oid)`: whether a collation is visible in the search path.
//! martdb has only the default collation, which lives in `pg_catalog` and is always
//! visible; SQLAlchemy's column reflection calls this for each column's collation.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `pg_collation_is_visible(oid) -> boolean`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgCollationIsVisible {
    signature: Signature,
}

impl Default for PgCollationIsVisible {
    fn default() -> Self {
        Self::new()
    }
}

impl PgCollationIsVisible {
    pub fn new() -> Self {
        PgCollationIsVisible {
            signature: Signature::any(1, Volatility::Stable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "PostgreSQL compatibility: whether the collation is visible in the search path. \
         martdb has only the default collation, so this is true for any OID and NULL for NULL.",
        "pg_collation_is_visible(oid)",
    )
    .with_sql_example(
        "```sql\n> SELECT pg_collation_is_visible(100);\n+------+\n| true |\n+------+\n```",
    )
    .with_argument("oid", "A collation OID.")
    .build()
});

impl ScalarUDFImpl for PgCollationIsVisible {
    fn name(&self) -> &str {
        "pg_collation_is_visible"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(match &args.args[0] {
            ColumnarValue::Scalar(oid) => {
                ColumnarValue::Scalar(ScalarValue::Boolean((!oid.is_null()).then_some(true)))
            }
            ColumnarValue::Array(oids) => ColumnarValue::Array(Arc::new(
                (0..oids.len())
                    .map(|i| oids.is_valid(i).then_some(true))
                    .collect::<BooleanArray>(),
            )),
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

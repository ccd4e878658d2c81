//! `pg_get_indexdef(index [, column, pretty])`: the definition of an index, or of one of
//! its columns. martdb has no indexes (`pg_index` is empty), so it is always NULL, as
//! PostgreSQL answers for an OID that is not an index; SQLAlchemy's index reflection
//! calls it.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// `pg_get_indexdef(oid [, integer, boolean]) -> text`, always NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgGetIndexdef {
    signature: Signature,
}

impl Default for PgGetIndexdef {
    fn default() -> Self {
        Self::new()
    }
}

impl PgGetIndexdef {
    pub fn new() -> Self {
        PgGetIndexdef {
            signature: Signature::one_of(
                vec![TypeSignature::Any(1), TypeSignature::Any(3)],
                Volatility::Stable,
            ),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "PostgreSQL compatibility: the CREATE INDEX statement of an index, or one of its \
         key columns. martdb tables have no indexes, so the answer is always NULL.",
        "pg_get_indexdef(index [, column, pretty])",
    )
    .with_sql_example(
        "```sql\n> SELECT pg_get_indexdef(16400) IS NULL;\n+------+\n| true |\n+------+\n```",
    )
    .build()
});

impl ScalarUDFImpl for PgGetIndexdef {
    fn name(&self) -> &str {
        "pg_get_indexdef"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

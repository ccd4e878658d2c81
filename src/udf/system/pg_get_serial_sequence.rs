//! `pg_get_serial_sequence(table, column)`: the sequence behind a serial column.
//! martdb has no sequences, so it is always NULL; SQLAlchemy's and DBeaver's column
//! reflection call it for every column.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `pg_get_serial_sequence(text, text) -> text`, always NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgGetSerialSequence {
    signature: Signature,
}

impl Default for PgGetSerialSequence {
    fn default() -> Self {
        Self::new()
    }
}

impl PgGetSerialSequence {
    pub fn new() -> Self {
        PgGetSerialSequence {
            signature: Signature::any(2, Volatility::Stable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "PostgreSQL compatibility: the sequence of a serial column. martdb tables have \
         no sequences, so the answer is always NULL.",
        "pg_get_serial_sequence(table, column)",
    )
    .with_sql_example("```sql\n> SELECT pg_get_serial_sequence('orders', 'id') IS NULL;\n+------+\n| true |\n+------+\n```")
    .build()
});

impl ScalarUDFImpl for PgGetSerialSequence {
    fn name(&self) -> &str {
        "pg_get_serial_sequence"
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

//! `octet_length(text | bytea)`: the size in bytes. PostgreSQL takes bytea too (the size of
//! a serialized bitmap is the common question); DataFusion's own takes only text, so this
//! replaces it.

use std::sync::LazyLock;

use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct OctetLength {
    signature: Signature,
}

impl Default for OctetLength {
    fn default() -> Self {
        Self::new()
    }
}

impl OctetLength {
    pub fn new() -> Self {
        OctetLength {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The number of bytes in a string or a bytea value (PostgreSQL's `octet_length`). \
         NULL gives NULL.",
        "octet_length(value)",
    )
    .with_sql_example(
        "```sql\n> SELECT octet_length('héllo'), octet_length(bitmap_build([1, 2, 3]));\n+---+----+\n| 6 | 22 |\n+---+----+\n```",
    )
    .with_argument("value", "Text or bytea.")
    .build()
});

impl ScalarUDFImpl for OctetLength {
    fn name(&self) -> &str {
        "octet_length"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = arg_types else {
            return plan_err!("octet_length takes one argument, not {}", arg_types.len());
        };
        Ok(vec![match arg {
            DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView => arg.clone(),
            DataType::FixedSizeBinary(_) => DataType::Binary,
            // As PostgreSQL: other scalars through their text.
            _ => DataType::Utf8,
        }])
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(match arg_types.first() {
            Some(DataType::LargeUtf8 | DataType::LargeBinary) => DataType::Int64,
            _ => DataType::Int32,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Array(values) => Ok(ColumnarValue::Array(length(values)?)),
            ColumnarValue::Scalar(value) => {
                let lengths = length(&value.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &lengths, 0,
                )?))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `mask_phone(phone)`: [`crate::privacy::mask_phone`].

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, map_text, text_type};

/// `mask_phone(phone) -> text`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskPhone {
    signature: Signature,
}

impl Default for MaskPhone {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskPhone {
    pub fn new() -> Self {
        MaskPhone {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The phone number with its middle digits replaced by `*`: the first 3 and the last 4 digits stay when it has 10 digits or more, the last 2 when it has 7 to 9; separators and `+` stay. A value with fewer than 7 digits is not a phone number and is masked entirely. NULL gives NULL.",
        "mask_phone(phone)",
    )
    .with_sql_example("```sql\n> SELECT mask_phone('13812345678');\n138****5678\n```")
    .with_argument("phone", "A phone number in any format.")
    .build()
});

impl ScalarUDFImpl for MaskPhone {
    fn name(&self) -> &str {
        "mask_phone"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(text_type(&arg_types[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        let masked = map_text(&values, |_, value| Ok(crate::privacy::mask_phone(value)))?;
        finish(masked, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

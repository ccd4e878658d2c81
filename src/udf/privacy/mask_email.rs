//! `mask_email(email)`: [`crate::privacy::mask_email`].

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, map_text, text_type};

/// `mask_email(email) -> text`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MaskEmail {
    signature: Signature,
}

impl Default for MaskEmail {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskEmail {
    pub fn new() -> Self {
        MaskEmail {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The e-mail address with its local part replaced by `*` but for its first character; the domain stays. A value without exactly one `@` and something before it is masked entirely. NULL gives NULL.",
        "mask_email(email)",
    )
    .with_sql_example("```sql\n> SELECT mask_email('alice.smith@example.com');\na**********@example.com\n```")
    .with_argument("email", "An e-mail address.")
    .build()
});

impl ScalarUDFImpl for MaskEmail {
    fn name(&self) -> &str {
        "mask_email"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(text_type(&arg_types[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let values = args.args[0].to_array(args.number_rows)?;
        let masked = map_text(&values, |_, value| Ok(crate::privacy::mask_email(value)))?;
        finish(masked, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

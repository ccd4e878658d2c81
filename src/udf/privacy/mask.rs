//! `mask(text, keep_first, keep_last)`: [`crate::privacy::mask`].

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, map_text, text_type};
use crate::privacy::PrivacyError;

/// `mask(text, keep_first, keep_last) -> text`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Mask {
    signature: Signature,
}

impl Default for Mask {
    fn default() -> Self {
        Self::new()
    }
}

impl Mask {
    pub fn new() -> Self {
        Mask {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The text with every character but the first `keep_first` and the last \
         `keep_last` replaced by `*`. When the kept characters would cover the whole \
         text, all of it is masked, so a short value never shows in full. NULL gives \
         NULL; a negative count is an error (22023).",
        "mask(text, keep_first, keep_last)",
    )
    .with_sql_example("```sql\n> SELECT mask('4111111111111111', 0, 4);\n************1111\n```")
    .with_argument("text", "The value; other types are masked as their text.")
    .with_argument("keep_first", "Characters kept at the start.")
    .with_argument("keep_last", "Characters kept at the end.")
    .build()
});

impl ScalarUDFImpl for Mask {
    fn name(&self) -> &str {
        "mask"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(text_type(&arg_types[0]))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let text = args.args[0].to_array(rows)?;
        let first = cast(&args.args[1].to_array(rows)?, &DataType::Int64)?;
        let last = cast(&args.args[2].to_array(rows)?, &DataType::Int64)?;
        let (first, last) = (
            first.as_primitive::<Int64Type>(),
            last.as_primitive::<Int64Type>(),
        );
        // A NULL count keeps nothing: a missing count must not show more.
        let masked = map_text(&text, |row, value| {
            let keep = |counts: &datafusion::arrow::array::Int64Array| {
                let n = if counts.is_null(row) {
                    0
                } else {
                    counts.value(row)
                };
                usize::try_from(n).map_err(|_| {
                    PrivacyError::Argument(format!(
                        "mask: keep_first and keep_last must not be negative, got {n}"
                    ))
                })
            };
            Ok(crate::privacy::mask(value, keep(first)?, keep(last)?))
        });
        finish(masked?, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

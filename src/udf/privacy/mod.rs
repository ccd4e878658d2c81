//! Privacy functions ([`crate::privacy`]): `mask`, `mask_phone`, `mask_email` and the
//! keyed `hash_id`, plus the hidden function masking policies apply at scan time.

mod hash_id;
mod mask;
mod mask_email;
mod mask_phone;
pub(crate) mod masked_column;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{ColumnarValue, DocSection, ScalarUDF};

pub use hash_id::HashId;
pub use mask::Mask;
pub use mask_email::MaskEmail;
pub use mask_phone::MaskPhone;

use crate::privacy::{HashKeys, PrivacyError};

/// Where these functions appear in the generated function reference.
const SECTION: DocSection = DocSection {
    include: true,
    label: "Privacy Functions",
    description: Some(
        "Masking and pseudonymising personal data; see also the masking policies of the server configuration.",
    ),
};

/// The functions that need no configuration.
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(Mask::new()),
        ScalarUDF::new_from_impl(MaskPhone::new()),
        ScalarUDF::new_from_impl(MaskEmail::new()),
    ]
}

/// `hash_id` over the configured keys.
pub fn keyed_functions(keys: &HashKeys) -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(HashId::new(keys.clone()))]
}

/// Text types stay what they are; anything else is masked as its text.
fn text_type(input: &DataType) -> DataType {
    match input {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => input.clone(),
        _ => DataType::Utf8,
    }
}

/// `values` (any type, read as text) mapped row by row by `f(row, value)` (NULL stays
/// NULL), in [`text_type`] of the input.
pub(crate) fn map_text(
    values: &ArrayRef,
    mut f: impl FnMut(usize, &str) -> std::result::Result<String, PrivacyError>,
) -> Result<ArrayRef> {
    let text = cast(values, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let mut out = StringBuilder::with_capacity(text.len(), text.value_data().len());
    for row in 0..text.len() {
        if text.is_null(row) {
            out.append_null();
        } else {
            out.append_value(f(row, text.value(row)).map_err(privacy_error)?);
        }
    }
    let out: ArrayRef = Arc::new(out.finish());
    Ok(cast(&out, &text_type(values.data_type()))?)
}

pub(crate) fn privacy_error(e: PrivacyError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The result of a row-wise function: a scalar when every argument was one.
fn finish(array: ArrayRef, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    crate::udf::bitmap::finish(array, args)
}

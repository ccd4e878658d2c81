//! `json_build_object(key1, value1, key2, value2, ...)`: a JSON object as text, formatted
//! as PostgreSQL formats it (`{"a" : 1, "b" : "x"}`). SQLAlchemy's column reflection
//! builds identity options with it.

use std::fmt::Write;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// `json_build_object(any, ...) -> text`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct JsonBuildObject {
    signature: Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonBuildObject {
    pub fn new() -> Self {
        JsonBuildObject {
            signature: Signature::one_of(
                vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
                Volatility::Immutable,
            ),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "A JSON object (as text) from alternating keys and values, as PostgreSQL's \
         json_build_object: numbers and booleans as JSON numbers and booleans, NULL as null, \
         everything else as a string. Keys must not be NULL.",
        "json_build_object(key1, value1 [, key2, value2 ...])",
    )
    .with_sql_example("```sql\n> SELECT json_build_object('id', 7, 'name', 'ann', 'vip', true);\n+------------------------------------------------+\n| {\"id\" : 7, \"name\" : \"ann\", \"vip\" : true} |\n+------------------------------------------------+\n```")
    .with_argument("key", "A key: any value, written as a string.")
    .with_argument("value", "Its value.")
    .build()
});

fn quote(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// NULL at `row` (an untyped NULL literal is a NullArray, which has no null buffer).
fn is_null(array: &ArrayRef, row: usize) -> bool {
    array.data_type() == &DataType::Null || array.is_null(row)
}

fn write_value(out: &mut String, array: &ArrayRef, row: usize) -> Result<()> {
    if is_null(array, row) {
        out.push_str("null");
        return Ok(());
    }
    let text = array_value_to_string(array, row)?;
    match array.data_type() {
        DataType::Boolean => out.push_str(&text),
        DataType::Float16 | DataType::Float32 | DataType::Float64
            if !text.parse::<f64>().is_ok_and(f64::is_finite) =>
        {
            quote(out, &text)
        }
        t if t.is_numeric() => out.push_str(&text),
        _ => quote(out, &text),
    }
    Ok(())
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return Err(DataFusionError::Execution(
                "json_build_object: argument list must have an even number of elements".into(),
            ));
        }
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let rows = if scalar { 1 } else { args.number_rows };
        let mut out = StringBuilder::with_capacity(rows, rows * 32);
        let mut object = String::new();
        for row in 0..rows {
            object.clear();
            object.push('{');
            for (i, pair) in arrays.chunks(2).enumerate() {
                if is_null(&pair[0], row) {
                    return Err(DataFusionError::Execution(
                        "json_build_object: null value not allowed for object key".into(),
                    ));
                }
                if i > 0 {
                    object.push_str(", ");
                }
                let key = match pair[0].data_type() {
                    DataType::Utf8 => pair[0].as_string::<i32>().value(row).to_string(),
                    _ => array_value_to_string(&pair[0], row)?,
                };
                quote(&mut object, &key);
                object.push_str(" : ");
                write_value(&mut object, &pair[1], row)?;
            }
            object.push('}');
            out.append_value(&object);
        }
        let array: ArrayRef = Arc::new(out.finish());
        Ok(if scalar {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&array, 0)?)
        } else {
            ColumnarValue::Array(array)
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `like_escape(pattern, escape)`: a LIKE pattern written with escape character `escape`,
//! rewritten to use the backslash (the only escape character DataFusion's LIKE takes).
//! martdb rewrites `x LIKE p ESCAPE 'e'` to `x LIKE like_escape(p, 'e')` when `p` is not
//! a literal (a literal is rewritten while parsing).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `pattern` with escape character `escape` as the same pattern with backslash escapes;
/// `None` when it ends with a lone escape character (an error in PostgreSQL).
pub(crate) fn to_backslash_escapes(pattern: &str, escape: char) -> Option<String> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            let next = chars.next()?;
            if matches!(next, '%' | '_' | '\\') {
                out.push('\\');
            }
            out.push(next);
        } else if c == '\\' && escape != '\\' {
            // A plain backslash under another escape character: a literal backslash.
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Some(out)
}

fn convert(pattern: &str, escape: &str) -> Result<String> {
    let mut chars = escape.chars();
    let (Some(escape), None) = (chars.next(), chars.next()) else {
        return Err(DataFusionError::Execution(format!(
            "invalid escape string '{escape}': it must be one character"
        )));
    };
    to_backslash_escapes(pattern, escape).ok_or_else(|| {
        DataFusionError::Execution(format!(
            "LIKE pattern '{pattern}' must not end with escape character '{escape}'"
        ))
    })
}

/// `like_escape(text, text) -> text`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LikeEscape {
    signature: Signature,
}

impl Default for LikeEscape {
    fn default() -> Self {
        Self::new()
    }
}

impl LikeEscape {
    pub fn new() -> Self {
        LikeEscape {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The LIKE pattern `pattern`, written with escape character `escape`, with backslash \
         escapes instead. `x LIKE p ESCAPE 'e'` runs as `x LIKE like_escape(p, 'e')`. NULL \
         when either argument is NULL.",
        "like_escape(pattern, escape)",
    )
    .with_sql_example(
        "```sql\n> SELECT like_escape('pg/_%', '/');\n+-------+\n| pg\\_% |\n+-------+\n```",
    )
    .with_argument("pattern", "A LIKE pattern.")
    .with_argument(
        "escape",
        "The one character that escapes `%`, `_` and itself in `pattern`.",
    )
    .build()
});

impl ScalarUDFImpl for LikeEscape {
    fn name(&self) -> &str {
        "like_escape"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let (ColumnarValue::Scalar(pattern), ColumnarValue::Scalar(escape)) =
            (&args.args[0], &args.args[1])
        {
            let value = match (
                pattern.try_as_str().flatten(),
                escape.try_as_str().flatten(),
            ) {
                (Some(pattern), Some(escape)) => Some(convert(pattern, escape)?),
                _ => None,
            };
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(value)));
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let pattern = datafusion::arrow::compute::cast(&arrays[0], &DataType::Utf8)?;
        let escape = datafusion::arrow::compute::cast(&arrays[1], &DataType::Utf8)?;
        let (pattern, escape) = (pattern.as_string::<i32>(), escape.as_string::<i32>());
        let mut out = StringBuilder::with_capacity(pattern.len(), 0);
        for i in 0..pattern.len() {
            if pattern.is_null(i) || escape.is_null(i) {
                out.append_null();
            } else {
                out.append_value(convert(pattern.value(i), escape.value(i))?);
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_become_backslashes() {
        assert_eq!(convert("pg/_%", "/").unwrap(), r"pg\_%");
        assert_eq!(convert(r"a#%b\c##", "#").unwrap(), r"a\%b\\c#");
        assert_eq!(convert(r"a\_b", r"\").unwrap(), r"a\_b");
        assert!(
            convert("ab/", "/")
                .unwrap_err()
                .to_string()
                .contains("end with")
        );
        assert!(convert("ab", "//").is_err());
    }
}

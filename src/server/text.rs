//! PostgreSQL's text output for values where the encoder's differs.
//!
//! `float8` and `float4` print as PostgreSQL 12+ prints them (the shortest text that
//! reads back to the same value): `37`, not `37.0`; `1e+20`, not `1e20`; `Infinity`,
//! `NaN`. psql, drivers that parse text and anyone diffing output against PostgreSQL see
//! the same strings.
//!
//! Invariant: only columns sent in text format are rewritten, and a rewritten column
//! keeps its field (type OID) — the client still sees a float.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};
use pgwire::api::results::{FieldFormat, FieldInfo};

/// `batch` with its text-format float columns as PostgreSQL's strings.
pub(super) fn postgres_text(batch: RecordBatch, fields: &[FieldInfo]) -> RecordBatch {
    let needs = |i: usize, t: &DataType| {
        matches!(t, DataType::Float64 | DataType::Float32)
            && fields
                .get(i)
                .is_some_and(|f| f.format() == FieldFormat::Text)
    };
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .enumerate()
        .any(|(i, f)| needs(i, f.data_type()))
    {
        return batch;
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    let mut new_fields = Vec::with_capacity(batch.num_columns());
    for (i, (column, field)) in batch.columns().iter().zip(schema.fields()).enumerate() {
        if !needs(i, field.data_type()) {
            columns.push(column.clone());
            new_fields.push(field.clone());
            continue;
        }
        let mut out = StringBuilder::with_capacity(column.len(), column.len() * 8);
        match column.data_type() {
            DataType::Float64 => {
                for v in column.as_primitive::<Float64Type>() {
                    out.append_option(v.map(|v| float_text(v, 15)));
                }
            }
            _ => {
                for v in column.as_primitive::<Float32Type>() {
                    out.append_option(v.map(|v| float_text(v, 6)));
                }
            }
        }
        columns.push(Arc::new(out.finish()));
        new_fields.push(Arc::new(Field::new(
            field.name(),
            DataType::Utf8,
            field.is_nullable(),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(new_fields)), columns).expect(
        "each float column became a string column of the same rows, its field nullable as before",
    )
}

/// PostgreSQL's `float8out`/`float4out`: shortest round-trip digits, fixed notation for
/// decimal exponents in `[-4, digits)`, otherwise `d.ddde+XX`.
pub(super) fn float_text<F: Into<f64> + Copy + std::fmt::LowerExp>(
    value: F,
    digits: i32,
) -> String {
    let v: f64 = value.into();
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // `{:e}` of the original type gives its shortest round-trip digits.
    let sci = format!("{value:e}");
    let (mantissa, exponent) = sci
        .split_once('e')
        .expect("{:e} of a finite float always writes an exponent");
    let exponent: i32 = exponent
        .parse()
        .expect("{:e} writes the exponent as a decimal integer");
    let negative = mantissa.starts_with('-');
    let digits_only: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..digits).contains(&exponent) {
        let n = digits_only.len() as i32;
        let text = if exponent < 0 {
            format!("0.{}{digits_only}", "0".repeat((-exponent - 1) as usize))
        } else if exponent + 1 >= n {
            format!("{digits_only}{}", "0".repeat((exponent + 1 - n) as usize))
        } else {
            let (int, frac) = digits_only.split_at((exponent + 1) as usize);
            format!("{int}.{frac}")
        };
        return format!("{sign}{text}");
    }
    let (first, rest) = digits_only.split_at(1);
    let mantissa = if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}.{rest}")
    };
    let exp_sign = if exponent < 0 { '-' } else { '+' };
    format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.abs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float8_prints_like_postgresql() {
        // Expected strings are PostgreSQL 15's output for the same float8 values.
        let cases: &[(f64, &str)] = &[
            (37.0, "37"),
            (0.37, "0.37"),
            (700.0, "700"),
            (-1.5, "-1.5"),
            (0.0, "0"),
            (-0.0, "-0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e20, "1e+20"),
            (1e15, "1e+15"),
            (123456789012345.0, "123456789012345"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-300, "1.5e-300"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, want) in cases {
            assert_eq!(float_text(*value, 15), *want, "{value:?}");
        }
    }

    #[test]
    fn float4_prints_like_postgresql() {
        let cases: &[(f32, &str)] = &[
            (1.5, "1.5"),
            (0.1, "0.1"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (3.4028235e38, "3.4028235e+38"),
        ];
        for (value, want) in cases {
            assert_eq!(float_text(*value, 6), *want, "{value:?}");
        }
    }
}

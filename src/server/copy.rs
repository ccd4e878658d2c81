//! `COPY ... TO STDOUT` and `COPY ... FROM STDIN` (psql's `\copy`), in PostgreSQL's text
//! and CSV formats.
//!
//! Out: rows are formatted as they stream, one CopyData message per row. In: the client's
//! CopyData is buffered until CopyDone, parsed as text, cast to the table's column types
//! and appended in one commit, so a bad row anywhere leaves the table unchanged.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, new_null_array,
};
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption, Ident};
use futures::StreamExt;
use pgwire::error::PgWireResult;
use pgwire::messages::copy::CopyData;

use super::text::float_text;
use crate::{Error, Result};

/// How rows are written or read.
#[derive(Debug, Clone)]
pub(super) struct CopyFormat {
    csv: bool,
    header: bool,
    delimiter: u8,
    null: String,
    quote: u8,
}

impl CopyFormat {
    /// From `WITH (FORMAT csv, HEADER, ...)` and the pre-9.0 forms psql's `\copy` sends.
    pub(super) fn from_options(
        options: &[CopyOption],
        legacy: &[CopyLegacyOption],
    ) -> Result<CopyFormat> {
        let mut csv = false;
        let mut header = false;
        let mut delimiter = None;
        let mut null = None;
        let mut quote = b'"';
        let ascii = |c: char, what: &str| -> Result<u8> {
            u8::try_from(c).ok().filter(u8::is_ascii).ok_or_else(|| {
                Error::Unsupported(format!("COPY {what} must be one ASCII character"))
            })
        };
        for option in options {
            match option {
                CopyOption::Format(Ident { value, .. }) => {
                    match value.to_ascii_lowercase().as_str() {
                        "csv" => csv = true,
                        "text" => csv = false,
                        other => {
                            return Err(Error::Unsupported(format!(
                                "COPY format {other} is not supported; use text or csv"
                            )));
                        }
                    }
                }
                CopyOption::Header(on) => header = *on,
                CopyOption::Delimiter(c) => delimiter = Some(ascii(*c, "delimiter")?),
                CopyOption::Null(s) => null = Some(s.clone()),
                CopyOption::Quote(c) => quote = ascii(*c, "quote")?,
                CopyOption::Encoding(e)
                    if e.eq_ignore_ascii_case("utf8") || e.eq_ignore_ascii_case("utf-8") => {}
                other => {
                    return Err(Error::Unsupported(format!(
                        "COPY option {other} is not supported"
                    )));
                }
            }
        }
        for option in legacy {
            match option {
                CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for o in csv_options {
                        match o {
                            CopyLegacyCsvOption::Header => header = true,
                            CopyLegacyCsvOption::Quote(c) => quote = ascii(*c, "quote")?,
                            other => {
                                return Err(Error::Unsupported(format!(
                                    "COPY option {other} is not supported"
                                )));
                            }
                        }
                    }
                }
                CopyLegacyOption::Header => header = true,
                CopyLegacyOption::Delimiter(c) => delimiter = Some(ascii(*c, "delimiter")?),
                CopyLegacyOption::Null(s) => null = Some(s.clone()),
                CopyLegacyOption::Binary => {
                    return Err(Error::Unsupported(
                        "COPY BINARY is not supported; use text or csv".into(),
                    ));
                }
                other => {
                    return Err(Error::Unsupported(format!(
                        "COPY option {other} is not supported"
                    )));
                }
            }
        }
        if header && !csv {
            return Err(Error::Unsupported(
                "COPY HEADER is available only in CSV mode".into(),
            ));
        }
        Ok(CopyFormat {
            csv,
            header,
            delimiter: delimiter.unwrap_or(if csv { b',' } else { b'\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            quote,
        })
    }

    fn write_value(&self, out: &mut Vec<u8>, value: Option<&str>) {
        let Some(value) = value else {
            out.extend_from_slice(self.null.as_bytes());
            return;
        };
        if self.csv {
            let needs_quotes = value.is_empty() && self.null.is_empty()
                || value == self.null
                || value
                    .bytes()
                    .any(|b| b == self.delimiter || b == self.quote || b == b'\n' || b == b'\r');
            if needs_quotes {
                out.push(self.quote);
                for b in value.bytes() {
                    if b == self.quote {
                        out.push(self.quote);
                    }
                    out.push(b);
                }
                out.push(self.quote);
            } else {
                out.extend_from_slice(value.as_bytes());
            }
        } else {
            for b in value.bytes() {
                match b {
                    b'\\' => out.extend_from_slice(b"\\\\"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' if self.delimiter == b'\t' => out.extend_from_slice(b"\\t"),
                    b if b == self.delimiter => {
                        out.push(b'\\');
                        out.push(b);
                    }
                    b => out.push(b),
                }
            }
        }
    }
}

/// Formats a value the way PostgreSQL's text output does (ISO timestamps, t/f).
fn format_options() -> FormatOptions<'static> {
    FormatOptions::new()
        .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.f"))
        .with_timestamp_tz_format(Some("%Y-%m-%d %H:%M:%S%.f%:z"))
}

/// The rows of `stream` as CopyData messages, one per row (a header line first for CSV
/// with HEADER).
pub(super) fn copy_out(
    stream: SendableRecordBatchStream,
    format: CopyFormat,
) -> impl futures::Stream<Item = PgWireResult<CopyData>> + Send + 'static {
    let schema = stream.schema();
    let header = (format.csv && format.header).then(|| {
        let mut line = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            if i > 0 {
                line.push(format.delimiter);
            }
            format.write_value(&mut line, Some(field.name()));
        }
        line.push(b'\n');
        Ok(CopyData::new(Bytes::from(line)))
    });
    let rows = stream.flat_map(move |batch| {
        let lines: Vec<PgWireResult<CopyData>> = match batch {
            Ok(batch) => match format_batch(&batch, &format) {
                Ok(lines) => lines.into_iter().map(|l| Ok(CopyData::new(l))).collect(),
                Err(e) => vec![Err(super::wire::pg_error(&e))],
            },
            Err(e) => vec![Err(super::wire::pg_error(&Error::from(e)))],
        };
        futures::stream::iter(lines)
    });
    futures::stream::iter(header).chain(rows)
}

fn format_batch(batch: &RecordBatch, format: &CopyFormat) -> Result<Vec<Bytes>> {
    let options = format_options();
    let formatters = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(datafusion::error::DataFusionError::from)?;
    let mut lines = Vec::with_capacity(batch.num_rows());
    let mut value = String::new();
    for row in 0..batch.num_rows() {
        let mut line = Vec::new();
        for (i, column) in batch.columns().iter().enumerate() {
            if i > 0 {
                line.push(format.delimiter);
            }
            if column.is_null(row) {
                format.write_value(&mut line, None);
                continue;
            }
            value.clear();
            if let DataType::Boolean = column.data_type() {
                let b = column
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::BooleanArray>()
                    .expect("the data type was just checked to be Boolean")
                    .value(row);
                value.push(if b { 't' } else { 'f' });
            } else if let Some(v) = column.as_primitive_opt::<Float64Type>() {
                value.push_str(&float_text(v.value(row), 15));
            } else if let Some(v) = column.as_primitive_opt::<Float32Type>() {
                value.push_str(&float_text(v.value(row), 6));
            } else {
                use std::fmt::Write;
                write!(value, "{}", formatters[i].value(row)).expect("format_options() is safe (an error prints as text) and a String accepts every write");
            }
            format.write_value(&mut line, Some(&value));
        }
        line.push(b'\n');
        lines.push(Bytes::from(line));
    }
    Ok(lines)
}

/// Parses the data of `COPY table FROM STDIN` into one batch of `target`'s schema;
/// `columns` are the columns present in the data, in order (all when empty).
pub(super) fn parse_copy_in(
    data: &[u8],
    format: &CopyFormat,
    target: &SchemaRef,
    columns: &[String],
) -> Result<RecordBatch> {
    let present: Vec<usize> = if columns.is_empty() {
        (0..target.fields().len()).collect()
    } else {
        columns
            .iter()
            .map(|name| {
                target.index_of(name).map_err(|_| {
                    Error::Sql(datafusion::error::DataFusionError::Plan(format!(
                        "column \"{name}\" of the COPY target does not exist"
                    )))
                })
            })
            .collect::<Result<_>>()?
    };
    let text = std::str::from_utf8(data).map_err(|e| {
        Error::Unsupported(format!(
            "COPY data is not valid UTF-8 ({e}); martdb reads UTF-8 only"
        ))
    })?;
    let rows = if format.csv {
        split_csv(text, format)?
    } else {
        split_text(text, format)
    };
    let rows = &rows[usize::from(format.header && !rows.is_empty())..];
    let mut values: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(rows.len()); present.len()];
    for (line, row) in rows.iter().enumerate() {
        if row.len() != present.len() {
            return Err(bad_data(format!(
                "line {}: expected {} columns, found {}",
                line + 1 + usize::from(format.header),
                present.len(),
                row.len()
            )));
        }
        for (column, value) in row.iter().enumerate() {
            values[column].push(value.clone());
        }
    }
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut arrays: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|f| new_null_array(f.data_type(), rows.len()))
        .collect();
    for (column, index) in present.iter().enumerate() {
        let field = target.field(*index);
        let strings: ArrayRef = Arc::new(StringArray::from(std::mem::take(&mut values[column])));
        let cast = cast_with_options(&strings, field.data_type(), &strict)
            .map_err(|e| bad_data(format!("column \"{}\": {e}", field.name())))?;
        if !field.is_nullable() && cast.null_count() > 0 {
            return Err(bad_data(format!(
                "null value in column \"{}\" violates not-null constraint",
                field.name()
            )));
        }
        arrays[*index] = cast;
    }
    let schema = Arc::new(Schema::new(
        target
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), f.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn bad_data(message: String) -> Error {
    Error::Sql(datafusion::error::DataFusionError::ArrowError(
        Box::new(datafusion::arrow::error::ArrowError::CastError(format!(
            "COPY: {message}"
        ))),
        None,
    ))
}

/// Text format: one row per line, fields split on the delimiter, backslash escapes.
fn split_text(text: &str, format: &CopyFormat) -> Vec<Vec<Option<String>>> {
    let delimiter = format.delimiter as char;
    text.lines()
        .take_while(|line| *line != "\\.")
        .map(|line| {
            let mut fields = Vec::new();
            let mut current = String::new();
            let mut raw = String::new();
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    raw.push(c);
                    match chars.next() {
                        Some(e) => {
                            raw.push(e);
                            current.push(match e {
                                'n' => '\n',
                                'r' => '\r',
                                't' => '\t',
                                'b' => '\u{8}',
                                'f' => '\u{c}',
                                'v' => '\u{b}',
                                other => other,
                            });
                        }
                        None => current.push('\\'),
                    }
                } else if c == delimiter {
                    fields.push(finish_text(&mut current, &mut raw, format));
                } else {
                    current.push(c);
                    raw.push(c);
                }
            }
            fields.push(finish_text(&mut current, &mut raw, format));
            fields
        })
        .collect()
}

fn finish_text(current: &mut String, raw: &mut String, format: &CopyFormat) -> Option<String> {
    let value = std::mem::take(current);
    let raw = std::mem::take(raw);
    (raw != format.null).then_some(value)
}

/// CSV: quoted fields may hold delimiters, quotes (doubled) and newlines; an unquoted
/// field equal to the NULL string is NULL.
fn split_csv(text: &str, format: &CopyFormat) -> Result<Vec<Vec<Option<String>>>> {
    let (delimiter, quote) = (format.delimiter as char, format.quote as char);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            if c == quote {
                if chars.peek() == Some(&quote) {
                    field.push(quote);
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
        } else if c == quote {
            in_quotes = true;
            quoted = true;
        } else if c == delimiter {
            row.push(csv_value(&mut field, &mut quoted, format));
        } else if c == '\n' || c == '\r' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                chars.next();
            }
            row.push(csv_value(&mut field, &mut quoted, format));
            rows.push(std::mem::take(&mut row));
            any = false;
        } else {
            field.push(c);
        }
    }
    if in_quotes {
        return Err(bad_data("unterminated CSV quoted field".into()));
    }
    if any {
        row.push(csv_value(&mut field, &mut quoted, format));
        rows.push(row);
    }
    if rows
        .last()
        .is_some_and(|r| r.len() == 1 && r[0].as_deref() == Some("\\."))
    {
        rows.pop();
    }
    Ok(rows)
}

fn csv_value(field: &mut String, quoted: &mut bool, format: &CopyFormat) -> Option<String> {
    let value = std::mem::take(field);
    let was_quoted = std::mem::take(quoted);
    (was_quoted || value != format.null).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv() -> CopyFormat {
        CopyFormat::from_options(&[CopyOption::Format(Ident::new("csv"))], &[]).unwrap()
    }

    #[test]
    fn csv_quotes_nulls_and_newlines() {
        let rows = split_csv("1,\"a,b\",\n2,\"\",\"x\"\"y\nz\"\n", &csv()).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0], vec![Some("1".into()), Some("a,b".into()), None]);
        assert_eq!(
            rows[1],
            vec![
                Some("2".into()),
                Some(String::new()),
                Some("x\"y\nz".into())
            ]
        );
    }

    #[test]
    fn text_escapes_and_null_marker() {
        let text = CopyFormat::from_options(&[], &[]).unwrap();
        let rows = split_text("1\ta\\tb\t\\N\n", &text);
        assert_eq!(rows[0], vec![Some("1".into()), Some("a\tb".into()), None]);
        let mut line = Vec::new();
        text.write_value(&mut line, Some("a\tb\\"));
        assert_eq!(line, b"a\\tb\\\\");
    }

    #[test]
    fn parsed_rows_are_cast_to_the_table_types() {
        let target = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("paid", DataType::Boolean, true),
        ]));
        let batch = parse_copy_in(b"1,ann,t\n2,,f\n", &csv(), &target, &[]).unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(1).null_count(), 1);
        let err = parse_copy_in(b"x,ann,t\n", &csv(), &target, &[]).unwrap_err();
        assert_eq!(err.sqlstate(), "22P02");
        assert!(err.to_string().contains("column \"id\""), "{err}");
        let partial = parse_copy_in(b"7\n", &csv(), &target, &["id".to_string()]).unwrap();
        assert_eq!(partial.column(2).null_count(), 1);
    }
}

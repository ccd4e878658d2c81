//! The query's rows as series: the leading columns name a series, the next-to-last is its
//! timestamp and the last its value.
//!
//! Rows with a NULL timestamp cannot be placed on a timeline and are skipped; a NULL or
//! NaN value is a missing value (filled, see [`crate::ml::forecast::series`]). Series keep
//! the order in which their first row arrives.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::arrow::datatypes::Schema;
use datafusion::error::Result;

use crate::ml::forecast::{Clock, SeriesRows};

/// The roles of the query's columns, checked when the statement is planned.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    /// The series key columns.
    pub ids: Vec<Field>,
    pub ts: Field,
    pub value: Field,
    pub clock: Clock,
}

impl Layout {
    /// The layout of a query returning `schema`, or why it does not fit.
    pub(super) fn of(schema: &Schema) -> std::result::Result<Layout, String> {
        let fields = schema.fields();
        if fields.len() < 2 {
            return Err(format!(
                "the query must return the series key columns (if any), a timestamp and a \
                 value, in that order; it returns {} column(s)",
                fields.len()
            ));
        }
        let ts = fields[fields.len() - 2].as_ref().clone();
        let value = fields[fields.len() - 1].as_ref().clone();
        let clock = clock_of(ts.data_type()).ok_or_else(|| {
            format!(
                "the timestamp column {} is {}; it must be a date, a timestamp or an integer",
                ts.name(),
                ts.data_type()
            )
        })?;
        if !(value.data_type().is_numeric() || value.data_type() == &DataType::Null) {
            return Err(format!(
                "the value column {} is {}; it must be a number",
                value.name(),
                value.data_type()
            ));
        }
        Ok(Layout {
            ids: fields[..fields.len() - 2]
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect(),
            ts,
            value,
            clock,
        })
    }
}

fn clock_of(data_type: &DataType) -> Option<Clock> {
    let per_day = |n: i64| Clock {
        ticks_per_day: Some(n),
    };
    Some(match data_type {
        DataType::Date32 => per_day(1),
        DataType::Date64 => per_day(86_400_000),
        DataType::Timestamp(TimeUnit::Second, _) => per_day(86_400),
        DataType::Timestamp(TimeUnit::Millisecond, _) => per_day(86_400_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => per_day(86_400_000_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => per_day(86_400_000_000_000),
        t if t.is_integer() => Clock {
            ticks_per_day: None,
        },
        _ => return None,
    })
}

/// The series of `rows`, grouped by key.
pub(super) struct Grouped {
    pub series: Vec<SeriesRows>,
    /// One row per series: its key values.
    pub keys: Vec<ArrayRef>,
}

impl Grouped {
    pub(super) fn of(rows: &RecordBatch, layout: &Layout) -> Result<Grouped> {
        let id_columns = &rows.columns()[..layout.ids.len()];
        let ts = cast(&rows.columns()[layout.ids.len()], &DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>();
        let value = cast(&rows.columns()[layout.ids.len() + 1], &DataType::Float64)?;
        let value = value.as_primitive::<Float64Type>();
        let mut index: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut first_rows: Vec<u32> = Vec::new();
        let mut series: Vec<SeriesRows> = Vec::new();
        let key_rows = if id_columns.is_empty() {
            None
        } else {
            let converter = RowConverter::new(
                id_columns
                    .iter()
                    .map(|c| SortField::new(c.data_type().clone()))
                    .collect(),
            )?;
            Some(converter.convert_columns(id_columns)?)
        };
        for i in 0..rows.num_rows() {
            if ts.is_null(i) {
                continue;
            }
            let key: &[u8] = key_rows.as_ref().map_or(&[], |k| k.row(i).data());
            let at = match index.get(key) {
                Some(&at) => at,
                None => {
                    index.insert(key.to_vec(), series.len());
                    first_rows.push(i as u32);
                    series.push(Vec::new());
                    series.len() - 1
                }
            };
            let v = value.is_valid(i).then(|| value.value(i));
            series[at].push((ts.value(i), v));
        }
        let first_rows = UInt32Array::from(first_rows);
        let keys = id_columns
            .iter()
            .map(|c| take(c.as_ref(), &first_rows, None))
            .collect::<std::result::Result<_, _>>()?;
        Ok(Grouped { series, keys })
    }

    /// How an error message names series `i`: `(store_id = 3, product_id = 7)`.
    pub(super) fn describe(&self, i: usize, layout: &Layout) -> String {
        if layout.ids.is_empty() {
            return "the series".into();
        }
        let options = FormatOptions::default().with_null("NULL");
        let parts: Vec<String> = layout
            .ids
            .iter()
            .zip(&self.keys)
            .map(|(field, column)| {
                let shown = ArrayFormatter::try_new(column.as_ref(), &options)
                    .map(|f| f.value(i).to_string())
                    .unwrap_or_else(|_| "?".into());
                format!("{} = {shown}", field.name())
            })
            .collect();
        format!("series ({})", parts.join(", "))
    }

    /// The key columns repeated: series `i` `counts[i]` times.
    pub(super) fn repeat_keys(&self, counts: &[usize]) -> Result<Vec<ArrayRef>> {
        let indices: UInt32Array = counts
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| std::iter::repeat_n(i as u32, n))
            .collect();
        Ok(self
            .keys
            .iter()
            .map(|k| take(k.as_ref(), &indices, None))
            .collect::<std::result::Result<_, _>>()?)
    }
}

/// Timestamps back in the query's type.
pub(super) fn ticks_array(ticks: Vec<i64>, data_type: &DataType) -> Result<ArrayRef> {
    let ticks: ArrayRef = Arc::new(datafusion::arrow::array::Int64Array::from(ticks));
    // Dates count days in 32 bits.
    let ticks = match data_type {
        DataType::Date32 => cast(&ticks, &DataType::Int32)?,
        _ => ticks,
    };
    Ok(cast(&ticks, data_type)?)
}

//! `forecast(query [, horizon] [, options])`: every series of the query forecast
//! `horizon` steps ahead, with prediction intervals.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::input::{Grouped, Layout, ticks_array};
use super::options::{forecast_options, level_name, read};
use super::{FORECAST_KEYS, forecast_error, series_table};
use crate::ml::forecast::{ForecastError, ForecastOptions, forecast_many};
use crate::udf::query::constant_text;

pub(super) const NAME: &str = "forecast";

fn bad_input(message: String) -> DataFusionError {
    forecast_error(ForecastError::Input(format!("{NAME}: {message}")))
}

#[derive(Debug)]
pub(super) struct ForecastFunction;

impl TableFunctionImpl for ForecastFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(1..=3).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes the query, then an optional horizon and options; found {} arguments",
                exprs.len()
            )));
        }
        let query = constant_text(&exprs[0], "query", bad_input)?;
        let pairs = read(&exprs[1..], FORECAST_KEYS, &bad_input)?;
        let options = forecast_options(&pairs, vec![80.0, 95.0], &bad_input)?;
        let mut columns = vec![Field::new("forecast", DataType::Float64, true)];
        for level in &options.levels {
            let name = level_name(*level);
            columns.push(Field::new(format!("lo_{name}"), DataType::Float64, true));
            columns.push(Field::new(format!("hi_{name}"), DataType::Float64, true));
        }
        columns.push(Field::new("model", DataType::Utf8, false));
        series_table(
            &args,
            NAME,
            &query,
            bad_input,
            |_| columns,
            move |rows, layout, output, cancel| {
                forecast_rows(rows, layout, &options, output, cancel)
            },
        )
    }
}

fn forecast_rows(
    rows: &RecordBatch,
    layout: &Layout,
    options: &ForecastOptions,
    output: &SchemaRef,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<RecordBatch> {
    let mut grouped = Grouped::of(rows, layout)?;
    let series = std::mem::take(&mut grouped.series);
    let results = forecast_many(series, layout.clock, options, cancel).map_err(forecast_error)?;
    let mut counts = Vec::with_capacity(results.len());
    let mut ticks = Vec::new();
    let mut mean = Vec::new();
    let mut bounds: Vec<(Vec<f64>, Vec<f64>)> =
        vec![(Vec::new(), Vec::new()); options.levels.len()];
    let mut models: Vec<String> = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        let forecast = match result {
            Ok(Some(f)) => f,
            Ok(None) => {
                counts.push(0);
                continue;
            }
            Err(e) => {
                return Err(bad_input(format!("{}: {e}", grouped.describe(i, layout))));
            }
        };
        counts.push(forecast.ticks.len());
        ticks.extend(forecast.ticks);
        mean.extend(forecast.forecast.mean);
        for (slot, interval) in bounds.iter_mut().zip(forecast.forecast.intervals) {
            slot.0.extend(interval.lo);
            slot.1.extend(interval.hi);
        }
        models.extend(std::iter::repeat_n(forecast.model, counts[i]));
    }
    let mut columns = grouped.repeat_keys(&counts)?;
    columns.push(ticks_array(ticks, layout.ts.data_type())?);
    columns.push(finite(mean));
    for (lo, hi) in bounds {
        columns.push(finite(lo));
        columns.push(finite(hi));
    }
    columns.push(Arc::new(StringArray::from(models)));
    Ok(RecordBatch::try_new(output.clone(), columns)?)
}

/// A float column where a value that is not finite (an interval a model cannot give)
/// is NULL.
pub(super) fn finite(values: Vec<f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(
        values.into_iter().map(|v| v.is_finite().then_some(v)),
    ))
}

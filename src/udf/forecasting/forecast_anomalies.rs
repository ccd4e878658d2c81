//! `forecast_anomalies(query [, options])`: every observation of every series checked
//! against its model's in-sample prediction interval.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::error::{DataFusionError, Result};

use super::forecast::finite;
use super::input::{Grouped, Layout, ticks_array};
use super::options::{forecast_options, read};
use super::{ANOMALY_KEYS, forecast_error, series_table};
use crate::ml::forecast::{ForecastError, ForecastOptions, anomalies_many};
use crate::udf::query::constant_text;

pub(super) const NAME: &str = "forecast_anomalies";

/// The interval level when none is given: flags about one observation in a hundred of a
/// well-modelled series.
pub(super) const DEFAULT_LEVEL: f64 = 99.0;

fn bad_input(message: String) -> DataFusionError {
    forecast_error(ForecastError::Input(format!("{NAME}: {message}")))
}

#[derive(Debug)]
pub(super) struct ForecastAnomalies;

impl TableFunctionImpl for ForecastAnomalies {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(1..=2).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes the query and an optional options text; found {} arguments",
                exprs.len()
            )));
        }
        let query = constant_text(&exprs[0], "query", bad_input)?;
        let pairs = read(&exprs[1..], ANOMALY_KEYS, &bad_input)?;
        let options = forecast_options(&pairs, vec![DEFAULT_LEVEL], &bad_input)?;
        if options.levels.len() != 1 {
            return Err(bad_input("level takes one value here".into()));
        }
        series_table(
            &args,
            NAME,
            &query,
            bad_input,
            |layout| {
                let mut columns = vec![Field::new(layout.value.name(), DataType::Float64, false)];
                for name in ["fitted", "lo", "hi"] {
                    columns.push(Field::new(name, DataType::Float64, true));
                }
                columns.push(Field::new("anomaly", DataType::Boolean, false));
                columns.push(Field::new("score", DataType::Float64, true));
                columns.push(Field::new("model", DataType::Utf8, false));
                columns
            },
            move |rows, layout, output, cancel| flag_rows(rows, layout, &options, output, cancel),
        )
    }
}

fn flag_rows(
    rows: &RecordBatch,
    layout: &Layout,
    options: &ForecastOptions,
    output: &SchemaRef,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<RecordBatch> {
    let mut grouped = Grouped::of(rows, layout)?;
    let results = anomalies_many(
        std::mem::take(&mut grouped.series),
        layout.clock,
        options,
        options.levels[0],
        cancel,
    )
    .map_err(forecast_error)?;
    let mut counts = Vec::with_capacity(results.len());
    let (mut ticks, mut values, mut fitted, mut lo, mut hi) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut anomaly, mut score, mut models) = (Vec::new(), Vec::new(), Vec::new());
    for (i, result) in results.into_iter().enumerate() {
        let flags = match result {
            Ok(Some(f)) => f,
            Ok(None) => {
                counts.push(0);
                continue;
            }
            Err(e) => return Err(bad_input(format!("{}: {e}", grouped.describe(i, layout)))),
        };
        counts.push(flags.flags.len());
        for flag in flags.flags {
            ticks.push(flag.tick);
            values.push(flag.value);
            fitted.push(flag.fitted.unwrap_or(f64::NAN));
            lo.push(flag.lo.unwrap_or(f64::NAN));
            hi.push(flag.hi.unwrap_or(f64::NAN));
            anomaly.push(flag.anomaly);
            score.push(flag.score.unwrap_or(f64::NAN));
            models.push(flags.model.clone());
        }
    }
    let mut columns = grouped.repeat_keys(&counts)?;
    columns.push(ticks_array(ticks, layout.ts.data_type())?);
    columns.push(Arc::new(datafusion::arrow::array::Float64Array::from(
        values,
    )));
    for column in [fitted, lo, hi] {
        columns.push(finite(column));
    }
    columns.push(Arc::new(BooleanArray::from(anomaly)));
    columns.push(finite(score));
    columns.push(Arc::new(StringArray::from(models)));
    Ok(RecordBatch::try_new(output.clone(), columns)?)
}

//! A forecast drawn: one series' history, its forecast with intervals and (optionally)
//! its anomalies, as an SVG chart (`martdb plot`). It runs the same SQL functions an
//! analyst would, so the picture shows exactly what `forecast` returns.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};

use crate::ml::forecast::plot::{Chart, render_svg};
use crate::{Engine, Error, Result};

/// What to draw.
#[derive(Debug, Clone)]
pub struct ChartRequest {
    /// A query returning one series: a timestamp and a value.
    pub query: String,
    pub horizon: usize,
    /// `forecast`'s options text, e.g. `model = ets, level = 80 95`.
    pub options: String,
    /// Mark the observations `forecast_anomalies` flags.
    pub anomalies: bool,
    pub title: String,
    pub width: u32,
    pub height: u32,
}

/// The SVG document of the chart `request` asks for.
pub async fn forecast_chart(engine: &Engine, request: &ChartRequest) -> Result<String> {
    let history = engine.sql(&request.query).await?;
    let schema = match history.first() {
        Some(batch) => batch.schema(),
        None => engine.sql_stream(&request.query).await?.schema(),
    };
    if schema.fields().len() != 2 {
        return Err(Error::Unsupported(format!(
            "plot draws one series: the query must return a timestamp and a value, it \
             returns {} columns",
            schema.fields().len()
        )));
    }
    let ts_type = schema.field(0).data_type().clone();
    let quoted = |text: &str| text.replace('\'', "''");
    let forecast = engine
        .sql(&format!(
            "SELECT * FROM forecast('{}', {}, '{}')",
            quoted(&request.query),
            request.horizon,
            quoted(&request.options)
        ))
        .await?;
    let marks = if request.anomalies {
        let flagged = engine
            .sql(&format!(
                "SELECT * FROM forecast_anomalies('{}') WHERE anomaly",
                quoted(&request.query)
            ))
            .await?;
        points(&flagged, 0, 1)?
    } else {
        Vec::new()
    };
    let history = points(&history, 0, 1)?;
    let forecast_points = points(&forecast, 0, 1)?;
    // forecast's columns: ts, forecast, then lo/hi per level, then model.
    let mut bands = Vec::new();
    if let Some(batch) = forecast.first() {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for (i, name) in names.iter().enumerate() {
            let Some(level) = name.strip_prefix("lo_") else {
                continue;
            };
            let level: f64 = level.replace('_', ".").parse().unwrap_or(f64::NAN);
            let lo = points(&forecast, 0, i)?.into_iter().map(|p| p.1).collect();
            let hi = points(&forecast, 0, i + 1)?
                .into_iter()
                .map(|p| p.1)
                .collect();
            bands.push((level, lo, hi));
        }
    }
    let label = move |x: f64| x_label(x, &ts_type);
    let chart = Chart {
        title: &request.title,
        history: &history,
        forecast: &forecast_points,
        bands: &bands,
        marks: &marks,
        x_label: &label,
    };
    Ok(render_svg(&chart, request.width, request.height))
}

/// Columns `x` and `y` of `batches` as points: timestamps as days (dates and
/// timestamps) or as they are (integers), values as floats (NULL as NaN).
fn points(batches: &[RecordBatch], x: usize, y: usize) -> Result<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    for batch in batches {
        let xs = as_days(batch.column(x))?;
        let ys = cast(batch.column(y), &DataType::Float64)?;
        let ys = ys.as_primitive::<Float64Type>();
        for (i, x) in xs.into_iter().enumerate() {
            let y = if ys.is_valid(i) {
                ys.value(i)
            } else {
                f64::NAN
            };
            out.push((x, y));
        }
    }
    Ok(out)
}

fn as_days(column: &dyn Array) -> Result<Vec<f64>> {
    let per_day = match column.data_type() {
        DataType::Date32 => 1.0,
        DataType::Date64 => 86_400_000.0,
        DataType::Timestamp(TimeUnit::Second, _) => 86_400.0,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 86_400_000.0,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 86_400_000_000.0,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => 86_400_000_000_000.0,
        t if t.is_integer() => 1.0,
        other => {
            return Err(Error::Unsupported(format!(
                "plot: the timestamp column is {other}; it must be a date, a timestamp or an \
                 integer"
            )));
        }
    };
    let ticks = cast(column, &DataType::Int64)?;
    let ticks = ticks.as_primitive::<Int64Type>();
    Ok(ticks
        .iter()
        .map(|t| t.map_or(f64::NAN, |t| t as f64 / per_day))
        .collect())
}

/// An x value as the axis shows it: a date for dates and timestamps, else the number.
fn x_label(x: f64, ts_type: &DataType) -> String {
    if matches!(
        ts_type,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    ) {
        let days = x.floor() as i64;
        chrono::NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32)
            .map_or_else(|| format!("{x}"), |d| d.format("%Y-%m-%d").to_string())
    } else {
        format!("{x}")
    }
}

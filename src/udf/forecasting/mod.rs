//! Forecasting in SQL: every series of a query forecast in one call, and every
//! observation checked for anomalies.
//!
//! # `forecast(query [, horizon] [, options])`
//!
//! ```sql
//! SELECT * FROM forecast(
//!   'SELECT store_id, product_id, day, units FROM daily_sales',
//!   horizon => 28, season_length => 7, model => 'auto', level => [80, 95]);
//! ```
//!
//! The query returns the series key columns (any number, any types, none for a single
//! series), then a timestamp (a date, a timestamp or an integer) and a value (a number),
//! in that order. The result has one row per series and step: the key columns, the
//! timestamp, `forecast`, `lo_80`, `hi_80`, `lo_95`, `hi_95` (one pair per level) and
//! `model`, the model the series got. Write it to a table with `CREATE TABLE t AS
//! SELECT * FROM forecast(...)`.
//!
//! Options are named arguments (`key => value`) or one text `'key = value, ...'`:
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `horizon` | 14 | steps to forecast (also the second argument, `forecast(q, 28)`) |
//! | `season_length` | detected | season lengths in steps, e.g. `7` or `[7, 365]`; detected: a week and a year of days, a year of months or quarters, a day and a week of hours, kept where the series shows them (two full cycles, autocorrelation significant at 90%) |
//! | `model` | `auto` | `auto`, `ets`, `theta`, `mstl`, `seasonal_naive`, `naive`, `croston`, `sba`, `tsb` |
//! | `ets_model` | `ZZZ` | with `model => 'ets'`: error, trend and season components (`A`, `M`, `N`, `Z` to choose; trend `Ad` is damped) |
//! | `level` | `[80, 95]` | interval levels, percent |
//! | `fill` | `interpolate` | missing steps and NULL values: `interpolate`, `zero` or `previous` |
//! | `intervals` | `calibrated` | `model`: the model's own normal-theory intervals (statsforecast's); `calibrated`: those rescaled per level to cover that share of the series' own one-step residuals, so a holiday peak in the history does not widen the intervals of every ordinary day |
//! | `clean` | `true` | replace outliers (a value more than 5 robust standard deviations off its model's prediction) by the prediction and refit, so a one-day spike does not widen every interval; intermittent series are never cleaned |
//!
//! `auto` fits ETS per series unless Theta, the seasonal naive model or (with two
//! seasons) MSTL forecast each of the series' last five holdout windows better (see
//! [`crate::ml::forecast::choose`]); for intermittent demand it picks among Croston, SBA
//! and TSB. A constant series gets its
//! value with zero-width intervals; a series of fewer than four values the naive
//! forecast. A series whose values are all NULL gives no rows. The step of a series is
//! its most common gap (a month on a calendar when the day of the month repeats);
//! timestamps off that grid, or two rows at one timestamp, are an error naming the
//! series (SQLSTATE 22023).
//!
//! # `forecast_anomalies(query [, options])`
//!
//! Every observation of the query (same columns as `forecast`) with its model's in-sample
//! one-step prediction and the interval around it: the key columns, the timestamp, the
//! value, `fitted`, `lo`, `hi`, `anomaly` (the value is outside `[lo, hi]`), `score`
//! (the residual in residual standard deviations) and `model`. Options as `forecast`'s,
//! with one `level` (default 99). Filled steps are not observations and have no row.
//!
//! Both functions fit the series on every core and stop when the statement is cancelled.
//!
//! # A picture
//!
//! `martdb plot --data DIR 'SELECT day, units FROM daily_sales WHERE store_id = 1 AND
//! product_id = 2' --horizon 28 --anomalies -o forecast.svg` draws one series' history,
//! its forecast with the intervals, and its anomalies ([`forecast_chart`]).

mod chart;
mod forecast;
mod forecast_anomalies;
mod input;
mod options;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};

use crate::ml::forecast::ForecastError;
use crate::udf::query::{CancelOnDrop, QueryFunctionBody, QueryFunctionExec, plan_query_now};
use input::Layout;

pub use chart::{ChartRequest, forecast_chart};

/// The options `forecast` takes.
const FORECAST_KEYS: &[&str] = &[
    "horizon",
    "season_length",
    "model",
    "ets_model",
    "level",
    "fill",
    "clean",
    "intervals",
];

/// The options `forecast_anomalies` takes (no horizon: it looks back).
const ANOMALY_KEYS: &[&str] = &[
    "season_length",
    "model",
    "ets_model",
    "level",
    "fill",
    "clean",
];

/// Every forecasting table function, by name.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![
        (forecast::NAME, Arc::new(forecast::ForecastFunction)),
        (
            forecast_anomalies::NAME,
            Arc::new(forecast_anomalies::ForecastAnomalies),
        ),
    ]
}

fn forecast_error(e: ForecastError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn unique_names(fields: &[Field]) -> std::result::Result<(), String> {
    for (i, field) in fields.iter().enumerate() {
        if fields[..i].iter().any(|f| f.name() == field.name()) {
            return Err(format!(
                "the output would have two columns named {}; rename the query's column",
                field.name()
            ));
        }
    }
    Ok(())
}

/// A series function's table: its query planned and its columns checked now, before
/// anything runs. The output is the key columns, the timestamp, then `columns` (made from
/// the query's layout); `compute` makes it from all of the query's rows.
fn series_table(
    args: &TableFunctionArgs,
    name: &'static str,
    query: &str,
    bad: fn(String) -> DataFusionError,
    columns: impl FnOnce(&Layout) -> Vec<Field>,
    compute: impl Fn(&RecordBatch, &Layout, &SchemaRef, &AtomicBool) -> Result<RecordBatch>
    + Send
    + Sync
    + 'static,
) -> Result<Arc<dyn TableProvider>> {
    let plan = plan_query_now(
        args.session(),
        query,
        name,
        "series key columns, a timestamp and a value",
        bad,
    )?;
    let layout = Layout::of(plan.schema().as_arrow()).map_err(bad)?;
    let mut fields = layout.ids.clone();
    fields.push(layout.ts.clone().with_nullable(false));
    fields.extend(columns(&layout));
    unique_names(&fields).map_err(bad)?;
    let output: SchemaRef = Arc::new(Schema::new(fields));
    let schema = output.clone();
    Ok(Arc::new(SeriesTable {
        name,
        plan,
        output,
        compute: Arc::new(move |rows, cancel| compute(rows, &layout, &schema, cancel)),
    }))
}

/// What a series function computes from all of its query's rows, on a blocking thread;
/// it checks the flag to stop early.
type Compute = Arc<dyn Fn(&RecordBatch, &AtomicBool) -> Result<RecordBatch> + Send + Sync>;

/// The table a series function returns: its query's rows, all of them (a series needs
/// its whole history), through `compute`.
struct SeriesTable {
    name: &'static str,
    plan: LogicalPlan,
    output: SchemaRef,
    compute: Compute,
}

impl std::fmt::Debug for SeriesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, self.output)
    }
}

#[async_trait]
impl TableProvider for SeriesTable {
    fn schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = state.create_physical_plan(&self.plan).await?;
        let (name, compute) = (self.name, self.compute.clone());
        let body: QueryFunctionBody = Arc::new(move |rows, _context| {
            let compute = compute.clone();
            let run = async move {
                let schema = rows.schema();
                let batches: Vec<RecordBatch> = rows.try_collect().await?;
                let all = concat_batches(&schema, &batches)?;
                // Dropping the query (a cancel, a timeout, a closed connection) drops
                // this guard, which stops the workers at their next series.
                let cancel = CancelOnDrop::default();
                let flag = cancel.0.clone();
                let out = tokio::task::spawn_blocking(move || compute(&all, &flag))
                    .await
                    .map_err(|e| DataFusionError::Internal(format!("{name}: {e}")))?;
                drop(cancel);
                out
            };
            Ok(futures::stream::once(run).boxed())
        });
        Ok(Arc::new(QueryFunctionExec::new(
            self.name,
            input,
            &self.output,
            projection,
            body,
        )?))
    }
}

//! `attribution(query, model [, parameter])`: channel credits of the journeys a query
//! returns, by [`crate::ml::attribution::attribute`]. The SQL reference is the module doc
//! of `udf::attribution`.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use crate::ml::attribution::{Attribution, AttributionError, Journey, Model, Touch, attribute};
use crate::udf::query::{
    constant, constant_text, is_text, output_properties, plan_query, session_state,
};

pub(super) const NAME: &str = "attribution";

/// The columns the query must return, by position.
const COLUMNS: &str = "(journey, time, channel, converted [, value])";

/// `attribution(query, model [, parameter])`: a table of channel credits.
#[derive(Debug, Default)]
pub struct AttributionFunction;

fn error(e: AttributionError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn bad_input(message: impl Into<String>) -> DataFusionError {
    error(AttributionError::Input {
        message: message.into(),
    })
}

impl TableFunctionImpl for AttributionFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(2..=3).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes 2 or 3 arguments (query, model [, parameter]), found {}",
                exprs.len()
            )));
        }
        let query = constant_text(&exprs[0], "query", bad_input)?;
        let model = constant_text(&exprs[1], "model", bad_input)?;
        let parameter = match exprs.get(2) {
            None => None,
            Some(expr) => {
                let value = constant(expr, "parameter", bad_input)?;
                if value.is_null() {
                    None
                } else if value.data_type().is_numeric() {
                    match value.cast_to(&DataType::Float64)? {
                        ScalarValue::Float64(v) => v,
                        _ => None,
                    }
                } else {
                    return Err(bad_input(format!(
                        "the parameter must be a number, found {value} of type {}",
                        value.data_type()
                    )));
                }
            }
        };
        let model = Model::from_name(&model, parameter).map_err(error)?;
        Ok(Arc::new(AttributionTable { query, model }))
    }
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("channel", DataType::Utf8, false),
        Field::new("conversions", DataType::Float64, false),
        Field::new("value", DataType::Float64, false),
        Field::new("share", DataType::Float64, true),
        Field::new("removal_effect", DataType::Float64, true),
    ]))
});

/// One call's result, computed when scanned.
#[derive(Debug)]
struct AttributionTable {
    query: String,
    model: Model,
}

#[async_trait]
impl TableProvider for AttributionTable {
    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        session: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session_state(session, NAME)?;
        let plan = plan_query(state, &self.query, NAME, COLUMNS, bad_input).await?;
        let has_value = check_columns(plan.schema().as_arrow())?;
        let input = state.create_physical_plan(&plan).await?;
        let (projected, properties) = output_properties(&SCHEMA, projection)?;
        Ok(Arc::new(AttributionExec {
            input,
            model: self.model,
            has_value,
            projection: projection.cloned(),
            projected,
            properties,
        }))
    }
}

/// Checks the query's columns; returns whether it has a value column.
fn check_columns(schema: &Schema) -> Result<bool> {
    let fields = schema.fields();
    if !(4..=5).contains(&fields.len()) {
        return Err(bad_input(format!(
            "the query must return the columns {COLUMNS}, found {} column(s)",
            fields.len()
        )));
    }
    let wrong = |position: usize, role: &str, expected: &str| {
        bad_input(format!(
            "column {} ({role}) of the query must be {expected}, found {}",
            position + 1,
            fields[position].data_type()
        ))
    };
    let time = fields[1].data_type();
    if !(matches!(
        time,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
    ) || time.is_numeric())
    {
        return Err(wrong(
            1,
            "time",
            "a timestamp, a date or a number of seconds",
        ));
    }
    if !is_text(fields[2].data_type()) {
        return Err(wrong(2, "channel", "text"));
    }
    let converted = fields[3].data_type();
    if !(converted == &DataType::Boolean || converted.is_integer()) {
        return Err(wrong(3, "converted", "a boolean or an integer 0/1"));
    }
    if fields.len() == 5 && !fields[4].data_type().is_numeric() {
        return Err(wrong(4, "value", "a number"));
    }
    Ok(fields.len() == 5)
}

/// Runs the query, builds the journeys and attributes them.
struct AttributionExec {
    input: Arc<dyn ExecutionPlan>,
    model: Model,
    has_value: bool,
    projection: Option<Vec<usize>>,
    /// The schema of what it returns: the output schema with `projection` applied.
    projected: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for AttributionExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AttributionExec({})", self.model.name())
    }
}

impl DisplayAs for AttributionExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "AttributionExec: model={:?}", self.model)
            }
            DisplayFormatType::TreeRender => write!(f, "model={}", self.model.name()),
        }
    }
}

impl ExecutionPlan for AttributionExec {
    fn name(&self) -> &str {
        "AttributionExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "AttributionExec has one child, given {}",
                children.len()
            )));
        }
        Ok(Arc::new(AttributionExec {
            input: children.remove(0),
            model: self.model,
            has_value: self.has_value,
            projection: self.projection.clone(),
            projected: self.projected.clone(),
            properties: self.properties.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "AttributionExec has one partition, asked for {partition}"
            )));
        }
        let input = self.input.clone();
        let (model, has_value) = (self.model, self.has_value);
        let projection = self.projection.clone();
        let stream = futures::stream::once(async move {
            let batches = datafusion::physical_plan::collect(input, context).await?;
            // Building journeys and solving a chain is CPU work: off the async threads.
            let result = tokio::task::spawn_blocking(move || {
                let journeys = journeys(&batches, has_value)?;
                attribute(&journeys, model).map_err(error)
            })
            .await
            .map_err(|e| DataFusionError::Execution(format!("{NAME}: {e}")))??;
            let batch = output(&result)?;
            Ok(match &projection {
                Some(columns) => batch.project(columns)?,
                None => batch,
            })
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.projected.clone(),
            stream,
        )))
    }
}

/// A journey while its rows are read.
struct Building {
    touches: Vec<Touch>,
    converted: bool,
    value: Option<f64>,
}

/// The journeys of the query's rows (checked by [`check_columns`]), ordered by key.
fn journeys(batches: &[RecordBatch], has_value: bool) -> Result<Vec<Journey>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    let converter = RowConverter::new(vec![SortField::new(first.column(0).data_type().clone())])?;
    let mut index: HashMap<Box<[u8]>, usize> = HashMap::new();
    let mut keyed: Vec<(Box<[u8]>, Building)> = Vec::new();
    for batch in batches {
        let keys = batch.column(0);
        let rows = converter.convert_columns(std::slice::from_ref(keys))?;
        let times = seconds(batch.column(1))?;
        let channels = cast(batch.column(2), &DataType::Utf8)?;
        let channels = channels.as_string::<i32>();
        let converted = converted_flags(batch.column(3))?;
        let values = match has_value {
            true => Some(cast(batch.column(4), &DataType::Float64)?),
            false => None,
        };
        let values = values.as_ref().map(|v| v.as_primitive::<Float64Type>());
        for (row, &row_converted) in converted.iter().enumerate() {
            for (array, role) in [
                (keys.as_ref(), "journey"),
                (&times as &dyn Array, "time"),
                (channels as &dyn Array, "channel"),
            ] {
                if array.is_null(row) {
                    return Err(bad_input(format!(
                        "the query returned a NULL {role}: every touch needs a journey, a \
                         time and a channel"
                    )));
                }
            }
            let key = rows.row(row);
            let journey = match index.get(key.as_ref()) {
                Some(&j) => j,
                None => {
                    let key: Box<[u8]> = key.as_ref().into();
                    index.insert(key.clone(), keyed.len());
                    keyed.push((
                        key,
                        Building {
                            touches: Vec::new(),
                            converted: false,
                            value: None,
                        },
                    ));
                    keyed.len() - 1
                }
            };
            let building = &mut keyed[journey].1;
            building.touches.push(Touch {
                channel: channels.value(row).to_string(),
                at: times.value(row),
            });
            building.converted |= row_converted;
            if let Some(values) = values
                && values.is_valid(row)
            {
                let value = values.value(row);
                if !value.is_finite() {
                    return Err(bad_input(format!(
                        "a conversion value must be a finite number, found {value}"
                    )));
                }
                building.value = Some(building.value.map_or(value, |v| v.max(value)));
            }
        }
    }
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(keyed
        .into_iter()
        .map(|(_, b)| Journey {
            touches: b.touches,
            converted: b.converted,
            value: match has_value {
                true => b.value.unwrap_or(0.0),
                false => 1.0,
            },
        })
        .collect())
}

/// Touch times in seconds: timestamps and dates since the Unix epoch, numbers as they are.
fn seconds(array: &ArrayRef) -> Result<Float64Array> {
    let micros = match array.data_type() {
        DataType::Timestamp(_, zone) => Some(cast(
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        )?),
        DataType::Date32 | DataType::Date64 => Some(cast(
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?),
        _ => None,
    };
    Ok(match micros {
        Some(micros) => micros
            .as_primitive::<TimestampMicrosecondType>()
            .unary(|us| us as f64 / 1e6),
        None => cast(array, &DataType::Float64)?
            .as_primitive::<Float64Type>()
            .clone(),
    })
}

/// The converted flag of each row: a boolean, or an integer 0/1; NULL is false.
fn converted_flags(array: &ArrayRef) -> Result<Vec<bool>> {
    if let Some(flags) = array.as_boolean_opt() {
        return Ok((0..flags.len())
            .map(|i| flags.is_valid(i) && flags.value(i))
            .collect());
    }
    let numbers = cast(array, &DataType::Int64)?;
    let numbers = numbers.as_primitive::<Int64Type>();
    (0..numbers.len())
        .map(|i| match numbers.is_valid(i).then(|| numbers.value(i)) {
            None | Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(other) => Err(bad_input(format!(
                "converted must be a boolean or 0/1, found {other}"
            ))),
        })
        .collect()
}

/// The result as one batch of the full output schema.
fn output(result: &Attribution) -> Result<RecordBatch> {
    let channels = &result.channels;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            channels.iter().map(|c| c.channel.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            channels.iter().map(|c| c.conversions),
        )),
        Arc::new(Float64Array::from_iter_values(
            channels.iter().map(|c| c.value),
        )),
        Arc::new(Float64Array::from_iter(channels.iter().map(|c| c.share))),
        Arc::new(Float64Array::from_iter(
            channels.iter().map(|c| c.removal_effect),
        )),
    ];
    Ok(RecordBatch::try_new(SCHEMA.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
        ctx.sql(sql).await?.collect().await
    }

    fn context() -> SessionContext {
        let ctx = SessionContext::new();
        ctx.register_udtf(NAME, Arc::new(AttributionFunction));
        ctx
    }

    #[tokio::test]
    async fn credits_of_a_values_query() {
        let ctx = context();
        let batches = run(
            &ctx,
            "SELECT channel, conversions, value, share, removal_effect FROM attribution(
               'SELECT * FROM (VALUES (1, 1, ''a'', true, 10.0), (1, 2, ''b'', true, 10.0),
                                      (2, 1, ''b'', false, 0.0)) AS t(k, t, c, conv, v)',
               'linear')",
        )
        .await
        .unwrap();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        let conversions = batch.column(1).as_primitive::<Float64Type>();
        let value = batch.column(2).as_primitive::<Float64Type>();
        assert_eq!(conversions.values().to_vec(), vec![0.5, 0.5]);
        assert_eq!(value.values().to_vec(), vec![5.0, 5.0]);
        assert!(batch.column(4).is_null(0));
    }

    #[tokio::test]
    async fn projection_and_count() {
        let ctx = context();
        let sql = "SELECT count(*) FROM attribution(
             'SELECT 1 AS k, 1.5 AS t, ''x'' AS c, 1 AS conv UNION ALL SELECT 2, 1.5, ''y'', 0',
             'markov')";
        let batches = run(&ctx, sql).await.unwrap();
        let count = batches[0].column(0).as_primitive::<Int64Type>().value(0);
        assert_eq!(count, 2);
    }

    #[tokio::test]
    async fn errors_carry_the_attribution_error() {
        let ctx = context();
        for (sql, expected) in [
            (
                "SELECT * FROM attribution('SELECT 1', 'nope')",
                "unknown attribution model",
            ),
            (
                "SELECT * FROM attribution('SELECT 1', 'markov', 2)",
                "takes no parameter",
            ),
            (
                "SELECT * FROM attribution('SELECT 1', 'linear')",
                "found 1 column(s)",
            ),
            (
                "SELECT * FROM attribution('SELECT 1, ''x'', ''c'', true', 'linear')",
                "column 2 (time)",
            ),
            (
                "SELECT * FROM attribution('SELECT 1, 2, ''c'', 3', 'linear')",
                "found 3",
            ),
            (
                "SELECT * FROM attribution('CREATE TABLE t (a INT)', 'linear')",
                "one SELECT",
            ),
        ] {
            let err = run(&ctx, sql).await.unwrap_err();
            let root = err.find_root();
            let DataFusionError::External(inner) = root else {
                panic!("{sql}: {err}");
            };
            let inner = inner.downcast_ref::<AttributionError>().expect("ours");
            assert!(inner.to_string().contains(expected), "{sql}: {inner}");
            assert_eq!(inner.sqlstate(), "22023");
        }
    }
}

//! What the identity table functions share: their arguments `(edges query [, rules
//! query])`, reading the two queries' rows into the domain's types, and the execution
//! node that runs one [`IdentityJob`] over them.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Float64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use datafusion::physical_plan::{StatisticsArgs, StatisticsContext, execute_stream};
use futures::{StreamExt, TryStreamExt};

use crate::identity::{EdgeBatch, IdentityError, Resolution, Resolver, Rules};
use crate::udf::query::{constant_text, is_text, output_properties, plan_query, session_state};

/// The columns the edges query returns, by position.
pub(super) const EDGE_COLUMNS: &str = "(id_a, type_a, id_b, type_b [, observed_at [, source]])";
/// The columns the rules query returns, by position.
pub(super) const RULE_COLUMNS: &str = "(rule, id_type, value)";

pub(super) fn error(e: IdentityError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

pub(super) fn bad_input(message: String) -> DataFusionError {
    error(IdentityError::Input { message })
}

/// The edges of one job, batch by batch as the edges query produces them: a job that
/// resolves interns each batch while the query reads the next.
pub(super) struct EdgeInput {
    batches: Box<dyn Iterator<Item = Result<EdgeBatch>> + Send>,
    /// The number of edges the edges plan's statistics promise (0 when unknown).
    expected: usize,
}

impl EdgeInput {
    /// Every batch.
    pub fn collect_all(self) -> Result<Vec<EdgeBatch>> {
        self.batches.collect()
    }

    /// The batch resolution of the edges under `rules`.
    pub fn resolve(self, rules: &Rules) -> Result<Resolution> {
        let mut resolver = Resolver::expecting(rules, self.expected);
        for batch in self.batches {
            resolver.add(batch?).map_err(error)?;
        }
        resolver.finish().map_err(error)
    }
}

/// What one identity table function computes from its edges and rules.
pub(super) trait IdentityJob: fmt::Debug + Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn schema(&self) -> SchemaRef;
    /// Runs on a blocking thread: resolution is CPU work, updates wait for the disk.
    fn run(&self, edges: EdgeInput, rules: Rules) -> Result<RecordBatch>;

    /// The output columns `columns` (indices into [`IdentityJob::schema`]), or all. By
    /// default the whole output, projected; a job with a large output builds only what is
    /// asked for.
    fn run_projected(
        &self,
        edges: EdgeInput,
        rules: Rules,
        columns: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        let batch = self.run(edges, rules)?;
        Ok(match columns {
            Some(columns) => batch.project(columns)?,
            None => batch,
        })
    }
}

/// A table function `job(edges query [, rules query])`.
#[derive(Debug)]
pub(super) struct IdentityFunction<J>(pub Arc<J>);

impl<J: IdentityJob> TableFunctionImpl for IdentityFunction<J> {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        let name = self.0.name();
        if !(1..=2).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "{name} takes 1 or 2 arguments (edges query [, rules query]), found {}",
                exprs.len()
            )));
        }
        let edges = constant_text(&exprs[0], "edges query", bad_input)?;
        let rules = match exprs.get(1) {
            Some(expr) => Some(constant_text(expr, "rules query", bad_input)?),
            None => None,
        };
        Ok(Arc::new(IdentityTable {
            job: self.0.clone(),
            edges,
            rules,
        }))
    }
}

/// One call of an identity table function, run when scanned.
#[derive(Debug)]
pub(super) struct IdentityTable<J> {
    pub job: Arc<J>,
    edges: String,
    rules: Option<String>,
}

#[async_trait]
impl<J: IdentityJob> TableProvider for IdentityTable<J> {
    fn schema(&self) -> SchemaRef {
        self.job.schema()
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
        let name = self.job.name();
        let state = session_state(session, name)?;
        let edges = plan_query(state, &self.edges, name, EDGE_COLUMNS, bad_input).await?;
        check_edge_columns(edges.schema().as_arrow())?;
        let mut inputs = vec![state.create_physical_plan(&edges).await?];
        if let Some(rules) = &self.rules {
            let rules = plan_query(state, rules, name, RULE_COLUMNS, bad_input).await?;
            if rules.schema().fields().len() != 3 {
                return Err(bad_input(format!(
                    "the rules query must return the columns {RULE_COLUMNS}, found {} column(s)",
                    rules.schema().fields().len()
                )));
            }
            inputs.push(state.create_physical_plan(&rules).await?);
        }
        let (projected, properties) = output_properties(&self.job.schema(), projection)?;
        Ok(Arc::new(IdentityExec {
            job: self.job.clone(),
            inputs,
            projection: projection.cloned(),
            projected,
            properties,
        }))
    }
}

fn check_edge_columns(schema: &Schema) -> Result<()> {
    let fields = schema.fields();
    if !(4..=6).contains(&fields.len()) {
        return Err(bad_input(format!(
            "the edges query must return the columns {EDGE_COLUMNS}, found {} column(s)",
            fields.len()
        )));
    }
    let wrong = |position: usize, role: &str, expected: &str| {
        bad_input(format!(
            "column {} ({role}) of the edges query must be {expected}, found {}",
            position + 1,
            fields[position].data_type()
        ))
    };
    for (position, role) in [(0, "id_a"), (1, "type_a"), (2, "id_b"), (3, "type_b")] {
        let data_type = fields[position].data_type();
        // A NULL column (`SELECT phone, 'phone', NULL, ...`) is rows with a missing side.
        if !(is_text(data_type) || data_type.is_integer() || data_type == &DataType::Null) {
            return Err(wrong(position, role, "a text or an integer"));
        }
    }
    if let Some(field) = fields.get(4) {
        let time = field.data_type();
        if !(matches!(
            time,
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 | DataType::Null
        ) || time.is_numeric())
        {
            return Err(wrong(
                4,
                "observed_at",
                "a timestamp, a date or a number of seconds",
            ));
        }
    }
    if let Some(field) = fields.get(5)
        && !(is_text(field.data_type()) || field.data_type() == &DataType::Null)
    {
        return Err(wrong(5, "source", "a text"));
    }
    Ok(())
}

fn text_column(array: &ArrayRef) -> Result<StringArray> {
    Ok(cast(array, &DataType::Utf8)?.as_string::<i32>().clone())
}

/// Times as microseconds since the epoch: timestamps and dates as they are, numbers as
/// seconds.
fn micros(array: &ArrayRef) -> Result<Int64Array> {
    let as_micros = match array.data_type() {
        DataType::Timestamp(_, zone) => Some(cast(
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
        )?),
        DataType::Date32 | DataType::Date64 | DataType::Null => Some(cast(
            array,
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )?),
        _ => None,
    };
    Ok(match as_micros {
        Some(m) => m
            .as_primitive::<TimestampMicrosecondType>()
            .reinterpret_cast(),
        None => {
            let seconds = cast(array, &DataType::Float64)?;
            seconds
                .as_primitive::<Float64Type>()
                .unary_opt(|s| (s.is_finite()).then(|| (s * 1e6).round() as i64))
        }
    })
}

/// A batch of the edges query as the domain's edge batch; text columns are shared, not
/// copied.
fn edge_batch(batch: &RecordBatch) -> Result<EdgeBatch> {
    let columns = batch.columns();
    let observed_at = columns.get(4).map(micros).transpose()?;
    EdgeBatch::from_arrays(
        [&columns[0], &columns[1], &columns[2], &columns[3]],
        observed_at,
        columns.get(5),
    )
    .map_err(error)
}

/// The rules query's rows as rules.
fn rules(batches: &[RecordBatch]) -> Result<Rules> {
    let mut columns = Vec::with_capacity(batches.len());
    for batch in batches {
        let column = |i: usize| text_column(batch.column(i));
        columns.push([column(0)?, column(1)?, column(2)?]);
    }
    let rows = columns.iter().flat_map(|[rule, id_type, value]| {
        fn text(a: &StringArray, i: usize) -> Option<&str> {
            a.is_valid(i).then(|| a.value(i))
        }
        (0..rule.len()).map(move |i| (text(rule, i), text(id_type, i), text(value, i)))
    });
    Rules::from_rows(rows).map_err(error)
}

/// Runs the queries, then the job.
pub(super) struct IdentityExec<J> {
    job: Arc<J>,
    /// The edges plan, then the rules plan if any.
    inputs: Vec<Arc<dyn ExecutionPlan>>,
    projection: Option<Vec<usize>>,
    projected: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl<J: IdentityJob> fmt::Debug for IdentityExec<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityExec({})", self.job.name())
    }
}

impl<J: IdentityJob> DisplayAs for IdentityExec<J> {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "IdentityExec: {}", self.job.name())
    }
}

impl<J: IdentityJob> ExecutionPlan for IdentityExec<J> {
    fn name(&self) -> &str {
        "IdentityExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.inputs.iter().collect()
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false; self.inputs.len()]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != self.inputs.len() {
            return Err(DataFusionError::Internal(format!(
                "IdentityExec has {} children, given {}",
                self.inputs.len(),
                children.len()
            )));
        }
        Ok(Arc::new(IdentityExec {
            job: self.job.clone(),
            inputs: children,
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
                "IdentityExec has one partition, asked for {partition}"
            )));
        }
        let inputs = self.inputs.clone();
        let job = self.job.clone();
        let projection = self.projection.clone();
        let batch_size = context.session_config().batch_size().max(1);
        // Parquet metadata knows the row count: the resolution is sized for it up front.
        let expected = StatisticsContext::new()
            .compute(self.inputs[0].as_ref(), &StatisticsArgs::new())
            .ok()
            .and_then(|s| s.num_rows.get_value().copied())
            .unwrap_or(0);
        let stream = futures::stream::once(async move {
            let rules = match inputs.get(1) {
                Some(plan) => rules(
                    &datafusion::physical_plan::collect(plan.clone(), context.clone()).await?,
                )?,
                None => Rules::default(),
            };
            let mut edges = execute_stream(inputs[0].clone(), context)?;
            // The job takes the batches on a blocking thread while this task reads the
            // next ones; a few in flight keep both busy without buffering the input.
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<Result<EdgeBatch>>(4);
            let input = EdgeInput {
                batches: Box::new(std::iter::from_fn(move || receiver.blocking_recv())),
                expected,
            };
            let name = job.name();
            let worker = tokio::task::spawn_blocking(move || {
                job.run_projected(input, rules, projection.as_deref())
            });
            while let Some(batch) = edges.next().await {
                let batch = batch.and_then(|b| edge_batch(&b));
                let failed = batch.is_err();
                // A closed channel means the job has stopped (with an error it returns).
                if sender.send(batch).await.is_err() || failed {
                    break;
                }
            }
            drop(sender);
            let batch = worker
                .await
                .map_err(|e| DataFusionError::Execution(format!("{name}: {e}")))??;
            // Slices share the output's arrays: downstream operators get batches of the
            // usual size.
            let slices: Vec<Result<RecordBatch>> = (0..batch.num_rows())
                .step_by(batch_size)
                .map(|start| Ok(batch.slice(start, batch_size.min(batch.num_rows() - start))))
                .collect();
            Ok::<_, DataFusionError>(futures::stream::iter(slices))
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.projected.clone(),
            stream,
        )))
    }
}

/// Microseconds as an output time: unknown (`i64::MIN`) is NULL.
pub(super) fn time_or_null(micros: i64) -> Option<i64> {
    (micros != i64::MIN && micros != i64::MAX).then_some(micros)
}

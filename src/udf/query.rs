//! Table functions that take a query as a text argument (`attribution`,
//! `resolve_identities`, ...): reading their constant arguments and planning the query
//! as the engine plans a client's.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionState;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::PlanProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, execute_stream};
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

/// The value of a constant argument; `bad` makes the function's own input error.
pub(crate) fn constant(
    expr: &Expr,
    what: &str,
    bad: impl Fn(String) -> DataFusionError,
) -> Result<ScalarValue> {
    match expr {
        Expr::Literal(value, _) => Ok(value.clone()),
        Expr::Placeholder(p) => Err(bad(format!(
            "the {what} must be a constant: a bound parameter ({}) is not known when the \
             statement is planned",
            p.id
        ))),
        other => Err(bad(format!("the {what} must be a constant, found {other}"))),
    }
}

/// The text of a constant text argument.
pub(crate) fn constant_text(
    expr: &Expr,
    what: &str,
    bad: impl Fn(String) -> DataFusionError,
) -> Result<String> {
    match constant(expr, what, &bad)? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Ok(s),
        other => Err(bad(format!(
            "the {what} must be a text, found {other} of type {}",
            other.data_type()
        ))),
    }
}

/// Plans `sql`, the query argument of `function`, as the engine plans a client's query:
/// one query statement, with the PostgreSQL rewrites, and no function that changes state.
/// DataFusion's errors keep their SQLSTATE and say whose query they are about.
pub(crate) async fn plan_query(
    state: &SessionState,
    sql: &str,
    function: &str,
    returning: &str,
    bad: impl Fn(String) -> DataFusionError,
) -> Result<LogicalPlan> {
    let in_query = |e: DataFusionError| e.context(format!("{function}: the query"));
    let dialect = state.config().options().sql_parser.dialect;
    let mut statement = state.sql_to_statement(sql, &dialect).map_err(in_query)?;
    match &mut statement {
        DFStatement::Statement(s) if matches!(**s, ast::Statement::Query(_)) => {
            crate::rewrite::rewrite(s)
        }
        _ => {
            return Err(bad(format!(
                "the query must be one SELECT, WITH or VALUES query returning {returning}"
            )));
        }
    }
    let plan = state.statement_to_plan(statement).await.map_err(in_query)?;
    let plan = crate::rewrite::scalar_subquery::rewrite(plan).map_err(in_query)?;
    if let Some(function) = crate::session::writing_function(&plan) {
        return Err(bad(format!(
            "the query may not call {function}(), which changes state"
        )));
    }
    Ok(plan)
}

/// The session state of a table function's scan.
pub(crate) fn session_state<'a>(
    session: &'a dyn datafusion::catalog::Session,
    function: &str,
) -> Result<&'a SessionState> {
    session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| {
            DataFusionError::NotImplemented(format!(
                "{function} needs a DataFusion SessionState to plan its query"
            ))
        })
}

/// The projected schema and plan properties of a table function's execution node: one
/// partition, emitted whole once its query has run.
pub(crate) fn output_properties(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> Result<(SchemaRef, Arc<PlanProperties>)> {
    let projected = match projection {
        Some(columns) => Arc::new(schema.project(columns)?),
        None => schema.clone(),
    };
    let properties = PlanProperties::new(
        EquivalenceProperties::new(projected.clone()),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    );
    Ok((projected, Arc::new(properties)))
}

pub(crate) use crate::ml::runtime::is_text;

/// Plans a table function's query argument while the function is being called: planning
/// is async and `call_with_args` is not, so it runs on a scoped thread of its own (a
/// nested call gets another), driven by the runtime when there is one.
pub(crate) fn plan_query_now(
    session: &dyn datafusion::catalog::Session,
    sql: &str,
    function: &str,
    returning: &str,
    bad: impl Fn(String) -> DataFusionError + Sync,
) -> Result<LogicalPlan> {
    let state = session_state(session, function)?;
    let planning = plan_query(state, sql, function, returning, &bad);
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::scope(|scope| {
        scope
            .spawn(|| match runtime {
                Some(runtime) => runtime.block_on(planning),
                None => futures::executor::block_on(planning),
            })
            .join()
    })
    .map_err(|_| DataFusionError::Internal(format!("{function}: planning the query panicked")))?
}

/// What a query function does with its query's rows: a stream of output batches (in
/// the function's full output schema) from the stream of input batches.
pub(crate) type QueryFunctionBody = Arc<
    dyn Fn(
            SendableRecordBatchStream,
            Arc<TaskContext>,
        ) -> Result<BoxStream<'static, Result<RecordBatch>>>
        + Send
        + Sync,
>;

/// The execution node of a table function over a query: runs the query (its only
/// child), hands the rows to the function's body and projects what comes out.
///
/// By default the query is a child like any other: the engine's optimizer may spread it
/// over every core, and its rows arrive in whatever order its partitions produce them.
/// A function whose result depends on the order of its rows (training: the validation
/// split, the batches, the order of floating-point sums) asks for
/// [`in_query_order`](Self::in_query_order) instead: the query keeps the plan it was
/// given (the optimizer does not see it, so it cannot drop the query's `ORDER BY` or
/// interleave its partitions) and its partitions are read one after the other.
pub(crate) struct QueryFunctionExec {
    name: &'static str,
    input: Arc<dyn ExecutionPlan>,
    in_query_order: bool,
    body: QueryFunctionBody,
    projection: Option<Vec<usize>>,
    projected: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl QueryFunctionExec {
    pub(crate) fn new(
        name: &'static str,
        input: Arc<dyn ExecutionPlan>,
        output: &SchemaRef,
        projection: Option<&Vec<usize>>,
        body: QueryFunctionBody,
    ) -> Result<Self> {
        let (projected, properties) = output_properties(output, projection)?;
        Ok(QueryFunctionExec {
            name,
            input,
            in_query_order: false,
            body,
            projection: projection.cloned(),
            projected,
            properties,
        })
    }

    /// Hands the body the query's rows in the order the query's own plan gives them, on
    /// every run: see the type's docs.
    pub(crate) fn in_query_order(mut self) -> Self {
        self.in_query_order = true;
        self
    }
}

/// Every partition of `plan`, one after the other.
fn partitions_in_order(
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
) -> SendableRecordBatchStream {
    let schema = plan.schema();
    let partitions = plan.properties().partitioning.partition_count();
    let rows = futures::stream::iter(0..partitions)
        .map(move |partition| plan.execute(partition, context.clone()))
        .try_flatten();
    Box::pin(RecordBatchStreamAdapter::new(schema, rows))
}

impl std::fmt::Debug for QueryFunctionExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}Exec", self.name)
    }
}

impl DisplayAs for QueryFunctionExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{}Exec", self.name)?;
        if self.in_query_order {
            write!(f, ": in query order, input={}", self.input.name())?;
        }
        Ok(())
    }
}

impl ExecutionPlan for QueryFunctionExec {
    fn name(&self) -> &str {
        self.name
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        if self.in_query_order {
            return vec![];
        }
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.in_query_order {
            return Ok(self);
        }
        Ok(Arc::new(QueryFunctionExec {
            name: self.name,
            in_query_order: false,
            input: children.into_iter().next().ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(
                    "QueryFunctionExec has one child, given none".into(),
                )
            })?,
            body: self.body.clone(),
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
                "{} has one partition",
                self.name
            )));
        }
        let input = if self.in_query_order {
            partitions_in_order(self.input.clone(), context.clone())
        } else {
            execute_stream(self.input.clone(), context.clone())?
        };
        let output = (self.body)(input, context)?;
        let projection = self.projection.clone();
        let projected = output.map(move |batch| match (&projection, batch) {
            (Some(p), Ok(b)) => Ok(b.project(p)?),
            (_, other) => other,
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.projected.clone(),
            projected,
        )))
    }
}

/// A cancel flag raised when dropped: a query function that computes on a blocking thread
/// holds one while it waits, so dropping the query (a cancel, a timeout, a closed
/// connection) stops the computation at its next check.
#[derive(Default)]
pub(crate) struct CancelOnDrop(pub(crate) std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

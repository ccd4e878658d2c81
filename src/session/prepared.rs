//! Prepared queries whose physical plan is reused across executions.
//!
//! A prepared query is normally planned again at every execution with its parameters in
//! place of `$n`, so that a filter on a parameter reaches the scan and prunes files.
//! Over tables served from the [table cache](crate::catalog::TableCache) there is
//! nothing to prune, and planning is most of the cost of a point lookup; there the
//! statement keeps one *generic* physical plan in which each `$n` is a function that
//! reads the value bound for the current execution (PostgreSQL's generic plans).
//!
//! A statement that is nothing but one call of a function with a direct form, such as
//! `SELECT reserve_coupon($1::text, $2::text, $3::text)` (the hot path of a flash sale
//! over the wire), has no plan at all: each execution awaits the function's direct call
//! with the bound values.
//!
//! Invariants:
//! - a generic plan is used only under the data generation of the engine and the plan
//!   epoch of the session it was made under: any commit, DDL or session statement
//!   (`SET` ...) makes the next execution plan again;
//! - a plan becomes generic only if it is a query, every leaf reads cached batches, a
//!   computed table (rows computed at each execution) or no table, and no function in it
//!   is stable: the planner folds stable functions into constants (`now()` would be
//!   frozen), while volatile ones (`random()`, `reserve_coupon`) are never folded and
//!   run at every execution; a generic plan returns what a fresh plan would;
//! - one execution at a time uses a generic plan (its parameter values are set before
//!   it runs and read while it streams); another execution meanwhile plans afresh;
//! - a direct call returns the row, the column name and type and the errors the planned
//!   statement would; the read-only check of the session comes first, as for a plan.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::datasource::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::expr::{Cast, Placeholder};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::{
    ColumnarValue, EmptyRelation, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::placeholder_row::PlaceholderRowExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use futures::StreamExt;

use crate::catalog::ComputedExec;
use crate::udf::DirectCall;

/// What a generic plan was made under; it is valid while both are unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PlanKey {
    pub data_generation: u64,
    pub session_epoch: u64,
}

/// A statement planned once, executed many times with parameters
/// ([`Session::prepare`](super::Session::prepare)).
#[derive(Debug)]
pub struct PreparedQuery {
    text: String,
    plan: LogicalPlan,
    /// The type of `$1`, `$2`... (`None` where the planner could not infer one), worked
    /// out once rather than at every execution.
    parameter_types: Vec<Option<DataType>>,
    generic: Mutex<Generic>,
    direct: Option<DirectStatement>,
    /// Whether running it changes durable state (see [`super::changes_state`]).
    changes_state: bool,
}

/// A statement that is one call of a function with a direct form
/// ([`crate::udf::direct_call`]) on literals and parameters, such as `SELECT
/// reserve_coupon('spring', $1::text, $2::text)`: it runs without a plan, and the call
/// awaits its commit instead of holding a runtime thread.
pub(crate) struct DirectStatement {
    call: DirectCall,
    args: Vec<DirectArg>,
    /// The statement's result: one column, as planned.
    schema: SchemaRef,
}

#[derive(Debug)]
enum DirectArg {
    Value(ScalarValue),
    /// `$n`, cast to the type when written `$n::type`.
    Param {
        index: usize,
        cast: Option<DataType>,
    },
}

impl std::fmt::Debug for DirectStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectStatement")
            .field("args", &self.args)
            .field("schema", &self.schema)
            .finish()
    }
}

#[derive(Debug)]
enum Generic {
    Untried,
    /// This plan cannot be generic under `key` (a scan of files, a stable function...).
    Unsuitable(PlanKey),
    Ready(Arc<GenericPlan>),
}

#[derive(Debug)]
pub(crate) struct GenericPlan {
    key: PlanKey,
    physical: Arc<dyn ExecutionPlan>,
    params: Arc<ParamSlot>,
    task_ctx: Arc<TaskContext>,
    busy: Arc<AtomicBool>,
}

impl PreparedQuery {
    /// Wraps the logical plan of the statement `text` (`$n` placeholders in it).
    pub(crate) fn new(plan: LogicalPlan, text: String) -> DFResult<Self> {
        let plan = typed_by_casts(plan)?;
        let mut parameter_types: Vec<Option<DataType>> = Vec::new();
        for (id, data_type) in plan.get_parameter_types()? {
            if let Some(i) = placeholder_index(&id) {
                if parameter_types.len() <= i {
                    parameter_types.resize(i + 1, None);
                }
                parameter_types[i] = data_type;
            } else if is_numbered(&id) {
                // `$4000000000` would otherwise size the list of types (and of values).
                return Err(DataFusionError::Plan(format!(
                    "there is no parameter {id}: a statement has at most {MAX_PARAMETERS}"
                )));
            }
        }
        Ok(PreparedQuery {
            text,
            changes_state: super::changes_state(&plan),
            direct: DirectStatement::of(&plan),
            plan,
            parameter_types,
            generic: Mutex::new(Generic::Untried),
        })
    }

    /// Whether running it changes durable state: a write, DDL, or a function such as
    /// `reserve_coupon`.
    pub fn changes_state(&self) -> bool {
        self.changes_state
    }

    /// Whether executions run the statement's one function call directly, without a plan
    /// (see [`crate::udf::direct_call`]).
    pub fn runs_directly(&self) -> bool {
        self.direct.is_some()
    }

    pub(crate) fn direct(&self) -> Option<&DirectStatement> {
        self.direct.as_ref()
    }

    /// The type of each positional parameter, `$1` first.
    pub fn parameter_types(&self) -> &[Option<DataType>] {
        &self.parameter_types
    }

    /// The logical plan with its placeholders.
    pub fn plan(&self) -> &LogicalPlan {
        &self.plan
    }

    /// The statement's SQL.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the last execution could use a generic plan (kept for the next one).
    pub fn has_generic_plan(&self) -> bool {
        matches!(
            *self.generic.lock().expect(crate::LOCK_POISONED),
            Generic::Ready(_)
        )
    }

    /// The generic plan valid under `key`, claimed for one execution, if there is one.
    pub(crate) fn claim(&self, key: PlanKey) -> Option<Arc<GenericPlan>> {
        let generic = self.generic.lock().expect(crate::LOCK_POISONED);
        match &*generic {
            Generic::Ready(plan)
                if plan.key == key
                    && plan
                        .busy
                        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok() =>
            {
                Some(plan.clone())
            }
            _ => None,
        }
    }

    /// Whether a generic plan should be attempted under `key`.
    pub(crate) fn worth_trying(&self, key: PlanKey) -> bool {
        match &*self.generic.lock().expect(crate::LOCK_POISONED) {
            Generic::Untried => true,
            Generic::Unsuitable(tried) => *tried != key,
            Generic::Ready(plan) => plan.key != key,
        }
    }

    pub(crate) fn set_unsuitable(&self, key: PlanKey) {
        *self.generic.lock().expect(crate::LOCK_POISONED) = Generic::Unsuitable(key);
    }

    /// Keeps `plan` as this statement's generic plan, claimed for the caller.
    pub(crate) fn set_ready(&self, plan: GenericPlan) -> Arc<GenericPlan> {
        plan.busy.store(true, Ordering::Release);
        let plan = Arc::new(plan);
        *self.generic.lock().expect(crate::LOCK_POISONED) = Generic::Ready(plan.clone());
        plan
    }

    /// The plan with each `$n` replaced by a function reading slot `n` of the returned
    /// parameter slot; `None` when the plan cannot be generic (a non-query, a parameter
    /// of unknown type, a stable function).
    pub(crate) fn generic_logical(&self) -> Option<(LogicalPlan, Arc<ParamSlot>)> {
        if !is_cacheable_query(&self.plan) {
            return None;
        }
        let slot = Arc::new(ParamSlot::default());
        let plan = self
            .plan
            .clone()
            .transform_up_with_subqueries(|node| {
                let schema = node.schema().clone();
                let names = NamePreserver::new(&node);
                node.map_expressions(|e| {
                    let (e, has_placeholder) = e.infer_placeholder_types(&schema)?;
                    if !has_placeholder {
                        return Ok(Transformed::no(e));
                    }
                    let name = names.save(&e);
                    let e = e.transform_up(|e| match e {
                        Expr::Placeholder(placeholder) => {
                            let udf = ParamRef::try_new(&placeholder, slot.clone())?;
                            Ok(Transformed::yes(ScalarUDF::from(udf).call(vec![])))
                        }
                        other => Ok(Transformed::no(other)),
                    })?;
                    Ok(e.update_data(|e| name.restore(e)))
                })?
                .map_data(|node| node.recompute_schema())
            })
            .ok()?
            .data;
        Some((plan, slot))
    }
}

impl DirectStatement {
    /// The direct form of `plan` when it is `SELECT f(args)` with no `FROM`, `f` has a
    /// direct form, and every argument is a literal, `$n` or `$n::type`.
    fn of(plan: &LogicalPlan) -> Option<DirectStatement> {
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let LogicalPlan::EmptyRelation(EmptyRelation {
            produce_one_row: true,
            ..
        }) = projection.input.as_ref()
        else {
            return None;
        };
        let [expr] = projection.expr.as_slice() else {
            return None;
        };
        let Expr::ScalarFunction(function) = expr.clone().unalias() else {
            return None;
        };
        let call = crate::udf::direct_call(&function.func)?;
        let args = function
            .args
            .iter()
            .map(|arg| match arg {
                Expr::Literal(value, _) => Some(DirectArg::Value(value.clone())),
                Expr::Placeholder(placeholder) => Some(DirectArg::Param {
                    index: placeholder_index(&placeholder.id)?,
                    cast: None,
                }),
                Expr::Cast(Cast { expr, field }) => match expr.as_ref() {
                    Expr::Placeholder(placeholder) => Some(DirectArg::Param {
                        index: placeholder_index(&placeholder.id)?,
                        cast: Some(field.data_type().clone()),
                    }),
                    Expr::Literal(value, _) => {
                        Some(DirectArg::Value(value.cast_to(field.data_type()).ok()?))
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(DirectStatement {
            call,
            args,
            schema: Arc::new(plan.schema().as_arrow().clone()),
        })
    }

    /// Runs the call with `params` bound to its `$n`: one row, as the planned statement
    /// returns it.
    pub(crate) async fn execute(
        &self,
        params: &ParamValues,
    ) -> DFResult<SendableRecordBatchStream> {
        let mut args = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            args.push(match arg {
                DirectArg::Value(value) => value.clone(),
                DirectArg::Param { index, cast } => bound_value(params, *index, cast.as_ref())?,
            });
        }
        let value = (self.call)(args).await?;
        let field = self.schema.field(0);
        let mut column = value.to_array()?;
        if column.data_type() != field.data_type() {
            column = cast(&column, field.data_type())?;
        }
        let batch = RecordBatch::try_new(self.schema.clone(), vec![column])?;
        Ok(Box::pin(MemoryStream::try_new(
            vec![batch],
            self.schema.clone(),
            None,
        )?))
    }
}

/// `plan` with each untyped `$n` written as `$n::type` typed `type`, as in PostgreSQL:
/// DataFusion infers a parameter's type from a comparison with a column, not from a
/// cast, and a statement such as `SELECT reserve_coupon($1::text, ...)` would otherwise
/// describe its parameters as unknown and could not keep a generic plan. Where that
/// conflicts with a type inferred elsewhere (`$1::text` and `$1 = id`), `plan` is
/// returned as it was and the conflict is left to the planner's own inference.
fn typed_by_casts(plan: LogicalPlan) -> DFResult<LogicalPlan> {
    let typed = plan
        .clone()
        .transform_up_with_subqueries(|node| {
            node.map_expressions(|e| {
                e.transform_up(|e| match e {
                    Expr::Cast(Cast { expr, field }) => match *expr {
                        Expr::Placeholder(Placeholder { id, field: None }) => {
                            let typed = Field::new("", field.data_type().clone(), true);
                            Ok(Transformed::yes(Expr::Cast(Cast {
                                expr: Box::new(Expr::Placeholder(Placeholder {
                                    id,
                                    field: Some(Arc::new(typed)),
                                })),
                                field,
                            })))
                        }
                        expr => Ok(Transformed::no(Expr::Cast(Cast {
                            expr: Box::new(expr),
                            field,
                        }))),
                    },
                    other => Ok(Transformed::no(other)),
                })
            })
        })?
        .data;
    Ok(match typed.get_parameter_types() {
        Ok(_) => typed,
        Err(_) => plan,
    })
}

/// Queries only (no writes, DDL or session statements), and no stable function: the
/// planner would fold it into the value it has at planning time.
fn is_cacheable_query(plan: &LogicalPlan) -> bool {
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        if matches!(
            node,
            LogicalPlan::Dml(_)
                | LogicalPlan::Ddl(_)
                | LogicalPlan::Copy(_)
                | LogicalPlan::Statement(_)
                | LogicalPlan::Explain(_)
                | LogicalPlan::Analyze(_)
                | LogicalPlan::DescribeTable(_)
                | LogicalPlan::Extension(_)
                | LogicalPlan::RecursiveQuery(_)
        ) {
            ok = false;
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility == Volatility::Stable
                {
                    ok = false;
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    ok
}

/// The rows `plan` reads when every leaf reads batches already in memory, a computed
/// table (counted as none: its rows are not known before it runs) or no table; `None`
/// when some leaf reads files.
pub(crate) fn rows_in_memory(plan: &Arc<dyn ExecutionPlan>) -> Option<usize> {
    let children = plan.children();
    if children.is_empty() {
        if plan.is::<PlaceholderRowExec>() || plan.is::<EmptyExec>() || plan.is::<ComputedExec>() {
            return Some(0);
        }
        let exec = plan.downcast_ref::<DataSourceExec>()?;
        let source = exec.data_source().downcast_ref::<MemorySourceConfig>()?;
        return Some(
            source
                .partitions()
                .iter()
                .flatten()
                .map(|b| b.num_rows())
                .sum(),
        );
    }
    children
        .into_iter()
        .map(rows_in_memory)
        .try_fold(0, |sum, rows| Some(sum + rows?))
}

impl GenericPlan {
    pub(crate) fn new(
        key: PlanKey,
        physical: Arc<dyn ExecutionPlan>,
        params: Arc<ParamSlot>,
        task_ctx: Arc<TaskContext>,
    ) -> Self {
        GenericPlan {
            key,
            physical,
            params,
            task_ctx,
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Runs the plan with `values` for its parameters. The plan stays claimed until the
    /// returned stream is dropped.
    pub(crate) fn execute(&self, values: &ParamValues) -> DFResult<SendableRecordBatchStream> {
        let release = Release(self.busy.clone());
        self.params.set(values)?;
        let plan = reset_plan_states(self.physical.clone())?;
        let stream = execute_stream(plan.clone(), self.task_ctx.clone())?;
        let stream = crate::metrics::count_rows_scanned(plan, stream);
        let schema = stream.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.map(move |batch| {
                let _claimed = &release;
                batch
            }),
        )))
    }
}

/// Gives a generic plan back when its execution ends (or fails to start).
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The values bound for the current execution of a generic plan.
#[derive(Debug, Default)]
pub(crate) struct ParamSlot {
    values: RwLock<Vec<Option<ScalarValue>>>,
    types: RwLock<Vec<Option<DataType>>>,
}

impl ParamSlot {
    fn declare(&self, index: usize, data_type: &DataType) {
        let mut types = self.types.write().expect(crate::LOCK_POISONED);
        if types.len() <= index {
            types.resize(index + 1, None);
        }
        types[index] = Some(data_type.clone());
    }

    fn set(&self, values: &ParamValues) -> DFResult<()> {
        let types = self.types.read().expect(crate::LOCK_POISONED);
        let mut bound = Vec::with_capacity(types.len());
        for (index, data_type) in types.iter().enumerate() {
            bound.push(match data_type {
                Some(data_type) => Some(bound_value(values, index, Some(data_type))?),
                None => None,
            });
        }
        *self.values.write().expect(crate::LOCK_POISONED) = bound;
        Ok(())
    }

    fn get(&self, index: usize) -> DFResult<ScalarValue> {
        self.values
            .read()
            .expect(crate::LOCK_POISONED)
            .get(index)
            .cloned()
            .flatten()
            .ok_or_else(|| DataFusionError::Internal(format!("parameter ${} unbound", index + 1)))
    }
}

/// The value bound to `$index+1` in `values`, cast to `data_type` when given.
fn bound_value(
    values: &ParamValues,
    index: usize,
    data_type: Option<&DataType>,
) -> DFResult<ScalarValue> {
    let ParamValues::List(list) = values else {
        return Err(DataFusionError::Internal(
            "named parameters in a prepared statement".into(),
        ));
    };
    let value = &list
        .get(index)
        .ok_or_else(|| DataFusionError::Plan(format!("no value for placeholder ${}", index + 1)))?
        .value;
    Ok(match data_type {
        Some(data_type) if value.data_type() != *data_type => value.cast_to(data_type)?,
        _ => value.clone(),
    })
}

/// `$n` in a generic plan: the value bound for the current execution.
#[derive(Debug)]
struct ParamRef {
    name: String,
    index: usize,
    data_type: DataType,
    slot: Arc<ParamSlot>,
    signature: Signature,
}

/// The most parameters a statement may have: the wire protocol counts them in 16 bits.
const MAX_PARAMETERS: usize = u16::MAX as usize;

/// The 0-based position of placeholder `$n`; `None` for named ones (`$name`) and for
/// `n` beyond [`MAX_PARAMETERS`].
fn placeholder_index(id: &str) -> Option<usize> {
    id.strip_prefix('$')?
        .parse::<usize>()
        .ok()?
        .checked_sub(1)
        .filter(|&i| i < MAX_PARAMETERS)
}

/// Whether `id` is a numbered placeholder (`$` and digits), in range or not.
fn is_numbered(id: &str) -> bool {
    id.strip_prefix('$')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

impl ParamRef {
    fn try_new(placeholder: &Placeholder, slot: Arc<ParamSlot>) -> DFResult<Self> {
        let index = placeholder_index(&placeholder.id)
            .ok_or_else(|| DataFusionError::Plan(format!("placeholder {}", placeholder.id)))?;
        let data_type = placeholder
            .field
            .as_ref()
            .map(|f| f.data_type().clone())
            .ok_or_else(|| {
                DataFusionError::Plan(format!("placeholder {} has no type", placeholder.id))
            })?;
        slot.declare(index, &data_type);
        Ok(ParamRef {
            name: format!("martdb_param_{}", index + 1),
            index,
            data_type,
            slot,
            // Volatile: never folded into a constant while planning.
            signature: Signature::nullary(Volatility::Volatile),
        })
    }
}

impl PartialEq for ParamRef {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && Arc::ptr_eq(&self.slot, &other.slot)
    }
}

impl Eq for ParamRef {}

impl Hash for ParamRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.index.hash(state);
        Arc::as_ptr(&self.slot).hash(state);
    }
}

impl ScalarUDFImpl for ParamRef {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DFResult<DataType> {
        Ok(self.data_type.clone())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DFResult<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.slot.get(self.index)?))
    }
}

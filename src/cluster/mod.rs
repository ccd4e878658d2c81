//! Scale-out: the same SQL on an Apache DataFusion Ballista cluster.
//!
//! One process stays martdb's default and fast path. With a cluster
//! ([`Cluster::connect`], `martdb serve --ballista df://host:port`), the coordinator (the
//! engine a client talks to: pgwire, catalog, sessions, auth) sends the queries that can
//! run elsewhere to a Ballista scheduler, which plans them and spreads their stages over
//! the executors (`martdb scheduler`, `martdb executor`).
//!
//! Invariants:
//! - **Only reads ship, and only whole queries.** A plan goes to the cluster when every
//!   node is a read (projection, filter, aggregate, join, sort, window, union, limit,
//!   values, subquery), it scans at least one table and every table it scans is a managed
//!   table, and every function it calls is a DataFusion built-in or one of martdb's
//!   stateless functions ([`functions`]). The query of a write (`CREATE TABLE … AS`,
//!   `INSERT … SELECT`) ships by the same rule, and the coordinator commits its rows.
//!   Anything else runs on the coordinator, whole: writes and DDL, system tables, table
//!   functions (`forecast`, `attribution`, ...) and every function over state the
//!   coordinator keeps (coupon reservation, `dense_id`, identity, `model_deploy`,
//!   `hash_id`'s keys). So a function that changes durable state never runs on an
//!   executor, and a query never fails for being sent.
//! - **Model scoring ships frozen.** A call of `uplift_score`, and an `uplift_predict`
//!   whose query can ship, read the registry only on the coordinator: the version the
//!   call would score with is copied into the plan ([`FrozenUpliftScore`]: its metadata
//!   and weights), and the [`codec`] carries it to the scheduler and the executors,
//!   which score without a registry. A call the coordinator cannot freeze (an unknown
//!   model, features that do not fit) runs there and fails with its own error.
//! - **A managed table ships as the files of the version the coordinator sees.** Its scan
//!   becomes a listing of that Delta version's Parquet files, so the scheduler and the
//!   executors read exactly that snapshot (never a later commit, never the Delta log),
//!   and they must see the files at the same paths: one machine, a shared mount, or an
//!   object store.
//! - **Errors keep their SQLSTATE.** Executors append the code of a failed task's error
//!   to its message ([`errors`]), since Ballista carries only the text.
//! - **The same functions everywhere.** The coordinator's client, the scheduler and every
//!   executor register [`functions`] and use the same [`codec`]s; plans name the
//!   functions and each side resolves the name, except frozen ones, which carry their
//!   state.

mod codec;
pub(crate) mod errors;

use std::cell::Cell;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::{
    ballista_aggregate_functions, ballista_scalar_functions, ballista_window_functions,
};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::datasource::{empty::EmptyTable, listing::ListingTableUrl};
use datafusion::datasource::{file_format::parquet::ParquetFormat, provider_as_source};
use datafusion::error::Result as DFResult;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::TaskContext;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::expr::{ScalarFunction, WindowFunctionDefinition};
use datafusion::logical_expr::{
    AggregateUDF, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF, TableScan, WindowUDF,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::TryStreamExt;

use crate::catalog::ManagedTable;
use crate::udf::ml::{FrozenUpliftScore, frozen_uplift_predict};
use codec::{LogicalCodec, PhysicalCodec};

/// What can go wrong reaching or running a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The scheduler's address is not a `df://host:port` URL.
    #[error("bad Ballista scheduler address '{url}': {message} (expected df://host:port)")]
    BadAddress { url: String, message: String },
    /// Nothing answered at the scheduler's address.
    #[error("cannot reach the Ballista scheduler at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The scheduler or an executor stopped with an error.
    #[error("{role} stopped: {message}")]
    Stopped { role: &'static str, message: String },
}

/// The functions a shipped plan may call, by kind.
#[derive(Clone)]
pub struct Functions {
    pub scalar: Vec<Arc<ScalarUDF>>,
    pub aggregate: Vec<Arc<AggregateUDF>>,
    pub window: Vec<Arc<WindowUDF>>,
}

/// DataFusion's built-in functions (as Ballista registers them) and martdb's stateless
/// scalar, aggregate and window functions (those [`crate::udf::register_all`] registers,
/// less its table functions, which run on the coordinator): what the coordinator's
/// client, the scheduler and the executors all know. Built once per process (the
/// scheduler makes a session, with these, for every query).
pub fn functions() -> Functions {
    static ALL: OnceLock<Functions> = OnceLock::new();
    ALL.get_or_init(build_functions).clone()
}

fn build_functions() -> Functions {
    let mut scalar = ballista_scalar_functions();
    scalar.extend(crate::udf::scalar_functions().into_iter().map(Arc::new));
    let mut aggregate = ballista_aggregate_functions();
    aggregate.extend(crate::udf::aggregate_functions().into_iter().map(Arc::new));
    let mut window = ballista_window_functions();
    window.extend(crate::udf::window_functions().into_iter().map(Arc::new));
    Functions {
        scalar,
        aggregate,
        window,
    }
}

/// The session every scheduler-side plan is made in: `config` as the client sent it,
/// with [`functions`].
fn cluster_state(config: SessionConfig) -> DFResult<SessionState> {
    let Functions {
        scalar,
        aggregate,
        window,
    } = functions();
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(Arc::new(RuntimeEnvBuilder::new().build()?))
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(scalar)
        .with_aggregate_functions(aggregate)
        .with_window_functions(window)
        .build())
}

/// A connection to a Ballista scheduler: sends the queries that can run there.
pub struct Cluster {
    url: String,
    context: SessionContext,
    /// Names of the functions a shipped plan may call.
    shippable: HashSet<String>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").field("url", &self.url).finish()
    }
}

impl Cluster {
    /// Connects to the scheduler at `url` (`df://host:port`), checking that it answers.
    pub async fn connect(url: &str) -> Result<Cluster, ClusterError> {
        let parsed = url::Url::parse(url).map_err(|e| ClusterError::BadAddress {
            url: url.into(),
            message: e.to_string(),
        })?;
        let (Some(host), Some(port)) = (parsed.host_str(), parsed.port()) else {
            return Err(ClusterError::BadAddress {
                url: url.into(),
                message: "no host or port".into(),
            });
        };
        let endpoint = format!("http://{host}:{port}");
        SchedulerGrpcClient::connect(endpoint)
            .await
            .map_err(|e| ClusterError::Unreachable {
                url: url.into(),
                message: e.to_string(),
            })?;
        let state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(
                SessionConfig::new_with_ballista()
                    .with_ballista_job_name("martdb")
                    // Ballista 55's adaptive planner fails some plans (a sort over an
                    // exchange, as in a UNION ALL under ORDER BY) in its sanity check
                    // and never finishes the job; the static planner runs them.
                    .with_ballista_adaptive_query_planner(false)
                    .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
                    .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default())),
            )
            .build();
        let context = SessionContext::remote_with_state(url, state)
            .await
            .map_err(|e| ClusterError::Unreachable {
                url: url.into(),
                message: e.to_string(),
            })?;
        // Connecting replaced the session's functions with Ballista's list.
        let Functions {
            scalar,
            aggregate,
            window,
        } = functions();
        let mut shippable = HashSet::new();
        for f in scalar {
            shippable.extend(names(f.name(), f.aliases()));
            context.register_udf((*f).clone());
        }
        for f in aggregate {
            shippable.extend(names(f.name(), f.aliases()));
            context.register_udaf((*f).clone());
        }
        for f in window {
            shippable.extend(names(f.name(), f.aliases()));
            context.register_udwf((*f).clone());
        }
        Ok(Cluster {
            url: url.into(),
            context,
            shippable,
        })
    }

    /// The scheduler's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `plan` made ready to ship (its managed tables turned into listings of their
    /// files, its calls of functions over coordinator state frozen), or `None` when it
    /// must run on the coordinator (see the module docs).
    pub fn prepare(&self, plan: &LogicalPlan) -> DFResult<Option<LogicalPlan>> {
        let shippable = Cell::new(true);
        // A plan that reads no table (`SELECT 1`, `INSERT … VALUES`) is not worth a job.
        let scans = Cell::new(false);
        let stop = |node: LogicalPlan| {
            shippable.set(false);
            Ok(Transformed::new(node, false, TreeNodeRecursion::Stop))
        };
        let shipped = plan
            .clone()
            .transform_up_with_subqueries(|node| {
                let node = match node {
                    LogicalPlan::TableScan(mut scan) => {
                        scans.set(true);
                        let provider = datafusion::datasource::source_as_provider(&scan.source)?;
                        if let Some(managed) = provider.downcast_ref::<ManagedTable>() {
                            scan.source = provider_as_source(snapshot_listing(managed)?);
                            LogicalPlan::TableScan(scan)
                        } else if let Some(scoring) = frozen_uplift_predict(provider.as_ref()) {
                            // `uplift_predict`: its query with the model carried along,
                            // shipped when the query itself can be.
                            match self.prepare(&scan_of(&scan, scoring?)?)? {
                                Some(plan) => return Ok(Transformed::yes(plan)),
                                None => return stop(LogicalPlan::TableScan(scan)),
                            }
                        } else {
                            return stop(LogicalPlan::TableScan(scan));
                        }
                    }
                    LogicalPlan::Projection(_)
                    | LogicalPlan::Filter(_)
                    | LogicalPlan::Window(_)
                    | LogicalPlan::Aggregate(_)
                    | LogicalPlan::Sort(_)
                    | LogicalPlan::Join(_)
                    | LogicalPlan::Repartition(_)
                    | LogicalPlan::Union(_)
                    | LogicalPlan::Subquery(_)
                    | LogicalPlan::SubqueryAlias(_)
                    | LogicalPlan::Limit(_)
                    | LogicalPlan::Values(_)
                    | LogicalPlan::Distinct(_)
                    | LogicalPlan::Unnest(_) => node,
                    other => return stop(other),
                };
                let node = node.map_expressions(|expr| {
                    expr.transform_up(|e| {
                        let Some(name) = function_name(&e) else {
                            return Ok(Transformed::no(e));
                        };
                        if self.shippable.contains(name)
                            || matches!(&e, Expr::ScalarFunction(call) if FrozenUpliftScore::is(&call.func))
                        {
                            return Ok(Transformed::no(e));
                        }
                        if let Expr::ScalarFunction(call) = &e
                            && let Some(frozen) = FrozenUpliftScore::freeze(&call.func, &call.args)
                        {
                            return Ok(Transformed::yes(Expr::ScalarFunction(
                                ScalarFunction::new_udf(Arc::new(frozen), call.args.clone()),
                            )));
                        }
                        shippable.set(false);
                        Ok(Transformed::new(e, false, TreeNodeRecursion::Stop))
                    })
                })?;
                if shippable.get() {
                    Ok(Transformed::new(node.data, true, node.tnr))
                } else {
                    stop(node.data)
                }
            })?
            .data;
        Ok((shippable.get() && scans.get()).then_some(shipped))
    }

    /// The input of a write (`CREATE TABLE … AS`, `INSERT … SELECT`) as a plan whose rows
    /// come from the cluster, or `None` when the input must run on the coordinator. The
    /// write itself (the Delta commit) stays on the coordinator.
    pub fn ship_input(self: &Arc<Self>, input: &LogicalPlan) -> DFResult<Option<LogicalPlan>> {
        let Some(shipped) = self.prepare(input)? else {
            return Ok(None);
        };
        let rows = Arc::new(ClusterRows {
            schema: Arc::new(input.schema().as_arrow().clone()),
            cluster: self.clone(),
            plan: shipped,
        });
        let table = StreamingTable::try_new(rows.schema.clone(), vec![rows])?;
        let plan =
            LogicalPlanBuilder::scan("cluster_rows", provider_as_source(Arc::new(table)), None)?
                .build()?;
        Ok(Some(plan))
    }

    /// Runs a plan made by [`prepare`](Self::prepare) on the cluster.
    /// `partitions` is how many partitions the scheduler plans each stage into: the
    /// coordinator session's `target_partitions`, not Ballista's fixed 16, since a
    /// partial aggregate per partition costs (16 partial bitmaps per tag build a third
    /// slower than 2, on one process as on a cluster).
    pub async fn run(
        &self,
        plan: LogicalPlan,
        partitions: usize,
    ) -> DFResult<SendableRecordBatchStream> {
        let mut state = self.context.state();
        state.config_mut().options_mut().execution.target_partitions = partitions.max(1);
        DataFrame::new(state, plan).execute_stream().await
    }
}

/// The rows of a shipped plan, read from the cluster when the write runs.
struct ClusterRows {
    schema: SchemaRef,
    cluster: Arc<Cluster>,
    plan: LogicalPlan,
}

impl std::fmt::Debug for ClusterRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterRows")
            .field("cluster", &self.cluster)
            .finish()
    }
}

impl PartitionStream for ClusterRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (cluster, plan) = (self.cluster.clone(), self.plan.clone());
        let partitions = context.session_config().target_partitions();
        let rows =
            futures::stream::once(async move { cluster.run(plan, partitions).await }).try_flatten();
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), rows))
    }
}

/// `rows` (a plan with the columns of `scan`'s table, in order) read as `scan` reads its
/// table: under its name, with its projection, filters and limit.
fn scan_of(scan: &TableScan, rows: LogicalPlan) -> DFResult<LogicalPlan> {
    let mut plan = LogicalPlanBuilder::from(rows).alias(scan.table_name.clone())?;
    let columns = plan.schema().columns();
    if let Some(predicate) = scan.filters.iter().cloned().reduce(Expr::and) {
        plan = plan.filter(predicate)?;
    }
    if let Some(projection) = &scan.projection {
        plan = plan.project(projection.iter().map(|&i| Expr::Column(columns[i].clone())))?;
    }
    if let Some(fetch) = scan.fetch {
        plan = plan.limit(0, Some(fetch))?;
    }
    plan.build()
}

fn names(name: &str, aliases: &[String]) -> impl Iterator<Item = String> {
    std::iter::once(name.to_string()).chain(aliases.iter().cloned())
}

/// The name of the function `expr` calls, if it calls one.
fn function_name(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::ScalarFunction(f) => Some(f.func.name()),
        Expr::AggregateFunction(f) => Some(f.func.name()),
        Expr::WindowFunction(w) => Some(match &w.fun {
            WindowFunctionDefinition::AggregateUDF(f) => f.name(),
            WindowFunctionDefinition::WindowUDF(f) => f.name(),
        }),
        _ => None,
    }
}

/// A listing of the Parquet files of the Delta version `table`'s readers see now.
fn snapshot_listing(table: &ManagedTable) -> DFResult<Arc<dyn TableProvider>> {
    let schema = table.schema();
    let files = table.file_uris()?;
    if files.is_empty() {
        return Ok(Arc::new(EmptyTable::new(schema)));
    }
    let urls = files
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<DFResult<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(schema);
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// Runs a Ballista scheduler for martdb on `listen` until it stops.
pub async fn run_scheduler(listen: SocketAddr) -> Result<(), ClusterError> {
    let mut config = SchedulerConfig::default()
        .with_hostname(listen.ip().to_string())
        .with_port(listen.port())
        .with_scheduler_policy(TaskSchedulingPolicy::PullStaged)
        .with_override_config_producer(Arc::new(SessionConfig::new_with_ballista))
        .with_override_session_builder(Arc::new(cluster_state));
    config.override_logical_codec = Some(Arc::new(LogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(PhysicalCodec::default()));
    config.bind_host = listen.ip().to_string();
    let stopped = |e: ballista_core::error::BallistaError| ClusterError::Stopped {
        role: "scheduler",
        message: e.to_string(),
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(stopped)?;
    start_server(cluster, listen, Arc::new(config))
        .await
        .map_err(stopped)
}

/// Where an executor listens, whom it works for, and where it keeps shuffle files.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's address.
    pub scheduler: SocketAddr,
    /// The address the executor serves its results on (Arrow Flight): the client and the
    /// other executors fetch from here.
    pub listen: SocketAddr,
    /// Tasks run at once (0: one per core).
    pub cores: usize,
    /// Shuffle and result files.
    pub work_dir: PathBuf,
}

/// Runs a Ballista executor with martdb's functions until it stops.
pub async fn run_executor(options: ExecutorOptions) -> Result<(), ClusterError> {
    let stopped = |message: String| ClusterError::Stopped {
        role: "executor",
        message,
    };
    std::fs::create_dir_all(&options.work_dir).map_err(|e| stopped(e.to_string()))?;
    let state =
        cluster_state(SessionConfig::new_with_ballista()).map_err(|e| stopped(e.to_string()))?;
    let host = options.listen.ip().to_string();
    let config = ExecutorProcessConfig {
        bind_host: host.clone(),
        external_host: Some(host),
        port: options.listen.port(),
        scheduler_host: options.scheduler.ip().to_string(),
        scheduler_port: options.scheduler.port(),
        scheduler_connect_timeout_seconds: 30,
        vcores: options.cores,
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: Some(options.work_dir.to_string_lossy().into_owned()),
        override_function_registry: Some(Arc::new(BallistaFunctionRegistry::from(&state))),
        override_config_producer: Some(Arc::new(SessionConfig::new_with_ballista)),
        override_logical_codec: Some(Arc::new(LogicalCodec::default())),
        override_physical_codec: Some(Arc::new(PhysicalCodec::default())),
        override_execution_engine: Some(Arc::new(errors::CodedEngine::new(
            std::time::Duration::from_secs(30),
        ))),
        ..Default::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| stopped(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_function_over_the_coordinators_state_is_known_to_the_cluster() {
        let Functions {
            scalar,
            aggregate,
            window,
        } = functions();
        let known: HashSet<String> = scalar
            .iter()
            .flat_map(|f| names(f.name(), f.aliases()))
            .chain(aggregate.iter().flat_map(|f| names(f.name(), f.aliases())))
            .chain(window.iter().flat_map(|f| names(f.name(), f.aliases())))
            .collect();
        let stateful = ["uplift_score", "hash_id", "external_id", "audience"];
        for name in crate::udf::WRITING_FUNCTIONS.iter().chain(&stateful) {
            assert!(!known.contains(*name), "{name} would ship");
        }
        // The stateless ones do.
        for name in [
            "group_bitmap_state",
            "bitmap_cardinality",
            "ab_moments",
            "ab_mean_test",
        ] {
            assert!(known.contains(name), "{name} would not ship");
        }
    }
}

//! The engine: one DataFusion context over one data directory, with martdb's catalog,
//! functions and system tables, and the statement dispatch that makes DDL and writes
//! persistent.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::logical_expr::{DdlStatement, DmlStatement, LogicalPlan, WriteOp};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParser, Statement};
use datafusion::sql::sqlparser::ast::{CopyTarget, Statement as Sql};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role as PgRole};
use deltalake::delta_datafusion::planner::DeltaPlanner;
use futures::{StreamExt, TryStreamExt};

use crate::bitmap::audiences::AudienceStore;
use crate::bitmap::dictionary::IdDictionary;
use crate::catalog::{
    CATALOG_NAME, Catalog, CatalogError, DEFAULT_SCHEMA, SYSTEM_SCHEMA, TableCache,
};
use crate::cluster::Cluster;
use crate::coupons::Coupons;
use crate::identity::IdentityGraph;
use crate::ml::runtime::ModelRegistry;
use crate::privacy::PrivacyOptions;
use crate::rewrite::compat::CompatParser;
use crate::rules::{RuleStore, Rules};
use crate::session::Session;
use crate::storage::{Storage, StorageOptions};
use crate::udf::bitmap::audiences::AudienceHandle;
use crate::{Error, Result};

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "martdb-data";

/// The largest default size of the table cache.
const DEFAULT_TABLE_CACHE_MAX: usize = 2 << 30;

/// How to open an [`Engine`].
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Bytes of memory all queries together may use before they spill to disk or fail
    /// with SQLSTATE 53200. Default: half of the machine's RAM.
    pub memory_limit: Option<usize>,
    /// Bytes of decoded small tables kept in memory between queries (a table is cached
    /// when its files take at most a sixteenth of this and its decoded batches at most a
    /// quarter; 0 turns the cache off). Default: an
    /// eighth of the memory limit, at most 2 GiB.
    pub table_cache: Option<usize>,
    /// Partitions a query is split into. Default: the number of cores.
    pub target_partitions: Option<usize>,
    /// Create a missing local data directory. Default: true.
    pub create_if_missing: bool,
    /// Where the state store lives when the location is an object store.
    pub state_dir: Option<PathBuf>,
    /// Keys for `hash_id` and column masking rules (see [`crate::privacy`]).
    pub privacy: PrivacyOptions,
    /// A Ballista scheduler (`df://host:port`) to run queries on: the reads that can run
    /// there do (see [`crate::cluster`]), everything else runs here. Default: none.
    pub ballista: Option<String>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            memory_limit: None,
            table_cache: None,
            target_partitions: None,
            create_if_missing: true,
            state_dir: None,
            privacy: PrivacyOptions::default(),
            ballista: None,
        }
    }
}

/// An open martdb database: run SQL, get Arrow record batches.
///
/// Cheap to clone; clones share the catalog and the memory pool.
#[derive(Clone)]
pub struct Engine {
    ctx: SessionContext,
    /// The context audience definitions run in; functions hold it weakly, so it lives
    /// as long as some `Engine` does.
    shared_context: Arc<SessionContext>,
    catalog: Catalog,
    storage: Arc<Storage>,
    /// PostgreSQL client SQL -> SQL DataFusion plans (psql's `\d` queries, `::regclass`,
    /// `= ANY(array)`, ...).
    compat: Arc<CompatParser>,
    roles: LoginRoles,
    coupons: Coupons,
    identity: IdentityGraph,
    rules: Rules,
    models: ModelRegistry,
    cluster: Option<Arc<Cluster>>,
}

/// What `pg_roles` lists (psql's `\du`, drivers' role lookups): login roles as (name,
/// superuser), shared by every session.
#[derive(Debug, Clone, Default)]
struct LoginRoles(Arc<std::sync::RwLock<Vec<(String, bool)>>>);

#[async_trait::async_trait]
impl PgCatalogContextProvider for LoginRoles {
    async fn roles(&self) -> Vec<String> {
        let roles = self.0.read().expect(crate::LOCK_POISONED);
        roles.iter().map(|(name, _)| name.clone()).collect()
    }

    async fn role(&self, name: &str) -> Option<PgRole> {
        let roles = self.0.read().expect(crate::LOCK_POISONED);
        let (name, superuser) = roles.iter().find(|(n, _)| n == name)?;
        Some(PgRole {
            name: name.clone(),
            is_superuser: *superuser,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: vec![],
            inherited_roles: vec![],
        })
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("root", &self.storage.root().as_str())
            .finish()
    }
}

impl Engine {
    /// Opens (creating if needed) the database at `location`: a directory path, a
    /// `file://` URL or an `s3://bucket/prefix` URL.
    pub async fn open(location: impl AsRef<str>) -> Result<Engine> {
        Self::open_with(location, EngineOptions::default()).await
    }

    /// Opens the database at `location` with explicit options.
    pub async fn open_with(location: impl AsRef<str>, options: EngineOptions) -> Result<Engine> {
        let cluster = match &options.ballista {
            Some(url) => Some(Arc::new(Cluster::connect(url).await?)),
            None => None,
        };
        let storage = Arc::new(Storage::open(
            location.as_ref(),
            &StorageOptions {
                create_if_missing: options.create_if_missing,
                state_dir: options.state_dir.clone(),
            },
        )?);
        let partitions = options.target_partitions.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        let memory_limit = options.memory_limit.unwrap_or_else(default_memory_limit);
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(memory_limit, 1.0)
            .build_arc()?;
        runtime.register_object_store(storage.object_store_url().as_ref(), storage.object_store());
        let mut config = SessionConfig::new()
            .with_target_partitions(partitions)
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_SCHEMA);
        config.options_mut().sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        let config = config.with_option_extension(crate::udf::ml::MartdbOptions::default());
        // Delta writes plan a custom node that only delta's planner lowers.
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_query_planner(DeltaPlanner::new())
            .build();
        let ctx = SessionContext::new_with_state(state);
        crate::udf::register_all(&ctx);
        let table_cache = options
            .table_cache
            .unwrap_or((memory_limit / 8).min(DEFAULT_TABLE_CACHE_MAX));
        options.privacy.validate()?;
        for function in crate::udf::privacy::keyed_functions(&options.privacy.hash_keys) {
            ctx.register_udf(function);
        }
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            crate::udf::system::BackupDatabase::new(Arc::downgrade(&storage)),
        ));
        let catalog = Catalog::new(
            storage.clone(),
            Arc::new(TableCache::new(table_cache)),
            &ctx,
            &options.privacy,
        );
        // State-changing functions hold the engine's stores (and its context, weakly, to
        // run audience definitions); their state is listed in martdb.* tables.
        let shared_context = Arc::new(ctx.clone());
        let dictionary = IdDictionary::new(&storage);
        let audiences = AudienceStore::new(&storage);
        let handle = AudienceHandle::new(audiences.clone(), &shared_context);
        let coupons = Coupons::open(&storage, audiences.clone())?;
        let identity = IdentityGraph::new(&storage);
        for function in crate::udf::bitmap::dictionary_functions(&dictionary)
            .into_iter()
            .chain(crate::udf::bitmap::audience_functions(&handle))
            .chain(crate::udf::coupons::functions(&coupons))
            .chain(crate::udf::identity::graph_functions(&identity))
        {
            ctx.register_udf(function);
        }
        for (name, function) in crate::udf::identity::graph_table_functions(&identity) {
            ctx.register_udtf(name, function);
        }
        let system = ctx
            .catalog(CATALOG_NAME)
            .and_then(|c| c.schema(SYSTEM_SCHEMA))
            .ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(format!(
                    "the catalog {CATALOG_NAME} has no schema {SYSTEM_SCHEMA}"
                ))
            })?;
        system.register_table(
            "id_dictionary".into(),
            Arc::new(crate::catalog::id_dictionary::table(dictionary)),
        )?;
        system.register_table(
            "audiences".into(),
            Arc::new(crate::catalog::audiences::table(audiences.clone())),
        )?;
        let rules = Rules::new(
            RuleStore::new(&storage),
            audiences.clone(),
            coupons.clone(),
            &shared_context,
        );
        system.register_table(
            "rules".into(),
            Arc::new(crate::catalog::rules::RulesTable::new(rules.clone())),
        )?;
        system.register_table(
            "rule_outbox".into(),
            Arc::new(crate::catalog::rules::outbox(rules.clone())),
        )?;
        for (name, function) in crate::udf::rules::table_functions(&rules) {
            ctx.register_udtf(name, function);
        }
        let models = ModelRegistry::new(&storage);
        crate::udf::ml::register_registry_functions(&ctx, &models);
        system.register_table(
            "models".into(),
            Arc::new(crate::catalog::models::table(models.clone())),
        )?;
        for (name, table) in crate::catalog::identity::tables(&identity) {
            system.register_table(name.into(), Arc::new(table))?;
        }
        use crate::catalog::coupons as views;
        for (name, table) in [
            ("coupon_pools", views::pools(coupons.clone())),
            ("coupon_reservations", views::reservations(coupons.clone())),
            (
                "coupon_reconciliation",
                views::reconciliation(coupons.clone()),
            ),
        ] {
            system.register_table(name.into(), Arc::new(table))?;
        }
        // pg_catalog answers the catalog questions of psql, drivers and BI tools; it
        // reads the live catalog list, so tables created later appear in it.
        let roles = LoginRoles::default();
        datafusion_pg_catalog::setup_pg_catalog(&ctx, CATALOG_NAME, roles.clone())
            .map_err(|e| Error::Sql(*e))?;
        crate::catalog::pg_overlay::install(&ctx, CATALOG_NAME).await?;
        catalog.restore(&ctx).await?;
        Ok(Engine {
            ctx,
            shared_context,
            catalog,
            storage,
            compat: Arc::new(CompatParser::new()),
            roles,
            coupons,
            identity,
            rules,
            models,
            cluster,
        })
    }

    /// The login roles `pg_roles` lists: (name, superuser). The server sets its users.
    pub fn set_login_roles(&self, roles: Vec<(String, bool)>) {
        *self.roles.0.write().expect(crate::LOCK_POISONED) = roles;
    }

    /// The stored identity graph of this database, for callers that resolve or look up
    /// identifiers without SQL; the same graph `identity_update` and `person_id` use.
    pub fn identity(&self) -> &IdentityGraph {
        &self.identity
    }

    /// The coupon pools and reservations of this database, for callers on the hot path
    /// (no SQL, no network hop); the same state `reserve_coupon` and friends use.
    pub fn coupons(&self) -> &Coupons {
        &self.coupons
    }

    /// The model registry of this database: every trained version of every model
    /// (`martdb.models`), their weights, and which version is deployed.
    pub fn models(&self) -> &ModelRegistry {
        &self.models
    }

    /// The rules of this database: store, compile and match them without SQL (one event
    /// at a time on the hot path); the same rules `martdb.rules` and `match_rules` use.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Opens a [`Session`]: its own settings, cursors and cancel handle over this
    /// engine's tables.
    pub fn session(&self) -> Session {
        Session::new(self)
    }

    /// This engine with a configuration of its own (same catalog and tables), whose
    /// queries take memory from `memory_pool` (a session's share of this engine's pool).
    pub(crate) fn fork(&self, memory_pool: Arc<dyn MemoryPool>) -> Engine {
        let state = self.ctx.state();
        let mut runtime = (**state.runtime_env()).clone();
        runtime.memory_pool = memory_pool;
        let state = SessionStateBuilder::new_from_existing(state)
            .with_runtime_env(Arc::new(runtime))
            .build();
        Engine {
            ctx: SessionContext::new_with_state(state),
            shared_context: self.shared_context.clone(),
            catalog: self.catalog.clone(),
            storage: self.storage.clone(),
            compat: self.compat.clone(),
            roles: self.roles.clone(),
            coupons: self.coupons.clone(),
            identity: self.identity.clone(),
            rules: self.rules.clone(),
            models: self.models.clone(),
            cluster: self.cluster.clone(),
        }
    }

    /// The local directory of martdb's own state (`<data>/_martdb` for a local data
    /// directory): the server keeps its audit log there by default.
    pub fn state_dir(&self) -> &std::path::Path {
        self.storage.state_dir()
    }

    /// Backs up this database into the new directory `dest` while it stays in use
    /// ([`crate::storage::backup`]); `SELECT backup_database(dest)` in SQL.
    pub async fn backup(
        &self,
        dest: impl Into<PathBuf>,
    ) -> Result<crate::storage::backup::BackupSummary> {
        let storage = self.storage.clone();
        let dest = dest.into();
        tokio::task::spawn_blocking(move || crate::storage::backup::backup(&storage, &dest))
            .await
            .map_err(|e| Error::Unsupported(format!("the backup task failed: {e}")))?
            .map_err(Error::from)
    }

    /// The memory pool of this engine's queries: bytes reserved and the limit.
    pub(crate) fn memory_pool(&self) -> Arc<dyn MemoryPool> {
        self.ctx.runtime_env().memory_pool.clone()
    }

    /// Runs every statement in `sql` in order and returns the result of the last one.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut last = Vec::new();
        for statement in self.parse(sql)? {
            last = self.execute(statement).await?.try_collect().await?;
        }
        Ok(last)
    }

    /// Runs one statement and returns its result as a stream of record batches.
    pub async fn sql_stream(&self, sql: &str) -> Result<SendableRecordBatchStream> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::Unsupported(format!(
                "expected exactly one statement, found {}",
                statements.len()
            )));
        }
        self.execute(statements.remove(0)).await
    }

    /// Splits `sql` into statements (PostgreSQL dialect), rewriting PostgreSQL-only
    /// forms that clients send into ones the planner takes.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        // PostgreSQL syntax first: it is what clients send, and the compatibility layer
        // also replaces a few whole client queries DataFusion cannot plan. DataFusion's
        // own statements (CREATE EXTERNAL TABLE, COPY ... TO 'file', EXPLAIN options)
        // fail or mean something else there, so they go through DataFusion's parser.
        if let Ok(statements) = self.compat.parse(sql)
            && statements.iter().all(is_plain_postgres)
        {
            return Ok(statements
                .into_iter()
                .map(|mut s| {
                    crate::rewrite::rewrite(&mut s);
                    Statement::Statement(Box::new(s))
                })
                .collect());
        }
        Ok(
            DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})?
                .into_iter()
                .map(|statement| match statement {
                    Statement::Statement(s) => {
                        let mut s = self.compat.rewrite(*s);
                        crate::rewrite::rewrite(&mut s);
                        Statement::Statement(Box::new(s))
                    }
                    other => other,
                })
                .collect(),
        )
    }

    /// Runs one parsed statement.
    pub async fn execute(&self, statement: Statement) -> Result<SendableRecordBatchStream> {
        let text = statement.to_string();
        let plan = self.plan(statement).await?;
        self.execute_plan(plan, text).await
    }

    /// Plans one parsed statement without running it (`$n` placeholders stay in the plan).
    pub async fn plan(&self, statement: Statement) -> Result<LogicalPlan> {
        contain_panics(async {
            let plan = self.ctx.state().statement_to_plan(statement).await?;
            Ok(crate::rewrite::scalar_subquery::rewrite(plan)?)
        })
        .await
    }

    /// Runs a planned statement, e.g. one whose `$n` placeholders a client bound. `text` is
    /// the statement's SQL, kept as the definition of views and external tables.
    pub async fn execute_plan(
        &self,
        plan: LogicalPlan,
        text: String,
    ) -> Result<SendableRecordBatchStream> {
        contain_panics(self.execute_plan_unguarded(plan, text)).await
    }

    async fn execute_plan_unguarded(
        &self,
        plan: LogicalPlan,
        text: String,
    ) -> Result<SendableRecordBatchStream> {
        let state = self.ctx.state();
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(mut create)) => {
                if let Some(input) = self.ship_input(&create.input)? {
                    create.input = Arc::new(input);
                }
                let rows = self.catalog.create_table(&state, &create).await?;
                Ok(count_stream(rows))
            }
            LogicalPlan::Ddl(DdlStatement::DropTable(drop)) => {
                self.catalog.drop_table(&drop).await?;
                Ok(empty_stream())
            }
            LogicalPlan::Ddl(DdlStatement::DropView(drop)) => {
                self.catalog.drop_view(&drop).await?;
                Ok(empty_stream())
            }
            LogicalPlan::Ddl(DdlStatement::DropCatalogSchema(drop)) => {
                self.catalog.drop_schema(&drop).await?;
                Ok(empty_stream())
            }
            LogicalPlan::Ddl(DdlStatement::CreateCatalogSchema(ref create)) => {
                let schema = create
                    .schema_name
                    .rsplit('.')
                    .next()
                    .unwrap_or(&create.schema_name)
                    .to_string();
                if self.catalog.has_schema(&schema) {
                    if create.if_not_exists {
                        return Ok(empty_stream());
                    }
                    return Err(CatalogError::SchemaExists { name: schema }.into());
                }
                self.catalog.refuse_shared_directory(&schema, None)?;
                self.run_plan(plan.clone()).await?;
                self.catalog.schema_created(&schema)?;
                Ok(empty_stream())
            }
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(ref create)) => {
                let name = create.name.clone();
                let existed = self.ctx.table_exist(name.clone())?;
                self.run_plan(plan.clone()).await?;
                if !existed {
                    self.catalog.object_created(&name, text, false)?;
                }
                Ok(empty_stream())
            }
            LogicalPlan::Ddl(DdlStatement::CreateView(ref create)) => {
                if create.temporary {
                    return self.run_plan(plan.clone()).await;
                }
                let name = create.name.clone();
                let existed = self.ctx.table_exist(name.clone())?;
                self.run_plan(plan.clone()).await?;
                if !existed || create.or_replace {
                    self.catalog.object_created(&name, text, true)?;
                }
                Ok(empty_stream())
            }
            // martdb.rules takes its own writes (each statement one durable change).
            LogicalPlan::Dml(DmlStatement { ref table_name, .. })
                if table_name.table() == "rules" && table_name.schema() == Some(SYSTEM_SCHEMA) =>
            {
                self.run_plan(plan).await
            }
            LogicalPlan::Dml(DmlStatement {
                table_name,
                op: WriteOp::Insert(op),
                input,
                ..
            }) => {
                let input = match self.ship_input(&input)? {
                    Some(shipped) => shipped,
                    None => (*input).clone(),
                };
                let rows = self.catalog.insert(&state, &table_name, op, &input).await?;
                Ok(count_stream(rows))
            }
            LogicalPlan::Dml(DmlStatement { table_name, op, .. })
                if matches!(op, WriteOp::Update | WriteOp::Delete | WriteOp::Truncate) =>
            {
                Err(Error::Unsupported(format!(
                    "{} on table '{}' is not supported yet: tables are append-only (use CREATE OR REPLACE TABLE ... AS SELECT to rewrite one)",
                    op.name(),
                    table_name
                )))
            }
            other => self.run_plan(other).await,
        }
    }

    /// The input of a write, read from the cluster when it can run there.
    fn ship_input(&self, input: &LogicalPlan) -> Result<Option<LogicalPlan>> {
        match &self.cluster {
            Some(cluster) => Ok(cluster.ship_input(input)?),
            None => Ok(None),
        }
    }

    async fn run_plan(&self, plan: LogicalPlan) -> Result<SendableRecordBatchStream> {
        if let Some(cluster) = &self.cluster
            && let Some(shipped) = cluster.prepare(&plan)?
        {
            let partitions = self.ctx.copied_config().target_partitions();
            return Ok(cluster.run(shipped, partitions).await?);
        }
        let frame = self.ctx.execute_logical_plan(plan).await?;
        let task = Arc::new(frame.task_ctx());
        let physical = frame.create_physical_plan().await?;
        let stream = datafusion::physical_plan::execute_stream(physical.clone(), task)?;
        Ok(crate::metrics::count_rows_scanned(physical, stream))
    }

    /// Creates (or replaces) the managed table `name` from a logical plan, streaming its
    /// rows into one atomic commit. Returns the number of rows written.
    pub async fn create_table_from_plan(
        &self,
        name: &str,
        plan: LogicalPlan,
        replace: bool,
    ) -> Result<u64> {
        let state = self.ctx.state();
        let create = datafusion::logical_expr::CreateMemoryTable {
            name: name.into(),
            constraints: Default::default(),
            input: Arc::new(plan),
            if_not_exists: false,
            or_replace: replace,
            column_defaults: vec![],
            temporary: false,
        };
        self.catalog.create_table(&state, &create).await
    }

    /// Grows with every commit and catalog change: plans that captured table data are
    /// stale once it moves.
    pub(crate) fn data_generation(&self) -> u64 {
        self.catalog.data_generation()
    }

    /// The underlying DataFusion context (for registering more tables or functions).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Problems met while restoring the catalog when the engine opened (kept definitions
    /// that could not be replayed, e.g. a view over a table whose files are gone).
    pub fn warnings(&self) -> Vec<String> {
        self.catalog.warnings()
    }

    /// The root location of the data.
    pub fn location(&self) -> &url::Url {
        self.storage.root()
    }
}

/// Statements whose meaning is the same for sqlparser and DataFusion's parser.
fn is_plain_postgres(statement: &Sql) -> bool {
    match statement {
        Sql::Copy { target, .. } => matches!(target, CopyTarget::Stdin | CopyTarget::Stdout),
        Sql::Explain { .. } | Sql::ExplainTable { .. } => false,
        _ => true,
    }
}

/// The one-row `count` result of a write: how many rows it changed.
pub(crate) fn count_batch(rows: u64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]));
    RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(vec![rows]))])
        .expect("one UInt64 array of one value matches the one non-null UInt64 field")
}

fn count_stream(rows: u64) -> SendableRecordBatchStream {
    let batch = count_batch(rows);
    Box::pin(RecordBatchStreamAdapter::new(
        batch.schema(),
        futures::stream::iter([Ok(batch)]),
    ))
}

fn empty_stream() -> SendableRecordBatchStream {
    let schema = Arc::new(Schema::empty());
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::empty().boxed(),
    ))
}

/// Half of physical memory: room for the OS and other processes, and queries spill
/// (or fail cleanly) before the machine swaps.
/// Runs `work`, turning a panic in it into an internal error (SQLSTATE XX000): a bug
/// met while planning or starting a statement fails the statement, not the connection
/// or the process. (The wire fuzzer found one in DataFusion's planner: a scalar subquery
/// with an empty select list.)
pub(crate) async fn contain_panics<T>(work: impl Future<Output = Result<T>>) -> Result<T> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(Error::Sql(datafusion::error::DataFusionError::Internal(
            format!(
                "the statement was stopped by a bug: {}",
                panic_message(&*panic)
            ),
        ))),
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

fn default_memory_limit() -> usize {
    const FALLBACK: usize = 4 << 30;
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return FALLBACK;
    };
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<usize>()
                .ok()
        })
        .map(|kib| kib * 1024 / 2)
        .unwrap_or(FALLBACK)
}

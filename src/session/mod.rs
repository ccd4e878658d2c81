//! Sessions: the per-client state around the shared engine — PostgreSQL settings
//! (`SET`/`SHOW`/`RESET`), transaction blocks, cursors, statement timeouts, cancellation
//! and read-only access.
//!
//! The wire server opens one session per connection; an embedding program opens one per
//! caller that wants its own settings. Sessions of one engine share its catalog, tables
//! and memory pool; each has its own DataFusion configuration, so `SET TimeZone` or
//! `SET datafusion.execution.batch_size` in one session is invisible to the others.
//!
//! Invariants:
//! - Every statement runs under a [`Watch`]: it is stopped, with SQLSTATE 57014, when the
//!   session is cancelled or `statement_timeout` passes — also while its rows are still
//!   streaming to the client.
//! - A read-only session never reaches a plan that writes (DDL, DML, COPY to files,
//!   changes of the shared runtime); it fails with 25006 before anything runs.
//! - martdb commits every statement on its own. `BEGIN`/`COMMIT`/`ROLLBACK`/`SAVEPOINT`
//!   are accepted so that drivers and BI tools work, and they scope cursors as in
//!   PostgreSQL, but `ROLLBACK` does not undo a write that already returned.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> martdb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let engine = martdb::Engine::open(dir.path().to_str().unwrap()).await?;
//! let session = engine.session();
//! session.sql("SET TimeZone = 'Europe/Paris'").await?;
//! assert_eq!(session.setting("timezone")?, "Europe/Paris");
//! # Ok(())
//! # }
//! ```

mod cursor;
mod interrupt;
mod memory;
mod prepared;
mod settings;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ParamValues;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{LogicalPlan, ScalarUDF};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{
    self, CloseCursor, DiscardObject, Expr, Reset, Set, Statement as Sql, Value,
};
use futures::TryStreamExt;

pub use interrupt::CancelHandle;
pub use prepared::PreparedQuery;
pub use settings::{Settings, parse_bytes};

use crate::{Engine, Error, Result};
use cursor::Cursor;
use interrupt::Interrupt;
use memory::SessionPool;
use prepared::{GenericPlan, PlanKey};

/// Whether `statement` is a plain query (`SELECT`, `VALUES`, `WITH ... SELECT`).
pub(crate) fn is_query(statement: &Statement) -> bool {
    matches!(statement, Statement::Statement(s) if matches!(s.as_ref(), Sql::Query(_)))
}

/// Generic plans reading at most this many rows run in one partition.
const SINGLE_PARTITION_ROWS: usize = 256 * 1024;

/// The PostgreSQL version martdb reports to clients (`server_version`, `version()`):
/// drivers and BI tools choose their catalog queries by it.
pub const SERVER_VERSION: &str = "15.0";

/// Errors of session state: settings, cursors, interruption, access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// `SET`/`SHOW` of a parameter martdb does not know.
    #[error("unrecognized configuration parameter \"{name}\"")]
    UnknownSetting { name: String },
    /// `SET` of a parameter fixed by the server.
    #[error("parameter \"{name}\" cannot be changed")]
    ReadOnlySetting { name: String },
    /// `SET` with a value the parameter does not take.
    #[error("invalid value for parameter \"{name}\": \"{value}\"; expected {expected}")]
    InvalidSetting {
        name: String,
        value: String,
        expected: String,
    },
    /// The client cancelled the running statement.
    #[error("canceling statement due to user request")]
    Canceled,
    /// The statement ran longer than `statement_timeout`.
    #[error("canceling statement due to statement timeout")]
    TimedOut,
    /// `FETCH`/`CLOSE` of a cursor that is not open.
    #[error("cursor \"{name}\" does not exist")]
    CursorNotFound { name: String },
    /// `DECLARE` of a name already in use.
    #[error("cursor \"{name}\" already exists")]
    CursorExists { name: String },
    /// `DECLARE` without `WITH HOLD` outside `BEGIN ... COMMIT`.
    #[error(
        "DECLARE CURSOR can only be used in transaction blocks (run BEGIN first, or declare the cursor WITH HOLD)"
    )]
    NoTransaction,
    /// `SET` of a size above the limit the server imposes (or turning it off).
    #[error(
        "permission denied to set parameter \"{name}\" to \"{value}\": the server limits it to {limit}"
    )]
    AboveServerLimit {
        name: String,
        value: String,
        limit: String,
    },
    /// A write attempted by a read-only session.
    #[error("cannot execute {statement} in a read-only session")]
    ReadOnly { statement: String },
}

impl SessionError {
    /// The SQLSTATE of this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SessionError::UnknownSetting { .. } => "42704",
            SessionError::ReadOnlySetting { .. } => "55P02",
            SessionError::InvalidSetting { .. } => "22023",
            SessionError::Canceled | SessionError::TimedOut => "57014",
            SessionError::CursorNotFound { .. } => "34000",
            SessionError::CursorExists { .. } => "42P03",
            SessionError::NoTransaction => "25P01",
            SessionError::ReadOnly { .. } => "25006",
            SessionError::AboveServerLimit { .. } => "42501",
        }
    }
}

/// One client's view of an [`Engine`]; see the [module docs](self).
pub struct Session {
    engine: Engine,
    settings: Arc<RwLock<Settings>>,
    cursors: tokio::sync::Mutex<HashMap<String, Cursor>>,
    in_transaction: AtomicBool,
    read_only: bool,
    interrupt: Arc<Interrupt>,
    /// Grows with every statement that is not a query (settings, DDL...): generic plans
    /// of prepared queries made before it are stale.
    plan_epoch: AtomicU64,
    /// This session's share of the engine's memory (`martdb.query_memory_limit`).
    memory: Arc<SessionPool>,
    /// Whether the last statement run (or attempted) changes durable state.
    changed_state: AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Session {
    pub(crate) fn new(engine: &Engine) -> Session {
        let settings = Arc::new(RwLock::new(Settings::default()));
        let memory = Arc::new(SessionPool::new(engine.memory_pool()));
        let engine = engine.fork(memory.clone());
        engine.context().register_udf(ScalarUDF::from(
            crate::udf::system::current_setting::CurrentSetting::new(settings.clone()),
        ));
        Session {
            engine,
            settings,
            cursors: Default::default(),
            in_transaction: AtomicBool::new(false),
            read_only: false,
            interrupt: Arc::default(),
            plan_epoch: AtomicU64::new(0),
            memory,
            changed_state: AtomicBool::new(false),
        }
    }

    /// Makes this session read-only: statements that would write fail with 25006.
    pub fn read_only(mut self, read_only: bool) -> Session {
        self.read_only = read_only;
        let role = if read_only { "read_only" } else { "admin" };
        // Masking policies read the role from the session's configuration.
        let _ = self
            .engine
            .context()
            .state_ref()
            .write()
            .config_mut()
            .options_mut()
            .set("martdb.role", role);
        if read_only {
            self.settings
                .write()
                .expect(crate::LOCK_POISONED)
                .force("transaction_read_only", "on");
        }
        self
    }

    /// Starts `name` at `value` for this session, as the server's default: `RESET`
    /// returns to it, and for the sizes `martdb.query_memory_limit` and
    /// `martdb.max_result_size` it is also the most the session may `SET`.
    pub fn impose(&self, name: &str, value: &str) -> Result<()> {
        self.settings
            .write()
            .expect(crate::LOCK_POISONED)
            .impose(name, value)?;
        self.apply(name, value)
    }

    /// How long the client may stay idle now (see [`Settings::idle_timeout`]).
    pub fn idle_timeout(&self) -> Option<std::time::Duration> {
        self.read_settings().idle_timeout(self.in_transaction())
    }

    /// The most bytes of rows one statement may send the client (`martdb.max_result_size`).
    pub fn max_result_size(&self) -> Option<usize> {
        self.read_settings().bytes("martdb.max_result_size")
    }

    /// Whether the last statement this session ran, or tried to run, changes durable
    /// state (DDL, a write, `COPY` to a file, or a function such as `reserve_coupon`):
    /// the server always audits those.
    pub fn last_changed_state(&self) -> bool {
        self.changed_state.load(Ordering::Acquire)
    }

    /// Whether the session is read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The engine as this session sees it (its own configuration, shared catalog).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// A handle that cancels the statement this session is running, from anywhere.
    pub fn cancel_handle(&self) -> CancelHandle {
        CancelHandle::new(self.interrupt.clone())
    }

    /// Whether a `BEGIN` is open.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction.load(Ordering::SeqCst)
    }

    /// The current value of a setting (`SHOW name`).
    pub fn setting(&self, name: &str) -> Result<String> {
        Ok(self.read_settings().get(name)?.to_string())
    }

    /// Changes a setting (`SET name = value`).
    pub fn set(&self, name: &str, value: &str) -> Result<()> {
        if self.read_only && name.to_ascii_lowercase().ends_with("transaction_read_only") {
            return Err(SessionError::ReadOnly {
                statement: format!("SET {name}"),
            }
            .into());
        }
        let value = self
            .settings
            .write()
            .expect(crate::LOCK_POISONED)
            .set(name, value)?;
        self.plan_epoch.fetch_add(1, Ordering::AcqRel);
        self.apply(name, &value)
    }

    /// Splits `sql` into statements.
    pub fn parse(&self, sql: &str) -> Result<Vec<Statement>> {
        self.engine.parse(sql)
    }

    /// Runs every statement in `sql` in order and returns the result of the last one.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        let mut last = Vec::new();
        for statement in self.parse(sql)? {
            last = self.execute(statement).await?.try_collect().await?;
        }
        Ok(last)
    }

    /// Plans one statement with this session's settings (`$n` placeholders stay).
    pub async fn plan(&self, statement: Statement) -> Result<LogicalPlan> {
        self.engine.plan(statement).await
    }

    /// Runs one statement: session statements (SET, SHOW, RESET, cursors, transaction
    /// control) here, everything else through the engine, under timeout and cancel.
    pub async fn execute(&self, statement: Statement) -> Result<SendableRecordBatchStream> {
        self.changed_state.store(false, Ordering::Release);
        if !is_query(&statement) {
            self.plan_epoch.fetch_add(1, Ordering::AcqRel);
        }
        if let Statement::Statement(sql) = &statement
            && let Some(result) = self.session_statement(sql).await
        {
            return result;
        }
        let text = statement.to_string();
        let watch = self.watch();
        let plan = watch.run(self.engine.plan(statement)).await?;
        self.run_plan(plan, text, watch).await
    }

    /// Runs a planned statement (e.g. a prepared one with bound parameters).
    pub async fn execute_plan(
        &self,
        plan: LogicalPlan,
        text: String,
    ) -> Result<SendableRecordBatchStream> {
        let watch = self.watch();
        self.run_plan(plan, text, watch).await
    }

    /// Plans one statement for repeated execution with
    /// [`execute_prepared`](Self::execute_prepared); `$1`, `$2`... are its parameters.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> martdb::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// use datafusion::arrow::array::RecordBatch;
    /// use datafusion::common::{ParamValues, ScalarValue};
    /// use futures::TryStreamExt;
    ///
    /// let engine = martdb::Engine::open(dir.path().to_str().unwrap()).await?;
    /// engine.sql("CREATE TABLE t AS VALUES (1, 'one'), (2, 'two')").await?;
    /// let session = engine.session();
    /// let lookup = session.prepare("SELECT column2 FROM t WHERE column1 = $1").await?;
    /// for (id, name) in [(2, "two"), (1, "one")] {
    ///     let params = ParamValues::List(vec![ScalarValue::Int64(Some(id)).into()]);
    ///     let stream = session.execute_prepared(&lookup, &params).await?;
    ///     let batches: Vec<RecordBatch> = stream.try_collect().await?;
    ///     assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
    /// }
    /// // t is small: it is served from memory, and the plan is kept.
    /// assert!(lookup.has_generic_plan());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn prepare(&self, sql: &str) -> Result<PreparedQuery> {
        let mut statements = self.parse(sql)?;
        if statements.len() != 1 {
            return Err(Error::Unsupported(format!(
                "a prepared statement is one statement, found {}",
                statements.len()
            )));
        }
        let statement = statements.remove(0);
        let text = statement.to_string();
        let plan = self.plan(statement).await?;
        Ok(PreparedQuery::new(plan, text)?)
    }

    /// Runs a prepared query with `params` bound to its `$n`: through its generic plan
    /// when it has a valid one (see [`PreparedQuery`]), otherwise planned afresh with the
    /// values in place.
    pub async fn execute_prepared(
        &self,
        prepared: &PreparedQuery,
        params: &ParamValues,
    ) -> Result<SendableRecordBatchStream> {
        self.changed_state
            .store(prepared.changes_state(), Ordering::Release);
        if self.read_only {
            // Before the generic plan: a kept plan may call functions that write.
            check_read_only(prepared.plan(), prepared.text())?;
        }
        if let Some(direct) = prepared.direct() {
            let watch = self.watch();
            let stream = watch
                .run(async { Ok(direct.execute(params).await?) })
                .await?;
            return Ok(watch.guard(stream));
        }
        let key = PlanKey {
            data_generation: self.engine.data_generation(),
            session_epoch: self.plan_epoch.load(Ordering::Acquire),
        };
        let watch = self.watch();
        if let Some(generic) = prepared.claim(key) {
            return Ok(watch.guard(generic.execute(params)?));
        }
        if prepared.worth_trying(key) {
            match watch.run(self.generic_plan(prepared, key)).await? {
                Some(generic) => {
                    let generic = prepared.set_ready(generic);
                    return Ok(watch.guard(generic.execute(params)?));
                }
                None => prepared.set_unsuitable(key),
            }
        }
        let bound = prepared.plan().clone().replace_params_with_values(params)?;
        self.run_plan(bound, prepared.text().to_string(), watch)
            .await
    }

    /// A generic plan for `prepared`, if it can have one now.
    async fn generic_plan(
        &self,
        prepared: &PreparedQuery,
        key: PlanKey,
    ) -> Result<Option<GenericPlan>> {
        let Some((logical, params)) = prepared.generic_logical() else {
            return Ok(None);
        };
        let ctx = self.engine.context();
        let mut state = ctx.state();
        // A plan that fails here fails again, with its real error, when planned afresh.
        let Ok(mut physical) = state.create_physical_plan(&logical).await else {
            return Ok(None);
        };
        let Some(rows) = prepared::rows_in_memory(&physical) else {
            return Ok(None);
        };
        if rows <= SINGLE_PARTITION_ROWS && state.config().target_partitions() > 1 {
            // Over a few rows, parallel partitions cost more (tasks, channels, a merge)
            // than they save, and a kept plan pays that on every execution.
            state.config_mut().options_mut().execution.target_partitions = 1;
            if let Ok(single) = state.create_physical_plan(&logical).await
                && prepared::rows_in_memory(&single).is_some()
            {
                physical = single;
            }
        }
        Ok(Some(GenericPlan::new(
            key,
            physical,
            params,
            ctx.task_ctx(),
        )))
    }

    async fn run_plan(
        &self,
        plan: LogicalPlan,
        text: String,
        watch: interrupt::Watch,
    ) -> Result<SendableRecordBatchStream> {
        self.changed_state
            .store(changes_state(&plan), Ordering::Release);
        if self.read_only {
            check_read_only(&plan, &text)?;
        }
        let stream = watch.run(self.engine.execute_plan(plan, text)).await?;
        Ok(watch.guard(stream))
    }

    fn watch(&self) -> interrupt::Watch {
        let timeout = self.read_settings().statement_timeout();
        self.interrupt.watch(timeout)
    }

    fn read_settings(&self) -> std::sync::RwLockReadGuard<'_, Settings> {
        self.settings.read().expect(crate::LOCK_POISONED)
    }

    /// `Some` when `sql` is a statement the session answers itself.
    async fn session_statement(&self, sql: &Sql) -> Option<Result<SendableRecordBatchStream>> {
        let done = || Ok(empty_stream());
        Some(match sql {
            Sql::Set(set) => match set {
                Set::SingleAssignment {
                    variable, values, ..
                } => {
                    let name = object_name(variable);
                    if name.starts_with("datafusion.") {
                        if self.read_only && name.starts_with("datafusion.runtime.") {
                            return Some(Err(SessionError::ReadOnly {
                                statement: format!("SET {name}"),
                            }
                            .into()));
                        }
                        return None;
                    }
                    match set_value(values) {
                        None => self.reset(&name),
                        Some(value) => self.set(&name, &value),
                    }
                    .and_then(|_| done())
                }
                Set::SetTimeZone { value, .. } => match set_value(std::slice::from_ref(value)) {
                    None => self.reset("TimeZone"),
                    Some(value) => self.set("TimeZone", &value),
                }
                .and_then(|_| done()),
                Set::SetNames { charset_name, .. } => self
                    .set("client_encoding", &charset_name.value)
                    .and_then(|_| done()),
                // Isolation levels and session characteristics: every statement is its
                // own snapshot-isolated commit whatever is asked.
                Set::SetTransaction { .. } | Set::SetSessionParam(_) => done(),
                _ => return None,
            },
            Sql::ShowVariable { variable } => {
                let words: Vec<String> = variable
                    .iter()
                    .map(|i| i.value.to_ascii_lowercase())
                    .collect();
                // PostgreSQL's multi-word forms of SHOW.
                let name = match words.iter().map(String::as_str).collect::<Vec<_>>()[..] {
                    ["transaction", "isolation", "level"] => "transaction_isolation".to_string(),
                    ["time", "zone"] => "TimeZone".to_string(),
                    ["session", "authorization"] => "session_authorization".to_string(),
                    _ => variable
                        .iter()
                        .map(|i| i.value.as_str())
                        .collect::<Vec<_>>()
                        .join("."),
                };
                if name.to_ascii_lowercase().starts_with("datafusion") {
                    return None;
                }
                self.show(&name)
            }
            Sql::Reset(reset) => match &reset.reset {
                Reset::ALL => {
                    self.reset_all();
                    done()
                }
                Reset::ConfigurationParameter(name) => {
                    self.reset(&object_name(name)).and_then(|_| done())
                }
            },
            Sql::Discard {
                object_type: DiscardObject::ALL,
            } => {
                self.reset_all();
                self.cursors.lock().await.clear();
                done()
            }
            Sql::StartTransaction { .. } => {
                self.in_transaction.store(true, Ordering::SeqCst);
                done()
            }
            Sql::Commit { .. }
            | Sql::Rollback {
                savepoint: None, ..
            } => {
                self.in_transaction.store(false, Ordering::SeqCst);
                self.cursors.lock().await.retain(|_, cursor| cursor.hold);
                done()
            }
            Sql::Savepoint { .. } | Sql::ReleaseSavepoint { .. } | Sql::Rollback { .. } => done(),
            Sql::Declare { stmts } => self.declare(stmts).await,
            Sql::Fetch {
                name, direction, ..
            } => self.fetch(&name.value, direction).await,
            Sql::Close { cursor } => {
                let mut cursors = self.cursors.lock().await;
                match cursor {
                    CloseCursor::All => {
                        cursors.clear();
                        done()
                    }
                    CloseCursor::Specific { name } => match cursors.remove(&name.value) {
                        Some(_) => done(),
                        None => Err(SessionError::CursorNotFound {
                            name: name.value.clone(),
                        }
                        .into()),
                    },
                }
            }
            _ => return None,
        })
    }

    fn show(&self, name: &str) -> Result<SendableRecordBatchStream> {
        let settings = self.read_settings();
        if name.eq_ignore_ascii_case("all") {
            let (names, values): (Vec<&str>, Vec<&str>) = settings.all().unzip();
            let schema = Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("setting", DataType::Utf8, false),
            ]));
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(names)),
                    Arc::new(StringArray::from(values)),
                ],
            )?;
            return batch_stream(schema, vec![batch]);
        }
        let value = settings.get(name)?;
        let schema = Arc::new(Schema::new(vec![Field::new(
            settings.display_name(name),
            DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(vec![value]))],
        )?;
        batch_stream(schema, vec![batch])
    }

    fn reset(&self, name: &str) -> Result<()> {
        self.settings
            .write()
            .expect(crate::LOCK_POISONED)
            .reset(name)?;
        let value = self.setting(name).unwrap_or_default();
        self.apply(name, &value)
    }

    fn reset_all(&self) {
        let read_only = self.read_only;
        let mut settings = self.settings.write().expect(crate::LOCK_POISONED);
        settings.reset_all();
        if read_only {
            settings.force("transaction_read_only", "on");
        }
        drop(settings);
        // Defaults are valid by construction.
        for name in ["TimeZone", "search_path", "martdb.query_memory_limit"] {
            let value = self.setting(name).unwrap_or_default();
            let _ = self.apply(name, &value);
        }
    }

    /// Carries a setting over to the DataFusion configuration where it changes
    /// behaviour.
    fn apply(&self, name: &str, value: &str) -> Result<()> {
        let ctx = self.engine.context();
        match name.to_ascii_lowercase().as_str() {
            "timezone" => {
                let state = ctx.state_ref();
                let mut state = state.write();
                state
                    .config_mut()
                    .options_mut()
                    .set("datafusion.execution.time_zone", value)?;
            }
            "martdb.query_memory_limit" => {
                let limit = self.read_settings().bytes("martdb.query_memory_limit");
                self.memory.set_limit(limit.unwrap_or(0));
            }
            "martdb.ml_device" => {
                let state = ctx.state_ref();
                state
                    .write()
                    .config_mut()
                    .options_mut()
                    .set("martdb.ml_device", value)?;
            }
            "search_path" => {
                // The first schema of the path that exists becomes the default for
                // unqualified names; PostgreSQL also skips missing ones. Looked up
                // before taking the state's write lock, which `catalog()` would need.
                let catalog = ctx.state().config_options().catalog.default_catalog.clone();
                let schema = self
                    .read_settings()
                    .search_path()
                    .into_iter()
                    .find(|schema| {
                        ctx.catalog(&catalog)
                            .is_some_and(|c| c.schema(schema).is_some())
                    })
                    .unwrap_or_else(|| crate::catalog::DEFAULT_SCHEMA.to_string());
                let state = ctx.state_ref();
                state
                    .write()
                    .config_mut()
                    .options_mut()
                    .catalog
                    .default_schema = schema;
            }
            _ => {}
        }
        Ok(())
    }

    async fn declare(&self, declares: &[ast::Declare]) -> Result<SendableRecordBatchStream> {
        for declare in declares {
            let Some(query) = &declare.for_query else {
                return Err(Error::Unsupported(
                    "DECLARE without CURSOR FOR <query> is not supported".into(),
                ));
            };
            let hold = declare.hold.unwrap_or(false);
            if !hold && !self.in_transaction() {
                return Err(SessionError::NoTransaction.into());
            }
            if declare.scroll == Some(true) {
                return Err(Error::Unsupported(
                    "SCROLL cursors are not supported: cursors only move forward".into(),
                ));
            }
            for name in &declare.names {
                if self.cursors.lock().await.contains_key(&name.value) {
                    return Err(SessionError::CursorExists {
                        name: name.value.clone(),
                    }
                    .into());
                }
                let statement = Statement::Statement(Box::new(Sql::Query(query.clone())));
                // Boxed: `execute` is what brought us here.
                let stream = Box::pin(self.execute(statement)).await?;
                self.cursors
                    .lock()
                    .await
                    .insert(name.value.clone(), Cursor::new(stream, hold));
            }
        }
        Ok(empty_stream())
    }

    async fn fetch(
        &self,
        name: &str,
        direction: &ast::FetchDirection,
    ) -> Result<SendableRecordBatchStream> {
        let count = cursor::forward_count(direction)?;
        let mut cursors = self.cursors.lock().await;
        let cursor = cursors
            .get_mut(name)
            .ok_or_else(|| SessionError::CursorNotFound {
                name: name.to_string(),
            })?;
        let batches = cursor.fetch(count).await?;
        batch_stream(cursor.schema(), batches)
    }
}

/// Refuses plans that write, for read-only sessions.
fn check_read_only(plan: &LogicalPlan, text: &str) -> Result<()> {
    let writes = matches!(
        plan,
        LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_)
    );
    if writes {
        let statement = text
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        return Err(SessionError::ReadOnly { statement }.into());
    }
    if let Some(function) = writing_function(plan) {
        return Err(SessionError::ReadOnly {
            statement: format!("{}()", function.to_uppercase()),
        }
        .into());
    }
    Ok(())
}

/// Whether running `plan` changes durable state: DDL, a write, `COPY` to a file, or a
/// function that writes (coupons, dictionary, audiences, rules, models).
pub(crate) fn changes_state(plan: &LogicalPlan) -> bool {
    matches!(
        plan,
        LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_)
    ) || writing_function(plan).is_some()
}

/// The first function in `plan` that changes state outside tables (the id dictionary,
/// audiences, coupons), which a read-only session must not call (nor the query of a
/// table function such as `attribution`).
pub(crate) fn writing_function(plan: &LogicalPlan) -> Option<String> {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::logical_expr::Expr;
    let mut found = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = datafusion::datasource::source_as_provider(&scan.source)
            && let Some(function) = crate::udf::identity::writing_table_function(&*provider)
                .or_else(|| crate::udf::rules::writing_table_function(&*provider))
                .or_else(|| crate::udf::ml::writing_table_function(&*provider))
        {
            found = Some(function.to_string());
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && crate::udf::WRITING_FUNCTIONS.contains(&f.name())
                {
                    found = Some(f.name().to_string());
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found
}

fn object_name(name: &ast::ObjectName) -> String {
    name.0
        .iter()
        .map(|part| match part.as_ident() {
            Some(ident) => ident.value.clone(),
            None => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The text of `SET name = values`; `None` for `DEFAULT`.
fn set_value(values: &[Expr]) -> Option<String> {
    let parts: Vec<String> = values
        .iter()
        .map(|value| match value {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(ident) => ident.value.clone(),
            other => other.to_string(),
        })
        .collect();
    if parts.len() == 1 && parts[0].eq_ignore_ascii_case("default") {
        return None;
    }
    Some(parts.join(", "))
}

fn batch_stream(
    schema: Arc<Schema>,
    batches: Vec<RecordBatch>,
) -> Result<SendableRecordBatchStream> {
    Ok(Box::pin(MemoryStream::try_new(batches, schema, None)?))
}

fn empty_stream() -> SendableRecordBatchStream {
    let schema = Arc::new(Schema::empty());
    Box::pin(
        MemoryStream::try_new(vec![], schema, None).expect("no batches cannot mismatch the schema"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn session() -> (tempfile::TempDir, Session) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
        let session = engine.session();
        (dir, session)
    }

    fn text(batches: &[RecordBatch]) -> String {
        datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn settings_are_per_session_and_reach_current_setting() {
        let (_dir, a) = session().await;
        let b = a.engine().session();
        a.sql("SET application_name = 'report'").await.unwrap();
        let shown = a.sql("SHOW application_name").await.unwrap();
        assert!(text(&shown).contains("report"));
        let current = a
            .sql("SELECT current_setting('application_name') AS v")
            .await
            .unwrap();
        assert!(text(&current).contains("report"));
        assert_eq!(b.setting("application_name").unwrap(), "");
        let err = a.sql("SET no_such_parameter = 1").await.unwrap_err();
        assert_eq!(err.sqlstate(), "42704");
    }

    #[tokio::test]
    async fn search_path_picks_the_default_schema() {
        let (_dir, s) = session().await;
        s.sql("CREATE SCHEMA marts").await.unwrap();
        s.sql("CREATE TABLE marts.kpis (v INT)").await.unwrap();
        assert_eq!(
            s.sql("SELECT * FROM kpis").await.unwrap_err().sqlstate(),
            "42P01"
        );
        s.sql("SET search_path TO marts, public").await.unwrap();
        s.sql("SELECT * FROM kpis").await.unwrap();
        s.sql("RESET search_path").await.unwrap();
        assert!(s.sql("SELECT * FROM kpis").await.is_err());
    }

    #[tokio::test]
    async fn cursors_fetch_forward_within_a_transaction() {
        let (_dir, s) = session().await;
        let err = s.sql("DECLARE c CURSOR FOR SELECT 1").await.unwrap_err();
        assert_eq!(err.sqlstate(), "25P01");
        s.sql("BEGIN").await.unwrap();
        s.sql("DECLARE c CURSOR FOR SELECT * FROM generate_series(1, 10) AS t(v)")
            .await
            .unwrap();
        let rows = |b: &[RecordBatch]| b.iter().map(|b| b.num_rows()).sum::<usize>();
        assert_eq!(rows(&s.sql("FETCH 4 FROM c").await.unwrap()), 4);
        assert_eq!(rows(&s.sql("FETCH NEXT FROM c").await.unwrap()), 1);
        assert_eq!(rows(&s.sql("FETCH ALL FROM c").await.unwrap()), 5);
        assert_eq!(rows(&s.sql("FETCH 3 FROM c").await.unwrap()), 0);
        s.sql("COMMIT").await.unwrap();
        assert_eq!(
            s.sql("FETCH 1 FROM c").await.unwrap_err().sqlstate(),
            "34000"
        );
    }

    #[tokio::test]
    async fn read_only_sessions_refuse_writes() {
        let (_dir, s) = session().await;
        s.sql("CREATE TABLE t (v INT)").await.unwrap();
        let ro = s.engine().session().read_only(true);
        for statement in [
            "CREATE TABLE u (v INT)",
            "INSERT INTO t VALUES (1)",
            "DROP TABLE t",
            "CREATE VIEW w AS SELECT 1",
        ] {
            let err = ro.sql(statement).await.unwrap_err();
            assert_eq!(err.sqlstate(), "25006", "{statement}: {err}");
        }
        ro.sql("SELECT count(*) FROM t").await.unwrap();
        assert_eq!(ro.setting("transaction_read_only").unwrap(), "on");
    }

    #[tokio::test]
    async fn statement_timeout_stops_a_long_query() {
        let (_dir, s) = session().await;
        s.sql("SET statement_timeout = '200ms'").await.unwrap();
        let err = s
            .sql("SELECT count(*) FROM generate_series(1, 10000000000) a")
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), "57014", "{err}");
        assert!(err.to_string().contains("statement timeout"), "{err}");
    }

    #[tokio::test]
    async fn cancel_stops_the_running_statement() {
        let (_dir, s) = session().await;
        let handle = s.cancel_handle();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            handle.cancel();
        });
        let err = s
            .sql("SELECT count(*) FROM generate_series(1, 10000000000) a")
            .await
            .unwrap_err();
        assert_eq!(err.sqlstate(), "57014", "{err}");
        // The session is usable afterwards.
        s.sql("SELECT 1").await.unwrap();
    }
}

//! pgwire handlers of one connection over its [`Session`]: statements in, Arrow batches
//! out as data rows (or COPY data).

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::{CopySource, CopyTarget, Statement as Sql};
use futures::{Sink, SinkExt, Stream, StreamExt, TryStreamExt};
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{CopyResponse, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone};
use pgwire::messages::data::DataRow;

use super::Shared;
use super::audit::{self, AuditLog, AuditRecord};
use super::auth::{Role, Startup};
use super::copy::{CopyFormat, copy_out, parse_copy_in};
use super::metrics::ServerMetrics;
use super::socket::{Limits, fatal};
use super::text;
use crate::session::PreparedQuery;
use crate::{Error, Session};

type ReadyCallback = Box<dyn Fn(&str, &str, (i32, Vec<u8>)) + Send + Sync>;

/// One client connection: its session (once authenticated) and protocol state.
pub(super) struct Connection {
    /// Itself, for the statement parser pgwire asks for by `&self`.
    me: std::sync::Weak<Connection>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// Counted in under `max_connections`; otherwise refused after startup.
    admitted: bool,
    session: OnceLock<Session>,
    user: OnceLock<(String, String)>,
    cancel_key: OnceLock<(i32, Vec<u8>)>,
    /// `COPY ... FROM STDIN` in progress: where to and the data so far.
    copy_in: Mutex<Option<CopyIn>>,
}

struct CopyIn {
    table: String,
    columns: Vec<String>,
    format: CopyFormat,
    data: Vec<u8>,
    audit: Audit,
}

pub(super) struct Handlers {
    connection: Arc<Connection>,
    startup: Arc<Startup<ReadyCallback>>,
}

impl Connection {
    pub(super) fn new(shared: Arc<Shared>, peer: SocketAddr, admitted: bool) -> Arc<Connection> {
        Arc::new_cyclic(|me| Connection {
            me: me.clone(),
            shared,
            peer,
            admitted,
            session: OnceLock::new(),
            user: OnceLock::new(),
            cancel_key: OnceLock::new(),
            copy_in: Mutex::new(None),
        })
    }

    pub(super) fn handlers(self: &Arc<Self>) -> Handlers {
        let connection = Arc::downgrade(self);
        let on_ready: ReadyCallback = Box::new(move |user, database, key| {
            if let Some(connection) = connection.upgrade() {
                connection.ready(user, database, key);
            }
        });
        Handlers {
            connection: self.clone(),
            startup: Arc::new(Startup::new(&self.shared.options.authentication, on_ready)),
        }
    }

    /// Authenticated: open the session with the user's role and accept cancels for it.
    fn ready(&self, user: &str, database: &str, key: (i32, Vec<u8>)) {
        let role = self.shared.options.authentication.users().role(user);
        let session = self
            .shared
            .engine
            .session()
            .read_only(role == Role::ReadOnly);
        for (name, value) in &self.shared.options.session_defaults {
            // Config::server_options checked them; an embedding program may not have.
            if let Err(e) = session.impose(name, value) {
                tracing::error!("ignoring the session default {name} = {value}: {e}");
            }
        }
        self.shared
            .cancels
            .lock()
            .expect(crate::LOCK_POISONED)
            .insert(key.clone(), session.cancel_handle());
        let _ = self.session.set(session);
        let _ = self.user.set((user.to_string(), database.to_string()));
        let _ = self.cancel_key.set(key);
        tracing::debug!("{user} connected to {database} as {role:?}");
    }

    /// The connection ended: forget its cancel key.
    pub(super) fn closed(&self) {
        if let Some(key) = self.cancel_key.get() {
            self.shared
                .cancels
                .lock()
                .expect(crate::LOCK_POISONED)
                .remove(key);
        }
    }

    fn session(&self) -> PgWireResult<&Session> {
        self.session
            .get()
            .ok_or_else(|| user_error("08P01", "the connection is not authenticated".to_owned()))
    }

    fn audit(&self, statement: &str) -> Audit {
        let (user, database) = self.user.get().cloned().unwrap_or_default();
        let log = match &self.shared.audit_log {
            Some(file) => AuditSink::File(file.clone()),
            None => AuditSink::Tracing,
        };
        Audit {
            log: Some(log),
            metrics: Some(self.shared.metrics.clone()),
            all: self.shared.options.audit,
            record: AuditRecord {
                user,
                database,
                statement: statement.to_string(),
                client: self.peer.to_string(),
                ..Default::default()
            },
            started: Instant::now(),
            changes_state: false,
            error: None,
        }
    }
}

impl Limits for Connection {
    fn refusal(&self) -> Option<ErrorInfo> {
        (!self.admitted).then(|| {
            fatal(
                "53300",
                &format!(
                    "sorry, too many clients already (max_connections = {})",
                    self.shared.options.max_connections
                ),
            )
        })
    }

    fn idle(&self) -> Option<(Duration, ErrorInfo)> {
        let session = self.session.get()?;
        let after = session.idle_timeout()?;
        let error = if session.in_transaction() {
            fatal(
                "25P03",
                "terminating connection due to idle-in-transaction timeout",
            )
        } else {
            fatal(
                "57P05",
                "terminating connection due to idle-session timeout",
            )
        };
        Some((after, error))
    }

    fn panicked(&self) {
        self.shared.metrics.connection_panics.add(1);
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.connection.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.connection.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.connection.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.connection.clone()
    }
}

/// One audit line, written when the statement's outcome is known (dropped): to the
/// audit log when there is one, else on the `martdb::audit` tracing target.
struct Audit {
    /// `None`: a placeholder that writes nothing.
    log: Option<AuditSink>,
    /// Where the statement is counted (`None` for a placeholder).
    metrics: Option<Arc<ServerMetrics>>,
    /// Every statement is audited (`audit = true`), not only those that change state.
    all: bool,
    record: AuditRecord,
    started: Instant,
    changes_state: bool,
    error: Option<String>,
}

#[derive(Clone)]
enum AuditSink {
    File(Arc<AuditLog>),
    Tracing,
}

impl Audit {
    /// Stands in for an audit moved into a row stream or a COPY.
    fn placeholder() -> Audit {
        Audit {
            log: None,
            metrics: None,
            all: false,
            record: AuditRecord::default(),
            started: Instant::now(),
            changes_state: false,
            error: None,
        }
    }

    fn add_rows(&mut self, rows: usize) {
        self.record.rows += rows as u64;
    }

    fn fail(&mut self, sqlstate: &str) {
        self.error = Some(sqlstate.to_string());
    }
}

impl Drop for Audit {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.statement(
                self.started.elapsed(),
                self.error.as_deref(),
                self.record.rows,
                self.changes_state,
            );
        }
        let Some(log) = &self.log else { return };
        if !(self.all || self.changes_state) {
            return;
        }
        let mut record = std::mem::take(&mut self.record);
        record.time = audit::now();
        record.duration_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        record.outcome = self.error.take().unwrap_or_else(|| "ok".into());
        record.changes_state = self.changes_state;
        match log {
            AuditSink::File(file) => {
                if let Err(e) = file.write(&record) {
                    tracing::error!("{e}; the line was: {record:?}");
                }
            }
            AuditSink::Tracing => tracing::info!(
                target: "martdb::audit",
                user = %record.user,
                client = %record.client,
                database = %record.database,
                duration_ms = record.duration_ms,
                rows = record.rows,
                outcome = %record.outcome,
                changes_state = record.changes_state,
                statement = %record.statement,
            ),
        }
    }
}

/// A statement prepared by Parse: its AST, its text and its plan with `$n` placeholders
/// (which keeps a generic physical plan where it can).
#[derive(Clone)]
pub(super) struct Prepared {
    statement: Statement,
    query: Arc<PreparedQuery>,
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

pub(super) fn pg_error(e: &Error) -> PgWireError {
    user_error(e.sqlstate(), e.to_string())
}

fn df_error(e: DataFusionError) -> PgWireError {
    pg_error(&Error::from(e))
}

/// What a statement answers on the wire.
enum Kind {
    Rows,
    /// Rows under another command tag (FETCH n).
    TaggedRows(&'static str),
    /// A row count read from the engine's `count` column.
    Insert,
    CreateTableAs,
    Command(String),
    Begin,
    End(&'static str),
    Copy,
    Deallocate(Option<String>),
    Other,
}

fn kind(statement: &Statement) -> Kind {
    match statement {
        Statement::Statement(s) => match s.as_ref() {
            Sql::Query(_)
            | Sql::Explain { .. }
            | Sql::ShowVariable { .. }
            | Sql::ShowTables { .. }
            | Sql::ShowColumns { .. } => Kind::Rows,
            Sql::Fetch { .. } => Kind::TaggedRows("FETCH"),
            Sql::Insert(_) => Kind::Insert,
            Sql::CreateTable(c) if c.query.is_some() => Kind::CreateTableAs,
            Sql::CreateTable(_) => Kind::Command("CREATE TABLE".into()),
            Sql::CreateView(_) => Kind::Command("CREATE VIEW".into()),
            Sql::CreateSchema { .. } => Kind::Command("CREATE SCHEMA".into()),
            Sql::Drop { object_type, .. } => Kind::Command(format!("DROP {object_type}")),
            Sql::Set(_) => Kind::Command("SET".into()),
            Sql::Reset(_) => Kind::Command("RESET".into()),
            Sql::Discard { .. } => Kind::Command("DISCARD ALL".into()),
            Sql::Declare { .. } => Kind::Command("DECLARE CURSOR".into()),
            Sql::Close { .. } => Kind::Command("CLOSE CURSOR".into()),
            Sql::StartTransaction { .. } => Kind::Begin,
            Sql::Commit { .. } => Kind::End("COMMIT"),
            Sql::Rollback {
                savepoint: None, ..
            } => Kind::End("ROLLBACK"),
            Sql::Rollback { .. } => Kind::Command("ROLLBACK".into()),
            Sql::Savepoint { .. } => Kind::Command("SAVEPOINT".into()),
            Sql::ReleaseSavepoint { .. } => Kind::Command("RELEASE".into()),
            Sql::Copy { .. } => Kind::Copy,
            Sql::Deallocate { name, .. } => Kind::Deallocate(
                (!name.value.eq_ignore_ascii_case("all")).then(|| name.value.clone()),
            ),
            _ => Kind::Other,
        },
        Statement::CreateExternalTable(_) => Kind::Command("CREATE TABLE".into()),
        Statement::Explain(_) => Kind::Rows,
        _ => Kind::Other,
    }
}

fn first_word(statement: &Statement) -> String {
    statement
        .to_string()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_uppercase()
}

/// Arrow batches to data rows; an error mid-stream keeps its SQLSTATE. The audit line is
/// written when the stream ends or is dropped.
fn data_rows(
    batches: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Send + 'static,
    fields: Arc<Vec<FieldInfo>>,
    mut audit: Audit,
    max_bytes: Option<usize>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    let rows = batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> = match batch {
                Ok(batch) => {
                    audit.add_rows(batch.num_rows());
                    encode_recordbatch(fields.clone(), text::postgres_text(batch, &fields))
                }
                Err(e) => {
                    let e = Error::from(e);
                    audit.fail(e.sqlstate());
                    Box::new(std::iter::once(Err(pg_error(&e))))
                }
            };
            futures::stream::iter(rows)
        })
        .flatten();
    let Some(max_bytes) = max_bytes else {
        return rows.left_stream();
    };
    // Rows go out until the next one would pass the limit; then the error, and nothing
    // after it.
    let mut sent = 0usize;
    rows.scan(false, move |failed, row| {
        if *failed {
            return futures::future::ready(None);
        }
        if let Ok(row) = &row {
            sent += row.data.len();
            if sent > max_bytes {
                *failed = true;
                return futures::future::ready(Some(Err(user_error(
                    "54000",
                    format!(
                        "the result is larger than martdb.max_result_size ({max_bytes} bytes): add a LIMIT or a WHERE clause, or ask for a larger limit"
                    ),
                ))));
            }
        }
        *failed = row.is_err();
        futures::future::ready(Some(row))
    })
    .right_stream()
}

/// The rows a write reports in the engine's `count` column.
async fn written_rows(stream: SendableRecordBatchStream) -> crate::Result<u64> {
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok(batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>())
        .map(|a| a.iter().flatten().sum::<u64>())
        .sum())
}

impl Connection {
    /// Runs one statement; `bound` is its prepared plan and the parameter values. With
    /// `lazy`, rows stream to the client; otherwise they are collected first, so that the
    /// statements of one simple query run strictly in order.
    async fn run<C>(
        &self,
        client: &mut C,
        statement: &Statement,
        text: &str,
        bound: Option<(&PreparedQuery, ParamValues)>,
        format: &Format,
        lazy: bool,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        let mut audit = self.audit(text);
        let result = self
            .run_audited(client, statement, bound, format, lazy, &mut audit)
            .await;
        match &result {
            Ok(Response::Query(_)) | Ok(Response::CopyIn(_)) => {}
            Ok(_) => drop(audit),
            Err(PgWireError::UserError(info)) => {
                audit.error = Some(info.code.clone());
            }
            Err(e) => audit.error = Some(e.to_string()),
        }
        result
    }

    async fn run_audited<C>(
        &self,
        client: &mut C,
        statement: &Statement,
        bound: Option<(&PreparedQuery, ParamValues)>,
        format: &Format,
        lazy: bool,
        audit: &mut Audit,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
    {
        let session = self.session()?;
        let kind = kind(statement);
        match &kind {
            Kind::Copy => return self.copy(statement.clone(), audit).await,
            Kind::Deallocate(name) => {
                // DEALLOCATE ALL: pgwire has no "remove all"; a connection's named
                // statements are few and die with it.
                if let Some(name) = name {
                    client.portal_store().rm_statement(name);
                }
                return Ok(Response::Execution(Tag::new("DEALLOCATE")));
            }
            _ => {}
        }
        let result = match bound {
            None => session.execute(statement.clone()).await,
            Some((query, params)) => session.execute_prepared(query, &params).await,
        };
        // By its kind where planning failed before the session could tell.
        audit.changes_state = session.last_changed_state()
            || match &kind {
                Kind::Insert | Kind::CreateTableAs => true,
                Kind::Command(tag) => tag.starts_with("CREATE") || tag.starts_with("DROP"),
                _ => false,
            };
        let stream = result.map_err(|e| pg_error(&e))?;
        let rows = match kind {
            Kind::Rows | Kind::TaggedRows(_) => true,
            Kind::Other => !stream.schema().fields().is_empty(),
            _ => false,
        };
        if rows {
            let fields = Arc::new(arrow_schema_to_pg_fields(&stream.schema(), format, None)?);
            let audit = std::mem::replace(audit, Audit::placeholder());
            let max_bytes = session.max_result_size();
            let mut response = if lazy {
                QueryResponse::new(fields.clone(), data_rows(stream, fields, audit, max_bytes))
            } else {
                let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(df_error)?;
                let batches =
                    futures::stream::iter(batches.into_iter().map(Ok::<_, DataFusionError>));
                QueryResponse::new(fields.clone(), data_rows(batches, fields, audit, max_bytes))
            };
            if let Kind::TaggedRows(tag) = kind {
                response.set_command_tag(tag);
            }
            return Ok(Response::Query(response));
        }
        let count = written_rows(stream).await.map_err(|e| pg_error(&e))? as usize;
        audit.record.rows = count as u64;
        Ok(match kind {
            Kind::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Kind::End(tag) => Response::TransactionEnd(Tag::new(tag)),
            Kind::Insert => Response::Execution(Tag::new("INSERT").with_oid(0).with_rows(count)),
            // PostgreSQL answers CREATE TABLE ... AS with SELECT n.
            Kind::CreateTableAs => Response::Execution(Tag::new("SELECT").with_rows(count)),
            Kind::Command(tag) => Response::Execution(Tag::new(&tag)),
            _ => Response::Execution(Tag::new(&first_word(statement))),
        })
    }

    /// `COPY (query) TO STDOUT`, `COPY table TO STDOUT`, `COPY table FROM STDIN`.
    async fn copy(&self, statement: Statement, audit: &mut Audit) -> PgWireResult<Response> {
        let session = self.session()?;
        let Statement::Statement(sql) = statement else {
            unreachable!(
                "run_audited calls copy() only when kind() is Kind::Copy: a sqlparser COPY"
            )
        };
        let Sql::Copy {
            source,
            to,
            target,
            options,
            legacy_options,
            ..
        } = *sql
        else {
            unreachable!("run_audited calls copy() only when kind() is Kind::Copy: a COPY")
        };
        let format =
            CopyFormat::from_options(&options, &legacy_options).map_err(|e| pg_error(&e))?;
        match (to, target, source) {
            (true, CopyTarget::Stdout, source) => {
                let query = match source {
                    CopySource::Query(query) => query.to_string(),
                    CopySource::Table {
                        table_name,
                        columns,
                    } if columns.is_empty() => format!("SELECT * FROM {table_name}"),
                    CopySource::Table {
                        table_name,
                        columns,
                    } => format!(
                        "SELECT {} FROM {table_name}",
                        columns
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                let statements = session.parse(&query).map_err(|e| pg_error(&e))?;
                let [statement] = <[Statement; 1]>::try_from(statements).map_err(|statements| {
                    user_error(
                        "42601",
                        format!(
                            "COPY's query is {} statements, not one: {query}",
                            statements.len()
                        ),
                    )
                })?;
                let stream = session
                    .execute(statement)
                    .await
                    .map_err(|e| pg_error(&e))?;
                let columns = stream.schema().fields().len();
                Ok(Response::CopyOut(CopyResponse::new(
                    0,
                    columns,
                    copy_out(stream, format),
                )))
            }
            (
                false,
                CopyTarget::Stdin,
                CopySource::Table {
                    table_name,
                    columns,
                },
            ) => {
                let table = table_name.to_string();
                let provider = session
                    .engine()
                    .context()
                    .table_provider(table.as_str())
                    .await
                    .map_err(df_error)?;
                if session.is_read_only() {
                    return Err(pg_error(
                        &crate::session::SessionError::ReadOnly {
                            statement: "COPY FROM".into(),
                        }
                        .into(),
                    ));
                }
                let width = if columns.is_empty() {
                    provider.schema().fields().len()
                } else {
                    columns.len()
                };
                let columns = columns.iter().map(|c| c.value.clone()).collect();
                *self.copy_in.lock().expect(crate::LOCK_POISONED) = Some(CopyIn {
                    table,
                    columns,
                    format,
                    data: Vec::new(),
                    audit: {
                        audit.changes_state = true;
                        std::mem::replace(audit, Audit::placeholder())
                    },
                });
                Ok(Response::CopyIn(CopyResponse::new(
                    0,
                    width,
                    futures::stream::empty(),
                )))
            }
            _ => Err(user_error(
                "0A000",
                "COPY supports TO STDOUT and FROM STDIN over the wire; to write a file use COPY (query) TO 'file.parquet' from the martdb CLI".to_owned(),
            )),
        }
    }

    /// Appends the buffered COPY data to its table in one commit.
    async fn finish_copy_in(&self, copy: &mut CopyIn) -> crate::Result<u64> {
        let session = self.session.get().ok_or_else(|| {
            Error::Unsupported("COPY data on an unauthenticated connection".into())
        })?;
        let ctx = session.engine().context();
        let provider = ctx.table_provider(copy.table.as_str()).await?;
        let batch = parse_copy_in(&copy.data, &copy.format, &provider.schema(), &copy.columns)?;
        if batch.num_rows() == 0 {
            return Ok(0);
        }
        let input = ctx.read_batch(batch)?.into_unoptimized_plan();
        let plan = LogicalPlanBuilder::insert_into(
            input,
            copy.table.as_str(),
            provider_as_source(provider),
            InsertOp::Append,
        )?
        .build()?;
        let stream = session
            .execute_plan(plan, format!("COPY {} FROM STDIN", copy.table))
            .await?;
        written_rows(stream).await
    }
}

#[async_trait]
impl SimpleQueryHandler for Connection {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match self.session()?.parse(query) {
            Ok(statements) => statements,
            Err(e) => {
                let mut audit = self.audit(query);
                audit.error = Some(e.sqlstate().to_string());
                return Err(pg_error(&e));
            }
        };
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let last = statements.len() - 1;
        let mut responses = Vec::with_capacity(statements.len());
        for (i, statement) in statements.into_iter().enumerate() {
            let text = statement.to_string();
            match self
                .run(
                    client,
                    &statement,
                    &text,
                    None,
                    &Format::UnifiedText,
                    i == last,
                )
                .await
            {
                Ok(response) => {
                    let copy = matches!(response, Response::CopyIn(_));
                    responses.push(response);
                    if copy {
                        // The client sends the data next; later statements would be
                        // answered before it.
                        break;
                    }
                }
                Err(e) => {
                    responses.push(Response::Error(Box::new(e.into())));
                    break;
                }
            }
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Connection {
    type Statement = Prepared;
    type QueryParser = Connection;

    fn query_parser(&self) -> Arc<Connection> {
        // Parsing plans with the session's settings, so the parser is the connection.
        self.me
            .upgrade()
            .expect("a Connection lives only in the Arc that new() returns, and `&self` borrows it")
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Prepared {
            statement,
            query: prepared,
        } = &portal.statement.statement;
        let query = crate::session::is_query(statement);
        let bound = if portal.parameter_len() == 0 && !query {
            // Session statements, writes and DDL run from the AST.
            None
        } else {
            let types: Vec<Option<&DataType>> = prepared
                .parameter_types()
                .iter()
                .map(Option::as_ref)
                .collect();
            Some((prepared.as_ref(), deserialize_parameters(portal, &types)?))
        };
        self.run(
            client,
            statement,
            prepared.text(),
            bound,
            &portal.result_column_format,
            true,
        )
        .await
    }
}

#[async_trait]
impl QueryParser for Connection {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = self.session()?;
        let mut statements = session.parse(sql).map_err(|e| pg_error(&e))?;
        match statements.len() {
            0 => return Ok(None),
            1 => {}
            _ => {
                return Err(user_error(
                    "42601",
                    "cannot insert multiple commands into a prepared statement".to_owned(),
                ));
            }
        }
        let statement = statements.remove(0);
        let plan = match &statement {
            // Session statements (settings, transactions, cursors, COPY) are not planned
            // by DataFusion; they run when executed.
            Statement::Statement(s)
                if !matches!(
                    s.as_ref(),
                    Sql::Query(_)
                        | Sql::Insert(_)
                        | Sql::CreateTable(_)
                        | Sql::CreateView(_)
                        | Sql::Drop { .. }
                        | Sql::CreateSchema { .. }
                        | Sql::Explain { .. }
                ) =>
            {
                LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(datafusion::common::DFSchema::empty()),
                })
            }
            _ => session
                .plan(statement.clone())
                .await
                .map_err(|e| pg_error(&e))?,
        };
        let text = statement.to_string();
        Ok(Some(Prepared {
            statement,
            query: Arc::new(PreparedQuery::new(plan, text).map_err(df_error)?),
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        stmt.query
            .parameter_types()
            .iter()
            .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let rows = match kind(&stmt.statement) {
            Kind::Rows => true,
            Kind::Other => {
                !matches!(stmt.query.plan(), LogicalPlan::Ddl(_) | LogicalPlan::Dml(_))
                    && !stmt.query.plan().schema().fields().is_empty()
            }
            _ => false,
        };
        if !rows {
            return Ok(vec![]);
        }
        arrow_schema_to_pg_fields(
            stmt.query.plan().schema().as_arrow(),
            column_format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

#[async_trait]
impl CopyHandler for Connection {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self.copy_in.lock().expect(crate::LOCK_POISONED).as_mut() {
            Some(copy) => {
                copy.data.extend_from_slice(&copy_data.data);
                Ok(())
            }
            None => Err(user_error(
                "08P01",
                "COPY data received outside COPY FROM STDIN".to_owned(),
            )),
        }
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let copy = self.copy_in.lock().expect(crate::LOCK_POISONED).take();
        let Some(mut copy) = copy else {
            return Err(user_error(
                "08P01",
                "COPY done received outside COPY FROM STDIN".to_owned(),
            ));
        };
        match self.finish_copy_in(&mut copy).await {
            Ok(rows) => {
                copy.audit.record.rows = rows;
                client
                    .send(PgWireBackendMessage::CommandComplete(
                        Tag::new("COPY").with_rows(rows as usize).into(),
                    ))
                    .await?;
                Ok(())
            }
            Err(e) => {
                copy.audit.error = Some(e.sqlstate().to_string());
                Err(pg_error(&e))
            }
        }
    }

    async fn on_copy_fail<C>(
        &self,
        _client: &mut C,
        fail: pgwire::messages::copy::CopyFail,
    ) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Some(mut copy) = self.copy_in.lock().expect(crate::LOCK_POISONED).take() {
            copy.audit.error = Some("57014".into());
        }
        user_error("57014", format!("COPY from stdin failed: {}", fail.message))
    }
}

#[async_trait]
impl CancelHandler for Connection {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let key = (request.pid, request.secret_key.to_bytes().to_vec());
        let handle = self
            .shared
            .cancels
            .lock()
            .expect(crate::LOCK_POISONED)
            .get(&key)
            .cloned();
        match handle {
            Some(handle) => {
                tracing::info!("cancel request for connection {}", request.pid);
                handle.cancel();
            }
            None => tracing::info!("cancel request for unknown connection {}", request.pid),
        }
    }
}

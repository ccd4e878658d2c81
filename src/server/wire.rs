//! pgwire handlers over the engine: statements in, Arrow batches out as data rows.

use std::sync::Arc;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch, UInt64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::Statement;
use datafusion::sql::sqlparser::ast::Statement as Sql;
use futures::{Stream, StreamExt, TryStreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

use crate::{Engine, Error};

pub(super) struct Handlers(Arc<Service>);

impl Handlers {
    pub(super) fn new(engine: Engine) -> Self {
        Handlers(Arc::new(Service { engine }))
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }
}

pub(super) struct Service {
    engine: Engine,
}

/// A statement prepared by Parse: its AST and its plan with `$n` placeholders.
#[derive(Clone)]
pub(super) struct Prepared {
    statement: Statement,
    plan: LogicalPlan,
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
}

fn pg_error(e: &Error) -> PgWireError {
    user_error(e.sqlstate(), e.to_string())
}

fn df_error(e: DataFusionError) -> PgWireError {
    pg_error(&Error::from(e))
}

/// What a statement answers on the wire.
enum Kind {
    Rows,
    /// A row count read from the engine's `count` column.
    Insert,
    CreateTableAs,
    Command(String),
    Begin,
    End(&'static str),
    /// A client setting martdb does not keep yet (DateStyle, application_name, ...):
    /// accepted so that drivers' connection set-up works.
    IgnoredSetting,
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
            Sql::Insert(_) => Kind::Insert,
            Sql::CreateTable(c) if c.query.is_some() => Kind::CreateTableAs,
            Sql::CreateTable(_) => Kind::Command("CREATE TABLE".into()),
            Sql::CreateView(_) => Kind::Command("CREATE VIEW".into()),
            Sql::CreateSchema { .. } => Kind::Command("CREATE SCHEMA".into()),
            Sql::Drop { object_type, .. } => Kind::Command(format!("DROP {object_type}")),
            Sql::Set(_) if !s.to_string().to_ascii_lowercase().contains("datafusion.") => {
                Kind::IgnoredSetting
            }
            Sql::Set(_) => Kind::Command("SET".into()),
            // No multi-statement transactions yet: every statement commits on its own, so
            // BEGIN/COMMIT wrappers from drivers are accepted.
            Sql::StartTransaction { .. } => Kind::Begin,
            Sql::Commit { .. } => Kind::End("COMMIT"),
            Sql::Rollback { .. } => Kind::End("ROLLBACK"),
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

/// Arrow batches to data rows; an error mid-stream keeps its SQLSTATE.
fn data_rows(
    batches: impl Stream<Item = datafusion::error::Result<RecordBatch>> + Send + 'static,
    fields: Arc<Vec<FieldInfo>>,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send + 'static {
    batches
        .map(move |batch| {
            let rows: Box<dyn Iterator<Item = PgWireResult<DataRow>> + Send> = match batch {
                Ok(batch) => encode_recordbatch(fields.clone(), batch),
                Err(e) => Box::new(std::iter::once(Err(df_error(e)))),
            };
            futures::stream::iter(rows)
        })
        .flatten()
}

async fn row_count(stream: SendableRecordBatchStream) -> PgWireResult<usize> {
    let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(df_error)?;
    Ok(batches
        .iter()
        .filter_map(|b| b.column_by_name("count"))
        .filter_map(|c| c.as_any().downcast_ref::<UInt64Array>())
        .map(|a| a.iter().flatten().sum::<u64>())
        .sum::<u64>() as usize)
}

/// `$n` placeholder types in order (`None` where the planner could not infer one).
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let mut out: Vec<Option<DataType>> = Vec::new();
    for (name, data_type) in plan.get_parameter_types().map_err(df_error)? {
        if let Some(i) = name
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|i| *i > 0)
        {
            if out.len() < i {
                out.resize(i, None);
            }
            out[i - 1] = data_type;
        }
    }
    Ok(out)
}

impl Service {
    /// Runs one statement; `bound` is its plan with parameters substituted. With `lazy`,
    /// rows stream to the client; otherwise they are collected first, so that the
    /// statements of one simple query run strictly in order.
    async fn run(
        &self,
        statement: Statement,
        bound: Option<LogicalPlan>,
        format: &Format,
        lazy: bool,
    ) -> PgWireResult<Response> {
        let kind = kind(&statement);
        match kind {
            Kind::Begin => return Ok(Response::TransactionStart(Tag::new("BEGIN"))),
            Kind::End(tag) => return Ok(Response::TransactionEnd(Tag::new(tag))),
            Kind::IgnoredSetting => return Ok(Response::Execution(Tag::new("SET"))),
            _ => {}
        }
        let tag = first_word(&statement);
        let result = match bound {
            None => self.engine.execute(statement).await,
            Some(plan) => self.engine.execute_plan(plan, statement.to_string()).await,
        };
        let stream = result.map_err(|e| pg_error(&e))?;
        let rows = match kind {
            Kind::Rows => true,
            Kind::Other => !stream.schema().fields().is_empty(),
            _ => false,
        };
        if rows {
            let fields = Arc::new(arrow_schema_to_pg_fields(&stream.schema(), format, None)?);
            let response = if lazy {
                QueryResponse::new(fields.clone(), data_rows(stream, fields))
            } else {
                let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(df_error)?;
                let batches =
                    futures::stream::iter(batches.into_iter().map(Ok::<_, DataFusionError>));
                QueryResponse::new(fields.clone(), data_rows(batches, fields))
            };
            return Ok(Response::Query(response));
        }
        let count = row_count(stream).await?;
        Ok(Response::Execution(match kind {
            Kind::Insert => Tag::new("INSERT").with_oid(0).with_rows(count),
            // PostgreSQL answers CREATE TABLE ... AS with SELECT n.
            Kind::CreateTableAs => Tag::new("SELECT").with_rows(count),
            Kind::Command(tag) => Tag::new(&tag),
            _ => Tag::new(&tag),
        }))
    }
}

#[async_trait]
impl SimpleQueryHandler for Service {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let statements = self.engine.parse(query).map_err(|e| pg_error(&e))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let last = statements.len() - 1;
        let mut responses = Vec::with_capacity(statements.len());
        for (i, statement) in statements.into_iter().enumerate() {
            match self
                .run(statement, None, &Format::UnifiedText, i == last)
                .await
            {
                Ok(response) => responses.push(response),
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
impl ExtendedQueryHandler for Service {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        Arc::new(Parser {
            engine: self.engine.clone(),
        })
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let Prepared { statement, plan } = &portal.statement.statement;
        let bound = if portal.parameter_len() == 0 {
            // Planned again from the AST: sees tables created since Parse.
            None
        } else {
            let types = parameter_types(plan)?;
            let types: Vec<Option<&DataType>> = types.iter().map(Option::as_ref).collect();
            let params = deserialize_parameters(portal, &types)?;
            Some(
                plan.clone()
                    .replace_params_with_values(&params)
                    .map_err(df_error)?,
            )
        };
        self.run(statement.clone(), bound, &portal.result_column_format, true)
            .await
    }
}

pub(super) struct Parser {
    engine: Engine,
}

#[async_trait]
impl QueryParser for Parser {
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
        let mut statements = self.engine.parse(sql).map_err(|e| pg_error(&e))?;
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
        let plan = match kind(&statement) {
            // Settings and transaction control have nothing to plan.
            Kind::Begin | Kind::End(_) | Kind::IgnoredSetting => {
                LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
                    produce_one_row: false,
                    schema: Arc::new(datafusion::common::DFSchema::empty()),
                })
            }
            _ => self
                .engine
                .plan(statement.clone())
                .await
                .map_err(|e| pg_error(&e))?,
        };
        Ok(Some(Prepared { statement, plan }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        parameter_types(&stmt.plan)?
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
                !matches!(stmt.plan, LogicalPlan::Ddl(_) | LogicalPlan::Dml(_))
                    && !stmt.plan.schema().fields().is_empty()
            }
            _ => false,
        };
        if !rows {
            return Ok(vec![]);
        }
        arrow_schema_to_pg_fields(
            stmt.plan.schema().as_arrow(),
            column_format.unwrap_or(&Format::UnifiedText),
            None,
        )
    }
}

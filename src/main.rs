//! The `martdb` command line: `serve`, `sql` and `demo`. Thin: it parses arguments and
//! calls the library.

// Outside tests every possible panic must be an `expect` whose message says why it cannot
// fail, or an error: bad arguments or input files must never panic the command.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use datafusion::arrow::array::RecordBatch;
use futures::TryStreamExt;
use martdb::session::parse_bytes;
use martdb::{DEFAULT_DATA_DIR, Engine, EngineOptions};

/// mimalloc keeps freed memory for reuse: with the system allocator every large buffer a
/// query decodes (tens of MiB of bitmaps, Parquet pages) is fresh mmap'd memory the
/// kernel must fault in and zero, which was a third of a short query's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "martdb",
    version,
    about = "An embedded analytics database for marketing data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open a data directory and serve it over the PostgreSQL wire protocol.
    Serve {
        /// TOML configuration file (data, listen, memory_limit, auth, users, tls, audit);
        /// command-line flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Data directory or object-store URL [default: martdb-data].
        #[arg(long)]
        data: Option<String>,
        /// Address to listen on [default: 127.0.0.1:5433]. Beyond loopback, password
        /// authentication must be configured.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Audit every statement (user, client, statement, duration, rows, outcome), not
        /// only those that change state, which always are.
        #[arg(long)]
        audit: bool,
        /// The audit log, JSON lines [default: <data>/_martdb/audit.log].
        #[arg(long)]
        audit_file: Option<PathBuf>,
        /// Connections served at once; more are refused (default 100).
        #[arg(long)]
        max_connections: Option<usize>,
        /// Serve Prometheus metrics (GET /metrics) on this address, e.g. 127.0.0.1:9187.
        #[arg(long)]
        metrics_listen: Option<std::net::SocketAddr>,
        /// Generate the demo data set first if the directory has no tables yet.
        #[arg(long)]
        demo: bool,
        /// Memory limit for all queries together, e.g. 4G or 512M (default: half of RAM).
        #[arg(long, value_parser = parse_bytes)]
        memory_limit: Option<usize>,
        /// Memory for decoded copies of small tables, e.g. 1G; 0 turns the cache off
        /// (default: an eighth of the memory limit, at most 2G).
        #[arg(long, value_parser = parse_bytes)]
        table_cache: Option<usize>,
        /// Run the queries that can run there on this Ballista scheduler, e.g.
        /// df://127.0.0.1:50050 (see `martdb scheduler` and `martdb executor`).
        #[arg(long)]
        ballista: Option<String>,
    },
    /// Run SQL: a statement argument, a script file (-f) or standard input.
    Sql {
        /// Data directory or object-store URL (must exist).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: String,
        /// Read statements from this file.
        #[arg(short = 'f', long = "file", conflicts_with = "statement")]
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Write results to this file instead of standard output (required for parquet on a terminal).
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// Memory limit for all queries together, e.g. 4G or 512M (default: half of RAM).
        #[arg(long, value_parser = parse_bytes)]
        memory_limit: Option<usize>,
        /// Run the queries that can run there on this Ballista scheduler, e.g.
        /// df://127.0.0.1:50050.
        #[arg(long)]
        ballista: Option<String>,
        /// The SQL to run.
        statement: Option<String>,
    },
    /// Run a Ballista scheduler for martdb executors (scale-out; see README).
    Scheduler {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:50050")]
        listen: std::net::SocketAddr,
    },
    /// Run a Ballista executor with martdb's functions (scale-out; see README).
    Executor {
        /// The scheduler's address.
        #[arg(long, default_value = "127.0.0.1:50050")]
        scheduler: std::net::SocketAddr,
        /// Address to serve results on (Arrow Flight); clients and other executors
        /// connect to it.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// Tasks run at once [default: one per core].
        #[arg(long, default_value_t = 0)]
        cores: usize,
        /// Directory for shuffle and result files.
        #[arg(long)]
        work_dir: PathBuf,
    },
    /// Make a password verifier for a `[[users]]` entry of the server configuration.
    /// Reads the password from standard input.
    Passwd {
        /// The user name.
        #[arg(long, default_value = "analyst")]
        user: String,
        /// The role: admin, or read_only (queries only).
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Draw one series' history and forecast (with its intervals, and optionally its
    /// anomalies) as an SVG chart.
    Plot {
        /// Data directory or object-store URL (must exist).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: String,
        /// A query returning one series: a timestamp and a value.
        query: String,
        /// Steps to forecast.
        #[arg(long, default_value_t = 28)]
        horizon: usize,
        /// forecast()'s options, e.g. 'model = ets, level = 80 95'.
        #[arg(long, default_value = "")]
        options: String,
        /// Mark the observations forecast_anomalies() flags.
        #[arg(long)]
        anomalies: bool,
        /// The chart's title [default: the query].
        #[arg(long)]
        title: Option<String>,
        /// The SVG file to write.
        #[arg(short = 'o', long)]
        output: PathBuf,
        /// Width and height in pixels.
        #[arg(long, default_value_t = 960)]
        width: u32,
        #[arg(long, default_value_t = 420)]
        height: u32,
    },
    /// Back up a data directory that no server has open. While a server runs, ask it
    /// instead: `SELECT backup_database('/path/to/backup')`.
    Backup {
        /// Data directory (must exist).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: String,
        /// The backup directory to create.
        dest: PathBuf,
    },
    /// Restore a backup into a new (or empty) data directory.
    Restore {
        /// The backup directory.
        source: PathBuf,
        /// The data directory to restore into.
        #[arg(long)]
        data: PathBuf,
    },
    /// Write the synthetic marketing demo data set.
    Demo {
        /// Data directory to write into (created if missing).
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data: String,
        /// Number of users; every other table scales with it.
        #[arg(long, default_value_t = martdb::demo::DemoOptions::default().users)]
        users: u64,
        /// Random seed: the same seed gives the same data.
        #[arg(long, default_value_t = martdb::demo::DemoOptions::default().seed)]
        seed: u64,
    },
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Format {
    Table,
    Csv,
    Json,
    Parquet,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MARTDB_LOG")
                // Delta's writer warns on every write to a table with a bytea column
                // (bitmaps) that it keeps no statistics for it: expected, not news.
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,deltalake_core::writer::stats=error")
                }),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("ERROR: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ERROR: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A failure to report: martdb errors carry their SQLSTATE.
enum Failure {
    Engine(martdb::Error),
    Other(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Engine(e) => write!(f, "{e} (SQLSTATE {})", e.sqlstate()),
            Failure::Other(msg) => f.write_str(msg),
        }
    }
}

impl From<martdb::Error> for Failure {
    fn from(e: martdb::Error) -> Self {
        Failure::Engine(e)
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Serve {
            config,
            data,
            listen,
            audit,
            audit_file,
            max_connections,
            metrics_listen,
            demo,
            memory_limit,
            table_cache,
            ballista,
        } => {
            let config = match &config {
                Some(path) => martdb::server::config::Config::load(path)
                    .map_err(|e| Failure::Other(e.to_string()))?,
                None => Default::default(),
            };
            let data = data
                .or(config.data.clone())
                .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string());
            let listen = listen
                .or(config.listen)
                .unwrap_or_else(|| std::net::SocketAddr::from(([127, 0, 0, 1], 5433)));
            let memory_limit = match (memory_limit, &config.memory_limit) {
                (Some(limit), _) => Some(limit),
                (None, Some(text)) => Some(parse_bytes(text).map_err(|e| {
                    Failure::Other(format!("memory_limit in the configuration: {e}"))
                })?),
                (None, None) => None,
            };
            let table_cache = match (table_cache, &config.table_cache) {
                (Some(bytes), _) => Some(bytes),
                (None, Some(text)) => Some(parse_bytes(text).map_err(|e| {
                    Failure::Other(format!("table_cache in the configuration: {e}"))
                })?),
                (None, None) => None,
            };
            let mut server_options = config
                .server_options(listen)
                .map_err(|e| Failure::Other(e.to_string()))?;
            server_options.audit |= audit;
            if metrics_listen.is_some() {
                server_options.metrics_listen = metrics_listen;
            }
            if let Some(max) = max_connections {
                if max == 0 {
                    return Err(Failure::Other(
                        "--max-connections must be at least 1".into(),
                    ));
                }
                server_options.max_connections = max;
            }
            let privacy = config
                .privacy()
                .map_err(|e| Failure::Other(e.to_string()))?;
            let options = EngineOptions {
                memory_limit,
                table_cache,
                privacy,
                ballista,
                ..Default::default()
            };
            let engine = Engine::open_with(&data, options).await?;
            match (audit_file, &mut server_options.audit_log) {
                (Some(path), Some(log)) => log.path = path,
                (Some(path), None) => {
                    server_options.audit_log = Some(martdb::server::AuditOptions::new(path))
                }
                (None, None) => {
                    server_options.audit_log = Some(martdb::server::AuditOptions::new(
                        engine.state_dir().join("audit.log"),
                    ))
                }
                (None, Some(_)) => {}
            }
            if demo
                && engine
                    .sql("SELECT 1 FROM martdb.tables LIMIT 1")
                    .await?
                    .iter()
                    .all(|b| b.num_rows() == 0)
            {
                let progress = std::io::stderr().is_terminal();
                let summary =
                    martdb::demo::write(&engine, martdb::demo::DemoOptions::default(), progress)
                        .await?;
                eprintln!("{summary}");
            }
            for warning in engine.warnings() {
                eprintln!("WARNING: {warning}");
            }
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|e| Failure::Other(format!("cannot listen on {listen}: {e}")))?;
            eprintln!(
                "martdb: serving {} on {listen} (psql -h {} -p {}); Ctrl-C to stop",
                engine.location(),
                listen.ip(),
                listen.port()
            );
            martdb::server::serve_listener(engine, listener, server_options, shutdown_signal())
                .await
                .map_err(|e| Failure::Other(e.to_string()))?;
            eprintln!("martdb: stopped");
            Ok(())
        }
        Command::Backup { data, dest } => {
            let engine = Engine::open_with(
                &data,
                EngineOptions {
                    create_if_missing: false,
                    ..Default::default()
                },
            )
            .await?;
            let summary = engine.backup(&dest).await?;
            eprintln!("martdb: backed up {summary} into {}", dest.display());
            Ok(())
        }
        Command::Restore { source, data } => {
            let summary = martdb::storage::backup::restore(&source, &data)
                .map_err(|e| Failure::Other(e.to_string()))?;
            // Opening replays what the backup's coupon journal holds beyond its state.
            let engine = Engine::open(data.to_string_lossy()).await?;
            let tables = engine.sql("SELECT count(*) FROM martdb.tables").await?;
            let tables = tables
                .first()
                .and_then(|b| {
                    b.column(0)
                        .as_any()
                        .downcast_ref::<datafusion::arrow::array::Int64Array>()
                })
                .map_or(0, |a| a.value(0));
            eprintln!(
                "martdb: restored {summary} into {} ({tables} tables)",
                data.display()
            );
            Ok(())
        }
        Command::Passwd { user, role } => {
            if !matches!(role.as_str(), "admin" | "read_only") {
                return Err(Failure::Other(format!(
                    "unknown role '{role}': use admin or read_only"
                )));
            }
            if std::io::stdin().is_terminal() {
                eprint!("Password for {user} (input is shown): ");
            }
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| Failure::Other(format!("cannot read the password: {e}")))?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err(Failure::Other("the password is empty".into()));
            }
            println!(
                "[[users]]\nname = \"{user}\"\npassword = \"{}\"\nrole = \"{role}\"",
                martdb::server::hash_password(password)
            );
            Ok(())
        }
        Command::Sql {
            data,
            file,
            format,
            output,
            memory_limit,
            ballista,
            statement,
        } => {
            let script =
                match (statement, file) {
                    (Some(sql), _) => Some(sql),
                    (None, Some(path)) => Some(std::fs::read_to_string(&path).map_err(|e| {
                        Failure::Other(format!("cannot read {}: {e}", path.display()))
                    })?),
                    (None, None) => None,
                };
            let options = EngineOptions {
                memory_limit,
                create_if_missing: false,
                ballista,
                ..Default::default()
            };
            let engine = Engine::open_with(&data, options).await?;
            for warning in engine.warnings() {
                eprintln!("WARNING: {warning}");
            }
            let mut out: Box<dyn Write> = match &output {
                Some(path) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(path).map_err(|e| {
                        Failure::Other(format!("cannot create {}: {e}", path.display()))
                    })?,
                )),
                None => {
                    if format == Format::Parquet && std::io::stdout().is_terminal() {
                        return Err(Failure::Other(
                            "parquet output is binary: use -o FILE or redirect stdout".into(),
                        ));
                    }
                    Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
                }
            };
            match script {
                Some(text) => run_statements(&engine, &text, &mut out, format).await?,
                None => {
                    // Statements from standard input run as soon as they are complete, so a
                    // pipe gets each result (and each acknowledgement) without waiting for EOF.
                    let mut pending = String::new();
                    for line in std::io::stdin().lock().lines() {
                        let line = line.map_err(|e| {
                            Failure::Other(format!("cannot read standard input: {e}"))
                        })?;
                        pending.push_str(&line);
                        pending.push('\n');
                        if pending.trim_end().ends_with(';') && engine.parse(&pending).is_ok() {
                            run_statements(&engine, &pending, &mut out, format).await?;
                            pending.clear();
                        }
                    }
                    run_statements(&engine, &pending, &mut out, format).await?;
                }
            }
            Ok(())
        }
        Command::Plot {
            data,
            query,
            horizon,
            options,
            anomalies,
            title,
            output,
            width,
            height,
        } => {
            let engine_options = EngineOptions {
                create_if_missing: false,
                ..Default::default()
            };
            let engine = Engine::open_with(&data, engine_options).await?;
            let request = martdb::udf::forecasting::ChartRequest {
                title: title.unwrap_or_else(|| query.clone()),
                query,
                horizon,
                options,
                anomalies,
                width,
                height,
            };
            let svg = martdb::udf::forecasting::forecast_chart(&engine, &request).await?;
            std::fs::write(&output, svg)
                .map_err(|e| Failure::Other(format!("cannot write {}: {e}", output.display())))?;
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Scheduler { listen } => {
            eprintln!("martdb scheduler listening on {listen}");
            martdb::cluster::run_scheduler(listen)
                .await
                .map_err(|e| Failure::Other(e.to_string()))
        }
        Command::Executor {
            scheduler,
            listen,
            cores,
            work_dir,
        } => {
            eprintln!("martdb executor on {listen}, working for the scheduler at {scheduler}");
            let options = martdb::cluster::ExecutorOptions {
                scheduler,
                listen,
                cores,
                work_dir,
            };
            martdb::cluster::run_executor(options)
                .await
                .map_err(|e| Failure::Other(e.to_string()))
        }
        Command::Demo { data, users, seed } => {
            let engine = Engine::open(&data).await?;
            let summary = martdb::demo::write(
                &engine,
                martdb::demo::DemoOptions { users, seed },
                std::io::stderr().is_terminal(),
            )
            .await?;
            eprintln!("{summary}");
            Ok(())
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot watch for SIGTERM ({e}); stop the server with Ctrl-C");
            if tokio::signal::ctrl_c().await.is_err() {
                // No signal can stop it then: serve until the process is killed.
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn run_statements(
    engine: &Engine,
    text: &str,
    out: &mut dyn Write,
    format: Format,
) -> Result<(), Failure> {
    for statement in engine.parse(text)? {
        let stream = engine.execute(statement).await?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream.try_collect().await.map_err(martdb::Error::from)?;
        if !schema.fields().is_empty() {
            print_batches(out, format, &schema, &batches)?;
        }
        out.flush()
            .map_err(|e| Failure::Other(format!("cannot write output: {e}")))?;
    }
    Ok(())
}

fn print_batches(
    out: &mut dyn Write,
    format: Format,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), Failure> {
    use datafusion::arrow;
    let io = |e: std::io::Error| Failure::Other(format!("cannot write output: {e}"));
    let arrow_err =
        |e: arrow::error::ArrowError| Failure::Other(format!("cannot format output: {e}"));
    match format {
        Format::Table => {
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            if rows == 0 {
                let empty = RecordBatch::new_empty(schema.clone());
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(&[empty]).map_err(arrow_err)?
                )
                .map_err(io)?;
            } else {
                writeln!(
                    out,
                    "{}",
                    arrow::util::pretty::pretty_format_batches(batches).map_err(arrow_err)?
                )
                .map_err(io)?;
            }
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" }).map_err(io)?;
        }
        Format::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                writer
                    .write(&RecordBatch::new_empty(schema.clone()))
                    .map_err(arrow_err)?;
            }
            for batch in batches {
                writer.write(batch).map_err(arrow_err)?;
            }
        }
        Format::Json => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch).map_err(arrow_err)?;
            }
            writer.finish().map_err(arrow_err)?;
        }
        Format::Parquet => {
            let mut buffer = Vec::new();
            let mut writer =
                datafusion::parquet::arrow::ArrowWriter::try_new(&mut buffer, schema.clone(), None)
                    .map_err(|e| Failure::Other(e.to_string()))?;
            for batch in batches {
                writer
                    .write(batch)
                    .map_err(|e| Failure::Other(e.to_string()))?;
            }
            writer.close().map_err(|e| Failure::Other(e.to_string()))?;
            out.write_all(&buffer).map_err(io)?;
        }
    }
    Ok(())
}

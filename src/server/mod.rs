//! The Postgres wire protocol front (pgwire): psql, drivers and BI tools reach the engine
//! here.
//!
//! One [`crate::Session`] per connection (its settings, cursors, prepared statements and
//! cancel handle). Startup is trust (loopback only) or SCRAM-SHA-256 against configured
//! users, optionally inside TLS; the user's role decides whether the session is
//! read-only. Then the simple and extended query protocols, `COPY ... TO STDOUT` /
//! `FROM STDIN`, and cancel requests.
//!
//! Invariants: every error reaches the client as an ErrorResponse with the SQLSTATE of
//! [`crate::Error::sqlstate`]; a failing, malicious or vanishing client ends only its
//! own connection, never the listener; on shutdown the listener stops accepting and
//! open connections are closed.

pub mod audit;
mod auth;
pub mod config;
mod copy;
mod metrics;
mod socket;
mod text;
mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::rustls;

pub use audit::{AuditError, AuditLog, AuditOptions};
pub use auth::{AuthError, Authentication, Role, User, Users, hash_password};

use crate::Engine;
use crate::session::CancelHandle;

/// How the server lets clients in.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub authentication: Authentication,
    /// Certificate and key for TLS; without them clients that ask for TLS are refused
    /// and fall back to plain text (or fail, with `sslmode=require`).
    pub tls: Option<TlsFiles>,
    /// Audit every statement, not only those that change durable state (which are
    /// always audited).
    pub audit: bool,
    /// Where audit lines go ([`audit`]); without it, to the `martdb::audit` tracing
    /// target at INFO.
    pub audit_log: Option<AuditOptions>,
    /// Connections served at once; more are refused with SQLSTATE 53300.
    pub max_connections: usize,
    /// Settings every session starts with, as `(name, value)`: e.g. `statement_timeout`,
    /// `idle_session_timeout`, and the sizes `martdb.query_memory_limit` and
    /// `martdb.max_result_size`, which sessions may lower but not raise (see
    /// [`crate::Session::impose`]).
    pub session_defaults: Vec<(String, String)>,
    /// Where to serve Prometheus metrics (`GET /metrics`); none when `None`.
    pub metrics_listen: Option<SocketAddr>,
}

/// The default of [`ServerOptions::max_connections`] (PostgreSQL's).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

impl Default for ServerOptions {
    /// Trust authentication, no TLS, no audit: for loopback use.
    fn default() -> Self {
        ServerOptions {
            authentication: Authentication::Trust(Arc::default()),
            tls: None,
            audit: false,
            audit_log: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            session_defaults: Vec::new(),
            metrics_listen: None,
        }
    }
}

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Errors of starting the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS: cannot use {path}: {message}")]
    Tls { path: PathBuf, message: String },
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// Serves `engine` on `listen` until `shutdown` completes.
pub async fn serve(
    engine: Engine,
    listen: SocketAddr,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Listen { listen, source })?;
    serve_listener(engine, listener, options, shutdown).await
}

/// State all connections share.
pub(crate) struct Shared {
    engine: Engine,
    options: ServerOptions,
    /// (pid, secret key) of each authenticated connection -> its session's cancel handle.
    cancels: Mutex<HashMap<(i32, Vec<u8>), CancelHandle>>,
    /// Connections admitted and not yet closed.
    connections: AtomicUsize,
    audit_log: Option<Arc<AuditLog>>,
    metrics: Arc<metrics::ServerMetrics>,
}

impl Shared {
    /// Counts a new connection in when there is room under `max_connections`.
    fn admit(&self) -> bool {
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.options.max_connections).then_some(n + 1)
            })
            .is_ok()
    }
}

/// Like [`serve`], on a listener the caller bound (tests bind port 0).
pub async fn serve_listener(
    engine: Engine,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
    let audit_log = match &options.audit_log {
        Some(log) => Some(Arc::new(AuditLog::open(log.clone())?)),
        None => None,
    };
    engine.set_login_roles(
        options
            .authentication
            .users()
            .list()
            .into_iter()
            .map(|(name, role)| (name, role == Role::Admin))
            .collect(),
    );
    let shared = Arc::new(Shared {
        engine,
        options,
        cancels: Mutex::default(),
        connections: AtomicUsize::new(0),
        audit_log,
        metrics: Arc::default(),
    });
    let metrics_task = match shared.options.metrics_listen {
        Some(listen) => {
            let listener = TcpListener::bind(listen)
                .await
                .map_err(|source| ServerError::Listen { listen, source })?;
            Some(tokio::spawn(metrics::serve(listener, shared.clone())))
        }
        None => None,
    };
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let admitted = shared.admit();
                    shared.metrics.connections_total.add(1);
                    if !admitted {
                        shared.metrics.connections_refused.add(1);
                    }
                    let connection = wire::Connection::new(shared.clone(), peer, admitted);
                    let tls = tls.clone();
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let handlers = connection.handlers();
                        let served = socket::serve(socket, tls, handlers, &*connection).await;
                        if let Err(e) = served {
                            tracing::info!("connection from {peer} ended: {e}");
                        }
                        connection.closed();
                        if admitted {
                            shared.connections.fetch_sub(1, Ordering::AcqRel);
                        }
                    });
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            Some(joined) = connections.join_next(), if !connections.is_empty() => {
                // A panic ends only its connection; it is a bug, so it is counted and logged.
                if let Err(e) = joined
                    && e.is_panic()
                {
                    shared.metrics.connection_panics.add(1);
                    tracing::error!("a connection task panicked: {e}");
                }
            }
        }
    }
    connections.shutdown().await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    Ok(())
}

fn tls_acceptor(files: &TlsFiles) -> Result<pgwire::tokio::TlsAcceptor, ServerError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fail = |path: &PathBuf, message: String| ServerError::Tls {
        path: path.clone(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(&files.cert, e.to_string()))?;
    if certs.is_empty() {
        return Err(fail(&files.cert, "no certificate in the file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| fail(&files.key, e.to_string()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(&files.cert, e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| fail(&files.cert, e.to_string()))?;
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

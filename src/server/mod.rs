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

mod auth;
pub mod config;
mod copy;
mod socket;
mod text;
mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::rustls;

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
    /// Log one line per statement (user, database, statement, duration, rows, outcome)
    /// at INFO on the `martdb::audit` target.
    pub audit: bool,
}

impl Default for ServerOptions {
    /// Trust authentication, no TLS, no audit: for loopback use.
    fn default() -> Self {
        ServerOptions {
            authentication: Authentication::Trust(Arc::default()),
            tls: None,
            audit: false,
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
}

/// Like [`serve`], on a listener the caller bound (tests bind port 0).
pub async fn serve_listener(
    engine: Engine,
    listener: TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
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
    });
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let connection = wire::Connection::new(shared.clone());
                    let tls = tls.clone();
                    connections.spawn(async move {
                        let handlers = connection.handlers();
                        if let Err(e) = socket::serve(socket, tls, handlers).await {
                            tracing::info!("connection from {peer} ended: {e}");
                        }
                        connection.closed();
                    });
                }
                Err(e) => tracing::warn!("accept failed: {e}"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
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

//! The Postgres wire protocol front (pgwire): psql, drivers and BI tools reach the engine
//! here.
//!
//! What it speaks today: trust authentication (the CLI refuses to listen beyond loopback
//! without authentication, which is not built yet), the simple query protocol (several
//! statements per query, stopping at the first error, as PostgreSQL does) and the extended
//! protocol (Parse/Bind/Describe/Execute with `$n` parameters, text and binary results).
//!
//! Invariants: every error reaches the client as an ErrorResponse with the SQLSTATE of
//! [`crate::Error::sqlstate`]; a failing or vanishing client never stops the listener.

mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::Engine;

/// Serves `engine` on `listen` until `shutdown` completes.
pub async fn serve(
    engine: Engine,
    listen: SocketAddr,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_listener(engine, TcpListener::bind(listen).await?, shutdown).await
}

/// Like [`serve`], on a listener the caller bound (tests bind port 0).
pub async fn serve_listener(
    engine: Engine,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let handlers = Arc::new(wire::Handlers::new(engine));
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handlers = handlers.clone();
                    connections.spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, None, handlers).await {
                            tracing::info!("connection from {peer} ended: {e}");
                        }
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

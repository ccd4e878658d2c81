//! The per-connection message loop, owned here so that replies leave in one write per
//! round trip.
//!
//! pgwire flushes the socket after each reply (ParseComplete, BindComplete,
//! RowDescription, CommandComplete...). A prepared query (Bind, Describe, Execute, Sync)
//! would then cost four `send` calls and wake the client four times; PostgreSQL sends the
//! whole answer when the client asks for it with Sync or Flush. [`Batched`] holds replies
//! to Parse, Bind, Describe, Execute and Close the same way.
//!
//! Invariants:
//! - output is held only while a Parse/Bind/Describe/Execute/Close is processed; every
//!   other message (Sync, Flush, a simple query, COPY data, startup and authentication)
//!   and every error flush what is held, in order;
//! - little more than [`HELD_BYTES`] is ever held: a large result streams to the socket
//!   as it is produced, as before.
//!
//! The loop also enforces the connection's limits: a connection over `max_connections`
//! is answered `53300` after its startup message (a cancel request still goes through),
//! and a client idle past its session's idle timeout is told why (`57P05`, or `25P03`
//! inside a transaction block) and disconnected. A message the decoder cannot read (it
//! panics on some malformed lengths) ends the connection with `08P01`, never the task.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use pgwire::api::{ClientInfo, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::ErrorInfo;
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// How long a client may take to finish startup and authentication.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The most rows one Execute may ask for. pgwire reserves room for `max_rows` rows up
/// front, so `max_rows = 2^31` made the server allocate tens of GB and abort (found by
/// `tests/it/fuzz.rs`); a negative one overflowed. Fewer rows is legal: the portal is
/// suspended and the client executes it again.
const MAX_ROWS_PER_EXECUTE: i32 = 1 << 16;

/// Output held beyond this is written even while holding.
const HELD_BYTES: usize = 64 * 1024;

/// What the connection's limits say, asked by the message loop.
pub(super) trait Limits {
    /// `Some`: the connection is over `max_connections`; the error to answer it with.
    fn refusal(&self) -> Option<ErrorInfo>;
    /// How long the client may now stay idle, and the error that ends it after that.
    fn idle(&self) -> Option<(Duration, ErrorInfo)>;
    /// A panic was caught while serving the connection (which then ends).
    fn panicked(&self);
}

/// A FATAL error: the server closes the connection after sending it.
pub(super) fn fatal(sqlstate: &str, message: &str) -> ErrorInfo {
    ErrorInfo::new("FATAL".into(), sqlstate.into(), message.into())
}

/// Serves one client connection until it ends.
pub(super) async fn serve<H>(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: H,
    limits: &impl Limits,
) -> io::Result<()>
where
    H: PgWireServerHandlers,
{
    let startup = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup);
    let negotiated = tokio::select! {
        _ = &mut startup => return Ok(()),
        negotiated = negotiate_tls(tcp, tls) => negotiated?,
    };
    // None: the client opened with TLS while none is configured.
    let Some(framed) = negotiated else {
        return Ok(());
    };
    let old = framed.into_parts();
    let mut parts = FramedParts::new(Batched::new(old.io), old.codec);
    parts.read_buf = old.read_buf;
    parts.write_buf = old.write_buf;
    let mut socket = Framed::from_parts(parts);

    let startup_handler = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let mut refusal = limits.refusal();
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let idle = match socket.state() {
            PgWireConnectionState::ReadyForQuery => limits.idle(),
            _ => None,
        };
        let message = if starting {
            tokio::select! {
                _ = &mut startup => Ok(None),
                message = next_message(&mut socket) => message,
            }
        } else if let Some((after, error)) = idle {
            match tokio::time::timeout(after, next_message(&mut socket)).await {
                Ok(message) => message,
                Err(_) => {
                    socket.get_mut().hold = false;
                    return send_fatal(&mut socket, error).await;
                }
            }
        } else {
            next_message(&mut socket).await
        };
        let Ok(message) = message else {
            limits.panicked();
            socket.get_mut().hold = false;
            tracing::info!("closing a connection that sent a malformed message");
            return send_fatal(&mut socket, fatal("08P01", "invalid message format")).await;
        };
        let Some(Ok(mut message)) = message else {
            break;
        };
        if let PgWireFrontendMessage::Execute(execute) = &mut message {
            // Negative means nothing in the protocol: treat it as 0, "all rows".
            execute.max_rows = execute.max_rows.clamp(0, MAX_ROWS_PER_EXECUTE);
        }
        if !matches!(message, PgWireFrontendMessage::CancelRequest(_))
            && let Some(error) = refusal.take()
        {
            return send_fatal(&mut socket, error).await;
        }
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        socket.get_mut().hold = matches!(
            message,
            PgWireFrontendMessage::Parse(_)
                | PgWireFrontendMessage::Bind(_)
                | PgWireFrontendMessage::Describe(_)
                | PgWireFrontendMessage::Execute(_)
                | PgWireFrontendMessage::Close(_)
        );
        let result = {
            use futures::FutureExt;
            std::panic::AssertUnwindSafe(process_message(
                message,
                &mut socket,
                startup_handler.clone(),
                simple.clone(),
                extended.clone(),
                copy.clone(),
                cancel.clone(),
            ))
            .catch_unwind()
            .await
        };
        let Ok(result) = result else {
            // A bug (in pgwire's decoding of COPY data, say): this connection ends, the
            // server goes on.
            limits.panicked();
            socket.get_mut().hold = false;
            return send_fatal(
                &mut socket,
                fatal("XX000", "internal error; closing the connection"),
            )
            .await;
        };
        if let Err(error) = result {
            socket.get_mut().hold = false;
            process_error(&mut socket, error, extended_query).await?;
        }
    }
    socket.get_mut().hold = false;
    socket.flush().await
}

/// The next message from the client; `Err` when pgwire's decoder panicked on it (it
/// trusts the length fields inside Bind and other messages: found by `tests/it/fuzz.rs`).
/// The connection is then closed, since the buffer may be half consumed.
async fn next_message<S, T>(socket: &mut S) -> Result<Option<T>, ()>
where
    S: futures::Stream<Item = T> + Unpin,
{
    use futures::FutureExt;
    std::panic::AssertUnwindSafe(socket.next())
        .catch_unwind()
        .await
        .map_err(|_| ())
}

/// Sends a FATAL error and ends the connection.
async fn send_fatal<S>(socket: &mut S, error: ErrorInfo) -> io::Result<()>
where
    S: futures::Sink<PgWireBackendMessage, Error = io::Error> + Unpin,
{
    socket
        .send(PgWireBackendMessage::ErrorResponse(ErrorResponse::from(
            error,
        )))
        .await?;
    socket.flush().await
}

/// A socket whose flushes wait while `hold` is set (see the module docs).
struct Batched<IO> {
    io: IO,
    held: Vec<u8>,
    hold: bool,
}

impl<IO: AsyncWrite + Unpin> Batched<IO> {
    fn new(io: IO) -> Self {
        Batched {
            io,
            held: Vec::new(),
            hold: false,
        }
    }

    /// Writes out everything held.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.held.is_empty() {
            let written = ready!(Pin::new(&mut self.io).poll_write(cx, &self.held))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.held.drain(..written);
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Batched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Batched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.held.len() >= HELD_BYTES {
            ready!(self.poll_drain(cx))?;
        }
        self.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.hold && self.held.len() < HELD_BYTES {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn holds_until_released_and_never_beyond_the_limit() {
        let (client, server) = tokio::io::duplex(1 << 20);
        let mut batched = Batched::new(server);
        let mut client = client;
        batched.hold = true;
        batched.write_all(b"BindComplete").await.unwrap();
        batched.flush().await.unwrap();
        let mut buf = [0u8; 64];
        let nothing = tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf)).await;
        assert!(nothing.is_err(), "held output reached the client");

        batched.hold = false;
        batched.write_all(b"+ReadyForQuery").await.unwrap();
        batched.flush().await.unwrap();
        let n = client.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"BindComplete+ReadyForQuery");

        batched.hold = true;
        let big = vec![7u8; HELD_BYTES * 2];
        batched.write_all(&big).await.unwrap();
        batched.flush().await.unwrap();
        assert!(
            batched.held.len() < HELD_BYTES,
            "held {}",
            batched.held.len()
        );
    }
}

//! What the fuzz targets share: the panic policy, and a server and an engine started once
//! per process.
//!
//! Panic policy: a panic raised in martdb's own source is a bug and aborts (libFuzzer
//! saves the input). A panic raised inside a dependency (DataFusion's planner, pgwire's
//! decoder, the standard library on a huge allocation) is contained by martdb as SQLSTATE
//! XX000 or 08P01, which is the behaviour under test, so it is printed and unwinding goes
//! on to martdb's `catch_unwind`. Anything that escapes that still aborts, through
//! libFuzzer's own hook.

#![allow(dead_code)] // each target uses part of this module

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{LazyLock, Mutex, Once};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Places of the dependency panics seen so far.
static CONTAINED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Installs the panic policy above; call at the start of every input.
pub fn panic_policy() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Dependencies build from the registry; the standard library from /rustc/.
            let in_dependency = info.location().is_some_and(|location| {
                let file = location.file();
                file.contains("/registry/src/") || file.starts_with("/rustc/")
            });
            if !in_dependency {
                default_hook(info);
                std::process::abort();
            }
            // Contained by martdb. Printed once per place: pgwire's decoder panics on
            // most truncated messages.
            let place = info.location().map(ToString::to_string).unwrap_or_default();
            if CONTAINED.lock().is_ok_and(|mut seen| seen.insert(place)) {
                eprintln!("contained a dependency's panic (shown once per place): {info}");
            }
        }));
    });
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    });
    &RUNTIME
}

/// Session limits that keep one input from running for long or filling memory: a hang
/// past them is a finding (libFuzzer's `-timeout`).
const SESSION_LIMITS: [(&str, &str); 3] = [
    ("statement_timeout", "1s"),
    ("martdb.query_memory_limit", "256MB"),
    ("martdb.max_result_size", "4MB"),
];

struct Served {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn open_engine(dir: &Path) -> martdb::Engine {
    runtime()
        .block_on(martdb::Engine::open_with(
            dir.to_str().expect("temporary paths are UTF-8"),
            martdb::EngineOptions {
                memory_limit: Some(1 << 30),
                ..Default::default()
            },
        ))
        .expect("an engine opens on an empty directory")
}

fn server() -> SocketAddr {
    static SERVED: LazyLock<Served> = LazyLock::new(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let engine = open_engine(dir.path());
        let listener = runtime()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind loopback");
        let addr = listener.local_addr().expect("a bound address");
        let options = martdb::server::ServerOptions {
            session_defaults: SESSION_LIMITS
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        runtime().spawn(async move {
            martdb::server::serve_listener(engine, listener, options, std::future::pending())
                .await
                .expect("the server runs");
        });
        Served { addr, _dir: dir }
    });
    SERVED.addr
}

/// Sends `input` as one client's whole conversation, closes the sending side, and reads
/// every reply until the server closes. The server must close within 10 s (a statement is
/// capped at 1 s) and accept the next connection.
pub fn converse(input: &[u8]) {
    let addr = server();
    runtime().block_on(async {
        let mut socket = tokio::net::TcpStream::connect(addr)
            .await
            .expect("the server accepts connections");
        // The server may hang up before reading everything: not a finding.
        let _ = socket.write_all(input).await;
        let _ = socket.shutdown().await;
        let mut buf = vec![0u8; 1 << 16];
        let drained = tokio::time::timeout(Duration::from_secs(10), async {
            while let Ok(n) = socket.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        assert!(
            drained.is_ok(),
            "the server kept the connection open 10 s after the client's input ended"
        );
    });
}

/// Runs `sql` in a fresh session of one engine. Every error must carry a SQLSTATE.
pub fn run_sql(sql: &str) {
    static ENGINE: LazyLock<(martdb::Engine, tempfile::TempDir)> = LazyLock::new(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        (open_engine(dir.path()), dir)
    });
    let session = ENGINE.0.session();
    runtime().block_on(async {
        for (name, value) in SESSION_LIMITS {
            session
                .sql(&format!("SET {name} = '{value}'"))
                .await
                .expect("the session limits are valid settings");
        }
        if let Err(e) = session.sql(sql).await {
            let state = e.sqlstate();
            assert!(
                state.len() == 5 && state.bytes().all(|b| b.is_ascii_alphanumeric()),
                "an error without a valid SQLSTATE ({state:?}): {e}"
            );
        }
    });
}

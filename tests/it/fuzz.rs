//! Bounded random fuzzing on stable Rust, in CI: mutated Postgres wire messages against a
//! live server, mutated SQL (the statements of `sql/**/*.slt` are the corpus) through the
//! planner and executor, and mutated bitmap bytes through the decoder and set
//! operations. Failures: a panic that escapes (in-process, or one that ends the server),
//! a server that stops answering, an error without a SQLSTATE. Contained panics (a
//! statement failing with XX000, a connection closed with 08P01; counted in
//! `martdb_connection_panics_total`) are printed: each found so far in our code is fixed
//! and has a regression test below.
//!
//! `MARTDB_FUZZ_SECONDS` is the time per target (default 8); `MARTDB_FUZZ_SEED` repeats
//! a run (the seed is printed). These are not coverage-guided (cargo-fuzz needs a
//! nightly toolchain and an instrumented release build of DataFusion): they are random
//! mutations of valid inputs.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use martdb::server::ServerOptions;

use crate::server::Server;

fn budget() -> Duration {
    Duration::from_secs(
        std::env::var("MARTDB_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(8),
    )
}

fn rng(target: &str) -> StdRng {
    let seed: u64 = std::env::var("MARTDB_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("fuzz {target}: MARTDB_FUZZ_SEED={seed}");
    StdRng::seed_from_u64(seed)
}

/// Random byte-level damage: flips, truncation, insertion, duplication, big lengths.
fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..4) {
        if out.is_empty() {
            out.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..out.len());
        match rng.random_range(0..6) {
            0 => out[at] ^= 1 << rng.random_range(0..8),
            1 => out[at] = rng.random(),
            2 => out.truncate(at),
            3 => {
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                out.splice(at..at, junk);
            }
            4 => {
                let end = (at + rng.random_range(1..64)).min(out.len());
                let copy = out[at..end].to_vec();
                out.splice(at..at, copy);
            }
            _ => {
                // A length field: four bytes made huge, negative or zero.
                let value: i32 = *[i32::MAX, -1, 0, 4, 1 << 30]
                    .get(rng.random_range(0..5))
                    .unwrap();
                let end = (at + 4).min(out.len());
                out.splice(at..end, value.to_be_bytes());
            }
        }
    }
    out
}

// Frontend messages, encoded by hand (the corpus of valid sessions).
fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(((body.len() + 4) as i32).to_be_bytes());
    out.extend(body);
    out
}

fn cstr(text: &str) -> Vec<u8> {
    let mut out = text.as_bytes().to_vec();
    out.push(0);
    out
}

fn startup() -> Vec<u8> {
    let mut body = 196608i32.to_be_bytes().to_vec();
    for part in ["user", "fuzz", "database", "martdb", ""] {
        body.extend(cstr(part));
    }
    let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

fn seeds() -> Vec<Vec<u8>> {
    let query = |sql: &str| message(b'Q', &cstr(sql));
    let extended = {
        let mut parse = cstr("s1");
        parse.extend(cstr("SELECT $1::BIGINT + 1, 'x'"));
        parse.extend(1i16.to_be_bytes());
        parse.extend(20i32.to_be_bytes());
        let mut bind = cstr("");
        bind.extend(cstr("s1"));
        bind.extend(1i16.to_be_bytes());
        bind.extend(0i16.to_be_bytes());
        bind.extend(1i16.to_be_bytes());
        bind.extend(2i32.to_be_bytes());
        bind.extend(b"41");
        bind.extend(0i16.to_be_bytes());
        let mut describe = vec![b'P'];
        describe.extend(cstr(""));
        let mut execute = cstr("");
        execute.extend(0i32.to_be_bytes());
        [
            message(b'P', &parse),
            message(b'B', &bind),
            message(b'D', &describe),
            message(b'E', &execute),
            message(b'S', &[]),
        ]
        .concat()
    };
    let copy_in = [
        query("CREATE TABLE IF NOT EXISTS fuzz_copy (a BIGINT, b TEXT)"),
        query("COPY fuzz_copy FROM STDIN"),
        message(b'd', b"1\tone\n2\ttwo\n"),
        message(b'c', &[]),
    ]
    .concat();
    let cancel = {
        let mut body = 80877102i32.to_be_bytes().to_vec();
        body.extend(1234i32.to_be_bytes());
        body.extend(5678i32.to_be_bytes());
        let mut out = 16i32.to_be_bytes().to_vec();
        out.extend(body);
        out
    };
    let ssl = [8i32.to_be_bytes(), 80877103i32.to_be_bytes()].concat();
    vec![
        [startup(), query("SELECT 1; SELECT 'a' || 'b'")].concat(),
        [startup(), extended].concat(),
        [startup(), copy_in].concat(),
        [
            startup(),
            query("SET statement_timeout = 10; SHOW ALL"),
            message(b'X', &[]),
        ]
        .concat(),
        cancel,
        ssl,
    ]
}

async fn metrics_value(addr: std::net::SocketAddr, name: &str) -> f64 {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    socket.read_to_string(&mut text).await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_wire_messages_never_take_the_server_down() {
    let mut rng = rng("wire");
    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    drop(metrics);
    let server = Server::start_with(ServerOptions {
        metrics_listen: Some(metrics_addr),
        ..Default::default()
    })
    .await;
    let seeds = seeds();
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget() {
        runs += 1;
        let seed = &seeds[rng.random_range(0..seeds.len())];
        let input = mutate(&mut rng, seed);
        let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        let _ = socket.write_all(&input).await;
        let mut buf = vec![0u8; 1 << 16];
        // Read what the server says until it stops talking or closes.
        while let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(30), socket.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
        }
        drop(socket);
        if runs.is_multiple_of(25) {
            let client = tokio::time::timeout(Duration::from_secs(10), server.client())
                .await
                .unwrap_or_else(|_| {
                    panic!("the server stopped answering after {runs} inputs; last: {input:?}")
                });
            crate::server::assert_answers(&client).await;
        }
    }
    // pgwire's decoder still panics on some malformed lengths (contained: the connection
    // ends with 08P01 or XX000); the server must have answered throughout.
    let panics = metrics_value(metrics_addr, "martdb_connection_panics_total").await;
    eprintln!("fuzz wire: {runs} inputs, {panics} contained panics, server up throughout");
    server.stop().await;
}

/// The SQL of every `statement`/`query` record of the `.slt` files.
fn slt_statements() -> Vec<String> {
    fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "slt") {
                let text = std::fs::read_to_string(&path).unwrap();
                let mut lines = text.lines();
                while let Some(line) = lines.next() {
                    if line.starts_with("statement") || line.starts_with("query") {
                        let sql: Vec<&str> = lines
                            .by_ref()
                            .take_while(|l| !l.is_empty() && *l != "----")
                            .collect();
                        out.push(sql.join("\n"));
                    }
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql"),
        &mut out,
    );
    out
}

/// Token-level damage: drop, duplicate, swap, or insert a token.
fn mutate_sql(rng: &mut StdRng, sql: &str) -> String {
    const INSERTS: &[&str] = &[
        "NULL",
        "(",
        ")",
        ",",
        "'",
        "''",
        "-1",
        "0",
        "1e308",
        "9223372036854775807",
        "*",
        "SELECT",
        "FROM",
        "WHERE",
        "GROUP BY",
        "ORDER BY",
        "JOIN",
        "UNION",
        "::TEXT",
        "::BIGINT",
        "[]",
        "ARRAY[]",
        "NaN",
        "'\\x00'",
        "CAST(",
        "CASE",
        "END",
        "OVER ()",
    ];
    let mut tokens: Vec<String> = sql
        .split_inclusive(|c: char| c.is_whitespace() || "(),;".contains(c))
        .map(str::to_string)
        .collect();
    for _ in 0..rng.random_range(1..4) {
        if tokens.is_empty() {
            break;
        }
        let at = rng.random_range(0..tokens.len());
        match rng.random_range(0..4) {
            0 => {
                tokens.remove(at);
            }
            1 => {
                let copy = tokens[at].clone();
                tokens.insert(at, copy);
            }
            2 => {
                let other = rng.random_range(0..tokens.len());
                tokens.swap(at, other);
            }
            _ => tokens.insert(
                at,
                format!(" {} ", INSERTS[rng.random_range(0..INSERTS.len())]),
            ),
        }
    }
    tokens.concat()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_sql_errors_cleanly_and_never_panics() {
    let mut rng = rng("sql");
    let dir = tempfile::tempdir().unwrap();
    let engine = martdb::Engine::open_with(
        dir.path().to_str().unwrap(),
        martdb::EngineOptions {
            memory_limit: Some(512 << 20),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let session = engine.session();
    session.sql("SET statement_timeout = '2s'").await.unwrap();
    let corpus = slt_statements();
    assert!(corpus.len() > 300, "{}", corpus.len());
    let started = Instant::now();
    let (mut runs, mut errors, mut contained) = (0u64, 0u64, 0u64);
    while started.elapsed() < budget() {
        runs += 1;
        let pick = rng.random_range(0..corpus.len());
        let sql = mutate_sql(&mut rng, &corpus[pick]);
        let run = AssertUnwindSafe(async {
            let result = session.sql(&sql).await;
            match &result {
                Err(e) if e.to_string().contains("stopped by a bug") => {
                    // A bug below martdb, contained as XX000: reported, not fatal.
                    assert_eq!(e.sqlstate(), "XX000");
                    eprintln!("fuzz sql: contained a panic on {sql:?}: {e}");
                    (true, true)
                }
                Err(e) => {
                    assert_eq!(e.sqlstate().len(), 5, "{sql}: {e}");
                    (true, false)
                }
                Ok(_) => (false, false),
            }
        })
        .catch_unwind()
        .await;
        match run {
            Ok((failed, panicked)) => {
                errors += failed as u64;
                contained += panicked as u64;
            }
            Err(_) => panic!("panicked on {sql:?} (MARTDB_FUZZ_SEED repeats it)"),
        }
    }
    eprintln!(
        "fuzz sql: {runs} statements, {errors} errors ({contained} contained panics), no panic escaped"
    );
    assert!(runs > 10);
    let one = session.sql("SELECT 1").await.unwrap();
    assert_eq!(crate::scalar(&one), "1");
}

#[test]
fn mutated_bitmap_bytes_are_rejected_or_read_consistently() {
    use martdb::bitmap::Bitmap;
    let mut rng = rng("bitmap");
    let seeds: Vec<Vec<u8>> = vec![
        Bitmap::from_values([1, 2, 3, 1000, 65536, 70000]).to_bytes(),
        Bitmap::from_values(0..5000).to_bytes(),
        Bitmap::from_values([5, 1 << 33, (1 << 40) + 7]).to_bytes(),
        Bitmap::new().to_bytes(),
    ];
    let started = Instant::now();
    let (mut runs, mut accepted) = (0u64, 0u64);
    while started.elapsed() < budget() {
        runs += 1;
        let pick = rng.random_range(0..seeds.len());
        let input = mutate(&mut rng, &seeds[pick]);
        let Ok(bitmap) = Bitmap::from_bytes(&input) else {
            continue;
        };
        accepted += 1;
        // Whatever is accepted behaves as a set: round trip, and set laws.
        let again = Bitmap::from_bytes(&bitmap.to_bytes()).unwrap();
        assert_eq!(again.cardinality(), bitmap.cardinality(), "{input:?}");
        let other = Bitmap::from_values([3, 1000, 1 << 33]);
        assert_eq!(
            bitmap.and(&other).cardinality() + bitmap.or(&other).cardinality(),
            bitmap.cardinality() + other.cardinality(),
            "{input:?}"
        );
        if let Some(max) = bitmap.maximum() {
            assert!(bitmap.contains(max));
        }
    }
    eprintln!("fuzz bitmap: {runs} inputs, {accepted} accepted as bitmaps");
}

/// Found by the wire fuzzer: an Execute asking for 2^31 rows made pgwire reserve room
/// for them (tens of GB) and the process abort; a negative count overflowed. Now the
/// rows come, and the server stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_execute_asking_for_billions_of_rows_is_served() {
    let server = Server::start().await;
    for max_rows in [i32::MAX, -5] {
        let mut parse = cstr("");
        parse.extend(cstr("SELECT value FROM generate_series(1, 3)"));
        parse.extend(0i16.to_be_bytes());
        let mut bind = cstr("");
        bind.extend(cstr(""));
        bind.extend([0u8; 6]);
        let mut execute = cstr("");
        execute.extend(max_rows.to_be_bytes());
        let input = [
            startup(),
            message(b'P', &parse),
            message(b'B', &bind),
            message(b'E', &execute),
            message(b'S', &[]),
            message(b'X', &[]),
        ]
        .concat();
        let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
        socket.write_all(&input).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut reply))
            .await
            .unwrap()
            .unwrap();
        assert!(
            reply.windows(9).any(|w| w == b"SELECT 3\0"),
            "{max_rows}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    let client = server.client().await;
    crate::server::assert_answers(&client).await;
    server.stop().await;
}

/// Found by the SQL fuzzer: DataFusion's planner panics on a scalar subquery with an
/// empty select list. The statement fails with XX000; the session goes on.
#[tokio::test]
async fn a_planner_panic_fails_the_statement_not_the_session() {
    let dir = tempfile::tempdir().unwrap();
    let engine = martdb::Engine::open(dir.path().to_str().unwrap())
        .await
        .unwrap();
    let session = engine.session();
    let err = session
        .sql("SELECT (SELECT FROM (VALUES (1)) AS t(x)) = 1")
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "XX000", "{err}");
    assert!(err.to_string().contains("stopped by a bug"), "{err}");
    assert_eq!(crate::scalar(&session.sql("SELECT 2").await.unwrap()), "2");
}

/// Found by the wire fuzzer: pgwire's decoder panicked on a Bind whose parameter length
/// runs past the message (and on other inner lengths). The connection now ends with
/// FATAL 08P01, and the server goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_with_a_parameter_length_past_its_end_is_08p01() {
    let server = Server::start().await;
    let mut bind = cstr("");
    bind.extend(cstr(""));
    bind.extend(0i16.to_be_bytes());
    bind.extend(1i16.to_be_bytes());
    bind.extend(i32::MAX.to_be_bytes());
    bind.extend(b"41");
    let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    socket
        .write_all(&[startup(), message(b'B', &bind)].concat())
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut reply))
        .await
        .expect("the server closes the connection")
        .unwrap();
    assert!(
        reply.windows(6).any(|w| w == b"C08P01"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let client = server.client().await;
    crate::server::assert_answers(&client).await;
    server.stop().await;
}

/// Writes the seed corpus of the coverage-guided targets under `fuzz/corpus/` from the
/// same valid inputs as the tests above: the wire sessions, the statements of every
/// `.slt` file, and bitmaps of each container kind. Run it when those change:
/// `cargo test --test it write_fuzz_corpus -- --ignored`.
#[test]
#[ignore = "writes files into the checkout"]
fn write_fuzz_corpus() {
    use martdb::bitmap::Bitmap;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let write = |target: &str, inputs: Vec<Vec<u8>>| {
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for input in inputs {
            // FNV-1a names the file by its content, as libFuzzer does with SHA-1.
            let hash = input.iter().fold(0xcbf29ce484222325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
            });
            std::fs::write(dir.join(format!("{hash:016x}")), input).unwrap();
        }
    };
    write("wire", seeds());
    let mut statements = slt_statements();
    statements.sort();
    statements.dedup();
    write(
        "sql",
        statements.into_iter().map(String::into_bytes).collect(),
    );
    write(
        "bitmap",
        vec![
            Bitmap::new().to_bytes(),
            Bitmap::from_values([1, 2, 3, 1000, 65_536, 70_000]).to_bytes(),
            Bitmap::from_values(0..5000).to_bytes(),
            Bitmap::from_values((0..20_000).map(|v| v * 3)).to_bytes(),
            Bitmap::from_values([5, 1 << 33, (1 << 40) + 7]).to_bytes(),
            Bitmap::from_values((0..3000).chain(1 << 32..(1 << 32) + 3000)).to_bytes(),
        ],
    );
}

/// Found in the panic review: `$4000000000` sized the list of parameter types to four
/// billion entries, an allocation failure that aborts the process (no panic to contain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_numbered_in_the_billions_is_an_error() {
    let server = Server::start().await;
    let client = server.client().await;
    for sql in ["SELECT $4000000000::INT", "SELECT $1::INT + $65536::INT"] {
        let err = client.prepare(sql).await.unwrap_err();
        assert_eq!(err.code().unwrap().code(), "42P02", "{sql}: {err:?}");
    }
    let err = client
        .simple_query("SELECT $4000000000::INT")
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err:?}");
    let two: i64 = client
        .query_one("SELECT $1::BIGINT + 1", &[&1i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(two, 2);
    server.stop().await;
}

//! The wire server with real clients over real sockets: tokio-postgres (simple and
//! extended protocol, text and binary) and psql.

use std::net::SocketAddr;

use martdb::Engine;
use tokio::io::AsyncWriteExt;
use tokio_postgres::SimpleQueryMessage;

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            martdb::server::serve_listener(engine, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            addr,
            stop: Some(stop),
            task,
            _dir: dir,
        }
    }

    async fn client(&self) -> tokio_postgres::Client {
        let config = format!(
            "host={} port={} user=analyst dbname=martdb",
            self.addr.ip(),
            self.addr.port()
        );
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        self.task.await.unwrap();
    }
}

fn tags(messages: &[SimpleQueryMessage]) -> Vec<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_and_extended_queries_with_tokio_postgres() {
    let server = Server::start().await;
    let client = server.client().await;

    let messages = client
        .simple_query("CREATE TABLE t (id BIGINT, name TEXT, score DOUBLE, day DATE); INSERT INTO t VALUES (1, 'a', 1.5, '2026-11-01'), (2, 'b', NULL, '2026-11-02'); SELECT id, name FROM t ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        tags(&messages),
        vec![0, 2, 2],
        "CREATE TABLE, INSERT 0 2, SELECT 2"
    );
    let first_row = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some((
            row.get(0).unwrap().to_string(),
            row.get(1).unwrap().to_string(),
        )),
        _ => None,
    });
    assert_eq!(first_row, Some(("1".to_string(), "a".to_string())));

    // Extended protocol: parameters, binary results, types.
    let rows = client
        .query(
            "SELECT id, name, score, day FROM t WHERE id >= $1 ORDER BY id",
            &[&1i64],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    let id: i64 = rows[0].get(0);
    let name: &str = rows[0].get(1);
    let score: Option<f64> = rows[1].get(2);
    assert_eq!((id, name, score), (1, "a", None));
    let day: String = client
        .query_one("SELECT CAST(day AS TEXT) FROM t WHERE id = $1", &[&2i64])
        .await
        .unwrap()
        .get(0);
    assert_eq!(day, "2026-11-02");
    let inserted = client
        .execute(
            "INSERT INTO t VALUES ($1, $2, $3, '2026-11-03')",
            &[&3i64, &"c", &2.5f64],
        )
        .await
        .unwrap();
    assert_eq!(inserted, 1);
    let count: i64 = client
        .query_one("SELECT count(*) FROM t", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 3);
    let statement = client
        .prepare("SELECT name FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(statement.params(), &[tokio_postgres::types::Type::INT8]);
    assert_eq!(
        statement.columns()[0].type_(),
        &tokio_postgres::types::Type::TEXT
    );
    for (id, expected) in [(1i64, "a"), (3, "c")] {
        let name: String = client.query_one(&statement, &[&id]).await.unwrap().get(0);
        assert_eq!(name, expected);
    }
    // Driver connection chatter is accepted.
    client
        .batch_execute("SET application_name = 'it'; BEGIN; COMMIT")
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_sqlstates_and_the_connection_survives() {
    let server = Server::start().await;
    let client = server.client().await;
    let err = client
        .simple_query("SELECT * FROM missing_table")
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42P01", "{err}");
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("missing_table")
    );
    let err = client.query("SELEC 1", &[]).await.unwrap_err();
    assert_eq!(err.code().unwrap().code(), "42601", "{err}");
    // The first statement of a batch ran, the failing one stopped the rest.
    let err = client
        .simple_query(
            "CREATE TABLE ok AS SELECT 1 AS x; SELECT 1/0; CREATE TABLE never AS SELECT 1 AS x",
        )
        .await
        .unwrap_err();
    assert!(err.code().is_some(), "{err}");
    let n: i64 = client
        .query_one("SELECT count(*) FROM ok", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    assert!(client.query("SELECT * FROM never", &[]).await.is_err());

    // Garbage on a second connection does not disturb the server.
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
        .await
        .unwrap();
    drop(raw);
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    drop(raw);
    let other = server.client().await;
    let n: i64 = other
        .query_one("SELECT count(*) FROM ok", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    server.stop().await;
}

/// Runs psql as an analyst would, returning (success, stdout, stderr).
fn psql(port: u16, sql: &str) -> (bool, String, String) {
    let output = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            "analyst",
            "-d",
            "martdb",
        ])
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("psql is installed (scripts/test.sh installs postgresql-client)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_runs_queries() {
    let server = Server::start().await;
    let port = server.addr.port();
    let run = |sql: &'static str| tokio::task::spawn_blocking(move || psql(port, sql));
    let (ok, _, err) =
        run("CREATE TABLE seg AS SELECT value AS user_id FROM generate_series(1, 10)")
            .await
            .unwrap();
    assert!(ok, "{err}");
    let (ok, out, err) = run("SELECT count(*), sum(user_id) FROM seg").await.unwrap();
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "10|55");
    let (ok, _, err) = run("SELECT * FROM nope").await.unwrap();
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
    server.stop().await;
}

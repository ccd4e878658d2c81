//! The server's limits over real sockets with tokio-postgres: `max_connections`, idle
//! timeouts, `martdb.query_memory_limit`, the process memory limit and
//! `martdb.max_result_size`. Each failure carries its SQLSTATE, and the server and the
//! other sessions go on.

use std::time::Duration;

use martdb::server::ServerOptions;
use tokio_postgres::NoTls;

use crate::server::{LONG_QUERY, Server};

/// A client and its connection task, whose result says why the server closed it.
async fn connect(
    server: &Server,
) -> Result<
    (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let addr = server.addr();
    let config = format!(
        "host={} port={} user=analyst dbname=martdb",
        addr.ip(),
        addr.port()
    );
    let (client, connection) = tokio_postgres::connect(&config, NoTls).await?;
    Ok((client, tokio::spawn(connection)))
}

fn message(err: &tokio_postgres::Error) -> String {
    err.as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_else(|| err.to_string())
}

fn code(err: &tokio_postgres::Error) -> String {
    err.code()
        .map(|c| c.code().to_string())
        .unwrap_or_else(|| format!("no SQLSTATE: {err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_refused_with_53300() {
    let server = Server::start_with(ServerOptions {
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let (first, _) = connect(&server).await.unwrap();
    let (second, second_task) = connect(&server).await.unwrap();
    let Err(err) = connect(&server).await else {
        panic!("a third connection was admitted")
    };
    assert_eq!(code(&err), "53300", "{err}");
    assert!(message(&err).contains("too many clients"), "{err}");

    // A cancel request is a connection too, and still gets through at the limit.
    let token = first.cancel_token();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        token.cancel_query(NoTls).await.unwrap();
    });
    let err = first.simple_query(LONG_QUERY).await.unwrap_err();
    canceller.await.unwrap();
    assert_eq!(code(&err), "57014", "{err}");
    crate::server::assert_answers(&first).await;

    // A closed connection frees its place.
    drop(second);
    second_task.await.unwrap().unwrap();
    let mut third = None;
    for _ in 0..50 {
        match connect(&server).await {
            Ok((client, _)) => {
                third = Some(client);
                break;
            }
            Err(e) => assert_eq!(code(&e), "53300", "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    crate::server::assert_answers(&third.expect("a place after a close")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_are_disconnected_with_57p05_and_25p03() {
    let server = Server::start_with(ServerOptions {
        session_defaults: vec![("idle_session_timeout".into(), "300ms".into())],
        ..Default::default()
    })
    .await;
    let (idle, idle_task) = connect(&server).await.unwrap();
    crate::server::assert_answers(&idle).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), idle_task)
        .await
        .expect("the server closes an idle session")
        .unwrap();
    let err = ended.expect_err("closed with an error");
    assert_eq!(code(&err), "57P05", "{err}");
    assert!(idle.is_closed());

    // Inside a transaction block the other timeout applies.
    let (in_block, task) = connect(&server).await.unwrap();
    in_block
        .batch_execute("SET idle_in_transaction_session_timeout = 200; BEGIN")
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .expect_err("closed with an error");
    assert_eq!(code(&err), "25P03", "{err}");

    // A session may switch its own idle timeout off; a busy session is not idle.
    let (patient, task) = connect(&server).await.unwrap();
    patient
        .batch_execute("SET idle_session_timeout = 0")
        .await
        .unwrap();
    let (busy, busy_task) = connect(&server).await.unwrap();
    busy.simple_query("SELECT count(*) FROM generate_series(1, 5000000) AS t(v) WHERE v % 7 = 3")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    crate::server::assert_answers(&patient).await;
    assert!(!task.is_finished());
    drop(busy);
    let _ = busy_task.await;
    server.stop().await;
}

/// One group whose accumulator grows with every row: it cannot spill, so a limit below
/// its size fails the statement.
const HUNGRY: &str = "SELECT cardinality(array_agg(repeat('x', 50) || value))::BIGINT FROM generate_series(1, 200000)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_over_their_memory_limit_fail_with_53200_and_the_session_goes_on() {
    let server = Server::start_with(ServerOptions {
        session_defaults: vec![("martdb.query_memory_limit".into(), "64MB".into())],
        ..Default::default()
    })
    .await;
    let (client, _) = connect(&server).await.unwrap();
    let (other, _) = connect(&server).await.unwrap();
    let rows = client
        .simple_query("SHOW martdb.query_memory_limit")
        .await
        .unwrap();
    let shown = match &rows[1] {
        tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).unwrap().to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(shown, "64MB");
    let count: i64 = client.query_one(HUNGRY, &[]).await.unwrap().get(0);
    assert_eq!(count, 200_000);

    client
        .batch_execute("SET martdb.query_memory_limit = '1MB'")
        .await
        .unwrap();
    let err = client.query_one(HUNGRY, &[]).await.unwrap_err();
    assert_eq!(code(&err), "53200", "{err}");
    assert!(message(&err).contains("martdb.query_memory_limit"), "{err}");
    // Only this session is limited; the server and this session go on.
    let count: i64 = other.query_one(HUNGRY, &[]).await.unwrap().get(0);
    assert_eq!(count, 200_000);
    crate::server::assert_answers(&client).await;

    // The server's limit is a ceiling: lower is allowed, higher or off is not.
    for above in ["'1GB'", "0"] {
        let err = client
            .batch_execute(&format!("SET martdb.query_memory_limit = {above}"))
            .await
            .unwrap_err();
        assert_eq!(code(&err), "42501", "{err}");
    }
    client
        .batch_execute("RESET martdb.query_memory_limit")
        .await
        .unwrap();
    let count: i64 = client.query_one(HUNGRY, &[]).await.unwrap().get(0);
    assert_eq!(count, 200_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_memory_limit_fails_statements_with_53200_and_the_server_stays_up() {
    let server = Server::start_engine(
        martdb::EngineOptions {
            memory_limit: Some(4 << 20),
            ..Default::default()
        },
        ServerOptions::default(),
    )
    .await;
    let (client, _) = connect(&server).await.unwrap();
    let err = client.query_one(HUNGRY, &[]).await.unwrap_err();
    assert_eq!(code(&err), "53200", "{err}");
    let (other, _) = connect(&server).await.unwrap();
    crate::server::assert_answers(&other).await;
    crate::server::assert_answers(&client).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_over_max_result_size_stop_with_54000() {
    let server = Server::start().await;
    let (client, _) = connect(&server).await.unwrap();
    client
        .batch_execute("SET martdb.max_result_size = '100kB'")
        .await
        .unwrap();
    let small = client
        .query("SELECT value FROM generate_series(1, 1000)", &[])
        .await
        .unwrap();
    assert_eq!(small.len(), 1000);
    for large in [
        "SELECT value FROM generate_series(1, 100000)",
        "SELECT repeat('x', 200000)",
    ] {
        let err = client.query(large, &[]).await.unwrap_err();
        assert_eq!(code(&err), "54000", "{large}: {err}");
        assert!(message(&err).contains("max_result_size"), "{err}");
        let err = client.simple_query(large).await.unwrap_err();
        assert_eq!(code(&err), "54000", "{large}: {err}");
    }
    crate::server::assert_answers(&client).await;
    client
        .batch_execute("SET martdb.max_result_size = 0")
        .await
        .unwrap();
    let all = client
        .query("SELECT value FROM generate_series(1, 100000)", &[])
        .await
        .unwrap();
    assert_eq!(all.len(), 100_000);
    server.stop().await;
}

//! The Prometheus endpoint over HTTP while clients run statements over the wire.

use std::collections::HashMap;

use martdb::server::ServerOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::server::Server;

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: martdb\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}

/// `name{labels}` -> value, from the exposition text (comments skipped).
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_connections_queries_latency_rows_and_coupons() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let metrics_addr = free.local_addr().unwrap();
    drop(free);
    let server = Server::start_with(ServerOptions {
        metrics_listen: Some(metrics_addr),
        max_connections: 2,
        ..Default::default()
    })
    .await;
    let client = server.client().await;
    client
        .simple_query("SELECT value FROM generate_series(1, 10)")
        .await
        .unwrap();
    client
        .batch_execute("CREATE TABLE scanned AS SELECT value AS id FROM generate_series(1, 1000)")
        .await
        .unwrap();
    // A prepared statement and a simple query each read the whole table.
    let sum: i64 = client
        .query_one(
            "SELECT CAST(sum(id) AS BIGINT) FROM scanned WHERE id > $1",
            &[&0i64],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 500_500);
    client
        .simple_query("SELECT max(id) FROM scanned")
        .await
        .unwrap();
    assert!(client.simple_query("SELECT * FROM missing").await.is_err());
    client
        .batch_execute("SET statement_timeout = 100")
        .await
        .unwrap();
    let err = client
        .simple_query(crate::server::LONG_QUERY)
        .await
        .unwrap_err();
    assert_eq!(err.code().unwrap().code(), "57014");
    client
        .batch_execute("RESET statement_timeout; SELECT create_coupon_pool('m', 1)")
        .await
        .unwrap();
    client
        .simple_query("SELECT reserve_coupon('m', 1, 'k1'), reserve_coupon('m', 2, 'k2')")
        .await
        .unwrap();
    // A third connection over max_connections (2) is refused and counted.
    let _second = server.client().await;
    let addr = server.addr();
    let refused = tokio_postgres::connect(
        &format!(
            "host={} port={} user=x dbname=martdb",
            addr.ip(),
            addr.port()
        ),
        tokio_postgres::NoTls,
    )
    .await;
    assert!(refused.is_err());

    let response = get(metrics_addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.contains("Content-Type: text/plain; version=0.0.4"));
    let body = response.split("\r\n\r\n").nth(1).unwrap();
    let found = samples(body);
    let value = |name: &str| {
        *found
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing in\n{body}"))
    };
    assert_eq!(value("martdb_connections"), 2.0);
    assert_eq!(value("martdb_connections_total"), 3.0);
    assert_eq!(value("martdb_connections_refused_total"), 1.0);
    // SET, SELECT, create_coupon_pool, reserve, RESET, SET: ok; the missing table: error.
    assert!(value("martdb_queries_total{outcome=\"ok\"}") >= 5.0);
    assert_eq!(value("martdb_queries_total{outcome=\"error\"}"), 1.0);
    assert_eq!(value("martdb_queries_total{outcome=\"cancelled\"}"), 1.0);
    let count = value("martdb_query_duration_seconds_count");
    assert_eq!(
        count,
        value("martdb_query_duration_seconds_bucket{le=\"+Inf\"}")
    );
    assert!(value("martdb_query_duration_seconds_sum") >= 0.1, "{body}");
    assert!(value("martdb_rows_total{kind=\"returned\"}") >= 10.0);
    // Per process, like the coupon counters: at least our two scans of 1000 rows.
    assert!(value("martdb_rows_scanned_total") >= 2000.0, "{body}");
    // Coupon counters are per process (other tests reserve too): at least ours.
    assert!(value("martdb_coupon_outcomes_total{outcome=\"reserved\"}") >= 1.0);
    assert!(value("martdb_coupon_outcomes_total{outcome=\"sold_out\"}") >= 1.0);
    assert!(value("martdb_memory_limit_bytes") > 0.0);
    assert!(found.contains_key("martdb_memory_reserved_bytes"));
    assert!(found.contains_key("martdb_rule_matches_total"));

    let missing = get(metrics_addr, "/other").await;
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
    server.stop().await;
}

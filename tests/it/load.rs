//! The load test: 64 concurrent clients of mixed queries (point lookups through prepared
//! statements, aggregates, joins, audiences, coupon reservations, inserts) against one
//! server on loopback for a bounded time. Zero errors allowed; P50/P99 latency printed.
//!
//! `MARTDB_LOAD_SECONDS` sets the duration (default 3); `MARTDB_LOAD_CLIENTS` the
//! number of clients (default 64).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::server::Server;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_of_mixed_queries_without_errors() {
    let seconds = env_or("MARTDB_LOAD_SECONDS", 3);
    let clients = env_or("MARTDB_LOAD_CLIENTS", 64);
    let server = Arc::new(Server::start().await);
    let setup = server.client().await;
    setup
        .batch_execute(
            "CREATE TABLE users AS SELECT value AS user_id, value % 50 AS city, value % 7 AS level FROM generate_series(1, 20000);
             CREATE TABLE orders AS SELECT value AS order_id, value % 20000 + 1 AS user_id, (value % 97) * 1.5 AS amount FROM generate_series(1, 100000);
             CREATE TABLE clicks (user_id BIGINT, page TEXT);
             SELECT create_coupon_pool('load', 100000000);",
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client_no in 0..clients {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let client = server.client().await;
            let lookup = client
                .prepare("SELECT city, level FROM users WHERE user_id = $1")
                .await
                .unwrap();
            let mut latencies = Vec::new();
            let mut n: i64 = 0;
            while Instant::now() < deadline {
                n += 1;
                let started = Instant::now();
                let id = (client_no as i64 * 7919 + n * 104729) % 20000 + 1;
                match n % 6 {
                    0 => {
                        client
                            .query_one(
                                "SELECT city, sum(amount) FROM orders JOIN users USING (user_id) WHERE level = 3 GROUP BY city ORDER BY 2 DESC LIMIT 1",
                                &[],
                            )
                            .await
                            .unwrap();
                    }
                    1 => {
                        client
                            .query_one(
                                "SELECT bitmap_cardinality(bitmap_and(a, b)) FROM (SELECT bitmap_agg(user_id) FILTER (WHERE city < 10) AS a, bitmap_agg(user_id) FILTER (WHERE level = 1) AS b FROM users)",
                                &[],
                            )
                            .await
                            .unwrap();
                    }
                    2 => {
                        let outcome: String = client
                            .query_one(
                                "SELECT reserve_coupon('load', $1::TEXT, $2::TEXT)",
                                &[&id.to_string(), &format!("{client_no}-{n}")],
                            )
                            .await
                            .unwrap()
                            .get(0);
                        assert_eq!(outcome, "reserved");
                    }
                    3 if n % 12 == 3 => {
                        client
                            .execute(
                                "INSERT INTO clicks VALUES ($1, 'home')",
                                &[&id],
                            )
                            .await
                            .unwrap();
                    }
                    _ => {
                        let row = client.query_one(&lookup, &[&id]).await.unwrap();
                        let level: i64 = row.get(1);
                        assert_eq!(level, id % 7);
                    }
                }
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("a client failed"));
    }
    latencies.sort();
    let total = latencies.len();
    eprintln!(
        "load: {clients} clients, {seconds}s, {total} statements ({:.0}/s), 0 errors, P50 {:.2} ms, P99 {:.2} ms, max {:.2} ms",
        total as f64 / seconds as f64,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
    assert!(total as u64 >= clients, "every client ran");
    crate::server::assert_answers(&setup).await;
}

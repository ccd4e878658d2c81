//! The crash harness: a `martdb serve` child under mixed load (INSERTs, CREATE TABLE
//! AS, dense ids, coupon reservations, model registry writes) is killed with SIGKILL at random moments, many
//! times. After each restart every acknowledged write is there, nothing is half-applied,
//! and the invariants hold: coupon stock adds up exactly, dense ids are stable and
//! distinct, no row is duplicated or invented, every registered model version scores.
//!
//! `MARTDB_CRASH_ROUNDS` sets the number of kills (default 8); the seed is printed so a
//! failing run can be repeated with `MARTDB_CRASH_SEED`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use tokio_postgres::NoTls;

const STOCK: i64 = 1_000_000;

#[derive(Clone)]
struct Acknowledged {
    /// Ids whose INSERT returned.
    rows: BTreeSet<i64>,
    /// Ids whose INSERT was sent (returned or not).
    attempted: BTreeSet<i64>,
    /// Request keys whose reservation returned `reserved`.
    reservations: BTreeSet<String>,
    /// Key -> dense id returned.
    dense: BTreeMap<String, i64>,
    /// Row counts of `snapshot` tables that CREATE TABLE AS acknowledged.
    snapshots: u64,
    /// Model versions whose `uplift_train` returned.
    models: BTreeSet<i64>,
}

/// The training set of the models the harness registers.
const CAMPAIGN: &str = "CREATE TABLE campaign AS
    SELECT value AS user_id, value % 2 AS treatment, ((value * 7919) % 1009) / 1009.0 AS a,
           CASE WHEN (value * 31) % 7 < 3 + value % 2 THEN 1 ELSE 0 END AS converted
    FROM generate_series(1, 400)";

fn start(data: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_martdb"))
        .args(["serve", "--data", data.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

pub(crate) async fn connect(port: u16) -> tokio_postgres::Client {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let config = format!("host=127.0.0.1 port={port} user=crash dbname=martdb");
        match tokio_postgres::connect(&config, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the server did not come up: {e}"),
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first column of `sql`'s rows, collected into `C`.
async fn column<T, C>(client: &tokio_postgres::Client, sql: &str) -> C
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
    C: FromIterator<T>,
{
    client
        .query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, T>(0))
        .collect()
}

async fn verify(client: &tokio_postgres::Client, ack: &Acknowledged) {
    // Rows: every acknowledged one present, none duplicated, none invented.
    let ids: Vec<i64> = column(client, "SELECT id FROM events").await;
    let present: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(present.len(), ids.len(), "duplicated rows");
    let lost: Vec<_> = ack.rows.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged rows lost: {lost:?}");
    let invented: Vec<_> = present.difference(&ack.attempted).collect();
    assert!(invented.is_empty(), "rows never inserted: {invented:?}");

    // Coupons: the stock adds up, and every acknowledged reservation is held.
    let pool = client
        .query_one(
            "SELECT stock, remaining, reserved, redeemed FROM martdb.coupon_pools WHERE pool = 'crash'",
            &[],
        )
        .await
        .unwrap();
    let (stock, remaining, reserved, redeemed): (i64, i64, i64, i64) =
        (pool.get(0), pool.get(1), pool.get(2), pool.get(3));
    assert_eq!(stock, STOCK);
    assert_eq!(
        remaining + reserved + redeemed,
        stock,
        "stock does not add up"
    );
    let held: BTreeSet<String> = column(client, "SELECT request_key FROM martdb.coupon_reservations WHERE pool = 'crash' AND status = 'reserved'").await;
    assert_eq!(
        held.len() as i64,
        reserved,
        "holds and the counter disagree"
    );
    let lost: Vec<_> = ack.reservations.difference(&held).collect();
    assert!(lost.is_empty(), "acknowledged reservations lost: {lost:?}");

    // Dense ids: the same as acknowledged, and distinct.
    let mut seen = BTreeSet::new();
    for (key, id) in &ack.dense {
        let now: i64 = client
            .query_one("SELECT dense_id('crash', $1::TEXT)::BIGINT", &[key])
            .await
            .unwrap()
            .get(0);
        assert_eq!(now, *id, "dense id of {key} changed");
        assert!(seen.insert(now), "dense id {now} given twice");
    }

    // CREATE TABLE AS is all or nothing: the snapshot, if any, is a whole copy of some
    // earlier state of `events` (distinct ids, all of them inserted).
    if ack.snapshots > 0 {
        let ids: Vec<i64> = column(client, "SELECT id FROM snapshot").await;
        let distinct: BTreeSet<i64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), ids.len(), "duplicated snapshot rows");
        assert!(
            distinct.is_subset(&ack.attempted),
            "snapshot rows never inserted"
        );
    }

    // Models: every acknowledged version is registered, and every registered version
    // (acknowledged or caught in flight) is whole: its weights load and score.
    let versions: BTreeSet<i64> = column(
        client,
        "SELECT CAST(version AS BIGINT) FROM martdb.models WHERE name = 'crash'",
    )
    .await;
    let lost: Vec<_> = ack.models.difference(&versions).collect();
    assert!(
        lost.is_empty(),
        "acknowledged model versions lost: {lost:?}"
    );
    for version in &versions {
        let scored: i64 = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM uplift_predict('crash', 'SELECT * FROM campaign', {version})"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("model version {version} does not score: {e:?}"))
            .get(0);
        assert_eq!(scored, 400);
    }
    let deployed: i64 = client
        .query_one(
            "SELECT count(*) FROM martdb.models WHERE name = 'crash' AND deployed",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        deployed,
        i64::from(!versions.is_empty()),
        "deployed versions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_at_random_moments() {
    let rounds: usize = std::env::var("MARTDB_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("MARTDB_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("crash harness: {rounds} rounds, MARTDB_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let ack = Arc::new(Mutex::new(Acknowledged {
        rows: BTreeSet::new(),
        attempted: BTreeSet::new(),
        reservations: BTreeSet::new(),
        dense: BTreeMap::new(),
        snapshots: 0,
        models: BTreeSet::new(),
    }));
    let next_id = Arc::new(std::sync::atomic::AtomicI64::new(0));
    for round in 0..=rounds {
        let port = free_port();
        let mut child = start(&data, port);
        let client = connect(port).await;
        if round == 0 {
            client
                .batch_execute(&format!(
                    "CREATE TABLE events (id BIGINT, round BIGINT);
                     SELECT create_coupon_pool('crash', {STOCK}, '{{\"hold_seconds\": 86400}}');
                     {CAMPAIGN}"
                ))
                .await
                .unwrap();
        }
        let acknowledged = ack.lock().unwrap().clone();
        verify(&client, &acknowledged).await;
        if round == rounds {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        // Mixed load until the kill.
        let mut workers = Vec::new();
        for worker in 0..5 {
            let client = connect(port).await;
            let (ack, next_id) = (ack.clone(), next_id.clone());
            workers.push(tokio::spawn(async move {
                let mut n = 0u64;
                loop {
                    n += 1;
                    let result = match worker {
                        0 | 1 => {
                            let id = next_id.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                            ack.lock().unwrap().attempted.insert(id);
                            client
                                .simple_query(&format!("INSERT INTO events VALUES ({id}, {round})"))
                                .await
                                .map(|_| ack.lock().unwrap().rows.insert(id))
                        }
                        2 => {
                            let key = format!("r{round}-{n}");
                            client
                                .query_one(
                                    "SELECT reserve_coupon('crash', $1::TEXT, $2::TEXT)",
                                    &[&format!("u{round}-{n}"), &key],
                                )
                                .await
                                .map(|row| {
                                    let outcome: String = row.get(0);
                                    assert_eq!(outcome, "reserved");
                                    ack.lock().unwrap().reservations.insert(key)
                                })
                        }
                        4 => client
                            .query_one(
                                "SELECT CAST(version AS BIGINT) FROM uplift_train('crash', \
                                 'SELECT treatment, converted, a FROM campaign', 'treatment', \
                                 'converted', 'learner = s, base = logistic, epochs = 2')",
                                &[],
                            )
                            .await
                            .map(|row| ack.lock().unwrap().models.insert(row.get(0))),
                        _ if n.is_multiple_of(4) => client
                            .simple_query(
                                "CREATE OR REPLACE TABLE snapshot AS SELECT id, round FROM events",
                            )
                            .await
                            .map(|_| {
                                ack.lock().unwrap().snapshots += 1;
                                true
                            }),
                        _ => {
                            let key = format!("k{round}-{n}");
                            client
                                .query_one("SELECT dense_id('crash', $1::TEXT)::BIGINT", &[&key])
                                .await
                                .map(|row| {
                                    let id: i64 = row.get(0);
                                    ack.lock().unwrap().dense.insert(key, id).is_none()
                                })
                        }
                    };
                    if result.is_err() {
                        // The server died under us: the outcome is unknown.
                        return;
                    }
                }
            }));
        }
        let wait = rng.random_range(100..1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        for worker in workers {
            worker.await.unwrap();
        }
    }
    let ack = ack.lock().unwrap();
    eprintln!(
        "crash harness: {} rows, {} reservations, {} dense ids, {} snapshots, {} model versions acknowledged across {rounds} kills",
        ack.rows.len(),
        ack.reservations.len(),
        ack.dense.len(),
        ack.snapshots,
        ack.models.len()
    );
    assert!(!ack.rows.is_empty() && !ack.reservations.is_empty() && !ack.dense.is_empty());
}

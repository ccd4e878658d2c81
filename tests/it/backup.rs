//! Backup while the server runs, and restore: the restored database answers like the
//! live one did at the backup, with concurrent writes either in or out, never half.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use martdb::Engine;
use martdb::server::ServerOptions;

use crate::rows;
use crate::server::Server;

const CHECKS: [&str; 4] = [
    "SELECT count(*), sum(value) FROM t",
    "SELECT pool, request_key, status FROM martdb.coupon_reservations ORDER BY request_key",
    "SELECT pool, remaining, reserved, redeemed FROM martdb.coupon_pools ORDER BY pool",
    "SELECT table_name FROM martdb.tables ORDER BY table_name",
];

async fn answers_over_wire(client: &tokio_postgres::Client) -> Vec<Vec<Vec<Option<String>>>> {
    let mut all = Vec::new();
    for check in CHECKS {
        let messages = client.simple_query(check).await.unwrap();
        all.push(
            messages
                .iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_string))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect(),
        );
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_to_the_same_answers() {
    let server = Server::start_with(ServerOptions::default()).await;
    let client = server.client().await;
    client
        .batch_execute(
            "CREATE TABLE t AS SELECT value FROM generate_series(1, 1000);
             INSERT INTO t VALUES (5000), (6000);
             CREATE TABLE busy (n BIGINT);
             SELECT create_coupon_pool('spring', 5);
             SELECT reserve_coupon('spring', 1, 'a'), reserve_coupon('spring', 2, 'b');
             SELECT redeem_coupon('spring', 1, 'a');",
        )
        .await
        .unwrap();
    let expected = answers_over_wire(&client).await;

    // A writer keeps inserting into `busy` while the backup runs.
    let writer = server.client().await;
    let acknowledged = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (acknowledged, stop) = (acknowledged.clone(), stop.clone());
        async move {
            while !stop.load(Ordering::Acquire) {
                let n = acknowledged.load(Ordering::Acquire) + 1;
                writer
                    .simple_query(&format!("INSERT INTO busy VALUES ({n})"))
                    .await
                    .unwrap();
                acknowledged.store(n, Ordering::Release);
            }
        }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backups = tempfile::tempdir().unwrap();
    let dest = backups.path().join("b1");
    let before = acknowledged.load(Ordering::Acquire);
    let messages = client
        .simple_query(&format!("SELECT backup_database('{}')", dest.display()))
        .await
        .unwrap();
    let after = acknowledged.load(Ordering::Acquire);
    stop.store(true, Ordering::Release);
    load.await.unwrap();
    let summary = messages
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap();
    assert!(summary.contains("files"), "{summary}");
    assert!(dest.join("martdb-backup.json").exists());
    assert!(before > 0, "the writer ran before the backup");

    // An existing destination is refused.
    let err = client
        .simple_query(&format!("SELECT backup_database('{}')", dest.display()))
        .await
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("already exists"),
        "{err}"
    );
    server.stop().await;

    // Restore into a new directory and compare.
    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    martdb::storage::backup::restore(&dest, &data).unwrap();
    let engine = Engine::open(data.to_str().unwrap()).await.unwrap();
    let mut answers = Vec::new();
    for check in CHECKS {
        let batches = engine.sql(check).await.unwrap();
        answers.push(
            rows(&batches)
                .into_iter()
                .map(|row| row.into_iter().map(Some).collect::<Vec<_>>())
                .collect::<Vec<_>>(),
        );
    }
    // Tables listed include `busy`, created before the backup: same as live.
    assert_eq!(answers[..3], expected[..3]);
    assert!(answers[3].contains(&vec![Some("busy".to_string())]));
    // The concurrent inserts: every one acknowledged before the backup began is there,
    // none after it ended, and they are whole rows 1..=n with no gap.
    let busy = rows(
        &engine
            .sql("SELECT count(*), min(n), max(n) FROM busy")
            .await
            .unwrap(),
    );
    let count: u64 = busy[0][0].parse().unwrap();
    assert!(
        (before..=after + 1).contains(&count),
        "{before} <= {count} <= {after}"
    );
    if count > 0 {
        assert_eq!(busy[0][1], "1");
        assert_eq!(busy[0][2], count.to_string());
    }
    // The restored coupon state goes on: 5 - 2 reserved = 3 left.
    let reserved = rows(
        &engine
            .sql("SELECT reserve_coupon('spring', 3, 'c')")
            .await
            .unwrap(),
    );
    assert_eq!(reserved[0][0], "reserved");
    // A non-empty destination is refused.
    let err = martdb::storage::backup::restore(&dest, &data).unwrap_err();
    assert!(err.to_string().contains("not empty"), "{err}");
}

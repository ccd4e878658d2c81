//! A full disk: writes fail with SQLSTATE 53100 (disk_full) and leave nothing behind, the
//! server stays up and keeps serving what it acknowledged, and after a SIGKILL and a
//! restart on the same file system nothing is corrupt; once space is freed, writes go on.
//!
//! The data directory sits on a 24 MB tmpfs mounted in a private mount namespace
//! (`unshare --user --map-root-user --mount`), so the test needs no root. The tmpfs lives
//! as long as that namespace, so one shell in it runs both servers, one after the other.
//! Where the kernel refuses user namespaces the test says so and skips, unless
//! `MARTDB_REQUIRE_CLIENTS` is set (CI), where that fails it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::crash::{connect, free_port};

const BATCH: i64 = 20_000;

/// Inserts batch `n`: ids `n*BATCH ..`, with 64 hex characters of random payload each so
/// that Parquet cannot compress the disk full away.
async fn insert_batch(
    client: &tokio_postgres::Client,
    n: i64,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            &format!(
                "INSERT INTO events SELECT value, md5(CAST(random() AS TEXT)) || \
                 md5(CAST(random() AS TEXT)) FROM generate_series({}, {})",
                n * BATCH,
                (n + 1) * BATCH - 1
            ),
            &[],
        )
        .await
}

fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_string()).unwrap_or_default()
}

/// `(count, sum of ids, sum of payload lengths)` of `events`: all of it is read, so a
/// damaged file fails here.
async fn summary(client: &tokio_postgres::Client) -> (i64, i64, i64) {
    let row = client
        .query_one(
            "SELECT count(*), CAST(COALESCE(sum(id), 0) AS BIGINT), \
             CAST(COALESCE(sum(length(payload)), 0) AS BIGINT) FROM events",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

fn expected(batches: &[i64]) -> (i64, i64, i64) {
    let count = batches.len() as i64 * BATCH;
    let sum = batches
        .iter()
        .map(|n| (n * BATCH..(n + 1) * BATCH).sum::<i64>())
        .sum();
    (count, sum, count * 64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_cleanly_and_loses_nothing() {
    let mount = tempfile::tempdir().unwrap();
    let (first_port, second_port) = (free_port(), free_port());
    let script = r#"
        mount -t tmpfs -o size=24m martdb-disk-full "$MNT" || exit 99
        "$BIN" serve --data "$MNT/db" --listen "127.0.0.1:$1" 2>/dev/null & echo "$!"; wait
        "$BIN" serve --data "$MNT/db" --listen "127.0.0.1:$2" 2>/dev/null & echo "$!"; wait
    "#;
    let mut namespace = match Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .args([first_port.to_string(), second_port.to_string()])
        .env("MNT", mount.path())
        .env("BIN", env!("CARGO_BIN_EXE_martdb"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return skip(&format!("cannot run unshare: {e}")),
    };
    let mut pids = BufReader::new(namespace.stdout.take().unwrap()).lines();
    let Some(Ok(first)) = pids.next() else {
        let mut why = String::new();
        std::io::Read::read_to_string(namespace.stderr.as_mut().unwrap(), &mut why).unwrap();
        return skip(&format!(
            "no private tmpfs ({}): {why}",
            namespace.wait().unwrap()
        ));
    };

    let client = connect(first_port).await;
    client
        .batch_execute(
            "CREATE TABLE events (id BIGINT, payload TEXT); \
             CREATE TABLE ballast AS SELECT value AS id, md5(CAST(random() AS TEXT)) || \
             md5(CAST(random() AS TEXT)) AS payload FROM generate_series(1, 60000)",
        )
        .await
        .unwrap();
    let dense_before: i64 = client
        .query_one("SELECT dense_id('disk', 'before')", &[])
        .await
        .unwrap()
        .get(0);

    // Fill the disk.
    let mut acknowledged = Vec::new();
    let full = loop {
        let n = acknowledged.len() as i64;
        assert!(n < 200, "24 MB never filled up");
        match insert_batch(&client, n).await {
            Ok(rows) => {
                assert_eq!(rows, BATCH as u64);
                acknowledged.push(n);
            }
            Err(e) => break e,
        }
    };
    assert_eq!(sqlstate(&full), "53100", "{full:?}");
    assert!(
        format!("{full:?}").contains("No space left on device"),
        "{full:?}"
    );
    assert!(acknowledged.len() >= 2, "{acknowledged:?}");

    // The server is up; what it acknowledged reads back whole; more writes fail the same.
    assert_eq!(summary(&client).await, expected(&acknowledged));
    let again = insert_batch(&client, 999).await.unwrap_err();
    assert_eq!(sqlstate(&again), "53100", "{again:?}");
    let ctas = client
        .batch_execute("CREATE TABLE copy_of_events AS SELECT * FROM events")
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&ctas), "53100", "{ctas:?}");
    let other = connect(first_port).await;
    assert_eq!(summary(&other).await, expected(&acknowledged));
    let tables: i64 = other
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'copy_of_events'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "a failed CREATE TABLE AS left a table behind");

    // SIGKILL, restart on the same file system: nothing half-written is visible.
    let first: i32 = first.trim().parse().unwrap();
    assert!(
        Command::new("kill")
            .args(["-9", &first.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let second: i32 = pids.next().unwrap().unwrap().trim().parse().unwrap();
    let client = connect(second_port).await;
    assert_eq!(summary(&client).await, expected(&acknowledged));
    let dense_after: i64 = client
        .query_one("SELECT dense_id('disk', 'before')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dense_after, dense_before);

    // Freeing space is enough for writes to go on.
    client.batch_execute("DROP TABLE ballast").await.unwrap();
    let n = acknowledged.len() as i64;
    insert_batch(&client, n).await.unwrap();
    acknowledged.push(n);
    assert_eq!(summary(&client).await, expected(&acknowledged));
    client
        .batch_execute(&format!(
            "CREATE TABLE copy_of_events AS SELECT * FROM events WHERE id < {BATCH}"
        ))
        .await
        .unwrap();
    let copied: i64 = client
        .query_one("SELECT count(*) FROM copy_of_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(copied, BATCH);

    let _ = Command::new("kill")
        .args(["-9", &second.to_string()])
        .status();
    namespace.wait().unwrap();
    eprintln!(
        "disk full after {} batches of {BATCH} rows; 53100, nothing lost, writes resumed",
        acknowledged.len() - 1
    );
}

fn skip(why: &str) {
    assert!(
        std::env::var_os("MARTDB_REQUIRE_CLIENTS").is_none(),
        "the full-disk test must run here: {why}"
    );
    eprintln!("skipping the full-disk test: {why}");
}

//! The `martdb` binary: output formats, scripts, and crash safety under SIGKILL.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn martdb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_martdb"))
}

fn sql(data: &Path, statement: &str, format: &str) -> std::process::Output {
    martdb()
        .args([
            "sql",
            "--data",
            data.to_str().unwrap(),
            "--format",
            format,
            statement,
        ])
        .output()
        .unwrap()
}

fn stdout(output: &std::process::Output) -> String {
    assert!(
        output.status.success(),
        "martdb failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn kill(child: &mut Child) {
    // SIGKILL: no destructors, no flush, no chance to clean up.
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn output_formats_and_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("setup.sql");
    std::fs::write(
        &script,
        "CREATE TABLE t (id BIGINT, tag TEXT);\nINSERT INTO t VALUES (1, 'a'), (2, 'b, with comma');\n-- a comment\nSELECT count(*) AS n FROM t;\n",
    )
    .unwrap();
    let out = martdb()
        .args([
            "sql",
            "--data",
            dir.path().to_str().unwrap(),
            "-f",
            script.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("| n "), "{text}");
    assert!(text.contains("(1 row)"), "{text}");

    let csv = stdout(&sql(dir.path(), "SELECT id, tag FROM t ORDER BY id", "csv"));
    assert_eq!(csv, "id,tag\n1,a\n2,\"b, with comma\"\n");
    let json = stdout(&sql(
        dir.path(),
        "SELECT id, tag FROM t ORDER BY id",
        "json",
    ));
    assert_eq!(
        json,
        "{\"id\":1,\"tag\":\"a\"}\n{\"id\":2,\"tag\":\"b, with comma\"}\n"
    );
    let parquet = dir.path().join("out.parquet");
    let out = martdb()
        .args([
            "sql",
            "--data",
            dir.path().to_str().unwrap(),
            "--format",
            "parquet",
            "-o",
            parquet.to_str().unwrap(),
            "SELECT * FROM t",
        ])
        .output()
        .unwrap();
    stdout(&out);
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&parquet).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    assert_eq!(reader.map(|b| b.unwrap().num_rows()).sum::<usize>(), 2);

    // Statements on standard input.
    let mut child = martdb()
        .args([
            "sql",
            "--data",
            dir.path().to_str().unwrap(),
            "--format",
            "csv",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT max(id) AS m FROM t;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(stdout(&out), "m\n2\n");
}

#[test]
fn errors_exit_nonzero_with_sqlstate_and_keep_data() {
    let dir = tempfile::tempdir().unwrap();
    stdout(&sql(dir.path(), "CREATE TABLE t AS SELECT 1 AS x", "csv"));
    let out = sql(dir.path(), "SELECT * FROM missing_table", "csv");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing_table") && err.contains("42P01"),
        "{err}"
    );
    let out = martdb()
        .args([
            "sql",
            "--data",
            dir.path().join("nope").to_str().unwrap(),
            "SELECT 1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert_eq!(stdout(&sql(dir.path(), "SELECT x FROM t", "csv")), "x\n1\n");
}

/// An interactive `martdb sql` session fed statements one at a time; each statement's
/// output line is its acknowledgement.
struct Session {
    child: Child,
    input: std::process::ChildStdin,
    output: BufReader<std::process::ChildStdout>,
}

impl Session {
    fn start(data: &Path) -> Session {
        let mut child = martdb()
            .args(["sql", "--data", data.to_str().unwrap(), "--format", "csv"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = BufReader::new(child.stdout.take().unwrap());
        Session {
            child,
            input,
            output,
        }
    }

    /// Sends one statement and waits for its acknowledgement (the `count` result).
    fn ack(&mut self, statement: &str) -> String {
        writeln!(self.input, "{statement};").unwrap();
        self.input.flush().unwrap();
        let mut header = String::new();
        self.output.read_line(&mut header).unwrap();
        assert_eq!(header.trim(), "count", "unexpected output for {statement}");
        let mut value = String::new();
        self.output.read_line(&mut value).unwrap();
        value.trim().to_string()
    }
}

fn count(data: &Path, table: &str) -> u64 {
    stdout(&sql(
        data,
        &format!("SELECT count(*) AS n FROM {table}"),
        "csv",
    ))
    .lines()
    .nth(1)
    .unwrap()
    .parse()
    .unwrap()
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::start(dir.path());
    assert_eq!(
        session.ack("CREATE TABLE t AS SELECT value AS v FROM generate_series(1, 1000)"),
        "1000"
    );
    assert_eq!(
        session.ack("INSERT INTO t SELECT value FROM generate_series(1, 234)"),
        "234"
    );
    assert_eq!(session.ack("INSERT INTO t VALUES (7)"), "1");
    kill(&mut session.child);
    assert_eq!(count(dir.path(), "t"), 1235);
}

#[test]
fn sigkill_during_insert_leaves_all_or_none_of_its_rows() {
    const BATCH: u64 = 600_000;
    let dir = tempfile::tempdir().unwrap();
    stdout(&sql(
        dir.path(),
        "CREATE TABLE t AS SELECT value AS v, 'seed' AS note FROM generate_series(1, 10)",
        "csv",
    ));
    // Time one INSERT so that kills land before, during and after its commit.
    let started = Instant::now();
    stdout(&sql(
        dir.path(),
        &format!("INSERT INTO t SELECT value, md5(value::text) FROM generate_series(1, {BATCH})"),
        "csv",
    ));
    let insert_time = started.elapsed();
    let mut expected_min = 10 + BATCH;
    let mut killed = 0;
    for attempt in 0..8u32 {
        let mut child = martdb()
            .args([
                "sql",
                "--data",
                dir.path().to_str().unwrap(),
                "--format",
                "csv",
            ])
            .arg(format!(
                "INSERT INTO t SELECT value, md5(value::text) FROM generate_series(1, {BATCH})"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills from process start to a bit past the expected end.
        let delay = insert_time.mul_f64(0.15 + 0.15 * f64::from(attempt));
        std::thread::sleep(delay.min(Duration::from_secs(20)));
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            kill(&mut child);
            killed += 1;
        }
        let n = count(dir.path(), "t");
        assert!(
            n == expected_min || n == expected_min + BATCH,
            "attempt {attempt}: {n} rows is neither {expected_min} nor {}",
            expected_min + BATCH
        );
        if finished {
            assert_eq!(n, expected_min + BATCH, "a finished INSERT is complete");
        }
        expected_min = n;
    }
    assert!(
        killed > 0,
        "no INSERT was interrupted: the test did not exercise a crash"
    );
}

#[test]
fn acknowledged_dense_ids_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = Session::start(dir.path());
    let assign =
        "SELECT max(dense_id('user', 'k' || value)) + 1 AS count FROM generate_series(0, 4999)";
    assert_eq!(session.ack(assign), "5000");
    kill(&mut session.child);
    let after = stdout(&sql(
        dir.path(),
        "SELECT count(*), count(DISTINCT dense_id), max(dense_id), \
         dense_id('user', 'k17'), dense_id('user', 'new') FROM martdb.id_dictionary",
        "csv",
    ));
    // Every acknowledged id is there, once each, and numbering goes on after them.
    assert_eq!(
        after.lines().nth(1),
        Some("5000,5000,4999,17,5000"),
        "{after}"
    );
}

/// The audiences example runs on the demo data, and its saved audience has exactly the
/// members plain SQL over the raw rows finds.
#[test]
fn audiences_example_matches_plain_sql() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let demo = martdb()
        .args(["demo", "--data", data, "--users", "3000"])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/examples/audiences.sql");
    let run = martdb()
        .args(["sql", "--data", data, "-f", script])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.stderr.is_empty(),
        "no warnings: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let saved = stdout(&sql(
        dir.path(),
        "SELECT cardinality FROM martdb.audiences WHERE name = 'sports_cart_abandoners'",
        "csv",
    ));
    let plain = stdout(&sql(
        dir.path(),
        "SELECT count(*) AS cardinality FROM (
           SELECT user_id FROM user_tags WHERE tag = 'sports'
           INTERSECT SELECT user_id FROM events WHERE event_type = 'cart'
           EXCEPT SELECT user_id FROM orders WHERE ts >= (SELECT max(ts) FROM orders) - INTERVAL '30 days')",
        "csv",
    ));
    assert_eq!(saved, plain);
    assert_ne!(
        saved.lines().nth(1),
        Some("0"),
        "an empty audience proves little"
    );
}

/// The coupons example runs on the demo data: exactly min(stock, eligible users) are
/// reserved, only audience members get one, and the counters reconcile.
#[test]
fn coupons_example_reserves_for_the_audience_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let demo = martdb()
        .args(["demo", "--data", data, "--users", "3000"])
        .output()
        .unwrap();
    assert!(demo.status.success());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/examples/coupons.sql");
    let run = martdb()
        .args(["sql", "--data", data, "-f", script])
        .output()
        .unwrap();
    assert!(
        run.status.success() && run.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let check = stdout(&sql(
        dir.path(),
        "SELECT
           (SELECT count(*) FROM flash_requests WHERE outcome = 'reserved'),
           (SELECT least(200, count(DISTINCT user_id)) FROM user_tags WHERE tag = 'sports'),
           (SELECT balanced FROM martdb.coupon_reconciliation),
           (SELECT status FROM martdb.coupon_pools)",
        "csv",
    ));
    let values: Vec<&str> = check.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(values[0], values[1], "{check}");
    assert_ne!(values[0], "0");
    assert_eq!(values[2..], ["true", "paused"], "{check}");
    let outsiders = stdout(&sql(
        dir.path(),
        "SELECT count(*) FROM flash_requests r
         LEFT JOIN (SELECT DISTINCT user_id FROM user_tags WHERE tag = 'sports') s
         ON r.user_id = s.user_id
         WHERE r.outcome = 'reserved' AND s.user_id IS NULL",
        "csv",
    ));
    assert_eq!(outsiders.lines().nth(1), Some("0"), "only members reserve");
}

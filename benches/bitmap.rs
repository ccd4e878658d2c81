//! martdb's roaring-bitmap functions vs chDB (embedded ClickHouse) and DuckDB, in one run,
//! over the same Parquet files: building per-tag bitmaps of users from (user, tag) rows,
//! the audience count of `(tag000 & tag001) - tag002` on prebuilt bitmaps, and the size of
//! the bitmaps next to the raw rows.
//!
//! `scripts/bench-bitmap.sh [--users N] [--rows R] [--tags T] [--runs N] [--fast-runs M]
//! [--data DIR] [--table-cache 4G]` sets up chDB and DuckDB and runs this; or
//! `MARTDB_PYTHON=/path/to/python-with-chdb-and-duckdb cargo bench --bench bitmap -- ...`.
//!
//! The data (a managed table `user_tags(user_id BIGINT, tag VARCHAR)` and its bitmaps
//! `tag_bitmaps(tag, b)`) is written once with martdb's SQL into `--data` (default
//! `target/bench-data/bitmap-{users}-{rows}`) and reused by later runs.

#[path = "args.rs"]
mod args;
#[path = "peer.rs"]
mod peer;

/// The allocator the `martdb` binary uses, so that the bench measures what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use args::{arg, num_arg};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use martdb::{Engine, EngineOptions};
use peer::{Measured, Query};

/// Runs `sql` once in martdb and returns its rows as text.
async fn rows(engine: &Engine, sql: &str) -> Vec<Vec<String>> {
    let query = Query {
        name: sql.to_string(),
        sql: sql.to_string(),
    };
    peer::run_martdb(engine, &query, 1).await.rows
}

async fn table_exists(engine: &Engine, name: &str) -> bool {
    !rows(
        engine,
        &format!("SELECT 1 FROM martdb.tables WHERE table_name = '{name}'"),
    )
    .await
    .is_empty()
}

/// The Parquet files of a managed table's current version (as `peer::run_duckdb` finds
/// them: `martdb.table_files`, file URLs made paths).
async fn table_files(engine: &Engine, table: &str) -> Vec<String> {
    let batches = engine
        .sql(&format!(
            "SELECT path FROM martdb.table_files WHERE table_name = '{table}' ORDER BY 1"
        ))
        .await
        .unwrap();
    let mut files = Vec::new();
    for batch in &batches {
        let paths =
            ArrayFormatter::try_new(batch.column(0).as_ref(), &FormatOptions::default()).unwrap();
        for row in 0..batch.num_rows() {
            let uri = paths.value(row).to_string();
            files.push(
                url::Url::parse(&uri)
                    .ok()
                    .and_then(|u| u.to_file_path().ok())
                    .map(|p| p.display().to_string())
                    .unwrap_or(uri),
            );
        }
    }
    files
}

fn disk_bytes(files: &[String]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum()
}

/// Runs `benches/peers/bitmap_peer.py` (chDB and DuckDB) with `spec`.
fn run_peers(spec: &serde_json::Value) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/bitmap_peer.py");
    let mut child = Command::new(peer::python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (scripts/bench-bitmap.sh installs chdb and duckdb): {e}",
                peer::python()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "bitmap peer failed (scripts/bench-bitmap.sh installs chdb and duckdb into a venv and \
         sets MARTDB_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn measured(v: &serde_json::Value) -> Measured {
    Measured {
        seconds: v["seconds"].as_f64().unwrap(),
        rows: v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap().to_string())
                    .collect()
            })
            .collect(),
    }
}

/// One line of the table: martdb's time, the peers' times and ratios (peer / martdb, > 1
/// means martdb is faster), and whether every engine's rows agree.
struct Line<'a> {
    name: &'a str,
    martdb: &'a Measured,
    chdb: Option<&'a Measured>,
    duckdb: Option<&'a Measured>,
    /// The result as shown.
    shown: String,
}

fn header() {
    println!(
        "{:<42} {:>10} {:>10} {:>8} {:>10} {:>8}  result",
        "query", "martdb ms", "chdb ms", "ratio", "duckdb ms", "ratio"
    );
}

/// Prints the line; returns whether the engines agree.
fn print_line(line: &Line) -> bool {
    let ms =
        |m: Option<&Measured>| m.map_or("-".to_string(), |m| format!("{:.1}", m.seconds * 1e3));
    let ratio = |m: Option<&Measured>| {
        m.map_or("-".to_string(), |m| {
            format!("{:.2}x", m.seconds / line.martdb.seconds)
        })
    };
    let mut different = Vec::new();
    for (engine, m) in [("chdb", line.chdb), ("duckdb", line.duckdb)] {
        if let Some(m) = m
            && !peer::same_rows(&line.martdb.rows, &m.rows)
        {
            different.push(format!("{engine} {:?}", m.rows));
        }
    }
    let result = if different.is_empty() {
        format!("same: {}", line.shown)
    } else {
        format!(
            "DIFFERENT: martdb {:?}, {}",
            line.martdb.rows,
            different.join(", ")
        )
    };
    println!(
        "{:<42} {:>10.1} {:>10} {:>8} {:>10} {:>8}  {result}",
        line.name,
        line.martdb.seconds * 1e3,
        ms(line.chdb),
        ratio(line.chdb),
        ms(line.duckdb),
        ratio(line.duckdb),
    );
    different.is_empty()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

fn goal(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

#[tokio::main]
async fn main() {
    let users = num_arg("--users", 100_000_000);
    let row_count = num_arg("--rows", 100_000_000);
    let tags = num_arg("--tags", 100);
    let runs = num_arg("--runs", 5) as usize;
    let fast_runs = num_arg("--fast-runs", 20) as usize;
    assert!(
        (3..=1000).contains(&tags),
        "--tags must be 3 to 1000 (tag000 .. tag999)"
    );
    assert!(
        users <= u64::from(u32::MAX) + 1 && row_count <= u64::from(u32::MAX) + 1,
        "ids and row numbers are 32-bit here (chDB's bitmaps of UInt32, the hash)"
    );
    let data = arg("--data").unwrap_or_else(|| {
        let suffix = if tags == 100 {
            String::new()
        } else {
            format!("-{tags}tags")
        };
        format!(
            "{}/target/bench-data/bitmap-{users}-{row_count}{suffix}",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // --table-cache 4G: keep tag_bitmaps decoded in memory (the default cache takes a
    // table whose files are at most a sixteenth of it, at most 2 GiB / 16).
    let table_cache = arg("--table-cache").map(|v| {
        let (digits, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
        let factor = match unit.to_ascii_uppercase().as_str() {
            "" => 1,
            "K" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            _ => panic!("--table-cache {v}: a size like 512M or 4G"),
        };
        digits.parse::<usize>().expect("--table-cache") * factor
    });
    let engine = match table_cache {
        None => Engine::open(&data).await,
        Some(bytes) => {
            let options = EngineOptions {
                table_cache: Some(bytes),
                ..EngineOptions::default()
            };
            Engine::open_with(&data, options).await
        }
    }
    .expect("open bench data");

    // The data, once. Users and tags come from two 32-bit integer hashes of the row number
    // (Wellons' xor-shift-multiply mixer, every product below 2^63): users uniform over the
    // universe (as rows of independent draws: about 63% of the users appear when rows =
    // users), tags skewed (tag k with probability ((k+1)^(1/3) - k^(1/3)) / tags^(1/3)), so
    // tag000, tag001 and tag002 are the largest and overlap. (A single multiplicative
    // congruential hash, `((value * 48271) % 2147483647) % users`, is too regular: its
    // repeated users never got both tag000 and tag001, so the expression counted 0.)
    let mut notes = Vec::new();
    if !table_exists(&engine, "user_tags").await {
        eprintln!("writing user_tags: {row_count} rows into {data} ...");
        let started = Instant::now();
        let mix = |step: &str| format!("SELECT {step} AS a, {} AS b", step.replace('a', "b"));
        engine
            .sql(&format!(
                "CREATE TABLE user_tags AS \
                 WITH s0 AS (SELECT value AS a, value # 1431655765 AS b FROM range({row_count})), \
                   s1 AS ({} FROM s0), s2 AS ({} FROM s1), s3 AS ({} FROM s2), \
                   s4 AS ({} FROM s3), s5 AS ({} FROM s4) \
                 SELECT a % {users} AS user_id, \
                   'tag' || lpad(CAST(CAST(floor({tags} * power(b / 4294967296.0, 3)) AS BIGINT) \
                   AS VARCHAR), 3, '0') AS tag \
                 FROM s5",
                mix("a # (a >> 16)"),
                mix("(a * 2146121005) & 4294967295"),
                mix("a # (a >> 15)"),
                mix("(a * 739982445) & 4294967295"),
                mix("a # (a >> 16)"),
            ))
            .await
            .expect("create user_tags");
        notes.push(format!(
            "user_tags written in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    let have = rows(&engine, "SELECT count(*) FROM user_tags").await;
    assert_eq!(
        have[0][0],
        row_count.to_string(),
        "user_tags in {data} has another row count"
    );
    if !table_exists(&engine, "tag_bitmaps").await {
        eprintln!("building tag_bitmaps ...");
        let started = Instant::now();
        engine
            .sql(
                "CREATE TABLE tag_bitmaps AS \
                 SELECT tag, group_bitmap_state(user_id) AS b FROM user_tags GROUP BY tag",
            )
            .await
            .expect("create tag_bitmaps");
        notes.push(format!(
            "tag_bitmaps built in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    let files = table_files(&engine, "user_tags").await;
    let bitmap_files = table_files(&engine, "tag_bitmaps").await;
    let (t1, t2, t3) = ("tag000", "tag001", "tag002");

    eprintln!("running chDB and DuckDB ...");
    let peers = run_peers(&serde_json::json!({
        "files": files,
        "threads": threads,
        "runs": runs,
        "fast_runs": fast_runs,
        "tags": [t1, t2, t3],
    }));
    let chdb: BTreeMap<&str, Measured> = ["build", "scan", "expr", "decode"]
        .into_iter()
        .map(|k| (k, measured(&peers["chdb"][k])))
        .collect();
    let duck: BTreeMap<&str, Measured> = ["build", "scan", "expr"]
        .into_iter()
        .map(|k| (k, measured(&peers["duckdb"][k])))
        .collect();

    eprintln!("running martdb ...");
    let measure = |name: &str, sql: String, runs: usize| {
        let engine = engine.clone();
        let query = Query {
            name: name.to_string(),
            sql,
        };
        async move {
            // One warm-up run so every engine has the file metadata (and martdb its table
            // cache) warm.
            peer::run_martdb(&engine, &query, 1).await;
            peer::run_martdb(&engine, &query, runs).await
        }
    };
    let build = measure(
        "build",
        "SELECT count(*), sum(bitmap_cardinality(b)) FROM \
         (SELECT tag, group_bitmap_state(user_id) AS b FROM user_tags GROUP BY tag) t"
            .into(),
        runs,
    )
    .await;
    let scan = measure(
        "scan",
        "SELECT tag, count(*) FROM user_tags GROUP BY tag ORDER BY tag".into(),
        runs,
    )
    .await;
    let expr = measure(
        "expr",
        format!("SELECT bitmap_expr_cardinality(b, tag, '({t1} & {t2}) - {t3}') FROM tag_bitmaps"),
        fast_runs,
    )
    .await;
    let expr_where = measure(
        "expr_where",
        format!(
            "SELECT bitmap_expr_cardinality(b, tag, '({t1} & {t2}) - {t3}') FROM tag_bitmaps \
             WHERE tag IN ('{t1}', '{t2}', '{t3}')"
        ),
        fast_runs,
    )
    .await;
    let scalar = measure(
        "scalar",
        format!(
            "SELECT bitmap_andnot_cardinality(bitmap_and(x.b, y.b), z.b) \
             FROM tag_bitmaps x, tag_bitmaps y, tag_bitmaps z \
             WHERE x.tag = '{t1}' AND y.tag = '{t2}' AND z.tag = '{t3}'"
        ),
        fast_runs,
    )
    .await;
    let decode = measure(
        "decode",
        format!(
            "SELECT sum(bitmap_cardinality(b)) FROM tag_bitmaps WHERE tag IN ('{t1}', '{t2}', '{t3}')"
        ),
        fast_runs,
    )
    .await;
    // octet_length(bytea) is PostgreSQL's byte count; where DataFusion's octet_length
    // takes only text, count the hex digits instead (and say so).
    let mut length = "octet_length(b)";
    if engine
        .sql("SELECT octet_length(b) FROM tag_bitmaps LIMIT 1")
        .await
        .is_err()
    {
        length = "(octet_length(encode(b, 'hex')) / 2)";
        notes.push(format!(
            "octet_length(bytea) fails in martdb, bytes counted as {length}"
        ));
    }
    let sizes = rows(
        &engine,
        &format!("SELECT sum({length}), count(*), sum(bitmap_cardinality(b)) FROM tag_bitmaps"),
    )
    .await;
    let per_tag = rows(
        &engine,
        &format!(
            "SELECT tag, bitmap_cardinality(b), {length} FROM tag_bitmaps \
             WHERE tag IN ('{t1}', '{t2}', '{t3}') ORDER BY tag"
        ),
    )
    .await;

    println!(
        "martdb vs chDB {} and DuckDB {}: roaring bitmaps of {users} users, {row_count} \
         (user, tag) rows, {tags} tags, {threads} threads",
        peers["versions"]["chdb"].as_str().unwrap_or("?"),
        peers["versions"]["duckdb"].as_str().unwrap_or("?"),
    );
    println!(
        "data: {data}; table cache: {}",
        table_cache.map_or("default".to_string(), |b| format!("{b} bytes"))
    );
    notes.push(format!(
        "chDB's Memory tag_bitmaps built in {:.1} s",
        peers["chdb"]["create_table"]["seconds"].as_f64().unwrap()
    ));
    println!("{}", notes.join("; "));
    println!("ratio = peer time / martdb time (> 1: martdb is faster)");
    let mut same = true;

    println!();
    println!(
        "(a) per-tag bitmaps from the raw rows (Parquet), median of {runs} runs \
         (DuckDB: count(DISTINCT user_id) per tag, no bitmaps)"
    );
    header();
    let shown = |m: &Measured| m.rows.first().map(|r| r.join(", ")).unwrap_or_default();
    same &= print_line(&Line {
        name: "build: count, sum(cardinality) by tag",
        martdb: &build,
        chdb: Some(&chdb["build"]),
        duckdb: Some(&duck["build"]),
        shown: format!(
            "{} tags, {} (tag, user) pairs",
            build.rows[0][0], build.rows[0][1]
        ),
    });
    let scanned: u64 = scan.rows.iter().map(|r| r[1].parse::<u64>().unwrap()).sum();
    same &= print_line(&Line {
        name: "scan baseline: tag, count(*) by tag",
        martdb: &scan,
        chdb: Some(&chdb["scan"]),
        duckdb: Some(&duck["scan"]),
        shown: format!("{} tags, {scanned} rows", scan.rows.len()),
    });
    assert_eq!(scanned, row_count, "the scan baseline counts every row");
    let bitmap_share = (build.seconds - scan.seconds) / build.seconds;
    println!(
        "  martdb: scan + group by tag {:.0} ms, bitmap building {:.0} ms on top ({:.0}% of the \
         build); chDB: {:.0} ms + {:.0} ms",
        scan.seconds * 1e3,
        (build.seconds - scan.seconds) * 1e3,
        bitmap_share * 100.0,
        chdb["scan"].seconds * 1e3,
        (chdb["build"].seconds - chdb["scan"].seconds) * 1e3,
    );

    println!();
    println!(
        "(b) ({t1} & {t2}) - {t3}: martdb and chDB on prebuilt bitmaps, median of {fast_runs} \
         runs; DuckDB from the raw rows, median of {runs}"
    );
    header();
    let count = shown(&expr);
    same &= print_line(&Line {
        name: "bitmap_expr_cardinality (aggregate)",
        martdb: &expr,
        chdb: Some(&chdb["expr"]),
        duckdb: Some(&duck["expr"]),
        shown: format!("{count} users"),
    });
    same &= print_line(&Line {
        name: "  the same, WHERE tag IN (the 3 tags)",
        martdb: &expr_where,
        chdb: Some(&chdb["expr"]),
        duckdb: Some(&duck["expr"]),
        shown: format!("{} users", shown(&expr_where)),
    });
    same &= print_line(&Line {
        name: "bitmap_andnot_cardinality(bitmap_and)",
        martdb: &scalar,
        chdb: Some(&chdb["expr"]),
        duckdb: Some(&duck["expr"]),
        shown: format!("{} users", shown(&scalar)),
    });
    same &= print_line(&Line {
        name: "decode baseline: sum(cardinality), 3 tags",
        martdb: &decode,
        chdb: Some(&chdb["decode"]),
        duckdb: None,
        shown: format!("{} ids", shown(&decode)),
    });
    let best = expr.seconds.min(scalar.seconds).min(expr_where.seconds);
    println!(
        "  goals: martdb under 50 ms: {} ({:.1} ms); no slower than chDB: {} ({:.2}x); at least \
         100x faster than DuckDB: {} ({:.0}x)  [best of the martdb forms]",
        goal(best < 0.050),
        best * 1e3,
        goal(best <= chdb["expr"].seconds),
        chdb["expr"].seconds / best,
        goal(duck["expr"].seconds / best >= 100.0),
        duck["expr"].seconds / best,
    );

    println!();
    println!("(c) sizes");
    let bitmap_bytes: u64 = sizes[0][0].parse().unwrap();
    let raw_bytes = 8 * row_count;
    let parquet_bytes = disk_bytes(&files);
    let chdb_bytes = peers["chdb"]["bitmap_bytes"].as_u64().unwrap();
    let size = |label: &str, bytes: u64, note: String| {
        println!("  {label:<44} {bytes:>12} bytes {:>12}  {note}", mib(bytes));
    };
    let vs_bitmaps = |bytes: u64| format!("{:.2}x the bitmaps", bytes as f64 / bitmap_bytes as f64);
    size(
        "martdb bitmaps, sum(octet_length(b))",
        bitmap_bytes,
        format!("{} bitmaps, {} ids", sizes[0][1], sizes[0][2]),
    );
    for r in &per_tag {
        let (ids, bytes): (u64, u64) = (r[1].parse().unwrap(), r[2].parse().unwrap());
        size(
            &format!("  {}", r[0]),
            bytes,
            format!(
                "{ids} ids, {:.2} bytes/id",
                bytes as f64 / ids.max(1) as f64
            ),
        );
    }
    let bitmap_disk = disk_bytes(&bitmap_files);
    size(
        "tag_bitmaps Parquet on disk",
        bitmap_disk,
        format!("{}, {} files", vs_bitmaps(bitmap_disk), bitmap_files.len()),
    );
    size(
        "chDB states, length(CAST(b AS String))",
        chdb_bytes,
        vs_bitmaps(chdb_bytes),
    );
    size(
        "raw user_id column, 8 bytes x rows (Arrow)",
        raw_bytes,
        vs_bitmaps(raw_bytes),
    );
    size(
        "user_tags Parquet on disk (both columns)",
        parquet_bytes,
        format!("{}, {} files", vs_bitmaps(parquet_bytes), files.len()),
    );
    assert!(same, "the engines' answers differ (see DIFFERENT above)");
}

//! Identity resolution at scale: `--edges` identifier edges (default 10M, about 18.6M
//! identifiers) resolved by martdb with and without rules, against python-igraph's
//! connected components and DuckDB's recursive CTE on the same edges, in one run.
//!
//! `scripts/bench-identity.sh [--edges N] [--runs R] [--no-duckdb]` sets up the peers
//! and runs this. The edges (a realistic identity graph with junk values and shared
//! store tablets: see `benches/peers/identity_peer.py generate`) are written once to
//! `target/bench-data/identity-{edges}/edges.parquet` and reused.
//!
//! What is timed:
//! - martdb `resolve` (Rust API): from the edge columns in memory (Arrow strings) to a
//!   person id for every identifier: interning the strings, the rules, union-find and the
//!   stable ids. Best of `--runs`.
//! - martdb SQL: `resolve_identities` over the Parquet file, end to end (read, resolve,
//!   count persons). Best of `--runs`.
//! - igraph: building the graph from integer edges already in memory plus
//!   `connected_components()`; igraph needs integers, so the string-to-integer mapping
//!   martdb does is not in its time. Best of `--runs`.
//! - DuckDB: min-label propagation with `WITH RECURSIVE ... USING KEY` over the Parquet
//!   file.
//!
//! Peak memory: the high-water mark of resident memory while `resolve` runs (reset just
//! before it through /proc/self/clear_refs), minus the input held before, per edge. Each
//! mode is measured once in a fresh process (this bench run again with `--memory-of
//! MODE`), so that memory the allocator kept from an earlier run does not hide any.

#[path = "args.rs"]
mod args;

/// The allocator the `martdb` binary uses, so that the bench measures what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use args::{arg, flag, num_arg};
use datafusion::arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use martdb::Engine;
use martdb::identity::{EdgeBatch, Rules, resolve};
use serde_json::Value;

/// The rules of the "with rules" runs, as SQL rows and as the Rust API builds them.
const RULES_SQL: &str = "SELECT * FROM (VALUES \
    ('block', 'phone', '00000000000'), ('block_pattern', '*', '^(null|-1|0+)$'), \
    ('max_degree', 'device', '50'), ('max_per_person', 'phone', '2'), \
    ('max_per_person', 'email', '3'), ('priority', 'phone', '1'), ('priority', 'email', '2'), \
    ('priority', 'openid', '3'), ('priority', 'cookie', '4'), ('priority', 'device', '5')) \
    AS r(rule, id_type, value)";

fn rules() -> Rules {
    Rules::default()
        .block("phone", "00000000000")
        .block_pattern("*", "^(null|-1|0+)$")
        .expect("a valid pattern")
        .max_degree("device", 50)
        .max_per_person("phone", 2)
        .max_per_person("email", 3)
        .priority(&["phone", "email", "openid", "cookie", "device"])
}

fn python() -> String {
    std::env::var("MARTDB_PYTHON").unwrap_or_else(|_| {
        panic!("set MARTDB_PYTHON to a python with igraph, duckdb and pyarrow (scripts/bench-identity.sh does)")
    })
}

/// Runs the peer script with `args`; its JSON output.
fn peer(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/identity_peer.py");
    let output = Command::new(python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run the identity peer");
    assert!(
        output.status.success(),
        "identity_peer.py {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the peer prints JSON")
}

fn edges_file(edges: u64, identifiers: u64) -> PathBuf {
    let dir = arg("--data").map(PathBuf::from).unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-data/identity-{edges}"))
    });
    std::fs::create_dir_all(&dir).expect("create the data directory");
    let file = dir.join("edges.parquet");
    if !file.exists() {
        println!("writing {} ...", file.display());
        let written = peer(&[
            "generate",
            "--edges",
            &edges.to_string(),
            "--identifiers",
            &identifiers.to_string(),
            "--seed",
            "42",
            "--out",
            file.to_str().unwrap(),
        ]);
        println!("  {written}");
    }
    file
}

/// The edge columns of the file, as the resolution reads them.
fn read_edges(file: &Path) -> Vec<EdgeBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .with_batch_size(1 << 16)
        .build()
        .unwrap();
    let text = |batch: &RecordBatch, name: &str| -> StringArray {
        let column = batch.column_by_name(name).unwrap();
        cast(column, &DataType::Utf8)
            .unwrap()
            .as_string::<i32>()
            .clone()
    };
    reader
        .map(|batch| {
            let batch = batch.unwrap();
            let micros = cast(
                batch.column_by_name("observed_at").unwrap(),
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )
            .unwrap();
            let observed_at: Int64Array = micros
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .reinterpret_cast();
            EdgeBatch::new(
                text(&batch, "id_a"),
                text(&batch, "type_a"),
                text(&batch, "id_b"),
                text(&batch, "type_b"),
                Some(observed_at),
                None,
            )
            .unwrap()
        })
        .collect()
}

/// Resident memory now and its high-water mark, in bytes (Linux).
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Best time of `runs` resolutions, and the persons found.
fn time_resolve(batches: &[EdgeBatch], rules: &Rules, runs: u64) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut persons = 0;
    for _ in 0..runs {
        let input = batches.to_vec();
        let started = Instant::now();
        let resolution = resolve(input, rules).expect("resolve");
        best = best.min(started.elapsed().as_secs_f64());
        let mut ids: Vec<i64> = resolution.person_ids().collect();
        ids.sort_unstable();
        ids.dedup();
        persons = ids.len();
    }
    (best, persons)
}

/// In this process: one resolution of `file` in `mode` ("plain" or "rules"); prints the
/// rise of resident memory's high-water mark above the input, in bytes.
fn measure_memory(file: &Path, mode: &str) {
    let batches = read_edges(file);
    let rules = match mode {
        "rules" => rules(),
        _ => Rules::default(),
    };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = memory();
    let resolution = resolve(batches, &rules).expect("resolve");
    let (_, high) = memory();
    drop(resolution);
    println!("{}", high.saturating_sub(before));
}

/// The peak memory of one resolution in `mode`, in a fresh process.
fn peak_memory(file: &Path, mode: &str) -> u64 {
    let output = Command::new(std::env::current_exe().expect("this bench's path"))
        .args(["--data", file.parent().unwrap().to_str().unwrap()])
        .args(["--memory-of", mode])
        .output()
        .expect("run the bench again");
    assert!(output.status.success(), "--memory-of {mode}: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .lines()
        .last()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("--memory-of {mode} printed {text}"))
}

#[tokio::main]
async fn main() {
    let edges = num_arg("--edges", 10_000_000);
    let identifiers = num_arg("--identifiers", 2 * edges);
    let runs = num_arg("--runs", 3);
    let file = edges_file(edges, identifiers);
    println!("identity bench: {edges} edges in {}", file.display());

    if let Some(mode) = arg("--memory-of") {
        return measure_memory(&file, &mode);
    }

    let batches = read_edges(&file);
    let rows: usize = batches.iter().map(EdgeBatch::len).sum();
    let (plain_s, plain_persons) = time_resolve(&batches, &Rules::default(), runs);
    let (rules_s, rules_persons) = time_resolve(&batches, &rules(), runs);
    drop(batches);
    let plain_peak = peak_memory(&file, "plain");
    let rules_peak = peak_memory(&file, "rules");
    println!(
        "martdb resolve, no rules:   {plain_s:.2} s, {plain_persons} persons, peak {:.0} B/edge",
        plain_peak as f64 / rows as f64
    );
    println!(
        "martdb resolve, with rules: {rules_s:.2} s, {rules_persons} persons, peak {:.0} B/edge",
        rules_peak as f64 / rows as f64
    );

    // A Parquet file in the data directory is a table of its name.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("edges.parquet");
    std::fs::hard_link(&file, &link)
        .or_else(|_| std::os::unix::fs::symlink(&file, &link))
        .expect("link the edges into the data directory");
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let sql = format!(
        "SELECT count(DISTINCT person_id) FROM resolve_identities(\
         'SELECT id_a, type_a, id_b, type_b, observed_at FROM edges', '{}')",
        RULES_SQL.replace('\'', "''")
    );
    let mut sql_s = f64::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        let batches = engine.sql(&sql).await.unwrap();
        sql_s = sql_s.min(started.elapsed().as_secs_f64());
        let sql_persons = batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0);
        assert_eq!(
            sql_persons as usize, rules_persons,
            "SQL and Rust API agree"
        );
    }
    println!("martdb SQL resolve_identities with rules, from Parquet: {sql_s:.2} s");
    drop(engine);

    let runs_text = runs.to_string();
    let igraph = peer(&[
        "igraph",
        "--data",
        file.to_str().unwrap(),
        "--runs",
        &runs_text,
    ]);
    let igraph_s = igraph["total_s"].as_f64().unwrap();
    let igraph_components = igraph["components"].as_u64().unwrap();
    assert_eq!(
        igraph_components as usize, plain_persons,
        "without rules martdb's persons are igraph's components"
    );
    println!(
        "igraph: build {:.2} s + components {:.2} s = {igraph_s:.2} s, {igraph_components} components, peak RSS {:.0} B/edge",
        igraph["build_s"].as_f64().unwrap(),
        igraph["components_s"].as_f64().unwrap(),
        igraph["peak_rss_bytes"].as_f64().unwrap() / rows as f64
    );
    println!(
        "ratio martdb with rules / igraph: {:.2} (goal <= 1.5); no rules / igraph: {:.2}",
        rules_s / igraph_s,
        plain_s / igraph_s
    );

    if !flag("--no-duckdb") {
        let timeout = arg("--duckdb-timeout").unwrap_or_else(|| "1800".into());
        let duckdb = peer(&[
            "duckdb",
            "--data",
            file.to_str().unwrap(),
            "--timeout",
            &timeout,
            "--threads",
            &std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .to_string(),
        ]);
        let duckdb_s = duckdb["seconds"].as_f64().unwrap();
        let timed_out = duckdb["timed_out"].as_bool().unwrap_or(false);
        println!(
            "duckdb recursive CTE: {duckdb_s:.1} s{}",
            if timed_out {
                " (timed out: a lower bound)"
            } else {
                ""
            }
        );
        if !timed_out {
            assert_eq!(duckdb["components"].as_u64().unwrap(), igraph_components);
        }
        println!(
            "ratio duckdb / martdb with rules (SQL, from Parquet): {:.1}x (goal >= 20); \
             duckdb / martdb resolve: {:.1}x",
            duckdb_s / sql_s,
            duckdb_s / rules_s
        );
    }
}

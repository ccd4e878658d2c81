#![allow(dead_code)] // shared by the bench and the differential test; each uses a part
//! Shared by the benchmark and the differential test: run martdb's benchmark queries in
//! martdb and in DuckDB (through `peers/duckdb_peer.py`) over the same Parquet files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use martdb::Engine;

/// One benchmark query.
pub struct Query {
    pub name: String,
    pub sql: String,
}

/// The queries under `benches/queries/`, in file-name order.
pub fn queries() -> Vec<Query> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/queries");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("benches/queries")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| Query {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            sql: std::fs::read_to_string(&path).unwrap(),
        })
        .collect()
}

/// A result: median seconds over the runs, and the rows of the last run as strings.
pub struct Measured {
    pub seconds: f64,
    pub rows: Vec<Vec<String>>,
}

/// Runs `query` `runs` times in martdb.
pub async fn run_martdb(engine: &Engine, query: &Query, runs: usize) -> Measured {
    let mut times = Vec::new();
    let mut rows = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let batches = engine
            .sql(&query.sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", query.name));
        times.push(started.elapsed().as_secs_f64());
        rows = Vec::new();
        let options = FormatOptions::default().with_null("NULL");
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| f.value(row).to_string())
                        .collect(),
                );
            }
        }
    }
    Measured {
        seconds: median(&mut times),
        rows,
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// The Python interpreter that has `duckdb` (scripts/test.sh and scripts/bench.sh set
/// `MARTDB_PYTHON` to their venv).
pub fn python() -> String {
    std::env::var("MARTDB_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Runs every query `runs` times in DuckDB over the Parquet files of martdb's tables.
pub async fn run_duckdb(
    engine: &Engine,
    queries: &[Query],
    runs: usize,
    threads: usize,
) -> BTreeMap<String, Measured> {
    let files = engine
        .sql("SELECT table_name, path FROM martdb.table_files ORDER BY 1, 2")
        .await
        .unwrap();
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for batch in &files {
        let options = FormatOptions::default();
        let names = ArrayFormatter::try_new(batch.column(0).as_ref(), &options).unwrap();
        let paths = ArrayFormatter::try_new(batch.column(1).as_ref(), &options).unwrap();
        for row in 0..batch.num_rows() {
            let uri = paths.value(row).to_string();
            let path = url::Url::parse(&uri)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .map(|p| p.display().to_string())
                .unwrap_or(uri);
            tables
                .entry(names.value(row).to_string())
                .or_default()
                .push(path);
        }
    }
    let spec = serde_json::json!({
        "tables": tables,
        "queries": queries.iter().map(|q| (q.name.clone(), q.sql.clone())).collect::<BTreeMap<_, _>>(),
        "runs": runs,
        "threads": threads,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/duckdb_peer.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (run scripts/test.sh, which installs duckdb): {e}",
                python()
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
        "duckdb peer failed (scripts/test.sh installs duckdb into a venv and sets MARTDB_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).unwrap();
    parsed
        .into_iter()
        .map(|(name, v)| {
            let rows = v["rows"]
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
                .collect();
            (
                name,
                Measured {
                    seconds: v["seconds"].as_f64().unwrap(),
                    rows,
                },
            )
        })
        .collect()
}

/// Whether two engines' rows agree: same shape, equal strings, or numbers equal to a
/// relative 1e-6 (engines print floats differently).
pub fn same_rows(a: &[Vec<String>], b: &[Vec<String>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(ra, rb)| {
            ra.len() == rb.len()
                && ra.iter().zip(rb).all(|(x, y)| {
                    x == y
                        || match (x.parse::<f64>(), y.parse::<f64>()) {
                            (Ok(p), Ok(q)) => (p - q).abs() <= 1e-6 * p.abs().max(q.abs()).max(1.0),
                            _ => false,
                        }
                })
        })
}

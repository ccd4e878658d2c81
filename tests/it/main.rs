//! martdb's integration tests: one binary, so the crate links once.

mod attribution_differential;
mod audit;
mod backup;
mod bitmap_differential;
mod catalog;
mod cli;
mod cluster;
mod coupons;
mod crash;
mod differential;
mod disk;
mod forecast;
mod forecast_accuracy;
mod fuzz;
mod identity;
mod limits;
mod load;
mod metrics;
mod prepared;
mod privacy;
mod rules;
mod server;
mod slt;
mod stats_differential;
mod uplift;
mod uplift_differential;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::util::display::array_value_to_string;

/// The rows of `batches` as strings, for compact assertions.
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .map(|c| array_value_to_string(c, row).unwrap())
                    .collect(),
            );
        }
    }
    out
}

/// The single value of a one-row, one-column result.
pub fn scalar(batches: &[RecordBatch]) -> String {
    let rows = rows(batches);
    assert_eq!(rows.len(), 1, "expected one row, got {rows:?}");
    rows[0][0].clone()
}

/// `MARTDB_PYTHON`, or `None` after saying why `test` is skipped. Skipping fails when
/// `MARTDB_REQUIRE_CLIENTS` is set (scripts/test.sh sets both), so CI cannot pass without
/// the peers.
pub fn python_or_skip(test: &str, needs: &str) -> Option<String> {
    if let Ok(python) = std::env::var("MARTDB_PYTHON") {
        return Some(python);
    }
    let message = format!("{test} needs MARTDB_PYTHON with {needs}: run scripts/test.sh");
    assert!(
        std::env::var("MARTDB_REQUIRE_CLIENTS").is_err(),
        "{message}"
    );
    eprintln!("SKIPPED: {message}");
    None
}

/// Runs the Python peer `benches/peers/<script>` with `input` as JSON on its standard
/// input, and returns its standard output parsed as JSON. `python` is `MARTDB_PYTHON`.
pub fn run_python_peer<T: serde::de::DeserializeOwned>(
    python: &str,
    script: &str,
    input: &impl serde::Serialize,
) -> T {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let path = format!("{}/benches/peers/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(python)
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {path}: {e}"));
    let input = serde_json::to_vec(input).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        output.status.success(),
        "{script} failed (scripts/test.sh installs the peers into a venv and sets \
         MARTDB_PYTHON): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

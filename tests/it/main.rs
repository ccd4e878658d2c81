//! martdb's integration tests: one binary, so the crate links once.

mod bitmap_differential;
mod catalog;
mod cli;
mod coupons;
mod differential;
mod prepared;
mod server;
mod slt;
mod stats_differential;

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

//! martdb vs DuckDB on the demo data set: the same five analytic queries over the same
//! Parquet files, in one run, with the ratio.
//!
//! `scripts/bench.sh [--users N] [--runs R]` sets up DuckDB and runs this; or
//! `MARTDB_PYTHON=/path/to/python-with-duckdb cargo bench --bench analytic -- --users N`.

#[path = "args.rs"]
mod args;
#[path = "peer.rs"]
mod peer;

/// The allocator the `martdb` binary uses, so that the bench measures what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use args::arg;
use martdb::Engine;
use martdb::demo::DemoOptions;

#[tokio::main]
async fn main() {
    let users: u64 = arg("--users")
        .map(|v| v.parse().unwrap())
        .unwrap_or(1_000_000);
    let runs: usize = arg("--runs").map(|v| v.parse().unwrap()).unwrap_or(5);
    let data = arg("--data").unwrap_or_else(|| {
        format!(
            "{}/bench-data/demo-{users}",
            env!("CARGO_MANIFEST_DIR").to_string() + "/target"
        )
    });
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let engine = Engine::open(&data).await.expect("open bench data");
    let have_demo = engine
        .sql("SELECT 1 FROM martdb.tables WHERE table_name = 'events'")
        .await
        .unwrap()
        .iter()
        .any(|b| b.num_rows() > 0);
    if !have_demo {
        let summary = martdb::demo::write(&engine, DemoOptions { users, seed: 42 }, true)
            .await
            .expect("demo data");
        eprintln!("{summary}");
    }
    let queries = peer::queries();
    let duck = peer::run_duckdb(&engine, &queries, runs, threads).await;
    println!("martdb vs DuckDB, {users} demo users, {threads} threads, median of {runs} runs");
    println!(
        "{:<28} {:>12} {:>12} {:>8}  results",
        "query", "martdb ms", "duckdb ms", "ratio"
    );
    let mut log_sum = 0.0;
    for query in &queries {
        // One warm-up run so both engines have the file metadata cached.
        peer::run_martdb(&engine, query, 1).await;
        let ours = peer::run_martdb(&engine, query, runs).await;
        let theirs = &duck[&query.name];
        let ratio = theirs.seconds / ours.seconds;
        log_sum += ratio.ln();
        println!(
            "{:<28} {:>12.1} {:>12.1} {:>7.2}x  {}",
            query.name,
            ours.seconds * 1e3,
            theirs.seconds * 1e3,
            ratio,
            if peer::same_rows(&ours.rows, &theirs.rows) {
                "same"
            } else {
                "DIFFERENT"
            }
        );
    }
    println!(
        "geometric mean ratio (duckdb time / martdb time; > 1 means martdb is faster): {:.2}x",
        (log_sum / queries.len() as f64).exp()
    );
}

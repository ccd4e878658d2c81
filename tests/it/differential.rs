//! Differential check: the benchmark queries give the same rows in martdb and in DuckDB
//! reading the same managed tables' Parquet files (which also shows DuckDB can read them).
//! Needs Python with duckdb: scripts/test.sh provides it through `MARTDB_PYTHON`.

#[path = "../../benches/peer.rs"]
mod peer;

use martdb::Engine;
use martdb::demo::DemoOptions;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_queries_agree_with_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    martdb::demo::write(
        &engine,
        DemoOptions {
            users: 3_000,
            seed: 7,
        },
        false,
    )
    .await
    .unwrap();
    let queries = peer::queries();
    assert!(queries.len() >= 5);
    let duck = peer::run_duckdb(&engine, &queries, 1, 2).await;
    for query in &queries {
        let ours = peer::run_martdb(&engine, query, 1).await;
        let theirs = &duck[&query.name];
        assert!(!ours.rows.is_empty(), "{}: no rows", query.name);
        assert!(
            peer::same_rows(&ours.rows, &theirs.rows),
            "{}: martdb and DuckDB disagree\nmartdb: {:?}\nduckdb: {:?}",
            query.name,
            &ours.rows[..ours.rows.len().min(5)],
            &theirs.rows[..theirs.rows.len().min(5)]
        );
    }
}

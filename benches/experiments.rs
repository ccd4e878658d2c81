//! The full A/B summary of an experiment in one query: 10 variants x 5 metrics over
//! per-user rows (`--rows`, default 100M), martdb's `ab_moments` and tests against DuckDB
//! computing the same sums (count, sum, sum of squares per metric and variant; CUPED's
//! covariate sums too) over the same Parquet files, in one run.
//!
//! `scripts/bench-experiments.sh [--rows N] [--runs R] [--data DIR]` sets up DuckDB and
//! runs this; or `MARTDB_PYTHON=/path/to/python-with-duckdb cargo bench --bench
//! experiments -- ...`. The data (a managed table `ab_users`) is written once with
//! martdb's SQL into `--data` (default `target/bench-data/ab-{rows}`) and reused.

#[path = "args.rs"]
mod args;
#[path = "peer.rs"]
mod peer;

/// The allocator the `martdb` binary uses, so that the bench measures what it serves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Instant;

use args::num_arg;
use martdb::Engine;
use peer::Query;

const METRICS: [&str; 5] = ["converted", "revenue", "orders", "sessions", "pageviews"];

/// Per-user rows: the variant (10, equal shares), a conversion flag whose rate rises
/// with the variant, revenue of converters, counts, and a pre-period revenue correlated
/// with revenue (for CUPED). Pseudo-random by multiplicative hashing of the row number.
fn create_sql(rows: u64) -> String {
    format!(
        "CREATE TABLE ab_users AS \
         SELECT variant, converted, \
                CASE WHEN converted = 1 THEN h2 / 50.0 ELSE 0.0 END AS revenue, \
                converted * (1 + h3 % 3) AS orders, \
                1 + h3 % 7 AS sessions, \
                3 + h2 % 41 + variant AS pageviews, \
                h2 / 80.0 + (h3 % 1000) / 10.0 AS pre_revenue \
         FROM (SELECT CAST(value % 10 AS INT) AS variant, \
                      CAST((value * 2654435761) % 1000003 % 1000 < 100 + 2 * (value % 10) AS INT) AS converted, \
                      (value * 40503) % 10007 AS h2, \
                      (value * 69069) % 65521 AS h3 \
               FROM generate_series(0, {}))",
        rows - 1
    )
}

fn martdb_query() -> String {
    let moments: Vec<String> = METRICS
        .iter()
        .map(|m| format!("ab_moments({m}) AS {m}"))
        .chain(["ab_moments(revenue, pre_revenue) AS revenue_cuped".to_string()])
        .collect();
    // The control's summary comes to every row through a window over the 10 summary
    // rows: a self-join of the CTE would scan the table twice.
    let control = |expr: &str| format!("first_value({expr}) OVER (ORDER BY variant)");
    let tests: Vec<String> = METRICS
        .iter()
        .map(|m| {
            if *m == "converted" {
                format!(
                    "(ab_proportion_test({}, {}, converted['n'], round(converted['n'] * converted['mean'])))['p_value'] AS converted_p",
                    control("converted['n']"),
                    control("round(converted['n'] * converted['mean'])")
                )
            } else {
                format!("(ab_mean_test({}, {m}))['p_value'] AS {m}_p", control(m))
            }
        })
        .chain([
            format!(
                "(ab_cuped_test({}, revenue_cuped))['p_value'] AS revenue_cuped_p",
                control("revenue_cuped")
            ),
            "converted['n'] AS users".to_string(),
        ])
        .collect();
    format!(
        "WITH g AS (SELECT variant, {} FROM ab_users GROUP BY variant) \
         SELECT variant, {} FROM g ORDER BY variant",
        moments.join(", "),
        tests.join(", ")
    )
}

fn duckdb_query() -> String {
    let sums: Vec<String> = METRICS
        .iter()
        .map(|m| format!("sum({m}) AS s_{m}, sum({m} * {m}) AS q_{m}"))
        .chain([
            "sum(pre_revenue) AS s_pre, sum(pre_revenue * pre_revenue) AS q_pre, \
             sum(revenue * pre_revenue) AS x_revenue_pre"
                .to_string(),
        ])
        .collect();
    format!(
        "SELECT variant, count(*) AS users, {} FROM ab_users GROUP BY variant ORDER BY variant",
        sums.join(", ")
    )
}

#[tokio::main]
async fn main() {
    let rows = num_arg("--rows", 100_000_000u64);
    let runs = num_arg("--runs", 3) as usize;
    let data = args::arg("--data")
        .unwrap_or_else(|| format!("{}/target/bench-data/ab-{rows}", env!("CARGO_MANIFEST_DIR")));
    std::fs::create_dir_all(&data).unwrap();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let engine = Engine::open(&data).await.expect("open bench data");
    let exists = !engine
        .sql("SELECT 1 FROM martdb.tables WHERE table_name = 'ab_users'")
        .await
        .unwrap()
        .iter()
        .all(|b| b.num_rows() == 0);
    if !exists {
        let started = Instant::now();
        engine.sql(&create_sql(rows)).await.expect("write ab_users");
        eprintln!(
            "wrote {rows} rows of ab_users in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let ours = Query {
        name: "ab_summary".into(),
        sql: martdb_query(),
    };
    let sums = Query {
        name: "ab_sums".into(),
        sql: duckdb_query(),
    };
    let duck = peer::run_duckdb(&engine, std::slice::from_ref(&sums), runs, threads).await;
    // One warm-up run so both engines have the file metadata cached.
    peer::run_martdb(&engine, &ours, 1).await;
    let measured = peer::run_martdb(&engine, &ours, runs).await;
    let our_sums = peer::run_martdb(&engine, &sums, runs).await;
    let theirs = &duck["ab_sums"];
    // The users per variant must agree between the summary and DuckDB's sums.
    let our_users: Vec<&String> = measured.rows.iter().map(|r| r.last().unwrap()).collect();
    let their_users: Vec<&String> = theirs.rows.iter().map(|r| &r[1]).collect();
    assert_eq!(our_users, their_users, "users per variant");
    println!(
        "A/B summary, {rows} users x 10 variants x 5 metrics (+ CUPED), {threads} threads, median of {runs} runs"
    );
    println!(
        "martdb full summary (ab_moments + tests):  {:>9.1} ms",
        measured.seconds * 1e3
    );
    println!(
        "martdb the sums alone:                     {:>9.1} ms",
        our_sums.seconds * 1e3
    );
    println!(
        "duckdb the sums alone:                     {:>9.1} ms",
        theirs.seconds * 1e3
    );
    println!(
        "ratio duckdb sums / martdb full summary:   {:>9.2}x (> 1: martdb is faster)",
        theirs.seconds / measured.seconds
    );
    println!(
        "variant  p-values vs variant 0 (converted, revenue, orders, sessions, pageviews, revenue with CUPED)  users"
    );
    for row in &measured.rows {
        println!("{}", row.join("  "));
    }
}

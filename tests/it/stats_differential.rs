//! Differential check of the experiment statistics against statsmodels (and the
//! documented bucket hash in Python): random p-value sets with ties, zeros, ones and
//! NULLs through `p_adjust` for every method, compared to 1e-9 relative; random users and
//! experiments through `ab_bucket`. Needs Python with statsmodels (`MARTDB_PYTHON`, set by
//! scripts/test.sh); without it the test says so and passes only if
//! `MARTDB_REQUIRE_CLIENTS` is unset.

use martdb::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

const METHODS: [&str; 3] = ["bonferroni", "holm", "fdr_bh"];

fn random_p(rng: &mut ChaCha8Rng) -> Vec<Option<f64>> {
    let n = rng.random_range(1..40);
    let mut p: Vec<Option<f64>> = (0..n)
        .map(|_| match rng.random_range(0..20) {
            0 => None,
            1 => Some(0.0),
            2 => Some(1.0),
            3 => Some(0.05),
            // Small p-values, where the adjustments differ most.
            4..=9 => Some(rng.random::<f64>() * 0.01),
            _ => Some(rng.random::<f64>()),
        })
        .collect();
    // Exact ties.
    if n > 3 {
        p[1] = p[0];
    }
    p
}

fn sql_value(v: Option<f64>) -> String {
    match v {
        None => "CAST(NULL AS DOUBLE)".into(),
        Some(v) => format!("CAST({v:e} AS DOUBLE)"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_statistics_agree_with_statsmodels() {
    let Ok(python) = std::env::var("MARTDB_PYTHON") else {
        let message = "experiment_statistics_agree_with_statsmodels needs MARTDB_PYTHON with \
                       statsmodels: run scripts/test.sh";
        assert!(
            std::env::var("MARTDB_REQUIRE_CLIENTS").is_err(),
            "{message}"
        );
        eprintln!("SKIPPED: {message}");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261122);

    // p_adjust: each set is one window partition of a VALUES table, all in one query.
    let sets: Vec<Vec<Option<f64>>> = (0..60).map(|_| random_p(&mut rng)).collect();
    let rows: Vec<String> = sets
        .iter()
        .enumerate()
        .flat_map(|(g, p)| {
            p.iter()
                .enumerate()
                .map(move |(i, v)| format!("({g}, {i}, {})", sql_value(*v)))
        })
        .collect();
    let mut ours: Vec<Vec<Vec<Option<f64>>>> = Vec::new();
    for method in METHODS {
        let sql = format!(
            "SELECT g, i, p_adjust(p, '{method}') OVER (PARTITION BY g) \
             FROM (VALUES {}) AS t(g, i, p) ORDER BY g, i",
            rows.join(", ")
        );
        let batches = engine.sql(&sql).await.unwrap();
        let mut by_set: Vec<Vec<Option<f64>>> = sets.iter().map(|p| vec![None; p.len()]).collect();
        for batch in &batches {
            let g = batch
                .column(0)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            let i = batch
                .column(1)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Int64Array>()
                .unwrap();
            let v = batch
                .column(2)
                .as_any()
                .downcast_ref::<datafusion::arrow::array::Float64Array>()
                .unwrap();
            for row in 0..batch.num_rows() {
                by_set[g.value(row) as usize][i.value(row) as usize] =
                    (!datafusion::arrow::array::Array::is_null(v, row)).then(|| v.value(row));
            }
        }
        ours.push(by_set);
    }

    // ab_bucket: random users (text and numbers, non-ASCII too) and bucket counts.
    let assignments: Vec<(String, String, i64)> = (0..500)
        .map(|k| {
            let user = match k % 3 {
                0 => format!("user-{}", rng.random::<u32>()),
                1 => rng.random_range(0..1_000_000_000u64).to_string(),
                _ => format!("ü{}é", rng.random::<u16>()),
            };
            let experiment = format!("exp_{}", rng.random_range(0..5));
            (user, experiment, [2, 10, 100, 1000, 1_000_000][k % 5])
        })
        .collect();
    let values: Vec<String> = assignments
        .iter()
        .map(|(u, e, n)| format!("('{u}', '{e}', {n})"))
        .collect();
    let batches = engine
        .sql(&format!(
            "SELECT ab_bucket(u, e, n) FROM (VALUES {}) AS t(u, e, n)",
            values.join(", ")
        ))
        .await
        .unwrap();
    let our_buckets: Vec<i64> = crate::rows(&batches)
        .into_iter()
        .map(|r| r[0].parse().unwrap())
        .collect();

    let request = json!({
        "adjust": METHODS.iter().flat_map(|m| sets.iter().map(move |p| json!({"p": p, "method": m}))).collect::<Vec<_>>(),
        "buckets": assignments.iter().map(|(u, e, n)| json!([u, e, n])).collect::<Vec<_>>(),
    });
    let theirs: serde_json::Value = crate::run_python_peer(&python, "stats_peer.py", &request);

    let their_adjusted = theirs["adjust"].as_array().unwrap();
    let mut compared = 0;
    for (m, method) in METHODS.iter().enumerate() {
        for (s, p) in sets.iter().enumerate() {
            let reference = their_adjusted[m * sets.len() + s].as_array().unwrap();
            for (i, ours) in ours[m][s].iter().enumerate() {
                let theirs = reference[i].as_f64();
                match (ours, theirs) {
                    (None, None) => {}
                    (Some(a), Some(b)) => {
                        let scale = a.abs().max(b.abs()).max(1e-300);
                        assert!(
                            (a - b).abs() / scale <= 1e-9,
                            "{method} set {s} row {i}: martdb {a}, statsmodels {b}; p = {p:?}"
                        );
                        compared += 1;
                    }
                    other => panic!("{method} set {s} row {i}: {other:?}; p = {p:?}"),
                }
            }
        }
    }
    assert!(compared > 1000, "{compared}");
    let their_buckets: Vec<i64> = theirs["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_i64().unwrap())
        .collect();
    assert_eq!(our_buckets, their_buckets);
}

//! Differential check of the uplift metrics against scikit-uplift: random campaigns
//! (20 to 400 users, skewed splits and response rates, scores with many ties) through
//! `qini_auc`, `uplift_auc`, `uplift_at_k` (a share overall and by group, and a count)
//! and `uplift_by_decile`, compared to 1e-9. Needs Python with scikit-uplift
//! (`MARTDB_PYTHON`, set by scripts/test.sh).
//!
//! Ties: the curves treat equal scores as one step, as scikit-uplift does, so the AUCs
//! are compared on scores with many ties. The top k of `uplift_at_k` and the deciles
//! cut through ties in row order, which a parallel aggregate does not keep, so those
//! are compared on distinct scores.

use martdb::Engine;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;

struct Campaign {
    y: Vec<u8>,
    t: Vec<u8>,
    u: Vec<f64>,
    u_tied: Vec<f64>,
    k_share: f64,
    k_count: usize,
}

fn campaign(rng: &mut ChaCha8Rng) -> Campaign {
    let n = rng.random_range(20..400);
    let treated_share = rng.random_range(0.1..0.9);
    let response = rng.random_range(0.05..0.7);
    let mut t: Vec<u8> = (0..n)
        .map(|_| u8::from(rng.random_bool(treated_share)))
        .collect();
    // Both groups, at least two users each, so every `k` below is valid for both.
    t[0] = 1;
    t[1] = 1;
    t[2] = 0;
    t[3] = 0;
    let y = (0..n)
        .map(|_| u8::from(rng.random_bool(response)))
        .collect();
    // Distinct scores: a random permutation of 0..n, scaled.
    let mut u: Vec<f64> = (0..n).map(|i| i as f64 / n as f64 - 0.5).collect();
    for i in (1..n).rev() {
        u.swap(i, rng.random_range(0..=i));
    }
    let steps = rng.random_range(1..8) as f64;
    let u_tied = u.iter().map(|v| (v * steps).round() / steps).collect();
    Campaign {
        y,
        t,
        u,
        u_tied,
        k_share: rng.random_range(0.05..0.95),
        k_count: rng.random_range(1..n),
    }
}

fn close(what: &str, ours: Option<f64>, theirs: &serde_json::Value) {
    match (ours, theirs.as_f64()) {
        (None, None) => {}
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            "{what}: martdb {a}, scikit-uplift {b}"
        ),
        other => panic!("{what}: martdb {:?}, scikit-uplift {:?}", other.0, other.1),
    }
}

fn value(batch: &datafusion::arrow::array::RecordBatch, column: usize, row: usize) -> Option<f64> {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Float64Type};
    let c = cast(batch.column(column), &DataType::Float64).unwrap();
    let c = c.as_primitive::<Float64Type>();
    c.is_valid(row).then(|| c.value(row))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplift_metrics_agree_with_scikit_uplift() {
    let Some(python) =
        crate::python_or_skip("uplift_metrics_agree_with_scikit_uplift", "scikit-uplift")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(20261123);
    let campaigns: Vec<Campaign> = (0..80).map(|_| campaign(&mut rng)).collect();
    let bins = 10;

    let rows: Vec<String> = campaigns
        .iter()
        .enumerate()
        .flat_map(|(g, c)| {
            (0..c.y.len()).map(move |i| {
                format!(
                    "({g}, {}, {}, {:e}, {:e})",
                    c.y[i], c.t[i], c.u[i], c.u_tied[i]
                )
            })
        })
        .collect();
    engine
        .sql(&format!(
            "CREATE TABLE scored AS SELECT * FROM (VALUES {}) AS t(g, y, t, u, u_tied)",
            rows.join(", ")
        ))
        .await
        .unwrap();

    let theirs: Vec<serde_json::Value> = crate::run_python_peer(
        &python,
        "uplift_metrics_peer.py",
        &json!({"sets": campaigns.iter().map(|c| json!({
            "y": c.y, "t": c.t, "u": c.u, "u_tied": c.u_tied,
            "k_share": c.k_share, "k_count": c.k_count, "bins": bins,
        })).collect::<Vec<_>>()}),
    );

    for (g, c) in campaigns.iter().enumerate() {
        let reference = &theirs[g];
        let sql = format!(
            "SELECT qini_auc(y, u_tied, t), uplift_auc(y, u_tied, t), \
                    uplift_at_k(y, u, t, {share:e}), uplift_at_k(y, u, t, {share:e}, 'by_group'), \
                    uplift_at_k(y, u, t, {count}) \
             FROM scored WHERE g = {g}",
            share = c.k_share,
            count = c.k_count
        );
        let batches = engine.sql(&sql).await.unwrap();
        let b = &batches[0];
        close(
            &format!("set {g} qini_auc"),
            value(b, 0, 0),
            &reference["qini_auc"],
        );
        close(
            &format!("set {g} uplift_auc"),
            value(b, 1, 0),
            &reference["uplift_auc"],
        );
        close(
            &format!("set {g} uplift_at_k overall"),
            value(b, 2, 0),
            &reference["at_k_overall"],
        );
        close(
            &format!("set {g} uplift_at_k by_group"),
            value(b, 3, 0),
            &reference["at_k_by_group"],
        );
        close(
            &format!("set {g} uplift_at_k count"),
            value(b, 4, 0),
            &reference["at_k_count"],
        );

        let deciles = engine
            .sql(&format!(
                "SELECT treated, control, uplift FROM uplift_by_decile(\
                 'SELECT y, u, t FROM scored WHERE g = {g}', {bins}) ORDER BY bin"
            ))
            .await
            .unwrap();
        let expected = &reference["deciles"];
        let mut row = 0;
        for batch in &deciles {
            for r in 0..batch.num_rows() {
                assert_eq!(
                    value(batch, 0, r),
                    expected["treated"][row].as_f64(),
                    "set {g} bin {row}"
                );
                assert_eq!(
                    value(batch, 1, r),
                    expected["control"][row].as_f64(),
                    "set {g} bin {row}"
                );
                close(
                    &format!("set {g} bin {row} uplift"),
                    value(batch, 2, r),
                    &expected["uplift"][row],
                );
                row += 1;
            }
        }
        assert_eq!(
            row,
            expected["treated"].as_array().unwrap().len(),
            "set {g}: bins"
        );
    }
}

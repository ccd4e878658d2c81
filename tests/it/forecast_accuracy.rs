//! Forecast accuracy against statsforecast (benches/peers/forecast_peer.py): AirPassengers,
//! statsmodels' co2 (monthly), elnino, nile, sunspots and realgdp, and 50 generated daily
//! series, each split into training values and the last `h` (test). The peer writes the
//! split as Parquet and its own MASE; this test forecasts the same training values through
//! SQL (`forecast`) and computes MASE the same way (the test MAE over the in-sample MAE of
//! the seasonal naive with lag m), in SQL too.
//!
//! Held to: our ETS (`model => 'ets'`, no cleaning: the model alone) within 2% of
//! AutoETS on each dataset, and `auto` at most 1.05 × AutoETS on each dataset and on
//! their mean. Needs Python with statsforecast (`MARTDB_PYTHON`, set by scripts/test.sh).
//! `cargo test forecast_accuracy -- --nocapture` prints the table.
//!
//! CO2 is the hard case for ETS: on this 17-parameter model both optimisers stop at their
//! limit of 1,000 Nelder–Mead steps, so the fit is wherever the search is then. Where it
//! stops moves AutoETS's own MASE by 1% (0.1513 at 980 steps, 0.1548 at 1,100), and run to
//! 2,000 steps it picks another model (A,A,A: 0.1671). Ours follows statsforecast's path
//! step for step (the same centroid arithmetic, see `nelder_mead` in
//! src/ml/forecast/ets.rs) and stops at the same point.

use std::collections::BTreeMap;
use std::process::Command;

use martdb::Engine;

#[derive(serde::Deserialize)]
struct Peer {
    statsforecast: String,
    datasets: BTreeMap<String, Dataset>,
}

#[derive(serde::Deserialize)]
struct Dataset {
    season_length: usize,
    horizon: usize,
    series: usize,
    mase: BTreeMap<String, f64>,
}

/// The mean over a dataset's series of MASE for `forecast` with `options`, and how many
/// series each model family forecast (`ETS 49, Theta 1`).
async fn mase(engine: &Engine, dataset: &str, d: &Dataset, options: &str) -> (f64, String) {
    let m = d.season_length;
    let sql = format!(
        "WITH f AS (
           SELECT * FROM forecast(
             'SELECT series_id, t, value FROM train WHERE dataset = ''{dataset}''',
             horizon => {h}, season_length => {m}, {options})),
         scale AS (
           SELECT series_id, avg(abs(value - previous)) AS scale FROM (
             SELECT series_id, value,
                    lag(value, {m}) OVER (PARTITION BY series_id ORDER BY t) AS previous
             FROM train WHERE dataset = '{dataset}') GROUP BY series_id),
         errors AS (
           SELECT f.series_id, avg(abs(test.value - f.forecast)) AS mae, count(*) AS n,
                  split_part(max(f.model), '(', 1) AS family
           FROM f JOIN test ON test.dataset = '{dataset}'
             AND test.series_id = f.series_id AND test.t = f.t
           GROUP BY f.series_id),
         families AS (
           SELECT string_agg(family || ' ' || series, ', ' ORDER BY family) AS families
           FROM (SELECT family, count(*) AS series FROM errors GROUP BY family))
         SELECT avg(mae / scale), sum(n), min(families)
         FROM errors JOIN scale USING (series_id) CROSS JOIN families",
        h = d.horizon,
    );
    let batches = engine
        .sql(&sql)
        .await
        .unwrap_or_else(|e| panic!("{dataset}: {e}"));
    let row = &crate::rows(&batches)[0];
    assert_eq!(
        row[1],
        (d.series * d.horizon).to_string(),
        "{dataset}: every test point forecast"
    );
    (row[0].parse().unwrap(), row[2].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_accuracy_matches_statsforecast() {
    let Some(python) = crate::python_or_skip("forecast_accuracy", "statsforecast") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "{}/benches/peers/forecast_peer.py",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new(&python)
        .args([&script, "accuracy", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "forecast_peer.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let peer: Peer =
        serde_json::from_slice(&std::fs::read(dir.path().join("peer.json")).unwrap()).unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    println!(
        "dataset        AutoETS   ets   ratio   auto   ratio  auto's models (statsforecast {})",
        peer.statsforecast
    );
    let (mut auto_sum, mut peer_sum) = (0.0, 0.0);
    let mut failures = Vec::new();
    for (name, dataset) in &peer.datasets {
        let theirs = dataset.mase["AutoETS"];
        let (ets, _) = mase(&engine, name, dataset, "model => 'ets', clean => false").await;
        let (auto, chosen) = mase(&engine, name, dataset, "model => 'auto'").await;
        println!(
            "{name:<14} {theirs:7.4} {ets:7.4} {:6.3} {auto:7.4} {:6.3}  {chosen}",
            ets / theirs,
            auto / theirs
        );
        if ets > 1.02 * theirs {
            failures.push(format!("{name}: ets {ets} > 1.02 x AutoETS {theirs}"));
        }
        if auto > 1.05 * theirs {
            failures.push(format!("{name}: auto {auto} > 1.05 x AutoETS {theirs}"));
        }
        auto_sum += auto;
        peer_sum += theirs;
    }
    let n = peer.datasets.len() as f64;
    println!(
        "mean           {:7.4}         {:7.4} {:6.3}",
        peer_sum / n,
        auto_sum / n,
        auto_sum / peer_sum
    );
    if auto_sum > 1.05 * peer_sum {
        failures.push(format!(
            "auto's mean MASE {} > 1.05 x AutoETS's {}",
            auto_sum / n,
            peer_sum / n
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Uplift modelling: martdb's learners against scikit-uplift's `TwoModels` (logistic
//! regression) and causalml's meta-learners over LightGBM, in the same run.
//!
//! - Quality: held-out Qini AUC on causalml's synthetic data (`make_uplift_classification`,
//!   generated offline by `peers/uplift_peer.py`) and on the demo campaign (users split
//!   70/30 by id). Every learner trains on the same train table and is scored on the
//!   same test table with the same metric (ours equals scikit-uplift's, see
//!   tests/it/uplift_differential.rs).
//! - Training time on 1M rows × 20 features: `uplift_train` (T-learner over logistic
//!   regression, end to end over SQL, no validation split) against scikit-uplift's
//!   `TwoModels` with scikit-learn's `LogisticRegression` (fit only, scaling included).
//! - Scoring throughput: `uplift_predict` over SQL, rows per second.
//!
//! Usage: scripts/bench-uplift.sh [--rows N] [--users N] [--train-rows N] [--threads N]

#[path = "args.rs"]
mod args;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use martdb::Engine;
use martdb::demo::DemoOptions;
use serde_json::Value;

/// Our learners, as `uplift_train` options.
const OURS: [&str; 8] = [
    "learner = t, base = logistic",
    "learner = s, base = logistic",
    "learner = x, base = logistic",
    "learner = ct, base = logistic",
    "learner = t, base = mlp",
    "learner = s, base = mlp",
    "learner = x, base = mlp",
    "learner = ct, base = mlp",
];

fn peer(python: &str, args: &[&str]) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/uplift_peer.py");
    let out = Command::new(python)
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    assert!(
        out.status.success(),
        "uplift_peer.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn scalar(engine: &Engine, sql: &str) -> f64 {
    let batches = engine
        .sql(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let column = datafusion::arrow::compute::cast(
        batches[0].column(0),
        &datafusion::arrow::datatypes::DataType::Float64,
    )
    .unwrap();
    use datafusion::arrow::array::AsArray;
    column
        .as_primitive::<datafusion::arrow::datatypes::Float64Type>()
        .value(0)
}

fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let file = std::fs::File::create(path).unwrap();
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), None).unwrap();
    for b in batches {
        writer.write(b).unwrap();
    }
    writer.close().unwrap();
}

/// Trains every learner of ours on `train`, scores `test`; returns (options, held-out
/// Qini AUC, training seconds), best first.
async fn ours(engine: &Engine, dataset: &str, features: &str) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    for (i, options) in OURS.iter().enumerate() {
        let name = format!("{dataset}_{i}");
        let started = Instant::now();
        engine
            .sql(&format!(
                "SELECT * FROM uplift_train('{name}', 'SELECT treatment, converted, {features} \
                 FROM {dataset}_train', 'treatment', 'converted', '{options}, validation = 0')"
            ))
            .await
            .unwrap_or_else(|e| panic!("{options}: {e}"));
        let seconds = started.elapsed().as_secs_f64();
        let qini = scalar(
            engine,
            &format!(
                "SELECT qini_auc(converted, uplift, treatment) FROM uplift_predict('{name}', \
                 'SELECT * FROM {dataset}_test')"
            ),
        )
        .await;
        out.push((options.to_string(), qini, seconds));
    }
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

async fn compare(
    engine: &Engine,
    python: &str,
    dataset: &str,
    dir: &Path,
    features: &str,
    threads: &str,
) {
    let train = dir.join(format!("{dataset}_train.parquet"));
    let test = dir.join(format!("{dataset}_test.parquet"));
    let (train, test) = (train.to_str().unwrap(), test.to_str().unwrap());
    let fit = |method: &str| {
        peer(
            python,
            &[
                "fit",
                "--train",
                train,
                "--test",
                test,
                "--method",
                method,
                "--threads",
                threads,
            ],
        )
    };
    let sklift = fit("sklift_two_models_lr");
    let causalml = fit("causalml_lgbm_best");
    let ours = ours(engine, dataset, features).await;
    println!("\n## {dataset}: held-out Qini AUC\n");
    println!("| model | qini_auc | train s |");
    println!("| --- | --- | --- |");
    for (options, qini, seconds) in &ours {
        println!("| martdb {options} | {qini:.4} | {seconds:.2} |");
    }
    let sklift_qini = sklift["qini_auc"].as_f64().unwrap();
    println!(
        "| scikit-uplift TwoModels(LogisticRegression) | {sklift_qini:.4} | {:.2} |",
        sklift["fit_seconds"].as_f64().unwrap()
    );
    for (learner, qini) in causalml["by_learner"].as_object().unwrap() {
        println!("| {learner} | {:.4} | |", qini.as_f64().unwrap());
    }
    let best_peer = causalml["qini_auc"].as_f64().unwrap();
    let (best_options, best, _) = &ours[0];
    println!(
        "\nbest martdb ({best_options}) {best:.4}: {:.3}x scikit-uplift's, {:.3}x causalml's \
         best ({}, fit {:.1} s for the three)",
        best / sklift_qini,
        best / best_peer,
        causalml["best"].as_str().unwrap_or("?"),
        causalml["fit_seconds"].as_f64().unwrap()
    );
}

#[tokio::main]
async fn main() {
    let rows = args::num_arg("--rows", 100_000);
    let users = args::num_arg("--users", 200_000);
    let train_rows = args::num_arg("--train-rows", 1_000_000);
    let threads = args::arg("--threads").unwrap_or_else(|| "2".into());
    let python = std::env::var("MARTDB_BENCH_PYTHON")
        .expect("MARTDB_BENCH_PYTHON (scripts/bench-uplift.sh sets it)");
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().join("db").to_str().unwrap())
        .await
        .unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    // causalml's synthetic data.
    let synthetic = data.join("synthetic");
    let made = peer(
        &python,
        &[
            "make-data",
            "--rows",
            &rows.to_string(),
            "--features",
            "20",
            "--seed",
            "42",
            "--out",
            synthetic.to_str().unwrap(),
        ],
    );
    println!("synthetic: {made}");
    for part in ["train", "test"] {
        std::fs::rename(
            synthetic.join(format!("{part}.parquet")),
            data.join(format!("synthetic_{part}.parquet")),
        )
        .unwrap();
        engine
            .sql(&format!(
                "CREATE EXTERNAL TABLE synthetic_{part} STORED AS PARQUET LOCATION '{}'",
                data.join(format!("synthetic_{part}.parquet")).display()
            ))
            .await
            .unwrap();
    }
    let synthetic_features = (0..20)
        .map(|i| format!("f{i}"))
        .collect::<Vec<_>>()
        .join(", ");

    // The demo campaign, split 70/30 by user id.
    martdb::demo::write(&engine, DemoOptions { users, seed: 42 }, false)
        .await
        .unwrap();
    let demo_features = "recency_days, frequency, monetary, age, level, city";
    for (part, filter) in [("train", "user_id % 10 < 7"), ("test", "user_id % 10 >= 7")] {
        let batches = engine
            .sql(&format!(
                "SELECT user_id, treatment, converted, {demo_features} FROM campaign WHERE {filter}"
            ))
            .await
            .unwrap();
        let path = data.join(format!("demo_{part}.parquet"));
        write_parquet(&path, &batches);
        engine
            .sql(&format!(
                "CREATE EXTERNAL TABLE demo_{part} STORED AS PARQUET LOCATION '{}'",
                path.display()
            ))
            .await
            .unwrap();
    }

    compare(
        &engine,
        &python,
        "synthetic",
        &data,
        &synthetic_features,
        &threads,
    )
    .await;
    compare(&engine, &python, "demo", &data, demo_features, &threads).await;

    // Training time on `train_rows` × 20.
    let big = data.join("big");
    let all_rows = (train_rows as f64 / 0.99).ceil() as u64;
    peer(
        &python,
        &[
            "make-data",
            "--rows",
            &all_rows.to_string(),
            "--features",
            "20",
            "--seed",
            "7",
            "--out",
            big.to_str().unwrap(),
            "--test-share",
            "0.01",
        ],
    );
    let big_train = big.join("train.parquet");
    engine
        .sql(&format!(
            "CREATE EXTERNAL TABLE big_train STORED AS PARQUET LOCATION '{}'",
            big_train.display()
        ))
        .await
        .unwrap();
    let n = scalar(&engine, "SELECT count(*) FROM big_train").await;
    let mut ours_seconds = Vec::new();
    for run in 0..3 {
        let started = Instant::now();
        engine
            .sql(&format!(
                "SELECT * FROM uplift_train('big_{run}', 'SELECT treatment, converted, \
                 {synthetic_features} FROM big_train', 'treatment', 'converted', \
                 'learner = t, base = logistic, validation = 0')"
            ))
            .await
            .unwrap();
        ours_seconds.push(started.elapsed().as_secs_f64());
    }
    let ours_best = ours_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    let mut peer_seconds = Vec::new();
    for _ in 0..3 {
        let timed = peer(
            &python,
            &[
                "time-fit",
                "--train",
                big_train.to_str().unwrap(),
                "--method",
                "sklift_two_models_lr",
            ],
        );
        peer_seconds.push(timed["fit_seconds"].as_f64().unwrap());
    }
    let peer_best = peer_seconds.iter().copied().fold(f64::INFINITY, f64::min);
    println!("\n## Training time, {n} rows x 20 features (best of 3)\n");
    println!(
        "martdb uplift_train (t, logistic; SQL end to end): {ours_best:.3} s {ours_seconds:?}"
    );
    println!("scikit-uplift TwoModels(LogisticRegression) fit: {peer_best:.3} s {peer_seconds:?}");
    println!("ratio: martdb is {:.1}x faster", peer_best / ours_best);

    // Scoring throughput over SQL.
    for (model, table) in [("demo_0", "campaign"), ("big_0", "big_train")] {
        let started = Instant::now();
        let scored = scalar(
            &engine,
            &format!(
                "SELECT count(uplift) FROM uplift_predict('{model}', 'SELECT * FROM {table}')"
            ),
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "scoring {table}: {scored} rows in {seconds:.3} s = {:.0} rows/s",
            scored / seconds
        );
    }
}

//! Uplift models over the wire and in sessions: trained and scored by a real client
//! (tokio-postgres), typed results, bad input refused with its SQLSTATE while the server
//! and the registry stay as they were, a read-only session that may score but not
//! train or deploy, and the device setting.

use martdb::Engine;

use crate::server::Server;

/// The slt's synthetic campaign: the treatment lifts conversion from 10% to 50% for
/// users with `a > 0.5` in the north.
const CAMPAIGN: &str = "CREATE TABLE campaign AS \
    SELECT value AS user_id, value % 2 AS treatment, a, b, region, \
           CASE WHEN h < 0.1 + CASE WHEN value % 2 = 1 AND a > 0.5 AND region = 'north' \
                                    THEN 0.4 ELSE 0 END THEN 1 ELSE 0 END AS converted \
    FROM (SELECT value, ((value * 7919) % 1009) / 1009.0 AS a, \
                 ((value * 104729) % 997) / 997.0 AS b, \
                 CASE WHEN (value * 31) % 7 < 4 THEN 'north' ELSE 'south' END AS region, \
                 ((value * 2654435761) % 10007) / 10007.0 AS h \
          FROM generate_series(1, 6000))";

const TRAIN: &str = "SELECT version, qini_auc, deployed FROM uplift_train('coupon', \
    'SELECT treatment, converted, a, b, region FROM campaign', 'treatment', 'converted')";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uplift_is_trained_scored_and_refused_over_the_wire() {
    let server = Server::start().await;
    let client = server.client().await;
    client.batch_execute(CAMPAIGN).await.unwrap();

    let row = client.query_one(TRAIN, &[]).await.unwrap();
    let (version, qini, deployed): (i64, f64, bool) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((version, deployed), (1, true));
    assert!(qini > 0.2, "{qini}");

    // Scoring with a bound parameter in the outer query; the treated users of the
    // persuadable segment get the highest scores.
    let rows = client
        .query(
            "SELECT a > 0.5 AND region = 'north' AS segment, count(*), avg(uplift) \
             FROM uplift_predict('coupon', 'SELECT * FROM campaign') \
             WHERE p_control < $1 GROUP BY 1 ORDER BY 1",
            &[&1.0_f64],
        )
        .await
        .unwrap();
    let by_segment: Vec<(bool, i64, f64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(by_segment.len(), 2);
    assert_eq!(by_segment[0].1 + by_segment[1].1, 6000);
    assert!(by_segment[1].2 > by_segment[0].2 + 0.1, "{by_segment:?}");

    // Bad input: the SQLSTATE, the server up, the registry as it was.
    for (sql, code) in [
        (
            "SELECT * FROM uplift_train('coupon', 'SELECT treatment + 1 AS treatment, converted, a \
             FROM campaign', 'treatment', 'converted')",
            "22023",
        ),
        (
            "SELECT * FROM uplift_predict('coupon', 'SELECT a, b FROM campaign')",
            "42703",
        ),
        (
            "SELECT * FROM uplift_predict('nope', 'SELECT * FROM campaign')",
            "42704",
        ),
        (
            "SELECT * FROM uplift_train('coupon', 'SELECT treatment, converted, \
             CAST(NULL AS DOUBLE) AS empty FROM campaign', 'treatment', 'converted')",
            "22023",
        ),
    ] {
        let err = client.query(sql, &[]).await.unwrap_err();
        let db = err.as_db_error().expect("a database error");
        assert_eq!(db.code().code(), code, "{sql}: {db}");
    }
    let versions: i64 = client
        .query_one("SELECT count(*) FROM martdb.models", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(versions, 1);

    // The device is a per-session setting, checked when set.
    let shown = client.simple_query("SHOW martdb.ml_device").await.unwrap();
    let shown = shown.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(shown.as_deref(), Some("cpu"));
    let err = client
        .batch_execute("SET martdb.ml_device = 'cuda'")
        .await
        .unwrap_err();
    let db = err.as_db_error().expect("a database error");
    assert_eq!(db.code().code(), "22023", "{db}");
    #[cfg(not(feature = "cuda"))]
    assert!(db.message().contains("without the `cuda` feature"), "{db}");
    client
        .batch_execute("SET martdb.ml_device = 'cpu'")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_session_scores_but_does_not_train_or_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    engine.sql(CAMPAIGN).await.unwrap();
    engine.sql(TRAIN).await.unwrap();
    let read_only = engine.session().read_only(true);
    for sql in [
        TRAIN.to_string(),
        format!("SELECT count(*) FROM ({TRAIN}) t"),
        "SELECT model_deploy('coupon', 1)".to_string(),
    ] {
        let err = read_only.sql(&sql).await.unwrap_err();
        assert_eq!(err.sqlstate(), "25006", "{sql}: {err}");
    }
    let scored = read_only
        .sql("SELECT count(*) FROM uplift_predict('coupon', 'SELECT * FROM campaign')")
        .await
        .unwrap();
    assert_eq!(crate::rows(&scored), [["6000"]]);
    let versions = engine
        .sql("SELECT count(*) FROM martdb.models")
        .await
        .unwrap();
    assert_eq!(crate::rows(&versions), [["1"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_training_stops_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    engine.sql(CAMPAIGN).await.unwrap();
    let session = engine.session();
    session
        .sql("SET statement_timeout = '300ms'")
        .await
        .unwrap();
    // Far more passes than fit in 300 ms.
    let err = session
        .sql(
            "SELECT * FROM uplift_train('slow', 'SELECT treatment, converted, a, b, region \
             FROM campaign', 'treatment', 'converted', 'base = mlp, epochs = 100000')",
        )
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "57014", "{err}");
    // The training thread sees the cancel at its next step and never reaches the
    // registry.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let versions = engine
        .sql("SELECT count(*) FROM martdb.models")
        .await
        .unwrap();
    assert_eq!(crate::rows(&versions), [["0"]]);
}

/// Training reads its rows in the order its query gives them, so the seeded
/// validation split takes the same users on every run: a query's `ORDER BY` decides the
/// order whatever the storage order (the engine's optimizer once dropped it), and an
/// unsorted query over a table of several files trains the same model every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn training_reads_rows_in_the_query_order() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path().to_str().unwrap()).await.unwrap();
    engine.sql(CAMPAIGN).await.unwrap();
    // The same rows in two files, the second half first.
    engine
        .sql("CREATE TABLE halves AS SELECT * FROM campaign WHERE user_id > 3000")
        .await
        .unwrap();
    engine
        .sql("INSERT INTO halves SELECT * FROM campaign WHERE user_id <= 3000")
        .await
        .unwrap();
    let train = async |model: &str, query: &str| {
        let sql = format!(
            "SELECT qini_auc FROM uplift_train('{model}', '{query}', 'treatment', 'converted', \
             'base = logistic, validation = 0.3, seed = 7')"
        );
        let qini = crate::rows(&engine.sql(&sql).await.unwrap());
        let sql = format!(
            "SELECT sum(uplift * user_id), sum(p_control * user_id) \
             FROM uplift_predict('{model}', 'SELECT * FROM campaign')"
        );
        (qini, crate::rows(&engine.sql(&sql).await.unwrap()))
    };
    let columns = "SELECT treatment, converted, a, b, region";
    let ascending = train(
        "ascending",
        &format!("{columns} FROM campaign ORDER BY user_id"),
    )
    .await;
    let halves = train("halves", &format!("{columns} FROM halves ORDER BY user_id")).await;
    let descending = train(
        "descending",
        &format!("{columns} FROM campaign ORDER BY user_id DESC"),
    )
    .await;
    assert_eq!(halves, ascending);
    assert_ne!(descending, ascending);

    let mut runs = Vec::new();
    for run in 0..3 {
        let model = format!("unsorted_{run}");
        runs.push(train(&model, &format!("{columns} FROM halves")).await);
    }
    assert!(runs.iter().all(|run| *run == runs[0]), "{runs:?}");
}

//! Prepared queries through the library: generic plans over tables served from memory,
//! and everything that must make them plan again.

use datafusion::arrow::array::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use futures::TryStreamExt;
use martdb::session::PreparedQuery;
use martdb::{Engine, EngineOptions, Session};

async fn open(dir: &tempfile::TempDir, table_cache: Option<usize>) -> Engine {
    let options = EngineOptions {
        table_cache,
        ..Default::default()
    };
    let engine = Engine::open_with(dir.path().to_str().unwrap(), options)
        .await
        .unwrap();
    engine
        .sql(
            "CREATE TABLE accounts AS SELECT value AS id, concat('acct_', value) AS name \
             FROM generate_series(1, 1000)",
        )
        .await
        .unwrap();
    engine
}

async fn run(session: &Session, query: &PreparedQuery, id: i64) -> martdb::Result<Vec<String>> {
    let params = ParamValues::List(vec![ScalarValue::Int64(Some(id)).into()]);
    let batches: Vec<RecordBatch> = session
        .execute_prepared(query, &params)
        .await?
        .try_collect()
        .await?;
    Ok(crate::rows(&batches)
        .into_iter()
        .map(|r| r.join("|"))
        .collect())
}

const LOOKUP: &str = "SELECT name FROM accounts WHERE id = $1";

#[tokio::test]
async fn a_generic_plan_answers_each_execution_with_its_own_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, None).await;
    let session = engine.session();
    let lookup = session.prepare(LOOKUP).await.unwrap();
    assert!(!lookup.has_generic_plan());
    for id in [5, 999, 1, 1000, 5] {
        assert_eq!(
            run(&session, &lookup, id).await.unwrap(),
            [format!("acct_{id}")]
        );
        assert!(
            lookup.has_generic_plan(),
            "accounts is small: served from memory"
        );
    }
    assert!(run(&session, &lookup, 1001).await.unwrap().is_empty());

    // Two parameters and a join (its build side is rebuilt for each execution).
    let pair = session
        .prepare(
            "SELECT a.name, b.name FROM accounts a JOIN accounts b ON b.id = a.id + 1 \
             WHERE a.id = $1 AND b.name <> $2",
        )
        .await
        .unwrap();
    for id in [7_i64, 8] {
        let params = ParamValues::List(vec![
            ScalarValue::Int64(Some(id)).into(),
            ScalarValue::Utf8(Some("acct_0".into())).into(),
        ]);
        let batches: Vec<RecordBatch> = session
            .execute_prepared(&pair, &params)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            crate::rows(&batches),
            [[format!("acct_{id}"), format!("acct_{}", id + 1)]]
        );
    }
    assert!(pair.has_generic_plan());
}

#[tokio::test]
async fn commits_replace_and_drop_are_seen_by_the_next_execution() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, None).await;
    let session = engine.session();
    let lookup = session.prepare(LOOKUP).await.unwrap();
    assert!(run(&session, &lookup, 1001).await.unwrap().is_empty());
    assert!(lookup.has_generic_plan());

    // A commit from another session.
    engine
        .session()
        .sql("INSERT INTO accounts VALUES (1001, 'late')")
        .await
        .unwrap();
    assert_eq!(run(&session, &lookup, 1001).await.unwrap(), ["late"]);

    engine
        .sql("CREATE OR REPLACE TABLE accounts AS SELECT 1001 AS id, 'replaced' AS name")
        .await
        .unwrap();
    assert_eq!(run(&session, &lookup, 1001).await.unwrap(), ["replaced"]);
    assert!(run(&session, &lookup, 5).await.unwrap().is_empty());

    engine.sql("DROP TABLE accounts").await.unwrap();
    let err = run(&session, &lookup, 1001).await.unwrap_err();
    assert!(err.to_string().contains("dropped"), "{err}");
}

#[tokio::test]
async fn plans_that_must_not_be_frozen_are_planned_each_time() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, None).await;
    let session = engine.session();
    // now() is stable, not immutable: a kept plan would freeze the time.
    let timed = session
        .prepare("SELECT count(*) FROM accounts WHERE id <= $1 AND now() > TIMESTAMP '2000-01-01'")
        .await
        .unwrap();
    for id in [10, 20] {
        assert_eq!(run(&session, &timed, id).await.unwrap(), [id.to_string()]);
    }
    assert!(!timed.has_generic_plan());

    // Without the table cache, scans read files: filters on parameters must reach them.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, Some(0)).await;
    let session = engine.session();
    let lookup = session.prepare(LOOKUP).await.unwrap();
    for id in [3, 4] {
        assert_eq!(
            run(&session, &lookup, id).await.unwrap(),
            [format!("acct_{id}")]
        );
    }
    assert!(!lookup.has_generic_plan());
}

#[tokio::test]
async fn a_table_too_large_for_the_cache_is_read_from_its_files() {
    let dir = tempfile::tempdir().unwrap();
    // A 16 KiB cache admits files of at most 1 KiB: accounts is larger.
    let engine = open(&dir, Some(16 << 10)).await;
    let session = engine.session();
    let lookup = session.prepare(LOOKUP).await.unwrap();
    assert_eq!(run(&session, &lookup, 42).await.unwrap(), ["acct_42"]);
    assert!(!lookup.has_generic_plan());

    // Small files that decode to more than a quarter of the cache: tried once, then read
    // from the files at that version.
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, Some(1 << 20)).await;
    engine
        .sql(
            "CREATE TABLE padded AS SELECT value AS id, concat(repeat('x', 996), value) AS pad \
             FROM generate_series(1000, 1999)",
        )
        .await
        .unwrap();
    let session = engine.session();
    let lookup = session
        .prepare("SELECT length(pad) FROM padded WHERE id = $1")
        .await
        .unwrap();
    for id in [1000, 1001, 1999] {
        assert_eq!(run(&session, &lookup, id).await.unwrap(), ["1000"]);
    }
    assert!(!lookup.has_generic_plan());
}

#[tokio::test]
async fn a_parameter_of_another_type_is_cast_or_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, None).await;
    let session = engine.session();
    let lookup = session.prepare(LOOKUP).await.unwrap();
    assert_eq!(run(&session, &lookup, 9).await.unwrap(), ["acct_9"]);
    assert!(lookup.has_generic_plan());
    let int32 = ParamValues::List(vec![ScalarValue::Int32(Some(10)).into()]);
    let batches: Vec<RecordBatch> = session
        .execute_prepared(&lookup, &int32)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(crate::rows(&batches), [["acct_10"]]);
    let text = ParamValues::List(vec![ScalarValue::Utf8(Some("ten".into())).into()]);
    let failed = match session.execute_prepared(&lookup, &text).await {
        Err(e) => e.to_string(),
        Ok(stream) => stream
            .try_collect::<Vec<RecordBatch>>()
            .await
            .unwrap_err()
            .to_string(),
    };
    assert!(failed.contains("ten"), "{failed}");
    // The failure released the plan for the next execution.
    assert_eq!(run(&session, &lookup, 11).await.unwrap(), ["acct_11"]);
    assert!(lookup.has_generic_plan());
}

async fn texts(session: &Session, query: &PreparedQuery, params: &[&str]) -> Vec<String> {
    let params = ParamValues::List(
        params
            .iter()
            .map(|p| ScalarValue::Utf8(Some(p.to_string())).into())
            .collect(),
    );
    let batches: Vec<RecordBatch> = session
        .execute_prepared(query, &params)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    crate::rows(&batches)
        .into_iter()
        .map(|r| r.join("|"))
        .collect()
}

#[tokio::test]
async fn a_kept_plan_runs_volatile_functions_and_reads_computed_tables_at_each_execution() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, None).await;
    engine
        .sql("SELECT create_coupon_pool('p', 3, '{}')")
        .await
        .unwrap();
    let session = engine.session();
    // Two columns: not a single direct call, so a plan (kept) runs the function.
    let reserve = session
        .prepare("SELECT reserve_coupon('p', $1::text, $2::text), 1 AS planned")
        .await
        .unwrap();
    assert!(!reserve.runs_directly());
    let remaining = session
        .prepare("SELECT remaining FROM martdb.coupon_pools WHERE pool = $1::text")
        .await
        .unwrap();
    assert_eq!(texts(&session, &remaining, &["p"]).await, ["3"]);
    let mut outcomes = Vec::new();
    for user in ["u1", "u2", "u1", "u3", "u4"] {
        let key = format!("k-{user}-{}", outcomes.len());
        outcomes.extend(texts(&session, &reserve, &[user, &key]).await);
        assert!(
            reserve.has_generic_plan(),
            "reserve_coupon is volatile, not stable"
        );
    }
    assert_eq!(
        outcomes,
        [
            "reserved|1",
            "reserved|1",
            "user_limit|1",
            "reserved|1",
            "sold_out|1"
        ]
    );
    // A retried key is answered from the ledger, not from anything kept in the plan.
    assert_eq!(
        texts(&session, &reserve, &["u1", "k-u1-0"]).await,
        ["duplicate:reserved|1"]
    );
    assert_eq!(texts(&session, &remaining, &["p"]).await, ["0"]);
    assert!(
        remaining.has_generic_plan(),
        "a computed table is read at each execution"
    );
}

async fn run_values(
    session: &Session,
    query: &PreparedQuery,
    params: Vec<ScalarValue>,
) -> martdb::Result<(datafusion::arrow::datatypes::SchemaRef, Vec<Vec<String>>)> {
    let params = ParamValues::List(params.into_iter().map(Into::into).collect());
    let stream = session.execute_prepared(query, &params).await?;
    let schema = stream.schema();
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    Ok((schema, crate::rows(&batches)))
}

/// `SELECT reserve_coupon(...)` alone runs the call without a plan; it must answer as the
/// planned statement does, row, name and errors alike.
#[tokio::test]
async fn a_direct_call_answers_as_the_planned_statement() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir, None).await;
    engine
        .sql("SELECT create_coupon_pool('p', 2, '{}')")
        .await
        .unwrap();
    let session = engine.session();
    let direct = session
        .prepare("SELECT reserve_coupon('p', $1::text, $2::text) AS outcome")
        .await
        .unwrap();
    assert!(direct.runs_directly());
    let planned = session
        .prepare("SELECT outcome FROM (SELECT reserve_coupon('p', $1::text, $2::text) AS outcome)")
        .await
        .unwrap();
    assert!(!planned.runs_directly());
    let text = |s: &str| ScalarValue::Utf8(Some(s.into()));
    let cases = [
        (vec![text("u1"), text("a")], "reserved"),
        (vec![text("u1"), text("a")], "duplicate:reserved"),
        (vec![text("u1"), text("b")], "user_limit"),
        // A client that binds an integer: cast to text as `$1::text` says.
        (vec![ScalarValue::Int64(Some(7)), text("c")], "reserved"),
        (vec![text("u3"), text("d")], "sold_out"),
        (vec![ScalarValue::Utf8(None), text("e")], ""),
    ];
    for (params, expected) in cases {
        let (schema, rows) = run_values(&session, &direct, params.clone()).await.unwrap();
        assert_eq!(rows, [[expected.to_string()]]);
        assert_eq!(schema.field(0).name(), "outcome");
        // The planned statement, with the same arguments, gives the same answer now.
        let replayed = match expected {
            "reserved" => "duplicate:reserved",
            "user_limit" => "duplicate:user_limit",
            "sold_out" => "duplicate:sold_out",
            other => other,
        };
        let (planned_schema, rows) = run_values(&session, &planned, params).await.unwrap();
        assert_eq!(rows, [[replayed.to_string()]]);
        assert_eq!(planned_schema, schema);
    }
    // A key reused for another user, and an unknown pool: the same errors both ways.
    for params in [vec![text("u9"), text("a")]] {
        let direct_err = run_values(&session, &direct, params.clone())
            .await
            .unwrap_err();
        let planned_err = run_values(&session, &planned, params).await.unwrap_err();
        assert!(
            direct_err.to_string().contains("request key"),
            "{direct_err}"
        );
        assert_eq!(direct_err.to_string(), planned_err.to_string());
        assert_eq!(direct_err.sqlstate(), planned_err.sqlstate());
    }
    let unknown = session
        .prepare("SELECT reserve_coupon('nope', $1::text, $2::text)")
        .await
        .unwrap();
    let err = run_values(&session, &unknown, vec![text("u1"), text("z")])
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), "42704", "{err}");
    let released = session
        .prepare("SELECT release_coupon('p', $1::text, $2::text)")
        .await
        .unwrap();
    assert!(released.runs_directly());
    let (_, rows) = run_values(&session, &released, vec![text("u1"), text("a")])
        .await
        .unwrap();
    assert_eq!(rows, [["released"]]);
}

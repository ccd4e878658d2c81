//! The persistent catalog through the embedding API: what is created survives reopening,
//! dropped files are tables, and bad input fails with an error that names the object.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use martdb::{Engine, EngineOptions};

use crate::{rows, scalar};

async fn open(dir: &tempfile::TempDir) -> Engine {
    Engine::open(dir.path().to_str().unwrap()).await.unwrap()
}

fn write_parquet(path: &std::path::Path, ids: &[i64], names: &[&str]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ],
    )
    .unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = datafusion::parquet::arrow::ArrowWriter::try_new(file, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

#[tokio::test]
async fn everything_created_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("channels.csv");
    std::fs::write(&csv, "channel,cost\nads,2.5\norganic,0\n").unwrap();
    {
        let engine = open(&dir).await;
        engine.sql("CREATE SCHEMA crm").await.unwrap();
        engine
            .sql("CREATE TABLE crm.contacts (id BIGINT NOT NULL, email TEXT)")
            .await
            .unwrap();
        engine
            .sql("INSERT INTO crm.contacts VALUES (1, 'a@x.io'), (2, NULL)")
            .await
            .unwrap();
        engine
            .sql("CREATE TABLE big AS SELECT value AS id, value % 7 AS bucket FROM generate_series(1, 10000)")
            .await
            .unwrap();
        engine
            .sql("INSERT INTO big SELECT id + 10000, bucket FROM big")
            .await
            .unwrap();
        engine
            .sql("CREATE VIEW big_buckets AS SELECT bucket, count(*) AS n FROM big GROUP BY bucket")
            .await
            .unwrap();
        engine
            .sql(&format!("CREATE EXTERNAL TABLE channels STORED AS CSV LOCATION '{}' OPTIONS ('format.has_header' 'true')", csv.display()))
            .await
            .unwrap();
        engine
            .sql("CREATE TABLE gone AS SELECT 1 AS x")
            .await
            .unwrap();
        engine.sql("DROP TABLE gone").await.unwrap();
    }
    let engine = open(&dir).await;
    assert!(engine.warnings().is_empty(), "{:?}", engine.warnings());
    assert_eq!(
        rows(
            &engine
                .sql("SELECT id, email FROM crm.contacts ORDER BY id")
                .await
                .unwrap()
        ),
        vec![
            vec!["1".to_string(), "a@x.io".to_string()],
            vec!["2".to_string(), "".to_string()]
        ]
    );
    assert_eq!(
        scalar(&engine.sql("SELECT count(*) FROM big").await.unwrap()),
        "20000"
    );
    assert_eq!(
        scalar(&engine.sql("SELECT sum(n) FROM big_buckets").await.unwrap()),
        "20000"
    );
    assert_eq!(
        scalar(
            &engine
                .sql("SELECT cost FROM channels WHERE channel = 'ads'")
                .await
                .unwrap()
        ),
        "2.5"
    );
    let err = engine.sql("SELECT * FROM gone").await.unwrap_err();
    assert_eq!(err.sqlstate(), "42P01", "{err}");
    assert!(
        !dir.path().join("gone").exists(),
        "dropped table's files are removed"
    );
    let kinds = rows(
        &engine
            .sql("SELECT table_schema, table_name, kind FROM martdb.tables ORDER BY 1, 2")
            .await
            .unwrap(),
    );
    assert_eq!(
        kinds,
        [
            ["crm", "contacts", "managed"],
            ["public", "big", "managed"],
            ["public", "big_buckets", "view"],
            ["public", "channels", "external"]
        ]
        .map(|r| r.map(String::from).to_vec())
        .to_vec()
    );
}

#[tokio::test]
async fn parquet_files_in_the_data_directory_are_tables() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("people.parquet"),
        &[1, 2, 3],
        &["ann", "bob", "cy"],
    );
    std::fs::create_dir_all(dir.path().join("clicks/day=2026-11-01")).unwrap();
    std::fs::create_dir_all(dir.path().join("clicks/day=2026-11-02")).unwrap();
    write_parquet(
        &dir.path().join("clicks/day=2026-11-01/a.parquet"),
        &[1, 2],
        &["x", "y"],
    );
    write_parquet(
        &dir.path().join("clicks/day=2026-11-02/b.parquet"),
        &[3],
        &["z"],
    );
    let engine = open(&dir).await;
    assert_eq!(
        scalar(
            &engine
                .sql("SELECT name FROM people WHERE id = 2")
                .await
                .unwrap()
        ),
        "bob"
    );
    assert_eq!(
        rows(
            &engine
                .sql("SELECT day, count(*) FROM clicks GROUP BY day ORDER BY day")
                .await
                .unwrap()
        ),
        vec![
            vec!["2026-11-01".to_string(), "2".to_string()],
            vec!["2026-11-02".to_string(), "1".to_string()]
        ]
    );
    // Files dropped in after the engine opened are seen too.
    write_parquet(&dir.path().join("late.parquet"), &[9], &["late"]);
    assert_eq!(
        scalar(&engine.sql("SELECT name FROM late").await.unwrap()),
        "late"
    );
    // Such tables belong to the analyst's files: martdb does not write or drop them.
    let err = engine
        .sql("INSERT INTO people VALUES (4, 'dee')")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("people"), "{err}");
    let err = engine.sql("DROP TABLE people").await.unwrap_err();
    assert!(err.to_string().contains("delete the file"), "{err}");
    assert!(dir.path().join("people.parquet").exists());
}

#[tokio::test]
async fn a_corrupt_parquet_file_fails_only_its_own_table() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(&dir).await;
        engine
            .sql("CREATE TABLE keep AS SELECT 42 AS answer")
            .await
            .unwrap();
    }
    std::fs::write(
        dir.path().join("broken.parquet"),
        b"PAR1 this is not parquet",
    )
    .unwrap();
    let engine = open(&dir).await;
    let err = engine.sql("SELECT * FROM broken").await.unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("broken"),
        "error names the table or file: {message}"
    );
    assert_eq!(
        scalar(&engine.sql("SELECT answer FROM keep").await.unwrap()),
        "42"
    );
    // The catalog listing still works and reports the bad table.
    let listed = rows(
        &engine
            .sql("SELECT table_name, kind FROM martdb.tables ORDER BY 1")
            .await
            .unwrap(),
    );
    assert!(
        listed.contains(&vec!["keep".to_string(), "managed".to_string()]),
        "{listed:?}"
    );
}

#[tokio::test]
async fn errors_name_the_object_and_carry_a_sqlstate() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir).await;
    engine
        .sql("CREATE TABLE t (id BIGINT, name TEXT)")
        .await
        .unwrap();
    let cases = [
        ("SELECT * FROM nope", "42P01", "nope"),
        ("SELEC 1", "42601", "SELEC"),
        ("SELECT missing_col FROM t", "42703", "missing_col"),
        ("CREATE TABLE t (x INT)", "42P07", "'t'"),
        (
            "INSERT INTO t VALUES ('not a number', 'x')",
            "22P02",
            "not a number",
        ),
        ("DROP TABLE nope", "42P01", "nope"),
        ("CREATE TABLE nosuch.t (x INT)", "3F000", "nosuch"),
    ];
    for (sql, state, needle) in cases {
        let err = engine.sql(sql).await.unwrap_err();
        assert_eq!(err.sqlstate(), state, "{sql}: {err}");
        assert!(err.to_string().contains(needle), "{sql}: {err}");
    }
    // None of that touched the table.
    engine.sql("INSERT INTO t VALUES (1, 'ok')").await.unwrap();
    assert_eq!(
        scalar(&engine.sql("SELECT count(*) FROM t").await.unwrap()),
        "1"
    );
}

#[tokio::test]
async fn a_missing_directory_is_an_error_when_not_creating() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("does-not-exist");
    let options = EngineOptions {
        create_if_missing: false,
        ..Default::default()
    };
    let err = Engine::open_with(missing.to_str().unwrap(), options)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does-not-exist"), "{err}");
    assert!(!missing.exists());
}

#[tokio::test]
async fn a_query_over_the_memory_limit_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let options = EngineOptions {
        memory_limit: Some(4 << 20),
        ..Default::default()
    };
    let engine = Engine::open_with(dir.path().to_str().unwrap(), options)
        .await
        .unwrap();
    // A sort with no spilling room and a large distinct set exceed 4 MiB.
    let result = engine
        .sql("SELECT count(DISTINCT s) FROM (SELECT value AS v, repeat('x', 100) || value AS s FROM generate_series(1, 1000000))")
        .await;
    match result {
        Ok(batches) => assert_eq!(scalar(&batches), "1000000"), // spilled and finished
        Err(err) => assert_eq!(err.sqlstate(), "53200", "{err}"),
    }
    // The engine is still usable afterwards.
    assert_eq!(scalar(&engine.sql("SELECT 1 + 1").await.unwrap()), "2");
}

#[tokio::test]
async fn managed_tables_are_readable_by_parquet_readers_through_their_file_list() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(&dir).await;
    engine
        .sql("CREATE TABLE t AS SELECT value AS v FROM generate_series(1, 100)")
        .await
        .unwrap();
    engine
        .sql("INSERT INTO t SELECT value FROM generate_series(101, 150)")
        .await
        .unwrap();
    let files = rows(
        &engine
            .sql("SELECT path FROM martdb.table_files WHERE table_name = 't'")
            .await
            .unwrap(),
    );
    assert!(files.len() >= 2, "{files:?}");
    // Read the listed files with a plain Parquet reader, as another engine would.
    let mut total = 0;
    for file in files {
        let path = url::Url::parse(&file[0])
            .map(|u| u.to_file_path().unwrap())
            .unwrap_or_else(|_| file[0].clone().into());
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                std::fs::File::open(path).unwrap(),
            )
            .unwrap()
            .build()
            .unwrap();
        total += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    assert_eq!(total, 150);
}

#[tokio::test]
async fn file_urls_open_the_same_database_as_paths() {
    let dir = tempfile::tempdir().unwrap();
    {
        let engine = open(&dir).await;
        engine
            .sql("CREATE TABLE t AS SELECT 'via path' AS how")
            .await
            .unwrap();
    }
    let url = url::Url::from_directory_path(dir.path()).unwrap();
    let engine = Engine::open(url.as_str()).await.unwrap();
    assert_eq!(
        scalar(&engine.sql("SELECT how FROM t").await.unwrap()),
        "via path"
    );
    let err = Engine::open("ftp://example.com/data").await.unwrap_err();
    assert!(err.to_string().contains("unsupported scheme"), "{err}");
}

#[tokio::test]
async fn an_interrupted_create_leaves_no_table_behind() {
    let dir = tempfile::tempdir().unwrap();
    // What a crash mid-CREATE TABLE AS leaves: data files and a log without commits.
    std::fs::create_dir_all(dir.path().join("half/_delta_log")).unwrap();
    write_parquet(&dir.path().join("half/part-00000.parquet"), &[1], &["x"]);
    let engine = open(&dir).await;
    let err = engine.sql("SELECT * FROM half").await.unwrap_err();
    assert_eq!(err.sqlstate(), "42P01", "{err}");
    engine
        .sql("CREATE TABLE half AS SELECT 2 AS id")
        .await
        .unwrap();
    assert_eq!(
        scalar(&engine.sql("SELECT id FROM half").await.unwrap()),
        "2"
    );
}

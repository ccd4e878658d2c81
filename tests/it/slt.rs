//! Runs every `sql/**/*.slt` file against a fresh engine in a temporary directory.
//!
//! Errors are reported as `[SQLSTATE] message`, so a file can pin both with
//! `statement error \[42P01\] table 'nope' does not exist`.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::TryStreamExt;
use martdb::Engine;
use sqllogictest::{DBOutput, DefaultColumnType};

struct SltEngine {
    engine: Engine,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct SltError(String);

impl std::fmt::Display for SltError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SltError {}

impl From<martdb::Error> for SltError {
    fn from(e: martdb::Error) -> Self {
        SltError(format!("[{}] {e}", e.sqlstate()))
    }
}

fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating()
        || matches!(
            data_type,
            DataType::Decimal128(..) | DataType::Decimal256(..)
        )
    {
        DefaultColumnType::FloatingPoint
    } else {
        DefaultColumnType::Text
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for SltEngine {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<Self::ColumnType>, Self::Error> {
        let stream = self.engine.sql_stream(sql).await?;
        let schema = stream.schema();
        let batches: Vec<_> = stream.try_collect().await.map_err(martdb::Error::from)?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let is_count = schema.fields().len() == 1 && schema.field(0).name() == "count";
        let types = schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| {
                            let value = f.value(row).to_string();
                            if value.is_empty() {
                                "(empty)".to_string()
                            } else {
                                value
                            }
                        })
                        .collect(),
                );
            }
        }
        if is_count && !sql.trim_start().to_ascii_lowercase().starts_with("select") {
            let n = rows
                .first()
                .and_then(|r: &Vec<String>| r[0].parse().ok())
                .unwrap_or(0);
            return Ok(DBOutput::StatementComplete(n));
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "martdb"
    }
}

fn slt_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            slt_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "slt") {
            out.push(path);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    let mut files = Vec::new();
    slt_files(&root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .slt files under {}", root.display());
    // MARTDB_SLT=forecast runs only the files whose path contains "forecast".
    if let Ok(only) = std::env::var("MARTDB_SLT") {
        files.retain(|f| f.to_string_lossy().contains(&only));
    }
    let mut failures = Vec::new();
    for file in &files {
        let mut runner = sqllogictest::Runner::new(|| async {
            let dir = tempfile::tempdir().unwrap();
            let engine = Engine::open(dir.path().to_str().unwrap()).await?;
            Ok::<_, SltError>(SltEngine { engine, _dir: dir })
        });
        runner.with_column_validator(sqllogictest::strict_column_validator);
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} .slt file(s) failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

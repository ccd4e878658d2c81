//! Managed tables: Delta Lake tables under the data directory.
//!
//! Invariants:
//! - readers always scan one committed Delta version; a write becomes visible only when
//!   its commit file exists, so a reader (or a restart after a crash) sees a table before
//!   or after an INSERT, never half of it;
//! - writes to one table are serialised in this process (`write_lock`), and the provider
//!   readers use is swapped for the new version only after the commit is durable;
//! - with a [`TableCache`], a small table is scanned from its decoded batches of the
//!   version readers see, never of another; filters are then re-applied above the scan
//!   (pushdown is never reported exact).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::datasource::memory::{DataSourceExec, MemorySourceConfig};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::{
    Expr, LogicalPlan, LogicalPlanBuilder, TableProviderFilterPushDown, cast,
};
use datafusion::physical_plan::{ExecutionPlan, collect};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableBuilder};
use futures::TryStreamExt;
use url::Url;

use super::CatalogError;
use super::cache::{TableCache, TableId};
use crate::storage::sync_paths;

/// A Delta table registered in the catalog.
pub struct ManagedTable {
    name: String,
    url: Url,
    current: RwLock<Current>,
    write_lock: tokio::sync::Mutex<()>,
    cache: Option<(Arc<TableCache>, TableId)>,
    /// Set by DROP: plans made before the drop still hold this object and must not
    /// read it (its cached batches are gone, its files about to be).
    dropped: AtomicBool,
    /// The version found too large for the cache once decoded (-2: none).
    too_big: AtomicI64,
    /// One loader per table: concurrent first scans wait for one load, not N.
    load_lock: tokio::sync::Mutex<()>,
}

impl Drop for ManagedTable {
    fn drop(&mut self) {
        if let Some((cache, id)) = &self.cache {
            cache.forget(*id);
        }
    }
}

struct Current {
    table: DeltaTable,
    provider: Arc<dyn TableProvider>,
    version: i64,
    /// Bytes of the version's Parquet files and its rows (`None` when a file has no
    /// statistics): what the table cache admits by, summed once per version rather than on
    /// every scan.
    file_bytes: u64,
    rows: Option<u64>,
}

impl Current {
    fn new(table: DeltaTable, provider: Arc<dyn TableProvider>) -> Self {
        let version = table.version().map_or(-1, |v| v as i64);
        let (file_bytes, rows) = table.snapshot().map_or((u64::MAX, None), |s| {
            let files = s.log_data();
            let bytes = files.iter().map(|f| f.size().max(0) as u64).sum();
            let rows = files
                .iter()
                .map(|f| f.num_records().map(|n| n as u64))
                .sum();
            (bytes, rows)
        });
        Current {
            table,
            provider,
            version,
            file_bytes,
            rows,
        }
    }
}

impl std::fmt::Debug for ManagedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedTable")
            .field("name", &self.name)
            .field("url", &self.url.as_str())
            .finish()
    }
}

fn delta_err(table: &str, source: impl std::fmt::Display) -> CatalogError {
    CatalogError::Delta {
        table: table.to_string(),
        message: source.to_string(),
    }
}

impl ManagedTable {
    /// Opens the latest version of the table at `url`.
    pub async fn open(name: &str, url: &Url) -> Result<Self, CatalogError> {
        let table = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| delta_err(name, e))?
            .load()
            .await
            .map_err(|e| delta_err(name, e))?;
        Self::from_table(name, url, table).await
    }

    async fn from_table(name: &str, url: &Url, table: DeltaTable) -> Result<Self, CatalogError> {
        let provider = table
            .table_provider()
            .await
            .map_err(|e| delta_err(name, e))?;
        Ok(ManagedTable {
            name: name.to_string(),
            url: url.clone(),
            current: RwLock::new(Current::new(table, provider)),
            write_lock: tokio::sync::Mutex::new(()),
            cache: None,
            dropped: Default::default(),
            too_big: AtomicI64::new(-2),
            load_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Marks the table dropped: later scans fail instead of reading it.
    pub(crate) fn mark_dropped(&self) {
        self.dropped.store(true, Ordering::Release);
        if let Some((cache, id)) = &self.cache {
            cache.forget(*id);
        }
    }

    /// URIs of the Parquet files of the version readers see now (what another engine
    /// must read).
    pub fn file_uris(&self) -> DFResult<Vec<String>> {
        if self.dropped.load(Ordering::Acquire) {
            return Err(DataFusionError::Plan(format!(
                "table '{}' was dropped after this statement was prepared",
                self.name
            )));
        }
        let current = self.current.read().expect(crate::LOCK_POISONED);
        let uris = current
            .table
            .get_file_uris()
            .map_err(|e| DataFusionError::External(Box::new(delta_err(&self.name, e))))?;
        Ok(uris.collect())
    }

    /// Serves scans of this table from `cache` when it is small enough.
    pub(crate) fn with_cache(mut self, cache: Arc<TableCache>) -> Self {
        let id = cache.register();
        self.cache = Some((cache, id));
        self
    }

    /// Creates the table at `url` from `input` (which may produce no rows: its schema is the
    /// table's) and returns it with the number of rows written.
    pub async fn create(
        name: &str,
        url: &Url,
        input: LogicalPlan,
        state: &SessionState,
    ) -> Result<(Self, u64), CatalogError> {
        let input = checked(name, input, state)?;
        if let Ok(dir) = url.to_file_path() {
            // The log directory exists before any data file: a crash mid-create leaves a
            // folder that file discovery knows is not a table of loose Parquet files.
            std::fs::create_dir_all(dir.join("_delta_log")).map_err(|e| delta_err(name, e))?;
        }
        let empty = DeltaTableBuilder::from_url(url.clone())
            .map_err(|e| delta_err(name, e))?
            .build()
            .map_err(|e| delta_err(name, e))?;
        let (table, rows) = write(name, empty, input, state, SaveMode::ErrorIfExists).await?;
        Ok((Self::from_table(name, url, table).await?, rows))
    }

    /// Appends (or, with `overwrite`, replaces) the rows of `input`, whose schema must be
    /// the table's; returns the number of rows written.
    pub async fn write(
        &self,
        input: LogicalPlan,
        state: &SessionState,
        overwrite: bool,
    ) -> Result<u64, CatalogError> {
        let _writer = self.write_lock.lock().await;
        let input = checked(&self.name, input, state)?;
        let base = self
            .current
            .read()
            .expect(crate::LOCK_POISONED)
            .table
            .clone();
        let mode = if overwrite {
            SaveMode::Overwrite
        } else {
            SaveMode::Append
        };
        let (table, rows) = write(&self.name, base, input, state, mode).await?;
        let provider = table
            .table_provider()
            .await
            .map_err(|e| delta_err(&self.name, e))?;
        *self.current.write().expect(crate::LOCK_POISONED) = Current::new(table, provider);
        if let Some((cache, _)) = &self.cache {
            cache.bump();
        }
        Ok(rows)
    }

    /// The table's location.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The committed Delta version readers currently see.
    pub fn version(&self) -> i64 {
        self.current.read().expect(crate::LOCK_POISONED).version
    }

    fn provider(&self) -> Arc<dyn TableProvider> {
        self.current
            .read()
            .expect(crate::LOCK_POISONED)
            .provider
            .clone()
    }

    /// The provider, version and Parquet bytes readers see now.
    fn snapshot(&self) -> (Arc<dyn TableProvider>, i64, u64, Option<u64>) {
        let current = self.current.read().expect(crate::LOCK_POISONED);
        (
            current.provider.clone(),
            current.version,
            current.file_bytes,
            current.rows,
        )
    }

    /// The decoded batches of the current version, loading them if the table is small
    /// enough for the cache; `None` means scan the files.
    async fn cached_batches(&self, state: &dyn Session) -> DFResult<Option<Arc<[RecordBatch]>>> {
        let Some((cache, id)) = &self.cache else {
            return Ok(None);
        };
        let (provider, version, bytes, rows) = self.snapshot();
        if let Some(batches) = cache.get(*id, version) {
            return Ok(Some(batches));
        }
        if !cache.admits_table(bytes, rows) || self.too_big.load(Ordering::Acquire) == version {
            return Ok(None);
        }
        let _loading = self.load_lock.lock().await;
        if let Some(batches) = cache.get(*id, version) {
            return Ok(Some(batches));
        }
        let plan = provider.scan(state, None, &[], None).await?;
        if plan.schema() != provider.schema() {
            // Served batches must have the schema the plan was made with.
            return Ok(None);
        }
        let batches: Arc<[RecordBatch]> = collect(plan, state.task_ctx()).await?.into();
        if cache.insert(*id, version, batches.clone()) {
            tracing::debug!(table = %self.name, version, "cached");
            return Ok(Some(batches));
        }
        // Decoded, it is larger than the cache takes: do not read it whole again.
        self.too_big.store(version, Ordering::Release);
        Ok(None)
    }
}

/// Rows per partition of a scan from the cache: below this, splitting the scan costs
/// more (tasks, channels, a merge) than it saves.
const ROWS_PER_PARTITION: usize = 256 * 1024;

/// A scan of decoded batches, split over at most `partitions` for parallel operators
/// above it. Each partition is a contiguous run of batches, so reading the partitions
/// one after the other gives the table's own order.
fn memory_scan(
    batches: &[RecordBatch],
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    partitions: usize,
) -> DFResult<Arc<dyn ExecutionPlan>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let partitions = partitions
        .min(rows.div_ceil(ROWS_PER_PARTITION))
        .clamp(1, batches.len().max(1));
    let per_partition = batches.len().div_ceil(partitions).max(1);
    let mut split: Vec<Vec<RecordBatch>> = batches
        .chunks(per_partition)
        .map(<[RecordBatch]>::to_vec)
        .collect();
    if split.is_empty() {
        split.push(Vec::new());
    }
    let source =
        MemorySourceConfig::try_new(&split, schema, projection.cloned())?.with_limit(limit);
    Ok(DataSourceExec::from_data_source(source))
}

async fn write(
    name: &str,
    table: DeltaTable,
    input: LogicalPlan,
    state: &SessionState,
    mode: SaveMode,
) -> Result<(DeltaTable, u64), CatalogError> {
    let table = table
        .write(Vec::new())
        .with_input_plan(input)
        .with_session_state(Arc::new(state.clone()))
        .with_save_mode(mode)
        .with_table_name(name)
        .await
        .map_err(|e| delta_err(name, e))?;
    let rows = rows_of_last_commit(&table).await.unwrap_or(0);
    if let Some(version) = table.version() {
        sync_commit(&table, version).map_err(|e| delta_err(name, e))?;
    }
    Ok((table, rows))
}

async fn rows_of_last_commit(table: &DeltaTable) -> Option<u64> {
    let commits: Vec<_> = table.history(Some(1)).try_collect().await.ok()?;
    commits
        .first()?
        .info
        .get("operationMetrics")?
        .get("num_added_rows")?
        .as_u64()
}

/// Makes the commit of `version` and the data files it adds durable (local tables only).
fn sync_commit(table: &DeltaTable, version: u64) -> Result<(), crate::storage::StorageError> {
    let Ok(root) = table.table_url().to_file_path() else {
        return Ok(());
    };
    let commit = root.join(format!("_delta_log/{version:020}.json"));
    let mut paths: Vec<PathBuf> = vec![commit.clone()];
    if let Ok(text) = std::fs::read_to_string(&commit) {
        for line in text.lines() {
            let Ok(action) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if let Some(path) = action
                .get("add")
                .and_then(|add| add.get("path"))
                .and_then(|p| p.as_str())
            {
                paths.push(root.join(percent_decode(path)));
            }
        }
    }
    sync_paths(&paths)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Plans and optimises `input` before handing it to the Delta writer, which reports
/// failures as text: errors found here (bad casts of constants, unknown columns) keep
/// their type and so their SQLSTATE.
fn checked(
    table: &str,
    input: LogicalPlan,
    state: &SessionState,
) -> Result<LogicalPlan, CatalogError> {
    let input = delta_compatible(table, input)?;
    state
        .optimize(&input)
        .map_err(|source| CatalogError::Query {
            table: table.to_string(),
            source,
        })
}

/// Delta Lake has no unsigned integers and stores timestamps in microseconds; cast such
/// columns so that any query result (e.g. `row_number()`, `now()`) can become a table.
fn delta_compatible(table: &str, input: LogicalPlan) -> Result<LogicalPlan, CatalogError> {
    let schema = input.schema().clone();
    let mut changed = false;
    let mut exprs: Vec<Expr> = Vec::with_capacity(schema.fields().len());
    for (qualifier, field) in schema.iter() {
        let column = Expr::Column(datafusion::common::Column::from((qualifier, field)));
        match delta_type(field.data_type()) {
            Some(target) if &target != field.data_type() => {
                changed = true;
                exprs.push(cast(column, target).alias(field.name()));
            }
            Some(_) => exprs.push(column),
            None => {
                return Err(CatalogError::UnsupportedType {
                    table: table.to_string(),
                    column: field.name().clone(),
                    data_type: field.data_type().to_string(),
                });
            }
        }
    }
    if !changed {
        return Ok(input);
    }
    LogicalPlanBuilder::from(input)
        .project(exprs)
        .and_then(|b| b.build())
        .map_err(|e| delta_err(table, e))
}

/// The type a column is stored as, or `None` when Delta cannot hold it.
fn delta_type(data_type: &DataType) -> Option<DataType> {
    Some(match data_type {
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
        DataType::Date64 => DataType::Date32,
        DataType::LargeUtf8 | DataType::Utf8View => DataType::Utf8,
        DataType::LargeBinary | DataType::BinaryView | DataType::FixedSizeBinary(_) => {
            DataType::Binary
        }
        DataType::Null => DataType::Utf8,
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            let inner = delta_type(f.data_type())?;
            DataType::List(Arc::new(Field::new(f.name(), inner, true)))
        }
        DataType::Struct(fields) => {
            let mut converted = Vec::with_capacity(fields.len());
            for f in fields {
                converted.push(Field::new(f.name(), delta_type(f.data_type())?, true));
            }
            DataType::Struct(converted.into())
        }
        DataType::Time32(_)
        | DataType::Time64(_)
        | DataType::Duration(_)
        | DataType::Interval(_)
        | DataType::Union(..)
        | DataType::Dictionary(..)
        | DataType::RunEndEncoded(..) => return None,
        other => other.clone(),
    })
}

#[async_trait]
impl TableProvider for ManagedTable {
    fn schema(&self) -> SchemaRef {
        self.provider().schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let context = |e| DataFusionError::Context(format!("table '{}'", self.name), Box::new(e));
        if self.dropped.load(Ordering::Acquire) {
            return Err(DataFusionError::Plan(format!(
                "table '{}' was dropped after this statement was prepared",
                self.name
            )));
        }
        if let Some(batches) = self.cached_batches(state).await.map_err(context)? {
            let partitions = state.config().target_partitions();
            return memory_scan(&batches, self.schema(), projection, limit, partitions);
        }
        let provider = self.provider();
        provider
            .scan(state, projection, filters, limit)
            .await
            .map_err(context)
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DFResult<Vec<TableProviderFilterPushDown>> {
        let mut support = self.provider().supports_filters_pushdown(filters)?;
        if self.cache.is_some() {
            // A scan from the cache does not filter: keep every filter above it.
            for s in &mut support {
                if *s == TableProviderFilterPushDown::Exact {
                    *s = TableProviderFilterPushDown::Inexact;
                }
            }
        }
        Ok(support)
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: datafusion::logical_expr::dml::InsertOp,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        // Writes must swap the readers' snapshot after the commit; the engine does that.
        Err(DataFusionError::Plan(format!(
            "table '{}' is written through martdb's Engine, not a bare SessionContext",
            self.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_types_cover_query_results() {
        assert_eq!(delta_type(&DataType::UInt64), Some(DataType::Int64));
        assert_eq!(
            delta_type(&DataType::Timestamp(TimeUnit::Nanosecond, None)),
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        );
        assert_eq!(delta_type(&DataType::Utf8View), Some(DataType::Utf8));
        assert_eq!(
            delta_type(&DataType::Interval(
                datafusion::arrow::datatypes::IntervalUnit::DayTime
            )),
            None
        );
    }

    #[test]
    fn percent_decoding_of_delta_paths() {
        assert_eq!(
            percent_decode("part-0001%20a.parquet"),
            "part-0001 a.parquet"
        );
        assert_eq!(percent_decode("a+b.parquet"), "a+b.parquet");
    }
}

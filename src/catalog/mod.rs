//! The persistent catalog: schemas, managed tables, external tables and views.
//!
//! Definitions are records in the state store (one redb table); managed tables' data is in
//! Delta tables under the data directory; Parquet files dropped into the data directory
//! are found on demand ([`data_dir`]). On open, records are replayed in creation order.
//!
//! Invariants:
//! - a managed table's data is written (and durable) before its record is committed, so a
//!   record always points at a readable table;
//! - dropping a managed table commits "record gone + directory pending deletion" in one
//!   transaction, then deletes the directory; pending deletions are finished on open, so a
//!   crash never resurrects a dropped table;
//! - a record that fails to replay (a view over a missing table, an external table whose
//!   files are gone) is kept and reported, never silently deleted.

pub(crate) mod audiences;
mod cache;
mod computed;
pub(crate) mod coupons;
mod data_dir;
pub(crate) mod id_dictionary;
pub(crate) mod identity;
mod managed;
pub(crate) mod masking;
pub(crate) mod models;
pub(crate) mod pg_overlay;
pub(crate) mod rules;
mod system;

pub(crate) use computed::ComputedExec;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::common::TableReference;
use datafusion::datasource::TableProvider;
use datafusion::execution::context::SessionState;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{
    CreateMemoryTable, DropCatalogSchema, DropTable, DropView, LogicalPlan,
};
use datafusion::prelude::SessionContext;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use url::Url;

pub use cache::TableCache;
pub use managed::ManagedTable;

use crate::storage::Storage;
use data_dir::DataDirSchema;

/// The catalog name martdb registers with DataFusion.
pub const CATALOG_NAME: &str = "martdb";
/// The default schema.
pub const DEFAULT_SCHEMA: &str = "public";
/// The schema of martdb's system tables.
pub const SYSTEM_SCHEMA: &str = "martdb";

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("catalog_records");
const PENDING_DROPS: TableDefinition<&str, ()> = TableDefinition::new("catalog_pending_drops");

/// Errors of catalog operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("table '{name}' already exists")]
    TableExists { name: String },
    #[error("table '{name}' does not exist")]
    TableNotFound { name: String },
    #[error("schema '{name}' already exists")]
    SchemaExists { name: String },
    #[error("schema '{name}' does not exist")]
    SchemaNotFound { name: String },
    #[error("schema '{name}' is not empty (use DROP SCHEMA {name} CASCADE)")]
    SchemaNotEmpty { name: String },
    #[error("table '{name}' is {what}: it cannot be written by martdb")]
    ReadOnly { name: String, what: &'static str },
    #[error("'{name}' is {actual}, not {expected}")]
    WrongKind {
        name: String,
        actual: &'static str,
        expected: &'static str,
    },
    #[error("table '{table}': column '{column}' has type {data_type}, which tables cannot store")]
    UnsupportedType {
        table: String,
        column: String,
        data_type: String,
    },
    #[error("table '{table}': {message}")]
    Delta { table: String, message: String },
    #[error("table '{table}': {source}")]
    Query {
        table: String,
        #[source]
        source: datafusion::error::DataFusionError,
    },
    #[error("catalog metadata: {0}")]
    Metadata(String),
}

/// What a catalog record defines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Definition {
    Schema,
    Managed {
        location: String,
    },
    /// The `CREATE EXTERNAL TABLE` statement, replayed on open.
    External {
        sql: String,
    },
    /// The `CREATE VIEW` statement, replayed on open.
    View {
        sql: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    seq: u64,
    schema: String,
    name: String,
    definition: Definition,
}

fn record_key(schema: &str, name: Option<&str>) -> String {
    match name {
        None => format!("schema\u{0}{schema}"),
        Some(name) => format!("object\u{0}{schema}\u{0}{name}"),
    }
}

/// The catalog of one engine. Cheap to clone.
#[derive(Clone)]
pub struct Catalog {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<Storage>,
    cache: Arc<TableCache>,
    provider: Arc<MemoryCatalogProvider>,
    public: Arc<DataDirSchema>,
    /// Names of schemas other than `public`: their folders are not tables.
    schema_names: Arc<RwLock<Vec<String>>>,
    next_seq: AtomicU64,
    /// Problems met while replaying the catalog, kept for `martdb.catalog_warnings`-style
    /// reporting and logged on open.
    warnings: RwLock<Vec<String>>,
}

/// A resolved `schema.table` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QualifiedName {
    pub schema: String,
    pub table: String,
}

impl std::fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.schema == DEFAULT_SCHEMA {
            f.write_str(&self.table)
        } else {
            write!(f, "{}.{}", self.schema, self.table)
        }
    }
}

impl Catalog {
    /// Builds the catalog over `storage` and registers it as the default catalog of `ctx`.
    /// Call [`Catalog::restore`] afterwards to replay persisted definitions.
    /// With masking rules in `privacy`, the catalog registered in `ctx` applies them
    /// ([`masking`]).
    pub fn new(
        storage: Arc<Storage>,
        cache: Arc<TableCache>,
        ctx: &SessionContext,
        privacy: &crate::privacy::PrivacyOptions,
    ) -> Self {
        let schema_names = Arc::new(RwLock::new(Vec::new()));
        let public = Arc::new(DataDirSchema::new(
            storage.local_root().map(|p| p.to_path_buf()),
            schema_names.clone(),
            ctx.state(),
        ));
        let provider = Arc::new(MemoryCatalogProvider::new());
        provider
            .register_schema(DEFAULT_SCHEMA, public.clone())
            .expect("MemoryCatalogProvider::register_schema cannot fail");
        let inner = Arc::new(Inner {
            storage,
            cache,
            provider: provider.clone(),
            public,
            schema_names,
            next_seq: AtomicU64::new(1),
            warnings: RwLock::default(),
        });
        let system = Arc::new(MemorySchemaProvider::new());
        for (name, table) in system::tables(Arc::downgrade(&inner)) {
            system
                .register_table(name.into(), table)
                .expect("system::tables names each table once, into a new empty schema");
        }
        provider
            .register_schema(SYSTEM_SCHEMA, system)
            .expect("MemoryCatalogProvider::register_schema cannot fail");
        if privacy.masking.is_empty() {
            ctx.register_catalog(CATALOG_NAME, provider);
        } else {
            ctx.register_catalog(
                CATALOG_NAME,
                Arc::new(masking::PolicyCatalog::new(
                    provider,
                    privacy.masking.clone(),
                    privacy.hash_keys.clone(),
                )),
            );
        }
        Catalog { inner }
    }

    /// Finishes interrupted drops and replays every persisted definition into `ctx`.
    pub async fn restore(&self, ctx: &SessionContext) -> crate::Result<()> {
        self.finish_pending_drops().await?;
        let mut records = self.records()?;
        records.sort_by_key(|r| r.seq);
        let max_seq = records.iter().map(|r| r.seq).max().unwrap_or(0);
        self.inner.next_seq.store(max_seq + 1, Ordering::SeqCst);
        for record in records {
            let name = QualifiedName {
                schema: record.schema.clone(),
                table: record.name.clone(),
            };
            let outcome: crate::Result<()> = match &record.definition {
                Definition::Schema => {
                    self.add_schema(&record.schema);
                    Ok(())
                }
                Definition::Managed { location } => match Url::parse(location) {
                    Ok(url) => match ManagedTable::open(&name.to_string(), &url).await {
                        Ok(table) => self
                            .register(&name, Arc::new(table.with_cache(self.inner.cache.clone()))),
                        Err(e) => Err(e.into()),
                    },
                    Err(e) => Err(CatalogError::Metadata(format!("bad location: {e}")).into()),
                },
                Definition::External { sql } | Definition::View { sql } => {
                    ctx.sql(sql).await.map(|_| ()).map_err(Into::into)
                }
            };
            if let Err(e) = outcome {
                let warning = format!("could not restore '{name}': {e}");
                tracing::warn!("{warning}");
                self.inner
                    .warnings
                    .write()
                    .expect(crate::LOCK_POISONED)
                    .push(warning);
            }
        }
        Ok(())
    }

    /// Problems met while restoring the catalog on open.
    pub fn warnings(&self) -> Vec<String> {
        self.inner
            .warnings
            .read()
            .expect(crate::LOCK_POISONED)
            .clone()
    }

    fn add_schema(&self, schema: &str) {
        if self.inner.provider.schema(schema).is_none() {
            let _ = self
                .inner
                .provider
                .register_schema(schema, Arc::new(MemorySchemaProvider::new()));
        }
        let mut names = self.inner.schema_names.write().expect(crate::LOCK_POISONED);
        if !names.iter().any(|s| s == schema) {
            names.push(schema.to_string());
        }
    }

    fn schema_provider(&self, schema: &str) -> Result<Arc<dyn SchemaProvider>, CatalogError> {
        self.inner
            .provider
            .schema(schema)
            .ok_or_else(|| CatalogError::SchemaNotFound {
                name: schema.to_string(),
            })
    }

    fn register(&self, name: &QualifiedName, table: Arc<dyn TableProvider>) -> crate::Result<()> {
        self.schema_provider(&name.schema)?
            .register_table(name.table.clone(), table)?;
        self.inner.cache.bump();
        Ok(())
    }

    /// Grows with every commit and catalog change; see [`TableCache`].
    pub(crate) fn data_generation(&self) -> u64 {
        self.inner.cache.generation()
    }

    pub(crate) fn resolve(&self, reference: &TableReference) -> QualifiedName {
        QualifiedName {
            schema: reference.schema().unwrap_or(DEFAULT_SCHEMA).to_string(),
            table: reference.table().to_string(),
        }
    }

    async fn lookup(&self, name: &QualifiedName) -> crate::Result<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .schema_provider(&name.schema)?
            .table(&name.table)
            .await?)
    }

    /// The managed table `reference` names, or an error saying why it cannot be written.
    pub(crate) async fn managed(
        &self,
        reference: &TableReference,
    ) -> crate::Result<Arc<dyn TableProvider>> {
        let name = self.resolve(reference);
        let table = self
            .lookup(&name)
            .await?
            .ok_or_else(|| CatalogError::TableNotFound {
                name: name.to_string(),
            })?;
        if table.downcast_ref::<ManagedTable>().is_some() {
            return Ok(table);
        }
        Err(match self.kind_of(&name, table.as_ref()) {
            "view" => CatalogError::WrongKind {
                name: name.to_string(),
                actual: "a view",
                expected: "a table",
            },
            "external" => CatalogError::ReadOnly {
                name: name.to_string(),
                what: "an external table",
            },
            _ => CatalogError::ReadOnly {
                name: name.to_string(),
                what: "a Parquet file in the data directory",
            },
        }
        .into())
    }

    /// How a table is defined: `managed`, `external`, `view` or `file` (discovered).
    fn kind_of(&self, name: &QualifiedName, table: &dyn TableProvider) -> &'static str {
        // Files found in the data directory (a Delta folder included) belong to the analyst.
        if name.schema == DEFAULT_SCHEMA
            && self.inner.public.discovered_source(&name.table).is_some()
        {
            return "file";
        }
        if table.downcast_ref::<ManagedTable>().is_some() {
            "managed"
        } else if table.table_type() == datafusion::datasource::TableType::View {
            "view"
        } else {
            "external"
        }
    }

    // ---- statements ---------------------------------------------------------------

    /// `CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t (...)` and `CREATE TABLE t AS SELECT`.
    /// Returns the number of rows written.
    pub(crate) async fn create_table(
        &self,
        state: &SessionState,
        create: &CreateMemoryTable,
    ) -> crate::Result<u64> {
        let name = self.resolve(&create.name);
        if !create.column_defaults.is_empty() {
            return Err(crate::Error::Unsupported(format!(
                "table '{name}': DEFAULT column values are not supported yet"
            )));
        }
        let schema = self.schema_provider(&name.schema)?;
        if let Some(existing) = schema.table(&name.table).await? {
            if create.if_not_exists {
                return Ok(0);
            }
            if create.or_replace
                && let Some(managed) = existing.downcast_ref::<ManagedTable>()
            {
                return Ok(managed.write((*create.input).clone(), state, true).await?);
            }
            return Err(CatalogError::TableExists {
                name: name.to_string(),
            }
            .into());
        }
        self.refuse_shared_directory(&name.schema, Some(&name.table))?;
        let url = self.inner.storage.checked_table_url(
            (name.schema != DEFAULT_SCHEMA).then_some(name.schema.as_str()),
            &name.table,
        )?;
        if name.schema != DEFAULT_SCHEMA {
            // A directory without a record is what a crash between writing the table and
            // committing its record leaves behind; nothing references it.
            self.inner.storage.remove_dir(&url).await?;
        }
        let (table, rows) =
            ManagedTable::create(&name.to_string(), &url, (*create.input).clone(), state).await?;
        self.put_record(
            &name.schema,
            Some(&name.table),
            Definition::Managed {
                location: url.to_string(),
            },
        )?;
        self.register(&name, Arc::new(table.with_cache(self.inner.cache.clone())))?;
        Ok(rows)
    }

    /// `INSERT INTO t ...` / `INSERT OVERWRITE t ...` into a managed table.
    pub(crate) async fn insert(
        &self,
        state: &SessionState,
        table: &TableReference,
        op: InsertOp,
        input: &LogicalPlan,
    ) -> crate::Result<u64> {
        let provider = self.managed(table).await?;
        let managed = provider
            .downcast_ref::<ManagedTable>()
            .expect("managed() returns only providers that are a ManagedTable");
        let overwrite = match op {
            InsertOp::Append => false,
            InsertOp::Overwrite => true,
            InsertOp::Replace => {
                return Err(crate::Error::Unsupported(
                    "REPLACE INTO is not supported".into(),
                ));
            }
        };
        Ok(managed.write(input.clone(), state, overwrite).await?)
    }

    /// `DROP TABLE [IF EXISTS] t`.
    pub(crate) async fn drop_table(&self, drop: &DropTable) -> crate::Result<()> {
        let name = self.resolve(&drop.name);
        self.drop_object(&name, drop.if_exists, false).await
    }

    /// `DROP VIEW [IF EXISTS] v`.
    pub(crate) async fn drop_view(&self, drop: &DropView) -> crate::Result<()> {
        let name = self.resolve(&drop.name);
        self.drop_object(&name, drop.if_exists, true).await
    }

    async fn drop_object(
        &self,
        name: &QualifiedName,
        if_exists: bool,
        view: bool,
    ) -> crate::Result<()> {
        let key = record_key(&name.schema, Some(&name.table));
        let record = self.record(&key)?;
        let provider = match self.inner.provider.schema(&name.schema) {
            Some(schema) => schema.table(&name.table).await.ok().flatten(),
            None => None,
        };
        let Some(provider) = provider else {
            if let Some(record) = record {
                // A record that could not be restored: dropping it is how users clear it.
                self.delete_record(&key, pending_location(&record.definition))?;
                return Ok(());
            }
            if if_exists {
                return Ok(());
            }
            return Err(CatalogError::TableNotFound {
                name: name.to_string(),
            }
            .into());
        };
        let kind = self.kind_of(name, provider.as_ref());
        match (kind, view) {
            ("view", false) => {
                return Err(CatalogError::WrongKind {
                    name: name.to_string(),
                    actual: "a view",
                    expected: "a table (use DROP VIEW)",
                }
                .into());
            }
            ("view", true) => {}
            (_, true) => {
                return Err(CatalogError::WrongKind {
                    name: name.to_string(),
                    actual: "a table",
                    expected: "a view (use DROP TABLE)",
                }
                .into());
            }
            ("file", false) => {
                return Err(CatalogError::ReadOnly {
                    name: name.to_string(),
                    what: "a Parquet file in the data directory (delete the file to drop it)",
                }
                .into());
            }
            _ => {}
        }
        let pending = record
            .as_ref()
            .and_then(|r| pending_location(&r.definition));
        self.delete_record(&key, pending.clone())?;
        self.schema_provider(&name.schema)?
            .deregister_table(&name.table)?;
        if let Some(managed) = provider.downcast_ref::<ManagedTable>() {
            managed.mark_dropped();
        }
        self.inner.cache.bump();
        if let Some(location) = pending {
            self.remove_table_data(&location).await?;
        }
        Ok(())
    }

    /// `CREATE SCHEMA` after DataFusion registered it: make it persistent.
    pub(crate) fn schema_created(&self, schema: &str) -> crate::Result<()> {
        self.add_schema(schema);
        self.put_record(schema, None, Definition::Schema)
    }

    /// A table of the default schema and a schema of the same name would share the
    /// directory `<root>/<name>/`, and dropping one would delete the other's data: the
    /// error for creating table `table` (or, with `None`, schema `schema`) when that
    /// would make such a pair.
    pub(crate) fn refuse_shared_directory(
        &self,
        schema: &str,
        table: Option<&str>,
    ) -> crate::Result<()> {
        let (directory, taken) = match table {
            Some(table) if schema == DEFAULT_SCHEMA => (
                table,
                table != DEFAULT_SCHEMA && table != SYSTEM_SCHEMA && self.has_schema(table),
            ),
            _ if schema == DEFAULT_SCHEMA || schema == SYSTEM_SCHEMA => return Ok(()),
            _ => (
                schema,
                self.schema_provider(DEFAULT_SCHEMA)?.table_exist(schema),
            ),
        };
        if taken {
            return Err(crate::storage::StorageError::BadLocation {
                location: format!("{directory}/"),
                reason: format!(
                    "a table of the default schema and a schema both named '{directory}' \
                     would share this directory; rename one"
                ),
            }
            .into());
        }
        Ok(())
    }

    /// Fails unless `schema` exists (for `CREATE SCHEMA IF NOT EXISTS` checks).
    pub(crate) fn has_schema(&self, schema: &str) -> bool {
        self.inner.provider.schema(schema).is_some()
    }

    /// `DROP SCHEMA [IF EXISTS] s [CASCADE]`.
    pub(crate) async fn drop_schema(&self, drop: &DropCatalogSchema) -> crate::Result<()> {
        let schema = drop.name.schema_name().to_string();
        if schema == DEFAULT_SCHEMA || schema == SYSTEM_SCHEMA {
            return Err(crate::Error::Unsupported(format!(
                "schema '{schema}' cannot be dropped"
            )));
        }
        let Some(provider) = self.inner.provider.schema(&schema) else {
            if drop.if_exists {
                return Ok(());
            }
            return Err(CatalogError::SchemaNotFound { name: schema }.into());
        };
        let names = provider.table_names();
        if !names.is_empty() && !drop.cascade {
            return Err(CatalogError::SchemaNotEmpty { name: schema }.into());
        }
        for table in names {
            let name = QualifiedName {
                schema: schema.clone(),
                table,
            };
            let is_view = provider
                .table(&name.table)
                .await?
                .is_some_and(|t| t.table_type() == datafusion::datasource::TableType::View);
            self.drop_object(&name, true, is_view).await?;
        }
        self.delete_record(&record_key(&schema, None), None)?;
        self.inner.provider.deregister_schema(&schema, true)?;
        self.inner
            .schema_names
            .write()
            .expect(crate::LOCK_POISONED)
            .retain(|s| s != &schema);
        Ok(())
    }

    /// `CREATE EXTERNAL TABLE` / `CREATE VIEW` after DataFusion registered it: persist the
    /// statement so that it is replayed on open.
    pub(crate) fn object_created(
        &self,
        reference: &TableReference,
        sql: String,
        view: bool,
    ) -> crate::Result<()> {
        let name = self.resolve(reference);
        let definition = if view {
            Definition::View { sql }
        } else {
            Definition::External { sql }
        };
        self.put_record(&name.schema, Some(&name.table), definition)
    }

    // ---- persistence --------------------------------------------------------------

    fn records(&self) -> crate::Result<Vec<Record>> {
        let storage = &self.inner.storage;
        let txn = storage.kv().begin_read().map_err(|e| storage.kv_error(e))?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage.kv_error(e).into()),
        };
        let mut records = Vec::new();
        for entry in table.iter().map_err(|e| storage.kv_error(e))? {
            let (_, value) = entry.map_err(|e| storage.kv_error(e))?;
            let record: Record = serde_json::from_slice(value.value())
                .map_err(|e| CatalogError::Metadata(format!("unreadable catalog record: {e}")))?;
            records.push(record);
        }
        Ok(records)
    }

    fn record(&self, key: &str) -> crate::Result<Option<Record>> {
        let storage = &self.inner.storage;
        let txn = storage.kv().begin_read().map_err(|e| storage.kv_error(e))?;
        let table = match txn.open_table(RECORDS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage.kv_error(e).into()),
        };
        let Some(value) = table.get(key).map_err(|e| storage.kv_error(e))? else {
            return Ok(None);
        };
        let record = serde_json::from_slice(value.value())
            .map_err(|e| CatalogError::Metadata(format!("unreadable catalog record: {e}")))?;
        Ok(Some(record))
    }

    fn put_record(
        &self,
        schema: &str,
        name: Option<&str>,
        definition: Definition,
    ) -> crate::Result<()> {
        let storage = &self.inner.storage;
        let key = record_key(schema, name);
        // Replacing a definition keeps its place in the replay order.
        let seq = match self.record(&key)? {
            Some(existing) => existing.seq,
            None => self.inner.next_seq.fetch_add(1, Ordering::SeqCst),
        };
        let record = Record {
            seq,
            schema: schema.to_string(),
            name: name.unwrap_or_default().to_string(),
            definition,
        };
        let bytes = serde_json::to_vec(&record).expect(
            "Record derives Serialize over strings and integers only: serde_json cannot fail",
        );
        let txn = storage
            .kv()
            .begin_write()
            .map_err(|e| storage.kv_error(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| storage.kv_error(e))?;
            table
                .insert(key.as_str(), bytes.as_slice())
                .map_err(|e| storage.kv_error(e))?;
        }
        txn.commit().map_err(|e| storage.kv_error(e))?;
        self.inner.cache.bump();
        Ok(())
    }

    fn delete_record(&self, key: &str, pending_drop: Option<String>) -> crate::Result<()> {
        let storage = &self.inner.storage;
        let txn = storage
            .kv()
            .begin_write()
            .map_err(|e| storage.kv_error(e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| storage.kv_error(e))?;
            table.remove(key).map_err(|e| storage.kv_error(e))?;
            if let Some(location) = &pending_drop {
                let mut pending = txn
                    .open_table(PENDING_DROPS)
                    .map_err(|e| storage.kv_error(e))?;
                pending
                    .insert(location.as_str(), ())
                    .map_err(|e| storage.kv_error(e))?;
            }
        }
        txn.commit().map_err(|e| storage.kv_error(e))?;
        Ok(())
    }

    async fn remove_table_data(&self, location: &str) -> crate::Result<()> {
        let storage = &self.inner.storage;
        let url = Url::parse(location)
            .map_err(|e| CatalogError::Metadata(format!("bad location: {e}")))?;
        storage.remove_dir(&url).await?;
        let txn = storage
            .kv()
            .begin_write()
            .map_err(|e| storage.kv_error(e))?;
        {
            let mut pending = txn
                .open_table(PENDING_DROPS)
                .map_err(|e| storage.kv_error(e))?;
            pending.remove(location).map_err(|e| storage.kv_error(e))?;
        }
        txn.commit().map_err(|e| storage.kv_error(e))?;
        Ok(())
    }

    async fn finish_pending_drops(&self) -> crate::Result<()> {
        let storage = &self.inner.storage;
        let locations: Vec<String> = {
            let txn = storage.kv().begin_read().map_err(|e| storage.kv_error(e))?;
            match txn.open_table(PENDING_DROPS) {
                Ok(table) => table
                    .iter()
                    .map_err(|e| storage.kv_error(e))?
                    .filter_map(|entry| entry.ok().map(|(k, _)| k.value().to_string()))
                    .collect(),
                Err(redb::TableError::TableDoesNotExist(_)) => Vec::new(),
                Err(e) => return Err(storage.kv_error(e).into()),
            }
        };
        for location in locations {
            self.remove_table_data(&location).await?;
        }
        Ok(())
    }
}

fn pending_location(definition: &Definition) -> Option<String> {
    match definition {
        Definition::Managed { location } => Some(location.clone()),
        _ => None,
    }
}

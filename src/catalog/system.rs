//! System tables in the `martdb` schema.
//!
//! - `martdb.tables`: every table and view with its kind, location and Delta version;
//! - `martdb.table_files`: the Parquet files of each managed table's current version, which
//!   is what another engine (DuckDB's `read_parquet`, pyarrow) must read to see exactly the
//!   rows martdb sees.
//!
//! Rows are computed when a query scans the table, so they are always current.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, Session};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::{Catalog, Inner, ManagedTable, QualifiedName, SYSTEM_SCHEMA};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Tables,
    TableFiles,
}

struct SystemTable {
    kind: Kind,
    schema: SchemaRef,
    catalog: Weak<Inner>,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SystemTable({:?})", self.kind)
    }
}

pub(super) fn tables(catalog: Weak<Inner>) -> Vec<(&'static str, Arc<dyn TableProvider>)> {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let tables = Schema::new(vec![
        text("table_schema", false),
        text("table_name", false),
        text("kind", false),
        text("location", true),
        Field::new("version", DataType::Int64, true),
        Field::new("files", DataType::Int64, true),
    ]);
    let files = Schema::new(vec![
        text("table_schema", false),
        text("table_name", false),
        text("path", false),
    ]);
    vec![
        (
            "tables",
            Arc::new(SystemTable {
                kind: Kind::Tables,
                schema: Arc::new(tables),
                catalog: catalog.clone(),
            }) as _,
        ),
        (
            "table_files",
            Arc::new(SystemTable {
                kind: Kind::TableFiles,
                schema: Arc::new(files),
                catalog,
            }) as _,
        ),
    ]
}

impl SystemTable {
    async fn rows(&self) -> DFResult<RecordBatch> {
        let inner = self
            .catalog
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the engine was closed".into()))?;
        let catalog = Catalog { inner };
        let mut schema_names = catalog.inner.provider.schema_names();
        schema_names.sort();
        let mut schemas = StringBuilder::new();
        let mut names = StringBuilder::new();
        let mut kinds = StringBuilder::new();
        let mut locations = StringBuilder::new();
        let mut versions = Int64Builder::new();
        let mut file_counts = Int64Builder::new();
        let mut paths = StringBuilder::new();
        // martdb.* and the PostgreSQL catalog emulation describe tables; they are not user data.
        for schema_name in schema_names
            .iter()
            .filter(|s| *s != SYSTEM_SCHEMA && *s != "pg_catalog")
        {
            let Some(schema) = catalog.inner.provider.schema(schema_name) else {
                continue;
            };
            let mut table_names = schema.table_names();
            table_names.sort();
            for table_name in table_names {
                let name = QualifiedName {
                    schema: schema_name.clone(),
                    table: table_name,
                };
                // A table whose files are unreadable still gets a row in `martdb.tables`.
                let provider = schema.table(&name.table).await.ok().flatten();
                let managed = provider
                    .as_ref()
                    .and_then(|p| p.downcast_ref::<ManagedTable>());
                match self.kind {
                    Kind::Tables => {
                        schemas.append_value(&name.schema);
                        names.append_value(&name.table);
                        let kind = match &provider {
                            Some(p) => catalog.kind_of(&name, p.as_ref()),
                            None => "unreadable",
                        };
                        kinds.append_value(kind);
                        let location = match managed {
                            Some(m) => Some(m.url().to_string()),
                            None if kind == "file" => catalog
                                .inner
                                .public
                                .discovered_source(&name.table)
                                .map(|found| format!("{found:?}")),
                            None => None,
                        };
                        locations.append_option(location);
                        versions.append_option(managed.map(|m| m.version()));
                        file_counts.append_option(
                            managed
                                .and_then(|m| m.file_uris().ok())
                                .map(|f| f.len() as i64),
                        );
                    }
                    Kind::TableFiles => {
                        for uri in managed.and_then(|m| m.file_uris().ok()).unwrap_or_default() {
                            schemas.append_value(&name.schema);
                            names.append_value(&name.table);
                            paths.append_value(uri);
                        }
                    }
                }
            }
        }
        let columns: Vec<ArrayRef> = match self.kind {
            Kind::Tables => vec![
                Arc::new(schemas.finish()),
                Arc::new(names.finish()),
                Arc::new(kinds.finish()),
                Arc::new(locations.finish()),
                Arc::new(versions.finish()),
                Arc::new(file_counts.finish()),
            ],
            Kind::TableFiles => vec![
                Arc::new(schemas.finish()),
                Arc::new(names.finish()),
                Arc::new(paths.finish()),
            ],
        };
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let batch = self.rows().await?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

//! Tables of `pg_catalog` that martdb answers in front of the catalog emulation's:
//! - `pg_index`: martdb has no indexes, so it is empty. The emulation's copy lists a
//!   PostgreSQL server's own system indexes with the vector columns (`indkey`,
//!   `indclass`...) as text; clients `unnest` those columns (SQLAlchemy's primary-key
//!   reflection, pgjdbc's `getPrimaryKeys` through `_pg_expandarray`), which needs arrays.
//! - `pg_class`: the emulation's, plus the `reloptions` column it lacks (SQLAlchemy's
//!   index reflection reads it), NULL as for a relation with no storage parameters.
//!
//! Every other table of the schema is the emulation's.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{MemTable, SchemaProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableProvider;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
use datafusion::prelude::{SessionContext, wildcard};

const SCHEMA: &str = "pg_catalog";

/// Puts martdb's `pg_index` and `pg_class` in front of the emulation's in `catalog`.
pub(crate) async fn install(ctx: &SessionContext, catalog: &str) -> Result<()> {
    let catalog_provider = ctx
        .catalog(catalog)
        .ok_or_else(|| DataFusionError::Plan(format!("no catalog {catalog}")))?;
    let Some(inner) = catalog_provider.schema(SCHEMA) else {
        return Ok(());
    };
    let Some(emulated) = inner.table("pg_index").await? else {
        return Ok(());
    };
    let fields: Vec<Field> = emulated
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let element = match f.name().as_str() {
                "indkey" | "indoption" => Some(DataType::Int16),
                "indcollation" | "indclass" => Some(DataType::Int32),
                _ => None,
            };
            match element {
                Some(element) => Field::new(f.name(), DataType::new_list(element, true), true),
                None => f.as_ref().clone(),
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let pg_index: Arc<dyn TableProvider> = Arc::new(MemTable::try_new(schema, vec![vec![]])?);
    let mut tables = HashMap::from([("pg_index".to_string(), pg_index)]);
    if let Some(pg_class) = inner.table("pg_class").await?
        && pg_class.schema().field_with_name("reloptions").is_err()
    {
        // `reloptions` (storage parameters, text[]): none for any martdb relation.
        let plan = LogicalPlanBuilder::scan("pg_class", provider_as_source(pg_class), None)?
            .project(vec![
                wildcard(),
                Expr::Literal(
                    ScalarValue::try_from(DataType::new_list(DataType::Utf8, true))?,
                    None,
                )
                .alias("reloptions")
                .into(),
            ])?
            .build()?;
        tables.insert(
            "pg_class".to_string(),
            Arc::new(ViewTable::new(plan, None)) as Arc<dyn TableProvider>,
        );
    }
    let overlay = Overlay { inner, tables };
    catalog_provider.register_schema(SCHEMA, Arc::new(overlay))?;
    Ok(())
}

/// A schema whose `tables` stand in front of `inner`'s of the same name.
#[derive(Debug)]
struct Overlay {
    inner: Arc<dyn SchemaProvider>,
    tables: HashMap<String, Arc<dyn TableProvider>>,
}

#[async_trait]
impl SchemaProvider for Overlay {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.inner.table_names();
        names.extend(
            self.tables
                .keys()
                .filter(|name| !self.inner.table_exist(name))
                .cloned(),
        );
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.tables.get(name) {
            Some(table) => Ok(Some(table.clone())),
            None => self.inner.table(name).await,
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.inner.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.inner.table_exist(name)
    }
}

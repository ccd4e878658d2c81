//! Column masking policies at scan time ([`crate::privacy`]).
//!
//! With masking rules configured, the engine's catalog is wrapped: a table that has rules
//! is served as a [`PolicyTable`], which scans the real table and, for a session whose
//! role a rule names (`martdb.role`, set by the server from the user's role), replaces
//! the column by its masked form right above the scan. Because the wrapper is what the
//! catalog hands out, views and subqueries over the table are masked the same way.
//!
//! Invariants:
//! - a masked session never sees a real value of a masked column: the projection sits
//!   directly on the scan, and filters that mention a masked column are not pushed into
//!   the scan, so they compare the masked value and cannot probe the real one;
//! - masked columns keep their type and are declared nullable, so the plan's schema is
//!   the same for every role;
//! - a table without rules is handed out unchanged.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF, TableProviderFilterPushDown};
use datafusion::physical_expr::ScalarFunctionExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::privacy::{HashKeys, Masking, MaskingRule, PrivacyError};
use crate::udf::privacy::masked_column::MaskedColumn;

/// The role of the session planning a query (`martdb.role`).
fn session_role(state: &dyn Session) -> String {
    state
        .config_options()
        .extensions
        .get::<crate::udf::ml::MartdbOptions>()
        .map_or_else(|| "admin".to_string(), |o| o.role.clone())
}

/// The catalog with masking rules applied to its tables.
#[derive(Debug)]
pub(crate) struct PolicyCatalog {
    inner: Arc<dyn CatalogProvider>,
    rules: Arc<Vec<MaskingRule>>,
    keys: HashKeys,
}

impl PolicyCatalog {
    pub(crate) fn new(
        inner: Arc<dyn CatalogProvider>,
        rules: Vec<MaskingRule>,
        keys: HashKeys,
    ) -> Self {
        PolicyCatalog {
            inner,
            rules: Arc::new(rules),
            keys,
        }
    }
}

impl CatalogProvider for PolicyCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.inner.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let inner = self.inner.schema(name)?;
        if !self.rules.iter().any(|r| r.schema == name) {
            return Some(inner);
        }
        Some(Arc::new(PolicySchema {
            name: name.to_string(),
            inner,
            rules: self.rules.clone(),
            keys: self.keys.clone(),
        }))
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.register_schema(name, schema)
    }

    fn deregister_schema(
        &self,
        name: &str,
        cascade: bool,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        self.inner.deregister_schema(name, cascade)
    }
}

#[derive(Debug)]
struct PolicySchema {
    name: String,
    inner: Arc<dyn SchemaProvider>,
    rules: Arc<Vec<MaskingRule>>,
    keys: HashKeys,
}

#[async_trait]
impl SchemaProvider for PolicySchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.inner.table(name).await? else {
            return Ok(None);
        };
        let rules: Vec<MaskingRule> = self
            .rules
            .iter()
            .filter(|r| r.schema == self.name && r.table == name)
            .cloned()
            .collect();
        if rules.is_empty() {
            return Ok(Some(table));
        }
        Ok(Some(Arc::new(PolicyTable::new(
            table,
            rules,
            self.keys.clone(),
        )?)))
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
        self.inner.table_exist(name)
    }
}

/// A table with masking rules; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct PolicyTable {
    inner: Arc<dyn TableProvider>,
    schema: SchemaRef,
    /// (column index, masking, roles).
    masked: Vec<(usize, Masking, Vec<String>)>,
    keys: HashKeys,
}

impl PolicyTable {
    fn new(
        inner: Arc<dyn TableProvider>,
        rules: Vec<MaskingRule>,
        keys: HashKeys,
    ) -> Result<PolicyTable> {
        let real = inner.schema();
        let mut fields: Vec<Field> = real.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut masked = Vec::new();
        for rule in rules {
            let bad = |reason: String| {
                DataFusionError::External(Box::new(PrivacyError::BadPolicy {
                    table: format!("{}.{}", rule.schema, rule.table),
                    column: rule.column.clone(),
                    reason,
                }))
            };
            let Ok(index) = real.index_of(&rule.column) else {
                return Err(bad("the table has no such column".into()));
            };
            let text = matches!(
                real.field(index).data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            );
            if !text && rule.masking != Masking::Null {
                return Err(bad(format!(
                    "the column is {}, not text: only null masking applies",
                    real.field(index).data_type()
                )));
            }
            fields[index] = fields[index].clone().with_nullable(true);
            masked.push((index, rule.masking, rule.roles));
        }
        let schema = Arc::new(Schema::new_with_metadata(fields, real.metadata().clone()));
        Ok(PolicyTable {
            inner,
            schema,
            masked,
            keys,
        })
    }

    /// Whether `filter` mentions a column masked for some role.
    fn touches_masked(&self, filter: &Expr) -> bool {
        filter.column_refs().iter().any(|column| {
            self.schema
                .index_of(&column.name)
                .is_ok_and(|index| self.masked.iter().any(|(masked, _, _)| *masked == index))
        })
    }
}

#[async_trait]
impl TableProvider for PolicyTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.inner.get_table_definition()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        // Never inlined: the scan below is where masking happens.
        None
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let mut answers = self.inner.supports_filters_pushdown(filters)?;
        for (answer, filter) in answers.iter_mut().zip(filters) {
            if self.touches_masked(filter) {
                *answer = TableProviderFilterPushDown::Unsupported;
            }
        }
        Ok(answers)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        let role = session_role(state);
        let masked_here: Vec<(usize, &Masking)> = self
            .masked
            .iter()
            .filter(|(_, _, roles)| roles.contains(&role))
            .map(|(index, masking, _)| (*index, masking))
            .collect();
        if masked_here.is_empty() {
            return Ok(plan);
        }
        // Output column i is table column projection[i].
        let table_column = |i: usize| projection.map_or(i, |p| p[i]);
        let input = plan.schema();
        let config = Arc::new(state.config_options().clone());
        let mut exprs = Vec::with_capacity(input.fields().len());
        for (i, field) in input.fields().iter().enumerate() {
            let column: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
                Arc::new(Column::new(field.name(), i));
            let expr = match masked_here
                .iter()
                .find(|(index, _)| *index == table_column(i))
            {
                Some((_, masking)) => {
                    let udf = Arc::new(ScalarUDF::new_from_impl(MaskedColumn::new(
                        (*masking).clone(),
                        self.keys.clone(),
                    )));
                    let return_field = Arc::new(field.as_ref().clone().with_nullable(true));
                    Arc::new(ScalarFunctionExpr::new(
                        "martdb_masked",
                        udf,
                        vec![column],
                        return_field,
                        config.clone(),
                    )) as _
                }
                None => column,
            };
            exprs.push((expr, field.name().clone()));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, plan)?))
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.insert_into(state, input, insert_op).await
    }
}

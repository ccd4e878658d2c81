//! Read-only tables whose rows are computed when a query scans them, so they are always
//! current: the views of state kept outside tables (`martdb.id_dictionary`,
//! `martdb.audiences`).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

type Rows = dyn Fn(SchemaRef) -> Result<RecordBatch> + Send + Sync;

pub struct ComputedTable {
    name: &'static str,
    schema: SchemaRef,
    rows: Box<Rows>,
}

impl ComputedTable {
    /// A table of `schema` whose rows `rows(schema)` computes at every scan.
    pub fn new(
        name: &'static str,
        schema: SchemaRef,
        rows: impl Fn(SchemaRef) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> Self {
        ComputedTable {
            name,
            schema,
            rows: Box::new(rows),
        }
    }
}

impl std::fmt::Debug for ComputedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ComputedTable({})", self.name)
    }
}

#[async_trait]
impl TableProvider for ComputedTable {
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
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.rows)(self.schema.clone())?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

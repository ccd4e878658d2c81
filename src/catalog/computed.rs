//! Read-only tables whose rows are computed when a query runs, so they are always
//! current: the views of state kept outside tables (`martdb.id_dictionary`,
//! `martdb.audiences`, `martdb.coupon_pools`...).
//!
//! Invariant: the rows are computed in [`ExecutionPlan::execute`], not while planning.
//! A physical plan kept across executions (a prepared statement's generic plan) reads
//! the state as it is at each execution; nothing about that state is frozen in the plan.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::memory::MemoryStream;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};

type Rows = dyn Fn(SchemaRef) -> Result<RecordBatch> + Send + Sync;

pub struct ComputedTable {
    name: &'static str,
    schema: SchemaRef,
    rows: Arc<Rows>,
}

impl ComputedTable {
    /// A table of `schema` whose rows `rows(schema)` computes at every execution.
    pub fn new(
        name: &'static str,
        schema: SchemaRef,
        rows: impl Fn(SchemaRef) -> Result<RecordBatch> + Send + Sync + 'static,
    ) -> Self {
        ComputedTable {
            name,
            schema,
            rows: Arc::new(rows),
        }
    }
}

impl fmt::Debug for ComputedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        let projected = match projection {
            Some(columns) => Arc::new(self.schema.project(columns)?),
            None => self.schema.clone(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(projected.clone()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(ComputedExec {
            name: self.name,
            schema: self.schema.clone(),
            rows: self.rows.clone(),
            projection: projection.cloned(),
            projected,
            properties: Arc::new(properties),
        }))
    }
}

/// The scan of a [`ComputedTable`]: computes its rows when executed.
pub(crate) struct ComputedExec {
    name: &'static str,
    schema: SchemaRef,
    rows: Arc<Rows>,
    projection: Option<Vec<usize>>,
    /// The schema of what it returns: `schema` with `projection` applied.
    projected: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for ComputedExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComputedExec({})", self.name)
    }
}

impl DisplayAs for ComputedExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "ComputedExec: table={}", self.name)
            }
            DisplayFormatType::TreeRender => write!(f, "table={}", self.name),
        }
    }
}

impl ExecutionPlan for ComputedExec {
    fn name(&self) -> &str {
        "ComputedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let batch = (self.rows)(self.schema.clone())?;
        Ok(Box::pin(MemoryStream::try_new(
            vec![batch],
            self.projected.clone(),
            self.projection.clone(),
        )?))
    }
}

//! `martdb.audiences`: the saved audiences (name, definition, cardinality, bytes,
//! refreshed_at), read when a query scans it. The members are `audience(name)`.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::bitmap::audiences::AudienceStore;

#[derive(Debug)]
pub struct AudiencesTable {
    store: AudienceStore,
    schema: SchemaRef,
}

impl AudiencesTable {
    pub fn new(store: AudienceStore) -> Self {
        AudiencesTable {
            store,
            schema: Arc::new(Schema::new(vec![
                Field::new("name", DataType::Utf8, false),
                Field::new("definition", DataType::Utf8, false),
                Field::new("cardinality", DataType::Int64, false),
                Field::new("bytes", DataType::Int64, false),
                Field::new(
                    "refreshed_at",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
            ])),
        }
    }
}

#[async_trait]
impl TableProvider for AudiencesTable {
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
        let infos = self
            .store
            .list()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(infos.iter().map(|i| &i.name))),
                Arc::new(StringArray::from_iter_values(
                    infos.iter().map(|i| &i.definition),
                )),
                Arc::new(Int64Array::from_iter_values(
                    infos.iter().map(|i| i.cardinality as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    infos.iter().map(|i| i.bytes as i64),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        infos.iter().map(|i| i.refreshed_at_micros),
                    )
                    .with_timezone("UTC"),
                ),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

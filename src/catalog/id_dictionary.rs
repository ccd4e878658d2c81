//! `martdb.id_dictionary`: the dense id dictionary as a table (namespace, external_id,
//! dense_id), read when a query scans it.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::bitmap::dictionary::IdDictionary;

#[derive(Debug)]
pub struct IdDictionaryTable {
    dictionary: IdDictionary,
    schema: SchemaRef,
}

impl IdDictionaryTable {
    pub fn new(dictionary: IdDictionary) -> Self {
        IdDictionaryTable {
            dictionary,
            schema: Arc::new(Schema::new(vec![
                Field::new("namespace", DataType::Utf8, false),
                Field::new("external_id", DataType::Utf8, false),
                Field::new("dense_id", DataType::Int64, false),
            ])),
        }
    }
}

#[async_trait]
impl TableProvider for IdDictionaryTable {
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
        let entries = self
            .dictionary
            .entries()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batch = RecordBatch::try_new(
            self.schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| &e.namespace),
                )),
                Arc::new(StringArray::from_iter_values(
                    entries.iter().map(|e| &e.external_id),
                )),
                Arc::new(Int64Array::from_iter_values(
                    entries.iter().map(|e| e.dense_id as i64),
                )),
            ],
        )?;
        Ok(MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?)
    }
}

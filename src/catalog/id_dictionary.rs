//! `martdb.id_dictionary`: the dense id dictionary as a table (namespace, external_id,
//! dense_id).

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::error::DataFusionError;

use super::computed::ComputedTable;
use crate::bitmap::dictionary::IdDictionary;

pub fn table(dictionary: IdDictionary) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("namespace", DataType::Utf8, false),
        Field::new("external_id", DataType::Utf8, false),
        Field::new("dense_id", DataType::Int64, false),
    ]));
    ComputedTable::new("id_dictionary", schema, move |schema| {
        let entries = dictionary
            .entries()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(RecordBatch::try_new(
            schema,
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
        )?)
    })
}

//! `martdb.audiences`: the saved audiences (name, definition, cardinality, bytes,
//! refreshed_at). The members are `audience(name)`.

use std::sync::Arc;

use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::error::DataFusionError;

use super::computed::ComputedTable;
use crate::bitmap::audiences::AudienceStore;

pub fn table(store: AudienceStore) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("definition", DataType::Utf8, false),
        Field::new("cardinality", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new(
            "refreshed_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    ComputedTable::new("audiences", schema, move |schema| {
        let infos = store
            .list()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(RecordBatch::try_new(
            schema,
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
        )?)
    })
}

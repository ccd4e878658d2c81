//! `martdb.models`: every stored version of every model (name, version, kind,
//! algorithm, features, params, metrics, trained_at, training_rows, deployed). The
//! registry itself is [`crate::ml::runtime::ModelRegistry`].

use std::sync::Arc;

use datafusion::arrow::array::{
    BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::error::DataFusionError;

use super::computed::ComputedTable;
use crate::ml::runtime::ModelRegistry;

pub fn table(registry: ModelRegistry) -> ComputedTable {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let schema = Arc::new(Schema::new(vec![
        text("name"),
        Field::new("version", DataType::Int64, false),
        text("kind"),
        text("algorithm"),
        text("features"),
        text("params"),
        text("metrics"),
        Field::new(
            "trained_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("deployed", DataType::Boolean, false),
    ]));
    ComputedTable::new("models", schema, move |schema| {
        let models = registry
            .list()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let strings = |f: &dyn Fn(&crate::ml::runtime::ModelInfo) -> String| {
            Arc::new(StringArray::from_iter_values(models.iter().map(f)))
        };
        Ok(RecordBatch::try_new(
            schema,
            vec![
                strings(&|m| m.name.clone()),
                Arc::new(Int64Array::from_iter_values(
                    models.iter().map(|m| m.version),
                )),
                strings(&|m| m.kind.clone()),
                strings(&|m| m.algorithm.clone()),
                strings(&|m| m.features.join(", ")),
                strings(&|m| m.params.to_string()),
                strings(&|m| m.metrics.to_string()),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        models.iter().map(|m| m.trained_at),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Int64Array::from_iter_values(
                    models.iter().map(|m| m.training_rows as i64),
                )),
                Arc::new(BooleanArray::from_iter(
                    models.iter().map(|m| Some(m.deployed)),
                )),
            ],
        )?)
    })
}

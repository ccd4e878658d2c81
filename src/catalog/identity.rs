//! The stored identity graph as tables: `martdb.identity_map`, `martdb.identity_persons`,
//! `martdb.identity_merges` and `martdb.identity_rejected` (see `udf::identity`).

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::error::DataFusionError;

use super::computed::ComputedTable;
use crate::identity::{IdentityError, IdentityGraph};

fn external(e: IdentityError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn time() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

fn times(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(
        values.map(|t| (t != i64::MIN && t != i64::MAX).then_some(t)),
    ))
}

fn text<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn numbers(values: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(values))
}

/// The four tables, by name.
pub fn tables(graph: &IdentityGraph) -> Vec<(&'static str, ComputedTable)> {
    vec![
        ("identity_map", map(graph.clone())),
        ("identity_persons", persons(graph.clone())),
        ("identity_merges", merges(graph.clone())),
        ("identity_rejected", rejected(graph.clone())),
    ]
}

fn map(graph: IdentityGraph) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
        Field::new("person_id", DataType::Int64, false),
        Field::new("degree", DataType::Int64, false),
        Field::new("hub", DataType::Boolean, false),
        Field::new("first_seen", time(), true),
        Field::new("last_seen", time(), true),
    ]));
    ComputedTable::new("identity_map", schema, move |schema| {
        let rows = graph.identifiers().map_err(external)?;
        Ok(RecordBatch::try_new(
            schema,
            vec![
                text(rows.iter().map(|r| r.id_type.as_str())),
                text(rows.iter().map(|r| r.id.as_str())),
                numbers(rows.iter().map(|r| r.person_id)),
                numbers(rows.iter().map(|r| i64::from(r.degree))),
                Arc::new(BooleanArray::from_iter(rows.iter().map(|r| Some(r.hub)))),
                times(rows.iter().map(|r| r.first_seen)),
                times(rows.iter().map(|r| r.last_seen)),
            ],
        )?)
    })
}

fn persons(graph: IdentityGraph) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("identifiers", DataType::Int64, false),
        Field::new("id_types", DataType::Utf8, false),
        Field::new("created_at", time(), true),
        Field::new("updated_at", time(), true),
    ]));
    ComputedTable::new("identity_persons", schema, move |schema| {
        let rows = graph.persons().map_err(external)?;
        let types: Vec<String> = rows
            .iter()
            .map(|r| crate::udf::identity::type_counts(&r.types))
            .collect();
        Ok(RecordBatch::try_new(
            schema,
            vec![
                numbers(rows.iter().map(|r| r.person_id)),
                numbers(rows.iter().map(|r| r.identifiers as i64)),
                text(types.iter().map(String::as_str)),
                times(rows.iter().map(|r| r.created_at)),
                times(rows.iter().map(|r| r.updated_at)),
            ],
        )?)
    })
}

fn merges(graph: IdentityGraph) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("merged_id", DataType::Int64, false),
        Field::new("into_id", DataType::Int64, false),
        Field::new("merged_at", time(), true),
        Field::new("update", DataType::Int64, false),
    ]));
    ComputedTable::new("identity_merges", schema, move |schema| {
        let rows = graph.merges().map_err(external)?;
        Ok(RecordBatch::try_new(
            schema,
            vec![
                numbers(rows.iter().map(|r| r.merged_id)),
                numbers(rows.iter().map(|r| r.into_id)),
                times(rows.iter().map(|r| r.merged_at)),
                numbers(rows.iter().map(|r| r.update as i64)),
            ],
        )?)
    })
}

fn rejected(graph: IdentityGraph) -> ComputedTable {
    let schema = Arc::new(Schema::new(crate::udf::identity::rejection_fields()));
    ComputedTable::new("identity_rejected", schema, move |schema| {
        let rows = graph.rejected().map_err(external)?;
        Ok(RecordBatch::try_new(
            schema,
            vec![
                text(rows.iter().map(|r| r.type_a.as_str())),
                text(rows.iter().map(|r| r.id_a.as_str())),
                text(rows.iter().map(|r| r.type_b.as_str())),
                text(rows.iter().map(|r| r.id_b.as_str())),
                numbers(rows.iter().map(|r| r.observations as i64)),
                times(rows.iter().map(|r| r.first_seen)),
                times(rows.iter().map(|r| r.last_seen)),
                text(rows.iter().map(|r| r.reason.as_str())),
                Arc::new(StringArray::from_iter(
                    rows.iter()
                        .map(|r| (!r.detail.is_empty()).then_some(r.detail.as_str())),
                )),
            ],
        )?)
    })
}

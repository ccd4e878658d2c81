//! `martdb.coupon_pools`, `martdb.coupon_reservations` and
//! `martdb.coupon_reconciliation`: the committed coupon state, read at every scan.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::error::DataFusionError;

use super::computed::ComputedTable;
use crate::coupons::{Coupons, Reconciliation};

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn timestamps(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter(values).with_timezone("UTC"))
}

fn counts(values: impl IntoIterator<Item = u64>) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(
        values.into_iter().map(|v| v as i64),
    ))
}

fn texts<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn external(e: crate::coupons::CouponError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// One row per pool: settings, counters and remaining stock as committed.
pub fn pools(coupons: Coupons) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("pool", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("stock", DataType::Int64, false),
        Field::new("remaining", DataType::Int64, false),
        Field::new("reserved", DataType::Int64, false),
        Field::new("redeemed", DataType::Int64, false),
        Field::new("released", DataType::Int64, false),
        Field::new("expired", DataType::Int64, false),
        Field::new("refused", DataType::Int64, false),
        Field::new("per_user_limit", DataType::Int64, false),
        Field::new("face_value", DataType::Int64, false),
        Field::new("budget", DataType::Int64, true),
        Field::new("budget_used", DataType::Int64, false),
        Field::new("valid_from", timestamp(), true),
        Field::new("valid_until", timestamp(), true),
        Field::new("audience", DataType::Utf8, true),
        Field::new("hold_seconds", DataType::Float64, false),
        Field::new("created_at", timestamp(), false),
        Field::new("updated_at", timestamp(), false),
    ]));
    ComputedTable::new("coupon_pools", schema, move |schema| {
        let pools = coupons.pools().map_err(external)?;
        let columns: Vec<ArrayRef> = vec![
            texts(pools.iter().map(|p| Some(p.name.as_str()))),
            texts(pools.iter().map(|p| Some(p.status.as_str()))),
            counts(pools.iter().map(|p| p.stock)),
            counts(pools.iter().map(|p| p.remaining())),
            counts(pools.iter().map(|p| p.reserved)),
            counts(pools.iter().map(|p| p.redeemed)),
            counts(pools.iter().map(|p| p.released)),
            counts(pools.iter().map(|p| p.expired)),
            counts(pools.iter().map(|p| p.refused)),
            counts(pools.iter().map(|p| p.per_user_limit)),
            counts(pools.iter().map(|p| p.face_value)),
            Arc::new(Int64Array::from_iter(
                pools.iter().map(|p| p.budget.map(|b| b as i64)),
            )),
            counts(pools.iter().map(|p| p.budget_used)),
            timestamps(pools.iter().map(|p| p.valid_from_micros)),
            timestamps(pools.iter().map(|p| p.valid_until_micros)),
            texts(pools.iter().map(|p| p.audience.as_deref())),
            Arc::new(datafusion::arrow::array::Float64Array::from_iter_values(
                pools.iter().map(|p| p.hold_micros as f64 / 1e6),
            )),
            timestamps(pools.iter().map(|p| Some(p.created_micros))),
            timestamps(pools.iter().map(|p| Some(p.updated_micros))),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    })
}

/// One row per reserve call: its first outcome and where its coupon is now.
pub fn reservations(coupons: Coupons) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("request_key", DataType::Utf8, false),
        Field::new("pool", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("face_value", DataType::Int64, false),
        Field::new("created_at", timestamp(), false),
        Field::new("expires_at", timestamp(), true),
        Field::new("settled_at", timestamp(), true),
    ]));
    ComputedTable::new("coupon_reservations", schema, move |schema| {
        let rows = coupons.reservations().map_err(external)?;
        let outcomes: Vec<String> = rows.iter().map(|r| r.outcome.to_string()).collect();
        let columns: Vec<ArrayRef> = vec![
            texts(rows.iter().map(|r| Some(r.request_key.as_str()))),
            texts(rows.iter().map(|r| Some(r.pool.as_str()))),
            texts(rows.iter().map(|r| Some(r.user_id.as_str()))),
            texts(outcomes.iter().map(|o| Some(o.as_str()))),
            texts(rows.iter().map(|r| Some(r.status.as_str()))),
            counts(rows.iter().map(|r| r.face_value)),
            timestamps(rows.iter().map(|r| Some(r.created_micros))),
            timestamps(rows.iter().map(|r| r.expires_micros)),
            timestamps(rows.iter().map(|r| r.settled_micros)),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    })
}

/// One row per pool: each counter next to its recount from the reservations, and
/// whether they all agree and nothing is oversold.
pub fn reconciliation(coupons: Coupons) -> ComputedTable {
    let mut fields = vec![
        Field::new("pool", DataType::Utf8, false),
        Field::new("stock", DataType::Int64, false),
    ];
    for name in Reconciliation::COUNTERS {
        fields.push(Field::new(name, DataType::Int64, false));
        fields.push(Field::new(
            format!("{name}_recounted"),
            DataType::Int64,
            false,
        ));
    }
    fields.push(Field::new("balanced", DataType::Boolean, false));
    let schema = Arc::new(Schema::new(fields));
    ComputedTable::new("coupon_reconciliation", schema, move |schema| {
        let rows = coupons.reconcile().map_err(external)?;
        let mut columns: Vec<ArrayRef> = vec![
            texts(rows.iter().map(|r| Some(r.pool.as_str()))),
            counts(rows.iter().map(|r| r.stock)),
        ];
        for i in 0..Reconciliation::COUNTERS.len() {
            columns.push(counts(rows.iter().map(|r| r.pairs()[i].0)));
            columns.push(counts(rows.iter().map(|r| r.pairs()[i].1)));
        }
        columns.push(Arc::new(BooleanArray::from_iter(
            rows.iter().map(|r| Some(r.balanced())),
        )));
        Ok(RecordBatch::try_new(schema, columns)?)
    })
}

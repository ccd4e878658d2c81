//! The `coupon_pools` table: a fixed set of pools, whatever the number of users.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::random::{Draw, Stream, stream_rng};
use super::{
    BatchBuilder, DemoOptions, DemoTable, MICROS_PER_SECOND, RowSource, batch, cents,
    day_start_micros, days_from_civil, demo_table,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PoolStatus {
    Draft,
    Active,
    Paused,
    Closed,
}

impl PoolStatus {
    fn name(self) -> &'static str {
        match self {
            PoolStatus::Draft => "draft",
            PoolStatus::Active => "active",
            PoolStatus::Paused => "paused",
            PoolStatus::Closed => "closed",
        }
    }
}

/// A coupon pool. Validity is whole days, `first_day` through `last_day`.
#[derive(Debug, Clone)]
pub(super) struct CouponPool {
    pub id: i64,
    pub name: &'static str,
    pub total_stock: i64,
    pub per_user_limit: i32,
    pub face_value: f64,
    pub budget: f64,
    pub first_day: i32,
    pub last_day: i32,
    pub status: PoolStatus,
    pub audience_tag: Option<&'static str>,
}

impl CouponPool {
    /// Whether orders on `day` could have used the pool: it was issued (not a draft) and valid.
    pub(super) fn usable_on(&self, day: i32) -> bool {
        self.status != PoolStatus::Draft && (self.first_day..=self.last_day).contains(&day)
    }
}

/// The fixed part of a pool: name, validity, face value, status as of 2026-09-30, audience.
struct PoolTemplate {
    name: &'static str,
    first: (i32, u32, u32),
    last: (i32, u32, u32),
    face_value: f64,
    status: PoolStatus,
    audience_tag: Option<&'static str>,
}

const fn template(
    name: &'static str,
    first: (i32, u32, u32),
    last: (i32, u32, u32),
    face_value: f64,
    status: PoolStatus,
    audience_tag: Option<&'static str>,
) -> PoolTemplate {
    PoolTemplate {
        name,
        first,
        last,
        face_value,
        status,
        audience_tag,
    }
}

/// The pools, a year's promotion calendar around 2026-09-30. Statuses agree with the dates:
/// pools that ended are closed, pools that have not started are drafts. A few long-running pools
/// cover the whole activity window, so every day has a pool for coupon orders.
const POOL_TEMPLATES: [PoolTemplate; 20] = {
    use PoolStatus::{Active, Closed, Draft, Paused};
    [
        template(
            "Welcome gift 10 off",
            (2025, 1, 1),
            (2027, 12, 31),
            10.0,
            Active,
            Some("new_user"),
        ),
        template(
            "Everyday 5 off",
            (2026, 1, 1),
            (2026, 12, 31),
            5.0,
            Active,
            None,
        ),
        template(
            "Member day 20 off",
            (2026, 3, 1),
            (2027, 2, 28),
            20.0,
            Active,
            Some("vip"),
        ),
        template(
            "618 mid-year sale 50 off",
            (2026, 6, 1),
            (2026, 6, 20),
            50.0,
            Closed,
            None,
        ),
        template(
            "Summer clearance 30 off",
            (2026, 7, 10),
            (2026, 8, 10),
            30.0,
            Closed,
            None,
        ),
        template(
            "Mom and baby festival 30 off",
            (2026, 7, 20),
            (2026, 8, 5),
            30.0,
            Closed,
            Some("mom_baby"),
        ),
        template(
            "Travel season 100 off",
            (2026, 7, 1),
            (2026, 7, 31),
            100.0,
            Closed,
            Some("travel"),
        ),
        template(
            "Sports gear 30 off",
            (2026, 8, 1),
            (2026, 8, 31),
            30.0,
            Closed,
            Some("sports"),
        ),
        template(
            "Back to school 20 off",
            (2026, 8, 20),
            (2026, 9, 10),
            20.0,
            Closed,
            Some("student"),
        ),
        template(
            "Win-back 15 off",
            (2026, 8, 1),
            (2026, 12, 31),
            15.0,
            Active,
            Some("churn_risk"),
        ),
        template(
            "Beauty week 25 off",
            (2026, 9, 1),
            (2026, 10, 15),
            25.0,
            Paused,
            Some("beauty"),
        ),
        template(
            "Pet supplies 15 off",
            (2026, 9, 10),
            (2026, 10, 10),
            15.0,
            Paused,
            Some("pets"),
        ),
        template(
            "Mid-autumn festival 40 off",
            (2026, 9, 15),
            (2026, 10, 8),
            40.0,
            Active,
            None,
        ),
        template(
            "Flash deal 8 off",
            (2026, 9, 20),
            (2026, 10, 20),
            8.0,
            Active,
            Some("price_sensitive"),
        ),
        template(
            "Golden week 100 off",
            (2026, 9, 28),
            (2026, 10, 7),
            100.0,
            Active,
            None,
        ),
        template(
            "Weekend special 10 off",
            (2026, 7, 4),
            (2026, 12, 31),
            10.0,
            Active,
            Some("weekend_shopper"),
        ),
        template(
            "Double 11 pre-sale 50 off",
            (2026, 10, 20),
            (2026, 11, 10),
            50.0,
            Draft,
            None,
        ),
        template(
            "Double 11 electronics 200 off",
            (2026, 11, 1),
            (2026, 11, 11),
            200.0,
            Draft,
            Some("electronics"),
        ),
        template(
            "Double 12 30 off",
            (2026, 12, 1),
            (2026, 12, 12),
            30.0,
            Draft,
            None,
        ),
        template(
            "New year 88 off",
            (2026, 12, 25),
            (2027, 1, 5),
            88.0,
            Draft,
            None,
        ),
    ]
};

/// The coupon pools for a seed: fixed names, dates and statuses; stock, limits and budget drawn
/// from the seed.
pub(super) fn coupon_pools(seed: u64) -> Vec<CouponPool> {
    let mut rng = stream_rng(seed, Stream::CouponPools, 0);
    POOL_TEMPLATES
        .iter()
        .zip(1..)
        .map(|(template, id)| {
            let total_stock = ((rng.log_normal(50_000.0, 0.8) / 100.0).round() * 100.0)
                .clamp(1_000.0, 2_000_000.0) as i64;
            let per_user_limit = match rng.unit() {
                u if u < 0.6 => 1,
                u if u < 0.85 => 2,
                _ => 3,
            };
            // Budgets are below the value of the whole stock, so that a budget breaker can trip.
            let budget = cents(total_stock as f64 * template.face_value * (0.5 + 0.5 * rng.unit()));
            let (year, month, day) = template.first;
            let first_day = days_from_civil(year, month, day);
            let (year, month, day) = template.last;
            let last_day = days_from_civil(year, month, day);
            CouponPool {
                id,
                name: template.name,
                total_stock,
                per_user_limit,
                face_value: template.face_value,
                budget,
                first_day,
                last_day,
                status: template.status,
                audience_tag: template.audience_tag,
            }
        })
        .collect()
}

fn coupon_pools_schema() -> SchemaRef {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    Arc::new(Schema::new(vec![
        Field::new("pool_id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("total_stock", DataType::Int64, false),
        Field::new("per_user_limit", DataType::Int32, false),
        Field::new("face_value", DataType::Float64, false),
        Field::new("budget", DataType::Float64, false),
        Field::new("valid_from", timestamp.clone(), false),
        Field::new("valid_to", timestamp, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("audience_tag", DataType::Utf8, true),
    ]))
}

pub(super) fn coupon_pools_table(opts: DemoOptions) -> DemoTable {
    let source = CouponPoolsSource {
        pools: Some(coupon_pools(opts.seed)),
    };
    demo_table(
        "coupon_pools",
        coupon_pools_schema(),
        POOL_TEMPLATES.len() as u64,
        source,
    )
}

/// Emits all pools as one unit.
struct CouponPoolsSource {
    pools: Option<Vec<CouponPool>>,
}

struct CouponPoolsBuilder {
    pool_id: Int64Builder,
    name: StringBuilder,
    total_stock: Int64Builder,
    per_user_limit: Int32Builder,
    face_value: Float64Builder,
    budget: Float64Builder,
    valid_from: TimestampMicrosecondBuilder,
    valid_to: TimestampMicrosecondBuilder,
    status: StringBuilder,
    audience_tag: StringBuilder,
}

impl BatchBuilder for CouponPoolsBuilder {
    fn with_capacity(_rows: usize) -> Self {
        // The table is tiny: size for it, not for a full batch.
        let rows = POOL_TEMPLATES.len();
        Self {
            pool_id: Int64Builder::with_capacity(rows),
            name: StringBuilder::with_capacity(rows, rows * 32),
            total_stock: Int64Builder::with_capacity(rows),
            per_user_limit: Int32Builder::with_capacity(rows),
            face_value: Float64Builder::with_capacity(rows),
            budget: Float64Builder::with_capacity(rows),
            valid_from: TimestampMicrosecondBuilder::with_capacity(rows),
            valid_to: TimestampMicrosecondBuilder::with_capacity(rows),
            status: StringBuilder::with_capacity(rows, rows * 6),
            audience_tag: StringBuilder::with_capacity(rows, rows * 12),
        }
    }

    fn len(&self) -> usize {
        self.pool_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.pool_id.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.total_stock.finish()),
            Arc::new(self.per_user_limit.finish()),
            Arc::new(self.face_value.finish()),
            Arc::new(self.budget.finish()),
            Arc::new(self.valid_from.finish()),
            Arc::new(self.valid_to.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.audience_tag.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for CouponPoolsSource {
    type Builder = CouponPoolsBuilder;

    fn append_next(&mut self, out: &mut CouponPoolsBuilder) -> bool {
        let Some(pools) = self.pools.take() else {
            return false;
        };
        for pool in pools {
            out.pool_id.append_value(pool.id);
            out.name.append_value(pool.name);
            out.total_stock.append_value(pool.total_stock);
            out.per_user_limit.append_value(pool.per_user_limit);
            out.face_value.append_value(pool.face_value);
            out.budget.append_value(pool.budget);
            out.valid_from
                .append_value(day_start_micros(pool.first_day));
            // The last second of the last day.
            out.valid_to
                .append_value(day_start_micros(pool.last_day + 1) - MICROS_PER_SECOND);
            out.status.append_value(pool.status.name());
            out.audience_tag.append_option(pool.audience_tag);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::LAST_DAY;

    #[test]
    fn statuses_agree_with_dates() {
        for pool in coupon_pools(42) {
            assert!(pool.first_day <= pool.last_day, "{}", pool.name);
            match pool.status {
                PoolStatus::Closed => assert!(pool.last_day < LAST_DAY, "{}", pool.name),
                PoolStatus::Draft => assert!(pool.first_day > LAST_DAY, "{}", pool.name),
                PoolStatus::Active | PoolStatus::Paused => {
                    assert!(
                        (pool.first_day..=pool.last_day).contains(&LAST_DAY),
                        "{}",
                        pool.name
                    )
                }
            }
            assert!(pool.budget <= pool.total_stock as f64 * pool.face_value);
        }
    }
}

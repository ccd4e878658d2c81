//! The `touchpoints` table: marketing touches (ads, emails, pushes...) of each user, for
//! multi-touch attribution.
//!
//! It replays the [`OrderSimulator`] (the funnel and order streams `orders` uses), so the
//! touches sit before the real orders, and draws everything else from its own
//! [`Stream::Touchpoints`]: the other tables do not change with it.
//!
//! Model: before each order, `1 + Poisson(1.8)` touches (at most 8). The last comes an
//! exponential 6 hours (mean, at least a minute) before the order, each earlier one an
//! exponential 2 days before the next; touches that would fall before the previous order
//! (or, for the first order, before the user's signup) are dropped, except the last, which
//! then sits just after that floor. The channel depends on the touch's role: the opening
//! touch of a journey of two or more is mostly `display` or `social`, the closing touch
//! (or a lone one) mostly `search` or `email`, the ones between mostly `social`, `push`
//! and `email`. Users with no order get, with probability 0.7, `1 + Poisson(1.2)` touches
//! at random times of the activity window, mostly `display` and `social`. So first-touch
//! models favour display, last-touch models search and email, and the Markov and Shapley
//! models, which also see the journeys that go nowhere, land in between.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use super::activity::{OrderSimulator, timestamp_type};
use super::random::{AliasTable, Draw, Stream, stream_rng};
use super::{
    BatchBuilder, DemoOptions, DemoTable, MICROS_PER_HOUR, MICROS_PER_SECOND, RowSource, batch,
    day_start_micros, demo_table,
};

/// The marketing channels.
pub(super) const CHANNELS: [&str; 6] =
    ["search", "social", "email", "push", "display", "affiliate"];

/// Channel weights (in the order of [`CHANNELS`]) of the first touch of a journey of two or
/// more touches before an order: awareness channels.
const OPENING: [f64; 6] = [0.12, 0.25, 0.05, 0.05, 0.43, 0.10];

/// Channel weights of the touches between the first and the last.
const MIDDLE: [f64; 6] = [0.15, 0.30, 0.20, 0.20, 0.10, 0.05];

/// Channel weights of the last touch before an order (or a lone one): closing channels.
const CLOSING: [f64; 6] = [0.38, 0.05, 0.30, 0.12, 0.05, 0.10];

/// Channel weights of the touches of users who do not order.
const BROWSING: [f64; 6] = [0.10, 0.30, 0.10, 0.15, 0.30, 0.05];

/// Touches before an order: 1 + Poisson(this), at most [`MAX_TOUCHES`].
const EXTRA_TOUCHES_BEFORE_ORDER: f64 = 1.8;
const MAX_TOUCHES: u64 = 8;

/// Mean gap between the last touch and the order, and between touches, in hours.
const CLOSING_GAP_HOURS: f64 = 6.0;
const TOUCH_GAP_HOURS: f64 = 48.0;

/// Share of users without orders who are touched, and their extra touches (Poisson mean).
const TOUCHED_NON_BUYERS: f64 = 0.7;
const EXTRA_TOUCHES_WITHOUT_ORDER: f64 = 1.2;

/// Average rows per user, measured; for the progress estimate only.
const TOUCHES_PER_USER: f64 = 2.9;

fn touchpoints_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("channel", DataType::Utf8, false),
    ]))
}

pub(super) fn touchpoints_table(opts: DemoOptions) -> DemoTable {
    let source = TouchpointsSource {
        simulator: OrderSimulator::new(opts),
        rng: stream_rng(opts.seed, Stream::Touchpoints, 0),
        opening: AliasTable::new(&OPENING),
        middle: AliasTable::new(&MIDDLE),
        closing: AliasTable::new(&CLOSING),
        browsing: AliasTable::new(&BROWSING),
        touches: Vec::new(),
    };
    let estimated_rows = (opts.users as f64 * TOUCHES_PER_USER) as u64;
    demo_table("touchpoints", touchpoints_schema(), estimated_rows, source)
}

struct TouchpointsSource {
    simulator: OrderSimulator,
    rng: ChaCha8Rng,
    opening: AliasTable,
    middle: AliasTable,
    closing: AliasTable,
    browsing: AliasTable,
    /// The current user's touches: (time, index into [`CHANNELS`]).
    touches: Vec<(i64, usize)>,
}

impl TouchpointsSource {
    /// Appends the touches before an order at `order_ts` to `self.touches`, none before
    /// `floor`. Draws the same numbers whatever is dropped.
    fn touches_before_order(&mut self, order_ts: i64, floor: i64) {
        let rng = &mut self.rng;
        let n = (1 + rng.poisson(EXTRA_TOUCHES_BEFORE_ORDER)).min(MAX_TOUCHES) as usize;
        let hours = |rng: &mut ChaCha8Rng, mean: f64| {
            (rng.exponential(mean) * MICROS_PER_HOUR as f64) as i64
        };
        let mut at = order_ts - hours(rng, CLOSING_GAP_HOURS).max(60 * MICROS_PER_SECOND);
        for i in (0..n).rev() {
            let table = if i == n - 1 {
                &self.closing
            } else if i == 0 {
                &self.opening
            } else {
                &self.middle
            };
            let channel = table.sample(rng);
            if i == n - 1 {
                self.touches.push((at.max(floor).min(order_ts), channel));
            } else if at >= floor {
                self.touches.push((at, channel));
            }
            at -= hours(rng, TOUCH_GAP_HOURS);
        }
    }
}

struct TouchpointsBuilder {
    user_id: Int64Builder,
    ts: TimestampMicrosecondBuilder,
    channel: StringBuilder,
}

impl BatchBuilder for TouchpointsBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            user_id: Int64Builder::with_capacity(rows),
            ts: TimestampMicrosecondBuilder::with_capacity(rows),
            channel: StringBuilder::with_capacity(rows, rows * 6),
        }
    }

    fn len(&self) -> usize {
        self.user_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.channel.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for TouchpointsSource {
    type Builder = TouchpointsBuilder;

    fn append_next(&mut self, out: &mut TouchpointsBuilder) -> bool {
        let Some((user, _, new_chunk)) = self.simulator.next_user() else {
            return false;
        };
        if let Some(chunk) = new_chunk {
            self.rng = stream_rng(self.simulator.seed, Stream::Touchpoints, chunk);
        }
        self.touches.clear();
        let orders: Vec<i64> = self.simulator.orders.iter().map(|o| o.ts).collect();
        if orders.is_empty() {
            if self.rng.chance(TOUCHED_NON_BUYERS) {
                let n = 1 + self
                    .rng
                    .poisson(EXTRA_TOUCHES_WITHOUT_ORDER)
                    .min(MAX_TOUCHES - 1);
                let from = user.active_from_micros();
                for _ in 0..n {
                    let at = self.simulator.model.timestamp_from(&mut self.rng, from);
                    let channel = self.browsing.sample(&mut self.rng);
                    self.touches.push((at, channel));
                }
            }
        } else {
            let mut floor = day_start_micros(user.signup_day);
            for order_ts in orders {
                self.touches_before_order(order_ts, floor);
                // The next order's touches come after this order.
                floor = order_ts + 1;
            }
        }
        // Stable: equal times keep their (deterministic) generation order.
        self.touches.sort_by_key(|&(at, _)| at);
        out.user_id.append_value_n(user.user_id, self.touches.len());
        for &(at, channel) in &self.touches {
            out.ts.append_value(at);
            out.channel.append_value(CHANNELS[channel]);
        }
        true
    }
}

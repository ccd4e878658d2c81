//! User activity: the `events`, `orders` and `campaign` tables.
//!
//! All three replay the same per-chunk streams for what they share: [`Stream::Funnel`] decides
//! how many views, clicks, carts and orders each user has, [`Stream::Orders`] the details of each
//! order. Only `events` draws from [`Stream::Browsing`], for the other events. So `orders` and
//! `campaign` cost O(users + orders), not O(events), and all three agree exactly. The
//! `touchpoints` table (`touchpoints.rs`) replays the same [`OrderSimulator`] to place marketing
//! touches before the orders.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Float64Builder, Int32Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use super::coupons::coupon_pools;
use super::people::{UserCursor, UserProfile, VIP_LEVEL};
use super::random::{AliasTable, Draw, Stream, stream_rng, zipf_weights};
use super::{
    ACTIVITY_DAYS, ACTIVITY_END_MICROS, ACTIVITY_START_MICROS, BatchBuilder, DemoOptions,
    DemoTable, FIRST_ACTIVITY_DAY, LAST_DAY, MICROS_PER_HOUR, MICROS_PER_SECOND, RowSource, batch,
    cents, day_of_micros, demo_table, weekday,
};

/// Product categories, most popular first (drawn with Zipf popularity).
pub(super) const CATEGORIES: [&str; 12] = [
    "apparel",
    "food",
    "beauty",
    "home",
    "electronics",
    "mom_baby",
    "sports",
    "health",
    "books",
    "toys",
    "pets",
    "travel",
];

/// Exponent of the Zipf popularity of categories.
pub(super) const CATEGORY_POPULARITY_EXPONENT: f64 = 0.8;

/// Median order amount of each category (same order as [`CATEGORIES`]).
const MEDIAN_PRICE: [f64; 12] = [
    160.0, 60.0, 220.0, 260.0, 1200.0, 180.0, 300.0, 150.0, 45.0, 120.0, 90.0, 900.0,
];

/// Log-scale standard deviation of order amounts around the category's median.
const PRICE_SIGMA: f64 = 0.6;

/// Expected views of a user with activity 1 present for the whole window. With the funnel rates
/// below and later signups present for part of the window, this gives ≈ 20 events per user.
const VIEWS_PER_USER: f64 = 14.0;

/// Cap on a single user's views, to bound the rows one user adds to a batch.
const MAX_VIEWS_PER_USER: u64 = 5_000;

/// Funnel conversion rates: of views, of clicks, of carts.
const CLICK_RATE: f64 = 0.35;
const CART_RATE: f64 = 0.35;
const ORDER_RATE: f64 = 0.5;

/// Share of a user's activity in the user's preferred categories.
const PREFERRED_SHARE: f64 = 0.75;

/// Share of orders that used a coupon (when a pool was valid that day).
const COUPON_SHARE: f64 = 0.15;

/// Mean gaps between funnel steps leading to the same action, in seconds.
const VIEW_TO_CLICK_SECONDS: f64 = 45.0;
const CLICK_TO_CART_SECONDS: f64 = 90.0;
const CART_TO_ORDER_SECONDS: f64 = 240.0;

/// Relative activity by day of the week, Monday first: weekends are busier.
const WEEKDAY_WEIGHTS: [f64; 7] = [0.95, 0.92, 0.95, 0.98, 1.05, 1.20, 1.15];

/// Relative activity by hour of the day: quiet nights, a lunch bump, an evening peak.
const HOUR_WEIGHTS: [f64; 24] = [
    0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60, 0.90, 1.00, 1.05, 1.15, 1.30, 1.20, 1.00, 0.95,
    1.00, 1.10, 1.25, 1.50, 1.75, 1.80, 1.50, 0.80,
];

/// The kinds of events, in funnel order (which is also the order of events at equal times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
    View = 0,
    Click = 1,
    Cart = 2,
    Order = 3,
}

impl EventKind {
    /// The kinds by discriminant.
    const FUNNEL: [EventKind; 4] = [
        EventKind::View,
        EventKind::Click,
        EventKind::Cart,
        EventKind::Order,
    ];

    fn name(self) -> &'static str {
        match self {
            EventKind::View => "view",
            EventKind::Click => "click",
            EventKind::Cart => "cart",
            EventKind::Order => "order",
        }
    }
}

/// The shared, precomputed parts of the activity model.
pub(super) struct ActivityModel {
    /// The hours of the activity window, weighted by weekday and hour of day.
    hours: AliasTable,
    categories: AliasTable,
    /// Ids of the coupon pools usable on each day of the activity window.
    pools_by_day: Vec<Vec<i64>>,
}

impl ActivityModel {
    fn new(seed: u64) -> Self {
        let mut hour_weights = Vec::with_capacity(ACTIVITY_DAYS as usize * 24);
        for day in FIRST_ACTIVITY_DAY..=LAST_DAY {
            let day_weight = WEEKDAY_WEIGHTS[weekday(day)];
            hour_weights.extend(
                HOUR_WEIGHTS
                    .iter()
                    .map(|hour_weight| day_weight * hour_weight),
            );
        }
        let pools = coupon_pools(seed);
        let pools_by_day = (FIRST_ACTIVITY_DAY..=LAST_DAY)
            .map(|day| {
                pools
                    .iter()
                    .filter(|pool| pool.usable_on(day))
                    .map(|pool| pool.id)
                    .collect()
            })
            .collect();
        Self {
            hours: AliasTable::new(&hour_weights),
            categories: AliasTable::new(&zipf_weights(
                CATEGORIES.len(),
                CATEGORY_POPULARITY_EXPONENT,
            )),
            pools_by_day,
        }
    }

    /// A time in the activity window, following the daily cycle and the weekday effect.
    fn timestamp(&self, rng: &mut ChaCha8Rng) -> i64 {
        let hour = self.hours.sample(rng) as i64;
        ACTIVITY_START_MICROS + hour * MICROS_PER_HOUR + rng.below(MICROS_PER_HOUR as u64) as i64
    }

    /// A time in the activity window no earlier than `from` (a recent signup). Retries keep the
    /// daily cycle; if `from` is very late, the fallback is uniform after it.
    pub(super) fn timestamp_from(&self, rng: &mut ChaCha8Rng, from: i64) -> i64 {
        for _ in 0..16 {
            let ts = self.timestamp(rng);
            if ts >= from {
                return ts;
            }
        }
        from + rng.below((ACTIVITY_END_MICROS - from) as u64) as i64
    }

    /// A category for one of the user's actions: mostly a preferred one.
    fn category(&self, rng: &mut ChaCha8Rng, user: &UserProfile) -> u8 {
        let preferred = user.preferred_categories();
        if rng.chance(PREFERRED_SHARE) {
            preferred[rng.below(preferred.len() as u64) as usize]
        } else {
            self.categories.sample(rng) as u8
        }
    }

    /// A time shortly before `ts` (the previous step of a funnel), not before `floor`.
    fn before(rng: &mut ChaCha8Rng, ts: i64, mean_seconds: f64, floor: i64) -> i64 {
        let gap = (rng.exponential(mean_seconds) * MICROS_PER_SECOND as f64) as i64;
        (ts - gap).max(floor)
    }
}

/// How far each of a user's views went down the funnel: `views` ≥ `clicks` ≥ `carts` ≥ `orders`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Funnel {
    views: u64,
    clicks: u64,
    carts: u64,
    orders: u64,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Order {
    pub(super) ts: i64,
    category: u8,
    amount: f64,
    coupon_pool_id: Option<i64>,
}

/// Replays the funnel and order streams of the users, chunk by chunk: the part of the activity
/// that `events`, `orders`, `campaign` and `touchpoints` share.
pub(super) struct OrderSimulator {
    pub(super) seed: u64,
    users: UserCursor,
    pub(super) model: ActivityModel,
    funnel_rng: ChaCha8Rng,
    orders_rng: ChaCha8Rng,
    /// The current user's orders, in time order.
    pub(super) orders: Vec<Order>,
}

impl OrderSimulator {
    pub(super) fn new(opts: DemoOptions) -> Self {
        Self {
            seed: opts.seed,
            users: UserCursor::new(opts),
            model: ActivityModel::new(opts.seed),
            funnel_rng: stream_rng(opts.seed, Stream::Funnel, 0),
            orders_rng: stream_rng(opts.seed, Stream::Orders, 0),
            orders: Vec::new(),
        }
    }

    /// Moves to the next user and draws the user's funnel and orders (into `self.orders`).
    /// Returns the user, its funnel and, when the user opens a chunk, the chunk's index.
    pub(super) fn next_user(&mut self) -> Option<(UserProfile, Funnel, Option<u64>)> {
        let (user, new_chunk) = self.users.next_user()?;
        if let Some(chunk) = new_chunk {
            self.funnel_rng = stream_rng(self.seed, Stream::Funnel, chunk);
            self.orders_rng = stream_rng(self.seed, Stream::Orders, chunk);
        }
        let active_from = user.active_from_micros();
        // Users who signed up during the window are active for part of it only.
        let presence = (ACTIVITY_END_MICROS - active_from) as f64
            / (ACTIVITY_END_MICROS - ACTIVITY_START_MICROS) as f64;
        let rng = &mut self.funnel_rng;
        let views = rng
            .poisson(VIEWS_PER_USER * user.activity * presence)
            .min(MAX_VIEWS_PER_USER);
        let clicks = rng.binomial(views, CLICK_RATE);
        let carts = rng.binomial(clicks, CART_RATE);
        let orders = rng.binomial(carts, ORDER_RATE);

        let rng = &mut self.orders_rng;
        self.orders.clear();
        for _ in 0..orders {
            let ts = self.model.timestamp_from(rng, active_from);
            let category = self.model.category(rng, &user);
            let amount =
                cents(rng.log_normal(MEDIAN_PRICE[usize::from(category)], PRICE_SIGMA)).max(0.01);
            let coupon_pool_id = if rng.chance(COUPON_SHARE) {
                let pools =
                    &self.model.pools_by_day[(day_of_micros(ts) - FIRST_ACTIVITY_DAY) as usize];
                (!pools.is_empty()).then(|| pools[rng.below(pools.len() as u64) as usize])
            } else {
                None
            };
            self.orders.push(Order {
                ts,
                category,
                amount,
                coupon_pool_id,
            });
        }
        self.orders.sort_by_key(|order| order.ts);
        Some((
            user,
            Funnel {
                views,
                clicks,
                carts,
                orders,
            },
            new_chunk,
        ))
    }
}

pub(super) fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, None)
}

// ---------------------------------------------------------------------------------------------
// events

/// Average events per user, measured; for the progress estimate only.
const EVENTS_PER_USER: f64 = 19.5;

fn events_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("event_type", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("amount", DataType::Float64, true),
    ]))
}

pub(super) fn events_table(opts: DemoOptions) -> DemoTable {
    let source = EventsSource {
        simulator: OrderSimulator::new(opts),
        browsing_rng: stream_rng(opts.seed, Stream::Browsing, 0),
        events: Vec::new(),
        next_event_id: 1,
    };
    let estimated_rows = (opts.users as f64 * EVENTS_PER_USER) as u64;
    demo_table("events", events_schema(), estimated_rows, source)
}

/// One event of the current user.
#[derive(Debug, Clone, Copy)]
struct Event {
    /// Time and kind packed as `ts << 2 | kind`, so that sorting by one integer orders by time,
    /// then funnel step: the per-user sort is the hot spot of this table.
    sort_key: i64,
    category: u8,
    /// The order amount; only meaningful for orders.
    amount: f64,
}

impl Event {
    fn new(ts: i64, kind: EventKind, category: u8, amount: f64) -> Self {
        Self {
            sort_key: (ts << 2) | kind as i64,
            category,
            amount,
        }
    }

    fn ts(&self) -> i64 {
        self.sort_key >> 2
    }

    fn kind(&self) -> EventKind {
        EventKind::FUNNEL[(self.sort_key & 3) as usize]
    }
}

struct EventsSource {
    simulator: OrderSimulator,
    browsing_rng: ChaCha8Rng,
    /// The current user's events.
    events: Vec<Event>,
    next_event_id: i64,
}

impl EventsSource {
    /// Fills `self.events` with the user's events in time order: the funnel steps behind each
    /// order, cart and click, and the views that went no further.
    fn simulate_events(&mut self, user: &UserProfile, funnel: Funnel) {
        let model = &self.simulator.model;
        let rng = &mut self.browsing_rng;
        let floor = user.active_from_micros();
        let events = &mut self.events;
        events.clear();
        for order in &self.simulator.orders {
            events.push(Event::new(
                order.ts,
                EventKind::Order,
                order.category,
                order.amount,
            ));
            push_funnel_steps(
                events,
                rng,
                order.ts,
                EventKind::Order,
                order.category,
                floor,
            );
        }
        let unfinished = [
            (EventKind::Cart, funnel.carts - funnel.orders),
            (EventKind::Click, funnel.clicks - funnel.carts),
            (EventKind::View, funnel.views - funnel.clicks),
        ];
        for (kind, count) in unfinished {
            for _ in 0..count {
                let ts = model.timestamp_from(rng, floor);
                let category = model.category(rng, user);
                events.push(Event::new(ts, kind, category, 0.0));
                push_funnel_steps(events, rng, ts, kind, category, floor);
            }
        }
        // Stable, so equal keys keep their (deterministic) generation order.
        events.sort_by_key(|event| event.sort_key);
    }
}

/// Pushes the funnel steps that lead to an action of `kind` at `ts` (for an order: its cart,
/// click and view), each a short random gap before the next, in the same category, none before
/// `floor`.
fn push_funnel_steps(
    events: &mut Vec<Event>,
    rng: &mut ChaCha8Rng,
    ts: i64,
    kind: EventKind,
    category: u8,
    floor: i64,
) {
    let mut step_ts = ts;
    let mut step = kind;
    loop {
        let (previous, mean_gap) = match step {
            EventKind::Order => (EventKind::Cart, CART_TO_ORDER_SECONDS),
            EventKind::Cart => (EventKind::Click, CLICK_TO_CART_SECONDS),
            EventKind::Click => (EventKind::View, VIEW_TO_CLICK_SECONDS),
            EventKind::View => break,
        };
        step_ts = ActivityModel::before(rng, step_ts, mean_gap, floor);
        step = previous;
        events.push(Event::new(step_ts, step, category, 0.0));
    }
}

struct EventsBuilder {
    event_id: Int64Builder,
    user_id: Int64Builder,
    event_type: StringBuilder,
    category: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    amount: Float64Builder,
}

impl BatchBuilder for EventsBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            event_id: Int64Builder::with_capacity(rows),
            user_id: Int64Builder::with_capacity(rows),
            event_type: StringBuilder::with_capacity(rows, rows * 5),
            category: StringBuilder::with_capacity(rows, rows * 7),
            ts: TimestampMicrosecondBuilder::with_capacity(rows),
            amount: Float64Builder::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.event_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.amount.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for EventsSource {
    type Builder = EventsBuilder;

    fn append_next(&mut self, out: &mut EventsBuilder) -> bool {
        let Some((user, funnel, new_chunk)) = self.simulator.next_user() else {
            return false;
        };
        if let Some(chunk) = new_chunk {
            self.browsing_rng = stream_rng(self.simulator.seed, Stream::Browsing, chunk);
        }
        self.simulate_events(&user, funnel);
        // Column by column: tight loops over one builder each are markedly faster.
        let events = &self.events;
        let first_id = self.next_event_id;
        self.next_event_id += events.len() as i64;
        for event_id in first_id..self.next_event_id {
            out.event_id.append_value(event_id);
        }
        out.user_id.append_value_n(user.user_id, events.len());
        for event in events {
            out.event_type.append_value(event.kind().name());
        }
        for event in events {
            out.category
                .append_value(CATEGORIES[usize::from(event.category)]);
        }
        for event in events {
            out.ts.append_value(event.ts());
        }
        for event in events {
            out.amount
                .append_option((event.kind() == EventKind::Order).then_some(event.amount));
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// orders

/// Average orders per user, measured; for the progress estimate only.
const ORDERS_PER_USER: f64 = 0.78;

fn orders_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("order_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new("ts", timestamp_type(), false),
        Field::new("category", DataType::Utf8, false),
        Field::new("amount", DataType::Float64, false),
        Field::new("coupon_pool_id", DataType::Int64, true),
    ]))
}

pub(super) fn orders_table(opts: DemoOptions) -> DemoTable {
    let source = OrdersSource {
        simulator: OrderSimulator::new(opts),
        next_order_id: 1,
    };
    let estimated_rows = (opts.users as f64 * ORDERS_PER_USER) as u64;
    demo_table("orders", orders_schema(), estimated_rows, source)
}

struct OrdersSource {
    simulator: OrderSimulator,
    next_order_id: i64,
}

struct OrdersBuilder {
    order_id: Int64Builder,
    user_id: Int64Builder,
    ts: TimestampMicrosecondBuilder,
    category: StringBuilder,
    amount: Float64Builder,
    coupon_pool_id: Int64Builder,
}

impl BatchBuilder for OrdersBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            order_id: Int64Builder::with_capacity(rows),
            user_id: Int64Builder::with_capacity(rows),
            ts: TimestampMicrosecondBuilder::with_capacity(rows),
            category: StringBuilder::with_capacity(rows, rows * 7),
            amount: Float64Builder::with_capacity(rows),
            coupon_pool_id: Int64Builder::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.order_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.order_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.category.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.coupon_pool_id.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for OrdersSource {
    type Builder = OrdersBuilder;

    fn append_next(&mut self, out: &mut OrdersBuilder) -> bool {
        let Some((user, _, _)) = self.simulator.next_user() else {
            return false;
        };
        for order in &self.simulator.orders {
            out.order_id.append_value(self.next_order_id);
            out.user_id.append_value(user.user_id);
            out.ts.append_value(order.ts);
            out.category
                .append_value(CATEGORIES[usize::from(order.category)]);
            out.amount.append_value(order.amount);
            out.coupon_pool_id.append_option(order.coupon_pool_id);
            self.next_order_id += 1;
        }
        true
    }
}

// ---------------------------------------------------------------------------------------------
// campaign

/// Up to this many users, the campaign includes every user.
const CAMPAIGN_ALL_USERS_UP_TO: u64 = 10_000;

/// Share of users in the campaign beyond [`CAMPAIGN_ALL_USERS_UP_TO`].
const CAMPAIGN_SAMPLE_RATE: f64 = 0.2;

/// Average order value assumed for users without orders.
const DEFAULT_ORDER_VALUE: f64 = 150.0;

fn campaign_sample_rate(users: u64) -> f64 {
    if users <= CAMPAIGN_ALL_USERS_UP_TO {
        1.0
    } else {
        CAMPAIGN_SAMPLE_RATE
    }
}

fn campaign_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new("treatment", DataType::Int32, false),
        Field::new("recency_days", DataType::Int32, false),
        Field::new("frequency", DataType::Int32, false),
        Field::new("monetary", DataType::Float64, false),
        Field::new("age", DataType::Int32, false),
        Field::new("level", DataType::Int32, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("converted", DataType::Int32, false),
        Field::new("revenue", DataType::Float64, false),
        Field::new("true_uplift", DataType::Float64, false),
    ]))
}

pub(super) fn campaign_table(opts: DemoOptions) -> DemoTable {
    let rate = campaign_sample_rate(opts.users);
    let source = CampaignSource {
        simulator: OrderSimulator::new(opts),
        rng: stream_rng(opts.seed, Stream::Campaign, 0),
        sample_rate: rate,
    };
    let estimated_rows = (opts.users as f64 * rate) as u64;
    demo_table("campaign", campaign_schema(), estimated_rows, source)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Conversion probabilities without and with the treatment, `(p0, p1)`: the outcome model
/// documented at the top of the module.
pub(super) fn conversion_probabilities(
    recency_days: i32,
    frequency: i32,
    level: i32,
    age: i32,
) -> (f64, f64) {
    let recency = f64::from(recency_days);
    let p0 = sigmoid(
        -1.6 + 0.9 * f64::from(frequency).ln_1p() - 0.012 * recency
            + 0.12 * f64::from(level - 5)
            + 0.01 * f64::from(age - 40),
    );
    // Persuadables: recently active users of middle levels.
    let persuadability = if (3..=7).contains(&level) {
        (-recency / 30.0).exp()
    } else {
        0.0
    };
    // Sleeping dogs: high-level users who dislike promotions.
    let aversion = if level >= VIP_LEVEL { 0.20 } else { 0.0 };
    // Vanishes for sure things (p0 ≈ 1) and lost causes (p0 ≈ 0).
    let room_to_move = 4.0 * p0 * (1.0 - p0);
    let p1 = (p0 + room_to_move * (0.35 * persuadability - aversion)).clamp(0.0, 1.0);
    (p0, p1)
}

struct CampaignSource {
    simulator: OrderSimulator,
    rng: ChaCha8Rng,
    sample_rate: f64,
}

struct CampaignBuilder {
    user_id: Int64Builder,
    treatment: Int32Builder,
    recency_days: Int32Builder,
    frequency: Int32Builder,
    monetary: Float64Builder,
    age: Int32Builder,
    level: Int32Builder,
    city: StringBuilder,
    converted: Int32Builder,
    revenue: Float64Builder,
    true_uplift: Float64Builder,
}

impl BatchBuilder for CampaignBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            user_id: Int64Builder::with_capacity(rows),
            treatment: Int32Builder::with_capacity(rows),
            recency_days: Int32Builder::with_capacity(rows),
            frequency: Int32Builder::with_capacity(rows),
            monetary: Float64Builder::with_capacity(rows),
            age: Int32Builder::with_capacity(rows),
            level: Int32Builder::with_capacity(rows),
            city: StringBuilder::with_capacity(rows, rows * 8),
            converted: Int32Builder::with_capacity(rows),
            revenue: Float64Builder::with_capacity(rows),
            true_uplift: Float64Builder::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.user_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.user_id.finish()),
            Arc::new(self.treatment.finish()),
            Arc::new(self.recency_days.finish()),
            Arc::new(self.frequency.finish()),
            Arc::new(self.monetary.finish()),
            Arc::new(self.age.finish()),
            Arc::new(self.level.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.converted.finish()),
            Arc::new(self.revenue.finish()),
            Arc::new(self.true_uplift.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for CampaignSource {
    type Builder = CampaignBuilder;

    fn append_next(&mut self, out: &mut CampaignBuilder) -> bool {
        // Every user's orders are drawn, sampled or not, to stay in step with `orders`.
        let Some((user, _, new_chunk)) = self.simulator.next_user() else {
            return false;
        };
        if let Some(chunk) = new_chunk {
            self.rng = stream_rng(self.simulator.seed, Stream::Campaign, chunk);
        }
        let rng = &mut self.rng;
        if self.sample_rate < 1.0 && !rng.chance(self.sample_rate) {
            return true;
        }
        let treated = rng.chance(0.5);
        let orders = &self.simulator.orders;
        let frequency = orders.len() as i32;
        let monetary = cents(orders.iter().map(|order| order.amount).sum());
        let days_since_signup = LAST_DAY - user.signup_day;
        let recency_days = match orders.last() {
            Some(last) => LAST_DAY - day_of_micros(last.ts),
            // Never ordered since signing up during the window: the signup is the last touch.
            None if days_since_signup < ACTIVITY_DAYS => days_since_signup,
            // Ordered (if ever) before the window.
            None => (ACTIVITY_DAYS + rng.exponential(120.0) as i32).min(days_since_signup),
        };
        let (p0, p1) = conversion_probabilities(recency_days, frequency, user.level, user.age);
        let converted = rng.chance(if treated { p1 } else { p0 });
        let order_value = if frequency > 0 {
            monetary / f64::from(frequency)
        } else {
            DEFAULT_ORDER_VALUE
        };
        let revenue_noise = (0.4 * rng.normal()).exp();

        out.user_id.append_value(user.user_id);
        out.treatment.append_value(i32::from(treated));
        out.recency_days.append_value(recency_days);
        out.frequency.append_value(frequency);
        out.monetary.append_value(monetary);
        out.age.append_value(user.age);
        out.level.append_value(user.level);
        out.city.append_value(user.city_name());
        out.converted.append_value(i32::from(converted));
        out.revenue.append_value(if converted {
            cents(order_value * revenue_noise)
        } else {
            0.0
        });
        out.true_uplift.append_value(p1 - p0);
        true
    }
}

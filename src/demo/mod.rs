//! A deterministic, streaming generator of a synthetic marketing data set, for demos,
//! documentation examples and tests of every capability (audiences, identity resolution, rule
//! matching, coupons, uplift, forecasting).
//!
//! [`tables`] returns one [`DemoTable`] per table, each with a lazy iterator of Arrow record
//! batches. Nothing is generated until a batch is asked for.
//!
//! # Tables
//!
//! The data describes an online retailer on 2026-09-30: `N` users who signed up during the two
//! years before, their last 90 days of activity (2026-07-03 through 2026-09-30), and two years of
//! store sales.
//!
//! | table | one row is | rows (N = users) |
//! | --- | --- | --- |
//! | `users` | a user: `user_id` 1..=N, signup date, city (30, Zipf-popular), age, gender, level 1–10 (skewed low), acquisition channel | N |
//! | `user_identifiers` | an identifier a user owns (phone, device id, openid, email) | ≈ 3.6 N |
//! | `identity_edges` | one observation of two identifiers seen together (app login, CRM, mini program, shop) | ≈ 6.5 N |
//! | `user_tags` | a tag of a user (40 tags: interests, lifecycle, value, demographics) | ≈ 3 N |
//! | `events` | a view, click, add-to-cart or order of a product category | ≈ 20 N |
//! | `orders` | an order (the `order` events, with the coupon pool used, if any) | ≈ 0.8 N |
//! | `campaign` | a user of a past coupon campaign: randomised treatment, features, outcome | N if N ≤ 10 000, else ≈ 0.2 N |
//! | `touchpoints` | a marketing touch of a user (search, social, email, push, display, affiliate) before an order, or of a user who does not order | ≈ 2.9 N |
//! | `coupon_pools` | a coupon pool: stock, per-user limit, face value, budget, validity, status | 20 |
//! | `daily_sales` | units sold and revenue of one product in one store on one day | stores × 10 × 730 |
//!
//! Details that make the data useful for the capabilities built on it:
//!
//! - **Identity.** Most users have a phone; each has 1–3 personal devices, maybe an openid and an
//!   email. About 12% of 4-user households share a family tablet (≈ 2% of all device ids are
//!   shared by 2–4 users), `max(1, N / 20 000)` store tablets are each used by ≈ 60 users (hub
//!   nodes), ≈ 0.1% of users have the junk phone `00000000000` and ≈ 0.1% report the junk device
//!   `null`, and ≈ 1% of emails also appear with a typo in the domain (`gmial.com`) as a second
//!   email of the same user. `identity_edges` links every identifier of a user to the user's
//!   anchor (phone, else email, else openid, else first device), so shared devices and junk
//!   values connect different users: resolving edges naively over-merges.
//! - **Events.** Each user's activity is a funnel: views, some of which lead to clicks (35%),
//!   carts (35% of clicks) and orders (50% of carts), in the same category, minutes apart.
//!   Activity is heavy-tailed (a log-normal multiplier with σ = 1 on a Poisson count, ≈ 20 events
//!   per user on average), follows a daily cycle and a weekday effect, and starts no earlier than
//!   the user's signup. Each user has 1–3 preferred categories (75% of their activity). Order
//!   amounts are log-normal around a per-category median price. Within a user, events are in
//!   time order.
//! - **Tags.** `vip` is exactly the users with level ≥ 8, `new_user` exactly those who signed up
//!   in the last 30 days, `high_value` exactly the most active ≈ 5%; interest tags follow the
//!   preferred categories, demographic tags the age/gender/channel; the rest are drawn with Zipf
//!   popularity. 0–8 tags per user.
//! - **Sales.** `units = max(0, level · trend · weekly · yearly + noise)`, rounded to whole
//!   units, with a per-series level, linear trend, weekend peak, yearly sinusoid plus a peak
//!   around 11 November, and Gaussian noise. About 1% of series (at least one) are intermittent
//!   (mostly zeros); about 5% miss a few days (rows absent); about 30% of the regular series have
//!   one or two single-day spikes of 3–6× the usual level.
//! - **Touchpoints.** Each order is preceded by 1–8 touches over the days before it (after the
//!   previous order); most users without an order have a few touches in the activity window.
//!   Channels depend on a touch's place in the journey: openings are mostly `display` and
//!   `social`, closings (the touch just before an order) mostly `search` and `email`, and users
//!   who never order see mostly `display` and `social`; so first-touch, last-touch, Markov and
//!   Shapley attribution disagree. Within a user, touches are in time order (model in
//!   `touchpoints.rs`).
//!
//! # Ground truth
//!
//! Some columns are the answers that the capabilities are expected to recover:
//! - `user_identifiers` says which identifiers belong to whom; identity resolution over
//!   `identity_edges` should reproduce it without merging users through shared devices and junk
//!   values.
//! - `campaign.true_uplift` is each user's true treatment effect on the conversion probability.
//! - Spikes in `daily_sales` are the days of a regular series whose units are several times the
//!   series' usual level; anomaly detection should find them (and not the intermittent series).
//! - `orders` are exactly the `order` events: same `user_id`, `ts`, `category` and `amount`.
//!
//! # Campaign outcome model
//!
//! For a campaign user with recency `r` (days since the last order; for users without an order
//! in the window, days since signup if that is under 90 days, else 90 plus an exponential amount
//! with a 120-day mean, at most the days since signup), frequency `f` (orders in the 90 days),
//! level `L` and age `a`:
//!
//! ```text
//! p0         = sigmoid(-1.6 + 0.9·ln(1 + f) - 0.012·r + 0.12·(L - 5) + 0.01·(a - 40))
//! w          = exp(-r / 30) if 3 <= L <= 7 else 0             (persuadability: recent, mid level)
//! effect     = 4·p0·(1 - p0) · (0.35·w - 0.20·[L >= 8])
//! p1         = clamp(p0 + effect, 0, 1)
//! true_uplift = p1 - p0
//! converted  ~ Bernoulli(treatment = 1 ? p1 : p0)
//! revenue    = converted · aov · LogNormal(median 1, σ 0.4)   (aov = monetary / f, or 150 if f = 0)
//! ```
//!
//! So persuadables (recent, level 3–7) gain, sleeping dogs (level ≥ 8, who dislike promotions)
//! lose, and the factor `4·p0·(1 − p0)` makes the effect vanish for sure things (p0 near 1) and
//! lost causes (p0 near 0). Treatment is a fair coin per user.
//!
//! # Invariants
//!
//! - **Deterministic.** The same [`DemoOptions`] give identical batches, on any platform and run.
//!   All randomness comes from ChaCha8 streams keyed by (seed, stream) and selected by the chunk
//!   of 10 000 users (or the sales series), so every chunk is generated from its own stream
//!   without replaying earlier chunks. Tables that must agree replay the same streams: every
//!   user-based table regenerates the user profiles of its chunk; `events`, `orders` and
//!   `campaign` share the funnel and order streams; `touchpoints` replays them too and draws the
//!   rest from a stream of its own, so adding it changed no other table.
//! - **Bounded memory.** A table holds one chunk of user profiles (or one series) plus the batch
//!   under construction, whatever the number of users. Batches have at least 65 536 rows (except
//!   a table's last) and exceed that by at most one user's or series' rows.
//! - **Ids.** `user_id` is 1..=N; `event_id` and `order_id` are dense running counters from 1,
//!   in table order (users in id order, each user's rows in time order).

mod activity;
mod coupons;
mod identity;
mod people;
mod random;
mod sales;
mod touchpoints;
mod write;

pub use write::write;
#[cfg(test)]
mod tests;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

/// One demo table: its name, Arrow schema, an estimate of its row count (for a progress bar), and
/// a lazy generator of record batches (bounded memory: never materialises the whole table).
pub struct DemoTable {
    pub name: &'static str,
    pub schema: SchemaRef,
    pub estimated_rows: u64,
    pub batches: Box<dyn Iterator<Item = RecordBatch> + Send>,
}

impl std::fmt::Debug for DemoTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoTable")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("estimated_rows", &self.estimated_rows)
            .finish_non_exhaustive()
    }
}

/// Options: number of users and the seed. Same options → byte-identical data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    pub users: u64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            users: 100_000,
            seed: 42,
        }
    }
}

/// All demo tables, in dependency-free order (each can be generated alone, in any order).
pub fn tables(opts: DemoOptions) -> Vec<DemoTable> {
    vec![
        people::users_table(opts),
        identity::user_identifiers_table(opts),
        identity::identity_edges_table(opts),
        people::user_tags_table(opts),
        activity::events_table(opts),
        activity::orders_table(opts),
        activity::campaign_table(opts),
        touchpoints::touchpoints_table(opts),
        coupons::coupon_pools_table(opts),
        sales::daily_sales_table(opts),
    ]
}

/// Rows per batch that a table aims for; a batch is closed at the first user (or series)
/// boundary at or after this many rows.
const BATCH_ROWS: usize = 65_536;

/// Capacity reserved for a batch: the target plus room for the last unit's rows, so that the
/// builders rarely grow.
const BATCH_CAPACITY: usize = BATCH_ROWS + 4_096;

/// Users per chunk: the unit of random streams for every user-based table.
const USERS_PER_CHUNK: u64 = 10_000;

// ---------------------------------------------------------------------------------------------
// Calendar

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
const fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = (if year >= 0 { year } else { year - 399 }) / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year as i32;
    era * 146_097 + day_of_era - 719_468
}

/// The year of a day (days since 1970-01-01), inverse of [`days_from_civil`] for the year part.
fn year_of(day: i32) -> i32 {
    let shifted = day + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year_from_march =
        day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year_from_march + 2) / 153;
    // January and February belong to the next civil year in the March-based calendar.
    year_of_era + era * 400 + i32::from(month_from_march >= 10)
}

/// Day of the year, 0 for 1 January.
fn day_of_year(day: i32) -> i32 {
    day - days_from_civil(year_of(day), 1, 1)
}

/// Day of the week, 0 for Monday (1970-01-01 was a Thursday).
fn weekday(day: i32) -> usize {
    (day + 3).rem_euclid(7) as usize
}

/// 2026-09-30, the last day of the data set.
const LAST_DAY: i32 = days_from_civil(2026, 9, 30);

/// Days of user activity (events, orders, identity edges) up to and including [`LAST_DAY`].
const ACTIVITY_DAYS: i32 = 90;

/// The first day of the activity window.
const FIRST_ACTIVITY_DAY: i32 = LAST_DAY - ACTIVITY_DAYS + 1;

/// Days of history for signups and daily sales, up to and including [`LAST_DAY`].
const HISTORY_DAYS: i32 = 730;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_HOUR: i64 = 3_600 * MICROS_PER_SECOND;
const MICROS_PER_DAY: i64 = 24 * MICROS_PER_HOUR;

/// Midnight at the start of a day, in microseconds since the epoch.
const fn day_start_micros(day: i32) -> i64 {
    day as i64 * MICROS_PER_DAY
}

/// Start of the activity window (inclusive).
const ACTIVITY_START_MICROS: i64 = day_start_micros(FIRST_ACTIVITY_DAY);

/// End of the activity window (exclusive): midnight after [`LAST_DAY`].
const ACTIVITY_END_MICROS: i64 = day_start_micros(LAST_DAY + 1);

/// The day a timestamp falls on.
fn day_of_micros(ts: i64) -> i32 {
    ts.div_euclid(MICROS_PER_DAY) as i32
}

/// Rounds money to cents.
fn cents(amount: f64) -> f64 {
    (amount * 100.0).round() / 100.0
}

// ---------------------------------------------------------------------------------------------
// Batching

/// The column builders of one table's batch under construction.
trait BatchBuilder: Send + 'static {
    /// Empty builders with room for about `rows` rows.
    fn with_capacity(rows: usize) -> Self;
    /// Rows appended so far.
    fn len(&self) -> usize;
    /// The batch of the appended rows.
    fn finish(self, schema: SchemaRef) -> RecordBatch;
}

/// A table's rows, produced one unit at a time (a user's rows, a sales series...).
trait RowSource: Send + 'static {
    type Builder: BatchBuilder;
    /// Appends the rows of the next unit (possibly none) and returns true, or returns false when
    /// there are no more units.
    fn append_next(&mut self, out: &mut Self::Builder) -> bool;
}

/// Turns a [`RowSource`] into an iterator of batches of about [`BATCH_ROWS`] rows.
struct Batches<S> {
    schema: SchemaRef,
    source: S,
    exhausted: bool,
}

impl<S: RowSource> Iterator for Batches<S> {
    type Item = RecordBatch;

    fn next(&mut self) -> Option<RecordBatch> {
        if self.exhausted {
            return None;
        }
        let mut out = S::Builder::with_capacity(BATCH_CAPACITY);
        while out.len() < BATCH_ROWS {
            if !self.source.append_next(&mut out) {
                self.exhausted = true;
                break;
            }
        }
        (out.len() > 0).then(|| out.finish(self.schema.clone()))
    }
}

/// A [`DemoTable`] over a row source.
fn demo_table<S: RowSource>(
    name: &'static str,
    schema: SchemaRef,
    estimated_rows: u64,
    source: S,
) -> DemoTable {
    DemoTable {
        name,
        schema: schema.clone(),
        estimated_rows,
        batches: Box::new(Batches {
            schema,
            source,
            exhausted: false,
        }),
    }
}

/// Assembles a batch from columns built to match `schema`; a mismatch is a bug in this module.
fn batch(schema: SchemaRef, columns: Vec<datafusion::arrow::array::ArrayRef>) -> RecordBatch {
    RecordBatch::try_new(schema, columns)
        .expect("each generator builds its columns to match its own schema")
}

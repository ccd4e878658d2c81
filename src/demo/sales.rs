//! The `daily_sales` table: two years of daily units and revenue per store and product, for
//! forecasting and anomaly detection.

use std::f64::consts::TAU;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayBuilder, ArrayRef, Date32Builder, Float64Builder, Int32Builder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rand_chacha::ChaCha8Rng;

use super::random::{Draw, Stream, stream_rng};
use super::{
    BatchBuilder, DemoOptions, DemoTable, HISTORY_DAYS, LAST_DAY, RowSource, batch, cents,
    day_of_year, days_from_civil, demo_table, weekday, year_of,
};

/// Products per store.
const PRODUCTS: u32 = 10;

/// Unit price of each product.
const PRODUCT_PRICE: [f64; PRODUCTS as usize] = [
    9.9, 19.9, 29.9, 49.0, 59.0, 89.0, 129.0, 199.0, 299.0, 499.0,
];

/// Typical units per day of each product in an average store: cheaper products sell more.
const PRODUCT_LEVEL: [f64; PRODUCTS as usize] =
    [60.0, 45.0, 35.0, 25.0, 20.0, 15.0, 10.0, 8.0, 5.0, 3.0];

/// Weekly seasonality, Monday first (mean zero): the weekend peak.
const WEEKLY_SHAPE: [f64; 7] = [-0.15, -0.20, -0.15, -0.10, 0.05, 0.30, 0.25];

/// This series (store 1, product 8) is always intermittent, so that even the smallest data set
/// has one; others are with probability [`INTERMITTENT_SHARE`].
const ALWAYS_INTERMITTENT_SERIES: u64 = 7;
const INTERMITTENT_SHARE: f64 = 0.01;

/// Share of series with a few days missing (rows absent).
const GAPPY_SHARE: f64 = 0.05;

/// Share of regular series with one or two single-day spikes.
const SPIKY_SHARE: f64 = 0.3;

/// Stores for a number of users: one per 5 000 users, 5 to 200.
fn store_count(users: u64) -> u64 {
    (users / 5_000).clamp(5, 200)
}

fn daily_sales_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("store_id", DataType::Int32, false),
        Field::new("product_id", DataType::Int32, false),
        Field::new("day", DataType::Date32, false),
        Field::new("units", DataType::Float64, false),
        Field::new("revenue", DataType::Float64, false),
    ]))
}

pub(super) fn daily_sales_table(opts: DemoOptions) -> DemoTable {
    let series_count = store_count(opts.users) * u64::from(PRODUCTS);
    let first_day = LAST_DAY - HISTORY_DAYS + 1;
    let calendar = (first_day..=LAST_DAY)
        .map(|day| {
            let singles_day = days_from_civil(year_of(day), 11, 11);
            CalendarDay {
                day,
                weekday: weekday(day),
                day_of_year: day_of_year(day),
                days_from_singles_day: day - singles_day,
            }
        })
        .collect();
    let source = SalesSource {
        seed: opts.seed,
        series_count,
        next_series: 0,
        calendar,
        missing: vec![false; HISTORY_DAYS as usize],
    };
    let estimated_rows = series_count * HISTORY_DAYS as u64;
    demo_table("daily_sales", daily_sales_schema(), estimated_rows, source)
}

/// What the seasonal terms need to know about a day.
struct CalendarDay {
    day: i32,
    weekday: usize,
    /// 0 for 1 January.
    day_of_year: i32,
    /// Signed distance to 11 November of the same year (the biggest shopping day).
    days_from_singles_day: i32,
}

/// The parameters of one series.
struct SeriesModel {
    /// Units per day now, before seasonality.
    level: f64,
    /// Relative change of the level per year (the level is `level` on the last day).
    trend_per_year: f64,
    weekly_amplitude: f64,
    yearly_amplitude: f64,
    /// Day of the year of the yearly sinusoid's peak.
    yearly_peak_day: f64,
    /// Extra relative demand at the November peak.
    november_peak: f64,
    /// Standard deviation of the noise, relative to the level.
    noise: f64,
    /// For intermittent series: the chance of any demand on a day, and the mean demand size.
    intermittent: Option<(f64, f64)>,
    /// Up to two single-day spikes: (index of the day, multiple of the expected units).
    spikes: [Option<(usize, f64)>; 2],
}

impl SeriesModel {
    fn draw(rng: &mut ChaCha8Rng, seed: u64, series: u64, store: u64, product: usize) -> Self {
        // Store size is shared by the store's products: it comes from the store's own stream.
        let store_size = stream_rng(seed, Stream::Stores, store).log_normal(1.0, 0.4);
        let level = PRODUCT_LEVEL[product] * store_size * rng.log_normal(1.0, 0.25);
        let trend_per_year = 0.08 + 0.12 * rng.normal();
        let weekly_amplitude = 0.6 + 0.8 * rng.unit();
        let yearly_amplitude = 0.05 + 0.2 * rng.unit();
        let yearly_peak_day = 365.0 * rng.unit();
        let november_peak = 0.5 + rng.unit();
        let noise = 0.08 + 0.1 * rng.unit();
        let intermittent = (rng.chance(INTERMITTENT_SHARE) || series == ALWAYS_INTERMITTENT_SERIES)
            .then(|| (0.05 + 0.15 * rng.unit(), 1.0 + 3.0 * rng.unit()));
        let mut spikes = [None; 2];
        if intermittent.is_none() && rng.chance(SPIKY_SHARE) {
            let count = 1 + rng.below(2) as usize;
            for spike in &mut spikes[..count] {
                let day_index = rng.below(HISTORY_DAYS as u64) as usize;
                *spike = Some((day_index, 3.0 + 3.0 * rng.unit()));
            }
        }
        Self {
            level,
            trend_per_year,
            weekly_amplitude,
            yearly_amplitude,
            yearly_peak_day,
            november_peak,
            noise,
            intermittent,
            spikes,
        }
    }

    /// Expected units on a day, `days_before_last` days before the last one.
    fn expected_units(&self, day: &CalendarDay, days_before_last: i32) -> f64 {
        let trend = (1.0 - self.trend_per_year * f64::from(days_before_last) / 365.0).max(0.2);
        let weekly = 1.0 + self.weekly_amplitude * WEEKLY_SHAPE[day.weekday];
        let day_of_year = f64::from(day.day_of_year);
        let november = f64::from(day.days_from_singles_day) / 5.0;
        let yearly = 1.0
            + self.yearly_amplitude * (TAU * (day_of_year - self.yearly_peak_day) / 365.25).cos()
            + self.november_peak * (-0.5 * november * november).exp();
        self.level * trend * weekly * yearly
    }
}

struct SalesSource {
    seed: u64,
    series_count: u64,
    next_series: u64,
    calendar: Vec<CalendarDay>,
    /// Which days of the current series have no row (reused across series).
    missing: Vec<bool>,
}

impl SalesSource {
    /// Marks one to three gaps of one to four days as missing.
    fn draw_gaps(&mut self, rng: &mut ChaCha8Rng) {
        self.missing.fill(false);
        if !rng.chance(GAPPY_SHARE) {
            return;
        }
        for _ in 0..1 + rng.below(3) {
            let start = rng.below(HISTORY_DAYS as u64) as usize;
            let length = 1 + rng.below(4) as usize;
            let end = (start + length).min(self.missing.len());
            self.missing[start..end].fill(true);
        }
    }
}

struct SalesBuilder {
    store_id: Int32Builder,
    product_id: Int32Builder,
    day: Date32Builder,
    units: Float64Builder,
    revenue: Float64Builder,
}

impl BatchBuilder for SalesBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            store_id: Int32Builder::with_capacity(rows),
            product_id: Int32Builder::with_capacity(rows),
            day: Date32Builder::with_capacity(rows),
            units: Float64Builder::with_capacity(rows),
            revenue: Float64Builder::with_capacity(rows),
        }
    }

    fn len(&self) -> usize {
        self.store_id.len()
    }

    fn finish(mut self, schema: SchemaRef) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.store_id.finish()),
            Arc::new(self.product_id.finish()),
            Arc::new(self.day.finish()),
            Arc::new(self.units.finish()),
            Arc::new(self.revenue.finish()),
        ];
        batch(schema, columns)
    }
}

impl RowSource for SalesSource {
    type Builder = SalesBuilder;

    fn append_next(&mut self, out: &mut SalesBuilder) -> bool {
        let series = self.next_series;
        if series == self.series_count {
            return false;
        }
        self.next_series += 1;
        let store = series / u64::from(PRODUCTS);
        let product = (series % u64::from(PRODUCTS)) as usize;
        let mut rng = stream_rng(self.seed, Stream::SalesSeries, series);
        let model = SeriesModel::draw(&mut rng, self.seed, series, store, product);
        self.draw_gaps(&mut rng);
        let price = PRODUCT_PRICE[product];
        for (index, day) in self.calendar.iter().enumerate() {
            // Drawn for every day, present or not, so that a gap does not shift later draws.
            let units = match model.intermittent {
                Some((demand_chance, mean_size)) => {
                    let demand = rng.chance(demand_chance);
                    let size = 1 + rng.poisson(mean_size);
                    if demand { size as f64 } else { 0.0 }
                }
                None => {
                    let expected = model.expected_units(day, LAST_DAY - day.day);
                    let noisy = expected + model.noise * model.level * rng.normal();
                    let spike = model
                        .spikes
                        .iter()
                        .flatten()
                        .find(|(spike_day, _)| *spike_day == index);
                    match spike {
                        Some((_, multiple)) => expected * multiple,
                        None => noisy,
                    }
                    .max(0.0)
                    .round()
                }
            };
            if self.missing[index] {
                continue;
            }
            out.store_id.append_value(store as i32 + 1);
            out.product_id.append_value(product as i32 + 1);
            out.day.append_value(day.day);
            out.units.append_value(units);
            out.revenue.append_value(cents(units * price));
        }
        true
    }
}

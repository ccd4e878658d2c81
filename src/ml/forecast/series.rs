//! From the rows of one series, in any order and with holes, to the regular series the
//! models fit: equal steps, one value per step, no missing value.
//!
//! Timestamps are integer *ticks*; a [`Clock`] says how many make a day (dates count days,
//! timestamps their unit; plain integers have no calendar).
//!
//! - **The step** is the most common gap between consecutive timestamps. Every gap must be
//!   a multiple of it, or the series is refused (it is not on a grid). On a calendar, a
//!   step of 28–31 days whose timestamps keep their day of the month (or all fall on the
//!   last day of a month) is one month; 89–92 days, a quarter; 365–366 days, a year.
//! - **Missing values**: a timestamp between the first and the last observed value with
//!   no row, or whose value is NULL or NaN, is filled by the [`Fill`] policy: linear
//!   interpolation between its neighbours by default, zero, or the previous value.
//!   Values before the first and after the last observed value are dropped: a series
//!   starts at its first value and its forecast starts one step after its last value.
//! - Two rows at the same timestamp are an error (which one to believe?).
//!
//! [`Regular::observed`] remembers which values were observed, so that anomaly flags are
//! only ever raised on real observations.

use chrono::{Datelike, Months, NaiveDate};

use super::ForecastError;

/// How many ticks make a day; `None` for plain integer timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    pub ticks_per_day: Option<i64>,
}

/// The step between two values of a regular series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ticks(i64),
    Months(u32),
}

/// How the values of missing steps are made up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fill {
    /// A straight line between the neighbouring observed values.
    #[default]
    Interpolate,
    /// Zero: no row means nothing happened (sales, demand).
    Zero,
    /// The last observed value, carried forward.
    Previous,
}

impl Fill {
    pub fn parse(text: &str) -> Result<Fill, ForecastError> {
        match text.to_ascii_lowercase().as_str() {
            "interpolate" | "linear" => Ok(Fill::Interpolate),
            "zero" => Ok(Fill::Zero),
            "previous" | "forward" => Ok(Fill::Previous),
            other => Err(ForecastError::Input(format!(
                "unknown fill policy \"{other}\": use interpolate, zero or previous"
            ))),
        }
    }
}

/// A series on its grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Regular {
    /// The tick of the first value.
    pub start: i64,
    pub step: Step,
    pub values: Vec<f64>,
    /// Whether each value was observed (not filled).
    pub observed: Vec<bool>,
}

impl Regular {
    /// The tick `k` steps after the first value (`k` may pass the end: the forecast).
    pub fn tick(&self, k: usize, clock: Clock) -> i64 {
        advance(self.start, self.step, k, clock)
    }
}

/// Puts the rows `(tick, value)` of one series on their grid.
pub fn regularise(
    rows: &mut [(i64, Option<f64>)],
    clock: Clock,
    fill: Fill,
) -> Result<Regular, ForecastError> {
    rows.sort_unstable_by_key(|r| r.0);
    if let Some(pair) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(ForecastError::Input(format!(
            "two rows at the same timestamp ({})",
            pair[0].0
        )));
    }
    let known = |v: &Option<f64>| v.is_some_and(|v| v.is_finite());
    let (Some(first), Some(last)) = (
        rows.iter().position(|r| known(&r.1)),
        rows.iter().rposition(|r| known(&r.1)),
    ) else {
        return Err(ForecastError::Input("the series has no value".into()));
    };
    let rows = &rows[first..=last];
    let step = detect_step(rows, clock)?;
    let start = rows[0].0;
    let positions: Vec<usize> = rows
        .iter()
        .map(|r| position(start, r.0, step, clock))
        .collect::<Result<_, _>>()?;
    let len = positions.last().map_or(0, |p| p + 1);
    let mut values = vec![f64::NAN; len];
    let mut observed = vec![false; len];
    for (row, &at) in rows.iter().zip(&positions) {
        if let Some(v) = row.1.filter(|v| v.is_finite()) {
            values[at] = v;
            observed[at] = true;
        }
    }
    fill_gaps(&mut values, &observed, fill);
    Ok(Regular {
        start,
        step,
        values,
        observed,
    })
}

/// The most common gap, in ticks or calendar months.
fn detect_step(rows: &[(i64, Option<f64>)], clock: Clock) -> Result<Step, ForecastError> {
    let mut gaps: Vec<i64> = rows.windows(2).map(|w| w[1].0 - w[0].0).collect();
    if gaps.is_empty() {
        // One value: any step will do for its forecast; a day on a calendar, else 1.
        return Ok(Step::Ticks(clock.ticks_per_day.unwrap_or(1)));
    }
    gaps.sort_unstable();
    let mut mode = (gaps[0], 0usize);
    let mut run = (gaps[0], 0usize);
    for &g in &gaps {
        run = if g == run.0 { (g, run.1 + 1) } else { (g, 1) };
        if run.1 > mode.1 {
            mode = run;
        }
    }
    let step = mode.0;
    if let Some(day) = clock.ticks_per_day {
        let days = step / day;
        let months = match days {
            28..=31 if step % day == 0 => Some(1),
            89..=92 if step % day == 0 => Some(3),
            365..=366 if step % day == 0 => Some(12),
            _ => None,
        };
        if let Some(months) = months
            && let Some(step) = monthly_step(rows, day, months)
        {
            return Ok(step);
        }
    }
    if let Some(&bad) = gaps.iter().find(|&&g| g % step != 0) {
        return Err(ForecastError::Input(format!(
            "the timestamps are not on a regular grid: the usual step is {step} ticks, and \
             one gap is {bad}"
        )));
    }
    Ok(Step::Ticks(step))
}

/// `Step::Months(months)` when every timestamp is at the same time of day and on the same
/// day of the month (or every one on a month's last day), `months` apart or a multiple.
fn monthly_step(rows: &[(i64, Option<f64>)], day: i64, months: u32) -> Option<Step> {
    let first = civil(rows[0].0, day)?;
    let time_of_day = rows[0].0.rem_euclid(day);
    let month_end = |d: NaiveDate| d.succ_opt().is_some_and(|n| n.day() == 1);
    let all_month_ends = rows.iter().all(|r| civil(r.0, day).is_some_and(month_end));
    let base = month_index(first);
    for r in rows {
        let date = civil(r.0, day)?;
        let same_day = all_month_ends || date.day() == first.day();
        let months_apart = month_index(date) - base;
        if !same_day || r.0.rem_euclid(day) != time_of_day || months_apart % i64::from(months) != 0
        {
            return None;
        }
    }
    Some(Step::Months(months))
}

fn civil(tick: i64, ticks_per_day: i64) -> Option<NaiveDate> {
    let days = tick.div_euclid(ticks_per_day);
    NaiveDate::from_num_days_from_ce_opt(i32::try_from(days + UNIX_EPOCH_DAYS_FROM_CE).ok()?)
}

/// Days from 0001-01-01 (day 1) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i64 = 719_163;

fn month_index(date: NaiveDate) -> i64 {
    i64::from(date.year()) * 12 + i64::from(date.month0())
}

/// The grid position of `tick` in a series starting at `start`.
fn position(start: i64, tick: i64, step: Step, clock: Clock) -> Result<usize, ForecastError> {
    let steps = match step {
        Step::Ticks(s) => (tick - start) / s,
        Step::Months(m) => {
            let day = clock.ticks_per_day.unwrap_or(1);
            let (Some(a), Some(b)) = (civil(start, day), civil(tick, day)) else {
                return Err(ForecastError::Input(format!(
                    "timestamp {tick} is out of the calendar's range"
                )));
            };
            (month_index(b) - month_index(a)) / i64::from(m)
        }
    };
    usize::try_from(steps)
        .ok()
        .filter(|&s| s <= MAX_STEPS)
        .ok_or_else(|| {
            ForecastError::Input(format!(
                "the series spans {steps} steps, more than the {MAX_STEPS} a series may have"
            ))
        })
}

/// The longest grid a series may span: a guard against a stray timestamp turning a short
/// series into billions of filled values.
pub const MAX_STEPS: usize = 10_000_000;

/// The tick `k` steps after `tick`.
pub fn advance(tick: i64, step: Step, k: usize, clock: Clock) -> i64 {
    match step {
        Step::Ticks(s) => tick + s * k as i64,
        Step::Months(m) => {
            let day = clock.ticks_per_day.unwrap_or(1);
            let Some(date) = civil(tick, day) else {
                return tick;
            };
            let month_end = date.succ_opt().is_some_and(|n| n.day() == 1);
            let Some(mut next) = date.checked_add_months(Months::new(m * k as u32)) else {
                return tick;
            };
            if month_end {
                // The last day of a month stays the last day (Feb 28 -> Mar 31).
                while let Some(n) = next.succ_opt().filter(|n| n.month() == next.month()) {
                    next = n;
                }
            }
            let days = i64::from(next.num_days_from_ce()) - UNIX_EPOCH_DAYS_FROM_CE;
            days * day + tick.rem_euclid(day)
        }
    }
}

fn fill_gaps(values: &mut [f64], observed: &[bool], fill: Fill) {
    let mut previous: Option<usize> = None;
    let mut i = 0;
    while i < values.len() {
        if observed[i] {
            previous = Some(i);
            i += 1;
            continue;
        }
        // The first and last values are observed, so a gap has both neighbours.
        let before =
            previous.expect("rows are trimmed to start at a finite value: position 0 is observed");
        let after = (i..values.len())
            .find(|&j| observed[j])
            .expect("rows are trimmed to end at a finite value: the last position is observed");
        for j in i..after {
            values[j] = match fill {
                Fill::Zero => 0.0,
                Fill::Previous => values[before],
                Fill::Interpolate => {
                    let w = (j - before) as f64 / (after - before) as f64;
                    values[before] + w * (values[after] - values[before])
                }
            };
        }
        i = after;
    }
}

/// The season lengths a series of this step usually has, shortest first: a week and a
/// year of days, a day and a week of hours, a year of weeks, months or quarters.
pub fn usual_seasons(step: Step, clock: Clock) -> Vec<usize> {
    match (step, clock.ticks_per_day) {
        (Step::Months(1), _) => vec![12],
        (Step::Months(3), _) => vec![4],
        (Step::Months(_), _) => vec![],
        (Step::Ticks(s), Some(day)) if s == day => vec![7, 365],
        (Step::Ticks(s), Some(day)) if s == 7 * day => vec![52],
        (Step::Ticks(s), Some(day)) if s * 24 == day => vec![24, 168],
        _ => vec![],
    }
}

/// The candidate season lengths that show in `y`: at least two full cycles and an
/// autocorrelation at the lag significant at 90% (Bartlett's standard error, the test
/// of the Theta method's seasonality check).
pub fn detect_seasons(y: &[f64], candidates: &[usize]) -> Vec<usize> {
    candidates
        .iter()
        .copied()
        .filter(|&m| m > 1 && y.len() > 2 * m && seasonal_at(y, m))
        .collect()
}

fn seasonal_at(y: &[f64], m: usize) -> bool {
    let n = y.len() as f64;
    let mean = y.iter().sum::<f64>() / n;
    let denom: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if denom <= 0.0 {
        return false;
    }
    let acf = |lag: usize| -> f64 {
        y[lag..]
            .iter()
            .zip(y)
            .map(|(a, b)| (a - mean) * (b - mean))
            .sum::<f64>()
            / denom
    };
    let lower: f64 = (1..m).map(|k| acf(k).powi(2)).sum();
    let limit = 1.645 * ((1.0 + 2.0 * lower) / n).sqrt();
    acf(m).abs() > limit
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;
    const DAYS: Clock = Clock {
        ticks_per_day: Some(1),
    };

    fn days_since_epoch(y: i32, m: u32, d: u32) -> i64 {
        i64::from(NaiveDate::from_ymd_opt(y, m, d).unwrap().num_days_from_ce())
            - UNIX_EPOCH_DAYS_FROM_CE
    }

    #[test]
    fn gaps_and_nulls_are_interpolated_and_remembered() {
        let mut rows = vec![
            (4, Some(8.0)),
            (0, Some(0.0)),
            (1, None),
            (3, Some(f64::NAN)),
            (5, Some(10.0)),
        ];
        let r = regularise(&mut rows, DAYS, Fill::Interpolate).unwrap();
        assert_eq!(r.step, Step::Ticks(1));
        assert_eq!(r.values, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(r.observed, vec![true, false, false, false, true, true]);
        let z = regularise(&mut rows, DAYS, Fill::Zero).unwrap();
        assert_eq!(z.values, vec![0.0, 0.0, 0.0, 0.0, 8.0, 10.0]);
        let p = regularise(&mut rows, DAYS, Fill::Previous).unwrap();
        assert_eq!(p.values[..4], [0.0; 4]);
    }

    #[test]
    fn leading_and_trailing_missing_values_are_dropped() {
        let mut rows = vec![(0, None), (2, Some(1.0)), (4, Some(3.0)), (6, None)];
        let r = regularise(
            &mut rows,
            Clock {
                ticks_per_day: None,
            },
            Fill::Zero,
        )
        .unwrap();
        assert_eq!((r.start, r.step), (2, Step::Ticks(2)));
        assert_eq!(r.values, vec![1.0, 3.0]);
        assert_eq!(
            r.tick(
                2,
                Clock {
                    ticks_per_day: None
                }
            ),
            6
        );
    }

    #[test]
    fn refuses_duplicates_off_grid_and_empty_series() {
        let clock = Clock {
            ticks_per_day: None,
        };
        let dup = regularise(&mut [(1, Some(1.0)), (1, Some(2.0))], clock, Fill::Zero);
        assert!(dup.unwrap_err().to_string().contains("same timestamp"));
        let off = regularise(
            &mut [
                (0, Some(1.0)),
                (2, Some(1.0)),
                (4, Some(1.0)),
                (5, Some(1.0)),
            ],
            clock,
            Fill::Zero,
        );
        assert!(off.unwrap_err().to_string().contains("regular grid"));
        let empty = regularise(&mut [(0, None)], clock, Fill::Zero);
        assert!(empty.unwrap_err().to_string().contains("no value"));
        let huge = regularise(
            &mut [(0, Some(1.0)), (1, Some(1.0)), (i64::MAX / 2, Some(1.0))],
            clock,
            Fill::Zero,
        );
        assert!(huge.unwrap_err().to_string().contains("more than"));
    }

    #[test]
    fn months_follow_the_calendar() {
        let mut rows: Vec<(i64, Option<f64>)> = (1..=12)
            .filter(|m| *m != 5)
            .map(|m| {
                (
                    days_since_epoch(2024, m, 15) * DAY + 3_600_000_000,
                    Some(m as f64),
                )
            })
            .collect();
        let clock = Clock {
            ticks_per_day: Some(DAY),
        };
        let r = regularise(&mut rows, clock, Fill::Interpolate).unwrap();
        assert_eq!(r.step, Step::Months(1));
        assert_eq!(r.values.len(), 12);
        assert_eq!(r.values[4], 5.0);
        assert_eq!(
            r.tick(12, clock),
            days_since_epoch(2025, 1, 15) * DAY + 3_600_000_000
        );
        assert_eq!(usual_seasons(r.step, clock), vec![12]);
    }

    #[test]
    fn month_ends_stay_month_ends() {
        let mut rows: Vec<(i64, Option<f64>)> = [(1, 31), (2, 29), (3, 31), (4, 30)]
            .iter()
            .map(|&(m, d)| (days_since_epoch(2024, m, d), Some(1.0)))
            .collect();
        let r = regularise(&mut rows, DAYS, Fill::Zero).unwrap();
        assert_eq!(r.step, Step::Months(1));
        assert_eq!(r.tick(4, DAYS), days_since_epoch(2024, 5, 31));
        assert_eq!(r.tick(5, DAYS), days_since_epoch(2024, 6, 30));
    }

    #[test]
    fn quarters_and_years() {
        let mut q: Vec<(i64, Option<f64>)> = [(2023, 1), (2023, 4), (2023, 7), (2024, 1)]
            .iter()
            .map(|&(y, m)| (days_since_epoch(y, m, 1), Some(1.0)))
            .collect();
        let r = regularise(&mut q, DAYS, Fill::Zero).unwrap();
        assert_eq!((r.step, r.values.len()), (Step::Months(3), 5));
        assert_eq!(usual_seasons(r.step, DAYS), vec![4]);
    }

    #[test]
    fn detects_a_weekly_cycle_and_not_in_noise() {
        let weekly: Vec<f64> = (0..140)
            .map(|t| [1.0, 1.0, 1.0, 1.0, 2.0, 5.0, 4.0][t % 7])
            .collect();
        assert_eq!(detect_seasons(&weekly, &[7, 365]), vec![7]);
        let mut state = 7u64;
        let noise: Vec<f64> = (0..140)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as f64 / (1u64 << 31) as f64
            })
            .collect();
        assert!(detect_seasons(&noise, &[7]).is_empty());
        assert!(detect_seasons(&[3.0; 30], &[7]).is_empty());
    }
}

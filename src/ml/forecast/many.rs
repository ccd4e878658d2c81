//! Many series at once: each series is regularised ([`super::series`]), its seasons found,
//! its model fitted ([`super::choose`]) and its forecast or anomaly flags made, on every
//! core.
//!
//! Series are independent, so they are shared out to one worker thread per core, each
//! taking the next series when it finishes one (series differ a lot in cost). Results
//! come back in the input order whatever the scheduling, so a call is deterministic.
//! Workers check the cancel flag between series.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::ForecastError;
use super::choose::{ModelChoice, fit, fit_cleaned};
use super::intermittent::is_intermittent;
use super::model::FittedModel;
use super::model::{Forecast, normal_quantile};
use super::series::{Clock, Fill, Regular, detect_seasons, regularise, usual_seasons};

/// What to forecast and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastOptions {
    /// Steps to forecast past each series' last value.
    pub horizon: usize,
    /// Season lengths (in steps); `None` detects them from the step (a week and a year
    /// for daily data, a year for monthly...) and the series' autocorrelation.
    pub seasons: Option<Vec<usize>>,
    pub model: ModelChoice,
    /// Interval levels, percent.
    pub levels: Vec<f64>,
    pub fill: Fill,
    /// Replace outliers by their model's prediction and refit ([`fit_cleaned`]).
    pub clean: bool,
    pub intervals: Intervals,
}

/// Where the width of the prediction intervals comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Intervals {
    /// The model's own: normal errors with the variance the model implies (statsforecast's).
    Model,
    /// The model's, rescaled per level so that they would cover that share of the
    /// series' own one-step residuals ([`calibrate`]).
    #[default]
    Calibrated,
}

impl Intervals {
    pub fn parse(text: &str) -> Result<Intervals, ForecastError> {
        match text.to_ascii_lowercase().as_str() {
            "model" => Ok(Intervals::Model),
            "calibrated" => Ok(Intervals::Calibrated),
            other => Err(ForecastError::Input(format!(
                "unknown intervals \"{other}\": use calibrated or model"
            ))),
        }
    }
}

/// Fewer one-step residuals than this leave a model's intervals as they are: too few to
/// read a quantile from.
pub const MIN_CALIBRATION_RESIDUALS: usize = 30;

/// Rescales each interval of `forecast` about its mean by `q / (z · rms)`, where `q` is
/// the level's quantile of the absolute one-step residuals, `z` the normal quantile and
/// `rms` their root mean square. With normal residuals the factor is about 1 and the
/// model's intervals stay; when a few large residuals (a holiday peak, spikes) inflate
/// the variance, the central intervals shrink back to what ordinary steps need, and the
/// wide levels keep the tail. Intervals of non-negative data stay non-negative where the
/// model's were. Intermittent series keep their model's intervals: most of their
/// residuals are the small miss of a zero day, whose quantiles say nothing about the
/// size of a demand.
pub fn calibrate(mut forecast: Forecast, y: &[f64], fitted: &[f64]) -> Forecast {
    if is_intermittent(y) {
        return forecast;
    }
    let mut errors: Vec<f64> = y
        .iter()
        .zip(fitted)
        .map(|(v, f)| (v - f).abs())
        .filter(|e| e.is_finite())
        .collect();
    if errors.len() < MIN_CALIBRATION_RESIDUALS {
        return forecast;
    }
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    if rms.is_nan() || rms <= 0.0 {
        return forecast;
    }
    errors.sort_unstable_by(f64::total_cmp);
    let non_negative = y.iter().all(|v| *v >= 0.0);
    for interval in &mut forecast.intervals {
        let at = (interval.level / 100.0 * (errors.len() - 1) as f64).round() as usize;
        let scale = errors[at] / (normal_quantile(interval.level) * rms);
        for (i, mean) in forecast.mean.iter().enumerate() {
            let floor = if non_negative && interval.lo[i] >= 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            };
            interval.lo[i] = (mean - scale * (mean - interval.lo[i])).max(floor);
            interval.hi[i] = mean + scale * (interval.hi[i] - mean);
        }
    }
    forecast
}

impl Default for ForecastOptions {
    fn default() -> Self {
        ForecastOptions {
            horizon: 14,
            seasons: None,
            model: ModelChoice::Auto,
            levels: vec![80.0, 95.0],
            fill: Fill::Interpolate,
            clean: true,
            intervals: Intervals::Calibrated,
        }
    }
}

/// The rows of one series: `(timestamp ticks, value)`, in any order; `None` or NaN for
/// a missing value.
pub type SeriesRows = Vec<(i64, Option<f64>)>;

/// One series' forecast.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesForecast {
    /// The fitted model's name.
    pub model: String,
    /// The timestamp of each forecast step.
    pub ticks: Vec<i64>,
    pub forecast: Forecast,
}

/// Forecasts every series. A series whose values are all missing gives `Ok(None)`; one
/// that cannot be put on a grid gives its error.
///
/// ```
/// use std::sync::atomic::AtomicBool;
/// use martdb::ml::forecast::{Clock, ForecastOptions, forecast_many};
///
/// // Two weeks of a weekly pattern, as (day, value).
/// let week = [1.0, 1.0, 1.0, 1.0, 2.0, 5.0, 4.0];
/// let rows = (0..28).map(|d| (d, Some(week[d as usize % 7]))).collect();
/// let options = ForecastOptions { horizon: 7, ..ForecastOptions::default() };
/// let clock = Clock { ticks_per_day: Some(1) };
/// let out = forecast_many(vec![rows], clock, &options, &AtomicBool::new(false)).unwrap();
/// let series = out[0].as_ref().unwrap().as_ref().unwrap();
/// assert_eq!(series.ticks, (28..35).collect::<Vec<i64>>());
/// assert!((series.forecast.mean[5] - 5.0).abs() < 0.5);
/// ```
pub fn forecast_many(
    series: Vec<SeriesRows>,
    clock: Clock,
    options: &ForecastOptions,
    cancel: &AtomicBool,
) -> Result<Vec<Result<Option<SeriesForecast>, ForecastError>>, ForecastError> {
    check_levels(&options.levels)?;
    parallel_map(series, cancel, |mut rows| {
        let Some(regular) = prepare(&mut rows, clock, options.fill)? else {
            return Ok(None);
        };
        let (model, _) = fit_series(&regular, clock, options)?;
        let n = regular.values.len();
        Ok(Some(SeriesForecast {
            model: model.name(),
            ticks: (0..options.horizon)
                .map(|k| regular.tick(n + k, clock))
                .collect(),
            forecast: {
                let forecast = model.forecast(options.horizon, &options.levels);
                match options.intervals {
                    Intervals::Model => forecast,
                    Intervals::Calibrated => calibrate(forecast, &regular.values, model.fitted()),
                }
            },
        }))
    })
}

/// One observation's check against its model's in-sample interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Flag {
    pub tick: i64,
    pub value: f64,
    /// The model's one-step prediction; `None` where it makes none (the first season of
    /// a seasonal naive model).
    pub fitted: Option<f64>,
    pub lo: Option<f64>,
    pub hi: Option<f64>,
    /// Outside `[lo, hi]`.
    pub anomaly: bool,
    /// The residual in residual standard deviations: `(value - fitted) / sigma`.
    pub score: Option<f64>,
}

/// One series' observations, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesFlags {
    pub model: String,
    pub flags: Vec<Flag>,
}

/// Checks every observation of every series against the series' model: the interval at
/// `level` around the one-step prediction, `fitted ± z · sigma` with `sigma` the root mean
/// square of the residuals (statsforecast's in-sample intervals), leaving out the outliers
/// cleaned before fitting (with `clean`). Filled values are not observations and are not
/// flagged.
pub fn anomalies_many(
    series: Vec<SeriesRows>,
    clock: Clock,
    options: &ForecastOptions,
    level: f64,
    cancel: &AtomicBool,
) -> Result<Vec<Result<Option<SeriesFlags>, ForecastError>>, ForecastError> {
    check_levels(&[level])?;
    let z = normal_quantile(level);
    parallel_map(series, cancel, |mut rows| {
        let Some(regular) = prepare(&mut rows, clock, options.fill)? else {
            return Ok(None);
        };
        let (model, outliers) = fit_series(&regular, clock, options)?;
        let fitted = model.fitted();
        // The spread of the ordinary residuals: the outliers are what is being looked for,
        // and would widen the band that finds them.
        let (sum, count) = (0..regular.values.len())
            .filter(|i| fitted[*i].is_finite() && outliers.binary_search(i).is_err())
            .fold((0.0, 0usize), |(s, c), i| {
                (s + (regular.values[i] - fitted[i]).powi(2), c + 1)
            });
        let sigma = if count > 0 {
            (sum / count as f64).sqrt()
        } else {
            f64::NAN
        };
        let flags = (0..regular.values.len())
            .filter(|&i| regular.observed[i])
            .map(|i| {
                let value = regular.values[i];
                let f = fitted.get(i).copied().filter(|f| f.is_finite());
                let band = f
                    .filter(|_| sigma.is_finite())
                    .map(|f| (f - z * sigma, f + z * sigma));
                let score = f.filter(|_| sigma > 0.0).map(|f| (value - f) / sigma);
                Flag {
                    tick: regular.tick(i, clock),
                    value,
                    fitted: f,
                    lo: band.map(|b| b.0),
                    hi: band.map(|b| b.1),
                    anomaly: band.is_some_and(|(lo, hi)| value < lo || value > hi),
                    score,
                }
            })
            .collect();
        Ok(Some(SeriesFlags {
            model: model.name(),
            flags,
        }))
    })
}

/// The series' model, and the positions of the outliers cleaned before fitting it.
fn fit_series(
    regular: &Regular,
    clock: Clock,
    options: &ForecastOptions,
) -> Result<(Box<dyn FittedModel>, Vec<usize>), ForecastError> {
    let seasons = seasons_of(regular, clock, options);
    if options.clean {
        fit_cleaned(&options.model, &regular.values, &seasons, options.horizon)
    } else {
        Ok((
            fit(&options.model, &regular.values, &seasons, options.horizon)?,
            Vec::new(),
        ))
    }
}

fn check_levels(levels: &[f64]) -> Result<(), ForecastError> {
    match levels.iter().find(|l| !(**l > 0.0 && **l < 100.0)) {
        Some(bad) => Err(ForecastError::Input(format!(
            "an interval level is a percentage between 0 and 100 (exclusive), found {bad}"
        ))),
        None => Ok(()),
    }
}

fn prepare(
    rows: &mut SeriesRows,
    clock: Clock,
    fill: Fill,
) -> Result<Option<Regular>, ForecastError> {
    if !rows.iter().any(|r| r.1.is_some_and(f64::is_finite)) {
        return Ok(None);
    }
    regularise(rows, clock, fill).map(Some)
}

/// The seasons a series is fitted with: those given (that the series shows at least
/// twice), or those detected.
fn seasons_of(regular: &Regular, clock: Clock, options: &ForecastOptions) -> Vec<usize> {
    let n = regular.values.len();
    match &options.seasons {
        Some(given) => given
            .iter()
            .copied()
            .filter(|&m| m > 1 && n >= 2 * m)
            .collect(),
        None => detect_seasons(&regular.values, &usual_seasons(regular.step, clock)),
    }
}

/// `f` over every item on one worker per core, results in input order; `Cancelled` when
/// `cancel` is raised before the end.
fn parallel_map<I: Send, T: Send>(
    items: Vec<I>,
    cancel: &AtomicBool,
    f: impl Fn(I) -> T + Sync,
) -> Result<Vec<T>, ForecastError> {
    let n = items.len();
    let slots: Vec<Mutex<Option<I>>> = items.into_iter().map(|i| Mutex::new(Some(i))).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(n)
        .max(1);
    let mut done: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        if cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = slots.get(i).and_then(|s| s.lock().ok()?.take()) else {
                            break;
                        };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    if cancel.load(Ordering::Relaxed) || done.len() != n {
        return Err(ForecastError::Cancelled);
    }
    done.sort_unstable_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAYS: Clock = Clock {
        ticks_per_day: Some(1),
    };

    fn weekly(days: i64, level: f64) -> SeriesRows {
        let shape = [1.0, 1.0, 1.0, 1.0, 2.0, 5.0, 4.0];
        (0..days)
            .map(|d| {
                (
                    d,
                    Some(level * shape[d as usize % 7] + 0.01 * (d % 3) as f64),
                )
            })
            .collect()
    }

    #[test]
    fn many_series_in_input_order_with_intervals() {
        let series: Vec<SeriesRows> = (1..=20).map(|k| weekly(70, k as f64)).collect();
        let options = ForecastOptions {
            horizon: 7,
            ..ForecastOptions::default()
        };
        let out = forecast_many(series, DAYS, &options, &AtomicBool::new(false)).unwrap();
        for (k, result) in out.iter().enumerate() {
            let f = result.as_ref().unwrap().as_ref().unwrap();
            let level = (k + 1) as f64;
            // Day 75 is a Saturday-like peak: 5 x level.
            assert!(
                (f.forecast.mean[5] - 5.0 * level).abs() < 0.1 * level,
                "{k}: {f:?}"
            );
            assert_eq!(f.forecast.intervals.len(), 2);
            let (i80, i95) = (&f.forecast.intervals[0], &f.forecast.intervals[1]);
            for s in 0..7 {
                assert!(i95.lo[s] <= i80.lo[s] && i80.lo[s] <= f.forecast.mean[s]);
                assert!(i95.hi[s] >= i80.hi[s] && i80.hi[s] >= f.forecast.mean[s]);
            }
        }
    }

    #[test]
    fn empty_series_give_none_and_bad_ones_their_error() {
        let series = vec![
            vec![(0, None), (1, None)],
            vec![(0, Some(1.0)), (0, Some(2.0))],
            vec![(0, Some(3.0))],
        ];
        let out = forecast_many(
            series,
            DAYS,
            &ForecastOptions::default(),
            &AtomicBool::new(false),
        )
        .unwrap();
        assert!(out[0].as_ref().unwrap().is_none());
        assert!(
            out[1]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("same timestamp")
        );
        let single = out[2].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(single.model, "Constant");
        assert_eq!(single.forecast.mean, vec![3.0; 14]);
    }

    #[test]
    fn levels_are_checked_and_cancel_stops() {
        let bad = ForecastOptions {
            levels: vec![80.0, 100.0],
            ..ForecastOptions::default()
        };
        let err = forecast_many(vec![weekly(30, 1.0)], DAYS, &bad, &AtomicBool::new(false));
        assert!(err.unwrap_err().to_string().contains("between 0 and 100"));
        let cancelled = forecast_many(
            vec![weekly(30, 1.0)],
            DAYS,
            &ForecastOptions::default(),
            &AtomicBool::new(true),
        );
        assert!(matches!(cancelled, Err(ForecastError::Cancelled)));
    }

    #[test]
    fn a_spike_is_flagged_and_only_observations_are_checked() {
        let mut rows = weekly(84, 10.0);
        rows[60].1 = Some(200.0);
        rows.remove(30);
        let options = ForecastOptions::default();
        let out =
            anomalies_many(vec![rows], DAYS, &options, 99.0, &AtomicBool::new(false)).unwrap();
        let flags = out[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(flags.flags.len(), 83);
        assert!(flags.flags.iter().all(|f| f.tick != 30));
        let flagged: Vec<i64> = flags
            .flags
            .iter()
            .filter(|f| f.anomaly)
            .map(|f| f.tick)
            .collect();
        assert!(flagged.contains(&60), "{flagged:?}");
        let spike = flags.flags.iter().find(|f| f.tick == 60).unwrap();
        assert!(spike.score.unwrap() > 3.0);
    }
}

//! Intermittent-demand forecasts: Croston's method, its Syntetos–Boylan bias
//! correction (SBA) and Teunter–Syntetos–Babai (TSB).
//!
//! References: J. D. Croston (1972), "Forecasting and stock control for intermittent
//! demands", *Operational Research Quarterly* 23, 289–303; A. A. Syntetos and J. E.
//! Boylan (2005), "The accuracy of intermittent demand estimates", *IJF* 21, 303–314;
//! R. H. Teunter, A. A. Syntetos and M. Z. Babai (2011), "Intermittent demand: linking
//! forecasting to inventory obsolescence", *EJOR* 214, 606–615. Point forecasts and
//! in-sample predictions reproduce statsforecast 2.1's `CrostonClassic`, `CrostonSBA`
//! and `TSB(alpha_d, alpha_p)`:
//!
//! - Simple exponential smoothing (SES) here starts its level at the first value; the
//!   prediction for value `i` is the level after values `0..i`.
//! - Croston: SES with `alpha = 0.1` on the non-zero demand sizes and on the intervals
//!   between demands (counted from the start, so the first interval is the first
//!   demand's 1-based position); the forecast is size / interval. SBA multiplies it by
//!   `0.95` (`1 - alpha / 2`).
//! - TSB: SES with `alpha_p` on the demand indicator (every period) and with `alpha_d` on
//!   the sizes; the forecast is probability × size. The smoothing weights are chosen
//!   from the grid `{0.05, 0.10, ..., 0.50}²` by the in-sample one-step mean squared
//!   error (first grid point wins ties); statsforecast has no default for them.
//! - In-sample predictions: `NaN` for the first observation; between demands the size
//!   and interval estimates stay where the last demand left them, and before the first
//!   demand the size prediction is the previous value (0) and the interval 1, as
//!   statsforecast.
//!
//! Intervals (statsforecast gives these models none): normal, with `sigma` the root mean
//! square of the in-sample one-step residuals (those with a prediction) and, since the
//! forecast is a smoothed level, the SES forecast variance
//! `sd_h = sigma * sqrt(1 + (h - 1) * alpha²)` with `alpha` the demand-size weight (0.1,
//! or TSB's `alpha_d`). Demand cannot be negative, so `lo` is clipped at 0.
//!
//! Policies: negative values are an input error (these models describe non-negative
//! demand). A series without any demand forecasts 0 with zero-width intervals (Croston
//! and SBA then behave as the naive method in-sample, as statsforecast). A single
//! observation has no residuals: `sigma = 0`. [`is_intermittent`] says when these models
//! are the right family.

use super::ForecastError;
use super::model::{FittedModel, Forecast, normal_intervals};

/// Which intermittent-demand model to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntermittentMethod {
    /// Croston's method, both smoothing weights 0.1.
    Croston,
    /// Croston's method with the Syntetos–Boylan 0.95 debiasing factor.
    Sba,
    /// Teunter–Syntetos–Babai, smoothing weights chosen by in-sample MSE.
    Tsb,
}

/// Croston's (and SBA's) fixed smoothing weight, as statsforecast's `CrostonClassic`.
const CROSTON_ALPHA: f64 = 0.1;
/// The Syntetos–Boylan correction `1 - alpha / 2` for `alpha = 0.1`.
const SBA_FACTOR: f64 = 0.95;
/// Syntetos–Boylan's cut-off on the average inter-demand interval.
const ADI_CUTOFF: f64 = 1.32;

/// A fitted intermittent-demand model.
#[derive(Debug, Clone)]
pub struct Intermittent {
    method: IntermittentMethod,
    /// TSB's `(alpha_d, alpha_p)`; Croston and SBA use 0.1 for both.
    alphas: (f64, f64),
    point: f64,
    fitted: Vec<f64>,
    sigma: f64,
}

/// True when `y` looks like intermittent demand: no negative values, at least one zero,
/// and an average demand interval (observations per non-zero value) of at least 1.32,
/// Syntetos and Boylan's cut-off between smooth/erratic and intermittent/lumpy demand. A
/// series of only zeros counts as intermittent.
pub fn is_intermittent(y: &[f64]) -> bool {
    if y.is_empty() || y.iter().any(|&v| v < 0.0) {
        return false;
    }
    let demands = y.iter().filter(|&&v| v > 0.0).count();
    if demands == y.len() {
        return false;
    }
    demands == 0 || y.len() as f64 / demands as f64 >= ADI_CUTOFF
}

/// Fits `method` to the non-negative series `y`.
pub fn fit_intermittent(
    y: &[f64],
    method: IntermittentMethod,
) -> Result<Intermittent, ForecastError> {
    validate(y)?;
    match method {
        IntermittentMethod::Croston | IntermittentMethod::Sba => Ok(fit_croston(y, method)),
        IntermittentMethod::Tsb => {
            let grid: Vec<f64> = (1..=10).map(|k| 0.05 * k as f64).collect();
            let mut best = tsb_unchecked(y, grid[0], grid[0]);
            for &alpha_d in &grid {
                for &alpha_p in &grid {
                    let candidate = tsb_unchecked(y, alpha_d, alpha_p);
                    if candidate.sigma < best.sigma {
                        best = candidate;
                    }
                }
            }
            Ok(best)
        }
    }
}

/// Fits TSB with the given smoothing weights for demand size (`alpha_d`) and demand
/// probability (`alpha_p`), both in (0, 1].
pub fn fit_tsb(y: &[f64], alpha_d: f64, alpha_p: f64) -> Result<Intermittent, ForecastError> {
    validate(y)?;
    for (name, alpha) in [("alpha_d", alpha_d), ("alpha_p", alpha_p)] {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(ForecastError::Input(format!(
                "TSB {name} must lie in (0, 1], got {alpha}"
            )));
        }
    }
    Ok(tsb_unchecked(y, alpha_d, alpha_p))
}

impl Intermittent {
    /// The smoothing weights `(demand size, demand probability or interval)`.
    pub fn alphas(&self) -> (f64, f64) {
        self.alphas
    }
}

impl FittedModel for Intermittent {
    fn name(&self) -> String {
        match self.method {
            IntermittentMethod::Croston => "Croston",
            IntermittentMethod::Sba => "CrostonSBA",
            IntermittentMethod::Tsb => "TSB",
        }
        .to_string()
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let mean = vec![self.point; h];
        let alpha = self.alphas.0;
        let sd: Vec<f64> = (0..h)
            .map(|step| self.sigma * (1.0 + step as f64 * alpha * alpha).sqrt())
            .collect();
        let mut intervals = normal_intervals(&mean, &sd, levels);
        for interval in &mut intervals {
            for lo in &mut interval.lo {
                *lo = lo.max(0.0);
            }
        }
        Forecast { mean, intervals }
    }

    fn fitted(&self) -> &[f64] {
        &self.fitted
    }
}

fn validate(y: &[f64]) -> Result<(), ForecastError> {
    if y.is_empty() {
        return Err(ForecastError::Input(
            "intermittent-demand models need at least one observation".to_string(),
        ));
    }
    if y.iter().any(|&v| v < 0.0) {
        return Err(ForecastError::Input(
            "intermittent-demand models need non-negative data".to_string(),
        ));
    }
    Ok(())
}

/// Simple exponential smoothing started at the first value: the one-step predictions
/// for values `1..` (the level after each prefix) followed by the final level, which
/// forecasts the next value.
fn ses_levels(x: &[f64], alpha: f64) -> Vec<f64> {
    let mut level = x[0];
    let mut levels = Vec::with_capacity(x.len());
    for &value in x {
        level = alpha * value + (1.0 - alpha) * level;
        levels.push(level);
    }
    // levels[i] is the level after x[0..=i]; the prediction of x[i + 1].
    levels
}

/// Spreads per-demand predictions over the whole series: `after_demand[k]` is the
/// prediction once the `k`-th demand (from 0) has been seen; it holds until the next
/// demand. Before the first demand `before_first(t)` is used.
fn expand_over_time(
    y: &[f64],
    after_demand: &[f64],
    before_first: impl Fn(usize) -> f64,
) -> Vec<f64> {
    let mut out = vec![f64::NAN; y.len()];
    let mut demands_seen = 0;
    for t in 1..y.len() {
        if y[t - 1] > 0.0 {
            out[t] = after_demand[demands_seen];
            demands_seen += 1;
        } else if demands_seen > 0 {
            out[t] = out[t - 1];
        } else {
            out[t] = before_first(t);
        }
    }
    out
}

/// Root mean square of the residuals that have a prediction (0 when none has).
fn residual_sigma(y: &[f64], fitted: &[f64]) -> f64 {
    let (sum_sq, count) = y
        .iter()
        .zip(fitted)
        .filter(|(_, f)| !f.is_nan())
        .fold((0.0, 0usize), |(s, c), (v, f)| (s + (v - f).powi(2), c + 1));
    if count == 0 {
        0.0
    } else {
        (sum_sq / count as f64).sqrt()
    }
}

fn fit_croston(y: &[f64], method: IntermittentMethod) -> Intermittent {
    let factor = if method == IntermittentMethod::Sba {
        SBA_FACTOR
    } else {
        1.0
    };
    let sizes: Vec<f64> = y.iter().copied().filter(|&v| v > 0.0).collect();
    let (point, fitted): (f64, Vec<f64>) = if sizes.is_empty() {
        // No demand at all: statsforecast falls back to the naive method.
        let mut fitted = vec![f64::NAN; y.len()];
        fitted[1..].copy_from_slice(&y[..y.len() - 1]);
        (0.0, fitted.iter().map(|f| f * factor).collect())
    } else {
        let mut intervals = Vec::with_capacity(sizes.len());
        let mut last_position = 0;
        for (t, &v) in y.iter().enumerate() {
            if v > 0.0 {
                intervals.push((t + 1 - last_position) as f64);
                last_position = t + 1;
            }
        }
        let size_levels = ses_levels(&sizes, CROSTON_ALPHA);
        let interval_levels = ses_levels(&intervals, CROSTON_ALPHA);
        let point = size_levels[size_levels.len() - 1] / interval_levels[interval_levels.len() - 1];
        let size_path = expand_over_time(y, &size_levels, |t| y[t - 1]);
        let interval_path = expand_over_time(y, &interval_levels, |_| 1.0);
        let fitted = size_path
            .iter()
            .zip(&interval_path)
            .map(|(s, i)| factor * s / i)
            .collect();
        (factor * point, fitted)
    };
    let sigma = residual_sigma(y, &fitted);
    Intermittent {
        method,
        alphas: (CROSTON_ALPHA, CROSTON_ALPHA),
        point,
        fitted,
        sigma,
    }
}

fn tsb_unchecked(y: &[f64], alpha_d: f64, alpha_p: f64) -> Intermittent {
    let sizes: Vec<f64> = y.iter().copied().filter(|&v| v > 0.0).collect();
    let (point, fitted) = if sizes.is_empty() {
        let mut fitted = vec![0.0; y.len()];
        fitted[0] = f64::NAN;
        (0.0, fitted)
    } else {
        let occurred: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v > 0.0))).collect();
        let probability_levels = ses_levels(&occurred, alpha_p);
        let size_levels = ses_levels(&sizes, alpha_d);
        let size_path = expand_over_time(y, &size_levels, |t| y[t - 1]);
        let mut fitted = vec![f64::NAN; y.len()];
        for t in 1..y.len() {
            fitted[t] = probability_levels[t - 1] * size_path[t];
        }
        let point = probability_levels[y.len() - 1] * size_levels[sizes.len() - 1];
        (point, fitted)
    };
    let sigma = residual_sigma(y, &fitted);
    Intermittent {
        method: IntermittentMethod::Tsb,
        alphas: (alpha_d, alpha_p),
        point,
        fitted,
        sigma,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMAND: [f64; 12] = [0.0, 3.0, 0.0, 0.0, 5.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 4.0];

    #[test]
    fn croston_matches_statsforecast() {
        let model = fit_intermittent(&DEMAND, IntermittentMethod::Croston).unwrap();
        assert_eq!(model.name(), "Croston");
        let fc = model.forecast(3, &[80.0]);
        // statsforecast 2.1 CrostonClassic().forecast(y, h=3, fitted=True).
        let point = 1.361_740_955_335_554;
        for m in &fc.mean {
            assert!((m - point).abs() < 1e-12);
        }
        let fitted = [
            f64::NAN,
            0.0,
            1.5,
            1.5,
            1.5,
            1.523_809_523_809_523_7,
            1.547_738_693_467_336_7,
            1.547_738_693_467_336_7,
            1.442_491_210_447_011_8,
            1.442_491_210_447_011_8,
            1.442_491_210_447_011_8,
            1.442_491_210_447_011_8,
        ];
        for (got, want) in model.fitted().iter().zip(fitted) {
            assert!(got.is_nan() && want.is_nan() || (got - want).abs() < 1e-12);
        }
        let sba = fit_intermittent(&DEMAND, IntermittentMethod::Sba).unwrap();
        assert!((sba.forecast(1, &[]).mean[0] - 1.293_653_907_568_776_3).abs() < 1e-12);
    }

    #[test]
    fn tsb_matches_statsforecast_for_fixed_weights() {
        let model = fit_tsb(&DEMAND, 0.2, 0.3).unwrap();
        // statsforecast 2.1 TSB(alpha_d=0.2, alpha_p=0.3).forecast(y, h=1, fitted=True).
        assert!((model.forecast(1, &[]).mean[0] - 1.302_485_915_719_296).abs() < 1e-12);
        let fitted = [
            f64::NAN,
            0.0,
            0.9,
            0.63,
            0.441,
            1.369_86,
            1.815_933_6,
            1.271_153_52,
            1.577_684_911_2,
            1.104_379_437_84,
            0.773_065_606_488,
            0.541_145_924_541_6,
        ];
        for (got, want) in model.fitted().iter().zip(fitted) {
            assert!(got.is_nan() && want.is_nan() || (got - want).abs() < 1e-12);
        }
        assert!(fit_tsb(&DEMAND, 0.0, 0.3).is_err());
    }

    #[test]
    fn tsb_grid_search_picks_the_lowest_in_sample_error() {
        let chosen = fit_intermittent(&DEMAND, IntermittentMethod::Tsb).unwrap();
        let (alpha_d, alpha_p) = chosen.alphas();
        for k in 1..=10 {
            let other = fit_tsb(&DEMAND, 0.05 * k as f64, alpha_p).unwrap();
            assert!(chosen.sigma <= other.sigma);
            let other = fit_tsb(&DEMAND, alpha_d, 0.05 * k as f64).unwrap();
            assert!(chosen.sigma <= other.sigma);
        }
    }

    #[test]
    fn intervals_are_non_negative_and_widen() {
        let model = fit_intermittent(&DEMAND, IntermittentMethod::Sba).unwrap();
        let fc = model.forecast(10, &[95.0]);
        let interval = &fc.intervals[0];
        assert!(interval.lo.iter().all(|&lo| lo == 0.0));
        assert!(interval.hi[9] > interval.hi[0]);
        for i in 0..10 {
            assert!(interval.lo[i] <= fc.mean[i] && fc.mean[i] <= interval.hi[i]);
        }
    }

    #[test]
    fn no_demand_and_bad_input() {
        let zeros = [0.0; 6];
        for method in [
            IntermittentMethod::Croston,
            IntermittentMethod::Sba,
            IntermittentMethod::Tsb,
        ] {
            let model = fit_intermittent(&zeros, method).unwrap();
            let fc = model.forecast(2, &[80.0]);
            assert_eq!(fc.mean, vec![0.0, 0.0]);
            assert_eq!(fc.intervals[0].hi, vec![0.0, 0.0]);
        }
        assert!(fit_intermittent(&[], IntermittentMethod::Croston).is_err());
        assert!(fit_intermittent(&[1.0, -1.0], IntermittentMethod::Tsb).is_err());
        let single = fit_intermittent(&[2.0], IntermittentMethod::Croston).unwrap();
        assert!((single.forecast(1, &[]).mean[0] - 2.0).abs() < 1e-12);
    }

    #[test]
    fn intermittency_rule() {
        assert!(is_intermittent(&DEMAND));
        assert!(is_intermittent(&[0.0, 0.0]));
        assert!(!is_intermittent(&[1.0, 2.0, 3.0]));
        // One zero in four: ADI 4/3 >= 1.32, but one in five: ADI 1.25 is smooth.
        assert!(is_intermittent(&[1.0, 0.0, 2.0, 3.0]));
        assert!(!is_intermittent(&[1.0, 0.0, 2.0, 3.0, 4.0]));
        assert!(!is_intermittent(&[0.0, -1.0, 0.0]));
        assert!(!is_intermittent(&[]));
    }
}

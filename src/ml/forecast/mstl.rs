//! MSTL: decomposition into several seasonal components by repeated STL, and the
//! forecast that continues each season and hands the rest to a non-seasonal model.
//!
//! Reference: K. Bandara, R. J. Hyndman and C. Bergmeir (2021), "MSTL: A
//! Seasonal-Trend Decomposition Algorithm for Time Series with Multiple Seasonal
//! Patterns", arXiv:2107.13462. The decomposition reproduces statsforecast 2.1's `mstl`
//! (equal to `statsmodels.tsa.seasonal.MSTL` with `stl_kwargs={"seasonal_deg": 0}`), the
//! forecast statsforecast's `MSTL(season_length=[...], trend_forecaster=...)`:
//!
//! - The periods are sorted ascending; the `i`-th (from 0) gets an STL seasonal window of
//!   `11 + 4 i` (R's `forecast::mstl`), a locally constant seasonal LOESS and otherwise
//!   statsmodels' STL defaults (not robust, 5 inner passes).
//! - With one period, one STL. With several, two sweeps: each sweep adds the period's
//!   current seasonal component back, re-estimates it by STL and removes it again. The
//!   trend is the last STL's trend; the remainder is what is left.
//! - The deseasonalised series (trend + remainder) is fitted by the caller's non-seasonal
//!   model; the forecast adds to its mean and to both ends of its intervals the last
//!   cycle of each seasonal component, repeated. The in-sample predictions are the trend
//!   model's plus the seasonal components.
//!
//! Policies: periods below 2 carry no season and are dropped; so are repeated periods and,
//! as `statsmodels`' MSTL does, periods with fewer than two full cycles in the data
//! (`2 * period >= n`; statsforecast would hand such a period to STL regardless). When
//! no period remains the series is not decomposed: the seasonal components are empty and
//! the trend model is fitted to `y` itself, so the forecast is the trend model's. Errors
//! from the trend model are passed on. Constant series give zero seasonal components.

use super::ForecastError;
use super::model::{FittedModel, Forecast};
use super::stl::{StlConfig, stl};

/// The components of an MSTL decomposition: one seasonal series per kept period (in
/// ascending period order), a trend and a remainder, each one value per observation.
#[derive(Debug, Clone, PartialEq)]
pub struct MstlDecomposition {
    pub periods: Vec<usize>,
    pub seasonal: Vec<Vec<f64>>,
    pub trend: Vec<f64>,
    pub remainder: Vec<f64>,
}

/// Decomposes `y` into one seasonal component per usable period in `periods`, a trend
/// and a remainder, as statsforecast's `mstl`.
pub fn mstl_decompose(y: &[f64], periods: &[usize]) -> Result<MstlDecomposition, ForecastError> {
    if y.is_empty() {
        return Err(ForecastError::Input(
            "MSTL needs at least one observation".to_string(),
        ));
    }
    let n = y.len();
    let mut kept: Vec<usize> = periods
        .iter()
        .copied()
        .filter(|&p| p >= 2 && 2 * p < n)
        .collect();
    kept.sort_unstable();
    kept.dedup();
    if kept.is_empty() {
        return Ok(MstlDecomposition {
            periods: kept,
            seasonal: Vec::new(),
            trend: y.to_vec(),
            remainder: vec![0.0; n],
        });
    }
    let sweeps = if kept.len() == 1 { 1 } else { 2 };
    let mut seasonal = vec![vec![0.0; n]; kept.len()];
    let mut deseasonalised = y.to_vec();
    let mut trend = Vec::new();
    for _ in 0..sweeps {
        for (index, &period) in kept.iter().enumerate() {
            for (d, s) in deseasonalised.iter_mut().zip(&seasonal[index]) {
                *d += s;
            }
            let config = StlConfig {
                seasonal: 11 + 4 * index,
                seasonal_deg: 0,
                ..StlConfig::new(period)
            };
            let fit = stl(&deseasonalised, &config)?;
            for (d, s) in deseasonalised.iter_mut().zip(&fit.seasonal) {
                *d -= s;
            }
            seasonal[index] = fit.seasonal;
            trend = fit.trend;
        }
    }
    let remainder = deseasonalised
        .iter()
        .zip(&trend)
        .map(|(d, t)| d - t)
        .collect();
    Ok(MstlDecomposition {
        periods: kept,
        seasonal,
        trend,
        remainder,
    })
}

/// Fits the non-seasonal model for the deseasonalised series (e.g. a non-seasonal ETS).
pub type TrendFitter = dyn Fn(&[f64]) -> Result<Box<dyn FittedModel>, ForecastError>;

/// An MSTL decomposition with a fitted model for its deseasonalised series.
pub struct Mstl {
    decomposition: MstlDecomposition,
    trend_remainder: Vec<f64>,
    trend_model: Box<dyn FittedModel>,
    fitted: Vec<f64>,
}

/// Decomposes `y` with MSTL on `season_lengths` and fits `trend` (a non-seasonal model)
/// to the deseasonalised series.
pub fn fit_mstl(
    y: &[f64],
    season_lengths: &[usize],
    trend: &TrendFitter,
) -> Result<Mstl, ForecastError> {
    let decomposition = mstl_decompose(y, season_lengths)?;
    let trend_remainder: Vec<f64> = decomposition
        .trend
        .iter()
        .zip(&decomposition.remainder)
        .map(|(t, r)| t + r)
        .collect();
    let trend_model = trend(&trend_remainder)?;
    let mut fitted = trend_model.fitted().to_vec();
    for component in &decomposition.seasonal {
        for (f, s) in fitted.iter_mut().zip(component) {
            *f += s;
        }
    }
    Ok(Mstl {
        decomposition,
        trend_remainder,
        trend_model,
        fitted,
    })
}

impl Mstl {
    /// The seasonal components, one per kept period (see [`Mstl::periods`]).
    pub fn seasonal(&self) -> &[Vec<f64>] {
        &self.decomposition.seasonal
    }

    /// The deseasonalised series (trend + remainder) the trend model was fitted to.
    pub fn trend_remainder(&self) -> &[f64] {
        &self.trend_remainder
    }

    /// The periods actually decomposed, ascending.
    pub fn periods(&self) -> &[usize] {
        &self.decomposition.periods
    }

    /// The full decomposition (trend and remainder separately).
    pub fn decomposition(&self) -> &MstlDecomposition {
        &self.decomposition
    }

    /// Each seasonal component continued `h` steps by repeating its last cycle, summed.
    fn seasonal_forecast(&self, h: usize) -> Vec<f64> {
        let mut total = vec![0.0; h];
        for (component, &period) in self.seasonal().iter().zip(self.periods()) {
            let last_cycle = &component[component.len() - period..];
            for (step, value) in total.iter_mut().enumerate() {
                *value += last_cycle[step % period];
            }
        }
        total
    }
}

impl FittedModel for Mstl {
    fn name(&self) -> String {
        format!("MSTL({})", self.trend_model.name())
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let mut forecast = self.trend_model.forecast(h, levels);
        let seasonal = self.seasonal_forecast(h);
        let shift = |values: &mut Vec<f64>| {
            for (v, s) in values.iter_mut().zip(&seasonal) {
                *v += s;
            }
        };
        shift(&mut forecast.mean);
        for interval in &mut forecast.intervals {
            shift(&mut interval.lo);
            shift(&mut interval.hi);
        }
        forecast
    }

    fn fitted(&self) -> &[f64] {
        &self.fitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::forecast::naive::seasonal_naive;

    fn naive_trend(x: &[f64]) -> Result<Box<dyn FittedModel>, ForecastError> {
        Ok(Box::new(seasonal_naive(x, 1)?))
    }

    /// A weekly and a 30-step cycle on a gentle line, 120 steps.
    fn two_cycles() -> Vec<f64> {
        (0..120)
            .map(|t| {
                let t = t as f64;
                50.0 + 0.1 * t
                    + 5.0 * (2.0 * std::f64::consts::PI * t / 7.0).sin()
                    + 8.0 * (2.0 * std::f64::consts::PI * t / 30.0).cos()
            })
            .collect()
    }

    #[test]
    fn components_add_up_and_capture_both_cycles() {
        let y = two_cycles();
        let model = fit_mstl(&y, &[30, 7], &naive_trend).unwrap();
        assert_eq!(model.periods(), &[7, 30]);
        assert_eq!(model.name(), "MSTL(Naive)");
        let d = model.decomposition();
        for (t, value) in y.iter().enumerate() {
            let total = d.seasonal[0][t] + d.seasonal[1][t] + d.trend[t] + d.remainder[t];
            assert!((total - value).abs() < 1e-9);
            assert!((model.trend_remainder()[t] - (d.trend[t] + d.remainder[t])).abs() < 1e-12);
        }
        // The middle of the series is far from the end effects: the components follow
        // the generating sines closely.
        for t in 40..80 {
            let tf = t as f64;
            let weekly = 5.0 * (2.0 * std::f64::consts::PI * tf / 7.0).sin();
            let monthly = 8.0 * (2.0 * std::f64::consts::PI * tf / 30.0).cos();
            assert!((d.seasonal[0][t] - weekly).abs() < 0.5, "t={t}");
            assert!((d.seasonal[1][t] - monthly).abs() < 0.8, "t={t}");
        }
    }

    #[test]
    fn forecast_is_trend_forecast_plus_repeated_last_cycles() {
        let y = two_cycles();
        let model = fit_mstl(&y, &[7, 30], &naive_trend).unwrap();
        let fc = model.forecast(40, &[80.0]);
        let last_level = *model.trend_remainder().last().unwrap();
        let n = y.len();
        for step in 0..40 {
            let seasonal =
                model.seasonal()[0][n - 7 + step % 7] + model.seasonal()[1][n - 30 + step % 30];
            assert!((fc.mean[step] - (last_level + seasonal)).abs() < 1e-12);
            assert!(fc.intervals[0].lo[step] < fc.mean[step]);
            assert!(fc.intervals[0].hi[step] > fc.mean[step]);
        }
        // Naive trend intervals widen with the horizon, and the shift keeps their width.
        let width = |i: usize| fc.intervals[0].hi[i] - fc.intervals[0].lo[i];
        assert!(width(39) > width(0));
        let fitted = model.fitted();
        assert!(fitted[0].is_nan());
        let expected = model.trend_remainder()[4] + model.seasonal()[0][5] + model.seasonal()[1][5];
        assert!((fitted[5] - expected).abs() < 1e-12);
    }

    #[test]
    fn drops_periods_without_two_cycles() {
        let y = two_cycles();
        let model = fit_mstl(&y, &[7, 60, 365, 1, 7], &naive_trend).unwrap();
        assert_eq!(model.periods(), &[7]);
        let none = fit_mstl(&y[..10], &[7], &naive_trend).unwrap();
        assert!(none.seasonal().is_empty());
        assert_eq!(none.trend_remainder(), &y[..10]);
        assert_eq!(none.forecast(3, &[]).mean, vec![y[9]; 3]);
    }

    #[test]
    fn any_length_and_period_mix_fits_without_panicking() {
        let y = two_cycles();
        for n in 1..=y.len() {
            for periods in [&[2][..], &[3, 5], &[7, 12, 30], &[4, 4, 1], &[0]] {
                let model = fit_mstl(&y[..n], periods, &naive_trend).unwrap();
                assert!(model.periods().iter().all(|&p| 2 * p < n));
                let fc = model.forecast(5, &[80.0]);
                assert!(fc.mean.iter().all(|m| m.is_finite()), "n={n} {periods:?}");
                assert_eq!(model.fitted().len(), n);
            }
        }
    }

    #[test]
    fn constant_series_and_errors() {
        let y = vec![4.0; 50];
        let model = fit_mstl(&y, &[7], &naive_trend).unwrap();
        assert!(model.seasonal()[0].iter().all(|s| s.abs() < 1e-12));
        assert!(
            model
                .forecast(5, &[95.0])
                .mean
                .iter()
                .all(|m| (m - 4.0).abs() < 1e-12)
        );
        assert!(fit_mstl(&[], &[7], &naive_trend).is_err());
        let failing = |_: &[f64]| -> Result<Box<dyn FittedModel>, ForecastError> {
            Err(ForecastError::Input("no".to_string()))
        };
        assert!(fit_mstl(&y, &[7], &failing).is_err());
    }
}

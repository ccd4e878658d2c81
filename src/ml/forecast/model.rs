//! What every forecasting model gives back, so that the series driver, the automatic
//! choice, the anomaly flags and the SQL functions treat them alike.
//!
//! Invariants: a [`Forecast`] has `mean.len() == h` and one [`Interval`] per requested
//! level, in the order requested, each with `lo.len() == hi.len() == h` and
//! `lo <= mean <= hi` where the values are finite. [`FittedModel::fitted`] has one value
//! per observation (`NaN` where the model makes no one-step prediction, e.g. the first
//! season of a seasonal naive model).

use crate::ml::stats::distributions::normal_isf;

/// A point forecast `h` steps ahead and its prediction intervals.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    pub mean: Vec<f64>,
    pub intervals: Vec<Interval>,
}

/// The central prediction interval at `level` percent (e.g. 80.0) for each step.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub level: f64,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

/// A model fitted to one regular series (equal steps, no missing values).
pub trait FittedModel: Send + Sync {
    /// What was fitted, as users read it: `ETS(M,Ad,M)`, `Theta`, `SeasonalNaive`...
    fn name(&self) -> String;
    /// The forecast `h` steps past the last observation, with intervals at `levels`
    /// (percentages in (0, 100)).
    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast;
    /// The in-sample one-step-ahead predictions, one per observation.
    fn fitted(&self) -> &[f64];
}

/// The standard normal quantile that leaves `(100 - level) / 2` percent in each tail:
/// 1.2816 for 80, 1.9600 for 95.
pub fn normal_quantile(level: f64) -> f64 {
    normal_isf((100.0 - level) / 200.0)
}

/// Intervals `mean ± z(level) · sd[i]` for each level, from the forecast standard
/// deviation of each step.
pub fn normal_intervals(mean: &[f64], sd: &[f64], levels: &[f64]) -> Vec<Interval> {
    levels
        .iter()
        .map(|&level| {
            let z = normal_quantile(level);
            Interval {
                level,
                lo: mean.iter().zip(sd).map(|(m, s)| m - z * s).collect(),
                hi: mean.iter().zip(sd).map(|(m, s)| m + z * s).collect(),
            }
        })
        .collect()
}

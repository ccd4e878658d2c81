//! Benchmark forecasts: the (seasonal) naive method and the historic average.
//!
//! Follows statsforecast 2.1 (`SeasonalNaive`, `Naive`, `HistoricAverage`) and
//! Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, §5.2 and §5.5.
//!
//! - Seasonal naive with season length `m` (`m = 1` is the naive method): the forecast
//!   for step `h` is the last observation in the same season, `y[n - m + (h - 1) % m]`;
//!   the in-sample one-step prediction is `y[t - m]` (`NaN` for the first `m`
//!   observations). The residual standard deviation is
//!   `sigma = sqrt(sum(residual²) / (n - m))` and the forecast standard deviation at step
//!   `h` is `sigma * sqrt(floor((h - 1) / m) + 1)`, as statsforecast.
//! - Historic average: the forecast and every in-sample prediction are the mean;
//!   `sigma = sqrt(sum(residual²) / (n - 1))` and the forecast standard deviation is the
//!   constant `sigma * sqrt(1 + 1 / n)`.
//!
//! Policies: a seasonal naive model needs at least one full season (`n >= m`), otherwise
//! it returns an error (the caller may fall back to `m = 1`). With exactly one season
//! (`n == m`) there are no residuals and, as statsforecast, `sigma` is 0 so the intervals
//! collapse onto the forecast; the same holds for a single observation. Constant series
//! are fine (zero-width intervals). Any finite data are accepted, negatives included.

use super::ForecastError;
use super::model::{FittedModel, Forecast, normal_intervals};

/// A fitted seasonal naive (or, with season length 1, naive) model.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    season_length: usize,
    /// The last full season, in time order; step `h` repeats `last_season[(h - 1) % m]`.
    last_season: Vec<f64>,
    fitted: Vec<f64>,
    sigma: f64,
}

/// Fits the seasonal naive method with `season_length` observations per cycle
/// (`1` = the naive method, last value carried forward).
pub fn seasonal_naive(y: &[f64], season_length: usize) -> Result<SeasonalNaive, ForecastError> {
    if season_length == 0 {
        return Err(ForecastError::Input(
            "season length must be at least 1".to_string(),
        ));
    }
    if y.len() < season_length {
        return Err(ForecastError::Input(format!(
            "seasonal naive needs at least one full season: {} observations, season length {}",
            y.len(),
            season_length
        )));
    }
    let n = y.len();
    let fitted: Vec<f64> = (0..n)
        .map(|t| {
            if t >= season_length {
                y[t - season_length]
            } else {
                f64::NAN
            }
        })
        .collect();
    let sum_sq: f64 = y
        .iter()
        .zip(&fitted)
        .skip(season_length)
        .map(|(obs, pred)| (obs - pred).powi(2))
        .sum();
    let residual_count = n - season_length;
    let sigma = if residual_count > 0 {
        (sum_sq / residual_count as f64).sqrt()
    } else {
        0.0
    };
    Ok(SeasonalNaive {
        season_length,
        last_season: y[n - season_length..].to_vec(),
        fitted,
        sigma,
    })
}

impl SeasonalNaive {
    /// The standard deviation of the in-sample residuals (divisor `n - m`).
    pub fn sigma(&self) -> f64 {
        self.sigma
    }
}

impl FittedModel for SeasonalNaive {
    fn name(&self) -> String {
        if self.season_length == 1 {
            "Naive".to_string()
        } else {
            "SeasonalNaive".to_string()
        }
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let m = self.season_length;
        let mean: Vec<f64> = (0..h).map(|step| self.last_season[step % m]).collect();
        // Each full season ahead adds one more independent seasonal-difference error.
        let sd: Vec<f64> = (0..h)
            .map(|step| self.sigma * ((step / m) as f64 + 1.0).sqrt())
            .collect();
        let intervals = normal_intervals(&mean, &sd, levels);
        Forecast { mean, intervals }
    }

    fn fitted(&self) -> &[f64] {
        &self.fitted
    }
}

/// A fitted historic average (mean) model.
#[derive(Debug, Clone)]
pub struct HistoricAverage {
    mean: f64,
    fitted: Vec<f64>,
    forecast_sd: f64,
}

/// Fits the historic average: every forecast is the mean of all observations.
pub fn historic_average(y: &[f64]) -> Result<HistoricAverage, ForecastError> {
    if y.is_empty() {
        return Err(ForecastError::Input(
            "historic average needs at least one observation".to_string(),
        ));
    }
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let sum_sq: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    let sigma = if n > 1 {
        (sum_sq / (n - 1) as f64).sqrt()
    } else {
        0.0
    };
    Ok(HistoricAverage {
        mean,
        fitted: vec![mean; n],
        // The estimated mean itself is uncertain: variance sigma² / n on top of sigma².
        forecast_sd: sigma * (1.0 + 1.0 / n as f64).sqrt(),
    })
}

impl FittedModel for HistoricAverage {
    fn name(&self) -> String {
        "HistoricAverage".to_string()
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let mean = vec![self.mean; h];
        let sd = vec![self.forecast_sd; h];
        let intervals = normal_intervals(&mean, &sd, levels);
        Forecast { mean, intervals }
    }

    fn fitted(&self) -> &[f64] {
        &self.fitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERIES: [f64; 10] = [1.0, 3.0, 2.0, 5.0, 4.0, 6.0, 5.0, 8.0, 7.0, 9.0];

    #[test]
    fn naive_repeats_last_value_and_widens_with_sqrt_h() {
        let model = seasonal_naive(&SERIES, 1).unwrap();
        assert_eq!(model.name(), "Naive");
        let fc = model.forecast(4, &[80.0, 95.0]);
        assert_eq!(fc.mean, vec![9.0; 4]);
        assert!(model.fitted()[0].is_nan());
        assert_eq!(&model.fitted()[1..], &SERIES[..9]);
        // Numbers from statsforecast 2.1 Naive().forecast(y, h=4, level=[80, 95]).
        let lo80 = [
            6.509_111_490_2,
            5.477_351_687_1,
            4.685_654_545,
            4.018_222_980_4,
        ];
        let hi95 = [
            12.809_485_236_5,
            14.387_425_687_1,
            15.598_221_980_3,
            16.618_970_473,
        ];
        for step in 0..4 {
            assert!((fc.intervals[0].lo[step] - lo80[step]).abs() < 1e-6);
            assert!((fc.intervals[1].hi[step] - hi95[step]).abs() < 1e-6);
        }
    }

    #[test]
    fn seasonal_naive_repeats_the_last_season_exactly() {
        let pattern = [10.0, 20.0, 15.0, 5.0];
        let y: Vec<f64> = (0..12).map(|t| pattern[t % 4]).collect();
        let model = seasonal_naive(&y, 4).unwrap();
        let fc = model.forecast(9, &[90.0]);
        let expected: Vec<f64> = (0..9).map(|t| pattern[t % 4]).collect();
        assert_eq!(fc.mean, expected);
        // A perfectly periodic series has no residuals: zero-width intervals.
        assert_eq!(model.sigma(), 0.0);
        assert_eq!(fc.intervals[0].lo, expected);
        assert!(model.fitted()[..4].iter().all(|v| v.is_nan()));
        assert_eq!(&model.fitted()[4..], &y[..8]);
    }

    #[test]
    fn seasonal_naive_sd_steps_up_once_per_season() {
        let model = seasonal_naive(&SERIES, 3).unwrap();
        let fc = model.forecast(7, &[80.0]);
        let z = 1.281_551_565_544_600_5;
        let widths: Vec<f64> = (0..7)
            .map(|i| (fc.intervals[0].hi[i] - fc.mean[i]) / (z * model.sigma()))
            .collect();
        let expected = [
            1.0,
            1.0,
            1.0,
            2f64.sqrt(),
            2f64.sqrt(),
            2f64.sqrt(),
            3f64.sqrt(),
        ];
        for (w, e) in widths.iter().zip(expected) {
            assert!((w - e).abs() < 1e-12);
        }
        assert_eq!(fc.mean, vec![8.0, 7.0, 9.0, 8.0, 7.0, 9.0, 8.0]);
        // statsforecast 2.1 SeasonalNaive(3).forecast(y, h=7, level=[80]).
        let lo80 = [
            4.064_870_461_4,
            3.064_870_461_4,
            5.064_870_461_4,
            2.434_886_436_8,
            1.434_886_436_8,
            3.434_886_436_8,
            1.184_155_704_7,
        ];
        for (got, want) in fc.intervals[0].lo.iter().zip(lo80) {
            assert!((got - want).abs() < 1e-8);
        }
    }

    #[test]
    fn short_or_degenerate_inputs() {
        assert!(seasonal_naive(&[1.0, 2.0], 3).is_err());
        assert!(seasonal_naive(&[1.0, 2.0], 0).is_err());
        let one = seasonal_naive(&[4.0], 1).unwrap();
        let fc = one.forecast(2, &[95.0]);
        assert_eq!(fc.mean, vec![4.0, 4.0]);
        assert_eq!(fc.intervals[0].hi, vec![4.0, 4.0]);
        assert!(historic_average(&[]).is_err());
        let single = historic_average(&[2.5]).unwrap();
        assert_eq!(single.forecast(1, &[80.0]).intervals[0].lo, vec![2.5]);
    }

    #[test]
    fn historic_average_matches_statsforecast() {
        let model = historic_average(&SERIES).unwrap();
        let fc = model.forecast(3, &[80.0]);
        assert_eq!(fc.mean, vec![5.0; 3]);
        assert_eq!(model.fitted(), &[5.0; 10]);
        // statsforecast 2.1 HistoricAverage().forecast(y, h=3, level=[80]).
        for step in 0..3 {
            assert!((fc.intervals[0].lo[step] - 1.529_541_954_7).abs() < 1e-6);
            assert!((fc.intervals[0].hi[step] - 8.470_458_045_3).abs() < 1e-6);
        }
    }
}

//! STL: seasonal-trend decomposition by LOESS.
//!
//! Reference: R. B. Cleveland, W. S. Cleveland, J. E. McRae and I. Terpenning (1990),
//! "STL: A Seasonal-Trend Decomposition Procedure Based on Loess", *Journal of Official
//! Statistics* 6, 3–73. The arithmetic follows the NETLIB Fortran as ported by
//! statsmodels 0.15 (`statsmodels.tsa.seasonal.STL`), including its fixed median in the
//! robustness weights, so that the components agree with statsmodels to rounding.
//!
//! The series is split as `y = seasonal + trend + remainder`. Each inner pass smooths
//! every cycle-subseries (all Januaries, ...) with LOESS of window `seasonal`, extended
//! one cycle at each end; removes the low-frequency part of that with three moving
//! averages and a LOESS of window `low_pass`; and smooths the deseasonalised series with a
//! LOESS of window `trend`. Robust fitting repeats this with bisquare weights on the
//! remainder.
//!
//! Defaults ([`StlConfig::new`]) are statsmodels': seasonal window 7, seasonal degree 1,
//! trend window the smallest odd integer `>= 1.5 * period / (1 - 1.5 / seasonal)`,
//! low-pass window the smallest odd integer `> period`, not robust, 5 inner iterations
//! and 0 outer (robust: 2 inner, 15 outer). The trend and low-pass LOESS are always
//! locally linear and every LOESS is evaluated at every point (statsmodels' `*_deg = 1`
//! and `*_jump = 1`).
//!
//! Policies: `period >= 2` and at least two full cycles (`n >= 2 * period`) are required,
//! windows must be odd and at least 3, the trend and low-pass windows must exceed the
//! period, and the seasonal degree must be 0 or 1; anything else is an input error. A
//! constant series decomposes into a constant trend and zero seasonal and remainder.

use super::ForecastError;

/// The settings of one STL decomposition (statsmodels' `STL` arguments).
#[derive(Debug, Clone, PartialEq)]
pub struct StlConfig {
    /// Observations per cycle, at least 2.
    pub period: usize,
    /// Length of the seasonal (cycle-subseries) smoother: odd, at least 3.
    pub seasonal: usize,
    /// Degree of the seasonal LOESS: 0 (local constant) or 1 (local line).
    pub seasonal_deg: usize,
    /// Length of the trend smoother; `None` derives it from `period` and `seasonal`.
    pub trend: Option<usize>,
    /// Length of the low-pass filter's LOESS; `None` = the smallest odd integer > period.
    pub low_pass: Option<usize>,
    /// Down-weight outliers with bisquare weights on the remainder.
    pub robust: bool,
    /// Seasonal/trend passes per robustness iteration; `None` = 2 if robust, else 5.
    pub inner_iter: Option<usize>,
    /// Robustness iterations; `None` = 15 if robust, else 0.
    pub outer_iter: Option<usize>,
}

impl StlConfig {
    /// statsmodels' defaults for `period`.
    pub fn new(period: usize) -> Self {
        StlConfig {
            period,
            seasonal: 7,
            seasonal_deg: 1,
            trend: None,
            low_pass: None,
            robust: false,
            inner_iter: None,
            outer_iter: None,
        }
    }
}

/// The components of an STL decomposition, one value per observation each.
#[derive(Debug, Clone, PartialEq)]
pub struct StlDecomposition {
    pub seasonal: Vec<f64>,
    pub trend: Vec<f64>,
    pub remainder: Vec<f64>,
    /// The final robustness weights (all 1 when not robust).
    pub weights: Vec<f64>,
}

/// Decomposes `y` with STL under `config`.
pub fn stl(y: &[f64], config: &StlConfig) -> Result<StlDecomposition, ForecastError> {
    let n = y.len();
    let period = config.period;
    if period < 2 {
        return Err(ForecastError::Input(format!(
            "STL period must be at least 2, got {period}"
        )));
    }
    if n < 2 * period {
        return Err(ForecastError::Input(format!(
            "STL needs at least two full cycles: {n} observations, period {period}"
        )));
    }
    let seasonal = config.seasonal;
    if seasonal < 3 || seasonal.is_multiple_of(2) {
        return Err(ForecastError::Input(format!(
            "STL seasonal window must be an odd integer >= 3, got {seasonal}"
        )));
    }
    if config.seasonal_deg > 1 {
        return Err(ForecastError::Input(format!(
            "STL seasonal degree must be 0 or 1, got {}",
            config.seasonal_deg
        )));
    }
    let trend = match config.trend {
        Some(window) => window,
        None => {
            // Cleveland et al.'s rule: the trend filter must pass frequencies well below
            // the seasonal smoother's, hence the dependence on the seasonal window.
            let window = (1.5 * period as f64 / (1.0 - 1.5 / seasonal as f64)).ceil() as usize;
            window + usize::from(window.is_multiple_of(2))
        }
    };
    let low_pass = config
        .low_pass
        .unwrap_or_else(|| (period + 1) + usize::from((period + 1).is_multiple_of(2)));
    for (what, window) in [("trend", trend), ("low-pass", low_pass)] {
        if window < 3 || window.is_multiple_of(2) || window <= period {
            return Err(ForecastError::Input(format!(
                "STL {what} window must be an odd integer >= 3 and > period {period}, got {window}"
            )));
        }
    }
    let inner_iter = config
        .inner_iter
        .unwrap_or(if config.robust { 2 } else { 5 });
    let outer_iter = config
        .outer_iter
        .unwrap_or(if config.robust { 15 } else { 0 });

    let mut fit = StlFit {
        y,
        period,
        seasonal_window: seasonal,
        seasonal_deg: config.seasonal_deg,
        trend_window: trend,
        low_pass_window: low_pass,
        seasonal: vec![0.0; n],
        trend: vec![0.0; n],
        weights: vec![1.0; n],
        use_weights: false,
    };
    let mut outer = 0;
    loop {
        fit.inner_passes(inner_iter);
        outer += 1;
        if outer > outer_iter {
            break;
        }
        fit.update_robustness_weights();
        fit.use_weights = true;
    }
    let remainder = (0..n)
        .map(|i| y[i] - fit.seasonal[i] - fit.trend[i])
        .collect();
    Ok(StlDecomposition {
        seasonal: fit.seasonal,
        trend: fit.trend,
        remainder,
        weights: fit.weights,
    })
}

/// The state of one decomposition while it iterates.
struct StlFit<'a> {
    y: &'a [f64],
    period: usize,
    seasonal_window: usize,
    seasonal_deg: usize,
    trend_window: usize,
    low_pass_window: usize,
    seasonal: Vec<f64>,
    trend: Vec<f64>,
    weights: Vec<f64>,
    use_weights: bool,
}

impl StlFit<'_> {
    /// The inner loop (the Fortran `onestp`): `passes` rounds of seasonal then trend
    /// smoothing.
    fn inner_passes(&mut self, passes: usize) {
        let n = self.y.len();
        let period = self.period;
        let mut detrended = vec![0.0; n];
        let mut cycle_smooth = vec![0.0; n + 2 * period];
        let mut low_freq = vec![0.0; n];
        let mut deseasonalised = vec![0.0; n];
        for _ in 0..passes {
            for ((d, y), t) in detrended.iter_mut().zip(self.y).zip(&self.trend) {
                *d = y - t;
            }
            self.smooth_cycle_subseries(&detrended, &mut cycle_smooth);
            // The low-pass filter: moving averages of lengths period, period and 3 take
            // the n + 2 * period extended values back to n, then a LOESS.
            let averaged = moving_average(
                &moving_average(&moving_average(&cycle_smooth, period), period),
                3,
            );
            loess_smooth(&averaged, self.low_pass_window, 1, None, &mut low_freq);
            for i in 0..n {
                // The extended cycle-subseries smooth starts one period before the data.
                self.seasonal[i] = cycle_smooth[period + i] - low_freq[i];
                deseasonalised[i] = self.y[i] - self.seasonal[i];
            }
            let weights = self.use_weights.then_some(self.weights.as_slice());
            loess_smooth(
                &deseasonalised,
                self.trend_window,
                1,
                weights,
                &mut self.trend,
            );
        }
    }

    /// Smooths each cycle-subseries of `detrended` and extends it by one cycle at both
    /// ends, writing the `n + 2 * period` values in time order into `out` (the Fortran
    /// `ss`).
    fn smooth_cycle_subseries(&self, detrended: &[f64], out: &mut [f64]) {
        let n = detrended.len();
        let period = self.period;
        let window = self.seasonal_window;
        let max_len = n.div_ceil(period);
        let mut sub = Vec::with_capacity(max_len);
        let mut sub_weights = Vec::with_capacity(max_len);
        let mut smoothed = vec![0.0; max_len + 2];
        for phase in 0..period {
            sub.clear();
            sub.extend(detrended.iter().skip(phase).step_by(period));
            sub_weights.clear();
            sub_weights.extend(self.weights.iter().skip(phase).step_by(period));
            let k = sub.len();
            let weights = self.use_weights.then_some(sub_weights.as_slice());
            loess_smooth(
                &sub,
                window,
                self.seasonal_deg,
                weights,
                &mut smoothed[1..=k],
            );
            // Extrapolate the local fit one cycle before the start and after the end.
            let before = loess_at(
                &sub,
                window,
                self.seasonal_deg,
                0,
                (1, window.min(k)),
                weights,
            );
            smoothed[0] = before.unwrap_or(smoothed[1]);
            let after_left = (k + 1).saturating_sub(window).max(1);
            let after = loess_at(
                &sub,
                window,
                self.seasonal_deg,
                k as i64 + 1,
                (after_left, k),
                weights,
            );
            smoothed[k + 1] = after.unwrap_or(smoothed[k]);
            for (cycle, value) in smoothed[..k + 2].iter().enumerate() {
                out[cycle * period + phase] = *value;
            }
        }
    }

    /// Bisquare robustness weights on the remainder, scaled by six times its median
    /// absolute value (the Fortran `rwts`, with statsmodels' corrected median).
    fn update_robustness_weights(&mut self) {
        let n = self.y.len();
        let abs_resid: Vec<f64> = (0..n)
            .map(|i| (self.y[i] - self.trend[i] - self.seasonal[i]).abs())
            .collect();
        let mut sorted = abs_resid.clone();
        sorted.sort_by(f64::total_cmp);
        let mid_hi = n / 2;
        let mid_lo = n - mid_hi - 1;
        let scale = 3.0 * (sorted[mid_hi] + sorted[mid_lo]);
        if scale == 0.0 {
            self.weights.fill(1.0);
            return;
        }
        let (near, far) = (0.001 * scale, 0.999 * scale);
        for (weight, r) in self.weights.iter_mut().zip(abs_resid) {
            *weight = if r <= near {
                1.0
            } else if r <= far {
                (1.0 - (r / scale).powi(2)).powi(2)
            } else {
                0.0
            };
        }
    }
}

/// Moving averages of `len` consecutive values (`x.len() - len + 1` of them), by a
/// running sum as the Fortran `ma`.
fn moving_average(x: &[f64], len: usize) -> Vec<f64> {
    let count = x.len() + 1 - len;
    let mut out = Vec::with_capacity(count);
    let mut sum: f64 = x[..len].iter().sum();
    out.push(sum / len as f64);
    for j in 1..count {
        sum += x[j + len - 1] - x[j - 1];
        out.push(sum / len as f64);
    }
    out
}

/// LOESS of window `window` and degree `degree` evaluated at every point of `y`,
/// written to `out` (the Fortran `ess` with jump 1). A point whose neighbourhood has no
/// weight keeps its own value.
fn loess_smooth(y: &[f64], window: usize, degree: usize, weights: Option<&[f64]>, out: &mut [f64]) {
    let n = y.len();
    if n < 2 {
        out[0] = y[0];
        return;
    }
    if window >= n {
        for i in 0..n {
            let fit = loess_at(y, window, degree, i as i64 + 1, (1, n), weights);
            out[i] = fit.unwrap_or(y[i]);
        }
        return;
    }
    // Slide a window of `window` points, kept centred on i except near the ends.
    let half = (window + 2) / 2;
    let (mut left, mut right) = (1, window);
    for i in 0..n {
        if i + 1 > half && right != n {
            left += 1;
            right += 1;
        }
        let fit = loess_at(y, window, degree, i as i64 + 1, (left, right), weights);
        out[i] = fit.unwrap_or(y[i]);
    }
}

/// The LOESS fit at the 1-based position `at` (which may lie just outside `1..=n`) from
/// the points `left..=right` (1-based, inclusive) with tricube weights, times the
/// robustness weights if given (the Fortran `est`). `None` when every weight is zero.
///
/// The Fortran normalises the weights, tilts them for the local line and then sums;
/// here one pass accumulates the weighted moments and the local line is solved in
/// closed form, which is the same estimate with fewer passes over the window (offsets
/// are taken from `at` so that the second moment does not lose precision).
fn loess_at(
    y: &[f64],
    window: usize,
    degree: usize,
    at: i64,
    (left, right): (usize, usize),
    robustness: Option<&[f64]>,
) -> Option<f64> {
    let n = y.len();
    let range = n as f64 - 1.0;
    let mut bandwidth = (at - left as i64).max(right as i64 - at) as f64;
    if window > n {
        // A window longer than the data widens the bandwidth as if the missing
        // neighbours were there, so that the smoother stays as smooth as asked.
        bandwidth += ((window - n) / 2) as f64;
    }
    let (near, far) = (0.001 * bandwidth, 0.999 * bandwidth);
    // Sums of w, w·d, w·d², w·y and w·d·y, with d the offset from `at`.
    let (mut sw, mut swd, mut swdd, mut swy, mut swdy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for j in left - 1..right {
        let offset = (j as i64 + 1 - at) as f64;
        let distance = offset.abs();
        if distance > far {
            continue;
        }
        let mut w = if distance <= near {
            1.0
        } else {
            let u = distance / bandwidth;
            let v = 1.0 - u * u * u;
            v * v * v
        };
        if let Some(rw) = robustness {
            w *= rw[j];
        }
        sw += w;
        swd += w * offset;
        swdd += w * offset * offset;
        swy += w * y[j];
        swdy += w * offset * y[j];
    }
    if sw <= 0.0 {
        return None;
    }
    let mean_y = swy / sw;
    if bandwidth > 0.0 && degree > 0 {
        // Local line through the weighted centre of mass, evaluated at `at` (offset 0).
        let centre = swd / sw;
        let spread = swdd / sw - centre * centre;
        if spread.sqrt() > 0.001 * range {
            let slope = (swdy / sw - centre * mean_y) / spread;
            return Some(mean_y - slope * centre);
        }
    }
    Some(mean_y)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn components_add_up(y: &[f64], d: &StlDecomposition) {
        for (i, value) in y.iter().enumerate() {
            let total = d.seasonal[i] + d.trend[i] + d.remainder[i];
            assert!((total - value).abs() < 1e-9);
        }
    }

    #[test]
    fn recovers_a_pure_seasonal_pattern_on_a_line() {
        let pattern = [3.0, -1.0, 0.5, -2.5];
        let y: Vec<f64> = (0..40)
            .map(|t| 10.0 + 0.5 * t as f64 + pattern[t % 4])
            .collect();
        let d = stl(&y, &StlConfig::new(4)).unwrap();
        components_add_up(&y, &d);
        for t in 0..40 {
            assert!((d.seasonal[t] - pattern[t % 4]).abs() < 1e-6, "t={t}");
            assert!((d.trend[t] - (10.0 + 0.5 * t as f64)).abs() < 1e-6);
        }
    }

    #[test]
    fn constant_series_has_no_season() {
        let y = vec![7.0; 24];
        let d = stl(&y, &StlConfig::new(6)).unwrap();
        assert!(d.seasonal.iter().all(|s| s.abs() < 1e-12));
        assert!(d.trend.iter().all(|t| (t - 7.0).abs() < 1e-12));
    }

    #[test]
    fn matches_statsmodels_on_a_small_series() {
        // statsmodels 0.15: STL(y, period=4).fit() and STL(y, period=4, robust=True).fit().
        let y = [
            5.0, 9.0, 3.0, 1.0, 6.0, 11.0, 2.0, 2.0, 7.0, 10.0, 4.0, 1.0, 9.0, 12.0, 3.0, 3.0,
        ];
        let plain = stl(&y, &StlConfig::new(4)).unwrap();
        let trend = [
            4.351789103656,
            4.534309255641,
            4.712808162235,
            4.888998466052,
            5.068180093375,
            5.208798797697,
            5.317687555394,
            5.381172849389,
            5.510550580509,
            5.672073575980,
            5.848495922421,
            6.116835890305,
            6.383035489088,
            6.677869723400,
            6.976839134660,
            7.276944636724,
        ];
        for (got, want) in plain.trend.iter().zip(trend) {
            assert!((got - want).abs() < 1e-8, "{got} vs {want}");
        }
        let robust = stl(
            &y,
            &StlConfig {
                robust: true,
                ..StlConfig::new(4)
            },
        )
        .unwrap();
        components_add_up(&y, &robust);
        let robust_trend = [
            4.522584043149,
            4.589737227311,
            4.656890411478,
            4.724043595650,
            4.791196779867,
            4.858349964081,
            4.925503148291,
            4.992656332501,
            5.059809516692,
            5.059809516692,
            5.724854236983,
            6.057376654368,
            6.389899085055,
            6.722421660432,
            7.054944374861,
            7.387467191310,
        ];
        let robust_weights = [
            1.000000000000,
            1.000000000000,
            1.000000000000,
            1.000000000000,
            1.000000000000,
            0.000000000000,
            0.000000000000,
            0.000000000000,
            1.000000000000,
            0.000000000000,
            0.000000000000,
            0.000000000000,
            0.000000000000,
            0.925687871143,
            0.993028074187,
            0.961882296765,
        ];
        for i in 0..y.len() {
            assert!((robust.trend[i] - robust_trend[i]).abs() < 1e-8);
            assert!((robust.weights[i] - robust_weights[i]).abs() < 1e-8);
        }
    }

    #[test]
    fn rejects_bad_settings() {
        let y: Vec<f64> = (0..20).map(|t| t as f64).collect();
        assert!(stl(&y, &StlConfig::new(1)).is_err());
        assert!(stl(&y, &StlConfig::new(11)).is_err());
        let even = StlConfig {
            seasonal: 8,
            ..StlConfig::new(4)
        };
        assert!(stl(&y, &even).is_err());
        let short_trend = StlConfig {
            trend: Some(3),
            ..StlConfig::new(4)
        };
        assert!(stl(&y, &short_trend).is_err());
    }
}

//! The Theta method family in its state-space form (Fiorucci, Pellegrini, Louzada,
//! Petropoulos & Koehler 2016, "Models for optimising the theta method and their
//! relationship to state space models", IJF 32(4)), following statsforecast's
//! `AutoTheta` (`statsforecast/theta.py` and its C++ core `theta.cpp`, version 2.1).
//!
//! The model forecasts one step ahead with
//! `mu_t = l_{t-1} + (1 - 1/theta) * (A_{t-1} (1-alpha)^t + B_{t-1} (1 - (1-alpha)^(t+1)) / alpha)`,
//! where `l` is simple exponential smoothing of the data (`l_t = alpha y_t + (1-alpha) l_{t-1}`,
//! started from a free initial level `l_0`) and `A + B t` is a linear trend:
//!
//! - Standard Theta (STM): `theta = 2`; `A`, `B` the least-squares line of the whole
//!   series; `alpha` and `l_0` optimised.
//! - Optimised Theta (OTM): as STM with `theta` optimised too.
//! - Dynamic Standard / Dynamic Optimised (DSTM / DOTM): as STM / OTM, but `A` and `B`
//!   are updated recursively after each observation (the least-squares line of the data
//!   seen so far), starting from `A = y_1`, `B = 0`.
//!
//! Parameters are found as statsforecast does: Nelder–Mead (adaptive coefficients,
//! initial steps of 5 %, at most 1,000 iterations, stopping when the standard deviation
//! of the simplex values falls under 1e-4) from `l_0 = y_1 / 2`, `alpha = 0.5`,
//! `theta = 2`, within `alpha ∈ [0.1, 0.99]`, `theta ∈ [1, 1e10]`,
//! `l_0 ∈ [-1e10, 1e10]`, minimising the sum of the squared one-step errors from the
//! fourth observation on, divided by the mean absolute value of the series (that scale
//! sets what the 1e-4 tolerance means, so it is kept). [`ThetaVariant::Auto`] fits the
//! four models and keeps the one with the lowest such error; ties go to the earlier of
//! STM, OTM, DSTM, DOTM.
//!
//! Seasonality, as statsforecast: when `season_length >= 4` and the series has at
//! least two seasons, the autocorrelation at lag `m` is tested against its standard
//! error under the hypothesis of no autocorrelation beyond lag `m - 1` (Bartlett),
//! one-sided at 95 % (the two-sided 90 % level). A seasonal series is divided by the
//! seasonal indices of a classical multiplicative decomposition (centred moving-average
//! trend, per-position means of the detrended values normalised to mean 1; additive in
//! the cases below), the models are fitted to the result, and forecasts, intervals and
//! fitted values are multiplied back by the indices.
//!
//! Policies:
//! - Fewer than four observations (after any deseasonalising, which keeps the length):
//!   `Err`, like statsforecast ("tiny datasets"): three errors are skipped by the
//!   criterion and there is nothing left to fit on.
//! - Too short for the seasonality test (`season_length < 4` or fewer than two seasons):
//!   no deseasonalising; the models are fitted to the raw series.
//! - Non-positive data, or a multiplicative seasonal index under 0.01: the decomposition
//!   is additive instead (indices normalised to mean 0, subtracted and added back), as
//!   statsforecast switches.
//! - Constant series: no optimisation; STM with `alpha = 0.5`, `theta = 2` and
//!   `l_0 = c / 2`, which reproduces the constant `c` exactly (every error is zero), so
//!   the forecast is `c` with zero-width intervals. (statsforecast computes this same
//!   model for constants but then discards it and optimises as usual, reaching nearly
//!   the same forecast.)
//! - Failed optimisation: a parameter vector whose error is not finite (overflow on
//!   extreme data, roughly |y| > 1e150) ranks below every finite one in the search
//!   (statsforecast would rank a NaN first); a candidate whose best error is still not
//!   finite is skipped by `Auto`, and if none is finite the fit returns `Err`. The
//!   search returns its best vertex (statsforecast returns the one ranked best at the
//!   start of its last iteration, a difference below the stopping tolerance).
//!
//! Prediction intervals: statsforecast draws 200 normal sample paths (seed 0) through
//! the recursion above and takes empirical quantiles, with the errors' standard
//! deviation `sigma` estimated from the original-scale residuals past the third
//! observation (all residuals when fewer than two remain), and multiplies the samples by
//! the seasonal indices like the forecast. Every sample path is a linear function of
//! its normal errors, so each step's sample is exactly normal; this module computes the
//! standard deviation that the sampling estimates (the same recursion applied to the
//! coefficients of the errors, with `A` and `B` updated dynamically for every variant,
//! as the sampler does) and returns `forecast ± z · sd`. That is deterministic, needs no
//! random generator and has none of the sampling noise (with 200 paths, statsforecast's
//! 95 % widths scatter by about ±10 % around these). The intervals are centred on the
//! point forecast, which keeps `lo <= mean <= hi`; the sampler's zero-noise path updates
//! `A` and `B` dynamically even for STM/OTM and so can drift slightly (well under 1 % on
//! the test data) from it.
//!
//! One deliberate difference: with an additive decomposition statsforecast adds the
//! seasonal component to the residuals (so its fitted values lose the season and its
//! `sigma` takes in the seasonal swing); here the residuals, hence `sigma` and the
//! fitted values, are those of the reseasonalised one-step forecasts in both cases.

use super::ForecastError;
use super::model::{FittedModel, Forecast, normal_intervals};

/// Which member of the Theta family to fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThetaVariant {
    /// Fit STM, OTM, DSTM and DOTM and keep the one with the lowest in-sample error.
    Auto,
    /// Standard Theta (STM): `theta = 2`, static trend line.
    Standard,
    /// Optimised Theta (OTM): `theta` optimised, static trend line.
    Optimized,
    /// Dynamic Standard Theta (DSTM): `theta = 2`, trend line updated recursively.
    DynamicStandard,
    /// Dynamic Optimised Theta (DOTM): `theta` optimised, trend line updated recursively.
    DynamicOptimized,
}

/// The fixed models `Auto` chooses among, in the order statsforecast tries them (which
/// decides ties).
const CANDIDATES: [ThetaVariant; 4] = [
    ThetaVariant::Standard,
    ThetaVariant::Optimized,
    ThetaVariant::DynamicStandard,
    ThetaVariant::DynamicOptimized,
];

impl ThetaVariant {
    /// Reads `auto`, `stm`, `otm`, `dstm` or `dotm` (any case, surrounding blanks
    /// ignored).
    pub fn parse(s: &str) -> Result<Self, ForecastError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "stm" => Ok(Self::Standard),
            "otm" => Ok(Self::Optimized),
            "dstm" => Ok(Self::DynamicStandard),
            "dotm" => Ok(Self::DynamicOptimized),
            _ => Err(ForecastError::Input(format!(
                "unknown theta variant '{s}': expected auto, stm, otm, dstm or dotm"
            ))),
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Auto => "Auto",
            Self::Standard => "STM",
            Self::Optimized => "OTM",
            Self::DynamicStandard => "DSTM",
            Self::DynamicOptimized => "DOTM",
        }
    }

    fn is_dynamic(self) -> bool {
        matches!(self, Self::DynamicStandard | Self::DynamicOptimized)
    }

    fn optimises_theta(self) -> bool {
        matches!(self, Self::Optimized | Self::DynamicOptimized)
    }
}

/// The seasonal component removed before fitting and put back on the way out.
#[derive(Debug, Clone, PartialEq)]
enum Seasonality {
    /// Indices around 1, one per position in the season (position `t mod m`).
    Multiplicative(Vec<f64>),
    /// Offsets around 0, one per position in the season.
    Additive(Vec<f64>),
}

impl Seasonality {
    fn remove(&self, t: usize, value: f64) -> f64 {
        match self {
            Self::Multiplicative(index) => value / index[t % index.len()],
            Self::Additive(offset) => value - offset[t % offset.len()],
        }
    }

    fn restore(&self, t: usize, value: f64) -> f64 {
        match self {
            Self::Multiplicative(index) => value * index[t % index.len()],
            Self::Additive(offset) => value + offset[t % offset.len()],
        }
    }

    /// Puts back the seasonal component on a spread around a value (an interval's
    /// half-width): scaled by a multiplicative index, unchanged by an additive one.
    fn restore_spread(&self, t: usize, spread: f64) -> f64 {
        match self {
            Self::Multiplicative(index) => spread * index[t % index.len()],
            Self::Additive(_) => spread,
        }
    }
}

/// The smoothing parameters of one Theta model.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    initial_level: f64,
    alpha: f64,
    theta: f64,
}

/// The state after observation `t` (0-based): the smoothed level, the running mean of
/// the data and the trend line `A + B (t + 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    level: f64,
    mean: f64,
    intercept: f64,
    slope: f64,
}

impl State {
    /// The one-step forecast for observation `t` (0-based) made from the state after
    /// observation `t - 1`.
    fn predict(&self, t: usize, params: &Params) -> f64 {
        let decay = (1.0 - params.alpha).powf(t as f64);
        self.predict_with_decay(decay, params)
    }

    /// [`State::predict`] with `(1 - alpha)^t` given, so that a pass over the series
    /// can keep the power up to date by one multiplication per step.
    fn predict_with_decay(&self, decay: f64, params: &Params) -> f64 {
        let trend_weight = 1.0 - 1.0 / params.theta;
        let retained = 1.0 - params.alpha;
        self.level
            + trend_weight
                * (self.intercept * decay + self.slope * (1.0 - decay * retained) / params.alpha)
    }

    /// Takes in observation `t` (0-based, `t >= 1`) with value `value`; the trend line
    /// moves only in the dynamic models.
    fn update(&mut self, t: usize, value: f64, alpha: f64, dynamic: bool) {
        let steps = t as f64;
        let previous_mean = self.mean;
        // The divisions depend on `t` only: taken as reciprocals they leave the chain of
        // state updates, which halves the cost of a pass.
        let over_next = 1.0 / (steps + 1.0);
        let over_after_next = 1.0 / (steps + 2.0);
        self.level = alpha * value + (1.0 - alpha) * self.level;
        self.mean = (steps * previous_mean + value) * over_next;
        if dynamic {
            self.slope = ((steps - 1.0) * self.slope + 6.0 * (value - previous_mean) * over_next)
                * over_after_next;
            self.intercept = self.mean - self.slope * (steps + 2.0) / 2.0;
        }
    }
}

/// The (possibly deseasonalised) series the models are fitted to, with what every
/// fit needs of it whatever the parameters, computed once.
struct Prepared<'a> {
    y: &'a [f64],
    /// Intercept and slope of the least-squares line through `(1, y_1) ... (n, y_n)`:
    /// the trend of the static models.
    line: (f64, f64),
    /// The criterion's divisor: the mean absolute value, at least 1e-10.
    scale: f64,
}

impl<'a> Prepared<'a> {
    fn new(y: &'a [f64]) -> Self {
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let weighted_mean = y
            .iter()
            .enumerate()
            .map(|(i, v)| (i + 1) as f64 * v)
            .sum::<f64>()
            / n;
        let slope = 6.0 * (2.0 * weighted_mean - (n + 1.0) * mean) / (n * n - 1.0);
        let intercept = mean - (n + 1.0) * slope / 2.0;
        let scale = (y.iter().map(|v| v.abs()).sum::<f64>() / n).max(1e-10);
        Prepared {
            y,
            line: (intercept, slope),
            scale,
        }
    }
}

/// The state after the first observation, and the one-step forecast of that first
/// observation.
fn initial_state(series: &Prepared, variant: ThetaVariant, params: &Params) -> (State, f64) {
    let first = series.y[0];
    let level = params.alpha * first + (1.0 - params.alpha) * params.initial_level;
    let (intercept, slope, first_prediction) = if variant.is_dynamic() {
        (first, 0.0, first)
    } else {
        let (intercept, slope) = series.line;
        let first_prediction =
            params.initial_level + (1.0 - 1.0 / params.theta) * (intercept + slope);
        (intercept, slope, first_prediction)
    };
    let state = State {
        level,
        mean: first,
        intercept,
        slope,
    };
    (state, first_prediction)
}

/// Runs the model over the series, calling `on_error(t, y_t - mu_t)` for every
/// observation, and returns the state after the last one.
fn filter(
    series: &Prepared,
    variant: ThetaVariant,
    params: &Params,
    mut on_error: impl FnMut(usize, f64),
) -> State {
    let (mut state, first_prediction) = initial_state(series, variant, params);
    on_error(0, series.y[0] - first_prediction);
    let dynamic = variant.is_dynamic();
    let retained = 1.0 - params.alpha;
    let mut decay = 1.0;
    for (t, &value) in series.y.iter().enumerate().skip(1) {
        decay *= retained;
        on_error(t, value - state.predict_with_decay(decay, params));
        state.update(t, value, params.alpha, dynamic);
    }
    state
}

/// The errors skipped by the selection criterion: the first forecasts rest on almost
/// no data (statsforecast's `e[3:]`).
const BURN_IN: usize = 3;

/// statsforecast's criterion: the squared errors past the burn-in, summed, divided by
/// the mean absolute value of the series. Not finite on overflow.
fn criterion(series: &Prepared, variant: ThetaVariant, params: &Params) -> f64 {
    let mut sum_sq = 0.0;
    filter(series, variant, params, |t, e| {
        if t >= BURN_IN {
            sum_sq += e * e;
        }
    });
    sum_sq / series.scale
}

/// Bounds of the optimised parameters, as statsforecast sets them.
const LEVEL_BOUNDS: (f64, f64) = (-1e10, 1e10);
const ALPHA_BOUNDS: (f64, f64) = (0.1, 0.99);
const THETA_BOUNDS: (f64, f64) = (1.0, 1e10);

/// Finds the parameters of one fixed variant by Nelder–Mead on [`criterion`].
fn optimise(series: &Prepared, variant: ThetaVariant) -> Params {
    let start = Params {
        initial_level: series.y[0] / 2.0,
        alpha: 0.5,
        theta: 2.0,
    };
    let to_params = |x: &[f64]| Params {
        initial_level: x[0],
        alpha: x[1],
        theta: if variant.optimises_theta() {
            x[2]
        } else {
            start.theta
        },
    };
    let objective = |x: &[f64]| {
        let value = criterion(series, variant, &to_params(x));
        // A non-finite error (overflow) must never look better than a finite one.
        if value.is_finite() {
            value
        } else {
            f64::INFINITY
        }
    };
    let best = if variant.optimises_theta() {
        nelder_mead(
            objective,
            [start.initial_level, start.alpha, start.theta],
            [LEVEL_BOUNDS.0, ALPHA_BOUNDS.0, THETA_BOUNDS.0],
            [LEVEL_BOUNDS.1, ALPHA_BOUNDS.1, THETA_BOUNDS.1],
        )
        .to_vec()
    } else {
        nelder_mead(
            objective,
            [start.initial_level, start.alpha],
            [LEVEL_BOUNDS.0, ALPHA_BOUNDS.0],
            [LEVEL_BOUNDS.1, ALPHA_BOUNDS.1],
        )
        .to_vec()
    };
    to_params(&best)
}

/// Bounded Nelder–Mead as statsforecast implements it (`nelder_mead.h`): every trial
/// point is clamped into the box; the initial simplex moves each coordinate in turn by
/// 5 % (or to 1e-4 from zero); the coefficients are the dimension-adaptive ones of Gao
/// & Han (2012); it stops after 1,000 iterations or once the population standard
/// deviation of the simplex values is below 1e-4. Its shrink step, like statsforecast's,
/// moves every vertex but the first towards the best one. Returns the best vertex.
fn nelder_mead<const D: usize>(
    mut objective: impl FnMut(&[f64]) -> f64,
    start: [f64; D],
    lower: [f64; D],
    upper: [f64; D],
) -> [f64; D] {
    const INITIAL_STEP: f64 = 0.05;
    const ZERO_STEP: f64 = 1e-4;
    const MAX_ITERATIONS: usize = 1_000;
    const VALUE_SD_TOLERANCE: f64 = 1e-4;
    let dim = D as f64;
    let reflection = 1.0;
    let expansion = 1.0 + 2.0 / dim;
    let contraction = 0.75 - 1.0 / (2.0 * dim);
    let shrinkage = 1.0 - 1.0 / dim;

    let clamp = |x: [f64; D]| -> [f64; D] {
        let mut out = x;
        for k in 0..D {
            out[k] = x[k].max(lower[k]).min(upper[k]);
        }
        out
    };
    // `centre + factor * (point - centre)`, clamped.
    let towards = |centre: &[f64; D], point: &[f64; D], factor: f64| -> [f64; D] {
        let mut out = [0.0; D];
        for k in 0..D {
            out[k] = centre[k] + factor * (point[k] - centre[k]);
        }
        clamp(out)
    };

    let origin = clamp(start);
    let mut simplex = vec![origin; D + 1];
    for (k, vertex) in simplex.iter_mut().take(D).enumerate() {
        let moved = if vertex[k] == 0.0 {
            ZERO_STEP
        } else {
            vertex[k] * (1.0 + INITIAL_STEP)
        };
        vertex[k] = moved.max(lower[k]).min(upper[k]);
    }
    let mut values: Vec<f64> = simplex.iter().map(|x| objective(x)).collect();
    let mut order: Vec<usize> = (0..=D).collect();

    for _ in 0..MAX_ITERATIONS {
        if population_sd(&values) < VALUE_SD_TOLERANCE {
            break;
        }
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let best = order[0];
        let worst = order[D];
        let second_worst = order[D - 1];

        let mut centroid = [0.0; D];
        for (i, vertex) in simplex.iter().enumerate() {
            if i != worst {
                for k in 0..D {
                    centroid[k] += vertex[k] / dim;
                }
            }
        }

        let reflected = towards(&centroid, &simplex[worst], -reflection);
        let reflected_value = objective(&reflected);
        if values[best] <= reflected_value && reflected_value < values[second_worst] {
            simplex[worst] = reflected;
            values[worst] = reflected_value;
            continue;
        }
        if reflected_value < values[best] {
            let expanded = towards(&centroid, &reflected, expansion);
            let expanded_value = objective(&expanded);
            if expanded_value < reflected_value {
                simplex[worst] = expanded;
                values[worst] = expanded_value;
            } else {
                simplex[worst] = reflected;
                values[worst] = reflected_value;
            }
            continue;
        }
        if values[second_worst] <= reflected_value && reflected_value < values[worst] {
            let outside = towards(&centroid, &reflected, contraction);
            let outside_value = objective(&outside);
            if outside_value <= reflected_value {
                simplex[worst] = outside;
                values[worst] = outside_value;
                continue;
            }
        } else {
            let inside = towards(&centroid, &reflected, -contraction);
            let inside_value = objective(&inside);
            if inside_value < values[worst] {
                simplex[worst] = inside;
                values[worst] = inside_value;
                continue;
            }
        }
        let anchor = simplex[best];
        for i in 1..=D {
            simplex[i] = towards(&anchor, &simplex[i], shrinkage);
            values[i] = objective(&simplex[i]);
        }
    }
    let best = (0..=D)
        .min_by(|&a, &b| values[a].total_cmp(&values[b]))
        .unwrap_or(0);
    simplex[best]
}

fn population_sd(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// The one-sided 95 % normal quantile: statsforecast's seasonality test is two-sided
/// at 90 %.
const SEASONALITY_Z: f64 = 1.6448536269514722;

/// Whether the autocorrelation at lag `m` is significant (see the module doc).
fn is_seasonal(y: &[f64], m: usize) -> bool {
    // `len / 2 < m` is `len < 2 m` without overflow for absurd season lengths.
    if m < 4 || y.len() / 2 < m {
        return false;
    }
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let centred: Vec<f64> = y.iter().map(|v| v - mean).collect();
    let variance_sum: f64 = centred.iter().map(|d| d * d).sum();
    if variance_sum <= 0.0 {
        return false;
    }
    let autocorrelation = |lag: usize| -> f64 {
        centred[..n - lag]
            .iter()
            .zip(&centred[lag..])
            .map(|(a, b)| a * b)
            .sum::<f64>()
            / variance_sum
    };
    let lower_lags_sq: f64 = (1..m).map(|lag| autocorrelation(lag).powi(2)).sum();
    let standard_error = ((1.0 + 2.0 * lower_lags_sq) / n as f64).sqrt();
    autocorrelation(m).abs() / standard_error > SEASONALITY_Z
}

/// Classical decomposition (statsmodels' `seasonal_decompose`): a centred moving
/// average of length `m` (`2 x m` for even `m`) as the trend, the detrended values
/// averaged per position in the season, normalised to mean 1 (multiplicative) or 0
/// (additive). Needs `y.len() >= 2 m`, so every position has a detrended value.
fn seasonal_indices(y: &[f64], m: usize, multiplicative: bool) -> Vec<f64> {
    let n = y.len();
    let half = m / 2;
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for t in half..n - half {
        let window = &y[t - half..=t + half];
        let trend = if m.is_multiple_of(2) {
            // Half weight on both ends, so the window spans exactly one season.
            (window.iter().sum::<f64>() - 0.5 * (window[0] + window[m])) / m as f64
        } else {
            window.iter().sum::<f64>() / m as f64
        };
        let detrended = if multiplicative {
            y[t] / trend
        } else {
            y[t] - trend
        };
        sums[t % m] += detrended;
        counts[t % m] += 1;
    }
    let mut indices: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect();
    let average = indices.iter().sum::<f64>() / m as f64;
    for index in &mut indices {
        if multiplicative {
            *index /= average;
        } else {
            *index -= average;
        }
    }
    indices
}

/// The seasonal component to remove, if the series is seasonal (see the module doc).
fn detect_seasonality(y: &[f64], m: usize) -> Option<Seasonality> {
    if !is_seasonal(y, m) {
        return None;
    }
    if y.iter().all(|&v| v > 0.0) {
        let indices = seasonal_indices(y, m, true);
        if indices.iter().all(|&s| s >= 0.01) {
            return Some(Seasonality::Multiplicative(indices));
        }
    }
    Some(Seasonality::Additive(seasonal_indices(y, m, false)))
}

/// A fitted Theta model (see the module doc).
#[derive(Debug, Clone)]
pub struct Theta {
    variant: ThetaVariant,
    params: Params,
    /// The state after the last observation.
    last_state: State,
    len: usize,
    seasonality: Option<Seasonality>,
    fitted: Vec<f64>,
    /// The standard deviation of the one-step errors (original scale).
    sigma: f64,
    mse: f64,
}

/// Fits the Theta model `variant` (or chooses among them with
/// [`ThetaVariant::Auto`]) to `y`, deseasonalising first when `season_length` shows a
/// significant season.
pub fn fit_theta(
    y: &[f64],
    season_length: usize,
    variant: ThetaVariant,
) -> Result<Theta, ForecastError> {
    if y.len() <= BURN_IN {
        return Err(ForecastError::Input(format!(
            "theta needs at least {} observations, got {}",
            BURN_IN + 1,
            y.len()
        )));
    }
    if let Some(bad) = y.iter().find(|v| !v.is_finite()) {
        return Err(ForecastError::Input(format!(
            "theta needs finite values, got {bad}"
        )));
    }
    if y.iter().all(|&v| v == y[0]) {
        let params = Params {
            initial_level: y[0] / 2.0,
            alpha: 0.5,
            theta: 2.0,
        };
        return Ok(Theta::assemble(y, y, None, ThetaVariant::Standard, params));
    }

    let seasonality = detect_seasonality(y, season_length.max(1));
    let adjusted: Vec<f64> = match &seasonality {
        Some(s) => y.iter().enumerate().map(|(t, &v)| s.remove(t, v)).collect(),
        None => y.to_vec(),
    };
    let series = Prepared::new(&adjusted);
    let single = [variant];
    let candidates: &[ThetaVariant] = if variant == ThetaVariant::Auto {
        &CANDIDATES
    } else {
        &single
    };
    let mut best: Option<(f64, ThetaVariant, Params)> = None;
    for &candidate in candidates {
        let params = optimise(&series, candidate);
        let value = criterion(&series, candidate, &params);
        if value.is_finite() && best.is_none_or(|(best_value, _, _)| value < best_value) {
            best = Some((value, candidate, params));
        }
    }
    let (_, chosen, params) = best.ok_or_else(|| {
        ForecastError::Input(
            "no theta model could be fitted: the in-sample error overflows".to_string(),
        )
    })?;
    Ok(Theta::assemble(y, &adjusted, seasonality, chosen, params))
}

impl Theta {
    /// Builds the fitted model from the chosen variant and parameters: runs it once more
    /// over the (deseasonalised) series `adjusted` to get the final state, the fitted
    /// values and the residual spread.
    fn assemble(
        y: &[f64],
        adjusted: &[f64],
        seasonality: Option<Seasonality>,
        variant: ThetaVariant,
        params: Params,
    ) -> Self {
        let mut fitted = vec![0.0; y.len()];
        let mut sum_sq = 0.0;
        let last_state = filter(&Prepared::new(adjusted), variant, &params, |t, e| {
            let prediction = adjusted[t] - e;
            fitted[t] = match &seasonality {
                Some(s) => s.restore(t, prediction),
                None => prediction,
            };
            if t >= BURN_IN {
                sum_sq += e * e;
            }
        });
        let residuals: Vec<f64> = y.iter().zip(&fitted).map(|(v, f)| v - f).collect();
        // statsforecast's sigma: residuals past the burn-in, or all of them when fewer
        // than two remain.
        let spread_from = if residuals.len() >= BURN_IN + 2 {
            BURN_IN
        } else {
            0
        };
        Theta {
            variant,
            params,
            last_state,
            len: y.len(),
            seasonality,
            fitted,
            sigma: sample_sd(&residuals[spread_from..]),
            mse: sum_sq / (y.len() - BURN_IN) as f64,
        }
    }

    /// The in-sample mean squared one-step error from the fourth observation on, on the
    /// scale the model was fitted (after deseasonalising): the quantity `Auto` minimises
    /// (statsforecast divides the sum by the mean absolute value instead, which picks
    /// the same model).
    pub fn mse(&self) -> f64 {
        self.mse
    }

    /// The fitted variant (never [`ThetaVariant::Auto`]: the one it chose).
    pub fn variant(&self) -> ThetaVariant {
        self.variant
    }

    /// The standard deviation of the forecast `h` steps ahead, before reseasonalising:
    /// the sampler's recursion applied to the coefficients of each step's error.
    fn forecast_sd(&self, h: usize) -> Vec<f64> {
        let Params { alpha, theta, .. } = self.params;
        let trend_weight = 1.0 - 1.0 / theta;
        let retained = 1.0 - alpha;
        // Coefficients of the future errors e_1..e_h in each state component.
        let mut level = vec![0.0; h];
        let mut mean = vec![0.0; h];
        let mut intercept = vec![0.0; h];
        let mut slope = vec![0.0; h];
        let mut sample = vec![0.0; h];
        let mut sd = Vec::with_capacity(h);
        for step in 0..h {
            let t = self.len + step;
            let steps = t as f64;
            let decay = retained.powf(t as f64);
            let slope_weight = (1.0 - decay * retained) / alpha;
            // Only e_1..e_{step+1} can be non-zero yet.
            let live = step + 1;
            for k in 0..live {
                sample[k] =
                    level[k] + trend_weight * (intercept[k] * decay + slope[k] * slope_weight);
            }
            sample[step] += 1.0;
            sd.push(self.sigma * sample[..live].iter().map(|c| c * c).sum::<f64>().sqrt());
            for k in 0..live {
                level[k] = alpha * sample[k] + retained * level[k];
                mean[k] = (steps * mean[k] + sample[k]) / (steps + 1.0);
                slope[k] = ((steps - 1.0) * slope[k] + 6.0 * (sample[k] - mean[k]) / (steps + 1.0))
                    / (steps + 2.0);
                intercept[k] = mean[k] - slope[k] * (steps + 2.0) / 2.0;
            }
        }
        sd
    }
}

fn sample_sd(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt()
}

impl FittedModel for Theta {
    fn name(&self) -> String {
        format!("Theta({})", self.variant.code())
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let mut state = self.last_state;
        let dynamic = self.variant.is_dynamic();
        let mut mean = Vec::with_capacity(h);
        for step in 0..h {
            let t = self.len + step;
            let prediction = state.predict(t, &self.params);
            state.update(t, prediction, self.params.alpha, dynamic);
            mean.push(prediction);
        }
        let mut sd = self.forecast_sd(h);
        if let Some(seasonality) = &self.seasonality {
            for (step, (m, s)) in mean.iter_mut().zip(&mut sd).enumerate() {
                let t = self.len + step;
                *m = seasonality.restore(t, *m);
                *s = seasonality.restore_spread(t, *s);
            }
        }
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

    /// statsforecast's AirPassengers without its last year (the 132 training points).
    const AIR_PASSENGERS_TRAIN: [f64; 132] = [
        112., 118., 132., 129., 121., 135., 148., 148., 136., 119., 104., 118., 115., 126., 141.,
        135., 125., 149., 170., 170., 158., 133., 114., 140., 145., 150., 178., 163., 172., 178.,
        199., 199., 184., 162., 146., 166., 171., 180., 193., 181., 183., 218., 230., 242., 209.,
        191., 172., 194., 196., 196., 236., 235., 229., 243., 264., 272., 237., 211., 180., 201.,
        204., 188., 235., 227., 234., 264., 302., 293., 259., 229., 203., 229., 242., 233., 267.,
        269., 270., 315., 364., 347., 312., 274., 237., 278., 284., 277., 317., 313., 318., 374.,
        413., 405., 355., 306., 271., 306., 315., 301., 356., 348., 355., 422., 465., 467., 404.,
        347., 305., 336., 340., 318., 362., 348., 363., 435., 491., 505., 404., 359., 310., 337.,
        360., 342., 406., 396., 420., 472., 548., 559., 463., 407., 362., 405.,
    ];

    /// The first 30 annual flows of the Nile (statsmodels' `nile`).
    const NILE_30: [f64; 30] = [
        1120., 1160., 963., 1210., 1160., 1160., 813., 1230., 1370., 1140., 995., 935., 1110.,
        994., 1020., 960., 1180., 799., 958., 1140., 1100., 1210., 1150., 1250., 1260., 1220.,
        1030., 1100., 774., 840.,
    ];

    fn assert_close(actual: f64, expected: f64, relative: f64) {
        assert!(
            (actual - expected).abs() <= relative * expected.abs().max(1.0),
            "{actual} is not within {relative} of {expected}"
        );
    }

    #[test]
    fn parses_variant_codes() {
        assert_eq!(ThetaVariant::parse("auto").unwrap(), ThetaVariant::Auto);
        assert_eq!(ThetaVariant::parse("STM").unwrap(), ThetaVariant::Standard);
        assert_eq!(
            ThetaVariant::parse(" otm ").unwrap(),
            ThetaVariant::Optimized
        );
        assert_eq!(
            ThetaVariant::parse("dstm").unwrap(),
            ThetaVariant::DynamicStandard
        );
        assert_eq!(
            ThetaVariant::parse("Dotm").unwrap(),
            ThetaVariant::DynamicOptimized
        );
        assert!(ThetaVariant::parse("theta").is_err());
    }

    /// Forecasts, parameters and criterion of statsforecast 2.1.1
    /// `AutoTheta(season_length, model=...)` on the same series.
    #[test]
    fn matches_statsforecast_on_each_variant() {
        type Pin = (ThetaVariant, [f64; 3], f64, f64, f64);
        let air: [Pin; 4] = [
            (
                ThetaVariant::Standard,
                [411.37026368925524, 402.2746868538818, 462.88281417700745],
                0.8390625000000007,
                2.0,
                39.22080014873176,
            ),
            (
                ThetaVariant::Optimized,
                [412.7118785281705, 404.64049958392076, 466.8108963677378],
                0.8061114667057334,
                29.98803375537291,
                38.13081288761043,
            ),
            (
                ThetaVariant::DynamicStandard,
                [411.366521701331, 402.27451378383887, 462.8895839260731],
                0.8546875000000012,
                2.0,
                39.88517922265362,
            ),
            (
                ThetaVariant::DynamicOptimized,
                [412.697644820551, 404.6385832562739, 466.829101295369],
                0.8202961498119354,
                31.85610748644932,
                38.66888917981636,
            ),
        ];
        let nile: [Pin; 4] = [
            (
                ThetaVariant::Standard,
                [1043.6566209416062, 1042.3241404076798, 1040.9916598737532],
                0.1,
                2.0,
                616.5470586229203,
            ),
            (
                ThetaVariant::Optimized,
                [1031.7060537965613, 1029.0413419489403, 1026.376630101319],
                0.1,
                10693.197117014883,
                611.0809926384591,
            ),
            (
                ThetaVariant::DynamicStandard,
                [899.930885077265, 897.7077785446404, 895.2345955519339],
                0.4656323548755612,
                2.0,
                694.4009270704505,
            ),
            (
                ThetaVariant::DynamicOptimized,
                [1055.570675016631, 1055.570675016631, 1055.570675016631],
                0.1,
                1.0,
                625.3355622918787,
            ),
        ];
        for (y, m, pins) in [
            (&AIR_PASSENGERS_TRAIN[..], 12, air),
            (&NILE_30[..], 1, nile),
        ] {
            for (variant, mean, alpha, theta, statsforecast_criterion) in pins {
                let model = fit_theta(y, m, variant).unwrap();
                let fc = model.forecast(3, &[]);
                for (ours, theirs) in fc.mean.iter().zip(mean) {
                    assert_close(*ours, theirs, 1e-6);
                }
                assert_close(model.params.alpha, alpha, 1e-4);
                assert_close(model.params.theta, theta, 1e-3);
                // statsforecast reports the criterion, sum / mean |y|, of the series it fitted.
                let adjusted: Vec<f64> = match &model.seasonality {
                    Some(s) => y.iter().enumerate().map(|(t, &v)| s.remove(t, v)).collect(),
                    None => y.to_vec(),
                };
                let criterion =
                    model.mse() * (y.len() - BURN_IN) as f64 / Prepared::new(&adjusted).scale;
                assert_close(criterion, statsforecast_criterion, 1e-6);
            }
        }
    }

    #[test]
    fn auto_picks_the_lowest_error_and_names_it() {
        let auto = fit_theta(&AIR_PASSENGERS_TRAIN, 12, ThetaVariant::Auto).unwrap();
        assert_eq!(auto.variant(), ThetaVariant::Optimized);
        assert_eq!(auto.name(), "Theta(OTM)");
        assert!(matches!(
            auto.seasonality,
            Some(Seasonality::Multiplicative(_))
        ));
        for variant in CANDIDATES {
            let fixed = fit_theta(&AIR_PASSENGERS_TRAIN, 12, variant).unwrap();
            assert!(auto.mse() <= fixed.mse());
        }
    }

    /// The forecast standard deviations of statsforecast's sampler (`compute_pi_samples`
    /// with the fitted OTM on AirPassengers), estimated from 200,000 paths.
    #[test]
    fn interval_spread_matches_the_statsforecast_sampler() {
        let model = fit_theta(&AIR_PASSENGERS_TRAIN, 12, ThetaVariant::Auto).unwrap();
        let sampled = [
            9.2171, 11.829, 13.9467, 15.7867, 17.4835, 19.0109, 20.4059, 21.7123, 22.9576, 24.1486,
            25.3005, 26.3873,
        ];
        for (ours, theirs) in model.forecast_sd(12).iter().zip(sampled) {
            assert_close(*ours, theirs, 0.01);
        }
    }

    #[test]
    fn intervals_are_nested_and_widen_with_the_horizon() {
        let model = fit_theta(&NILE_30, 1, ThetaVariant::Auto).unwrap();
        let fc = model.forecast(10, &[80.0, 95.0]);
        assert_eq!(fc.mean.len(), 10);
        let (inner, outer) = (&fc.intervals[0], &fc.intervals[1]);
        assert_eq!((inner.level, outer.level), (80.0, 95.0));
        for i in 0..10 {
            assert!(outer.lo[i] < inner.lo[i] && inner.lo[i] < fc.mean[i]);
            assert!(fc.mean[i] < inner.hi[i] && inner.hi[i] < outer.hi[i]);
            if i > 0 {
                assert!(outer.hi[i] - outer.lo[i] > outer.hi[i - 1] - outer.lo[i - 1]);
            }
        }
        // One step ahead the spread is the residual standard deviation itself.
        let z95 = 1.959963984540054;
        assert_close(outer.hi[0] - fc.mean[0], z95 * model.sigma, 1e-9);
    }

    #[test]
    fn fitted_values_are_the_one_step_forecasts() {
        let model = fit_theta(&NILE_30, 1, ThetaVariant::Standard).unwrap();
        let fitted = model.fitted();
        assert_eq!(fitted.len(), NILE_30.len());
        let mse = NILE_30[BURN_IN..]
            .iter()
            .zip(&fitted[BURN_IN..])
            .map(|(y, f)| (y - f).powi(2))
            .sum::<f64>()
            / (NILE_30.len() - BURN_IN) as f64;
        assert_close(model.mse(), mse, 1e-12);
    }

    #[test]
    fn constant_series_is_forecast_exactly() {
        let y = [5.0; 20];
        let model = fit_theta(&y, 7, ThetaVariant::Auto).unwrap();
        assert_eq!(model.name(), "Theta(STM)");
        let fc = model.forecast(5, &[95.0]);
        for i in 0..5 {
            assert_close(fc.mean[i], 5.0, 1e-12);
            assert_close(fc.intervals[0].lo[i], 5.0, 1e-12);
            assert_close(fc.intervals[0].hi[i], 5.0, 1e-12);
        }
        assert!(model.fitted().iter().all(|f| (f - 5.0).abs() < 1e-12));
        assert!(model.mse() < 1e-20);
    }

    #[test]
    fn pure_multiplicative_season_is_forecast_exactly() {
        let pattern = [0.8, 1.3, 1.1, 0.8];
        let y: Vec<f64> = (0..40).map(|t| 100.0 * pattern[t % 4]).collect();
        let model = fit_theta(&y, 4, ThetaVariant::Auto).unwrap();
        assert!(matches!(
            model.seasonality,
            Some(Seasonality::Multiplicative(_))
        ));
        let fc = model.forecast(8, &[]);
        for (step, value) in fc.mean.iter().enumerate() {
            assert_close(*value, 100.0 * pattern[(40 + step) % 4], 1e-4);
        }
    }

    #[test]
    fn non_positive_seasonal_data_is_decomposed_additively() {
        let pattern = [-3.0, 4.0, 1.0, -2.0];
        let y: Vec<f64> = (0..48).map(|t| pattern[t % 4] + 0.05 * t as f64).collect();
        let model = fit_theta(&y, 4, ThetaVariant::Auto).unwrap();
        let Some(Seasonality::Additive(offsets)) = &model.seasonality else {
            panic!(
                "expected an additive decomposition, got {:?}",
                model.seasonality
            );
        };
        for (t, offset) in offsets.iter().enumerate() {
            assert_close(*offset, pattern[t], 1e-9);
        }
        let fc = model.forecast(4, &[]);
        for (step, value) in fc.mean.iter().enumerate() {
            let t = 48 + step;
            assert_close(*value, pattern[t % 4] + 0.05 * t as f64, 0.05);
        }
    }

    #[test]
    fn short_or_unseasonal_series_are_not_deseasonalised() {
        let pattern = [0.8, 1.3, 1.1, 0.8, 1.0, 1.2, 0.8];
        let short: Vec<f64> = (0..13).map(|t| 50.0 * pattern[t % 7]).collect();
        assert!(
            fit_theta(&short, 7, ThetaVariant::Auto)
                .unwrap()
                .seasonality
                .is_none()
        );
        let long: Vec<f64> = (0..28).map(|t| 50.0 * pattern[t % 7]).collect();
        assert!(
            fit_theta(&long, 7, ThetaVariant::Auto)
                .unwrap()
                .seasonality
                .is_some()
        );
        // Seasons shorter than 4 are never tested, as in statsforecast.
        let alternating: Vec<f64> = (0..30)
            .map(|t| if t % 2 == 0 { 1.0 } else { 3.0 })
            .collect();
        assert!(
            fit_theta(&alternating, 2, ThetaVariant::Auto)
                .unwrap()
                .seasonality
                .is_none()
        );
        assert!(
            fit_theta(&NILE_30, 12, ThetaVariant::Auto)
                .unwrap()
                .seasonality
                .is_none()
        );
    }

    #[test]
    fn rejects_tiny_or_non_finite_series() {
        assert!(fit_theta(&[], 1, ThetaVariant::Auto).is_err());
        assert!(fit_theta(&[1.0, 2.0, 3.0], 1, ThetaVariant::Auto).is_err());
        assert!(fit_theta(&[1.0, 2.0, f64::INFINITY, 4.0], 1, ThetaVariant::Auto).is_err());
        let model = fit_theta(&[1.0, 2.0, 3.0, 5.0], 1, ThetaVariant::Auto).unwrap();
        assert!(
            model
                .forecast(3, &[90.0])
                .mean
                .iter()
                .all(|v| v.is_finite())
        );
    }

    #[test]
    fn extreme_values_do_not_panic() {
        let y: Vec<f64> = (0..30)
            .map(|t| if t % 3 == 0 { 1e300 } else { -1e300 })
            .collect();
        if let Ok(model) = fit_theta(&y, 3, ThetaVariant::Auto) {
            model.forecast(4, &[80.0]);
        }
        let tiny: Vec<f64> = (0..30).map(|t| 1e-300 * (t % 5) as f64).collect();
        let model = fit_theta(&tiny, 5, ThetaVariant::Auto).unwrap();
        assert!(
            model
                .forecast(4, &[80.0])
                .mean
                .iter()
                .all(|v| v.is_finite())
        );
    }

    /// Any finite series of any length and season gives a model or an `Err`, never a
    /// panic, and the forecasts keep the `Forecast` invariants.
    #[test]
    fn arbitrary_series_keep_the_invariants() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            // splitmix64, mapped to [-1, 1)
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 52) as f64 - 1.0
        };
        for len in 1..60 {
            for season in [0, 1, 2, 4, 7, 12] {
                let offset = 10.0 * next();
                let y: Vec<f64> = (0..len)
                    .map(|t| offset + (t % season.max(1)) as f64 + next())
                    .collect();
                let Ok(model) = fit_theta(&y, season, ThetaVariant::Auto) else {
                    assert!(len <= BURN_IN);
                    continue;
                };
                assert_eq!(model.fitted().len(), len);
                assert!(model.mse().is_finite());
                let fc = model.forecast(9, &[50.0, 99.0]);
                for interval in &fc.intervals {
                    for i in 0..9 {
                        assert!(interval.lo[i] <= fc.mean[i] && fc.mean[i] <= interval.hi[i]);
                    }
                }
            }
        }
    }
}

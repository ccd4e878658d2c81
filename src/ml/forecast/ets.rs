//! Exponential smoothing state-space models (ETS) with automatic model choice.
//!
//! The model family is the innovations state-space form of Hyndman, Koehler, Ord &
//! Snyder, *Forecasting with Exponential Smoothing* (2008): error additive or
//! multiplicative, trend none, additive or additive damped, season none, additive or
//! multiplicative. The procedure follows R's `forecast::ets` as ported by statsforecast
//! 2.x (`AutoETS`), whose choices are kept wherever the two differ, so that the same
//! model is chosen on the same data:
//!
//! - **Initial states** (`initstate`): the seasonal states come from a classical
//!   decomposition (centred moving average, period means) when there are at least three
//!   seasons, else from a regression on a line plus one Fourier pair; the level (and
//!   slope) from the mean of (a line fitted to) the first `max(10, 2m)` seasonally
//!   adjusted points. The last seasonal state is implied by the others (they sum to 0,
//!   or to `m` when multiplicative).
//! - **Estimation**: the smoothing parameters and the initial states are optimised
//!   together by a bounded (clamping) adaptive Nelder–Mead on the concentrated
//!   likelihood `n·ln(Σe²) + 2·Σ ln|ŷ|` (the second term for multiplicative errors
//!   only). As in statsforecast the search stops when the standard deviation of the
//!   simplex values falls below 1e-4 or after 1,000 iterations, and the parameters are
//!   kept in a box rather than tested for admissibility: α in [1e-4, 0.9999], φ in
//!   [0.8, 0.98], β in [1e-4, α₀] and γ in [1e-4, 1 − α₀], where α₀ is the starting α
//!   (0.2 / m). statsforecast shrinks these β and γ ceilings in place as it goes through
//!   the candidates, so each candidate inherits the tightest ceiling of those tried
//!   before it; [`SearchBounds`] reproduces that, since it decides which model wins.
//!   Multiplicative seasonal states must stay non-negative.
//! - **Model choice**: every allowed combination is fitted in statsforecast's order
//!   (error A then M; trend N then A; season N, A, M; damped before undamped) and the
//!   lowest AICc wins (ties keep the first). AICc counts the optimised parameters plus
//!   one for the variance. Not allowed, as in R's defaults: additive error with
//!   multiplicative season; multiplicative error or season unless all data are
//!   strictly positive; seasonal models unless `1 < m <= 24` (R's limit; beyond it the
//!   Nelder–Mead search over dozens of states does not converge — deseasonalise
//!   first, as MSTL does) and `n > m`; a candidate with as many parameters as
//!   observations minus one. Multiplicative trends are not offered.
//! - **Variance**: `σ² = Σe² / (n − k − 1)` with `k` the parameter count of the AICc
//!   (statsforecast's divisor); `e` is relative for multiplicative errors.
//! - **Prediction intervals** are analytic, never simulated: class 1 (additive error)
//!   `σ²(1 + Σ c_j²)`, class 2 (multiplicative error, non-multiplicative season) the
//!   θ-recursion, class 3 (multiplicative error and season) the recursion of Hyndman et
//!   al. (2008, ch. 6) on the Kronecker-form means and covariances, as R does it.
//!   statsforecast only simulates for combinations not offered here (multiplicative
//!   trend, additive error with multiplicative season), so no simulation is needed.
//!   Where statsforecast departs from the book we follow the book, and the unit tests
//!   check every class against simulated paths: the seasonal term of class 1 counts
//!   `⌊(j−1)/m⌋` per step (statsforecast uses the last step's for all steps), the
//!   class-3 means are carried through the horizon (statsforecast keeps the first
//!   step's), MAA uses `c_j = α + βj` (statsforecast multiplies α and βj), and the
//!   damped class-3 matrices carry φ (R's and statsforecast's use the undamped ones).
//!
//! Policies on awkward input: an empty series, non-finite values or `season_length == 0`
//! are errors; so are explicit specifications that cannot be honoured (a multiplicative
//! trend, additive error with multiplicative season, a multiplicative component on data
//! that are not all positive, a seasonal component with `m == 1` or `m > 24`, a damped
//! model without trend). A constant series gives ETS(A,N,N) with α = 0.9999 and zero
//! variance, as statsforecast does. A series too short for the requested family (`n <=`
//! parameters + 4, R's rule) or on which no candidate can be fitted gets simple
//! exponential smoothing with the level started at the first observation and α fitted
//! by least squares (R's `HoltWinters` fallback), with σ² = SSE / (n − 2) (NaN, hence
//! NaN intervals, when n <= 2). The likelihood evaluation inside the optimiser does not
//! allocate: the seasonal states live in a ring buffer reused across evaluations.

use super::ForecastError;
use super::model::{FittedModel, Forecast, normal_intervals};

/// One letter of a model string such as `"MAdM"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `Z`: let the AICc choose.
    Auto,
    /// `N`: no such component.
    None,
    /// `A`
    Additive,
    /// `M`
    Multiplicative,
}

/// Which models [`auto_ets`] may consider: one [`Component`] per letter of `"ETS"` and
/// whether the trend is damped (`None`: try both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EtsSpec {
    pub error: Component,
    pub trend: Component,
    pub season: Component,
    pub damped: Option<bool>,
}

impl Default for EtsSpec {
    /// `"ZZZ"`: every allowed model, damped or not.
    fn default() -> Self {
        EtsSpec {
            error: Component::Auto,
            trend: Component::Auto,
            season: Component::Auto,
            damped: None,
        }
    }
}

impl EtsSpec {
    /// Parses R's model strings: three letters among `Z` (auto), `N`, `A`, `M` for
    /// error, trend and season (`"ZZZ"`, `"ANN"`, `"MAM"`, `"ZZN"`), optionally with a
    /// `d` after the trend letter to require damping (`"MAdM"`).
    pub fn parse(model: &str) -> Result<EtsSpec, ForecastError> {
        let letters: Vec<char> = model.chars().collect();
        let (error, trend, damped, season) = match letters.as_slice() {
            [e, t, s] => (*e, *t, None, *s),
            [e, t, 'd', s] => (*e, *t, Some(true), *s),
            _ => {
                return Err(ForecastError::Input(format!(
                    "ETS model '{model}' must be three letters (error, trend, season) such as \
                     'ZZZ' or 'MAM', with an optional 'd' after the trend"
                )));
            }
        };
        let component = |letter: char, what: &str| match letter.to_ascii_uppercase() {
            'Z' => Ok(Component::Auto),
            'N' => Ok(Component::None),
            'A' => Ok(Component::Additive),
            'M' => Ok(Component::Multiplicative),
            other => Err(ForecastError::Input(format!(
                "ETS model '{model}': {what} '{other}' is not one of Z, N, A, M"
            ))),
        };
        let spec = EtsSpec {
            error: component(error, "error")?,
            trend: component(trend, "trend")?,
            season: component(season, "season")?,
            damped,
        };
        if spec.error == Component::None {
            return Err(ForecastError::Input(format!(
                "ETS model '{model}': the error must be A, M or Z"
            )));
        }
        Ok(spec)
    }
}

/// How a component enters the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Additive,
    Multiplicative,
}

impl Form {
    fn letter(self) -> char {
        match self {
            Form::Additive => 'A',
            Form::Multiplicative => 'M',
        }
    }
}

/// One member of the family; the trend, when present, is additive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Structure {
    error: Form,
    trend: bool,
    damped: bool,
    season: Option<Form>,
}

impl Structure {
    fn name(self) -> String {
        let trend = match (self.trend, self.damped) {
            (false, _) => "N",
            (true, false) => "A",
            (true, true) => "Ad",
        };
        let season = self.season.map_or('N', Form::letter);
        format!("ETS({},{trend},{season})", self.error.letter())
    }
}

/// Smoothing parameters; β = 0 without trend, γ = 0 without season, φ = 1 undamped.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Smoothing {
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
}

/// The state after an observation: level, slope, and the seasonal states with the
/// most recent first (`seasons[m - 1]` is the one the next step uses).
#[derive(Debug, Clone, PartialEq)]
struct State {
    level: f64,
    slope: f64,
    seasons: Vec<f64>,
}

const ALPHA_RANGE: (f64, f64) = (1e-4, 0.9999);
const BETA_GAMMA_LOWER: f64 = 1e-4;
const PHI_RANGE: (f64, f64) = (0.8, 0.98);
/// R refuses seasonal ETS beyond this period.
const MAX_SEASON_LENGTH: usize = 24;
/// Guards against division by (nearly) zero states, as R's `etscalc` does.
const TINY: f64 = 1e-10;
const HUGE: f64 = 1e10;
/// statsforecast's Nelder–Mead settings.
const NM_TOL_STD: f64 = 1e-4;
const NM_MAX_ITER: usize = 1000;
const NM_INIT_STEP: f64 = 0.05;
const NM_ZERO_STEP: f64 = 1e-4;

/// The ceilings on β and γ for the next candidate. statsforecast lowers them in place
/// (to α₀ and 1 − α₀) for every candidate with a trend or a season and never restores
/// them, so a later candidate inherits the tightest ceiling so far.
#[derive(Debug, Clone, Copy)]
struct SearchBounds {
    beta_upper: f64,
    gamma_upper: f64,
}

impl Default for SearchBounds {
    fn default() -> Self {
        SearchBounds {
            beta_upper: ALPHA_RANGE.1,
            gamma_upper: ALPHA_RANGE.1,
        }
    }
}

/// An exponential smoothing model fitted to one series.
#[derive(Debug, Clone)]
pub struct Ets {
    structure: Structure,
    /// Season length used by the model (1 when it has no season).
    period: usize,
    smoothing: Smoothing,
    last: State,
    fitted: Vec<f64>,
    sigma2: f64,
    aicc: f64,
}

impl Ets {
    /// The AICc of the chosen model (`+inf` where it cannot be computed).
    pub fn aicc(&self) -> f64 {
        self.aicc
    }

    /// The innovation standard deviation (relative for multiplicative errors).
    pub fn sigma(&self) -> f64 {
        self.sigma2.sqrt()
    }

    /// Point forecasts 1..=h steps past the last observation.
    fn point_forecasts(&self, h: usize) -> Vec<f64> {
        let Smoothing { phi, .. } = self.smoothing;
        let m = self.period;
        let mut damped_sum = 0.0;
        let mut phi_power = 1.0;
        (0..h)
            .map(|i| {
                phi_power *= phi;
                damped_sum += phi_power;
                let mut f = self.last.level;
                if self.structure.trend {
                    f += damped_sum * self.last.slope;
                }
                if let Some(form) = self.structure.season {
                    // The season `i + 1` steps ahead was last updated `m - 1 - i mod m`
                    // positions back.
                    let s = self.last.seasons[m - 1 - i % m];
                    match form {
                        Form::Additive => f += s,
                        Form::Multiplicative => f *= s,
                    }
                }
                f
            })
            .collect()
    }

    /// `c_j` (j = 1..h-1): how much a unit innovation now moves the forecast j steps
    /// on, `α + β(φ + … + φ^j) + γ·[m divides j]`.
    fn impulse_weights(&self, h: usize) -> Vec<f64> {
        let Smoothing {
            alpha,
            beta,
            gamma,
            phi,
        } = self.smoothing;
        let mut damped_sum = 0.0;
        let mut phi_power = 1.0;
        (1..h)
            .map(|j| {
                let mut c = alpha;
                if self.structure.trend {
                    phi_power *= phi;
                    damped_sum += phi_power;
                    c += beta * damped_sum;
                }
                if self.structure.season.is_some() && j.is_multiple_of(self.period) {
                    c += gamma;
                }
                c
            })
            .collect()
    }

    /// The forecast variance for each step, by the model's class.
    fn forecast_variance(&self, mean: &[f64]) -> Vec<f64> {
        let h = mean.len();
        let sigma2 = self.sigma2;
        match (self.structure.error, self.structure.season) {
            (Form::Additive, _) => {
                let c = self.impulse_weights(h);
                let mut total = 1.0;
                (0..h)
                    .map(|i| {
                        if i > 0 {
                            total += c[i - 1] * c[i - 1];
                        }
                        sigma2 * total
                    })
                    .collect()
            }
            (Form::Multiplicative, Some(Form::Multiplicative)) => self.class3_variance(h),
            (Form::Multiplicative, _) => {
                let c = self.impulse_weights(h);
                let mut theta = Vec::with_capacity(h);
                for k in 0..h {
                    let carried: f64 = (0..k).map(|j| c[j] * c[j] * theta[k - 1 - j]).sum();
                    theta.push(mean[k] * mean[k] + sigma2 * carried);
                }
                theta
                    .iter()
                    .zip(mean)
                    .map(|(t, f)| (1.0 + sigma2) * t - f * f)
                    .collect()
            }
        }
    }

    /// Forecast variance of models with multiplicative error and season (class 3): the
    /// level/slope row and the seasonal row form a rank-one matrix `M` whose mean and
    /// covariance (in column-major vec form) are carried step by step.
    fn class3_variance(&self, h: usize) -> Vec<f64> {
        let Smoothing {
            alpha,
            beta,
            gamma,
            phi,
        } = self.smoothing;
        let sigma2 = self.sigma2;
        let m = self.period;
        let rows = 1 + usize::from(self.structure.trend);
        let d = rows * m;
        // Level/slope transition and gain, seasonal transition and gain. With a trend
        // the level moves with `l + φb` and so does the slope's correction; R writes
        // these with 1 in place of φ, which is exact only without damping.
        let (f1, g1, weights): (Vec<f64>, Vec<f64>, Vec<f64>) = if rows == 2 {
            (
                vec![1.0, phi, 0.0, phi],
                vec![alpha, alpha * phi, beta, beta * phi],
                vec![1.0, phi],
            )
        } else {
            (vec![1.0], vec![alpha], vec![1.0])
        };
        let mut f2 = vec![0.0; m * m];
        f2[m - 1] = 1.0;
        for i in 1..m {
            f2[i * m + i - 1] = 1.0;
        }
        let mut g2 = vec![0.0; m * m];
        g2[m - 1] = gamma;
        let f21 = kron(&f2, m, &f1, rows);
        let g21 = kron(&g2, m, &g1, rows);
        let k: Vec<f64> = kron(&g2, m, &f1, rows)
            .iter()
            .zip(kron(&f2, m, &g1, rows))
            .map(|(a, b)| a + b)
            .collect();
        // The observation weighs the level (and φ·slope) times the oldest season.
        let observed: Vec<(usize, f64)> = (0..rows)
            .map(|r| ((m - 1) * rows + r, weights[r]))
            .collect();

        let mut mean_state = vec![0.0; d];
        let components = [self.last.level, self.last.slope];
        for season in 0..m {
            for row in 0..rows {
                mean_state[season * rows + row] = components[row] * self.last.seasons[season];
            }
        }
        let mut cov = vec![0.0; d * d];
        let mut variances = Vec::with_capacity(h);
        let mut scratch = vec![0.0; d * d];
        for _ in 0..h {
            let mu: f64 = observed.iter().map(|&(v, w)| w * mean_state[v]).sum();
            let mut observed_cov = 0.0;
            for &(a, wa) in &observed {
                for &(b, wb) in &observed {
                    observed_cov += wa * wb * cov[a * d + b];
                }
            }
            variances.push((1.0 + sigma2) * observed_cov + sigma2 * mu * mu);

            let outer: Vec<f64> = (0..d * d)
                .map(|ij| mean_state[ij / d] * mean_state[ij % d])
                .collect();
            let mut next = sandwich(&f21, &cov, &f21, d, &mut scratch);
            let cross = sandwich(&f21, &cov, &g21, d, &mut scratch);
            let with_outer: Vec<f64> = cov.iter().zip(&outer).map(|(v, o)| v + o).collect();
            let through_k = sandwich(&k, &with_outer, &k, d, &mut scratch);
            let weighted: Vec<f64> = cov
                .iter()
                .zip(&outer)
                .map(|(v, o)| 3.0 * v + 2.0 * o)
                .collect();
            let through_g = sandwich(&g21, &weighted, &g21, d, &mut scratch);
            for a in 0..d {
                for b in 0..d {
                    let ab = a * d + b;
                    next[ab] += sigma2
                        * (cross[ab] + cross[b * d + a] + through_k[ab] + sigma2 * through_g[ab]);
                }
            }
            cov = next;

            let mut next_mean = vec![0.0; d];
            for (v, slot) in next_mean.iter_mut().enumerate() {
                *slot = (0..d)
                    .map(|w| (f21[v * d + w] + sigma2 * g21[v * d + w]) * mean_state[w])
                    .sum();
            }
            mean_state = next_mean;
        }
        variances
    }
}

impl FittedModel for Ets {
    fn name(&self) -> String {
        self.structure.name()
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let mean = self.point_forecasts(h);
        let sd: Vec<f64> = self
            .forecast_variance(&mean)
            .iter()
            .map(|v| v.max(0.0).sqrt())
            .collect();
        let intervals = normal_intervals(&mean, &sd, levels);
        Forecast { mean, intervals }
    }

    fn fitted(&self) -> &[f64] {
        &self.fitted
    }
}

/// `kron(a, b)` for square `a` (order `na`) and `b` (order `nb`), row-major.
fn kron(a: &[f64], na: usize, b: &[f64], nb: usize) -> Vec<f64> {
    let n = na * nb;
    let mut out = vec![0.0; n * n];
    for i in 0..na {
        for j in 0..na {
            let aij = a[i * na + j];
            if aij == 0.0 {
                continue;
            }
            for k in 0..nb {
                for l in 0..nb {
                    out[(i * nb + k) * n + j * nb + l] = aij * b[k * nb + l];
                }
            }
        }
    }
    out
}

/// `left · mid · rightᵀ` for square row-major matrices of order `d`.
fn sandwich(left: &[f64], mid: &[f64], right: &[f64], d: usize, scratch: &mut [f64]) -> Vec<f64> {
    // scratch = left · mid, skipping the many zeros of the Kronecker factors.
    scratch.fill(0.0);
    for i in 0..d {
        for k in 0..d {
            let lik = left[i * d + k];
            if lik != 0.0 {
                for j in 0..d {
                    scratch[i * d + j] += lik * mid[k * d + j];
                }
            }
        }
    }
    let mut out = vec![0.0; d * d];
    for j in 0..d {
        for k in 0..d {
            let rjk = right[j * d + k];
            if rjk != 0.0 {
                for i in 0..d {
                    out[i * d + j] += scratch[i * d + k] * rjk;
                }
            }
        }
    }
    out
}

/// Runs the ETS recursions over `y` from the given initial states, calling
/// `visit(i, one_step_forecast)` for each observation. `ring` holds the seasonal
/// states, oldest (the one used next) at index 0 on entry; on return it holds the
/// final seasonal states starting at the returned position. Returns the concentrated
/// `-2 log L` (up to constants), the final level and slope, and that ring position.
fn run_filter(
    structure: Structure,
    y: &[f64],
    p: Smoothing,
    start: (f64, f64),
    ring: &mut [f64],
    visit: impl FnMut(usize, f64),
) -> FilterEnd {
    // One compiled loop per structure keeps the per-observation branches out of the
    // optimiser's hot path.
    let multiplicative_error = structure.error == Form::Multiplicative;
    match (structure.trend, structure.season, multiplicative_error) {
        (false, None, false) => filter::<false, NO_SEASON, false>(y, p, start, ring, visit),
        (false, None, true) => filter::<false, NO_SEASON, true>(y, p, start, ring, visit),
        (true, None, false) => filter::<true, NO_SEASON, false>(y, p, start, ring, visit),
        (true, None, true) => filter::<true, NO_SEASON, true>(y, p, start, ring, visit),
        (false, Some(Form::Additive), false) => {
            filter::<false, ADDITIVE_SEASON, false>(y, p, start, ring, visit)
        }
        (false, Some(Form::Additive), true) => {
            filter::<false, ADDITIVE_SEASON, true>(y, p, start, ring, visit)
        }
        (true, Some(Form::Additive), false) => {
            filter::<true, ADDITIVE_SEASON, false>(y, p, start, ring, visit)
        }
        (true, Some(Form::Additive), true) => {
            filter::<true, ADDITIVE_SEASON, true>(y, p, start, ring, visit)
        }
        (false, Some(Form::Multiplicative), false) => {
            filter::<false, MULTIPLICATIVE_SEASON, false>(y, p, start, ring, visit)
        }
        (false, Some(Form::Multiplicative), true) => {
            filter::<false, MULTIPLICATIVE_SEASON, true>(y, p, start, ring, visit)
        }
        (true, Some(Form::Multiplicative), false) => {
            filter::<true, MULTIPLICATIVE_SEASON, false>(y, p, start, ring, visit)
        }
        (true, Some(Form::Multiplicative), true) => {
            filter::<true, MULTIPLICATIVE_SEASON, true>(y, p, start, ring, visit)
        }
    }
}

/// What [`run_filter`] leaves: `-2 log L` up to constants, the final level and slope,
/// and where the final seasonal states start in the ring.
struct FilterEnd {
    lik: f64,
    level: f64,
    slope: f64,
    ring_start: usize,
}

const NO_SEASON: u8 = 0;
const ADDITIVE_SEASON: u8 = 1;
const MULTIPLICATIVE_SEASON: u8 = 2;

/// [`run_filter`] for one structure fixed at compile time.
fn filter<const TREND: bool, const SEASON: u8, const MULTIPLICATIVE_ERROR: bool>(
    y: &[f64],
    p: Smoothing,
    (level0, slope0): (f64, f64),
    ring: &mut [f64],
    mut visit: impl FnMut(usize, f64),
) -> FilterEnd {
    let Smoothing {
        alpha,
        beta,
        gamma,
        phi,
    } = p;
    // The level/slope updates are rearranged so that the next step's base
    // `l + φb` follows from this one's with few dependent operations (the loop is
    // bound by that chain): with d the deseasonalised one-step error,
    // l' = base + αd, b' = φb + βd, hence base' = base + (α + φβ)d + φ·φb.
    // This is R's `l + α(p − q)`, `φb + (β/α)(l' − l − φb)` rewritten exactly.
    let gain = if TREND { alpha + phi * beta } else { alpha };
    let mut level = level0;
    let mut slope = slope0;
    let mut damped_slope = if TREND { phi * slope0 } else { 0.0 };
    let mut base = level0 + damped_slope;
    let mut pos = 0;
    let mut sse = 0.0;
    // Σ ln|ŷ| is kept as a mantissa product and an exponent sum: one `ln` at the end
    // instead of one per observation.
    let mut log_scale = 1.0_f64;
    let mut log_exponent = 0_i64;
    for (i, &yi) in y.iter().enumerate() {
        let old_season = if SEASON == NO_SEASON { 0.0 } else { ring[pos] };
        let forecast = match SEASON {
            NO_SEASON => base,
            ADDITIVE_SEASON => base + old_season,
            _ => base * old_season,
        };
        visit(i, forecast);
        let error = if MULTIPLICATIVE_ERROR {
            let denominator = if forecast.abs() < TINY {
                forecast + TINY
            } else {
                forecast
            };
            // Clamped so that the running product can neither overflow nor vanish.
            let magnitude = if forecast == 0.0 {
                1e-8
            } else {
                forecast.abs().clamp(1e-200, 1e200)
            };
            log_scale *= magnitude;
            if !(1e-100..=1e100).contains(&log_scale) {
                let (mantissa, exponent) = libm::frexp(log_scale);
                log_scale = mantissa;
                log_exponent += i64::from(exponent);
            }
            (yi - forecast) / denominator
        } else {
            yi - forecast
        };
        sse += error * error;

        let deseasonalised = match SEASON {
            NO_SEASON => yi,
            ADDITIVE_SEASON => yi - old_season,
            _ if old_season.abs() < TINY => HUGE,
            _ => yi / old_season,
        };
        if SEASON != NO_SEASON {
            let detrended = match SEASON {
                ADDITIVE_SEASON => yi - base,
                _ if base.abs() < TINY => HUGE,
                _ => yi / base,
            };
            ring[pos] = old_season + gamma * (detrended - old_season);
            pos += 1;
            if pos == ring.len() {
                pos = 0;
            }
        }
        let d = deseasonalised - base;
        level = base + alpha * d;
        if TREND {
            slope = damped_slope + beta * d;
            let next_damped = phi * slope;
            base = base + gain * d + phi * damped_slope;
            damped_slope = next_damped;
        } else {
            base = level;
        }
    }
    let n = y.len() as f64;
    let mut lik = if sse > 0.0 {
        n * sse.ln()
    } else {
        n * (sse + 1e-8).ln()
    };
    if MULTIPLICATIVE_ERROR {
        lik += 2.0 * (log_scale.ln() + log_exponent as f64 * std::f64::consts::LN_2);
    }
    FilterEnd {
        lik,
        level,
        slope,
        ring_start: pos,
    }
}

/// Buffers reused by every likelihood evaluation and Nelder–Mead step of one call.
struct Workspace {
    ring: Vec<f64>,
    simplex: Vec<f64>,
    values: Vec<f64>,
    centroid: Vec<f64>,
    trial: Vec<f64>,
    second_trial: Vec<f64>,
}

impl Workspace {
    fn new() -> Self {
        Workspace {
            ring: Vec::new(),
            simplex: Vec::new(),
            values: Vec::new(),
            centroid: Vec::new(),
            trial: Vec::new(),
            second_trial: Vec::new(),
        }
    }
}

/// Minimises `objective` from `x0` inside the box `[lower, upper]` by statsforecast's
/// Nelder–Mead (adaptive coefficients, moves clamped to the box, first simplex from 5%
/// steps along each axis); the best point is left in `x0`.
fn nelder_mead(
    x0: &mut [f64],
    lower: &[f64],
    upper: &[f64],
    simplex: &mut Vec<f64>,
    values: &mut Vec<f64>,
    buffers: (&mut Vec<f64>, &mut Vec<f64>, &mut Vec<f64>),
    mut objective: impl FnMut(&[f64]) -> f64,
) {
    let (centroid, trial, second_trial) = buffers;
    let n = x0.len();
    let clamp = |x: &mut [f64]| {
        for ((v, lo), hi) in x.iter_mut().zip(lower).zip(upper) {
            *v = v.max(*lo).min(*hi);
        }
    };
    let dims = n as f64;
    let (reflect, expand, contract, shrink) = (
        1.0,
        1.0 + 2.0 / dims,
        0.75 - 1.0 / (2.0 * dims),
        1.0 - 1.0 / dims,
    );
    clamp(x0);
    simplex.clear();
    values.clear();
    for vertex in 0..=n {
        let start = simplex.len();
        simplex.extend_from_slice(x0);
        if vertex < n {
            let v = &mut simplex[start + vertex];
            *v = if *v == 0.0 {
                NM_ZERO_STEP
            } else {
                *v * (1.0 + NM_INIT_STEP)
            };
            *v = v.max(lower[vertex]).min(upper[vertex]);
        }
        values.push(objective(&simplex[start..start + n]));
    }
    centroid.resize(n, 0.0);
    trial.resize(n, 0.0);
    second_trial.resize(n, 0.0);
    // The result is the best vertex as ranked at the start of the last step, as
    // statsforecast's: a search stopped by the step limit does not return a point found
    // by its final step. On a model that hits the limit (co2's M,A,A) the two differ, and
    // the forecast with them.
    let mut best = 0;
    for _ in 0..NM_MAX_ITER {
        let worst;
        let second_worst;
        (best, worst, second_worst) = rank(values);
        let mean = values.iter().sum::<f64>() / (dims + 1.0);
        let spread =
            (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (dims + 1.0)).sqrt();
        if spread < NM_TOL_STD {
            break;
        }
        let (f_best, f_worst, f_second) = (values[best], values[worst], values[second_worst]);

        centroid.fill(0.0);
        for (vertex, row) in simplex.chunks_exact(n).enumerate() {
            if vertex != worst {
                for (c, v) in centroid.iter_mut().zip(row) {
                    *c += v / dims;
                }
            }
        }
        let worst_row = worst * n;
        for j in 0..n {
            trial[j] = centroid[j] + reflect * (centroid[j] - simplex[worst_row + j]);
        }
        clamp(trial);
        let f_reflected = objective(trial);
        if f_best <= f_reflected && f_reflected < f_second {
            simplex[worst_row..worst_row + n].copy_from_slice(trial);
            values[worst] = f_reflected;
            continue;
        }
        if f_reflected < f_best {
            for j in 0..n {
                second_trial[j] = centroid[j] + expand * (trial[j] - centroid[j]);
            }
            clamp(second_trial);
            let f_expanded = objective(second_trial);
            if f_expanded < f_reflected {
                simplex[worst_row..worst_row + n].copy_from_slice(second_trial);
                values[worst] = f_expanded;
            } else {
                simplex[worst_row..worst_row + n].copy_from_slice(trial);
                values[worst] = f_reflected;
            }
            continue;
        }
        let outside = f_second <= f_reflected && f_reflected < f_worst;
        let direction = if outside { contract } else { -contract };
        for j in 0..n {
            second_trial[j] = centroid[j] + direction * (trial[j] - centroid[j]);
        }
        clamp(second_trial);
        let f_contracted = objective(second_trial);
        let accepted = if outside {
            f_contracted <= f_reflected
        } else {
            f_contracted < f_worst
        };
        if accepted {
            simplex[worst_row..worst_row + n].copy_from_slice(second_trial);
            values[worst] = f_contracted;
            continue;
        }
        let best_row = best * n;
        for vertex in (0..=n).filter(|&v| v != best) {
            let row = vertex * n;
            for j in 0..n {
                let shrunk =
                    simplex[best_row + j] + shrink * (simplex[row + j] - simplex[best_row + j]);
                simplex[row + j] = shrunk.max(lower[j]).min(upper[j]);
            }
            values[vertex] = objective(&simplex[row..row + n]);
        }
    }
    x0.copy_from_slice(&simplex[best * n..(best + 1) * n]);
}

/// Indices of the lowest, highest and second-highest values (NaN counts as highest).
fn rank(values: &[f64]) -> (usize, usize, usize) {
    let key = |v: f64| if v.is_nan() { f64::INFINITY } else { v };
    let mut best = 0;
    let mut worst = 0;
    for (i, &v) in values.iter().enumerate() {
        if key(v) < key(values[best]) {
            best = i;
        }
        if key(v) >= key(values[worst]) {
            worst = i;
        }
    }
    let mut second = if worst == 0 {
        1.min(values.len() - 1)
    } else {
        0
    };
    for (i, &v) in values.iter().enumerate() {
        if i != worst && key(v) > key(values[second]) {
            second = i;
        }
    }
    (best, worst, second)
}

/// Least squares `X b = y` through the normal equations with partial pivoting; `None`
/// when `X` is rank deficient.
fn least_squares(columns: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let k = columns.len();
    let mut a = vec![0.0; k * (k + 1)];
    for i in 0..k {
        for j in 0..k {
            a[i * (k + 1) + j] = columns[i].iter().zip(&columns[j]).map(|(u, v)| u * v).sum();
        }
        a[i * (k + 1) + k] = columns[i].iter().zip(y).map(|(u, v)| u * v).sum();
    }
    let scale = (0..k).map(|i| a[i * (k + 2)].abs()).fold(0.0, f64::max);
    for col in 0..k {
        let pivot = (col..k).max_by(|&r, &s| {
            a[r * (k + 1) + col]
                .abs()
                .total_cmp(&a[s * (k + 1) + col].abs())
        })?;
        if a[pivot * (k + 1) + col].abs() <= 1e-12 * scale {
            return None;
        }
        for j in 0..=k {
            a.swap(col * (k + 1) + j, pivot * (k + 1) + j);
        }
        for r in 0..k {
            if r != col {
                let factor = a[r * (k + 1) + col] / a[col * (k + 1) + col];
                for j in col..=k {
                    a[r * (k + 1) + j] -= factor * a[col * (k + 1) + j];
                }
            }
        }
    }
    Some(
        (0..k)
            .map(|i| a[i * (k + 1) + k] / a[i * (k + 2)])
            .collect(),
    )
}

/// The seasonal pattern used to start the seasonal states: for each observation, its
/// seasonal index (additive offset or multiplicative factor).
fn initial_seasonal_pattern(y: &[f64], m: usize, form: Form) -> Option<Vec<f64>> {
    let n = y.len();
    if n < 3 * m {
        // Too short for a decomposition: regress on a line and one Fourier pair and
        // take what the line leaves (R and statsforecast do the same).
        let t: Vec<f64> = (1..=n).map(|i| i as f64).collect();
        let angle = |i: f64| 2.0 * std::f64::consts::PI * i / m as f64;
        let mut columns = vec![vec![1.0; n], t.clone()];
        columns.push(t.iter().map(|&i| angle(i).cos()).collect());
        // With m = 2 the sine column is identically zero.
        if m > 2 {
            columns.push(t.iter().map(|&i| angle(i).sin()).collect());
        }
        let coef = least_squares(&columns, y)?;
        return Some(
            y.iter()
                .zip(&t)
                .map(|(v, i)| match form {
                    Form::Additive => v - coef[0] - coef[1] * i,
                    Form::Multiplicative => v / (coef[0] + coef[1] * i),
                })
                .collect(),
        );
    }
    // Classical decomposition: centred moving average of order m (2×m when m is even).
    let half = m / 2;
    let weight = |k: usize| {
        if m.is_multiple_of(2) && (k == 0 || k == m) {
            0.5 / m as f64
        } else {
            1.0 / m as f64
        }
    };
    let width = if m.is_multiple_of(2) { m + 1 } else { m };
    let mut sums = vec![0.0; m];
    let mut counts = vec![0usize; m];
    for t in half..n - (width - 1 - half) {
        let trend: f64 = (0..width).map(|k| weight(k) * y[t + k - half]).sum();
        let detrended = match form {
            Form::Additive => y[t] - trend,
            Form::Multiplicative => y[t] / trend,
        };
        sums[t % m] += detrended;
        counts[t % m] += 1;
    }
    let mut pattern: Vec<f64> = sums
        .iter()
        .zip(&counts)
        .map(|(s, &c)| s / c as f64)
        .collect();
    let centre = pattern.iter().sum::<f64>() / m as f64;
    for p in &mut pattern {
        match form {
            Form::Additive => *p -= centre,
            Form::Multiplicative => *p /= centre,
        }
    }
    Some((0..n).map(|t| pattern[t % m]).collect())
}

/// The heuristic initial states: `[level, slope?, s_0 .. s_{m-2}]` (the last seasonal
/// state is implied). `None` when the seasonal regression is singular.
fn initial_states(y: &[f64], m: usize, structure: Structure) -> Option<Vec<f64>> {
    let n = y.len();
    let mut states = Vec::with_capacity(m + 1);
    let (adjusted, seasons, period) = match structure.season {
        Some(form) => {
            let pattern = initial_seasonal_pattern(y, m, form)?;
            let mut seasons: Vec<f64> = pattern[1..m].iter().rev().copied().collect();
            let adjusted: Vec<f64> = match form {
                Form::Additive => y.iter().zip(&pattern).map(|(v, s)| v - s).collect(),
                Form::Multiplicative => {
                    for s in &mut seasons {
                        *s = s.max(1e-2);
                    }
                    let total: f64 = seasons.iter().sum();
                    if total > m as f64 {
                        let norm: f64 = seasons.iter().map(|s| s + 1e-2).sum();
                        for s in &mut seasons {
                            *s /= norm;
                        }
                    }
                    y.iter()
                        .zip(&pattern)
                        .map(|(v, s)| v / s.max(1e-2))
                        .collect()
                }
            };
            (adjusted, seasons, m)
        }
        None => (y.to_vec(), Vec::new(), 1),
    };
    let start = &adjusted[..n.min((2 * period).max(10))];
    if structure.trend {
        let count = start.len() as f64;
        if start.len() < 2 {
            states.extend([start[0], 0.0]);
        } else {
            // Line through (1..=count, start) by least squares.
            let t_mean = (count + 1.0) / 2.0;
            let y_mean = start.iter().sum::<f64>() / count;
            let (mut sxy, mut sxx) = (0.0, 0.0);
            for (i, v) in start.iter().enumerate() {
                let dt = (i + 1) as f64 - t_mean;
                sxy += dt * (v - y_mean);
                sxx += dt * dt;
            }
            let mut slope = sxy / sxx;
            let mut level = y_mean - slope * t_mean;
            // A multiplicative error needs l0 + b0 != 0.
            if (level + slope).abs() < 1e-8 {
                level *= 1.0 + 1e-3;
                slope *= 1.0 - 1e-3;
            }
            states.extend([level, slope]);
        }
    } else {
        states.push(start.iter().sum::<f64>() / start.len() as f64);
    }
    states.extend(seasons);
    Some(states)
}

/// Fits one member of the family; `None` when it cannot be fitted (too many
/// parameters for the data, singular start, or a likelihood that is not finite).
fn fit_structure(
    y: &[f64],
    season_length: usize,
    structure: Structure,
    bounds: &mut SearchBounds,
    workspace: &mut Workspace,
) -> Option<Ets> {
    let n = y.len();
    let m = if structure.season.is_some() {
        season_length
    } else {
        1
    };
    // statsforecast's initparam, including its in-place lowering of the ceilings.
    let alpha0 = ALPHA_RANGE.0 + 0.2 * (ALPHA_RANGE.1 - ALPHA_RANGE.0) / m as f64;
    let mut x = vec![alpha0];
    let mut lower = vec![ALPHA_RANGE.0];
    let mut upper = vec![ALPHA_RANGE.1];
    if structure.trend {
        bounds.beta_upper = bounds.beta_upper.min(alpha0);
        x.push(BETA_GAMMA_LOWER + 0.1 * (bounds.beta_upper - BETA_GAMMA_LOWER));
        lower.push(BETA_GAMMA_LOWER);
        upper.push(bounds.beta_upper);
    }
    if structure.season.is_some() {
        bounds.gamma_upper = bounds.gamma_upper.min(1.0 - alpha0);
        x.push(BETA_GAMMA_LOWER + 0.05 * (bounds.gamma_upper - BETA_GAMMA_LOWER));
        lower.push(BETA_GAMMA_LOWER);
        upper.push(bounds.gamma_upper);
    }
    if structure.damped {
        x.push(PHI_RANGE.0 + 0.99 * (PHI_RANGE.1 - PHI_RANGE.0));
        lower.push(PHI_RANGE.0);
        upper.push(PHI_RANGE.1);
    }
    let n_smoothing = x.len();
    let states = initial_states(y, m, structure)?;
    x.extend_from_slice(&states);
    lower.resize(x.len(), f64::NEG_INFINITY);
    upper.resize(x.len(), f64::INFINITY);
    if x.len() >= n.saturating_sub(1) {
        return None;
    }

    let Workspace {
        ring,
        simplex,
        values,
        centroid,
        trial,
        second_trial,
    } = workspace;
    ring.clear();
    ring.resize(m, 0.0);
    nelder_mead(
        &mut x,
        &lower,
        &upper,
        simplex,
        values,
        (centroid, trial, second_trial),
        |params| {
            let (smoothing, level, slope) = unpack(structure, params);
            if !load_seasons(structure, &params[n_smoothing..], ring) {
                return f64::INFINITY;
            }
            let lik = run_filter(structure, y, smoothing, (level, slope), ring, |_, _| {}).lik;
            if lik.is_nan() {
                f64::INFINITY
            } else {
                lik.max(-1e10)
            }
        },
    );

    let (smoothing, level0, slope0) = unpack(structure, &x);
    load_seasons(structure, &x[n_smoothing..], ring);
    let mut fitted = vec![0.0; n];
    let FilterEnd {
        lik,
        level,
        slope,
        ring_start,
    } = run_filter(structure, y, smoothing, (level0, slope0), ring, |i, f| {
        fitted[i] = f
    });
    if !lik.is_finite() {
        return None;
    }
    let seasons = if structure.season.is_some() {
        (0..m).map(|k| ring[(ring_start + m - 1 - k) % m]).collect()
    } else {
        Vec::new()
    };
    let sse: f64 = y
        .iter()
        .zip(&fitted)
        .map(|(v, f)| match structure.error {
            Form::Additive => (v - f) * (v - f),
            Form::Multiplicative => ((v - f) / f) * ((v - f) / f),
        })
        .sum();
    let k = (x.len() + 1) as f64;
    let residual_dof = n as f64 - k - 1.0;
    let aicc = if residual_dof == 0.0 {
        f64::INFINITY
    } else {
        lik + 2.0 * k + 2.0 * k * (k + 1.0) / residual_dof
    };
    Some(Ets {
        structure,
        period: m,
        smoothing,
        last: State {
            level,
            slope,
            seasons,
        },
        fitted,
        sigma2: sse / residual_dof,
        aicc,
    })
}

/// Splits an optimiser vector into smoothing parameters, level and slope.
fn unpack(structure: Structure, params: &[f64]) -> (Smoothing, f64, f64) {
    let mut it = params.iter().copied();
    let alpha = it.next().unwrap_or(ALPHA_RANGE.0);
    let beta = if structure.trend {
        it.next().unwrap_or(0.0)
    } else {
        0.0
    };
    let gamma = if structure.season.is_some() {
        it.next().unwrap_or(0.0)
    } else {
        0.0
    };
    let phi = if structure.damped {
        it.next().unwrap_or(1.0)
    } else {
        1.0
    };
    let level = it.next().unwrap_or(0.0);
    let slope = if structure.trend {
        it.next().unwrap_or(0.0)
    } else {
        0.0
    };
    (
        Smoothing {
            alpha,
            beta,
            gamma,
            phi,
        },
        level,
        slope,
    )
}

/// Fills the ring (oldest season first) from the states `[level, slope?, s_0..s_{m-2}]`
/// and the implied `s_{m-1}`; false when a multiplicative season would be negative.
fn load_seasons(structure: Structure, states: &[f64], ring: &mut [f64]) -> bool {
    let Some(form) = structure.season else {
        return true;
    };
    let free = &states[1 + usize::from(structure.trend)..];
    let m = ring.len();
    let total = match form {
        Form::Additive => 0.0,
        Form::Multiplicative => m as f64,
    };
    ring[0] = total - free.iter().sum::<f64>();
    for (slot, s) in ring[1..].iter_mut().zip(free.iter().rev()) {
        *slot = *s;
    }
    form == Form::Additive || ring.iter().all(|&s| s >= 0.0)
}

/// Fits the ETS models allowed by `spec` to `y` and returns the one with the lowest
/// AICc (see the module documentation for the rules and fallbacks).
pub fn auto_ets(y: &[f64], season_length: usize, spec: &EtsSpec) -> Result<Ets, ForecastError> {
    if y.is_empty() {
        return Err(ForecastError::Input(
            "ETS needs at least one observation".into(),
        ));
    }
    if y.iter().any(|v| !v.is_finite()) {
        return Err(ForecastError::Input(
            "ETS needs finite values (fill gaps first)".into(),
        ));
    }
    if season_length == 0 {
        return Err(ForecastError::Input(
            "season_length must be at least 1 (1 = no season)".into(),
        ));
    }
    if spec.error == Component::None {
        return Err(ForecastError::Input(
            "the ETS error must be A, M or Z".into(),
        ));
    }
    if spec.trend == Component::Multiplicative {
        return Err(ForecastError::Input(
            "multiplicative trends are not supported; use A, N or Z".into(),
        ));
    }
    if spec.trend == Component::None && spec.damped == Some(true) {
        return Err(ForecastError::Input(
            "a damped ETS model needs a trend".into(),
        ));
    }
    let explicit_season = matches!(spec.season, Component::Additive | Component::Multiplicative);
    if explicit_season && season_length == 1 {
        return Err(ForecastError::Input(
            "a seasonal ETS model needs season_length > 1".into(),
        ));
    }
    if explicit_season && season_length > MAX_SEASON_LENGTH {
        return Err(ForecastError::Input(format!(
            "seasonal ETS supports season_length <= {MAX_SEASON_LENGTH}; deseasonalise first"
        )));
    }
    if spec.error == Component::Additive && spec.season == Component::Multiplicative {
        return Err(ForecastError::Input(
            "additive error with multiplicative season is not allowed".into(),
        ));
    }
    let positive = y.iter().all(|&v| v > 0.0);
    if !positive
        && (spec.error == Component::Multiplicative || spec.season == Component::Multiplicative)
    {
        return Err(ForecastError::Input(
            "multiplicative ETS components need strictly positive data".into(),
        ));
    }
    let n = y.len();
    if y.iter().all(|&v| v == y[0]) {
        return Ok(constant_model(y));
    }

    let seasonal_possible =
        season_length > 1 && season_length <= MAX_SEASON_LENGTH && n > season_length;
    let seasons: Vec<Option<Form>> = match spec.season {
        _ if !seasonal_possible => vec![None],
        Component::Auto => vec![None, Some(Form::Additive), Some(Form::Multiplicative)],
        Component::None => vec![None],
        Component::Additive => vec![Some(Form::Additive)],
        Component::Multiplicative => vec![Some(Form::Multiplicative)],
    };
    // R's minimum: more than (parameters of the named components) + 4 observations.
    let named_parameters = 2
        + 2 * usize::from(spec.trend == Component::Additive)
        + 2 * usize::from(explicit_season && seasonal_possible)
        + usize::from(spec.damped == Some(true));
    if n <= named_parameters + 4 {
        return Ok(simple_smoothing(y));
    }
    let errors: &[Form] = match spec.error {
        Component::Additive => &[Form::Additive],
        Component::Multiplicative => &[Form::Multiplicative],
        _ => &[Form::Additive, Form::Multiplicative],
    };
    let trends: &[bool] = match spec.trend {
        Component::None => &[false],
        Component::Additive => &[true],
        _ => &[false, true],
    };
    let dampings: &[bool] = match spec.damped {
        Some(true) => &[true],
        Some(false) => &[false],
        None => &[true, false],
    };

    let mut bounds = SearchBounds::default();
    let mut workspace = Workspace::new();
    let mut best: Option<Ets> = None;
    for &error in errors {
        for &trend in trends {
            for &season in &seasons {
                for &damped in dampings {
                    if damped && !trend {
                        continue;
                    }
                    let multiplicative =
                        error == Form::Multiplicative || season == Some(Form::Multiplicative);
                    if (error == Form::Additive && season == Some(Form::Multiplicative))
                        || (multiplicative && !positive)
                    {
                        continue;
                    }
                    let structure = Structure {
                        error,
                        trend,
                        damped,
                        season,
                    };
                    let Some(candidate) =
                        fit_structure(y, season_length, structure, &mut bounds, &mut workspace)
                    else {
                        continue;
                    };
                    let better = best.as_ref().is_none_or(|b| candidate.aicc < b.aicc);
                    if candidate.aicc.is_finite() && better {
                        best = Some(candidate);
                    }
                }
            }
        }
    }
    Ok(best.unwrap_or_else(|| simple_smoothing(y)))
}

/// A constant series: ETS(A,N,N) with α = 0.9999 that reproduces it exactly.
fn constant_model(y: &[f64]) -> Ets {
    let n = y.len() as f64;
    // The likelihood of a perfect fit, as the recursions compute it.
    let lik = n * 1e-8_f64.ln();
    let k = 2.0;
    let aicc = if n - k - 1.0 > 0.0 {
        lik + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0)
    } else {
        f64::INFINITY
    };
    Ets {
        structure: Structure {
            error: Form::Additive,
            trend: false,
            damped: false,
            season: None,
        },
        period: 1,
        smoothing: Smoothing {
            alpha: ALPHA_RANGE.1,
            beta: 0.0,
            gamma: 0.0,
            phi: 1.0,
        },
        last: State {
            level: y[0],
            slope: 0.0,
            seasons: Vec::new(),
        },
        fitted: y.to_vec(),
        sigma2: 0.0,
        aicc,
    }
}

/// Simple exponential smoothing for series too short for the ETS search: the level
/// starts at the first observation and α minimises the squared one-step errors.
fn simple_smoothing(y: &[f64]) -> Ets {
    let structure = Structure {
        error: Form::Additive,
        trend: false,
        damped: false,
        season: None,
    };
    let mut workspace = Workspace::new();
    let Workspace {
        ring,
        simplex,
        values,
        centroid,
        trial,
        second_trial,
    } = &mut workspace;
    let mut alpha = [ALPHA_RANGE.0 + 0.2 * (ALPHA_RANGE.1 - ALPHA_RANGE.0)];
    let smoothing = |alpha: f64| Smoothing {
        alpha,
        beta: 0.0,
        gamma: 0.0,
        phi: 1.0,
    };
    nelder_mead(
        &mut alpha,
        &[ALPHA_RANGE.0],
        &[ALPHA_RANGE.1],
        simplex,
        values,
        (centroid, trial, second_trial),
        |a| run_filter(structure, y, smoothing(a[0]), (y[0], 0.0), ring, |_, _| {}).lik,
    );
    let mut fitted = vec![0.0; y.len()];
    let end = run_filter(
        structure,
        y,
        smoothing(alpha[0]),
        (y[0], 0.0),
        ring,
        |i, f| fitted[i] = f,
    );
    let (lik, level) = (end.lik, end.level);
    let n = y.len() as f64;
    let sse: f64 = y.iter().zip(&fitted).map(|(v, f)| (v - f) * (v - f)).sum();
    let k = 2.0;
    let aicc = if n - k - 1.0 > 0.0 {
        lik + 2.0 * k + 2.0 * k * (k + 1.0) / (n - k - 1.0)
    } else {
        f64::INFINITY
    };
    Ets {
        structure,
        period: 1,
        smoothing: smoothing(alpha[0]),
        last: State {
            level,
            slope: 0.0,
            seasons: Vec::new(),
        },
        fitted,
        sigma2: if n > 2.0 { sse / (n - 2.0) } else { f64::NAN },
        aicc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AIR_PASSENGERS_132: [f64; 132] = [
        112.0, 118.0, 132.0, 129.0, 121.0, 135.0, 148.0, 148.0, 136.0, 119.0, 104.0, 118.0, 115.0,
        126.0, 141.0, 135.0, 125.0, 149.0, 170.0, 170.0, 158.0, 133.0, 114.0, 140.0, 145.0, 150.0,
        178.0, 163.0, 172.0, 178.0, 199.0, 199.0, 184.0, 162.0, 146.0, 166.0, 171.0, 180.0, 193.0,
        181.0, 183.0, 218.0, 230.0, 242.0, 209.0, 191.0, 172.0, 194.0, 196.0, 196.0, 236.0, 235.0,
        229.0, 243.0, 264.0, 272.0, 237.0, 211.0, 180.0, 201.0, 204.0, 188.0, 235.0, 227.0, 234.0,
        264.0, 302.0, 293.0, 259.0, 229.0, 203.0, 229.0, 242.0, 233.0, 267.0, 269.0, 270.0, 315.0,
        364.0, 347.0, 312.0, 274.0, 237.0, 278.0, 284.0, 277.0, 317.0, 313.0, 318.0, 374.0, 413.0,
        405.0, 355.0, 306.0, 271.0, 306.0, 315.0, 301.0, 356.0, 348.0, 355.0, 422.0, 465.0, 467.0,
        404.0, 347.0, 305.0, 336.0, 340.0, 318.0, 362.0, 348.0, 363.0, 435.0, 491.0, 505.0, 404.0,
        359.0, 310.0, 337.0, 360.0, 342.0, 406.0, 396.0, 420.0, 472.0, 548.0, 559.0, 463.0, 407.0,
        362.0, 405.0,
    ];

    const NILE_90: [f64; 90] = [
        1120.0, 1160.0, 963.0, 1210.0, 1160.0, 1160.0, 813.0, 1230.0, 1370.0, 1140.0, 995.0, 935.0,
        1110.0, 994.0, 1020.0, 960.0, 1180.0, 799.0, 958.0, 1140.0, 1100.0, 1210.0, 1150.0, 1250.0,
        1260.0, 1220.0, 1030.0, 1100.0, 774.0, 840.0, 874.0, 694.0, 940.0, 833.0, 701.0, 916.0,
        692.0, 1020.0, 1050.0, 969.0, 831.0, 726.0, 456.0, 824.0, 702.0, 1120.0, 1100.0, 832.0,
        764.0, 821.0, 768.0, 845.0, 864.0, 862.0, 698.0, 845.0, 744.0, 796.0, 1040.0, 759.0, 781.0,
        865.0, 845.0, 944.0, 984.0, 897.0, 822.0, 1010.0, 771.0, 676.0, 649.0, 846.0, 812.0, 742.0,
        801.0, 1040.0, 860.0, 874.0, 848.0, 890.0, 744.0, 749.0, 838.0, 1050.0, 918.0, 986.0,
        797.0, 923.0, 975.0, 815.0,
    ];

    /// splitmix64 driving Box–Muller: reproducible standard normal draws.
    struct Normal(u64);

    impl Normal {
        fn uniform(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }

        fn draw(&mut self) -> f64 {
            let u = self.uniform().max(1e-300);
            let v = self.uniform();
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }
    }

    fn assert_close(actual: &[f64], expected: &[f64], rel: f64) {
        assert_eq!(actual.len(), expected.len());
        for (a, e) in actual.iter().zip(expected) {
            assert!((a - e).abs() <= rel * e.abs(), "{actual:?} vs {expected:?}");
        }
    }

    /// One step of R's `etscalc` update, written as R writes it (independent of the
    /// rearranged kernel).
    fn r_step(structure: Structure, p: Smoothing, state: &mut State, y: f64) -> f64 {
        let m = state.seasons.len();
        let phi_b = if structure.trend {
            p.phi * state.slope
        } else {
            0.0
        };
        let q = state.level + phi_b;
        let old_s = state.seasons.last().copied().unwrap_or(0.0);
        let f = match structure.season {
            None => q,
            Some(Form::Additive) => q + old_s,
            Some(Form::Multiplicative) => q * old_s,
        };
        let p_term = match structure.season {
            None => y,
            Some(Form::Additive) => y - old_s,
            Some(Form::Multiplicative) => y / old_s,
        };
        let level = q + p.alpha * (p_term - q);
        if structure.trend {
            state.slope = phi_b + (p.beta / p.alpha) * (level - state.level - phi_b);
        }
        if let Some(form) = structure.season {
            let t = match form {
                Form::Additive => y - q,
                Form::Multiplicative => y / q,
            };
            let new_s = old_s + p.gamma * (t - old_s);
            state.seasons.rotate_right(1);
            state.seasons[0] = new_s;
            debug_assert_eq!(state.seasons.len(), m);
        }
        state.level = level;
        f
    }

    fn all_structures() -> Vec<Structure> {
        let mut out = Vec::new();
        for error in [Form::Additive, Form::Multiplicative] {
            for (trend, damped) in [(false, false), (true, false), (true, true)] {
                for season in [None, Some(Form::Additive), Some(Form::Multiplicative)] {
                    out.push(Structure {
                        error,
                        trend,
                        damped,
                        season,
                    });
                }
            }
        }
        out
    }

    fn example_model(structure: Structure, sigma2: f64) -> Ets {
        let m = if structure.season.is_some() { 4 } else { 1 };
        let seasons = match structure.season {
            None => Vec::new(),
            Some(Form::Additive) => vec![-3.0, 5.0, 1.0, -3.0],
            Some(Form::Multiplicative) => vec![0.9, 1.2, 1.0, 0.9],
        };
        Ets {
            structure,
            period: m,
            smoothing: Smoothing {
                alpha: 0.3,
                beta: if structure.trend { 0.1 } else { 0.0 },
                gamma: if structure.season.is_some() { 0.2 } else { 0.0 },
                phi: if structure.damped { 0.9 } else { 1.0 },
            },
            last: State {
                level: 100.0,
                slope: if structure.trend { 1.5 } else { 0.0 },
                seasons,
            },
            fitted: Vec::new(),
            sigma2,
            aicc: 0.0,
        }
    }

    #[test]
    fn parses_model_strings() {
        assert_eq!(EtsSpec::parse("ZZZ").unwrap(), EtsSpec::default());
        let mam = EtsSpec::parse("MAdM").unwrap();
        assert_eq!(mam.error, Component::Multiplicative);
        assert_eq!(mam.trend, Component::Additive);
        assert_eq!(mam.season, Component::Multiplicative);
        assert_eq!(mam.damped, Some(true));
        assert_eq!(EtsSpec::parse("ZZN").unwrap().season, Component::None);
        assert!(EtsSpec::parse("ZZ").is_err());
        assert!(EtsSpec::parse("AXN").is_err());
        assert!(EtsSpec::parse("NNN").is_err());
    }

    #[test]
    fn filter_matches_r_recursions_for_every_structure() {
        let mut rng = Normal(7);
        let y: Vec<f64> = (0..60)
            .map(|t| 100.0 + t as f64 + 10.0 * ((t % 4) as f64) + 3.0 * rng.draw())
            .collect();
        for structure in all_structures() {
            let model = example_model(structure, 0.0);
            let p = model.smoothing;
            let mut state = model.last.clone();
            let mut expected_fitted = Vec::new();
            let (mut sse, mut log_sum) = (0.0, 0.0);
            for &v in &y {
                let f = r_step(structure, p, &mut state, v);
                let e = match structure.error {
                    Form::Additive => v - f,
                    Form::Multiplicative => (v - f) / f,
                };
                sse += e * e;
                log_sum += f.abs().ln();
                expected_fitted.push(f);
            }
            let mut expected_lik = y.len() as f64 * sse.ln();
            if structure.error == Form::Multiplicative {
                expected_lik += 2.0 * log_sum;
            }

            let start = &model.last;
            let mut ring: Vec<f64> = start.seasons.iter().rev().copied().collect();
            let mut fitted = vec![0.0; y.len()];
            let end = run_filter(
                structure,
                &y,
                p,
                (start.level, start.slope),
                &mut ring,
                |i, f| fitted[i] = f,
            );
            assert_close(&fitted, &expected_fitted, 1e-12);
            assert!((end.lik - expected_lik).abs() < 1e-9 * expected_lik.abs());
            assert!((end.level - state.level).abs() < 1e-9 * state.level.abs());
            assert!((end.slope - state.slope).abs() < 1e-9);
            let m = ring.len();
            let seasons: Vec<f64> = (0..m)
                .map(|k| ring[(end.ring_start + m - 1 - k) % m])
                .collect();
            assert_close(&seasons, &state.seasons, 1e-12);
        }
    }

    /// The analytic forecast variances agree with the spread of simulated paths for
    /// every class (additive, multiplicative non-seasonal/additive-seasonal,
    /// multiplicative seasonal).
    #[test]
    fn analytic_variance_matches_simulation() {
        let h = 9;
        let paths = 40_000;
        for structure in all_structures() {
            if structure.error == Form::Additive && structure.season == Some(Form::Multiplicative) {
                continue;
            }
            let sigma2 = match structure.error {
                Form::Additive => 4.0,
                Form::Multiplicative => 0.0025,
            };
            let model = example_model(structure, sigma2);
            let mean = model.point_forecasts(h);
            let analytic = model.forecast_variance(&mean);
            let mut rng = Normal(11);
            let (mut sum, mut sum_sq) = (vec![0.0; h], vec![0.0; h]);
            for _ in 0..paths {
                let mut state = model.last.clone();
                for step in 0..h {
                    let e = sigma2.sqrt() * rng.draw();
                    let f = {
                        let mut probe = state.clone();
                        r_step(structure, model.smoothing, &mut probe, 0.0)
                    };
                    let y = match structure.error {
                        Form::Additive => f + e,
                        Form::Multiplicative => f * (1.0 + e),
                    };
                    r_step(structure, model.smoothing, &mut state, y);
                    sum[step] += y;
                    sum_sq[step] += y * y;
                }
            }
            for step in 0..h {
                let sim_mean = sum[step] / paths as f64;
                let sim_var = sum_sq[step] / paths as f64 - sim_mean * sim_mean;
                let ratio = analytic[step] / sim_var;
                assert!(
                    (0.95..1.05).contains(&ratio),
                    "{} step {}: analytic {} simulated {}",
                    structure.name(),
                    step + 1,
                    analytic[step],
                    sim_var
                );
            }
        }
    }

    #[test]
    fn matches_statsforecast_on_air_passengers() {
        let fit = auto_ets(&AIR_PASSENGERS_132, 12, &EtsSpec::default()).unwrap();
        assert_eq!(fit.name(), "ETS(M,N,M)");
        assert!((fit.aicc() - 1297.4665437514564).abs() < 0.05);
        assert!((fit.sigma() - 0.04708831773652953).abs() < 1e-4);
        let fc = fit.forecast(6, &[95.0]);
        let statsforecast_mean = [
            406.6512673247085,
            401.7329081298925,
            456.2896322508896,
            440.8705240775164,
            440.3339167205799,
            496.86606235917134,
        ];
        assert_close(&fc.mean, &statsforecast_mean, 1e-3);
        // statsforecast's class-3 variance keeps the first step's mean; the first step
        // is unaffected by that, later ones are a few percent wider here.
        let width = fc.intervals[0].hi[0] - fc.intervals[0].lo[0];
        assert!((width / (444.18168488595296 - 369.12084976346404) - 1.0).abs() < 5e-3);
        assert_eq!(fit.fitted().len(), AIR_PASSENGERS_132.len());
    }

    #[test]
    fn matches_statsforecast_on_nile() {
        let fit = auto_ets(&NILE_90, 1, &EtsSpec::default()).unwrap();
        assert_eq!(fit.name(), "ETS(M,N,N)");
        assert!((fit.aicc() - 1303.58987366879).abs() < 0.05);
        let fc = fit.forecast(6, &[95.0]);
        assert_close(&fc.mean, &[881.9320726914883; 6], 1e-4);
        let lo = [
            612.5093365453116,
            609.6296363930162,
            606.7786281404667,
            603.9554282401286,
            601.1591971211363,
            598.3891361883108,
        ];
        let hi = [
            1151.3548088376651,
            1154.2345089899604,
            1157.08551724251,
            1159.908717142848,
            1162.7049482618404,
            1165.4750091946657,
        ];
        assert_close(&fc.intervals[0].lo, &lo, 1e-3);
        assert_close(&fc.intervals[0].hi, &hi, 1e-3);
    }

    #[test]
    fn recovers_simple_exponential_smoothing_alpha() {
        let mut rng = Normal(3);
        let mut level = 50.0;
        let y: Vec<f64> = (0..3000)
            .map(|_| {
                let e = rng.draw();
                let v = level + e;
                level += 0.3 * e;
                v
            })
            .collect();
        let fit = auto_ets(&y, 1, &EtsSpec::parse("ANN").unwrap()).unwrap();
        assert!(
            (fit.smoothing.alpha - 0.3).abs() < 0.04,
            "{:?}",
            fit.smoothing
        );
        assert!((fit.sigma() - 1.0).abs() < 0.05);
    }

    #[test]
    fn forecasts_a_pure_seasonal_series_exactly() {
        let pattern = [10.0, 14.0, 9.0, 7.0];
        let y: Vec<f64> = (0..40).map(|t| pattern[t % 4]).collect();
        let fit = auto_ets(&y, 4, &EtsSpec::parse("ANA").unwrap()).unwrap();
        let fc = fit.forecast(8, &[80.0]);
        let expected: Vec<f64> = (40..48).map(|t| pattern[t % 4]).collect();
        for (f, e) in fc.mean.iter().zip(&expected) {
            assert!((f - e).abs() < 0.05, "{:?}", fc.mean);
        }
    }

    #[test]
    fn intervals_widen_with_the_horizon_and_nest() {
        let fit = auto_ets(&AIR_PASSENGERS_132, 12, &EtsSpec::parse("AAA").unwrap()).unwrap();
        let fc = fit.forecast(24, &[80.0, 95.0]);
        let widths: Vec<f64> = fc.intervals[0]
            .hi
            .iter()
            .zip(&fc.intervals[0].lo)
            .map(|(h, l)| h - l)
            .collect();
        assert!(widths.windows(2).all(|w| w[1] >= w[0]), "{widths:?}");
        for i in 0..24 {
            assert!(fc.intervals[1].lo[i] < fc.intervals[0].lo[i]);
            assert!(fc.intervals[0].lo[i] < fc.mean[i] && fc.mean[i] < fc.intervals[0].hi[i]);
            assert!(fc.intervals[0].hi[i] < fc.intervals[1].hi[i]);
        }
    }

    #[test]
    fn constant_series_gives_flat_zero_width_forecast() {
        let fit = auto_ets(&[5.0; 30], 7, &EtsSpec::default()).unwrap();
        assert_eq!(fit.name(), "ETS(A,N,N)");
        let fc = fit.forecast(3, &[95.0]);
        assert_eq!(fc.mean, vec![5.0; 3]);
        assert_eq!(fc.intervals[0].lo, vec![5.0; 3]);
        assert_eq!(fit.fitted(), &[5.0; 30]);
    }

    #[test]
    fn short_series_fall_back_without_panicking() {
        for n in 1..=12 {
            let y: Vec<f64> = (0..n).map(|t| 3.0 + (t as f64 * 1.7).sin()).collect();
            for m in [1, 4, 12] {
                let fit = auto_ets(&y, m, &EtsSpec::default()).unwrap();
                let fc = fit.forecast(5, &[80.0]);
                assert_eq!(fc.mean.len(), 5);
                assert!(fc.mean.iter().all(|v| v.is_finite()), "n={n} m={m}");
                assert_eq!(fit.fitted().len(), n);
            }
        }
        let tiny = auto_ets(&[1.0, 3.0, 2.0], 1, &EtsSpec::default()).unwrap();
        assert_eq!(tiny.name(), "ETS(A,N,N)");
        assert!(tiny.forecast(1, &[80.0]).intervals[0].lo[0].is_finite());
        assert!(
            auto_ets(&[1.0, 3.0], 1, &EtsSpec::default())
                .unwrap()
                .sigma()
                .is_nan()
        );
    }

    #[test]
    fn non_positive_data_never_get_multiplicative_components() {
        let y: Vec<f64> = (0..80)
            .map(|t| (t as f64 * 0.5).sin() * 5.0 + [0.0, 3.0, -2.0, 1.0][t % 4])
            .collect();
        let fit = auto_ets(&y, 4, &EtsSpec::default()).unwrap();
        assert!(!fit.name().contains('M'), "{}", fit.name());
        assert!(auto_ets(&y, 4, &EtsSpec::parse("MNN").unwrap()).is_err());
        assert!(auto_ets(&y, 4, &EtsSpec::parse("ZZM").unwrap()).is_err());
    }

    #[test]
    fn rejects_invalid_input() {
        let spec = EtsSpec::default();
        assert!(auto_ets(&[], 1, &spec).is_err());
        assert!(auto_ets(&[1.0, f64::NAN, 2.0], 1, &spec).is_err());
        assert!(auto_ets(&[1.0, 2.0, 3.0], 0, &spec).is_err());
        let y: Vec<f64> = (1..=50).map(f64::from).collect();
        assert!(auto_ets(&y, 1, &EtsSpec::parse("ANA").unwrap()).is_err());
        assert!(auto_ets(&y, 30, &EtsSpec::parse("ANA").unwrap()).is_err());
        assert!(auto_ets(&y, 4, &EtsSpec::parse("ANM").unwrap()).is_err());
        assert!(auto_ets(&y, 4, &EtsSpec::parse("AMN").unwrap()).is_err());
        assert!(auto_ets(&y, 4, &EtsSpec::parse("ANdN").unwrap()).is_err());
    }

    #[test]
    fn long_seasons_fall_back_to_nonseasonal_models() {
        let y: Vec<f64> = (0..200).map(|t| 10.0 + ((t % 52) as f64)).collect();
        let fit = auto_ets(&y, 52, &EtsSpec::default()).unwrap();
        assert!(fit.name().ends_with(",N)"), "{}", fit.name());
    }

    #[test]
    fn nonseasonal_spec_never_picks_a_season() {
        let fit = auto_ets(&AIR_PASSENGERS_132, 12, &EtsSpec::parse("ZZN").unwrap()).unwrap();
        assert!(fit.name().ends_with(",N)"), "{}", fit.name());
        assert_eq!(fit.forecast(0, &[80.0]).mean.len(), 0);
    }
}

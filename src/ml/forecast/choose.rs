//! Which model a series gets: the one asked for, or (`auto`) the one that forecast the
//! series' own last steps best.
//!
//! Policies, in order:
//!
//! - A **constant** series gets [`Constant`]: its value, intervals of width zero.
//! - A series **shorter than [`MIN_FIT`]** gets the naive model (its last value), whatever
//!   was asked: no model has anything to estimate from three values.
//! - `auto` on any series but an intermittent one fits **ETS** (AICc over its
//!   components) unless a challenger forecast the series better in each of its last
//!   [`WINDOWS`] holdout windows (rolling origins, each `min(horizon, (n - 4) / 5)`
//!   values, the models fitted on the values before the window). The challengers are
//!   Theta (the best of the four variants), the seasonal naive model and, with two or
//!   more seasons, MSTL with ETS on the deseasonalised part. One holdout would pick
//!   whichever model happened to fit the last few values: on statsmodels' El Niño
//!   series the seasonal naive model wins the last window and forecasts the test year
//!   47% worse than ETS. Requiring every window is a sign test (1 in 32 by chance).
//! - On an **intermittent** series ([`is_intermittent`]: many zeros between demands)
//!   `auto` chooses among Croston, SBA and TSB by the mean absolute error on the series'
//!   last `min(horizon, n / 4)` values.
//! - A candidate that fails on a shorter series drops out; the winner is refitted on the
//!   whole series, and when that fails, ETS is.
//! - With `clean`, outliers are replaced before fitting ([`fit_cleaned`], see
//!   [`super::clean`]).

use super::ForecastError;
use super::clean::clean;
use super::ets::{EtsSpec, auto_ets};
use super::intermittent::{IntermittentMethod, fit_intermittent, is_intermittent};
use super::model::{FittedModel, Forecast, Interval};
use super::mstl::fit_mstl;
use super::naive::seasonal_naive;
use super::theta::{ThetaVariant, fit_theta};

/// Series shorter than this get the naive model.
pub const MIN_FIT: usize = 4;

/// Fits `choice` to `y` after replacing its outliers ([`clean`]). Returns the model and
/// the positions of the values replaced.
pub fn fit_cleaned(
    choice: &ModelChoice,
    y: &[f64],
    seasons: &[usize],
    horizon: usize,
) -> Result<(Box<dyn FittedModel>, Vec<usize>), ForecastError> {
    match clean(y, seasons.first().copied().unwrap_or(1)) {
        Some((cleaned, outliers)) => Ok((fit(choice, &cleaned, seasons, horizon)?, outliers)),
        None => Ok((fit(choice, y, seasons, horizon)?, Vec::new())),
    }
}

/// A model family, as users name it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelChoice {
    Auto,
    Ets(EtsSpec),
    Theta(ThetaVariant),
    Mstl,
    SeasonalNaive,
    Naive,
    Intermittent(IntermittentMethod),
}

impl ModelChoice {
    /// Reads a model name: `auto`, `ets` (components from `ets_model`, default `ZZZ`),
    /// `theta`, `mstl`, `seasonal_naive`, `naive`, `croston`, `sba`, `tsb`.
    pub fn parse(name: &str, ets_model: Option<&str>) -> Result<ModelChoice, ForecastError> {
        let choice = match name.to_ascii_lowercase().as_str() {
            "auto" => ModelChoice::Auto,
            "ets" => ModelChoice::Ets(match ets_model {
                Some(components) => EtsSpec::parse(components)?,
                None => EtsSpec::default(),
            }),
            "theta" => ModelChoice::Theta(ThetaVariant::Auto),
            "mstl" => ModelChoice::Mstl,
            "seasonal_naive" | "snaive" => ModelChoice::SeasonalNaive,
            "naive" => ModelChoice::Naive,
            "croston" => ModelChoice::Intermittent(IntermittentMethod::Croston),
            "sba" => ModelChoice::Intermittent(IntermittentMethod::Sba),
            "tsb" => ModelChoice::Intermittent(IntermittentMethod::Tsb),
            other => {
                return Err(ForecastError::Input(format!(
                    "unknown model \"{other}\": use auto, ets, theta, mstl, seasonal_naive, \
                     naive, croston, sba or tsb"
                )));
            }
        };
        if ets_model.is_some() && !matches!(choice, ModelChoice::Ets(_)) {
            return Err(ForecastError::Input(
                "ets_model applies to model = ets only".into(),
            ));
        }
        Ok(choice)
    }
}

/// Fits `choice` to the regular series `y`, whose seasons (shortest first) are `seasons`.
pub fn fit(
    choice: &ModelChoice,
    y: &[f64],
    seasons: &[usize],
    horizon: usize,
) -> Result<Box<dyn FittedModel>, ForecastError> {
    if let Some(constant) = Constant::of(y) {
        return Ok(Box::new(constant));
    }
    if y.len() < MIN_FIT {
        return Ok(Box::new(seasonal_naive(y, 1)?));
    }
    match choice {
        ModelChoice::Auto => fit_auto(y, seasons, horizon),
        other => fit_one(other, y, seasons),
    }
}

fn fit_one(
    choice: &ModelChoice,
    y: &[f64],
    seasons: &[usize],
) -> Result<Box<dyn FittedModel>, ForecastError> {
    let season = seasons.first().copied().unwrap_or(1);
    Ok(match choice {
        ModelChoice::Auto => {
            unreachable!("fit() sends ModelChoice::Auto to fit_auto, never to fit_one")
        }
        ModelChoice::Ets(spec) => Box::new(auto_ets(y, season, spec)?),
        ModelChoice::Theta(variant) => Box::new(fit_theta(y, season, *variant)?),
        ModelChoice::Mstl => {
            let nonseasonal = EtsSpec::parse("ZZN")?;
            let trend = move |x: &[f64]| -> Result<Box<dyn FittedModel>, ForecastError> {
                Ok(Box::new(auto_ets(x, 1, &nonseasonal)?))
            };
            Box::new(fit_mstl(y, seasons, &trend)?)
        }
        ModelChoice::SeasonalNaive => Box::new(seasonal_naive(y, season)?),
        ModelChoice::Naive => Box::new(seasonal_naive(y, 1)?),
        ModelChoice::Intermittent(method) => Box::new(fit_intermittent(y, *method)?),
    })
}

fn fit_auto(
    y: &[f64],
    seasons: &[usize],
    horizon: usize,
) -> Result<Box<dyn FittedModel>, ForecastError> {
    let ets = ModelChoice::Ets(EtsSpec::default());
    let winner = if is_intermittent(y) {
        let methods = [
            IntermittentMethod::Croston,
            IntermittentMethod::Sba,
            IntermittentMethod::Tsb,
        ]
        .map(ModelChoice::Intermittent);
        best_on_last_holdout(&methods, y, seasons, horizon).unwrap_or(methods[0].clone())
    } else {
        let mut challengers = vec![
            ModelChoice::Theta(ThetaVariant::Auto),
            ModelChoice::SeasonalNaive,
        ];
        if seasons.len() >= 2 {
            challengers.push(ModelChoice::Mstl);
        }
        // Window w holds the `hold` values before the last w * hold.
        let hold = horizon.min(y.len().saturating_sub(MIN_FIT) / WINDOWS);
        let error = |candidate: &ModelChoice, window: usize| {
            holdout_error(candidate, &y[..y.len() - window * hold], hold, seasons)
        };
        if hold == 0 {
            ets.clone()
        } else {
            challenger_winning_every_window(&ets, challengers, error).unwrap_or(ets.clone())
        }
    };
    fit_one(&winner, y, seasons).or_else(|_| fit_one(&ets, y, seasons))
}

/// Holdout windows a challenger must each win to replace ETS in `auto`.
pub const WINDOWS: usize = 5;

/// The challenger with a lower `error` than `incumbent` in each of the [`WINDOWS`]
/// windows (the lowest total if several had), or none.
///
/// `auto`'s windows are the series' last holdouts, newest first (see the module docs).
/// `error` is a candidate's mean absolute error on a window, none when it failed there (a
/// failed challenger loses the window, a failed incumbent loses it to every challenger
/// that did forecast). Winning
/// all five windows happens by chance once in 32 when two models are equally good (a
/// sign test), so a model that only got lucky on the last values does not replace ETS,
/// whose components were chosen on the likelihood of the whole series. The newest
/// window goes first and a challenger leaves at its first loss, so most series cost one
/// window.
fn challenger_winning_every_window<C>(
    incumbent: &C,
    challengers: Vec<C>,
    error: impl Fn(&C, usize) -> Option<f64>,
) -> Option<C> {
    // Each surviving challenger with its summed error over the windows so far.
    let mut standing: Vec<(C, f64)> = challengers.into_iter().map(|c| (c, 0.0)).collect();
    for window in 0..WINDOWS {
        let to_beat = error(incumbent, window);
        standing.retain_mut(|(challenger, total)| match error(challenger, window) {
            Some(e) if to_beat.is_none_or(|b| e < b) => {
                *total += e;
                true
            }
            _ => false,
        });
        if standing.is_empty() {
            return None;
        }
    }
    standing
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(challenger, _)| challenger)
}

/// The candidate with the lowest error on the series' last `min(horizon, n / 4)` values.
fn best_on_last_holdout(
    candidates: &[ModelChoice],
    y: &[f64],
    seasons: &[usize],
    horizon: usize,
) -> Option<ModelChoice> {
    let hold = horizon.min(y.len() / 4).max(1);
    candidates
        .iter()
        .filter_map(|c| Some((holdout_error(c, y, hold, seasons)?, c)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
}

/// The mean absolute error of `candidate` fitted on all but the last `hold` values of `y`
/// and forecasting them; none when the shorter series is too short for it, it fails, or
/// its forecast is not finite. Seasons the shorter series cannot show twice are dropped.
fn holdout_error(
    candidate: &ModelChoice,
    y: &[f64],
    hold: usize,
    seasons: &[usize],
) -> Option<f64> {
    let (train, test) = y.split_at(y.len().checked_sub(hold)?);
    if train.len() < MIN_FIT {
        return None;
    }
    let train_seasons: Vec<usize> = seasons
        .iter()
        .copied()
        .filter(|&m| train.len() >= 2 * m)
        .collect();
    if *candidate == ModelChoice::Mstl && train_seasons.len() < 2 {
        return None;
    }
    let predicted = fit_one(candidate, train, &train_seasons)
        .ok()?
        .forecast(hold, &[])
        .mean;
    let error = test
        .iter()
        .zip(&predicted)
        .map(|(a, p)| (a - p).abs())
        .sum::<f64>()
        / hold as f64;
    error.is_finite().then_some(error)
}

/// A series that never changes: forecast its value, with no uncertainty.
#[derive(Debug, Clone)]
pub struct Constant {
    value: f64,
    fitted: Vec<f64>,
}

impl Constant {
    /// The constant model of `y`, if `y` is constant.
    pub fn of(y: &[f64]) -> Option<Constant> {
        let first = *y.first()?;
        y.iter().all(|&v| v == first).then(|| Constant {
            value: first,
            fitted: vec![first; y.len()],
        })
    }
}

impl FittedModel for Constant {
    fn name(&self) -> String {
        "Constant".into()
    }

    fn forecast(&self, h: usize, levels: &[f64]) -> Forecast {
        let mean = vec![self.value; h];
        Forecast {
            intervals: levels
                .iter()
                .map(|&level| Interval {
                    level,
                    lo: mean.clone(),
                    hi: mean.clone(),
                })
                .collect(),
            mean,
        }
    }

    fn fitted(&self) -> &[f64] {
        &self.fitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `challenger_winning_every_window` over a table of errors: row = candidate (0 the
    /// incumbent), column = window; NaN = failed there. Returns the winner and the
    /// (candidate, window) errors asked for.
    fn every_window(errors: &[[f64; WINDOWS]]) -> (Option<usize>, Vec<(usize, usize)>) {
        let asked = std::cell::RefCell::new(Vec::new());
        let winner = challenger_winning_every_window(&0, (1..errors.len()).collect(), |&c, w| {
            asked.borrow_mut().push((c, w));
            Some(errors[c][w]).filter(|e| !e.is_nan())
        });
        (winner, asked.into_inner())
    }

    #[test]
    fn a_challenger_must_win_every_window() {
        let ets = [1.0; WINDOWS];
        // Far better on four windows, worse on the oldest: ETS stays.
        assert_eq!(every_window(&[ets, [0.1, 0.1, 0.1, 0.1, 1.5]]).0, None);
        // A tie is not a win.
        assert_eq!(every_window(&[ets, [0.9, 0.9, 1.0, 0.9, 0.9]]).0, None);
        // Slightly better on every window: it replaces ETS.
        assert_eq!(every_window(&[ets, [0.9; WINDOWS]]).0, Some(1));
        // Two that win everywhere: the lower total, not the better last window.
        let (winner, _) =
            every_window(&[ets, [0.5, 0.9, 0.9, 0.9, 0.9], [0.6, 0.6, 0.6, 0.6, 0.6]]);
        assert_eq!(winner, Some(2));
    }

    #[test]
    fn a_failure_loses_the_window() {
        let nan = f64::NAN;
        // The challenger failed on one window.
        assert_eq!(
            every_window(&[[1.0; WINDOWS], [0.5, 0.5, nan, 0.5, 0.5]]).0,
            None
        );
        // ETS failed on one window and lost the others: the challenger wins.
        assert_eq!(
            every_window(&[[1.0, nan, 1.0, 1.0, 1.0], [0.5; WINDOWS]]).0,
            Some(1)
        );
    }

    #[test]
    fn windows_stop_once_no_challenger_is_left() {
        // One challenger loses the newest window and is not asked again, the other loses
        // the next one: no older window is fitted.
        let (winner, asked) =
            every_window(&[[1.0; WINDOWS], [2.0; WINDOWS], [0.5, 2.0, 0.5, 0.5, 0.5]]);
        assert_eq!(winner, None);
        assert_eq!(asked, vec![(0, 0), (1, 0), (2, 0), (0, 1), (2, 1)]);
    }

    /// Eight weeks of a weekly pattern with a little noise, and a spike on day 40.
    fn weekly_with_spike() -> Vec<f64> {
        (0..56)
            .map(|i| {
                let noise = ((i * i * 7919) % 1009) as f64 / 200.0;
                let spike = if i == 40 { 150.0 } else { 0.0 };
                200.0 + 10.0 * (i % 7) as f64 + noise + spike
            })
            .collect()
    }

    #[test]
    fn a_spike_is_cleaned_and_does_not_pull_the_season() {
        let y = weekly_with_spike();
        for choice in [
            ModelChoice::Auto,
            ModelChoice::Ets(EtsSpec::default()),
            ModelChoice::Theta(ThetaVariant::Auto),
        ] {
            let (model, outliers) = fit_cleaned(&choice, &y, &[7], 7).unwrap();
            assert_eq!(outliers, vec![40], "{choice:?}");
            // The same weekday a week later is predicted as an ordinary one.
            let ordinary = 200.0 + 50.0 + ((47 * 47 * 7919) % 1009) as f64 / 200.0;
            let fitted = model.fitted()[47];
            assert!(
                (fitted - ordinary).abs() < 6.0,
                "{choice:?}: {fitted} vs {ordinary}"
            );
        }
    }
}

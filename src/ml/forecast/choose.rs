//! Which model a series gets: the one asked for, or (`auto`) the one that forecast the
//! series' own last steps best.
//!
//! Policies, in order:
//!
//! - A **constant** series gets [`Constant`]: its value, intervals of width zero.
//! - A series **shorter than [`MIN_FIT`]** gets the naive model (its last value), whatever
//!   was asked: no model has anything to estimate from three values.
//! - `auto` on an **intermittent** series ([`is_intermittent`]: many zeros between
//!   demands) chooses among Croston, SBA and TSB; on any other series among ETS (AICc over
//!   its components), Theta (the best of the four variants), the seasonal naive model and,
//!   with two or more seasons, MSTL with ETS on the deseasonalised part.
//! - The choice is by the mean absolute error on a **holdout** of the series' last
//!   `min(horizon, n / 4)` values, each candidate fitted on the values before it; the
//!   winner is then refitted on the whole series. A candidate that fails on the shorter
//!   series drops out; when every one fails, ETS is fitted on the whole series.
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
    let candidates: Vec<ModelChoice> = if is_intermittent(y) {
        [
            IntermittentMethod::Croston,
            IntermittentMethod::Sba,
            IntermittentMethod::Tsb,
        ]
        .map(ModelChoice::Intermittent)
        .to_vec()
    } else {
        let mut c = vec![
            ModelChoice::Ets(EtsSpec::default()),
            ModelChoice::Theta(ThetaVariant::Auto),
            ModelChoice::SeasonalNaive,
        ];
        if seasons.len() >= 2 {
            c.push(ModelChoice::Mstl);
        }
        c
    };
    let holdout = horizon.min(y.len() / 4).max(1);
    let (train, test) = y.split_at(y.len() - holdout);
    let mut best: Option<(f64, &ModelChoice)> = None;
    if train.len() >= MIN_FIT {
        // Seasons the shorter series can still show twice.
        let train_seasons: Vec<usize> = seasons
            .iter()
            .copied()
            .filter(|&m| train.len() >= 2 * m)
            .collect();
        for candidate in &candidates {
            if *candidate == ModelChoice::Mstl && train_seasons.len() < 2 {
                continue;
            }
            let Ok(model) = fit_one(candidate, train, &train_seasons) else {
                continue;
            };
            let predicted = model.forecast(holdout, &[]).mean;
            let mae = test
                .iter()
                .zip(&predicted)
                .map(|(a, p)| (a - p).abs())
                .sum::<f64>()
                / holdout as f64;
            if mae.is_finite() && best.is_none_or(|(b, _)| mae < b) {
                best = Some((mae, candidate));
            }
        }
    }
    let winner = best.map_or(&candidates[0], |(_, c)| c);
    fit_one(winner, y, seasons)
        .or_else(|_| fit_one(&ModelChoice::Ets(EtsSpec::default()), y, seasons))
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

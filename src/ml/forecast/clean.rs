//! Outliers found before fitting, and replaced, as R's `tsclean` does: a one-day spike
//! would otherwise inflate every interval of its series, and a model with a fixed season
//! spreads it over every week (ETS with a small `gamma` lifts every Saturday to carry one
//! spiky Saturday).
//!
//! Detection does not use the model, which is what the outlier distorts. It uses a robust
//! decomposition: robust STL (bisquare weights, [`ROBUST_PASSES`] passes) with the
//! series' season, or without a season the median of the [`MEDIAN_NEIGHBOURS`] values
//! either side (not the value itself, whose remainder would then often be zero). A
//! value whose remainder is more than [`OUTLIER_SIGMAS`] robust standard deviations from
//! the remainders' median (the median absolute deviation as a standard deviation) is an
//! outlier and takes the decomposition's value (trend plus season, or the running
//! median).
//!
//! Policies: series shorter than [`MIN_CLEAN`], constant series and intermittent series
//! (their demands are the signal) are never cleaned. A quick screen on the seasonal
//! differences skips the decomposition for series with no value far from its
//! neighbours, which is most clean data; those are fitted exactly as given.

use super::intermittent::is_intermittent;
use super::stl::{StlConfig, stl};

/// How many robust standard deviations make a remainder an outlier. For normal errors a
/// value this far off comes once in about two million.
pub const OUTLIER_SIGMAS: f64 = 5.0;

/// Robustness passes of the STL: enough to take the weight off a few spikes.
pub const ROBUST_PASSES: usize = 4;

/// Values either side of a value that its running median (without a season) is taken
/// over.
pub const MEDIAN_NEIGHBOURS: usize = 4;

/// Shorter series are not cleaned: too few values to tell an outlier from the pattern.
pub const MIN_CLEAN: usize = 16;

/// `y` with its outliers replaced, and their positions (ascending); `None` when nothing
/// was replaced.
pub fn clean(y: &[f64], season: usize) -> Option<(Vec<f64>, Vec<usize>)> {
    if y.len() < MIN_CLEAN || is_intermittent(y) || !screen(y, season) {
        return None;
    }
    let seasonal = season >= 2 && y.len() >= 2 * season;
    let fit: Vec<f64> = if seasonal {
        // A periodic season (one level per position in the cycle, R's `s.window =
        // "periodic"`): a flexible one soaks up the noise and leaves remainders too small
        // to measure outliers against.
        let config = StlConfig {
            robust: true,
            outer_iter: Some(ROBUST_PASSES),
            seasonal: 2 * (y.len() / season) + 1,
            seasonal_deg: 0,
            ..StlConfig::new(season)
        };
        let parts = stl(y, &config).ok()?;
        parts
            .trend
            .iter()
            .zip(&parts.seasonal)
            .map(|(t, s)| t + s)
            .collect()
    } else {
        running_median(y, MEDIAN_NEIGHBOURS)
    };
    let remainders: Vec<f64> = y.iter().zip(&fit).map(|(v, f)| v - f).collect();
    let (centre, spread) = robust_spread(&remainders)?;
    let outliers: Vec<usize> = (0..y.len())
        .filter(|&i| (remainders[i] - centre).abs() > OUTLIER_SIGMAS * spread)
        .collect();
    if outliers.is_empty() {
        return None;
    }
    let mut cleaned = y.to_vec();
    for &i in &outliers {
        cleaned[i] = fit[i];
    }
    Some((cleaned, outliers))
}

/// Whether any seasonal difference (plain difference without a season) is far from the
/// others: a spike makes two. A looser bound than the detector's, since a difference
/// adds the noise of two values.
fn screen(y: &[f64], season: usize) -> bool {
    let lag = if season >= 2 && y.len() > 2 * season {
        season
    } else {
        1
    };
    let differences: Vec<f64> = y[lag..].iter().zip(y).map(|(a, b)| a - b).collect();
    let Some((centre, spread)) = robust_spread(&differences) else {
        return false;
    };
    differences
        .iter()
        .any(|d| (d - centre).abs() > OUTLIER_SIGMAS * spread)
}

/// The median and a robust standard deviation (1.4826 × the median absolute deviation).
/// `None` when that is zero: a series that repeats itself exactly more than half the time
/// has no noise to measure an outlier against.
fn robust_spread(values: &[f64]) -> Option<(f64, f64)> {
    let centre = median(values.to_vec())?;
    let deviations: Vec<f64> = values.iter().map(|v| (v - centre).abs()).collect();
    let spread = 1.4826 * median(deviations)?;
    (spread > 0.0 && spread.is_finite()).then_some((centre, spread))
}

fn running_median(y: &[f64], neighbours: usize) -> Vec<f64> {
    (0..y.len())
        .map(|i| {
            let from = i.saturating_sub(neighbours);
            let to = (i + neighbours + 1).min(y.len());
            let around: Vec<f64> = (from..to).filter(|&j| j != i).map(|j| y[j]).collect();
            median(around).unwrap_or(y[i])
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mid = values.len() / 2;
    let (_, m, _) = values.select_nth_unstable_by(mid, f64::total_cmp);
    Some(*m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(i: usize) -> f64 {
        ((i * i * 7919) % 1009) as f64 / 200.0
    }

    #[test]
    fn a_seasonal_spike_is_replaced_by_its_season() {
        let mut y: Vec<f64> = (0..56)
            .map(|i| 200.0 + 10.0 * (i % 7) as f64 + noise(i))
            .collect();
        y[40] += 150.0;
        let (cleaned, outliers) = clean(&y, 7).unwrap();
        assert_eq!(outliers, vec![40]);
        assert!(
            (cleaned[40] - (250.0 + noise(40))).abs() < 5.0,
            "{}",
            cleaned[40]
        );
        assert_eq!(cleaned[..40], y[..40]);
    }

    #[test]
    fn a_spike_without_season_takes_the_running_median() {
        let mut y: Vec<f64> = (0..40).map(|i| 10.0 + noise(i)).collect();
        y[20] = 90.0;
        let (cleaned, outliers) = clean(&y, 1).unwrap();
        assert_eq!(outliers, vec![20]);
        assert!(cleaned[20] < 15.0);
    }

    #[test]
    fn clean_short_constant_and_intermittent_series_are_left_alone() {
        let smooth: Vec<f64> = (0..100)
            .map(|i| 50.0 + 10.0 * (i % 7) as f64 + noise(i))
            .collect();
        assert!(clean(&smooth, 7).is_none());
        assert!(clean(&[1.0, 2.0, 90.0, 1.0], 1).is_none());
        assert!(clean(&[5.0; 40], 7).is_none());
        let demand: Vec<f64> = (0..60)
            .map(|i| if i % 9 == 0 { 30.0 } else { 0.0 })
            .collect();
        assert!(clean(&demand, 1).is_none());
    }
}

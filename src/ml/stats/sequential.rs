//! Sequential testing: confidence sequences that stay valid however often the results
//! are looked at, so an experiment may be stopped as soon as its interval excludes 0.
//!
//! The interval is Howard et al.'s (2021) two-sided normal-mixture boundary, as GrowthBook
//! computes it: with `N = n_control + n_treatment` users, `s² = N · se²` (the variance of
//! the difference per user) and the mixture tuned for `N₀` users (`tuning`),
//!
//! ```text
//! ρ²        = (-2 ln α + ln(1 - 2 ln α)) / N₀
//! halfwidth = s √( 2 (N ρ² + 1) / (N² ρ²) · ln(√(N ρ² + 1) / α) )
//! ```
//!
//! The always-valid p-value is the smallest `α'` whose interval (with the same `ρ`)
//! excludes 0: `min(1, √(N ρ² + 1) · exp(-d² N² ρ² / (2 s² (N ρ² + 1))))`. The relative
//! lift's interval is widened by the same factor as the difference's.

use super::comparison::{Comparison, check_alpha};
use super::{Moments, StatsError};

/// The default `N₀`: the mixture is tightest around 5,000 users (GrowthBook's default).
pub const DEFAULT_TUNING: f64 = 5000.0;

/// The sequential form of Welch's comparison of means (two-sided).
///
/// ```
/// use martdb::ml::stats::{Alternative, Moments, mean_test, sequential_test};
/// let control = Moments { n: 5000.0, mean: 10.0, variance: 25.0, covariate: None };
/// let treatment = Moments { n: 5000.0, mean: 10.3, variance: 25.0, covariate: None };
/// let fixed = mean_test(&control, &treatment, Alternative::TwoSided, 0.05).unwrap();
/// let always_valid = sequential_test(&control, &treatment, 0.05, 5000.0).unwrap();
/// // Peeking costs width: the sequence is wider than the fixed-horizon interval.
/// assert!(always_valid.difference_low.unwrap() < fixed.difference_low.unwrap());
/// ```
pub fn sequential_test(
    control: &Moments,
    treatment: &Moments,
    alpha: f64,
    tuning: f64,
) -> Result<Comparison, StatsError> {
    check_alpha(alpha)?;
    if !(tuning > 0.0 && tuning.is_finite()) {
        return Err(StatsError::Tuning { tuning });
    }
    let fixed = super::mean_test(control, treatment, super::Alternative::TwoSided, alpha)?;
    let n = control.n + treatment.n;
    let se2 = control.variance / control.n + treatment.variance / treatment.n;
    let s2 = se2 * n;
    let rho2 = (-2.0 * alpha.ln() + (1.0 - 2.0 * alpha.ln()).ln()) / tuning;
    let halfwidth = |alpha: f64| {
        (s2 * 2.0 * (n * rho2 + 1.0) / (n * n * rho2) * ((n * rho2 + 1.0).sqrt() / alpha).ln())
            .sqrt()
    };
    let d = fixed.difference;
    let width = halfwidth(alpha);
    let se = se2.sqrt();
    let (statistic, p_value) = if se > 0.0 {
        let p =
            (n * rho2 + 1.0).sqrt() * (-d * d * n * n * rho2 / (2.0 * s2 * (n * rho2 + 1.0))).exp();
        (Some(d / se), Some(p.min(1.0)))
    } else {
        (None, None)
    };
    let relative_interval = fixed.relative.map(|r| {
        let fixed_half = fixed
            .relative_high
            .expect("a two-sided test with a relative estimate has both relative bounds")
            - r;
        let fixed_difference_half = fixed
            .difference_high
            .expect("a two-sided test has both difference bounds")
            - d;
        // Both fixed intervals use the same critical value; scale the relative one by the
        // width the sequence gives the difference.
        let half = if fixed_difference_half > 0.0 {
            fixed_half * width / fixed_difference_half
        } else {
            0.0
        };
        (r - half, r + half)
    });
    Ok(Comparison {
        difference_low: Some(d - width),
        difference_high: Some(d + width),
        relative_low: relative_interval.map(|i| i.0),
        relative_high: relative_interval.map(|i| i.1),
        statistic,
        df: None,
        p_value,
        ..fixed
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::stats::{Alternative, MomentSums, mean_test};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn normal(rng: &mut ChaCha8Rng) -> f64 {
        // Box-Muller.
        let (u, v): (f64, f64) = (rng.random(), rng.random());
        (-2.0 * (1.0 - u).ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A/A experiments looked at after every 200 users: stopping at the first p < 0.05
    /// makes the fixed-horizon test wrong far more often than 5%; the sequential test
    /// stays below 5%.
    #[test]
    fn peeking_keeps_the_error_rate_under_alpha() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let experiments = 300;
        let (mut fixed_wrong, mut sequential_wrong) = (0, 0);
        for _ in 0..experiments {
            let (mut c, mut t) = (MomentSums::default(), MomentSums::default());
            let (mut fixed_stopped, mut sequential_stopped) = (false, false);
            for _look in 0..50 {
                for _ in 0..100 {
                    c.add(normal(&mut rng), 0.0);
                    t.add(normal(&mut rng), 0.0);
                }
                let (cm, tm) = (c.finish(false), t.finish(false));
                let fixed = mean_test(&cm, &tm, Alternative::TwoSided, 0.05).unwrap();
                fixed_stopped |= fixed.p_value.unwrap() < 0.05;
                let sequential = sequential_test(&cm, &tm, 0.05, DEFAULT_TUNING).unwrap();
                let p = sequential.p_value.unwrap();
                let excludes_zero = sequential.difference_low.unwrap() > 0.0
                    || sequential.difference_high.unwrap() < 0.0;
                assert_eq!(p < 0.05, excludes_zero, "p-value and interval agree");
                sequential_stopped |= excludes_zero;
            }
            fixed_wrong += usize::from(fixed_stopped);
            sequential_wrong += usize::from(sequential_stopped);
        }
        let (fixed_rate, sequential_rate) = (
            fixed_wrong as f64 / experiments as f64,
            sequential_wrong as f64 / experiments as f64,
        );
        assert!(
            fixed_rate > 0.15,
            "fixed-horizon with peeking: {fixed_rate}"
        );
        assert!(sequential_rate <= 0.05, "sequential: {sequential_rate}");
    }

    #[test]
    fn bad_tuning() {
        let m = Moments {
            n: 10.0,
            mean: 0.0,
            variance: 1.0,
            covariate: None,
        };
        assert_eq!(
            sequential_test(&m, &m, 0.05, 0.0),
            Err(StatsError::Tuning { tuning: 0.0 })
        );
    }
}

//! Planning: how many users an experiment needs to detect an effect, and the smallest
//! effect a given number of users can detect. Two-sided z-tests, as statsmodels'
//! `NormalIndPower` (whose power function the differential test checks these against):
//!
//! `power = Φ(d √m - z) + Φ(-d √m - z)`, with `z = Φ⁻¹(1 - α/2)`, `m = n₁ r / (1 + r)` the
//! effective sample size of groups of `n₁` and `r n₁` users, and `d` the standardized
//! effect: `mde / sd` for means, Cohen's `h = 2 asin √(p + mde) - 2 asin √p` for a
//! conversion rate `p` (statsmodels' `proportion_effectsize`).
//!
//! The equation is solved for `x = d √m` by bisection to the last bit, so the sample size
//! and the effect follow in closed form. Sample sizes are not rounded: round up.

use super::StatsError;
use super::comparison::check_alpha;
use super::distributions::{normal_cdf, normal_isf, normal_sf};

/// The design of a two-group experiment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Design {
    /// The significance level of the two-sided test.
    pub alpha: f64,
    /// The probability of detecting the effect.
    pub power: f64,
    /// Users in the treatment group per user in the control group.
    pub ratio: f64,
}

impl Default for Design {
    /// α = 0.05, power 0.8, equal groups.
    fn default() -> Self {
        Design {
            alpha: 0.05,
            power: 0.8,
            ratio: 1.0,
        }
    }
}

impl Design {
    fn check(&self) -> Result<(), StatsError> {
        check_alpha(self.alpha)?;
        if !(self.power > self.alpha && self.power < 1.0) {
            return Err(StatsError::Power {
                power: self.power,
                alpha: self.alpha,
            });
        }
        if !(self.ratio > 0.0 && self.ratio.is_finite()) {
            return Err(StatsError::Ratio { ratio: self.ratio });
        }
        Ok(())
    }

    /// The `d √m` at which the test has the design's power.
    fn standardized_shift(&self) -> f64 {
        let z = normal_isf(self.alpha / 2.0);
        let power = |x: f64| normal_sf(z - x) + normal_cdf(-z - x);
        let (mut lo, mut hi) = (0.0, 1.0);
        while power(hi) < self.power {
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if mid <= lo || mid >= hi {
                break;
            }
            if power(mid) < self.power {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        (lo + hi) / 2.0
    }

    /// The control group's size for a standardized effect `d`.
    fn users(&self, d: f64) -> f64 {
        let x = self.standardized_shift();
        x * x * (1.0 + self.ratio) / (self.ratio * d * d)
    }

    /// The standardized effect detectable with `users` in the control group.
    fn effect(&self, users: f64) -> f64 {
        self.standardized_shift() / (users * self.ratio / (1.0 + self.ratio)).sqrt()
    }
}

fn check_rate(baseline: f64) -> Result<(), StatsError> {
    if baseline > 0.0 && baseline < 1.0 {
        Ok(())
    } else {
        Err(StatsError::Rate { rate: baseline })
    }
}

fn check_users(users: f64) -> Result<(), StatsError> {
    if users > 0.0 && users.is_finite() {
        Ok(())
    } else {
        Err(StatsError::PlannedUsers { users })
    }
}

/// Users in the control group (the treatment gets `ratio` times as many) to detect a
/// change of a conversion rate from `baseline` to `baseline + mde`.
///
/// ```
/// use martdb::ml::stats::{Design, sample_size_proportion};
/// let n = sample_size_proportion(0.10, 0.02, Design::default()).unwrap();
/// assert_eq!(n.ceil(), 3835.0);
/// ```
pub fn sample_size_proportion(baseline: f64, mde: f64, design: Design) -> Result<f64, StatsError> {
    design.check()?;
    check_rate(baseline)?;
    let target = baseline + mde;
    if mde == 0.0 || !(target > 0.0 && target < 1.0) {
        return Err(StatsError::Effect { mde, baseline });
    }
    let h = 2.0 * target.sqrt().asin() - 2.0 * baseline.sqrt().asin();
    Ok(design.users(h.abs()))
}

/// Users in the control group to detect a change `mde` of a mean whose users vary with
/// standard deviation `std_dev`.
pub fn sample_size_mean(std_dev: f64, mde: f64, design: Design) -> Result<f64, StatsError> {
    design.check()?;
    if !(std_dev > 0.0 && std_dev.is_finite()) {
        return Err(StatsError::StdDev { std_dev });
    }
    if mde == 0.0 || !mde.is_finite() {
        return Err(StatsError::Effect {
            mde,
            baseline: f64::NAN,
        });
    }
    Ok(design.users((mde / std_dev).abs()))
}

/// The smallest increase of a conversion rate from `baseline` that `users` in the
/// control group detect (the inverse of [`sample_size_proportion`]).
pub fn mde_proportion(baseline: f64, users: f64, design: Design) -> Result<f64, StatsError> {
    design.check()?;
    check_rate(baseline)?;
    check_users(users)?;
    let angle = baseline.sqrt().asin() + design.effect(users) / 2.0;
    if angle >= std::f64::consts::FRAC_PI_2 {
        return Err(StatsError::Undetectable { users, baseline });
    }
    Ok(angle.sin().powi(2) - baseline)
}

/// The smallest change of a mean that `users` in the control group detect.
pub fn mde_mean(std_dev: f64, users: f64, design: Design) -> Result<f64, StatsError> {
    design.check()?;
    if !(std_dev > 0.0 && std_dev.is_finite()) {
        return Err(StatsError::StdDev { std_dev });
    }
    check_users(users)?;
    Ok(design.effect(users) * std_dev)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_values() {
        // The classic n = 2 (z_{α/2} + z_β)² / d² ignores the far tail; with d = 0.5 it
        // is 62.79, and the far tail's 0.0000x of power changes it by little.
        let n = sample_size_mean(2.0, 1.0, Design::default()).unwrap();
        let classic = 2.0 * (1.959963984540054f64 + 0.8416212335729143).powi(2) / 0.25;
        assert!((n - classic).abs() < 0.01, "{n} {classic}");
        assert!(n < classic);
        // The inverse returns the effect.
        let mde = mde_mean(2.0, n, Design::default()).unwrap();
        assert!((mde - 1.0).abs() < 1e-12);
        let n = sample_size_proportion(0.1, 0.02, Design::default()).unwrap();
        let mde = mde_proportion(0.1, n, Design::default()).unwrap();
        assert!((mde - 0.02).abs() < 1e-12, "{mde}");
        // Unequal groups need a larger control group for the same power... or smaller,
        // when the treatment group is larger.
        let skewed = Design {
            ratio: 3.0,
            ..Design::default()
        };
        assert!(sample_size_proportion(0.1, 0.02, skewed).unwrap() < n);
    }

    #[test]
    fn bad_designs() {
        let d = Design::default();
        assert!(matches!(
            sample_size_proportion(1.2, 0.1, d),
            Err(StatsError::Rate { .. })
        ));
        assert!(matches!(
            sample_size_proportion(0.95, 0.1, d),
            Err(StatsError::Effect { .. })
        ));
        assert!(matches!(
            sample_size_mean(0.0, 1.0, d),
            Err(StatsError::StdDev { .. })
        ));
        let weak = Design { power: 0.01, ..d };
        assert!(matches!(
            sample_size_mean(1.0, 1.0, weak),
            Err(StatsError::Power { .. })
        ));
        assert!(matches!(
            mde_proportion(0.5, 1.0, d),
            Err(StatsError::Undetectable { .. })
        ));
    }
}

//! The summary of a metric over the users of one variant: how many, the mean and the
//! sample variance, and for CUPED and ratio metrics the same of a second column (the
//! pre-period covariate, or the ratio's denominator) with the covariance of the two.
//!
//! [`MomentSums`] accumulates rows as sums of deviations from a shift (the group's first
//! value): as cheap as plain sums of squares, but without their cancellation when the
//! mean is large next to the spread. Partial sums with different shifts merge through
//! the central moments (Chan et al.), so any split of the rows gives the same summary up
//! to rounding.

use super::StatsError;

/// A metric summarised over the users of one variant (sample variances, `n - 1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: f64,
    pub mean: f64,
    pub variance: f64,
    pub covariate: Option<CovariateMoments>,
}

/// The second column of [`Moments`]: its mean, variance and covariance with the metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CovariateMoments {
    pub mean: f64,
    pub variance: f64,
    pub covariance: f64,
}

impl Moments {
    /// Checks the summary of `group` (`control` or `treatment`) before a test uses it.
    pub(crate) fn check(&self, group: &'static str) -> Result<(), StatsError> {
        if self.n < 2.0 {
            return Err(StatsError::TooFewUsers { group, n: self.n });
        }
        let mut values = vec![self.n, self.mean, self.variance];
        if let Some(c) = self.covariate {
            values.extend([c.mean, c.variance, c.covariance]);
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(StatsError::NotFinite { group });
        }
        if self.variance < 0.0 || self.covariate.is_some_and(|c| c.variance < 0.0) {
            return Err(StatsError::NegativeVariance { group });
        }
        Ok(())
    }
}

/// Running sums of one group's rows (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MomentSums {
    pub n: u64,
    pub shift: f64,
    pub sum: f64,
    pub sum_squares: f64,
    pub covariate_shift: f64,
    pub covariate_sum: f64,
    pub covariate_sum_squares: f64,
    pub sum_products: f64,
}

/// Central moments: the form in which partial sums merge.
struct Central {
    n: f64,
    mean: f64,
    m2: f64,
    covariate_mean: f64,
    covariate_m2: f64,
    comoment: f64,
}

impl MomentSums {
    /// Adds one user's value, with no covariate.
    #[inline]
    pub fn add_value(&mut self, value: f64) {
        if self.n == 0 {
            self.shift = value;
        }
        self.n += 1;
        let dy = value - self.shift;
        self.sum += dy;
        self.sum_squares += dy * dy;
    }

    /// Adds one user's value and covariate.
    #[inline]
    pub fn add(&mut self, value: f64, covariate: f64) {
        if self.n == 0 {
            self.shift = value;
            self.covariate_shift = covariate;
        }
        self.n += 1;
        let dy = value - self.shift;
        let dx = covariate - self.covariate_shift;
        self.sum += dy;
        self.sum_squares += dy * dy;
        self.covariate_sum += dx;
        self.covariate_sum_squares += dx * dx;
        self.sum_products += dy * dx;
    }

    fn central(&self) -> Central {
        let n = self.n as f64;
        Central {
            n,
            mean: self.shift + self.sum / n,
            m2: (self.sum_squares - self.sum * self.sum / n).max(0.0),
            covariate_mean: self.covariate_shift + self.covariate_sum / n,
            covariate_m2: (self.covariate_sum_squares
                - self.covariate_sum * self.covariate_sum / n)
                .max(0.0),
            comoment: self.sum_products - self.sum * self.covariate_sum / n,
        }
    }

    /// Adds the rows summed in `other`.
    pub fn merge(&mut self, other: &MomentSums) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        let (a, b) = (self.central(), other.central());
        let n = a.n + b.n;
        let dy = b.mean - a.mean;
        let dx = b.covariate_mean - a.covariate_mean;
        let weight = a.n * b.n / n;
        *self = MomentSums {
            n: self.n + other.n,
            shift: a.mean + dy * b.n / n,
            sum: 0.0,
            sum_squares: a.m2 + b.m2 + dy * dy * weight,
            covariate_shift: a.covariate_mean + dx * b.n / n,
            covariate_sum: 0.0,
            covariate_sum_squares: a.covariate_m2 + b.covariate_m2 + dx * dx * weight,
            sum_products: a.comoment + b.comoment + dy * dx * weight,
        };
    }

    /// The summary; `with_covariate` when a second column was summed. Variances need
    /// two users: with fewer they are NaN, which the SQL function shows as NULL.
    pub fn finish(&self, with_covariate: bool) -> Moments {
        let c = self.central();
        let denominator = c.n - 1.0;
        let variance = |m2: f64| {
            if c.n >= 2.0 {
                m2 / denominator
            } else {
                f64::NAN
            }
        };
        Moments {
            n: c.n,
            mean: c.mean,
            variance: variance(c.m2),
            covariate: with_covariate.then(|| CovariateMoments {
                mean: c.covariate_mean,
                variance: variance(c.covariate_m2),
                covariance: variance(c.comoment),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_parts_equal_one_pass() {
        // Large mean, small spread: plain sums of squares would lose most digits.
        let rows: Vec<(f64, f64)> = (0..1000)
            .map(|i| {
                let i = i as f64;
                (
                    1e9 + (i * 0.37).sin(),
                    5.0 + 2.0 * (i * 0.37).sin() + (i * 0.11).cos(),
                )
            })
            .collect();
        let mut whole = MomentSums::default();
        rows.iter().for_each(|&(y, x)| whole.add(y, x));
        let mut merged = MomentSums::default();
        for part in rows.chunks(77) {
            let mut sums = MomentSums::default();
            part.iter().for_each(|&(y, x)| sums.add(y, x));
            merged.merge(&sums);
        }
        let n = rows.len() as f64;
        let mean_y = rows.iter().map(|r| r.0 - 1e9).sum::<f64>() / n + 1e9;
        let mean_x = rows.iter().map(|r| r.1).sum::<f64>() / n;
        let var_y = rows.iter().map(|r| (r.0 - mean_y).powi(2)).sum::<f64>() / (n - 1.0);
        let cov = rows
            .iter()
            .map(|r| (r.0 - mean_y) * (r.1 - mean_x))
            .sum::<f64>()
            / (n - 1.0);
        for sums in [whole, merged] {
            let m = sums.finish(true);
            assert_eq!(m.n, n);
            assert!((m.mean - mean_y).abs() < 1e-6, "{}", m.mean);
            assert!(
                (m.variance / var_y - 1.0).abs() < 1e-6,
                "{} {var_y}",
                m.variance
            );
            let c = m.covariate.unwrap();
            assert!((c.mean - mean_x).abs() < 1e-12);
            assert!(
                (c.covariance / cov - 1.0).abs() < 1e-6,
                "{} {cov}",
                c.covariance
            );
        }
    }

    #[test]
    fn one_user_has_no_variance() {
        let mut sums = MomentSums::default();
        sums.add(3.0, 0.0);
        let m = sums.finish(false);
        assert_eq!((m.n, m.mean), (1.0, 3.0));
        assert!(m.variance.is_nan());
        assert!(m.covariate.is_none());
        assert_eq!(
            m.check("control"),
            Err(StatsError::TooFewUsers {
                group: "control",
                n: 1.0
            })
        );
    }
}

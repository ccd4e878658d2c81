//! Comparing a treatment with its control: the difference and the relative lift with
//! confidence intervals, the test statistic and its p-value.
//!
//! Every test here works on summaries ([`Moments`], or counts for conversions), so the
//! scan over users is one `GROUP BY variant` and the statistics cost nothing next to it.
//! Differences are `treatment - control`; the relative lift is `treatment / control - 1`
//! with the delta-method variance `v_t / c² + t² v_c / c⁴` (as GrowthBook computes it),
//! and is missing when the control's value is 0. `alternative` `greater` tests whether
//! the treatment is larger; one-sided intervals have one missing (infinite) bound.
//!
//! | test | statistic | interval | reference |
//! | --- | --- | --- | --- |
//! | [`proportion_test`] | z with the pooled rate | Wald, unpooled | statsmodels `proportions_ztest`, `confint_proportions_2indep(method='wald')` |
//! | [`mean_test`] | Welch's t, Welch-Satterthwaite df | t with the same df | scipy `ttest_ind(equal_var=False)`, statsmodels `tconfint_diff(usevar='unequal')` |
//! | [`cuped_test`] | Welch's t on `y - θ (x - x̄)`, `θ = cov(y, x) / var(x)` over both groups | the same | Welch on the adjusted values |
//! | [`ratio_test`] | z, delta-method variance of `ȳ / x̄` | normal | the delta method on the raw values |
//!
//! When the standard error of the test is 0 (both groups constant, or no conversions at
//! all) there is no statistic: it and the p-value are missing, never NaN.

use std::str::FromStr;

use super::distributions::{normal_isf, normal_sf, student_t_isf, student_t_sf};
use super::{Moments, StatsError};

/// Which difference the test looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    TwoSided,
    /// The treatment is larger than the control.
    Greater,
    /// The treatment is smaller than the control.
    Less,
}

impl FromStr for Alternative {
    type Err = StatsError;

    /// `two-sided` (also `two_sided`, `2s`), `greater` (`larger`), `less` (`smaller`).
    fn from_str(name: &str) -> Result<Self, StatsError> {
        match name.to_ascii_lowercase().as_str() {
            "two-sided" | "two_sided" | "2s" => Ok(Alternative::TwoSided),
            "greater" | "larger" => Ok(Alternative::Greater),
            "less" | "smaller" => Ok(Alternative::Less),
            _ => Err(StatsError::UnknownAlternative {
                name: name.to_string(),
            }),
        }
    }
}

/// A treatment compared with its control. `None` is a missing value (SQL NULL).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// The control's rate or mean (CUPED: adjusted).
    pub control: f64,
    /// The treatment's.
    pub treatment: f64,
    pub difference: f64,
    pub difference_low: Option<f64>,
    pub difference_high: Option<f64>,
    /// `treatment / control - 1`.
    pub relative: Option<f64>,
    pub relative_low: Option<f64>,
    pub relative_high: Option<f64>,
    /// z or t.
    pub statistic: Option<f64>,
    /// The degrees of freedom of a t statistic.
    pub df: Option<f64>,
    pub p_value: Option<f64>,
}

/// What every comparison is computed from: two estimates and their variances.
pub(crate) struct Estimates {
    pub control: f64,
    pub treatment: f64,
    /// The variance of the control's estimate (of its mean, not of its users).
    pub control_variance: f64,
    pub treatment_variance: f64,
    /// The standard error of the test statistic when it is not that of the interval
    /// (the pooled one of the proportion test).
    pub test_se: Option<f64>,
    /// Degrees of freedom for Student's t; normal when `None`.
    pub df: Option<f64>,
}

pub(crate) fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(StatsError::Alpha { alpha })
    }
}

impl Estimates {
    fn sf(&self, x: f64) -> f64 {
        match self.df {
            Some(df) => student_t_sf(x, df),
            None => normal_sf(x),
        }
    }

    fn isf(&self, q: f64) -> f64 {
        match self.df {
            Some(df) => student_t_isf(q, df),
            None => normal_isf(q),
        }
    }

    /// The intervals, statistic and p-value.
    pub(crate) fn compare(&self, alternative: Alternative, alpha: f64) -> Comparison {
        let difference = self.treatment - self.control;
        let se = (self.control_variance + self.treatment_variance).sqrt();
        let tail = match alternative {
            Alternative::TwoSided => alpha / 2.0,
            _ => alpha,
        };
        let critical = self.isf(tail);
        let interval = |estimate: f64, se: f64| match alternative {
            Alternative::TwoSided => (
                Some(estimate - critical * se),
                Some(estimate + critical * se),
            ),
            Alternative::Greater => (Some(estimate - critical * se), None),
            Alternative::Less => (None, Some(estimate + critical * se)),
        };
        let (difference_low, difference_high) = interval(difference, se);
        let (relative, relative_low, relative_high) = if self.control != 0.0 {
            let c = self.control;
            let t = self.treatment;
            let relative = t / c - 1.0;
            let se = (self.treatment_variance / (c * c)
                + t * t * self.control_variance / (c * c * c * c))
                .sqrt();
            let (low, high) = interval(relative, se);
            (Some(relative), low, high)
        } else {
            (None, None, None)
        };
        let test_se = self.test_se.unwrap_or(se);
        let statistic = (test_se > 0.0).then(|| difference / test_se);
        let p_value = statistic.map(|s| {
            let p = match alternative {
                Alternative::TwoSided => 2.0 * self.sf(s.abs()),
                Alternative::Greater => self.sf(s),
                Alternative::Less => self.sf(-s),
            };
            p.clamp(0.0, 1.0)
        });
        Comparison {
            control: self.control,
            treatment: self.treatment,
            difference,
            difference_low,
            difference_high,
            relative,
            relative_low,
            relative_high,
            statistic,
            df: self.df,
            p_value,
        }
    }
}

/// Checks alpha and both groups' summaries.
fn check_summaries(control: &Moments, treatment: &Moments, alpha: f64) -> Result<(), StatsError> {
    check_alpha(alpha)?;
    control.check("control")?;
    treatment.check("treatment")
}

/// Users and conversions of one group, checked.
fn rate(users: f64, conversions: f64, group: &'static str) -> Result<f64, StatsError> {
    if !users.is_finite() || !conversions.is_finite() {
        return Err(StatsError::NotFinite { group });
    }
    if users < 1.0 {
        return Err(StatsError::NoUsers { group });
    }
    if conversions < 0.0 || conversions > users {
        return Err(StatsError::Conversions {
            group,
            users,
            conversions,
        });
    }
    Ok(conversions / users)
}

/// The two-proportion z-test of conversion counts.
///
/// ```
/// use martdb::ml::stats::{Alternative, proportion_test};
/// let r = proportion_test((1000.0, 100.0), (1000.0, 130.0), Alternative::TwoSided, 0.05).unwrap();
/// assert!((r.difference - 0.03).abs() < 1e-12);
/// assert!(r.p_value.unwrap() < 0.05);
/// ```
pub fn proportion_test(
    (control_users, control_conversions): (f64, f64),
    (treatment_users, treatment_conversions): (f64, f64),
    alternative: Alternative,
    alpha: f64,
) -> Result<Comparison, StatsError> {
    check_alpha(alpha)?;
    let c = rate(control_users, control_conversions, "control")?;
    let t = rate(treatment_users, treatment_conversions, "treatment")?;
    let pooled = (control_conversions + treatment_conversions) / (control_users + treatment_users);
    let test_se = (pooled * (1.0 - pooled) * (1.0 / control_users + 1.0 / treatment_users)).sqrt();
    Ok(Estimates {
        control: c,
        treatment: t,
        control_variance: c * (1.0 - c) / control_users,
        treatment_variance: t * (1.0 - t) / treatment_users,
        test_se: Some(test_se),
        df: None,
    }
    .compare(alternative, alpha))
}

/// The Welch-Satterthwaite degrees of freedom; `None` when both variances are 0.
fn welch_df(
    control_variance: f64,
    control_n: f64,
    treatment_variance: f64,
    treatment_n: f64,
) -> Option<f64> {
    let total = control_variance + treatment_variance;
    let df = total * total
        / (control_variance * control_variance / (control_n - 1.0)
            + treatment_variance * treatment_variance / (treatment_n - 1.0));
    df.is_finite().then_some(df)
}

fn welch(
    (control_n, control_mean, control_var): (f64, f64, f64),
    (treatment_n, treatment_mean, treatment_var): (f64, f64, f64),
) -> Estimates {
    let control_variance = control_var / control_n;
    let treatment_variance = treatment_var / treatment_n;
    Estimates {
        control: control_mean,
        treatment: treatment_mean,
        control_variance,
        treatment_variance,
        test_se: None,
        df: welch_df(control_variance, control_n, treatment_variance, treatment_n),
    }
}

/// Welch's t-test of the means.
///
/// ```
/// use martdb::ml::stats::{Alternative, Moments, mean_test};
/// let control = Moments { n: 500.0, mean: 10.0, variance: 25.0, covariate: None };
/// let treatment = Moments { n: 480.0, mean: 11.0, variance: 30.0, covariate: None };
/// let r = mean_test(&control, &treatment, Alternative::TwoSided, 0.05).unwrap();
/// assert!((r.relative.unwrap() - 0.1).abs() < 1e-12);
/// assert!(r.df.unwrap() > 900.0);
/// ```
pub fn mean_test(
    control: &Moments,
    treatment: &Moments,
    alternative: Alternative,
    alpha: f64,
) -> Result<Comparison, StatsError> {
    check_summaries(control, treatment, alpha)?;
    Ok(welch(
        (control.n, control.mean, control.variance),
        (treatment.n, treatment.mean, treatment.variance),
    )
    .compare(alternative, alpha))
}

fn covariate(moments: &Moments, test: &'static str) -> Result<super::CovariateMoments, StatsError> {
    moments
        .covariate
        .ok_or(StatsError::MissingCovariate { test })
}

/// CUPED: Welch's t-test of the metric adjusted by a pre-period covariate,
/// `y - θ (x - x̄)`, with `θ = cov(y, x) / var(x)` and `x̄` over both groups together.
/// The adjusted means and variances are those of the adjusted values; `θ` is taken as
/// known, as in Deng et al. (2013) and GrowthBook.
pub fn cuped_test(
    control: &Moments,
    treatment: &Moments,
    alternative: Alternative,
    alpha: f64,
) -> Result<Comparison, StatsError> {
    check_summaries(control, treatment, alpha)?;
    let (cx, tx) = (
        covariate(control, "ab_cuped_test")?,
        covariate(treatment, "ab_cuped_test")?,
    );
    let n = control.n + treatment.n;
    let mean_x = (control.n * cx.mean + treatment.n * tx.mean) / n;
    let mean_y = (control.n * control.mean + treatment.n * treatment.mean) / n;
    // Pooled (co)variances over all users: within-group parts plus between-group parts.
    let pooled = |within_c: f64, within_t: f64, between_c: f64, between_t: f64| {
        ((control.n - 1.0) * within_c
            + (treatment.n - 1.0) * within_t
            + control.n * between_c
            + treatment.n * between_t)
            / (n - 1.0)
    };
    let var_x = pooled(
        cx.variance,
        tx.variance,
        (cx.mean - mean_x).powi(2),
        (tx.mean - mean_x).powi(2),
    );
    let cov = pooled(
        cx.covariance,
        tx.covariance,
        (cx.mean - mean_x) * (control.mean - mean_y),
        (tx.mean - mean_x) * (treatment.mean - mean_y),
    );
    let theta = if var_x > 0.0 { cov / var_x } else { 0.0 };
    let adjust = |m: &Moments, x: &super::CovariateMoments| {
        (
            m.n,
            m.mean - theta * (x.mean - mean_x),
            (m.variance + theta * theta * x.variance - 2.0 * theta * x.covariance).max(0.0),
        )
    };
    Ok(welch(adjust(control, &cx), adjust(treatment, &tx)).compare(alternative, alpha))
}

/// A ratio metric (e.g. revenue per order: `ab_moments(revenue, orders)`): the ratio of
/// the means `ȳ / x̄` of each group, with the delta-method variance
/// `(v_y - 2 R c_yx + R² v_x) / (n x̄²)`, and a z-test of the difference.
pub fn ratio_test(
    control: &Moments,
    treatment: &Moments,
    alternative: Alternative,
    alpha: f64,
) -> Result<Comparison, StatsError> {
    check_summaries(control, treatment, alpha)?;
    let ratio = |m: &Moments, group: &'static str| -> Result<(f64, f64), StatsError> {
        let x = covariate(m, "ab_ratio_test")?;
        if x.mean == 0.0 {
            return Err(StatsError::ZeroDenominator { group });
        }
        let r = m.mean / x.mean;
        let variance = (m.variance - 2.0 * r * x.covariance + r * r * x.variance).max(0.0)
            / (m.n * x.mean * x.mean);
        Ok((r, variance))
    };
    let (c, cv) = ratio(control, "control")?;
    let (t, tv) = ratio(treatment, "treatment")?;
    Ok(Estimates {
        control: c,
        treatment: t,
        control_variance: cv,
        treatment_variance: tv,
        test_se: None,
        df: None,
    }
    .compare(alternative, alpha))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(values: &[f64]) -> Moments {
        let mut sums = super::super::MomentSums::default();
        values.iter().for_each(|&v| sums.add(v, v * v));
        sums.finish(true)
    }

    #[test]
    fn proportions_by_hand() {
        // 100/1000 vs 130/1000: pooled 0.115, se = sqrt(0.115 * 0.885 * 0.002).
        let r = proportion_test(
            (1000.0, 100.0),
            (1000.0, 130.0),
            Alternative::TwoSided,
            0.05,
        )
        .unwrap();
        let z = 0.03 / (0.115f64 * 0.885 * 0.002).sqrt();
        assert!((r.statistic.unwrap() - z).abs() < 1e-12);
        assert!((r.p_value.unwrap() - 2.0 * normal_sf(z)).abs() < 1e-15);
        let se = (0.1f64 * 0.9 / 1000.0 + 0.13 * 0.87 / 1000.0).sqrt();
        assert!((r.difference_low.unwrap() - (0.03 - 1.959963984540054 * se)).abs() < 1e-12);
        assert!((r.relative.unwrap() - 0.3).abs() < 1e-12);
        let greater =
            proportion_test((1000.0, 100.0), (1000.0, 130.0), Alternative::Greater, 0.05).unwrap();
        assert!((greater.p_value.unwrap() * 2.0 - r.p_value.unwrap()).abs() < 1e-15);
        assert_eq!(greater.difference_high, None);
    }

    #[test]
    fn no_conversions_have_no_statistic() {
        let r = proportion_test((10.0, 0.0), (12.0, 0.0), Alternative::TwoSided, 0.05).unwrap();
        assert_eq!((r.statistic, r.p_value, r.relative), (None, None, None));
        assert_eq!(
            (r.difference_low, r.difference_high),
            (Some(0.0), Some(0.0))
        );
    }

    #[test]
    fn bad_counts_are_errors() {
        let test = |c, t| proportion_test(c, t, Alternative::TwoSided, 0.05);
        assert_eq!(
            test((0.0, 0.0), (10.0, 1.0)),
            Err(StatsError::NoUsers { group: "control" })
        );
        assert!(matches!(
            test((10.0, -1.0), (10.0, 1.0)),
            Err(StatsError::Conversions { .. })
        ));
        assert!(matches!(
            test((10.0, 1.0), (10.0, 11.0)),
            Err(StatsError::Conversions { .. })
        ));
        assert!(matches!(
            proportion_test((10.0, 1.0), (10.0, 1.0), Alternative::TwoSided, 1.5),
            Err(StatsError::Alpha { .. })
        ));
        assert!("sideways".parse::<Alternative>().is_err());
    }

    #[test]
    fn cuped_with_an_unrelated_covariate_changes_little_and_with_a_related_one_narrows() {
        let control: Vec<f64> = (0..200).map(|i| ((i * 37 % 101) as f64).sqrt()).collect();
        let treatment: Vec<f64> = (0..220)
            .map(|i| ((i * 53 % 103) as f64).sqrt() + 0.3)
            .collect();
        let (c, t) = (moments(&control), moments(&treatment));
        let plain = mean_test(&c, &t, Alternative::TwoSided, 0.05).unwrap();
        let cuped = cuped_test(&c, &t, Alternative::TwoSided, 0.05).unwrap();
        // The covariate is y², strongly related to y: the interval narrows.
        let width = |r: &Comparison| r.difference_high.unwrap() - r.difference_low.unwrap();
        assert!(width(&cuped) < width(&plain), "{cuped:?} {plain:?}");
        let no_covariate = Moments {
            covariate: None,
            ..c
        };
        assert_eq!(
            cuped_test(&no_covariate, &t, Alternative::TwoSided, 0.05),
            Err(StatsError::MissingCovariate {
                test: "ab_cuped_test"
            })
        );
    }

    #[test]
    fn constant_groups_have_no_statistic() {
        let c = Moments {
            n: 5.0,
            mean: 1.0,
            variance: 0.0,
            covariate: None,
        };
        let r = mean_test(&c, &c, Alternative::TwoSided, 0.05).unwrap();
        assert_eq!((r.statistic, r.p_value, r.df), (None, None, None));
    }
}

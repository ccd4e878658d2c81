//! Chi-square tests over all the variants at once: whether conversion rates differ
//! ([`conversion_chi_square`], scipy's `chi2_contingency(correction=False)` on the
//! `variants × (converted, not converted)` table), and whether the split itself is broken
//! ([`sample_ratio_mismatch`], scipy's `chisquare` of the users against the intended
//! weights).

use super::StatsError;
use super::distributions::chi_square_sf;

/// A chi-square statistic, its degrees of freedom and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub df: f64,
    pub p_value: f64,
}

/// A sample ratio mismatch is flagged below this p-value (GrowthBook's and Optimizely's
/// threshold: a broken split is common enough that 0.05 would cry wolf).
pub const SRM_THRESHOLD: f64 = 0.001;

fn check_variants(count: usize) -> Result<(), StatsError> {
    if count < 2 {
        Err(StatsError::TooFewVariants { found: count })
    } else {
        Ok(())
    }
}

fn chi_square(observed_expected: impl Iterator<Item = (f64, f64)>, df: f64) -> ChiSquare {
    let statistic: f64 = observed_expected.map(|(o, e)| (o - e) * (o - e) / e).sum();
    ChiSquare {
        statistic,
        df,
        p_value: chi_square_sf(statistic, df).clamp(0.0, 1.0),
    }
}

/// The chi-square test of independence of variant and conversion; `variants` holds
/// `(users, conversions)`. `None` when nobody converted or everybody did (no expected
/// count to compare with).
pub fn conversion_chi_square(variants: &[(f64, f64)]) -> Result<Option<ChiSquare>, StatsError> {
    check_variants(variants.len())?;
    for (row, &(users, conversions)) in variants.iter().enumerate() {
        if !users.is_finite() || !conversions.is_finite() {
            return Err(StatsError::NotFiniteRow { row });
        }
        if users < 1.0 {
            return Err(StatsError::NoUsersRow { row });
        }
        if conversions < 0.0 || conversions > users {
            return Err(StatsError::ConversionsRow {
                row,
                users,
                conversions,
            });
        }
    }
    let total: f64 = variants.iter().map(|v| v.0).sum();
    let converted: f64 = variants.iter().map(|v| v.1).sum();
    if converted == 0.0 || converted == total {
        return Ok(None);
    }
    let rate = converted / total;
    let cells = variants.iter().flat_map(|&(users, conversions)| {
        [
            (conversions, users * rate),
            (users - conversions, users * (1.0 - rate)),
        ]
    });
    Ok(Some(chi_square(cells, variants.len() as f64 - 1.0)))
}

/// The sample ratio mismatch check: `variants` holds `(users, intended weight)`; the
/// weights need not sum to 1. Returns the test and whether `p < SRM_THRESHOLD`.
pub fn sample_ratio_mismatch(variants: &[(f64, f64)]) -> Result<(ChiSquare, bool), StatsError> {
    check_variants(variants.len())?;
    for (row, &(users, weight)) in variants.iter().enumerate() {
        if !users.is_finite() || !weight.is_finite() {
            return Err(StatsError::NotFiniteRow { row });
        }
        if users < 0.0 {
            return Err(StatsError::NegativeUsersRow { row, users });
        }
        if weight <= 0.0 {
            return Err(StatsError::Weight { row, weight });
        }
    }
    let total: f64 = variants.iter().map(|v| v.0).sum();
    if total == 0.0 {
        return Err(StatsError::NoUsersAtAll);
    }
    let weights: f64 = variants.iter().map(|v| v.1).sum();
    let test = chi_square(
        variants
            .iter()
            .map(|&(users, weight)| (users, total * weight / weights)),
        variants.len() as f64 - 1.0,
    );
    Ok((test, test.p_value < SRM_THRESHOLD))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_hand() {
        // 2x2: the chi-square is the square of the pooled z.
        let chi = conversion_chi_square(&[(1000.0, 100.0), (1000.0, 130.0)])
            .unwrap()
            .unwrap();
        let z = 0.03 / (0.115f64 * 0.885 * 0.002).sqrt();
        assert!((chi.statistic - z * z).abs() < 1e-10);
        assert_eq!(chi.df, 1.0);
        // 5050 vs 4950 at 50/50: (50² + 50²) / 5000 = 1.
        let (srm, flagged) = sample_ratio_mismatch(&[(5050.0, 1.0), (4950.0, 1.0)]).unwrap();
        assert!((srm.statistic - 1.0).abs() < 1e-12);
        assert!(!flagged);
        let (_, flagged) = sample_ratio_mismatch(&[(5300.0, 50.0), (4700.0, 50.0)]).unwrap();
        assert!(flagged);
    }

    #[test]
    fn bad_input() {
        assert_eq!(
            conversion_chi_square(&[(10.0, 1.0)]),
            Err(StatsError::TooFewVariants { found: 1 })
        );
        assert_eq!(conversion_chi_square(&[(10.0, 0.0), (12.0, 0.0)]), Ok(None));
        assert_eq!(
            conversion_chi_square(&[(10.0, 0.0), (0.0, 0.0)]),
            Err(StatsError::NoUsersRow { row: 1 })
        );
        assert_eq!(
            sample_ratio_mismatch(&[(10.0, 1.0), (10.0, 0.0)]),
            Err(StatsError::Weight {
                row: 1,
                weight: 0.0
            })
        );
        assert_eq!(
            sample_ratio_mismatch(&[(0.0, 1.0), (0.0, 1.0)]),
            Err(StatsError::NoUsersAtAll)
        );
    }
}

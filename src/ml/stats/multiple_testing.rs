//! Adjusting p-values for multiple testing, as `statsmodels.stats.multitest.multipletests`
//! does for `bonferroni`, `holm` and `fdr_bh` (R's `p.adjust` with `bonferroni`, `holm`
//! and `BH` gives the same numbers).
//!
//! With `m` p-values sorted ascending, `p(1) <= ... <= p(m)`:
//! - Bonferroni: `min(1, m p(i))`;
//! - Holm: `max over j <= i of min(1, (m - j + 1) p(j))` (step-down);
//! - Benjamini-Hochberg: `min over j >= i of min(1, m p(j) / j)` (step-up).
//!
//! Missing p-values (`None`) stay missing and do not count in `m`, as in `p.adjust` with
//! `NA`. Ties keep their input order, which does not change any adjusted value.

use std::str::FromStr;

use super::StatsError;

/// How to adjust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustMethod {
    Bonferroni,
    Holm,
    BenjaminiHochberg,
}

impl FromStr for AdjustMethod {
    type Err = StatsError;

    /// statsmodels' names (`bonferroni`, `holm`, `fdr_bh`) and R's (`BH`, `fdr`), in any
    /// case.
    fn from_str(name: &str) -> Result<Self, StatsError> {
        match name.to_ascii_lowercase().as_str() {
            "bonferroni" => Ok(AdjustMethod::Bonferroni),
            "holm" => Ok(AdjustMethod::Holm),
            "fdr_bh" | "bh" | "fdr" => Ok(AdjustMethod::BenjaminiHochberg),
            _ => Err(StatsError::UnknownMethod {
                name: name.to_string(),
            }),
        }
    }
}

/// The adjusted p-values of `p`, in its order.
///
/// ```
/// use martdb::ml::stats::{AdjustMethod, adjust_p_values};
/// let p = [Some(0.125), Some(0.5), None, Some(0.25)];
/// let holm = adjust_p_values(&p, AdjustMethod::Holm).unwrap();
/// assert_eq!(holm, [Some(0.375), Some(0.5), None, Some(0.5)]);
/// ```
pub fn adjust_p_values(
    p: &[Option<f64>],
    method: AdjustMethod,
) -> Result<Vec<Option<f64>>, StatsError> {
    for (row, value) in p.iter().enumerate() {
        if let Some(value) = value
            && !(0.0..=1.0).contains(value)
        {
            return Err(StatsError::PValueOutOfRange { row, value: *value });
        }
    }
    // (row, p-value) of the present values, smallest first; NaN was refused above.
    let mut order: Vec<(usize, f64)> = p
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    order.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    let m = order.len() as f64;
    let mut adjusted = vec![None; p.len()];
    match method {
        AdjustMethod::Bonferroni => {
            for &(i, v) in &order {
                adjusted[i] = Some((v * m).min(1.0));
            }
        }
        AdjustMethod::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &(i, v)) in order.iter().enumerate() {
                let value = ((m - rank as f64) * v).min(1.0);
                running = running.max(value);
                adjusted[i] = Some(running);
            }
        }
        AdjustMethod::BenjaminiHochberg => {
            let mut running: f64 = 1.0;
            for (rank, &(i, v)) in order.iter().enumerate().rev() {
                let value = (m / (rank as f64 + 1.0) * v).min(1.0);
                running = running.min(value);
                adjusted[i] = Some(running);
            }
        }
    }
    Ok(adjusted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adjust(p: &[f64], method: &str) -> Vec<f64> {
        let p: Vec<Option<f64>> = p.iter().copied().map(Some).collect();
        adjust_p_values(&p, method.parse().unwrap())
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect()
    }

    #[test]
    fn hand_computed_examples() {
        // m = 4; sorted: 0.01, 0.02, 0.03, 0.04.
        let p = [0.04, 0.01, 0.03, 0.02];
        assert_eq!(adjust(&p, "bonferroni"), [0.16, 0.04, 0.12, 0.08]);
        // Holm: 4*0.01, 3*0.02, 2*0.03, 1*0.04 -> cumulative max.
        let holm = adjust(&p, "holm");
        for (got, want) in holm.iter().zip([0.06, 0.04, 0.06, 0.06]) {
            assert!((got - want).abs() < 1e-15, "{holm:?}");
        }
        // BH: 0.04*4/4, 0.03*4/3, 0.02*4/2, 0.01*4/1 -> cumulative min from the top.
        let bh = adjust(&p, "fdr_bh");
        for (got, want) in bh.iter().zip([0.04, 0.04, 0.04, 0.04]) {
            assert!((got - want).abs() < 1e-15, "{bh:?}");
        }
        assert_eq!(adjust(&[0.5, 0.9], "bonferroni"), [1.0, 1.0]);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(
            adjust_p_values(&[Some(0.1), Some(1.5)], AdjustMethod::Holm),
            Err(StatsError::PValueOutOfRange { row: 1, value: 1.5 })
        );
        assert!(adjust_p_values(&[Some(f64::NAN)], AdjustMethod::Holm).is_err());
        assert!("sidak".parse::<AdjustMethod>().is_err());
        assert_eq!(adjust_p_values(&[], AdjustMethod::Holm), Ok(vec![]));
        assert_eq!(adjust_p_values(&[None], AdjustMethod::Holm), Ok(vec![None]));
    }
}

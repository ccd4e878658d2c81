//! The simplified Shapley value (Zhao et al. 2018) in its closed form: each converted
//! journey splits its conversion equally over its distinct channels (why this is the exact
//! Shapley value is in the module docs of `attribution`).

use super::Path;

/// Adds each converted path's share, times 1 and times its value, to its distinct channels.
pub(super) fn credit(paths: &[Path], credit: &mut [f64], value_credit: &mut [f64]) {
    let mut distinct = Vec::new();
    for path in paths.iter().filter(|p| p.converted) {
        distinct.clear();
        distinct.extend_from_slice(&path.channels);
        distinct.sort_unstable();
        distinct.dedup();
        let share = 1.0 / distinct.len() as f64;
        for &channel in &distinct {
            credit[channel] += share;
            value_credit[channel] += share * path.value;
        }
    }
}

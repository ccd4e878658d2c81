//! The heuristic models: each converted journey's conversion split over its touches by
//! fixed weights (first, last, linear, time decay, position).

use super::{Model, Path, SECONDS_PER_DAY};

/// Adds each converted path's weights, times 1 and times its value, to the channels.
pub(super) fn credit(model: Model, paths: &[Path], credit: &mut [f64], value_credit: &mut [f64]) {
    let mut weights = Vec::new();
    for path in paths.iter().filter(|p| p.converted) {
        touch_weights(model, path, &mut weights);
        for (&channel, &weight) in path.channels.iter().zip(&weights) {
            credit[channel] += weight;
            value_credit[channel] += weight * path.value;
        }
    }
}

/// The weight of each touch of `path` (they sum to 1), into `weights`.
fn touch_weights(model: Model, path: &Path, weights: &mut Vec<f64>) {
    let n = path.channels.len();
    weights.clear();
    weights.resize(n, 0.0);
    match model {
        Model::First => weights[0] = 1.0,
        Model::Last => weights[n - 1] = 1.0,
        Model::Linear => weights.fill(1.0 / n as f64),
        Model::TimeDecay { half_life_days } => {
            let half_life = half_life_days * SECONDS_PER_DAY;
            let last = path.times[n - 1];
            for (weight, &at) in weights.iter_mut().zip(&path.times) {
                *weight = (-(last - at) / half_life).exp2();
            }
            // The last touch has weight 1, so the total is at least 1.
            let total: f64 = weights.iter().sum();
            for weight in weights.iter_mut() {
                *weight /= total;
            }
        }
        Model::Position { end_share } => match n {
            1 => weights[0] = 1.0,
            2 => weights.fill(0.5),
            _ => {
                weights.fill((1.0 - 2.0 * end_share) / (n - 2) as f64);
                weights[0] = end_share;
                weights[n - 1] = end_share;
            }
        },
        Model::Markov | Model::Shapley => {
            unreachable!("attribute() handles markov and shapley itself, never through credit()")
        }
    }
}

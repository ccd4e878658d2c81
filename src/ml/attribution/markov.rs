//! The order-1 Markov chain model: removal effects from one LU factorisation of the
//! transient part of the chain (the method is in the module docs of `attribution`).

use super::{AttributionError, MAX_MARKOV_CHANNELS, Path};

/// What the chain says about the channels.
#[derive(Debug)]
pub(super) struct Chain {
    /// The removal effect of each channel, by channel index.
    pub removal_effects: Vec<f64>,
    /// The probability of conversion from `start`.
    pub conversion_probability: f64,
}

/// The removal effects of the `channels` channels of `paths`.
pub(super) fn removal_effects(paths: &[Path], channels: usize) -> Result<Chain, AttributionError> {
    if channels > MAX_MARKOV_CHANNELS {
        return Err(AttributionError::TooManyChannels {
            channels,
            limit: MAX_MARKOV_CHANNELS,
        });
    }
    // Transient states: 0 is `start`, 1 + c is channel c. Counts of moving from a
    // transient state to each transient state, and to `conversion`; `leaving` counts every
    // transition out of a state (to `null` too).
    let m = channels + 1;
    let mut to_transient = vec![0.0; m * m];
    let mut to_conversion = vec![0.0; m];
    let mut leaving = vec![0.0; m];
    for path in paths {
        let mut from = 0;
        for &channel in &path.channels {
            to_transient[from * m + 1 + channel] += 1.0;
            leaving[from] += 1.0;
            from = 1 + channel;
        }
        if path.converted {
            to_conversion[from] += 1.0;
        }
        leaving[from] += 1.0;
    }
    let no_conversion = Chain {
        removal_effects: vec![0.0; channels],
        conversion_probability: 0.0,
    };
    if !paths.iter().any(|p| p.converted) {
        return Ok(no_conversion);
    }
    // A = I - Q and r, as probabilities. Every state that is counted here was left at
    // least once, since every path ends in conversion or null.
    let mut a = to_transient;
    for i in 0..m {
        let out = leaving[i];
        for j in 0..m {
            a[i * m + j] = -a[i * m + j] / out;
        }
        a[i * m + i] += 1.0;
        to_conversion[i] /= out;
    }
    let lu = Lu::factor(a, m).ok_or_else(|| AttributionError::Input {
        message: "markov: the transition matrix is singular".into(),
    })?;
    // h: the probability of conversion from each transient state.
    let mut h = to_conversion;
    lu.solve(&mut h);
    let p = h[0];
    if p <= 0.0 {
        return Ok(no_conversion);
    }
    // Column j of N = (I - Q)^-1 gives N[start, j] and N[j, j].
    let mut column = vec![0.0; m];
    let removal_effects = (1..m)
        .map(|j| {
            column.fill(0.0);
            column[j] = 1.0;
            lu.solve(&mut column);
            let visited = column[0] / column[j];
            (visited * h[j] / p).clamp(0.0, 1.0)
        })
        .collect();
    Ok(Chain {
        removal_effects,
        conversion_probability: p,
    })
}

/// An LU factorisation with partial pivoting of a dense square matrix (row-major).
#[derive(Debug)]
pub(super) struct Lu {
    n: usize,
    /// L below the diagonal (unit diagonal implied), U on and above it.
    lu: Vec<f64>,
    /// Row `i` of the factorised matrix is row `pivot[i]` of the original.
    pivot: Vec<usize>,
}

impl Lu {
    /// Factorises `a` (n × n); `None` if it is singular.
    pub(super) fn factor(mut a: Vec<f64>, n: usize) -> Option<Lu> {
        let mut pivot: Vec<usize> = (0..n).collect();
        for k in 0..n {
            let best = (k..n)
                .max_by(|&x, &y| a[x * n + k].abs().total_cmp(&a[y * n + k].abs()))
                .expect("k < n, so the range k..n is not empty");
            if a[best * n + k] == 0.0 {
                return None;
            }
            if best != k {
                for j in 0..n {
                    a.swap(k * n + j, best * n + j);
                }
                pivot.swap(k, best);
            }
            let diagonal = a[k * n + k];
            let (upper, lower) = a.split_at_mut((k + 1) * n);
            let pivot_row = &upper[k * n..];
            for row in lower.chunks_exact_mut(n) {
                let factor = row[k] / diagonal;
                row[k] = factor;
                if factor != 0.0 {
                    for j in k + 1..n {
                        row[j] -= factor * pivot_row[j];
                    }
                }
            }
        }
        Some(Lu { n, lu: a, pivot })
    }

    /// Solves `A x = b` in place.
    pub(super) fn solve(&self, b: &mut [f64]) {
        let n = self.n;
        let permuted: Vec<f64> = self.pivot.iter().map(|&i| b[i]).collect();
        b.copy_from_slice(&permuted);
        for i in 0..n {
            let row = &self.lu[i * n..i * n + i];
            let dot: f64 = row.iter().zip(&b[..i]).map(|(l, x)| l * x).sum();
            b[i] -= dot;
        }
        for i in (0..n).rev() {
            let row = &self.lu[i * n..(i + 1) * n];
            let dot: f64 = row[i + 1..]
                .iter()
                .zip(&b[i + 1..])
                .map(|(u, x)| u * x)
                .sum();
            b[i] = (b[i] - dot) / row[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lu_solves_a_pivoting_system() {
        // The first pivot is 0: partial pivoting has to swap rows.
        let a = vec![0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
        let lu = Lu::factor(a, 3).unwrap();
        // x = (1, 2, 3): b = A x.
        let mut b = vec![7.0, 6.0, 13.0];
        lu.solve(&mut b);
        for (x, expected) in b.iter().zip([1.0, 2.0, 3.0]) {
            assert!((x - expected).abs() < 1e-12, "{b:?}");
        }
        assert!(Lu::factor(vec![1.0, 2.0, 2.0, 4.0], 2).is_none());
    }
}

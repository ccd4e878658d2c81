//! Logistic and ridge regression, on the host in f64.
//!
//! The loss is the (row-weighted) log loss of a binary target, or the squared loss of a
//! number, summed over the rows, plus `l2/2 · |w|²`. The intercept is not penalised, so
//! `l2 = 1` is scikit-learn's default `C = 1`.
//!
//! - **Ridge** solves the normal equations once.
//! - **Logistic** regression takes Newton steps, starting from the log-odds of the mean
//!   outcome. On many rows most of them run on evenly strided samples: first about
//!   5,000 rows, then about [`SAMPLE_ROWS`], each sample's Newton stopping at a tenth
//!   of its sampling error. The steps over every row then reuse the last sample's
//!   Hessian, scaled to the rows: each needs only the gradient, `2d` multiply-adds a row
//!   instead of `d²/2`, and the error shrinks by the Hessians' mismatch (a few percent
//!   at 50,000 rows) a step. A step that does not at least halve the change is followed
//!   by exact Newton steps over every row.
//!
//! Invariants: every sum runs in f64 over fixed chunks of [`CHUNK_ROWS`] rows, added in
//! chunk order, so the weights do not depend on the number of cores, and the iteration
//! converges to the tolerance instead of stalling at the noise floor of f32 sums. The
//! passes are memory-bound, so they run on the host whatever the session's device;
//! the caller moves the weights to the device.

use std::ops::Range;

use super::MlError;
use super::learners::{Control, Target, TrainingSet};

/// Rows of the larger sample Newton converges on before the steps over every row
/// (the first sample has a tenth of them).
const SAMPLE_ROWS: usize = 50_000;
/// Rows summed by one task.
const CHUNK_ROWS: usize = 8_192;
/// Newton steps in each phase at most.
const MAX_STEPS: usize = 50;
/// Relative change of every weight below which the iteration has converged.
const TOLERANCE: f64 = 1e-6;

/// The sums of one pass at weights `w`: the gradient of the summed loss, and its
/// Hessian (`k × k`, row-major, lower triangle filled) when asked for.
struct Sums {
    /// The loss, the penalty not included.
    loss: f64,
    gradient: Vec<f64>,
    hessian: Option<Vec<f64>>,
}

impl Sums {
    fn empty(k: usize, with_hessian: bool) -> Sums {
        Sums {
            loss: 0.0,
            gradient: vec![0.0; k],
            hessian: with_hessian.then(|| vec![0.0; k * k]),
        }
    }

    fn add(&mut self, other: &Sums) {
        self.loss += other.loss;
        for (a, b) in self.gradient.iter_mut().zip(&other.gradient) {
            *a += b;
        }
        if let (Some(a), Some(b)) = (&mut self.hessian, &other.hessian) {
            for (a, b) in a.iter_mut().zip(b) {
                *a += b;
            }
        }
    }
}

/// `map` over `0..count` in fixed chunks of `chunk` items on every core, the chunks'
/// results folded with `add` in chunk order, so the result does not depend on the number
/// of cores. Each core takes a run of consecutive chunks and keeps their results until
/// the fold, unless they would hold more than [`HELD_BYTES`] (`bytes` each): then the
/// cores take a wave of one chunk each at a time.
fn fold_chunks<T: Send>(
    count: usize,
    chunk: usize,
    bytes: usize,
    map: impl Fn(Range<usize>) -> T + Sync,
    add: impl Fn(&mut T, &T),
) -> Option<T> {
    let ranges: Vec<Range<usize>> = (0..count)
        .step_by(chunk.max(1))
        .map(|start| start..(start + chunk).min(count))
        .collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(ranges.len())
        .max(1);
    let per_task = if ranges.len().saturating_mul(bytes) <= HELD_BYTES {
        ranges.len().div_ceil(threads).max(1)
    } else {
        1
    };
    let mut total: Option<T> = None;
    let mut fold = |parts: Vec<T>| {
        for part in parts {
            match &mut total {
                None => total = Some(part),
                Some(t) => add(t, &part),
            }
        }
    };
    for wave in ranges.chunks(per_task * threads) {
        if threads == 1 {
            fold(wave.iter().cloned().map(&map).collect());
            continue;
        }
        let runs: Vec<Vec<T>> = std::thread::scope(|scope| {
            let handles: Vec<_> = wave
                .chunks(per_task)
                .map(|run| {
                    let map = &map;
                    scope.spawn(move || run.iter().cloned().map(map).collect::<Vec<T>>())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("summing threads do not panic"))
                .collect()
        });
        fold(runs.into_iter().flatten().collect());
    }
    total
}

/// The most memory [`fold_chunks`] keeps in chunk results before folding them.
const HELD_BYTES: usize = 64 << 20;

/// Rows gathered a block at a time for the Hessian `Σ c·x₁x₁ᵀ` (`x₁` is the row with a
/// 1 appended), column by column: each entry is then one dot product over the block,
/// which vectorises, where a rank-one update per row is dominated by loop overhead.
struct HessianBlock {
    k: usize,
    rows: usize,
    /// `columns[i * HESSIAN_BLOCK + b]`: input `i` of the block's row `b`.
    columns: Vec<f64>,
    /// The same, times the row's curvature.
    scaled: Vec<f64>,
}

const HESSIAN_BLOCK: usize = 64;

impl HessianBlock {
    fn new(k: usize) -> Self {
        HessianBlock {
            k,
            rows: 0,
            columns: vec![0.0; k * HESSIAN_BLOCK],
            scaled: vec![0.0; k * HESSIAN_BLOCK],
        }
    }

    fn push(&mut self, x: &[f32], curvature: f64, hessian: &mut [f64]) {
        let b = self.rows;
        for (i, &v) in x.iter().chain(std::iter::once(&1.0)).enumerate() {
            let v = f64::from(v);
            self.columns[i * HESSIAN_BLOCK + b] = v;
            self.scaled[i * HESSIAN_BLOCK + b] = curvature * v;
        }
        self.rows += 1;
        if self.rows == HESSIAN_BLOCK {
            self.flush(hessian);
        }
    }

    /// Adds the block's rows to the lower triangle of `hessian`.
    fn flush(&mut self, hessian: &mut [f64]) {
        let (k, n) = (self.k, self.rows);
        for i in 0..k {
            let scaled = &self.scaled[i * HESSIAN_BLOCK..][..n];
            for j in 0..=i {
                hessian[i * k + j] += dot(scaled, &self.columns[j * HESSIAN_BLOCK..][..n]);
            }
        }
        self.rows = 0;
    }
}

/// `x · w` in f64 (`x` in f32 or f64), over four running sums: one chain of dependent
/// additions would make the sum, not the memory, the bottleneck of a pass.
fn dot<T: Copy + Into<f64>>(x: &[T], w: &[f64]) -> f64 {
    let mut sums = [0.0f64; 4];
    let (xs, ws) = (x.chunks_exact(4), w.chunks_exact(4));
    let tail: f64 = xs
        .remainder()
        .iter()
        .zip(ws.remainder())
        .map(|(&a, b)| a.into() * b)
        .sum();
    for (x, w) in xs.zip(ws) {
        for j in 0..4 {
            sums[j] += x[j].into() * w[j];
        }
    }
    (sums[0] + sums[1]) + (sums[2] + sums[3]) + tail
}

/// The logistic function: a log-odds as a probability (shared with the trees).
pub(super) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// One pass over `rows` of `data` at weights `w` (`inputs + 1`, the intercept last).
fn sums(data: &TrainingSet, w: &[f64], target: Target, with_hessian: bool) -> Sums {
    let d = data.inputs;
    let k = d + 1;
    let (weights, intercept) = (&w[..d], w[d]);
    let pass = |range: Range<usize>| {
        let mut s = Sums::empty(k, with_hessian);
        let mut block = with_hessian.then(|| HessianBlock::new(k));
        for r in range {
            let x = &data.x[r * d..(r + 1) * d];
            let z = dot(x, weights) + intercept;
            let y = f64::from(data.y[r]);
            let (mut loss, mut residual, mut curvature) = match target {
                Target::Binary => {
                    let p = sigmoid(z);
                    // log(1 + e^z) - y·z without overflow.
                    let soft = z.max(0.0) + (-z.abs()).exp().ln_1p();
                    (soft - y * z, p - y, p * (1.0 - p))
                }
                Target::Continuous => ((z - y) * (z - y) / 2.0, z - y, 1.0),
            };
            if let Some(weights) = data.weights {
                let weight = f64::from(weights[r]);
                loss *= weight;
                residual *= weight;
                curvature *= weight;
            }
            s.loss += loss;
            for (g, &a) in s.gradient.iter_mut().zip(x) {
                *g += residual * f64::from(a);
            }
            s.gradient[d] += residual;
            if let (Some(block), Some(h)) = (&mut block, &mut s.hessian) {
                block.push(x, curvature, h);
            }
        }
        if let (Some(block), Some(h)) = (&mut block, &mut s.hessian) {
            block.flush(h);
        }
        s
    };
    let bytes = 8 * (k + if with_hessian { k * k } else { 0 });
    fold_chunks(data.y.len(), CHUNK_ROWS, bytes, pass, Sums::add)
        .unwrap_or_else(|| Sums::empty(k, false))
}

/// Solves `a · x = b` for a symmetric positive definite `a` (`k × k`, row-major, the
/// lower triangle read) by Cholesky; `None` when `a` is not positive definite.
fn cholesky_solve(a: &[f64], b: &[f64]) -> Option<Vec<f64>> {
    let k = b.len();
    let mut l = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..=i {
            let mut sum = a[i * k + j];
            for p in 0..j {
                sum -= l[i * k + p] * l[j * k + p];
            }
            if i == j {
                if sum <= 0.0 || !sum.is_finite() {
                    return None;
                }
                l[i * k + i] = sum.sqrt();
            } else {
                l[i * k + j] = sum / l[j * k + j];
            }
        }
    }
    let mut z = vec![0.0; k];
    for i in 0..k {
        let mut sum = b[i];
        for p in 0..i {
            sum -= l[i * k + p] * z[p];
        }
        z[i] = sum / l[i * k + i];
    }
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let mut sum = z[i];
        for p in i + 1..k {
            sum -= l[p * k + i] * x[p];
        }
        x[i] = sum / l[i * k + i];
    }
    Some(x)
}

/// The penalty on weight `i` of `k`: `l2`, and a tiny ridge on the intercept that keeps
/// the Hessian positive definite when a class is absent.
fn penalty(i: usize, k: usize, l2: f64) -> f64 {
    if i + 1 < k { l2 } else { 1e-9 }
}

fn degenerate() -> MlError {
    MlError::Input(
        "the features are degenerate (the normal equations are singular); raise l2 or drop \
         a feature"
            .into(),
    )
}

/// Newton over `rows` from `w` with the penalty `l2`, to the tolerance. With `fixed`
/// (a Hessian, the penalty not included), steps reuse it while they at least halve;
/// then, or without it, each step computes the Hessian at its weights. Returns the
/// weights and the last Hessian computed.
#[allow(clippy::too_many_arguments)]
fn newton(
    data: &TrainingSet,
    mut w: Vec<f64>,
    l2: f64,
    target: Target,
    mut fixed: Option<Vec<f64>>,
    tolerance: f64,
    control: &Control,
    stage: &str,
) -> Result<(Vec<f64>, Option<Vec<f64>>), MlError> {
    let k = w.len();
    let mut computed = None;
    let mut previous = f64::INFINITY;
    // The last weights whose step was taken: their penalised loss and step. A step that
    // raises the loss is retried at half the length (Newton far from the optimum of
    // nearly collinear inputs can otherwise overshoot back and forth forever).
    let mut accepted: Option<(Vec<f64>, f64, Vec<f64>)> = None;
    let mut length = 1.0;
    for step in 0..MAX_STEPS {
        control.check()?;
        let s = sums(data, &w, target, fixed.is_none());
        let loss = s.loss
            + (0..k)
                .map(|i| penalty(i, k, l2) * w[i] * w[i] / 2.0)
                .sum::<f64>();
        if let Some((start, start_loss, delta)) = &accepted
            && loss > *start_loss
        {
            length /= 2.0;
            if length < 1e-3 {
                w = start.clone();
                break;
            }
            w = start
                .iter()
                .zip(delta)
                .map(|(w, d)| w - length * d)
                .collect();
            (control.progress)(&format!(
                "{stage} step {}: the loss rose, retried at {length} of the step",
                step + 1
            ));
            continue;
        }
        length = 1.0;
        let exact = s.hessian.is_some();
        if exact {
            computed = s.hessian;
        }
        let mut hessian = match (&computed, &fixed) {
            (Some(h), _) if exact => h.clone(),
            (_, Some(h)) => h.clone(),
            _ => unreachable!("a step has a computed or a fixed Hessian"),
        };
        let mut gradient = s.gradient;
        for i in 0..k {
            gradient[i] += penalty(i, k, l2) * w[i];
            hessian[i * k + i] += penalty(i, k, l2);
        }
        let delta = cholesky_solve(&hessian, &gradient).ok_or_else(degenerate)?;
        accepted = Some((w.clone(), loss, delta.clone()));
        let mut largest = 0f64;
        for i in 0..k {
            w[i] -= delta[i];
            largest = largest.max(delta[i].abs() / (1.0 + w[i].abs()));
        }
        if w.iter().any(|v| !v.is_finite()) {
            return Err(MlError::Input(
                "training diverged (a weight is not finite); check the features for extreme \
                 values"
                    .into(),
            ));
        }
        let kind = if exact { "Newton" } else { "fixed Hessian" };
        (control.progress)(&format!(
            "{stage} step {} ({kind}): largest change {largest:.3e}",
            step + 1
        ));
        if largest < tolerance || target == Target::Continuous {
            break;
        }
        if !exact && previous.is_finite() && largest > previous / 2.0 {
            fixed = None;
        }
        previous = largest;
    }
    Ok((w, computed))
}

/// Fits logistic (binary target) or ridge (continuous) regression to `data`; returns the
/// `inputs` weights followed by the intercept.
pub fn fit_linear(
    data: &TrainingSet,
    target: Target,
    l2: f64,
    control: &Control,
) -> Result<Vec<f64>, MlError> {
    let n = data.y.len();
    // Start from the intercept alone at the log-odds of the mean outcome: Newton from
    // there takes fewer steps than from zero when the outcome is rare.
    let mut w = vec![0.0f64; data.inputs + 1];
    if target == Target::Binary {
        let (mut positive, mut total) = (0.0, 0.0);
        for (r, &y) in data.y.iter().enumerate() {
            let weight = data.weights.map_or(1.0, |w| f64::from(w[r]));
            positive += weight * f64::from(y);
            total += weight;
        }
        let mean = (positive / total).clamp(1e-6, 1.0 - 1e-6);
        if mean.is_finite() {
            w[data.inputs] = (mean / (1.0 - mean)).ln();
        }
    }
    if target == Target::Continuous {
        let (w, _) = newton(data, w, l2, target, None, TOLERANCE, control, "ridge")?;
        return Ok(w);
    }
    // Newton on ever larger samples, each to a tenth of its sampling error (about
    // 1/√rows) from where the last one stopped, then over every row.
    let mut fixed = None;
    for (size, stage) in [(SAMPLE_ROWS / 10, "small sample"), (SAMPLE_ROWS, "sample")] {
        if n <= 2 * size {
            continue;
        }
        // Copied out once: every step then reads the sample's rows in sequence instead
        // of a scattered cache line or two per row of the whole set.
        let rows: Vec<usize> = (0..n).step_by(n / size).collect();
        let d = data.inputs;
        let x: Vec<f32> = rows
            .iter()
            .flat_map(|&r| &data.x[r * d..(r + 1) * d])
            .copied()
            .collect();
        let y: Vec<f32> = rows.iter().map(|&r| data.y[r]).collect();
        let weights: Option<Vec<f32>> = data.weights.map(|w| rows.iter().map(|&r| w[r]).collect());
        let sample = TrainingSet {
            x: &x,
            inputs: d,
            y: &y,
            weights: weights.as_deref(),
        };
        // The penalty is on the summed loss: scaled to the sample's share of the rows.
        let share = rows.len() as f64 / n as f64;
        let tolerance = 0.1 / (rows.len() as f64).sqrt();
        let hessian;
        (w, hessian) = newton(
            &sample,
            w,
            l2 * share,
            target,
            None,
            tolerance,
            control,
            stage,
        )?;
        fixed = hessian.map(|h| h.into_iter().map(|v| v / share).collect());
    }
    let (w, _) = newton(data, w, l2, target, fixed, TOLERANCE, control, "all rows")?;
    Ok(w)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// `n` rows of 3 inputs with `P(y) = sigmoid(x · [1, -2, 0.5] + 0.3)`.
    fn logistic_rows(n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut state = 12345u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut x = Vec::with_capacity(3 * n);
        let mut y = Vec::with_capacity(n);
        for _ in 0..n {
            let row = [
                uniform() * 4.0 - 2.0,
                uniform() * 4.0 - 2.0,
                uniform() * 4.0 - 2.0,
            ];
            let z = row[0] - 2.0 * row[1] + 0.5 * row[2] + 0.3;
            x.extend(row.map(|v| v as f32));
            y.push(f32::from(u8::from(uniform() < sigmoid(z))));
        }
        (x, y)
    }

    fn fit(x: &[f32], y: &[f32], weights: Option<&[f32]>) -> Vec<f64> {
        let cancel = AtomicBool::new(false);
        let control = Control {
            cancel: &cancel,
            progress: &|_| {},
        };
        let data = TrainingSet {
            x,
            inputs: 3,
            y,
            weights,
        };
        fit_linear(&data, Target::Binary, 1.0, &control).unwrap()
    }

    /// The gradient of the penalised loss at `w`, over every row.
    fn gradient(x: &[f32], y: &[f32], w: &[f64]) -> Vec<f64> {
        let data = TrainingSet {
            x,
            inputs: 3,
            y,
            weights: None,
        };
        let mut g = sums(&data, w, Target::Binary, false).gradient;
        for i in 0..3 {
            g[i] += w[i];
        }
        g
    }

    #[test]
    fn a_step_that_raises_the_loss_is_retried_shorter() {
        // One input of ±1 with the outcome independent of it: the loss in its weight w
        // is 2·(log(1 + e^w) + log(1 + e^-w)), whose full Newton step from w is
        // w - sinh(w). From 3 that lands at -7.0, where the loss is higher, and from
        // there at 540: without the line search the weights diverge.
        let x = [1.0f32, 1.0, -1.0, -1.0];
        let y = [1.0f32, 0.0, 1.0, 0.0];
        let data = TrainingSet {
            x: &x,
            inputs: 1,
            y: &y,
            weights: None,
        };
        let cancel = AtomicBool::new(false);
        let log = std::sync::Mutex::new(Vec::new());
        let progress = |line: &str| log.lock().unwrap().push(line.to_string());
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        let (w, _) = newton(
            &data,
            vec![3.0, 0.0],
            1e-9,
            Target::Binary,
            None,
            1e-12,
            &control,
            "test",
        )
        .unwrap();
        assert!(w[0].abs() < 1e-9 && w[1].abs() < 1e-9, "{w:?}");
        let log = log.into_inner().unwrap();
        assert!(
            log.iter().any(|line| line.contains("retried at 0.5")),
            "{log:?}"
        );
    }

    #[test]
    fn the_sampled_start_reaches_the_optimum_over_every_row() {
        let n = 3 * SAMPLE_ROWS;
        let (x, y) = logistic_rows(n);
        let w = fit(&x, &y, None);
        for (got, want) in w.iter().zip([1.0, -2.0, 0.5, 0.3]) {
            assert!((got - want).abs() < 0.05, "{w:?}");
        }
        // The optimum of the loss over all rows, not the sample's: the gradient is
        // zero to rounding, relative to its size at the start.
        let start = gradient(&x, &y, &[0.0; 4]);
        let end = gradient(&x, &y, &w);
        let norm = |g: &[f64]| g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(norm(&end) < 1e-5 * norm(&start), "{end:?} vs {start:?}");
    }

    #[test]
    fn the_sums_do_not_depend_on_the_chunking() {
        let (x, y) = logistic_rows(2 * CHUNK_ROWS + 7);
        let data = TrainingSet {
            x: &x,
            inputs: 3,
            y: &y,
            weights: None,
        };
        let w = [0.1, -0.2, 0.3, 0.4];
        let chunked = sums(&data, &w, Target::Binary, true);
        // One pass over all rows in one chunk, by hand.
        let mut g = [0.0f64; 4];
        for r in 0..y.len() {
            let row: Vec<f64> = x[3 * r..3 * r + 3].iter().map(|&v| f64::from(v)).collect();
            let z = row.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + w[3];
            let residual = sigmoid(z) - f64::from(y[r]);
            for i in 0..3 {
                g[i] += residual * row[i];
            }
            g[3] += residual;
        }
        for (a, b) in chunked.gradient.iter().zip(&g) {
            assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "{a} vs {b}");
        }
        assert!(chunked.hessian.is_some());
    }

    #[test]
    fn a_row_weight_counts_as_repeated_rows() {
        let (x, y) = logistic_rows(2_000);
        let weights: Vec<f32> = (0..y.len())
            .map(|r| if r % 2 == 0 { 2.0 } else { 1.0 })
            .collect();
        let mut xs = x.clone();
        let mut ys = y.clone();
        for r in (0..y.len()).step_by(2) {
            xs.extend_from_slice(&x[3 * r..3 * r + 3]);
            ys.push(y[r]);
        }
        let weighted = fit(&x, &y, Some(&weights));
        let repeated = fit(&xs, &ys, None);
        for (a, b) in weighted.iter().zip(&repeated) {
            assert!((a - b).abs() < 1e-6, "{weighted:?} vs {repeated:?}");
        }
    }
}

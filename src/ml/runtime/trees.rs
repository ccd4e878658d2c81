//! Gradient-boosted decision trees: the base learner that finds thresholds and
//! interactions a linear model or a small perceptron smooths over (an effect that only
//! exists above some recency, or in one city).
//!
//! The method is LightGBM's, written for martdb's sizes (up to millions of rows, tens of
//! inputs):
//!
//! - **Bins.** Each input is cut into at most [`MAX_BINS`] bins at quantiles of its
//!   values (an input with few distinct values gets one bin per value). Training reads
//!   only the bin numbers, one byte per value.
//! - **Trees** grow leaf-wise: the leaf whose best split lowers the loss most is split
//!   next, until the tree has `leaves` leaves or no split gains. A split must leave at
//!   least `min_leaf` rows on each side. The gain of a split and a leaf's value are
//!   the second-order ones (Newton boosting, as LightGBM and XGBoost):
//!   `G_L²/(H_L + λ) + G_R²/(H_R + λ) − G²/(H + λ)` and `−G/(H + λ)` times the learning
//!   rate, with `G` and `H` the sums of the loss's first and second derivatives over a
//!   leaf's rows and `λ` the `l2` option.
//! - **Histograms**: a leaf's per-bin sums are built for the smaller child of a split
//!   only; the larger child's are its parent's minus the smaller's.
//! - **Loss**: log loss for a binary target (the first score is the log-odds of the
//!   mean), squared loss for a number (the first score is the mean). Row weights scale
//!   both derivatives.
//!
//! Invariants: training is deterministic (no sampling; ties keep the first input and
//! the lowest bin); a split sends a value `x` left when `x <= threshold`, where
//! `threshold` is the upper edge of the split's last left bin, so scoring raw values
//! follows exactly the path the binned training row took. Scoring runs on the host,
//! whatever the session's device: a tree walk is branches, not tensor arithmetic.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::MlError;
use super::learners::{Control, TREE_LEARNING_RATE, Target, TrainOptions, TrainingSet};
use super::linear::sigmoid;

/// Bins per input at most (a bin number fits a byte).
pub const MAX_BINS: usize = 256;
/// Rows sampled to place the bin edges.
const BIN_SAMPLE_ROWS: usize = 200_000;
/// A leaf's hessian sum must reach this (LightGBM's `min_sum_hessian_in_leaf`).
const MIN_LEAF_HESSIAN: f64 = 1e-3;
/// Marks a leaf in [`TreeEnsemble::feature`].
const LEAF: u32 = u32::MAX;
/// Leaves per tree at most.
pub const MAX_LEAVES: usize = 4096;
/// Trees at most: a bound on the model's size (about 20 bytes per node).
pub const MAX_TREES: usize = 100_000;
/// The histograms of one tree's leaves at most.
const MAX_HISTOGRAM_BYTES: usize = 2 << 30;
/// Rows × trees below which scoring runs on one thread.
const PARALLEL_WORK: usize = 200_000;
/// Rows per chunk of a histogram summed on its own (see [`Histogram::build`]).
const HISTOGRAM_CHUNK_ROWS: usize = 8_192;

/// Trees as flat node arrays: node `i` is a leaf when `feature[i] == LEAF` (its score
/// is `value[i]`), else it sends `x[feature[i]] <= threshold[i]` to `left[i]` and the
/// rest to `right[i]`. Tree `t` starts at node `roots[t]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsemble {
    bias: f32,
    roots: Vec<u32>,
    feature: Vec<u32>,
    threshold: Vec<f32>,
    left: Vec<u32>,
    right: Vec<u32>,
    value: Vec<f32>,
    inputs: usize,
}

impl TreeEnsemble {
    /// The raw score (log-odds or number) of one row of inputs.
    fn score(&self, x: &[f32]) -> f32 {
        let mut total = self.bias;
        for &root in &self.roots {
            let mut node = root as usize;
            while self.feature[node] != LEAF {
                let v = x[self.feature[node] as usize];
                node = if v <= self.threshold[node] || v.is_nan() {
                    self.left[node] as usize
                } else {
                    self.right[node] as usize
                };
            }
            total += self.value[node];
        }
        total
    }

    /// Raw scores of the rows of `x` (`n × inputs`, row-major), on every core.
    pub fn scores(&self, x: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0f32; n];
        let d = self.inputs.max(1);
        let threads = threads_for(n * self.roots.len());
        let chunk = n.div_ceil(threads).max(1);
        std::thread::scope(|scope| {
            for (i, part) in out.chunks_mut(chunk).enumerate() {
                let rows = &x[i * chunk * d..];
                scope.spawn(move || {
                    for (r, slot) in part.iter_mut().enumerate() {
                        *slot = self.score(&rows[r * d..(r + 1) * d]);
                    }
                });
            }
        });
        out
    }

    /// Number of inputs a row must have.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    pub fn trees(&self) -> usize {
        self.roots.len()
    }

    /// The ensemble as named tensors under `prefix`, for storing.
    pub fn tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>, MlError> {
        let cpu = Device::Cpu;
        fn named<T: candle_core::WithDType>(
            prefix: &str,
            name: &str,
            v: &[T],
            cpu: &Device,
        ) -> Result<(String, Tensor), MlError> {
            Ok((
                format!("{prefix}.trees.{name}"),
                Tensor::from_slice(v, v.len(), cpu)?,
            ))
        }
        let u32s = |name: &str, v: &[u32]| named(prefix, name, v, &cpu);
        let f32s = |name: &str, v: &[f32]| named(prefix, name, v, &cpu);
        Ok(vec![
            f32s("bias", &[self.bias])?,
            u32s("inputs", &[self.inputs as u32])?,
            u32s("roots", &self.roots)?,
            u32s("feature", &self.feature)?,
            f32s("threshold", &self.threshold)?,
            u32s("left", &self.left)?,
            u32s("right", &self.right)?,
            f32s("value", &self.value)?,
        ])
    }

    /// The ensemble stored by [`TreeEnsemble::tensors`] under `prefix`, if there is
    /// one; an error when it is there but damaged (a node pointing outside the arrays
    /// or back up the tree would make scoring loop or panic).
    pub fn from_tensors(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
    ) -> Result<Option<Self>, MlError> {
        let Some(feature) = tensors.get(&format!("{prefix}.trees.feature")) else {
            return Ok(None);
        };
        let damaged = |what: &str| MlError::Store(format!("stored trees '{prefix}': {what}"));
        let read_u32 = |t: &Tensor| -> Result<Vec<u32>, MlError> {
            Ok(t.to_dtype(DType::U32)?.flatten_all()?.to_vec1::<u32>()?)
        };
        let read_f32 = |t: &Tensor| -> Result<Vec<f32>, MlError> {
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let get = |name: &str| {
            tensors
                .get(&format!("{prefix}.trees.{name}"))
                .ok_or_else(|| damaged(&format!("'{name}' is missing")))
        };
        let ensemble = TreeEnsemble {
            bias: *read_f32(get("bias")?)?
                .first()
                .ok_or_else(|| damaged("no bias"))?,
            inputs: *read_u32(get("inputs")?)?
                .first()
                .ok_or_else(|| damaged("no input count"))? as usize,
            roots: read_u32(get("roots")?)?,
            feature: read_u32(feature)?,
            threshold: read_f32(get("threshold")?)?,
            left: read_u32(get("left")?)?,
            right: read_u32(get("right")?)?,
            value: read_f32(get("value")?)?,
        };
        let nodes = ensemble.feature.len();
        if [
            ensemble.threshold.len(),
            ensemble.left.len(),
            ensemble.right.len(),
            ensemble.value.len(),
        ]
        .iter()
        .any(|&len| len != nodes)
        {
            return Err(damaged("node arrays of different lengths"));
        }
        for (i, &f) in ensemble.feature.iter().enumerate() {
            // Children come after their parent, so every walk ends.
            let child_ok = |c: u32| (c as usize) > i && (c as usize) < nodes;
            if f != LEAF
                && ((f as usize) >= ensemble.inputs
                    || !child_ok(ensemble.left[i])
                    || !child_ok(ensemble.right[i]))
            {
                return Err(damaged("a node points outside the trees"));
            }
        }
        if ensemble.roots.iter().any(|&r| r as usize >= nodes) {
            return Err(damaged("a tree starts outside the nodes"));
        }
        Ok(Some(ensemble))
    }
}

fn threads_for(work: usize) -> usize {
    if work < PARALLEL_WORK {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// The inputs as bin numbers, row by row, and each input's bin upper edges.
struct Binned {
    inputs: usize,
    /// `bins[r * inputs + f]`: the bin of row `r`'s input `f`. Row-major, because
    /// a leaf's rows are scattered: one row's bins share a cache line.
    bins: Vec<u8>,
    /// `edges[f][b]`: values `<= edges[f][b]` are in bins `0..=b`; the last bin has no
    /// edge (it holds everything above the last one).
    edges: Vec<Vec<f32>>,
}

impl Binned {
    fn new(x: &[f32], rows: usize, inputs: usize) -> Binned {
        let stride = rows.div_ceil(BIN_SAMPLE_ROWS).max(1);
        let edges: Vec<Vec<f32>> = (0..inputs)
            .map(|f| {
                let mut sample: Vec<f32> = (0..rows)
                    .step_by(stride)
                    .map(|r| x[r * inputs + f])
                    .filter(|v| !v.is_nan())
                    .collect();
                sample.sort_by(f32::total_cmp);
                sample.dedup();
                if sample.len() <= MAX_BINS {
                    // One bin per distinct value: the last needs no edge.
                    sample.pop();
                    sample
                } else {
                    let mut cuts: Vec<f32> = (1..MAX_BINS)
                        .map(|b| sample[b * sample.len() / MAX_BINS - 1])
                        .collect();
                    cuts.dedup();
                    cuts
                }
            })
            .collect();
        let bins = x
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                // NaN goes to bin 0, as scoring sends it left.
                if v.is_nan() {
                    0
                } else {
                    edges[i % inputs].partition_point(|&edge| edge < v) as u8
                }
            })
            .collect();
        Binned {
            inputs,
            bins,
            edges,
        }
    }

    fn bin(&self, row: usize, input: usize) -> usize {
        self.bins[row * self.inputs + input] as usize
    }
}

/// One bin's sums.
#[derive(Clone, Copy, Default)]
struct BinSums {
    grad: f64,
    hess: f64,
    count: u32,
}

/// Sums of gradient, hessian and rows per bin, for every input: `[f * MAX_BINS + b]`.
#[derive(Clone)]
struct Histogram(Vec<BinSums>);

impl Histogram {
    fn empty(inputs: usize) -> Histogram {
        Histogram(vec![BinSums::default(); inputs * MAX_BINS])
    }

    fn add_rows(&mut self, binned: &Binned, rows: &[u32], grad: &[f64], hess: &[f64]) {
        let d = binned.inputs;
        for &r in rows {
            let r = r as usize;
            let (g, h) = (grad[r], hess[r]);
            for (f, &b) in binned.bins[r * d..(r + 1) * d].iter().enumerate() {
                let sums = &mut self.0[f * MAX_BINS + b as usize];
                sums.grad += g;
                sums.hess += h;
                sums.count += 1;
            }
        }
    }

    /// The sums over `rows`. Many rows are summed in fixed chunks, a wave of one chunk
    /// per core at a time, and the chunks' sums added in order: the result does not
    /// depend on the number of cores or on timing, so a model is the same on any
    /// machine, and at most one histogram per core is alive besides the total.
    fn build(binned: &Binned, rows: &[u32], grad: &[f64], hess: &[f64]) -> Histogram {
        let mut total = Histogram::empty(binned.inputs);
        let chunks: Vec<&[u32]> = rows.chunks(HISTOGRAM_CHUNK_ROWS).collect();
        if chunks.len() <= 1 {
            total.add_rows(binned, rows, grad, hess);
            return total;
        }
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(chunks.len());
        for wave in chunks.chunks(threads) {
            let parts: Vec<Histogram> = std::thread::scope(|scope| {
                let handles: Vec<_> = wave
                    .iter()
                    .map(|&part| {
                        scope.spawn(move || {
                            let mut h = Histogram::empty(binned.inputs);
                            h.add_rows(binned, part, grad, hess);
                            h
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("histogram threads do not panic"))
                    .collect()
            });
            for part in &parts {
                for (a, b) in total.0.iter_mut().zip(&part.0) {
                    a.grad += b.grad;
                    a.hess += b.hess;
                    a.count += b.count;
                }
            }
        }
        total
    }

    /// `self − smaller`: the other child's histogram.
    fn minus(mut self, smaller: &Histogram) -> Histogram {
        for (a, b) in self.0.iter_mut().zip(&smaller.0) {
            a.grad -= b.grad;
            a.hess -= b.hess;
            a.count -= b.count;
        }
        self
    }
}

#[derive(Debug, Clone, Copy)]
struct Split {
    gain: f64,
    feature: usize,
    /// The last bin that goes left.
    bin: usize,
    /// The left side's gradient and hessian sums (read off the histogram).
    left_grad: f64,
    left_hess: f64,
}

/// A leaf being grown: its rows are `order[start..end]`.
struct Growing {
    start: usize,
    end: usize,
    grad: f64,
    hess: f64,
    histogram: Histogram,
    split: Option<Split>,
    /// Its node in the tree being built.
    node: usize,
}

struct Settings {
    leaves: usize,
    min_leaf: usize,
    l2: f64,
    learning_rate: f64,
}

fn best_split(binned: &Binned, h: &Histogram, grad: f64, hess: f64, s: &Settings) -> Option<Split> {
    let parent = grad * grad / (hess + s.l2);
    let total_count: u32 = h.0[..MAX_BINS].iter().map(|b| b.count).sum();
    let mut best: Option<Split> = None;
    for (f, edges) in binned.edges.iter().enumerate() {
        let base = f * MAX_BINS;
        let (mut gl, mut hl, mut cl) = (0.0, 0.0, 0u32);
        // The last bin cannot end a left side: nothing would go right.
        for b in 0..edges.len() {
            let sums = h.0[base + b];
            gl += sums.grad;
            hl += sums.hess;
            cl += sums.count;
            let cr = total_count - cl;
            if (cl as usize) < s.min_leaf {
                continue;
            }
            if (cr as usize) < s.min_leaf {
                break;
            }
            let (gr, hr) = (grad - gl, hess - hl);
            if hl < MIN_LEAF_HESSIAN || hr < MIN_LEAF_HESSIAN {
                continue;
            }
            let gain = gl * gl / (hl + s.l2) + gr * gr / (hr + s.l2) - parent;
            if gain > 1e-12 && best.is_none_or(|b| gain > b.gain) {
                best = Some(Split {
                    gain,
                    feature: f,
                    bin: b,
                    left_grad: gl,
                    left_hess: hl,
                });
            }
        }
    }
    best
}

/// Node arrays of the tree being grown (appended to the ensemble when done).
#[derive(Default)]
struct NodeArrays {
    feature: Vec<u32>,
    threshold: Vec<f32>,
    left: Vec<u32>,
    right: Vec<u32>,
    value: Vec<f32>,
}

impl NodeArrays {
    fn push_leaf(&mut self) -> usize {
        self.feature.push(LEAF);
        self.threshold.push(0.0);
        self.left.push(0);
        self.right.push(0);
        self.value.push(0.0);
        self.feature.len() - 1
    }
}

/// Grows one tree on the current derivatives; adds its scores to `raw`. `order` holds
/// every row in increasing order on entry.
#[allow(clippy::too_many_arguments)]
fn grow_tree(
    binned: &Binned,
    grad: &[f64],
    hess: &[f64],
    order: &mut [u32],
    scratch: &mut Vec<u32>,
    raw: &mut [f64],
    s: &Settings,
    ensemble: &mut TreeEnsemble,
) {
    let offset = ensemble.feature.len();
    let mut nodes = NodeArrays::default();
    let (g, h) = order.iter().fold((0.0, 0.0), |(g, h), &r| {
        (g + grad[r as usize], h + hess[r as usize])
    });
    let histogram = Histogram::build(binned, order, grad, hess);
    let split = best_split(binned, &histogram, g, h, s);
    let mut leaves = vec![Growing {
        start: 0,
        end: order.len(),
        grad: g,
        hess: h,
        histogram,
        split,
        node: nodes.push_leaf(),
    }];
    while leaves.len() < s.leaves {
        let Some((pick, _)) = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.split.map(|sp| (i, sp.gain)))
            .fold(None, |best: Option<(usize, f64)>, (i, gain)| match best {
                Some((_, b)) if b >= gain => best,
                _ => Some((i, gain)),
            })
        else {
            break;
        };
        let leaf = leaves.swap_remove(pick);
        let Some(split) = leaf.split else { break };
        // A stable partition: each leaf's rows stay in increasing order, so building
        // its histogram reads the row-major bins and the derivatives forwards.
        let rows = &mut order[leaf.start..leaf.end];
        let mut cut = 0;
        scratch.clear();
        for i in 0..rows.len() {
            let r = rows[i];
            if binned.bin(r as usize, split.feature) <= split.bin {
                rows[cut] = r;
                cut += 1;
            } else {
                scratch.push(r);
            }
        }
        rows[cut..].copy_from_slice(scratch);
        let middle = leaf.start + cut;
        let (left_rows, right_rows) = (&order[leaf.start..middle], &order[middle..leaf.end]);
        let (lg, lh) = (split.left_grad, split.left_hess);
        let (rg, rh) = (leaf.grad - lg, leaf.hess - lh);
        let (left_hist, right_hist) = if left_rows.len() <= right_rows.len() {
            let small = Histogram::build(binned, left_rows, grad, hess);
            let large = leaf.histogram.minus(&small);
            (small, large)
        } else {
            let small = Histogram::build(binned, right_rows, grad, hess);
            let large = leaf.histogram.minus(&small);
            (large, small)
        };
        let (left_node, right_node) = (nodes.push_leaf(), nodes.push_leaf());
        nodes.feature[leaf.node] = split.feature as u32;
        nodes.threshold[leaf.node] = binned.edges[split.feature][split.bin];
        nodes.left[leaf.node] = (offset + left_node) as u32;
        nodes.right[leaf.node] = (offset + right_node) as u32;
        let left_split = best_split(binned, &left_hist, lg, lh, s);
        let right_split = best_split(binned, &right_hist, rg, rh, s);
        // A leaf that cannot split needs no histogram.
        let keep = |h: Histogram, split: &Option<Split>| {
            if split.is_some() {
                h
            } else {
                Histogram(Vec::new())
            }
        };
        let (left_hist, right_hist) =
            (keep(left_hist, &left_split), keep(right_hist, &right_split));
        leaves.push(Growing {
            start: leaf.start,
            end: middle,
            grad: lg,
            hess: lh,
            histogram: left_hist,
            split: left_split,
            node: left_node,
        });
        leaves.push(Growing {
            start: middle,
            end: leaf.end,
            grad: rg,
            hess: rh,
            histogram: right_hist,
            split: right_split,
            node: right_node,
        });
    }
    for leaf in &leaves {
        let value = -leaf.grad / (leaf.hess + s.l2) * s.learning_rate;
        nodes.value[leaf.node] = value as f32;
        for &r in &order[leaf.start..leaf.end] {
            // The f32 the stored tree will add at scoring, so the two agree.
            raw[r as usize] += f64::from(value as f32);
        }
    }
    ensemble.roots.push(offset as u32);
    ensemble.feature.extend(nodes.feature);
    ensemble.threshold.extend(nodes.threshold);
    ensemble.left.extend(nodes.left);
    ensemble.right.extend(nodes.right);
    ensemble.value.extend(nodes.value);
}

/// Boosts `options.trees` trees on `data` (checked by [`super::learners::fit`]).
pub fn fit_trees(
    data: &TrainingSet,
    target: Target,
    options: &TrainOptions,
    control: &Control,
) -> Result<TreeEnsemble, MlError> {
    let TrainingSet {
        x,
        inputs,
        y,
        weights,
    } = *data;
    let rows = y.len();
    if !(2..=MAX_LEAVES).contains(&options.leaves) {
        return Err(MlError::Input(format!(
            "leaves must be between 2 and {MAX_LEAVES}, found {}",
            options.leaves
        )));
    }
    if options.trees > MAX_TREES {
        return Err(MlError::Input(format!(
            "trees must be at most {MAX_TREES}, found {}",
            options.trees
        )));
    }
    // Every leaf that may still split keeps a histogram of all inputs.
    let histogram_bytes = options.leaves * inputs * MAX_BINS * std::mem::size_of::<BinSums>();
    if histogram_bytes > MAX_HISTOGRAM_BYTES {
        return Err(MlError::Input(format!(
            "{} leaves over {inputs} inputs would hold {} MiB of histograms (at most {} \
             MiB): lower leaves or use fewer features",
            options.leaves,
            histogram_bytes >> 20,
            MAX_HISTOGRAM_BYTES >> 20
        )));
    }
    let learning_rate = options.learning_rate.unwrap_or(TREE_LEARNING_RATE);
    if !(learning_rate > 0.0 && learning_rate <= 1.0) {
        return Err(MlError::Input(format!(
            "the trees' learning_rate must be in (0, 1], found {learning_rate}"
        )));
    }
    let settings = Settings {
        leaves: options.leaves,
        min_leaf: options.min_leaf.max(1),
        l2: options.l2,
        learning_rate,
    };
    let weight = |r: usize| weights.map_or(1.0, |w| f64::from(w[r]));
    let total_weight: f64 = (0..rows).map(weight).sum();
    let mean = (0..rows).map(|r| weight(r) * f64::from(y[r])).sum::<f64>() / total_weight;
    let bias = match target {
        Target::Binary => {
            let p = mean.clamp(1e-6, 1.0 - 1e-6);
            (p / (1.0 - p)).ln()
        }
        Target::Continuous => mean,
    };
    let binned = Binned::new(x, rows, inputs);
    let mut ensemble = TreeEnsemble {
        bias: bias as f32,
        roots: Vec::new(),
        feature: Vec::new(),
        threshold: Vec::new(),
        left: Vec::new(),
        right: Vec::new(),
        value: Vec::new(),
        inputs,
    };
    let mut raw = vec![f64::from(bias as f32); rows];
    let mut grad = vec![0.0; rows];
    let mut hess = vec![0.0; rows];
    let mut order: Vec<u32> = Vec::with_capacity(rows);
    let mut scratch: Vec<u32> = Vec::with_capacity(rows);
    for tree in 0..options.trees {
        control.check()?;
        order.clear();
        order.extend(0..rows as u32);
        for r in 0..rows {
            let w = weight(r);
            let yr = f64::from(y[r]);
            (grad[r], hess[r]) = match target {
                Target::Binary => {
                    let p = sigmoid(raw[r]);
                    (w * (p - yr), w * (p * (1.0 - p)).max(1e-16))
                }
                Target::Continuous => (w * (raw[r] - yr), w),
            };
        }
        grow_tree(
            &binned,
            &grad,
            &hess,
            &mut order,
            &mut scratch,
            &mut raw,
            &settings,
            &mut ensemble,
        );
        if (tree + 1) % 50 == 0 || tree + 1 == options.trees {
            let loss = (0..rows)
                .map(|r| {
                    let w = weight(r);
                    let yr = f64::from(y[r]);
                    match target {
                        Target::Binary => {
                            let p = sigmoid(raw[r]).clamp(1e-15, 1.0 - 1e-15);
                            -w * (yr * p.ln() + (1.0 - yr) * (1.0 - p).ln())
                        }
                        Target::Continuous => w * (raw[r] - yr) * (raw[r] - yr),
                    }
                })
                .sum::<f64>()
                / total_weight;
            (control.progress)(&format!("tree {}: training loss {loss:.6}", tree + 1));
        }
    }
    Ok(ensemble)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn set<'a>(
        x: &'a [f32],
        inputs: usize,
        y: &'a [f32],
        weights: Option<&'a [f32]>,
    ) -> TrainingSet<'a> {
        TrainingSet {
            x,
            inputs,
            y,
            weights,
        }
    }

    fn options(trees: usize) -> TrainOptions {
        TrainOptions {
            trees,
            ..TrainOptions::default()
        }
    }

    fn quiet<T>(f: impl FnOnce(&Control) -> T) -> T {
        let cancel = AtomicBool::new(false);
        let progress = |_: &str| {};
        f(&Control {
            cancel: &cancel,
            progress: &progress,
        })
    }

    /// Two inputs; the target is 1 exactly when `a > 0.3` and `b <= 0.5`: a step a
    /// line cannot draw.
    fn steps(n: usize) -> (Vec<f32>, Vec<f32>) {
        let mut x = Vec::with_capacity(2 * n);
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            let a = ((i * 7919) % 1000) as f32 / 1000.0;
            let b = ((i * 104_729) % 997) as f32 / 997.0;
            x.extend([a, b]);
            y.push(if a > 0.3 && b <= 0.5 { 1.0 } else { 0.0 });
        }
        (x, y)
    }

    #[test]
    fn learns_a_step_that_a_line_cannot() {
        let (x, y) = steps(4000);
        let model =
            quiet(|c| fit_trees(&set(&x, 2, &y, None), Target::Binary, &options(100), c)).unwrap();
        let scores = model.scores(&x, 4000);
        let wrong = scores
            .iter()
            .zip(&y)
            .filter(|(s, y)| (sigmoid(f64::from(**s)) > 0.5) != (**y > 0.5))
            .count();
        assert!(wrong < 40, "{wrong} of 4000 misclassified");
        // Thresholds sit at the true cuts, to within a bin.
        let splits: Vec<(u32, f32)> = model
            .feature
            .iter()
            .zip(&model.threshold)
            .filter(|(f, _)| **f != LEAF)
            .map(|(f, t)| (*f, *t))
            .collect();
        assert!(
            splits
                .iter()
                .any(|&(f, t)| f == 0 && (t - 0.3).abs() < 0.01)
        );
        assert!(
            splits
                .iter()
                .any(|&(f, t)| f == 1 && (t - 0.5).abs() < 0.01)
        );
    }

    #[test]
    fn scoring_raw_values_follows_the_training_paths() {
        // The scores the trees add during training (on bins) equal those of scoring
        // the raw values with the stored thresholds.
        let (x, y) = steps(3000);
        let model =
            quiet(|c| fit_trees(&set(&x, 2, &y, None), Target::Binary, &options(20), c)).unwrap();
        let mut raw = vec![f64::from(model.bias); 3000];
        let binned = Binned::new(&x, 3000, 2);
        for &root in &model.roots {
            for (r, slot) in raw.iter_mut().enumerate() {
                let mut node = root as usize;
                while model.feature[node] != LEAF {
                    let f = model.feature[node] as usize;
                    let edge = binned.edges[f]
                        .iter()
                        .position(|&e| e == model.threshold[node])
                        .unwrap();
                    node = if binned.bin(r, f) <= edge {
                        model.left[node] as usize
                    } else {
                        model.right[node] as usize
                    };
                }
                *slot += f64::from(model.value[node]);
            }
        }
        let scored = model.scores(&x, 3000);
        for (a, b) in raw.iter().zip(&scored) {
            assert!((a - f64::from(*b)).abs() < 1e-4, "{a} vs {b}");
        }
    }

    #[test]
    fn regression_fits_a_continuous_target_and_weights_count() {
        let n = 2000;
        let x: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
        let y: Vec<f32> = x
            .iter()
            .map(|v| if *v < 0.5 { -1.0 } else { 2.0 })
            .collect();
        let model =
            quiet(|c| fit_trees(&set(&x, 1, &y, None), Target::Continuous, &options(100), c))
                .unwrap();
        let s = model.scores(&[0.1, 0.9], 2);
        assert!(
            (s[0] + 1.0).abs() < 0.05 && (s[1] - 2.0).abs() < 0.05,
            "{s:?}"
        );
        // One constant input, so the trees cannot split: the score is the weighted mean.
        let flat = vec![0.0f32; 4];
        let y = [0.0f32, 0.0, 0.0, 1.0];
        let w = [1.0f32, 1.0, 1.0, 3.0];
        let model = quiet(|c| {
            fit_trees(
                &set(&flat, 1, &y, Some(&w)),
                Target::Continuous,
                &options(5),
                c,
            )
        })
        .unwrap();
        assert!((model.scores(&[0.0], 1)[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn deterministic_and_round_trips_through_tensors() {
        let (x, y) = steps(2000);
        let fit = || {
            quiet(|c| fit_trees(&set(&x, 2, &y, None), Target::Binary, &options(30), c)).unwrap()
        };
        let model = fit();
        assert_eq!(model, fit());
        let stored: HashMap<String, Tensor> = model.tensors("mu").unwrap().into_iter().collect();
        let back = TreeEnsemble::from_tensors(&stored, "mu").unwrap().unwrap();
        assert_eq!(back, model);
        assert!(
            TreeEnsemble::from_tensors(&stored, "other")
                .unwrap()
                .is_none()
        );
        // A child pointing back up the tree is refused, not followed forever.
        let mut bad = stored.clone();
        let mut left = model.left.clone();
        let internal = model.feature.iter().position(|&f| f != LEAF).unwrap();
        left[internal] = internal as u32;
        bad.insert(
            "mu.trees.left".into(),
            Tensor::from_slice(&left, left.len(), &Device::Cpu).unwrap(),
        );
        assert!(matches!(
            TreeEnsemble::from_tensors(&bad, "mu"),
            Err(MlError::Store(_))
        ));
    }

    #[test]
    fn chunked_histograms_equal_one_pass() {
        // 20,000 rows are three chunks, summed a wave at a time.
        let (x, _) = steps(20_000);
        let binned = Binned::new(&x, 20_000, 2);
        let grad: Vec<f64> = (0..20_000).map(|i| ((i * 31) % 17) as f64 - 8.0).collect();
        let hess: Vec<f64> = (0..20_000).map(|i| 0.1 + (i % 5) as f64).collect();
        let rows: Vec<u32> = (0..20_000).filter(|r| r % 3 != 0).collect();
        let chunked = Histogram::build(&binned, &rows, &grad, &hess);
        let mut one = Histogram::empty(2);
        one.add_rows(&binned, &rows, &grad, &hess);
        for (a, b) in chunked.0.iter().zip(&one.0) {
            assert_eq!(a.count, b.count);
            assert!((a.grad - b.grad).abs() < 1e-9 && (a.hess - b.hess).abs() < 1e-9);
        }
        assert_eq!(
            chunked.0.iter().map(|b| b.count as usize).sum::<usize>(),
            2 * rows.len()
        );
    }

    #[test]
    fn a_cancelled_run_stops_and_bad_options_are_errors() {
        let (x, y) = steps(500);
        let cancel = AtomicBool::new(true);
        let progress = |_: &str| {};
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        assert!(matches!(
            fit_trees(
                &set(&x, 2, &y, None),
                Target::Binary,
                &options(10),
                &control
            ),
            Err(MlError::Cancelled)
        ));
        let bad = TrainOptions {
            leaves: 1,
            ..options(10)
        };
        assert!(quiet(|c| fit_trees(&set(&x, 2, &y, None), Target::Binary, &bad, c)).is_err());
        // Histograms for 4096 leaves over 100 inputs would take 2.3 GiB.
        let wide = vec![0.5f32; 10 * 100];
        let many = TrainOptions {
            leaves: 4096,
            ..options(10)
        };
        let err = quiet(|c| fit_trees(&set(&wide, 100, &y[..10], None), Target::Binary, &many, c))
            .unwrap_err();
        assert!(err.to_string().contains("MiB of histograms"), "{err}");
    }
}

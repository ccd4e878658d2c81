//! The base learners: logistic and linear regression, and a one-hidden-layer perceptron.
//!
//! - Logistic regression minimises the log loss plus `l2/2 · |w|²` (the intercept is not
//!   penalised; `l2 = 1` is scikit-learn's default `C = 1`) by Newton's method: each step
//!   is two matrix products over the rows and a Cholesky solve of the small Hessian, and
//!   a few steps reach the optimum to float precision. Linear regression (ridge) is the
//!   same normal equations solved once.
//! - The perceptron (`hidden` ReLU units) minimises the mean loss with AdamW over
//!   mini-batches of shuffled rows; its initial weights and every shuffle come from the
//!   seed, so a seed gives one model.
//!
//! - Gradient-boosted trees ([`super::trees`]): LightGBM's histogram method, on the
//!   host.
//!
//! Row weights (optional) scale each row's loss. Matrix products run on the tensors'
//! device; the Newton solve is `(d+1)²` numbers and runs on the host in f64.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::MlError;
use super::trees::{TrainingSet, TreeEnsemble, fit_trees};

/// The model family of a base learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// Logistic regression for a binary target, linear (ridge) for a continuous one.
    Linear,
    /// A perceptron with one hidden layer of ReLU units.
    Mlp,
    /// Gradient-boosted decision trees.
    Gbdt,
}

impl Base {
    /// Reads a base learner's SQL name.
    pub fn parse(text: &str) -> Result<Self, MlError> {
        match text.to_ascii_lowercase().as_str() {
            "linear" | "logistic" => Ok(Base::Linear),
            "mlp" => Ok(Base::Mlp),
            "gbdt" | "trees" => Ok(Base::Gbdt),
            other => Err(MlError::Input(format!(
                "unknown base '{other}': expected logistic, mlp or gbdt"
            ))),
        }
    }

    /// The name shown in `martdb.models.algorithm`.
    pub fn name(self) -> &'static str {
        match self {
            Base::Linear => "logistic",
            Base::Mlp => "mlp",
            Base::Gbdt => "gbdt",
        }
    }
}

/// What a learner predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A probability (log loss; the output goes through a sigmoid).
    Binary,
    /// A number (squared loss).
    Continuous,
}

/// Hyperparameters of the base learners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// L2 penalty: `l2/2 · |w|²` on the summed loss (linear), or AdamW's weight decay
    /// divided by 100 (perceptron).
    pub l2: f64,
    /// Hidden units of the perceptron.
    pub hidden: usize,
    /// Passes over the rows (perceptron); 0 picks enough for about 3 000 steps, at
    /// least 3 and at most 20.
    pub epochs: usize,
    pub batch_size: usize,
    /// The perceptron's AdamW step, or the trees' shrinkage; `None` picks
    /// [`MLP_LEARNING_RATE`] or [`TREE_LEARNING_RATE`].
    pub learning_rate: Option<f64>,
    pub seed: u64,
    /// Boosting rounds (trees).
    pub trees: usize,
    /// Leaves per tree at most (trees).
    pub leaves: usize,
    /// Rows per leaf at least (trees).
    pub min_leaf: usize,
}

pub const MLP_LEARNING_RATE: f64 = 0.01;
pub const TREE_LEARNING_RATE: f64 = 0.05;

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            l2: 1.0,
            hidden: 32,
            epochs: 0,
            batch_size: 1024,
            learning_rate: None,
            seed: 42,
            trees: 200,
            leaves: 31,
            min_leaf: 20,
        }
    }
}

/// Cancellation and progress of one training run.
pub struct Control<'a> {
    /// Set from elsewhere to stop training at the next step ([`MlError::Cancelled`]).
    pub cancel: &'a AtomicBool,
    /// Called with a line of progress (an epoch's loss, a Newton step).
    pub progress: &'a (dyn Fn(&str) + Sync),
}

impl Control<'_> {
    pub(super) fn check(&self) -> Result<(), MlError> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(MlError::Cancelled);
        }
        Ok(())
    }
}

/// A trained base learner: dense layers `x · w + b` with ReLU between them, or trees.
#[derive(Debug, Clone)]
pub struct Net {
    pub target: Target,
    body: Body,
}

#[derive(Debug, Clone)]
enum Body {
    /// `(w: inputs × outputs, b: 1 × outputs)` per layer.
    Dense(Vec<(Tensor, Tensor)>),
    Trees(TreeEnsemble),
}

const NEWTON_STEPS: usize = 30;
/// Relative change of the weights below which Newton's method has converged.
const NEWTON_TOLERANCE: f64 = 1e-6;
/// Mini-batch steps the perceptron aims for when `epochs` is 0 ...
const TARGET_STEPS: usize = 3000;
/// ... in at most this many passes: more passes over a small campaign learn its noise
/// (on the demo campaign, held-out Qini falls from 0.12 at 20 passes to 0.08 at 200).
const MAX_AUTO_EPOCHS: usize = 20;

impl Net {
    fn dense(target: Target, layers: Vec<(Tensor, Tensor)>) -> Net {
        Net {
            target,
            body: Body::Dense(layers),
        }
    }

    /// The raw output (before the sigmoid of a binary target).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let layers = match &self.body {
            Body::Dense(layers) => layers,
            Body::Trees(trees) => {
                let (n, d) = x.dims2()?;
                if d != trees.inputs() {
                    candle_core::bail!("the trees take {} inputs, found {d}", trees.inputs());
                }
                let host = x.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?;
                return Tensor::from_vec(trees.scores(&host, n), (n, 1), x.device());
            }
        };
        let mut h = x.clone();
        for (i, (w, b)) in layers.iter().enumerate() {
            if i > 0 {
                h = h.relu()?;
            }
            h = h.matmul(w)?.broadcast_add(b)?;
        }
        Ok(h)
    }

    /// Predictions for the rows of `x` (`n × inputs`, on the net's device): a
    /// probability for a binary target, else a number.
    pub fn predict(&self, x: &Tensor) -> Result<Vec<f32>, MlError> {
        let out = self.forward(x)?;
        let out = match self.target {
            Target::Binary => candle_nn::ops::sigmoid(&out)?,
            Target::Continuous => out,
        };
        Ok(out.flatten_all()?.to_vec1::<f32>()?)
    }

    /// The weights as named tensors (`<prefix>.<layer>.w` / `.b`, or
    /// `<prefix>.trees.*`), for storing.
    pub fn tensors(&self, prefix: &str) -> Result<Vec<(String, Tensor)>, MlError> {
        let layers = match &self.body {
            Body::Dense(layers) => layers,
            Body::Trees(trees) => return trees.tensors(prefix),
        };
        Ok(layers
            .iter()
            .enumerate()
            .flat_map(|(i, (w, b))| {
                [
                    (format!("{prefix}.{i}.w"), w.clone()),
                    (format!("{prefix}.{i}.b"), b.clone()),
                ]
            })
            .collect())
    }

    /// The net stored by [`Net::tensors`] under `prefix`.
    pub fn from_tensors(
        tensors: &std::collections::HashMap<String, Tensor>,
        prefix: &str,
        target: Target,
    ) -> Result<Self, MlError> {
        if let Some(trees) = TreeEnsemble::from_tensors(tensors, prefix)? {
            return Ok(Net {
                target,
                body: Body::Trees(trees),
            });
        }
        let mut layers = Vec::new();
        while let (Some(w), Some(b)) = (
            tensors.get(&format!("{prefix}.{}.w", layers.len())),
            tensors.get(&format!("{prefix}.{}.b", layers.len())),
        ) {
            layers.push((w.clone(), b.clone()));
        }
        if layers.is_empty() {
            return Err(MlError::Store(format!(
                "the stored weights have no learner '{prefix}'"
            )));
        }
        Ok(Net::dense(target, layers))
    }

    /// The same net with its weights on `device` (trees stay on the host).
    pub fn to_device(&self, device: &Device) -> Result<Self, MlError> {
        let Body::Dense(layers) = &self.body else {
            return Ok(self.clone());
        };
        let layers = layers
            .iter()
            .map(|(w, b)| Ok((w.to_device(device)?, b.to_device(device)?)))
            .collect::<Result<_, MlError>>()?;
        Ok(Net::dense(self.target, layers))
    }
}

/// Trains a base learner on the rows of `x` (`n × d`, f32) and targets `y` (`n × 1`),
/// with optional row weights `weights` (`n × 1`).
pub fn fit(
    x: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
    base: Base,
    target: Target,
    options: &TrainOptions,
    control: &Control,
) -> Result<Net, MlError> {
    let (n, _) = x.dims2()?;
    if n == 0 {
        return Err(MlError::Input("no rows to train on".into()));
    }
    match base {
        Base::Linear => fit_linear(x, y, weights, target, options, control),
        Base::Mlp => fit_mlp(x, y, weights, target, options, control),
        Base::Gbdt => {
            let (_, d) = x.dims2()?;
            let host = |t: &Tensor| -> Result<Vec<f32>, MlError> {
                Ok(t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1::<f32>()?)
            };
            let w = weights.map(host).transpose()?;
            let (x, y) = (host(x)?, host(y)?);
            let data = TrainingSet {
                x: &x,
                inputs: d,
                y: &y,
                weights: w.as_deref(),
            };
            let trees = fit_trees(&data, target, options, control)?;
            Ok(Net {
                target,
                body: Body::Trees(trees),
            })
        }
    }
}

/// `X` with a column of ones appended (the intercept).
fn with_intercept(x: &Tensor) -> candle_core::Result<Tensor> {
    let (n, _) = x.dims2()?;
    let ones = Tensor::ones((n, 1), DType::F32, x.device())?;
    Tensor::cat(&[x, &ones], 1)
}

fn to_host(t: &Tensor) -> candle_core::Result<Vec<f64>> {
    Ok(t.flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f64::from)
        .collect())
}

/// Solves `a · x = b` for a symmetric positive definite `a` (`k × k`, row-major) by
/// Cholesky; `None` when `a` is not positive definite.
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

fn linear_net(w: &[f64], device: &Device, target: Target) -> candle_core::Result<Net> {
    let d = w.len() - 1;
    let weights: Vec<f32> = w[..d].iter().map(|&v| v as f32).collect();
    let layer = (
        Tensor::from_vec(weights, (d, 1), device)?,
        Tensor::from_vec(vec![w[d] as f32], (1, 1), device)?,
    );
    Ok(Net::dense(target, vec![layer]))
}

/// Rows above which Newton's method first runs on an evenly strided sample of about
/// this many rows: that reaches the neighbourhood of the optimum for a fraction of the
/// cost, and the steps over every row then converge quadratically from there.
const WARM_START_ROWS: usize = 50_000;

fn fit_linear(
    x: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
    target: Target,
    options: &TrainOptions,
    control: &Control,
) -> Result<Net, MlError> {
    let device = x.device();
    let (n, d) = x.dims2()?;
    let mut w = vec![0.0f64; d + 1];
    if n > 2 * WARM_START_ROWS && target == Target::Binary {
        let stride = n / WARM_START_ROWS;
        let rows: Vec<u32> = (0..n).step_by(stride).map(|r| r as u32).collect();
        let index = Tensor::from_slice(&rows, rows.len(), device)?;
        let sample_weights = weights.map(|s| s.index_select(&index, 0)).transpose()?;
        // The penalty is on the summed loss: scaled to the sample's share of the rows.
        let share = rows.len() as f64 / n as f64;
        w = newton(
            &x.index_select(&index, 0)?,
            &y.index_select(&index, 0)?,
            sample_weights.as_ref(),
            w,
            options.l2 * share,
            target,
            control,
            "warm start",
        )?;
    }
    let w = newton(x, y, weights, w, options.l2, target, control, "newton")?;
    if w.iter().any(|v| !v.is_finite()) {
        return Err(MlError::Input(
            "training diverged (a weight is not finite); check the features for extreme values"
                .into(),
        ));
    }
    Ok(linear_net(&w, device, target)?)
}

/// Newton's method from `w` for the penalised loss; returns the optimum (to float
/// precision). A continuous target is solved by one step.
#[allow(clippy::too_many_arguments)]
fn newton(
    x: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
    mut w: Vec<f64>,
    l2: f64,
    target: Target,
    control: &Control,
    stage: &str,
) -> Result<Vec<f64>, MlError> {
    let device = x.device();
    let x1 = with_intercept(x)?;
    // A transposed view: the matrix products read it with strides, no copy.
    let x1t = x1.t()?;
    let k = w.len();
    // The penalty on every weight but the intercept; a tiny ridge on the intercept keeps
    // the Hessian positive definite when a class is absent.
    let penalty = |i: usize| if i + 1 < k { l2 } else { 1e-9 };
    let mut previous = f64::INFINITY;
    for step in 0..NEWTON_STEPS {
        control.check()?;
        let wt = Tensor::from_vec(w.iter().map(|&v| v as f32).collect(), (k, 1), device)?;
        let z = x1.matmul(&wt)?;
        let (residual, curvature) = match target {
            Target::Binary => {
                let p = candle_nn::ops::sigmoid(&z)?;
                let curvature = p.mul(&p.affine(-1.0, 1.0)?)?;
                (p.sub(y)?, curvature)
            }
            Target::Continuous => (z.sub(y)?, Tensor::ones_like(&z)?),
        };
        let (residual, curvature) = match weights {
            Some(s) => (residual.mul(s)?, curvature.mul(s)?),
            None => (residual, curvature),
        };
        let mut gradient = to_host(&x1t.matmul(&residual)?)?;
        let mut hessian = to_host(&x1t.matmul(&x1.broadcast_mul(&curvature)?)?)?;
        for i in 0..k {
            gradient[i] += penalty(i) * w[i];
            hessian[i * k + i] += penalty(i);
        }
        let delta = cholesky_solve(&hessian, &gradient).ok_or_else(|| {
            MlError::Input(
                "the features are degenerate (the normal equations are singular); raise \
                 l2 or drop a feature"
                    .into(),
            )
        })?;
        let mut largest = 0f64;
        for i in 0..k {
            w[i] -= delta[i];
            largest = largest.max(delta[i].abs() / (1.0 + w[i].abs()));
        }
        (control.progress)(&format!(
            "{stage} step {}: largest change {largest:.3e}",
            step + 1
        ));
        // Done when the steps are below the tolerance, or stop shrinking: the f32 sums
        // over the rows have a noise floor that no further step gets under.
        let stalled = step >= 2 && largest >= previous;
        if largest < NEWTON_TOLERANCE || stalled || target == Target::Continuous {
            break;
        }
        previous = largest;
    }
    Ok(w)
}

/// Weights drawn uniformly in `±sqrt(6 / (inputs + outputs))` (Glorot).
fn glorot(
    rng: &mut ChaCha8Rng,
    inputs: usize,
    outputs: usize,
    device: &Device,
) -> candle_core::Result<Var> {
    let bound = (6.0 / (inputs + outputs) as f64).sqrt();
    let values: Vec<f32> = (0..inputs * outputs)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect();
    Var::from_tensor(&Tensor::from_vec(values, (inputs, outputs), device)?)
}

fn mlp_loss(
    out: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
    target: Target,
) -> candle_core::Result<Tensor> {
    let per_row = match target {
        // log(1 + e^z) - y·z, computed without overflow.
        Target::Binary => {
            let soft = out.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
            out.relu()?.sub(&y.mul(out)?)?.add(&soft)?
        }
        Target::Continuous => out.sub(y)?.sqr()?,
    };
    match weights {
        Some(w) => per_row.mul(w)?.mean_all(),
        None => per_row.mean_all(),
    }
}

fn fit_mlp(
    x: &Tensor,
    y: &Tensor,
    weights: Option<&Tensor>,
    target: Target,
    options: &TrainOptions,
    control: &Control,
) -> Result<Net, MlError> {
    let device = x.device();
    let (n, d) = x.dims2()?;
    let hidden = options.hidden.max(1);
    let batch = options.batch_size.clamp(1, n);
    let batches = n.div_ceil(batch);
    let epochs = match options.epochs {
        0 => TARGET_STEPS.div_ceil(batches).clamp(3, MAX_AUTO_EPOCHS),
        e => e,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let w1 = glorot(&mut rng, d, hidden, device)?;
    let b1 = Var::from_tensor(&Tensor::zeros((1, hidden), DType::F32, device)?)?;
    let w2 = glorot(&mut rng, hidden, 1, device)?;
    // Start at the mean target: the first steps then learn structure, not the base rate.
    let mean = to_host(&y.mean_all()?)?[0];
    let start = match target {
        Target::Binary => {
            let p = mean.clamp(1e-4, 1.0 - 1e-4);
            (p / (1.0 - p)).ln()
        }
        Target::Continuous => mean,
    };
    let b2 = Var::from_tensor(&Tensor::from_vec(vec![start as f32], (1, 1), device)?)?;
    let params = ParamsAdamW {
        lr: options.learning_rate.unwrap_or(MLP_LEARNING_RATE),
        weight_decay: options.l2 / 100.0,
        ..Default::default()
    };
    let mut optimizer = AdamW::new(vec![w1.clone(), b1.clone(), w2.clone(), b2.clone()], params)?;
    let net = |w1: &Var, b1: &Var, w2: &Var, b2: &Var| {
        Net::dense(
            target,
            vec![
                (w1.as_tensor().clone(), b1.as_tensor().clone()),
                (w2.as_tensor().clone(), b2.as_tensor().clone()),
            ],
        )
    };
    let mut order: Vec<u32> = (0..n as u32).collect();
    for epoch in 0..epochs {
        order.shuffle(&mut rng);
        let mut total = 0f64;
        for chunk in order.chunks(batch) {
            control.check()?;
            let index = Tensor::from_slice(chunk, chunk.len(), device)?;
            let xb = x.index_select(&index, 0)?;
            let yb = y.index_select(&index, 0)?;
            let wb = weights.map(|w| w.index_select(&index, 0)).transpose()?;
            let out = net(&w1, &b1, &w2, &b2).forward(&xb)?;
            let loss = mlp_loss(&out, &yb, wb.as_ref(), target)?;
            optimizer.backward_step(&loss)?;
            total += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
        }
        let loss = total / n as f64;
        if !loss.is_finite() {
            return Err(MlError::Input(
                "training diverged (the loss is not finite); lower learning_rate".into(),
            ));
        }
        (control.progress)(&format!("epoch {}/{epochs}: loss {loss:.5}", epoch + 1));
    }
    Ok(net(&w1, &b1, &w2, &b2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> (AtomicBool, impl Fn(&str) + Sync) {
        (AtomicBool::new(false), |_: &str| {})
    }

    /// Rows `x ~ U(-2, 2)²` with `P(y) = sigmoid(2·x0 - x1 + 0.5)`.
    fn data(n: usize) -> (Tensor, Tensor) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for _ in 0..n {
            let a: f32 = rng.random_range(-2.0..2.0);
            let b: f32 = rng.random_range(-2.0..2.0);
            let p = 1.0 / (1.0 + (-(2.0 * a - b + 0.5)).exp());
            xs.extend([a, b]);
            ys.push(f32::from(u8::from(rng.random::<f32>() < p)));
        }
        (
            Tensor::from_vec(xs, (n, 2), &Device::Cpu).unwrap(),
            Tensor::from_vec(ys, (n, 1), &Device::Cpu).unwrap(),
        )
    }

    #[test]
    fn newton_recovers_the_logistic_coefficients() {
        let (x, y) = data(20_000);
        let (cancel, progress) = quiet();
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        let options = TrainOptions::default();
        let net = fit(
            &x,
            &y,
            None,
            Base::Linear,
            Target::Binary,
            &options,
            &control,
        )
        .unwrap();
        let Body::Dense(layers) = &net.body else {
            panic!("logistic regression is one dense layer")
        };
        let w = to_host(&layers[0].0).unwrap();
        let b = to_host(&layers[0].1).unwrap();
        assert!(
            (w[0] - 2.0).abs() < 0.1 && (w[1] + 1.0).abs() < 0.1,
            "{w:?}"
        );
        assert!((b[0] - 0.5).abs() < 0.1, "{b:?}");
    }

    #[test]
    fn the_perceptron_is_deterministic_for_a_seed_and_learns() {
        let (x, y) = data(4_000);
        let (cancel, progress) = quiet();
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        let options = TrainOptions {
            epochs: 5,
            ..Default::default()
        };
        let a = fit(&x, &y, None, Base::Mlp, Target::Binary, &options, &control).unwrap();
        let b = fit(&x, &y, None, Base::Mlp, Target::Binary, &options, &control).unwrap();
        let pa = a.predict(&x).unwrap();
        assert_eq!(pa, b.predict(&x).unwrap());
        // Better than the base rate: the mean log loss drops well below ln 2.
        let ys = to_host(&y).unwrap();
        let loss: f64 = pa
            .iter()
            .zip(&ys)
            .map(|(&p, &y)| {
                let p = f64::from(p).clamp(1e-7, 1.0 - 1e-7);
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .sum::<f64>()
            / ys.len() as f64;
        assert!(loss < 0.5, "{loss}");
    }

    #[test]
    fn a_cancelled_run_stops() {
        let (x, y) = data(100);
        let cancel = AtomicBool::new(true);
        let control = Control {
            cancel: &cancel,
            progress: &|_| {},
        };
        let options = TrainOptions::default();
        let err = fit(&x, &y, None, Base::Mlp, Target::Binary, &options, &control).unwrap_err();
        assert!(matches!(err, MlError::Cancelled));
    }

    #[test]
    fn ridge_solves_a_linear_target_exactly() {
        let x = Tensor::from_vec(vec![0f32, 1.0, 2.0, 3.0], (4, 1), &Device::Cpu).unwrap();
        let y = Tensor::from_vec(vec![1f32, 3.0, 5.0, 7.0], (4, 1), &Device::Cpu).unwrap();
        let (cancel, progress) = quiet();
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        let options = TrainOptions {
            l2: 0.0,
            ..Default::default()
        };
        let net = fit(
            &x,
            &y,
            None,
            Base::Linear,
            Target::Continuous,
            &options,
            &control,
        )
        .unwrap();
        let p = net.predict(&x).unwrap();
        for (p, y) in p.iter().zip([1.0, 3.0, 5.0, 7.0]) {
            assert!((p - y).abs() < 1e-4, "{p} vs {y}");
        }
    }
}

//! The base learners: logistic and linear regression, a one-hidden-layer perceptron,
//! and gradient-boosted trees.
//!
//! - Logistic regression and ridge ([`super::linear`]): Newton's method on the host in
//!   f64.
//! - The perceptron (`hidden` ReLU units) minimises the mean loss with AdamW over
//!   mini-batches of shuffled rows; its initial weights and every shuffle come from the
//!   seed, so a seed gives one model. It trains on the session's device.
//! - Gradient-boosted trees ([`super::trees`]): LightGBM's histogram method, on the
//!   host.
//!
//! Row weights (optional) scale each row's loss. Training rows arrive on the host
//! ([`TrainingSet`]); only the perceptron copies them to a device.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::MlError;
use super::linear::fit_linear;
use super::trees::{TreeEnsemble, fit_trees};

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

    /// The dense layers' raw output (before the sigmoid of a binary target).
    fn forward(layers: &[(Tensor, Tensor)], x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        for (i, (w, b)) in layers.iter().enumerate() {
            if i > 0 {
                h = h.relu()?;
            }
            h = h.matmul(w)?.broadcast_add(b)?;
        }
        Ok(h)
    }

    /// Predictions for the `rows` rows of `x` (row-major): a probability for a binary
    /// target, else a number. Dense layers compute on their weights' device, trees on
    /// the host.
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, MlError> {
        let inputs = x.len().checked_div(rows).unwrap_or(0);
        match &self.body {
            // One layer on the host is a dot product a row: copying the rows into a
            // tensor would cost more than the products.
            Body::Dense(layers) if layers.len() == 1 && layers[0].0.device().is_cpu() => {
                let (w, b) = &layers[0];
                let w = w.flatten_all()?.to_vec1::<f32>()?;
                let b = b.flatten_all()?.to_vec1::<f32>()?[0];
                if w.len() != inputs {
                    return Err(MlError::Input(format!(
                        "the model takes {} inputs, found {inputs}",
                        w.len()
                    )));
                }
                let linear = |row: &[f32]| -> f32 {
                    let z = row.iter().zip(&w).map(|(a, b)| a * b).sum::<f32>() + b;
                    match self.target {
                        Target::Binary => 1.0 / (1.0 + (-z).exp()),
                        Target::Continuous => z,
                    }
                };
                Ok(x.chunks_exact(inputs.max(1)).map(linear).collect())
            }
            Body::Dense(layers) => {
                let x = Tensor::from_slice(x, (rows, inputs), layers[0].0.device())?;
                let out = Self::forward(layers, &x)?;
                let out = match self.target {
                    Target::Binary => candle_nn::ops::sigmoid(&out)?,
                    Target::Continuous => out,
                };
                Ok(out.flatten_all()?.to_vec1::<f32>()?)
            }
            Body::Trees(trees) => {
                if inputs != trees.inputs() {
                    return Err(MlError::Input(format!(
                        "the trees take {} inputs, found {inputs}",
                        trees.inputs()
                    )));
                }
                let mut out = trees.scores(x, rows);
                if self.target == Target::Binary {
                    for v in &mut out {
                        *v = 1.0 / (1.0 + (-*v).exp());
                    }
                }
                Ok(out)
            }
        }
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

/// Training rows on the host: `y.len()` rows of `inputs` values each in `x`
/// (row-major), their targets, and optional row weights.
#[derive(Clone, Copy)]
pub struct TrainingSet<'a> {
    pub x: &'a [f32],
    pub inputs: usize,
    pub y: &'a [f32],
    pub weights: Option<&'a [f32]>,
}

impl TrainingSet<'_> {
    fn check(&self) -> Result<(), MlError> {
        let rows = self.y.len();
        if rows == 0 {
            return Err(MlError::Input("no rows to train on".into()));
        }
        if self.x.len() != rows * self.inputs || self.weights.is_some_and(|w| w.len() != rows) {
            return Err(MlError::Input(format!(
                "{rows} targets for {} input values of {} inputs",
                self.x.len(),
                self.inputs
            )));
        }
        Ok(())
    }
}

/// Trains a base learner on `data`; the perceptron trains on `device`, and the trained
/// net's dense weights live there.
pub fn fit(
    data: &TrainingSet,
    base: Base,
    target: Target,
    options: &TrainOptions,
    device: &Device,
    control: &Control,
) -> Result<Net, MlError> {
    data.check()?;
    match base {
        Base::Linear => {
            let w = fit_linear(data, target, options.l2, control)?;
            let d = data.inputs;
            let weights: Vec<f32> = w[..d].iter().map(|&v| v as f32).collect();
            let layer = (
                Tensor::from_vec(weights, (d, 1), device)?,
                Tensor::from_vec(vec![w[d] as f32], (1, 1), device)?,
            );
            Ok(Net::dense(target, vec![layer]))
        }
        Base::Mlp => {
            let n = data.y.len();
            let x = Tensor::from_slice(data.x, (n, data.inputs), device)?;
            let y = Tensor::from_slice(data.y, (n, 1), device)?;
            let w = data
                .weights
                .map(|w| Tensor::from_slice(w, (n, 1), device))
                .transpose()?;
            fit_mlp(&x, &y, w.as_ref(), target, options, control)
        }
        Base::Gbdt => Ok(Net {
            target,
            body: Body::Trees(fit_trees(data, target, options, control)?),
        }),
    }
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
    let mean = f64::from(y.mean_all()?.to_scalar::<f32>()?);
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
    let layers = || {
        vec![
            (w1.as_tensor().clone(), b1.as_tensor().clone()),
            (w2.as_tensor().clone(), b2.as_tensor().clone()),
        ]
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
            let out = Net::forward(&layers(), &xb)?;
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
    Ok(Net::dense(target, layers()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet() -> (AtomicBool, impl Fn(&str) + Sync) {
        (AtomicBool::new(false), |_: &str| {})
    }

    /// Rows `x ~ U(-2, 2)²` with `P(y) = sigmoid(2·x0 - x1 + 0.5)`.
    fn data(n: usize) -> (Vec<f32>, Vec<f32>) {
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
        (xs, ys)
    }

    fn set<'a>(x: &'a [f32], y: &'a [f32]) -> TrainingSet<'a> {
        TrainingSet {
            x,
            inputs: x.len() / y.len(),
            y,
            weights: None,
        }
    }

    fn train(data: &TrainingSet, base: Base, target: Target, options: &TrainOptions) -> Net {
        let (cancel, progress) = quiet();
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        fit(data, base, target, options, &Device::Cpu, &control).unwrap()
    }

    #[test]
    fn newton_recovers_the_logistic_coefficients() {
        let (x, y) = data(20_000);
        let options = TrainOptions::default();
        let net = train(&set(&x, &y), Base::Linear, Target::Binary, &options);
        let Body::Dense(layers) = &net.body else {
            panic!("logistic regression is one dense layer")
        };
        let w = layers[0].0.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = layers[0].1.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(
            (w[0] - 2.0).abs() < 0.1 && (w[1] + 1.0).abs() < 0.1,
            "{w:?}"
        );
        assert!((b[0] - 0.5).abs() < 0.1, "{b:?}");
    }

    #[test]
    fn the_perceptron_is_deterministic_for_a_seed_and_learns() {
        let (x, y) = data(4_000);
        let options = TrainOptions {
            epochs: 5,
            ..Default::default()
        };
        let a = train(&set(&x, &y), Base::Mlp, Target::Binary, &options);
        let b = train(&set(&x, &y), Base::Mlp, Target::Binary, &options);
        let pa = a.predict(&x, y.len()).unwrap();
        assert_eq!(pa, b.predict(&x, y.len()).unwrap());
        // Better than the base rate: the mean log loss drops well below ln 2.
        let loss: f64 = pa
            .iter()
            .zip(&y)
            .map(|(&p, &y)| {
                let (p, y) = (f64::from(p).clamp(1e-7, 1.0 - 1e-7), f64::from(y));
                -(y * p.ln() + (1.0 - y) * (1.0 - p).ln())
            })
            .sum::<f64>()
            / y.len() as f64;
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
        for base in [Base::Linear, Base::Mlp, Base::Gbdt] {
            let err = fit(
                &set(&x, &y),
                base,
                Target::Binary,
                &options,
                &Device::Cpu,
                &control,
            )
            .unwrap_err();
            assert!(matches!(err, MlError::Cancelled), "{base:?}: {err}");
        }
    }

    #[test]
    fn ridge_solves_a_linear_target_exactly() {
        let x = [0f32, 1.0, 2.0, 3.0];
        let y = [1f32, 3.0, 5.0, 7.0];
        let options = TrainOptions {
            l2: 0.0,
            ..Default::default()
        };
        let net = train(&set(&x, &y), Base::Linear, Target::Continuous, &options);
        let p = net.predict(&x, 4).unwrap();
        for (p, y) in p.iter().zip(y) {
            assert!((p - y).abs() < 1e-4, "{p} vs {y}");
        }
    }

    #[test]
    fn mismatched_rows_are_an_error() {
        let (x, y) = data(10);
        let (cancel, progress) = quiet();
        let control = Control {
            cancel: &cancel,
            progress: &progress,
        };
        let options = TrainOptions::default();
        let short = TrainingSet {
            x: &x[..5],
            ..set(&x, &y)
        };
        let err = fit(
            &short,
            Base::Linear,
            Target::Binary,
            &options,
            &Device::Cpu,
            &control,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("10 targets for 5 input values"),
            "{err}"
        );
    }
}

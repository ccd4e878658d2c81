//! Uplift modelling: whose buying a treatment (a coupon) changes, from a past randomised
//! campaign, and how well a model ranks that ([`metrics`]).
//!
//! The uplift of a user is `P(convert | treated, x) - P(convert | control, x)`. Four
//! meta-learners estimate it over a base learner ([`Base`]: logistic regression, a
//! small perceptron or gradient-boosted trees):
//!
//! - `s`: one model of the outcome on the features, the treatment flag and their
//!   products (trees get no products: they split on the flag); uplift is its
//!   prediction treated minus its prediction untreated.
//! - `t`: one outcome model per group; uplift is their difference.
//! - `x`: the two `t` models impute each user's effect (a treated user's outcome minus
//!   the control model's guess, and the reverse); one regression per group learns the
//!   imputed effects, and they are averaged with the share of treated users as weight
//!   (Künzel et al., 2019).
//! - `ct` (class transformation): one classifier of `z = 1` when a treated user
//!   converts or a control user does not; `uplift = 2·P(z = 1) - 1`. Rows are weighted
//!   so both groups count equally, which keeps the identity true when the split is not
//!   50/50 (Jaskowski & Jaroszewicz, 2012).
//!
//! Every learner also returns `p_control`, the control outcome model's probability, and
//! `p_treated`: for `s` and `t` their treated prediction (so `uplift = p_treated -
//! p_control` exactly), for `x` and `ct` `p_control + uplift`, clamped to [0, 1].
//!
//! Invariants: training is deterministic for a seed and the order of the rows (the
//! validation split, the perceptron's initial weights and batches; every sum runs over
//! fixed chunks in a fixed order, so the number of cores does not matter either); the
//! SQL function hands the rows over in its query's order. The feature transform is fitted on the
//! training rows only and stored with the model ([`UpliftSpec`]).

pub mod metrics;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::take_record_batch;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::ml::runtime::{
    Base, Control, FeatureTransform, Matrix, MlError, Net, Target, TrainOptions, TrainingSet, fit,
};
pub use metrics::{
    AtKStrategy, Bin, Scored, TopK, qini_auc, uplift_at_k, uplift_auc, uplift_by_bin,
};

/// A meta-learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Learner {
    S,
    T,
    X,
    ClassTransformation,
}

impl Learner {
    pub fn parse(text: &str) -> Result<Self, MlError> {
        match text.to_ascii_lowercase().as_str() {
            "s" | "s_learner" => Ok(Learner::S),
            "t" | "t_learner" | "two_models" => Ok(Learner::T),
            "x" | "x_learner" => Ok(Learner::X),
            "ct" | "class_transformation" => Ok(Learner::ClassTransformation),
            other => Err(MlError::Input(format!(
                "unknown learner '{other}': expected s, t, x or ct"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Learner::S => "s_learner",
            Learner::T => "t_learner",
            Learner::X => "x_learner",
            Learner::ClassTransformation => "class_transformation",
        }
    }
}

/// Everything a training run is told. The default, an S-learner over boosted trees,
/// ranks the demo campaign's held-out users best of the twelve combinations
/// (scripts/bench-uplift.sh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpliftOptions {
    pub learner: Learner,
    pub base: Base,
    pub train: TrainOptions,
    /// The share of rows held out to evaluate the model (0 evaluates on the training
    /// rows).
    pub validation: f64,
}

impl Default for UpliftOptions {
    fn default() -> Self {
        UpliftOptions {
            learner: Learner::S,
            base: Base::Gbdt,
            train: TrainOptions::default(),
            validation: 0.3,
        }
    }
}

/// What is stored beside the weights to rebuild a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpliftSpec {
    pub learner: Learner,
    pub base: Base,
    pub transform: FeatureTransform,
    /// The share of treated users in the training rows.
    pub treated_share: f64,
}

/// A trained uplift model.
#[derive(Debug, Clone)]
pub struct UpliftModel {
    pub spec: UpliftSpec,
    nets: HashMap<String, Net>,
}

/// Scores of some users.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    pub p_treated: Vec<f64>,
    pub p_control: Vec<f64>,
    pub uplift: Vec<f64>,
}

/// A past campaign: the feature columns (and any others) of each user, whether they
/// were treated and whether they converted.
pub struct Campaign<'a> {
    pub rows: &'a RecordBatch,
    pub features: &'a [String],
    pub treated: &'a [bool],
    pub converted: &'a [bool],
}

/// The held-out evaluation of a trained model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub qini_auc: f64,
    pub uplift_auc: f64,
    /// `uplift_at_k` of the top 30% (overall).
    pub uplift_at_30: f64,
    pub training_rows: u64,
    pub validation_rows: u64,
}

/// Outcomes as 0/1 targets.
fn outcomes(converted: &[bool]) -> Vec<f32> {
    converted.iter().map(|&c| f32::from(u8::from(c))).collect()
}

/// Consecutive rows of a [`Matrix`], borrowed.
#[derive(Clone, Copy)]
struct Block<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
}

impl<'a> Block<'a> {
    /// The first `rows` rows, and the rest.
    fn split_at(self, rows: usize) -> (Block<'a>, Block<'a>) {
        let (a, b) = self.data.split_at(rows * self.cols);
        let block = |data, rows| Block {
            data,
            rows,
            cols: self.cols,
        };
        (block(a, rows), block(b, self.rows - rows))
    }
}

impl Matrix {
    fn block(&self) -> Block<'_> {
        Block {
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The S-learner's inputs: `[x, t, t·x]`, or `[x, t]` for trees, which find the
/// interactions with `t` themselves.
fn with_treatment(m: &Matrix, base: Base, treated: impl Fn(usize) -> bool) -> Matrix {
    let products = base != Base::Gbdt;
    let cols = if products { 2 * m.cols + 1 } else { m.cols + 1 };
    let mut data = Vec::with_capacity(m.rows * cols);
    for r in 0..m.rows {
        let x = &m.data[r * m.cols..(r + 1) * m.cols];
        let t = treated(r);
        data.extend_from_slice(x);
        data.push(f32::from(u8::from(t)));
        if !products {
            continue;
        }
        if t {
            data.extend_from_slice(x);
        } else {
            data.extend(std::iter::repeat_n(0.0, m.cols));
        }
    }
    Matrix {
        rows: m.rows,
        cols,
        data,
    }
}

fn check_groups(treated: &[bool], converted: &[bool]) -> Result<(), MlError> {
    let t = treated.iter().filter(|&&t| t).count();
    if t == 0 || t == treated.len() {
        return Err(MlError::Input(
            "the training rows must include both treated and control users".into(),
        ));
    }
    if converted.iter().all(|&c| c) || !converted.iter().any(|&c| c) {
        return Err(MlError::Input(
            "the outcome is the same for every training row: nothing to learn".into(),
        ));
    }
    Ok(())
}

impl UpliftModel {
    /// Trains on the campaign's rows minus a validation share, and evaluates on that
    /// share.
    pub fn train(
        campaign: &Campaign,
        options: &UpliftOptions,
        device: &Device,
        control: &Control,
    ) -> Result<(UpliftModel, Evaluation), MlError> {
        let n = campaign.rows.num_rows();
        if !(0.0..1.0).contains(&options.validation) {
            return Err(MlError::Input(format!(
                "validation must be a share in [0, 1), found {}",
                options.validation
            )));
        }
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(options.train.seed));
        let held_out = (n as f64 * options.validation).round() as usize;
        let (validation, training) = order.split_at(held_out);
        let (mut validation, mut training) = (validation.to_vec(), training.to_vec());
        validation.sort_unstable();
        // Control users first, then the treated: each group is then one block of rows of
        // the input matrix, which the per-group learners read without a copy.
        training.sort_unstable_by_key(|&r| (campaign.treated[r as usize], r));
        if training.is_empty() {
            return Err(MlError::Input("no rows to train on".into()));
        }
        let pick = |rows: &[u32]| -> Result<(RecordBatch, Vec<bool>, Vec<bool>), MlError> {
            let t = rows.iter().map(|&r| campaign.treated[r as usize]).collect();
            let y = rows
                .iter()
                .map(|&r| campaign.converted[r as usize])
                .collect();
            // Every row, in order: no copy.
            if rows.len() == n {
                return Ok((campaign.rows.clone(), t, y));
            }
            let batch = take_record_batch(campaign.rows, &UInt32Array::from(rows.to_vec()))
                .map_err(|e| MlError::Input(e.to_string()))?;
            Ok((batch, t, y))
        };
        let t: Vec<bool> = training
            .iter()
            .map(|&r| campaign.treated[r as usize])
            .collect();
        let y: Vec<bool> = training
            .iter()
            .map(|&r| campaign.converted[r as usize])
            .collect();
        check_groups(&t, &y)?;
        let started = std::time::Instant::now();
        let transform = if validation.is_empty() {
            FeatureTransform::fit(campaign.rows, campaign.features)?
        } else {
            FeatureTransform::fit(&pick(&training)?.0, campaign.features)?
        };
        let x = transform.transform_rows(campaign.rows, Some(&training))?;
        (control.progress)(&format!(
            "{} training rows as {} inputs in {:.3} s",
            x.rows,
            x.cols,
            started.elapsed().as_secs_f64()
        ));
        let started = std::time::Instant::now();
        let model = Self::fit(&x, &t, &y, transform, options, device, control)?;
        (control.progress)(&format!(
            "trained in {:.3} s",
            started.elapsed().as_secs_f64()
        ));
        let started = std::time::Instant::now();
        let (scores, et, ey) = if validation.is_empty() {
            (model.predict_matrix(&x)?, t, y)
        } else {
            let (rows, et, ey) = pick(&validation)?;
            (model.predict(&rows)?, et, ey)
        };
        let scored: Vec<Scored> = scores
            .uplift
            .iter()
            .zip(et.iter().zip(&ey))
            .map(|(&score, (&treated, &converted))| Scored {
                score,
                treated,
                converted,
            })
            .collect();
        let (qini_auc, uplift_auc, uplift_at_30) =
            metrics::evaluate(&scored, TopK::Share(0.3), AtKStrategy::Overall)?;
        (control.progress)(&format!(
            "evaluated {} rows in {:.3} s",
            scored.len(),
            started.elapsed().as_secs_f64()
        ));
        let evaluation = Evaluation {
            qini_auc,
            uplift_auc,
            uplift_at_30,
            training_rows: training.len() as u64,
            validation_rows: validation.len() as u64,
        };
        Ok((model, evaluation))
    }

    /// Fits the learners to `x`'s rows, the control users' first, then the treated.
    fn fit(
        x: &Matrix,
        treated: &[bool],
        converted: &[bool],
        transform: FeatureTransform,
        options: &UpliftOptions,
        device: &Device,
        control: &Control,
    ) -> Result<UpliftModel, MlError> {
        let share = treated.iter().filter(|&&t| t).count() as f64 / treated.len() as f64;
        let control_rows = treated.iter().take_while(|&&t| !t).count();
        debug_assert!(treated[control_rows..].iter().all(|&t| t), "grouped rows");
        let train = |m: Block, y: &[f32], weights: Option<&[f32]>, target: Target| {
            let data = TrainingSet {
                x: m.data,
                inputs: m.cols,
                y,
                weights,
            };
            fit(&data, options.base, target, &options.train, device, control)
        };
        let mut nets = HashMap::new();
        let (x0, x1) = x.block().split_at(control_rows);
        let y0 = outcomes(&converted[..control_rows]);
        let y1 = outcomes(&converted[control_rows..]);
        match options.learner {
            Learner::S => {
                let xs = with_treatment(x, options.base, |r| treated[r]);
                let all = outcomes(converted);
                nets.insert("mu".into(), train(xs.block(), &all, None, Target::Binary)?);
            }
            Learner::T | Learner::X => {
                let mu0 = train(x0, &y0, None, Target::Binary)?;
                let mu1 = train(x1, &y1, None, Target::Binary)?;
                if options.learner == Learner::X {
                    // Imputed effects: treated outcome minus the control model's guess,
                    // and the treated model's guess minus the control outcome.
                    let guess0 = mu0.predict(x1.data, x1.rows)?;
                    let d1: Vec<f32> = y1.iter().zip(&guess0).map(|(y, p)| y - p).collect();
                    let guess1 = mu1.predict(x0.data, x0.rows)?;
                    let d0: Vec<f32> = guess1.iter().zip(&y0).map(|(p, y)| p - y).collect();
                    nets.insert("tau1".into(), train(x1, &d1, None, Target::Continuous)?);
                    nets.insert("tau0".into(), train(x0, &d0, None, Target::Continuous)?);
                }
                nets.insert("mu0".into(), mu0);
                nets.insert("mu1".into(), mu1);
            }
            Learner::ClassTransformation => {
                let z: Vec<f32> = (0..x.rows)
                    .map(|r| f32::from(u8::from(converted[r] == treated[r])))
                    .collect();
                let (wt, wc) = ((0.5 / share) as f32, (0.5 / (1.0 - share)) as f32);
                let w: Vec<f32> = treated.iter().map(|&t| if t { wt } else { wc }).collect();
                nets.insert("ct".into(), train(x.block(), &z, Some(&w), Target::Binary)?);
                nets.insert("mu0".into(), train(x0, &y0, None, Target::Binary)?);
            }
        }
        Ok(UpliftModel {
            spec: UpliftSpec {
                learner: options.learner,
                base: options.base,
                transform,
                treated_share: share,
            },
            nets,
        })
    }

    fn net(&self, name: &str) -> Result<&Net, MlError> {
        self.nets
            .get(name)
            .ok_or_else(|| MlError::Store(format!("the model has no learner '{name}'")))
    }

    /// Scores the rows of `batch` (the feature columns found by name), on the device the
    /// model was trained or loaded on.
    pub fn predict(&self, batch: &RecordBatch) -> Result<Scores, MlError> {
        self.predict_matrix(&self.spec.transform.transform(batch)?)
    }

    /// Scores rows already transformed.
    fn predict_matrix(&self, x: &Matrix) -> Result<Scores, MlError> {
        let n = x.rows;
        if n == 0 {
            return Ok(Scores::default());
        }
        let predict = |name: &str, m: &Matrix| -> Result<Vec<f64>, MlError> {
            let p = self.net(name)?.predict(&m.data, m.rows)?;
            Ok(p.into_iter().map(f64::from).collect())
        };
        let clamp = |v: f64| v.clamp(0.0, 1.0);
        let (p_treated, p_control, uplift) = match self.spec.learner {
            Learner::S => {
                let p1 = predict("mu", &with_treatment(x, self.spec.base, |_| true))?;
                let p0 = predict("mu", &with_treatment(x, self.spec.base, |_| false))?;
                let u = p1.iter().zip(&p0).map(|(a, b)| a - b).collect();
                (p1, p0, u)
            }
            Learner::T => {
                let p1 = predict("mu1", x)?;
                let p0 = predict("mu0", x)?;
                let u = p1.iter().zip(&p0).map(|(a, b)| a - b).collect();
                (p1, p0, u)
            }
            Learner::X => {
                let p0 = predict("mu0", x)?;
                let t0 = predict("tau0", x)?;
                let t1 = predict("tau1", x)?;
                let e = self.spec.treated_share;
                let u: Vec<f64> = t0
                    .iter()
                    .zip(&t1)
                    .map(|(a, b)| e * a + (1.0 - e) * b)
                    .collect();
                let p1 = p0.iter().zip(&u).map(|(p, u)| clamp(p + u)).collect();
                (p1, p0, u)
            }
            Learner::ClassTransformation => {
                let q = predict("ct", x)?;
                let p0 = predict("mu0", x)?;
                let u: Vec<f64> = q.iter().map(|q| 2.0 * q - 1.0).collect();
                let p1 = p0.iter().zip(&u).map(|(p, u)| clamp(p + u)).collect();
                (p1, p0, u)
            }
        };
        Ok(Scores {
            p_treated,
            p_control,
            uplift,
        })
    }

    /// The weights, for the registry.
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>, MlError> {
        let mut names: Vec<&String> = self.nets.keys().collect();
        names.sort();
        let mut all = Vec::new();
        for name in names {
            all.extend(self.nets[name].tensors(name)?);
        }
        Ok(all)
    }

    /// The model stored as `spec` and `tensors`, with its weights on `device`.
    pub fn from_parts(
        spec: UpliftSpec,
        tensors: &HashMap<String, Tensor>,
        device: &Device,
    ) -> Result<Self, MlError> {
        let names: &[(&str, Target)] = match spec.learner {
            Learner::S => &[("mu", Target::Binary)],
            Learner::T => &[("mu0", Target::Binary), ("mu1", Target::Binary)],
            Learner::X => &[
                ("mu0", Target::Binary),
                ("mu1", Target::Binary),
                ("tau0", Target::Continuous),
                ("tau1", Target::Continuous),
            ],
            Learner::ClassTransformation => &[("ct", Target::Binary), ("mu0", Target::Binary)],
        };
        let mut nets = HashMap::new();
        for (name, target) in names {
            let net = Net::from_tensors(tensors, name, *target)?.to_device(device)?;
            nets.insert(name.to_string(), net);
        }
        Ok(UpliftModel { spec, nets })
    }
}

#[cfg(test)]
mod tests;

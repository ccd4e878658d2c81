use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
use rand::{Rng, SeedableRng};

use super::*;

/// A campaign where the treatment helps users with `a > 0` of segment "x" and hurts
/// those with `a < -1`: `p0 = sigmoid(b - 1)`, `p1 = p0 ± 0.25`.
fn campaign(n: usize, seed: u64) -> (RecordBatch, Vec<bool>, Vec<bool>, Vec<f64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut a, mut b, mut s) = (Vec::new(), Vec::new(), Vec::new());
    let (mut t, mut y, mut truth) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let av: f64 = rng.random_range(-2.0..2.0);
        let bv: f64 = rng.random_range(-1.0..1.0);
        let seg = if rng.random::<bool>() { "x" } else { "y" };
        let p0 = 1.0 / (1.0 + (1.0 - bv).exp());
        let effect = if av > 0.0 && seg == "x" {
            0.25
        } else if av < -1.0 {
            -0.2
        } else {
            0.0
        };
        let p1 = (p0 + effect).clamp(0.0, 1.0);
        let treated = rng.random::<bool>();
        let converted = rng.random::<f64>() < if treated { p1 } else { p0 };
        a.push(av);
        b.push(bv);
        s.push(seg);
        t.push(treated);
        y.push(converted);
        truth.push(p1 - p0);
    }
    let batch = RecordBatch::try_from_iter(vec![
        ("a", Arc::new(Float64Array::from(a)) as ArrayRef),
        ("b", Arc::new(Float64Array::from(b)) as ArrayRef),
        ("segment", Arc::new(StringArray::from(s)) as ArrayRef),
    ])
    .unwrap();
    (batch, t, y, truth)
}

fn features() -> Vec<String> {
    ["a", "b", "segment"].map(String::from).to_vec()
}

fn train(
    learner: Learner,
    base: Base,
    rows: &RecordBatch,
    t: &[bool],
    y: &[bool],
) -> (UpliftModel, Evaluation) {
    let names = features();
    let campaign = Campaign {
        rows,
        features: &names,
        treated: t,
        converted: y,
    };
    let options = UpliftOptions {
        learner,
        base,
        train: TrainOptions {
            epochs: 8,
            ..Default::default()
        },
        ..Default::default()
    };
    let cancel = AtomicBool::new(false);
    let control = Control {
        cancel: &cancel,
        progress: &|_| {},
    };
    UpliftModel::train(&campaign, &options, &Device::Cpu, &control).unwrap()
}

#[test]
fn every_learner_ranks_the_persuadable_first() {
    let (rows, t, y, truth) = campaign(12_000, 1);
    for learner in [
        Learner::S,
        Learner::T,
        Learner::X,
        Learner::ClassTransformation,
    ] {
        for base in [Base::Linear, Base::Mlp, Base::Gbdt] {
            let (model, evaluation) = train(learner, base, &rows, &t, &y);
            // Held-out Qini well above random (0).
            assert!(
                evaluation.qini_auc > 0.1,
                "{learner:?}/{base:?}: {evaluation:?}"
            );
            // Scores correlate with the true effect.
            let scores = model.predict(&rows).unwrap();
            let corr = correlation(&scores.uplift, &truth);
            assert!(corr > 0.5, "{learner:?}/{base:?}: correlation {corr}");
            for i in 0..scores.uplift.len() {
                assert!((0.0..=1.0).contains(&scores.p_treated[i]));
                assert!((0.0..=1.0).contains(&scores.p_control[i]));
            }
        }
    }
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn a_stored_model_scores_like_the_trained_one() {
    let (rows, t, y, _) = campaign(3_000, 2);
    for (learner, base) in [
        (Learner::S, Base::Mlp),
        (Learner::X, Base::Mlp),
        (Learner::ClassTransformation, Base::Mlp),
        (Learner::S, Base::Gbdt),
        (Learner::X, Base::Gbdt),
    ] {
        let (model, _) = train(learner, base, &rows, &t, &y);
        let tensors: HashMap<String, Tensor> = model.tensors().unwrap().into_iter().collect();
        let spec: UpliftSpec =
            serde_json::from_str(&serde_json::to_string(&model.spec).unwrap()).unwrap();
        let restored = UpliftModel::from_parts(spec, &tensors, &Device::Cpu).unwrap();
        assert_eq!(
            model.predict(&rows).unwrap(),
            restored.predict(&rows).unwrap()
        );
    }
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let (rows, t, y, _) = campaign(2_000, 3);
    for base in [Base::Mlp, Base::Gbdt] {
        let (a, ea) = train(Learner::T, base, &rows, &t, &y);
        let (b, eb) = train(Learner::T, base, &rows, &t, &y);
        assert_eq!(ea, eb);
        assert_eq!(a.predict(&rows).unwrap(), b.predict(&rows).unwrap());
    }
}

#[test]
fn bad_campaigns_are_refused() {
    let (rows, t, y, _) = campaign(500, 4);
    let names = features();
    let cancel = AtomicBool::new(false);
    let control = Control {
        cancel: &cancel,
        progress: &|_| {},
    };
    let all_treated = vec![true; t.len()];
    let campaign = Campaign {
        rows: &rows,
        features: &names,
        treated: &all_treated,
        converted: &y,
    };
    let err = UpliftModel::train(&campaign, &UpliftOptions::default(), &Device::Cpu, &control)
        .unwrap_err();
    assert!(err.to_string().contains("treated and control"), "{err}");
    let never = vec![false; y.len()];
    let campaign = Campaign {
        rows: &rows,
        features: &names,
        treated: &t,
        converted: &never,
    };
    let err = UpliftModel::train(&campaign, &UpliftOptions::default(), &Device::Cpu, &control)
        .unwrap_err();
    assert!(err.to_string().contains("same for every"), "{err}");
}

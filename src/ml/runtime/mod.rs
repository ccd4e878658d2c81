//! The runtime every martdb model shares, on candle:
//!
//! - [`MlDevice`]: where tensors live. The CPU by default; an NVIDIA GPU with the
//!   `cuda` cargo feature, chosen per session (`SET martdb.ml_device = 'cuda'`). The
//!   same data, seed and options train the same model on either, up to float rounding.
//! - [`FeatureTransform`]: how query columns become a model's inputs (scaled numbers,
//!   missing-value indicators, one-hot categories). It is fitted on the training rows
//!   and stored with the model, so scoring applies exactly the training-time transform.
//! - [`Net`] and [`fit`]: the base learners, logistic or linear regression (Newton's
//!   method to the optimum, in f64 on the host), a one-hidden-layer perceptron (AdamW on shuffled mini-batches) and
//!   gradient-boosted trees ([`TreeEnsemble`], LightGBM's histogram method).
//!   Training is deterministic for a seed, reports progress, and stops when cancelled.
//! - [`ModelRegistry`]: trained models, durably: every training run is a new version,
//!   one version of each model is deployed, deploying an older one is a rollback.
//!
//! Invariant: nothing here reads SQL; `udf::ml` adapts it to DataFusion.

mod device;
mod features;
mod learners;
mod linear;
mod registry;
mod trees;

pub use device::MlDevice;
pub(crate) use features::is_text;
pub use features::{Feature, FeatureKind, FeatureTransform, MAX_CATEGORIES, Matrix};
pub use learners::{
    Base, Control, MLP_LEARNING_RATE, Net, TREE_LEARNING_RATE, Target, TrainOptions, TrainingSet,
    fit,
};
pub use registry::{DeployPolicy, ModelInfo, ModelRegistry, NewModel};
pub use trees::{MAX_BINS, TreeEnsemble};

/// What can go wrong training, storing or scoring a model.
#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// The caller's input does not fit (a value, an option, a column's content).
    #[error("{0}")]
    Input(String),
    /// A column the model needs is missing or of the wrong type.
    #[error("column \"{column}\": {message}")]
    Column { column: String, message: String },
    #[error("model \"{name}\" does not exist")]
    ModelNotFound { name: String },
    #[error("model \"{name}\" has no version {version}")]
    VersionNotFound { name: String, version: i64 },
    /// The device asked for is not there (or this build cannot use it).
    #[error("{0}")]
    Device(String),
    #[error("training was cancelled")]
    Cancelled,
    #[error("tensor computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("model store: {0}")]
    Store(String),
}

impl MlError {
    /// The SQLSTATE a client sees.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            MlError::Input(_) => "22023",
            MlError::Column { .. } => "42703",
            MlError::ModelNotFound { .. } | MlError::VersionNotFound { .. } => "42704",
            MlError::Device(_) => "0A000",
            MlError::Cancelled => "57014",
            MlError::Tensor(_) => "XX000",
            MlError::Store(_) => "58030",
        }
    }
}

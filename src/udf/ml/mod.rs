//! Machine learning in SQL: uplift models trained from a query, stored in a registry,
//! scored by a function, and evaluated with aggregates. The shape is PostgresML's and
//! BigQuery ML's: train from a query, predict with a function, models listed in a table.
//!
//! # Training: `uplift_train(name, query, treatment, outcome [, options])`
//!
//! ```sql
//! SELECT * FROM uplift_train('coupon_uplift',
//!   'SELECT treatment, converted, recency_days, frequency, monetary, age, level, city
//!      FROM campaign',
//!   'treatment', 'converted', 'learner = s, base = gbdt');
//! ```
//!
//! Trains on the query's rows ([`crate::ml::uplift`]), holds `validation` of them out,
//! stores the result as the next version of `name` and returns one row: `name, version,
//! algorithm, training_rows, validation_rows, qini_auc, uplift_auc, uplift_at_30,
//! deployed, seconds` (the metrics on the held-out rows). `treatment` and `outcome` name
//! binary columns (booleans, or numbers that are all 0 or 1, no NULL). The features are
//! every other column, or the `features` option. Options, `key = value` separated by
//! commas:
//!
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `learner` | `s` | `s`, `t`, `x` or `ct` (class transformation) |
//! | `base` | `gbdt` | `gbdt` (gradient-boosted trees, also `trees`), `mlp` (one hidden layer of ReLU units) or `logistic` (Newton's method to the optimum, in f64 on the host) |
//! | `features` | the other columns | feature columns, separated by spaces |
//! | `validation` | 0.3 | share of rows held out for the metrics (0: evaluate on the training rows) |
//! | `l2` | 1 | L2 penalty (logistic: scikit-learn's `1/C`; trees: on the leaf values) |
//! | `trees`, `leaves`, `min_leaf`, `learning_rate` | 200, 31, 20, 0.05 | the trees: boosting rounds (at most 100 000), leaves per tree (2 to 4096; their histograms over all inputs must fit in 2 GiB), rows per leaf at least, shrinkage |
//! | `hidden`, `epochs`, `batch_size`, `learning_rate` | 32, automatic (about 3 000 steps in 3 to 20 passes), 1024, 0.01 | the perceptron |
//! | `seed` | 42 | the validation split and the perceptron's weights and batches (the query's rows are read in one partition, so the same rows in the same tables give the same model) |
//! | `deploy` | `auto` | `auto`: deploy if it is the first version or its held-out Qini AUC is at least the deployed one's; `always`; `never` |
//!
//! It runs on the session's device (`SET martdb.ml_device = 'cuda'`), logs its
//! progress on the server's terminal (target `martdb::ml`), stops when the statement is
//! cancelled or times out, and changes state: a read-only session may not call it.
//!
//! # Scoring: `uplift_predict(name, query [, version])`
//!
//! The query's rows with three columns appended: `p_treated`, `p_control` and
//! `uplift`. The feature columns are found by name (42703 names a missing one, before
//! anything runs); other columns pass through. Without `version` the deployed version
//! is used. `uplift_score(name, feature, ...)` is the same uplift as a scalar function
//! (the feature values in the model's order). `uplift_quadrant(p_treated, p_control)`
//! names a user's group, and
//! `model_deploy(name, version)` deploys (or rolls back to) a version.
//!
//! # Evaluation
//!
//! `qini_auc(outcome, uplift, treatment)`, `uplift_auc(...)` and
//! `uplift_at_k(outcome, uplift, treatment, k [, strategy])` are aggregates equal to
//! scikit-uplift's metrics; `uplift_by_decile('<query of outcome, uplift, treatment>'
//! [, bins])` is the table of observed uplift per decile of score.
//!
//! Models are listed in `martdb.models`.

mod metric;
mod model_deploy;
mod qini_auc;
mod uplift_at_k;
mod uplift_auc;
mod uplift_by_decile;
mod uplift_predict;
mod uplift_quadrant;
mod uplift_score;
mod uplift_train;

use std::sync::Arc;

use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::common::extensions_options;
use datafusion::config::{ConfigExtension, ConfigOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{AggregateUDF, DocSection, ScalarUDF};
use datafusion::prelude::SessionContext;

use crate::ml::runtime::{MlDevice, MlError, ModelRegistry};

pub use uplift_predict::frozen_plan as frozen_uplift_predict;
pub use uplift_quadrant::{DEFAULT_RESPONSE_THRESHOLD, DEFAULT_UPLIFT_THRESHOLD, quadrant};
pub use uplift_score::FrozenUpliftScore;

const SECTION: DocSection = DocSection {
    include: true,
    label: "Machine Learning Functions",
    description: Some(
        "Train uplift models from a query, score users, name their quadrant, deploy \
         versions and evaluate scores with Qini and uplift curves.",
    ),
};

extensions_options! {
    /// martdb's own session options, set with `SET martdb.<name> = ...`.
    pub struct MartdbOptions {
        /// Where models train and score: `cpu`, `cuda` or `cuda:N`.
        pub ml_device: String, default = "cpu".to_string()
        /// The role of the session's user (`admin` or `read_only`): masking policies
        /// apply by it. Set by the server, never by `SET`.
        pub role: String, default = "admin".to_string()
    }
}

impl ConfigExtension for MartdbOptions {
    const PREFIX: &'static str = "martdb";
}

/// The device a session's models use.
pub(crate) fn session_device(options: &ConfigOptions) -> Result<MlDevice> {
    let device = options
        .extensions
        .get::<MartdbOptions>()
        .map_or("cpu", |o| o.ml_device.as_str());
    MlDevice::parse(device).map_err(ml_error)
}

/// A 0/1 value of a treatment or outcome column as a boolean.
fn binary_value(v: f64, what: &str) -> std::result::Result<bool, MlError> {
    match v {
        0.0 => Ok(false),
        1.0 => Ok(true),
        other => Err(MlError::Input(format!(
            "the {what} must be 0 or 1, found {other}"
        ))),
    }
}

fn ml_error(e: MlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The scalar functions that need no registry.
pub fn functions() -> Vec<ScalarUDF> {
    vec![uplift_quadrant::udf()]
}

/// The aggregate functions of this area.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    vec![qini_auc::udaf(), uplift_auc::udaf(), uplift_at_k::udaf()]
}

/// The table functions that need no registry.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![(
        uplift_by_decile::NAME,
        Arc::new(uplift_by_decile::UpliftByDecile),
    )]
}

/// Registers the functions over an engine's model registry on `ctx`: `uplift_train`,
/// `uplift_predict`, `uplift_score` and `model_deploy` (the scoring functions share one
/// cache of loaded models).
pub fn register_registry_functions(ctx: &SessionContext, registry: &ModelRegistry) {
    let loaded = uplift_predict::LoadedModels::default();
    ctx.register_udf(model_deploy::udf(registry.clone()));
    ctx.register_udf(uplift_score::udf(registry.clone(), loaded.clone()));
    ctx.register_udtf(
        uplift_train::NAME,
        Arc::new(uplift_train::UpliftTrain {
            registry: registry.clone(),
        }),
    );
    ctx.register_udtf(
        uplift_predict::NAME,
        Arc::new(uplift_predict::UpliftPredict {
            registry: registry.clone(),
            loaded,
        }),
    );
}

/// The name of the state-changing table function `provider` is a call of, if it is one.
pub(crate) fn writing_table_function(provider: &dyn TableProvider) -> Option<&'static str> {
    uplift_train::is_call(provider).then_some(uplift_train::NAME)
}

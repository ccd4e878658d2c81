//! `uplift_train(name, query, treatment, outcome [, options])`: trains an uplift model on
//! a past campaign's rows and stores it as a new version of `name`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};

use super::{binary_value, ml_error, session_device};
use crate::ml::runtime::{
    Base, Control, DeployPolicy, MlError, ModelRegistry, NewModel, TrainOptions,
};
use crate::ml::uplift::{Campaign, Learner, UpliftModel, UpliftOptions};
use crate::udf::query::{CancelOnDrop, QueryFunctionExec, constant_text, plan_query_now};

pub(super) const NAME: &str = "uplift_train";

fn bad_input(message: String) -> DataFusionError {
    ml_error(MlError::Input(format!("{NAME}: {message}")))
}

/// The options of one training run, parsed from `'key = value, ...'`.
#[derive(Debug, Clone)]
struct TrainRequest {
    options: UpliftOptions,
    /// `None`: every column but the treatment and the outcome.
    features: Option<Vec<String>>,
    deploy: DeployPolicy,
}

const OPTION_KEYS: &str = "learner, base, features, validation, epochs, hidden, batch_size, \
                           learning_rate, trees, leaves, min_leaf, l2, seed, deploy";

fn parse_options(text: &str) -> Result<TrainRequest, MlError> {
    let mut request = TrainRequest {
        options: UpliftOptions::default(),
        features: None,
        deploy: DeployPolicy::Auto,
    };
    let train = &mut request.options.train;
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(MlError::Input(format!(
                "option '{pair}' is not key = value (keys: {OPTION_KEYS})"
            )));
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim());
        let number = |what: &str| -> Result<f64, MlError> {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| {
                    MlError::Input(format!("option {key} must be {what}, found '{value}'"))
                })
        };
        let count = |what: &str| -> Result<usize, MlError> {
            value.parse::<usize>().map_err(|_| {
                MlError::Input(format!("option {key} must be {what}, found '{value}'"))
            })
        };
        match key.as_str() {
            "learner" => request.options.learner = Learner::parse(value)?,
            "base" => request.options.base = Base::parse(value)?,
            "features" => {
                let names: Vec<String> = value.split_whitespace().map(str::to_string).collect();
                if names.is_empty() {
                    return Err(MlError::Input(
                        "option features lists no column (names separated by spaces)".into(),
                    ));
                }
                request.features = Some(names);
            }
            "validation" => request.options.validation = number("a share in [0, 1)")?,
            "epochs" => train.epochs = count("a whole number (0 = automatic)")?,
            "hidden" => train.hidden = count("a positive whole number")?.max(1),
            "batch_size" => train.batch_size = count("a positive whole number")?.max(1),
            "learning_rate" => {
                let rate = number("a positive number")?;
                if rate == 0.0 {
                    return Err(MlError::Input(
                        "option learning_rate must be a positive number, found '0'".into(),
                    ));
                }
                train.learning_rate = Some(rate);
            }
            "trees" => train.trees = count("a whole number")?,
            "leaves" => train.leaves = count("a whole number of at least 2")?,
            "min_leaf" => train.min_leaf = count("a positive whole number")?.max(1),
            "l2" => train.l2 = number("a number of at least 0")?,
            "seed" => {
                train.seed = value.parse().map_err(|_| {
                    MlError::Input(format!(
                        "option seed must be a whole number, found '{value}'"
                    ))
                })?
            }
            "deploy" => request.deploy = DeployPolicy::parse(value)?,
            other => {
                return Err(MlError::Input(format!(
                    "unknown option '{other}' (keys: {OPTION_KEYS})"
                )));
            }
        }
    }
    Ok(request)
}

/// The reply: one row describing the stored version.
fn output_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("algorithm", DataType::Utf8, false),
        Field::new("training_rows", DataType::Int64, false),
        Field::new("validation_rows", DataType::Int64, false),
        Field::new("qini_auc", DataType::Float64, false),
        Field::new("uplift_auc", DataType::Float64, false),
        Field::new("uplift_at_30", DataType::Float64, false),
        Field::new("deployed", DataType::Boolean, false),
        Field::new("seconds", DataType::Float64, false),
    ]))
}

#[derive(Debug)]
pub(super) struct UpliftTrain {
    pub registry: ModelRegistry,
}

impl TableFunctionImpl for UpliftTrain {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(4..=5).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes 4 or 5 arguments (name, query, treatment, outcome [, options]), found {}",
                exprs.len()
            )));
        }
        let name = constant_text(&exprs[0], "model name", bad_input)?;
        let query = constant_text(&exprs[1], "query", bad_input)?;
        let treatment = constant_text(&exprs[2], "treatment column", bad_input)?;
        let outcome = constant_text(&exprs[3], "outcome column", bad_input)?;
        let options = match exprs.get(4) {
            Some(e) => constant_text(e, "options", bad_input)?,
            None => String::new(),
        };
        let mut request = parse_options(&options).map_err(|e| bad_input(e.to_string()))?;
        let plan = plan_query_now(
            args.session(),
            &query,
            NAME,
            "the campaign's rows",
            bad_input,
        )?;
        let columns: Vec<String> = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        for column in [&treatment, &outcome]
            .into_iter()
            .chain(request.features.iter().flatten())
        {
            if !columns.contains(column) {
                return Err(ml_error(MlError::Column {
                    column: column.clone(),
                    message: format!(
                        "{NAME}: the query does not return it (it returns {})",
                        columns.join(", ")
                    ),
                }));
            }
        }
        if treatment == outcome {
            return Err(bad_input(
                "the treatment and the outcome are the same column".into(),
            ));
        }
        let features = match request.features.take() {
            Some(f) => f,
            None => columns
                .iter()
                .filter(|c| **c != treatment && **c != outcome)
                .cloned()
                .collect(),
        };
        if features.is_empty() {
            return Err(bad_input(
                "no feature column: the query returns only the treatment and the outcome".into(),
            ));
        }
        if let Some(f) = features.iter().find(|f| **f == treatment || **f == outcome) {
            return Err(bad_input(format!(
                "column {f} cannot be both a feature and the treatment or outcome"
            )));
        }
        Ok(Arc::new(TrainTable {
            registry: self.registry.clone(),
            plan,
            job: Arc::new(Job {
                name,
                treatment,
                outcome,
                features,
                request,
            }),
        }))
    }
}

#[derive(Debug)]
struct Job {
    name: String,
    treatment: String,
    outcome: String,
    features: Vec<String>,
    request: TrainRequest,
}

#[derive(Debug)]
pub(super) struct TrainTable {
    registry: ModelRegistry,
    plan: LogicalPlan,
    job: Arc<Job>,
}

#[async_trait]
impl TableProvider for TrainTable {
    fn schema(&self) -> SchemaRef {
        output_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // The rows arrive in the same order on every run (the query's plan on one
        // partition where it can, partitions read in turn where a table has several, its
        // ORDER BY kept), so a seed gives the same split, batches, sums and model.
        let mut ordered = crate::udf::query::session_state(state, NAME)?.clone();
        ordered
            .config_mut()
            .options_mut()
            .execution
            .target_partitions = 1;
        let input = ordered.create_physical_plan(&self.plan).await?;
        let (registry, job) = (self.registry.clone(), self.job.clone());
        let body: crate::udf::query::QueryFunctionBody = Arc::new(move |rows, context| {
            let (registry, job) = (registry.clone(), job.clone());
            let device = session_device(context.session_config().options())?;
            let run = async move {
                let schema = rows.schema();
                let batches: Vec<RecordBatch> = rows.try_collect().await?;
                let all = concat_batches(&schema, &batches)?;
                // Dropping the query (a cancel, a timeout, a closed connection) drops
                // this guard, which stops the training at its next step.
                let cancel = CancelOnDrop::default();
                let flag = cancel.0.clone();
                let trained = tokio::task::spawn_blocking(move || {
                    train_and_save(&registry, &job, &all, device, &flag)
                })
                .await
                .map_err(|e| DataFusionError::Internal(format!("{NAME}: {e}")))?;
                drop(cancel);
                trained
            };
            Ok(futures::stream::once(run).boxed())
        });
        Ok(Arc::new(
            QueryFunctionExec::new(NAME, input, &output_schema(), projection, body)?
                .in_query_order(),
        ))
    }
}

/// A binary column as booleans: booleans, or numbers that are all 0 or 1.
fn binary(rows: &RecordBatch, column: &str, what: &str) -> Result<Vec<bool>, MlError> {
    let array: &ArrayRef = rows.column_by_name(column).ok_or_else(|| MlError::Column {
        column: column.into(),
        message: "missing".into(),
    })?;
    let bad =
        |message: String| MlError::Input(format!("{NAME}: the {what} column {column} {message}"));
    if array.null_count() > 0 {
        return Err(bad(format!(
            "has {} NULL values; it must be 0 or 1 in every row",
            array.null_count()
        )));
    }
    if let DataType::Boolean = array.data_type() {
        return Ok(array.as_boolean().values().iter().collect());
    }
    if !array.data_type().is_numeric() {
        return Err(bad(format!(
            "is of type {}; it must be a boolean or a 0/1 number",
            array.data_type()
        )));
    }
    let values = cast(array, &DataType::Float64).map_err(|e| bad(e.to_string()))?;
    values
        .as_primitive::<Float64Type>()
        .values()
        .iter()
        .map(|&v| {
            binary_value(v, what)
                .map_err(|_| bad(format!("is not binary: found {v}; it must be 0 or 1")))
        })
        .collect()
}

fn train_and_save(
    registry: &ModelRegistry,
    job: &Job,
    rows: &RecordBatch,
    device: crate::ml::runtime::MlDevice,
    cancel: &AtomicBool,
) -> Result<RecordBatch> {
    let started = Instant::now();
    let treated = binary(rows, &job.treatment, "treatment").map_err(ml_error)?;
    let converted = binary(rows, &job.outcome, "outcome").map_err(ml_error)?;
    let name = job.name.clone();
    let progress = move |line: &str| tracing::info!(target: "martdb::ml", model = %name, "{line}");
    let control = Control {
        cancel,
        progress: &progress,
    };
    let campaign = Campaign {
        rows,
        features: &job.features,
        treated: &treated,
        converted: &converted,
    };
    let options = &job.request.options;
    let candle = device.open().map_err(ml_error)?;
    let (model, evaluation) =
        UpliftModel::train(&campaign, options, &candle, &control).map_err(ml_error)?;
    let algorithm = format!("{}/{}", options.learner.name(), options.base.name());
    let features = model
        .spec
        .transform
        .features
        .iter()
        .map(|f| format!("{} {}", f.name, f.type_name()))
        .collect();
    let TrainOptions {
        l2,
        hidden,
        epochs,
        batch_size,
        learning_rate,
        seed,
        trees,
        leaves,
        min_leaf,
    } = options.train.clone();
    let params = serde_json::json!({
        "treatment": job.treatment, "outcome": job.outcome, "learner": options.learner.name(),
        "base": algorithm.split('/').nth(1), "validation": options.validation, "l2": l2,
        "hidden": hidden, "epochs": epochs, "batch_size": batch_size,
        "learning_rate": learning_rate, "seed": seed, "device": device.to_string(),
        "trees": trees, "leaves": leaves, "min_leaf": min_leaf,
    });
    let metrics =
        serde_json::to_value(&evaluation).map_err(|e| DataFusionError::Internal(e.to_string()))?;
    let info = registry
        .save(NewModel {
            name: job.name.clone(),
            kind: "uplift".into(),
            algorithm: algorithm.clone(),
            features,
            params,
            metrics,
            training_rows: evaluation.training_rows,
            spec: serde_json::to_value(&model.spec)
                .map_err(|e| DataFusionError::Internal(e.to_string()))?,
            tensors: model.tensors().map_err(ml_error)?,
            score: evaluation.qini_auc,
            deploy: job.request.deploy,
        })
        .map_err(ml_error)?;
    Ok(RecordBatch::try_new(
        output_schema(),
        vec![
            Arc::new(StringArray::from(vec![info.name])),
            Arc::new(Int64Array::from(vec![info.version])),
            Arc::new(StringArray::from(vec![algorithm])),
            Arc::new(Int64Array::from(vec![evaluation.training_rows as i64])),
            Arc::new(Int64Array::from(vec![evaluation.validation_rows as i64])),
            Arc::new(Float64Array::from(vec![evaluation.qini_auc])),
            Arc::new(Float64Array::from(vec![evaluation.uplift_auc])),
            Arc::new(Float64Array::from(vec![evaluation.uplift_at_30])),
            Arc::new(BooleanArray::from(vec![info.deployed])),
            Arc::new(Float64Array::from(vec![started.elapsed().as_secs_f64()])),
        ],
    )?)
}

/// Whether `provider` is a call of this function (it changes state).
pub(super) fn is_call(provider: &dyn TableProvider) -> bool {
    provider.downcast_ref::<TrainTable>().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_unknown_keys() {
        let r =
            parse_options("learner = x, base = mlp, features = a b, validation = 0.2, seed = 7")
                .unwrap();
        assert_eq!(r.options.learner, Learner::X);
        assert_eq!(r.options.base, Base::Mlp);
        assert_eq!(r.features, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(r.options.train.seed, 7);
        assert!(
            parse_options("lerner = t")
                .unwrap_err()
                .to_string()
                .contains("unknown option")
        );
        assert!(parse_options("epochs = -1").is_err());
        assert!(parse_options("learner").is_err());
    }
}

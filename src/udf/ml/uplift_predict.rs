//! `uplift_predict(name, query [, version])`: the query's rows with the model's
//! `p_treated`, `p_control` and `uplift` appended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Column;
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::core::expr_fn::get_field;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col, lit};
use datafusion::physical_plan::ExecutionPlan;
use futures::StreamExt;

use super::uplift_score::{FrozenOutput, FrozenUpliftScore};
use super::{ml_error, session_device};
use crate::ml::runtime::{MlDevice, MlError, ModelInfo, ModelRegistry};
use crate::ml::uplift::{UpliftModel, UpliftSpec};
use crate::udf::query::{
    QueryFunctionBody, QueryFunctionExec, constant, constant_text, plan_query_now,
};

pub(super) const NAME: &str = "uplift_predict";

/// The columns appended to the query's.
pub(super) const SCORES: [&str; 3] = ["p_treated", "p_control", "uplift"];

fn bad_input(message: String) -> DataFusionError {
    ml_error(MlError::Input(format!("{NAME}: {message}")))
}

/// Loaded models by (name, version, device). A version never changes once stored, so
/// an entry never goes stale.
pub(super) type LoadedModels = Arc<Mutex<HashMap<(String, i64, String), Arc<UpliftModel>>>>;

/// The uplift model stored as `info`, on `device`, loaded once.
pub(super) fn load(
    registry: &ModelRegistry,
    loaded: &LoadedModels,
    info: &ModelInfo,
    device: MlDevice,
) -> Result<Arc<UpliftModel>, MlError> {
    let key = (info.name.clone(), info.version, device.to_string());
    if let Some(model) = loaded.lock().expect(crate::LOCK_POISONED).get(&key) {
        return Ok(model.clone());
    }
    let spec = uplift_spec(info)?;
    let weights = registry.weights(info)?;
    let model = Arc::new(UpliftModel::from_parts(spec, &weights, &device.open()?)?);
    loaded
        .lock()
        .expect(crate::LOCK_POISONED)
        .insert(key, model.clone());
    Ok(model)
}

pub(super) fn uplift_spec(info: &ModelInfo) -> Result<UpliftSpec, MlError> {
    if info.kind != "uplift" {
        return Err(MlError::Input(format!(
            "model \"{}\" is a {} model, not an uplift model",
            info.name, info.kind
        )));
    }
    serde_json::from_value(info.spec.clone()).map_err(|e| MlError::Store(e.to_string()))
}

#[derive(Debug)]
pub(super) struct UpliftPredict {
    pub registry: ModelRegistry,
    pub loaded: LoadedModels,
}

impl TableFunctionImpl for UpliftPredict {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(2..=3).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes 2 or 3 arguments (name, query [, version]), found {}",
                exprs.len()
            )));
        }
        let name = constant_text(&exprs[0], "model name", bad_input)?;
        let query = constant_text(&exprs[1], "query", bad_input)?;
        let version = match exprs.get(2) {
            None => None,
            Some(e) => match constant(e, "version", bad_input)? {
                ScalarValue::Int64(Some(v)) => Some(v),
                ScalarValue::Int32(Some(v)) => Some(i64::from(v)),
                other => {
                    return Err(bad_input(format!(
                        "the version must be an integer, found {other}"
                    )));
                }
            },
        };
        let info = self.registry.get(&name, version).map_err(ml_error)?;
        let spec = uplift_spec(&info).map_err(ml_error)?;
        let plan = plan_query_now(args.session(), &query, NAME, "the rows to score", bad_input)?;
        // Every feature must be there, with the training type family: said now, before
        // anything runs.
        let schema = plan.schema().as_arrow().clone();
        for feature in &spec.transform.features {
            let Ok(field) = schema.field_with_name(&feature.name) else {
                return Err(ml_error(MlError::Column {
                    column: feature.name.clone(),
                    message: format!(
                        "model \"{name}\" version {} needs this feature column, and the query \
                         does not return it",
                        info.version
                    ),
                }));
            };
            if !feature.accepts(field.data_type()) {
                return Err(ml_error(MlError::Column {
                    column: feature.name.clone(),
                    message: format!(
                        "the model was trained on a {}, the query returns {}",
                        feature.type_name(),
                        field.data_type()
                    ),
                }));
            }
        }
        for score in SCORES {
            if schema.field_with_name(score).is_ok() {
                return Err(bad_input(format!(
                    "the query already returns a column {score}; rename it"
                )));
            }
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| (**f).clone()).collect();
        fields.extend(SCORES.map(|s| Field::new(s, DataType::Float64, true)));
        Ok(Arc::new(PredictTable {
            registry: self.registry.clone(),
            loaded: self.loaded.clone(),
            info: Arc::new(info),
            plan,
            output: Arc::new(Schema::new(fields)),
        }))
    }
}

/// If `provider` is a call of `uplift_predict`: the same rows as a plan that carries the
/// model in it (its query's plan, with the scores appended by a frozen copy of the
/// model, see [`FrozenUpliftScore`]), which another process can run without the
/// registry. Its columns are the table's, in order.
pub fn frozen_plan(provider: &dyn TableProvider) -> Option<Result<LogicalPlan>> {
    let table = provider.downcast_ref::<PredictTable>()?;
    Some(table.frozen_plan())
}

#[derive(Debug)]
struct PredictTable {
    registry: ModelRegistry,
    loaded: LoadedModels,
    info: Arc<ModelInfo>,
    plan: LogicalPlan,
    output: SchemaRef,
}

impl PredictTable {
    fn frozen_plan(&self) -> Result<LogicalPlan> {
        const STRUCT: &str = "__martdb_uplift_scores";
        let weights = self.registry.weights_file(&self.info).map_err(ml_error)?;
        let spec = uplift_spec(&self.info).map_err(ml_error)?;
        let model = FrozenUpliftScore::udf((*self.info).clone(), weights, FrozenOutput::Scores);
        let args = std::iter::once(lit(self.info.name.as_str()))
            .chain(
                spec.transform
                    .features
                    .iter()
                    .map(|f| Expr::Column(Column::from_name(&f.name))),
            )
            .collect();
        let columns: Vec<Expr> = self
            .plan
            .schema()
            .columns()
            .into_iter()
            .map(Expr::Column)
            .collect();
        let scores = Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(model), args));
        let plan = LogicalPlanBuilder::from(self.plan.clone())
            .project(columns.iter().cloned().chain([scores.alias(STRUCT)]))?
            .build()?;
        let columns: Vec<Expr> = plan.schema().columns()[..columns.len()]
            .iter()
            .cloned()
            .map(Expr::Column)
            .collect();
        let scores = SCORES.map(|name| get_field(col(STRUCT), name).alias(name));
        LogicalPlanBuilder::from(plan)
            .project(columns.into_iter().chain(scores))?
            .build()
    }
}

#[async_trait]
impl TableProvider for PredictTable {
    fn schema(&self) -> SchemaRef {
        self.output.clone()
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
        let input = state.create_physical_plan(&self.plan).await?;
        let (registry, loaded, info, output) = (
            self.registry.clone(),
            self.loaded.clone(),
            self.info.clone(),
            self.output.clone(),
        );
        let body: QueryFunctionBody = Arc::new(move |rows, context| {
            let device = session_device(context.session_config().options())?;
            let model = load(&registry, &loaded, &info, device).map_err(ml_error)?;
            let output = output.clone();
            Ok(rows
                .map(move |batch| {
                    let batch = batch?;
                    let scores = model.predict(&batch).map_err(ml_error)?;
                    let mut columns = batch.columns().to_vec();
                    for values in [scores.p_treated, scores.p_control, scores.uplift] {
                        columns.push(Arc::new(Float64Array::from(values)));
                    }
                    Ok(RecordBatch::try_new(output.clone(), columns)?)
                })
                .boxed())
        });
        Ok(Arc::new(QueryFunctionExec::new(
            NAME,
            input,
            &self.output,
            projection,
            body,
        )?))
    }
}

//! `uplift_score(name, feature, ...)`: a model's uplift for each row, from the feature
//! values given in the model's training order (`martdb.models.features`).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::uplift_predict::{LoadedModels, load, uplift_spec};
use super::{ml_error, session_device};
use crate::ml::runtime::{FeatureKind, MlError, ModelRegistry};
use crate::udf::bitmap::finish;

pub(super) const NAME: &str = "uplift_score";

#[derive(Debug)]
pub struct UpliftScore {
    registry: ModelRegistry,
    loaded: LoadedModels,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for UpliftScore {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for UpliftScore {}

impl std::hash::Hash for UpliftScore {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

pub(super) fn udf(registry: ModelRegistry, loaded: LoadedModels) -> ScalarUDF {
    let documentation = Documentation::builder(
        super::SECTION,
        "The uplift the deployed version of an uplift model predicts for each row, from \
         its feature values in the model's training order (the `features` column of \
         `martdb.models`; numbers for numeric features, texts for text features). The \
         same score as `uplift_predict`'s `uplift`, for use inside any query. 42704 for an \
         unknown model, 22023 when the number or the types of the features do not fit.",
        "uplift_score(name, feature1 [, feature2, ...])",
    )
    .with_sql_example(
        "```sql\n> SELECT user_id, uplift_score('coupon_uplift', recency_days, frequency, \
         monetary, age, level, city) AS uplift FROM campaign ORDER BY uplift DESC LIMIT 3;\n```",
    )
    .with_argument("name", "The model's name (a constant).")
    .with_argument("feature1, ...", "The feature values, in the model's order.")
    .build();
    ScalarUDF::new_from_impl(UpliftScore {
        registry,
        loaded,
        signature: Signature::variadic_any(Volatility::Stable),
        documentation,
    })
}

fn bad(message: String) -> DataFusionError {
    ml_error(MlError::Input(format!("{NAME}: {message}")))
}

impl ScalarUDFImpl for UpliftScore {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        if arg_types.len() < 2 {
            return Err(DataFusionError::Plan(format!(
                "{NAME} takes a model name and its feature values, found {} arguments",
                arg_types.len()
            )));
        }
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match &args.args[0] {
            ColumnarValue::Scalar(
                ScalarValue::Utf8(Some(n))
                | ScalarValue::Utf8View(Some(n))
                | ScalarValue::LargeUtf8(Some(n)),
            ) => n.clone(),
            _ => return Err(bad("the model name must be a constant text".into())),
        };
        let info = self.registry.get(&name, None).map_err(ml_error)?;
        let spec = uplift_spec(&info).map_err(ml_error)?;
        let features = &spec.transform.features;
        let values = &args.args[1..];
        if values.len() != features.len() {
            return Err(bad(format!(
                "model \"{name}\" takes {} feature values ({}), found {}",
                features.len(),
                features
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                values.len()
            )));
        }
        let arrays: Vec<ArrayRef> = values
            .iter()
            .map(|v| v.to_array(args.number_rows))
            .collect::<Result<_>>()?;
        for (feature, array) in features.iter().zip(&arrays) {
            let t = array.data_type();
            let fits = match feature.kind {
                FeatureKind::Numeric { .. } => {
                    t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null)
                }
                FeatureKind::Categorical { .. } => {
                    crate::udf::query::is_text(t) || t == &DataType::Null
                }
            };
            if !fits {
                return Err(bad(format!(
                    "feature {} of model \"{name}\" is a {}, found {t}",
                    feature.name,
                    feature.type_name()
                )));
            }
        }
        let schema = Schema::new(
            features
                .iter()
                .zip(&arrays)
                .map(|(f, a)| Field::new(&f.name, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        let batch = RecordBatch::try_new(Arc::new(schema), arrays)?;
        let device = session_device(&args.config_options)?;
        let model = load(&self.registry, &self.loaded, &info, device).map_err(ml_error)?;
        let scores = model.predict(&batch).map_err(ml_error)?;
        let array = Float64Array::from(scores.uplift);
        finish(Arc::new(array), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

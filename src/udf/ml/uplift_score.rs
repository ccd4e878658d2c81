//! `uplift_score(name, feature, ...)`: a model's uplift for each row, from the feature
//! values given in the model's training order (`martdb.models.features`).

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::uplift_predict::{LoadedModels, SCORES, load, uplift_spec};
use super::{ml_error, session_device};
use crate::ml::runtime::{MlDevice, MlError, ModelInfo, ModelRegistry};
use crate::ml::uplift::UpliftModel;
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
        let name = model_name(&args.args[0])
            .ok_or_else(|| bad("the model name must be a constant text".into()))?;
        let info = self.registry.get(name, None).map_err(ml_error)?;
        let device = session_device(&args.config_options)?;
        let model = load(&self.registry, &self.loaded, &info, device).map_err(ml_error)?;
        let batch = feature_batch(name, &model, &args)?;
        score(&model, &batch, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

fn model_name(arg: &ColumnarValue) -> Option<&str> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(n))
            | ScalarValue::Utf8View(Some(n))
            | ScalarValue::LargeUtf8(Some(n)),
        ) => Some(n),
        _ => None,
    }
}

/// The feature values of a call (every argument after the name) as the batch the model
/// `name` reads, or 22023 when their number or types do not fit it. The features come
/// from the loaded model, so no batch parses the stored spec again.
fn feature_batch(
    name: &str,
    model: &UpliftModel,
    args: &ScalarFunctionArgs,
) -> Result<RecordBatch> {
    let features = &model.spec.transform.features;
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
        if !feature.accepts(t) {
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
    Ok(RecordBatch::try_new(Arc::new(schema), arrays)?)
}

fn score(
    model: &UpliftModel,
    batch: &RecordBatch,
    args: &[ColumnarValue],
) -> Result<ColumnarValue> {
    let scores = model.predict(batch).map_err(ml_error)?;
    finish(Arc::new(Float64Array::from(scores.uplift)), args)
}

/// `uplift_score` over one model version carried in the function itself instead of
/// read from a registry: what a call becomes to run in another process (a cluster's
/// executors), which has no registry. It holds the version that was deployed when the
/// call was frozen, as the registry form reads the deployed version when its statement
/// runs, so the shipped statement scores with the model the local one would have used.
///
/// [`encode`](Self::encode) and [`decode`](Self::decode) are its wire form: what it
/// returns (one byte), the model's metadata (JSON, length-prefixed) and its weights (the
/// safetensors file). Its other form returns `uplift_predict`'s three scores as a
/// struct, which is how a call of `uplift_predict` ships.
#[derive(Debug)]
pub struct FrozenUpliftScore {
    info: ModelInfo,
    weights: Vec<u8>,
    output: FrozenOutput,
    /// Built from `weights` by the first call, on the device it runs on.
    model: OnceLock<Arc<UpliftModel>>,
    signature: Signature,
}

/// What a frozen call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum FrozenOutput {
    /// The uplift, as `uplift_score`.
    Uplift,
    /// A struct of `uplift_predict`'s three columns (`p_treated`, `p_control`,
    /// `uplift`), from one pass of the model.
    Scores,
}

impl PartialEq for FrozenUpliftScore {
    fn eq(&self, other: &Self) -> bool {
        (&self.info.name, self.info.version, self.output)
            == (&other.info.name, other.info.version, other.output)
    }
}

impl Eq for FrozenUpliftScore {}

impl std::hash::Hash for FrozenUpliftScore {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (NAME, &self.info.name, self.info.version, self.output).hash(state)
    }
}

impl FrozenUpliftScore {
    /// `call` (a call of `uplift_score` over a registry, with `args`) with the model it
    /// names carried along, or `None` when it is not such a call or cannot be frozen
    /// (a name that is not a constant, an unknown model, features that do not fit):
    /// the call then runs where its registry is, and says what is wrong there.
    pub fn freeze(call: &ScalarUDF, args: &[Expr]) -> Option<ScalarUDF> {
        let registry_form = call.inner().downcast_ref::<UpliftScore>()?;
        let Some(Expr::Literal(
            ScalarValue::Utf8(Some(name))
            | ScalarValue::Utf8View(Some(name))
            | ScalarValue::LargeUtf8(Some(name)),
            _,
        )) = args.first()
        else {
            return None;
        };
        let info = registry_form.registry.get(name, None).ok()?;
        let spec = uplift_spec(&info).ok()?;
        if args.len() != spec.transform.features.len() + 1 {
            return None;
        }
        let weights = registry_form.registry.weights_file(&info).ok()?;
        Some(Self::udf(info, weights, FrozenOutput::Uplift))
    }

    pub(super) fn udf(info: ModelInfo, weights: Vec<u8>, output: FrozenOutput) -> ScalarUDF {
        ScalarUDF::new_from_impl(FrozenUpliftScore {
            info,
            weights,
            output,
            model: OnceLock::new(),
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }

    /// Whether `udf` is a frozen `uplift_score`.
    pub fn is(udf: &ScalarUDF) -> bool {
        udf.inner().is::<FrozenUpliftScore>()
    }

    /// Appends the wire form of `udf` to `buf` if it is a frozen `uplift_score`.
    pub fn encode(udf: &ScalarUDF, buf: &mut Vec<u8>) -> Result<bool> {
        let Some(frozen) = udf.inner().downcast_ref::<FrozenUpliftScore>() else {
            return Ok(false);
        };
        let info = serde_json::to_vec(&frozen.info)
            .map_err(|e| DataFusionError::Internal(format!("{NAME}: {e}")))?;
        buf.push(match frozen.output {
            FrozenOutput::Uplift => 0,
            FrozenOutput::Scores => 1,
        });
        buf.extend_from_slice(&(info.len() as u64).to_le_bytes());
        buf.extend_from_slice(&info);
        buf.extend_from_slice(&frozen.weights);
        Ok(true)
    }

    /// The function [`encode`](Self::encode) wrote to `buf`.
    pub fn decode(buf: &[u8]) -> Result<ScalarUDF> {
        let corrupt = |what: &str| {
            DataFusionError::Internal(format!("{NAME}: a corrupt frozen model ({what})"))
        };
        let (output, rest) = match buf.split_first() {
            Some((0, rest)) => (FrozenOutput::Uplift, rest),
            Some((1, rest)) => (FrozenOutput::Scores, rest),
            _ => return Err(corrupt("no output kind")),
        };
        let (length, rest) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt("no header"))?;
        let length = usize::try_from(u64::from_le_bytes(*length))
            .ok()
            .filter(|&n| n <= rest.len())
            .ok_or_else(|| corrupt("its header is longer than it"))?;
        let (info, weights) = rest.split_at(length);
        let info: ModelInfo = serde_json::from_slice(info).map_err(|e| corrupt(&e.to_string()))?;
        Ok(Self::udf(info, weights.to_vec(), output))
    }

    fn model(&self, device: MlDevice) -> Result<Arc<UpliftModel>> {
        if let Some(model) = self.model.get() {
            return Ok(model.clone());
        }
        let spec = uplift_spec(&self.info).map_err(ml_error)?;
        let tensors =
            candle_core::safetensors::load_buffer(&self.weights, &candle_core::Device::Cpu)
                .map_err(|e| {
                    ml_error(MlError::Store(format!(
                        "reading the weights of model \"{}\" version {}: {e}",
                        self.info.name, self.info.version
                    )))
                })?;
        let model = UpliftModel::from_parts(spec, &tensors, &device.open().map_err(ml_error)?)
            .map_err(ml_error)?;
        Ok(self.model.get_or_init(|| Arc::new(model)).clone())
    }
}

impl ScalarUDFImpl for FrozenUpliftScore {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.output {
            FrozenOutput::Uplift => DataType::Float64,
            FrozenOutput::Scores => DataType::Struct(score_fields()),
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let model = self.model(session_device(&args.config_options)?)?;
        let batch = feature_batch(&self.info.name, &model, &args)?;
        match self.output {
            FrozenOutput::Uplift => score(&model, &batch, &args.args),
            FrozenOutput::Scores => {
                let scores = model.predict(&batch).map_err(ml_error)?;
                let columns: Vec<ArrayRef> = [scores.p_treated, scores.p_control, scores.uplift]
                    .into_iter()
                    .map(|values| Arc::new(Float64Array::from(values)) as ArrayRef)
                    .collect();
                let array = StructArray::try_new(score_fields(), columns, None)?;
                finish(Arc::new(array), &args.args)
            }
        }
    }
}

fn score_fields() -> Fields {
    SCORES
        .iter()
        .map(|name| Field::new(*name, DataType::Float64, true))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            name: "m".into(),
            version: 3,
            kind: "uplift".into(),
            algorithm: "s_learner/linear".into(),
            features: vec!["x number".into()],
            params: serde_json::json!({}),
            metrics: serde_json::json!({}),
            trained_at: 0,
            training_rows: 10,
            spec: serde_json::json!({}),
            deployed: false,
        }
    }

    #[test]
    fn a_frozen_call_survives_its_wire_form() {
        for output in [FrozenOutput::Uplift, FrozenOutput::Scores] {
            let udf = FrozenUpliftScore::udf(info(), b"weights".to_vec(), output);
            let mut buf = Vec::new();
            assert!(FrozenUpliftScore::encode(&udf, &mut buf).unwrap());
            let back = FrozenUpliftScore::decode(&buf).unwrap();
            let back = back.inner().downcast_ref::<FrozenUpliftScore>().unwrap();
            assert_eq!(back.info, info());
            assert_eq!(back.weights, b"weights");
            assert_eq!(back.output, output);
        }
        // A function that goes by name writes nothing.
        let mut buf = Vec::new();
        let by_name = crate::udf::ml::functions().remove(0);
        assert!(!FrozenUpliftScore::encode(&by_name, &mut buf).unwrap());
        assert!(buf.is_empty());
    }

    #[test]
    fn a_corrupt_wire_form_is_an_error() {
        let udf = FrozenUpliftScore::udf(info(), vec![], FrozenOutput::Uplift);
        let mut good = Vec::new();
        FrozenUpliftScore::encode(&udf, &mut good).unwrap();
        let mut long_header = good.clone();
        long_header[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        let mut bad_json = good.clone();
        bad_json[9] = b'!';
        for buf in [&[][..], &[7], &good[..5], &long_header, &bad_json] {
            let err = FrozenUpliftScore::decode(buf).unwrap_err();
            assert!(err.to_string().contains("corrupt frozen model"), "{err}");
        }
    }
}

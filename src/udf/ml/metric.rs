//! The aggregate behind `qini_auc`, `uplift_auc` and `uplift_at_k`: it gathers
//! `(outcome, uplift, treatment)` of every row, then computes the metric of
//! [`crate::ml::uplift::metrics`] once. Rows with a NULL are skipped; a group with no
//! row, or without both treated and control rows, gives NULL.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion::physical_expr::expressions::Literal;

use super::{binary_value, ml_error};
use crate::ml::runtime::MlError;
use crate::ml::uplift::{self, AtKStrategy, Scored, TopK};

/// Which metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Metric {
    Qini,
    Auc,
    AtK,
}

#[derive(Debug)]
pub(super) struct UpliftMetric {
    name: &'static str,
    metric: Metric,
    signature: Signature,
    documentation: fn() -> &'static Documentation,
}

impl PartialEq for UpliftMetric {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for UpliftMetric {}

impl std::hash::Hash for UpliftMetric {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl UpliftMetric {
    pub(super) fn new(
        name: &'static str,
        metric: Metric,
        documentation: fn() -> &'static Documentation,
    ) -> Self {
        UpliftMetric {
            name,
            metric,
            signature: Signature::user_defined(Volatility::Immutable),
            documentation,
        }
    }

    fn arity(&self) -> &'static str {
        match self.metric {
            Metric::AtK => "4 or 5 arguments (outcome, uplift, treatment, k [, strategy])",
            _ => "3 arguments (outcome, uplift, treatment)",
        }
    }
}

/// The constant `k` (a share or a count) and strategy of `uplift_at_k`.
fn at_k_arguments(args: &AccumulatorArgs) -> Result<(TopK, AtKStrategy)> {
    let literal = |i: usize| {
        args.exprs
            .get(i)
            .and_then(|e| e.downcast_ref::<Literal>())
            .map(|l| l.value().clone())
    };
    let bad = |m: String| ml_error(MlError::Input(format!("uplift_at_k: {m}")));
    let k = match literal(3) {
        Some(ScalarValue::Float64(Some(v))) if v.fract() != 0.0 || v < 1.0 => TopK::Share(v),
        Some(ScalarValue::Float64(Some(v))) => TopK::Count(v as u64),
        Some(ScalarValue::Int64(Some(v))) if v > 0 => TopK::Count(v as u64),
        Some(other) => {
            return Err(bad(format!(
                "k must be a share in (0, 1) or a positive count, found {other}"
            )));
        }
        None => return Err(bad("k must be a constant".into())),
    };
    let strategy = match literal(4) {
        None => AtKStrategy::Overall,
        Some(ScalarValue::Utf8(Some(s))) => AtKStrategy::parse(&s).map_err(ml_error)?,
        Some(other) => return Err(bad(format!("the strategy must be a text, found {other}"))),
    };
    Ok((k, strategy))
}

impl AggregateUDFImpl for UpliftMetric {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let expected = match self.metric {
            Metric::AtK => 4..=5,
            _ => 3..=3,
        };
        if !expected.contains(&arg_types.len()) {
            return Err(DataFusionError::Plan(format!(
                "{} takes {}, found {}",
                self.name,
                self.arity(),
                arg_types.len()
            )));
        }
        let mut coerced = Vec::new();
        for (i, t) in arg_types.iter().enumerate() {
            let numeric = t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null);
            coerced.push(match i {
                0..=2 if numeric => DataType::Float64,
                3 if t.is_integer() => DataType::Int64,
                3 if numeric => DataType::Float64,
                4 => DataType::Utf8,
                _ => {
                    return Err(DataFusionError::Plan(format!(
                        "{} takes {}; argument {} is of type {t}",
                        self.name,
                        self.arity(),
                        i + 1
                    )));
                }
            });
        }
        Ok(coerced)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = |name: &str, item: DataType| {
            Arc::new(Field::new(
                format!("{}[{name}]", args.name),
                DataType::List(Arc::new(Field::new_list_field(item, false))),
                false,
            ))
        };
        Ok(vec![
            list("uplift", DataType::Float64),
            list("treated", DataType::Boolean),
            list("converted", DataType::Boolean),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let at_k = match self.metric {
            Metric::AtK => Some(at_k_arguments(&args)?),
            _ => None,
        };
        Ok(Box::new(MetricAccumulator {
            metric: self.metric,
            at_k,
            rows: Vec::new(),
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some((self.documentation)())
    }
}

#[derive(Debug)]
struct MetricAccumulator {
    metric: Metric,
    at_k: Option<(TopK, AtKStrategy)>,
    rows: Vec<Scored>,
}

fn floats(array: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(array, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl Accumulator for MetricAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let outcome = floats(&values[0])?;
        let score = floats(&values[1])?;
        let treatment = floats(&values[2])?;
        for row in 0..outcome.len() {
            if outcome.is_null(row) || score.is_null(row) || treatment.is_null(row) {
                continue;
            }
            self.rows.push(Scored {
                score: score.value(row),
                treated: binary_value(treatment.value(row), "treatment").map_err(ml_error)?,
                converted: binary_value(outcome.value(row), "outcome").map_err(ml_error)?,
            });
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let scores = states[0].as_list::<i32>();
        let treated = states[1].as_list::<i32>();
        let converted = states[2].as_list::<i32>();
        for i in 0..scores.len() {
            let s = scores.value(i);
            let t = treated.value(i);
            let c = converted.value(i);
            let (s, t, c) = (
                s.as_primitive::<Float64Type>(),
                t.as_boolean(),
                c.as_boolean(),
            );
            for j in 0..s.len() {
                self.rows.push(Scored {
                    score: s.value(j),
                    treated: t.value(j),
                    converted: c.value(j),
                });
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let n = self.rows.len();
        let offsets = OffsetBuffer::from_lengths([n]);
        let list = |values: ArrayRef, item: DataType| -> ScalarValue {
            ScalarValue::List(Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(item, false)),
                offsets.clone(),
                values,
                None,
            )))
        };
        Ok(vec![
            list(
                Arc::new(Float64Array::from_iter_values(
                    self.rows.iter().map(|r| r.score),
                )),
                DataType::Float64,
            ),
            list(
                Arc::new(BooleanArray::from_iter(
                    self.rows.iter().map(|r| Some(r.treated)),
                )),
                DataType::Boolean,
            ),
            list(
                Arc::new(BooleanArray::from_iter(
                    self.rows.iter().map(|r| Some(r.converted)),
                )),
                DataType::Boolean,
            ),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let both_groups =
            self.rows.iter().any(|r| r.treated) && self.rows.iter().any(|r| !r.treated);
        if !both_groups {
            return Ok(ScalarValue::Float64(None));
        }
        let value = match (self.metric, self.at_k) {
            (Metric::Qini, _) => uplift::qini_auc(&self.rows),
            (Metric::Auc, _) => uplift::uplift_auc(&self.rows),
            (Metric::AtK, Some((k, strategy))) => uplift::uplift_at_k(&self.rows, k, strategy),
            (Metric::AtK, None) => {
                return Err(DataFusionError::Internal(
                    "uplift_at_k without its k".into(),
                ));
            }
        }
        .map_err(ml_error)?;
        // An empty group in the top (uplift_at_k) has no rate: NULL, not NaN.
        Ok(ScalarValue::Float64(Some(value).filter(|v| !v.is_nan())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.rows.capacity() * std::mem::size_of::<Scored>()
    }
}

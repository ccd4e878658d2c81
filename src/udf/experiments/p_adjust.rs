//! `p_adjust(p, method) OVER (...)`: p-values adjusted for multiple testing across the
//! rows of each window partition ([`crate::ml::stats::adjust_p_values`]).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;

use crate::ml::stats::{AdjustMethod, adjust_p_values};

const NAME: &str = "p_adjust";

/// `p_adjust(p, method) OVER (...) -> double precision`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PAdjust {
    signature: Signature,
}

impl Default for PAdjust {
    fn default() -> Self {
        Self::new()
    }
}

impl PAdjust {
    pub fn new() -> Self {
        PAdjust {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The p-value of each row adjusted for testing all the rows of its window partition \
         at once: `bonferroni`, `holm` (step-down) or `fdr_bh` (Benjamini-Hochberg \
         step-up; also `BH`), with the values of statsmodels' `multipletests` and R's \
         `p.adjust`. A NULL p-value stays NULL and does not count; a p-value outside \
         [0, 1] or an unknown method is an error (22023). The window frame is ignored: \
         every row of the partition counts.",
        "p_adjust(p, method) OVER (PARTITION BY ...)",
    )
    .with_sql_example(
        "```sql\n> SELECT metric, p, p_adjust(p, 'holm') OVER () AS p_holm FROM results;\n```",
    )
    .with_argument("p", "The row's p-value.")
    .with_argument("method", "A constant: 'bonferroni', 'holm' or 'fdr_bh'.")
    .build()
});

impl WindowUDFImpl for PAdjust {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let method = args
            .input_exprs()
            .get(1)
            .and_then(|e| e.downcast_ref::<Literal>())
            .and_then(|l| match l.value() {
                ScalarValue::Utf8(Some(s))
                | ScalarValue::Utf8View(Some(s))
                | ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
                _ => None,
            })
            .ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "{NAME}: argument 2 (method) must be a constant text"
                ))
            })?;
        let method: AdjustMethod = method
            .parse()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Box::new(Adjuster { method }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[derive(Debug)]
struct Adjuster {
    method: AdjustMethod,
}

impl PartitionEvaluator for Adjuster {
    fn evaluate_all(&mut self, values: &[ArrayRef], _num_rows: usize) -> Result<ArrayRef> {
        let p = cast(&values[0], &DataType::Float64)?;
        let p: Vec<Option<f64>> = p.as_primitive::<Float64Type>().iter().collect();
        let adjusted =
            adjust_p_values(&p, self.method).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Arc::new(Float64Array::from(adjusted)))
    }
}

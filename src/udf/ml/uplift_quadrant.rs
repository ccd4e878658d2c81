//! `uplift_quadrant(p_treated, p_control [, response_threshold [, uplift_threshold]])`:
//! which of the four groups of uplift modelling a user falls in.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::ml_error;
use crate::ml::runtime::MlError;
use crate::udf::bitmap::{finish, row_count};

const NAME: &str = "uplift_quadrant";

/// A user who would convert without the treatment, at this probability or above, is a
/// sure thing (unless the treatment moves them by the uplift threshold).
pub const DEFAULT_RESPONSE_THRESHOLD: f64 = 0.5;
/// An uplift at least this large (or this negative) makes a persuadable (a sleeping dog).
pub const DEFAULT_UPLIFT_THRESHOLD: f64 = 0.02;

/// The quadrant of a user with these probabilities.
pub fn quadrant(p_treated: f64, p_control: f64, response: f64, uplift: f64) -> &'static str {
    let effect = p_treated - p_control;
    if effect >= uplift {
        "persuadable"
    } else if effect <= -uplift {
        "sleeping_dog"
    } else if p_control >= response {
        "sure_thing"
    } else {
        "lost_cause"
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The uplift quadrant of a user from the predicted probabilities of converting if \
         treated and if not (`uplift_predict`'s `p_treated` and `p_control`): \
         `persuadable` when `p_treated - p_control >= uplift_threshold` (treat them), \
         `sleeping_dog` when `p_treated - p_control <= -uplift_threshold` (never contact \
         them), otherwise `sure_thing` when `p_control >= response_threshold` (they convert \
         anyway: stop paying for them) and `lost_cause` below it. The thresholds default \
         to 0.5 and 0.02. NULL when a probability is NULL.",
        "uplift_quadrant(p_treated, p_control [, response_threshold [, uplift_threshold]])",
    )
    .with_sql_example(
        "```sql\n> SELECT uplift_quadrant(0.30, 0.10);\n+-------------+\n| persuadable |\n+-------------+\n```",
    )
    .with_argument("p_treated", "The probability of converting if treated, in [0, 1].")
    .with_argument("p_control", "The probability of converting if not treated, in [0, 1].")
    .with_argument("response_threshold", "Optional, default 0.5.")
    .with_argument("uplift_threshold", "Optional, default 0.02; at least 0.")
    .build()
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UpliftQuadrant {
    signature: Signature,
}

pub(super) fn udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(UpliftQuadrant {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

impl ScalarUDFImpl for UpliftQuadrant {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(2..=4).contains(&arg_types.len()) {
            return Err(DataFusionError::Plan(format!(
                "{NAME} takes 2 to 4 arguments (p_treated, p_control [, response_threshold \
                 [, uplift_threshold]]), found {}",
                arg_types.len()
            )));
        }
        if let Some(t) = arg_types
            .iter()
            .find(|t| !(t.is_numeric() || **t == DataType::Null))
        {
            return Err(DataFusionError::Plan(format!(
                "{NAME} takes numbers, found {t}"
            )));
        }
        Ok(vec![DataType::Float64; arg_types.len()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // One row when every argument is a constant (the arrays then have one value).
        let rows = row_count(&args.args, args.number_rows);
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let floats: Vec<_> = arrays
            .iter()
            .map(|a| {
                Ok(cast(a, &DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone())
            })
            .collect::<Result<_>>()?;
        let threshold = |i: usize, default: f64, row: usize| {
            floats
                .get(i)
                .map_or(Some(default), |a| (!a.is_null(row)).then(|| a.value(row)))
        };
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            let (pt, pc) = (&floats[0], &floats[1]);
            let (Some(response), Some(uplift)) = (
                threshold(2, DEFAULT_RESPONSE_THRESHOLD, row),
                threshold(3, DEFAULT_UPLIFT_THRESHOLD, row),
            ) else {
                out.push(None);
                continue;
            };
            if pt.is_null(row) || pc.is_null(row) {
                out.push(None);
                continue;
            }
            let (t, c) = (pt.value(row), pc.value(row));
            if !(0.0..=1.0).contains(&t)
                || !(0.0..=1.0).contains(&c)
                || uplift.is_nan()
                || uplift < 0.0
            {
                return Err(ml_error(MlError::Input(format!(
                    "{NAME}: probabilities must be in [0, 1] and the uplift threshold at \
                     least 0, found p_treated {t}, p_control {c}, uplift_threshold {uplift}"
                ))));
            }
            out.push(Some(quadrant(t, c, response, uplift)));
        }
        let array = Arc::new(StringArray::from(out));
        finish(array, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_four_quadrants() {
        assert_eq!(quadrant(0.30, 0.10, 0.5, 0.02), "persuadable");
        assert_eq!(quadrant(0.60, 0.80, 0.5, 0.02), "sleeping_dog");
        assert_eq!(quadrant(0.91, 0.90, 0.5, 0.02), "sure_thing");
        assert_eq!(quadrant(0.05, 0.05, 0.5, 0.02), "lost_cause");
    }
}

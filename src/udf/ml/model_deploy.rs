//! `model_deploy(name, version)`: makes a stored version the one predictions use.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};

use super::ml_error;
use crate::ml::runtime::ModelRegistry;
use crate::udf::bitmap::{finish, row_count};

pub(super) const NAME: &str = "model_deploy";

#[derive(Debug)]
pub struct ModelDeploy {
    registry: ModelRegistry,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for ModelDeploy {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ModelDeploy {}

impl std::hash::Hash for ModelDeploy {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

pub(super) fn udf(registry: ModelRegistry) -> ScalarUDF {
    let documentation = Documentation::builder(
        super::SECTION,
        "Deploys a stored version of a model: `uplift_predict` without a version then \
         uses it. Deploying an older version is a rollback; nothing is retrained or \
         deleted. Returns the version. Durable when the statement returns; 42704 for a \
         model or version that does not exist. Changes state: not allowed in a read-only \
         session.",
        "model_deploy(name, version)",
    )
    .with_sql_example(
        "```sql\n> SELECT model_deploy('coupon_uplift', 1);\n+---+\n| 1 |\n+---+\n```",
    )
    .with_argument("name", "The model's name.")
    .with_argument("version", "A version listed in martdb.models.")
    .build();
    ScalarUDF::new_from_impl(ModelDeploy {
        registry,
        signature: Signature::user_defined(Volatility::Volatile),
        documentation,
    })
}

impl ScalarUDFImpl for ModelDeploy {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [_, v] if v.is_integer() || *v == DataType::Null => {
                Ok(vec![DataType::Utf8, DataType::Int64])
            }
            _ => Err(DataFusionError::Plan(format!(
                "{NAME} takes (name text, version integer), found {arg_types:?}"
            ))),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = cast(&arrays[0], &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let versions = cast(&arrays[1], &DataType::Int64)?;
        let versions = versions.as_primitive::<Int64Type>();
        // One row when every argument is a constant: a constant deploy runs once.
        let rows = row_count(&args.args, args.number_rows);
        let mut out = Vec::with_capacity(rows);
        for row in 0..rows {
            if names.is_null(row) || versions.is_null(row) {
                out.push(None);
                continue;
            }
            let info = self
                .registry
                .deploy(names.value(row), versions.value(row))
                .map_err(ml_error)?;
            out.push(Some(info.version));
        }
        let array = Int64Array::from(out);
        finish(Arc::new(array), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

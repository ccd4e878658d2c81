//! `audience_drop(name)`: removes a saved audience.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, BooleanBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::audiences::{AudienceHandle, external};
use super::{coerce_text, finish, row_count};

const NAME: &str = "audience_drop";

#[derive(Debug)]
pub struct AudienceDrop {
    handle: AudienceHandle,
    signature: Signature,
}

impl AudienceDrop {
    pub fn new(handle: AudienceHandle) -> Self {
        AudienceDrop {
            handle,
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }
}

impl PartialEq for AudienceDrop {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for AudienceDrop {}

impl std::hash::Hash for AudienceDrop {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Removes a saved audience; true when it existed, false when there was none; NULL \
         for NULL.",
        "audience_drop(name)",
    )
    .with_sql_example(
        "```sql\n> SELECT audience_drop('shoe_buyers');\n+------+\n| true |\n+------+\n```",
    )
    .with_argument("name", "The audience's name.")
    .build()
});

impl ScalarUDFImpl for AudienceDrop {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_text(NAME, arg_types, &["name"])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let names = args.args[0].to_array(rows)?;
        let names = names.as_string::<i32>();
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..rows {
            if names.is_null(row) {
                out.append_null();
            } else {
                let existed = self
                    .handle
                    .store
                    .drop_audience(names.value(row))
                    .map_err(external)?;
                out.append_value(existed);
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

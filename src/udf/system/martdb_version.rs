//! `martdb_version()`: the version of the running engine.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `martdb_version() -> text`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MartdbVersion {
    signature: Signature,
}

impl Default for MartdbVersion {
    fn default() -> Self {
        Self::new()
    }
}

impl MartdbVersion {
    pub fn new() -> Self {
        MartdbVersion {
            signature: Signature::nullary(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Returns the version of the martdb engine answering the query.",
        "martdb_version()",
    )
    .with_sql_example("```sql\n> SELECT martdb_version();\n+------------------+\n| martdb_version() |\n+------------------+\n| 0.1.0            |\n+------------------+\n```")
    .build()
});

impl ScalarUDFImpl for MartdbVersion {
    fn name(&self) -> &str {
        "martdb_version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
            env!("CARGO_PKG_VERSION").to_string(),
        ))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    #[tokio::test]
    async fn returns_the_crate_version() {
        let ctx = SessionContext::new();
        ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(
            MartdbVersion::new(),
        ));
        let batches = ctx
            .sql("SELECT martdb_version() AS v")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let value =
            datafusion::arrow::util::display::array_value_to_string(batches[0].column(0), 0)
                .unwrap();
        assert_eq!(value, env!("CARGO_PKG_VERSION"));
    }
}

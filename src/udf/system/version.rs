//! `version()`: the PostgreSQL-style version string. Drivers and BI tools (pgjdbc,
//! Metabase, DBeaver, SQLAlchemy) parse "PostgreSQL <major>.<minor>" out of it to pick
//! their catalog queries, so it leads with the PostgreSQL version martdb answers as.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `version() -> text`, e.g. `PostgreSQL 15.0 (martdb 0.1.0) on x86_64-linux, ...`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Version {
    signature: Signature,
}

impl Default for Version {
    fn default() -> Self {
        Self::new()
    }
}

impl Version {
    pub fn new() -> Self {
        Version {
            signature: Signature::nullary(Volatility::Immutable),
        }
    }

    /// The string `version()` returns.
    pub fn text() -> String {
        format!(
            "PostgreSQL {} (martdb {}) on {}-{}, 64-bit",
            crate::session::SERVER_VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::ARCH,
            std::env::consts::OS,
        )
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Returns the server version in PostgreSQL's format, naming the PostgreSQL \
         version martdb is compatible with and the martdb version.",
        "version()",
    )
    .with_sql_example("```sql\n> SELECT version();\n+------------------------------------------------------------+\n| version()                                                  |\n+------------------------------------------------------------+\n| PostgreSQL 15.0 (martdb 0.1.0) on x86_64-linux, 64-bit     |\n+------------------------------------------------------------+\n```")
    .build()
});

impl ScalarUDFImpl for Version {
    fn name(&self) -> &str {
        "version"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(Self::text()))))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leads_with_the_postgres_version_drivers_parse() {
        assert!(Version::text().starts_with("PostgreSQL 15.0 (martdb "));
    }
}

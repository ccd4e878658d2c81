//! `to_regtype(name)`: the OID of a type by name, NULL when there is no such type (no
//! error). Drivers probe for optional types with it (SQLAlchemy looks up `hstore` on
//! every connection).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Int32Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// The built-in types martdb's columns map to, with PostgreSQL's OIDs and aliases.
const TYPES: &[(&[&str], i32)] = &[
    (&["boolean", "bool"], 16),
    (&["bytea"], 17),
    (&["bigint", "int8"], 20),
    (&["smallint", "int2"], 21),
    (&["integer", "int", "int4"], 23),
    (&["text"], 25),
    (&["json"], 114),
    (&["real", "float4"], 700),
    (&["double precision", "float8"], 701),
    (&["character varying", "varchar"], 1043),
    (&["date"], 1082),
    (&["time", "time without time zone"], 1083),
    (&["timestamp", "timestamp without time zone"], 1114),
    (&["timestamptz", "timestamp with time zone"], 1184),
    (&["interval"], 1186),
    (&["numeric", "decimal"], 1700),
    (&["uuid"], 2950),
    (&["jsonb"], 3802),
];

fn oid_of(name: &str) -> Option<i32> {
    let name = name
        .trim()
        .trim_start_matches("pg_catalog.")
        .to_ascii_lowercase();
    TYPES
        .iter()
        .find(|(names, _)| names.contains(&name.as_str()))
        .map(|(_, oid)| *oid)
}

/// `to_regtype(text) -> oid` (as int4).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToRegtype {
    signature: Signature,
}

impl Default for ToRegtype {
    fn default() -> Self {
        Self::new()
    }
}

impl ToRegtype {
    pub fn new() -> Self {
        ToRegtype {
            signature: Signature::string(1, Volatility::Stable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "PostgreSQL compatibility: the OID of the named built-in type, or NULL when martdb \
         has no such type (instead of an error).",
        "to_regtype(name)",
    )
    .with_sql_example("```sql\n> SELECT to_regtype('bigint'), to_regtype('hstore');\n+----+------+\n| 20 | NULL |\n+----+------+\n```")
    .with_argument("name", "A type name such as 'bigint', 'int8' or 'timestamp with time zone'.")
    .build()
});

impl ScalarUDFImpl for ToRegtype {
    fn name(&self) -> &str {
        "to_regtype"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Scalar(scalar) => Ok(ColumnarValue::Scalar(ScalarValue::Int32(
                scalar.try_as_str().flatten().and_then(oid_of),
            ))),
            ColumnarValue::Array(array) => {
                let array = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
                let names = array.as_string::<i32>();
                let mut out = Int32Builder::with_capacity(names.len());
                for i in 0..names.len() {
                    out.append_option(
                        (!names.is_null(i))
                            .then(|| oid_of(names.value(i)))
                            .flatten(),
                    );
                }
                Ok(ColumnarValue::Array(Arc::new(out.finish())))
            }
        }
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::oid_of;

    #[test]
    fn known_types_and_aliases_have_postgres_oids() {
        assert_eq!(oid_of("int8"), Some(20));
        assert_eq!(oid_of("pg_catalog.TIMESTAMP WITH TIME ZONE"), Some(1184));
        assert_eq!(oid_of("hstore"), None);
    }
}

//! `audience_save(name, definition)` and `audience_refresh(name)`: compute an audience's
//! bitmap by running its defining query, and save it under its name.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::not_impl_err;
use datafusion::error::Result;
use datafusion::logical_expr::async_udf::AsyncScalarUDFImpl;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::audiences::{AudienceCallError, AudienceHandle, external};
use super::{finish, row_count};

#[derive(Debug)]
pub struct AudienceSave {
    name: &'static str,
    handle: AudienceHandle,
    signature: Signature,
    documentation: Documentation,
}

impl PartialEq for AudienceSave {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for AudienceSave {}

impl std::hash::Hash for AudienceSave {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state)
    }
}

impl AudienceSave {
    pub fn save(handle: AudienceHandle) -> Self {
        AudienceSave {
            name: "audience_save",
            handle,
            // Volatile: it writes, once per call, never folded away. (Async functions do
            // not get `coerce_types`: the signature says what they take.)
            signature: Signature::string(2, Volatility::Volatile),
            documentation: Documentation::builder(
                super::SECTION,
                "Runs `definition` (a query returning one bitmap: one row, one bytea \
                 column), saves the result under `name` with the definition and the time, \
                 replacing any audience of that name, and returns its cardinality. The \
                 save is durable when the statement returns; the audience is listed in \
                 `martdb.audiences` and read back with `audience(name)`.",
                "audience_save(name, definition)",
            )
            .with_sql_example(
                "```sql\n> SELECT audience_save('shoe_buyers',\n    'SELECT group_bitmap_state(user_id) FROM orders WHERE category = ''shoes''');\n+------+\n| 1234 |\n+------+\n```",
            )
            .with_argument("name", "The audience's name.")
            .with_argument("definition", "The SQL query that computes its bitmap.")
            .build(),
        }
    }

    pub fn refresh(handle: AudienceHandle) -> Self {
        AudienceSave {
            name: "audience_refresh",
            handle,
            signature: Signature::string(1, Volatility::Volatile),
            documentation: Documentation::builder(
                super::SECTION,
                "Runs a saved audience's definition again, saves the new members and \
                 refresh time, and returns the new cardinality. An error (42704) when there \
                 is no audience of that name. To refresh every audience: \
                 `SELECT name, audience_refresh(name) FROM martdb.audiences`.",
                "audience_refresh(name)",
            )
            .with_sql_example(
                "```sql\n> SELECT audience_refresh('shoe_buyers');\n+------+\n| 1240 |\n+------+\n```",
            )
            .with_argument("name", "The audience's name.")
            .build(),
        }
    }

    async fn save_one(&self, name: &str, definition: Option<&str>) -> Result<u64> {
        let function = self.name;
        if name.is_empty() {
            return Err(external(AudienceCallError::EmptyName { function }));
        }
        let definition = match definition {
            Some(d) => d.to_string(),
            None => match self.handle.store.get(name).map_err(external)? {
                Some((info, _)) => info.definition,
                None => {
                    return Err(external(AudienceCallError::NotFound {
                        name: name.to_string(),
                    }));
                }
            },
        };
        let bitmap = self.handle.run(function, &definition).await?;
        let info = self
            .handle
            .store
            .save(name, &definition, &bitmap)
            .map_err(external)?;
        Ok(info.cardinality)
    }
}

impl ScalarUDFImpl for AudienceSave {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        not_impl_err!("{} runs asynchronously", self.name)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for AudienceSave {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let text = |value: &ColumnarValue| cast(&value.to_array(rows)?, &DataType::Utf8);
        let names = text(&args.args[0])?;
        let names = names.as_string::<i32>();
        let definitions = args.args.get(1).map(text).transpose()?;
        let mut out = Int64Builder::with_capacity(rows);
        for row in 0..rows {
            let definition = match &definitions {
                Some(d) if d.is_null(row) => None,
                Some(d) => Some(Some(d.as_string::<i32>().value(row))),
                None => Some(None),
            };
            match (names.is_valid(row), definition) {
                (true, Some(definition)) => {
                    let count = self.save_one(names.value(row), definition).await?;
                    out.append_value(count as i64);
                }
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }
}

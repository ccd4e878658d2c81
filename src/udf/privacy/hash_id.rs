//! `hash_id(id, key_name)`: [`crate::privacy::HashKeys::hash_id`].

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{finish, map_text};
use crate::privacy::{HashKeys, PrivacyError};

/// `hash_id(id, key_name) -> text`, over the configured keys.
#[derive(Debug)]
pub struct HashId {
    signature: Signature,
    keys: HashKeys,
}

impl PartialEq for HashId {
    fn eq(&self, _other: &Self) -> bool {
        // One per engine; two engines' keys are not compared (nor exposed).
        false
    }
}

impl Eq for HashId {}

impl std::hash::Hash for HashId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "hash_id".hash(state)
    }
}

impl HashId {
    pub fn new(keys: HashKeys) -> Self {
        HashId {
            signature: Signature::any(2, Volatility::Immutable),
            keys,
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "A pseudonym for an identifier: HMAC-SHA-256 of the id's text under the secret \
         key `key_name`, as 64 hex digits. The same id and key always give the same \
         pseudonym, so pseudonymised tables still join and count; without the key it \
         cannot be reversed or recomputed. Keys are configured under `[hash_keys]` in \
         the server configuration (`name = \"hex:...\"`, at least 32 bytes) and never \
         appear in SQL. An unknown key name is an error (42704); NULL gives NULL.",
        "hash_id(id, key_name)",
    )
    .with_sql_example(
        "```sql\n> SELECT hash_id(user_id, 'crm') AS pseudonym, sum(amount) FROM orders GROUP BY 1;\n```",
    )
    .with_argument("id", "The identifier; any type, hashed as its text.")
    .with_argument("key_name", "The name of a configured key.")
    .build()
});

impl ScalarUDFImpl for HashId {
    fn name(&self) -> &str {
        "hash_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let ids = cast(&args.args[0].to_array(rows)?, &DataType::Utf8)?;
        let names = cast(&args.args[1].to_array(rows)?, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let hashed = map_text(&ids, |row, id| {
            if names.is_null(row) {
                return Err(PrivacyError::UnknownKey {
                    name: "NULL".into(),
                });
            }
            self.keys.hash_id(names.value(row), id)
        })?;
        finish(hashed, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `audience(name)`: a saved audience's bitmap.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, BinaryBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::audiences::{AudienceCallError, AudienceHandle, external};
use super::{coerce_text, finish, row_count};

const NAME: &str = "audience";

#[derive(Debug)]
pub struct Audience {
    handle: AudienceHandle,
    signature: Signature,
}

impl Audience {
    pub fn new(handle: AudienceHandle) -> Self {
        Audience {
            handle,
            signature: Signature::user_defined(Volatility::Stable),
        }
    }
}

impl PartialEq for Audience {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Audience {}

impl std::hash::Hash for Audience {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The bitmap of a saved audience (see `audience_save`); an error (42704) when there \
         is no audience of that name; NULL for NULL. Its members as rows: \
         `SELECT * FROM unnest(bitmap_to_array(audience('name')))`.",
        "audience(name)",
    )
    .with_sql_example(
        "```sql\n> SELECT bitmap_cardinality(audience('shoe_buyers'));\n+------+\n| 1234 |\n+------+\n```",
    )
    .with_argument("name", "The audience's name.")
    .build()
});

impl ScalarUDFImpl for Audience {
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
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let names = args.args[0].to_array(rows)?;
        let names = names.as_string::<i32>();
        let mut out = BinaryBuilder::new();
        for row in 0..rows {
            if names.is_null(row) {
                out.append_null();
                continue;
            }
            let name = names.value(row);
            match self.handle.store.get(name).map_err(external)? {
                Some((_, bitmap)) => out.append_value(bitmap.to_bytes()),
                None => {
                    return Err(external(AudienceCallError::NotFound {
                        name: name.to_string(),
                    }));
                }
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `bitmap_build(ids)`: the bitmap of an array of ids.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::BinaryBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, IntArrayArg, Kind, coerce, finish, row_count, write_bitmap};
use crate::bitmap::BitmapBuilder;

const NAME: &str = "bitmap_build";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapBuild {
    signature: Signature,
    aliases: Vec<String>,
}

impl BitmapBuild {
    pub fn new() -> Self {
        BitmapBuild {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["bitmapbuild".to_string()],
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The bitmap of an array of ids (ClickHouse `bitmapBuild`). Duplicates collapse; \
         NULL elements are skipped; a NULL array gives NULL; a negative id is an error.",
        "bitmap_build(ids)",
    )
    .with_sql_example(
        "```sql\n> SELECT bitmap_to_array(bitmap_build([3, 1, 3]));\n+--------+\n| [1, 3] |\n+--------+\n```",
    )
    .with_argument("ids", "An array of non-negative integers (up to 2^64-1).")
    .build()
});

impl ScalarUDFImpl for BitmapBuild {
    fn name(&self) -> &str {
        NAME
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(NAME, arg_types, &[("ids", Kind::IntegerArray)])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let ids = IntArrayArg::new(&args.args[0], rows, ArgRef::new(NAME, 1, "ids"))?;
        let mut out = BinaryBuilder::with_capacity(rows, rows * 16);
        let mut bytes = Vec::new();
        for row in 0..rows {
            let mut builder = BitmapBuilder::default();
            if ids.for_each(row, |id| builder.add(id))? {
                bytes.clear();
                write_bitmap(builder.finish(), &mut bytes);
                out.append_value(&bytes);
            } else {
                out.append_null();
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

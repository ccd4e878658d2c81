//! `bitmap_to_array(bitmap)`: the ids of a bitmap, ascending.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Int64Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, Kind, coerce, finish, id_out, row_count};

const NAME: &str = "bitmap_to_array";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapToArray {
    signature: Signature,
    aliases: Vec<String>,
}

impl BitmapToArray {
    pub fn new() -> Self {
        BitmapToArray {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["bitmaptoarray".to_string()],
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The ids of a bitmap as a bigint array, ascending (ClickHouse `bitmapToArray`). \
         NULL gives NULL. To get one row per member: `unnest(bitmap_to_array(b))`.",
        "bitmap_to_array(bitmap)",
    )
    .with_sql_example(
        "```sql\n> SELECT bitmap_to_array(bitmap_build([5, 2]));\n+--------+\n| [2, 5] |\n+--------+\n```",
    )
    .with_argument("bitmap", "A bitmap (bytea).")
    .build()
});

impl ScalarUDFImpl for BitmapToArray {
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
        coerce(NAME, arg_types, &[("bitmap", Kind::Bitmap)])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(
            DataType::Int64,
            true,
        ))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let arg = ArgRef::new(NAME, 1, "bitmap");
        let bitmaps = BitmapArg::new(&args.args[0], arg)?;
        let mut out = ListBuilder::new(Int64Builder::new());
        for row in 0..rows {
            let Some(bitmap) = bitmaps.get(row)? else {
                out.append_null();
                continue;
            };
            let mut failed = None;
            bitmap.for_each_chunk(|ids| {
                for &id in ids {
                    match id_out(arg, id) {
                        Ok(id) => out.values().append_value(id),
                        Err(e) => failed = failed.take().or(Some(e)),
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            out.append(true);
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

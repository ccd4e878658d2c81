//! `bitmap_transform(bitmap, from, to)`: replaces ids, pair by pair.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::BinaryBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, IntArrayArg, Kind, coerce, finish, row_count, write_bitmap};

const NAME: &str = "bitmap_transform";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapTransform {
    signature: Signature,
    aliases: Vec<String>,
}

impl BitmapTransform {
    pub fn new() -> Self {
        BitmapTransform {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["bitmaptransform".to_string()],
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "Replaces ids (ClickHouse `bitmapTransform`): for each pair in turn, when \
         `from[i]` is in the bitmap it is removed and `to[i]` added, so later pairs see \
         earlier replacements. The arrays must have the same length. NULL in any argument \
         gives NULL.",
        "bitmap_transform(bitmap, from, to)",
    )
    .with_sql_example(
        "```sql\n> SELECT bitmap_to_array(bitmap_transform(bitmap_build([1, 2, 3]), [2, 7], [20, 70]));\n+-------------+\n| [1, 3, 20] |\n+-------------+\n```",
    )
    .with_argument("bitmap", "A bitmap (bytea).")
    .with_argument("from", "An array of ids to replace.")
    .with_argument("to", "An array of the same length: the replacements.")
    .build()
});

impl ScalarUDFImpl for BitmapTransform {
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
        coerce(
            NAME,
            arg_types,
            &[
                ("bitmap", Kind::Bitmap),
                ("from", Kind::IntegerArray),
                ("to", Kind::IntegerArray),
            ],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let bitmaps = BitmapArg::new(&args.args[0], ArgRef::new(NAME, 1, "bitmap"))?;
        let from = IntArrayArg::new(&args.args[1], rows, ArgRef::new(NAME, 2, "from"))?;
        let to_arg = ArgRef::new(NAME, 3, "to");
        let to = IntArrayArg::new(&args.args[2], rows, to_arg)?;
        let mut out = BinaryBuilder::new();
        let mut bytes = Vec::new();
        for row in 0..rows {
            let (Some(bitmap), Some(from), Some(to)) =
                (bitmaps.get(row)?, from.get(row)?, to.get(row)?)
            else {
                out.append_null();
                continue;
            };
            let replaced = bitmap.transform(&from, &to).map_err(|e| to_arg.error(e))?;
            bytes.clear();
            write_bitmap(replaced, &mut bytes);
            out.append_value(&bytes);
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

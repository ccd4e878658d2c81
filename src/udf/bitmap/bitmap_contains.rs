//! `bitmap_contains(bitmap, id)`: whether a bitmap holds an id.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::BooleanBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, IntArg, Kind, coerce, finish, row_count};

const NAME: &str = "bitmap_contains";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapContains {
    signature: Signature,
    aliases: Vec<String>,
}

impl BitmapContains {
    pub fn new() -> Self {
        BitmapContains {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["bitmapcontains".to_string()],
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "True when the bitmap holds the id (ClickHouse `bitmapContains`, which answers 1 \
         or 0). NULL in either argument gives NULL; a negative id is an error. With a \
         constant bitmap, the bitmap is read once for all rows, so this is the fast way to \
         filter rows by audience membership.",
        "bitmap_contains(bitmap, id)",
    )
    .with_sql_example(
        "```sql\n> SELECT bitmap_contains(bitmap_build([1, 5]), 5);\n+------+\n| true |\n+------+\n```",
    )
    .with_argument("bitmap", "A bitmap (bytea).")
    .with_argument("id", "A non-negative integer.")
    .build()
});

impl ScalarUDFImpl for BitmapContains {
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
            &[("bitmap", Kind::Bitmap), ("id", Kind::Integer)],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let bitmaps = BitmapArg::new(&args.args[0], ArgRef::new(NAME, 1, "bitmap"))?;
        let ids = IntArg::new(&args.args[1], ArgRef::new(NAME, 2, "id"))?;
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..rows {
            let id = ids.get(row)?;
            match (bitmaps.get(row)?, id) {
                (Some(bitmap), Some(id)) => out.append_value(bitmap.contains(id)),
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

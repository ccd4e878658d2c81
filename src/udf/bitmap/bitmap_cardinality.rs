//! `bitmap_cardinality(bitmap)`: how many ids a bitmap holds.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Int64Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, Kind, coerce, finish, row_count};

const NAME: &str = "bitmap_cardinality";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapCardinality {
    signature: Signature,
    aliases: Vec<String>,
}

impl BitmapCardinality {
    pub fn new() -> Self {
        BitmapCardinality {
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec!["bitmapcardinality".to_string()],
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The number of ids in a bitmap, as bigint (ClickHouse `bitmapCardinality`). NULL \
         gives NULL; the empty bitmap gives 0.",
        "bitmap_cardinality(bitmap)",
    )
    .with_sql_example(
        "```sql\n> SELECT bitmap_cardinality(bitmap_build([1, 2, 2]));\n+---+\n| 2 |\n+---+\n```",
    )
    .with_argument("bitmap", "A bitmap (bytea).")
    .build()
});

impl ScalarUDFImpl for BitmapCardinality {
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
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let bitmaps = BitmapArg::new(&args.args[0], ArgRef::new(NAME, 1, "bitmap"))?;
        let mut out = Int64Builder::with_capacity(rows);
        for row in 0..rows {
            out.append_option(bitmaps.get(row)?.map(|b| b.cardinality() as i64));
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

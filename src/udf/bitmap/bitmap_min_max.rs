//! `bitmap_min(bitmap)` and `bitmap_max(bitmap)`: the smallest and largest id.

use std::sync::Arc;

use datafusion::arrow::array::Int64Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, Kind, coerce, finish, id_out, row_count};

/// ClickHouse's `bitmapMin` of an empty 32-bit bitmap. An empty bitmap has no width in
/// martdb (it is stored as 32-bit), so this is the answer for every empty bitmap.
const EMPTY_MIN: u64 = u32::MAX as u64;
/// ClickHouse's `bitmapMax` of an empty bitmap.
const EMPTY_MAX: u64 = 0;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapMinMax {
    name: &'static str,
    largest: bool,
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

impl BitmapMinMax {
    pub fn min() -> Self {
        Self::new(
            "bitmap_min",
            "bitmapmin",
            false,
            "The smallest id of a bitmap (ClickHouse `bitmapMin`); 4294967295 (ClickHouse's \
             value for an empty 32-bit bitmap) when it is empty; NULL for NULL.",
        )
    }

    pub fn max() -> Self {
        Self::new(
            "bitmap_max",
            "bitmapmax",
            true,
            "The largest id of a bitmap (ClickHouse `bitmapMax`); 0 when it is empty; NULL \
             for NULL.",
        )
    }

    fn new(name: &'static str, alias: &str, largest: bool, description: &str) -> Self {
        BitmapMinMax {
            name,
            largest,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![alias.to_string()],
            documentation: Documentation::builder(
                super::SECTION,
                description,
                format!("{name}(bitmap)"),
            )
            .with_sql_example(format!(
                "```sql\n> SELECT {name}(bitmap_build([4, 9]));\n+---+\n| {} |\n+---+\n```",
                if largest { 9 } else { 4 }
            ))
            .with_argument("bitmap", "A bitmap (bytea).")
            .build(),
        }
    }
}

impl ScalarUDFImpl for BitmapMinMax {
    fn name(&self) -> &str {
        self.name
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name, arg_types, &[("bitmap", Kind::Bitmap)])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let arg = ArgRef::new(self.name, 1, "bitmap");
        let bitmaps = BitmapArg::new(&args.args[0], arg)?;
        let mut out = Int64Builder::with_capacity(rows);
        for row in 0..rows {
            let Some(bitmap) = bitmaps.get(row)? else {
                out.append_null();
                continue;
            };
            let id = if self.largest {
                bitmap.maximum().unwrap_or(EMPTY_MAX)
            } else {
                bitmap.minimum().unwrap_or(EMPTY_MIN)
            };
            out.append_value(id_out(arg, id)?);
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

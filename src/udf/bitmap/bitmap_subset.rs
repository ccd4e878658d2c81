//! Parts of a bitmap: `bitmap_subset_in_range(bitmap, start, end)`,
//! `bitmap_subset_limit(bitmap, start, limit)` and `sub_bitmap(bitmap, offset, limit)`.

use std::sync::Arc;

use datafusion::arrow::array::BinaryBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, IntArg, Kind, coerce, finish, row_count, write_bitmap};
use crate::bitmap::Bitmap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    /// Ids in `[start, end)`.
    InRange,
    /// The `limit` smallest ids that are at least `start`.
    Limit,
    /// `limit` ids after skipping the `offset` smallest.
    Offset,
}

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapSubset {
    name: &'static str,
    part: Part,
    arguments: [&'static str; 2],
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

impl BitmapSubset {
    pub fn in_range() -> Self {
        Self::new(
            "bitmap_subset_in_range",
            "bitmapsubsetinrange",
            Part::InRange,
            ["start", "end"],
            "The ids of a bitmap in [start, end), end excluded (ClickHouse \
             `bitmapSubsetInRange`). Empty when start >= end.",
            "bitmap_subset_in_range(bitmap_build([1, 2, 3, 4, 5, 100]), 2, 5)",
            "[2, 3, 4]",
        )
    }

    pub fn limit() -> Self {
        Self::new(
            "bitmap_subset_limit",
            "bitmapsubsetlimit",
            Part::Limit,
            ["start", "limit"],
            "At most `limit` ids of a bitmap, the smallest ones that are at least `start` \
             (ClickHouse `bitmapSubsetLimit`).",
            "bitmap_subset_limit(bitmap_build([1, 2, 3, 4, 5, 100]), 3, 2)",
            "[3, 4]",
        )
    }

    pub fn sub_bitmap() -> Self {
        Self::new(
            "sub_bitmap",
            "subbitmap",
            Part::Offset,
            ["offset", "limit"],
            "At most `limit` ids of a bitmap, after skipping its `offset` smallest \
             (ClickHouse `subBitmap`): pages through an audience.",
            "sub_bitmap(bitmap_build([1, 2, 3, 4, 5, 100]), 2, 3)",
            "[3, 4, 5]",
        )
    }

    fn new(
        name: &'static str,
        alias: &str,
        part: Part,
        arguments: [&'static str; 2],
        description: &str,
        example: &str,
        result: &str,
    ) -> Self {
        BitmapSubset {
            name,
            part,
            arguments,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![alias.to_string()],
            documentation: Documentation::builder(
                super::SECTION,
                format!(
                    "{description} NULL in any argument gives NULL; negative numbers are \
                     an error."
                ),
                format!("{name}(bitmap, {}, {})", arguments[0], arguments[1]),
            )
            .with_sql_example(format!(
                "```sql\n> SELECT bitmap_to_array({example});\n+{bar}+\n| {result} |\n+{bar}+\n```",
                bar = "-".repeat(result.len() + 2)
            ))
            .with_argument("bitmap", "A bitmap (bytea).")
            .with_argument(arguments[0], "A non-negative integer.")
            .with_argument(arguments[1], "A non-negative integer.")
            .build(),
        }
    }
}

impl ScalarUDFImpl for BitmapSubset {
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
        coerce(
            self.name,
            arg_types,
            &[
                ("bitmap", Kind::Bitmap),
                (self.arguments[0], Kind::Integer),
                (self.arguments[1], Kind::Integer),
            ],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let bitmaps = BitmapArg::new(&args.args[0], ArgRef::new(self.name, 1, "bitmap"))?;
        let first = IntArg::new(&args.args[1], ArgRef::new(self.name, 2, self.arguments[0]))?;
        let second = IntArg::new(&args.args[2], ArgRef::new(self.name, 3, self.arguments[1]))?;
        let mut out = BinaryBuilder::new();
        let mut bytes = Vec::new();
        for row in 0..rows {
            let (Some(bitmap), Some(a), Some(b)) =
                (bitmaps.get(row)?, first.get(row)?, second.get(row)?)
            else {
                out.append_null();
                continue;
            };
            let part: Bitmap = match self.part {
                Part::InRange => bitmap.subset_in_range(a, b),
                Part::Limit => bitmap.subset_limit(a, b),
                Part::Offset => bitmap.sub_bitmap(a, b),
            };
            bytes.clear();
            write_bitmap(part, &mut bytes);
            out.append_value(&bytes);
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

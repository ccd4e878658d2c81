//! Set algebra on two bitmaps: `bitmap_and`, `bitmap_or`, `bitmap_xor`, `bitmap_andnot`
//! (a bitmap) and their `_cardinality` forms (the size of that bitmap, computed without
//! building it).

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryBuilder, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, Kind, coerce, finish, row_count, write_bitmap};
use crate::bitmap::SetOp;

/// One function of this file.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapSetOp {
    name: &'static str,
    op: SetOp,
    cardinality: bool,
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

/// All eight, in the order of the reference.
pub fn all() -> Vec<BitmapSetOp> {
    let ops = [
        (
            "bitmap_and",
            "bitmap_and_cardinality",
            "bitmapand",
            SetOp::And,
            "in both",
            "[2, 3]",
            2,
        ),
        (
            "bitmap_or",
            "bitmap_or_cardinality",
            "bitmapor",
            SetOp::Or,
            "in either",
            "[1, 2, 3, 4]",
            4,
        ),
        (
            "bitmap_xor",
            "bitmap_xor_cardinality",
            "bitmapxor",
            SetOp::Xor,
            "in exactly one",
            "[1, 4]",
            2,
        ),
        (
            "bitmap_andnot",
            "bitmap_andnot_cardinality",
            "bitmapandnot",
            SetOp::AndNot,
            "in the first and not in the second",
            "[1]",
            1,
        ),
    ];
    let mut out = Vec::new();
    for (name, cardinality_name, alias, op, meaning, ids, count) in ops {
        out.push(BitmapSetOp::new(
            name,
            alias.to_string(),
            op,
            false,
            meaning,
            ids,
        ));
        out.push(BitmapSetOp::new(
            cardinality_name,
            format!("{alias}cardinality"),
            op,
            true,
            meaning,
            &count.to_string(),
        ));
    }
    out
}

impl BitmapSetOp {
    fn new(
        name: &'static str,
        alias: String,
        op: SetOp,
        cardinality: bool,
        meaning: &str,
        result: &str,
    ) -> Self {
        let description = if cardinality {
            format!(
                "The number of ids {meaning} (ClickHouse `{alias}`), counted without \
                 building the bitmap. NULL in either argument gives NULL."
            )
        } else {
            format!(
                "The bitmap of the ids {meaning} (ClickHouse `{alias}`). NULL in either \
                 argument gives NULL."
            )
        };
        let shown = if cardinality {
            format!("{name}(bitmap_build([1, 2, 3]), bitmap_build([2, 3, 4]))")
        } else {
            format!("bitmap_to_array({name}(bitmap_build([1, 2, 3]), bitmap_build([2, 3, 4])))")
        };
        let bar = "-".repeat(result.len() + 2);
        BitmapSetOp {
            name,
            op,
            cardinality,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![alias],
            documentation: Documentation::builder(
                super::SECTION,
                description,
                format!("{name}(bitmap, other)"),
            )
            .with_sql_example(format!(
                "```sql\n> SELECT {shown};\n+{bar}+\n| {result} |\n+{bar}+\n```"
            ))
            .with_argument("bitmap", "A bitmap (bytea).")
            .with_argument("other", "A bitmap (bytea).")
            .build(),
        }
    }
}

impl ScalarUDFImpl for BitmapSetOp {
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
            &[("bitmap", Kind::Bitmap), ("other", Kind::Bitmap)],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.cardinality {
            DataType::Int64
        } else {
            DataType::Binary
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let left = BitmapArg::new(&args.args[0], ArgRef::new(self.name, 1, "bitmap"))?;
        let right = BitmapArg::new(&args.args[1], ArgRef::new(self.name, 2, "other"))?;
        let array: ArrayRef = if self.cardinality {
            let mut out = Int64Builder::with_capacity(rows);
            for row in 0..rows {
                match (left.get(row)?, right.get(row)?) {
                    (Some(a), Some(b)) => {
                        out.append_value(a.combine_cardinality(&b, self.op) as i64)
                    }
                    _ => out.append_null(),
                }
            }
            Arc::new(out.finish())
        } else {
            let mut out = BinaryBuilder::new();
            let mut bytes = Vec::new();
            for row in 0..rows {
                match (left.get(row)?, right.get(row)?) {
                    (Some(a), Some(b)) => {
                        bytes.clear();
                        write_bitmap(a.combine(&b, self.op), &mut bytes);
                        out.append_value(&bytes);
                    }
                    _ => out.append_null(),
                }
            }
            Arc::new(out.finish())
        };
        finish(array, &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

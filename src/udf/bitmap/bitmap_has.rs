//! `bitmap_has_any(a, b)` and `bitmap_has_all(a, b)`: whether `a` shares an id with `b`,
//! or holds every id of `b`.

use std::sync::Arc;

use datafusion::arrow::array::BooleanBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{ArgRef, BitmapArg, Kind, coerce, finish, row_count};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapHas {
    name: &'static str,
    every: bool,
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

impl BitmapHas {
    pub fn any() -> Self {
        Self::new(
            "bitmap_has_any",
            "bitmaphasany",
            false,
            "True when the two bitmaps share at least one id (ClickHouse `bitmapHasAny`, \
             1 or 0 there); false when either is empty; NULL for NULL.",
        )
    }

    pub fn all() -> Self {
        Self::new(
            "bitmap_has_all",
            "bitmaphasall",
            true,
            "True when the first bitmap holds every id of the second (ClickHouse \
             `bitmapHasAll`, 1 or 0 there); true when the second is empty; NULL for NULL.",
        )
    }

    fn new(name: &'static str, alias: &str, every: bool, description: &str) -> Self {
        BitmapHas {
            name,
            every,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![alias.to_string()],
            documentation: Documentation::builder(
                super::SECTION,
                description,
                format!("{name}(bitmap, other)"),
            )
            .with_sql_example(format!(
                "```sql\n> SELECT {name}(bitmap_build([1, 2, 3]), bitmap_build([3, 4]));\n+-------+\n| {} |\n+-------+\n```",
                if every { "false" } else { "true " }
            ))
            .with_argument("bitmap", "A bitmap (bytea).")
            .with_argument("other", "A bitmap (bytea).")
            .build(),
        }
    }
}

impl ScalarUDFImpl for BitmapHas {
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
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let left = BitmapArg::new(&args.args[0], ArgRef::new(self.name, 1, "bitmap"))?;
        let right = BitmapArg::new(&args.args[1], ArgRef::new(self.name, 2, "other"))?;
        let mut out = BooleanBuilder::with_capacity(rows);
        for row in 0..rows {
            match (left.get(row)?, right.get(row)?) {
                (Some(a), Some(b)) if self.every => out.append_value(a.contains_all(&b)),
                (Some(a), Some(b)) => out.append_value(a.intersects(&b)),
                _ => out.append_null(),
            }
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

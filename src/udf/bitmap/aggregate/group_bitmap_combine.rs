//! `group_bitmap_and/or/xor(bitmap)` (the cardinality) and their `_state` forms (the
//! bitmap): one set operation folded over a column of bitmaps, per group.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use super::{bitmap_state_field, for_each_bitmap};
use crate::bitmap::{Bitmap, SetOp};
use crate::udf::bitmap::{ArgRef, Kind, coerce, write_shared};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GroupBitmapCombine {
    name: &'static str,
    op: SetOp,
    /// The bitmap itself rather than its cardinality.
    bitmap: bool,
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

/// All six.
pub fn all() -> Vec<GroupBitmapCombine> {
    let ops = [
        (
            "group_bitmap_and",
            "group_bitmap_and_state",
            "groupbitmapand",
            SetOp::And,
            "in every",
            "[2]",
        ),
        (
            "group_bitmap_or",
            "group_bitmap_or_state",
            "groupbitmapor",
            SetOp::Or,
            "in any",
            "[1, 2, 3]",
        ),
        (
            "group_bitmap_xor",
            "group_bitmap_xor_state",
            "groupbitmapxor",
            SetOp::Xor,
            "in an odd number",
            "[1, 3]",
        ),
    ];
    let mut out = Vec::new();
    for (name, state_name, alias, op, meaning, ids) in ops {
        let count = ids.split(',').count().to_string();
        out.push(GroupBitmapCombine::new(
            name,
            alias.to_string(),
            op,
            false,
            meaning,
            &count,
        ));
        out.push(GroupBitmapCombine::new(
            state_name,
            format!("{alias}state"),
            op,
            true,
            meaning,
            ids,
        ));
    }
    out
}

impl GroupBitmapCombine {
    fn new(
        name: &'static str,
        alias: String,
        op: SetOp,
        bitmap: bool,
        meaning: &str,
        result: &str,
    ) -> Self {
        let description = if bitmap {
            format!(
                "The bitmap of the ids {meaning} of the group's bitmaps (ClickHouse \
                 `{alias}`). NULL rows are skipped; the empty bitmap over no rows."
            )
        } else {
            format!(
                "The number of ids {meaning} of the group's bitmaps (ClickHouse `{alias}`). \
                 NULL rows are skipped; 0 over no rows."
            )
        };
        let shown = if bitmap {
            format!("bitmap_to_array({name}(b))")
        } else {
            format!("{name}(b)")
        };
        let bar = "-".repeat(result.len() + 2);
        GroupBitmapCombine {
            name,
            op,
            bitmap,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![alias],
            documentation: Documentation::builder(super::super::SECTION, description, format!("{name}(bitmap)"))
                .with_sql_example(format!(
                    "```sql\n> SELECT {shown}\n  FROM (VALUES (bitmap_build([1, 2])), (bitmap_build([2, 3]))) AS t(b);\n+{bar}+\n| {result} |\n+{bar}+\n```"
                ))
                .with_argument("bitmap", "A column of bitmaps (bytea).")
                .build(),
        }
    }
}

impl AggregateUDFImpl for GroupBitmapCombine {
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
        Ok(if self.bitmap {
            DataType::Binary
        } else {
            DataType::Int64
        })
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![bitmap_state_field(args.name)])
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(CombineAccumulator {
            folded: None,
            op: self.op,
            bitmap: self.bitmap,
            arg: ArgRef::new(self.name, 1, "bitmap"),
        }))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(if self.bitmap {
            ScalarValue::Binary(Some(Bitmap::new().to_bytes()))
        } else {
            ScalarValue::Int64(Some(0))
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

#[derive(Debug)]
struct CombineAccumulator {
    /// None until the first bitmap: for AND, "no rows yet" is not the empty set. Shared
    /// with the bitmap cache until it changes.
    folded: Option<Arc<Bitmap>>,
    op: SetOp,
    bitmap: bool,
    arg: ArgRef,
}

impl CombineAccumulator {
    fn fold(&mut self, values: &ArrayRef) -> Result<()> {
        for_each_bitmap(values, self.arg, None, |_, bitmap| {
            match &mut self.folded {
                None => self.folded = Some(bitmap),
                Some(folded) => Arc::make_mut(folded).combine_in_place(&bitmap, self.op),
            }
            Ok(())
        })
    }
}

impl Accumulator for CombineAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.fold(&values[0])
    }

    /// A partition that saw no rows sends NULL, which folding skips.
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.fold(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(self.folded.as_ref().map(|b| {
            let mut bytes = Vec::new();
            write_shared(b, &mut bytes);
            bytes
        }))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let folded = self.folded.clone().unwrap_or_default();
        Ok(if self.bitmap {
            let mut bytes = Vec::new();
            write_shared(&folded, &mut bytes);
            ScalarValue::Binary(Some(bytes))
        } else {
            ScalarValue::Int64(Some(folded.cardinality() as i64))
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.folded.as_ref().map_or(0, |b| b.serialized_size())
    }
}

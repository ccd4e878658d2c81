//! `intersect_count(bitmap, tag, v1, v2, …)`: Doris's count of the ids present for every
//! one of the given tag values.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use std::sync::LazyLock;

use super::{TaggedBitmaps, coerce_tagged, constant_text, tagged_state_field};
use crate::bitmap::{Bitmap, SetOp};
use crate::udf::bitmap::ArgRef;

const NAME: &str = "intersect_count";

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IntersectCount {
    signature: Signature,
}

impl IntersectCount {
    pub fn new() -> Self {
        IntersectCount {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::super::SECTION,
        "Doris's `intersect_count`: over rows of (bitmap, tag), the number of ids that are \
         in the bitmaps of every listed tag value. Bitmaps of rows with the same tag are \
         united first; rows with other tags are ignored (not even decoded). 0 when a listed \
         value has no rows. Tags and values compare as text; the values must be \
         constants.",
        "intersect_count(bitmap, tag, value [, value …])",
    )
    .with_sql_example(
        "```sql\n> SELECT intersect_count(b, tag, 'shoes', 'active')\n  FROM (VALUES ('shoes', bitmap_build([1, 2, 3])), ('active', bitmap_build([2, 3, 4])))\n       AS t(tag, b);\n+---+\n| 2 |\n+---+\n```",
    )
    .with_argument("bitmap", "A column of bitmaps (bytea).")
    .with_argument("tag", "The column whose values select bitmaps.")
    .with_argument("value", "Tag values (constants) whose bitmaps are intersected.")
    .build()
});

impl AggregateUDFImpl for IntersectCount {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_tagged(NAME, arg_types, 3)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![tagged_state_field(args.name)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let mut values = Vec::new();
        for (i, expr) in args.exprs.iter().enumerate().skip(2) {
            let arg = ArgRef::new(NAME, i + 1, "value");
            match constant_text(expr, arg)? {
                Some(value) if !values.contains(&value) => values.push(value),
                Some(_) => {}
                None => {
                    return Err(DataFusionError::Plan(format!(
                        "{NAME}: argument {} (value) is NULL",
                        i + 1
                    )));
                }
            }
        }
        Ok(Box::new(IntersectAccumulator {
            tagged: TaggedBitmaps::new(&values, ArgRef::new(NAME, 1, "bitmap")),
        }))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Int64(Some(0)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[derive(Debug)]
struct IntersectAccumulator {
    tagged: TaggedBitmaps,
}

impl Accumulator for IntersectAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.tagged.update(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.tagged.merge(&states[0])
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.tagged.state()])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut slots = self.tagged.slots.iter();
        let count = match (slots.next(), slots.next()) {
            (Some(Some(only)), None) => only.cardinality(),
            (Some(Some(first)), Some(Some(second))) => {
                let mut rest: Vec<&Bitmap> = Vec::new();
                for slot in slots {
                    match slot {
                        Some(b) => rest.push(b),
                        None => return Ok(ScalarValue::Int64(Some(0))),
                    }
                }
                match rest.split_last() {
                    None => first.combine_cardinality(second, SetOp::And),
                    Some((last, middle)) => {
                        let mut folded = first.and(second);
                        for b in middle {
                            folded.combine_in_place(b, SetOp::And);
                        }
                        folded.combine_cardinality(last, SetOp::And)
                    }
                }
            }
            _ => 0,
        };
        Ok(ScalarValue::Int64(Some(count as i64)))
    }

    fn size(&self) -> usize {
        self.tagged.size()
    }
}

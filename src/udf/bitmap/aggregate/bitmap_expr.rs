//! `bitmap_expr(bitmap, tag, expression)` and `bitmap_expr_cardinality(…)`: a tag
//! expression such as `'(active & shoes) - couponed'` evaluated over rows of (bitmap,
//! tag), as Doris's `orthogonal_bitmap_expr_calculate[_count]`.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use super::{TaggedBitmaps, coerce_tagged, constant_text, tagged_state_field};
use crate::bitmap::expr::TagExpr;
use crate::bitmap::{Bitmap, BitmapError};
use crate::udf::bitmap::{ArgRef, write_bitmap};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct BitmapExpr {
    name: &'static str,
    /// The cardinality rather than the bitmap.
    count: bool,
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

const GRAMMAR: &str = "Operators: `&` (and), `|` (or), `^` (xor), `-` (and not), with \
    parentheses; `&` binds tighter than the others, which go left to right. A tag is a \
    word without operators or spaces, or any text in quotes. Bitmaps of rows with the same \
    tag are united; a tag no row carries is the empty set; rows with tags the expression \
    does not name are not even decoded. The expression must be a constant.";

impl BitmapExpr {
    pub fn bitmap() -> Self {
        Self::new(
            "bitmap_expr",
            "orthogonal_bitmap_expr_calculate",
            false,
            "The bitmap a tag expression denotes over rows of (bitmap, tag).",
            "bitmap_to_array(bitmap_expr(b, tag, '(active & shoes) - couponed'))",
            "[2]",
        )
    }

    pub fn cardinality() -> Self {
        Self::new(
            "bitmap_expr_cardinality",
            "orthogonal_bitmap_expr_calculate_count",
            true,
            "The size of the set a tag expression denotes over rows of (bitmap, tag), \
             without building the outermost result: an audience count.",
            "bitmap_expr_cardinality(b, tag, '(active & shoes) - couponed')",
            "1",
        )
    }

    fn new(
        name: &'static str,
        alias: &str,
        count: bool,
        description: &str,
        shown: &str,
        result: &str,
    ) -> Self {
        let bar = "-".repeat(result.len() + 2);
        BitmapExpr {
            name,
            count,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: vec![alias.to_string()],
            documentation: Documentation::builder(
                super::super::SECTION,
                format!("{description} {GRAMMAR}"),
                format!("{name}(bitmap, tag, expression)"),
            )
            .with_sql_example(format!(
                "```sql\n> SELECT {shown}\n  FROM (VALUES ('active', bitmap_build([1, 2, 3])), ('shoes', bitmap_build([2, 3])),\n               ('couponed', bitmap_build([3]))) AS t(tag, b);\n+{bar}+\n| {result} |\n+{bar}+\n```"
            ))
            .with_argument("bitmap", "A column of bitmaps (bytea).")
            .with_argument("tag", "The column naming each row's tag (compared as text).")
            .with_argument("expression", "The tag expression (a constant).")
            .build(),
        }
    }
}

impl AggregateUDFImpl for BitmapExpr {
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
        let types = coerce_tagged(self.name, arg_types, 3)?;
        if types.len() != 3 {
            return datafusion::common::plan_err!(
                "{} takes 3 arguments (bitmap, tag, expression), not {}; no function matches",
                self.name,
                types.len()
            );
        }
        Ok(types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(if self.count {
            DataType::Int64
        } else {
            DataType::Binary
        })
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![tagged_state_field(args.name)])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let arg = ArgRef::new(self.name, 3, "expression");
        let text = constant_text(&args.exprs[2], arg)?.ok_or_else(|| {
            arg.error(BitmapError::BadExpression {
                expression: String::new(),
                message: "NULL".to_string(),
            })
        })?;
        let expr = TagExpr::parse(&text).map_err(|e| arg.error(e))?;
        Ok(Box::new(ExprAccumulator {
            tagged: TaggedBitmaps::new(expr.tags(), ArgRef::new(self.name, 1, "bitmap")),
            expr,
            count: self.count,
        }))
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(if self.count {
            ScalarValue::Int64(Some(0))
        } else {
            ScalarValue::Binary(Some(Bitmap::new().to_bytes()))
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&self.documentation)
    }
}

#[derive(Debug)]
struct ExprAccumulator {
    tagged: TaggedBitmaps,
    expr: TagExpr,
    count: bool,
}

impl Accumulator for ExprAccumulator {
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
        let slots = &self.tagged.slots;
        let lookup = |i: usize| slots[i].as_deref();
        Ok(if self.count {
            ScalarValue::Int64(Some(self.expr.cardinality(&lookup) as i64))
        } else {
            let mut bytes = Vec::new();
            write_bitmap(self.expr.evaluate(&lookup), &mut bytes);
            ScalarValue::Binary(Some(bytes))
        })
    }

    fn size(&self) -> usize {
        self.tagged.size()
    }
}

//! `group_bitmap(id)` (how many distinct ids) and `group_bitmap_state(id)` (their bitmap,
//! also `bitmap_agg`): the bitmap of a column of ids, per group.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BinaryBuilder, BooleanArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use super::{add_ids, bitmap_state_field, for_each_bitmap};
use crate::bitmap::{Bitmap, BitmapBuilder};
use crate::udf::bitmap::{ArgRef, Kind, coerce, write_bitmap};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GroupBitmap {
    name: &'static str,
    /// The bitmap itself rather than its cardinality.
    bitmap: bool,
    signature: Signature,
    aliases: Vec<String>,
    documentation: Documentation,
}

impl GroupBitmap {
    pub fn count() -> Self {
        Self::new(
            "group_bitmap",
            &["groupbitmap"],
            false,
            "The number of distinct ids in a column, per group, counted with a bitmap \
             (ClickHouse `groupBitmap`). NULL rows are skipped; 0 over no rows.",
            "3",
        )
    }

    pub fn state() -> Self {
        Self::new(
            "group_bitmap_state",
            &["groupbitmapstate", "bitmap_agg"],
            true,
            "The bitmap of the ids in a column, per group (ClickHouse `groupBitmapState`): \
             this is how per-tag audience bitmaps are built. NULL rows are skipped; the \
             empty bitmap over no rows.",
            "[1, 2, 5]",
        )
    }

    fn new(
        name: &'static str,
        aliases: &[&str],
        bitmap: bool,
        description: &str,
        result: &str,
    ) -> Self {
        let shown = if bitmap {
            format!("bitmap_to_array({name}(id))")
        } else {
            format!("{name}(id)")
        };
        let bar = "-".repeat(result.len() + 2);
        GroupBitmap {
            name,
            bitmap,
            signature: Signature::user_defined(Volatility::Immutable),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            documentation: Documentation::builder(super::super::SECTION, description, format!("{name}(id)"))
                .with_sql_example(format!(
                    "```sql\n> SELECT {shown} FROM (VALUES (5), (1), (2), (5), (NULL)) AS t(id);\n+{bar}+\n| {result} |\n+{bar}+\n```"
                ))
                .with_argument("id", "A column of non-negative integers.")
                .build(),
        }
    }

    fn arg(&self) -> ArgRef {
        ArgRef::new(self.name, 1, "id")
    }
}

impl AggregateUDFImpl for GroupBitmap {
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
        coerce(self.name, arg_types, &[("id", Kind::Integer)])
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
        Ok(Box::new(IdAccumulator {
            builder: BitmapBuilder::default(),
            bitmap: self.bitmap,
            arg: self.arg(),
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(IdGroups {
            builders: Vec::new(),
            ids_added: 0,
            bitmap: self.bitmap,
            arg: self.arg(),
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
struct IdAccumulator {
    builder: BitmapBuilder,
    bitmap: bool,
    arg: ArgRef,
}

impl Accumulator for IdAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        add_ids(&values[0], self.arg, None, |_, id| self.builder.add(id))
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for_each_bitmap(&states[0], self.arg, None, |_, b| {
            self.builder.add_bitmap(&b);
            Ok(())
        })
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut bytes = Vec::new();
        write_bitmap(self.builder.snapshot(), &mut bytes);
        Ok(vec![ScalarValue::Binary(Some(bytes))])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let bitmap = self.builder.snapshot();
        Ok(if self.bitmap {
            let mut bytes = Vec::new();
            write_bitmap(bitmap, &mut bytes);
            ScalarValue::Binary(Some(bytes))
        } else {
            ScalarValue::Int64(Some(bitmap.cardinality() as i64))
        })
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.builder.size()
    }
}

/// One bitmap builder per group.
struct IdGroups {
    builders: Vec<BitmapBuilder>,
    /// Ids added so far: at most two bytes each in a roaring bitmap, an upper bound on
    /// memory that is cheap to keep (measuring every bitmap after every batch is not).
    ids_added: usize,
    bitmap: bool,
    arg: ArgRef,
}

impl IdGroups {
    fn grow(&mut self, total_num_groups: usize) {
        if self.builders.len() < total_num_groups {
            self.builders
                .resize_with(total_num_groups, BitmapBuilder::default);
        }
    }

    fn bitmaps(&mut self, emit_to: EmitTo) -> Vec<Bitmap> {
        emit_to
            .take_needed(&mut self.builders)
            .into_iter()
            .map(BitmapBuilder::finish)
            .collect()
    }
}

fn to_binary(bitmaps: Vec<Bitmap>) -> ArrayRef {
    let mut out = BinaryBuilder::with_capacity(bitmaps.len(), 0);
    let mut bytes = Vec::new();
    for bitmap in bitmaps {
        bytes.clear();
        write_bitmap(bitmap, &mut bytes);
        out.append_value(&bytes);
    }
    Arc::new(out.finish())
}

impl GroupsAccumulator for IdGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        let before = self.ids_added;
        let builders = &mut self.builders;
        let mut added = 0;
        add_ids(&values[0], self.arg, opt_filter, |row, id| {
            builders[group_indices[row]].add(id);
            added += 1;
        })?;
        self.ids_added = before + added;
        Ok(())
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.grow(total_num_groups);
        for_each_bitmap(&values[0], self.arg, None, |row, bitmap| {
            self.ids_added += bitmap.cardinality() as usize;
            self.builders[group_indices[row]].add_bitmap(&bitmap);
            Ok(())
        })
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let bitmaps = self.bitmaps(emit_to);
        Ok(if self.bitmap {
            to_binary(bitmaps)
        } else {
            Arc::new(Int64Array::from_iter_values(
                bitmaps.iter().map(|b| b.cardinality() as i64),
            ))
        })
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![to_binary(self.bitmaps(emit_to))])
    }

    /// One single-id bitmap per row, for when DataFusion skips partial aggregation.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut ids: Vec<Option<u64>> = vec![None; values[0].len()];
        add_ids(&values[0], self.arg, opt_filter, |row, id| {
            ids[row] = Some(id)
        })?;
        let mut out = BinaryBuilder::with_capacity(ids.len(), ids.len() * 16);
        for id in ids {
            match id {
                Some(id) => out.append_value(Bitmap::from_values([id]).to_bytes()),
                None => out.append_null(),
            }
        }
        Ok(vec![Arc::new(out.finish())])
    }

    fn size(&self) -> usize {
        self.builders.capacity() * (std::mem::size_of::<BitmapBuilder>() + 64) + self.ids_added * 2
    }
}

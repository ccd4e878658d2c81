//! Bitmap aggregates: build bitmaps from rows of ids, combine bitmaps across rows, and
//! evaluate set expressions over a tag → bitmap table.
//!
//! Every aggregate skips NULL rows. Over no rows, the count forms answer 0 and the
//! bitmap forms the empty bitmap (as ClickHouse does), never NULL.
//!
//! Partial states are bitmaps in their portable bytes, so a state computed on one
//! machine merges anywhere (a distributed executor included).

mod bitmap_expr;
mod group_bitmap;
mod group_bitmap_combine;
mod intersect_count;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type, UInt64Type};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::error::Result;
use datafusion::logical_expr::AggregateUDF;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Literal;

use super::{ArgRef, BinaryColumn, write_shared};
use crate::bitmap::Bitmap;

pub fn functions() -> Vec<AggregateUDF> {
    let mut all = vec![
        AggregateUDF::new_from_impl(group_bitmap::GroupBitmap::count()),
        AggregateUDF::new_from_impl(group_bitmap::GroupBitmap::state()),
        AggregateUDF::new_from_impl(intersect_count::IntersectCount::new()),
        AggregateUDF::new_from_impl(bitmap_expr::BitmapExpr::bitmap()),
        AggregateUDF::new_from_impl(bitmap_expr::BitmapExpr::cardinality()),
    ];
    all.extend(
        group_bitmap_combine::all()
            .into_iter()
            .map(AggregateUDF::new_from_impl),
    );
    all
}

/// The state field holding a bitmap.
fn bitmap_state_field(name: &str) -> FieldRef {
    Arc::new(Field::new(
        format!("{name}[bitmap]"),
        DataType::Binary,
        true,
    ))
}

/// Whether row `row` passes the aggregate's FILTER clause.
fn selected(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// Calls `add(row, id)` for the ids of `values` (Int64 or UInt64 after coercion).
fn add_ids(
    values: &ArrayRef,
    arg: ArgRef,
    filter: Option<&BooleanArray>,
    mut add: impl FnMut(usize, u64),
) -> Result<()> {
    match values.data_type() {
        DataType::UInt64 => {
            let ids = values.as_primitive::<UInt64Type>();
            for (row, id) in ids.iter().enumerate() {
                if let Some(id) = id
                    && selected(filter, row)
                {
                    add(row, id);
                }
            }
        }
        DataType::Int64 => {
            let ids = values.as_primitive::<Int64Type>();
            if ids.null_count() == 0 && filter.is_none() {
                for (row, &id) in ids.values().iter().enumerate() {
                    add(row, arg.id_i64(id)?);
                }
            } else {
                for (row, id) in ids.iter().enumerate() {
                    if let Some(id) = id
                        && selected(filter, row)
                    {
                        add(row, arg.id_i64(id)?);
                    }
                }
            }
        }
        DataType::Null => {}
        other => {
            return Err(DataFusionError::Internal(format!(
                "{}: ids were not coerced to an integer: {other}",
                arg.function
            )));
        }
    }
    Ok(())
}

/// Calls `f` with the bitmap of every non-NULL, selected row of `values` (Binary), shared
/// with the bitmap cache (`Arc::make_mut` before changing it).
fn for_each_bitmap(
    values: &ArrayRef,
    arg: ArgRef,
    filter: Option<&BooleanArray>,
    mut f: impl FnMut(usize, Arc<Bitmap>) -> Result<()>,
) -> Result<()> {
    let Some(bytes) = BinaryColumn::new(values) else {
        return Ok(()); // a NULL-typed column: no bitmaps
    };
    for row in 0..bytes.len() {
        if let Some(value) = bytes.get(row)
            && selected(filter, row)
        {
            f(row, arg.bitmap(value)?)?;
        }
    }
    Ok(())
}

/// A constant argument (a tag expression, a filter value), read when the query starts.
fn constant_text(expr: &Arc<dyn PhysicalExpr>, arg: ArgRef) -> Result<Option<String>> {
    let Some(literal) = expr.downcast_ref::<Literal>() else {
        return Err(DataFusionError::Plan(format!(
            "{}: argument {} ({}) must be a constant",
            arg.function, arg.position, arg.name
        )));
    };
    Ok(match literal.value() {
        ScalarValue::Null => None,
        other if other.is_null() => None,
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s.clone()),
        other => Some(other.to_string()),
    })
}

/// Bitmaps collected per tag (for `intersect_count` and `bitmap_expr`): each tag's
/// slot holds the union of the bitmaps of the rows carrying that tag (the row's own
/// bitmap, shared with the bitmap cache, while it is the only one). The partial state is
/// a list with one bitmap per slot, NULL for a tag no row carried.
#[derive(Debug)]
struct TaggedBitmaps {
    slots: Vec<Option<Arc<Bitmap>>>,
    index: std::collections::HashMap<String, usize>,
    bitmap_arg: ArgRef,
}

impl TaggedBitmaps {
    fn new(tags: &[String], bitmap_arg: ArgRef) -> Self {
        TaggedBitmaps {
            slots: vec![None; tags.len()],
            index: tags
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, t)| (t, i))
                .collect(),
            bitmap_arg,
        }
    }

    fn add(&mut self, slot: usize, bitmap: Arc<Bitmap>) {
        match &mut self.slots[slot] {
            Some(union) => Arc::make_mut(union).combine_in_place(&bitmap, crate::bitmap::SetOp::Or),
            empty => *empty = Some(bitmap),
        }
    }

    /// Rows of (bitmap, tag as text); rows whose tag is not wanted are not even decoded.
    fn update(&mut self, bitmaps: &ArrayRef, tags: &ArrayRef) -> Result<()> {
        let Some(bytes) = BinaryColumn::new(bitmaps) else {
            return Ok(()); // a NULL-typed column: no bitmaps
        };
        if tags.data_type() == &DataType::Null {
            return Ok(());
        }
        let tags = tags.as_string::<i32>();
        for row in 0..bytes.len() {
            if tags.is_null(row) {
                continue;
            }
            if let Some(&slot) = self.index.get(tags.value(row))
                && let Some(value) = bytes.get(row)
            {
                let bitmap = self.bitmap_arg.bitmap(value)?;
                self.add(slot, bitmap);
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &ArrayRef) -> Result<()> {
        let lists = states.as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let slots = lists.value(row);
            let slots = slots.as_binary::<i32>();
            for slot in 0..slots.len().min(self.slots.len()) {
                if slots.is_valid(slot) {
                    let bitmap = self.bitmap_arg.bitmap(slots.value(slot))?;
                    self.add(slot, bitmap);
                }
            }
        }
        Ok(())
    }

    fn state(&self) -> ScalarValue {
        let slots: Vec<ScalarValue> = self
            .slots
            .iter()
            .map(|b| {
                ScalarValue::Binary(b.as_ref().map(|b| {
                    let mut bytes = Vec::new();
                    write_shared(b, &mut bytes);
                    bytes
                }))
            })
            .collect();
        ScalarValue::List(ScalarValue::new_list_nullable(&slots, &DataType::Binary))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .slots
                .iter()
                .flatten()
                .map(|b| b.serialized_size())
                .sum::<usize>()
    }
}

/// The state field of [`TaggedBitmaps`].
fn tagged_state_field(name: &str) -> FieldRef {
    Arc::new(Field::new(
        format!("{name}[bitmaps]"),
        DataType::List(Arc::new(Field::new_list_field(DataType::Binary, true))),
        true,
    ))
}

/// Argument types for (bitmap, tag, constants…): the tag and constants compare as text.
fn coerce_tagged(function: &str, args: &[DataType], min_args: usize) -> Result<Vec<DataType>> {
    if args.len() < min_args {
        return Err(DataFusionError::Plan(format!(
            "{function} takes at least {min_args} arguments, not {}; no function matches",
            args.len()
        )));
    }
    let mut out = super::coerce(function, &args[..1], &[("bitmap", super::Kind::Bitmap)])?;
    out.extend(std::iter::repeat_n(DataType::Utf8, args.len() - 1));
    Ok(out)
}

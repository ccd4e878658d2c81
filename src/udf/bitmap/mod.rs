//! Bitmap functions: ClickHouse's roaring bitmap functions over `bytea` values holding
//! [`crate::bitmap::Bitmap`]'s portable serialization.
//!
//! Conventions shared by every function here:
//! - snake_case names are primary; ClickHouse's camelCase names are aliases, lowercased
//!   as they arrive from SQL (`bitmapAnd` is `bitmapand`).
//! - NULL in any argument gives NULL (scalar functions); aggregates skip NULL rows.
//! - Ids are unsigned: a negative id is an error naming the function and argument, as
//!   are bytes that are not a bitmap.
//! - Where ClickHouse returns UInt64 (cardinalities, ids) martdb returns bigint, the
//!   type PostgreSQL clients know; where it returns UInt8 0/1 martdb returns boolean.

mod aggregate;
mod audience;
mod audience_drop;
mod audience_save;
pub mod audiences;
mod bitmap_build;
mod bitmap_cardinality;
mod bitmap_contains;
mod bitmap_has;
mod bitmap_min_max;
mod bitmap_set_ops;
mod bitmap_subset;
mod bitmap_to_array;
mod bitmap_transform;
mod dense_id;
mod external_id;

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, GenericListArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, UInt64Type};
use datafusion::common::{DataFusionError, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, ColumnarValue, DocSection, ScalarUDF};

use crate::bitmap::cache::BitmapCache;
use crate::bitmap::dictionary::IdDictionary;
use crate::bitmap::{Bitmap, BitmapError};

/// Where these functions appear in the generated function reference.
const SECTION: DocSection = DocSection {
    include: true,
    label: "Bitmap Functions",
    description: Some(
        "Roaring bitmaps of ids (ClickHouse semantics): build them from ids, combine them \
         with AND / OR / XOR / ANDNOT, count and list their members.",
    ),
};

/// The scalar functions of this area.
pub fn functions() -> Vec<ScalarUDF> {
    let mut all = vec![
        ScalarUDF::new_from_impl(bitmap_build::BitmapBuild::new()),
        ScalarUDF::new_from_impl(bitmap_to_array::BitmapToArray::new()),
        ScalarUDF::new_from_impl(bitmap_cardinality::BitmapCardinality::new()),
        ScalarUDF::new_from_impl(bitmap_contains::BitmapContains::new()),
        ScalarUDF::new_from_impl(bitmap_min_max::BitmapMinMax::min()),
        ScalarUDF::new_from_impl(bitmap_min_max::BitmapMinMax::max()),
        ScalarUDF::new_from_impl(bitmap_has::BitmapHas::any()),
        ScalarUDF::new_from_impl(bitmap_has::BitmapHas::all()),
        ScalarUDF::new_from_impl(bitmap_subset::BitmapSubset::in_range()),
        ScalarUDF::new_from_impl(bitmap_subset::BitmapSubset::limit()),
        ScalarUDF::new_from_impl(bitmap_subset::BitmapSubset::sub_bitmap()),
        ScalarUDF::new_from_impl(bitmap_transform::BitmapTransform::new()),
    ];
    all.extend(
        bitmap_set_ops::all()
            .into_iter()
            .map(ScalarUDF::new_from_impl),
    );
    all
}

/// The functions over the engine's id dictionary (they hold a handle to it, so each
/// engine registers its own; they never run away from the engine that owns the state).
pub fn dictionary_functions(dictionary: &IdDictionary) -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(dense_id::DenseId::new(dictionary.clone())),
        ScalarUDF::new_from_impl(external_id::ExternalId::new(dictionary.clone())),
    ]
}

/// The named-audience functions (they hold the engine's audience store and run SQL in
/// its context, so each engine registers its own).
pub fn audience_functions(handle: &audiences::AudienceHandle) -> Vec<ScalarUDF> {
    use datafusion::logical_expr::async_udf::AsyncScalarUDF;
    vec![
        ScalarUDF::new_from_impl(audience::Audience::new(handle.clone())),
        AsyncScalarUDF::new(Arc::new(audience_save::AudienceSave::save(handle.clone())))
            .into_scalar_udf(),
        AsyncScalarUDF::new(Arc::new(audience_save::AudienceSave::refresh(
            handle.clone(),
        )))
        .into_scalar_udf(),
        ScalarUDF::new_from_impl(audience_drop::AudienceDrop::new(handle.clone())),
    ]
}

/// The aggregate functions of this area.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    aggregate::functions()
}

/// A bad argument value, found while running a function.
#[derive(Debug, thiserror::Error)]
#[error("{function}: argument {position} ({name}): {source}")]
pub struct ArgumentError {
    pub function: &'static str,
    /// 1-based.
    pub position: usize,
    pub name: &'static str,
    pub source: BitmapError,
}

impl ArgumentError {
    pub fn sqlstate(&self) -> &'static str {
        match self.source {
            BitmapError::NotABitmap { .. } => "22P03",
            BitmapError::NegativeId { .. } | BitmapError::BeyondBigint { .. } => "22003",
            BitmapError::BadExpression { .. } | BitmapError::LengthMismatch { .. } => "22023",
        }
    }
}

/// Identifies an argument in errors.
#[derive(Debug, Clone, Copy)]
struct ArgRef {
    function: &'static str,
    position: usize,
    name: &'static str,
}

impl ArgRef {
    fn new(function: &'static str, position: usize, name: &'static str) -> Self {
        ArgRef {
            function,
            position,
            name,
        }
    }

    fn error(self, source: BitmapError) -> DataFusionError {
        DataFusionError::External(Box::new(ArgumentError {
            function: self.function,
            position: self.position,
            name: self.name,
            source,
        }))
    }

    /// The bitmap of an argument's bytes, through the shared cache (a large value read
    /// before costs a byte comparison, not a validation).
    fn bitmap(self, bytes: &[u8]) -> Result<Arc<Bitmap>> {
        BitmapCache::global()
            .decode(bytes)
            .map_err(|e| self.error(e))
    }

    fn id_i64(self, value: i64) -> Result<u64> {
        u64::try_from(value).map_err(|_| self.error(BitmapError::NegativeId { value }))
    }
}

/// What an argument must be; checked when the query is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `bytea` holding a bitmap.
    Bitmap,
    /// An id, offset or count: any integer type.
    Integer,
    /// An array of ids.
    IntegerArray,
}

/// The types arguments are cast to: bitmaps to Binary, signed integers to Int64 and
/// unsigned ones to UInt64 (so u64 ids above 2^63 survive), arrays likewise.
fn coerce(function: &str, args: &[DataType], kinds: &[(&str, Kind)]) -> Result<Vec<DataType>> {
    if args.len() != kinds.len() {
        let names: Vec<&str> = kinds.iter().map(|(name, _)| *name).collect();
        return plan_err!(
            "{function} takes {} arguments ({}), not {}; no function matches",
            kinds.len(),
            names.join(", "),
            args.len()
        );
    }
    args.iter()
        .zip(kinds)
        .enumerate()
        .map(|(i, (arg, (name, kind)))| {
            coerce_one(arg, *kind).ok_or_else(|| {
                let want = match kind {
                    Kind::Bitmap => "a bitmap (bytea)",
                    Kind::Integer => "an integer",
                    Kind::IntegerArray => "an integer array",
                };
                DataFusionError::Plan(format!(
                    "{function}: argument {} ({name}) has type {arg}; {want} is expected",
                    i + 1
                ))
            })
        })
        .collect()
}

fn coerce_one(arg: &DataType, kind: Kind) -> Option<DataType> {
    match (kind, arg) {
        // Parquet scans yield BinaryView: read in place rather than copied by a cast.
        (Kind::Bitmap, DataType::BinaryView) => Some(DataType::BinaryView),
        (Kind::Bitmap, DataType::Binary | DataType::LargeBinary) => Some(DataType::Binary),
        (Kind::Bitmap, DataType::Null) => Some(DataType::Binary),
        (Kind::Integer, t) => integer_target(t),
        (Kind::IntegerArray, DataType::Null) => Some(list_of(DataType::Int64)),
        (
            Kind::IntegerArray,
            DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _),
        ) => integer_target(f.data_type()).map(list_of),
        _ => None,
    }
}

/// Arguments compared as text: strings stay strings, other scalar types are cast.
pub(crate) fn coerce_text(
    function: &str,
    args: &[DataType],
    names: &[&str],
) -> Result<Vec<DataType>> {
    if args.len() != names.len() {
        return plan_err!(
            "{function} takes {} arguments ({}), not {}; no function matches",
            names.len(),
            names.join(", "),
            args.len()
        );
    }
    args.iter()
        .zip(names)
        .enumerate()
        .map(|(i, (arg, name))| match arg {
            DataType::List(_)
            | DataType::LargeList(_)
            | DataType::Struct(_)
            | DataType::Map(..) => {
                plan_err!(
                    "{function}: argument {} ({name}) has type {arg}; text is expected",
                    i + 1
                )
            }
            _ => Ok(DataType::Utf8),
        })
        .collect()
}

fn integer_target(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::Null => {
            Some(DataType::Int64)
        }
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            Some(DataType::UInt64)
        }
        _ => None,
    }
}

fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new_list_field(item, true)))
}

/// A column of bitmap bytes, as either binary layout.
#[derive(Clone, Copy)]
pub(crate) enum BinaryColumn<'a> {
    Plain(&'a BinaryArray),
    View(&'a BinaryViewArray),
}

impl<'a> BinaryColumn<'a> {
    /// None for columns of other types (NULL-typed ones included).
    pub(crate) fn new(array: &'a ArrayRef) -> Option<Self> {
        match array.data_type() {
            DataType::Binary => Some(BinaryColumn::Plain(array.as_binary::<i32>())),
            DataType::BinaryView => Some(BinaryColumn::View(array.as_binary_view())),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            BinaryColumn::Plain(a) => a.len(),
            BinaryColumn::View(a) => a.len(),
        }
    }

    /// The bytes of `row`, None when it is NULL.
    pub(crate) fn get(&self, row: usize) -> Option<&'a [u8]> {
        match self {
            BinaryColumn::Plain(a) => a.is_valid(row).then(|| a.value(row)),
            BinaryColumn::View(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }
}

/// A bitmap argument: one value for all rows (read once) or one per row.
enum BitmapArg<'a> {
    Scalar(Option<Arc<Bitmap>>),
    Array(BinaryColumn<'a>, ArgRef),
}

impl<'a> BitmapArg<'a> {
    fn new(value: &'a ColumnarValue, arg: ArgRef) -> Result<Self> {
        Ok(match value {
            ColumnarValue::Scalar(ScalarValue::Binary(bytes) | ScalarValue::BinaryView(bytes)) => {
                BitmapArg::Scalar(bytes.as_deref().map(|b| arg.bitmap(b)).transpose()?)
            }
            ColumnarValue::Scalar(ScalarValue::Null) => BitmapArg::Scalar(None),
            ColumnarValue::Array(array) if let Some(column) = BinaryColumn::new(array) => {
                BitmapArg::Array(column, arg)
            }
            other => {
                return Err(DataFusionError::Internal(format!(
                    "{}: argument {} was not coerced to bytea: {other:?}",
                    arg.function, arg.position
                )));
            }
        })
    }

    fn get(&self, row: usize) -> Result<Option<Arc<Bitmap>>> {
        match self {
            BitmapArg::Scalar(b) => Ok(b.clone()),
            BitmapArg::Array(array, arg) => array.get(row).map(|b| arg.bitmap(b)).transpose(),
        }
    }
}

/// An integer argument (id, offset or count), checked to be non-negative.
enum IntArg<'a> {
    Scalar(Option<u64>),
    Signed(&'a datafusion::arrow::array::Int64Array, ArgRef),
    Unsigned(&'a datafusion::arrow::array::UInt64Array),
}

impl<'a> IntArg<'a> {
    fn new(value: &'a ColumnarValue, arg: ArgRef) -> Result<Self> {
        Ok(match value {
            ColumnarValue::Scalar(ScalarValue::Int64(v)) => {
                IntArg::Scalar(v.map(|v| arg.id_i64(v)).transpose()?)
            }
            ColumnarValue::Scalar(ScalarValue::UInt64(v)) => IntArg::Scalar(*v),
            ColumnarValue::Scalar(ScalarValue::Null) => IntArg::Scalar(None),
            ColumnarValue::Array(a) if a.data_type() == &DataType::Int64 => {
                IntArg::Signed(a.as_primitive::<Int64Type>(), arg)
            }
            ColumnarValue::Array(a) if a.data_type() == &DataType::UInt64 => {
                IntArg::Unsigned(a.as_primitive::<UInt64Type>())
            }
            other => {
                return Err(DataFusionError::Internal(format!(
                    "{}: argument {} was not coerced to an integer: {other:?}",
                    arg.function, arg.position
                )));
            }
        })
    }

    fn get(&self, row: usize) -> Result<Option<u64>> {
        match self {
            IntArg::Scalar(v) => Ok(*v),
            IntArg::Signed(a, arg) => {
                if a.is_null(row) {
                    Ok(None)
                } else {
                    arg.id_i64(a.value(row)).map(Some)
                }
            }
            IntArg::Unsigned(a) => Ok((!a.is_null(row)).then(|| a.value(row))),
        }
    }
}

/// An integer array argument (`bitmap_build`'s ids, `bitmap_transform`'s pairs).
struct IntArrayArg {
    list: GenericListArray<i32>,
    arg: ArgRef,
}

impl IntArrayArg {
    fn new(value: &ColumnarValue, rows: usize, arg: ArgRef) -> Result<Self> {
        let array = value.to_array(rows)?;
        let array = match array.data_type() {
            DataType::Null => {
                datafusion::arrow::array::new_null_array(&list_of(DataType::Int64), array.len())
            }
            _ => array,
        };
        Ok(IntArrayArg {
            list: array.as_list::<i32>().clone(),
            arg,
        })
    }

    /// Calls `f` with every id of row `row`; false when the row is NULL.
    fn for_each(&self, row: usize, mut f: impl FnMut(u64)) -> Result<bool> {
        if self.list.is_null(row) {
            return Ok(false);
        }
        let values = self.list.value(row);
        match values.data_type() {
            DataType::UInt64 => {
                for v in values.as_primitive::<UInt64Type>().iter().flatten() {
                    f(v);
                }
            }
            _ => {
                for v in values.as_primitive::<Int64Type>().iter().flatten() {
                    f(self.arg.id_i64(v)?);
                }
            }
        }
        Ok(true)
    }

    fn get(&self, row: usize) -> Result<Option<Vec<u64>>> {
        let mut out = Vec::new();
        Ok(self.for_each(row, |v| out.push(v))?.then_some(out))
    }
}

/// True when every argument is a single value, so the result is one too.
fn all_scalar(args: &[ColumnarValue]) -> bool {
    args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)))
}

/// Rows to compute: one when every argument is a scalar.
pub(crate) fn row_count(args: &[ColumnarValue], number_rows: usize) -> usize {
    if all_scalar(args) { 1 } else { number_rows }
}

pub(crate) fn finish(array: ArrayRef, args: &[ColumnarValue]) -> Result<ColumnarValue> {
    if all_scalar(args) {
        Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?))
    } else {
        Ok(ColumnarValue::Array(array))
    }
}

/// Appends `bitmap`'s bytes to `out`, remembered by the shared cache so that a function
/// reading them next (`bitmap_cardinality(bitmap_and(a, b))`, an aggregate's final step)
/// does not validate them again.
pub(crate) fn write_bitmap(bitmap: Bitmap, out: &mut Vec<u8>) {
    BitmapCache::global().encode_owned(bitmap, out)
}

/// [`write_bitmap`] for a bitmap that is shared.
pub(crate) fn write_shared(bitmap: &Arc<Bitmap>, out: &mut Vec<u8>) {
    BitmapCache::global().encode(bitmap, out)
}

/// Ids leave martdb as bigint; a bitmap may hold u64 ids beyond its range.
fn id_out(arg: ArgRef, value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| arg.error(BitmapError::BeyondBigint { value }))
}

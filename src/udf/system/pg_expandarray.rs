//! `_pg_expandarray(array)`: PostgreSQL's `information_schema._pg_expandarray`, which
//! pgjdbc's `getPrimaryKeys` calls on `pg_index.indkey`. In PostgreSQL it returns a set
//! of `(x, n)` rows, each element with its 1-based position; here it returns them as an
//! array of structs, and the rewrite of parsed statements (`crate::rewrite`) turns a call
//! into `unnest(_pg_expandarray(array))`, which yields the same rows.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

pub(crate) const NAME: &str = "_pg_expandarray";

/// `_pg_expandarray(array) -> array of {x, n}`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PgExpandArray {
    signature: Signature,
}

impl Default for PgExpandArray {
    fn default() -> Self {
        Self::new()
    }
}

impl PgExpandArray {
    pub fn new() -> Self {
        PgExpandArray {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn element_fields(element: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", DataType::Int32, false),
    ])
}

fn list_element(data_type: &DataType) -> Result<&DataType> {
    match data_type {
        DataType::List(field) => Ok(field.data_type()),
        other => Err(DataFusionError::Plan(format!(
            "{NAME}: argument 1 (array) must be an array, found {other}"
        ))),
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "PostgreSQL compatibility (`information_schema._pg_expandarray`): each element of \
         the array with its 1-based position, as rows `(x, n)`. A call is rewritten to \
         `unnest(_pg_expandarray(array))`, so it yields one row per element, as in \
         PostgreSQL; NULL or an empty array yields no row.",
        "information_schema._pg_expandarray(array)",
    )
    .with_sql_example(
        "```sql\n> SELECT (e).x, (e).n FROM (SELECT information_schema._pg_expandarray([7, 9]) AS e);\n+---+---+\n| 7 | 1 |\n| 9 | 2 |\n+---+---+\n```",
    )
    .with_argument("array", "Any array.")
    .build()
});

impl ScalarUDFImpl for PgExpandArray {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let element = list_element(&arg_types[0])?;
        Ok(DataType::new_list(
            DataType::Struct(element_fields(element)),
            true,
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = args.args[0].to_array(args.number_rows)?;
        let element = list_element(arrays.data_type())?.clone();
        let lists = arrays.as_list::<i32>();
        let positions: Int32Array = (0..lists.len())
            .flat_map(|row| {
                let length = if lists.is_valid(row) {
                    lists.value_length(row)
                } else {
                    0
                };
                1..=length
            })
            .collect();
        // Each list's elements, in order; a NULL list contributes none.
        let offsets = OffsetBuffer::<i32>::from_lengths((0..lists.len()).map(|row| {
            if lists.is_valid(row) {
                lists.value_length(row) as usize
            } else {
                0
            }
        }));
        let values: ArrayRef = if lists.null_count() == 0 {
            let start = lists.value_offsets()[0] as usize;
            let end = lists.value_offsets()[lists.len()] as usize;
            lists.values().slice(start, end - start)
        } else {
            let parts: Vec<ArrayRef> = (0..lists.len())
                .filter(|row| lists.is_valid(*row))
                .map(|row| lists.value(row))
                .collect();
            let parts: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
            if parts.is_empty() {
                datafusion::arrow::array::new_empty_array(&element)
            } else {
                datafusion::arrow::compute::concat(&parts)?
            }
        };
        let fields = element_fields(&element);
        let structs =
            StructArray::try_new(fields.clone(), vec![values, Arc::new(positions)], None)?;
        let result = ListArray::try_new(
            Arc::new(Field::new("item", DataType::Struct(fields), true)),
            offsets,
            Arc::new(structs),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

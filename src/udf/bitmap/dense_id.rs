//! `dense_id(namespace, external_id)`: the dictionary's small integer for an external id,
//! assigned on first sight.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{coerce_text, finish, row_count};
use crate::bitmap::dictionary::IdDictionary;

const NAME: &str = "dense_id";

#[derive(Debug)]
pub struct DenseId {
    dictionary: IdDictionary,
    signature: Signature,
}

impl DenseId {
    pub fn new(dictionary: IdDictionary) -> Self {
        DenseId {
            dictionary,
            // Volatile: it writes, so it must run once per row and never be folded.
            signature: Signature::user_defined(Volatility::Volatile),
        }
    }
}

impl PartialEq for DenseId {
    fn eq(&self, _other: &Self) -> bool {
        // One dictionary per engine, one instance per engine.
        true
    }
}

impl Eq for DenseId {}

impl std::hash::Hash for DenseId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The dense id of an external id in a namespace (0, 1, 2, … in order of first \
         sight), assigning one when the id is new. Bitmaps need small contiguous integers; \
         user ids are often strings. The assignment is durable before the statement \
         returns, never gives one key two ids or two keys one id (concurrent callers \
         included), and is listed in `martdb.id_dictionary`. NULL in either argument \
         gives NULL. `external_id` maps back.",
        "dense_id(namespace, external_id)",
    )
    .with_sql_example(
        "```sql\n> SELECT dense_id('user', k) FROM (VALUES ('alice'), ('bob'), ('alice')) AS t(k);\n+---+\n| 0 |\n| 1 |\n| 0 |\n+---+\n```",
    )
    .with_argument("namespace", "Text naming the id space, e.g. 'user' or 'device'.")
    .with_argument("external_id", "The external id; other types compare as their text.")
    .build()
});

impl ScalarUDFImpl for DenseId {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_text(NAME, arg_types, &["namespace", "external_id"])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let namespaces = args.args[0].to_array(rows)?;
        let keys = args.args[1].to_array(rows)?;
        let (namespaces, keys) = (namespaces.as_string::<i32>(), keys.as_string::<i32>());
        let mut ids = vec![None; rows];
        // Rows grouped by namespace: one dictionary call (one transaction) per namespace.
        let mut by_namespace: std::collections::HashMap<&str, Vec<usize>> = Default::default();
        for row in 0..rows {
            if namespaces.is_valid(row) && keys.is_valid(row) {
                by_namespace
                    .entry(namespaces.value(row))
                    .or_default()
                    .push(row);
            }
        }
        for (namespace, rows) in by_namespace {
            let batch: Vec<Option<&str>> = rows.iter().map(|&r| Some(keys.value(r))).collect();
            let assigned = self
                .dictionary
                .assign(namespace, &batch)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            for (row, id) in rows.into_iter().zip(assigned) {
                ids[row] = id;
            }
        }
        let mut out = Int64Builder::with_capacity(rows);
        for id in ids {
            out.append_option(id.map(|id| id as i64));
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `external_id(namespace, dense_id)`: the external id a dense id stands for.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Int64Type, UInt64Type};
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{Kind, coerce, finish, row_count};
use crate::bitmap::dictionary::IdDictionary;

const NAME: &str = "external_id";

#[derive(Debug)]
pub struct ExternalId {
    dictionary: IdDictionary,
    signature: Signature,
}

impl ExternalId {
    pub fn new(dictionary: IdDictionary) -> Self {
        ExternalId {
            dictionary,
            // Stable: ids only ever get added, but not within one statement's view.
            signature: Signature::user_defined(Volatility::Stable),
        }
    }
}

impl PartialEq for ExternalId {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for ExternalId {}

impl std::hash::Hash for ExternalId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state)
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The external id that `dense_id` assigned a dense id in a namespace; NULL for an \
         id never assigned, and for NULL arguments. Turns audience members back into user \
         keys: `SELECT external_id('user', m) FROM unnest(bitmap_to_array(b)) AS t(m)`.",
        "external_id(namespace, dense_id)",
    )
    .with_sql_example(
        "```sql\n> SELECT external_id('user', dense_id('user', 'alice'));\n+-------+\n| alice |\n+-------+\n```",
    )
    .with_argument("namespace", "Text naming the id space.")
    .with_argument("dense_id", "A dense id.")
    .build()
});

impl ScalarUDFImpl for ExternalId {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let mut types =
            super::coerce_text(NAME, &arg_types[..1.min(arg_types.len())], &["namespace"])?;
        if arg_types.len() == 2 {
            types.extend(coerce(
                NAME,
                &arg_types[1..],
                &[("dense_id", Kind::Integer)],
            )?);
            Ok(types)
        } else {
            datafusion::common::plan_err!(
                "{NAME} takes 2 arguments (namespace, dense_id), not {}; no function matches",
                arg_types.len()
            )
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let namespaces = args.args[0].to_array(rows)?;
        let namespaces = namespaces.as_string::<i32>();
        let ids = args.args[1].to_array(rows)?;
        let id = |row: usize| -> Option<u64> {
            if ids.is_null(row) {
                return None;
            }
            match ids.data_type() {
                DataType::UInt64 => Some(ids.as_primitive::<UInt64Type>().value(row)),
                DataType::Int64 => u64::try_from(ids.as_primitive::<Int64Type>().value(row)).ok(),
                _ => None,
            }
        };
        let mut names = vec![None; rows];
        let mut by_namespace: std::collections::HashMap<&str, Vec<usize>> = Default::default();
        for row in 0..rows {
            if namespaces.is_valid(row) {
                by_namespace
                    .entry(namespaces.value(row))
                    .or_default()
                    .push(row);
            }
        }
        for (namespace, rows) in by_namespace {
            let batch: Vec<Option<u64>> = rows.iter().map(|&r| id(r)).collect();
            let found = self
                .dictionary
                .external(namespace, &batch)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            for (row, name) in rows.into_iter().zip(found) {
                names[row] = name;
            }
        }
        let mut out = StringBuilder::with_capacity(rows, rows * 8);
        for name in names {
            out.append_option(name);
        }
        finish(Arc::new(out.finish()), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

//! `resolve_identities(edges query [, rules query])`: every identifier of the edges with
//! its person id, by [`crate::identity::resolve`].

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, RecordBatchOptions, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::common::{EdgeInput, IdentityJob};
use crate::identity::Rules;

pub(super) const NAME: &str = "resolve_identities";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("id_type", DataType::Utf8, false),
        Field::new("id", DataType::Utf8, false),
    ]))
});

#[derive(Debug)]
pub struct ResolveIdentities;

impl IdentityJob for ResolveIdentities {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn run(&self, edges: EdgeInput, rules: Rules) -> Result<RecordBatch> {
        self.run_projected(edges, rules, None)
    }

    /// Builds only the columns asked for: `count(DISTINCT person_id)` copies no strings.
    fn run_projected(
        &self,
        edges: EdgeInput,
        rules: Rules,
        columns: Option<&[usize]>,
    ) -> Result<RecordBatch> {
        let resolution = edges.resolve(&rules)?;
        let columns = columns.map_or_else(|| (0..SCHEMA.fields().len()).collect(), <[_]>::to_vec);
        // The person column reads no values, and gives the row count.
        let persons: ArrayRef = Arc::new(Int64Array::from_iter_values(resolution.person_ids()));
        let rows = persons.len();
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for &column in &columns {
            if column == 0 {
                arrays.push(persons.clone());
                continue;
            }
            fn text<'a>(column: usize, (id_type, id, _): (&'a str, &'a str, i64)) -> &'a str {
                if column == 1 { id_type } else { id }
            }
            let bytes = resolution
                .identifiers()
                .map(|i| text(column, i).len())
                .sum();
            let mut builder = StringBuilder::with_capacity(rows, bytes);
            for identifier in resolution.identifiers() {
                builder.append_value(text(column, identifier));
            }
            arrays.push(Arc::new(builder.finish()));
        }
        let schema = Arc::new(SCHEMA.project(&columns)?);
        Ok(RecordBatch::try_new_with_options(
            schema,
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?)
    }
}

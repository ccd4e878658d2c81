//! `resolve_identities_persons(edges query [, rules query])`: one row per person of the
//! edges, with its identifiers counted by type.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::common::{EdgeInput, IdentityJob};
use crate::identity::Rules;

pub(super) const NAME: &str = "resolve_identities_persons";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("person_id", DataType::Int64, false),
        Field::new("identifiers", DataType::Int64, false),
        Field::new("id_types", DataType::Utf8, false),
    ]))
});

/// `device:2, phone:1`: a person's identifiers by type, types in order.
pub(crate) fn type_counts(types: &[(String, u64)]) -> String {
    let parts: Vec<String> = types.iter().map(|(t, n)| format!("{t}:{n}")).collect();
    parts.join(", ")
}

#[derive(Debug)]
pub struct ResolveIdentitiesPersons;

impl IdentityJob for ResolveIdentitiesPersons {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn run(&self, edges: EdgeInput, rules: Rules) -> Result<RecordBatch> {
        let persons = edges.resolve(&rules)?.persons();
        let mut ids = Int64Builder::with_capacity(persons.len());
        let mut sizes = Int64Builder::with_capacity(persons.len());
        let mut types = StringBuilder::new();
        for person in &persons {
            ids.append_value(person.person_id);
            sizes.append_value(person.identifiers as i64);
            types.append_value(type_counts(&person.types));
        }
        Ok(RecordBatch::try_new(
            SCHEMA.clone(),
            vec![
                Arc::new(ids.finish()),
                Arc::new(sizes.finish()),
                Arc::new(types.finish()),
            ],
        )?)
    }
}

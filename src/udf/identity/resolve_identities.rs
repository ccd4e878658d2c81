//! `resolve_identities(edges query [, rules query])`: every identifier of the edges with
//! its person id, by [`crate::identity::resolve`].

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Int64Builder, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::common::{IdentityJob, error};
use crate::identity::{EdgeBatch, Rules, resolve};

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

    fn run(&self, edges: Vec<EdgeBatch>, rules: Rules) -> Result<RecordBatch> {
        let resolution = resolve(edges, &rules).map_err(error)?;
        let mut persons = Int64Builder::new();
        let mut types = StringBuilder::new();
        let mut ids = StringBuilder::new();
        for (id_type, id, person) in resolution.identifiers() {
            persons.append_value(person);
            types.append_value(id_type);
            ids.append_value(id);
        }
        Ok(RecordBatch::try_new(
            SCHEMA.clone(),
            vec![
                Arc::new(persons.finish()),
                Arc::new(types.finish()),
                Arc::new(ids.finish()),
            ],
        )?)
    }
}

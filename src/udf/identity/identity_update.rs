//! `identity_update(edges query [, rules query])`: applies the edges to the stored graph,
//! by [`IdentityGraph::add_edges`], and returns what changed as one row.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::error::Result;

use super::common::{EdgeInput, IdentityJob, error};
use crate::identity::{IdentityGraph, Rules};

pub(crate) const NAME: &str = "identity_update";

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        [
            "update",
            "edges",
            "new_links",
            "known_links",
            "rejected",
            "new_identifiers",
            "new_persons",
            "merged_persons",
        ]
        .map(|name| Field::new(name, DataType::Int64, false))
        .to_vec(),
    ))
});

#[derive(Debug)]
pub struct IdentityUpdate {
    pub(super) graph: IdentityGraph,
}

impl IdentityJob for IdentityUpdate {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn run(&self, edges: EdgeInput, rules: Rules) -> Result<RecordBatch> {
        let s = self
            .graph
            .add_edges(&edges.collect_all()?, &rules)
            .map_err(error)?;
        let counts = [
            s.update,
            s.edges,
            s.new_links,
            s.known_links,
            s.rejected,
            s.new_identifiers,
            s.new_persons,
            s.merged_persons,
        ];
        Ok(RecordBatch::try_new(
            SCHEMA.clone(),
            counts
                .iter()
                .map(|&n| Arc::new(Int64Array::from(vec![n as i64])) as _)
                .collect(),
        )?)
    }
}

//! `resolve_identities_rejected(edges query [, rules query])`: the edges that were not
//! merged, one row per distinct link (or per row, for a missing identifier), and why.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::common::{EdgeInput, IdentityJob, time_or_null};
use crate::identity::Rules;

pub(super) const NAME: &str = "resolve_identities_rejected";

pub(crate) fn rejection_fields() -> Vec<Field> {
    let time = DataType::Timestamp(TimeUnit::Microsecond, None);
    vec![
        Field::new("type_a", DataType::Utf8, true),
        Field::new("id_a", DataType::Utf8, true),
        Field::new("type_b", DataType::Utf8, true),
        Field::new("id_b", DataType::Utf8, true),
        Field::new("observations", DataType::Int64, false),
        Field::new("first_seen", time.clone(), true),
        Field::new("last_seen", time, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, true),
    ]
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = rejection_fields();
    fields.push(Field::new("source", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

#[derive(Debug)]
pub struct ResolveIdentitiesRejected;

impl IdentityJob for ResolveIdentitiesRejected {
    fn name(&self) -> &'static str {
        NAME
    }

    fn schema(&self) -> SchemaRef {
        SCHEMA.clone()
    }

    fn run(&self, edges: EdgeInput, rules: Rules) -> Result<RecordBatch> {
        let resolution = edges.resolve(&rules)?;
        let rejected = resolution.rejected();
        let mut text: [StringBuilder; 5] = Default::default();
        let mut observations = Int64Builder::with_capacity(rejected.len());
        let mut first_seen = TimestampMicrosecondBuilder::with_capacity(rejected.len());
        let mut last_seen = TimestampMicrosecondBuilder::with_capacity(rejected.len());
        let mut reason = StringBuilder::new();
        let mut detail = StringBuilder::new();
        for rejection in rejected {
            let [type_a, id_a, type_b, id_b, source] = resolution.row_text(rejection.row);
            // The smaller identifier first, as the stored graph lists a link, whichever
            // way round its rows gave it.
            let (a, b) = ((type_a, id_a), (type_b, id_b));
            let (a, b) =
                if a.0.is_some() && a.1.is_some() && b.0.is_some() && b.1.is_some() && b < a {
                    (b, a)
                } else {
                    (a, b)
                };
            for (builder, value) in text.iter_mut().zip([a.0, a.1, b.0, b.1, source]) {
                builder.append_option(value);
            }
            observations.append_value(rejection.observations as i64);
            first_seen.append_option(time_or_null(rejection.first_seen));
            last_seen.append_option(time_or_null(rejection.last_seen));
            reason.append_value(rejection.reason.name());
            detail.append_option(resolution.detail(rejection.reason));
        }
        let [mut type_a, mut id_a, mut type_b, mut id_b, mut source] = text;
        Ok(RecordBatch::try_new(
            SCHEMA.clone(),
            vec![
                Arc::new(type_a.finish()),
                Arc::new(id_a.finish()),
                Arc::new(type_b.finish()),
                Arc::new(id_b.finish()),
                Arc::new(observations.finish()),
                Arc::new(first_seen.finish()),
                Arc::new(last_seen.finish()),
                Arc::new(reason.finish()),
                Arc::new(detail.finish()),
                Arc::new(source.finish()),
            ],
        )?)
    }
}

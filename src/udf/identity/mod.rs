//! Identity resolution in SQL: persons from identifier edges. The semantics (rules,
//! stable ids, incremental updates) are the module docs of [`crate::identity`].
//!
//! # Batch: `resolve_identities(edges [, rules])` and its two companions
//!
//! ```sql
//! SELECT person_id, id_type, id FROM resolve_identities(
//!   'SELECT id_a, type_a, id_b, type_b, observed_at, source FROM identity_edges',
//!   'SELECT rule, id_type, value FROM identity_rules');
//! ```
//!
//! - `edges`: a constant text, one query (`SELECT`, `WITH`, `VALUES`) returning, by
//!   position, `id_a, type_a, id_b, type_b` (text, or integers taken as their text) and
//!   optionally `observed_at` (a timestamp, a date or a number of seconds since the epoch;
//!   NULL is older than any time) and `source` (text). A row with a NULL type or id on
//!   either side is rejected as `missing_identifier`, not an error.
//! - `rules`: optional, a constant text, a query returning `(rule, id_type, value)` rows
//!   (text; numbers are read from their text), e.g. a table of rules. The rules are listed
//!   in [`crate::identity::Rules`]: `block`, `block_pattern`, `max_per_person`, `priority`,
//!   `max_degree`, `max_identifiers`, `tie_break`; `id_type` `'*'` or NULL means every
//!   type. Without it, resolution is plain connected components.
//!
//! | function | returns |
//! | --- | --- |
//! | `resolve_identities` | `person_id bigint, id_type text, id text`: every identifier that is not blocked |
//! | `resolve_identities_persons` | `person_id bigint, identifiers bigint, id_types text` (`'device:2, phone:1'`) |
//! | `resolve_identities_rejected` | `type_a, id_a, type_b, id_b text, observations bigint, first_seen, last_seen timestamp, reason text, detail text, source text`: one row per distinct link not merged, the smaller (type, id) first (per row for `missing_identifier`, as the row gave it); `detail` is the id type of a `max_per_person` rejection; `source` that of the latest observation |
//!
//! Nothing is stored. The same edges give the same person ids whatever their order.
//!
//! # Stored graph: `identity_update(edges [, rules])`, `person_id(id_type, id)`
//!
//! `SELECT * FROM identity_update('<edges>' [, '<rules>'])` applies the edges to the graph
//! kept in the data directory, in one durable transaction, and returns one row: `update`
//! (its number), `edges` (rows read), `new_links`, `known_links` (seen before: only
//! counted), `rejected`, `new_identifiers`, `new_persons`, `merged_persons`. It changes
//! state, so a read-only session may not call it (SQLSTATE 25006). Pass the same rules
//! to every update (keep them in a table).
//!
//! The graph is read through `person_id(id_type, id)` and four tables:
//! `martdb.identity_map` (`id_type, id, person_id, degree, hub, first_seen, last_seen`),
//! `martdb.identity_persons` (`person_id, identifiers, id_types, created_at,
//! updated_at`), `martdb.identity_merges` (`merged_id, into_id, merged_at, update`) and
//! `martdb.identity_rejected` (the columns of `resolve_identities_rejected` without
//! `source`). Rows with a missing side have no identifier to store them under: an update
//! counts them in `rejected` and keeps nothing of them.
//!
//! The queries run in the calling session, with the PostgreSQL rewrites, when the scan
//! executes (`EXPLAIN` does not run them); they may not call a function that changes
//! state. Arguments are constants; a bound parameter (`$1`) is not known when the
//! statement is planned. Dollar quoting saves doubling quotes: `$$ SELECT ... $$`.
//!
//! Errors (SQLSTATE 22023): a query that is not one query or whose columns are not as
//! above, a malformed rule (the message names the rule row). DataFusion has no
//! documentation hook for table functions, so this is their reference; `person_id` has
//! its `Documentation`.

mod common;
mod identity_update;
mod person_id;
mod resolve_identities;
mod resolve_identities_persons;
mod resolve_identities_rejected;

use std::sync::Arc;

use datafusion::catalog::{TableFunctionImpl, TableProvider};
use datafusion::logical_expr::{DocSection, ScalarUDF};

use crate::identity::IdentityGraph;
use common::{IdentityFunction, IdentityTable};

pub(crate) use resolve_identities_persons::type_counts;
pub(crate) use resolve_identities_rejected::rejection_fields;

/// Where these functions appear in the generated function reference.
const SECTION: DocSection = DocSection {
    include: true,
    label: "Identity Functions",
    description: Some(
        "Identity resolution: one person id from the identifiers (phones, devices, \
         openids, emails) seen together.",
    ),
};

/// The table functions that need no stored state, by name.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![
        (
            resolve_identities::NAME,
            Arc::new(IdentityFunction(Arc::new(
                resolve_identities::ResolveIdentities,
            ))),
        ),
        (
            resolve_identities_persons::NAME,
            Arc::new(IdentityFunction(Arc::new(
                resolve_identities_persons::ResolveIdentitiesPersons,
            ))),
        ),
        (
            resolve_identities_rejected::NAME,
            Arc::new(IdentityFunction(Arc::new(
                resolve_identities_rejected::ResolveIdentitiesRejected,
            ))),
        ),
    ]
}

/// The table functions over the stored graph of an engine, by name.
pub fn graph_table_functions(
    graph: &IdentityGraph,
) -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![(
        identity_update::NAME,
        Arc::new(IdentityFunction(Arc::new(
            identity_update::IdentityUpdate {
                graph: graph.clone(),
            },
        ))),
    )]
}

/// The scalar functions over the stored graph of an engine.
pub fn graph_functions(graph: &IdentityGraph) -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(person_id::PersonId::new(
        graph.clone(),
    ))]
}

/// The name of the state-changing table function `provider` is a call of, if it is one.
pub(crate) fn writing_table_function(provider: &dyn TableProvider) -> Option<&'static str> {
    provider
        .downcast_ref::<IdentityTable<identity_update::IdentityUpdate>>()
        .map(|_| identity_update::NAME)
}

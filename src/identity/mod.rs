//! Identity resolution: one person id from phones, devices, openids and emails.
//!
//! Identifier edges — "this phone and this device were seen together" — are joined into
//! persons: the connected components of the identifier graph, under [`Rules`] that keep
//! junk values, shared devices and conflicting identifiers from gluing different people
//! together. Two ways to run it:
//!
//! - [`resolve`]: a batch run over edges in memory, stored nowhere (SQL:
//!   `resolve_identities`).
//! - [`IdentityGraph`]: the graph stored in the state store, updated incrementally by
//!   [`IdentityGraph::add_edges`] and looked up by [`IdentityGraph::person_id`] (SQL:
//!   `identity_update`, `person_id`, `martdb.identity_map`, `martdb.identity_merges`).
//!
//! Invariants:
//! - **Stable ids.** A person's id is the fingerprint of its smallest identifier when it is
//!   first formed (see `edges` for the fingerprint): the same edges give the same ids on
//!   every run and in any order, and a batch run and a stored graph built from the same
//!   edges in one update agree. In the stored graph an id, once handed out, stays with
//!   its person as identifiers join it; when two persons merge, one id survives and the
//!   other is recorded in the merge history.
//! - **No person is split.** Rules decide about links when they arrive; an incremental
//!   update never takes an identifier away from its person. A rule that would have
//!   rejected an earlier link (a device that became a hub later) applies to the links
//!   still to come; resolve everything again in batch to apply it to all.
//! - **All or nothing.** An update of the stored graph is one state-store transaction:
//!   after a crash the graph is as it was before the update or as it was after it.

mod edges;
mod graph;
mod resolve;
mod rules;
mod union_find;

#[cfg(test)]
mod tests;

pub use edges::{Edge, EdgeBatch};
pub use graph::{
    IdentityGraph, Merge, StoredIdentifier, StoredPerson, StoredRejection, UpdateSummary,
};
pub use resolve::{PersonSummary, Rejected, Resolution, Resolver, resolve};
pub use rules::{Rules, TieBreak};

use crate::storage::StorageError;

/// Why a link was not merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A side's type or value is NULL.
    MissingIdentifier,
    /// A side's value is blocked for its type.
    BlockedValue,
    /// A side is linked to more identifiers than its type's `max_degree`.
    MaxDegree,
    /// The merge would give a person more identifiers of this type (an index into the
    /// run's types) than `max_per_person` allows.
    MaxPerPerson(u16),
    /// The merge would give a person more identifiers than `max_identifiers` allows.
    MaxIdentifiers,
}

impl Reason {
    /// The reason as SQL shows it.
    pub fn name(self) -> &'static str {
        match self {
            Reason::MissingIdentifier => "missing_identifier",
            Reason::BlockedValue => "blocked_value",
            Reason::MaxDegree => "max_degree",
            Reason::MaxPerPerson(_) => "max_per_person",
            Reason::MaxIdentifiers => "max_identifiers",
        }
    }
}

/// Errors of identity resolution.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The edges cannot be resolved as given.
    #[error("identity resolution: {message}")]
    Input { message: String },
    /// A rule is malformed.
    #[error("identity rules: {message}")]
    Rule { message: String },
    /// The stored graph could not be read or written.
    #[error("identity graph: {0}")]
    Store(#[from] StorageError),
    /// The engine that owned the stored graph was closed.
    #[error("the database was closed")]
    Closed,
}

impl IdentityError {
    /// The SQLSTATE a client sees.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            IdentityError::Input { .. } | IdentityError::Rule { .. } => "22023",
            IdentityError::Store(_) => "58030",
            IdentityError::Closed => "57P01",
        }
    }
}

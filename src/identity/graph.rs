//! The stored identity graph: persons kept in the state store and updated incrementally.
//!
//! Tables of the state store (redb), all written by one transaction per update:
//! - `identity_nodes`: (type, value) → (person, degree, hub, first seen, last seen);
//! - `identity_members`: (person, type, value), to move a person's identifiers on a merge;
//! - `identity_persons`: person → (identifiers, created at, updated at), and
//!   `identity_person_types`: (person, type) → identifiers of that type;
//! - `identity_links`: (type a, value a, type b, value b), the smaller identifier first →
//!   (observations, first seen, last seen, reason, detail); reason `''` means merged;
//! - `identity_merges`: merged person → (surviving person, merged at, update number).
//!
//! An update reads only the rows of the identifiers its edges mention (and, on a merge,
//! the members of the persons that merge), so its cost follows the size of the update
//! and of the persons it touches, not of the graph. New links are taken in the order
//! batch resolution uses (see `resolve`); a link already stored only has its
//! observations counted: its decision stands. When persons merge, the one with more
//! identifiers survives (on a tie, the smaller id), so the fewest rows move.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::edges::EdgeBatch;
use super::resolve::{Intake, Keep, intake, merge_order};
use super::rules::Rules;
use super::{IdentityError, Reason};
use crate::storage::Storage;

type NodeValue = (i64, u32, bool, i64, i64);
type LinkValue<'a> = (u64, i64, i64, &'a str, &'a str);
/// A stored link's value, read out of its transaction.
type OwnedLink = (u64, i64, i64, String, String);

const NODES: TableDefinition<(&str, &str), NodeValue> = TableDefinition::new("identity_nodes");
const MEMBERS: TableDefinition<(i64, &str, &str), ()> = TableDefinition::new("identity_members");
const PERSONS: TableDefinition<i64, (u64, i64, i64)> = TableDefinition::new("identity_persons");
const PERSON_TYPES: TableDefinition<(i64, &str), u64> =
    TableDefinition::new("identity_person_types");
const LINKS: TableDefinition<(&str, &str, &str, &str), LinkValue> =
    TableDefinition::new("identity_links");
const MERGES: TableDefinition<i64, (i64, i64, u64)> = TableDefinition::new("identity_merges");
const META: TableDefinition<&str, u64> = TableDefinition::new("identity_meta");

/// What one update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateSummary {
    /// The update's number (1 for the first).
    pub update: u64,
    /// Rows read.
    pub edges: u64,
    /// Links not stored before, merged or rejected now.
    pub new_links: u64,
    /// Links stored before: only their observations were counted.
    pub known_links: u64,
    /// New links rejected, and rows with a missing identifier.
    pub rejected: u64,
    pub new_identifiers: u64,
    pub new_persons: u64,
    /// Persons merged into another.
    pub merged_persons: u64,
}

/// One identifier of the stored graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredIdentifier {
    pub id_type: String,
    pub id: String,
    pub person_id: i64,
    pub degree: u32,
    pub hub: bool,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// One person of the stored graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPerson {
    pub person_id: i64,
    pub identifiers: u64,
    /// (type, count), by type.
    pub types: Vec<(String, u64)>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A person merged into another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merge {
    pub merged_id: i64,
    pub into_id: i64,
    pub merged_at: i64,
    pub update: u64,
}

/// A stored link that was not merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRejection {
    pub type_a: String,
    pub id_a: String,
    pub type_b: String,
    pub id_b: String,
    pub observations: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    pub reason: String,
    /// The id type of a `max_per_person` rejection; empty otherwise.
    pub detail: String,
}

/// The identity graph of a state store. Cheap to clone.
///
/// ```
/// # use martdb::storage::{Storage, StorageOptions};
/// use martdb::identity::{Edge, EdgeBatch, IdentityGraph, Rules};
/// # let dir = tempfile::tempdir().unwrap();
/// # let options = StorageOptions { create_if_missing: true, ..Default::default() };
/// # let storage = std::sync::Arc::new(Storage::open(dir.path().to_str().unwrap(), &options).unwrap());
/// let graph = IdentityGraph::new(&storage);
/// let edge = |a: &'static str, b: &'static str| Edge {
///     type_a: "phone", id_a: a, type_b: "device", id_b: b, observed_at: 0,
/// };
/// graph.add_edges(&[EdgeBatch::from_edges(&[edge("p1", "d1"), edge("p2", "d2")])], &Rules::default()).unwrap();
/// let p1 = graph.person_id("phone", "p1").unwrap().unwrap();
/// // A later edge joins the two persons: one id survives, the other is in the history.
/// let summary = graph.add_edges(&[EdgeBatch::from_edges(&[edge("p1", "d2")])], &Rules::default()).unwrap();
/// assert_eq!(summary.merged_persons, 1);
/// let survivor = graph.person_id("device", "d2").unwrap().unwrap();
/// assert_eq!(graph.person_id("phone", "p1").unwrap(), Some(survivor));
/// assert_eq!(graph.merges().unwrap().len(), 1);
/// # let _ = p1;
/// ```
#[derive(Clone)]
pub struct IdentityGraph {
    /// Weak: the engine owns its storage (see `IdDictionary`).
    storage: Weak<Storage>,
}

impl std::fmt::Debug for IdentityGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityGraph")
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A person's state while an update runs.
#[derive(Debug, Clone)]
struct Tally {
    identifiers: u64,
    /// Identifiers of each limited type.
    limited: Vec<u64>,
}

impl IdentityGraph {
    pub fn new(storage: &Arc<Storage>) -> Self {
        IdentityGraph {
            storage: Arc::downgrade(storage),
        }
    }

    fn storage(&self) -> Result<Arc<Storage>, IdentityError> {
        self.storage.upgrade().ok_or(IdentityError::Closed)
    }

    /// Applies `batches` of edges under `rules`, durably, all or nothing.
    pub fn add_edges(
        &self,
        batches: &[EdgeBatch],
        rules: &Rules,
    ) -> Result<UpdateSummary, IdentityError> {
        let Intake {
            mut interner,
            mut type_rules,
            mut sets,
            blocked,
            links,
            rejected: intake_rejected,
            batch_starts,
            rows,
            ..
        } = intake(batches, rules, Keep::Links)?;
        // A limit holds for the persons an update merges even when none of the update's
        // identifiers is of the limited type: every limited type gets a tally.
        for id_type in rules.limited_types() {
            if usize::from(interner.type_index(id_type)?) == type_rules.len() {
                type_rules.push(rules.type_rules(id_type)?);
            }
        }
        let interner = interner;
        let storage = self.storage()?;
        let kv = |e: redb::Error| IdentityError::Store(storage.kv_error(e));
        let now = now_micros();
        let n = interner.len();
        let mut summary = UpdateSummary {
            edges: rows,
            ..Default::default()
        };
        let key_of = |node: u32| {
            (
                interner.type_name(interner.type_of(node)),
                interner.value(node),
            )
        };
        let txn = storage.kv().begin_write().map_err(|e| kv(e.into()))?;
        {
            let mut nodes = txn.open_table(NODES).map_err(|e| kv(e.into()))?;
            let mut members = txn.open_table(MEMBERS).map_err(|e| kv(e.into()))?;
            let mut persons = txn.open_table(PERSONS).map_err(|e| kv(e.into()))?;
            let mut person_types = txn.open_table(PERSON_TYPES).map_err(|e| kv(e.into()))?;
            let mut link_table = txn.open_table(LINKS).map_err(|e| kv(e.into()))?;
            let mut merges = txn.open_table(MERGES).map_err(|e| kv(e.into()))?;
            let mut meta = txn.open_table(META).map_err(|e| kv(e.into()))?;
            summary.update = meta
                .get("updates")
                .map_err(|e| kv(e.into()))?
                .map_or(0, |v| v.value())
                + 1;

            // What the store knows of each identifier and link of the update.
            let mut stored: Vec<Option<NodeValue>> = Vec::with_capacity(n);
            for node in 0..n as u32 {
                stored.push(match blocked[node as usize] {
                    true => None,
                    false => nodes
                        .get(key_of(node))
                        .map_err(|e| kv(e.into()))?
                        .map(|v| v.value()),
                });
            }
            let link_key = |a: u32, b: u32| {
                let (ka, kb) = (key_of(a), key_of(b));
                if ka <= kb {
                    (ka.0, ka.1, kb.0, kb.1)
                } else {
                    (kb.0, kb.1, ka.0, ka.1)
                }
            };
            let mut known: Vec<Option<OwnedLink>> = Vec::with_capacity(links.len());
            for link in &links {
                known.push(
                    link_table
                        .get(link_key(link.a, link.b))
                        .map_err(|e| kv(e.into()))?
                        .map(|v| {
                            let (o, f, l, r, d) = v.value();
                            (o, f, l, r.to_string(), d.to_string())
                        }),
                );
            }

            // Degrees after the update, and hubs.
            let mut degree: Vec<u32> = stored.iter().map(|s| s.map_or(0, |s| s.1)).collect();
            for (link, known) in links.iter().zip(&known) {
                if known.is_none() && link.a != link.b {
                    degree[link.a as usize] += 1;
                    degree[link.b as usize] += 1;
                }
            }
            let hub: Vec<bool> = (0..n)
                .map(|node| {
                    let cap = type_rules[usize::from(interner.type_of(node as u32))].max_degree;
                    stored[node].is_some_and(|s| s.2) || cap.is_some_and(|cap| degree[node] > cap)
                })
                .collect();

            // Each identifier starts in the set of its stored person, whose tally comes
            // from the store; a new identifier starts alone.
            let limited: Vec<(u16, u32)> = type_rules
                .iter()
                .enumerate()
                .filter_map(|(t, r)| r.max_per_person.map(|limit| (t as u16, limit)))
                .collect();
            let mut tally: Vec<Option<Tally>> = vec![None; n];
            let mut first_of_person: HashMap<i64, u32> = HashMap::new();
            for node in 0..n as u32 {
                if blocked[node as usize] {
                    continue;
                }
                match stored[node as usize] {
                    Some((person, ..)) => {
                        if let Some(&first) = first_of_person.get(&person) {
                            let root = sets.find(first);
                            let (new_root, _) = sets.union_roots(root, node);
                            if new_root != root {
                                tally[new_root as usize] = tally[root as usize].take();
                            }
                            continue;
                        }
                        first_of_person.insert(person, node);
                        let identifiers = persons
                            .get(person)
                            .map_err(|e| kv(e.into()))?
                            .map_or(0, |v| v.value().0);
                        let mut counts = Vec::with_capacity(limited.len());
                        for &(id_type, _) in &limited {
                            counts.push(
                                person_types
                                    .get((person, interner.type_name(id_type)))
                                    .map_err(|e| kv(e.into()))?
                                    .map_or(0, |v| v.value()),
                            );
                        }
                        tally[node as usize] = Some(Tally {
                            identifiers,
                            limited: counts,
                        });
                    }
                    None => {
                        let own = interner.type_of(node);
                        tally[node as usize] = Some(Tally {
                            identifiers: 1,
                            limited: limited.iter().map(|&(t, _)| u64::from(t == own)).collect(),
                        });
                    }
                }
            }

            // New links, in merge order.
            let mut decision: Vec<Option<Reason>> = vec![None; links.len()];
            let max_identifiers = rules.max_identifiers_limit();
            'links: for i in merge_order(&links, rules, &interner, &type_rules) {
                let i = i as usize;
                let link = &links[i];
                if known[i].is_some() {
                    continue;
                }
                summary.new_links += 1;
                if link.a == link.b {
                    continue;
                }
                if hub[link.a as usize] || hub[link.b as usize] {
                    decision[i] = Some(Reason::MaxDegree);
                    continue;
                }
                let (a, b) = (sets.find(link.a), sets.find(link.b));
                if a == b {
                    continue;
                }
                let (ta, tb) = (
                    tally[a as usize].as_ref().expect("every root of an unblocked node has a tally, and links never touch blocked nodes"),
                    tally[b as usize].as_ref().expect("every root of an unblocked node has a tally, and links never touch blocked nodes"),
                );
                if max_identifiers.is_some_and(|cap| ta.identifiers + tb.identifiers > cap.into()) {
                    decision[i] = Some(Reason::MaxIdentifiers);
                    continue;
                }
                for (slot, &(id_type, limit)) in limited.iter().enumerate() {
                    if ta.limited[slot] + tb.limited[slot] > u64::from(limit) {
                        decision[i] = Some(Reason::MaxPerPerson(id_type));
                        continue 'links;
                    }
                }
                let (root, absorbed) = sets.union_roots(a, b);
                let absorbed = tally[absorbed as usize].take().expect("every root of an unblocked node has a tally, and links never touch blocked nodes");
                let root = tally[root as usize].as_mut().expect("every root of an unblocked node has a tally, and links never touch blocked nodes");
                root.identifiers += absorbed.identifiers;
                for (count, more) in root.limited.iter_mut().zip(absorbed.limited) {
                    *count += more;
                }
            }

            // Persons: each set keeps its stored person with the most identifiers; the
            // others merge into it; a set of new identifiers only is a new person.
            struct Group {
                persons: Vec<i64>,
                stored_nodes: Vec<u32>,
                new_nodes: Vec<u32>,
                smallest: i64,
            }
            let mut groups: BTreeMap<u32, Group> = BTreeMap::new();
            for node in 0..n as u32 {
                if blocked[node as usize] {
                    continue;
                }
                let group = groups.entry(sets.find(node)).or_insert(Group {
                    persons: Vec::new(),
                    stored_nodes: Vec::new(),
                    new_nodes: Vec::new(),
                    smallest: i64::MAX,
                });
                match stored[node as usize] {
                    Some((person, ..)) => {
                        group.stored_nodes.push(node);
                        if !group.persons.contains(&person) {
                            group.persons.push(person);
                        }
                    }
                    None => {
                        group.new_nodes.push(node);
                        group.smallest = group.smallest.min(interner.fingerprint(node) as i64);
                    }
                }
            }
            let mut person_of: Vec<i64> = vec![-1; n];
            let mut taken: HashSet<i64> = HashSet::new();
            let mut groups: Vec<Group> = groups.into_values().collect();
            groups.sort_unstable_by_key(|g| g.smallest);
            for group in groups {
                let person = if group.persons.is_empty() {
                    let mut id = group.smallest;
                    while taken.contains(&id)
                        || persons.get(id).map_err(|e| kv(e.into()))?.is_some()
                    {
                        id = (id + 1) & i64::MAX;
                    }
                    persons
                        .insert(id, (0, now, now))
                        .map_err(|e| kv(e.into()))?;
                    summary.new_persons += 1;
                    id
                } else {
                    let mut sized = Vec::with_capacity(group.persons.len());
                    for &person in &group.persons {
                        let size = persons
                            .get(person)
                            .map_err(|e| kv(e.into()))?
                            .map_or(0, |v| v.value().0);
                        sized.push((std::cmp::Reverse(size), person));
                    }
                    sized.sort_unstable();
                    let survivor = sized[0].1;
                    for &(_, loser) in &sized[1..] {
                        merge_person(
                            loser,
                            survivor,
                            (now, summary.update),
                            (&mut nodes, &mut members, &mut persons, &mut person_types),
                            &mut merges,
                        )
                        .map_err(kv)?;
                        summary.merged_persons += 1;
                    }
                    survivor
                };
                taken.insert(person);
                for &node in group.new_nodes.iter().chain(&group.stored_nodes) {
                    person_of[node as usize] = person;
                }
                if group.new_nodes.is_empty() && group.persons.len() == 1 {
                    // Known identifiers of one person: the person did not change.
                    continue;
                }
                let mut added: BTreeMap<&str, u64> = BTreeMap::new();
                for &node in &group.new_nodes {
                    let (id_type, value) = key_of(node);
                    members
                        .insert((person, id_type, value), ())
                        .map_err(|e| kv(e.into()))?;
                    *added.entry(id_type).or_default() += 1;
                    summary.new_identifiers += 1;
                }
                for (id_type, count) in &added {
                    let before = person_types
                        .get((person, *id_type))
                        .map_err(|e| kv(e.into()))?
                        .map_or(0, |v| v.value());
                    person_types
                        .insert((person, *id_type), before + count)
                        .map_err(|e| kv(e.into()))?;
                }
                let (identifiers, created_at, _) = persons
                    .get(person)
                    .map_err(|e| kv(e.into()))?
                    .map_or((0, now, now), |v| v.value());
                persons
                    .insert(
                        person,
                        (identifiers + group.new_nodes.len() as u64, created_at, now),
                    )
                    .map_err(|e| kv(e.into()))?;
            }

            // Identifier rows: person, degree, hub flag and times seen.
            let mut seen: Vec<(i64, i64)> = stored
                .iter()
                .map(|s| s.map_or((i64::MAX, i64::MIN), |s| (s.3, s.4)))
                .collect();
            let mut see = |node: u32, first: i64, last: i64| {
                let times = &mut seen[node as usize];
                times.0 = times.0.min(first);
                times.1 = times.1.max(last);
            };
            for link in &links {
                for node in [link.a, link.b] {
                    see(node, link.first_seen, link.last_seen);
                }
            }
            // An identifier seen beside a blocked value was seen all the same.
            for rejection in &intake_rejected {
                let batch = batch_starts.partition_point(|&s| s <= rejection.row) - 1;
                let row = (rejection.row - batch_starts[batch]) as usize;
                if let Some((a, b)) = batches[batch].identifiers(row) {
                    for (id_type, id) in [a, b] {
                        if let Some(node) = interner.get(id_type, id) {
                            see(node, rejection.first_seen, rejection.last_seen);
                        }
                    }
                }
            }
            for node in 0..n as u32 {
                if blocked[node as usize] {
                    continue;
                }
                let (first_seen, last_seen) = seen[node as usize];
                nodes
                    .insert(
                        key_of(node),
                        (
                            person_of[node as usize],
                            degree[node as usize],
                            hub[node as usize],
                            first_seen,
                            last_seen,
                        ),
                    )
                    .map_err(|e| kv(e.into()))?;
            }

            // Links: known ones count their observations; new ones store their decision.
            for (i, link) in links.iter().enumerate() {
                let key = link_key(link.a, link.b);
                let value = match &known[i] {
                    Some((observations, first, last, reason, detail)) => {
                        summary.known_links += 1;
                        (
                            observations + link.observations,
                            (*first).min(link.first_seen),
                            (*last).max(link.last_seen),
                            reason.clone(),
                            detail.clone(),
                        )
                    }
                    None => {
                        let (reason, detail) = match decision[i] {
                            None => ("", ""),
                            Some(reason) => {
                                summary.rejected += 1;
                                let detail = match reason {
                                    Reason::MaxPerPerson(t) => interner.type_name(t),
                                    _ => "",
                                };
                                (reason.name(), detail)
                            }
                        };
                        (
                            link.observations,
                            link.first_seen,
                            link.last_seen,
                            reason.to_string(),
                            detail.to_string(),
                        )
                    }
                };
                link_table
                    .insert(
                        key,
                        (
                            value.0,
                            value.1,
                            value.2,
                            value.3.as_str(),
                            value.4.as_str(),
                        ),
                    )
                    .map_err(|e| kv(e.into()))?;
            }

            // Blocked links are stored as rejected too (identifiers of either side are
            // strings of the input rows); rows with a missing side only count.
            for rejection in &intake_rejected {
                if rejection.reason != Reason::BlockedValue {
                    summary.rejected += 1;
                    continue;
                }
                let batch = batch_starts.partition_point(|&s| s <= rejection.row) - 1;
                let row = (rejection.row - batch_starts[batch]) as usize;
                let Some((a, b)) = batches[batch].identifiers(row) else {
                    continue;
                };
                let key = if a <= b {
                    (a.0, a.1, b.0, b.1)
                } else {
                    (b.0, b.1, a.0, a.1)
                };
                let stored_link = link_table.get(key).map_err(|e| kv(e.into()))?.map(|v| {
                    let (o, f, l, ..) = v.value();
                    (o, f, l)
                });
                if stored_link.is_some() {
                    summary.known_links += 1;
                } else {
                    summary.new_links += 1;
                    summary.rejected += 1;
                }
                let (observations, first_seen, last_seen) =
                    stored_link.unwrap_or((0, i64::MAX, i64::MIN));
                link_table
                    .insert(
                        key,
                        (
                            observations + rejection.observations,
                            first_seen.min(rejection.first_seen),
                            last_seen.max(rejection.last_seen),
                            Reason::BlockedValue.name(),
                            "",
                        ),
                    )
                    .map_err(|e| kv(e.into()))?;
            }
            meta.insert("updates", summary.update)
                .map_err(|e| kv(e.into()))?;
        }
        txn.commit().map_err(|e| kv(e.into()))?;
        Ok(summary)
    }

    /// The person of identifier (`id_type`, `id`), if the graph holds it.
    pub fn person_id(&self, id_type: &str, id: &str) -> Result<Option<i64>, IdentityError> {
        Ok(self.person_ids([Some((id_type, id))])?[0])
    }

    /// The persons of many identifiers, read in one transaction (None stays None).
    pub fn person_ids<'a>(
        &self,
        keys: impl IntoIterator<Item = Option<(&'a str, &'a str)>>,
    ) -> Result<Vec<Option<i64>>, IdentityError> {
        let storage = self.storage()?;
        let kv = |e: redb::Error| IdentityError::Store(storage.kv_error(e));
        let txn = storage.kv().begin_read().map_err(|e| kv(e.into()))?;
        let nodes = match txn.open_table(NODES) {
            Ok(table) => Some(table),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(kv(e.into())),
        };
        keys.into_iter()
            .map(|key| match (key, &nodes) {
                (Some(key), Some(nodes)) => Ok(nodes
                    .get(key)
                    .map_err(|e| kv(e.into()))?
                    .map(|v| v.value().0)),
                _ => Ok(None),
            })
            .collect()
    }

    /// Every identifier, by type and value.
    pub fn identifiers(&self) -> Result<Vec<StoredIdentifier>, IdentityError> {
        self.scan(
            NODES,
            |(id_type, id), (person_id, degree, hub, first, last)| StoredIdentifier {
                id_type: id_type.to_string(),
                id: id.to_string(),
                person_id,
                degree,
                hub,
                first_seen: first,
                last_seen: last,
            },
        )
    }

    /// Every person, by id.
    pub fn persons(&self) -> Result<Vec<StoredPerson>, IdentityError> {
        let mut types: HashMap<i64, Vec<(String, u64)>> = HashMap::new();
        for (person, id_type, count) in self.scan(PERSON_TYPES, |(person, id_type), count| {
            (person, id_type.to_string(), count)
        })? {
            if count > 0 {
                types.entry(person).or_default().push((id_type, count));
            }
        }
        self.scan(
            PERSONS,
            |person_id, (identifiers, created_at, updated_at)| StoredPerson {
                person_id,
                identifiers,
                types: types.remove(&person_id).unwrap_or_default(),
                created_at,
                updated_at,
            },
        )
    }

    /// The merge history, by merged id.
    pub fn merges(&self) -> Result<Vec<Merge>, IdentityError> {
        self.scan(MERGES, |merged_id, (into_id, merged_at, update)| Merge {
            merged_id,
            into_id,
            merged_at,
            update,
        })
    }

    /// Links that were not merged.
    pub fn rejected(&self) -> Result<Vec<StoredRejection>, IdentityError> {
        let all = self.scan(
            LINKS,
            |(type_a, id_a, type_b, id_b), (observations, first, last, reason, detail)| {
                (!reason.is_empty()).then(|| StoredRejection {
                    type_a: type_a.to_string(),
                    id_a: id_a.to_string(),
                    type_b: type_b.to_string(),
                    id_b: id_b.to_string(),
                    observations,
                    first_seen: first,
                    last_seen: last,
                    reason: reason.to_string(),
                    detail: detail.to_string(),
                })
            },
        )?;
        Ok(all.into_iter().flatten().collect())
    }

    /// Every row of `table`, mapped; an absent table is empty.
    fn scan<K, V, T>(
        &self,
        table: TableDefinition<K, V>,
        mut map: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> T,
    ) -> Result<Vec<T>, IdentityError>
    where
        K: redb::Key + 'static,
        V: redb::Value + 'static,
    {
        let storage = self.storage()?;
        let kv = |e: redb::Error| IdentityError::Store(storage.kv_error(e));
        let txn = storage.kv().begin_read().map_err(|e| kv(e.into()))?;
        let table = match txn.open_table(table) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(kv(e.into())),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| kv(e.into()))? {
            let (key, value) = entry.map_err(|e| kv(e.into()))?;
            out.push(map(key.value(), value.value()));
        }
        Ok(out)
    }
}

type Tables<'t, 'a> = (
    &'a mut redb::Table<'t, (&'static str, &'static str), NodeValue>,
    &'a mut redb::Table<'t, (i64, &'static str, &'static str), ()>,
    &'a mut redb::Table<'t, i64, (u64, i64, i64)>,
    &'a mut redb::Table<'t, (i64, &'static str), u64>,
);

/// Moves every identifier of person `loser` to `survivor` and records the merge.
fn merge_person(
    loser: i64,
    survivor: i64,
    (merged_at, update): (i64, u64),
    (nodes, members, persons, person_types): Tables<'_, '_>,
    merges: &mut redb::Table<'_, i64, (i64, i64, u64)>,
) -> Result<(), redb::Error> {
    let moved: Vec<(String, String)> = members
        .range((loser, "", "")..(loser + 1, "", ""))?
        .map(|entry| {
            entry.map(|(key, _)| {
                let (_, id_type, id) = key.value();
                (id_type.to_string(), id.to_string())
            })
        })
        .collect::<Result<_, _>>()?;
    for (id_type, id) in &moved {
        members.remove((loser, id_type.as_str(), id.as_str()))?;
        members.insert((survivor, id_type.as_str(), id.as_str()), ())?;
        let node = nodes
            .get((id_type.as_str(), id.as_str()))?
            .map(|v| v.value());
        if let Some((_, degree, hub, first, last)) = node {
            nodes.insert(
                (id_type.as_str(), id.as_str()),
                (survivor, degree, hub, first, last),
            )?;
        }
    }
    let types: Vec<(String, u64)> = person_types
        .range((loser, "")..(loser + 1, ""))?
        .map(|entry| entry.map(|(key, count)| (key.value().1.to_string(), count.value())))
        .collect::<Result<_, _>>()?;
    for (id_type, count) in &types {
        person_types.remove((loser, id_type.as_str()))?;
        let before = person_types
            .get((survivor, id_type.as_str()))?
            .map_or(0, |v| v.value());
        person_types.insert((survivor, id_type.as_str()), before + count)?;
    }
    let lost = persons.remove(loser)?.map_or(0, |v| v.value().0);
    let (identifiers, created_at, updated_at) = persons
        .get(survivor)?
        .map_or((0, merged_at, merged_at), |v| v.value());
    persons.insert(survivor, (identifiers + lost, created_at, updated_at))?;
    merges.insert(loser, (survivor, merged_at, update))?;
    Ok(())
}

//! Batch resolution: identifier edges in, one person id per identifier out.
//!
//! The steps, each a pass over arrays indexed by node or row number:
//!
//! 1. **Intern** every identifier (see `edges`); a new identifier is checked once against
//!    the blocked values and patterns of its type. Rows with a NULL side are rejected
//!    (`missing_identifier`), rows touching a blocked identifier too (`blocked_value`).
//! 2. With no rule but blocking, every other row is a union at once: plain connected
//!    components, with no per-edge memory.
//! 3. Otherwise each row keeps its pair of nodes (8 bytes). A **link** is a distinct pair
//!    with its number of observations and first and last time seen; links are only built
//!    (by a sort) for the few rows whose links a rule has to look at one by one.
//! 4. **Hubs**: an identifier linked to more distinct identifiers than its type's
//!    `max_degree` loses all its links (`max_degree`): a shared store tablet is no evidence
//!    that its users are one person, whichever of them came first. A self-link links
//!    nobody and stands.
//! 5. **Limits** (`max_per_person`, `max_identifiers`): links are merged in a fixed order
//!    (priority class of the link's lower-priority type, then the tie-break, then the
//!    fingerprints) and a merge that would break a limit is rejected instead; what remains
//!    is retried. The order depends only on the links, never on the order of the rows.
//!    Only components over a limit as a whole are merged link by link (see
//!    `merge_in_order`).
//! 6. **Person ids**: a person's id is the smallest fingerprint among its identifiers. It
//!    depends only on who is in the person, so running again on the same edges, in any
//!    order, gives the same ids, and a person that gains no identifier keeps its id when
//!    other edges are added.
//!
//! The stored graph (`graph`) applies the same rules link by link; a test checks that both
//! agree on random graphs.

use std::collections::{HashMap, HashSet};

use super::edges::{EdgeBatch, Interner};
use super::rules::{Rules, TieBreak, TypeRules};
use super::union_find::UnionFind;
use super::{IdentityError, Reason};

/// Person id of an identifier that belongs to nobody (a blocked value).
const NOBODY: i64 = -1;

/// An edge (or, from step 3 on, a distinct link) that was not merged, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The input row of its latest observation, counting across batches from 0.
    pub row: u64,
    pub reason: Reason,
    /// How many rows gave this link.
    pub observations: u64,
    /// Times in microseconds since the epoch; `i64::MIN` when unknown.
    pub first_seen: i64,
    pub last_seen: i64,
}

/// One person: its id and how many identifiers of each type it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonSummary {
    pub person_id: i64,
    pub identifiers: u64,
    /// (type, count), by type name.
    pub types: Vec<(String, u64)>,
}

/// What one resolution found.
pub struct Resolution {
    /// Global row number of each batch's first row.
    batch_starts: Vec<u64>,
    interner: Interner,
    /// Person id of each node; [`NOBODY`] for blocked identifiers.
    person: Vec<i64>,
    rejected: Vec<Rejected>,
    edges: u64,
}

impl std::fmt::Debug for Resolution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolution")
            .field("edges", &self.edges)
            .field("identifiers", &self.person.len())
            .field("rejected", &self.rejected.len())
            .finish()
    }
}

/// A distinct identifier pair (`a < b`, or `a == b` for a self-link).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    pub a: u32,
    pub b: u32,
    pub observations: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Global row of the latest observation.
    pub row: u64,
}

impl Link {
    pub fn rejected(&self, reason: Reason) -> Rejected {
        Rejected {
            row: self.row,
            reason,
            observations: self.observations,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
        }
    }
}

/// Rows, one per edge, that step 3 turns into links.
#[derive(Default)]
struct Rows {
    a: Vec<u32>,
    b: Vec<u32>,
    observed_at: Vec<i64>,
    row: Vec<u64>,
}

impl Rows {
    fn with_capacity(rows: usize) -> Self {
        Rows {
            a: Vec::with_capacity(rows),
            b: Vec::with_capacity(rows),
            observed_at: Vec::with_capacity(rows),
            row: Vec::with_capacity(rows),
        }
    }

    fn push(&mut self, a: u32, b: u32, observed_at: i64, row: u64) {
        self.a.push(a);
        self.b.push(b);
        self.observed_at.push(observed_at);
        self.row.push(row);
    }

    /// The distinct links of the rows.
    fn into_links(self) -> Vec<Link> {
        let mut order: Vec<(u64, u32)> = (0..self.a.len())
            .map(|i| {
                let (a, b) = (self.a[i], self.b[i]);
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                ((u64::from(lo) << 32) | u64::from(hi), i as u32)
            })
            .collect();
        order.sort_unstable();
        let mut links: Vec<Link> = Vec::with_capacity(order.len());
        let mut last_key = None;
        for (key, i) in order {
            let i = i as usize;
            let observed_at = self.observed_at[i];
            if last_key == Some(key) {
                let link = links
                    .last_mut()
                    .expect("last_key is Some only once a link was pushed for it");
                link.observations += 1;
                link.first_seen = link.first_seen.min(observed_at);
                if observed_at > link.last_seen {
                    (link.last_seen, link.row) = (observed_at, self.row[i]);
                } else if observed_at == link.last_seen {
                    link.row = link.row.max(self.row[i]);
                }
                continue;
            }
            last_key = Some(key);
            links.push(Link {
                a: (key >> 32) as u32,
                b: key as u32,
                observations: 1,
                first_seen: observed_at,
                last_seen: observed_at,
                row: self.row[i],
            });
        }
        links
    }
}

/// What [`intake`] keeps of the rows that are neither missing nor blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Nothing: each row is a union at once (plain connected components).
    Unions,
    /// The two nodes of every row ([`Intake::pairs`]).
    Pairs,
    /// The distinct links ([`Intake::links`]).
    Links,
}

/// The pair of a row that [`intake`] rejected.
pub(crate) const NO_PAIR: [u32; 2] = [u32::MAX; 2];

/// Steps 1–3: what every run does with its rows.
pub(crate) struct Intake {
    pub interner: Interner,
    /// The rules of each interned type, by type index.
    pub type_rules: Vec<TypeRules>,
    /// One set per node; with [`Keep::Unions`] the rows are already unions.
    pub sets: UnionFind,
    pub blocked: Vec<bool>,
    /// With [`Keep::Pairs`], the nodes of each row by global row: [`NO_PAIR`] for the
    /// rows rejected here.
    pub pairs: Vec<[u32; 2]>,
    /// With [`Keep::Links`], the distinct links not touching a blocked identifier.
    pub links: Vec<Link>,
    /// Missing-identifier rows and blocked links.
    pub rejected: Vec<Rejected>,
    pub batch_starts: Vec<u64>,
    pub rows: u64,
}

/// The batch of global row `row` and the row's number in it.
fn locate(batch_starts: &[u64], row: u64) -> (usize, usize) {
    let batch = batch_starts.partition_point(|&start| start <= row) - 1;
    (batch, (row - batch_starts[batch]) as usize)
}

/// The links of global `rows` (given in order) of `pairs`, their times read from
/// `batches`.
fn links_of_rows(
    rows: impl Iterator<Item = u64>,
    pairs: &[[u32; 2]],
    batches: &[EdgeBatch],
    batch_starts: &[u64],
) -> Vec<Link> {
    let mut kept = Rows::default();
    for row in rows {
        let [a, b] = pairs[row as usize];
        let (batch, offset) = locate(batch_starts, row);
        kept.push(a, b, batches[batch].observed_at(offset), row);
    }
    kept.into_links()
}

/// Rows interned at a time: their table lines are prefetched together, so that the
/// cache misses of a chunk overlap instead of coming one after another.
const CHUNK: usize = 16;

/// Steps 1–3 over batches that arrive one at a time.
pub(crate) struct Intaking<'r> {
    rules: &'r Rules,
    keep: Keep,
    interner: Interner,
    type_rules: Vec<TypeRules>,
    sets: UnionFind,
    blocked: Vec<bool>,
    rows: Rows,
    pairs: Vec<[u32; 2]>,
    blocked_rows: Rows,
    rejected: Vec<Rejected>,
    batch_starts: Vec<u64>,
    /// Rows taken so far.
    start: u64,
}

impl<'r> Intaking<'r> {
    /// Room for `expected_rows` rows (at most two identifiers each) without moving; more
    /// rows are fine.
    pub fn new(rules: &'r Rules, keep: Keep, expected_rows: usize) -> Self {
        let identifiers = expected_rows.saturating_mul(2);
        Intaking {
            rules,
            keep,
            interner: Interner::with_capacity(identifiers),
            type_rules: Vec::new(),
            sets: UnionFind::with_capacity(identifiers),
            blocked: Vec::with_capacity(identifiers),
            rows: Rows::with_capacity(if keep == Keep::Links {
                expected_rows
            } else {
                0
            }),
            pairs: Vec::with_capacity(if keep == Keep::Pairs {
                expected_rows
            } else {
                0
            }),
            blocked_rows: Rows::default(),
            rejected: Vec::new(),
            batch_starts: Vec::new(),
            start: 0,
        }
    }

    pub fn add(&mut self, batch: EdgeBatch) -> Result<(), IdentityError> {
        let Intaking {
            rules,
            keep,
            interner,
            type_rules,
            sets,
            blocked,
            rows,
            pairs,
            blocked_rows,
            rejected,
            batch_starts,
            start,
        } = self;
        let keep = *keep;
        batch_starts.push(*start);
        let rows_in_batch = batch.len();
        let batch_index = interner.add_batch(batch);
        let batch = &interner.batches()[batch_index].clone();
        // (type, fingerprint) of both sides of each row of a chunk; None for a NULL side.
        let mut sides: [Option<[(u16, u64); 2]>; CHUNK] = [None; CHUNK];
        for chunk in (0..rows_in_batch).step_by(CHUNK) {
            let chunk_rows = chunk..rows_in_batch.min(chunk + CHUNK);
            for (slot, row) in sides.iter_mut().zip(chunk_rows.clone()) {
                *slot = match batch.identifiers(row) {
                    Some(((type_a, id_a), (type_b, id_b))) => {
                        let mut side = |id_type: &str, value: &str| {
                            let type_index = interner.type_index(id_type)?;
                            if usize::from(type_index) == type_rules.len() {
                                type_rules.push(rules.type_rules(id_type)?);
                            }
                            let fp = interner.fingerprint_of(type_index, value);
                            interner.prefetch(fp);
                            Ok::<_, IdentityError>((type_index, fp))
                        };
                        Some([side(type_a, id_a)?, side(type_b, id_b)?])
                    }
                    None => None,
                };
            }
            for (side, row) in sides.iter().zip(chunk_rows) {
                let global = *start + row as u64;
                let observed_at = batch.observed_at(row);
                let Some([(type_a, fp_a), (type_b, fp_b)]) = *side else {
                    if keep == Keep::Pairs {
                        pairs.push(NO_PAIR);
                    }
                    rejected.push(Rejected {
                        row: global,
                        reason: Reason::MissingIdentifier,
                        observations: 1,
                        first_seen: observed_at,
                        last_seen: observed_at,
                    });
                    continue;
                };
                let mut node = |type_index: u16, side: u64, fp: u64| {
                    let (node, new) = interner.intern(type_index, (batch_index, row, side), fp)?;
                    if new {
                        sets.push();
                        let rules = &type_rules[usize::from(type_index)];
                        blocked.push(rules.is_blocked(interner.value(node)));
                    }
                    Ok::<_, IdentityError>((node, blocked[node as usize]))
                };
                let (a, a_blocked) = node(type_a, 0, fp_a)?;
                let (b, b_blocked) = node(type_b, 1, fp_b)?;
                if a_blocked || b_blocked {
                    blocked_rows.push(a, b, observed_at, global);
                    if keep == Keep::Pairs {
                        pairs.push(NO_PAIR);
                    }
                    continue;
                }
                match keep {
                    Keep::Unions => sets.union(a, b),
                    Keep::Pairs => pairs.push([a, b]),
                    Keep::Links => rows.push(a, b, observed_at, global),
                }
            }
        }
        *start += rows_in_batch as u64;
        Ok(())
    }

    pub fn finish(self) -> Intake {
        let mut rejected = self.rejected;
        rejected.extend(
            self.blocked_rows
                .into_links()
                .iter()
                .map(|link| link.rejected(Reason::BlockedValue)),
        );
        Intake {
            interner: self.interner,
            type_rules: self.type_rules,
            sets: self.sets,
            blocked: self.blocked,
            pairs: self.pairs,
            links: self.rows.into_links(),
            rejected,
            batch_starts: self.batch_starts,
            rows: self.start,
        }
    }
}

/// Steps 1–3 over `batches`.
pub(crate) fn intake(
    batches: &[EdgeBatch],
    rules: &Rules,
    keep: Keep,
) -> Result<Intake, IdentityError> {
    let total = batches.iter().map(EdgeBatch::len).sum();
    let mut intaking = Intaking::new(rules, keep, total);
    for batch in batches {
        intaking.add(batch.clone())?;
    }
    Ok(intaking.finish())
}

/// Resolves `batches` of edges under `rules`: [`Resolver`] over all of them.
///
/// ```
/// use martdb::identity::{Edge, EdgeBatch, Rules, resolve};
/// let edges = [
///     Edge { type_a: "phone", id_a: "13800000001", type_b: "device", id_b: "d1", observed_at: 0 },
///     Edge { type_a: "device", id_a: "d1", type_b: "email", id_b: "a@x.com", observed_at: 0 },
///     Edge { type_a: "phone", id_a: "13800000002", type_b: "device", id_b: "d2", observed_at: 0 },
/// ];
/// let resolution = resolve(vec![EdgeBatch::from_edges(&edges)], &Rules::default()).unwrap();
/// let alice = resolution.person_id("email", "a@x.com").unwrap();
/// assert_eq!(resolution.person_id("phone", "13800000001"), Some(alice));
/// assert_ne!(resolution.person_id("phone", "13800000002"), Some(alice));
/// assert_eq!(resolution.persons().len(), 2);
/// ```
pub fn resolve(batches: Vec<EdgeBatch>, rules: &Rules) -> Result<Resolution, IdentityError> {
    let total = batches.iter().map(EdgeBatch::len).sum();
    let mut resolver = Resolver::expecting(rules, total);
    for batch in batches {
        resolver.add(batch)?;
    }
    resolver.finish()
}

/// A batch resolution fed one batch of edges at a time, as a query produces them: the
/// identifiers of a batch are interned when it is added, so that reading the edges and
/// interning them overlap. The result is [`resolve`]'s over all the batches in the order
/// added.
///
/// ```
/// use martdb::identity::{Edge, EdgeBatch, Resolver, Rules};
/// let rules = Rules::default();
/// let mut resolver = Resolver::expecting(&rules, 2);
/// let edge = |a: &'static str, b: &'static str| Edge {
///     type_a: "phone", id_a: a, type_b: "device", id_b: b, observed_at: 0,
/// };
/// resolver.add(EdgeBatch::from_edges(&[edge("13800000001", "d1")])).unwrap();
/// resolver.add(EdgeBatch::from_edges(&[edge("13800000002", "d1")])).unwrap();
/// let resolution = resolver.finish().unwrap();
/// assert_eq!(
///     resolution.person_id("phone", "13800000001"),
///     resolution.person_id("phone", "13800000002"),
/// );
/// ```
pub struct Resolver<'r> {
    rules: &'r Rules,
    intaking: Intaking<'r>,
}

impl<'r> Resolver<'r> {
    /// A resolver with room for about `edges` edges; more (or fewer) are fine, the room
    /// only saves growing arrays.
    pub fn expecting(rules: &'r Rules, edges: usize) -> Self {
        let keep = match rules.needs_links() {
            true => Keep::Pairs,
            false => Keep::Unions,
        };
        Resolver {
            rules,
            intaking: Intaking::new(rules, keep, edges),
        }
    }

    /// Interns the identifiers of `batch` (and, with no rule that needs links, joins its
    /// edges at once).
    pub fn add(&mut self, batch: EdgeBatch) -> Result<(), IdentityError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.intaking.add(batch)
    }

    /// Applies the rules and gives every identifier its person id.
    pub fn finish(self) -> Result<Resolution, IdentityError> {
        let rules = self.rules;
        let keep = self.intaking.keep;
        let Intake {
            interner,
            type_rules,
            mut sets,
            blocked,
            mut pairs,
            mut rejected,
            batch_starts,
            rows,
            ..
        } = self.intaking.finish();
        if keep == Keep::Pairs {
            let links_of = |rows: &mut dyn Iterator<Item = u64>, pairs: &[[u32; 2]]| {
                links_of_rows(rows, pairs, interner.batches(), &batch_starts)
            };
            reject_hubs(&mut pairs, &interner, &type_rules, &links_of, &mut rejected);
            if rules.orders_links() {
                merge_in_order(
                    &pairs,
                    rules,
                    &interner,
                    &type_rules,
                    &links_of,
                    &mut sets,
                    &mut rejected,
                );
            } else {
                for &[a, b] in pairs.iter().filter(|&&pair| pair != NO_PAIR) {
                    sets.union(a, b);
                }
            }
        }
        let person = person_ids(&interner, &blocked, &mut sets);
        rejected.sort_unstable_by_key(|r| r.row);
        Ok(Resolution {
            batch_starts,
            interner,
            person,
            rejected,
            edges: rows,
        })
    }
}

/// The distinct links of some global rows (in order) of the pairs.
type LinksOf<'a> = dyn Fn(&mut dyn Iterator<Item = u64>, &[[u32; 2]]) -> Vec<Link> + 'a;

/// Step 4: rows touching a hub become [`NO_PAIR`], and their links are rejected.
///
/// A node's distinct degree is at most its number of rows, so only the nodes with more
/// rows than their cap are candidates, and only their rows are sorted to count distinct
/// neighbours: the links of all rows are never built.
fn reject_hubs(
    pairs: &mut [[u32; 2]],
    interner: &Interner,
    type_rules: &[TypeRules],
    links_of: &LinksOf<'_>,
    rejected: &mut Vec<Rejected>,
) {
    if type_rules.iter().all(|t| t.max_degree.is_none()) {
        return;
    }
    let cap = |node: u32| type_rules[usize::from(interner.type_of(node))].max_degree;
    let linking = |pair: &&[u32; 2]| **pair != NO_PAIR && pair[0] != pair[1];
    let mut rows_of = vec![0u32; interner.len()];
    for &[a, b] in pairs.iter().filter(linking) {
        rows_of[a as usize] = rows_of[a as usize].saturating_add(1);
        rows_of[b as usize] = rows_of[b as usize].saturating_add(1);
    }
    let candidate = |node: u32| cap(node).is_some_and(|cap| rows_of[node as usize] > cap);
    // (candidate, neighbour) of every row of a candidate.
    let mut neighbours: Vec<u64> = Vec::new();
    for &[a, b] in pairs.iter().filter(linking) {
        for (node, other) in [(a, b), (b, a)] {
            if candidate(node) {
                neighbours.push((u64::from(node) << 32) | u64::from(other));
            }
        }
    }
    drop(rows_of);
    neighbours.sort_unstable();
    neighbours.dedup();
    let mut hub = vec![false; interner.len()];
    for group in neighbours.chunk_by(|x, y| x >> 32 == y >> 32) {
        let node = (group[0] >> 32) as u32;
        hub[node as usize] = cap(node).is_some_and(|cap| group.len() as u64 > u64::from(cap));
    }
    // A self-link links the hub to nobody: it stands, as in the stored graph.
    let mut hub_rows = Vec::new();
    for (row, pair) in pairs.iter().enumerate() {
        if linking(&pair) && (hub[pair[0] as usize] || hub[pair[1] as usize]) {
            hub_rows.push(row as u64);
        }
    }
    let links = links_of(&mut hub_rows.iter().copied(), pairs);
    rejected.extend(links.iter().map(|link| link.rejected(Reason::MaxDegree)));
    for &row in &hub_rows {
        pairs[row as usize] = NO_PAIR;
    }
}

/// The order key of a link under step 5: smaller merges first.
fn order_key(link: &Link, rank_class: &[u16], interner: &Interner, tie: TieBreak) -> (u128, u64) {
    let class = rank_class[usize::from(interner.type_of(link.a))]
        .max(rank_class[usize::from(interner.type_of(link.b))]);
    // Later times and more observations first: invert them.
    let later_first = !((link.last_seen as u64) ^ (1 << 63));
    let more_first = match tie {
        TieBreak::Recency => 0,
        TieBreak::Frequency => u32::MAX - link.observations.min(u64::from(u32::MAX)) as u32,
    };
    let primary =
        (u128::from(class) << 96) | (u128::from(more_first) << 64) | u128::from(later_first);
    let (fa, fb) = (interner.fingerprint(link.a), interner.fingerprint(link.b));
    let (lo, hi) = if fa <= fb { (fa, fb) } else { (fb, fa) };
    (primary, lo ^ hi.rotate_left(29))
}

/// The order step 5 merges `links` in: their indices.
pub(crate) fn merge_order(
    links: &[Link],
    rules: &Rules,
    interner: &Interner,
    type_rules: &[TypeRules],
) -> Vec<u32> {
    // Ranks become dense classes: 0 for the highest priority among the types present.
    let mut ranks: Vec<i64> = type_rules.iter().map(|t| t.rank).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let rank_class: Vec<u16> = type_rules
        .iter()
        .map(|t| {
            ranks
                .binary_search(&t.rank)
                .expect("ranks holds every rank of type_rules, collected just above")
                as u16
        })
        .collect();
    let tie = rules.get_tie_break();
    let mut order: Vec<(u128, u64, u32)> = links
        .iter()
        .enumerate()
        .map(|(i, link)| {
            let (primary, secondary) = order_key(link, &rank_class, interner, tie);
            (primary, secondary, i as u32)
        })
        .collect();
    order.sort_unstable();
    order.into_iter().map(|(_, _, i)| i).collect()
}

/// Step 5: merges the rows' links in order, rejecting those that would break a limit.
/// `sets` comes in as singletons.
///
/// The limits only ever bind inside a component of the rows that is over a limit as a
/// whole: a merge inside a component gives a set no more identifiers (of any type) than
/// the component holds, so in a component within every limit no link is rejected, in any
/// order. Such components are merged at once, and only the links of components over a
/// limit (usually a small share) are built, sorted and merged one by one. The result is
/// the same as merging every link in order.
fn merge_in_order(
    pairs: &[[u32; 2]],
    rules: &Rules,
    interner: &Interner,
    type_rules: &[TypeRules],
    links_of: &LinksOf<'_>,
    sets: &mut UnionFind,
    rejected: &mut Vec<Rejected>,
) {
    // The limited types, and each type's slot among them.
    let limited: Vec<(u16, u32)> = type_rules
        .iter()
        .enumerate()
        .filter_map(|(t, rules)| rules.max_per_person.map(|limit| (t as u16, limit)))
        .collect();
    let width = limited.len();
    let slot_of_type: Vec<Option<usize>> = (0..type_rules.len())
        .map(|t| limited.iter().position(|&(l, _)| usize::from(l) == t))
        .collect();
    let slot = |node: u32| slot_of_type[usize::from(interner.type_of(node))];
    let max_identifiers = rules.max_identifiers_limit();
    let n = interner.len();

    let kept = |pair: &&[u32; 2]| **pair != NO_PAIR;
    for &[a, b] in pairs.iter().filter(kept) {
        sets.union(a, b);
    }
    // Counts of the limited types at each component's root.
    let mut counts = vec![0u32; n * width];
    for node in 0..n as u32 {
        if let Some(slot) = slot(node) {
            counts[sets.find(node) as usize * width + slot] += 1;
        }
    }
    let mut over = vec![false; n];
    for node in 0..n as u32 {
        let root = sets.find(node);
        over[node as usize] = max_identifiers.is_some_and(|cap| sets.size(root) > cap)
            || limited
                .iter()
                .enumerate()
                .any(|(slot, &(_, limit))| counts[root as usize * width + slot] > limit);
    }
    let over_rows = pairs
        .iter()
        .enumerate()
        .filter(|(_, pair)| **pair != NO_PAIR && over[pair[0] as usize])
        .map(|(row, _)| row as u64);
    let links = links_of(&mut over_rows.into_iter(), pairs);
    // The components over a limit start again from singletons.
    counts.fill(0);
    for node in (0..n as u32).filter(|&node| over[node as usize]) {
        sets.reset(node);
        if let Some(slot) = slot(node) {
            counts[node as usize * width + slot] = 1;
        }
    }
    'links: for i in merge_order(&links, rules, interner, type_rules) {
        let link = &links[i as usize];
        let (a, b) = (sets.find(link.a), sets.find(link.b));
        if a == b {
            continue;
        }
        if let Some(cap) = max_identifiers
            && u64::from(sets.size(a)) + u64::from(sets.size(b)) > u64::from(cap)
        {
            rejected.push(link.rejected(Reason::MaxIdentifiers));
            continue;
        }
        let (a_at, b_at) = (a as usize * width, b as usize * width);
        for (slot, &(id_type, limit)) in limited.iter().enumerate() {
            if counts[a_at + slot] + counts[b_at + slot] > limit {
                rejected.push(link.rejected(Reason::MaxPerPerson(id_type)));
                continue 'links;
            }
        }
        let (root, absorbed) = sets.union_roots(a, b);
        let (root_at, absorbed_at) = (root as usize * width, absorbed as usize * width);
        for slot in 0..width {
            counts[root_at + slot] += counts[absorbed_at + slot];
        }
    }
}

/// Step 6: each node's person id, the smallest fingerprint of its set.
fn person_ids(interner: &Interner, blocked: &[bool], sets: &mut UnionFind) -> Vec<i64> {
    let n = interner.len();
    // Pass 1 keeps each set's minimum at its root; pass 2 copies it to the members. A
    // non-root slot is only ever written, never read, so one array serves both.
    let mut ids = vec![i64::MAX; n];
    for node in 0..n as u32 {
        if !blocked[node as usize] {
            let root = sets.find(node) as usize;
            ids[root] = ids[root].min(interner.fingerprint(node) as i64);
        }
    }
    for node in 0..n as u32 {
        ids[node as usize] = match blocked[node as usize] {
            true => NOBODY,
            false => ids[sets.find(node) as usize],
        };
    }
    if interner.fingerprints_collide() {
        let roots: Vec<u32> = (0..n as u32).map(|node| sets.find(node)).collect();
        separate_sets_sharing_an_id(&mut ids, &roots, |node| {
            (
                interner.type_name(interner.type_of(node)),
                interner.value(node),
            )
        });
    }
    ids
}

/// When two different identifiers share a fingerprint, two sets may have come out with
/// the same id. The set whose smallest identifier (by type, then value) is smaller keeps
/// it; the others take the next ids that no set uses. Deterministic for the same sets.
fn separate_sets_sharing_an_id<'a>(
    ids: &mut [i64],
    roots: &[u32],
    identifier: impl Fn(u32) -> (&'a str, &'a str),
) {
    let mut root_of_id: HashMap<i64, u32> = HashMap::new();
    let mut shared: HashSet<i64> = HashSet::new();
    for (node, &root) in roots.iter().enumerate() {
        let id = ids[node];
        if id == NOBODY {
            continue;
        }
        if *root_of_id.entry(id).or_insert(root) != root {
            shared.insert(id);
        }
    }
    if shared.is_empty() {
        return;
    }
    let mut used: HashSet<i64> = root_of_id.keys().copied().collect();
    // (id, smallest identifier, root) of every set with a shared id.
    let mut smallest: HashMap<u32, (i64, (&str, &str))> = HashMap::new();
    for (node, &root) in roots.iter().enumerate() {
        if shared.contains(&ids[node]) {
            let key = identifier(node as u32);
            smallest
                .entry(root)
                .and_modify(|(_, min)| *min = (*min).min(key))
                .or_insert((ids[node], key));
        }
    }
    let mut sets: Vec<(i64, (&str, &str), u32)> = smallest
        .into_iter()
        .map(|(root, (id, key))| (id, key, root))
        .collect();
    sets.sort_unstable();
    let mut new_id: HashMap<u32, i64> = HashMap::new();
    for pair in sets.windows(2) {
        let (id, _, root) = pair[1];
        if pair[0].0 == id {
            let mut candidate = id;
            while used.contains(&candidate) {
                candidate = (candidate + 1) & i64::MAX;
            }
            used.insert(candidate);
            new_id.insert(root, candidate);
        }
    }
    for (node, &root) in roots.iter().enumerate() {
        if let Some(&id) = new_id.get(&root) {
            ids[node] = id;
        }
    }
}

impl Resolution {
    /// Rows read.
    pub fn edges(&self) -> u64 {
        self.edges
    }

    /// Identifiers that belong to a person (blocked ones do not).
    pub fn identifiers(&self) -> impl Iterator<Item = (&str, &str, i64)> + '_ {
        (0..self.interner.len() as u32).filter_map(move |node| {
            let person = self.person[node as usize];
            (person != NOBODY).then(|| {
                (
                    self.interner.type_name(self.interner.type_of(node)),
                    self.interner.value(node),
                    person,
                )
            })
        })
    }

    /// The person ids of [`Resolution::identifiers`], in the same order, without reading
    /// the identifiers' values.
    pub fn person_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.person
            .iter()
            .copied()
            .filter(|&person| person != NOBODY)
    }

    /// The person of identifier (`id_type`, `id`), if it was resolved and is not blocked.
    pub fn person_id(&self, id_type: &str, id: &str) -> Option<i64> {
        let node = self.interner.get(id_type, id)?;
        let person = self.person[node as usize];
        (person != NOBODY).then_some(person)
    }

    /// Every person, by id.
    pub fn persons(&self) -> Vec<PersonSummary> {
        let types = self.interner.type_names().len();
        let mut by_person: HashMap<i64, Vec<u64>> = HashMap::new();
        for node in 0..self.interner.len() as u32 {
            let person = self.person[node as usize];
            if person != NOBODY {
                by_person.entry(person).or_insert_with(|| vec![0; types])
                    [usize::from(self.interner.type_of(node))] += 1;
            }
        }
        let mut persons: Vec<PersonSummary> = by_person
            .into_iter()
            .map(|(person_id, counts)| {
                let mut types: Vec<(String, u64)> = counts
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| **n > 0)
                    .map(|(t, &n)| (self.interner.type_name(t as u16).to_string(), n))
                    .collect();
                types.sort_unstable();
                PersonSummary {
                    person_id,
                    identifiers: types.iter().map(|(_, n)| n).sum(),
                    types,
                }
            })
            .collect();
        persons.sort_unstable_by_key(|p| p.person_id);
        persons
    }

    /// Rejected edges (links, from step 3 on), by input row.
    pub fn rejected(&self) -> &[Rejected] {
        &self.rejected
    }

    /// The input row `row` (global) as (type_a, id_a, type_b, id_b, source).
    pub fn row_text(&self, row: u64) -> [Option<&str>; 5] {
        let (batch, offset) = locate(&self.batch_starts, row);
        self.interner.batches()[batch].row_text(offset)
    }

    /// A reason in words, e.g. `max_per_person: national_id`.
    pub fn describe(&self, reason: Reason) -> String {
        match self.detail(reason) {
            Some(detail) => format!("{}: {detail}", reason.name()),
            None => reason.name().to_string(),
        }
    }

    /// What a reason is about beyond its name: the id type of a `max_per_person`.
    pub fn detail(&self, reason: Reason) -> Option<&str> {
        match reason {
            Reason::MaxPerPerson(id_type) => Some(self.interner.type_name(id_type)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_sharing_an_id_are_separated_deterministically() {
        // Nodes 0-1 are one set, 2-3 another, 4 a third; sets {0,1} and {2,3} share id 7,
        // and id 8 is taken by node 4, so the loser gets 9.
        let keys = [("a", "2"), ("a", "5"), ("a", "1"), ("b", "0"), ("c", "0")];
        let roots = [0, 0, 2, 2, 4];
        let mut ids = vec![7, 7, 7, 7, 8];
        separate_sets_sharing_an_id(&mut ids, &roots, |n| keys[n as usize]);
        // {2,3} holds ("a","1") < ("a","2"), so it keeps 7.
        assert_eq!(ids, vec![9, 9, 7, 7, 8]);
        let mut unchanged = vec![1, 1, 2, 2, 3];
        separate_sets_sharing_an_id(&mut unchanged, &roots, |n| keys[n as usize]);
        assert_eq!(unchanged, vec![1, 1, 2, 2, 3]);
    }
}

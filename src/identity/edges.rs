//! Identifier edges as they arrive, and the interner that numbers the identifiers in them.
//!
//! An identifier is the pair (id type, value): the phone `13800000000` and a device id
//! `13800000000` are different identifiers. The interner gives each identifier of a run a
//! dense node number (0, 1, 2, … in order of first sight) and a 64-bit fingerprint that
//! depends only on the identifier, never on the run: the fingerprint is xxh3-64 of the
//! value's UTF-8 bytes, seeded with xxh3-64 of the type's bytes, shifted right by one bit. Person ids are made from
//! fingerprints (see `resolve`), which is what makes them the same on every run.
//!
//! Invariants: node numbers are below `u32::MAX`; a node's type, value and fingerprint
//! never change; two nodes never hold the same identifier. Two different identifiers with
//! the same fingerprint are possible (about 1 in 10^5 for 20 million identifiers): the
//! interner notices (it compares fingerprints before values) and says so through
//! [`Interner::fingerprints_collide`], so that the caller can keep person ids apart.

use datafusion::arrow::array::{Array, Int64Array, StringArray};
use hashbrown::HashTable;
use twox_hash::XxHash3_64;

use super::IdentityError;

/// (type, value) of one identifier.
pub(crate) type Identifier<'a> = (&'a str, &'a str);

/// One identifier link: two typed identifiers seen together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge<'a> {
    pub type_a: &'a str,
    pub id_a: &'a str,
    pub type_b: &'a str,
    pub id_b: &'a str,
    /// When the link was seen, in microseconds since the Unix epoch.
    pub observed_at: i64,
}

/// A batch of identifier edges in columns, as a query returns them.
///
/// A row whose type or value is NULL on either side is not a link; resolution reports it
/// as rejected (`missing_identifier`). A NULL `observed_at` counts as older than any time.
#[derive(Debug, Clone)]
pub struct EdgeBatch {
    pub(crate) id_a: StringArray,
    pub(crate) type_a: StringArray,
    pub(crate) id_b: StringArray,
    pub(crate) type_b: StringArray,
    pub(crate) observed_at: Option<Int64Array>,
    pub(crate) source: Option<StringArray>,
}

impl EdgeBatch {
    /// A batch from its columns; `observed_at` holds microseconds since the Unix epoch.
    pub fn new(
        id_a: StringArray,
        type_a: StringArray,
        id_b: StringArray,
        type_b: StringArray,
        observed_at: Option<Int64Array>,
        source: Option<StringArray>,
    ) -> Result<Self, IdentityError> {
        let rows = id_a.len();
        let lengths = [
            type_a.len(),
            id_b.len(),
            type_b.len(),
            observed_at.as_ref().map_or(rows, |a| a.len()),
            source.as_ref().map_or(rows, |a| a.len()),
        ];
        if lengths.iter().any(|&n| n != rows) {
            return Err(IdentityError::Input {
                message: format!(
                    "the edge columns have different lengths ({rows} and {lengths:?})"
                ),
            });
        }
        Ok(EdgeBatch {
            id_a,
            type_a,
            id_b,
            type_b,
            observed_at,
            source,
        })
    }

    /// A batch of `edges`.
    pub fn from_edges(edges: &[Edge<'_>]) -> Self {
        EdgeBatch {
            id_a: edges.iter().map(|e| Some(e.id_a)).collect(),
            type_a: edges.iter().map(|e| Some(e.type_a)).collect(),
            id_b: edges.iter().map(|e| Some(e.id_b)).collect(),
            type_b: edges.iter().map(|e| Some(e.type_b)).collect(),
            observed_at: Some(edges.iter().map(|e| Some(e.observed_at)).collect()),
            source: None,
        }
    }

    pub fn len(&self) -> usize {
        self.id_a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.id_a.is_empty()
    }

    /// The two identifiers of `row`, or None when a side is NULL.
    pub(crate) fn identifiers(&self, row: usize) -> Option<(Identifier<'_>, Identifier<'_>)> {
        fn side<'a>(
            types: &'a StringArray,
            ids: &'a StringArray,
            row: usize,
        ) -> Option<(&'a str, &'a str)> {
            (types.is_valid(row) && ids.is_valid(row)).then(|| (types.value(row), ids.value(row)))
        }
        Some((
            side(&self.type_a, &self.id_a, row)?,
            side(&self.type_b, &self.id_b, row)?,
        ))
    }

    /// `observed_at` of `row`; unknown is `i64::MIN`.
    pub(crate) fn observed_at(&self, row: usize) -> i64 {
        match &self.observed_at {
            Some(times) if times.is_valid(row) => times.value(row),
            _ => i64::MIN,
        }
    }

    /// The type, value and source columns of `row`, for reporting it.
    pub(crate) fn row_text(&self, row: usize) -> [Option<&str>; 5] {
        fn text(a: &StringArray, row: usize) -> Option<&str> {
            a.is_valid(row).then(|| a.value(row))
        }
        [
            text(&self.type_a, row),
            text(&self.id_a, row),
            text(&self.type_b, row),
            text(&self.id_b, row),
            self.source.as_ref().and_then(|s| text(s, row)),
        ]
    }
}

/// The fingerprint of identifier (`type_seed`'s type, `value`): 63 bits, so that it is a
/// non-negative BIGINT as it is.
pub(crate) fn fingerprint(type_seed: u64, value: &str) -> u64 {
    XxHash3_64::oneshot_with_seed(type_seed, value.as_bytes()) >> 1
}

/// The seed of an id type's fingerprints.
pub(crate) fn type_seed(id_type: &str) -> u64 {
    XxHash3_64::oneshot(id_type.as_bytes())
}

/// A table entry: the fingerprint's high 32 bits beside the node number, so that a probe
/// rejects other identifiers without reading their fingerprint or value (each of those is
/// a cache miss once the table outgrows the cache).
fn entry(fp: u64, node: u32) -> u64 {
    (fp >> 31 << 32) | u64::from(node)
}

fn entry_node(entry: u64) -> u32 {
    entry as u32
}

/// Numbers identifiers densely; see the module doc.
#[derive(Default)]
pub(crate) struct Interner {
    table: HashTable<u64>,
    fingerprints: Vec<u64>,
    types: Vec<u16>,
    /// `values[ends[n-1]..ends[n]]` is node n's value.
    ends: Vec<u64>,
    values: String,
    type_names: Vec<String>,
    type_seeds: Vec<u64>,
    collided: bool,
}

impl Interner {
    /// An interner for the identifiers of `edges` edges: up to two per edge, so the table
    /// is sized for that and never rehashes (a rehash reads every fingerprint again).
    pub fn for_edges(edges: usize) -> Self {
        Interner {
            table: HashTable::with_capacity(edges.saturating_mul(2)),
            fingerprints: Vec::with_capacity(edges),
            types: Vec::with_capacity(edges),
            ends: Vec::with_capacity(edges),
            values: String::with_capacity(edges.saturating_mul(12)),
            ..Default::default()
        }
    }

    /// The index of `name` among the types seen so far, adding it if new.
    pub fn type_index(&mut self, name: &str) -> Result<u16, IdentityError> {
        if let Some(i) = self.type_names.iter().position(|t| t == name) {
            return Ok(i as u16);
        }
        if self.type_names.len() >= usize::from(u16::MAX) {
            return Err(IdentityError::Input {
                message: format!("more than {} different id types", u16::MAX),
            });
        }
        self.type_names.push(name.to_string());
        self.type_seeds.push(type_seed(name));
        Ok((self.type_names.len() - 1) as u16)
    }

    /// The node of identifier (`id_type`, `value`) and whether it is new.
    pub fn intern(&mut self, id_type: u16, value: &str) -> Result<(u32, bool), IdentityError> {
        let fp = fingerprint(self.type_seeds[usize::from(id_type)], value);
        let Interner {
            table,
            fingerprints,
            types,
            ends,
            values,
            collided,
            ..
        } = self;
        let mut same_fingerprint = false;
        let probe = entry(fp, 0) >> 32;
        let found = table.find(fp, |&e| {
            if e >> 32 != probe {
                return false;
            }
            let node = entry_node(e) as usize;
            if fingerprints[node] != fp {
                return false;
            }
            let start = if node == 0 {
                0
            } else {
                ends[node - 1] as usize
            };
            let equal = types[node] == id_type && &values[start..ends[node] as usize] == value;
            same_fingerprint |= !equal;
            equal
        });
        if let Some(&e) = found {
            return Ok((entry_node(e), false));
        }
        *collided |= same_fingerprint;
        let node = fingerprints.len();
        if node >= u32::MAX as usize {
            return Err(IdentityError::Input {
                message: format!("more than {} identifiers in one run", u32::MAX - 1),
            });
        }
        let node = node as u32;
        table.insert_unique(fp, entry(fp, node), |&e| {
            fingerprints[entry_node(e) as usize]
        });
        fingerprints.push(fp);
        types.push(id_type);
        values.push_str(value);
        ends.push(values.len() as u64);
        Ok((node, true))
    }

    /// The node of an identifier already interned, if it was.
    pub fn get(&self, id_type: &str, value: &str) -> Option<u32> {
        let type_index = self.type_names.iter().position(|t| t == id_type)? as u16;
        let fp = fingerprint(self.type_seeds[usize::from(type_index)], value);
        self.table
            .find(fp, |&e| {
                let n = entry_node(e);
                self.fingerprints[n as usize] == fp
                    && self.types[n as usize] == type_index
                    && self.value(n) == value
            })
            .map(|&e| entry_node(e))
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn fingerprint(&self, node: u32) -> u64 {
        self.fingerprints[node as usize]
    }

    pub fn type_of(&self, node: u32) -> u16 {
        self.types[node as usize]
    }

    pub fn type_name(&self, type_index: u16) -> &str {
        &self.type_names[usize::from(type_index)]
    }

    pub fn type_names(&self) -> &[String] {
        &self.type_names
    }

    pub fn value(&self, node: u32) -> &str {
        let node = node as usize;
        let start = if node == 0 {
            0
        } else {
            self.ends[node - 1] as usize
        };
        &self.values[start..self.ends[node] as usize]
    }

    /// Whether two different identifiers share a fingerprint.
    pub fn fingerprints_collide(&self) -> bool {
        self.collided
    }
}

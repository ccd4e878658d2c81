//! Identifier edges as they arrive, and the interner that numbers the identifiers in them.
//!
//! An identifier is the pair (id type, value): the phone `13800000000` and a device id
//! `13800000000` are different identifiers. The interner gives each identifier of a run a
//! dense node number (0, 1, 2, … in order of first sight) and a 64-bit fingerprint that
//! depends only on the identifier, never on the run: the fingerprint is xxh3-64 of the
//! value's UTF-8 bytes, seeded with xxh3-64 of the type's bytes, shifted right by one bit. Person ids are made from
//! fingerprints (see `resolve`), which is what makes them the same on every run.
//!
//! The interner does not copy values: a node points at the row and side of the batch
//! where it was first seen, and the batches live as long as the interner.
//!
//! Invariants: node numbers are below `u32::MAX`; a node's type, value and fingerprint
//! never change; two nodes never hold the same identifier. Two different identifiers with
//! the same fingerprint are possible (about 1 in 10^5 for 20 million identifiers): the
//! interner notices (it compares fingerprints before values) and says so through
//! [`Interner::fingerprints_collide`], so that the caller can keep person ids apart.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, StringViewArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
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

/// A column of text as Arrow holds it: offsets into one buffer, or string views (what
/// DataFusion's Parquet reader returns). Read as it is, never converted.
#[derive(Debug, Clone)]
pub(crate) enum Text {
    Offsets(StringArray),
    Views(StringViewArray),
}

impl Text {
    /// `array` as text: string arrays as they are, anything else (large strings,
    /// dictionaries, integers) cast to strings.
    fn from_array(array: &ArrayRef, name: &str) -> Result<Self, IdentityError> {
        Ok(match array.data_type() {
            DataType::Utf8 => Text::Offsets(array.as_string::<i32>().clone()),
            DataType::Utf8View => Text::Views(array.as_string_view().clone()),
            other => {
                let cast = cast(array, &DataType::Utf8).map_err(|e| IdentityError::Input {
                    message: format!("{name} ({other}) cannot be read as text: {e}"),
                })?;
                Text::Offsets(cast.as_string::<i32>().clone())
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Text::Offsets(a) => a.len(),
            Text::Views(a) => a.len(),
        }
    }

    fn is_valid(&self, row: usize) -> bool {
        match self {
            Text::Offsets(a) => a.is_valid(row),
            Text::Views(a) => a.is_valid(row),
        }
    }

    fn value(&self, row: usize) -> &str {
        match self {
            Text::Offsets(a) => a.value(row),
            Text::Views(a) => a.value(row),
        }
    }

    fn get(&self, row: usize) -> Option<&str> {
        self.is_valid(row).then(|| self.value(row))
    }
}

/// A batch of identifier edges in columns, as a query returns them.
///
/// A row whose type or value is NULL on either side is not a link; resolution reports it
/// as rejected (`missing_identifier`). A NULL `observed_at` counts as older than any time.
#[derive(Debug, Clone)]
pub struct EdgeBatch {
    id_a: Text,
    type_a: Text,
    id_b: Text,
    type_b: Text,
    observed_at: Option<Int64Array>,
    source: Option<Text>,
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
        EdgeBatch {
            id_a: Text::Offsets(id_a),
            type_a: Text::Offsets(type_a),
            id_b: Text::Offsets(id_b),
            type_b: Text::Offsets(type_b),
            observed_at,
            source: source.map(Text::Offsets),
        }
        .checked()
    }

    /// A batch from columns of any Arrow type that reads as text: string arrays and
    /// string views are used as they are (no copy), other types (large strings,
    /// dictionaries, integer ids) are cast to strings.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use datafusion::arrow::array::{ArrayRef, Int64Array, StringViewArray};
    /// use martdb::identity::EdgeBatch;
    /// let text = |v: &[&str]| Arc::new(StringViewArray::from(v.to_vec())) as ArrayRef;
    /// let phones = Arc::new(Int64Array::from(vec![13800000001])) as ArrayRef;
    /// let batch = EdgeBatch::from_arrays(
    ///     [&phones, &text(&["phone"]), &text(&["d1"]), &text(&["device"])],
    ///     None,
    ///     None,
    /// )
    /// .unwrap();
    /// assert_eq!(batch.len(), 1);
    /// ```
    pub fn from_arrays(
        [id_a, type_a, id_b, type_b]: [&ArrayRef; 4],
        observed_at: Option<Int64Array>,
        source: Option<&ArrayRef>,
    ) -> Result<Self, IdentityError> {
        EdgeBatch {
            id_a: Text::from_array(id_a, "id_a")?,
            type_a: Text::from_array(type_a, "type_a")?,
            id_b: Text::from_array(id_b, "id_b")?,
            type_b: Text::from_array(type_b, "type_b")?,
            observed_at,
            source: source.map(|s| Text::from_array(s, "source")).transpose()?,
        }
        .checked()
    }

    /// The batch, if its columns are of one length that node positions can hold.
    fn checked(self) -> Result<Self, IdentityError> {
        let rows = self.id_a.len();
        let lengths = [
            self.type_a.len(),
            self.id_b.len(),
            self.type_b.len(),
            self.observed_at.as_ref().map_or(rows, |a| a.len()),
            self.source.as_ref().map_or(rows, Text::len),
        ];
        if lengths.iter().any(|&n| n != rows) {
            return Err(IdentityError::Input {
                message: format!(
                    "the edge columns have different lengths ({rows} and {lengths:?})"
                ),
            });
        }
        // Nodes point at (row, side) of their batch in 31 bits.
        if rows >= 1 << 31 {
            return Err(IdentityError::Input {
                message: format!("a batch of {rows} edges; split it below 2^31 rows"),
            });
        }
        Ok(self)
    }

    /// A batch of `edges`.
    pub fn from_edges(edges: &[Edge<'_>]) -> Self {
        fn text<'a>(edges: &[Edge<'a>], side: fn(&Edge<'a>) -> &'a str) -> Text {
            Text::Offsets(edges.iter().map(|e| Some(side(e))).collect())
        }
        EdgeBatch {
            id_a: text(edges, |e| e.id_a),
            type_a: text(edges, |e| e.type_a),
            id_b: text(edges, |e| e.id_b),
            type_b: text(edges, |e| e.type_b),
            observed_at: Some(edges.iter().map(|e| Some(e.observed_at)).collect()),
            source: None,
        }
    }

    pub fn len(&self) -> usize {
        self.id_a.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The two identifiers of `row`, or None when a side is NULL.
    pub(crate) fn identifiers(&self, row: usize) -> Option<(Identifier<'_>, Identifier<'_>)> {
        Some((
            (self.type_a.get(row)?, self.id_a.get(row)?),
            (self.type_b.get(row)?, self.id_b.get(row)?),
        ))
    }

    /// The value of side `side` (0 for a, 1 for b) of `row`, known to be present.
    fn value(&self, row: usize, side: u64) -> &str {
        match side {
            0 => self.id_a.value(row),
            _ => self.id_b.value(row),
        }
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
        [
            self.type_a.get(row),
            self.id_a.get(row),
            self.type_b.get(row),
            self.id_b.get(row),
            self.source.as_ref().and_then(|s| s.get(row)),
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

/// A table slot: the fingerprint's high 32 bits beside the node number, so that a probe
/// rejects other identifiers without reading their fingerprint or value (each of those is
/// a cache miss once the table outgrows the cache). Node numbers stay below `u32::MAX`,
/// so no identifier's slot is [`EMPTY`].
fn slot(fp: u64, node: u32) -> u64 {
    (fp >> 31 << 32) | u64::from(node)
}

const EMPTY: u64 = u64::MAX;

fn slot_node(slot: u64) -> u32 {
    slot as u32
}

/// Slots are at most this full (5/8): linear probing stays short.
fn slots_for(identifiers: usize) -> usize {
    (identifiers.saturating_mul(8) / 5)
        .max(16)
        .next_power_of_two()
}

/// Numbers identifiers densely; see the module doc.
///
/// The table is open addressing with linear probing over [`slot`]s, starting at the
/// fingerprint's low bits: a lookup is one cache line in the common case, and
/// [`Interner::prefetch`] lets a caller start that line's load ahead of time.
pub(crate) struct Interner {
    /// The batches the identifiers come from (their arrays are shared, not copied).
    batches: Vec<EdgeBatch>,
    slots: Vec<u64>,
    fingerprints: Vec<u64>,
    types: Vec<u16>,
    /// Where each node was first seen: batch << 32 | row << 1 | side.
    seen_at: Vec<u64>,
    type_names: Vec<String>,
    type_seeds: Vec<u64>,
    collided: bool,
}

impl Interner {
    /// An interner with room for `identifiers` without growing the table or moving the
    /// arrays (a move copies them and faults in fresh pages). Capacity that is never
    /// written is only reserved address space.
    pub fn with_capacity(identifiers: usize) -> Self {
        Interner {
            batches: Vec::new(),
            slots: vec![EMPTY; slots_for(identifiers)],
            fingerprints: Vec::with_capacity(identifiers),
            types: Vec::with_capacity(identifiers),
            seen_at: Vec::with_capacity(identifiers),
            type_names: Vec::new(),
            type_seeds: Vec::new(),
            collided: false,
        }
    }

    /// Keeps `batch`, whose identifiers are about to be interned; its index.
    pub fn add_batch(&mut self, batch: EdgeBatch) -> usize {
        self.batches.push(batch);
        self.batches.len() - 1
    }

    /// The batches the identifiers come from, in the order added.
    pub fn batches(&self) -> &[EdgeBatch] {
        &self.batches
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

    /// The fingerprint of (`id_type`, `value`); `id_type` is a [`Interner::type_index`].
    pub fn fingerprint_of(&self, id_type: u16, value: &str) -> u64 {
        fingerprint(self.type_seeds[usize::from(id_type)], value)
    }

    /// Starts loading the table line where fingerprint `fp` is looked up, so that a
    /// caller interning many identifiers overlaps their cache misses.
    pub fn prefetch(&self, fp: u64) {
        let home = fp as usize & (self.slots.len() - 1);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `slots.len()` is a power of two of at least 16 (`slots_for`, and `grow`
        // doubles it), so `home` masked by `len - 1` is below `len` and `add(home)` stays
        // inside the `slots` allocation, as `pointer::add` requires. `_mm_prefetch` (SSE,
        // which every x86_64 CPU has) only hints the cache: it never faults, reads into a
        // value or writes memory, so no aliasing or initialisation rule is involved.
        unsafe {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().add(home).cast());
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = home;
    }

    /// The node of the identifier of type `id_type` on side `side` (0 for a, 1 for b) of
    /// `row` of batch `batch`, whose fingerprint is `fp` (from
    /// [`Interner::fingerprint_of`]), and whether it is new.
    pub fn intern(
        &mut self,
        id_type: u16,
        (batch, row, side): (usize, usize, u64),
        fp: u64,
    ) -> Result<(u32, bool), IdentityError> {
        let value = self.batches[batch].value(row, side);
        let tag = fp >> 31;
        let mask = self.slots.len() - 1;
        let mut at = fp as usize & mask;
        loop {
            let entry = self.slots[at];
            if entry == EMPTY {
                break;
            }
            if entry >> 32 == tag {
                let node = slot_node(entry);
                if self.fingerprints[node as usize] == fp {
                    if self.types[node as usize] == id_type && self.value(node) == value {
                        return Ok((node, false));
                    }
                    self.collided = true;
                }
            }
            at = (at + 1) & mask;
        }
        let node = self.fingerprints.len();
        if node >= u32::MAX as usize {
            return Err(IdentityError::Input {
                message: format!("more than {} identifiers in one run", u32::MAX - 1),
            });
        }
        let node = node as u32;
        self.slots[at] = slot(fp, node);
        self.fingerprints.push(fp);
        self.types.push(id_type);
        self.seen_at
            .push(((batch as u64) << 32) | ((row as u64) << 1) | side);
        if self.fingerprints.len() > self.slots.len() / 8 * 5 {
            self.grow();
        }
        Ok((node, true))
    }

    /// Doubles the table, placing every node again from its fingerprint (read in node
    /// order, so sequentially).
    fn grow(&mut self) {
        let mut slots = vec![EMPTY; self.slots.len() * 2];
        let mask = slots.len() - 1;
        for (node, &fp) in self.fingerprints.iter().enumerate() {
            let mut at = fp as usize & mask;
            while slots[at] != EMPTY {
                at = (at + 1) & mask;
            }
            slots[at] = slot(fp, node as u32);
        }
        self.slots = slots;
    }

    /// The node of an identifier already interned, if it was.
    pub fn get(&self, id_type: &str, value: &str) -> Option<u32> {
        let type_index = self.type_names.iter().position(|t| t == id_type)? as u16;
        let fp = self.fingerprint_of(type_index, value);
        let mask = self.slots.len() - 1;
        let mut at = fp as usize & mask;
        loop {
            let entry = self.slots[at];
            if entry == EMPTY {
                return None;
            }
            let node = slot_node(entry);
            if entry >> 32 == fp >> 31
                && self.fingerprints[node as usize] == fp
                && self.types[node as usize] == type_index
                && self.value(node) == value
            {
                return Some(node);
            }
            at = (at + 1) & mask;
        }
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
        let seen_at = self.seen_at[node as usize];
        let row = (seen_at as u32 >> 1) as usize;
        self.batches[(seen_at >> 32) as usize].value(row, seen_at & 1)
    }

    /// Whether two different identifiers share a fingerprint.
    pub fn fingerprints_collide(&self) -> bool {
        self.collided
    }
}

//! Roaring bitmaps of ids: the value behind martdb's audience functions.
//!
//! A [`Bitmap`] is a set of unsigned 64-bit ids held by CRoaring. Its bytes (what SQL
//! stores in a `bytea` column) are the portable roaring serialization, readable by every
//! roaring implementation (CRoaring, Java, Go, Rust):
//!
//! - a set whose largest value fits in 32 bits, the empty set included, is written in the
//!   32-bit format (`roaring_bitmap_portable_serialize`);
//! - any other set in the 64-bit format (`roaring64_bitmap_portable_serialize`, the
//!   format of Java's `Roaring64NavigableMap` and Go's `roaring64`).
//!
//! Invariant: the width follows from the values, never from how the set was built, so two
//! equal sets always have equal bytes. Operations mixing widths widen the narrow operand
//! and narrow the result again when it fits.
//!
//! Reading validates the bytes completely (CRoaring's safe deserializer plus its internal
//! validation), so no malformed input reaches the C code's unchecked paths. The SQL
//! functions read through [`cache::BitmapCache`], which keeps large decoded bitmaps by
//! their bytes so that reading the same value again costs a byte comparison.
//!
//! ```
//! use martdb::bitmap::Bitmap;
//!
//! let active = Bitmap::from_values([1, 2, 3, 5_000_000_000]);
//! let buyers = Bitmap::from_values([2, 3, 4]);
//! assert_eq!(active.and(&buyers).to_vec(), vec![2, 3]);
//! let bytes = active.to_bytes();
//! assert_eq!(Bitmap::from_bytes(&bytes).unwrap(), active);
//! ```

pub mod audiences;
pub mod cache;
pub mod dictionary;
pub mod expr;

use croaring::{Bitmap as Bitmap32, Bitmap64, Portable};

/// What can go wrong reading or changing bitmaps.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitmapError {
    /// The bytes are neither a 32-bit nor a 64-bit portable roaring bitmap.
    #[error("{len} bytes that are not a portable roaring bitmap")]
    NotABitmap { len: usize },
    /// Ids are unsigned; a negative number cannot be one.
    #[error("negative id {value}")]
    NegativeId { value: i64 },
    /// Ids above 2^63-1 can be stored and combined, but not returned as bigint.
    #[error("id {value} is beyond bigint's range")]
    BeyondBigint { value: u64 },
    /// A tag expression that does not parse.
    #[error("tag expression {expression:?}: {message}")]
    BadExpression { expression: String, message: String },
    /// Two arrays that must pair up element by element do not.
    #[error("arrays of different lengths ({left} and {right})")]
    LengthMismatch { left: usize, right: usize },
}

/// The 32-bit portable format starts with one of these cookies (low 16 bits).
const COOKIE_NO_RUNS: u32 = 12346;
const COOKIE_WITH_RUNS: u32 = 12347;

/// A set of unsigned 64-bit ids; see the module documentation for its bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Bitmap {
    /// Every value is below 2^32.
    Narrow(Bitmap32),
    /// Some value is 2^32 or more (kept so by [`Bitmap::normalized`]).
    Wide(Bitmap64),
}

impl std::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self.to_vec();
        let shown = &values[..values.len().min(16)];
        write!(f, "Bitmap{shown:?}")?;
        if values.len() > shown.len() {
            write!(f, "+{} more", values.len() - shown.len())?;
        }
        Ok(())
    }
}

impl Default for Bitmap {
    fn default() -> Self {
        Bitmap::Narrow(Bitmap32::new())
    }
}

impl Bitmap {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// The set of `values`.
    pub fn from_values(values: impl IntoIterator<Item = u64>) -> Self {
        let mut builder = BitmapBuilder::default();
        for value in values {
            builder.add(value);
        }
        builder.finish()
    }

    /// Reads the portable serialization (32- or 64-bit, told apart by the 32-bit
    /// format's cookie and by the 32-bit reading covering every byte).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BitmapError> {
        let not_a_bitmap = || BitmapError::NotABitmap { len: bytes.len() };
        if let Some(head) = bytes.first_chunk::<4>() {
            let cookie = u32::from_le_bytes(*head);
            if (cookie == COOKIE_NO_RUNS || cookie & 0xFFFF == COOKIE_WITH_RUNS)
                && let Some(narrow) = Bitmap32::try_deserialize::<Portable>(bytes)
                && narrow.get_serialized_size_in_bytes::<Portable>() == bytes.len()
            {
                return Ok(Bitmap::Narrow(narrow));
            }
        }
        let wide = Bitmap64::try_deserialize::<Portable>(bytes).ok_or_else(not_a_bitmap)?;
        if wide.get_serialized_size_in_bytes::<Portable>() != bytes.len() {
            return Err(not_a_bitmap());
        }
        Ok(Bitmap::Wide(wide).normalized())
    }

    /// The portable serialization (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_bytes(&mut out);
        out
    }

    /// Appends the portable serialization to `out`.
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        match self {
            Bitmap::Narrow(b) => {
                let _ = b.serialize_into_vec::<Portable>(out);
            }
            Bitmap::Wide(b) => {
                let _ = b.serialize_into_vec::<Portable>(out);
            }
        }
    }

    /// The serialized size in bytes.
    pub fn serialized_size(&self) -> usize {
        match self {
            Bitmap::Narrow(b) => b.get_serialized_size_in_bytes::<Portable>(),
            Bitmap::Wide(b) => b.get_serialized_size_in_bytes::<Portable>(),
        }
    }

    /// The number of ids.
    pub fn cardinality(&self) -> u64 {
        match self {
            Bitmap::Narrow(b) => b.cardinality(),
            Bitmap::Wide(b) => b.cardinality(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Bitmap::Narrow(b) => b.is_empty(),
            Bitmap::Wide(b) => b.is_empty(),
        }
    }

    pub fn minimum(&self) -> Option<u64> {
        match self {
            Bitmap::Narrow(b) => b.minimum().map(u64::from),
            Bitmap::Wide(b) => b.minimum(),
        }
    }

    pub fn maximum(&self) -> Option<u64> {
        match self {
            Bitmap::Narrow(b) => b.maximum().map(u64::from),
            Bitmap::Wide(b) => b.maximum(),
        }
    }

    pub fn contains(&self, value: u64) -> bool {
        match self {
            Bitmap::Narrow(b) => u32::try_from(value).is_ok_and(|v| b.contains(v)),
            Bitmap::Wide(b) => b.contains(value),
        }
    }

    /// The ids in ascending order.
    pub fn to_vec(&self) -> Vec<u64> {
        match self {
            Bitmap::Narrow(b) => b.iter().map(u64::from).collect(),
            Bitmap::Wide(b) => b.to_vec(),
        }
    }

    /// Calls `f` with the ids in ascending order, in slices.
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[u64])) {
        let mut buffer = [0u64; 1024];
        match self {
            Bitmap::Narrow(b) => {
                let mut narrow = [0u32; 1024];
                let mut iter = b.iter();
                loop {
                    let n = iter.next_many(&mut narrow);
                    if n == 0 {
                        break;
                    }
                    for (wide, narrow) in buffer.iter_mut().zip(&narrow[..n]) {
                        *wide = u64::from(*narrow);
                    }
                    f(&buffer[..n]);
                }
            }
            Bitmap::Wide(b) => {
                let mut iter = b.iter();
                loop {
                    let n = iter.next_many(&mut buffer);
                    if n == 0 {
                        break;
                    }
                    f(&buffer[..n]);
                }
            }
        }
    }

    /// True when the two sets share an id.
    pub fn intersects(&self, other: &Bitmap) -> bool {
        match (self, other) {
            (Bitmap::Narrow(a), Bitmap::Narrow(b)) => a.intersect(b),
            _ => self.widened().intersect(&other.widened()),
        }
    }

    /// True when every id of `other` is in `self`.
    pub fn contains_all(&self, other: &Bitmap) -> bool {
        match (self, other) {
            (Bitmap::Narrow(a), Bitmap::Narrow(b)) => b.is_subset(a),
            _ => other.widened().is_subset(&self.widened()),
        }
    }

    pub fn and(&self, other: &Bitmap) -> Bitmap {
        self.combine(other, SetOp::And)
    }

    pub fn or(&self, other: &Bitmap) -> Bitmap {
        self.combine(other, SetOp::Or)
    }

    pub fn xor(&self, other: &Bitmap) -> Bitmap {
        self.combine(other, SetOp::Xor)
    }

    pub fn andnot(&self, other: &Bitmap) -> Bitmap {
        self.combine(other, SetOp::AndNot)
    }

    /// `self op other`.
    pub fn combine(&self, other: &Bitmap, op: SetOp) -> Bitmap {
        match (self, other) {
            (Bitmap::Narrow(a), Bitmap::Narrow(b)) => Bitmap::Narrow(match op {
                SetOp::And => a.and(b),
                SetOp::Or => a.or(b),
                SetOp::Xor => a.xor(b),
                SetOp::AndNot => a.andnot(b),
            }),
            _ => {
                let (a, b) = (self.widened(), other.widened());
                Bitmap::Wide(match op {
                    SetOp::And => a.and(&b),
                    SetOp::Or => a.or(&b),
                    SetOp::Xor => a.xor(&b),
                    SetOp::AndNot => a.andnot(&b),
                })
                .normalized()
            }
        }
    }

    /// `self = self op other`, without allocating a result when both are narrow.
    pub fn combine_in_place(&mut self, other: &Bitmap, op: SetOp) {
        match (&mut *self, other) {
            (Bitmap::Narrow(a), Bitmap::Narrow(b)) => match op {
                SetOp::And => a.and_inplace(b),
                SetOp::Or => a.or_inplace(b),
                SetOp::Xor => a.xor_inplace(b),
                SetOp::AndNot => a.andnot_inplace(b),
            },
            _ => *self = self.combine(other, op),
        }
    }

    /// The cardinality of `self op other`, without building it.
    pub fn combine_cardinality(&self, other: &Bitmap, op: SetOp) -> u64 {
        match (self, other) {
            (Bitmap::Narrow(a), Bitmap::Narrow(b)) => match op {
                SetOp::And => a.and_cardinality(b),
                SetOp::Or => a.or_cardinality(b),
                SetOp::Xor => a.xor_cardinality(b),
                SetOp::AndNot => a.andnot_cardinality(b),
            },
            _ => {
                let (a, b) = (self.widened(), other.widened());
                match op {
                    SetOp::And => a.and_cardinality(&b),
                    SetOp::Or => a.or_cardinality(&b),
                    SetOp::Xor => a.xor_cardinality(&b),
                    SetOp::AndNot => a.andnot_cardinality(&b),
                }
            }
        }
    }

    /// The ids in `[start, end)`.
    pub fn subset_in_range(&self, start: u64, end: u64) -> Bitmap {
        if start >= end {
            return Bitmap::new();
        }
        match self {
            Bitmap::Narrow(b) => {
                if start > u64::from(u32::MAX) {
                    return Bitmap::new();
                }
                let mut range = Bitmap32::new();
                let end = end.min(1 << 32);
                range.add_range(start as u32..=(end - 1) as u32);
                range.and_inplace(b);
                Bitmap::Narrow(range)
            }
            // A range bitmap could span 2^32 buckets; walk the members instead.
            Bitmap::Wide(b) => {
                let mut builder = BitmapBuilder::default();
                let mut iter = b.iter();
                iter.reset_at_or_after(start);
                for value in iter.take_while(|v| *v < end) {
                    builder.add(value);
                }
                builder.finish()
            }
        }
    }

    /// At most `limit` ids, the smallest ones that are at least `start`.
    pub fn subset_limit(&self, start: u64, limit: u64) -> Bitmap {
        self.take_from(Some(start), 0, limit)
    }

    /// At most `limit` ids, skipping the `offset` smallest.
    pub fn sub_bitmap(&self, offset: u64, limit: u64) -> Bitmap {
        self.take_from(None, offset, limit)
    }

    fn take_from(&self, start: Option<u64>, offset: u64, limit: u64) -> Bitmap {
        let mut builder = BitmapBuilder::default();
        let mut to_skip = offset;
        let mut left = limit;
        let mut take = |value: u64| -> bool {
            if to_skip > 0 {
                to_skip -= 1;
                return true;
            }
            if left == 0 {
                return false;
            }
            builder.add(value);
            left -= 1;
            left > 0
        };
        match self {
            Bitmap::Narrow(b) => {
                let mut iter = b.iter();
                if let Some(start) = start {
                    if start > u64::from(u32::MAX) {
                        return Bitmap::new();
                    }
                    iter.reset_at_or_after(start as u32);
                }
                for value in iter {
                    if !take(u64::from(value)) {
                        break;
                    }
                }
            }
            Bitmap::Wide(b) => {
                let mut iter = b.iter();
                if let Some(start) = start {
                    iter.reset_at_or_after(start);
                }
                for value in iter {
                    if !take(value) {
                        break;
                    }
                }
            }
        }
        builder.finish()
    }

    /// ClickHouse's `bitmapTransform`: for each pair in turn, when `from[i]` is present
    /// (and differs from `to[i]`) it is removed and `to[i]` added.
    pub fn transform(&self, from: &[u64], to: &[u64]) -> Result<Bitmap, BitmapError> {
        if from.len() != to.len() {
            return Err(BitmapError::LengthMismatch {
                left: from.len(),
                right: to.len(),
            });
        }
        let mut out = self.widened();
        for (&from, &to) in from.iter().zip(to) {
            if from != to && out.remove_checked(from) {
                out.add(to);
            }
        }
        Ok(Bitmap::Wide(out).normalized())
    }

    /// The same set as a 64-bit bitmap.
    fn widened(&self) -> Bitmap64 {
        match self {
            Bitmap::Wide(b) => b.clone(),
            // The 64-bit format is a bucket count, then per bucket its high 32 bits and
            // a 32-bit bitmap: one bucket with key 0 holding the narrow bitmap's bytes.
            Bitmap::Narrow(b) if b.is_empty() => Bitmap64::new(),
            Bitmap::Narrow(b) => {
                let mut bytes =
                    Vec::with_capacity(12 + b.get_serialized_size_in_bytes::<Portable>());
                bytes.extend_from_slice(&1u64.to_le_bytes());
                bytes.extend_from_slice(&0u32.to_le_bytes());
                let _ = b.serialize_into_vec::<Portable>(&mut bytes);
                Bitmap64::try_deserialize::<Portable>(&bytes)
                    .expect("a valid 32-bit bitmap's bytes as bucket 0 are valid 64-bit bytes")
            }
        }
    }

    /// Restores the invariant: narrow when every value fits in 32 bits.
    fn normalized(self) -> Bitmap {
        match self {
            Bitmap::Wide(b) if b.maximum().is_none_or(|max| max <= u64::from(u32::MAX)) => {
                let mut narrow = Bitmap32::new();
                let mut buffer = [0u64; 1024];
                let mut narrowed = [0u32; 1024];
                let mut iter = b.iter();
                loop {
                    let n = iter.next_many(&mut buffer);
                    if n == 0 {
                        break;
                    }
                    for (out, value) in narrowed.iter_mut().zip(&buffer[..n]) {
                        *out = *value as u32;
                    }
                    narrow.add_many(&narrowed[..n]);
                }
                Bitmap::Narrow(narrow)
            }
            other => other,
        }
    }
}

/// The four set operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetOp {
    And,
    Or,
    Xor,
    /// Ids of the left operand that are not in the right one.
    AndNot,
}

/// Builds a [`Bitmap`] from ids in any order, fast: ids are buffered, sorted and added in
/// bulk, and the builder widens itself on the first id of 2^32 or more.
#[derive(Default)]
pub struct BitmapBuilder {
    narrow: Bitmap32,
    wide: Option<Bitmap64>,
    pending: Vec<u32>,
}

impl std::fmt::Debug for BitmapBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitmapBuilder")
            .field("pending", &self.pending.len())
            .field("wide", &self.wide.is_some())
            .finish()
    }
}

/// Ids buffered before a bulk insert: sorted runs of this size land container by
/// container.
const PENDING: usize = 4096;

impl BitmapBuilder {
    pub fn add(&mut self, value: u64) {
        match u32::try_from(value) {
            Ok(narrow) if self.wide.is_none() => {
                self.pending.push(narrow);
                if self.pending.len() >= PENDING {
                    self.flush();
                }
            }
            _ => self.wide_mut().add(value),
        }
    }

    /// Adds every id of `bitmap`.
    pub fn add_bitmap(&mut self, bitmap: &Bitmap) {
        match bitmap {
            Bitmap::Narrow(b) if self.wide.is_none() => self.narrow.or_inplace(b),
            Bitmap::Narrow(b) => {
                let widened = Bitmap::Narrow(b.clone()).widened();
                self.wide_mut().or_inplace(&widened);
            }
            Bitmap::Wide(b) => self.wide_mut().or_inplace(b),
        }
    }

    fn flush(&mut self) {
        self.pending.sort_unstable();
        self.narrow.add_many(&self.pending);
        self.pending.clear();
    }

    fn wide_mut(&mut self) -> &mut Bitmap64 {
        if self.wide.is_none() {
            self.flush();
            let narrow = std::mem::take(&mut self.narrow);
            self.wide = Some(Bitmap::Narrow(narrow).widened());
        }
        self.wide.as_mut().expect("set just above when it was None")
    }

    /// Memory held, roughly (for query memory accounting).
    pub fn size(&self) -> usize {
        self.pending.capacity() * 4
            + match &self.wide {
                Some(b) => b.get_serialized_size_in_bytes::<Portable>(),
                None => self.narrow.get_serialized_size_in_bytes::<Portable>(),
            }
    }

    pub fn finish(mut self) -> Bitmap {
        match self.wide {
            Some(wide) => Bitmap::Wide(wide).normalized(),
            None => {
                self.flush();
                self.narrow.run_optimize();
                Bitmap::Narrow(self.narrow)
            }
        }
    }

    /// The set so far, leaving the builder as it was.
    pub fn snapshot(&mut self) -> Bitmap {
        match &self.wide {
            Some(wide) => Bitmap::Wide(wide.clone()).normalized(),
            None => {
                self.flush();
                let mut narrow = self.narrow.clone();
                narrow.run_optimize();
                Bitmap::Narrow(narrow)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 5_000_000_000;

    #[test]
    fn bytes_round_trip_in_both_widths() {
        for values in [vec![], vec![0, 7, 70_000], vec![1, BIG, u64::MAX]] {
            let bitmap = Bitmap::from_values(values.iter().copied());
            let back = Bitmap::from_bytes(&bitmap.to_bytes()).unwrap();
            assert_eq!(back.to_vec(), values);
            assert_eq!(back, bitmap);
        }
    }

    #[test]
    fn the_width_follows_the_values() {
        assert!(matches!(Bitmap::from_values([1, 2]), Bitmap::Narrow(_)));
        let wide = Bitmap::from_values([1, BIG]);
        assert!(matches!(wide, Bitmap::Wide(_)));
        // Removing the only wide value makes it narrow again, with narrow bytes.
        let narrowed = wide.andnot(&Bitmap::from_values([BIG]));
        assert!(matches!(narrowed, Bitmap::Narrow(_)));
        assert_eq!(narrowed.to_bytes(), Bitmap::from_values([1]).to_bytes());
        // The 64-bit format of a narrow set is accepted, and read back as narrow.
        let Bitmap::Narrow(n) = Bitmap::from_values([3, 4]) else {
            unreachable!()
        };
        let wide_bytes = Bitmap::Narrow(n).widened().serialize::<Portable>();
        assert_eq!(
            Bitmap::from_bytes(&wide_bytes).unwrap().to_vec(),
            vec![3, 4]
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"hello world",
            &[0x3a, 0x30, 0, 0, 9, 9, 9],
        ] {
            assert!(Bitmap::from_bytes(bytes).is_err(), "{bytes:?}");
        }
        let mut truncated = Bitmap::from_values(0..1000).to_bytes();
        truncated.pop();
        assert!(Bitmap::from_bytes(&truncated).is_err());
        let mut trailing = Bitmap::from_values([1]).to_bytes();
        trailing.push(0);
        assert!(Bitmap::from_bytes(&trailing).is_err());
    }

    #[test]
    fn set_operations_mix_widths() {
        let a = Bitmap::from_values([1, 2, 3, BIG]);
        let b = Bitmap::from_values([2, 3, 4]);
        assert_eq!(a.and(&b).to_vec(), vec![2, 3]);
        assert_eq!(a.or(&b).to_vec(), vec![1, 2, 3, 4, BIG]);
        assert_eq!(a.xor(&b).to_vec(), vec![1, 4, BIG]);
        assert_eq!(a.andnot(&b).to_vec(), vec![1, BIG]);
        for op in [SetOp::And, SetOp::Or, SetOp::Xor, SetOp::AndNot] {
            let expected = a.combine(&b, op).cardinality();
            assert_eq!(a.combine_cardinality(&b, op), expected);
            assert_eq!(
                b.combine_cardinality(&a, op),
                b.combine(&a, op).cardinality()
            );
            let mut in_place = b.clone();
            in_place.combine_in_place(&a, op);
            assert_eq!(in_place, b.combine(&a, op));
        }
        assert!(a.intersects(&b));
        assert!(a.contains_all(&Bitmap::from_values([1, BIG])));
        assert!(!b.contains_all(&a));
        assert!(a.contains_all(&Bitmap::new()));
    }

    #[test]
    fn subsets_follow_clickhouse() {
        let b = Bitmap::from_values([1, 2, 3, 4, 5, 100]);
        assert_eq!(b.subset_in_range(2, 5).to_vec(), vec![2, 3, 4]);
        assert_eq!(b.subset_in_range(5, 2).to_vec(), Vec::<u64>::new());
        assert_eq!(b.subset_limit(3, 2).to_vec(), vec![3, 4]);
        assert_eq!(b.subset_limit(200, 2).to_vec(), Vec::<u64>::new());
        assert_eq!(b.sub_bitmap(2, 3).to_vec(), vec![3, 4, 5]);
        assert_eq!(b.sub_bitmap(10, 3).to_vec(), Vec::<u64>::new());
        assert_eq!(b.sub_bitmap(0, 0).to_vec(), Vec::<u64>::new());
        let wide = Bitmap::from_values([1, BIG, BIG + 1]);
        assert_eq!(
            wide.subset_in_range(2, u64::MAX).to_vec(),
            vec![BIG, BIG + 1]
        );
        assert_eq!(wide.subset_limit(BIG, 1).to_vec(), vec![BIG]);
    }

    #[test]
    fn transform_replaces_in_turn() {
        let b = Bitmap::from_values([1, 2, 3]);
        assert_eq!(b.transform(&[1, 2], &[2, 3]).unwrap().to_vec(), vec![3]);
        assert_eq!(
            b.transform(&[1, 1], &[5, 6]).unwrap().to_vec(),
            vec![2, 3, 5]
        );
        assert!(b.transform(&[1], &[]).is_err());
    }

    #[test]
    fn builder_matches_a_plain_set() {
        let mut values: Vec<u64> = (0..20_000u64).map(|i| (i * 7919) % 100_003).collect();
        values.push(BIG);
        let bitmap = Bitmap::from_values(values.iter().copied());
        let mut expected = values.clone();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(bitmap.to_vec(), expected);
        let mut chunks = Vec::new();
        bitmap.for_each_chunk(|c| chunks.extend_from_slice(c));
        assert_eq!(chunks, expected);
    }
}

//! Decoded bitmaps, kept between reads of the same bytes.
//!
//! Reading a bitmap validates every container ([`Bitmap::from_bytes`]); for the
//! megabytes of a large audience that costs more than the set operations themselves, and
//! queries over a table of per-tag bitmaps read the same few values again and again.
//! [`BitmapCache::decode`] returns the bitmap decoded earlier from the same bytes, and
//! [`BitmapCache::encode`] remembers a function's own result, so that a nested call
//! (`bitmap_andnot_cardinality(bitmap_and(a, b), c)`) or the final step of an aggregate
//! does not decode what the step before it just wrote.
//!
//! ```
//! use martdb::bitmap::{Bitmap, cache::BitmapCache};
//!
//! let cache = BitmapCache::new(64 << 20);
//! let bytes = Bitmap::from_values((0..100_000).map(|i| i * 7)).to_bytes();
//! let first = cache.decode(&bytes).unwrap();
//! let again = cache.decode(&bytes).unwrap();
//! assert!(std::sync::Arc::ptr_eq(&first, &again));
//! assert!(cache.decode(b"not a bitmap").is_err());
//! ```
//!
//! Invariants:
//! - a hit is the bitmap of exactly the bytes asked for: an entry is found by a
//!   fingerprint (the length and a hash of sampled bytes) and confirmed by comparing every
//!   byte, so values that share a fingerprint cost a comparison, never a wrong answer;
//! - an entry's bytes either passed [`Bitmap::from_bytes`] (full validation) or were
//!   written by [`Bitmap::write_bytes`] from the entry's own bitmap; bytes that are not a
//!   bitmap are never kept, so they fail on every read, with the same error;
//! - entries are shared and never change (`Arc<Bitmap>`): a caller that changes a bitmap
//!   changes its own copy (`Arc::make_mut`);
//! - an entry holds its own copy of its bytes, never a slice of a batch, so it pins no
//!   other memory; the estimated memory of all entries (bytes plus decoded bitmap) stays
//!   within the budget, adding an entry evicts the least recently used ones, and no entry
//!   takes more than a quarter of the budget;
//! - values shorter than [`MIN_BYTES`] are never kept (decoding them is cheap, and they
//!   would churn the cache); once the cache is full, a value displaces others only when
//!   its fingerprint was seen recently before, so a scan that reads each bitmap once
//!   does not evict the ones queries keep using;
//! - the cache changes how fast a bitmap is read, never what a read returns.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use super::{Bitmap, BitmapError};

/// Values shorter than this are decoded every time.
pub const MIN_BYTES: usize = 64 * 1024;

/// The budget of [`BitmapCache::global`]: room for the working set of a few audience
/// queries over bitmaps of tens of megabytes.
pub const GLOBAL_BUDGET: usize = 256 << 20;

/// Fingerprints remembered for admission once the cache is full.
const RECENT: usize = 256;

/// Entries sharing one fingerprint; beyond this the oldest of them is dropped (bounds
/// the byte comparisons one read can cost).
const MAX_PER_FINGERPRINT: usize = 4;

/// Bitmaps decoded from (or written as) byte strings, by those bytes.
pub struct BitmapCache {
    budget: usize,
    clock: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<u64, Vec<Arc<Entry>>>,
    /// Estimated bytes of all entries.
    used: usize,
    /// Fingerprints of values seen lately (a ring).
    recent: Vec<u64>,
    next_recent: usize,
}

struct Entry {
    bytes: Box<[u8]>,
    bitmap: Arc<Bitmap>,
    cost: usize,
    last_used: AtomicU64,
}

impl std::fmt::Debug for BitmapCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitmapCache")
            .field("budget", &self.budget)
            .field("used", &self.used_bytes())
            .field("entries", &self.len())
            .finish()
    }
}

impl BitmapCache {
    /// An empty cache holding at most `budget` bytes (estimated) of entries.
    pub fn new(budget: usize) -> Self {
        BitmapCache {
            budget,
            clock: AtomicU64::new(0),
            inner: Mutex::default(),
        }
    }

    /// The cache the SQL functions share, [`GLOBAL_BUDGET`] bytes.
    pub fn global() -> &'static BitmapCache {
        static GLOBAL: LazyLock<BitmapCache> = LazyLock::new(|| BitmapCache::new(GLOBAL_BUDGET));
        &GLOBAL
    }

    /// The bitmap `bytes` hold: the cached one when these exact bytes were read or
    /// written before, else [`Bitmap::from_bytes`]'s (kept when the cache takes it).
    pub fn decode(&self, bytes: &[u8]) -> Result<Arc<Bitmap>, BitmapError> {
        if !self.worth_keeping(bytes.len()) {
            return Bitmap::from_bytes(bytes).map(Arc::new);
        }
        let fingerprint = fingerprint(bytes);
        if let Some(hit) = self.find(fingerprint, bytes) {
            return Ok(hit);
        }
        let bitmap = Arc::new(Bitmap::from_bytes(bytes)?);
        self.keep(fingerprint, bytes, &bitmap);
        Ok(bitmap)
    }

    /// Appends `bitmap`'s bytes to `out` ([`Bitmap::write_bytes`]) and remembers them, so
    /// that reading them back costs no validation.
    pub fn encode(&self, bitmap: &Arc<Bitmap>, out: &mut Vec<u8>) {
        let start = out.len();
        bitmap.write_bytes(out);
        self.remember(bitmap, &out[start..]);
    }

    /// [`BitmapCache::encode`] for a bitmap nobody else holds (a function's result): small
    /// ones are written without further cost.
    pub fn encode_owned(&self, bitmap: Bitmap, out: &mut Vec<u8>) {
        let start = out.len();
        bitmap.write_bytes(out);
        if self.worth_keeping(out.len() - start) {
            self.remember(&Arc::new(bitmap), &out[start..]);
        }
    }

    /// Keeps `bitmap` as the value of `bytes`, its own serialization.
    fn remember(&self, bitmap: &Arc<Bitmap>, bytes: &[u8]) {
        if !self.worth_keeping(bytes.len()) {
            return;
        }
        let fingerprint = fingerprint(bytes);
        // Writing an entry's own bitmap again (an aggregate passing on a value it read)
        // finds it without comparing bytes; skipping `keep` is always safe.
        let candidates = self.candidates(fingerprint);
        let known = candidates
            .iter()
            .find(|e| Arc::ptr_eq(&e.bitmap, bitmap) || *e.bytes == *bytes);
        match known {
            Some(entry) => entry.last_used.store(self.tick(), Ordering::Relaxed),
            None => self.keep(fingerprint, bytes, bitmap),
        }
    }

    /// Estimated bytes held now.
    pub fn used_bytes(&self) -> usize {
        self.inner.lock().expect(crate::LOCK_POISONED).used
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        let inner = self.inner.lock().expect(crate::LOCK_POISONED);
        inner.entries.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn worth_keeping(&self, len: usize) -> bool {
        len >= MIN_BYTES && cost(len) <= self.budget / 4
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed)
    }

    /// The entry of exactly `bytes`; the comparison runs outside the lock.
    fn find(&self, fingerprint: u64, bytes: &[u8]) -> Option<Arc<Bitmap>> {
        let candidates = self.candidates(fingerprint);
        let entry = candidates.iter().find(|e| *e.bytes == *bytes)?;
        entry.last_used.store(self.tick(), Ordering::Relaxed);
        Some(entry.bitmap.clone())
    }

    /// The entries under `fingerprint` (a copy of the list, to compare outside the lock).
    fn candidates(&self, fingerprint: u64) -> Vec<Arc<Entry>> {
        let inner = self.inner.lock().expect(crate::LOCK_POISONED);
        inner.entries.get(&fingerprint).cloned().unwrap_or_default()
    }

    /// Keeps `bitmap` as the value of `bytes` (which it was decoded from or written as),
    /// when the cache has room or the value was seen recently.
    fn keep(&self, fingerprint: u64, bytes: &[u8], bitmap: &Arc<Bitmap>) {
        let cost = cost(bytes.len());
        {
            let mut inner = self.inner.lock().expect(crate::LOCK_POISONED);
            let has_room = inner.used + cost <= self.budget;
            let seen = inner.recent.contains(&fingerprint);
            if !has_room && !seen {
                inner.remember(fingerprint);
                return;
            }
        }
        // Copied outside the lock: megabytes take a while.
        let entry = Arc::new(Entry {
            bytes: bytes.into(),
            bitmap: bitmap.clone(),
            cost,
            last_used: AtomicU64::new(self.tick()),
        });
        let mut inner = self.inner.lock().expect(crate::LOCK_POISONED);
        let same = inner.entries.get(&fingerprint).is_some_and(|bucket| {
            bucket.iter().any(|e| e.bytes == entry.bytes) // kept meanwhile by another read
        });
        if same {
            return;
        }
        inner.remember(fingerprint);
        if inner
            .entries
            .get(&fingerprint)
            .is_some_and(|b| b.len() >= MAX_PER_FINGERPRINT)
        {
            inner.evict(Some(fingerprint));
        }
        while inner.used + cost > self.budget && inner.evict(None) {}
        inner.used += cost;
        inner.entries.entry(fingerprint).or_default().push(entry);
    }
}

impl Inner {
    fn remember(&mut self, fingerprint: u64) {
        if self.recent.contains(&fingerprint) {
            return;
        }
        if self.recent.len() < RECENT {
            self.recent.push(fingerprint);
        } else {
            self.recent[self.next_recent] = fingerprint;
            self.next_recent = (self.next_recent + 1) % RECENT;
        }
    }

    /// Drops the least recently used entry (of one fingerprint, or of all); false when
    /// there is none.
    fn evict(&mut self, only: Option<u64>) -> bool {
        let oldest = self
            .entries
            .iter()
            .filter(|(fp, _)| only.is_none_or(|only| **fp == only))
            .flat_map(|(fp, bucket)| {
                bucket
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (e.last_used.load(Ordering::Relaxed), *fp, i))
            })
            .min();
        let Some((_, fp, i)) = oldest else {
            return false;
        };
        let bucket = self
            .entries
            .get_mut(&fp)
            .expect("`oldest` was just found among `entries`, under the same lock");
        let entry = bucket.swap_remove(i);
        if bucket.is_empty() {
            self.entries.remove(&fp);
        }
        self.used -= entry.cost;
        true
    }
}

/// Estimated memory of an entry of `len` bytes: the copy of the bytes, and the decoded
/// bitmap, about as large (roaring containers hold what the bytes hold, plus a header
/// per container of up to 8 KiB).
fn cost(len: usize) -> usize {
    2 * len + len / 64 + 256
}

/// The length and a hash of sampled bytes: the head and the tail (the container
/// directory and the last containers) and windows spread over the middle. Cheap for
/// megabytes; equal bytes always have equal fingerprints, and the byte comparison
/// settles the rest.
fn fingerprint(bytes: &[u8]) -> u64 {
    const EDGE: usize = 1024;
    const WINDOWS: usize = 64;
    const WINDOW: usize = 64;
    let mut hasher = DefaultHasher::new();
    hasher.write_usize(bytes.len());
    if bytes.len() <= 2 * EDGE + WINDOWS * WINDOW {
        hasher.write(bytes);
    } else {
        let middle = &bytes[EDGE..bytes.len() - EDGE];
        let stride = (middle.len() - WINDOW) / (WINDOWS - 1);
        hasher.write(&bytes[..EDGE]);
        for i in 0..WINDOWS {
            hasher.write(&middle[i * stride..i * stride + WINDOW]);
        }
        hasher.write(&bytes[bytes.len() - EDGE..]);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bitmap whose bytes are `MIN_BYTES` or more (eleven bitmap containers), the same
    /// length for offsets below 30_000.
    fn big(offset: u64) -> Bitmap {
        let bitmap = Bitmap::from_values((0..100_000).map(|i| offset + i * 7));
        assert!(bitmap.serialized_size() >= MIN_BYTES);
        bitmap
    }

    #[test]
    fn a_hit_is_the_same_bitmap_without_decoding() {
        let cache = BitmapCache::new(16 << 20);
        let bitmap = big(0);
        let bytes = bitmap.to_bytes();
        let first = cache.decode(&bytes).unwrap();
        assert_eq!(*first, bitmap);
        assert_eq!(cache.len(), 1);
        // A copy of the bytes elsewhere finds the entry.
        let again = cache.decode(&bytes.clone()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(*again, bitmap);
    }

    #[test]
    fn bytes_of_the_same_length_and_fingerprint_region_miss() {
        let cache = BitmapCache::new(16 << 20);
        let a = big(0);
        let bytes_a = a.to_bytes();
        cache.decode(&bytes_a).unwrap();
        // The same shape with the ids moved by one: same length, different bytes.
        let b = big(1);
        let bytes_b = b.to_bytes();
        assert_eq!(bytes_a.len(), bytes_b.len());
        assert_ne!(bytes_a, bytes_b);
        assert_eq!(*cache.decode(&bytes_b).unwrap(), b);
        assert_eq!(*cache.decode(&bytes_a).unwrap(), a);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_shared_fingerprint_never_returns_the_other_bitmap() {
        let cache = BitmapCache::new(16 << 20);
        let a = big(0);
        let b = big(1);
        let (bytes_a, bytes_b) = (a.to_bytes(), b.to_bytes());
        // Force both under one fingerprint, as a hash collision would.
        cache.keep(7, &bytes_a, &Arc::new(a.clone()));
        cache.keep(7, &bytes_b, &Arc::new(b.clone()));
        assert_eq!(*cache.find(7, &bytes_a).unwrap(), a);
        assert_eq!(*cache.find(7, &bytes_b).unwrap(), b);
        let mut other = bytes_a.clone();
        *other.last_mut().unwrap() ^= 1;
        assert!(cache.find(7, &other).is_none());
        // At most MAX_PER_FINGERPRINT entries share one.
        for offset in 2..10 {
            let c = big(offset);
            cache.keep(7, &c.to_bytes(), &Arc::new(c));
        }
        assert_eq!(cache.len(), MAX_PER_FINGERPRINT);
    }

    #[test]
    fn memory_stays_within_the_budget() {
        let one = big(0).to_bytes().len();
        let budget = 5 * cost(one);
        let cache = BitmapCache::new(budget);
        let values: Vec<Vec<u8>> = (0..12).map(|o| big(o).to_bytes()).collect();
        // Twice over, so the second round is admitted past the full cache.
        for bytes in values.iter().chain(&values) {
            cache.decode(bytes).unwrap();
            assert!(cache.used_bytes() <= budget);
        }
        assert_eq!(cache.len(), 5);
        // The five kept are the most recently read.
        for bytes in &values[7..] {
            let hit = cache.find(fingerprint(bytes), bytes);
            assert!(hit.is_some());
        }
    }

    #[test]
    fn a_full_cache_admits_on_the_second_sighting() {
        let one = big(0).to_bytes().len();
        let cache = BitmapCache::new(4 * cost(one));
        let hot: Vec<Vec<u8>> = (0..4).map(|o| big(o).to_bytes()).collect();
        for bytes in &hot {
            cache.decode(bytes).unwrap();
        }
        // A scan over other values, each once, leaves the hot ones in place.
        for o in 10..20 {
            cache.decode(&big(o).to_bytes()).unwrap();
        }
        for bytes in &hot {
            assert!(cache.find(fingerprint(bytes), bytes).is_some());
        }
        // A value read twice displaces one.
        let twice = big(30).to_bytes();
        cache.decode(&twice).unwrap();
        cache.decode(&twice).unwrap();
        assert!(cache.find(fingerprint(&twice), &twice).is_some());
        assert_eq!(cache.len(), 4);
    }

    #[test]
    fn small_values_are_not_kept() {
        let cache = BitmapCache::new(16 << 20);
        let bytes = Bitmap::from_values([1, 2, 3]).to_bytes();
        assert_eq!(cache.decode(&bytes).unwrap().to_vec(), vec![1, 2, 3]);
        assert!(cache.is_empty());
    }

    #[test]
    fn invalid_bytes_fail_every_time() {
        let cache = BitmapCache::new(16 << 20);
        let mut bytes = big(0).to_bytes();
        bytes.pop();
        let len = bytes.len();
        for _ in 0..3 {
            assert_eq!(
                cache.decode(&bytes).unwrap_err(),
                BitmapError::NotABitmap { len }
            );
        }
        assert!(cache.is_empty());
        // The valid value next to it is unaffected, and a damaged copy of a cached value
        // is not mistaken for it.
        let good = big(0).to_bytes();
        cache.decode(&good).unwrap();
        let mut damaged = good.clone();
        damaged[good.len() / 2] ^= 0x10;
        if let Ok(read) = cache.decode(&damaged) {
            assert_ne!(*read, big(0));
        }
        damaged = good.clone();
        damaged.truncate(good.len() - 1);
        assert!(cache.decode(&damaged).is_err());
    }

    #[test]
    fn written_bytes_are_read_back_from_the_cache() {
        let cache = BitmapCache::new(16 << 20);
        let bitmap = Arc::new(big(0));
        let mut out = b"prefix".to_vec();
        cache.encode(&bitmap, &mut out);
        assert_eq!(&out[6..], &bitmap.to_bytes()[..]);
        let back = cache.decode(&out[6..]).unwrap();
        assert!(Arc::ptr_eq(&back, &bitmap));
        // Writing it again keeps one entry.
        cache.encode(&bitmap, &mut Vec::new());
        assert_eq!(cache.len(), 1);
        let mut out = Vec::new();
        cache.encode_owned(big(1), &mut out);
        assert_eq!(*cache.decode(&out).unwrap(), big(1));
        assert_eq!(cache.len(), 2);
        cache.encode_owned(Bitmap::from_values([1]), &mut out);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn no_entry_takes_more_than_a_quarter() {
        let bytes = big(0).to_bytes();
        let cache = BitmapCache::new(4 * cost(bytes.len()) - 1);
        cache.decode(&bytes).unwrap();
        assert!(cache.is_empty());
    }
}

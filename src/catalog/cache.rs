//! Decoded in-memory copies of small managed tables.
//!
//! A point lookup or a join against a dimension table re-reads the same few Parquet files
//! on every query, and decoding them (plus planning the Delta scan) costs far more than
//! the query itself. The cache keeps the Arrow batches of a table's current Delta
//! version and scans them from memory instead.
//!
//! Invariants:
//! - an entry belongs to one table object and one Delta version; a scan of any other
//!   version misses, so a commit is visible to the very next query (the stale entry is
//!   replaced when that table is next loaded, or evicted);
//! - the decoded bytes of all entries stay within the budget: adding an entry evicts the
//!   least recently used others; a table whose files exceed a sixteenth of the budget is
//!   never loaded (Parquet decodes to a few times its size, and a first query should not
//!   read columns it does not need from a large table), nor is one whose decoded batches
//!   exceed a quarter;
//! - the one exception to the sixteenth: a table known to have at most [`FEW_ROWS`] rows
//!   is loaded while its files take at most a quarter. So many bytes in so few rows are
//!   large values (per-tag bitmaps, embeddings, documents) that compress little and that
//!   queries read whole, where a cached table saves the most; the quarter on decoded
//!   batches still bounds what is kept, and a load that exceeds it happens once per
//!   version (the caller remembers the version as too big);
//! - the cache changes how a scan reads, never what it returns;
//! - the data generation grows after every commit and every change of the catalog, so a
//!   plan that captured cached batches can tell it is stale.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;

/// Rows up to which a table may have files of up to a quarter of the budget (see the
/// module invariants).
pub(crate) const FEW_ROWS: u64 = 65_536;

/// Identifies one table object for the cache (a dropped and re-created table is a new
/// object with a new id).
pub(crate) type TableId = u64;

/// Decoded batches of small tables, shared by every session of an engine.
#[derive(Debug)]
pub struct TableCache {
    budget: usize,
    entries: Mutex<HashMap<TableId, Entry>>,
    clock: AtomicU64,
    next_id: AtomicU64,
    generation: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    version: i64,
    batches: Arc<[RecordBatch]>,
    bytes: usize,
    last_used: u64,
}

impl TableCache {
    /// A cache holding at most `budget` bytes of decoded batches (0 turns it off).
    pub fn new(budget: usize) -> Self {
        TableCache {
            budget,
            entries: Mutex::default(),
            clock: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            generation: AtomicU64::new(0),
        }
    }

    /// Changes with every commit and catalog change (see the module invariants).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records that data or the catalog changed; call after the change is visible.
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A fresh id for a table object.
    pub(crate) fn register(&self) -> TableId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The batches of `table` at `version`, if cached.
    pub(crate) fn get(&self, table: TableId, version: i64) -> Option<Arc<[RecordBatch]>> {
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().expect(crate::LOCK_POISONED);
        let entry = entries.get_mut(&table).filter(|e| e.version == version)?;
        entry.last_used = tick;
        Some(entry.batches.clone())
    }

    /// Whether a table with `file_bytes` of Parquet and `rows` rows (from the table's
    /// statistics; `None` when some file has none) is worth loading.
    pub(crate) fn admits_table(&self, file_bytes: u64, rows: Option<u64>) -> bool {
        let share = if rows.is_some_and(|rows| rows <= FEW_ROWS) {
            4
        } else {
            16
        };
        self.budget > 0 && file_bytes <= (self.budget / share) as u64
    }

    /// Keeps `batches` as `table` at `version`, evicting least recently used entries to
    /// stay within the budget. Returns false (and keeps nothing) when the decoded batches
    /// alone exceed a quarter of the budget.
    pub(crate) fn insert(&self, table: TableId, version: i64, batches: Arc<[RecordBatch]>) -> bool {
        let bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
        if bytes > self.budget / 4 {
            self.forget(table);
            return false;
        }
        let tick = self.clock.fetch_add(1, Ordering::Relaxed);
        let mut entries = self.entries.lock().expect(crate::LOCK_POISONED);
        entries.remove(&table);
        let mut used: usize = entries.values().map(|e| e.bytes).sum();
        while used + bytes > self.budget {
            let Some((&oldest, _)) = entries.iter().min_by_key(|(_, e)| e.last_used) else {
                break;
            };
            used -= entries.remove(&oldest).map_or(0, |e| e.bytes);
        }
        entries.insert(
            table,
            Entry {
                version,
                batches,
                bytes,
                last_used: tick,
            },
        );
        true
    }

    /// Drops the entry of `table` (the table object is gone).
    pub(crate) fn forget(&self, table: TableId) {
        self.entries
            .lock()
            .expect(crate::LOCK_POISONED)
            .remove(&table);
    }

    /// Bytes of decoded batches held now.
    pub fn used_bytes(&self) -> usize {
        let entries = self.entries.lock().expect(crate::LOCK_POISONED);
        entries.values().map(|e| e.bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;

    fn batch(rows: usize) -> Arc<[RecordBatch]> {
        let values = Int64Array::from_iter_values(0..rows as i64);
        let batch = RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).unwrap();
        Arc::from(vec![batch])
    }

    #[test]
    fn hit_only_at_the_cached_version() {
        let cache = TableCache::new(1 << 20);
        let t = cache.register();
        assert!(cache.insert(t, 3, batch(10)));
        assert_eq!(cache.get(t, 3).unwrap()[0].num_rows(), 10);
        assert!(cache.get(t, 4).is_none(), "a newer commit must miss");
        assert!(cache.get(cache.register(), 3).is_none());
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let one = batch(1000);
        let size: usize = one.iter().map(RecordBatch::get_array_memory_size).sum();
        let cache = TableCache::new(size * 4 + size / 2);
        let tables: Vec<TableId> = (0..4).map(|_| cache.register()).collect();
        for &t in &tables {
            assert!(cache.insert(t, 0, batch(1000)));
        }
        // Touch the first table: the second is now the least recently used.
        assert!(cache.get(tables[0], 0).is_some());
        let fifth = cache.register();
        assert!(cache.insert(fifth, 0, batch(1000)));
        assert!(cache.get(tables[1], 0).is_none());
        assert!(cache.get(tables[0], 0).is_some());
        assert!(cache.used_bytes() <= size * 4 + size / 2);
    }

    #[test]
    fn refuses_large_files_and_large_batches() {
        let cache = TableCache::new(1600);
        assert!(!cache.admits_table(101, None));
        assert!(cache.admits_table(100, None));
        assert!(!cache.insert(cache.register(), 0, batch(10_000)));
        assert_eq!(cache.used_bytes(), 0);
        assert!(!TableCache::new(0).admits_table(0, None));
    }

    #[test]
    fn few_rows_may_take_a_quarter_in_files() {
        let cache = TableCache::new(1600);
        // Few rows in many bytes: large values (bitmaps), up to a quarter.
        assert!(cache.admits_table(400, Some(100)));
        assert!(cache.admits_table(400, Some(FEW_ROWS)));
        assert!(!cache.admits_table(401, Some(100)));
        // Many rows, or rows unknown: a sixteenth, as before.
        assert!(!cache.admits_table(101, Some(FEW_ROWS + 1)));
        assert!(cache.admits_table(100, Some(FEW_ROWS + 1)));
        assert!(!cache.admits_table(101, None));
        assert!(!TableCache::new(0).admits_table(0, Some(1)));
        // What is kept is still bounded by the decoded quarter.
        assert!(!cache.insert(cache.register(), 0, batch(10_000)));
    }
}

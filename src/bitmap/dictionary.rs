//! The dense id dictionary: small contiguous integers for external ids (user keys,
//! phone numbers, openids), so that bitmaps of them stay compact.
//!
//! Each namespace numbers its keys 0, 1, 2, … in order of first sight. The mapping lives
//! in the state store (redb) in two tables, key → id and id → key, plus each namespace's
//! next id.
//!
//! Invariants, kept because every assignment happens inside one redb write transaction
//! that re-reads the keys it is about to assign (redb runs one writer at a time):
//! - a key never gets two ids, and an id never names two keys, whatever the number of
//!   concurrent callers;
//! - ids are never reused: the next id only grows;
//! - an assignment that returned has been committed durably (redb's default durability
//!   syncs on commit), so it survives a crash; one that did not return left no trace.
//!
//! Lookups of known keys take only a read transaction, so they do not wait on writers.
//!
//! ```
//! # use martdb::bitmap::dictionary::IdDictionary;
//! # use martdb::storage::{Storage, StorageOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! # let options = StorageOptions { create_if_missing: true, ..Default::default() };
//! let storage = std::sync::Arc::new(Storage::open(dir.path().to_str().unwrap(), &options).unwrap());
//! let dictionary = IdDictionary::new(&storage);
//! let ids = dictionary.assign("user", &[Some("alice"), Some("bob"), Some("alice"), None]).unwrap();
//! assert_eq!(ids, vec![Some(0), Some(1), Some(0), None]);
//! assert_eq!(dictionary.external("user", &[Some(1)]).unwrap(), vec![Some("bob".to_string())]);
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::storage::{Storage, StorageError};

/// (namespace, external id) → dense id.
const FORWARD: TableDefinition<(&str, &str), u64> = TableDefinition::new("id_dictionary");
/// (namespace, dense id) → external id.
const REVERSE: TableDefinition<(&str, u64), &str> = TableDefinition::new("id_dictionary_reverse");
/// namespace → the next id to assign.
const NEXT: TableDefinition<&str, u64> = TableDefinition::new("id_dictionary_next");

#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    #[error("id dictionary: {0}")]
    Store(#[from] StorageError),
    #[error("the database was closed")]
    Closed,
}

/// One row of the dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub namespace: String,
    pub external_id: String,
    pub dense_id: u64,
}

/// The dictionary over a state store. Cheap to clone.
#[derive(Clone)]
pub struct IdDictionary {
    /// Weak: the engine owns its storage, and its functions and system tables (which
    /// hold this) must not keep the state store open after the engine is gone.
    storage: Weak<Storage>,
}

impl std::fmt::Debug for IdDictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdDictionary")
    }
}

impl IdDictionary {
    /// The dictionary over `storage`, usable while `storage` is open.
    pub fn new(storage: &Arc<Storage>) -> Self {
        IdDictionary {
            storage: Arc::downgrade(storage),
        }
    }

    fn storage(&self) -> Result<Arc<Storage>, DictionaryError> {
        self.storage.upgrade().ok_or(DictionaryError::Closed)
    }

    fn store(&self, e: impl Into<redb::Error>) -> DictionaryError {
        match self.storage.upgrade() {
            Some(storage) => DictionaryError::Store(storage.kv_error(e)),
            None => DictionaryError::Closed,
        }
    }

    /// The ids of `keys` (None stays None), assigning new ids to keys seen for the first
    /// time, in order of first appearance in `keys`.
    pub fn assign(
        &self,
        namespace: &str,
        keys: &[Option<&str>],
    ) -> Result<Vec<Option<u64>>, DictionaryError> {
        let mut ids = self.lookup(namespace, keys)?;
        let mut missing: Vec<&str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, id) in keys.iter().zip(&ids) {
            if let (Some(key), None) = (key, id)
                && seen.insert(*key)
            {
                missing.push(key);
            }
        }
        if missing.is_empty() {
            return Ok(ids);
        }
        let mut assigned: HashMap<&str, u64> = HashMap::with_capacity(missing.len());
        let txn = self
            .storage()?
            .kv()
            .begin_write()
            .map_err(|e| self.store(e))?;
        {
            let mut forward = txn.open_table(FORWARD).map_err(|e| self.store(e))?;
            let mut reverse = txn.open_table(REVERSE).map_err(|e| self.store(e))?;
            let mut next_ids = txn.open_table(NEXT).map_err(|e| self.store(e))?;
            let mut next = next_ids
                .get(namespace)
                .map_err(|e| self.store(e))?
                .map_or(0, |v| v.value());
            for key in missing {
                // Another caller may have assigned it since the read above.
                if let Some(id) = forward.get((namespace, key)).map_err(|e| self.store(e))? {
                    assigned.insert(key, id.value());
                    continue;
                }
                forward
                    .insert((namespace, key), next)
                    .map_err(|e| self.store(e))?;
                reverse
                    .insert((namespace, next), key)
                    .map_err(|e| self.store(e))?;
                assigned.insert(key, next);
                next += 1;
            }
            next_ids
                .insert(namespace, next)
                .map_err(|e| self.store(e))?;
        }
        txn.commit().map_err(|e| self.store(e))?;
        for (key, id) in keys.iter().zip(ids.iter_mut()) {
            if let (Some(key), None) = (key, &id) {
                *id = assigned.get(key).copied();
            }
        }
        Ok(ids)
    }

    /// The ids of `keys` that already have one; never assigns.
    pub fn lookup(
        &self,
        namespace: &str,
        keys: &[Option<&str>],
    ) -> Result<Vec<Option<u64>>, DictionaryError> {
        let txn = self
            .storage()?
            .kv()
            .begin_read()
            .map_err(|e| self.store(e))?;
        let forward = match txn.open_table(FORWARD) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(self.store(e)),
        };
        keys.iter()
            .map(|key| match key {
                Some(key) => Ok(forward
                    .get((namespace, *key))
                    .map_err(|e| self.store(e))?
                    .map(|v| v.value())),
                None => Ok(None),
            })
            .collect()
    }

    /// The external ids of dense `ids`; None for ids never assigned.
    pub fn external(
        &self,
        namespace: &str,
        ids: &[Option<u64>],
    ) -> Result<Vec<Option<String>>, DictionaryError> {
        let txn = self
            .storage()?
            .kv()
            .begin_read()
            .map_err(|e| self.store(e))?;
        let reverse = match txn.open_table(REVERSE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; ids.len()]),
            Err(e) => return Err(self.store(e)),
        };
        ids.iter()
            .map(|id| match id {
                Some(id) => Ok(reverse
                    .get((namespace, *id))
                    .map_err(|e| self.store(e))?
                    .map(|v| v.value().to_string())),
                None => Ok(None),
            })
            .collect()
    }

    /// Every entry, by namespace then dense id.
    pub fn entries(&self) -> Result<Vec<Entry>, DictionaryError> {
        let txn = self
            .storage()?
            .kv()
            .begin_read()
            .map_err(|e| self.store(e))?;
        let reverse = match txn.open_table(REVERSE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.store(e)),
        };
        let mut out = Vec::new();
        for row in reverse.iter().map_err(|e| self.store(e))? {
            let (key, value) = row.map_err(|e| self.store(e))?;
            let (namespace, dense_id) = key.value();
            out.push(Entry {
                namespace: namespace.to_string(),
                external_id: value.value().to_string(),
                dense_id,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dictionary, and the storage that must stay open while it is used.
    fn open(dir: &std::path::Path) -> (Arc<Storage>, IdDictionary) {
        let options = crate::storage::StorageOptions {
            create_if_missing: true,
            ..Default::default()
        };
        let storage = Arc::new(Storage::open(dir.to_str().unwrap(), &options).unwrap());
        let dictionary = IdDictionary::new(&storage);
        (storage, dictionary)
    }

    #[test]
    fn a_closed_database_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let (storage, d) = open(dir.path());
        drop(storage);
        assert!(matches!(
            d.assign("user", &[Some("a")]),
            Err(DictionaryError::Closed)
        ));
    }

    #[test]
    fn ids_are_dense_stable_and_per_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let (_storage, d) = open(dir.path());
        assert_eq!(
            d.assign("user", &[Some("a"), Some("b"), Some("a")])
                .unwrap(),
            vec![Some(0), Some(1), Some(0)]
        );
        assert_eq!(
            d.assign("user", &[Some("c"), Some("b")]).unwrap(),
            vec![Some(2), Some(1)]
        );
        assert_eq!(d.assign("device", &[Some("a")]).unwrap(), vec![Some(0)]);
        assert_eq!(
            d.lookup("user", &[Some("zz"), Some("c")]).unwrap(),
            vec![None, Some(2)]
        );
        assert_eq!(
            d.external("user", &[Some(2), Some(9), None]).unwrap(),
            vec![Some("c".to_string()), None, None]
        );
        assert_eq!(d.entries().unwrap().len(), 4);
    }

    #[test]
    fn assignments_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_storage, d) = open(dir.path());
            d.assign("user", &[Some("a"), Some("b")]).unwrap();
        }
        let (_storage, d) = open(dir.path());
        assert_eq!(d.lookup("user", &[Some("b")]).unwrap(), vec![Some(1)]);
        assert_eq!(d.assign("user", &[Some("c")]).unwrap(), vec![Some(2)]);
    }

    #[test]
    fn concurrent_callers_never_split_or_share_ids() {
        let dir = tempfile::tempdir().unwrap();
        let (_storage, d) = open(dir.path());
        let keys: Vec<String> = (0..2_000).map(|i| format!("k{i}")).collect();
        let results: Vec<Vec<Option<u64>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let d = d.clone();
                    let keys = &keys;
                    s.spawn(move || {
                        // Each thread walks the keys in its own order, in batches.
                        let mut order: Vec<&str> = keys.iter().map(String::as_str).collect();
                        order.rotate_left(t * 250);
                        let mut ids = HashMap::new();
                        for chunk in order.chunks(100) {
                            let batch: Vec<Option<&str>> = chunk.iter().map(|k| Some(*k)).collect();
                            for (k, id) in chunk.iter().zip(d.assign("user", &batch).unwrap()) {
                                ids.insert(k.to_string(), id);
                            }
                        }
                        keys.iter().map(|k| ids[k]).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for other in &results[1..] {
            assert_eq!(
                other, &results[0],
                "two callers saw different ids for a key"
            );
        }
        let mut ids: Vec<u64> = results[0].iter().map(|id| id.unwrap()).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (0..2_000).collect::<Vec<u64>>(),
            "ids are not 0..n, once each"
        );
    }
}

//! Named audiences: a bitmap of members saved under a name, with the SQL that defines it
//! and when it was last computed, so it can be fetched by name and recomputed.
//!
//! Audiences live in the state store (redb): one table of metadata (definition, size,
//! refresh time) and one of bitmap bytes, both written in one transaction, so a reader
//! never sees a bitmap with another version's metadata. Saving is durable when it returns.
//!
//! ```
//! # use martdb::storage::{Storage, StorageOptions};
//! use martdb::bitmap::{Bitmap, audiences::AudienceStore};
//! # let dir = tempfile::tempdir().unwrap();
//! # let options = StorageOptions { create_if_missing: true, ..Default::default() };
//! let storage = std::sync::Arc::new(Storage::open(dir.path().to_str().unwrap(), &options).unwrap());
//! let audiences = AudienceStore::new(&storage);
//! let members = Bitmap::from_values([3, 5, 8]);
//! audiences.save("shoe_buyers", "SELECT group_bitmap_state(user_id) FROM orders", &members).unwrap();
//! let (info, bitmap) = audiences.get("shoe_buyers").unwrap().unwrap();
//! assert_eq!((info.cardinality, bitmap), (3, members));
//! ```

use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Bitmap, BitmapError};
use crate::storage::{Storage, StorageError};

/// name → [`AudienceInfo`] as JSON.
const INFO: TableDefinition<&str, &str> = TableDefinition::new("audiences");
/// name → the bitmap's portable bytes.
const MEMBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("audience_members");

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("audiences: {0}")]
    Store(#[from] StorageError),
    #[error("the database was closed")]
    Closed,
    #[error("audience {name:?}: stored bytes are damaged: {source}")]
    Damaged { name: String, source: BitmapError },
    #[error("audience {name:?}: stored metadata is damaged: {message}")]
    DamagedInfo { name: String, message: String },
}

/// What is known about a saved audience besides its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceInfo {
    pub name: String,
    /// The SQL whose result is the audience's bitmap.
    pub definition: String,
    pub cardinality: u64,
    /// Size of the bitmap in bytes.
    pub bytes: u64,
    /// When the members were computed, in microseconds since the Unix epoch (UTC).
    pub refreshed_at_micros: i64,
}

/// The audiences of one database. Cheap to clone.
#[derive(Clone)]
pub struct AudienceStore {
    /// Weak: the engine owns its storage, and its functions and system tables (which
    /// hold this) must not keep the state store open after the engine is gone.
    storage: Weak<Storage>,
}

impl std::fmt::Debug for AudienceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AudienceStore")
    }
}

impl AudienceStore {
    /// The audience store over `storage`, usable while `storage` is open.
    pub fn new(storage: &Arc<Storage>) -> Self {
        AudienceStore {
            storage: Arc::downgrade(storage),
        }
    }

    fn storage(&self) -> Result<Arc<Storage>, AudienceError> {
        self.storage.upgrade().ok_or(AudienceError::Closed)
    }

    fn store(&self, e: impl Into<redb::Error>) -> AudienceError {
        match self.storage.upgrade() {
            Some(storage) => AudienceError::Store(storage.kv_error(e)),
            None => AudienceError::Closed,
        }
    }

    /// Saves (or replaces) `name` with `members`, computed now from `definition`.
    pub fn save(
        &self,
        name: &str,
        definition: &str,
        members: &Bitmap,
    ) -> Result<AudienceInfo, AudienceError> {
        let bytes = members.to_bytes();
        let info = AudienceInfo {
            name: name.to_string(),
            definition: definition.to_string(),
            cardinality: members.cardinality(),
            bytes: bytes.len() as u64,
            refreshed_at_micros: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as i64),
        };
        let json = serde_json::to_string(&info).expect(
            "AudienceInfo derives Serialize over strings and integers only: serde_json cannot fail",
        );
        let txn = self
            .storage()?
            .kv()
            .begin_write()
            .map_err(|e| self.store(e))?;
        {
            let mut infos = txn.open_table(INFO).map_err(|e| self.store(e))?;
            let mut members = txn.open_table(MEMBERS).map_err(|e| self.store(e))?;
            infos
                .insert(name, json.as_str())
                .map_err(|e| self.store(e))?;
            members
                .insert(name, bytes.as_slice())
                .map_err(|e| self.store(e))?;
        }
        txn.commit().map_err(|e| self.store(e))?;
        Ok(info)
    }

    /// The audience's metadata and members, or None when there is no such audience.
    pub fn get(&self, name: &str) -> Result<Option<(AudienceInfo, Bitmap)>, AudienceError> {
        let txn = self
            .storage()?
            .kv()
            .begin_read()
            .map_err(|e| self.store(e))?;
        let (infos, members) = match (txn.open_table(INFO), txn.open_table(MEMBERS)) {
            (Ok(i), Ok(m)) => (i, m),
            (Err(redb::TableError::TableDoesNotExist(_)), _) => return Ok(None),
            (Err(e), _) | (_, Err(e)) => return Err(self.store(e)),
        };
        let Some(json) = infos.get(name).map_err(|e| self.store(e))? else {
            return Ok(None);
        };
        let info = self.parse_info(name, json.value())?;
        let bytes = members
            .get(name)
            .map_err(|e| self.store(e))?
            .ok_or_else(|| AudienceError::DamagedInfo {
                name: name.to_string(),
                message: "no members stored".into(),
            })?;
        let bitmap =
            Bitmap::from_bytes(bytes.value()).map_err(|source| AudienceError::Damaged {
                name: name.to_string(),
                source,
            })?;
        Ok(Some((info, bitmap)))
    }

    /// The audience's metadata alone (cheap: the members are not read).
    pub fn info(&self, name: &str) -> Result<Option<AudienceInfo>, AudienceError> {
        let txn = self
            .storage()?
            .kv()
            .begin_read()
            .map_err(|e| self.store(e))?;
        let infos = match txn.open_table(INFO) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.store(e)),
        };
        match infos.get(name).map_err(|e| self.store(e))? {
            Some(json) => Ok(Some(self.parse_info(name, json.value())?)),
            None => Ok(None),
        }
    }

    /// Every audience's metadata, by name.
    pub fn list(&self) -> Result<Vec<AudienceInfo>, AudienceError> {
        let txn = self
            .storage()?
            .kv()
            .begin_read()
            .map_err(|e| self.store(e))?;
        let infos = match txn.open_table(INFO) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.store(e)),
        };
        let mut out = Vec::new();
        for row in infos.iter().map_err(|e| self.store(e))? {
            let (name, json) = row.map_err(|e| self.store(e))?;
            out.push(self.parse_info(name.value(), json.value())?);
        }
        Ok(out)
    }

    /// Removes `name`; false when there was no such audience.
    pub fn drop_audience(&self, name: &str) -> Result<bool, AudienceError> {
        let txn = self
            .storage()?
            .kv()
            .begin_write()
            .map_err(|e| self.store(e))?;
        let existed = {
            let mut infos = txn.open_table(INFO).map_err(|e| self.store(e))?;
            let mut members = txn.open_table(MEMBERS).map_err(|e| self.store(e))?;
            members.remove(name).map_err(|e| self.store(e))?;
            infos.remove(name).map_err(|e| self.store(e))?.is_some()
        };
        txn.commit().map_err(|e| self.store(e))?;
        Ok(existed)
    }

    fn parse_info(&self, name: &str, json: &str) -> Result<AudienceInfo, AudienceError> {
        serde_json::from_str(json).map_err(|e| AudienceError::DamagedInfo {
            name: name.to_string(),
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store, and the storage that must stay open while it is used.
    fn open(dir: &std::path::Path) -> (Arc<Storage>, AudienceStore) {
        let options = crate::storage::StorageOptions {
            create_if_missing: true,
            ..Default::default()
        };
        let storage = Arc::new(Storage::open(dir.to_str().unwrap(), &options).unwrap());
        let store = AudienceStore::new(&storage);
        (storage, store)
    }

    #[test]
    fn save_get_replace_list_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (_storage, store) = open(dir.path());
        assert!(store.get("a").unwrap().is_none());
        assert!(store.list().unwrap().is_empty());
        store.save("a", "q1", &Bitmap::from_values([1, 2])).unwrap();
        store
            .save("b", "q2", &Bitmap::from_values([5_000_000_000]))
            .unwrap();
        let replaced = store.save("a", "q3", &Bitmap::from_values([7])).unwrap();
        assert_eq!(replaced.cardinality, 1);
        let (info, members) = store.get("a").unwrap().unwrap();
        assert_eq!(
            (info.definition.as_str(), members.to_vec()),
            ("q3", vec![7])
        );
        let names: Vec<String> = store.list().unwrap().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(store.drop_audience("a").unwrap());
        assert!(!store.drop_audience("a").unwrap());
        assert!(store.get("a").unwrap().is_none());
    }

    #[test]
    fn saved_audiences_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        store_one(dir.path());
        let (_storage, store) = open(dir.path());
        let (info, members) = store.get("kept").unwrap().unwrap();
        assert_eq!((info.cardinality, members.to_vec()), (2, vec![4, 9]));
    }

    fn store_one(dir: &std::path::Path) {
        let (_storage, store) = open(dir);
        store
            .save("kept", "q", &Bitmap::from_values([9, 4]))
            .unwrap();
    }
}

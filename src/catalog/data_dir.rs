//! The default schema: tables registered in the catalog, plus Parquet files that an
//! analyst dropped into the data directory.
//!
//! `<root>/<name>.parquet` and `<root>/<name>/` (a folder of Parquet files, possibly
//! Hive-partitioned as `key=value/` subfolders) answer as table `<name>` without any import
//! step; a folder holding a Delta log (`_delta_log/`) answers as that Delta table.
//!
//! Invariants: registered tables shadow discovered ones; discovery never writes; a file
//! that cannot be read makes only its own table fail, with an error naming the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::SchemaProvider;
use datafusion::datasource::TableProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::context::SessionState;
use url::Url;

use super::managed::ManagedTable;
use crate::storage::STATE_DIR;

/// Where a discoverable table's data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    ParquetFile(PathBuf),
    ParquetDir(PathBuf),
    DeltaDir(PathBuf),
}

/// A discovered table and the files it was opened from (reopened if those change).
type Discovered = (Found, Arc<dyn TableProvider>);

/// The `public` schema of a local data directory.
pub struct DataDirSchema {
    root: Option<PathBuf>,
    /// Folders under the root that are schemas, not tables.
    reserved: Arc<RwLock<Vec<String>>>,
    registered: RwLock<HashMap<String, Arc<dyn TableProvider>>>,
    discovered: RwLock<HashMap<String, Discovered>>,
    /// Only used to infer the schemas of discovered files; shares the engine's runtime.
    state: SessionState,
}

impl std::fmt::Debug for DataDirSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataDirSchema")
            .field("root", &self.root)
            .finish()
    }
}

impl DataDirSchema {
    pub(crate) fn new(
        root: Option<PathBuf>,
        reserved: Arc<RwLock<Vec<String>>>,
        state: SessionState,
    ) -> Self {
        DataDirSchema {
            root,
            reserved,
            registered: RwLock::default(),
            discovered: RwLock::default(),
            state,
        }
    }

    /// Whether `name` is backed by files dropped into the data directory (rather than
    /// registered in the catalog).
    pub(crate) fn discovered_source(&self, name: &str) -> Option<Found> {
        if self
            .registered
            .read()
            .expect(crate::LOCK_POISONED)
            .contains_key(name)
        {
            return None;
        }
        self.find(name)
    }

    fn find(&self, name: &str) -> Option<Found> {
        let root = self.root.as_ref()?;
        if name.starts_with(['.', '_']) || name.contains(['/', '\\']) {
            return None;
        }
        let file = root.join(format!("{name}.parquet"));
        if file.is_file() {
            return Some(Found::ParquetFile(file));
        }
        let dir = root.join(name);
        if !dir.is_dir()
            || self
                .reserved
                .read()
                .expect(crate::LOCK_POISONED)
                .iter()
                .any(|s| s == name)
        {
            return None;
        }
        let log = dir.join("_delta_log");
        if log.is_dir() {
            // A log without commits is a table whose creation never finished: its files
            // belong to no version, so there is no table.
            return has_commit(&log).then_some(Found::DeltaDir(dir));
        }
        contains_parquet(&dir, 3).then_some(Found::ParquetDir(dir))
    }

    fn discoverable_names(&self) -> Vec<String> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(root) else {
            return Vec::new();
        };
        let mut names = Vec::new();
        for entry in entries.flatten() {
            let file_name = entry.file_name().to_string_lossy().into_owned();
            if file_name.starts_with(['.', '_']) || file_name == STATE_DIR {
                continue;
            }
            let name = file_name
                .strip_suffix(".parquet")
                .unwrap_or(&file_name)
                .to_string();
            if self.find(&name).is_some() {
                names.push(name);
            }
        }
        names
    }

    async fn open_found(&self, name: &str, found: &Found) -> DFResult<Arc<dyn TableProvider>> {
        let described = |e: DataFusionError, path: &Path| {
            DataFusionError::Context(
                format!("table '{name}' (from {})", path.display()),
                Box::new(e),
            )
        };
        match found {
            Found::DeltaDir(dir) => {
                let url = Url::from_directory_path(dir).map_err(|()| {
                    DataFusionError::Plan(format!("bad table path {}", dir.display()))
                })?;
                let table = ManagedTable::open(name, &url)
                    .await
                    .map_err(|e| described(DataFusionError::External(Box::new(e)), dir))?;
                Ok(Arc::new(table))
            }
            Found::ParquetFile(path) | Found::ParquetDir(path) => {
                let location = match found {
                    Found::ParquetDir(_) => format!("{}/", path.display()),
                    _ => path.display().to_string(),
                };
                let open = async {
                    let url = ListingTableUrl::parse(&location)?;
                    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                        .with_file_extension(".parquet");
                    let config = ListingTableConfig::new(url)
                        .with_listing_options(options)
                        .infer_partitions_from_path(&self.state)
                        .await?
                        .infer_schema(&self.state)
                        .await?;
                    ListingTable::try_new(config)
                };
                let table = open.await.map_err(|e| described(e, path))?;
                Ok(Arc::new(table))
            }
        }
    }
}

fn has_commit(log: &Path) -> bool {
    std::fs::read_dir(log).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") || name.ends_with(".checkpoint.parquet")
        })
    })
}

fn contains_parquet(dir: &Path, depth: usize) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if depth > 1 && contains_parquet(&path, depth - 1) {
                return true;
            }
        } else if path.extension().is_some_and(|e| e == "parquet") {
            return true;
        }
    }
    false
}

#[async_trait]
impl SchemaProvider for DataDirSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .registered
            .read()
            .expect(crate::LOCK_POISONED)
            .keys()
            .cloned()
            .collect();
        for name in self.discoverable_names() {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names.sort();
        names
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self
            .registered
            .read()
            .expect(crate::LOCK_POISONED)
            .get(name)
        {
            return Ok(Some(table.clone()));
        }
        let Some(found) = self.find(name) else {
            return Ok(None);
        };
        if let Some((cached_from, table)) = self
            .discovered
            .read()
            .expect(crate::LOCK_POISONED)
            .get(name)
            && *cached_from == found
        {
            return Ok(Some(table.clone()));
        }
        let table = self.open_found(name, &found).await?;
        self.discovered
            .write()
            .expect(crate::LOCK_POISONED)
            .insert(name.to_string(), (found, table.clone()));
        Ok(Some(table))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> DFResult<Option<Arc<dyn TableProvider>>> {
        let mut registered = self.registered.write().expect(crate::LOCK_POISONED);
        if registered.contains_key(&name) {
            return Err(DataFusionError::Plan(format!(
                "table '{name}' already exists"
            )));
        }
        Ok(registered.insert(name, table))
    }

    fn deregister_table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        Ok(self
            .registered
            .write()
            .expect(crate::LOCK_POISONED)
            .remove(name))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.registered
            .read()
            .expect(crate::LOCK_POISONED)
            .contains_key(name)
            || self.find(name).is_some()
    }
}

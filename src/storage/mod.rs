//! The one storage layer every capability shares.
//!
//! - **Tables** live under the root location (a local directory or an object-store URL) in
//!   the Delta Lake format: Parquet files plus a transaction log, so a write is visible
//!   all-or-nothing and other engines (DuckDB, Spark, pyarrow) can read them.
//! - **Small state** (the catalog today; reservations, dictionaries and registries later)
//!   lives in one embedded transactional key-value store, [redb], whose commits are durable
//!   (fsync) before they return.
//!
//! Invariants:
//! - one process owns a state store at a time: a second `open` fails with
//!   [`StorageError::InUse`] instead of two writers corrupting each other's view;
//! - with a local root the state store is `<root>/_martdb/state.redb`; with an object-store
//!   root it lives in a local state directory (object stores cannot host a lockable file).

pub mod backup;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::execution::object_store::ObjectStoreUrl;
use object_store::ObjectStore;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use url::Url;

/// Name of the directory (under a local root) that holds martdb's own state.
pub const STATE_DIR: &str = "_martdb";

/// What a table or schema name is percent-encoded in, as one segment of a table's URL:
/// the URL path set, the segment's own `/`, `\` and `%`, and the characters Delta's
/// object-store key (the table path made a host name) cannot hold.
const TABLE_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'\\')
    .add(b'%')
    .add(b'[')
    .add(b']')
    .add(b'^')
    .add(b'|')
    .add(b'@');

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The location string is neither a path nor a URL martdb can open.
    #[error("cannot open location '{location}': {reason}")]
    BadLocation { location: String, reason: String },
    /// The data directory does not exist and was not to be created.
    #[error("data directory '{}' does not exist (create it, or run `martdb demo --data {}`)", .path.display(), .path.display())]
    NotFound { path: PathBuf },
    /// Another process holds the state store.
    #[error("data directory '{}' is in use by another martdb process", .path.display())]
    InUse { path: PathBuf },
    /// Reading or writing the state store failed.
    #[error("state store '{}': {source}", .path.display())]
    State {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    /// A filesystem operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The object store rejected an operation.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
}

impl StorageError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }
}

/// How to open a location.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// Create a missing local data directory (true for `serve` and `demo`; false for
    /// `sql`, where a typo in the path should be an error, not an empty database).
    pub create_if_missing: bool,
    /// Where the state store lives when the root is an object store
    /// (default `./martdb-state`).
    pub state_dir: Option<PathBuf>,
}

/// An opened root location plus its state store.
pub struct Storage {
    root: Url,
    local_root: Option<PathBuf>,
    object_store: Arc<dyn ObjectStore>,
    kv: redb::Database,
    kv_path: PathBuf,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Storage {
    /// Opens `location`: a filesystem path, a `file://` URL or an `s3://bucket/prefix` URL
    /// (credentials from the usual `AWS_*` environment variables).
    pub fn open(location: &str, options: &StorageOptions) -> Result<Self, StorageError> {
        let bad = |reason: String| StorageError::BadLocation {
            location: location.to_string(),
            reason,
        };
        let parsed = if location.contains("://") {
            Some(Url::parse(location).map_err(|e| bad(e.to_string()))?)
        } else {
            None
        };
        match parsed {
            None => Self::open_local(Path::new(location), options),
            Some(url) if url.scheme() == "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|()| bad("not a local file URL".into()))?;
                Self::open_local(&path, options)
            }
            Some(url) if url.scheme() == "s3" => {
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                let state_dir = options
                    .state_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("martdb-state"));
                std::fs::create_dir_all(&state_dir).map_err(|e| {
                    StorageError::io(format!("creating {}", state_dir.display()), e)
                })?;
                let mut root = url;
                if !root.path().ends_with('/') {
                    root.set_path(&format!("{}/", root.path()));
                }
                let (kv, kv_path) = open_kv(&state_dir)?;
                Ok(Storage {
                    root,
                    local_root: None,
                    object_store: Arc::new(store),
                    kv,
                    kv_path,
                })
            }
            Some(url) => Err(bad(format!(
                "unsupported scheme '{}' (use a path, file:// or s3://)",
                url.scheme()
            ))),
        }
    }

    fn open_local(path: &Path, options: &StorageOptions) -> Result<Self, StorageError> {
        if !path.exists() {
            if !options.create_if_missing {
                return Err(StorageError::NotFound {
                    path: path.to_path_buf(),
                });
            }
            std::fs::create_dir_all(path)
                .map_err(|e| StorageError::io(format!("creating {}", path.display()), e))?;
        }
        if !path.is_dir() {
            return Err(StorageError::BadLocation {
                location: path.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        let root_path = path
            .canonicalize()
            .map_err(|e| StorageError::io(format!("resolving {}", path.display()), e))?;
        let state_dir = root_path.join(STATE_DIR);
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| StorageError::io(format!("creating {}", state_dir.display()), e))?;
        let (kv, kv_path) = open_kv(&state_dir)?;
        let root =
            Url::from_directory_path(&root_path).map_err(|()| StorageError::BadLocation {
                location: root_path.display().to_string(),
                reason: "cannot be expressed as a file URL".into(),
            })?;
        Ok(Storage {
            root,
            local_root: Some(root_path),
            object_store: Arc::new(object_store::local::LocalFileSystem::new()),
            kv,
            kv_path,
        })
    }

    /// The root location as a URL ending in `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The root directory when the location is local.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// The object store that serves the root (registered with DataFusion under
    /// [`Self::object_store_url`]).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.object_store.clone()
    }

    /// The scheme + authority part of the root, the key DataFusion resolves stores by.
    pub fn object_store_url(&self) -> ObjectStoreUrl {
        let authority = &self.root[..url::Position::BeforePath];
        ObjectStoreUrl::parse(authority)
            .expect("the scheme and authority of a parsed URL, with no path, parse again")
    }

    /// The location of a table directory below the root: `<root>/<name>/` for the default
    /// schema, `<root>/<schema>/<name>/` otherwise. Each name is one percent-encoded path
    /// segment (a `.` or `..` name, which a URL path cannot hold, is left out); names
    /// that cannot be one directory are for [`Storage::checked_table_url`] to refuse.
    pub fn table_url(&self, schema: Option<&str>, name: &str) -> Url {
        let mut path = self.root.path().to_string();
        if !path.ends_with('/') {
            path.push('/');
        }
        for segment in schema.into_iter().chain([name]) {
            if segment == "." || segment == ".." {
                continue;
            }
            path.extend(utf8_percent_encode(segment, TABLE_SEGMENT));
            path.push('/');
        }
        let mut url = self.root.clone();
        url.set_path(&path);
        url
    }

    /// [`Storage::table_url`] for names from SQL: an error when a name cannot be exactly
    /// one directory below the root, or would land in the state directory.
    pub fn checked_table_url(&self, schema: Option<&str>, name: &str) -> Result<Url, StorageError> {
        for segment in schema.into_iter().chain([name]) {
            if segment.is_empty()
                || segment == "."
                || segment == ".."
                || segment.contains(['/', '\\', '%'])
                || segment.chars().any(char::is_control)
            {
                return Err(StorageError::BadLocation {
                    location: segment.to_string(),
                    reason: "a table or schema name names a directory, so it cannot be empty, \
                             '.' or '..', nor contain '/', '\\', '%' or control characters"
                        .into(),
                });
            }
        }
        // The first directory below the root must not be the state directory: a table
        // there would mix with (and DROP TABLE would delete) martdb's own state.
        if schema.unwrap_or(name) == STATE_DIR {
            return Err(StorageError::BadLocation {
                location: STATE_DIR.to_string(),
                reason: "the name is reserved for martdb's own state".into(),
            });
        }
        Ok(self.table_url(schema, name))
    }

    /// The state store.
    pub fn kv(&self) -> &redb::Database {
        &self.kv
    }

    /// The directory of the state store (`<root>/_martdb`, or the state directory of an
    /// object-store root), for state kept beside it.
    pub fn state_dir(&self) -> &Path {
        self.kv_path
            .parent()
            .expect("kv_path is open_kv's `dir.join(\"state.redb\")`, which has a parent")
    }

    /// Wraps a state-store error with the store's path.
    pub fn kv_error(&self, e: impl Into<redb::Error>) -> StorageError {
        StorageError::State {
            path: self.kv_path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Removes a directory (or object prefix) below the root.
    pub async fn remove_dir(&self, url: &Url) -> Result<(), StorageError> {
        if let Ok(path) = url.to_file_path() {
            return match tokio::fs::remove_dir_all(&path).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(StorageError::io(format!("removing {}", path.display()), e)),
            };
        }
        use futures::TryStreamExt;
        let prefix = object_store::path::Path::from(url.path().trim_start_matches('/'));
        let locations = self
            .object_store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        self.object_store
            .delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }
}

fn open_kv(dir: &Path) -> Result<(redb::Database, PathBuf), StorageError> {
    let path = dir.join("state.redb");
    match redb::Database::create(&path) {
        Ok(db) => Ok((db, path)),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StorageError::InUse {
            path: dir.parent().unwrap_or(dir).to_path_buf(),
        }),
        Err(e) => Err(StorageError::State {
            path,
            source: Box::new(e.into()),
        }),
    }
}

use futures::StreamExt as _;

/// Makes a freshly written file and its directory entry durable (local roots only).
///
/// Delta commits on a local filesystem are a write + rename without fsync; an
/// acknowledged write must survive a power loss, so the engine syncs the commit file and
/// the files it adds before it reports success.
pub fn sync_paths(paths: &[PathBuf]) -> Result<(), StorageError> {
    let mut dirs = std::collections::BTreeSet::new();
    for path in paths {
        let file = std::fs::File::open(path)
            .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
        file.sync_all()
            .map_err(|e| StorageError::io(format!("syncing {}", path.display()), e))?;
        if let Some(parent) = path.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for dir in dirs {
        if let Ok(d) = std::fs::File::open(&dir) {
            d.sync_all()
                .map_err(|e| StorageError::io(format!("syncing {}", dir.display()), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_is_an_error_unless_created() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = Storage::open(missing.to_str().unwrap(), &StorageOptions::default()).unwrap_err();
        assert!(matches!(err, StorageError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("nope"));
        let opts = StorageOptions {
            create_if_missing: true,
            ..Default::default()
        };
        let storage = Storage::open(missing.to_str().unwrap(), &opts).unwrap();
        assert!(storage.root().as_str().ends_with("/nope/"));
        assert_eq!(
            storage.table_url(None, "t").path(),
            format!("{}t/", storage.root().path())
        );
    }

    #[test]
    fn second_open_reports_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = StorageOptions::default();
        let _first = Storage::open(tmp.path().to_str().unwrap(), &opts).unwrap();
        let err = Storage::open(tmp.path().to_str().unwrap(), &opts).unwrap_err();
        assert!(matches!(err, StorageError::InUse { .. }), "{err}");
    }

    #[test]
    fn unknown_scheme_is_rejected() {
        let err = Storage::open("ftp://x/y", &StorageOptions::default()).unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme 'ftp'"),
            "{err}"
        );
    }
}

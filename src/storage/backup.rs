//! Backups of a local data directory while it is in use, and restoring them.
//!
//! A backup is a directory with the same layout as a data directory (open it, or restore
//! it with `martdb restore`), plus `martdb-backup.json` describing it.
//!
//! How it stays consistent while statements run:
//! 1. Holding a write transaction of the state store (so no catalog, dictionary,
//!    coupon, rule or model commit is under way), the state store file is copied and the
//!    transaction logs of every table are listed: that moment is the backup's point in
//!    time.
//! 2. Then, without the lock: the coupon journal (after the state store, so every batch
//!    the copied state has applied is in it; later batches replay on open, as after a
//!    crash), model weights, and each table's data files and the log entries listed in
//!    step 1. Data files are never rewritten in place, so copying them later is safe;
//!    files added after step 1 come along unreferenced and harmless.
//! 3. Every copied file is synced, the description written, and the directory renamed
//!    from `<dest>.partial` to `<dest>`: a backup directory is complete or absent.
//!
//! Invariants: the source is only read; the destination must not exist; a failed backup
//! leaves at most `<dest>.partial`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{STATE_DIR, Storage, StorageError, sync_paths};

/// The description file in a backup.
pub const MANIFEST: &str = "martdb-backup.json";

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BackupSummary {
    /// Seconds since the Unix epoch at the backup's point in time.
    pub taken_at: u64,
    pub files: u64,
    pub bytes: u64,
}

impl std::fmt::Display for BackupSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} files, {} bytes", self.files, self.bytes)
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> StorageError {
    let context = context.into();
    move |e| StorageError::io(context, e)
}

/// Files of `dir` (recursively), as paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StorageError> {
    for entry in std::fs::read_dir(dir).map_err(io(format!("listing {}", dir.display())))? {
        let entry = entry.map_err(io(format!("listing {}", dir.display())))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(io(format!("reading {}", path.display())))?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

fn is_log(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "_delta_log")
}

/// Backs up the data directory of `storage` into `dest`; see the [module docs](self).
pub fn backup(storage: &Storage, dest: &Path) -> Result<BackupSummary, StorageError> {
    let Some(root) = storage.local_root() else {
        return Err(StorageError::BadLocation {
            location: storage.root().to_string(),
            reason: "backups are of local data directories; back up an object store with its own snapshots".into(),
        });
    };
    if dest.exists() {
        return Err(StorageError::io(
            format!("backing up into {}", dest.display()),
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists"),
        ));
    }
    if dest.starts_with(root) {
        return Err(StorageError::io(
            format!("backing up into {}", dest.display()),
            std::io::Error::other("the backup must be outside the data directory"),
        ));
    }
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io(format!("removing {}", partial.display())))?;
    }
    let state = root.join(STATE_DIR);
    let state_file = state.join("state.redb");
    let mut copied: Vec<PathBuf> = Vec::new();
    let mut bytes = 0u64;
    let mut copy = |relative: &Path, copied: &mut Vec<PathBuf>| -> Result<(), StorageError> {
        let to = partial.join(relative);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        bytes += std::fs::copy(root.join(relative), &to)
            .map_err(io(format!("copying {}", relative.display())))?;
        copied.push(to);
        Ok(())
    };

    // 1. The point in time: the state store copied and the table logs listed under its
    // write lock.
    let (taken_at, logs) = {
        let lock = storage
            .kv()
            .begin_write()
            .map_err(|e| StorageError::State {
                path: state_file.clone(),
                source: Box::new(e.into()),
            })?;
        let taken_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        copy(
            Path::new(STATE_DIR).join("state.redb").as_path(),
            &mut copied,
        )?;
        let mut all = Vec::new();
        walk(root, root, &mut all)?;
        let logs: Vec<PathBuf> = all
            .into_iter()
            .filter(|p| is_log(p) && !p.ends_with("_last_checkpoint"))
            .collect();
        lock.abort().map_err(|e| StorageError::State {
            path: state_file.clone(),
            source: Box::new(e.into()),
        })?;
        (taken_at, logs)
    };

    // 2. The rest, without the lock.
    let mut rest = Vec::new();
    walk(root, root, &mut rest)?;
    for relative in rest {
        let in_state = relative.starts_with(STATE_DIR);
        let skip = is_log(&relative)
            || (in_state
                && (relative.ends_with("state.redb")
                    || relative
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("audit.log"))));
        if !skip {
            copy(&relative, &mut copied)?;
        }
    }
    for log in &logs {
        copy(log, &mut copied)?;
    }

    // 3. Durable, described, renamed into place.
    sync_paths(&copied)?;
    let summary = BackupSummary {
        taken_at,
        files: copied.len() as u64,
        bytes,
    };
    let manifest = partial.join(MANIFEST);
    std::fs::write(
        &manifest,
        serde_json::to_vec_pretty(&summary)
            .expect("BackupSummary derives Serialize over integers only: serde_json cannot fail"),
    )
    .map_err(io(format!("writing {}", manifest.display())))?;
    sync_paths(&[manifest])?;
    std::fs::rename(&partial, dest).map_err(io(format!("renaming into {}", dest.display())))?;
    Ok(summary)
}

/// Restores the backup `source` into the data directory `dest`, which must not exist or
/// be empty. The copy is synced before it returns.
pub fn restore(source: &Path, dest: &Path) -> Result<BackupSummary, StorageError> {
    let manifest = source.join(MANIFEST);
    let summary: BackupSummary = std::fs::read(&manifest)
        .map_err(io(format!(
            "{} is not a martdb backup (no {MANIFEST})",
            source.display()
        )))
        .and_then(|bytes| {
            serde_json::from_slice(&bytes).map_err(|e| {
                StorageError::io(
                    format!("reading {}", manifest.display()),
                    std::io::Error::other(e),
                )
            })
        })?;
    if dest.exists()
        && std::fs::read_dir(dest)
            .map_err(io(format!("listing {}", dest.display())))?
            .next()
            .is_some()
    {
        return Err(StorageError::io(
            format!("restoring into {}", dest.display()),
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the directory is not empty; restore into a new one",
            ),
        ));
    }
    let mut files = Vec::new();
    walk(source, source, &mut files)?;
    let mut written = Vec::new();
    for relative in files.iter().filter(|f| f.as_os_str() != MANIFEST) {
        let to = dest.join(relative);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::copy(source.join(relative), &to)
            .map_err(io(format!("copying {}", relative.display())))?;
        written.push(to);
    }
    sync_paths(&written)?;
    Ok(summary)
}

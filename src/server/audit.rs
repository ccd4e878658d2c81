//! The audit log: who ran what, when, from where, with what outcome — one JSON line per
//! statement in an append-only file that rotates by size.
//!
//! ```text
//! {"time":"2026-11-23T15:40:01.123Z","user":"analyst","client":"10.0.0.7:51234","database":"martdb","statement":"SELECT ...","duration_ms":1.8,"rows":3,"outcome":"ok","changes_state":false}
//! ```
//!
//! With `audit = true` every statement is logged; otherwise only those that change
//! durable state (DDL, writes, COPY FROM, and functions such as coupon reservation, model
//! deployment or rule changes): those are always logged.
//!
//! Invariants:
//! - the file is only ever appended to; rotation renames `audit.log` to `audit.log.1`
//!   (and `.1` to `.2`, ..., dropping the oldest beyond `keep`) and starts a new file, so
//!   no line is lost or rewritten;
//! - each line is written whole with one `write` on a file opened for appending, so
//!   lines of concurrent statements never interleave, and once written a line survives a
//!   crash of the process. Lines are not fsynced one by one (a coupon reservation would
//!   pay a disk flush for its audit line): a power loss can lose the last ones.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

/// Where and how to keep the audit log.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The current file; rotated copies are `<path>.1`, `<path>.2`, ...
    pub path: PathBuf,
    /// A file is rotated once it passes this many bytes. Default 100 MiB.
    pub rotate_bytes: u64,
    /// Rotated files kept. Default 10.
    pub keep: usize,
}

impl AuditOptions {
    /// The defaults for a log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> AuditOptions {
        AuditOptions {
            path: path.into(),
            rotate_bytes: 100 << 20,
            keep: 10,
        }
    }
}

/// Errors of opening or writing the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One audited statement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// When it ended (RFC 3339, UTC).
    pub time: String,
    pub user: String,
    /// The client's address.
    pub client: String,
    pub database: String,
    pub statement: String,
    pub duration_ms: f64,
    pub rows: u64,
    /// `ok`, or the SQLSTATE of the error.
    pub outcome: String,
    pub changes_state: bool,
}

/// The current time as the log writes it (RFC 3339, milliseconds, UTC).
pub(crate) fn now() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An open audit log; see the [module docs](self).
#[derive(Debug)]
pub struct AuditLog {
    options: AuditOptions,
    /// The current file and its size.
    current: Mutex<(File, u64)>,
}

impl AuditLog {
    /// Opens (creating if needed, with its directory) the log for appending.
    pub fn open(options: AuditOptions) -> Result<AuditLog, AuditError> {
        let fail = |source| AuditError::Io {
            path: options.path.clone(),
            source,
        };
        if let Some(dir) = options.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let file = append(&options.path).map_err(fail)?;
        let size = file.metadata().map_err(fail)?.len();
        Ok(AuditLog {
            options,
            current: Mutex::new((file, size)),
        })
    }

    /// The current file.
    pub fn path(&self) -> &Path {
        &self.options.path
    }

    /// Appends one line (rotating first when the file is full).
    pub fn write(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let mut line = serde_json::to_vec(record).expect("AuditRecord derives Serialize over strings, numbers and a bool only: serde_json cannot fail");
        line.push(b'\n');
        let fail = |source| AuditError::Io {
            path: self.options.path.clone(),
            source,
        };
        let mut current = self.current.lock().expect(crate::LOCK_POISONED);
        if current.1 > 0 && current.1 + line.len() as u64 > self.options.rotate_bytes {
            self.rotate().map_err(fail)?;
            *current = (append(&self.options.path).map_err(fail)?, 0);
        }
        current.0.write_all(&line).map_err(fail)?;
        current.1 += line.len() as u64;
        Ok(())
    }

    /// `path.{keep-1}` → `path.{keep}` (replacing it), ..., `path` → `path.1`.
    fn rotate(&self) -> std::io::Result<()> {
        let numbered = |n: usize| {
            let mut name = self.options.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if self.options.keep == 0 {
            return std::fs::remove_file(&self.options.path);
        }
        for n in (1..self.options.keep).rev() {
            match std::fs::rename(numbered(n), numbered(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.options.path, numbered(1))
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(statement: &str) -> AuditRecord {
        AuditRecord {
            time: now(),
            client: "127.0.0.1:5000".into(),
            statement: statement.into(),
            outcome: "ok".into(),
            ..Default::default()
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn appends_and_reopens_without_losing_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/audit.log");
        let log = AuditLog::open(AuditOptions::new(&path)).unwrap();
        log.write(&record("SELECT 1")).unwrap();
        drop(log);
        let log = AuditLog::open(AuditOptions::new(&path)).unwrap();
        log.write(&record("SELECT 2")).unwrap();
        let lines = lines(&path);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["statement"], "SELECT 1");
        assert_eq!(lines[1]["statement"], "SELECT 2");
        assert_eq!(lines[1]["client"], "127.0.0.1:5000");
        assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let options = AuditOptions {
            rotate_bytes: 400,
            keep: 2,
            ..AuditOptions::new(&path)
        };
        let log = AuditLog::open(options).unwrap();
        for i in 0..20 {
            log.write(&record(&format!("SELECT {i}"))).unwrap();
        }
        let rotated = |n| {
            let mut name = path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        assert!(!rotated(3).exists());
        let mut all: Vec<_> = lines(&rotated(2));
        all.extend(lines(&rotated(1)));
        all.extend(lines(&path));
        for file in [rotated(2), rotated(1), path.clone()] {
            assert!(std::fs::metadata(&file).unwrap().len() <= 400, "{file:?}");
        }
        // The newest lines are kept, in order, with none missing between them.
        let numbers: Vec<i64> = all
            .iter()
            .map(|l| {
                l["statement"].as_str().unwrap()[7..]
                    .parse::<i64>()
                    .unwrap()
            })
            .collect();
        assert_eq!(*numbers.last().unwrap(), 19);
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(numbers.len() >= 4, "{numbers:?}");
    }
}

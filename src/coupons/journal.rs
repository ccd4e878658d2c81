//! The coupon journal: a write-ahead log that makes a batch durable with one small append
//! and one `fdatasync`.
//!
//! A redb commit syncs every B-tree page its batch touched; request keys and users are
//! random, so a batch of 32 reservations dirties about a hundred pages spread over the
//! file, and syncing them costs several times what the disk needs for one small write.
//! The ledger therefore commits its batches to redb without syncing
//! ([`redb::Durability::None`]) and makes each one durable here: what it needs to decide
//! the batch again, appended and synced before any caller hears its outcome. Every few
//! megabytes of journal the ledger makes redb durable (a checkpoint) and the journal
//! starts over.
//!
//! Invariants:
//! - a record is `[payload length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, the
//!   payload JSON ([`Record`]): the batch's sequence number, the clock it was decided at,
//!   its commands and the audience answers it read, in order;
//! - the records of the file form a chain of consecutive sequence numbers from offset 0;
//!   reading stops at the first record that is short, fails its checksum or breaks the
//!   chain. What follows was never acknowledged (a torn append) or belongs to the file's
//!   previous round (see below);
//! - the ledger stores the sequence number of the last batch it applied in the same redb
//!   transaction as the batch, so after a crash (redb back at its last durable commit)
//!   the records after that number are exactly the batches to decide again;
//! - after a checkpoint the file is written again from offset 0 without being truncated:
//!   older records further on have lower sequence numbers, which the chain rule rejects;
//! - space is written with zeros before records use it, so an append overwrites blocks
//!   the file already owns and the sync has no file size or extent to record (a sync of
//!   an append that grows a file costs about twice as much on ext4 and xfs).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ledger::Work;

/// Bytes of zeros added to the file at a time.
const GROW: u64 = 1 << 20;
/// Journal size after which the ledger checkpoints: bounds the replay after a crash (a
/// few tens of thousands of batches) and the redb pages held by unsynced commits.
pub(crate) const CHECKPOINT_BYTES: u64 = 8 << 20;
/// Bytes before a record's payload.
const HEADER: usize = 8;

/// One batch as journaled.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub seq: u64,
    /// The clock the batch was decided at (µs since the epoch).
    pub now: i64,
    pub works: Vec<Work>,
    /// The answers of the audience membership checks, in the order the batch asked them.
    pub members: Vec<bool>,
}

/// [`Record`] borrowed, for writing.
#[derive(Serialize)]
struct RecordRef<'a> {
    seq: u64,
    now: i64,
    works: &'a [Work],
    members: &'a [bool],
}

/// The journal file, open for appending.
pub(crate) struct Journal {
    file: File,
    path: PathBuf,
    /// Where the next record goes.
    end: u64,
    /// Bytes of the file (all written, with records or zeros).
    len: u64,
    buffer: Vec<u8>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("end", &self.end)
            .finish()
    }
}

impl Journal {
    /// Opens (or creates) the journal at `path` and reads its chain of records. New
    /// records go after them until [`Journal::restart`].
    pub(crate) fn open(path: &Path) -> std::io::Result<(Journal, Vec<Record>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, end) = read_chain(&bytes);
        let mut journal = Journal {
            file,
            path: path.to_path_buf(),
            end: end as u64,
            len: bytes.len() as u64,
            buffer: Vec::new(),
        };
        if journal.len < GROW {
            journal.grow(GROW - journal.len)?;
            // The directory entry of a new file must be durable too.
            if let Some(dir) = path.parent() {
                File::open(dir)?.sync_all()?;
            }
        }
        Ok((journal, records))
    }

    /// Appends a batch and syncs it: once this returns, the batch survives a crash.
    pub(crate) fn append(
        &mut self,
        seq: u64,
        now: i64,
        works: &[Work],
        members: &[bool],
    ) -> std::io::Result<()> {
        self.buffer.clear();
        self.buffer.extend_from_slice(&[0; HEADER]);
        let record = RecordRef {
            seq,
            now,
            works,
            members,
        };
        serde_json::to_writer(&mut self.buffer, &record).map_err(std::io::Error::other)?;
        let payload = self.buffer.len() - HEADER;
        let length = u32::try_from(payload).map_err(|_| {
            std::io::Error::other(format!(
                "a batch of {payload} bytes is too large to journal"
            ))
        })?;
        let crc = crc32fast::hash(&self.buffer[HEADER..]);
        self.buffer[..4].copy_from_slice(&length.to_le_bytes());
        self.buffer[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let needed = self.end + self.buffer.len() as u64;
        if needed > self.len {
            self.grow((needed - self.len).max(GROW))?;
        }
        self.file.write_all_at(&self.buffer, self.end)?;
        self.file.sync_data()?;
        self.end = needed;
        Ok(())
    }

    /// Starts the journal over from offset 0, once redb holds every record durably.
    pub(crate) fn restart(&mut self) {
        self.end = 0;
    }

    /// Whether the records since the last restart take [`CHECKPOINT_BYTES`] or more.
    pub(crate) fn wants_checkpoint(&self) -> bool {
        self.end >= CHECKPOINT_BYTES
    }

    /// Adds `bytes` of zeros at the end of the file, durably.
    fn grow(&mut self, bytes: u64) -> std::io::Result<()> {
        let zeros = vec![0; bytes as usize];
        self.file.write_all_at(&zeros, self.len)?;
        self.file.sync_all()?;
        self.len += bytes;
        Ok(())
    }
}

/// The chain of records at the start of `bytes`, and where it ends.
fn read_chain(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records: Vec<Record> = Vec::new();
    let mut at = 0;
    while let Some(&[l0, l1, l2, l3, c0, c1, c2, c3]) =
        bytes.get(at..).and_then(<[u8]>::first_chunk::<HEADER>)
    {
        let length = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        if length == 0 {
            break; // zeros: space not used yet
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + length) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<Record>(payload) else {
            break;
        };
        // A damaged file may hold any number: u64::MAX has no successor.
        if records
            .last()
            .is_some_and(|last| last.seq.checked_add(1) != Some(record.seq))
        {
            break;
        }
        records.push(record);
        at += HEADER + length;
    }
    (records, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupons::ReserveRequest;

    fn reserve(key: &str) -> Vec<Work> {
        vec![Work::Reserve(vec![ReserveRequest {
            pool: "p".into(),
            user_id: "u".into(),
            request_key: key.into(),
        }])]
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn records_come_back_in_order_with_their_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, records) = Journal::open(&path).unwrap();
        assert!(records.is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), GROW);
        journal.append(1, 10, &reserve("a"), &[]).unwrap();
        journal
            .append(2, 20, &reserve("b"), &[true, false])
            .unwrap();
        drop(journal);
        let (_, records) = Journal::open(&path).unwrap();
        assert_eq!(seqs(&records), [1, 2]);
        assert_eq!(records[1].now, 20);
        assert_eq!(records[1].members, [true, false]);
        match &records[1].works[..] {
            [Work::Reserve(requests)] => assert_eq!(requests[0].request_key, "b"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = Journal::open(&path).unwrap();
        for seq in 1..=3 {
            journal.append(seq, 0, &reserve("k"), &[]).unwrap();
        }
        let end = journal.end as usize;
        drop(journal);
        let bytes = std::fs::read(&path).unwrap();
        // Torn: the last record cut short.
        let mut torn = bytes.clone();
        torn[end - 3..end].fill(0);
        std::fs::write(&path, &torn).unwrap();
        assert_eq!(seqs(&Journal::open(&path).unwrap().1), [1, 2]);
        // Damaged in the middle: the chain ends before it.
        let mut damaged = bytes.clone();
        damaged[HEADER + 3] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        assert!(Journal::open(&path).unwrap().1.is_empty());
    }

    #[test]
    fn a_restarted_journal_does_not_read_its_previous_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = Journal::open(&path).unwrap();
        for seq in 1..=5 {
            journal
                .append(seq, 0, &reserve("a-long-key-for-a-longer-record"), &[])
                .unwrap();
        }
        journal.restart();
        // Shorter records: the next one starts inside the old round's records.
        journal.append(6, 0, &reserve("x"), &[]).unwrap();
        journal.append(7, 0, &reserve("y"), &[]).unwrap();
        drop(journal);
        let (mut journal, records) = Journal::open(&path).unwrap();
        assert_eq!(seqs(&records), [6, 7]);
        // Appending goes on after the chain.
        journal.append(8, 0, &reserve("z"), &[]).unwrap();
        drop(journal);
        assert_eq!(seqs(&Journal::open(&path).unwrap().1), [6, 7, 8]);
    }

    #[test]
    fn the_file_grows_for_a_large_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = Journal::open(&path).unwrap();
        let requests: Vec<ReserveRequest> = (0..30_000)
            .map(|i| ReserveRequest {
                pool: "p".into(),
                user_id: i.to_string(),
                request_key: format!("key-{i}"),
            })
            .collect();
        journal
            .append(1, 0, &[Work::Reserve(requests)], &[])
            .unwrap();
        assert!(journal.end > GROW);
        assert!(std::fs::metadata(&path).unwrap().len() >= journal.end);
        drop(journal);
        let (_, records) = Journal::open(&path).unwrap();
        match &records[0].works[..] {
            [Work::Reserve(requests)] => assert_eq!(requests.len(), 30_000),
            other => panic!("{other:?}"),
        }
    }

    /// Guards the chain rule against a record numbered u64::MAX, as a damaged file may
    /// hold (`last.seq + 1` panicked in debug builds): nothing follows it in a chain.
    #[test]
    fn a_record_numbered_u64_max_ends_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(u64::MAX - 1, 0, &reserve("a"), &[]).unwrap();
        journal.append(u64::MAX, 0, &reserve("b"), &[]).unwrap();
        // What `u64::MAX + 1` wraps to in a release build.
        journal.append(0, 0, &reserve("c"), &[]).unwrap();
        drop(journal);
        let (mut journal, records) = Journal::open(&path).unwrap();
        assert_eq!(seqs(&records), [u64::MAX - 1, u64::MAX]);
        // The journal goes on after a restart.
        journal.restart();
        journal.append(1, 0, &reserve("d"), &[]).unwrap();
        journal.append(2, 0, &reserve("e"), &[]).unwrap();
        drop(journal);
        assert_eq!(seqs(&Journal::open(&path).unwrap().1), [1, 2]);
    }
}

//! The committed coupon state in redb, and the decisions the committer makes on it.
//!
//! Tables (all in the engine's state store):
//! - `coupon_pools`: pool → [`PoolInfo`] as JSON, counters included;
//! - `coupon_requests`: request key → [`Reservation`] as JSON (refusals too: a key keeps
//!   its first outcome);
//! - `coupon_holds`: (pool, user) → coupons the user holds (reserved or redeemed);
//! - `coupon_expiries`: (expiry, request key) for reservations still held, so expiry
//!   finds what is due without a scan;
//! - `coupon_journal`: the sequence number of the last batch applied, written with the
//!   batch (see `journal.rs`).
//!
//! A batch is decided from its commands, the clock it runs at and the audience answers it
//! reads, nothing else; so the journal's record of those three decides it again, the same
//! way, after a crash.
//!
//! The [`Ledger`] is owned by the committer thread alone: its pool map is the committed
//! state, replaced by the batch's copy only once the batch has committed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use redb::{ReadableDatabase, ReadableTable, Table, TableDefinition};
use serde::{Deserialize, Serialize};

use super::journal::{Journal, Record};
use super::{
    CouponError, Outcome, PoolSettings, PoolStatus, ReserveRequest, SettleKind, Settlement,
};
use crate::bitmap::Bitmap;
use crate::bitmap::audiences::AudienceStore;
use crate::storage::Storage;

const POOLS: TableDefinition<&str, &str> = TableDefinition::new("coupon_pools");
const REQUESTS: TableDefinition<&str, &str> = TableDefinition::new("coupon_requests");
const HOLDS: TableDefinition<(&str, &str), u64> = TableDefinition::new("coupon_holds");
const EXPIRIES: TableDefinition<(i64, &str), ()> = TableDefinition::new("coupon_expiries");
const JOURNAL_SEQ: TableDefinition<(), u64> = TableDefinition::new("coupon_journal");

/// Expired reservations processed per batch at most, so that a burst of expiries does
/// not delay the callers of one batch for long.
const EXPIRIES_PER_BATCH: usize = 10_000;
const DEFAULT_HOLD_SECONDS: f64 = 900.0;

/// A pool: its settings and its counters, as committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolInfo {
    pub name: String,
    pub status: PoolStatus,
    pub stock: u64,
    pub per_user_limit: u64,
    pub face_value: u64,
    pub budget: Option<u64>,
    pub valid_from_micros: Option<i64>,
    pub valid_until_micros: Option<i64>,
    pub audience: Option<String>,
    pub hold_micros: i64,
    pub created_micros: i64,
    pub updated_micros: i64,
    /// Reservations holding a coupon now.
    pub reserved: u64,
    pub redeemed: u64,
    pub released: u64,
    pub expired: u64,
    /// Reserve calls answered with something other than `reserved`.
    pub refused: u64,
    /// Face value of the coupons reserved or redeemed.
    pub budget_used: u64,
}

impl PoolInfo {
    /// Coupons that can still be reserved.
    pub fn remaining(&self) -> u64 {
        self.stock.saturating_sub(self.reserved + self.redeemed)
    }

    fn open_at(&self, now: i64) -> bool {
        self.status == PoolStatus::Active
            && self.valid_from_micros.is_none_or(|from| now >= from)
            && self.valid_until_micros.is_none_or(|until| now < until)
    }
}

/// Where a reserve call's coupon is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationStatus {
    Reserved,
    Redeemed,
    Released,
    Expired,
    /// The call did not reserve; its outcome says why.
    Refused,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReservationStatus::Reserved => "reserved",
            ReservationStatus::Redeemed => "redeemed",
            ReservationStatus::Released => "released",
            ReservationStatus::Expired => "expired",
            ReservationStatus::Refused => "refused",
        }
    }
}

/// One reserve call, as recorded under its request key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub request_key: String,
    pub pool: String,
    pub user_id: String,
    /// The call's (first and only) outcome.
    pub outcome: Outcome,
    pub status: ReservationStatus,
    pub face_value: u64,
    pub created_micros: i64,
    /// When a reservation stops holding its coupon unless redeemed.
    pub expires_micros: Option<i64>,
    /// When it was redeemed, released or expired.
    pub settled_micros: Option<i64>,
}

/// A pool's counters against a recount of its reservations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub pool: String,
    pub stock: u64,
    /// (counter, recount) pairs.
    pub reserved: (u64, u64),
    pub redeemed: (u64, u64),
    pub released: (u64, u64),
    pub expired: (u64, u64),
    pub refused: (u64, u64),
    pub budget_used: (u64, u64),
    /// Holds per user summed, against the reserved + redeemed recount.
    pub holds: (u64, u64),
}

impl Reconciliation {
    /// The names of [`pairs`](Self::pairs), in order.
    pub const COUNTERS: [&'static str; 7] = [
        "reserved",
        "redeemed",
        "released",
        "expired",
        "refused",
        "budget_used",
        "holds",
    ];

    /// (counter, recount) of each of [`COUNTERS`](Self::COUNTERS).
    pub fn pairs(&self) -> [(u64, u64); 7] {
        [
            self.reserved,
            self.redeemed,
            self.released,
            self.expired,
            self.refused,
            self.budget_used,
            self.holds,
        ]
    }

    /// Counters equal recounts and nothing is oversold.
    pub fn balanced(&self) -> bool {
        self.pairs().iter().all(|(a, b)| a == b) && self.reserved.1 + self.redeemed.1 <= self.stock
    }
}

/// One command of a batch.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Work {
    Reserve(Vec<ReserveRequest>),
    Settle(SettleKind, Vec<ReserveRequest>),
    CreatePool {
        pool: String,
        stock: u64,
        settings: PoolSettings,
    },
    AlterPool {
        pool: String,
        settings: PoolSettings,
    },
}

/// What a command answers once its batch has committed.
pub(crate) enum Done {
    Outcomes(Vec<Outcome>),
    Settlements(Vec<Settlement>),
    Pool(PoolInfo),
}

pub(crate) struct Ledger {
    storage: Weak<Storage>,
    audiences: AudienceStore,
    pools: HashMap<String, PoolInfo>,
    /// Audience members by name, with the refresh time they were read at.
    members: HashMap<String, (i64, Arc<Bitmap>)>,
    /// The earliest expiry still held, as of the last commit.
    next_expiry: Option<i64>,
    journal: Journal,
    /// The sequence number of the last batch applied.
    seq: u64,
    /// Audience answers of the batch being decided: recorded for the journal, or (while
    /// replaying it) the recorded ones, taken in order.
    members_asked: Vec<bool>,
    replaying: Option<std::vec::IntoIter<bool>>,
    /// Set when a batch committed to redb could be made durable neither in the journal
    /// nor by a redb sync: deciding more would build on a state a crash may take back.
    stopped: Option<String>,
}

/// The tables one batch writes.
struct Tables<'t> {
    requests: Table<'t, &'static str, &'static str>,
    holds: Table<'t, (&'static str, &'static str), u64>,
    expiries: Table<'t, (i64, &'static str), ()>,
}

fn store_err(storage: &Storage, e: impl Into<redb::Error>) -> CouponError {
    CouponError::Store(storage.kv_error(e))
}

/// Errors after which the transaction cannot be trusted: the whole batch fails.
fn fatal(e: &CouponError) -> bool {
    matches!(
        e,
        CouponError::Store(_) | CouponError::Damaged { .. } | CouponError::Closed
    )
}

impl Ledger {
    pub(crate) fn open(
        storage: &Arc<Storage>,
        audiences: AudienceStore,
    ) -> Result<Ledger, CouponError> {
        let pools = read_pools(storage)?
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect();
        let path = storage.state_dir().join("coupons.journal");
        let (journal, records) = Journal::open(&path).map_err(|e| journal_err(&path, e))?;
        let mut ledger = Ledger {
            storage: Arc::downgrade(storage),
            audiences,
            pools,
            members: HashMap::new(),
            next_expiry: None,
            journal,
            seq: read_seq(storage)?,
            members_asked: Vec::new(),
            replaying: None,
            stopped: None,
        };
        let replayed = ledger.replay(storage, records)?;
        if replayed > 0 {
            tracing::info!(batches = replayed, "coupon journal replayed");
        }
        ledger.checkpoint(storage)?;
        // Create the tables, and expire what fell due while the database was closed.
        ledger.run(&[])?;
        Ok(ledger)
    }

    /// Decides again the journaled batches redb lost in a crash, with their clocks and
    /// audience answers; returns how many.
    fn replay(&mut self, storage: &Storage, records: Vec<Record>) -> Result<usize, CouponError> {
        let mut replayed = 0;
        for record in records {
            if record.seq <= self.seq {
                continue; // redb holds it already
            }
            if record.seq != self.seq + 1 {
                return Err(CouponError::Damaged {
                    key: "coupons.journal".into(),
                    message: format!(
                        "the journal goes on at batch {} but the state store ends at batch {}",
                        record.seq, self.seq
                    ),
                });
            }
            self.replaying = Some(record.members.into_iter());
            let result = self.run_on(storage, &record.works, record.now);
            self.replaying = None;
            result?;
            replayed += 1;
        }
        Ok(replayed)
    }

    /// Makes redb durable up to the last batch and starts the journal over.
    fn checkpoint(&mut self, storage: &Storage) -> Result<(), CouponError> {
        let txn = storage
            .kv()
            .begin_write()
            .map_err(|e| store_err(storage, e))?;
        write_seq(storage, &txn, self.seq)?;
        txn.commit().map_err(|e| store_err(storage, e))?;
        self.journal.restart();
        Ok(())
    }

    pub(crate) fn next_expiry(&self) -> Option<i64> {
        self.next_expiry
    }

    /// Decides one batch and makes it durable. The outer error fails every command
    /// (nothing was committed); an inner error fails one command, which then wrote
    /// nothing.
    pub(crate) fn run(
        &mut self,
        works: &[Work],
    ) -> Result<Vec<Result<Done, CouponError>>, CouponError> {
        if let Some(why) = &self.stopped {
            return Err(CouponError::BatchFailed(why.clone()));
        }
        let storage = self.storage.upgrade().ok_or(CouponError::Closed)?;
        let now = super::now_micros();
        self.members_asked.clear();
        let answers = match self.run_on(&storage, works, now) {
            Ok(answers) => answers,
            Err(e) => {
                // Whatever the failed batch decided is gone with its transaction.
                self.members.clear();
                return Err(e);
            }
        };
        let journaled = self
            .journal
            .append(self.seq, now, works, &self.members_asked);
        if let Err(e) = journaled {
            tracing::warn!(error = %e, "coupon journal append failed; syncing the state store");
            if let Err(sync) = self.checkpoint(&storage) {
                let why = format!(
                    "coupon state could not be made durable (journal: {e}; state store: \
                     {sync}); restart martdb to recover from the journal"
                );
                tracing::error!("{why}");
                self.stopped = Some(why);
                return Err(sync);
            }
        } else if self.journal.wants_checkpoint()
            && let Err(e) = self.checkpoint(&storage)
        {
            // The batch is durable in the journal, which goes on growing until one works.
            tracing::warn!(error = %e, "coupon checkpoint failed");
        }
        Ok(answers)
    }

    /// Makes redb durable (at a clean shutdown), so that the next open replays nothing.
    pub(crate) fn close(&mut self) {
        if self.stopped.is_some() {
            return;
        }
        if let Some(storage) = self.storage.upgrade()
            && let Err(e) = self.checkpoint(&storage)
        {
            tracing::warn!(error = %e, "coupon checkpoint at shutdown failed; the journal has every batch");
        }
    }

    /// Decides `works` at `now` and commits them to redb without a sync, with the next
    /// sequence number.
    fn run_on(
        &mut self,
        storage: &Storage,
        works: &[Work],
        now: i64,
    ) -> Result<Vec<Result<Done, CouponError>>, CouponError> {
        let mut txn = storage
            .kv()
            .begin_write()
            .map_err(|e| store_err(storage, e))?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| CouponError::BatchFailed(e.to_string()))?;
        let mut batch = Batch {
            storage,
            now,
            pools: self.pools.clone(),
            touched: HashSet::new(),
        };
        let mut answers = Vec::with_capacity(works.len());
        let next_expiry;
        {
            let mut tables = Tables {
                requests: txn
                    .open_table(REQUESTS)
                    .map_err(|e| store_err(storage, e))?,
                holds: txn.open_table(HOLDS).map_err(|e| store_err(storage, e))?,
                expiries: txn
                    .open_table(EXPIRIES)
                    .map_err(|e| store_err(storage, e))?,
            };
            batch.expire_due(&mut tables)?;
            for work in works {
                let answer = match work {
                    Work::Reserve(requests) => self
                        .reserve(&mut batch, &mut tables, requests)
                        .map(Done::Outcomes),
                    Work::Settle(kind, requests) => batch
                        .settle(&mut tables, *kind, requests)
                        .map(Done::Settlements),
                    Work::CreatePool {
                        pool,
                        stock,
                        settings,
                    } => batch.create_pool(pool, *stock, settings).map(Done::Pool),
                    Work::AlterPool { pool, settings } => {
                        batch.alter_pool(pool, settings).map(Done::Pool)
                    }
                };
                match answer {
                    Err(e) if fatal(&e) => return Err(e),
                    answer => answers.push(answer),
                }
            }
            next_expiry = tables
                .expiries
                .first()
                .map_err(|e| store_err(storage, e))?
                .map(|(k, _)| k.value().0);
            let mut pools = txn.open_table(POOLS).map_err(|e| store_err(storage, e))?;
            for name in &batch.touched {
                let info = &batch.pools[name];
                let json = serde_json::to_string(info).expect(
                    "PoolInfo derives Serialize over strings, integers and enums only: serde_json \
                     cannot fail",
                );
                pools
                    .insert(name.as_str(), json.as_str())
                    .map_err(|e| store_err(storage, e))?;
            }
        }
        // The number comes from the state store: a damaged one may have no successor.
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| CouponError::Damaged {
                key: "journal sequence".into(),
                message: format!("batch number {} has no successor", self.seq),
            })?;
        write_seq(storage, &txn, seq)?;
        txn.commit().map_err(|e| store_err(storage, e))?;
        self.seq = seq;
        self.pools = batch.pools;
        self.next_expiry = next_expiry;
        Ok(answers)
    }

    fn reserve(
        &mut self,
        batch: &mut Batch,
        tables: &mut Tables,
        requests: &[ReserveRequest],
    ) -> Result<Vec<Outcome>, CouponError> {
        // Validate all first, so that a failing command writes nothing.
        let mut in_command: HashMap<&str, &ReserveRequest> = HashMap::new();
        for request in requests {
            if !batch.pools.contains_key(&request.pool) {
                return Err(CouponError::UnknownPool(request.pool.clone()));
            }
            if let Some(first) = in_command.insert(&request.request_key, request)
                && (first.pool != request.pool || first.user_id != request.user_id)
            {
                return Err(key_reused(&first.request_key, &first.pool, &first.user_id));
            }
            if let Some(first) = batch.load(tables, &request.request_key)? {
                same_request(&first, request)?;
            }
        }
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            if let Some(first) = batch.load(tables, &request.request_key)? {
                outcomes.push(Outcome::Duplicate(Box::new(first.outcome)));
                continue;
            }
            let outcome = self.decide(batch, tables, request)?;
            let now = batch.now;
            let pool = batch
                .pool_mut(&request.pool)
                .ok_or_else(|| CouponError::UnknownPool(request.pool.clone()))?;
            let mut record = Reservation {
                request_key: request.request_key.clone(),
                pool: request.pool.clone(),
                user_id: request.user_id.clone(),
                outcome: outcome.clone(),
                status: ReservationStatus::Refused,
                face_value: pool.face_value,
                created_micros: now,
                expires_micros: None,
                settled_micros: None,
            };
            if outcome == Outcome::Reserved {
                let expires = now.saturating_add(pool.hold_micros);
                pool.reserved += 1;
                pool.budget_used += pool.face_value;
                record.status = ReservationStatus::Reserved;
                record.expires_micros = Some(expires);
                batch.add_hold(tables, &request.pool, &request.user_id, 1)?;
                tables
                    .expiries
                    .insert((expires, request.request_key.as_str()), ())
                    .map_err(|e| store_err(batch.storage, e))?;
            } else {
                pool.refused += 1;
            }
            batch.save(tables, &record)?;
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    fn decide(
        &mut self,
        batch: &Batch,
        tables: &Tables,
        request: &ReserveRequest,
    ) -> Result<Outcome, CouponError> {
        let pool = &batch.pools[&request.pool];
        if !pool.open_at(batch.now) {
            return Ok(Outcome::PoolInactive);
        }
        if let Some(audience) = &pool.audience
            && !self.is_member(audience, &request.user_id)?
        {
            return Ok(Outcome::NotEligible);
        }
        if pool.reserved + pool.redeemed >= pool.stock {
            return Ok(Outcome::SoldOut);
        }
        let held = tables
            .holds
            .get((request.pool.as_str(), request.user_id.as_str()))
            .map_err(|e| store_err(batch.storage, e))?
            .map_or(0, |v| v.value());
        if held >= pool.per_user_limit {
            return Ok(Outcome::UserLimit);
        }
        if let Some(budget) = pool.budget
            && pool.budget_used + pool.face_value > budget
        {
            return Ok(Outcome::BudgetExhausted);
        }
        Ok(Outcome::Reserved)
    }

    /// Whether `user_id` (a dense id) is in the saved audience; an audience that does not
    /// exist (or was dropped) has no members.
    fn is_member(&mut self, audience: &str, user_id: &str) -> Result<bool, CouponError> {
        if let Some(recorded) = &mut self.replaying {
            return recorded.next().ok_or_else(|| CouponError::Damaged {
                key: "coupons.journal".into(),
                message: "a batch asks more audience questions than its record answers".into(),
            });
        }
        let member = self.read_member(audience, user_id)?;
        self.members_asked.push(member);
        Ok(member)
    }

    fn read_member(&mut self, audience: &str, user_id: &str) -> Result<bool, CouponError> {
        let Ok(id) = user_id.parse::<u64>() else {
            return Ok(false);
        };
        let info = self.audiences.info(audience).map_err(audience_err)?;
        let Some(info) = info else {
            self.members.remove(audience);
            return Ok(false);
        };
        let fresh =
            matches!(self.members.get(audience), Some((at, _)) if *at == info.refreshed_at_micros);
        if !fresh {
            let Some((info, members)) = self.audiences.get(audience).map_err(audience_err)? else {
                return Ok(false);
            };
            self.members.insert(
                audience.to_string(),
                (info.refreshed_at_micros, Arc::new(members)),
            );
        }
        Ok(self.members[audience].1.contains(id))
    }
}

fn journal_err(path: &std::path::Path, e: std::io::Error) -> CouponError {
    CouponError::Store(crate::storage::StorageError::io(
        format!("coupon journal {}", path.display()),
        e,
    ))
}

fn write_seq(storage: &Storage, txn: &redb::WriteTransaction, seq: u64) -> Result<(), CouponError> {
    let mut table = txn
        .open_table(JOURNAL_SEQ)
        .map_err(|e| store_err(storage, e))?;
    table.insert((), seq).map_err(|e| store_err(storage, e))?;
    Ok(())
}

/// The sequence number of the last batch redb holds (0 before the first).
fn read_seq(storage: &Storage) -> Result<u64, CouponError> {
    let txn = storage
        .kv()
        .begin_read()
        .map_err(|e| store_err(storage, e))?;
    match txn.open_table(JOURNAL_SEQ) {
        Ok(table) => Ok(table
            .get(())
            .map_err(|e| store_err(storage, e))?
            .map_or(0, |v| v.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
        Err(e) => Err(store_err(storage, e)),
    }
}

fn audience_err(e: crate::bitmap::audiences::AudienceError) -> CouponError {
    use crate::bitmap::audiences::AudienceError;
    match e {
        AudienceError::Store(e) => CouponError::Store(e),
        AudienceError::Closed => CouponError::Closed,
        other => CouponError::Damaged {
            key: "audience".into(),
            message: other.to_string(),
        },
    }
}

fn key_reused(key: &str, pool: &str, user_id: &str) -> CouponError {
    CouponError::KeyReused {
        key: key.to_string(),
        pool: pool.to_string(),
        user_id: user_id.to_string(),
    }
}

fn same_request(first: &Reservation, request: &ReserveRequest) -> Result<(), CouponError> {
    if first.pool != request.pool || first.user_id != request.user_id {
        return Err(key_reused(&first.request_key, &first.pool, &first.user_id));
    }
    Ok(())
}

/// One batch's view: the pools as changed so far, over the open tables.
struct Batch<'s> {
    storage: &'s Storage,
    now: i64,
    pools: HashMap<String, PoolInfo>,
    touched: HashSet<String>,
}

impl Batch<'_> {
    /// The pool `name`, marked as changed by this batch; `None` when there is none.
    fn pool_mut(&mut self, name: &str) -> Option<&mut PoolInfo> {
        let pool = self.pools.get_mut(name)?;
        self.touched.insert(name.to_string());
        Some(pool)
    }

    fn load(&self, tables: &Tables, key: &str) -> Result<Option<Reservation>, CouponError> {
        let Some(json) = tables
            .requests
            .get(key)
            .map_err(|e| store_err(self.storage, e))?
        else {
            return Ok(None);
        };
        serde_json::from_str(json.value())
            .map(Some)
            .map_err(|e| CouponError::Damaged {
                key: key.to_string(),
                message: e.to_string(),
            })
    }

    fn save(&self, tables: &mut Tables, record: &Reservation) -> Result<(), CouponError> {
        let json = serde_json::to_string(record).expect(
            "Reservation derives Serialize over strings, integers and enums only: serde_json \
             cannot fail",
        );
        tables
            .requests
            .insert(record.request_key.as_str(), json.as_str())
            .map_err(|e| store_err(self.storage, e))?;
        Ok(())
    }

    fn add_hold(
        &self,
        tables: &mut Tables,
        pool: &str,
        user_id: &str,
        delta: i64,
    ) -> Result<(), CouponError> {
        let held = tables
            .holds
            .get((pool, user_id))
            .map_err(|e| store_err(self.storage, e))?
            .map_or(0, |v| v.value());
        let held = held.saturating_add_signed(delta);
        if held == 0 {
            tables.holds.remove((pool, user_id))
        } else {
            tables.holds.insert((pool, user_id), held)
        }
        .map_err(|e| store_err(self.storage, e))?;
        Ok(())
    }

    /// Ends a held reservation (release or expiry): its coupon, the user's hold and its
    /// face value go back.
    fn give_back(
        &mut self,
        tables: &mut Tables,
        record: &mut Reservation,
        status: ReservationStatus,
        at: i64,
    ) -> Result<(), CouponError> {
        if let Some(expires) = record.expires_micros {
            tables
                .expiries
                .remove((expires, record.request_key.as_str()))
                .map_err(|e| store_err(self.storage, e))?;
        }
        self.add_hold(tables, &record.pool, &record.user_id, -1)?;
        if let Some(pool) = self.pool_mut(&record.pool) {
            pool.reserved = pool.reserved.saturating_sub(1);
            pool.budget_used = pool.budget_used.saturating_sub(record.face_value);
            match status {
                ReservationStatus::Expired => pool.expired += 1,
                _ => pool.released += 1,
            }
        }
        record.status = status;
        record.settled_micros = Some(at);
        self.save(tables, record)
    }

    fn expire_due(&mut self, tables: &mut Tables) -> Result<(), CouponError> {
        for _ in 0..EXPIRIES_PER_BATCH {
            let due = {
                let first = tables
                    .expiries
                    .first()
                    .map_err(|e| store_err(self.storage, e))?;
                match first {
                    Some((k, _)) if k.value().0 <= self.now => {
                        let (at, key) = k.value();
                        (at, key.to_string())
                    }
                    _ => return Ok(()),
                }
            };
            let (at, key) = due;
            match self.load(tables, &key)? {
                Some(mut record) if record.status == ReservationStatus::Reserved => {
                    self.give_back(tables, &mut record, ReservationStatus::Expired, at)?;
                }
                _ => {
                    tables
                        .expiries
                        .remove((at, key.as_str()))
                        .map_err(|e| store_err(self.storage, e))?;
                }
            }
        }
        Ok(())
    }

    fn settle(
        &mut self,
        tables: &mut Tables,
        kind: SettleKind,
        requests: &[ReserveRequest],
    ) -> Result<Vec<Settlement>, CouponError> {
        for request in requests {
            if let Some(first) = self.load(tables, &request.request_key)? {
                same_request(&first, request)?;
            }
        }
        let mut settled = Vec::with_capacity(requests.len());
        for request in requests {
            let Some(mut record) = self.load(tables, &request.request_key)? else {
                settled.push(Settlement::NotFound);
                continue;
            };
            let outcome = match (record.status, kind) {
                (ReservationStatus::Refused, _) => Settlement::NotReserved,
                (ReservationStatus::Expired, _) => Settlement::Expired,
                (ReservationStatus::Reserved, _)
                    if let Some(at) = record.expires_micros.filter(|at| *at <= self.now) =>
                {
                    self.give_back(tables, &mut record, ReservationStatus::Expired, at)?;
                    Settlement::Expired
                }
                (ReservationStatus::Reserved, SettleKind::Redeem) => {
                    if let Some(expires) = record.expires_micros {
                        tables
                            .expiries
                            .remove((expires, record.request_key.as_str()))
                            .map_err(|e| store_err(self.storage, e))?;
                    }
                    if let Some(pool) = self.pool_mut(&record.pool) {
                        pool.reserved = pool.reserved.saturating_sub(1);
                        pool.redeemed += 1;
                    }
                    record.status = ReservationStatus::Redeemed;
                    record.settled_micros = Some(self.now);
                    self.save(tables, &record)?;
                    Settlement::Redeemed
                }
                (ReservationStatus::Reserved, SettleKind::Release) => {
                    let now = self.now;
                    self.give_back(tables, &mut record, ReservationStatus::Released, now)?;
                    Settlement::Released
                }
                (ReservationStatus::Redeemed, SettleKind::Redeem) => {
                    Settlement::Duplicate(Box::new(Settlement::Redeemed))
                }
                (ReservationStatus::Redeemed, SettleKind::Release) => Settlement::AlreadyRedeemed,
                (ReservationStatus::Released, SettleKind::Release) => {
                    Settlement::Duplicate(Box::new(Settlement::Released))
                }
                (ReservationStatus::Released, SettleKind::Redeem) => Settlement::AlreadyReleased,
            };
            settled.push(outcome);
        }
        Ok(settled)
    }

    fn create_pool(
        &mut self,
        name: &str,
        stock: u64,
        settings: &PoolSettings,
    ) -> Result<PoolInfo, CouponError> {
        if self.pools.contains_key(name) {
            return Err(CouponError::PoolExists(name.to_string()));
        }
        if let Some(given) = settings.stock
            && given != stock
        {
            return Err(bad(name, "stock is given twice, with different values"));
        }
        let mut info = PoolInfo {
            name: name.to_string(),
            status: PoolStatus::Active,
            stock,
            per_user_limit: 1,
            face_value: 0,
            budget: None,
            valid_from_micros: None,
            valid_until_micros: None,
            audience: None,
            hold_micros: (DEFAULT_HOLD_SECONDS * 1e6) as i64,
            created_micros: self.now,
            updated_micros: self.now,
            reserved: 0,
            redeemed: 0,
            released: 0,
            expired: 0,
            refused: 0,
            budget_used: 0,
        };
        apply_settings(&mut info, settings)?;
        self.pools.insert(name.to_string(), info.clone());
        self.touched.insert(name.to_string());
        Ok(info)
    }

    fn alter_pool(&mut self, name: &str, settings: &PoolSettings) -> Result<PoolInfo, CouponError> {
        let Some(current) = self.pools.get(name) else {
            return Err(CouponError::UnknownPool(name.to_string()));
        };
        let mut info = current.clone();
        if current.status == PoolStatus::Closed
            && settings.status.is_some_and(|s| s != PoolStatus::Closed)
        {
            return Err(bad(name, "the pool is closed; a closed pool cannot reopen"));
        }
        apply_settings(&mut info, settings)?;
        let out = info.reserved + info.redeemed;
        if info.stock < out {
            return Err(bad(
                name,
                &format!("stock cannot go below the {out} coupons reserved or redeemed"),
            ));
        }
        if let Some(budget) = info.budget
            && budget < info.budget_used
        {
            return Err(bad(
                name,
                &format!(
                    "budget cannot go below the {} already reserved or redeemed",
                    info.budget_used
                ),
            ));
        }
        info.updated_micros = self.now;
        self.pools.insert(name.to_string(), info.clone());
        self.touched.insert(name.to_string());
        Ok(info)
    }
}

fn bad(pool: &str, message: &str) -> CouponError {
    CouponError::BadSettings {
        pool: pool.to_string(),
        message: message.to_string(),
    }
}

fn apply_settings(info: &mut PoolInfo, settings: &PoolSettings) -> Result<(), CouponError> {
    let name = info.name.clone();
    if name.is_empty() {
        return Err(bad(&name, "a pool needs a name"));
    }
    if let Some(stock) = settings.stock {
        info.stock = stock;
    }
    if let Some(limit) = settings.per_user_limit {
        if limit == 0 {
            return Err(bad(&name, "per_user_limit must be at least 1"));
        }
        info.per_user_limit = limit;
    }
    if let Some(face_value) = settings.face_value {
        info.face_value = face_value;
    }
    if let Some(budget) = settings.budget {
        info.budget = Some(budget);
    }
    if let Some(from) = &settings.valid_from {
        info.valid_from_micros = Some(timestamp(&name, "valid_from", from)?);
    }
    if let Some(until) = &settings.valid_until {
        info.valid_until_micros = Some(timestamp(&name, "valid_until", until)?);
    }
    if let (Some(from), Some(until)) = (info.valid_from_micros, info.valid_until_micros)
        && from >= until
    {
        return Err(bad(&name, "valid_from must be before valid_until"));
    }
    if let Some(audience) = &settings.audience {
        info.audience = (!audience.is_empty()).then(|| audience.clone());
    }
    if let Some(hold) = settings.hold_seconds {
        if !(hold > 0.0 && hold <= 365.0 * 86_400.0) {
            return Err(bad(
                &name,
                "hold_seconds must be positive and at most a year",
            ));
        }
        info.hold_micros = (hold * 1e6) as i64;
    }
    if let Some(status) = settings.status {
        info.status = status;
    }
    Ok(())
}

fn timestamp(pool: &str, setting: &str, text: &str) -> Result<i64, CouponError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|e| {
            bad(
                pool,
                &format!("{setting} {text:?} is not an RFC 3339 timestamp ({e})"),
            )
        })
}

fn read_table<V>(
    storage: &Storage,
    definition: TableDefinition<&str, &str>,
    parse: impl Fn(&str, &str) -> Result<V, CouponError>,
) -> Result<Vec<V>, CouponError> {
    let txn = storage
        .kv()
        .begin_read()
        .map_err(|e| store_err(storage, e))?;
    let table = match txn.open_table(definition) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(store_err(storage, e)),
    };
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| store_err(storage, e))? {
        let (key, value) = row.map_err(|e| store_err(storage, e))?;
        out.push(parse(key.value(), value.value())?);
    }
    Ok(out)
}

fn parse_json<T: serde::de::DeserializeOwned>(key: &str, json: &str) -> Result<T, CouponError> {
    serde_json::from_str(json).map_err(|e| CouponError::Damaged {
        key: key.to_string(),
        message: e.to_string(),
    })
}

pub(crate) fn read_pools(storage: &Storage) -> Result<Vec<PoolInfo>, CouponError> {
    read_table(storage, POOLS, parse_json)
}

/// Every recorded reserve call; a reservation whose expiry has passed reads as expired
/// even before the committer has processed it.
pub(crate) fn read_reservations(
    storage: &Storage,
    now: i64,
) -> Result<Vec<Reservation>, CouponError> {
    read_table(storage, REQUESTS, |key, json| {
        let mut record: Reservation = parse_json(key, json)?;
        if record.status == ReservationStatus::Reserved
            && let Some(at) = record.expires_micros.filter(|at| *at <= now)
        {
            record.status = ReservationStatus::Expired;
            record.settled_micros = Some(at);
        }
        Ok(record)
    })
}

/// Recounts every pool's counters from its reservations and holds, in one snapshot.
pub(crate) fn reconcile(storage: &Storage) -> Result<Vec<Reconciliation>, CouponError> {
    let txn = storage
        .kv()
        .begin_read()
        .map_err(|e| store_err(storage, e))?;
    let mut pools: Vec<PoolInfo> = Vec::new();
    let mut recount: HashMap<String, Reconciliation> = HashMap::new();
    match txn.open_table(POOLS) {
        Ok(table) => {
            for row in table.iter().map_err(|e| store_err(storage, e))? {
                let (key, value) = row.map_err(|e| store_err(storage, e))?;
                pools.push(parse_json(key.value(), value.value())?);
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(store_err(storage, e)),
    }
    for pool in &pools {
        recount.insert(
            pool.name.clone(),
            Reconciliation {
                pool: pool.name.clone(),
                stock: pool.stock,
                reserved: (pool.reserved, 0),
                redeemed: (pool.redeemed, 0),
                released: (pool.released, 0),
                expired: (pool.expired, 0),
                refused: (pool.refused, 0),
                budget_used: (pool.budget_used, 0),
                holds: (0, 0),
            },
        );
    }
    if let Ok(table) = txn.open_table(REQUESTS) {
        for row in table.iter().map_err(|e| store_err(storage, e))? {
            let (key, value) = row.map_err(|e| store_err(storage, e))?;
            let record: Reservation = parse_json(key.value(), value.value())?;
            let Some(r) = recount.get_mut(&record.pool) else {
                continue;
            };
            // As committed: an overdue reservation holds its coupon until the committer
            // expires it, in the same transaction that moves the counters.
            match record.status {
                ReservationStatus::Reserved => {
                    r.reserved.1 += 1;
                    r.budget_used.1 += record.face_value;
                    r.holds.1 += 1;
                }
                ReservationStatus::Redeemed => {
                    r.redeemed.1 += 1;
                    r.budget_used.1 += record.face_value;
                    r.holds.1 += 1;
                }
                ReservationStatus::Released => r.released.1 += 1,
                ReservationStatus::Expired => r.expired.1 += 1,
                ReservationStatus::Refused => r.refused.1 += 1,
            }
        }
    }
    if let Ok(table) = txn.open_table(HOLDS) {
        for row in table.iter().map_err(|e| store_err(storage, e))? {
            let (key, value) = row.map_err(|e| store_err(storage, e))?;
            if let Some(r) = recount.get_mut(key.value().0) {
                r.holds.0 += value.value();
            }
        }
    }
    Ok(pools
        .iter()
        // A damaged store may hold two pools of one name: counted once.
        .filter_map(|p| recount.remove(&p.name))
        .collect())
}

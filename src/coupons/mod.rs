//! Coupon pools and reservations: no overselling, idempotent, durable.
//!
//! A pool holds a stock of coupons of one face value. A reservation is a two-phase
//! transfer: [`Coupons::reserve`] holds one coupon of stock, one unit of the user's
//! limit and the face value of the pool's budget until it expires; [`Coupons::redeem`]
//! makes it final; [`Coupons::release`] (or expiry) gives back what it held.
//!
//! Every call names a request key. The first reserve with a key decides its outcome for
//! good: the same call again answers [`Outcome::Duplicate`] with that first outcome, and
//! the key with another pool or user is an error ([`CouponError::KeyReused`]). Redeem and
//! release name the reservation by its key.
//!
//! Invariants:
//! - one writer: every change goes through one committer thread, which decides against
//!   the committed state plus the earlier changes of its batch, so any number of
//!   concurrent callers are serialised without locks on their side;
//! - per pool, `reserved + redeemed <= stock`; per pool and user, the coupons held
//!   (reserved or redeemed) never exceed the per-user limit; the face values held never
//!   exceed the budget;
//! - an outcome is returned only after its batch is durable: decided and committed to
//!   redb without a sync, then appended to the journal and synced (`journal.rs` says why
//!   and how a restart replays it). Callers that arrive while a batch is on disk are
//!   decided and synced together in the next one (group commit): throughput comes from
//!   batching the syncs, not from skipping them. A batch that fails before its sync fails
//!   for every caller in it; one that fails in the journal is made durable by a redb
//!   sync instead, or the service stops deciding until a restart replays the journal;
//! - other sessions may read a batch (`martdb.coupon_pools`) between its redb commit and
//!   its sync, as with Redis: a crash in that window loses what they saw, never what a
//!   caller was told;
//! - a pool's counters are written in the same transaction as the reservations that change
//!   them, so a restart reads exact remaining stock; [`Coupons::reconcile`] recounts them
//!   from the reservations themselves;
//! - a reservation whose expiry has passed holds nothing: the committer returns its stock
//!   at the latest a second after it expires (and at once when it is redeemed or released
//!   late, which then answers `expired`).
//!
//! Why redb: it is the state store every capability shares (one file, crash-safe
//! copy-on-write B-trees with checksummed commits) and it gives one writer at a time,
//! which is the model here anyway. Why a journal beside it: a redb commit syncs every page
//! its batch touched, and random keys touch many; the journal syncs one small append.
//!
//! ```
//! # use martdb::coupons::{Coupons, Outcome, PoolSettings};
//! # use martdb::storage::{Storage, StorageOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! # let options = StorageOptions { create_if_missing: true, ..Default::default() };
//! # let storage = std::sync::Arc::new(Storage::open(dir.path().to_str().unwrap(), &options).unwrap());
//! # let audiences = martdb::bitmap::audiences::AudienceStore::new(&storage);
//! let coupons = Coupons::open(&storage, audiences).unwrap();
//! coupons.create_pool("spring", 2, &PoolSettings::default()).unwrap();
//! assert_eq!(coupons.reserve("spring", "alice", "spring:alice").unwrap(), Outcome::Reserved);
//! assert_eq!(
//!     coupons.reserve("spring", "alice", "spring:alice").unwrap(),
//!     Outcome::Duplicate(Box::new(Outcome::Reserved))
//! );
//! assert_eq!(coupons.reserve("spring", "alice", "again:alice").unwrap(), Outcome::UserLimit);
//! ```

mod committer;
pub(crate) mod journal;
mod ledger;

use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::bitmap::audiences::AudienceStore;
use crate::storage::{Storage, StorageError};

pub use ledger::{PoolInfo, Reconciliation, Reservation};

/// Why a call failed (as opposed to an [`Outcome`], which is a normal answer).
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    #[error("coupons: {0}")]
    Store(#[from] StorageError),
    #[error("the database was closed")]
    Closed,
    #[error("coupon pool {0:?} does not exist")]
    UnknownPool(String),
    #[error("coupon pool {0:?} already exists")]
    PoolExists(String),
    #[error(
        "request key {key:?} was first used for pool {pool:?} and user {user_id:?}; a request \
         key names one request"
    )]
    KeyReused {
        key: String,
        pool: String,
        user_id: String,
    },
    #[error("coupon pool {pool:?}: {message}")]
    BadSettings { pool: String, message: String },
    #[error("coupons: the batch could not be committed: {0}")]
    BatchFailed(String),
    #[error("coupons: stored record {key:?} is damaged: {message}")]
    Damaged { key: String, message: String },
}

impl CouponError {
    /// The SQLSTATE a client sees.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            CouponError::Store(_) | CouponError::BatchFailed(_) => "58030",
            CouponError::Closed => "57P01",
            CouponError::UnknownPool(_) => "42704",
            CouponError::PoolExists(_) => "42710",
            CouponError::KeyReused { .. } => "23505",
            CouponError::BadSettings { .. } => "22023",
            CouponError::Damaged { .. } => "XX001",
        }
    }
}

/// The answer to a reserve call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// One coupon is held for the user until the reservation expires.
    Reserved,
    /// The request key was seen before; this is its first outcome.
    Duplicate(Box<Outcome>),
    /// No stock left.
    SoldOut,
    /// The user already holds the pool's per-user limit.
    UserLimit,
    /// Issuing one more would pass the pool's budget.
    BudgetExhausted,
    /// The pool is for an audience the user is not in.
    NotEligible,
    /// The pool is not active, or outside its validity window.
    PoolInactive,
}

impl Outcome {
    /// The outcome's name without the first outcome of a duplicate (`duplicate`).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Reserved => "reserved",
            Outcome::Duplicate(_) => "duplicate",
            Outcome::SoldOut => "sold_out",
            Outcome::UserLimit => "user_limit",
            Outcome::BudgetExhausted => "budget_exhausted",
            Outcome::NotEligible => "not_eligible",
            Outcome::PoolInactive => "pool_inactive",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Duplicate(first) => write!(f, "duplicate:{first}"),
            other => f.write_str(other.name()),
        }
    }
}

/// The answer to a redeem or release call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// The reservation is now redeemed (final).
    Redeemed,
    /// The reservation is released; its coupon is back in stock.
    Released,
    /// The same settlement was made before.
    Duplicate(Box<Settlement>),
    /// The reservation expired before this call; it holds nothing.
    Expired,
    /// Release of a redeemed coupon: it stays redeemed.
    AlreadyRedeemed,
    /// Redeem of a released coupon: it stays released.
    AlreadyReleased,
    /// The reserve call with this key did not reserve (sold out, user limit, …).
    NotReserved,
    /// No reserve call used this key.
    NotFound,
}

impl std::fmt::Display for Settlement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Settlement::Redeemed => f.write_str("redeemed"),
            Settlement::Released => f.write_str("released"),
            Settlement::Duplicate(first) => write!(f, "duplicate:{first}"),
            Settlement::Expired => f.write_str("expired"),
            Settlement::AlreadyRedeemed => f.write_str("already_redeemed"),
            Settlement::AlreadyReleased => f.write_str("already_released"),
            Settlement::NotReserved => f.write_str("not_reserved"),
            Settlement::NotFound => f.write_str("not_found"),
        }
    }
}

/// A pool's lifecycle: only an active pool issues coupons; a closed one never again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolStatus {
    Draft,
    Active,
    Paused,
    Closed,
}

impl PoolStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PoolStatus::Draft => "draft",
            PoolStatus::Active => "active",
            PoolStatus::Paused => "paused",
            PoolStatus::Closed => "closed",
        }
    }
}

/// Settings of a pool, each optional: on create, what is left out takes its default; on
/// alter, what is left out stays as it is. In SQL they are a JSON object with these keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSettings {
    /// Coupons in the pool (on create, the `stock` argument).
    pub stock: Option<u64>,
    /// Coupons one user may hold (reserved or redeemed) at once; default 1.
    pub per_user_limit: Option<u64>,
    /// Value of one coupon in the currency's minor unit (cents); default 0.
    pub face_value: Option<u64>,
    /// Most face value the pool may have out (reserved or redeemed); default no cap.
    pub budget: Option<u64>,
    /// When the pool starts issuing (RFC 3339); default at once.
    pub valid_from: Option<String>,
    /// When it stops (RFC 3339, exclusive); default never.
    pub valid_until: Option<String>,
    /// Name of a saved audience: only its members may reserve; default everyone.
    pub audience: Option<String>,
    /// How long a reservation holds its coupon before it expires; default 900.
    pub hold_seconds: Option<f64>,
    /// draft, active, paused or closed; default active.
    pub status: Option<PoolStatus>,
}

/// One reserve call of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveRequest {
    pub pool: String,
    pub user_id: String,
    pub request_key: String,
}

/// Redeem or release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SettleKind {
    Redeem,
    Release,
}

/// The coupon service of one database. Cheap to clone; all clones share one committer.
#[derive(Clone)]
pub struct Coupons {
    commands: std::sync::mpsc::Sender<committer::Command>,
    /// Weak: reads must not keep the state store open after the engine is gone.
    storage: Weak<Storage>,
}

impl std::fmt::Debug for Coupons {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Coupons")
    }
}

impl Coupons {
    /// Opens the coupon state of `storage` and starts its committer thread, which expires
    /// overdue reservations before it takes the first call.
    pub fn open(storage: &Arc<Storage>, audiences: AudienceStore) -> Result<Coupons, CouponError> {
        let ledger = ledger::Ledger::open(storage, audiences)?;
        let commands = committer::spawn(ledger).map_err(|e| {
            CouponError::Store(StorageError::io("starting the coupon committer thread", e))
        })?;
        Ok(Coupons {
            commands,
            storage: Arc::downgrade(storage),
        })
    }

    /// Creates pool `pool` with `stock` coupons (`settings.stock` must be unset or equal).
    pub fn create_pool(
        &self,
        pool: &str,
        stock: u64,
        settings: &PoolSettings,
    ) -> Result<PoolInfo, CouponError> {
        wait(self.ask(|reply| create_pool(pool, stock, settings, reply))?)
    }

    /// [`create_pool`](Self::create_pool) for async callers.
    pub async fn create_pool_async(
        &self,
        pool: &str,
        stock: u64,
        settings: &PoolSettings,
    ) -> Result<PoolInfo, CouponError> {
        answer(self.ask(|reply| create_pool(pool, stock, settings, reply))?).await
    }

    /// Changes the settings given in `settings`; stock and budget cannot go below what is
    /// already out, and a closed pool stays closed.
    pub fn alter_pool(&self, pool: &str, settings: &PoolSettings) -> Result<PoolInfo, CouponError> {
        wait(self.ask(|reply| alter_pool(pool, settings, reply))?)
    }

    /// [`alter_pool`](Self::alter_pool) for async callers.
    pub async fn alter_pool_async(
        &self,
        pool: &str,
        settings: &PoolSettings,
    ) -> Result<PoolInfo, CouponError> {
        answer(self.ask(|reply| alter_pool(pool, settings, reply))?).await
    }

    /// Reserves one coupon of `pool` for `user_id`, blocking until the outcome is durable.
    pub fn reserve(
        &self,
        pool: &str,
        user_id: &str,
        request_key: &str,
    ) -> Result<Outcome, CouponError> {
        let outcomes = self.reserve_many(vec![request(pool, user_id, request_key)])?;
        only(outcomes)
    }

    /// [`reserve`](Self::reserve) for async callers: waits without blocking a thread.
    pub async fn reserve_async(
        &self,
        pool: &str,
        user_id: &str,
        request_key: &str,
    ) -> Result<Outcome, CouponError> {
        let outcomes = self
            .reserve_many_async(vec![request(pool, user_id, request_key)])
            .await?;
        only(outcomes)
    }

    /// Many reserve calls decided in order and committed together: either every one has
    /// its outcome or, when one is an error (unknown pool, reused key), none is recorded.
    pub fn reserve_many(&self, requests: Vec<ReserveRequest>) -> Result<Vec<Outcome>, CouponError> {
        wait(self.ask(|reply| committer::Command::Reserve { requests, reply })?)
    }

    /// [`reserve_many`](Self::reserve_many) for async callers.
    pub async fn reserve_many_async(
        &self,
        requests: Vec<ReserveRequest>,
    ) -> Result<Vec<Outcome>, CouponError> {
        answer(self.ask(|reply| committer::Command::Reserve { requests, reply })?).await
    }

    /// Redeems the reservation made with `request_key` (which must name this pool and user).
    pub fn redeem(
        &self,
        pool: &str,
        user_id: &str,
        request_key: &str,
    ) -> Result<Settlement, CouponError> {
        let settled = self.settle_many(
            SettleKind::Redeem,
            vec![request(pool, user_id, request_key)],
        )?;
        only(settled)
    }

    /// Releases the reservation made with `request_key`, returning its coupon to stock.
    pub fn release(
        &self,
        pool: &str,
        user_id: &str,
        request_key: &str,
    ) -> Result<Settlement, CouponError> {
        let settled = self.settle_many(
            SettleKind::Release,
            vec![request(pool, user_id, request_key)],
        )?;
        only(settled)
    }

    /// Many redeem (or release) calls, committed together, all or none (as
    /// [`reserve_many`](Self::reserve_many)).
    pub fn settle_many(
        &self,
        kind: SettleKind,
        requests: Vec<ReserveRequest>,
    ) -> Result<Vec<Settlement>, CouponError> {
        wait(self.ask(|reply| committer::Command::Settle {
            kind,
            requests,
            reply,
        })?)
    }

    /// [`settle_many`](Self::settle_many) for async callers.
    pub async fn settle_many_async(
        &self,
        kind: SettleKind,
        requests: Vec<ReserveRequest>,
    ) -> Result<Vec<Settlement>, CouponError> {
        answer(self.ask(|reply| committer::Command::Settle {
            kind,
            requests,
            reply,
        })?)
        .await
    }

    /// Every pool with its committed counters.
    pub fn pools(&self) -> Result<Vec<PoolInfo>, CouponError> {
        ledger::read_pools(&*self.storage()?)
    }

    /// Every reserve call ever recorded, by request key.
    pub fn reservations(&self) -> Result<Vec<Reservation>, CouponError> {
        ledger::read_reservations(&*self.storage()?, now_micros())
    }

    /// Per pool: the counters against a recount of the reservations.
    pub fn reconcile(&self) -> Result<Vec<Reconciliation>, CouponError> {
        ledger::reconcile(&*self.storage()?)
    }

    fn storage(&self) -> Result<Arc<Storage>, CouponError> {
        self.storage.upgrade().ok_or(CouponError::Closed)
    }

    /// Queues the command `make` builds around a reply channel.
    fn ask<T>(
        &self,
        make: impl FnOnce(committer::Reply<T>) -> committer::Command,
    ) -> Result<Answer<T>, CouponError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(make(reply))
            .map_err(|_| CouponError::Closed)?;
        Ok(answer)
    }
}

type Answer<T> = oneshot::Receiver<Result<T, CouponError>>;

fn request(pool: &str, user_id: &str, request_key: &str) -> ReserveRequest {
    ReserveRequest {
        pool: pool.to_string(),
        user_id: user_id.to_string(),
        request_key: request_key.to_string(),
    }
}

fn create_pool(
    pool: &str,
    stock: u64,
    settings: &PoolSettings,
    reply: committer::Reply<PoolInfo>,
) -> committer::Command {
    committer::Command::CreatePool {
        pool: pool.to_string(),
        stock,
        settings: settings.clone(),
        reply,
    }
}

fn alter_pool(
    pool: &str,
    settings: &PoolSettings,
    reply: committer::Reply<PoolInfo>,
) -> committer::Command {
    committer::Command::AlterPool {
        pool: pool.to_string(),
        settings: settings.clone(),
        reply,
    }
}

async fn answer<T>(answer: Answer<T>) -> Result<T, CouponError> {
    answer.await.map_err(|_| CouponError::Closed)?
}

/// The one answer of a one-request batch (the ledger answers each request once, in order).
fn only<T>(answers: Vec<T>) -> Result<T, CouponError> {
    let count = answers.len();
    let mut answers = answers.into_iter();
    match (answers.next(), answers.next()) {
        (Some(answer), None) => Ok(answer),
        _ => Err(CouponError::BatchFailed(format!(
            "one request was answered {count} times"
        ))),
    }
}

/// Blocks on an answer. Fine on a runtime thread too: the committer never waits on the
/// runtime, so this cannot deadlock (but it holds the thread: async callers should use
/// the `_async` forms).
fn wait<T>(answer: Answer<T>) -> Result<T, CouponError> {
    futures::executor::block_on(answer).map_err(|_| CouponError::Closed)?
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests;

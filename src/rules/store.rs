//! Rules and the outbox, kept durably in the state store.
//!
//! Invariants:
//! - a change (any number of inserts, updates and deletes) is one redb transaction,
//!   committed durably before it is reported: all of it or none of it;
//! - every version of every rule is kept (`rule_versions`), so a match that names a
//!   rule version can always be looked up, and the current version is the highest;
//! - the generation grows with every committed change; compiled networks remember the
//!   generation they were built from and are rebuilt when it moves;
//! - an outbox entry is written once per (rule, event): writing it again answers that it
//!   exists, so applying the same matches twice queues nothing twice.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::RuleError;
use super::model::Rule;
use crate::storage::Storage;

/// The current rules, shared by every network compiled from them.
pub type RuleList = Arc<[Arc<Rule>]>;

const RULES: TableDefinition<i64, &str> = TableDefinition::new("rules");
const VERSIONS: TableDefinition<(i64, i64), &str> = TableDefinition::new("rule_versions");
const OUTBOX: TableDefinition<(i64, &str), &str> = TableDefinition::new("rule_outbox");

/// One change of the rules.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new rule; its id must be free.
    Insert(Rule),
    /// A new version of an existing rule.
    Update(Rule),
    Delete(i64),
}

/// A queued action: a message to send or a state to move a user to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub rule_id: i64,
    pub rule_version: i64,
    /// The event's id as text: with the rule id, the key that makes queuing idempotent.
    pub event_id: String,
    pub user_id: String,
    /// `message` or `state`.
    pub kind: String,
    pub channel: String,
    pub params: String,
    /// When the rule fired (the event's time or a pattern's deadline), microseconds.
    pub fired_at: Option<i64>,
    /// When it was queued, microseconds since the epoch.
    pub queued_at: i64,
}

/// The rules of one database. Cheap to clone.
#[derive(Clone)]
pub struct RuleStore {
    storage: Weak<Storage>,
    generation: Arc<AtomicU64>,
    /// The current rules as of a generation, so matching does not read the store.
    current: Arc<Mutex<Option<(u64, RuleList)>>>,
}

impl std::fmt::Debug for RuleStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuleStore")
    }
}

pub(crate) fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl RuleStore {
    pub fn new(storage: &Arc<Storage>) -> Self {
        RuleStore {
            storage: Arc::downgrade(storage),
            generation: Arc::new(AtomicU64::new(1)),
            current: Arc::new(Mutex::new(None)),
        }
    }

    fn storage(&self) -> Result<Arc<Storage>, RuleError> {
        self.storage.upgrade().ok_or(RuleError::Closed)
    }

    fn store(&self, e: impl Into<redb::Error>) -> RuleError {
        match self.storage.upgrade() {
            Some(storage) => RuleError::Store(storage.kv_error(e)),
            None => RuleError::Closed,
        }
    }

    /// Grows with every committed change.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every rule (current versions), by id.
    pub fn rules(&self) -> Result<Arc<[Arc<Rule>]>, RuleError> {
        let generation = self.generation();
        if let Some((g, rules)) = &*self.current.lock().expect(crate::LOCK_POISONED)
            && *g == generation
        {
            return Ok(rules.clone());
        }
        let storage = self.storage()?;
        let txn = storage.kv().begin_read().map_err(|e| self.store(e))?;
        let rules: Arc<[Arc<Rule>]> = match txn.open_table(RULES) {
            Ok(table) => {
                let mut rules = Vec::new();
                for entry in table.iter().map_err(|e| self.store(e))? {
                    let (_, json) = entry.map_err(|e| self.store(e))?;
                    rules.push(Arc::new(parse(json.value())?));
                }
                rules.into()
            }
            Err(redb::TableError::TableDoesNotExist(_)) => Arc::from(vec![]),
            Err(e) => return Err(self.store(e)),
        };
        *self.current.lock().expect(crate::LOCK_POISONED) = Some((generation, rules.clone()));
        Ok(rules)
    }

    /// One version of a rule, when it was ever stored.
    pub fn version(&self, id: i64, version: i64) -> Result<Option<Rule>, RuleError> {
        let storage = self.storage()?;
        let txn = storage.kv().begin_read().map_err(|e| self.store(e))?;
        let table = match txn.open_table(VERSIONS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.store(e)),
        };
        match table.get((id, version)).map_err(|e| self.store(e))? {
            Some(json) => Ok(Some(parse(json.value())?)),
            None => Ok(None),
        }
    }

    /// Applies `changes` in one durable transaction; returns how many rules changed.
    /// Every rule is checked first ([`Rule::check`] and `check`, the caller's check
    /// against an event schema); any failure changes nothing.
    pub fn apply(
        &self,
        changes: Vec<Change>,
        check: &dyn Fn(&Rule) -> Result<(), RuleError>,
    ) -> Result<u64, RuleError> {
        if changes.is_empty() {
            return Ok(0);
        }
        let storage = self.storage()?;
        let now = now_micros();
        let txn = storage.kv().begin_write().map_err(|e| self.store(e))?;
        {
            let mut rules = txn.open_table(RULES).map_err(|e| self.store(e))?;
            let mut versions = txn.open_table(VERSIONS).map_err(|e| self.store(e))?;
            for change in &changes {
                let (mut rule, existing) = match change {
                    Change::Delete(id) => {
                        rules.remove(*id).map_err(|e| self.store(e))?;
                        continue;
                    }
                    Change::Insert(rule) | Change::Update(rule) => {
                        let existing = rules
                            .get(rule.id)
                            .map_err(|e| self.store(e))?
                            .map(|json| parse(json.value()))
                            .transpose()?;
                        (rule.clone(), existing)
                    }
                };
                rule.version = match (change, &existing) {
                    (Change::Insert(_), Some(_)) => return Err(RuleError::Exists { id: rule.id }),
                    (Change::Update(_), None) => return Err(RuleError::NotFound { id: rule.id }),
                    (_, Some(old)) => old.version + 1,
                    (_, None) => {
                        // An id used before (and deleted) continues its versions.
                        let last = versions
                            .range((rule.id, i64::MIN)..=(rule.id, i64::MAX))
                            .map_err(|e| self.store(e))?
                            .next_back()
                            .transpose()
                            .map_err(|e| self.store(e))?
                            .map_or(0, |(k, _)| k.value().1);
                        last + 1
                    }
                };
                rule.updated_at = now;
                rule.check()?;
                check(&rule)?;
                let json = serde_json::to_string(&rule).expect("Rule derives Serialize over strings, numbers and enums only: serde_json cannot fail");
                rules
                    .insert(rule.id, json.as_str())
                    .map_err(|e| self.store(e))?;
                versions
                    .insert((rule.id, rule.version), json.as_str())
                    .map_err(|e| self.store(e))?;
            }
        }
        txn.commit().map_err(|e| self.store(e))?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(changes.len() as u64)
    }

    /// Queues `entries` in the outbox, in one durable transaction; for each, whether it
    /// is new (false: the same rule and event were queued before, and nothing changed).
    pub fn enqueue(&self, entries: &[OutboxEntry]) -> Result<Vec<bool>, RuleError> {
        if entries.is_empty() {
            return Ok(vec![]);
        }
        let storage = self.storage()?;
        let txn = storage.kv().begin_write().map_err(|e| self.store(e))?;
        let mut fresh = Vec::with_capacity(entries.len());
        {
            let mut outbox = txn.open_table(OUTBOX).map_err(|e| self.store(e))?;
            for entry in entries {
                let key = (entry.rule_id, entry.event_id.as_str());
                if outbox.get(key).map_err(|e| self.store(e))?.is_some() {
                    fresh.push(false);
                    continue;
                }
                let json = serde_json::to_string(entry).expect("OutboxEntry derives Serialize over strings and integers only: serde_json cannot fail");
                outbox
                    .insert(key, json.as_str())
                    .map_err(|e| self.store(e))?;
                fresh.push(true);
            }
        }
        txn.commit().map_err(|e| self.store(e))?;
        Ok(fresh)
    }

    /// Every queued action, by rule and event.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, RuleError> {
        let storage = self.storage()?;
        let txn = storage.kv().begin_read().map_err(|e| self.store(e))?;
        let table = match txn.open_table(OUTBOX) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(self.store(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.store(e))? {
            let (_, json) = entry.map_err(|e| self.store(e))?;
            out.push(
                serde_json::from_str(json.value()).map_err(|e| RuleError::Damaged {
                    message: format!("an outbox entry: {e}"),
                })?,
            );
        }
        Ok(out)
    }
}

fn parse(json: &str) -> Result<Rule, RuleError> {
    serde_json::from_str(json).map_err(|e| RuleError::Damaged {
        message: format!("a stored rule: {e}"),
    })
}

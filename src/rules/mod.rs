//! Rule matching: Event-Condition-Action rules kept as data, compiled into one network
//! that shares identical conditions, with window patterns, conflict policies and
//! frequency caps.
//!
//! - [`model`]: a rule as stored (`martdb.rules`): event type, condition (SQL), window
//!   pattern, action, group and policy, frequency cap, validity window.
//! - [`condition`]: a condition split into its AND/OR/NOT structure and atoms.
//! - [`network`]: every enabled rule compiled against an event schema, atoms shared,
//!   evaluated vectorised over Arrow batches.
//! - [`pattern`]: counts and sequences within a time window, with absence.
//! - [`matcher`]: from candidates to fired rules (patterns, groups, caps), for a whole
//!   input or one event at a time.
//! - [`store`]: the rules and the outbox, durable in the state store.
//!
//! Events are rows with at least `event_id`, `user_id` and `event_type`; `ts` (a
//! timestamp) when a rule has a pattern, a cap or a validity window; any other column a
//! condition reads. A rule changes by a new version; a change compiles a new network
//! while matching goes on with the old one, and the next batch or event uses the new.
//!
//! ```
//! # use martdb::rules::{ActionKind, Event, Rule};
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! # let dir = tempfile::tempdir().unwrap();
//! let engine = martdb::Engine::open(dir.path().to_str().unwrap()).await.unwrap();
//! let mut rule = Rule::new(1, ActionKind::Message);
//! rule.event_type = Some("order".into());
//! rule.condition = Some("amount > 100".into());
//! rule.params = r#"{"channel": "sms", "template": "thanks"}"#.into();
//! engine.rules().create(rule).await.unwrap();
//!
//! let big = Event::new(10, 42, "order", 0).with("amount", 250.0);
//! let small = Event::new(11, 42, "order", 0).with("amount", 20.0);
//! assert_eq!(engine.rules().match_event(&big).unwrap()[0].rule_id, 1);
//! assert!(engine.rules().match_event(&small).unwrap().is_empty());
//! # });
//! ```

pub mod condition;
pub mod matcher;
pub mod model;
pub mod network;
pub mod pattern;
pub mod store;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use crate::bitmap::Bitmap;
use crate::bitmap::audiences::AudienceStore;
use crate::coupons::{Coupons, ReserveRequest};
use crate::storage::StorageError;

pub use matcher::{BatchMatcher, EventMatcher, match_schema};
pub use model::{ActionKind, FrequencyCap, Policy, Rule};
pub use network::{AudienceSource, RuleSet};
pub use store::{Change, OutboxEntry, RuleStore};

/// The table whose columns rules are checked against when they are stored (when it
/// exists): the events rules usually match.
pub const EVENTS_TABLE: &str = "events";
/// The profile table whose columns (joined by `user_id`) rules may also read.
pub const PROFILES_TABLE: &str = "users";

/// Why a rule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule {id}: {message}")]
    BadRule { id: i64, message: String },
    /// A bad argument of a rules function.
    #[error("{0}")]
    Input(String),
    #[error("rule {id} exists (UPDATE martdb.rules to change it)")]
    Exists { id: i64 },
    #[error("rule {id} does not exist")]
    NotFound { id: i64 },
    #[error("events column '{column}': {message}")]
    EventColumn { column: String, message: String },
    #[error("{0}")]
    Engine(#[from] DataFusionError),
    #[error("rules: {0}")]
    Store(#[from] StorageError),
    #[error("rules store is damaged: {message}")]
    Damaged { message: String },
    #[error("the database was closed")]
    Closed,
}

impl RuleError {
    /// The SQLSTATE a client sees.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            RuleError::BadRule { .. } | RuleError::Input(_) => "22023",
            RuleError::Exists { .. } => "23505",
            RuleError::NotFound { .. } => "42704",
            RuleError::EventColumn { .. } => "42703",
            RuleError::Engine(_) => "XX000",
            RuleError::Store(_) | RuleError::Damaged { .. } => "58030",
            RuleError::Closed => "57P01",
        }
    }
}

/// One event for [`Rules::match_event`]: the four columns matching reads, plus any
/// others (a column a rule reads that the event lacks is NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: i64,
    pub user_id: i64,
    pub event_type: String,
    /// Microseconds since the epoch.
    pub ts_micros: i64,
    pub fields: Vec<(String, ScalarValue)>,
}

impl Event {
    pub fn new(event_id: i64, user_id: i64, event_type: &str, ts_micros: i64) -> Event {
        Event {
            event_id,
            user_id,
            event_type: event_type.to_string(),
            ts_micros,
            fields: Vec::new(),
        }
    }

    /// The event with one more column.
    pub fn with(mut self, name: &str, value: impl Into<ScalarValue>) -> Event {
        self.fields.push((name.to_string(), value.into()));
        self
    }

    /// The event as a one-row batch.
    pub fn to_batch(&self) -> Result<RecordBatch, RuleError> {
        let mut fields = vec![
            Field::new(network::EVENT_ID, DataType::Int64, false),
            Field::new(network::USER_ID, DataType::Int64, false),
            Field::new(network::EVENT_TYPE, DataType::Utf8, false),
            Field::new(
                network::TS,
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ];
        let mut columns: Vec<ArrayRef> = vec![
            ScalarValue::Int64(Some(self.event_id)).to_array()?,
            ScalarValue::Int64(Some(self.user_id)).to_array()?,
            ScalarValue::Utf8(Some(self.event_type.clone())).to_array()?,
            ScalarValue::TimestampMicrosecond(Some(self.ts_micros), Some("UTC".into()))
                .to_array()?,
        ];
        for (name, value) in &self.fields {
            fields.push(Field::new(name, value.data_type(), true));
            columns.push(value.to_array()?);
        }
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(DataFusionError::from)?)
    }
}

/// One fired rule, for Rust callers.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub event_id: i64,
    pub user_id: i64,
    pub rule_id: i64,
    pub rule_version: i64,
    pub action: ActionKind,
    pub params: String,
    pub channel: String,
    /// Microseconds since the epoch: the event's time, or a pattern's deadline.
    pub fired_at: i64,
}

impl Match {
    /// The rows of `batches` (of [`match_schema`] with integer ids); an error for rows of
    /// another shape.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Match>, RuleError> {
        let mut out = Vec::new();
        for b in batches {
            let not_matches = |what: String| {
                RuleError::Engine(DataFusionError::Internal(format!(
                    "rows that are not of match_schema: {what}"
                )))
            };
            let column = |i: usize| {
                b.columns()
                    .get(i)
                    .ok_or_else(|| not_matches(format!("{} columns", b.num_columns())))
            };
            let int = |i: usize| -> Result<ArrayRef, RuleError> {
                datafusion::arrow::compute::cast(column(i)?, &DataType::Int64)
                    .map_err(|e| not_matches(format!("column {i}: {e}")))
            };
            let (events, users, ids, versions) = (int(0)?, int(1)?, int(2)?, int(3)?);
            let text = |i: usize| -> Result<StringArray, RuleError> {
                column(i)?
                    .as_string_opt::<i32>()
                    .cloned()
                    .ok_or_else(|| not_matches(format!("column {i} is not text")))
            };
            let (actions, params, channels) = (text(6)?, text(7)?, text(8)?);
            let fired = int(9)?;
            for row in 0..b.num_rows() {
                let v = |a: &ArrayRef| a.as_primitive::<Int64Type>().value(row);
                let action = actions.value(row);
                out.push(Match {
                    event_id: v(&events),
                    user_id: v(&users),
                    rule_id: v(&ids),
                    rule_version: v(&versions),
                    action: ActionKind::parse(action)
                        .ok_or_else(|| not_matches(format!("unknown action '{action}'")))?,
                    params: params.value(row).to_string(),
                    channel: channels.value(row).to_string(),
                    fired_at: if fired.is_null(row) {
                        i64::MIN
                    } else {
                        v(&fired)
                    },
                });
            }
        }
        Ok(out)
    }
}

impl AudienceSource for AudienceStore {
    fn members(&self, name: &str) -> Result<Arc<Bitmap>, RuleError> {
        match self.get(name) {
            Ok(Some((_, members))) => Ok(Arc::new(members)),
            Ok(None) => Ok(Arc::new(Bitmap::new())),
            Err(e) => Err(RuleError::Damaged {
                message: format!("audience '{name}': {e}"),
            }),
        }
    }

    fn version(&self, name: &str) -> Result<Option<i64>, RuleError> {
        self.info(name)
            .map(|info| info.map(|i| i.refreshed_at_micros))
            .map_err(|e| RuleError::Damaged {
                message: format!("audience '{name}': {e}"),
            })
    }
}

/// A network and what it was compiled from: (rules generation, event schema, how missing
/// columns are treated, set), and when its audiences were last found current.
type Compiled = (u64, SchemaRef, network::Missing, Arc<RuleSet>, Instant);

/// How stale the audiences of a network may be for single events: they are checked at
/// most this often (a batch checks them every time).
const AUDIENCE_CHECK: Duration = Duration::from_secs(1);

/// The rules of an engine: store, compile, match. Cheap to clone.
#[derive(Clone)]
pub struct Rules {
    store: RuleStore,
    audiences: AudienceStore,
    /// The context conditions are planned in (its functions); weak, as the engine
    /// owns it.
    context: Weak<SessionContext>,
    /// Networks by (generation, schema, missing-column mode): rebuilt when the rules change.
    compiled: Arc<Mutex<Vec<Compiled>>>,
    /// Where coupon actions reserve.
    coupons: Coupons,
    /// The single-event matcher and its state.
    events: Arc<Mutex<Option<(u64, EventMatcher)>>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rules")
    }
}

impl Rules {
    pub(crate) fn new(
        store: RuleStore,
        audiences: AudienceStore,
        coupons: Coupons,
        context: &Arc<SessionContext>,
    ) -> Rules {
        Rules {
            store,
            audiences,
            coupons,
            context: Arc::downgrade(context),
            compiled: Arc::default(),
            events: Arc::default(),
        }
    }

    /// The durable store of rules and outbox.
    pub fn store(&self) -> &RuleStore {
        &self.store
    }

    fn context(&self) -> Result<Arc<SessionContext>, RuleError> {
        self.context.upgrade().ok_or(RuleError::Closed)
    }

    /// Stores a new rule (version 1), checked against the events table when it exists.
    pub async fn create(&self, rule: Rule) -> Result<(), RuleError> {
        self.change(vec![Change::Insert(rule)]).await.map(drop)
    }

    /// Stores a new version of an existing rule.
    pub async fn update(&self, rule: Rule) -> Result<(), RuleError> {
        self.change(vec![Change::Update(rule)]).await.map(drop)
    }

    /// Removes a rule (its versions stay readable).
    pub async fn delete(&self, id: i64) -> Result<(), RuleError> {
        self.change(vec![Change::Delete(id)]).await.map(drop)
    }

    /// Applies changes in one durable transaction, each rule checked first.
    pub async fn change(&self, changes: Vec<Change>) -> Result<u64, RuleError> {
        let schema = self.events_schema().await;
        self.store
            .apply(changes, &|rule| self.check(rule, schema.as_ref()))
    }

    /// Checks a rule against `schema` by compiling it alone.
    fn check(&self, rule: &Rule, schema: Option<&SchemaRef>) -> Result<(), RuleError> {
        let Some(schema) = schema else {
            return Ok(());
        };
        let mut alone = rule.clone();
        alone.enabled = true;
        let context = self.context()?;
        RuleSet::compile(
            &[Arc::new(alone)],
            schema.clone(),
            &context.state(),
            &self.audiences,
            network::Missing::Error,
        )
        .map(drop)
        .map_err(|e| match e {
            RuleError::EventColumn { column, message } => RuleError::BadRule {
                id: rule.id,
                message: format!("the events table '{EVENTS_TABLE}' column '{column}': {message}"),
            },
            other => other,
        })
    }

    /// The columns rules are checked against: the events table's, and the profile
    /// table's that the events lack.
    async fn events_schema(&self) -> Option<SchemaRef> {
        let context = self.context().ok()?;
        let events = context.table_provider(EVENTS_TABLE).await.ok()?.schema();
        let mut fields: Vec<Arc<Field>> = events.fields().iter().cloned().collect();
        if let Ok(profiles) = context.table_provider(PROFILES_TABLE).await {
            for f in profiles.schema().fields() {
                if events.field_with_name(f.name()).is_err() {
                    fields.push(f.clone());
                }
            }
        }
        Some(Arc::new(Schema::new(fields)))
    }

    /// The network of the current rules over `schema` (compiled once per change).
    pub fn compile(&self, schema: SchemaRef) -> Result<Arc<RuleSet>, RuleError> {
        self.compile_with(schema, network::Missing::Error)
    }

    fn compile_with(
        &self,
        schema: SchemaRef,
        missing: network::Missing,
    ) -> Result<Arc<RuleSet>, RuleError> {
        let generation = self.store.generation();
        // A batch sees every audience as it is now; single events may lag a second.
        let fresh_for = match missing {
            network::Missing::Error => Duration::ZERO,
            network::Missing::Null => AUDIENCE_CHECK,
        };
        {
            let mut compiled = self.compiled.lock().expect(crate::LOCK_POISONED);
            if let Some((_, _, _, set, checked)) = compiled
                .iter_mut()
                .find(|(g, s, m, _, _)| *g == generation && **s == *schema && *m == missing)
            {
                if checked.elapsed() < fresh_for {
                    return Ok(set.clone());
                }
                if set.audiences_current(&self.audiences)? {
                    *checked = Instant::now();
                    return Ok(set.clone());
                }
            }
        }
        let rules = self.store.rules()?;
        let context = self.context()?;
        let set = Arc::new(RuleSet::compile(
            &rules,
            schema.clone(),
            &context.state(),
            &self.audiences,
            missing,
        )?);
        let mut compiled = self.compiled.lock().expect(crate::LOCK_POISONED);
        compiled.retain(|(g, s, m, _, _)| *g == generation && (**s != *schema || *m != missing));
        compiled.push((generation, schema, missing, set.clone(), Instant::now()));
        Ok(set)
    }

    /// Matches one event against the current rules, in memory: patterns and caps keep
    /// their per-user state between calls (see [`matcher`]).
    pub fn match_event(&self, event: &Event) -> Result<Vec<Match>, RuleError> {
        let batch = event.to_batch()?;
        let generation = self.store.generation();
        let set = self.compile_with(batch.schema(), network::Missing::Null)?;
        let mut matcher = self.events.lock().expect(crate::LOCK_POISONED);
        // Changed rules start a new matcher: state of the old rules does not carry
        // over. Events of another shape (other fields) compile their own network of the
        // same rules and share the state.
        let current = match matcher.take() {
            Some((g, mut m)) if g == generation => {
                m.use_set(set);
                m
            }
            _ => EventMatcher::new(set),
        };
        let (_, current) = matcher.insert((generation, current));
        let rows = current.match_event(&batch)?;
        let matches = Match::from_batches(&rows)?;
        crate::metrics::RULE_EVENTS.add(1);
        crate::metrics::RULE_MATCHES.add(matches.len() as u64);
        Ok(matches)
    }
}

impl Rules {
    /// Carries out fired rules (rows of [`match_schema`]) and returns, per row, what
    /// happened:
    /// - `coupon`: reserves one coupon of `params.pool` for the user with the request
    ///   key `rule:<rule_id>:<event_id>`, so the same rule and event reserve at most
    ///   once; the outcome is the reservation's (`reserved`, `sold_out`, `user_limit`,
    ///   ..., `duplicate:<first outcome>`), `no_such_pool` when the pool does not exist;
    /// - `message` and `state`: queues an entry in the outbox (`martdb.rule_outbox`):
    ///   `queued`, or `duplicate` when the same rule and event were queued before;
    /// - `emit`: nothing to do: `emitted`.
    ///
    /// Every outcome is durable before this returns.
    pub async fn apply(&self, matches: &[RecordBatch]) -> Result<Vec<String>, RuleError> {
        let mut outcomes = Vec::new();
        let mut outbox: Vec<(usize, OutboxEntry)> = Vec::new();
        let mut coupons: HashMap<String, Vec<(usize, ReserveRequest)>> = HashMap::new();
        let now = store::now_micros();
        for batch in matches {
            let text = |i: usize| -> Result<Vec<Option<String>>, RuleError> {
                let a = datafusion::arrow::compute::cast(batch.column(i), &DataType::Utf8)
                    .map_err(|e| RuleError::Engine(e.into()))?;
                Ok(a.as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::to_string))
                    .collect())
            };
            let (events, users) = (text(0)?, text(1)?);
            let ids = batch.column(2).as_primitive::<Int64Type>();
            let versions = batch.column(3).as_primitive::<Int64Type>();
            let (actions, params, channels) = (text(6)?, text(7)?, text(8)?);
            let fired = datafusion::arrow::compute::cast(batch.column(9), &DataType::Int64)
                .map_err(|e| RuleError::Engine(e.into()))?;
            let fired = fired.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let at = outcomes.len();
                outcomes.push(String::new());
                let event = events[row].clone().unwrap_or_default();
                let user = users[row].clone().unwrap_or_default();
                let rule_id = ids.value(row);
                let param = params[row].clone().unwrap_or_default();
                match actions[row].as_deref().and_then(ActionKind::parse) {
                    Some(ActionKind::Coupon) => {
                        let pool = serde_json::from_str::<serde_json::Value>(&param)
                            .ok()
                            .and_then(|p| {
                                p.get("pool").and_then(|v| v.as_str()).map(str::to_string)
                            })
                            .unwrap_or_default();
                        coupons.entry(pool.clone()).or_default().push((
                            at,
                            ReserveRequest {
                                pool,
                                user_id: user,
                                request_key: format!("rule:{rule_id}:{event}"),
                            },
                        ));
                    }
                    Some(kind @ (ActionKind::Message | ActionKind::State)) => outbox.push((
                        at,
                        OutboxEntry {
                            rule_id,
                            rule_version: versions.value(row),
                            event_id: event,
                            user_id: user,
                            kind: kind.as_str().into(),
                            channel: channels[row].clone().unwrap_or_default(),
                            params: param,
                            fired_at: (!fired.is_null(row)).then(|| fired.value(row)),
                            queued_at: now,
                        },
                    )),
                    _ => outcomes[at] = "emitted".into(),
                }
            }
        }
        let entries: Vec<OutboxEntry> = outbox.iter().map(|(_, e)| e.clone()).collect();
        let store = self.store.clone();
        let fresh = tokio::task::spawn_blocking(move || store.enqueue(&entries))
            .await
            .map_err(|e| RuleError::Damaged {
                message: format!("queuing: {e}"),
            })??;
        for ((at, _), new) in outbox.iter().zip(fresh) {
            outcomes[*at] = if new { "queued" } else { "duplicate" }.into();
        }
        let pools: Vec<String> = self
            .coupons
            .pools()
            .map_err(|e| RuleError::Damaged {
                message: format!("coupon pools: {e}"),
            })?
            .into_iter()
            .map(|p| p.name)
            .collect();
        for (pool, requests) in coupons {
            if !pools.contains(&pool) {
                for (at, _) in &requests {
                    outcomes[*at] = "no_such_pool".into();
                }
                continue;
            }
            let (slots, requests): (Vec<usize>, Vec<ReserveRequest>) = requests.into_iter().unzip();
            match self.coupons.reserve_many_async(requests.clone()).await {
                Ok(answers) => {
                    for (at, answer) in slots.iter().zip(answers) {
                        outcomes[*at] = answer.to_string();
                    }
                }
                // One bad request (a key reused with another pool or user) fails the
                // whole call: decide them one by one so the others still reserve.
                Err(_) => {
                    for (at, r) in slots.iter().zip(requests) {
                        outcomes[*at] = match self
                            .coupons
                            .reserve_async(&r.pool, &r.user_id, &r.request_key)
                            .await
                        {
                            Ok(answer) => answer.to_string(),
                            Err(e) => format!("error: {e}"),
                        };
                    }
                }
            }
        }
        Ok(outcomes)
    }

    /// Every queued outbox entry.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, RuleError> {
        self.store.outbox()
    }
}

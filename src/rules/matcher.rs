//! From candidate matches to fired rules: window patterns, conflict policies and
//! frequency caps, over a whole input ([`BatchMatcher`]) or one event at a time
//! ([`EventMatcher`]).
//!
//! Candidates of rules that need no order (no pattern, no cap on their channel, an
//! `all` group) fire as they are. The others are decided per user in time order:
//! events by (time, event id), the rules of one event by priority (higher first), then
//! id. For each: a rule in a `first` group does not fire when a rule of its group
//! already fired for the event; a rule with a cap does not fire when its channel
//! already carried `count` actions for the user within the cap's window ending at
//! this time (every fired action on the channel counts, capped rule or not). A rule
//! that does not fire leaves the event to the next rule of its group.
//!
//! Caps also count the actions taken before the input ([`BatchMatcher::taken_before`]:
//! the outbox of earlier `apply_rules` runs); a match of a rule and event that already
//! took its action is that action again, not a new one.
//!
//! The batch matcher decides in event time. The event matcher decides caps and groups
//! in arrival order, which is the same for events that arrive in time order; patterns
//! are decided in event time by both (see [`super::pattern`]). Its state is bounded:
//! per user and pattern it keeps the events of the pattern's horizon plus
//! [`ALLOWED_LATENESS_MICROS`] (at most [`MAX_EVENTS_PER_PARTITION`]), and the actions
//! of the longest cap window as long.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, interleave};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::row::{RowConverter, SortField};

use super::RuleError;
use super::model::Policy;
use super::network::RuleSet;
use super::pattern::{Found, PatternEvent};

/// The most events the event matcher keeps per user and pattern.
pub const MAX_EVENTS_PER_PARTITION: usize = 4096;

/// How late (behind the latest event time seen) an event may arrive and still be
/// matched against the events it belongs with: state is kept this much longer than
/// patterns and caps need.
pub const ALLOWED_LATENESS_MICROS: i64 = 3_600_000_000;

/// One fired rule: the event (batch and row of the input), the rule (index into the
/// set) and when it fired (the event's time, or a pattern's deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fired {
    pub batch: u32,
    pub row: u32,
    pub rule: u32,
    pub at: i64,
}

/// The columns of a match, in order: what `match_rules` returns.
pub fn match_schema(event_id: &DataType, user_id: &DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("event_id", event_id.clone(), true),
        Field::new("user_id", user_id.clone(), true),
        Field::new("rule_id", DataType::Int64, false),
        Field::new("rule_version", DataType::Int64, false),
        Field::new("rule_name", DataType::Utf8, false),
        Field::new("rule_group", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("action_params", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new(
            "fired_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// A candidate waiting for the ordered decision.
struct Waiting {
    user: Box<[u8]>,
    order: i64,
    fired: Fired,
}

struct PatternRow {
    partition: Box<[u8]>,
    event: PatternEvent,
    batch: u32,
    row: u32,
}

/// Matches a whole input, batch by batch, and decides at the end.
pub struct BatchMatcher<'a> {
    set: &'a RuleSet,
    /// The event_id and user_id columns of every batch, for the output.
    keys: Vec<(ArrayRef, ArrayRef)>,
    direct: Vec<Fired>,
    waiting: Vec<Waiting>,
    /// Per rule with a pattern: the events it looks at.
    patterns: HashMap<u32, Vec<PatternRow>>,
    /// Whether each rule's candidates are decided in order.
    in_order: Vec<bool>,
    watermark: i64,
    /// Actions taken before this input, per user (row-encoded user id): what caps count.
    history: HashMap<Box<[u8]>, Vec<Taken>>,
}

/// An action taken before: its channel, when, and by which rule for which event (a
/// match of the same rule and event again is that action, not another one).
#[derive(Debug, Clone)]
struct Taken {
    channel: usize,
    at: i64,
    rule_id: i64,
    event_id: String,
}

/// What orders events of the same time: the event id when it is an integer, else the
/// input position (`base` is the position of the batch's first row).
struct Orders {
    ids: Option<Int64Array>,
    base: i64,
}

impl Orders {
    fn of(set: &RuleSet, batch: &RecordBatch, base: i64) -> Orders {
        let ids = batch.column(set.columns.event_id);
        let ids = ids
            .data_type()
            .is_integer()
            .then(|| cast(ids, &DataType::Int64).ok())
            .flatten()
            .map(|a| a.as_primitive::<Int64Type>().clone());
        Orders { ids, base }
    }

    fn key(&self, row: usize) -> i64 {
        match &self.ids {
            Some(ids) if ids.is_valid(row) => ids.value(row),
            _ => self.base + row as i64,
        }
    }
}

fn rows_of(columns: &[ArrayRef]) -> Result<datafusion::arrow::row::Rows, RuleError> {
    let converter = RowConverter::new(
        columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect(),
    )
    .map_err(|e| RuleError::Engine(e.into()))?;
    converter
        .convert_columns(columns)
        .map_err(|e| RuleError::Engine(e.into()))
}

/// Which rules are decided in order: those with a pattern or a cap, those in a `first`
/// group, and every rule whose channel some rule caps.
fn decided_in_order(set: &RuleSet) -> Vec<bool> {
    let capped: HashSet<usize> = set
        .rules
        .iter()
        .filter(|r| r.rule.cap.is_some())
        .map(|r| r.channel)
        .collect();
    set.rules
        .iter()
        .map(|r| {
            r.pattern.is_some() || r.rule.policy == Policy::First || capped.contains(&r.channel)
        })
        .collect()
}

impl<'a> BatchMatcher<'a> {
    pub fn new(set: &'a RuleSet) -> Self {
        BatchMatcher {
            set,
            keys: Vec::new(),
            direct: Vec::new(),
            waiting: Vec::new(),
            patterns: HashMap::new(),
            in_order: decided_in_order(set),
            watermark: i64::MIN,
            history: HashMap::new(),
        }
    }

    /// Actions taken before this input (by earlier runs), which frequency caps count:
    /// `(user_id, channel, at, rule_id, event_id)`, user ids as text. Channels no rule
    /// uses are ignored.
    pub fn taken_before(
        &mut self,
        actions: impl IntoIterator<Item = (String, String, i64, i64, String)>,
    ) -> Result<(), RuleError> {
        let mut taken: Vec<(String, Taken)> = Vec::new();
        for (user, channel, at, rule_id, event_id) in actions {
            if let Some(channel) = self.set.channels.iter().position(|c| *c == channel) {
                taken.push((
                    user,
                    Taken {
                        channel,
                        at,
                        rule_id,
                        event_id,
                    },
                ));
            }
        }
        if taken.is_empty() {
            return Ok(());
        }
        // Users encoded as the events' user column is, so that they compare as bytes.
        let user_type = self
            .set
            .schema
            .field(self.set.columns.user_id)
            .data_type()
            .clone();
        let users: ArrayRef = Arc::new(StringArray::from_iter_values(taken.iter().map(|(u, _)| u)));
        let users = cast(&users, &user_type).map_err(|e| RuleError::Engine(e.into()))?;
        let rows = rows_of(&[users])?;
        for (i, (_, t)) in taken.into_iter().enumerate() {
            self.history
                .entry(rows.row(i).as_ref().into())
                .or_default()
                .push(t);
        }
        Ok(())
    }

    /// Matches one batch of events (its schema is the set's).
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), RuleError> {
        crate::metrics::RULE_EVENTS.add(batch.num_rows() as u64);
        let set = self.set;
        let batch_no = self.keys.len() as u32;
        let columns = set.columns;
        self.keys.push((
            batch.column(columns.event_id).clone(),
            batch.column(columns.user_id).clone(),
        ));
        let ts = set.timestamps(batch)?;
        if let Some(ts) = &ts {
            self.watermark = self
                .watermark
                .max(ts.iter().copied().max().unwrap_or(i64::MIN));
        }
        let orders = Orders::of(set, batch, self.positions());
        let candidates = set.candidates(batch)?;
        let mut users = None;
        let mut counted: HashMap<u32, Vec<u32>> = HashMap::new();
        for (row, rule) in candidates {
            let compiled = &set.rules[rule as usize];
            if compiled.pattern.is_some() {
                counted.entry(rule).or_default().push(row);
                continue;
            }
            let fired = Fired {
                batch: batch_no,
                row,
                rule,
                at: ts.as_ref().map_or(i64::MIN, |t| t[row as usize]),
            };
            if self.in_order[rule as usize] {
                let users = match &users {
                    Some(u) => u,
                    None => users.insert(rows_of(&[batch.column(columns.user_id).clone()])?),
                };
                self.waiting.push(Waiting {
                    user: users.row(row as usize).as_ref().into(),
                    order: orders.key(row as usize),
                    fired,
                });
            } else {
                self.direct.push(fired);
            }
        }
        // The type column once for every pattern rule.
        let types = cast(batch.column(columns.event_type), &DataType::Utf8)
            .map_err(|e| RuleError::Engine(e.into()))?;
        for (rule, compiled) in set.rules.iter().enumerate() {
            let Some(pattern) = &compiled.pattern else {
                continue;
            };
            let counted = counted.remove(&(rule as u32)).unwrap_or_default();
            let mut key_columns = vec![batch.column(columns.user_id).clone()];
            for column in &pattern.same {
                // Checked when the set was compiled for batches (Missing::Error).
                let i = set
                    .schema
                    .index_of(column)
                    .map_err(|_| RuleError::EventColumn {
                        column: column.clone(),
                        message: "a pattern's `with same` column is missing".into(),
                    })?;
                key_columns.push(batch.column(i).clone());
            }
            let keys = rows_of(&key_columns)?;
            let types = types.as_string::<i32>();
            let ts = ts
                .as_ref()
                .expect("RuleSet::compile requires a ts column when a rule has a pattern");
            let rows = self.patterns.entry(rule as u32).or_default();
            let mut next_counted = counted.iter().peekable();
            let mut interned: HashMap<&str, Arc<str>> = HashMap::new();
            for (row, &time) in ts.iter().enumerate() {
                let is_counted = next_counted.next_if(|&&r| r as usize == row).is_some();
                if types.is_null(row) {
                    continue;
                }
                let t = types.value(row);
                if !is_counted && !compiled.watches.iter().any(|w| w == t) {
                    continue;
                }
                let event_type = interned.entry(t).or_insert_with(|| t.into()).clone();
                rows.push(PatternRow {
                    partition: keys.row(row).as_ref().into(),
                    event: PatternEvent {
                        ts: time,
                        order: orders.key(row),
                        event_type,
                        counted: is_counted,
                    },
                    batch: batch_no,
                    row: row as u32,
                });
            }
        }
        Ok(())
    }

    fn positions(&self) -> i64 {
        self.keys.iter().map(|(ids, _)| ids.len() as i64).sum()
    }

    /// Decides the patterns and the ordered rules, and returns every fired rule as rows
    /// of [`match_schema`], in input order.
    pub fn finish(self) -> Result<Vec<RecordBatch>, RuleError> {
        self.finish_columns(None)
    }

    /// [`finish`](Self::finish) with only `columns` of [`match_schema`] (None: all).
    pub fn finish_columns(
        mut self,
        columns: Option<&[usize]>,
    ) -> Result<Vec<RecordBatch>, RuleError> {
        let set = self.set;
        let mut users_of_batch: HashMap<u32, datafusion::arrow::row::Rows> = HashMap::new();
        for (rule, mut rows) in std::mem::take(&mut self.patterns) {
            let pattern = set.rules[rule as usize]
                .pattern
                .as_ref()
                .expect("rows are collected only for rules with a pattern");
            rows.sort_unstable_by(|a, b| {
                (&a.partition, a.event.ts, a.event.order).cmp(&(
                    &b.partition,
                    b.event.ts,
                    b.event.order,
                ))
            });
            let mut found = Vec::new();
            let mut start = 0;
            while start < rows.len() {
                let end = start
                    + rows[start..]
                        .iter()
                        .position(|r| r.partition != rows[start].partition)
                        .unwrap_or(rows.len() - start);
                let events: Vec<PatternEvent> =
                    rows[start..end].iter().map(|r| r.event.clone()).collect();
                found.clear();
                pattern.evaluate(&events, self.watermark, &mut found);
                for f in &found {
                    match *f {
                        Found::Fired { index, at } => {
                            let r = &rows[start + index];
                            let fired = Fired {
                                batch: r.batch,
                                row: r.row,
                                rule,
                                at,
                            };
                            if self.in_order[rule as usize] {
                                let users = match users_of_batch.get(&r.batch) {
                                    Some(u) => u,
                                    None => {
                                        let column = self.keys[r.batch as usize].1.clone();
                                        users_of_batch.entry(r.batch).or_insert(rows_of(&[column])?)
                                    }
                                };
                                self.waiting.push(Waiting {
                                    user: users.row(r.row as usize).as_ref().into(),
                                    order: r.event.order,
                                    fired,
                                });
                            } else {
                                self.direct.push(fired);
                            }
                        }
                        // Not decided yet: the input did not pass the deadline.
                        Found::Pending { .. } | Found::Cancelled { .. } => {}
                    }
                }
                start = end;
            }
        }
        let mut fired = std::mem::take(&mut self.direct);
        fired.extend(decide_in_order(
            set,
            std::mem::take(&mut self.waiting),
            &self.history,
            &self.keys,
        )?);
        fired.sort_unstable_by_key(|f| (f.batch, f.row, f.rule, f.at));
        crate::metrics::RULE_MATCHES.add(fired.len() as u64);
        output(set, &self.keys, &fired, columns)
    }
}

/// The ordered decision over all waiting candidates (module docs).
fn decide_in_order(
    set: &RuleSet,
    mut waiting: Vec<Waiting>,
    history: &HashMap<Box<[u8]>, Vec<Taken>>,
    keys: &[(ArrayRef, ArrayRef)],
) -> Result<Vec<Fired>, RuleError> {
    let rank = |rule: u32| {
        let r = &set.rules[rule as usize].rule;
        (std::cmp::Reverse(r.priority), r.id)
    };
    waiting.sort_unstable_by(|a, b| {
        (
            &a.user,
            a.fired.at,
            a.order,
            a.fired.batch,
            a.fired.row,
            rank(a.fired.rule),
        )
            .cmp(&(
                &b.user,
                b.fired.at,
                b.order,
                b.fired.batch,
                b.fired.row,
                rank(b.fired.rule),
            ))
    });
    let mut out = Vec::new();
    let mut state = UserState::default();
    let mut user: Option<&[u8]> = None;
    let mut before: &[Taken] = &[];
    for w in &waiting {
        if user != Some(&w.user) {
            state = UserState::default();
            user = Some(&w.user);
            before = history.get(&w.user).map_or(&[], Vec::as_slice);
            let mut taken: Vec<&Taken> = before.iter().collect();
            taken.sort_by_key(|t| t.at);
            for t in taken {
                state.actions.entry(t.channel).or_default().push_back(t.at);
            }
        }
        let rule_id = set.rules[w.fired.rule as usize].rule.id;
        if !before.is_empty() {
            // The same rule and event again: the action it took before, already counted.
            let event_id = datafusion::arrow::util::display::array_value_to_string(
                &keys[w.fired.batch as usize].0,
                w.fired.row as usize,
            )
            .map_err(|e| RuleError::Engine(e.into()))?;
            if before
                .iter()
                .any(|t| t.rule_id == rule_id && t.event_id == event_id)
            {
                out.push(w.fired);
                continue;
            }
        }
        if state.decide(set, (w.fired.batch, w.fired.row), w.fired.rule, w.fired.at) {
            out.push(w.fired);
        }
    }
    Ok(out)
}

/// One user's recent actions per channel and the groups that fired per event.
#[derive(Debug, Default)]
struct UserState {
    actions: HashMap<usize, VecDeque<i64>>,
    groups: HashSet<((u32, u32), String)>,
}

impl UserState {
    /// Whether `rule` fires for `event` at `at`, recording it when it does.
    fn decide(&mut self, set: &RuleSet, event: (u32, u32), rule: u32, at: i64) -> bool {
        let compiled = &set.rules[rule as usize];
        let r = &compiled.rule;
        if r.policy == Policy::First && self.groups.contains(&(event, r.group.clone())) {
            return false;
        }
        let actions = self.actions.entry(compiled.channel).or_default();
        if let Some(cap) = r.cap {
            let since = at.saturating_sub(cap.window_micros);
            let recent = actions.iter().filter(|&&t| t >= since && t <= at).count();
            if recent >= cap.count as usize {
                return false;
            }
        }
        actions.push_back(at);
        if r.policy == Policy::First {
            self.groups.insert((event, r.group.clone()));
        }
        true
    }

    /// Forgets actions older than `horizon` and groups of events before it.
    fn expire(&mut self, horizon: i64) {
        for actions in self.actions.values_mut() {
            while actions.front().is_some_and(|&t| t < horizon) {
                actions.pop_front();
            }
        }
        self.actions.retain(|_, a| !a.is_empty());
    }
}

/// Rows of [`match_schema`] for `fired`, taking event and user ids from `keys`.
fn output(
    set: &RuleSet,
    keys: &[(ArrayRef, ArrayRef)],
    fired: &[Fired],
    columns: Option<&[usize]>,
) -> Result<Vec<RecordBatch>, RuleError> {
    let schema = match_schema(
        set.schema.field(set.columns.event_id).data_type(),
        set.schema.field(set.columns.user_id).data_type(),
    );
    let all: Vec<usize> = (0..schema.fields().len()).collect();
    let columns = columns.unwrap_or(&all);
    let projected = Arc::new(
        schema
            .project(columns)
            .map_err(|e| RuleError::Engine(e.into()))?,
    );
    let rule = |f: &Fired| set.rules[f.rule as usize].rule.as_ref();
    let has_ts = set.columns.ts.is_some();
    let mut out = Vec::new();
    for chunk in fired.chunks(8192) {
        let indices: Vec<(usize, usize)> = chunk
            .iter()
            .map(|f| (f.batch as usize, f.row as usize))
            .collect();
        let pick = |which: fn(&(ArrayRef, ArrayRef)) -> &ArrayRef| {
            let arrays: Vec<&dyn Array> = keys.iter().map(|k| which(k).as_ref()).collect();
            interleave(&arrays, &indices).map_err(|e| RuleError::Engine(e.into()))
        };
        fn text<'s>(chunk: &[Fired], f: impl Fn(&Fired) -> &'s str) -> ArrayRef {
            Arc::new(StringArray::from_iter_values(chunk.iter().map(f)))
        }
        // Only the columns asked for are built: count(*) builds none.
        let column = |i: usize| -> Result<ArrayRef, RuleError> {
            Ok(match i {
                0 => pick(|k| &k.0)?,
                1 => pick(|k| &k.1)?,
                2 => Arc::new(Int64Array::from_iter_values(
                    chunk.iter().map(|f| rule(f).id),
                )),
                3 => Arc::new(Int64Array::from_iter_values(
                    chunk.iter().map(|f| rule(f).version),
                )),
                4 => text(chunk, |f| rule(f).name.as_str()),
                5 => text(chunk, |f| rule(f).group.as_str()),
                6 => text(chunk, |f| rule(f).action.as_str()),
                7 => text(chunk, |f| rule(f).params.as_str()),
                8 => text(chunk, |f| {
                    set.channels[set.rules[f.rule as usize].channel].as_str()
                }),
                _ => Arc::new(
                    TimestampMicrosecondArray::from_iter(
                        chunk
                            .iter()
                            .map(|f| (has_ts && f.at != i64::MIN).then_some(f.at)),
                    )
                    .with_timezone("UTC"),
                ),
            })
        };
        let arrays = columns
            .iter()
            .map(|&i| column(i))
            .collect::<Result<Vec<_>, _>>()?;
        let options =
            datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(chunk.len()));
        out.push(
            RecordBatch::try_new_with_options(projected.clone(), arrays, &options)
                .map_err(|e| RuleError::Engine(e.into()))?,
        );
    }
    Ok(out)
}

/// Matches single events as they arrive, keeping per-user state between calls.
pub struct EventMatcher {
    set: Arc<RuleSet>,
    in_order: Vec<bool>,
    users: HashMap<Box<[u8]>, UserState>,
    /// Per (rule, partition): the pattern's recent events, in event time order.
    partitions: HashMap<(u32, Box<[u8]>), Partition>,
    watermark: i64,
    arrivals: i64,
    /// Pattern matches waiting for their deadline: (deadline, rule, partition).
    pending: Vec<(i64, u32, Box<[u8]>)>,
    /// How long state is kept behind the watermark: the longest pattern horizon or cap
    /// window (0: none is needed).
    horizon: i64,
}

#[derive(Default)]
struct Partition {
    events: Vec<(PatternEvent, RecordBatch)>,
    /// Orders of the counted events whose match was already reported.
    reported: HashSet<i64>,
}

impl EventMatcher {
    pub fn new(set: Arc<RuleSet>) -> Self {
        let in_order = decided_in_order(&set);
        let horizon = set
            .rules
            .iter()
            .map(|r| {
                r.pattern
                    .as_ref()
                    .map_or(0, |p| p.horizon_micros())
                    .max(r.rule.cap.map_or(0, |c| c.window_micros))
            })
            .max()
            .unwrap_or(0);
        EventMatcher {
            set,
            in_order,
            users: HashMap::new(),
            partitions: HashMap::new(),
            watermark: i64::MIN,
            arrivals: 0,
            pending: Vec::new(),
            horizon: if horizon == 0 {
                0
            } else {
                horizon + ALLOWED_LATENESS_MICROS
            },
        }
    }

    /// Goes on with `set`, a network of the same rules over another event schema.
    pub fn use_set(&mut self, set: Arc<RuleSet>) {
        debug_assert_eq!(set.rules.len(), self.set.rules.len());
        self.set = set;
    }

    /// Matches one event (a one-row batch of the set's schema): the rules it fires now,
    /// and pattern matches of earlier events whose deadline its time passed, as rows of
    /// [`match_schema`].
    pub fn match_event(&mut self, event: &RecordBatch) -> Result<Vec<RecordBatch>, RuleError> {
        let set = self.set.clone();
        let candidates = set.candidates_of_one(event)?;
        let ts = set.timestamps(event)?.map_or(i64::MIN, |t| t[0]);
        self.arrivals += 1;
        let order = Orders::of(&set, event, self.arrivals).key(0);
        let user: Box<[u8]> = rows_of(&[event.column(set.columns.user_id).clone()])?
            .row(0)
            .as_ref()
            .into();
        let mut events = vec![event.clone()];
        let mut fired = Vec::new();
        // Rules with no pattern, in the order the decisions take them: priority first.
        let mut by_rank = candidates.clone();
        by_rank.sort_unstable_by_key(|&r| {
            let rule = &set.rules[r].rule;
            (std::cmp::Reverse(rule.priority), rule.id)
        });
        for &rule in &by_rank {
            if set.rules[rule].pattern.is_some() {
                continue;
            }
            let f = Fired {
                batch: 0,
                row: 0,
                rule: rule as u32,
                at: ts,
            };
            if !self.in_order[rule]
                || self.users.entry(user.clone()).or_default().decide(
                    &set,
                    (0, order as u32),
                    rule as u32,
                    ts,
                )
            {
                fired.push(f);
            }
        }
        self.watermark = self.watermark.max(ts);
        // Patterns: add the event to every pattern partition it belongs to, then
        // re-evaluate those partitions.
        let types = cast(event.column(set.columns.event_type), &DataType::Utf8)
            .map_err(|e| RuleError::Engine(e.into()))?;
        let types = types.as_string::<i32>();
        let event_type: Arc<str> = if types.is_null(0) {
            "".into()
        } else {
            types.value(0).into()
        };
        let mut touched = Vec::new();
        for (rule, compiled) in set.rules.iter().enumerate() {
            let Some(pattern) = &compiled.pattern else {
                continue;
            };
            let counted = candidates.binary_search(&rule).is_ok();
            let relevant = counted || compiled.watches.iter().any(|t| **t == *event_type);
            if !relevant {
                continue;
            }
            let mut key_columns = vec![event.column(set.columns.user_id).clone()];
            for column in &pattern.same {
                // An event without the column has NULL there.
                key_columns.push(match set.schema.index_of(column) {
                    Ok(i) => event.column(i).clone(),
                    Err(_) => datafusion::arrow::array::new_null_array(&DataType::Utf8, 1),
                });
            }
            let partition: Box<[u8]> = rows_of(&key_columns)?.row(0).as_ref().into();
            let p = self
                .partitions
                .entry((rule as u32, partition.clone()))
                .or_default();
            let e = PatternEvent {
                ts,
                order,
                event_type: event_type.clone(),
                counted,
            };
            let at = p
                .events
                .partition_point(|(x, _)| (x.ts, x.order) <= (e.ts, e.order));
            p.events.insert(at, (e, event.clone()));
            if p.events.len() > MAX_EVENTS_PER_PARTITION {
                p.events.remove(0);
            }
            touched.push((rule as u32, partition));
        }
        // Deadlines the watermark passed.
        let watermark = self.watermark;
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(d, _, _)| watermark > *d);
        self.pending = waiting;
        touched.extend(due.into_iter().map(|(_, r, p)| (r, p)));
        touched.sort_unstable();
        touched.dedup();
        let mut found = Vec::new();
        for (rule, partition) in touched {
            let Some(p) = self.partitions.get_mut(&(rule, partition.clone())) else {
                continue;
            };
            let pattern = set.rules[rule as usize]
                .pattern
                .as_ref()
                .expect("partitions are kept only for rules with a pattern");
            let evs: Vec<PatternEvent> = p.events.iter().map(|(e, _)| e.clone()).collect();
            found.clear();
            pattern.evaluate(&evs, watermark, &mut found);
            for f in &found {
                match *f {
                    Found::Fired { index, at } => {
                        let (e, batch) = &p.events[index];
                        if !p.reported.insert(e.order) {
                            continue;
                        }
                        let user: Box<[u8]> =
                            rows_of(&[batch.column(set.columns.user_id).clone()])?
                                .row(0)
                                .as_ref()
                                .into();
                        let allowed = !self.in_order[rule as usize]
                            || self.users.entry(user).or_default().decide(
                                &set,
                                (0, e.order as u32),
                                rule,
                                at,
                            );
                        if allowed {
                            events.push(batch.clone());
                            fired.push(Fired {
                                batch: (events.len() - 1) as u32,
                                row: 0,
                                rule,
                                at,
                            });
                        }
                    }
                    Found::Pending { index, deadline } => {
                        let e = &p.events[index].0;
                        if !p.reported.contains(&e.order)
                            && !self
                                .pending
                                .iter()
                                .any(|(d, r, q)| *d == deadline && *r == rule && *q == partition)
                        {
                            self.pending.push((deadline, rule, partition.clone()));
                        }
                    }
                    Found::Cancelled { .. } => {}
                }
            }
        }
        self.expire();
        let keys: Vec<(ArrayRef, ArrayRef)> = events
            .iter()
            .map(|b| {
                (
                    b.column(set.columns.event_id).clone(),
                    b.column(set.columns.user_id).clone(),
                )
            })
            .collect();
        output(&set, &keys, &fired, None)
    }

    /// Drops state no undecided match can need: events and actions before the horizon,
    /// and the groups of this event (groups are decided per event).
    fn expire(&mut self) {
        let horizon = if self.horizon == 0 {
            i64::MAX
        } else {
            self.watermark.saturating_sub(self.horizon)
        };
        self.partitions.retain(|_, p| {
            let keep_from = p.events.partition_point(|(e, _)| e.ts < horizon);
            for (e, _) in p.events.drain(..keep_from) {
                p.reported.remove(&e.order);
            }
            !p.events.is_empty()
        });
        for state in self.users.values_mut() {
            state.expire(horizon);
            state.groups.clear();
        }
        self.users.retain(|_, s| !s.actions.is_empty());
    }

    /// Events kept for patterns, over all users (a measure of the state's size).
    pub fn retained_events(&self) -> usize {
        self.partitions.values().map(|p| p.events.len()).sum()
    }
}

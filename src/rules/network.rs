//! The compiled network: every enabled rule over one event schema, with identical
//! conditions shared.
//!
//! Compilation splits each condition into its boolean structure and atoms
//! ([`super::condition`]), normalises each atom (`100 < amount` is `amount > 100`) and
//! interns it, so an atom used by 300 rules is evaluated once per batch (Rete's alpha
//! sharing). The boolean structure is interned the same way (hash-consing), so rules
//! that share a whole sub-condition share its result too. Rules are indexed by the
//! event type they trigger on.
//!
//! Evaluation is vectorised: an atom is a DataFusion physical expression evaluated over
//! a whole batch, and its result is kept as two bitmaps, "true" and "false" (a row in
//! neither is NULL). AND, OR and NOT are word-wide operations on those bitmaps, which is
//! SQL's three-valued logic exactly. A single event takes the same path with scalar
//! values and evaluates only what its event type's rules need.
//!
//! Invariant: a rule matches an event exactly when the event's type is the rule's
//! trigger type (or the rule takes every type), the event's time is within the rule's
//! validity window, and `WHERE <condition>` would keep the event's row.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef, TimeUnit};
use datafusion::common::DFSchema;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::sql::sqlparser::ast::ExprWithAlias as SQLExprWithAlias;

use super::RuleError;
use super::condition::{Atom, Condition};
use super::model::Rule;
use super::pattern::Pattern;
use crate::bitmap::Bitmap;

/// The columns of an event that matching itself reads (conditions read any).
pub const EVENT_ID: &str = "event_id";
pub const USER_ID: &str = "user_id";
pub const EVENT_TYPE: &str = "event_type";
pub const TS: &str = "ts";

/// Where the audience members of `in_audience` come from.
pub trait AudienceSource {
    /// The members of the saved audience `name` (an unknown audience has none).
    fn members(&self, name: &str) -> Result<Arc<Bitmap>, RuleError>;

    /// What changes when the audience's members change (its refresh time); None when
    /// there is no such audience.
    fn version(&self, name: &str) -> Result<Option<i64>, RuleError>;
}

/// A rule in the network.
#[derive(Debug)]
pub struct CompiledRule {
    pub rule: Arc<Rule>,
    /// The root of its condition; None means always true.
    pub(crate) node: Option<usize>,
    pub(crate) pattern: Option<Pattern>,
    /// The event type it triggers on: its own, or its pattern's last step.
    pub(crate) trigger: Option<String>,
    /// With a pattern: every event type the pattern reads (the trigger's included).
    pub(crate) watches: Vec<String>,
    /// Index into [`RuleSet::channels`].
    pub(crate) channel: usize,
}

#[derive(Debug)]
enum AtomEval {
    Sql(Arc<dyn PhysicalExpr>),
    Audience(Arc<Bitmap>),
    /// A column the event does not have: every value is NULL (single events only).
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Node {
    Atom(usize),
    And(Vec<usize>),
    Or(Vec<usize>),
    Not(usize),
}

/// Column positions in the event schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventColumns {
    pub event_id: usize,
    pub user_id: usize,
    pub event_type: usize,
    pub ts: Option<usize>,
}

/// Every enabled rule compiled against one event schema. Immutable: a change of rules
/// compiles a new set while matching goes on with the old one.
#[derive(Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<CompiledRule>,
    atoms: Vec<AtomEval>,
    nodes: Vec<Node>,
    /// Rule indices by trigger event type.
    by_type: HashMap<String, Vec<usize>>,
    /// Rules that look at every event type.
    any_type: Vec<usize>,
    pub(crate) channels: Vec<String>,
    /// The audiences the conditions read, with their versions when compiled.
    audiences: Vec<(String, Option<i64>)>,
    pub(crate) schema: SchemaRef,
    pub(crate) columns: EventColumns,
}

/// How a missing column is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missing {
    /// An error naming the rule (a query whose columns do not fit the rules).
    Error,
    /// NULL (a single event that simply lacks a field).
    Null,
}

fn flip(op: Operator) -> Option<Operator> {
    Some(match op {
        Operator::Eq => Operator::Eq,
        Operator::NotEq => Operator::NotEq,
        Operator::Lt => Operator::Gt,
        Operator::LtEq => Operator::GtEq,
        Operator::Gt => Operator::Lt,
        Operator::GtEq => Operator::LtEq,
        _ => return None,
    })
}

/// `literal op column` as `column op' literal`, so both spellings share one atom.
fn normalise(expr: Expr) -> Expr {
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(*left, Expr::Literal(..))
                && !matches!(*right, Expr::Literal(..))
                && flip(op).is_some() =>
        {
            Expr::BinaryExpr(BinaryExpr {
                left: right,
                op: flip(op).expect("the match guard checked flip(op).is_some()"),
                right: left,
            })
        }
        other => other,
    }
}

struct Builder<'a> {
    state: &'a SessionState,
    schema: DFSchema,
    audiences: &'a dyn AudienceSource,
    missing: Missing,
    atoms: Vec<AtomEval>,
    atom_ids: HashMap<AtomKey, usize>,
    nodes: Vec<Node>,
    node_ids: HashMap<Node, usize>,
    audience_versions: Vec<(String, Option<i64>)>,
}

#[derive(PartialEq, Eq, Hash)]
enum AtomKey {
    Sql(Expr),
    Audience(String),
    Missing(String),
}

impl Builder<'_> {
    fn node(&mut self, node: Node) -> usize {
        if let Some(&id) = self.node_ids.get(&node) {
            return id;
        }
        self.nodes.push(node.clone());
        self.node_ids.insert(node, self.nodes.len() - 1);
        self.nodes.len() - 1
    }

    fn atom(
        &mut self,
        key: AtomKey,
        eval: impl FnOnce() -> Result<AtomEval, String>,
    ) -> Result<usize, String> {
        if let Some(&id) = self.atom_ids.get(&key) {
            return Ok(id);
        }
        self.atoms.push(eval()?);
        self.atom_ids.insert(key, self.atoms.len() - 1);
        Ok(self.atoms.len() - 1)
    }

    fn condition(&mut self, c: &Condition) -> Result<usize, String> {
        let node = match c {
            Condition::Atom(Atom::Audience(name)) => {
                if !self.audience_versions.iter().any(|(n, _)| n == name) {
                    let version = self.audiences.version(name).map_err(|e| e.to_string())?;
                    self.audience_versions.push((name.clone(), version));
                }
                let members = self.audiences.members(name).map_err(|e| e.to_string())?;
                Node::Atom(self.atom(AtomKey::Audience(name.clone()), || {
                    Ok(AtomEval::Audience(members))
                })?)
            }
            Condition::Atom(Atom::Sql(sql)) => {
                let planned = self.state.create_logical_expr_from_sql_expr(
                    SQLExprWithAlias {
                        expr: (**sql).clone(),
                        alias: None,
                    },
                    &self.schema,
                );
                let expr = match planned {
                    Ok(expr) => normalise(expr),
                    Err(e) if self.missing == Missing::Null && is_missing_column(&e) => {
                        let atom =
                            self.atom(AtomKey::Missing(sql.to_string()), || Ok(AtomEval::Null))?;
                        return Ok(self.node(Node::Atom(atom)));
                    }
                    Err(e) => return Err(format!("{sql}: {}", e.strip_backtrace())),
                };
                let state = self.state;
                let schema = self.schema.clone();
                let schema = &schema;
                Node::Atom(self.atom(AtomKey::Sql(expr.clone()), || {
                    let physical = state
                        .create_physical_expr(expr, schema)
                        .map_err(|e| format!("{sql}: {}", e.strip_backtrace()))?;
                    let data_type = physical
                        .data_type(schema.as_arrow())
                        .map_err(|e| format!("{sql}: {}", e.strip_backtrace()))?;
                    if !matches!(data_type, DataType::Boolean | DataType::Null) {
                        return Err(format!("{sql} is of type {data_type}, not boolean"));
                    }
                    Ok(AtomEval::Sql(physical))
                })?)
            }
            Condition::Not(inner) => Node::Not(self.condition(inner)?),
            Condition::And(parts) | Condition::Or(parts) => {
                let mut children = parts
                    .iter()
                    .map(|p| self.condition(p))
                    .collect::<Result<Vec<_>, _>>()?;
                children.sort_unstable();
                children.dedup();
                if children.len() == 1 {
                    return Ok(children[0]);
                }
                if matches!(c, Condition::And(_)) {
                    Node::And(children)
                } else {
                    Node::Or(children)
                }
            }
        };
        Ok(self.node(node))
    }
}

fn is_missing_column(e: &datafusion::error::DataFusionError) -> bool {
    matches!(
        e.find_root(),
        datafusion::error::DataFusionError::SchemaError(s, _)
            if matches!(**s, datafusion::common::SchemaError::FieldNotFound { .. })
    )
}

fn column(schema: &SchemaRef, name: &str) -> Option<usize> {
    schema.index_of(name).ok()
}

impl RuleSet {
    /// Compiles the enabled `rules` against `schema` (the events' columns).
    pub(crate) fn compile(
        rules: &[Arc<Rule>],
        schema: SchemaRef,
        state: &SessionState,
        audiences: &dyn AudienceSource,
        missing: Missing,
    ) -> Result<RuleSet, RuleError> {
        let need = |name: &str| {
            column(&schema, name).ok_or_else(|| RuleError::EventColumn {
                column: name.to_string(),
                message: "matching needs it".into(),
            })
        };
        let columns = EventColumns {
            event_id: need(EVENT_ID)?,
            user_id: need(USER_ID)?,
            event_type: need(EVENT_TYPE)?,
            ts: column(&schema, TS),
        };
        let df_schema = DFSchema::try_from(schema.clone()).map_err(RuleError::Engine)?;
        let mut builder = Builder {
            state,
            schema: df_schema,
            audiences,
            missing,
            atoms: Vec::new(),
            atom_ids: HashMap::new(),
            nodes: Vec::new(),
            node_ids: HashMap::new(),
            audience_versions: Vec::new(),
        };
        let mut compiled = Vec::new();
        let mut channels: Vec<String> = Vec::new();
        for rule in rules.iter().filter(|r| r.enabled) {
            let bad = |message: String| RuleError::BadRule {
                id: rule.id,
                message,
            };
            let node = match &rule.condition {
                Some(text) => {
                    let condition =
                        Condition::parse(text).map_err(|e| bad(format!("condition: {e}")))?;
                    if condition
                        .atoms()
                        .iter()
                        .any(|a| matches!(a, Atom::Audience(_)))
                    {
                        let user = &schema.fields()[columns.user_id];
                        if !user.data_type().is_integer() {
                            return Err(bad(format!(
                                "in_audience needs an integer user_id, the events' is {}",
                                user.data_type()
                            )));
                        }
                    }
                    Some(
                        builder
                            .condition(&condition)
                            .map_err(|e| bad(format!("condition: {e}")))?,
                    )
                }
                None => None,
            };
            let pattern = match &rule.pattern {
                Some(text) => {
                    let pattern = Pattern::parse(text).map_err(|e| bad(format!("pattern: {e}")))?;
                    for key in &pattern.same {
                        if missing == Missing::Error && column(&schema, key).is_none() {
                            return Err(bad(format!("pattern: the events have no column '{key}'")));
                        }
                    }
                    Some(pattern)
                }
                None => None,
            };
            let time_based = pattern.is_some()
                || rule.cap.is_some()
                || rule.valid_from.is_some()
                || rule.valid_until.is_some();
            if time_based && columns.ts.is_none() {
                return Err(bad(format!(
                    "its pattern, frequency cap or validity window needs a '{TS}' column in the events"
                )));
            }
            let name = rule.channel();
            let channel = match channels.iter().position(|c| *c == name) {
                Some(i) => i,
                None => {
                    channels.push(name);
                    channels.len() - 1
                }
            };
            let trigger = rule
                .event_type
                .clone()
                .or_else(|| pattern.as_ref()?.trigger_type().map(str::to_string));
            let watches = match &pattern {
                Some(p) => p
                    .other_types()
                    .into_iter()
                    .map(str::to_string)
                    .chain(trigger.clone())
                    .collect(),
                None => Vec::new(),
            };
            compiled.push(CompiledRule {
                rule: rule.clone(),
                node,
                pattern,
                trigger,
                watches,
                channel,
            });
        }
        let mut by_type: HashMap<String, Vec<usize>> = HashMap::new();
        let mut any_type = Vec::new();
        for (i, c) in compiled.iter().enumerate() {
            match &c.trigger {
                Some(t) => by_type.entry(t.clone()).or_default().push(i),
                None => any_type.push(i),
            }
        }
        Ok(RuleSet {
            rules: compiled,
            atoms: builder.atoms,
            nodes: builder.nodes,
            by_type,
            any_type,
            channels,
            audiences: builder.audience_versions,
            schema,
            columns,
        })
    }

    /// The compiled rules.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|c| c.rule.as_ref())
    }

    /// Whether every audience the conditions read is as it was when this set was
    /// compiled (a refreshed audience needs a new set).
    pub fn audiences_current(&self, source: &dyn AudienceSource) -> Result<bool, RuleError> {
        for (name, version) in &self.audiences {
            if source.version(name)? != *version {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// How many distinct atomic predicates the rules' conditions have.
    pub fn distinct_atoms(&self) -> usize {
        self.atoms.len()
    }

    /// Every (row, rule) of `batch` where the rule's type, validity window and condition
    /// hold, rule by rule (rows ascending within a rule).
    pub(crate) fn candidates(&self, batch: &RecordBatch) -> Result<Vec<(u32, u32)>, RuleError> {
        let rows = batch.num_rows();
        let mut out = Vec::new();
        if rows == 0 {
            return Ok(out);
        }
        let types = cast(batch.column(self.columns.event_type), &DataType::Utf8)
            .map_err(|e| RuleError::Engine(e.into()))?;
        let types = types.as_string::<i32>();
        // One bitmap per trigger type present, built in one pass over the type column.
        let words = rows.div_ceil(64);
        let mut type_masks: HashMap<&str, Vec<u64>> = HashMap::new();
        for (row, t) in types.iter().enumerate() {
            if let Some(t) = t
                && self.by_type.contains_key(t)
            {
                type_masks.entry(t).or_insert_with(|| vec![0; words])[row / 64] |= 1 << (row % 64);
            }
        }
        let ts = self.timestamps(batch)?;
        let mut eval = VectorEval {
            set: self,
            batch,
            atoms: vec![None; self.atoms.len()],
            nodes: vec![None; self.nodes.len()],
        };
        let all = BooleanBuffer::new_set(rows);
        let mut each = |rule: usize, of_type: &BooleanBuffer| -> Result<(), RuleError> {
            let compiled = &self.rules[rule];
            let selected = match compiled.node {
                Some(node) => &eval.node(node)?.t & of_type,
                None => of_type.clone(),
            };
            let windowed =
                compiled.rule.valid_from.is_some() || compiled.rule.valid_until.is_some();
            for row in selected.set_indices() {
                if windowed && !within_validity(&compiled.rule, ts.as_deref(), row) {
                    continue;
                }
                out.push((row as u32, rule as u32));
            }
            Ok(())
        };
        for (t, mask) in type_masks {
            let mask = BooleanBuffer::new(Buffer::from_vec(mask), 0, rows);
            for &rule in &self.by_type[t] {
                each(rule, &mask)?;
            }
        }
        for &rule in &self.any_type {
            each(rule, &all)?;
        }
        Ok(out)
    }

    /// The `ts` column as microseconds, when there is one.
    pub(crate) fn timestamps(&self, batch: &RecordBatch) -> Result<Option<Vec<i64>>, RuleError> {
        let Some(ts) = self.columns.ts else {
            return Ok(None);
        };
        let micros = cast(
            batch.column(ts),
            &DataType::Timestamp(TimeUnit::Microsecond, None),
        )
        .and_then(|a| cast(&a, &DataType::Int64))
        .map_err(|e| RuleError::EventColumn {
            column: TS.into(),
            message: format!("it must be a timestamp: {e}"),
        })?;
        let micros = micros.as_primitive::<Int64Type>();
        // A NULL time sorts first and is outside every window that has a start.
        Ok(Some(micros.iter().map(|v| v.unwrap_or(i64::MIN)).collect()))
    }

    /// The rules a single event (a one-row batch) matches, by index, evaluating only the
    /// atoms its event type's rules need.
    pub(crate) fn candidates_of_one(&self, batch: &RecordBatch) -> Result<Vec<usize>, RuleError> {
        debug_assert_eq!(batch.num_rows(), 1);
        let types = cast(batch.column(self.columns.event_type), &DataType::Utf8)
            .map_err(|e| RuleError::Engine(e.into()))?;
        let types = types.as_string::<i32>();
        let of_type = (!types.is_null(0))
            .then(|| self.by_type.get(types.value(0)))
            .flatten();
        let ts = self.timestamps(batch)?;
        let mut eval = ScalarEval {
            set: self,
            batch,
            atoms: vec![UNKNOWN; self.atoms.len()],
            nodes: vec![UNKNOWN; self.nodes.len()],
        };
        let mut out = Vec::new();
        for &rule in of_type.into_iter().flatten().chain(&self.any_type) {
            let compiled = &self.rules[rule];
            let holds = match compiled.node {
                Some(node) => eval.node(node)? == TRUE,
                None => true,
            };
            if holds && within_validity(&compiled.rule, ts.as_deref(), 0) {
                out.push(rule);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn atom_array(
        &self,
        atom: usize,
        batch: &RecordBatch,
    ) -> Result<Option<BooleanArray>, RuleError> {
        match &self.atoms[atom] {
            AtomEval::Sql(expr) => {
                let value = expr
                    .evaluate(batch)
                    .and_then(|v| v.into_array(batch.num_rows()))
                    .map_err(RuleError::Engine)?;
                let value = if value.data_type() == &DataType::Null {
                    Arc::new(BooleanArray::new_null(batch.num_rows())) as ArrayRef
                } else {
                    value
                };
                Ok(Some(value.as_boolean().clone()))
            }
            AtomEval::Audience(members) => {
                let users = cast(batch.column(self.columns.user_id), &DataType::Int64)
                    .map_err(|e| RuleError::Engine(e.into()))?;
                let users = users.as_primitive::<Int64Type>();
                Ok(Some(
                    users
                        .iter()
                        .map(|u| u.map(|u| u64::try_from(u).is_ok_and(|u| members.contains(u))))
                        .collect(),
                ))
            }
            AtomEval::Null => Ok(None),
        }
    }
}

fn within_validity(rule: &Rule, ts: Option<&[i64]>, row: usize) -> bool {
    let Some(ts) = ts else {
        return true;
    };
    let t = ts[row];
    rule.valid_from.is_none_or(|from| t >= from) && rule.valid_until.is_none_or(|until| t < until)
}

/// A three-valued column: `t` where TRUE, `f` where FALSE, neither where NULL.
#[derive(Debug, Clone)]
struct Truth {
    t: BooleanBuffer,
    f: BooleanBuffer,
}

struct VectorEval<'a> {
    set: &'a RuleSet,
    batch: &'a RecordBatch,
    atoms: Vec<Option<Arc<Truth>>>,
    nodes: Vec<Option<Arc<Truth>>>,
}

impl VectorEval<'_> {
    fn atom(&mut self, atom: usize) -> Result<Arc<Truth>, RuleError> {
        if let Some(t) = &self.atoms[atom] {
            return Ok(t.clone());
        }
        let rows = self.batch.num_rows();
        let truth = match self.set.atom_array(atom, self.batch)? {
            None => Truth {
                t: BooleanBuffer::new_unset(rows),
                f: BooleanBuffer::new_unset(rows),
            },
            Some(values) => match values.nulls() {
                None => Truth {
                    f: !values.values(),
                    t: values.values().clone(),
                },
                Some(valid) => Truth {
                    t: values.values() & valid.inner(),
                    f: &!values.values() & valid.inner(),
                },
            },
        };
        let truth = Arc::new(truth);
        self.atoms[atom] = Some(truth.clone());
        Ok(truth)
    }

    fn node(&mut self, node: usize) -> Result<Arc<Truth>, RuleError> {
        if let Some(t) = &self.nodes[node] {
            return Ok(t.clone());
        }
        let set = self.set;
        let truth = match &set.nodes[node] {
            Node::Atom(a) => self.atom(*a)?,
            Node::Not(inner) => {
                let inner = self.node(*inner)?;
                Arc::new(Truth {
                    t: inner.f.clone(),
                    f: inner.t.clone(),
                })
            }
            Node::And(children) | Node::Or(children) => {
                let and = matches!(set.nodes[node], Node::And(_));
                let first = self.node(children[0])?;
                let mut acc = (*first).clone();
                for &child in &children[1..] {
                    let c = self.node(child)?;
                    acc = if and {
                        Truth {
                            t: &acc.t & &c.t,
                            f: &acc.f | &c.f,
                        }
                    } else {
                        Truth {
                            t: &acc.t | &c.t,
                            f: &acc.f & &c.f,
                        }
                    };
                }
                Arc::new(acc)
            }
        };
        self.nodes[node] = Some(truth.clone());
        Ok(truth)
    }
}

const UNKNOWN: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const NULL: u8 = 3;

struct ScalarEval<'a> {
    set: &'a RuleSet,
    batch: &'a RecordBatch,
    atoms: Vec<u8>,
    nodes: Vec<u8>,
}

impl ScalarEval<'_> {
    fn atom(&mut self, atom: usize) -> Result<u8, RuleError> {
        if self.atoms[atom] == UNKNOWN {
            let value = self.set.atom_array(atom, self.batch)?;
            self.atoms[atom] = match value {
                Some(v) if v.is_valid(0) => {
                    if v.value(0) {
                        TRUE
                    } else {
                        FALSE
                    }
                }
                _ => NULL,
            };
        }
        Ok(self.atoms[atom])
    }

    fn node(&mut self, node: usize) -> Result<u8, RuleError> {
        if self.nodes[node] != UNKNOWN {
            return Ok(self.nodes[node]);
        }
        let set = self.set;
        let value = match &set.nodes[node] {
            Node::Atom(a) => self.atom(*a)?,
            Node::Not(inner) => match self.node(*inner)? {
                TRUE => FALSE,
                FALSE => TRUE,
                other => other,
            },
            Node::And(children) => {
                let mut acc = TRUE;
                for &child in children {
                    match self.node(child)? {
                        FALSE => {
                            acc = FALSE;
                            break;
                        }
                        NULL => acc = NULL,
                        _ => {}
                    }
                }
                acc
            }
            Node::Or(children) => {
                let mut acc = FALSE;
                for &child in children {
                    match self.node(child)? {
                        TRUE => {
                            acc = TRUE;
                            break;
                        }
                        NULL => acc = NULL,
                        _ => {}
                    }
                }
                acc
            }
        };
        self.nodes[node] = value;
        Ok(value)
    }
}

//! `martdb.rules`: the rules as rows. `INSERT`, `UPDATE` and `DELETE` change them; each
//! statement is one durable change (all rows or none), checked rule by rule, and each
//! changed rule gets a new version. `martdb.rule_outbox`: the messages and state changes
//! `apply_rules` queued.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::{cast, concat_batches};
use datafusion::arrow::datatypes::{
    DataType, Field, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::TryStreamExt;

use super::computed::ComputedTable;
use crate::rules::{ActionKind, Change, FrequencyCap, OutboxEntry, Policy, Rule, RuleError, Rules};

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The columns of `martdb.rules`. Only `id` and `action` are required on insert; the
/// rest have defaults, and `version` and `updated_at` are assigned.
pub fn rules_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("version", DataType::Int64, true),
        Field::new("enabled", DataType::Boolean, true),
        Field::new("priority", DataType::Int32, true),
        Field::new("rule_group", DataType::Utf8, true),
        Field::new("group_policy", DataType::Utf8, true),
        Field::new("event_type", DataType::Utf8, true),
        Field::new("condition", DataType::Utf8, true),
        Field::new("pattern", DataType::Utf8, true),
        Field::new("action", DataType::Utf8, true),
        Field::new("action_params", DataType::Utf8, true),
        Field::new("frequency_cap", DataType::Utf8, true),
        Field::new("valid_from", timestamp(), true),
        Field::new("valid_until", timestamp(), true),
        Field::new("updated_at", timestamp(), true),
    ]))
}

fn external(e: RuleError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

fn rows_of(rules: &[Arc<Rule>]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Rule) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rules.iter().map(|r| f(r))))
    };
    let time = |f: &dyn Fn(&Rule) -> Option<i64>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter(rules.iter().map(|r| f(r))).with_timezone("UTC"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rules.iter().map(|r| r.id))),
        text(&|r| Some(r.name.clone())),
        Arc::new(Int64Array::from_iter_values(
            rules.iter().map(|r| r.version),
        )),
        Arc::new(BooleanArray::from_iter(
            rules.iter().map(|r| Some(r.enabled)),
        )),
        Arc::new(Int32Array::from_iter_values(
            rules.iter().map(|r| r.priority),
        )),
        text(&|r| Some(r.group.clone())),
        text(&|r| Some(r.policy.as_str().into())),
        text(&|r| r.event_type.clone()),
        text(&|r| r.condition.clone()),
        text(&|r| r.pattern.clone()),
        text(&|r| Some(r.action.as_str().into())),
        text(&|r| Some(r.params.clone())),
        text(&|r| r.cap.map(|c| c.to_string())),
        time(&|r| r.valid_from),
        time(&|r| r.valid_until),
        time(&|r| Some(r.updated_at)),
    ];
    Ok(RecordBatch::try_new(rules_schema(), columns)?)
}

/// Rules from rows of [`rules_schema`] (cast to it by name), with defaults for NULLs.
fn rules_from(batch: &RecordBatch) -> Result<Vec<Rule>> {
    let col = |name: &str, to: &DataType| -> Result<ArrayRef> {
        let column = batch.column_by_name(name).ok_or_else(|| {
            DataFusionError::Internal(format!("rules rows without a column '{name}'"))
        })?;
        Ok(cast(column, to)?)
    };
    let ids = col("id", &DataType::Int64)?;
    let ids = ids.as_primitive::<Int64Type>();
    let text_col = |name: &str| -> Result<StringArray> {
        Ok(col(name, &DataType::Utf8)?.as_string::<i32>().clone())
    };
    let (names, groups, policies, types, conditions, patterns, actions, params, caps) = (
        text_col("name")?,
        text_col("rule_group")?,
        text_col("group_policy")?,
        text_col("event_type")?,
        text_col("condition")?,
        text_col("pattern")?,
        text_col("action")?,
        text_col("action_params")?,
        text_col("frequency_cap")?,
    );
    let enabled = col("enabled", &DataType::Boolean)?;
    let enabled = enabled.as_boolean();
    let priority = col("priority", &DataType::Int32)?;
    let priority = priority.as_primitive::<Int32Type>();
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let from = cast(&col("valid_from", &micros)?, &DataType::Int64)?;
    let until = cast(&col("valid_until", &micros)?, &DataType::Int64)?;
    let (from, until) = (
        from.as_primitive::<Int64Type>(),
        until.as_primitive::<Int64Type>(),
    );
    let get = |a: &StringArray, row: usize| (!a.is_null(row)).then(|| a.value(row).to_string());
    let mut out = Vec::new();
    for row in 0..batch.num_rows() {
        if ids.is_null(row) {
            return Err(DataFusionError::Execution(
                "a rule's id may not be NULL".into(),
            ));
        }
        let id = ids.value(row);
        let bad = |message: String| external(RuleError::BadRule { id, message });
        let action = get(&actions, row)
            .ok_or_else(|| bad("action is required: coupon, message, state or emit".into()))?;
        let action = ActionKind::parse(&action).ok_or_else(|| {
            bad(format!(
                "action '{action}' is not one of coupon, message, state, emit"
            ))
        })?;
        let mut rule = Rule::new(id, action);
        if let Some(name) = get(&names, row) {
            rule.name = name;
        }
        if !enabled.is_null(row) {
            rule.enabled = enabled.value(row);
        }
        if !priority.is_null(row) {
            rule.priority = priority.value(row);
        }
        if let Some(group) = get(&groups, row) {
            rule.group = group;
        }
        if let Some(policy) = get(&policies, row) {
            rule.policy = Policy::parse(&policy)
                .ok_or_else(|| bad(format!("group_policy '{policy}' is not 'all' or 'first'")))?;
        }
        rule.event_type = get(&types, row);
        rule.condition = get(&conditions, row).filter(|c| !c.trim().is_empty());
        rule.pattern = get(&patterns, row).filter(|p| !p.trim().is_empty());
        if let Some(p) = get(&params, row) {
            rule.params = p;
        }
        if let Some(cap) = get(&caps, row) {
            rule.cap = Some(FrequencyCap::parse(&cap).map_err(bad)?);
        }
        rule.valid_from = (!from.is_null(row)).then(|| from.value(row));
        rule.valid_until = (!until.is_null(row)).then(|| until.value(row));
        out.push(rule);
    }
    Ok(out)
}

/// `martdb.rules`.
#[derive(Debug)]
pub struct RulesTable {
    rules: Rules,
    view: ComputedTable,
}

impl RulesTable {
    pub fn new(rules: Rules) -> Self {
        let store = rules.store().clone();
        RulesTable {
            rules,
            view: ComputedTable::new("rules", rules_schema(), move |_| {
                rows_of(&store.rules().map_err(external)?)
            }),
        }
    }

    fn current(&self) -> Result<RecordBatch> {
        rows_of(&self.rules.store().rules().map_err(external)?)
    }

    /// The rows of the current rules where every filter is TRUE.
    fn selected(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<(RecordBatch, BooleanArray)> {
        let batch = self.current()?;
        let schema = DFSchema::try_from(rules_schema())?;
        let mut mask = BooleanArray::from(vec![true; batch.num_rows()]);
        for filter in filters {
            let physical = state.create_physical_expr(filter.clone(), &schema)?;
            let value = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
            mask = datafusion::arrow::compute::and_kleene(&mask, value.as_boolean())?;
        }
        // Only TRUE selects (NULL does not), as in a WHERE clause.
        let mask = BooleanArray::from_iter(mask.iter().map(|v| Some(v == Some(true))));
        Ok((batch, mask))
    }
}

/// The plan of a DELETE or UPDATE that already happened: its row count.
fn count_exec(rows: u64) -> Result<Arc<dyn ExecutionPlan>> {
    let batch = crate::engine::count_batch(rows);
    let schema = batch.schema();
    Ok(MemorySourceConfig::try_new_exec(
        &[vec![batch]],
        schema,
        None,
    )?)
}

#[async_trait]
impl TableProvider for RulesTable {
    fn schema(&self) -> SchemaRef {
        rules_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.view.scan(state, projection, filters, limit).await
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(format!(
                "{insert_op} into martdb.rules: insert new rules, UPDATE or DELETE existing ones"
            )));
        }
        Ok(Arc::new(DataSinkExec::new(
            input,
            Arc::new(RulesSink {
                rules: self.rules.clone(),
                schema: rules_schema(),
            }),
            None,
        )))
    }

    async fn delete_from(
        &self,
        state: &dyn Session,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (batch, mask) = self.selected(state, &filters)?;
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let changes: Vec<Change> = (0..batch.num_rows())
            .filter(|&row| mask.value(row))
            .map(|row| Change::Delete(ids.value(row)))
            .collect();
        count_exec(self.rules.change(changes).await.map_err(external)?)
    }

    async fn update(
        &self,
        state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        for (column, _) in &assignments {
            if matches!(column.as_str(), "id" | "version" | "updated_at") {
                return Err(DataFusionError::Plan(format!(
                    "martdb.rules.{column} cannot be set: the id names the rule; version and updated_at are assigned"
                )));
            }
        }
        let (batch, mask) = self.selected(state, &filters)?;
        let schema = DFSchema::try_from(rules_schema())?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        for (column, expr) in &assignments {
            let i = rules_schema().index_of(column)?;
            let physical = state.create_physical_expr(expr.clone(), &schema)?;
            let value = physical.evaluate(&batch)?.into_array(batch.num_rows())?;
            let value = cast(&value, rules_schema().field(i).data_type())?;
            columns[i] = datafusion::arrow::compute::kernels::zip::zip(&mask, &value, &columns[i])?;
        }
        let updated = datafusion::arrow::compute::filter_record_batch(
            &RecordBatch::try_new(rules_schema(), columns)?,
            &mask,
        )?;
        let changes = rules_from(&updated)?
            .into_iter()
            .map(Change::Update)
            .collect();
        count_exec(self.rules.change(changes).await.map_err(external)?)
    }
}

#[derive(Debug)]
struct RulesSink {
    rules: Rules,
    schema: SchemaRef,
}

impl DisplayAs for RulesSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "RulesSink")
    }
}

#[async_trait]
impl DataSink for RulesSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        data: SendableRecordBatchStream,
        _context: &Arc<TaskContext>,
    ) -> Result<u64> {
        let batches: Vec<RecordBatch> = data.try_collect().await?;
        let schema = batches.first().map_or_else(rules_schema, |b| b.schema());
        let batch = concat_batches(&schema, &batches)?;
        let changes = rules_from(&batch)?
            .into_iter()
            .map(Change::Insert)
            .collect();
        self.rules.change(changes).await.map_err(external)
    }
}

/// `martdb.rule_outbox`: one row per queued message or state change.
pub fn outbox(rules: Rules) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("rule_id", DataType::Int64, false),
        Field::new("rule_version", DataType::Int64, false),
        Field::new("event_id", DataType::Utf8, false),
        Field::new("user_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("channel", DataType::Utf8, false),
        Field::new("params", DataType::Utf8, false),
        Field::new("fired_at", timestamp(), true),
        Field::new("queued_at", timestamp(), false),
    ]));
    ComputedTable::new("rule_outbox", schema, move |schema| {
        let entries = rules.outbox().map_err(external)?;
        let text = |f: &dyn Fn(&OutboxEntry) -> &str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(entries.iter().map(f)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                entries.iter().map(|e| e.rule_id),
            )),
            Arc::new(Int64Array::from_iter_values(
                entries.iter().map(|e| e.rule_version),
            )),
            text(&|e| &e.event_id),
            text(&|e| &e.user_id),
            text(&|e| &e.kind),
            text(&|e| &e.channel),
            text(&|e| &e.params),
            Arc::new(
                TimestampMicrosecondArray::from_iter(entries.iter().map(|e| e.fired_at))
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(entries.iter().map(|e| e.queued_at))
                    .with_timezone("UTC"),
            ),
        ];
        Ok(RecordBatch::try_new(schema, columns)?)
    })
}

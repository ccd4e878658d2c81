//! `match_rules(events [, profiles])`: every fired rule of the current rules over the
//! rows of a query; `apply_rules(events [, profiles])`: the same, carried out.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::JoinType;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, col};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, execute_stream,
};
use futures::StreamExt;

use crate::rules::network::{EVENT_ID, USER_ID};
use crate::rules::{BatchMatcher, RuleError, Rules, match_schema};
use crate::udf::query::{constant_text, output_properties, plan_query_now};

pub(super) const NAME: &str = "match_rules";
pub(super) const APPLY: &str = "apply_rules";

fn bad_input(message: String) -> DataFusionError {
    rule_error(RuleError::Input(format!("{NAME}: {message}")))
}

fn rule_error(e: RuleError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[derive(Debug)]
pub(super) struct MatchRules {
    pub rules: Rules,
    /// Carry the actions out (`apply_rules`) rather than only report them.
    pub apply: bool,
}

impl TableFunctionImpl for MatchRules {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(1..=2).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes 1 or 2 arguments (events query [, profiles query]), found {}",
                exprs.len()
            )));
        }
        let events = constant_text(&exprs[0], "events query", bad_input)?;
        let profiles = match exprs.get(1) {
            Some(e) => Some(constant_text(e, "profiles query", bad_input)?),
            None => None,
        };
        let plan = plan_query_now(args.session(), &events, NAME, "events", bad_input)?;
        let plan = match profiles {
            Some(p) => {
                let profiles = plan_query_now(args.session(), &p, NAME, "profiles", bad_input)?;
                join_profiles(plan, profiles)?
            }
            None => plan,
        };
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        for column in [EVENT_ID, USER_ID] {
            if schema.index_of(column).is_err() {
                return Err(rule_error(RuleError::EventColumn {
                    column: column.into(),
                    message: "the events query must return it".into(),
                }));
            }
        }
        let output = match_schema(
            schema.field_with_name(EVENT_ID)?.data_type(),
            schema.field_with_name(USER_ID)?.data_type(),
        );
        let output = match self.apply {
            false => output,
            true => {
                let mut fields: Vec<Field> =
                    output.fields().iter().map(|f| (**f).clone()).collect();
                fields.push(Field::new("outcome", DataType::Utf8, false));
                Arc::new(Schema::new(fields))
            }
        };
        Ok(Arc::new(MatchTable {
            rules: self.rules.clone(),
            apply: self.apply,
            plan,
            output,
        }))
    }
}

/// `events LEFT JOIN profiles USING (user_id)`, keeping the events' columns and the
/// profile columns the events lack.
fn join_profiles(events: LogicalPlan, profiles: LogicalPlan) -> Result<LogicalPlan> {
    const KEY: &str = "__martdb_profile_user_id";
    let event_columns: Vec<String> = events
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    if profiles
        .schema()
        .field_with_unqualified_name(USER_ID)
        .is_err()
    {
        return Err(bad_input(
            "the profiles query must return a user_id column".into(),
        ));
    }
    let mut profile_select = vec![col(USER_ID).alias(KEY)];
    let mut extra = Vec::new();
    for f in profiles.schema().fields() {
        if !event_columns.contains(f.name()) {
            profile_select.push(Expr::Column(f.name().as_str().into()));
            extra.push(f.name().clone());
        }
    }
    let profiles = LogicalPlanBuilder::from(profiles)
        .project(profile_select)?
        .alias("__martdb_profiles")?
        .build()?;
    let events = LogicalPlanBuilder::from(events)
        .alias("__martdb_events")?
        .build()?;
    let mut select: Vec<Expr> = event_columns
        .iter()
        .map(|c| col(format!("__martdb_events.{c}")).alias(c))
        .collect();
    select.extend(
        extra
            .iter()
            .map(|c| col(format!("__martdb_profiles.{c}")).alias(c)),
    );
    LogicalPlanBuilder::from(events)
        .join(
            profiles,
            JoinType::Left,
            (
                vec![format!("__martdb_events.{USER_ID}")],
                vec![format!("__martdb_profiles.{KEY}")],
            ),
            None,
        )?
        .project(select)?
        .build()
}

#[derive(Debug)]
pub(super) struct MatchTable {
    rules: Rules,
    apply: bool,
    plan: LogicalPlan,
    output: SchemaRef,
}

impl MatchTable {
    pub(super) fn applies(&self) -> bool {
        self.apply
    }
}

#[async_trait]
impl TableProvider for MatchTable {
    fn schema(&self) -> SchemaRef {
        self.output.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = state.create_physical_plan(&self.plan).await?;
        let (projected, properties) = output_properties(&self.output, projection)?;
        Ok(Arc::new(MatchExec {
            rules: self.rules.clone(),
            apply: self.apply,
            output: self.output.clone(),
            input,
            projection: projection.cloned(),
            projected,
            properties,
        }))
    }
}

struct MatchExec {
    rules: Rules,
    apply: bool,
    output: SchemaRef,
    input: Arc<dyn ExecutionPlan>,
    projection: Option<Vec<usize>>,
    projected: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for MatchExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MatchRulesExec")
    }
}

impl DisplayAs for MatchExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("MatchRulesExec")
    }
}

impl ExecutionPlan for MatchExec {
    fn name(&self) -> &str {
        "MatchRulesExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(MatchExec {
            rules: self.rules.clone(),
            apply: self.apply,
            output: self.output.clone(),
            input: children.into_iter().next().ok_or_else(|| {
                datafusion::error::DataFusionError::Internal(
                    "MatchExec has one child, given none".into(),
                )
            })?,
            projection: self.projection.clone(),
            projected: self.projected.clone(),
            properties: self.properties.clone(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "{NAME} has one partition"
            )));
        }
        let (rules, input, projection) = (
            self.rules.clone(),
            self.input.clone(),
            self.projection.clone(),
        );
        let (apply, output) = (self.apply, self.output.clone());
        let run = async move {
            let mut events = execute_stream(input.clone(), context)?;
            let set = rules.compile(input.schema()).map_err(rule_error)?;
            let mut matcher = BatchMatcher::new(&set);
            // Caps count what earlier apply_rules runs queued.
            if set.rules().any(|r| r.cap.is_some()) {
                let outbox = rules.outbox().map_err(rule_error)?;
                matcher
                    .taken_before(outbox.into_iter().map(|e| {
                        (
                            e.user_id,
                            e.channel,
                            e.fired_at.unwrap_or(e.queued_at),
                            e.rule_id,
                            e.event_id,
                        )
                    }))
                    .map_err(rule_error)?;
            }
            while let Some(batch) = events.next().await {
                matcher.add(&batch?).map_err(rule_error)?;
            }
            if !apply {
                // Only the projected columns are built.
                return matcher
                    .finish_columns(projection.as_deref())
                    .map_err(rule_error);
            }
            let batches = matcher.finish().map_err(rule_error)?;
            let outcomes = rules.apply(&batches).await.map_err(rule_error)?;
            let mut outcomes = outcomes.into_iter();
            batches
                .into_iter()
                .map(|b| {
                    let mut columns = b.columns().to_vec();
                    columns.push(Arc::new(StringArray::from_iter_values(
                        outcomes.by_ref().take(b.num_rows()),
                    )));
                    let b = RecordBatch::try_new(output.clone(), columns)?;
                    match &projection {
                        Some(p) => Ok(b.project(p)?),
                        None => Ok(b),
                    }
                })
                .collect::<Result<Vec<RecordBatch>>>()
        };
        let stream = futures::stream::once(run)
            .map(|r: Result<Vec<RecordBatch>>| match r {
                Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok)).boxed(),
                Err(e) => futures::stream::iter([Err(e)]).boxed(),
            })
            .flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            self.projected.clone(),
            stream,
        )))
    }
}

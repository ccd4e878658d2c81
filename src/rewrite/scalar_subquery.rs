//! Correlated scalar subqueries that DataFusion does not plan as written, into plans that
//! mean the same. Drivers' catalog queries are full of them: SQLAlchemy reflects a
//! column's default with `CASE WHEN a.atthasdef THEN (SELECT pg_get_expr(d.adbin,
//! d.adrelid) FROM pg_attrdef d WHERE a.atthasdef AND d.adrelid = a.attrelid AND ...)`.
//!
//! - A correlated scalar subquery must be an aggregate in DataFusion ("must be aggregated
//!   to return at most one row"). One that is not is written as the aggregate
//!   [`single_value`](SingleValue) of its expression, read by
//!   [`single_value_check`](SingleValueCheck): the one value when the subquery has one
//!   row, NULL when it has none, and PostgreSQL's error 21000 when it has more (`more
//!   than one row returned by a subquery used as an expression`), only for outer rows
//!   that read it.
//! - DataFusion cannot decorrelate such a subquery under `CASE` when its `WHERE` has a
//!   condition on outer columns only. For a subquery rewritten as above, such conditions
//!   move out: `(SELECT ... WHERE p AND q)` becomes `CASE WHEN p THEN (SELECT ... WHERE
//!   q) END`. Both are NULL when `p` is not true: the subquery then has no row.
//! - Nor can it decorrelate an aggregate whose argument reads outer columns
//!   (`(SELECT json_build_object('always', a.attidentity = 'a', 'start', s.seqstart)
//!   FROM pg_sequence s WHERE ...)`): the subquery then yields the inner columns as one
//!   struct, and the expression is computed outside, NULL when there is no row.
//!
//! Invariant: a rewrite never changes what a statement means; subqueries that are
//! aggregates already (whose empty answer may be 0, as `count(*)`) are left as written.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StructArray, UInt64Array};
use datafusion::arrow::compute::{is_null, nullif};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, UInt64Type};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{Column, DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::functions::core::expr_fn::{get_field, named_struct};
use datafusion::logical_expr::expr_rewriter::NamePreserver;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::{conjunction, split_conjunction};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, Expr, Filter, LogicalPlan,
    LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Subquery,
    Volatility, lit, when,
};

/// SQLSTATE of a scalar subquery with more than one row.
pub(crate) const CARDINALITY_VIOLATION: &str = "21000";

/// `plan` with every correlated scalar subquery DataFusion cannot plan rewritten.
pub(crate) fn rewrite(plan: LogicalPlan) -> Result<LogicalPlan> {
    plan.transform_up_with_subqueries(|node| {
        let inputs: Vec<DFSchemaRef> = node.inputs().iter().map(|i| i.schema().clone()).collect();
        // Parents refer to this node's columns by name: a rewritten expression keeps it.
        let names = NamePreserver::new(&node);
        node.map_expressions(|e| {
            let name = names.save(&e);
            let rewritten = e.transform_up(|e| match e {
                Expr::ScalarSubquery(subquery) if !subquery.outer_ref_columns.is_empty() => {
                    single_valued(subquery, &inputs)
                }
                other => Ok(Transformed::no(other)),
            })?;
            Ok(if rewritten.transformed {
                rewritten.update_data(|e| name.restore(e))
            } else {
                rewritten
            })
        })
    })
    .map(|t| t.data)
}

/// The rewrite of one correlated scalar subquery; unchanged unless it is a projection of
/// one expression over rows (no aggregate, limit or distinct under it).
fn single_valued(subquery: Subquery, outer_inputs: &[DFSchemaRef]) -> Result<Transformed<Expr>> {
    let LogicalPlan::Projection(projection) = subquery.subquery.as_ref() else {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    };
    let [expr] = projection.expr.as_slice() else {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    };
    if !matches!(
        projection.input.as_ref(),
        LogicalPlan::Filter(_)
            | LogicalPlan::TableScan(_)
            | LogicalPlan::Join(_)
            | LogicalPlan::SubqueryAlias(_)
    ) {
        return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
    }
    // Conditions on outer columns only (each of them a column of this node's inputs) move
    // out of the subquery.
    let mut input = projection.input.as_ref().clone();
    let mut hoisted = Vec::new();
    if let LogicalPlan::Filter(filter) = &input {
        let (outer, inner): (Vec<&Expr>, Vec<&Expr>) = split_conjunction(&filter.predicate)
            .into_iter()
            .partition(|c| outer_only(c, outer_inputs));
        if !outer.is_empty() {
            hoisted = outer.into_iter().map(|c| unnest_outer(c.clone())).collect();
            input = match conjunction(inner.into_iter().cloned()) {
                Some(predicate) => {
                    LogicalPlan::Filter(Filter::try_new(predicate, filter.input.clone())?)
                }
                None => filter.input.as_ref().clone(),
            };
        }
    }
    let value = expr.clone().unalias();
    let single = |input: LogicalPlan, value: Expr| -> Result<Expr> {
        let aggregated = LogicalPlanBuilder::from(input)
            .aggregate(
                Vec::<Expr>::new(),
                vec![SINGLE_VALUE.call(vec![value]).alias("single_value")],
            )?
            .build()?;
        Ok(SINGLE_VALUE_CHECK.call(vec![Expr::ScalarSubquery(Subquery {
            outer_ref_columns: aggregated.all_out_ref_exprs(),
            subquery: Arc::new(aggregated),
            spans: subquery.spans.clone(),
        })]))
    };
    let rewritten = if !value.contains_outer() {
        single(input, value)?
    } else {
        // DataFusion cannot decorrelate an aggregate of outer columns: the subquery
        // yields the row of inner columns the value reads (a struct, never NULL when
        // there is a row), and the value is computed outside from it.
        if value.exists(|e| {
            Ok(matches!(
                e,
                Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_)
            ))
        })? {
            return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
        }
        let mut outer_ok = true;
        let mut columns: Vec<Column> = Vec::new();
        value.apply(|e| {
            match e {
                Expr::OuterReferenceColumn(_, column) => {
                    outer_ok &= outer_inputs.iter().any(|s| s.has_column(column));
                }
                Expr::Column(column) if !columns.contains(column) => columns.push(column.clone()),
                _ => {}
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if !outer_ok {
            return Ok(Transformed::no(Expr::ScalarSubquery(subquery)));
        }
        let mut fields = vec![lit("row"), lit(true)];
        for (i, column) in columns.iter().enumerate() {
            fields.push(lit(format!("c{i}")));
            fields.push(Expr::Column(column.clone()));
        }
        let row = single(input, named_struct(fields))?;
        let outside = value
            .transform_up(|e| match e {
                Expr::Column(column) => {
                    let i = columns
                        .iter()
                        .position(|c| *c == column)
                        .expect("every column of `value` was collected into `columns` above");
                    Ok(Transformed::yes(get_field(row.clone(), format!("c{i}"))))
                }
                Expr::OuterReferenceColumn(_, column) => Ok(Transformed::yes(Expr::Column(column))),
                other => Ok(Transformed::no(other)),
            })?
            .data;
        when(row.is_not_null(), outside).end()?
    };
    Ok(Transformed::yes(match conjunction(hoisted) {
        Some(condition) => when(condition, rewritten).end()?,
        None => rewritten,
    }))
}

/// Whether `condition` reads outer columns only, all of them columns of `outer_inputs`.
fn outer_only(condition: &Expr, outer_inputs: &[DFSchemaRef]) -> bool {
    let mut outer = 0;
    let mut ok = true;
    let _ = condition.apply(|e| {
        match e {
            Expr::Column(_) | Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                ok = false
            }
            Expr::OuterReferenceColumn(_, column) => {
                outer += 1;
                ok &= outer_inputs.iter().any(|s| s.has_column(column));
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ok && outer > 0 && !condition.is_volatile()
}

/// `condition` read in the outer query: its outer references become plain columns.
fn unnest_outer(condition: Expr) -> Expr {
    condition
        .transform_up(|e| match e {
            Expr::OuterReferenceColumn(_, column) => Ok(Transformed::yes(Expr::Column(column))),
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .expect("the closure only returns Ok")
}

static SINGLE_VALUE: LazyLock<AggregateUDF> =
    LazyLock::new(|| AggregateUDF::from(SingleValue::new()));

static SINGLE_VALUE_CHECK: LazyLock<ScalarUDF> =
    LazyLock::new(|| ScalarUDF::from(SingleValueCheck::new()));

/// The aggregate a non-aggregate scalar subquery becomes: `{value, rows}`, its first
/// value and its number of rows; NULL over no rows. The error for more than one row is
/// [`SingleValueCheck`]'s, raised only where the outer query reads the value: an outer
/// row that a filter drops never asks, as in PostgreSQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleValue {
    signature: Signature,
}

impl SingleValue {
    fn new() -> Self {
        SingleValue {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

fn single_value_type(value: &DataType) -> DataType {
    DataType::Struct(Fields::from(vec![
        Field::new("value", value.clone(), true),
        Field::new("rows", DataType::UInt64, false),
    ]))
}

impl AggregateUDFImpl for SingleValue {
    fn name(&self) -> &str {
        "single_value"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        Ok(single_value_type(&arg_types[0]))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let DataType::Struct(fields) = args.return_field.data_type() else {
            return Err(DataFusionError::Internal("single_value state".into()));
        };
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[value]", args.name),
                fields[0].data_type().clone(),
                true,
            )),
            Arc::new(Field::new(
                format!("{}[rows]", args.name),
                DataType::UInt64,
                false,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let DataType::Struct(fields) = args.return_field.data_type() else {
            return Err(DataFusionError::Internal("single_value type".into()));
        };
        Ok(Box::new(SingleValueAccumulator {
            value: ScalarValue::try_from(fields[0].data_type())?,
            rows: 0,
            fields: fields.clone(),
        }))
    }
}

#[derive(Debug)]
struct SingleValueAccumulator {
    value: ScalarValue,
    rows: u64,
    fields: Fields,
}

impl SingleValueAccumulator {
    fn add(&mut self, values: &ArrayRef, row: usize, rows: u64) -> Result<()> {
        if rows > 0 && self.rows == 0 {
            self.value = ScalarValue::try_from_array(values, row)?;
        }
        self.rows += rows;
        Ok(())
    }
}

impl Accumulator for SingleValueAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        for row in 0..values[0].len() {
            self.add(&values[0], row, 1)?;
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states[1].as_primitive::<UInt64Type>();
        for row in 0..rows.len() {
            self.add(&states[0], row, rows.value(row))?;
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            self.value.clone(),
            ScalarValue::UInt64(Some(self.rows)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        if self.rows == 0 {
            return ScalarValue::try_from(&DataType::Struct(self.fields.clone()));
        }
        let columns = vec![
            self.value.to_array()?,
            Arc::new(UInt64Array::from(vec![self.rows])) as ArrayRef,
        ];
        Ok(ScalarValue::Struct(Arc::new(StructArray::try_new(
            self.fields.clone(),
            columns,
            None,
        )?)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + self.value.size() - std::mem::size_of_val(&self.value)
    }
}

/// The value of a [`SingleValue`]; error 21000 where it counted more than one row.
#[derive(Debug, PartialEq, Eq, Hash)]
struct SingleValueCheck {
    signature: Signature,
}

impl SingleValueCheck {
    fn new() -> Self {
        SingleValueCheck {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SingleValueCheck {
    fn name(&self) -> &str {
        "single_value_check"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match &arg_types[0] {
            DataType::Struct(fields) => Ok(fields[0].data_type().clone()),
            other => Err(DataFusionError::Internal(format!(
                "single_value_check of {other}"
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let rows_of = array.as_struct();
        let rows = rows_of.column(1).as_primitive::<UInt64Type>();
        if (0..rows_of.len()).any(|i| rows_of.is_valid(i) && rows.value(i) > 1) {
            return Err(DataFusionError::External(Box::new(MoreThanOneRow)));
        }
        let value = rows_of.column(0).clone();
        Ok(ColumnarValue::Array(if rows_of.null_count() == 0 {
            value
        } else {
            nullif(&value, &is_null(&array)?)?
        }))
    }
}

/// PostgreSQL's error for a scalar subquery with more than one row (SQLSTATE 21000).
#[derive(Debug, thiserror::Error)]
#[error("more than one row returned by a subquery used as an expression")]
pub(crate) struct MoreThanOneRow;

//! `uplift_by_decile(query [, bins])`: the observed uplift in each tenth (or `bins`-th)
//! of the rows ranked by score ([`crate::ml::uplift::uplift_by_bin`]).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, LogicalPlan};
use datafusion::physical_plan::ExecutionPlan;
use futures::{StreamExt, TryStreamExt};

use super::{binary_value, ml_error};
use crate::ml::runtime::MlError;
use crate::ml::uplift::{Scored, uplift_by_bin};
use crate::udf::query::{
    QueryFunctionBody, QueryFunctionExec, constant, constant_text, plan_query_now,
};

pub(super) const NAME: &str = "uplift_by_decile";

const COLUMNS: &str = "(outcome, uplift, treatment)";

fn bad_input(message: String) -> DataFusionError {
    ml_error(MlError::Input(format!("{NAME}: {message}")))
}

fn output_schema() -> SchemaRef {
    let float = |name: &str| Field::new(name, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("bin", DataType::Int32, false),
        Field::new("treated", DataType::Int64, false),
        Field::new("control", DataType::Int64, false),
        float("response_rate_treated"),
        float("response_rate_control"),
        float("uplift"),
        Field::new("min_score", DataType::Float64, false),
        Field::new("max_score", DataType::Float64, false),
    ]))
}

#[derive(Debug, Default)]
pub(super) struct UpliftByDecile;

impl TableFunctionImpl for UpliftByDecile {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(1..=2).contains(&exprs.len()) {
            return Err(bad_input(format!(
                "takes 1 or 2 arguments (query [, bins]), found {}",
                exprs.len()
            )));
        }
        let query = constant_text(&exprs[0], "query", bad_input)?;
        let bins = match exprs.get(1) {
            None => 10,
            Some(e) => match constant(e, "bins", bad_input)? {
                ScalarValue::Int64(Some(b)) if (1..=1000).contains(&b) => b as u32,
                other => {
                    return Err(bad_input(format!(
                        "bins must be an integer from 1 to 1000, found {other}"
                    )));
                }
            },
        };
        let plan = plan_query_now(args.session(), &query, NAME, COLUMNS, bad_input)?;
        let fields = plan.schema().fields();
        if fields.len() != 3 {
            return Err(bad_input(format!(
                "the query must return 3 columns {COLUMNS}, found {}",
                fields.len()
            )));
        }
        if let Some(f) = fields
            .iter()
            .find(|f| !(f.data_type().is_numeric() || f.data_type() == &DataType::Boolean))
        {
            return Err(bad_input(format!(
                "the query's columns {COLUMNS} must be numbers or booleans; {} is {}",
                f.name(),
                f.data_type()
            )));
        }
        Ok(Arc::new(DecileTable { plan, bins }))
    }
}

#[derive(Debug)]
struct DecileTable {
    plan: LogicalPlan,
    bins: u32,
}

fn bins_batch(rows: &[Scored], bins: u32) -> Result<RecordBatch> {
    let bins = uplift_by_bin(rows, bins).map_err(ml_error)?;
    Ok(RecordBatch::try_new(
        output_schema(),
        vec![
            Arc::new(Int32Array::from_iter_values(
                bins.iter().map(|b| b.bin as i32),
            )),
            Arc::new(Int64Array::from_iter_values(
                bins.iter().map(|b| b.treated as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                bins.iter().map(|b| b.control as i64),
            )),
            Arc::new(Float64Array::from_iter(
                bins.iter().map(|b| b.response_rate_treated),
            )),
            Arc::new(Float64Array::from_iter(
                bins.iter().map(|b| b.response_rate_control),
            )),
            Arc::new(Float64Array::from_iter(bins.iter().map(|b| b.uplift))),
            Arc::new(Float64Array::from_iter_values(
                bins.iter().map(|b| b.min_score),
            )),
            Arc::new(Float64Array::from_iter_values(
                bins.iter().map(|b| b.max_score),
            )),
        ],
    )?)
}

#[async_trait]
impl TableProvider for DecileTable {
    fn schema(&self) -> SchemaRef {
        output_schema()
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
        let bins = self.bins;
        let body: QueryFunctionBody = Arc::new(move |rows, _| {
            let run = async move {
                let batches: Vec<RecordBatch> = rows.try_collect().await?;
                let mut scored = Vec::new();
                for batch in &batches {
                    let columns = (0..3)
                        .map(|i| {
                            Ok(cast(batch.column(i), &DataType::Float64)?
                                .as_primitive::<Float64Type>()
                                .clone())
                        })
                        .collect::<Result<Vec<_>>>()?;
                    for row in 0..batch.num_rows() {
                        if columns.iter().any(|c| c.is_null(row)) {
                            continue;
                        }
                        scored.push(Scored {
                            converted: binary_value(columns[0].value(row), "outcome")
                                .map_err(|e| bad_input(e.to_string()))?,
                            score: columns[1].value(row),
                            treated: binary_value(columns[2].value(row), "treatment")
                                .map_err(|e| bad_input(e.to_string()))?,
                        });
                    }
                }
                bins_batch(&scored, bins)
            };
            Ok(futures::stream::once(run).boxed())
        });
        Ok(Arc::new(QueryFunctionExec::new(
            NAME,
            input,
            &output_schema(),
            projection,
            body,
        )?))
    }
}

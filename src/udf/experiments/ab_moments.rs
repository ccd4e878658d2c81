//! `ab_moments(value [, covariate])`: the summary of a metric over the users of a group,
//! which the tests compare ([`crate::ml::stats::MomentSums`]).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StructArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};

use crate::ml::stats::MomentSums;

const NAME: &str = "ab_moments";

/// The partial state: the fields of [`MomentSums`].
const STATE: [&str; 8] = [
    "n",
    "shift",
    "sum",
    "sum_squares",
    "covariate_shift",
    "covariate_sum",
    "covariate_sum_squares",
    "sum_products",
];

static RESULT_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    let mut fields = vec![Field::new("n", DataType::Int64, false)];
    for name in [
        "mean",
        "variance",
        "covariate_mean",
        "covariate_variance",
        "covariance",
    ] {
        fields.push(Field::new(name, DataType::Float64, true));
    }
    Fields::from(fields)
});

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct AbMoments {
    signature: Signature,
}

impl Default for AbMoments {
    fn default() -> Self {
        Self::new()
    }
}

impl AbMoments {
    pub fn new() -> Self {
        AbMoments {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        super::SECTION,
        "The summary of a metric over the users of a group, per group: a struct of `n`, \
         `mean` and `variance` (sample, n - 1), and with a second column (a pre-period \
         covariate for `ab_cuped_test`, or a ratio's denominator for `ab_ratio_test`) its \
         `covariate_mean`, `covariate_variance` and the `covariance`. One row per user; \
         rows with a NULL are skipped. Computed in one pass with shifted sums, so a \
         large mean does not cost precision. Variances are NULL below 2 users; the \
         covariate fields are NULL without a covariate.",
        "ab_moments(value [, covariate])",
    )
    .with_sql_example(
        "```sql\n> SELECT variant, ab_moments(revenue) FROM users GROUP BY variant;\n```",
    )
    .with_argument(
        "value",
        "The metric of a user (a number; booleans as 0/1 casts).",
    )
    .with_argument(
        "covariate",
        "Optional: the same user's pre-period value, or denominator.",
    )
    .build()
});

impl AggregateUDFImpl for AbMoments {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        if !(1..=2).contains(&arg_types.len()) {
            return Err(DataFusionError::Plan(format!(
                "{NAME} takes 1 or 2 arguments, found {}",
                arg_types.len()
            )));
        }
        for t in arg_types {
            if !(t.is_numeric() || matches!(t, DataType::Boolean | DataType::Null)) {
                return Err(DataFusionError::Plan(format!(
                    "{NAME} takes numbers, found {t}"
                )));
            }
        }
        Ok(vec![DataType::Float64; arg_types.len()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(RESULT_FIELDS.clone()))
    }

    fn is_nullable(&self) -> bool {
        false
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let data_type = if i == 0 {
                    DataType::UInt64
                } else {
                    DataType::Float64
                };
                Arc::new(Field::new(
                    format!("{}[{name}]", args.name),
                    data_type,
                    false,
                ))
            })
            .collect())
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(MomentsAccumulator {
            groups: MomentGroups {
                sums: vec![MomentSums::default()],
                covariate: args.exprs.len() == 2,
            },
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(MomentGroups {
            sums: Vec::new(),
            covariate: args.exprs.len() == 2,
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

/// The sums of every group.
#[derive(Debug)]
struct MomentGroups {
    sums: Vec<MomentSums>,
    covariate: bool,
}

fn floats(array: &ArrayRef) -> Result<Float64Array> {
    Ok(cast(array, &DataType::Float64)?
        .as_primitive::<Float64Type>()
        .clone())
}

impl MomentGroups {
    fn add(
        &mut self,
        values: &[ArrayRef],
        group_of: impl Fn(usize) -> usize,
        filter: Option<&BooleanArray>,
    ) -> Result<()> {
        let y = floats(&values[0])?;
        let x = if self.covariate {
            Some(floats(&values[1])?)
        } else {
            None
        };
        let skip = |row: usize| {
            y.is_null(row)
                || x.as_ref().is_some_and(|x| x.is_null(row))
                || filter.is_some_and(|f| !f.is_valid(row) || !f.value(row))
        };
        let checks = y.null_count() > 0
            || x.as_ref().is_some_and(|x| x.null_count() > 0)
            || filter.is_some();
        let ys = y.values();
        match &x {
            None if !checks => {
                for (row, &v) in ys.iter().enumerate() {
                    self.sums[group_of(row)].add_value(v);
                }
            }
            None => {
                for (row, &v) in ys.iter().enumerate() {
                    if !skip(row) {
                        self.sums[group_of(row)].add_value(v);
                    }
                }
            }
            Some(x) => {
                let xs = x.values();
                for (row, (&v, &c)) in ys.iter().zip(xs.iter()).enumerate() {
                    if !checks || !skip(row) {
                        self.sums[group_of(row)].add(v, c);
                    }
                }
            }
        }
        Ok(())
    }

    fn merge(&mut self, states: &[ArrayRef], group_of: impl Fn(usize) -> usize) {
        let n = states[0].as_primitive::<UInt64Type>();
        let f = |i: usize| states[i].as_primitive::<Float64Type>();
        let columns: Vec<_> = (1..8).map(f).collect();
        for row in 0..n.len() {
            let sums = MomentSums {
                n: n.value(row),
                shift: columns[0].value(row),
                sum: columns[1].value(row),
                sum_squares: columns[2].value(row),
                covariate_shift: columns[3].value(row),
                covariate_sum: columns[4].value(row),
                covariate_sum_squares: columns[5].value(row),
                sum_products: columns[6].value(row),
            };
            self.sums[group_of(row)].merge(&sums);
        }
    }

    fn take(&mut self, emit_to: EmitTo) -> Vec<MomentSums> {
        emit_to.take_needed(&mut self.sums)
    }

    fn state_of(sums: &[MomentSums]) -> Vec<ArrayRef> {
        let column = |get: fn(&MomentSums) -> f64| -> ArrayRef {
            Arc::new(Float64Array::from_iter_values(sums.iter().map(get)))
        };
        vec![
            Arc::new(UInt64Array::from_iter_values(sums.iter().map(|s| s.n))),
            column(|s| s.shift),
            column(|s| s.sum),
            column(|s| s.sum_squares),
            column(|s| s.covariate_shift),
            column(|s| s.covariate_sum),
            column(|s| s.covariate_sum_squares),
            column(|s| s.sum_products),
        ]
    }

    fn result_of(&self, sums: &[MomentSums]) -> ArrayRef {
        let moments: Vec<_> = sums.iter().map(|s| s.finish(self.covariate)).collect();
        let known = |v: f64| v.is_finite().then_some(v);
        let column = |get: &dyn Fn(&crate::ml::stats::Moments) -> Option<f64>| -> ArrayRef {
            Arc::new(Float64Array::from_iter(moments.iter().map(get)))
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                moments.iter().map(|m| m.n as i64),
            )),
            column(&|m| (m.n > 0.0).then_some(m.mean)),
            column(&|m| known(m.variance)),
            column(&|m| m.covariate.and_then(|c| (m.n > 0.0).then_some(c.mean))),
            column(&|m| m.covariate.and_then(|c| known(c.variance))),
            column(&|m| m.covariate.and_then(|c| known(c.covariance))),
        ];
        Arc::new(StructArray::new(RESULT_FIELDS.clone(), columns, None))
    }
}

impl GroupsAccumulator for MomentGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, MomentSums::default());
        self.add(values, |row| group_indices[row], opt_filter)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sums.resize(total_num_groups, MomentSums::default());
        self.merge(values, |row| group_indices[row]);
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let sums = self.take(emit_to);
        Ok(self.result_of(&sums))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(Self::state_of(&self.take(emit_to)))
    }

    /// One row's sums per row, for when DataFusion skips partial aggregation.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let mut rows = MomentGroups {
            sums: vec![MomentSums::default(); values[0].len()],
            covariate: self.covariate,
        };
        rows.add(values, |row| row, opt_filter)?;
        Ok(Self::state_of(&rows.sums))
    }

    fn size(&self) -> usize {
        self.sums.capacity() * std::mem::size_of::<MomentSums>()
    }
}

/// The ungrouped form: one group.
#[derive(Debug)]
struct MomentsAccumulator {
    groups: MomentGroups,
}

impl Accumulator for MomentsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.groups.add(values, |_| 0, None)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.groups.merge(states, |_| 0);
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        MomentGroups::state_of(&self.groups.sums)
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        ScalarValue::try_from_array(&self.groups.result_of(&self.groups.sums), 0)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

//! What the experiment functions share: the struct a comparison returns, reading
//! `ab_moments` summaries, numeric and text arguments row by row, and the two generic
//! function shapes ([`TwoGroupTest`] for tests on two summaries, [`Planning`] for
//! sample sizes and effects) that one file per SQL function instantiates.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, StructArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Float64Type};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl,
    Signature, Volatility,
};

use crate::ml::stats::{Alternative, Comparison, CovariateMoments, Design, Moments, StatsError};
use crate::udf::bitmap::{finish, row_count};

/// A [`StatsError`] as a query error (SQLSTATE 22023).
pub(crate) fn stats_error(e: StatsError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The fields of a comparison's struct, in order.
const COMPARISON_FIELDS: [&str; 11] = [
    "control",
    "treatment",
    "difference",
    "difference_low",
    "difference_high",
    "relative",
    "relative_low",
    "relative_high",
    "statistic",
    "df",
    "p_value",
];

pub(crate) static COMPARISON_TYPE: LazyLock<DataType> =
    LazyLock::new(|| float_struct(&COMPARISON_FIELDS));

/// A struct of nullable doubles.
pub(crate) fn float_struct(names: &[&str]) -> DataType {
    DataType::Struct(Fields::from(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Float64, true))
            .collect::<Vec<_>>(),
    ))
}

/// The comparisons as a struct array; `None` rows are NULL.
pub(crate) fn comparison_array(rows: &[Option<Comparison>]) -> ArrayRef {
    let column = |get: fn(&Comparison) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from_iter(
            rows.iter().map(|r| r.as_ref().and_then(get)),
        ))
    };
    let columns = vec![
        column(|c| Some(c.control)),
        column(|c| Some(c.treatment)),
        column(|c| Some(c.difference)),
        column(|c| c.difference_low),
        column(|c| c.difference_high),
        column(|c| c.relative),
        column(|c| c.relative_low),
        column(|c| c.relative_high),
        column(|c| c.statistic),
        column(|c| c.df),
        column(|c| c.p_value),
    ];
    let DataType::Struct(fields) = &*COMPARISON_TYPE else {
        unreachable!("COMPARISON_TYPE is a float_struct, a struct type")
    };
    let nulls = rows.iter().map(Option::is_some).collect::<Vec<_>>();
    Arc::new(StructArray::new(
        fields.clone(),
        columns,
        Some(nulls.into()),
    ))
}

/// Argument `index` of every row as doubles (NULL as `None`).
pub(crate) fn floats(
    args: &[ColumnarValue],
    rows: usize,
    index: usize,
) -> Result<Vec<Option<f64>>> {
    let array = cast(&args[index].to_array(rows)?, &DataType::Float64)?;
    Ok(array.as_primitive::<Float64Type>().iter().collect())
}

/// Argument `index` of every row as text (NULL as `None`).
pub(crate) fn texts(
    args: &[ColumnarValue],
    rows: usize,
    index: usize,
) -> Result<Vec<Option<String>>> {
    let array = cast(&args[index].to_array(rows)?, &DataType::Utf8)?;
    Ok(array
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(str::to_string))
        .collect())
}

/// The `alternative` (text) and `alpha` (number) arguments at `first` and `first + 1` of
/// each row, with their defaults; a NULL is the default too.
pub(crate) fn alternatives_and_alphas(
    args: &[ColumnarValue],
    rows: usize,
    first: usize,
) -> Result<Vec<(Alternative, f64)>> {
    let alternatives = if args.len() > first {
        texts(args, rows, first)?
    } else {
        vec![None; rows]
    };
    let alphas = if args.len() > first + 1 {
        floats(args, rows, first + 1)?
    } else {
        vec![None; rows]
    };
    alternatives
        .into_iter()
        .zip(alphas)
        .map(|(alternative, alpha)| {
            let alternative = match alternative {
                Some(a) => a.parse().map_err(stats_error)?,
                None => Alternative::TwoSided,
            };
            Ok((alternative, alpha.unwrap_or(0.05)))
        })
        .collect()
}

/// Argument `index` of every row as summaries: a struct with the fields `n`, `mean` and
/// `variance` (what `ab_moments` returns, or `named_struct(...)` of numbers from
/// elsewhere), and for CUPED and ratios `covariate_mean`, `covariate_variance` and
/// `covariance`. A NULL struct, or a NULL in `n`, `mean` or `variance`, is `None`.
pub(crate) fn moments(
    name: &str,
    args: &[ColumnarValue],
    rows: usize,
    index: usize,
) -> Result<Vec<Option<Moments>>> {
    let array = args[index].to_array(rows)?;
    let Some(structs) = array.as_struct_opt() else {
        return Err(DataFusionError::Plan(format!(
            "{name}: argument {} must be a summary from ab_moments(value) (a struct with n, mean and variance), found {}",
            index + 1,
            array.data_type()
        )));
    };
    let field = |field: &str, required: bool| -> Result<Option<Vec<Option<f64>>>> {
        match structs.column_by_name(field) {
            Some(column) => {
                let column = cast(column, &DataType::Float64)?;
                Ok(Some(column.as_primitive::<Float64Type>().iter().collect()))
            }
            None if required => Err(DataFusionError::Plan(format!(
                "{name}: argument {} has no field '{field}' (expected a summary from ab_moments)",
                index + 1
            ))),
            None => Ok(None),
        }
    };
    let required = |name: &str| -> Result<Vec<Option<f64>>> {
        field(name, true)?.ok_or_else(|| {
            DataFusionError::Internal(format!("{name}: a required field read as absent"))
        })
    };
    let n = required("n")?;
    let mean = required("mean")?;
    let variance = required("variance")?;
    let covariate = [
        field("covariate_mean", false)?,
        field("covariate_variance", false)?,
        field("covariance", false)?,
    ];
    Ok((0..rows)
        .map(|row| {
            if structs.is_null(row) {
                return None;
            }
            let covariate = match &covariate {
                [Some(m), Some(v), Some(c)] => match (m[row], v[row], c[row]) {
                    (Some(mean), Some(variance), Some(covariance)) => Some(CovariateMoments {
                        mean,
                        variance,
                        covariance,
                    }),
                    _ => None,
                },
                _ => None,
            };
            Some(Moments {
                n: n[row]?,
                mean: mean[row]?,
                variance: variance[row]?,
                covariate,
            })
        })
        .collect())
}

/// Checks the number of arguments and coerces: the first `structs` pass as they are
/// (checked at execution), then `numbers` numbers, then optional arguments of `optional`
/// types.
pub(crate) fn coerce(
    name: &str,
    arg_types: &[DataType],
    structs: usize,
    numbers: usize,
    optional: &[DataType],
) -> Result<Vec<DataType>> {
    let required = structs + numbers;
    if arg_types.len() < required || arg_types.len() > required + optional.len() {
        return Err(DataFusionError::Plan(format!(
            "{name} takes {required} to {} arguments, found {}",
            required + optional.len(),
            arg_types.len()
        )));
    }
    Ok(arg_types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i < structs {
                t.clone()
            } else if i < required {
                DataType::Float64
            } else {
                optional[i - required].clone()
            }
        })
        .collect())
}

/// Equality and hashing by SQL name: the generic shapes below hold function pointers and
/// documentation, which do not compare, and one name is one function.
macro_rules! identified_by_name {
    ($($shape:ty),*) => {$(
        impl PartialEq for $shape {
            fn eq(&self, other: &Self) -> bool {
                self.name == other.name
            }
        }

        impl Eq for $shape {}

        impl std::hash::Hash for $shape {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.name.hash(state)
            }
        }
    )*};
}

identified_by_name!(TwoGroupTest, Planning, AcrossVariants);

type TestFn = fn(&Moments, &Moments, Alternative, f64) -> Result<Comparison, StatsError>;

/// `name(control, treatment [, alternative [, alpha]])` on two `ab_moments` summaries.
#[derive(Debug)]
pub(crate) struct TwoGroupTest {
    name: &'static str,
    test: TestFn,
    documentation: &'static LazyLock<Documentation>,
    signature: Signature,
}

impl TwoGroupTest {
    pub(crate) fn new(
        name: &'static str,
        test: TestFn,
        documentation: &'static LazyLock<Documentation>,
    ) -> Self {
        TwoGroupTest {
            name,
            test,
            documentation,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for TwoGroupTest {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(
            self.name,
            arg_types,
            2,
            0,
            &[DataType::Utf8, DataType::Float64],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(COMPARISON_TYPE.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let control = moments(self.name, &args.args, rows, 0)?;
        let treatment = moments(self.name, &args.args, rows, 1)?;
        let options = alternatives_and_alphas(&args.args, rows, 2)?;
        let results = control
            .iter()
            .zip(&treatment)
            .zip(options)
            .map(|((c, t), (alternative, alpha))| match (c, t) {
                (Some(c), Some(t)) => (self.test)(c, t, alternative, alpha).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(stats_error)?;
        finish(comparison_array(&results), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.documentation)
    }
}

type PlanFn = fn(f64, f64, Design) -> Result<f64, StatsError>;

/// `name(x, y [, alpha [, power [, ratio]]])`: a sample size or an effect.
#[derive(Debug)]
pub(crate) struct Planning {
    name: &'static str,
    plan: PlanFn,
    documentation: &'static LazyLock<Documentation>,
    signature: Signature,
}

impl Planning {
    pub(crate) fn new(
        name: &'static str,
        plan: PlanFn,
        documentation: &'static LazyLock<Documentation>,
    ) -> Self {
        Planning {
            name,
            plan,
            documentation,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for Planning {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(
            self.name,
            arg_types,
            0,
            2,
            &[DataType::Float64, DataType::Float64, DataType::Float64],
        )
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = row_count(&args.args, args.number_rows);
        let columns = (0..args.args.len())
            .map(|i| floats(&args.args, rows, i))
            .collect::<Result<Vec<_>>>()?;
        let defaults = Design::default();
        let out = (0..rows)
            .map(|row| {
                let (Some(x), Some(y)) = (columns[0][row], columns[1][row]) else {
                    return Ok(None);
                };
                let option =
                    |i: usize, default: f64| columns.get(i).and_then(|c| c[row]).unwrap_or(default);
                let design = Design {
                    alpha: option(2, defaults.alpha),
                    power: option(3, defaults.power),
                    ratio: option(4, defaults.ratio),
                };
                (self.plan)(x, y, design).map(Some)
            })
            .collect::<Result<Float64Array, _>>()
            .map_err(stats_error)?;
        finish(Arc::new(out), &args.args)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.documentation)
    }
}

type AcrossFn = fn(&[(f64, f64)]) -> Result<ScalarValue>;

/// `name(a, b)`: an aggregate over the summary rows of the variants (one row each, a few
/// rows in all), which keeps the pairs and computes from all of them at the end. Rows
/// with a NULL are skipped.
#[derive(Debug)]
pub(crate) struct AcrossVariants {
    name: &'static str,
    result: &'static LazyLock<DataType>,
    compute: AcrossFn,
    documentation: &'static LazyLock<Documentation>,
    signature: Signature,
}

impl AcrossVariants {
    pub(crate) fn new(
        name: &'static str,
        result: &'static LazyLock<DataType>,
        compute: AcrossFn,
        documentation: &'static LazyLock<Documentation>,
    ) -> Self {
        AcrossVariants {
            name,
            result,
            compute,
            documentation,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for AcrossVariants {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce(self.name, arg_types, 0, 2, &[])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok((**self.result).clone())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        let list = DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true)));
        Ok(["a", "b"]
            .iter()
            .map(|n| {
                Arc::new(Field::new(
                    format!("{}[{n}]", args.name),
                    list.clone(),
                    true,
                ))
            })
            .collect())
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PairsAccumulator {
            pairs: Vec::new(),
            compute: self.compute,
        }))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(self.documentation)
    }
}

#[derive(Debug)]
struct PairsAccumulator {
    pairs: Vec<(f64, f64)>,
    compute: AcrossFn,
}

impl PairsAccumulator {
    fn add(&mut self, a: &ArrayRef, b: &ArrayRef) -> Result<()> {
        let a = cast(a, &DataType::Float64)?;
        let b = cast(b, &DataType::Float64)?;
        let pairs = a
            .as_primitive::<Float64Type>()
            .iter()
            .zip(b.as_primitive::<Float64Type>().iter());
        self.pairs.extend(pairs.filter_map(|(a, b)| Some((a?, b?))));
        Ok(())
    }
}

impl Accumulator for PairsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.add(&values[0], &values[1])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (a, b) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..a.len() {
            if a.is_valid(row) && b.is_valid(row) {
                self.add(&a.value(row), &b.value(row))?;
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let list = |get: fn(&(f64, f64)) -> f64| {
            let values: Vec<ScalarValue> = self
                .pairs
                .iter()
                .map(|p| ScalarValue::Float64(Some(get(p))))
                .collect();
            ScalarValue::List(ScalarValue::new_list_nullable(&values, &DataType::Float64))
        };
        Ok(vec![list(|p| p.0), list(|p| p.1)])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        (self.compute)(&self.pairs)
    }

    fn size(&self) -> usize {
        std::mem::size_of::<Self>() + self.pairs.capacity() * 16
    }
}

/// A one-row struct of type `result` from its field values.
pub(crate) fn struct_scalar(result: &DataType, values: Vec<ScalarValue>) -> Result<ScalarValue> {
    let DataType::Struct(fields) = result else {
        return Err(DataFusionError::Internal(format!(
            "struct_scalar of the non-struct type {result}"
        )));
    };
    let columns = values
        .iter()
        .map(|v| v.to_array())
        .collect::<Result<Vec<_>>>()?;
    Ok(ScalarValue::Struct(Arc::new(StructArray::new(
        fields.clone(),
        columns,
        None,
    ))))
}

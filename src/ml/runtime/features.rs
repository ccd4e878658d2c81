//! From query columns to a model's input matrix.
//!
//! Invariants: a transform is fitted once, on the training rows, and stored with the
//! model; scoring applies the stored transform, never one refitted on the rows being
//! scored, so a user gets the same inputs whichever other users are scored with them.
//! Columns are found by name, so the scoring query may return them in any order and
//! carry other columns along.
//!
//! - A number (any integer, float or decimal type, or a boolean as 0/1) is
//!   standardised with the training mean and standard deviation (a constant column
//!   becomes 0). If the training rows had NULLs or NaNs, a missing value becomes the
//!   mean (0 after scaling) and an extra input says it was missing; a column with no
//!   value at all is an error.
//! - A text is one-hot encoded over its [`MAX_CATEGORIES`] most frequent training
//!   values, plus one input for every other value; NULL sets no input.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use serde::{Deserialize, Serialize};

use super::MlError;

/// The most categories of a text column that get an input of their own.
pub const MAX_CATEGORIES: usize = 32;

/// How one column becomes inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FeatureKind {
    Numeric {
        mean: f64,
        scale: f64,
        /// The training rows had missing values: one more input flags them.
        missing_indicator: bool,
    },
    Categorical {
        categories: Vec<String>,
    },
}

/// One feature column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub kind: FeatureKind,
}

impl Feature {
    fn width(&self) -> usize {
        match &self.kind {
            FeatureKind::Numeric {
                missing_indicator, ..
            } => 1 + usize::from(*missing_indicator),
            FeatureKind::Categorical { categories } => categories.len() + 1,
        }
    }

    /// The SQL type family the column must have at scoring time.
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            FeatureKind::Numeric { .. } => "number",
            FeatureKind::Categorical { .. } => "text",
        }
    }

    /// Whether a scoring column of `data_type` can feed this feature: a number or a
    /// boolean for a numeric one, text for a categorical one, and NULL for either.
    pub fn accepts(&self, data_type: &DataType) -> bool {
        data_type == &DataType::Null
            || match self.kind {
                FeatureKind::Numeric { .. } => {
                    data_type.is_numeric() || data_type == &DataType::Boolean
                }
                FeatureKind::Categorical { .. } => is_text(data_type),
            }
    }
}

/// A row-major `rows × cols` matrix of model inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

/// The fitted transform of a model's feature columns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FeatureTransform {
    pub features: Vec<Feature>,
}

fn is_numeric(data_type: &DataType) -> bool {
    data_type.is_numeric() || matches!(data_type, DataType::Boolean | DataType::Null)
}

/// Whether a column of `data_type` reads as text: any string type, or a dictionary of one.
pub(crate) fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

/// A numeric column as f64 values; a NULL or a NaN is missing.
struct Numbers {
    values: Float64Array,
}

impl Numbers {
    fn new(name: &str, array: &ArrayRef) -> Result<Self, MlError> {
        let floats = cast(array, &DataType::Float64).map_err(|e| MlError::Column {
            column: name.into(),
            message: format!("cannot be read as a number: {e}"),
        })?;
        Ok(Numbers {
            values: floats.as_primitive::<Float64Type>().clone(),
        })
    }

    fn get(&self, row: usize) -> Option<f64> {
        let v = self.values.value(row);
        (self.values.is_valid(row) && !v.is_nan()).then_some(v)
    }

    /// The values that are present, in row order.
    fn present(&self) -> impl Iterator<Item = f64> + '_ {
        let all = self.values.values().iter().copied().enumerate();
        let nulls = self.values.nulls();
        all.filter(move |&(row, v)| !v.is_nan() && nulls.is_none_or(|n| n.is_valid(row)))
            .map(|(_, v)| v)
    }

    /// The count, mean and standard deviation of the present values, in two passes
    /// (the second sums squared deviations from the mean, which loses no precision to
    /// a large mean).
    fn moments(&self) -> (usize, f64, f64) {
        let (count, sum) = self
            .present()
            .fold((0usize, 0f64), |(c, s), v| (c + 1, s + v));
        if count == 0 {
            return (0, f64::NAN, f64::NAN);
        }
        let mean = sum / count as f64;
        let squares: f64 = self.present().map(|v| (v - mean) * (v - mean)).sum();
        (count, mean, (squares / count as f64).sqrt())
    }
}

/// A text column as UTF-8 strings.
fn text_array(name: &str, array: &ArrayRef) -> Result<ArrayRef, MlError> {
    cast(array, &DataType::Utf8).map_err(|e| MlError::Column {
        column: name.into(),
        message: format!("cannot be read as text: {e}"),
    })
}

/// The training slot of each row's text (`categories.len()` for any other value), or
/// `None` for NULL.
fn category_slots(
    name: &str,
    array: &ArrayRef,
    categories: &[String],
) -> Result<Vec<Option<u32>>, MlError> {
    let strings = text_array(name, array)?;
    let index: HashMap<&str, u32> = categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as u32))
        .collect();
    let other = categories.len() as u32;
    Ok(strings
        .as_string::<i32>()
        .iter()
        .map(|v| v.map(|v| index.get(v).copied().unwrap_or(other)))
        .collect())
}

/// One feature's source column, ready to be written into rows.
enum Source {
    Numeric {
        values: Numbers,
        mean: f64,
        scale: f64,
        missing_indicator: bool,
    },
    Categorical(Vec<Option<u32>>),
}

impl Source {
    /// Writes this feature's inputs into `out` (whole rows of `cols` inputs), at
    /// `offset` in each row: output row `i` is source row `source(i)`.
    fn write(&self, out: &mut [f32], cols: usize, offset: usize, source: impl Fn(usize) -> usize) {
        let rows = out.chunks_exact_mut(cols).enumerate();
        match self {
            Source::Numeric {
                values,
                mean,
                scale,
                missing_indicator,
            } => {
                for (i, row) in rows {
                    match values.get(source(i)) {
                        Some(v) => row[offset] = ((v - mean) / scale) as f32,
                        None if *missing_indicator => row[offset + 1] = 1.0,
                        None => {}
                    }
                }
            }
            Source::Categorical(slots) => {
                for (i, row) in rows {
                    if let Some(slot) = slots[source(i)] {
                        row[offset + slot as usize] = 1.0;
                    }
                }
            }
        }
    }
}

/// Rows written by one task of [`FeatureTransform::transform`].
const TRANSFORM_CHUNK_ROWS: usize = 4096;

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, MlError> {
    batch.column_by_name(name).ok_or_else(|| MlError::Column {
        column: name.into(),
        message: "the model needs this feature column, and the query does not return it".into(),
    })
}

impl FeatureTransform {
    /// Fits the transform of the columns `names` of `batch`.
    pub fn fit(batch: &RecordBatch, names: &[String]) -> Result<Self, MlError> {
        // Columns on every core; the first column in order that fails is the error.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = names.len().div_ceil(threads).max(1);
        let kinds: Vec<Result<FeatureKind, MlError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = names
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|name| Self::fit_column(batch, name))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("feature threads do not panic"))
                .collect()
        });
        let features = names
            .iter()
            .zip(kinds)
            .map(|(name, kind)| {
                Ok(Feature {
                    name: name.clone(),
                    kind: kind?,
                })
            })
            .collect::<Result<_, MlError>>()?;
        Ok(FeatureTransform { features })
    }

    /// How column `name` of `batch` becomes inputs.
    fn fit_column(batch: &RecordBatch, name: &str) -> Result<FeatureKind, MlError> {
        let array = column(batch, name)?;
        let data_type = array.data_type();
        Ok(if is_numeric(data_type) {
            let (count, mean, std) = Numbers::new(name, array)?.moments();
            if count == 0 {
                return Err(MlError::Input(format!(
                    "feature column {name} has no value in the training rows (all NULL \
                     or NaN): drop it from the features"
                )));
            }
            FeatureKind::Numeric {
                mean,
                scale: if std > 0.0 && std.is_finite() {
                    std
                } else {
                    1.0
                },
                missing_indicator: count < array.len(),
            }
        } else if is_text(data_type) {
            let strings = text_array(name, array)?;
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for v in strings.as_string::<i32>().iter().flatten() {
                *counts.entry(v).or_default() += 1;
            }
            let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            ranked.truncate(MAX_CATEGORIES);
            FeatureKind::Categorical {
                categories: ranked.into_iter().map(|(v, _)| v.to_string()).collect(),
            }
        } else {
            return Err(MlError::Column {
                column: name.into(),
                message: format!(
                    "of type {data_type} cannot be a feature: cast it to a number or a \
                     text in the query"
                ),
            });
        })
    }

    /// The number of model inputs.
    pub fn width(&self) -> usize {
        self.features.iter().map(Feature::width).sum()
    }

    /// The model inputs of `batch`'s rows; the feature columns are found by name.
    pub fn transform(&self, batch: &RecordBatch) -> Result<Matrix, MlError> {
        self.transform_rows(batch, None)
    }

    /// The model inputs of the rows `order` of `batch` (all rows when `None`), in that
    /// order.
    pub fn transform_rows(
        &self,
        batch: &RecordBatch,
        order: Option<&[u32]>,
    ) -> Result<Matrix, MlError> {
        if let Some(&bad) = order.and_then(|o| o.iter().find(|&&r| r as usize >= batch.num_rows()))
        {
            return Err(MlError::Input(format!(
                "row {bad} of a batch of {} rows",
                batch.num_rows()
            )));
        }
        let rows = order.map_or(batch.num_rows(), <[u32]>::len);
        let cols = self.width();
        let mut sources = Vec::with_capacity(self.features.len());
        for feature in &self.features {
            let array = column(batch, &feature.name)?;
            let wrong_type = || MlError::Column {
                column: feature.name.clone(),
                message: format!(
                    "the model was trained on a {}, found {}",
                    feature.type_name(),
                    array.data_type()
                ),
            };
            sources.push(match &feature.kind {
                FeatureKind::Numeric {
                    mean,
                    scale,
                    missing_indicator,
                } => {
                    if !is_numeric(array.data_type()) {
                        return Err(wrong_type());
                    }
                    Source::Numeric {
                        values: Numbers::new(&feature.name, array)?,
                        mean: *mean,
                        scale: *scale,
                        missing_indicator: *missing_indicator,
                    }
                }
                FeatureKind::Categorical { categories } => {
                    if !is_text(array.data_type()) {
                        return Err(wrong_type());
                    }
                    Source::Categorical(category_slots(&feature.name, array, categories)?)
                }
            });
        }
        let mut data = vec![0f32; rows * cols];
        // Row by row within a chunk of rows, so the writes stay in cache; chunks in
        // parallel (each writes its own rows).
        let chunk = TRANSFORM_CHUNK_ROWS * cols.max(1);
        let fill = |first: usize, out: &mut [f32]| {
            let mut offset = 0;
            for (feature, source) in self.features.iter().zip(&sources) {
                let source_row = |i: usize| match order {
                    Some(order) => order[first + i] as usize,
                    None => first + i,
                };
                source.write(out, cols, offset, source_row);
                offset += feature.width();
            }
        };
        let parts: Vec<(usize, &mut [f32])> = data
            .chunks_mut(chunk)
            .enumerate()
            .map(|(i, out)| (i * TRANSFORM_CHUNK_ROWS, out))
            .collect();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if parts.len() <= 1 || threads == 1 || cols == 0 {
            for (first, out) in parts {
                fill(first, out);
            }
        } else {
            let per_thread = parts.len().div_ceil(threads);
            let mut parts = parts;
            std::thread::scope(|scope| {
                while !parts.is_empty() {
                    let mine: Vec<_> = parts.drain(..per_thread.min(parts.len())).collect();
                    let fill = &fill;
                    scope.spawn(move || {
                        for (first, out) in mine {
                            fill(first, out);
                        }
                    });
                }
            });
        }
        Ok(Matrix { rows, cols, data })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, Int32Array, StringArray};

    use super::*;

    #[test]
    fn a_feature_accepts_its_type_family_and_null() {
        let numeric = Feature {
            name: "spend".into(),
            kind: FeatureKind::Numeric {
                mean: 0.0,
                scale: 1.0,
                missing_indicator: false,
            },
        };
        let categorical = Feature {
            name: "channel".into(),
            kind: FeatureKind::Categorical {
                categories: vec!["web".into()],
            },
        };
        let text_dictionary =
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        for t in [
            DataType::Int64,
            DataType::Float32,
            DataType::Boolean,
            DataType::Null,
        ] {
            assert!(numeric.accepts(&t), "{t}");
        }
        for t in [DataType::Utf8, DataType::Date32, text_dictionary.clone()] {
            assert!(!numeric.accepts(&t), "{t}");
        }
        for t in [
            DataType::Utf8,
            DataType::Utf8View,
            DataType::LargeUtf8,
            text_dictionary,
            DataType::Null,
        ] {
            assert!(categorical.accepts(&t), "{t}");
        }
        for t in [DataType::Int64, DataType::Boolean] {
            assert!(!categorical.accepts(&t), "{t}");
        }
    }

    fn batch() -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            (
                "age",
                Arc::new(Int32Array::from(vec![Some(20), Some(40), None])) as ArrayRef,
            ),
            (
                "city",
                Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("a")])) as ArrayRef,
            ),
            (
                "flat",
                Arc::new(Float64Array::from(vec![3.0, 3.0, 3.0])) as ArrayRef,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn scoring_applies_the_training_transform() {
        let names: Vec<String> = ["age", "city", "flat"].map(String::from).to_vec();
        let t = FeatureTransform::fit(&batch(), &names).unwrap();
        // age (+ missing flag), city a / b / other, flat.
        assert_eq!(t.width(), 2 + 3 + 1);
        let scored = RecordBatch::try_from_iter(vec![
            (
                "city",
                Arc::new(StringArray::from(vec![Some("zzz"), None])) as ArrayRef,
            ),
            (
                "flat",
                Arc::new(Float64Array::from(vec![3.0, 9.0])) as ArrayRef,
            ),
            (
                "age",
                Arc::new(Int32Array::from(vec![Some(30), None])) as ArrayRef,
            ),
        ])
        .unwrap();
        let m = t.transform(&scored).unwrap();
        assert_eq!(m.data[..6], [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]);
        assert_eq!(m.data[6..], [0.0, 1.0, 0.0, 0.0, 0.0, 6.0]);
    }

    #[test]
    fn missing_or_empty_columns_are_errors() {
        let names = vec!["nope".to_string()];
        let err = FeatureTransform::fit(&batch(), &names).unwrap_err();
        assert_eq!(err.sqlstate(), "42703");
        let empty = RecordBatch::try_from_iter(vec![(
            "x",
            Arc::new(Float64Array::from(vec![f64::NAN, f64::NAN])) as ArrayRef,
        )])
        .unwrap();
        let err = FeatureTransform::fit(&empty, &["x".to_string()]).unwrap_err();
        assert!(err.to_string().contains("no value"), "{err}");
    }
}

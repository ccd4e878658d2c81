//! The arguments after the query: an optional horizon and an options text
//! `'key = value, ...'` (what named arguments become, see [`crate::rewrite`]).

use std::collections::BTreeMap;

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;

use crate::ml::forecast::{Fill, ForecastOptions, Intervals, ModelChoice};
use crate::udf::query::constant;

/// The longest horizon a call may ask for.
pub(super) const MAX_HORIZON: usize = 100_000;

/// Reads `[horizon] [, options]` into options; `keys` are the option keys the function
/// takes. Returns the options and the rest of the key/value pairs for the caller.
pub(super) fn read(
    args: &[Expr],
    keys: &[&str],
    bad: &impl Fn(String) -> DataFusionError,
) -> Result<BTreeMap<String, String>> {
    let mut pairs = BTreeMap::new();
    let mut saw_text = false;
    for (i, arg) in args.iter().enumerate() {
        match constant(arg, "argument", bad)? {
            ScalarValue::Utf8(Some(text))
            | ScalarValue::Utf8View(Some(text))
            | ScalarValue::LargeUtf8(Some(text))
                if !saw_text =>
            {
                saw_text = true;
                for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let Some((key, value)) = pair.split_once('=') else {
                        return Err(bad(format!(
                            "an option is written key = value, found \"{pair}\""
                        )));
                    };
                    let key = key.trim().to_ascii_lowercase();
                    if !keys.contains(&key.as_str()) {
                        return Err(bad(format!(
                            "unknown option \"{key}\"; the options are {}",
                            keys.join(", ")
                        )));
                    }
                    if pairs
                        .insert(key.clone(), value.trim().to_string())
                        .is_some()
                    {
                        return Err(bad(format!("the option {key} is given twice")));
                    }
                }
            }
            value if i == 0 && value.data_type().is_integer() && keys.contains(&"horizon") => {
                pairs.insert("horizon".into(), value.to_string());
            }
            other => {
                return Err(bad(format!(
                    "after the query come an optional horizon (an integer) and an options text \
                     'key = value, ...'; found {other}"
                )));
            }
        }
    }
    Ok(pairs)
}

/// The forecasting options in `pairs` (keys horizon, season_length, model, ets_model,
/// level, fill, clean, intervals).
pub(super) fn forecast_options(
    pairs: &BTreeMap<String, String>,
    default_levels: Vec<f64>,
    bad: &impl Fn(String) -> DataFusionError,
) -> Result<ForecastOptions> {
    let forecast_error = |e: crate::ml::forecast::ForecastError| bad(e.to_string());
    let mut options = ForecastOptions {
        levels: default_levels,
        ..ForecastOptions::default()
    };
    if let Some(h) = pairs.get("horizon") {
        options.horizon = h
            .parse::<usize>()
            .ok()
            .filter(|h| (1..=MAX_HORIZON).contains(h))
            .ok_or_else(|| {
                bad(format!(
                    "the horizon is a number of steps from 1 to {MAX_HORIZON}, found {h}"
                ))
            })?;
    }
    if let Some(seasons) = pairs.get("season_length")
        && !seasons.eq_ignore_ascii_case("auto")
    {
        let mut lengths = numbers::<usize>(seasons, "season_length", bad)?;
        if lengths.contains(&0) {
            return Err(bad("a season_length is at least 1 (1: no season)".into()));
        }
        lengths.sort_unstable();
        lengths.dedup();
        options.seasons = Some(lengths);
    }
    let model = pairs.get("model").map_or("auto", String::as_str);
    options.model = ModelChoice::parse(model, pairs.get("ets_model").map(String::as_str))
        .map_err(forecast_error)?;
    if let Some(levels) = pairs.get("level") {
        options.levels = numbers::<f64>(levels, "level", bad)?;
    }
    if let Some(fill) = pairs.get("fill") {
        options.fill = Fill::parse(fill).map_err(forecast_error)?;
    }
    if let Some(intervals) = pairs.get("intervals") {
        options.intervals = Intervals::parse(intervals).map_err(forecast_error)?;
    }
    if let Some(clean) = pairs.get("clean") {
        options.clean = match clean.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" => true,
            "false" | "off" | "no" => false,
            other => return Err(bad(format!("clean is true or false, found \"{other}\""))),
        };
    }
    Ok(options)
}

/// Numbers separated by spaces.
fn numbers<T: std::str::FromStr>(
    text: &str,
    key: &str,
    bad: &impl Fn(String) -> DataFusionError,
) -> Result<Vec<T>> {
    let values: Vec<T> = text
        .split_whitespace()
        .map(|v| {
            v.parse::<T>().map_err(|_| {
                bad(format!(
                    "{key} takes numbers separated by spaces, found \"{v}\""
                ))
            })
        })
        .collect::<Result<_>>()?;
    if values.is_empty() {
        return Err(bad(format!("{key} needs a value")));
    }
    Ok(values)
}

/// The column name of a level: `80` as `80`, `99.5` as `99_5`.
pub(super) fn level_name(level: f64) -> String {
    level.to_string().replace('.', "_")
}

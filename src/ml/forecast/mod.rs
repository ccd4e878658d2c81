//! Forecasting many series at once, with prediction intervals and anomaly flags.
//!
//! The models, one family per module, each a [`FittedModel`]:
//!
//! - [`ets`]: exponential smoothing state-space models, components chosen by AICc (as
//!   statsforecast's AutoETS and R's `forecast::ets`);
//! - [`theta`]: the Theta method, optimised (as statsforecast's AutoTheta);
//! - [`mstl`]: several seasonalities (MSTL decomposition) with ETS on the rest;
//! - [`naive`]: the seasonal naive and naive models;
//! - [`intermittent`]: Croston, SBA and TSB for demand that is mostly zero.
//!
//! [`clean`] replaces outliers before fitting, [`series`] puts the rows of a series on a regular grid (steps, gaps, missing values),
//! [`choose`] picks a model per series (`auto`: ETS unless another model wins each of the series' last holdouts),
//! and [`many`] runs it all over many series on every core: [`forecast_many`] and
//! [`anomalies_many`] are the Rust API under the SQL functions `forecast` and
//! `forecast_anomalies`. [`plot`] draws a forecast as an SVG chart.

pub mod choose;
pub mod clean;
pub mod ets;
pub mod intermittent;
pub mod many;
pub mod model;
pub mod mstl;
pub mod naive;
pub mod plot;
pub mod series;
pub mod stl;
pub mod theta;

pub use choose::ModelChoice;
pub use many::{
    Flag, ForecastOptions, Intervals, SeriesFlags, SeriesForecast, SeriesRows, anomalies_many,
    forecast_many,
};
pub use model::{FittedModel, Forecast, Interval};
pub use series::{Clock, Fill, Step};

/// Why a forecast cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ForecastError {
    /// The caller's input does not fit (an option, a series' content).
    #[error("{0}")]
    Input(String),
    #[error("the forecast was cancelled")]
    Cancelled,
}

impl ForecastError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ForecastError::Input(_) => "22023",
            ForecastError::Cancelled => "57014",
        }
    }
}

//! Models and statistics over query results: the statistics of experiments ([`stats`])
//! and multi-touch attribution of conversions to channels ([`attribution`]). The candle
//! runtime, uplift and forecasting will live here too.

pub mod attribution;
pub mod stats;

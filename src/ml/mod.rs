//! Models and statistics over query results: for now the statistics of experiments
//! ([`stats`]). The candle runtime, uplift and forecasting will live here too.

pub mod stats;

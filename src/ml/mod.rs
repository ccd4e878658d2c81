//! Models and statistics over query results: the candle runtime every model shares
//! ([`runtime`]: devices, features, learners, the model registry), uplift modelling
//! ([`uplift`]), the statistics of experiments ([`stats`]) and multi-touch attribution
//! of conversions to channels ([`attribution`]).

pub mod attribution;
pub mod forecast;
pub mod runtime;
pub mod stats;
pub mod uplift;

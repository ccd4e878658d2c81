//! Attribution table functions: which channels earned the conversions of user journeys.
//! The models are in [`crate::ml::attribution`], whose module docs define them.
//!
//! # `attribution(query, model [, parameter])`
//!
//! ```sql
//! SELECT * FROM attribution(
//!   'SELECT user_id, ts, channel, converted, amount FROM journeys', 'markov');
//! ```
//!
//! - `query`: a constant text, one query (`SELECT`, `WITH`, `VALUES`) whose result has,
//!   by position: the journey key (any type), the touch time (a timestamp, a date, or a
//!   number of seconds), the channel (text), whether the journey converted (boolean, or an
//!   integer 0/1) and, optionally, the conversion value (a number; 1 per conversion when
//!   the column is absent). One row per touch; `converted` and `value` describe the
//!   journey's outcome, so they are taken as the largest value over its rows (a NULL
//!   `converted` counts as false, a NULL value is skipped, a converted journey with no
//!   value is worth 0). A NULL key, time or channel is an error. Dollar quoting saves
//!   doubling quotes: `attribution($$ SELECT ... WHERE channel <> 'push' $$, 'linear')`.
//! - `model`: `first`, `last`, `linear`, `time_decay`, `position`, `markov` or `shapley`.
//! - `parameter`: for `time_decay` the half-life in days (default 7); for `position` the
//!   share of the first and of the last touch, 0 to 0.5 (default 0.4). NULL means the
//!   default; other models take none.
//!
//! The arguments are constants (expressions of constants are folded first); a bound
//! parameter (`$1`) is not, since the query is planned before parameters are bound: inline
//! the value, or bind parameters inside the query's own filters instead.
//!
//! It returns one row per channel, ordered by channel:
//! `channel text, conversions double (credited conversions), value double (credited
//! value), share double (the channel's fraction of the conversion credit; NULL when
//! nothing converted), removal_effect double (the Markov removal effect; NULL for the
//! other models)`. Conversions sum to the number of converted journeys and values to
//! their total value, for every model.
//!
//! The query runs in the calling session (its settings, tables and functions), with the
//! same PostgreSQL rewrites as a statement sent by a client, when the `attribution` scan
//! executes (`EXPLAIN` shows its plan under `AttributionExec` without running it). It may
//! not call a function that changes state (`dense_id`, the audience and coupon calls).
//! Journeys are ordered by key and touches by time, then channel, before any sum, so the
//! result does not depend on the order rows arrive in. The journeys are held in memory.
//!
//! Errors (SQLSTATE 22023): an unknown model, a parameter out of range or given to a
//! model without one, a query that is not one query or whose columns are not as above,
//! a NULL key, time or channel, `converted` other than 0/1, a value or time that is not
//! finite. More than 1 000 channels for `markov`: 54000.
//!
//! DataFusion has no documentation hook for table functions, so this is the reference;
//! the README's "Attribution" section has examples, `sql/experiments/attribution.slt`
//! pins the behaviour and `tests/it/attribution_differential.rs` checks the numbers
//! against an independent Python implementation.

// One file per function, named after it, as in the other areas.
#[allow(clippy::module_inception)]
mod attribution;

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;

pub use attribution::AttributionFunction;

/// The table functions of this area, by name.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![(attribution::NAME, Arc::new(AttributionFunction))]
}

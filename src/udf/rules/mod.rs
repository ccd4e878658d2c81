//! Rule matching in SQL. The semantics (conditions, patterns, groups, caps) are the
//! module docs of [`crate::rules`].
//!
//! # `match_rules(events [, profiles])`
//!
//! ```sql
//! SELECT rule_id, count(*) FROM match_rules(
//!   'SELECT event_id, user_id, event_type, category, ts, amount FROM events',
//!   'SELECT * FROM users') GROUP BY rule_id;
//! ```
//!
//! - `events`: a constant text, one query (`SELECT`, `WITH`, `VALUES`) with the columns
//!   `event_id`, `user_id`, `event_type`, `ts` (a timestamp; needed by patterns, caps
//!   and validity windows) and every column the rules' conditions read.
//! - `profiles`: optional, a query with a `user_id` column; its other columns are joined
//!   to each event by `user_id` (LEFT JOIN: an unknown user has NULL profile columns),
//!   unless the events have a column of the same name.
//!
//! Returns one row per fired rule: `event_id`, `user_id` (typed as in the query),
//! `rule_id bigint, rule_version bigint, rule_name text, rule_group text, action text,
//! action_params text, channel text, fired_at timestamptz`, in event order. It runs the
//! current enabled rules of `martdb.rules` and changes nothing; patterns see this input
//! alone. Errors: SQLSTATE 22023 for a rule
//! whose condition does not fit the query's columns (the message names the rule), 42703
//! for a missing `event_id`, `user_id`, `event_type` or `ts`.
//!
//! # `apply_rules(events [, profiles])`
//!
//! Matches as `match_rules` does, then carries the actions out and adds an `outcome`
//! column ([`crate::rules::Rules::apply`]): a `coupon` action reserves a coupon of
//! `action_params.pool` with the request key `rule:<rule_id>:<event_id>` (idempotent:
//! applying the same events again answers `duplicate:<first outcome>`); `message` and
//! `state` actions are queued once per rule and event in `martdb.rule_outbox`
//! (`queued`, then `duplicate`); `emit` only reports (`emitted`). It changes state: a
//! read-only session may not call it (SQLSTATE 25006).
//!
//! Frequency caps of both functions count the messages and state changes already in
//! the outbox: an `apply_rules` every ten minutes does not message a user twice a day.
//!
//! Rules are rows of `martdb.rules`: `INSERT`, `UPDATE` and `DELETE` change them (see
//! [`crate::catalog::rules`]).

mod match_rules;

use std::sync::Arc;

use datafusion::catalog::{TableFunctionImpl, TableProvider};

use crate::rules::Rules;

/// The table functions over an engine's rules, by name.
pub fn table_functions(rules: &Rules) -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    vec![
        (
            match_rules::NAME,
            Arc::new(match_rules::MatchRules {
                rules: rules.clone(),
                apply: false,
            }),
        ),
        (
            match_rules::APPLY,
            Arc::new(match_rules::MatchRules {
                rules: rules.clone(),
                apply: true,
            }),
        ),
    ]
}

/// The name of the state-changing table function `provider` is a call of, if it is one.
pub(crate) fn writing_table_function(provider: &dyn TableProvider) -> Option<&'static str> {
    provider
        .downcast_ref::<match_rules::MatchTable>()
        .filter(|t| t.applies())
        .map(|_| match_rules::APPLY)
}

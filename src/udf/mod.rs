//! The SQL surface: every martdb SQL function, one file each, registered from one list.
//!
//! [`register_all`] is the single entry point; it works on any DataFusion
//! `SessionContext` (the engine's, or a distributed executor's), so the same functions
//! exist wherever a plan runs.

pub mod attribution;
pub mod bitmap;
pub mod coupons;
pub mod experiments;
pub mod forecasting;
pub mod identity;
pub mod ml;
pub mod privacy;
pub(crate) mod query;
pub mod rules;
pub mod system;

use std::sync::Arc;

use datafusion::catalog::TableFunctionImpl;
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::prelude::SessionContext;
use futures::future::BoxFuture;

/// Functions that change state kept outside tables; a read-only session may not call
/// them (SQLSTATE 25006).
pub const WRITING_FUNCTIONS: &[&str] = &[
    "dense_id",
    "audience_save",
    "audience_refresh",
    "audience_drop",
    "reserve_coupon",
    "redeem_coupon",
    "release_coupon",
    "create_coupon_pool",
    "alter_coupon_pool",
    "identity_update",
    "model_deploy",
    "backup_database",
];

/// One call of a scalar function on its argument values, awaited rather than run inside
/// a plan: a function that waits for a durable commit gives its caller's task up while it
/// waits instead of blocking a thread (see [`direct_call`]).
pub(crate) type DirectCall =
    Arc<dyn Fn(Vec<ScalarValue>) -> BoxFuture<'static, Result<ScalarValue>> + Send + Sync>;

/// The direct form of `udf`, for the functions that have one (the coupon calls); it
/// returns what `udf` returns for one row of the same arguments.
pub(crate) fn direct_call(udf: &ScalarUDF) -> Option<DirectCall> {
    coupons::direct_call(udf)
}

/// Every martdb scalar function.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    let mut all = system::functions();
    all.extend(bitmap::functions());
    all.extend(experiments::functions());
    all.extend(ml::functions());
    all.extend(privacy::functions());
    all
}

/// Every martdb window function.
pub fn window_functions() -> Vec<WindowUDF> {
    experiments::window_functions()
}

/// Every martdb aggregate function.
pub fn aggregate_functions() -> Vec<AggregateUDF> {
    let mut all = bitmap::aggregate_functions();
    all.extend(experiments::aggregate_functions());
    all.extend(ml::aggregate_functions());
    all
}

/// Every martdb table function, by name.
pub fn table_functions() -> Vec<(&'static str, Arc<dyn TableFunctionImpl>)> {
    let mut all = attribution::table_functions();
    all.extend(identity::table_functions());
    all.extend(forecasting::table_functions());
    all.extend(ml::table_functions());
    all
}

/// Registers every martdb function on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for function in scalar_functions() {
        ctx.register_udf(function);
    }
    for function in aggregate_functions() {
        ctx.register_udaf(function);
    }
    for function in window_functions() {
        ctx.register_udwf(function);
    }
    for (name, function) in table_functions() {
        ctx.register_udtf(name, function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// (name, aliases, documented) of every function, scalar and aggregate.
    fn every_function() -> Vec<(String, Vec<String>, bool)> {
        let scalars = scalar_functions().into_iter().map(|f| {
            let documented = f.documentation().is_some();
            (f.name().to_string(), f.aliases().to_vec(), documented)
        });
        let aggregates = aggregate_functions().into_iter().map(|f| {
            let documented = f.documentation().is_some();
            (f.name().to_string(), f.aliases().to_vec(), documented)
        });
        scalars.chain(aggregates).collect()
    }

    #[test]
    fn no_duplicate_names_or_aliases() {
        let mut seen = HashSet::new();
        for (name, aliases, _) in every_function() {
            for name in std::iter::once(name).chain(aliases) {
                assert!(seen.insert(name.clone()), "duplicate function name {name}");
                assert_eq!(name, name.to_lowercase(), "SQL lowercases names: {name}");
            }
        }
    }

    #[test]
    fn table_function_names_are_unique_and_lowercase() {
        let mut seen = HashSet::new();
        for (name, _) in table_functions() {
            assert!(seen.insert(name), "duplicate table function {name}");
            assert_eq!(name, name.to_lowercase(), "SQL lowercases names: {name}");
        }
    }

    #[test]
    fn every_function_is_documented() {
        for (name, _, documented) in every_function() {
            assert!(documented, "{name} has no documentation");
        }
    }
}

//! The SQL surface: every martdb SQL function, one file each, registered from one list.
//!
//! [`register_all`] is the single entry point; it works on any DataFusion
//! `SessionContext` (the engine's, or a distributed executor's), so the same functions
//! exist wherever a plan runs.

pub mod system;

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;

/// Every martdb scalar function.
pub fn scalar_functions() -> Vec<ScalarUDF> {
    system::functions()
}

/// Registers every martdb function on `ctx`.
pub fn register_all(ctx: &SessionContext) {
    for function in scalar_functions() {
        ctx.register_udf(function);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn no_duplicate_names_or_aliases() {
        let mut seen = HashSet::new();
        for f in scalar_functions() {
            for name in std::iter::once(f.name()).chain(f.aliases().iter().map(String::as_str)) {
                assert!(
                    seen.insert(name.to_string()),
                    "duplicate function name {name}"
                );
            }
        }
    }

    #[test]
    fn every_function_is_documented() {
        for f in scalar_functions() {
            assert!(
                f.documentation().is_some(),
                "{} has no documentation",
                f.name()
            );
        }
    }
}

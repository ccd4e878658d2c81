//! Functions about martdb itself.

mod martdb_version;

use datafusion::logical_expr::ScalarUDF;

pub use martdb_version::MartdbVersion;

/// The functions of this area.
pub fn functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::new_from_impl(MartdbVersion::new())]
}

//! Functions about martdb itself and the session.

pub mod current_setting;
mod martdb_version;
mod version;

use datafusion::logical_expr::ScalarUDF;

pub use martdb_version::MartdbVersion;
pub use version::Version;

/// The functions of this area (`current_setting` is per session: see
/// [`crate::session::Session`]).
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(MartdbVersion::new()),
        ScalarUDF::new_from_impl(Version::new()),
    ]
}

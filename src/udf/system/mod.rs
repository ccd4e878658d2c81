//! Functions about martdb itself and the session.

mod backup_database;
pub mod current_setting;
mod json_build_object;
pub(crate) mod like_escape;
mod martdb_version;
mod octet_length;
mod pg_collation_is_visible;
pub(crate) mod pg_expandarray;
mod pg_get_indexdef;
mod pg_get_serial_sequence;
mod to_regtype;
mod version;

use datafusion::logical_expr::{DocSection, ScalarUDF};

/// Where these functions appear in the generated function reference.
const SECTION: DocSection = DocSection {
    include: true,
    label: "System Functions",
    description: None,
};

pub use backup_database::BackupDatabase;
pub use json_build_object::JsonBuildObject;
pub use like_escape::LikeEscape;
pub use martdb_version::MartdbVersion;
pub use octet_length::OctetLength;
pub use pg_collation_is_visible::PgCollationIsVisible;
pub use pg_expandarray::PgExpandArray;
pub use pg_get_indexdef::PgGetIndexdef;
pub use pg_get_serial_sequence::PgGetSerialSequence;
pub use to_regtype::ToRegtype;
pub use version::Version;

/// The functions of this area (`current_setting` is per session: see
/// [`crate::session::Session`]).
pub fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(MartdbVersion::new()),
        ScalarUDF::new_from_impl(Version::new()),
        ScalarUDF::new_from_impl(ToRegtype::new()),
        ScalarUDF::new_from_impl(PgGetSerialSequence::new()),
        ScalarUDF::new_from_impl(LikeEscape::new()),
        ScalarUDF::new_from_impl(JsonBuildObject::new()),
        ScalarUDF::new_from_impl(PgExpandArray::new()),
        ScalarUDF::new_from_impl(PgGetIndexdef::new()),
        ScalarUDF::new_from_impl(PgCollationIsVisible::new()),
        ScalarUDF::new_from_impl(OctetLength::new()),
    ]
}

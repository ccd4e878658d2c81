//! The crate-level error and the one place that maps errors to Postgres SQLSTATEs.
//!
//! Every module has its own error enum (`catalog::CatalogError`, `storage::StorageError`);
//! they all convert into [`Error`], and [`Error::sqlstate`] is the only code that decides
//! which SQLSTATE a failure gets, so the wire server, the CLI and embedding applications
//! agree on it.

use datafusion::error::DataFusionError;

use crate::catalog::CatalogError;
use crate::session::SessionError;
use crate::storage::StorageError;

/// Result alias used across martdb's public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Any error martdb returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Planning or executing SQL failed (syntax, unknown objects, types, execution).
    #[error("{}", describe_datafusion(.0))]
    Sql(#[from] DataFusionError),
    /// Creating, dropping or resolving a catalog object failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The data directory or object store could not be used.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Session state: settings, cursors, cancellation, read-only access.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// A coupon pool or reservation call failed.
    #[error(transparent)]
    Coupons(#[from] crate::coupons::CouponError),
    /// Privacy settings (hash keys, masking rules) that cannot be used.
    #[error(transparent)]
    Privacy(#[from] crate::privacy::PrivacyError),
    /// The Ballista cluster could not be reached or used.
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    /// The statement is valid SQL that martdb does not support.
    #[error("{0}")]
    Unsupported(String),
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        Error::Sql(DataFusionError::ArrowError(Box::new(e), None))
    }
}

impl Error {
    /// The Postgres SQLSTATE for this error (see
    /// <https://www.postgresql.org/docs/current/errcodes-appendix.html>).
    pub fn sqlstate(&self) -> &'static str {
        let message = self.to_string();
        if is_disk_full(&message) {
            return DISK_FULL;
        }
        // An error raised on a cluster's executor arrives as text with its code.
        if let Some(code) = crate::cluster::errors::sqlstate_in(&message) {
            return interned(code);
        }
        match self {
            Error::Sql(e) => datafusion_sqlstate(e),
            Error::Catalog(e) => match e {
                CatalogError::TableExists { .. } | CatalogError::SchemaExists { .. } => "42P07",
                CatalogError::TableNotFound { .. } => "42P01",
                CatalogError::SchemaNotFound { .. } => "3F000",
                CatalogError::SchemaNotEmpty { .. } => "2BP01",
                CatalogError::ReadOnly { .. } | CatalogError::WrongKind { .. } => "42809",
                CatalogError::UnsupportedType { .. } => "0A000",
                CatalogError::Query { source, .. } => datafusion_sqlstate(source),
                // The Delta writer reports query failures as text.
                CatalogError::Delta { message, .. } => message_sqlstate(message),
                CatalogError::Metadata(_) => "XX000",
            },
            Error::Storage(e) => match e {
                StorageError::InUse { .. } => "55006",
                StorageError::BadLocation { .. } => "22023",
                StorageError::NotFound { .. } => "58P01",
                _ => "58030",
            },
            Error::Session(e) => e.sqlstate(),
            Error::Coupons(e) => e.sqlstate(),
            Error::Unsupported(_) => "0A000",
            Error::Cluster(e) => match e {
                crate::cluster::ClusterError::BadAddress { .. } => "22023",
                // connection_failure
                _ => "08006",
            },
            Error::Privacy(e) => e.sqlstate(),
        }
    }
}

/// SQLSTATE `disk_full`.
const DISK_FULL: &str = "53100";

/// Whether a failure was the file system running out of room (ENOSPC) or quota (EDQUOT).
/// The writers between martdb and the disk (Delta, object_store, Parquet, redb) turn the
/// OS error into text on the way up, so it is told by the OS error's own rendering.
fn is_disk_full(message: &str) -> bool {
    message.contains("(os error 28)") || message.contains("(os error 122)")
}

pub(crate) fn arrow_sqlstate(err: &datafusion::arrow::error::ArrowError) -> &'static str {
    use datafusion::arrow::error::ArrowError as A;
    match err {
        A::DivideByZero => "22012",
        A::CastError(_) | A::ParseError(_) => "22P02",
        A::ComputeError(_) | A::ArithmeticOverflow(_) => "22003",
        A::ParquetError(_) | A::IoError(..) => "58030",
        _ => "XX000",
    }
}

/// `code` as a `&'static str`. Codes are five characters from a small set (those martdb
/// raises), so the set of leaked strings stays small.
fn interned(code: &str) -> &'static str {
    static CODES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut codes = CODES.lock().expect(crate::LOCK_POISONED);
    if let Some(known) = codes.iter().find(|known| **known == code) {
        return known;
    }
    let leaked: &'static str = Box::leak(code.to_owned().into_boxed_str());
    codes.push(leaked);
    leaked
}

/// DataFusion wraps errors in context layers; the innermost error decides the SQLSTATE.
pub(crate) fn datafusion_sqlstate(e: &DataFusionError) -> &'static str {
    match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(err, _) => {
            use datafusion::common::SchemaError as S;
            match err.as_ref() {
                S::FieldNotFound { .. } => "42703",
                S::AmbiguousReference { .. } => "42702",
                S::DuplicateQualifiedField { .. } | S::DuplicateUnqualifiedField { .. } => "42701",
            }
        }
        DataFusionError::Plan(msg) => plan_sqlstate(msg),
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::ResourcesExhausted(_) => "53200",
        DataFusionError::ArrowError(err, _) => arrow_sqlstate(err),
        DataFusionError::ParquetError(_) | DataFusionError::ObjectStore(_) => "58030",
        DataFusionError::IoError(_) => "58030",
        DataFusionError::Execution(msg) => message_sqlstate(msg),
        DataFusionError::External(e) => {
            if let Some(e) = e.downcast_ref::<SessionError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::udf::bitmap::ArgumentError>() {
                e.sqlstate()
            } else if let Some(e) =
                e.downcast_ref::<crate::udf::bitmap::audiences::AudienceCallError>()
            {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::coupons::CouponError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::ml::stats::StatsError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::ml::attribution::AttributionError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::ml::runtime::MlError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::ml::forecast::ForecastError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::privacy::PrivacyError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::identity::IdentityError>() {
                e.sqlstate()
            } else if let Some(e) = e.downcast_ref::<crate::rules::RuleError>() {
                match e {
                    crate::rules::RuleError::Engine(inner) => datafusion_sqlstate(inner),
                    other => other.sqlstate(),
                }
            } else if e
                .downcast_ref::<crate::rewrite::scalar_subquery::MoreThanOneRow>()
                .is_some()
            {
                crate::rewrite::scalar_subquery::CARDINALITY_VIOLATION
            } else if let Some(e) = e.downcast_ref::<crate::bitmap::dictionary::DictionaryError>() {
                match e {
                    crate::bitmap::dictionary::DictionaryError::Closed => "57P01",
                    crate::bitmap::dictionary::DictionaryError::Store(_) => "58030",
                }
            } else {
                "XX000"
            }
        }
        _ => "XX000",
    }
}

/// For failures only known by their message (execution errors, and errors that crossed
/// the Delta writer, which turns them into text).
fn message_sqlstate(msg: &str) -> &'static str {
    if msg.contains("Divide by zero") {
        "22012"
    } else if msg.contains("Cannot cast") || msg.contains("Cast error") {
        "22P02"
    } else if msg.contains("Resources exhausted") {
        "53200"
    } else {
        "XX000"
    }
}

/// DataFusion reports most semantic errors as `Plan` with a message; these prefixes are
/// stable across its releases and are what psql users see anyway.
fn plan_sqlstate(msg: &str) -> &'static str {
    if msg.contains("table") && (msg.contains("not found") || msg.contains("doesn't exist")) {
        "42P01"
    } else if msg.starts_with("there is no parameter") {
        "42P02"
    } else if msg.contains("Invalid function") || msg.contains("No function matches") {
        "42883"
    } else if msg.contains("already exists") {
        "42P07"
    } else if msg.contains("Cannot infer common")
        || msg.contains("Cannot coerce")
        || msg.contains("type")
    {
        "42804"
    } else {
        "42000"
    }
}

/// A function's own argument check, when DataFusion wrapped it in its generic "no
/// function matches" text (which lists candidates martdb's functions do not have).
fn own_coercion_message(msg: &str) -> Option<&str> {
    let (_, inner) =
        msg.split_once("user-defined coercion failed with: Error during planning: ")?;
    Some(
        inner
            .split_once(" No function matches")
            .map_or(inner, |(own, _)| own)
            .trim_end_matches('.'),
    )
}

/// DataFusion's `Display` prefixes every context layer ("Error during planning: ...");
/// users want the message of the root cause, with our own context kept.
fn describe_datafusion(e: &DataFusionError) -> String {
    match e {
        DataFusionError::Context(ctx, inner) => format!("{ctx}: {}", describe_datafusion(inner)),
        DataFusionError::Shared(inner) => describe_datafusion(inner),
        DataFusionError::Diagnostic(_, inner) => describe_datafusion(inner),
        DataFusionError::SQL(err, _) => format!("syntax error: {err}"),
        DataFusionError::Plan(msg) => own_coercion_message(msg).unwrap_or(msg).to_string(),
        DataFusionError::Execution(msg)
        | DataFusionError::NotImplemented(msg)
        | DataFusionError::ResourcesExhausted(msg)
        | DataFusionError::Configuration(msg)
        | DataFusionError::Internal(msg) => msg.clone(),
        DataFusionError::External(e) => e.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::common::{Column, SchemaError};

    #[test]
    fn sqlstates_of_common_failures() {
        let syntax = DataFusionError::SQL(
            Box::new(datafusion::sql::sqlparser::parser::ParserError::ParserError("x".into())),
            None,
        );
        assert_eq!(Error::from(syntax).sqlstate(), "42601");
        let missing_col = DataFusionError::SchemaError(
            Box::new(SchemaError::FieldNotFound {
                field: Box::new(Column::from_name("nope")),
                valid_fields: vec![],
            }),
            Box::new(None),
        );
        assert_eq!(Error::from(missing_col).sqlstate(), "42703");
        let oom = DataFusionError::ResourcesExhausted("over limit".into());
        assert_eq!(Error::from(oom).sqlstate(), "53200");
        let wrapped = DataFusionError::Context(
            "outer".into(),
            Box::new(DataFusionError::Plan("table 'x' not found".into())),
        );
        let err = Error::from(wrapped);
        assert_eq!(err.sqlstate(), "42P01");
        assert_eq!(err.to_string(), "outer: table 'x' not found");
    }

    #[test]
    fn a_full_disk_is_disk_full_however_deep_it_is_wrapped() {
        let no_space = std::io::Error::from_raw_os_error(28);
        let direct = DataFusionError::IoError(no_space);
        assert_eq!(Error::from(direct).sqlstate(), "53100");
        let through_delta = CatalogError::Delta {
            table: "t".into(),
            message: "Failed to parse parquet: External: Generic LocalFileSystem error: \
                      Unable to copy data to file: No space left on device (os error 28)"
                .into(),
        };
        assert_eq!(Error::from(through_delta).sqlstate(), "53100");
        let quota = DataFusionError::External(Box::new(std::io::Error::from_raw_os_error(122)));
        assert_eq!(Error::from(quota).sqlstate(), "53100");
        let other_io = DataFusionError::IoError(std::io::Error::from_raw_os_error(5));
        assert_eq!(Error::from(other_io).sqlstate(), "58030");
    }
}

//! The server's TOML configuration (`martdb serve --config martdb.toml`): the same
//! settings as the command line, plus users, TLS and the audit log.
//!
//! ```toml
//! data = "martdb-data"
//! listen = "0.0.0.0:5433"
//! memory_limit = "8G"
//! table_cache = "1G"            # decoded small tables kept in memory ("0": off)
//! auth = "scram-sha-256"        # or "trust" (loopback only)
//! audit = true                  # audit every statement (state changes always are)
//! audit_file = "audit.log"      # default: <data>/_martdb/audit.log
//! audit_rotate_size = "100M"    # then audit.log -> audit.log.1 ...
//! audit_keep = 10               # rotated files kept
//!
//! metrics_listen = "127.0.0.1:9187"   # Prometheus: GET /metrics (off by default)
//!
//! # Limits (each optional)
//! max_connections = 100          # more are refused with 53300
//! statement_timeout = "5min"     # sessions' default; they may change it
//! idle_session_timeout = "1h"    # idle clients are disconnected (57P05)
//! query_memory_limit = "2G"      # per statement; sessions may lower it, not raise it
//! max_result_size = "1G"         # bytes of rows one statement sends; same
//!
//! [hash_keys]                   # for hash_id(id, 'crm'); never in SQL text
//! crm = "hex:5f2b..."           # at least 32 bytes: `openssl rand -hex 32`
//!
//! [[masking]]                   # read-only users see masked phone numbers
//! table = "customers"           # or "schema.table"
//! column = "phone"
//! function = "mask_phone"       # mask_email, mask(1, 2), hash_id(crm), null
//! roles = ["read_only"]         # the default
//!
//! [tls]
//! cert = "server.crt"           # PEM certificate chain
//! key = "server.key"            # PEM private key
//!
//! [[users]]
//! name = "analyst"
//! password = "scram-sha-256:4096:..."   # from `martdb passwd`
//! role = "read_only"                    # or "admin" (default)
//! ```
//!
//! Invariant: a configuration that [`Config::server_options`] accepts never serves a
//! non-loopback address without password authentication.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::privacy::{HashKeys, Masking, MaskingRule, PrivacyOptions};

use super::auth::{AuthError, Authentication, Role, User, Users};
use super::{AuditOptions, DEFAULT_MAX_CONNECTIONS, ServerOptions, TlsFiles};

/// Errors of reading or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Invalid(String),
}

/// How clients prove who they are.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum AuthMethod {
    #[serde(rename = "trust")]
    Trust,
    #[serde(rename = "scram-sha-256")]
    ScramSha256,
}

/// One `[[users]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    /// A verifier from `martdb passwd`.
    pub password: String,
    #[serde(default)]
    pub role: Role,
}

/// One `[[masking]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskingEntry {
    /// `table` (in `public`) or `schema.table`.
    pub table: String,
    pub column: String,
    /// `mask_phone`, `mask_email`, `mask(keep_first, keep_last)`, `hash_id(key)`, `null`.
    pub function: String,
    /// The roles that see the masked column (default: read_only).
    #[serde(default = "read_only_role")]
    pub roles: Vec<Role>,
}

fn read_only_role() -> Vec<Role> {
    vec![Role::ReadOnly]
}

/// `[tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsEntry {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The whole file. Every field is optional; the command line fills what is missing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data: Option<String>,
    pub listen: Option<SocketAddr>,
    /// Bytes, or a size such as "512M" / "8G".
    pub memory_limit: Option<String>,
    /// Bytes, or a size such as "512M"; default an eighth of the memory limit (≤ 2G).
    pub table_cache: Option<String>,
    /// Default: scram-sha-256 when users are configured, trust otherwise.
    pub auth: Option<AuthMethod>,
    #[serde(default)]
    pub audit: bool,
    /// The audit log (JSON lines); relative to this file. The command line's default is
    /// `<data>/_martdb/audit.log`.
    pub audit_file: Option<PathBuf>,
    /// Bytes, or a size such as "100M": the log is rotated past it.
    pub audit_rotate_size: Option<String>,
    /// Rotated audit files kept (default 10).
    pub audit_keep: Option<usize>,
    pub tls: Option<TlsEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Where to serve Prometheus metrics.
    pub metrics_listen: Option<SocketAddr>,
    /// Default: 100.
    pub max_connections: Option<usize>,
    /// A duration such as "30s" or "5min"; sessions start with it.
    pub statement_timeout: Option<String>,
    /// A duration; clients idle longer (outside a transaction block) are disconnected.
    pub idle_session_timeout: Option<String>,
    /// Bytes, or a size such as "2G"; the most one statement may hold in memory.
    pub query_memory_limit: Option<String>,
    /// Bytes, or a size such as "1G"; the most one statement may send a client.
    pub max_result_size: Option<String>,
    /// Secret keys for `hash_id`, by name: "hex:..." or "base64:...".
    #[serde(default)]
    pub hash_keys: std::collections::BTreeMap<String, String>,
    /// Column masking rules.
    #[serde(default)]
    pub masking: Vec<MaskingEntry>,
}

impl Config {
    /// Reads `path`; relative TLS paths are taken relative to the file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let (Some(tls), Some(dir)) = (&mut config.tls, path.parent()) {
            tls.cert = dir.join(&tls.cert);
            tls.key = dir.join(&tls.key);
        }
        if let (Some(file), Some(dir)) = (&mut config.audit_file, path.parent()) {
            *file = dir.join(&*file);
        }
        Ok(config)
    }

    /// The hash keys and masking rules, for [`crate::EngineOptions::privacy`].
    pub fn privacy(&self) -> Result<PrivacyOptions, ConfigError> {
        let hash_keys = HashKeys::parse(
            self.hash_keys
                .iter()
                .map(|(name, key)| (name.as_str(), key.as_str())),
        )
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut masking = Vec::new();
        for entry in &self.masking {
            let (schema, table) = entry
                .table
                .split_once('.')
                .unwrap_or((crate::catalog::DEFAULT_SCHEMA, &entry.table));
            let function = Masking::parse(&entry.function).map_err(|e| {
                ConfigError::Invalid(format!("[[masking]] {}.{}: {e}", entry.table, entry.column))
            })?;
            masking.push(MaskingRule {
                schema: schema.to_string(),
                table: table.to_string(),
                column: entry.column.clone(),
                masking: function,
                roles: entry.roles.iter().map(|r| r.name().to_string()).collect(),
            });
        }
        let privacy = PrivacyOptions { hash_keys, masking };
        privacy
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        Ok(privacy)
    }

    /// Checks the combination and turns it into what [`super::serve`] takes.
    pub fn server_options(&self, listen: SocketAddr) -> Result<ServerOptions, ConfigError> {
        let users = Users::new(
            self.users
                .iter()
                .map(|u| User::new(&u.name, &u.password, u.role))
                .collect::<Result<Vec<_>, _>>()?,
        )?;
        let method = self.auth.unwrap_or(if users.is_empty() {
            AuthMethod::Trust
        } else {
            AuthMethod::ScramSha256
        });
        let users = Arc::new(users);
        let authentication = match method {
            AuthMethod::Trust if !listen.ip().is_loopback() => {
                return Err(ConfigError::Invalid(format!(
                    "refusing to serve {listen} with trust authentication: trust is for loopback addresses only; configure [[users]] (martdb passwd) and auth = \"scram-sha-256\""
                )));
            }
            AuthMethod::Trust => Authentication::Trust(users),
            AuthMethod::ScramSha256 if users.is_empty() => {
                return Err(ConfigError::Invalid(
                    "auth = \"scram-sha-256\" needs at least one [[users]] entry (make a password verifier with `martdb passwd`)".into(),
                ));
            }
            AuthMethod::ScramSha256 => Authentication::Scram(users),
        };
        let max_connections = self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
        if max_connections == 0 {
            return Err(ConfigError::Invalid(
                "max_connections must be at least 1".into(),
            ));
        }
        let mut session_defaults = Vec::new();
        let mut check = crate::session::Settings::default();
        for (key, setting, value) in [
            (
                "statement_timeout",
                "statement_timeout",
                &self.statement_timeout,
            ),
            (
                "idle_session_timeout",
                "idle_session_timeout",
                &self.idle_session_timeout,
            ),
            (
                "query_memory_limit",
                "martdb.query_memory_limit",
                &self.query_memory_limit,
            ),
            (
                "max_result_size",
                "martdb.max_result_size",
                &self.max_result_size,
            ),
        ] {
            let Some(value) = value else { continue };
            check
                .set(setting, value)
                .map_err(|e| ConfigError::Invalid(format!("{key} = \"{value}\": {e}")))?;
            session_defaults.push((setting.to_string(), value.clone()));
        }
        let audit_log = match &self.audit_file {
            Some(path) => {
                let mut log = AuditOptions::new(path);
                if let Some(size) = &self.audit_rotate_size {
                    log.rotate_bytes = crate::session::parse_bytes(size)
                        .map_err(|e| ConfigError::Invalid(format!("audit_rotate_size: {e}")))?
                        as u64;
                }
                if let Some(keep) = self.audit_keep {
                    log.keep = keep;
                }
                Some(log)
            }
            None if self.audit_rotate_size.is_some() || self.audit_keep.is_some() => {
                return Err(ConfigError::Invalid(
                    "audit_rotate_size and audit_keep need audit_file".into(),
                ));
            }
            None => None,
        };
        Ok(ServerOptions {
            metrics_listen: self.metrics_listen,
            audit_log,
            max_connections,
            session_defaults,
            authentication,
            tls: self.tls.as_ref().map(|t| TlsFiles {
                cert: t.cert.clone(),
                key: t.key.clone(),
            }),
            audit: self.audit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn trust_is_loopback_only() {
        let local: SocketAddr = "127.0.0.1:5433".parse().unwrap();
        let public: SocketAddr = "0.0.0.0:5433".parse().unwrap();
        let config = parse("");
        assert!(config.server_options(local).is_ok());
        let err = config.server_options(public).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
    }

    #[test]
    fn users_switch_on_scram_and_roles_parse() {
        let verifier = super::super::auth::hash_password("pw");
        let config = parse(&format!(
            "[[users]]\nname = \"ann\"\npassword = \"{verifier}\"\nrole = \"read_only\"\n"
        ));
        let options = config
            .server_options("0.0.0.0:5433".parse().unwrap())
            .unwrap();
        match options.authentication {
            Authentication::Scram(users) => assert_eq!(users.role("ann"), Role::ReadOnly),
            other => panic!("expected scram, got {other:?}"),
        }
    }

    #[test]
    fn limits_become_session_defaults() {
        let config = parse(
            "max_connections = 8\nstatement_timeout = \"30s\"\nquery_memory_limit = \"1G\"\n",
        );
        let options = config
            .server_options("127.0.0.1:1".parse().unwrap())
            .unwrap();
        assert_eq!(options.max_connections, 8);
        assert_eq!(
            options.session_defaults,
            vec![
                ("statement_timeout".to_string(), "30s".to_string()),
                ("martdb.query_memory_limit".to_string(), "1G".to_string()),
            ]
        );
        for bad in [
            "max_connections = 0",
            "idle_session_timeout = \"soon\"",
            "max_result_size = \"lots\"",
        ] {
            let err = parse(bad)
                .server_options("127.0.0.1:1".parse().unwrap())
                .unwrap_err();
            let key = bad.split(' ').next().unwrap();
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn hash_keys_and_masking_rules() {
        let key = "ab".repeat(32);
        let config = parse(&format!(
            "[hash_keys]\ncrm = \"hex:{key}\"\n\n[[masking]]\ntable = \"crm.customers\"\ncolumn = \"email\"\nfunction = \"hash_id(crm)\"\n\n[[masking]]\ntable = \"customers\"\ncolumn = \"phone\"\nfunction = \"mask_phone\"\nroles = [\"read_only\", \"admin\"]\n"
        ));
        let privacy = config.privacy().unwrap();
        assert_eq!(privacy.masking.len(), 2);
        assert_eq!(privacy.masking[0].schema, "crm");
        assert_eq!(privacy.masking[0].roles, vec!["read_only"]);
        assert_eq!(privacy.masking[1].schema, "public");
        assert_eq!(privacy.masking[1].roles, vec!["read_only", "admin"]);
        for bad in [
            "[hash_keys]\ncrm = \"hex:abcd\"",
            "[[masking]]\ntable = \"t\"\ncolumn = \"c\"\nfunction = \"rot13\"",
            "[[masking]]\ntable = \"t\"\ncolumn = \"c\"\nfunction = \"hash_id(missing)\"",
        ] {
            assert!(parse(bad).privacy().is_err(), "{bad}");
        }
    }

    #[test]
    fn mistakes_are_reported() {
        assert!(toml::from_str::<Config>("listen = 5").is_err());
        assert!(toml::from_str::<Config>("lisen = \"127.0.0.1:1\"").is_err());
        let config = parse("auth = \"scram-sha-256\"");
        assert!(
            config
                .server_options("127.0.0.1:1".parse().unwrap())
                .is_err()
        );
    }
}

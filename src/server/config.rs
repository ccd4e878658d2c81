//! The server's TOML configuration (`martdb serve --config martdb.toml`): the same
//! settings as the command line, plus users, TLS and the audit log.
//!
//! ```toml
//! data = "martdb-data"
//! listen = "0.0.0.0:5433"
//! memory_limit = "8G"
//! table_cache = "1G"            # decoded small tables kept in memory ("0": off)
//! auth = "scram-sha-256"        # or "trust" (loopback only)
//! audit = true                  # one log line per statement
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

use super::auth::{AuthError, Authentication, Role, User, Users};
use super::{ServerOptions, TlsFiles};

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
    pub tls: Option<TlsEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
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
        Ok(config)
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
        Ok(ServerOptions {
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

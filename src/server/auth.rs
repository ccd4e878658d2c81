//! Who may connect and what they may do: users with SCRAM-SHA-256 password verifiers,
//! their roles, and the startup handshake (trust or SCRAM) that ends in a session.
//!
//! Invariants: a user authenticates with the password whose verifier is configured, and
//! nothing else; an unknown user fails exactly like a wrong password (28P01), so names
//! cannot be probed. `trust` is only ever used on loopback (checked by [`super::config`]
//! and by the CLI).

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::Sink;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{
    ClientInfo, PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use serde::Deserialize;

/// SCRAM iterations of verifiers made by `martdb passwd` (PostgreSQL's default).
pub const SCRAM_ITERATIONS: usize = 4096;

/// Errors of users and verifiers.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A configured password verifier is not in the `scram-sha-256:...` form.
    #[error(
        "password of user \"{user}\" is not a verifier made by `martdb passwd` (scram-sha-256:4096:<salt>:<key>)"
    )]
    BadVerifier { user: String },
    /// A user name appears twice.
    #[error("user \"{user}\" is configured twice")]
    DuplicateUser { user: String },
}

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    #[default]
    Admin,
    /// Queries only: no DDL, no writes, no state-changing settings.
    ReadOnly,
}

impl Role {
    /// The name the configuration and masking rules use.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read_only",
        }
    }
}

/// A configured user: name, SCRAM verifier and role.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    salt: Vec<u8>,
    salted_password: Vec<u8>,
    pub role: Role,
}

impl User {
    /// Parses a verifier made by [`hash_password`].
    pub fn new(name: &str, verifier: &str, role: Role) -> Result<User, AuthError> {
        let bad = || AuthError::BadVerifier {
            user: name.to_string(),
        };
        let parts: Vec<&str> = verifier.split(':').collect();
        let [scheme, iterations, salt, key] = parts.as_slice() else {
            return Err(bad());
        };
        if !scheme.eq_ignore_ascii_case("scram-sha-256")
            || iterations.parse::<usize>() != Ok(SCRAM_ITERATIONS)
        {
            return Err(bad());
        }
        Ok(User {
            name: name.to_string(),
            salt: STANDARD.decode(salt).map_err(|_| bad())?,
            salted_password: STANDARD.decode(key).map_err(|_| bad())?,
            role,
        })
    }
}

/// A verifier for `password`: `scram-sha-256:<iterations>:<salt>:<salted password>`.
///
/// The salted password lets the server check SCRAM proofs without the password; like
/// PostgreSQL's verifiers it must be kept private (it is enough to log in over SCRAM).
///
/// ```
/// let verifier = martdb::server::hash_password("s3cret");
/// assert!(verifier.starts_with("scram-sha-256:4096:"));
/// ```
pub fn hash_password(password: &str) -> String {
    let salt: [u8; 16] = rand::random();
    let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
    format!(
        "scram-sha-256:{SCRAM_ITERATIONS}:{}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(salted)
    )
}

/// The configured users by name.
#[derive(Debug, Default, Clone)]
pub struct Users(HashMap<String, User>);

impl Users {
    pub fn new(users: impl IntoIterator<Item = User>) -> Result<Users, AuthError> {
        let mut map = HashMap::new();
        for user in users {
            if map.contains_key(&user.name) {
                return Err(AuthError::DuplicateUser { user: user.name });
            }
            map.insert(user.name.clone(), user);
        }
        Ok(Users(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Configured user names with their roles, sorted by name.
    pub fn list(&self) -> Vec<(String, Role)> {
        let mut users: Vec<(String, Role)> =
            self.0.values().map(|u| (u.name.clone(), u.role)).collect();
        users.sort_by(|a, b| a.0.cmp(&b.0));
        users
    }

    /// The role of `name`: its configured one, or admin for users only `trust` knows.
    pub fn role(&self, name: &str) -> Role {
        self.0.get(name).map(|u| u.role).unwrap_or_default()
    }
}

#[async_trait]
impl AuthSource for Users {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let name = login.user().unwrap_or_default();
        match self.0.get(name) {
            Some(user) => Ok(Password::new(
                Some(user.salt.clone()),
                user.salted_password.clone(),
            )),
            // A random verifier: the exchange runs to the end and fails like a wrong
            // password.
            None => Ok(Password::new(
                Some(rand::random::<[u8; 16]>().to_vec()),
                rand::random::<[u8; 32]>().to_vec(),
            )),
        }
    }
}

/// How clients authenticate.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// Anyone who can reach the (loopback) socket, as any user name; configured users
    /// keep their roles.
    Trust(Arc<Users>),
    /// SCRAM-SHA-256 against the configured users.
    Scram(Arc<Users>),
}

impl Authentication {
    /// The users whose roles apply.
    pub fn users(&self) -> &Users {
        match self {
            Authentication::Trust(users) | Authentication::Scram(users) => users,
        }
    }
}

fn server_parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = crate::session::SERVER_VERSION.to_string();
    parameters.time_zone = "UTC".to_string();
    parameters.date_style = "ISO, MDY".to_string();
    parameters
}

/// The startup handshake of one connection; calls `on_ready` once it is authenticated.
pub(super) struct Startup<F> {
    sasl: Option<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
    on_ready: F,
}

impl<F> Startup<F>
where
    F: Fn(&str, &str, (i32, Vec<u8>)) + Send + Sync,
{
    pub(super) fn new(authentication: &Authentication, on_ready: F) -> Self {
        let sasl = match authentication {
            Authentication::Trust(_) => None,
            Authentication::Scram(users) => {
                let mut scram = ScramAuth::new(users.clone());
                scram.set_iterations(SCRAM_ITERATIONS);
                Some(SASLAuthStartupHandler::new(Arc::new(server_parameters())).with_scram(scram))
            }
        };
        Startup { sasl, on_ready }
    }
}

#[async_trait]
impl<F> StartupHandler for Startup<F>
where
    F: Fn(&str, &str, (i32, Vec<u8>)) + Send + Sync,
{
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match &self.sasl {
            Some(sasl) => sasl.on_startup(client, message).await?,
            None => {
                if let PgWireFrontendMessage::Startup(ref startup) = message {
                    pgwire::api::auth::protocol_negotiation(client, startup).await?;
                    pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                    let (pid, key) = RandomPidSecretKeyGenerator::default().generate(client);
                    client.set_pid_and_secret_key(pid, key);
                    pgwire::api::auth::finish_authentication(client, &server_parameters()).await?;
                }
            }
        }
        if matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            let metadata = client.metadata();
            let user = metadata.get("user").cloned().unwrap_or_default();
            let database = metadata.get("database").cloned().unwrap_or_default();
            let (pid, key) = client.pid_and_secret_key();
            (self.on_ready)(&user, &database, (pid, key.to_bytes().to_vec()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifiers_round_trip_and_bad_ones_are_named() {
        let verifier = hash_password("s3cret");
        let user = User::new("ann", &verifier, Role::ReadOnly).unwrap();
        assert_eq!(
            user.salted_password,
            gen_salted_password("s3cret", &user.salt, SCRAM_ITERATIONS)
        );
        let err = User::new("bob", "plaintext", Role::Admin).unwrap_err();
        assert!(err.to_string().contains("\"bob\""));
        assert!(Users::new([user.clone(), user]).is_err());
    }
}

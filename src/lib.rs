//! martdb: an embedded analytics database for marketing data.
//!
//! Tables are Parquet (managed tables in the Delta Lake format); you query them with SQL
//! from Rust, from the `martdb` command line or over the Postgres wire protocol.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> martdb::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().to_str().unwrap();
//! use martdb::Engine;
//!
//! let engine = Engine::open(path).await?;
//! engine.sql("CREATE TABLE visits (user_id BIGINT, channel TEXT)").await?;
//! engine.sql("INSERT INTO visits VALUES (1, 'ads'), (2, 'organic'), (3, 'ads')").await?;
//! let batches = engine
//!     .sql("SELECT channel, count(*) AS n FROM visits GROUP BY channel ORDER BY channel")
//!     .await?;
//! println!("{}", datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap());
//! # assert_eq!(batches[0].num_rows(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! What is created survives a restart: reopen the same directory and `visits` is there.

// Outside tests every possible panic must be an `expect` whose message says why it cannot
// fail, or an error: a query, a file or a client must never be able to panic the server.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

/// The `expect` message of every `Mutex` and `RwLock` lock in the crate: a lock is
/// poisoned only if a holder panicked, and a panic is a bug that aborts its statement
/// (reported as SQLSTATE XX000), so no statement is left running on a poisoned lock.
pub(crate) const LOCK_POISONED: &str =
    "lock poisoned only if a holder panicked, and panics abort the statement";

pub mod bitmap;
pub mod catalog;
pub mod cluster;
pub mod coupons;
pub mod demo;
mod engine;
mod error;
pub mod identity;
pub mod metrics;
pub mod ml;
pub mod privacy;
mod rewrite;
pub mod rules;
pub mod server;
pub mod session;
pub mod storage;
pub mod udf;

pub use engine::{DEFAULT_DATA_DIR, Engine, EngineOptions};
pub use error::{Error, Result};
pub use session::Session;

/// Re-exported so that embedding applications use the same Arrow and DataFusion.
pub use datafusion;

//! What the audience functions share: the store handle, running a definition, and their
//! errors.

use std::sync::{Arc, Weak};

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::DataFusionError;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use crate::bitmap::Bitmap;
use crate::bitmap::audiences::{AudienceError, AudienceStore};

/// Errors of the audience functions.
#[derive(Debug, thiserror::Error)]
pub enum AudienceCallError {
    #[error("audience {name:?} does not exist")]
    NotFound { name: String },
    #[error(
        "{function}: the definition must return one bitmap (one row, one bytea column): {message}"
    )]
    BadDefinition {
        function: &'static str,
        message: String,
    },
    #[error("{function}: the definition failed: {message}")]
    DefinitionFailed {
        function: &'static str,
        message: String,
    },
    #[error("{function}: audience names are not empty")]
    EmptyName { function: &'static str },
    #[error(transparent)]
    Store(#[from] AudienceError),
}

impl AudienceCallError {
    pub fn sqlstate(&self) -> &'static str {
        match self {
            AudienceCallError::NotFound { .. } => "42704",
            AudienceCallError::BadDefinition { .. } | AudienceCallError::EmptyName { .. } => {
                "22023"
            }
            AudienceCallError::DefinitionFailed { .. } => "42000",
            AudienceCallError::Store(AudienceError::Store(_)) => "58030",
            AudienceCallError::Store(AudienceError::Closed) => "57P01",
            AudienceCallError::Store(_) => "XX001",
        }
    }
}

pub(super) fn external(e: impl Into<AudienceCallError>) -> DataFusionError {
    DataFusionError::External(Box::new(e.into()))
}

/// What the audience functions need from the engine. The context is held weakly: the
/// functions live inside it, and a strong handle would keep the engine alive forever.
#[derive(Debug, Clone)]
pub struct AudienceHandle {
    pub(super) store: AudienceStore,
    pub(super) context: Weak<SessionContext>,
}

impl AudienceHandle {
    pub fn new(store: AudienceStore, context: &Arc<SessionContext>) -> Self {
        AudienceHandle {
            store,
            context: Arc::downgrade(context),
        }
    }

    /// Runs `definition`, which must produce exactly one bitmap.
    pub(super) async fn run(&self, function: &'static str, definition: &str) -> Result<Bitmap> {
        let context = self
            .context
            .upgrade()
            .ok_or_else(|| DataFusionError::Execution("the engine was closed".into()))?;
        let failed = |e: DataFusionError| {
            external(AudienceCallError::DefinitionFailed {
                function,
                message: crate::Error::from(e).to_string(),
            })
        };
        let frame = context.sql(definition).await.map_err(failed)?;
        let batches = frame.collect().await.map_err(failed)?;
        let bad =
            |message: String| external(AudienceCallError::BadDefinition { function, message });
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
            return Err(bad("it returned no rows".into()));
        };
        if rows != 1 || batch.num_columns() != 1 {
            return Err(bad(format!(
                "it returned {rows} rows of {} columns",
                batch.num_columns()
            )));
        }
        let column = batch.column(0);
        let bytes = match column.data_type() {
            DataType::Binary => column.as_binary::<i32>(),
            other => return Err(bad(format!("its column has type {other}"))),
        };
        if bytes.is_null(0) {
            return Err(bad("it returned NULL".into()));
        }
        Bitmap::from_bytes(bytes.value(0)).map_err(|e| bad(e.to_string()))
    }
}

//! Stopping a running statement: cancel requests and `statement_timeout`.
//!
//! A session owns one [`Interrupt`]. Each statement takes a [`Watch`] of it when it
//! starts; [`CancelHandle::cancel`] moves the interrupt to a new epoch, which every
//! watch of an older epoch sees, so a cancel never reaches a statement that started after
//! it. A watch covers both the planning/execution future and the row stream after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{FutureExt, StreamExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::SessionError;
use crate::Result;

#[derive(Debug, Default)]
pub(crate) struct Interrupt {
    epoch: AtomicU64,
    notify: Notify,
}

impl Interrupt {
    pub(crate) fn watch(self: &Arc<Self>, timeout: Option<Duration>) -> Watch {
        Watch {
            interrupt: self.clone(),
            epoch: self.epoch.load(Ordering::SeqCst),
            deadline: timeout.map(|t| Instant::now() + t),
        }
    }

    fn cancel(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// Cancels whatever statement its session is running (a Postgres cancel request).
#[derive(Debug, Clone)]
pub struct CancelHandle(Arc<Interrupt>);

impl CancelHandle {
    pub(crate) fn new(interrupt: Arc<Interrupt>) -> Self {
        CancelHandle(interrupt)
    }

    /// Stops the running statement with SQLSTATE 57014; a no-op when none runs.
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// One statement's view of its session's interrupt.
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    interrupt: Arc<Interrupt>,
    epoch: u64,
    deadline: Option<Instant>,
}

impl Watch {
    /// Resolves when the statement must stop, with the reason.
    async fn interrupted(&self) -> SessionError {
        loop {
            let notified = self.interrupt.notify.notified();
            tokio::pin!(notified);
            // Registered before the epoch check, so a cancel in between is not missed.
            notified.as_mut().enable();
            if self.interrupt.epoch.load(Ordering::SeqCst) != self.epoch {
                return SessionError::Canceled;
            }
            match self.deadline {
                Some(deadline) => tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(deadline) => return SessionError::TimedOut,
                },
                None => notified.await,
            }
        }
    }

    /// Runs `work` unless the statement is interrupted first.
    pub(crate) async fn run<T>(&self, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::select! {
            biased;
            reason = self.interrupted() => Err(reason.into()),
            result = work => result,
        }
    }

    /// The rows of `stream`, ending with the interrupt's error if it fires first.
    pub(crate) fn guard(self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let rows = futures::stream::unfold(Some((stream, self)), |state| async move {
            let (mut stream, watch) = state?;
            let next = tokio::select! {
                biased;
                reason = watch.interrupted() => {
                    return Some((Err(DataFusionError::External(Box::new(reason))), None));
                }
                // A bug met while producing rows fails the statement, not the session.
                next = std::panic::AssertUnwindSafe(stream.next()).catch_unwind() => match next {
                    Ok(next) => next,
                    Err(panic) => {
                        let message = crate::engine::panic_message(&*panic);
                        return Some((
                            Err(DataFusionError::Internal(format!(
                                "the statement was stopped by a bug: {message}"
                            ))),
                            None,
                        ));
                    }
                },
            };
            next.map(|item| (item, Some((stream, watch))))
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, rows.boxed()))
    }
}

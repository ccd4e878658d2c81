//! SQLSTATEs across the cluster.
//!
//! A task's error reaches the client as text: Ballista sends the executor's message,
//! not the typed error martdb's functions raised, so the code the local engine gives
//! (22P03 for a bad bitmap, 22012 for a division by zero, ...) would be lost. Executors
//! therefore run their stages through [`CodedEngine`], which appends the code to the
//! message of a failed task, `… (SQLSTATE 22P03)`, and the coordinator reads it back
//! ([`sqlstate_in`], from [`crate::Error::sqlstate`]).
//!
//! Invariant: a message carries at most one code, the first failure's: a stage that
//! fails reading an upstream stage's failure keeps that message as it is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballista_core::JobId;
use ballista_core::client::BallistaClient;
use ballista_core::client_pool::{BallistaClientPool, PooledClient};
use ballista_core::error::BallistaError;
use ballista_core::extension::BallistaConfigGrpcEndpoint;
use ballista_core::serde::protobuf::{
    RuntimeStatsReport, ShuffleWritePartition, TaskColumnStats, WindowStateReport,
};
use ballista_core::utils::GrpcClientConfig;
use ballista_executor::execution_engine::{
    DefaultExecutionEngine, ExecutionEngine, QueryStageExecutor,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricsSet;
use datafusion::prelude::SessionConfig;

/// Ballista's execution engine, with failed tasks' messages carrying their SQLSTATE.
pub(super) struct CodedEngine {
    inner: DefaultExecutionEngine,
}

impl CodedEngine {
    /// Connections to the other executors (for shuffle reads) are kept for reuse while
    /// idle for less than `idle_timeout`, as Ballista's own engine does by default.
    pub(super) fn new(idle_timeout: Duration) -> Self {
        let pool = ClientPool {
            idle: Arc::default(),
            idle_timeout,
        };
        CodedEngine {
            inner: DefaultExecutionEngine::with_client_pool(Arc::new(pool)),
        }
    }
}

impl ExecutionEngine for CodedEngine {
    fn create_query_stage_exec(
        &self,
        job_id: JobId,
        stage_id: usize,
        task_id: usize,
        global_output_partition_ids: Vec<usize>,
        plan: Arc<dyn ExecutionPlan>,
        work_dir: &str,
        config: &SessionConfig,
    ) -> Result<Arc<dyn QueryStageExecutor>> {
        let inner = self.inner.create_query_stage_exec(
            job_id,
            stage_id,
            task_id,
            global_output_partition_ids,
            plan,
            work_dir,
            config,
        )?;
        Ok(Arc::new(CodedStage { inner }))
    }
}

#[derive(Debug)]
struct CodedStage {
    inner: Arc<dyn QueryStageExecutor>,
}

impl std::fmt::Display for CodedStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl QueryStageExecutor for CodedStage {
    async fn execute_query_stage(
        &self,
        task_id: usize,
        context: Arc<TaskContext>,
    ) -> Result<Vec<ShuffleWritePartition>> {
        self.inner
            .execute_query_stage(task_id, context)
            .await
            .map_err(with_sqlstate)
    }

    fn collect_plan_metrics(&self) -> Vec<MetricsSet> {
        self.inner.collect_plan_metrics()
    }

    fn collect_runtime_stats_reports(&self) -> Vec<RuntimeStatsReport> {
        self.inner.collect_runtime_stats_reports()
    }

    fn collect_window_state_reports(&self) -> Result<Vec<WindowStateReport>> {
        self.inner.collect_window_state_reports()
    }

    fn collect_column_stats(&self) -> Vec<TaskColumnStats> {
        self.inner.collect_column_stats()
    }
}

/// `e` with its SQLSTATE at the end of its message, unless it carries one already or
/// it is an internal error (XX000, the code of an uncoded message anyway).
fn with_sqlstate(e: DataFusionError) -> DataFusionError {
    let message = e.to_string();
    let code = cause_sqlstate(&e);
    if code == "XX000" || sqlstate_in(&message).is_some() {
        return e;
    }
    DataFusionError::Execution(format!("{message} (SQLSTATE {code})"))
}

/// The SQLSTATE of what caused `e`: DataFusion's own root, looking also through the
/// Ballista errors a stage wraps its input's failures in, which hide their cause from
/// [`DataFusionError::find_root`].
fn cause_sqlstate(e: &DataFusionError) -> &'static str {
    let mut current = e.find_root();
    loop {
        current = match current {
            DataFusionError::Shared(inner) => inner.find_root(),
            DataFusionError::External(inner) => match inner.downcast_ref::<BallistaError>() {
                Some(BallistaError::DataFusionError(inner)) => inner.find_root(),
                Some(BallistaError::ArrowError(arrow)) => {
                    return crate::error::arrow_sqlstate(arrow);
                }
                _ => break,
            },
            _ => break,
        };
    }
    crate::error::datafusion_sqlstate(current)
}

/// The SQLSTATE a message carries, as [`with_sqlstate`] writes it: the last
/// `(SQLSTATE xxxxx)` in it, five digits or capitals.
pub(crate) fn sqlstate_in(message: &str) -> Option<&str> {
    let start = message.rfind("(SQLSTATE ")? + "(SQLSTATE ".len();
    let code = message.get(start..start + 5)?;
    let well_formed = code
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && message[start + 5..].starts_with(')');
    well_formed.then_some(code)
}

type PoolKey = (String, u16, GrpcClientConfig);

type IdleClients = HashMap<PoolKey, Vec<(BallistaClient, Instant)>>;

/// Idle connections to other executors, newest last, dropped once idle too long.
struct ClientPool {
    idle: Arc<Mutex<IdleClients>>,
    idle_timeout: Duration,
}

impl std::fmt::Debug for ClientPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientPool")
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

impl ClientPool {
    fn evict(idle: &mut IdleClients, timeout: Duration) {
        idle.retain(|_, clients| {
            clients.retain(|(_, since)| since.elapsed() < timeout);
            !clients.is_empty()
        });
    }
}

#[async_trait::async_trait]
impl BallistaClientPool for ClientPool {
    async fn acquire(
        &self,
        host: &str,
        port: u16,
        config: &GrpcClientConfig,
        customize_endpoint: Option<Arc<BallistaConfigGrpcEndpoint>>,
    ) -> ballista_core::error::Result<PooledClient> {
        let key = (host.to_string(), port, config.clone());
        let reused = {
            let mut idle = self.idle.lock().expect(crate::LOCK_POISONED);
            Self::evict(&mut idle, self.idle_timeout);
            idle.get_mut(&key)
                .and_then(Vec::pop)
                .map(|(client, _)| client)
        };
        let client = match reused {
            Some(client) => client,
            None => {
                BallistaClient::try_new(
                    host,
                    port,
                    config.max_message_size,
                    config.use_tls,
                    customize_endpoint,
                    config.io_retries_times,
                    config.io_retry_wait_time_ms,
                    config.initial_connection_window_size,
                    config.initial_stream_window_size,
                )
                .await?
            }
        };
        // A weak handle: a connection returned after the engine is gone is dropped.
        let pool = Arc::downgrade(&self.idle);
        Ok(PooledClient::new(
            client,
            Box::new(move |client| {
                if let Some(pool) = pool.upgrade() {
                    pool.lock()
                        .expect(crate::LOCK_POISONED)
                        .entry(key)
                        .or_default()
                        .push((client, Instant::now()));
                }
            }),
        ))
    }

    async fn evict_idle(&self) {
        Self::evict(
            &mut self.idle.lock().expect(crate::LOCK_POISONED),
            self.idle_timeout,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_error_carries_its_sqlstate_once() {
        let e = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
            None,
        );
        let coded = with_sqlstate(e);
        assert_eq!(sqlstate_in(&coded.to_string()), Some("22012"));
        let twice = with_sqlstate(coded);
        assert_eq!(twice.to_string().matches("SQLSTATE").count(), 1);
        let internal = with_sqlstate(DataFusionError::Internal("bug".into()));
        assert_eq!(sqlstate_in(&internal.to_string()), None);
    }

    #[test]
    fn the_code_is_found_under_ballistas_wrapping() {
        // How a failure inside a stage's input reaches the stage: shared, and wrapped
        // in a Ballista error.
        let cause = DataFusionError::ArrowError(
            Box::new(datafusion::arrow::error::ArrowError::DivideByZero),
            None,
        );
        let wrapped = DataFusionError::Shared(Arc::new(DataFusionError::External(Box::new(
            BallistaError::DataFusionError(Box::new(cause)),
        ))));
        assert_eq!(
            sqlstate_in(&with_sqlstate(wrapped).to_string()),
            Some("22012")
        );
        let arrow = DataFusionError::Shared(Arc::new(DataFusionError::External(Box::new(
            BallistaError::ArrowError(Box::new(datafusion::arrow::error::ArrowError::DivideByZero)),
        ))));
        assert_eq!(
            sqlstate_in(&with_sqlstate(arrow).to_string()),
            Some("22012")
        );
    }

    #[test]
    fn only_a_well_formed_code_is_read() {
        assert_eq!(sqlstate_in("a (SQLSTATE 22P03)"), Some("22P03"));
        assert_eq!(
            sqlstate_in("x (SQLSTATE 42704) then (SQLSTATE 22023)"),
            Some("22023")
        );
        for message in [
            "(SQLSTATE 22p03)",
            "(SQLSTATE 22P0",
            "(SQLSTATE 22P034)",
            "no code",
        ] {
            assert_eq!(sqlstate_in(message), None, "{message}");
        }
    }
}

//! Writing the demo data set into an engine: each table streams from its generator into
//! one atomic Delta commit, with a progress bar on a terminal.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{DemoOptions, DemoTable};
use crate::{Engine, Result};

/// Writes every demo table into `engine`, replacing tables of the same names. Returns a
/// one-line summary.
pub async fn write(engine: &Engine, options: DemoOptions, progress: bool) -> Result<String> {
    let started = Instant::now();
    let bars = MultiProgress::with_draw_target(if progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let style = ProgressStyle::with_template(
        "{prefix:>18} [{bar:30}] {human_pos}/{human_len} rows {per_sec} {elapsed}",
    )
    .expect("the template is a constant that parses")
    .progress_chars("=> ");
    let mut total_rows = 0u64;
    let tables = super::tables(options);
    let count = tables.len();
    for table in tables {
        let bar = bars.add(ProgressBar::new(table.estimated_rows));
        bar.set_style(style.clone());
        bar.set_prefix(table.name);
        let name = table.name;
        let source = Arc::new(GeneratorStream::new(table, bar.clone()));
        let provider = StreamingTable::try_new(source.schema.clone(), vec![source])?;
        let plan = engine
            .context()
            .read_table(Arc::new(provider))?
            .into_unoptimized_plan();
        let rows = engine.create_table_from_plan(name, plan, true).await?;
        bar.set_length(rows);
        bar.finish();
        total_rows += rows;
    }
    Ok(format!(
        "demo: wrote {count} tables, {total_rows} rows for {} users (seed {}) into {} in {:.1}s",
        options.users,
        options.seed,
        engine.location(),
        started.elapsed().as_secs_f64()
    ))
}

/// A demo table's generator as a one-shot DataFusion partition. Batches are produced on a
/// blocking thread and handed over through a small channel, so generation overlaps with
/// Parquet encoding and memory stays bounded by the channel.
struct GeneratorStream {
    schema: SchemaRef,
    batches: Mutex<Option<Box<dyn Iterator<Item = RecordBatch> + Send>>>,
    bar: ProgressBar,
}

impl std::fmt::Debug for GeneratorStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GeneratorStream")
    }
}

impl GeneratorStream {
    fn new(table: DemoTable, bar: ProgressBar) -> Self {
        GeneratorStream {
            schema: table.schema,
            batches: Mutex::new(Some(table.batches)),
            bar,
        }
    }
}

impl PartitionStream for GeneratorStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches = self.batches.lock().expect(crate::LOCK_POISONED).take();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<RecordBatch, DataFusionError>>(4);
        let bar = self.bar.clone();
        match batches {
            Some(batches) => {
                tokio::task::spawn_blocking(move || {
                    for batch in batches {
                        bar.inc(batch.num_rows() as u64);
                        if tx.blocking_send(Ok(batch)).is_err() {
                            return; // the writer stopped (error or cancel)
                        }
                    }
                });
            }
            None => {
                let _ = tx.try_send(Err(DataFusionError::Execution(
                    "a demo table generator can only be read once".into(),
                )));
            }
        }
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

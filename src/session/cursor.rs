//! Forward-only cursors (`DECLARE ... CURSOR FOR`, `FETCH`, `CLOSE`): a paused query
//! whose rows are handed out in pieces, as Tableau and psql's `FETCH_COUNT` read big
//! results.

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::sql::sqlparser::ast::{FetchDirection, Value};
use futures::StreamExt;

use crate::{Error, Result};

pub(crate) struct Cursor {
    stream: SendableRecordBatchStream,
    /// Rows read from the stream but not fetched yet.
    pending: Option<RecordBatch>,
    /// `WITH HOLD`: survives the end of its transaction.
    pub(crate) hold: bool,
}

impl Cursor {
    pub(crate) fn new(stream: SendableRecordBatchStream, hold: bool) -> Cursor {
        Cursor {
            stream,
            pending: None,
            hold,
        }
    }

    pub(crate) fn schema(&self) -> SchemaRef {
        self.stream.schema()
    }

    /// The next `count` rows (all remaining when `None`); fewer at the end.
    pub(crate) async fn fetch(&mut self, count: Option<usize>) -> Result<Vec<RecordBatch>> {
        let mut wanted = count.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        while wanted > 0 {
            let batch = match self.pending.take() {
                Some(batch) => batch,
                None => match self.stream.next().await {
                    Some(batch) => batch?,
                    None => break,
                },
            };
            if batch.num_rows() > wanted {
                self.pending = Some(batch.slice(wanted, batch.num_rows() - wanted));
                out.push(batch.slice(0, wanted));
                break;
            }
            wanted -= batch.num_rows();
            out.push(batch);
        }
        Ok(out)
    }
}

/// How many rows a `FETCH` direction asks for; only forward movement is supported.
pub(crate) fn forward_count(direction: &FetchDirection) -> Result<Option<usize>> {
    let number = |value: &Value| -> Result<i64> {
        value
            .to_string()
            .parse::<i64>()
            .map_err(|_| Error::Unsupported(format!("FETCH count must be an integer, got {value}")))
    };
    let backward = || {
        Err(Error::Unsupported(
            "cursors only move forward: use FETCH [FORWARD] n, NEXT or ALL".into(),
        ))
    };
    match direction {
        FetchDirection::Next => Ok(Some(1)),
        FetchDirection::All | FetchDirection::ForwardAll => Ok(None),
        FetchDirection::Forward { limit: None } => Ok(Some(1)),
        FetchDirection::Count { limit } | FetchDirection::Forward { limit: Some(limit) } => {
            match number(&limit.value)? {
                n if n >= 0 => Ok(Some(n as usize)),
                _ => backward(),
            }
        }
        _ => backward(),
    }
}

//! The Prometheus endpoint: `GET /metrics` on its own port (`metrics_listen`), in the
//! text exposition format.
//!
//! | metric | type | what |
//! |---|---|---|
//! | `martdb_connections` | gauge | open client connections |
//! | `martdb_connections_total` | counter | connections accepted |
//! | `martdb_connections_refused_total` | counter | refused over `max_connections` |
//! | `martdb_connection_panics_total` | counter | panics caught serving a connection (bugs) |
//! | `martdb_queries_total{outcome}` | counter | statements: `ok`, `error`, `cancelled` |
//! | `martdb_query_duration_seconds` | histogram | statement latency, start to last row |
//! | `martdb_rows_total{kind}` | counter | rows `returned` to clients, `written` |
//! | `martdb_rows_scanned_total` | counter | rows read by the scans of finished statements |
//! | `martdb_memory_reserved_bytes` | gauge | query memory in use (the engine's pool) |
//! | `martdb_memory_limit_bytes` | gauge | the process memory limit for queries |
//! | `martdb_coupon_outcomes_total{outcome}` | counter | reservation and settlement outcomes |
//! | `martdb_rule_events_total`, `martdb_rule_matches_total` | counter | events matched, rules fired |
//!
//! Invariant: recording is a few relaxed atomic adds per statement; a scrape reads the
//! counters without locking anything the statements use.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::memory_pool::MemoryLimit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::metrics::{COUPON_OUTCOMES, Counter, ROWS_SCANNED, RULE_EVENTS, RULE_MATCHES};

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0,
];

/// The server's own counters.
#[derive(Debug, Default)]
pub(crate) struct ServerMetrics {
    pub(crate) connections_total: Counter,
    pub(crate) connections_refused: Counter,
    /// Panics caught while serving a connection, which then ended (bugs).
    pub(crate) connection_panics: Counter,
    ok: Counter,
    error: Counter,
    cancelled: Counter,
    /// Cumulative counts per bucket are computed at scrape time; these are per bucket,
    /// the last one for +Inf.
    buckets: [Counter; BUCKETS.len() + 1],
    duration_micros: Counter,
    rows_returned: Counter,
    rows_written: Counter,
}

impl ServerMetrics {
    /// Records one statement: its duration, outcome (`None`: ok; else its SQLSTATE) and
    /// rows.
    pub(crate) fn statement(
        &self,
        duration: Duration,
        error: Option<&str>,
        rows: u64,
        writes: bool,
    ) {
        match error {
            None => self.ok.add(1),
            Some("57014") => self.cancelled.add(1),
            Some(_) => self.error.add(1),
        }
        let seconds = duration.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].add(1);
        self.duration_micros.add(duration.as_micros() as u64);
        if writes {
            self.rows_written.add(rows);
        } else {
            self.rows_returned.add(rows);
        }
    }

    /// The exposition text.
    pub(crate) fn render(&self, connections: usize, reserved: usize, limit: MemoryLimit) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "martdb_connections",
            "gauge",
            "Open client connections.",
            &[("", connections as f64)],
        );
        metric(
            "martdb_connections_total",
            "counter",
            "Client connections accepted.",
            &[("", self.connections_total.get() as f64)],
        );
        metric(
            "martdb_connections_refused_total",
            "counter",
            "Connections refused over max_connections.",
            &[("", self.connections_refused.get() as f64)],
        );
        metric(
            "martdb_connection_panics_total",
            "counter",
            "Panics caught while serving a connection, which then ended (bugs).",
            &[("", self.connection_panics.get() as f64)],
        );
        metric(
            "martdb_queries_total",
            "counter",
            "Statements run, by outcome.",
            &[
                ("{outcome=\"ok\"}", self.ok.get() as f64),
                ("{outcome=\"error\"}", self.error.get() as f64),
                ("{outcome=\"cancelled\"}", self.cancelled.get() as f64),
            ],
        );
        let mut cumulative = 0;
        let mut labels = Vec::new();
        for (i, counter) in self.buckets.iter().enumerate() {
            cumulative += counter.get();
            let bound = BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            labels.push((format!("_bucket{{le=\"{bound}\"}}"), cumulative as f64));
        }
        labels.push(("_sum".to_string(), self.duration_micros.get() as f64 / 1e6));
        labels.push(("_count".to_string(), cumulative as f64));
        let samples: Vec<(&str, f64)> = labels.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "martdb_query_duration_seconds",
            "histogram",
            "Statement latency, from its start to its last row.",
            &samples,
        );
        metric(
            "martdb_rows_total",
            "counter",
            "Rows returned to clients and written by statements.",
            &[
                ("{kind=\"returned\"}", self.rows_returned.get() as f64),
                ("{kind=\"written\"}", self.rows_written.get() as f64),
            ],
        );
        metric(
            "martdb_rows_scanned_total",
            "counter",
            "Rows read by the table scans and table functions of finished statements.",
            &[("", ROWS_SCANNED.get() as f64)],
        );
        metric(
            "martdb_memory_reserved_bytes",
            "gauge",
            "Query memory in use.",
            &[("", reserved as f64)],
        );
        let limit = match limit {
            MemoryLimit::Finite(bytes) => bytes as f64,
            _ => f64::INFINITY,
        };
        metric(
            "martdb_memory_limit_bytes",
            "gauge",
            "The memory limit of all queries together.",
            &[("", limit)],
        );
        let coupon_labels: Vec<(String, f64)> = COUPON_OUTCOMES
            .iter()
            .map(|(name, c)| (format!("{{outcome=\"{name}\"}}"), c.get() as f64))
            .collect();
        let samples: Vec<(&str, f64)> = coupon_labels
            .iter()
            .map(|(l, v)| (l.as_str(), *v))
            .collect();
        metric(
            "martdb_coupon_outcomes_total",
            "counter",
            "Coupon reservation and settlement outcomes.",
            &samples,
        );
        metric(
            "martdb_rule_events_total",
            "counter",
            "Events matched against rules.",
            &[("", RULE_EVENTS.get() as f64)],
        );
        metric(
            "martdb_rule_matches_total",
            "counter",
            "Rules fired.",
            &[("", RULE_MATCHES.get() as f64)],
        );
        out
    }
}

/// Answers scrapes on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<super::Shared>) {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            // The request line and headers; a scraper sends no body.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 << 10 {
                    let n = socket.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let line = String::from_utf8_lossy(&request);
            let mut parts = line.split_whitespace();
            let response = match (parts.next(), parts.next()) {
                (Some("GET"), Some("/metrics")) => {
                    let pool = shared.engine.memory_pool();
                    let body = shared.metrics.render(
                        shared.connections.load(std::sync::atomic::Ordering::Acquire),
                        pool.reserved(),
                        pool.memory_limit(),
                    );
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                }
                _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 20\r\nConnection: close\r\n\r\nonly /metrics here\r\n".to_string(),
            };
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative_and_counts_match() {
        let metrics = ServerMetrics::default();
        metrics.statement(Duration::from_micros(300), None, 5, false);
        metrics.statement(Duration::from_millis(20), Some("42P01"), 0, false);
        metrics.statement(Duration::from_secs(60), Some("57014"), 0, false);
        metrics.statement(Duration::from_millis(2), None, 3, true);
        let text = metrics.render(2, 100, MemoryLimit::Finite(1000));
        for line in [
            "martdb_queries_total{outcome=\"ok\"} 2",
            "martdb_queries_total{outcome=\"error\"} 1",
            "martdb_queries_total{outcome=\"cancelled\"} 1",
            "martdb_query_duration_seconds_bucket{le=\"0.0005\"} 1",
            "martdb_query_duration_seconds_bucket{le=\"0.0025\"} 2",
            "martdb_query_duration_seconds_bucket{le=\"0.025\"} 3",
            "martdb_query_duration_seconds_bucket{le=\"30\"} 3",
            "martdb_query_duration_seconds_bucket{le=\"+Inf\"} 4",
            "martdb_query_duration_seconds_count 4",
            "martdb_rows_total{kind=\"returned\"} 5",
            "martdb_rows_total{kind=\"written\"} 3",
            "martdb_connections 2",
            "martdb_memory_limit_bytes 1000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}

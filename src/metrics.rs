//! Process-wide counters of domain events (coupon outcomes, rule matches, rows scanned),
//! read by the server's Prometheus endpoint ([`crate::server::metrics`]).
//!
//! Invariant: counters only grow, and counting is one relaxed atomic add, so the hot
//! paths (a coupon reservation, a rule match) pay nothing noticeable for it. They count
//! every engine of the process together, as a Prometheus process metric does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Coupon reservation outcomes, by [`crate::coupons::Outcome`]'s name (a duplicate
/// counts as `duplicate`), then settlements (`redeemed`, `released`, other).
pub static COUPON_OUTCOMES: [(&str, Counter); 10] = [
    ("reserved", Counter::new()),
    ("duplicate", Counter::new()),
    ("sold_out", Counter::new()),
    ("user_limit", Counter::new()),
    ("budget_exhausted", Counter::new()),
    ("not_eligible", Counter::new()),
    ("pool_inactive", Counter::new()),
    ("redeemed", Counter::new()),
    ("released", Counter::new()),
    ("settle_other", Counter::new()),
];

/// Counts one coupon outcome by name (unknown names count as `settle_other`).
pub fn coupon_outcome(name: &str) {
    let counter = COUPON_OUTCOMES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or(&COUPON_OUTCOMES[COUPON_OUTCOMES.len() - 1]);
    counter.1.add(1);
}

/// Rules fired (one per matching rule and event).
pub static RULE_MATCHES: Counter = Counter::new();

/// Events matched against rules.
pub static RULE_EVENTS: Counter = Counter::new();

/// Rows produced by the leaves of executed plans: table and file scans, table functions
/// such as `generate_series`. Counted when a statement's stream ends or is dropped.
pub static ROWS_SCANNED: Counter = Counter::new();

/// `stream`, executing `plan`, that adds the rows its leaves produced to
/// [`ROWS_SCANNED`] when it ends or is dropped. The count comes from the plan's own
/// metrics, so it costs nothing per batch.
pub(crate) fn count_rows_scanned(
    plan: Arc<dyn ExecutionPlan>,
    stream: SendableRecordBatchStream,
) -> SendableRecordBatchStream {
    let scanned = CountOnDrop(plan);
    let schema = stream.schema();
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        stream.map(move |batch| {
            let _counted_at_the_end = &scanned;
            batch
        }),
    ))
}

struct CountOnDrop(Arc<dyn ExecutionPlan>);

impl Drop for CountOnDrop {
    fn drop(&mut self) {
        fn leaf_rows(plan: &dyn ExecutionPlan) -> usize {
            let children = plan.children();
            if children.is_empty() {
                return plan.metrics().and_then(|m| m.output_rows()).unwrap_or(0);
            }
            children.iter().map(|child| leaf_rows(child.as_ref())).sum()
        }
        ROWS_SCANNED.add(leaf_rows(self.0.as_ref()) as u64);
    }
}

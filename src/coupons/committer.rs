//! The committer thread: takes every command waiting, decides them in arrival order and
//! commits them in one transaction (group commit), then answers each caller.
//!
//! While one batch is syncing, the next callers queue up; they become the next batch.
//! One caller alone pays one sync per call, and many callers share one sync, so the
//! number of syncs per second stays what the disk can do while throughput grows with
//! concurrency. The thread ends when every [`Coupons`](super::Coupons) handle is gone.

use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::Duration;

use tokio::sync::oneshot;

use super::ledger::{Done, Ledger, PoolInfo, Work};
use super::{CouponError, Outcome, PoolSettings, ReserveRequest, SettleKind, Settlement};

/// Most commands in one batch: bounds the latency one batch adds to its first caller.
const MAX_COMMANDS: usize = 4096;
/// How often the thread wakes without callers to expire reservations.
const EXPIRY_TICK: Duration = Duration::from_secs(1);

pub(crate) type Reply<T> = oneshot::Sender<Result<T, CouponError>>;

pub(crate) enum Command {
    Reserve {
        requests: Vec<ReserveRequest>,
        reply: Reply<Vec<Outcome>>,
    },
    Settle {
        kind: SettleKind,
        requests: Vec<ReserveRequest>,
        reply: Reply<Vec<Settlement>>,
    },
    CreatePool {
        pool: String,
        stock: u64,
        settings: PoolSettings,
        reply: Reply<PoolInfo>,
    },
    AlterPool {
        pool: String,
        settings: PoolSettings,
        reply: Reply<PoolInfo>,
    },
}

enum Waiting {
    Outcomes(Reply<Vec<Outcome>>),
    Settlements(Reply<Vec<Settlement>>),
    Pool(Reply<PoolInfo>),
}

impl Command {
    fn split(self) -> (Work, Waiting) {
        match self {
            Command::Reserve { requests, reply } => {
                (Work::Reserve(requests), Waiting::Outcomes(reply))
            }
            Command::Settle {
                kind,
                requests,
                reply,
            } => (Work::Settle(kind, requests), Waiting::Settlements(reply)),
            Command::CreatePool {
                pool,
                stock,
                settings,
                reply,
            } => (
                Work::CreatePool {
                    pool,
                    stock,
                    settings,
                },
                Waiting::Pool(reply),
            ),
            Command::AlterPool {
                pool,
                settings,
                reply,
            } => (Work::AlterPool { pool, settings }, Waiting::Pool(reply)),
        }
    }
}

impl Waiting {
    /// Answers the caller; a caller that stopped waiting is no error (its outcome is
    /// recorded, and a retry with its key returns it).
    fn answer(self, done: Result<Done, CouponError>) {
        match (self, done) {
            (Waiting::Outcomes(reply), Ok(Done::Outcomes(outcomes))) => {
                for outcome in &outcomes {
                    crate::metrics::coupon_outcome(outcome.name());
                }
                let _ = reply.send(Ok(outcomes));
            }
            (Waiting::Settlements(reply), Ok(Done::Settlements(settled))) => {
                for settlement in &settled {
                    crate::metrics::coupon_outcome(match settlement {
                        super::Settlement::Redeemed => "redeemed",
                        super::Settlement::Released => "released",
                        _ => "settle_other",
                    });
                }
                let _ = reply.send(Ok(settled));
            }
            (Waiting::Pool(reply), Ok(Done::Pool(info))) => {
                let _ = reply.send(Ok(info));
            }
            (Waiting::Outcomes(reply), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (Waiting::Settlements(reply), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            (Waiting::Pool(reply), Err(e)) => {
                let _ = reply.send(Err(e));
            }
            _ => unreachable!(
                "Ledger::run_on answers Reserve with Outcomes, Settle with Settlements and the \
                 pool works with Pool"
            ),
        }
    }
}

pub(crate) fn spawn(ledger: Ledger) -> std::io::Result<Sender<Command>> {
    let (commands, inbox) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("martdb-coupons".into())
        .spawn(move || run(ledger, inbox))?;
    Ok(commands)
}

fn run(mut ledger: Ledger, inbox: Receiver<Command>) {
    loop {
        let first = match inbox.recv_timeout(until_next_expiry(&ledger)) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => {
                ledger.close();
                return;
            }
        };
        let mut batch: Vec<Command> = first.into_iter().collect();
        while batch.len() < MAX_COMMANDS {
            match inbox.try_recv() {
                Ok(command) => batch.push(command),
                Err(_) => break,
            }
        }
        if batch.is_empty() && !expiry_due(&ledger) {
            continue;
        }
        let (works, waiting): (Vec<Work>, Vec<Waiting>) =
            batch.into_iter().map(Command::split).unzip();
        match ledger.run(&works) {
            Ok(answers) => {
                for (waiting, answer) in waiting.into_iter().zip(answers) {
                    waiting.answer(answer);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, commands = waiting.len(), "coupon batch failed");
                let message = e.to_string();
                let mut error = Some(e);
                for waiting in waiting {
                    let e = error.take().unwrap_or_else(|| copy_error(&message));
                    waiting.answer(Err(e));
                }
            }
        }
    }
}

/// The error a batch failed with, for its other callers (the store's error is not Clone).
fn copy_error(message: &str) -> CouponError {
    CouponError::BatchFailed(message.to_string())
}

fn until_next_expiry(ledger: &Ledger) -> Duration {
    match ledger.next_expiry() {
        Some(at) => {
            let wait = at.saturating_sub(super::now_micros()).max(0) as u64;
            Duration::from_micros(wait).min(EXPIRY_TICK)
        }
        None => EXPIRY_TICK,
    }
}

fn expiry_due(ledger: &Ledger) -> bool {
    ledger
        .next_expiry()
        .is_some_and(|at| at <= super::now_micros())
}

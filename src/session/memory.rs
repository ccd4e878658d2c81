//! A session's share of the engine's memory pool: `martdb.query_memory_limit`.
//!
//! Every session plans and runs its statements over its own [`SessionPool`], which
//! passes each reservation on to the engine's pool (the process-wide `memory_limit`) and
//! also counts it against the session's limit. A session runs one statement at a time, so
//! the session's count is what its running statement holds (plus rows a cursor keeps).
//!
//! Invariants: `reserved()` is exactly what this session's consumers hold in the engine's
//! pool (every grow and shrink goes to both); a reservation that would take the session
//! past its limit fails with `ResourcesExhausted` (SQLSTATE 53200) before the engine's
//! pool is touched, so operators that can spill (sort, aggregation) spill instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// One session's view of the engine's memory pool; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct SessionPool {
    engine: Arc<dyn MemoryPool>,
    /// Bytes; 0: no limit beyond the engine's.
    limit: AtomicUsize,
    reserved: AtomicUsize,
}

impl SessionPool {
    pub(crate) fn new(engine: Arc<dyn MemoryPool>) -> SessionPool {
        SessionPool {
            engine,
            limit: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
        }
    }

    /// Sets the limit in bytes (0: none). Reservations already held stay.
    pub(crate) fn set_limit(&self, bytes: usize) {
        self.limit.store(bytes, Ordering::Release);
    }
}

impl std::fmt::Display for SessionPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session pool: {} bytes reserved, limit {} (0: none), over {}",
            self.reserved(),
            self.limit.load(Ordering::Acquire),
            self.engine
        )
    }
}

impl MemoryPool for SessionPool {
    fn name(&self) -> &str {
        "martdb session pool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.engine.register(consumer)
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.engine.unregister(consumer)
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.engine.grow(reservation, additional);
        self.reserved.fetch_add(additional, Ordering::AcqRel);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.engine.shrink(reservation, shrink);
        self.reserved.fetch_sub(shrink, Ordering::AcqRel);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        let limit = self.limit.load(Ordering::Acquire);
        // Claimed before asking the engine, so two partitions racing for the last bytes
        // cannot both pass the check.
        let before = self.reserved.fetch_add(additional, Ordering::AcqRel);
        if limit > 0 && before + additional > limit {
            self.reserved.fetch_sub(additional, Ordering::AcqRel);
            return Err(DataFusionError::ResourcesExhausted(format!(
                "statement memory limit reached: {} wants {} more bytes, the statement holds {before} of its {limit} (martdb.query_memory_limit)",
                reservation.consumer().name(),
                additional,
            )));
        }
        if let Err(e) = self.engine.try_grow(reservation, additional) {
            self.reserved.fetch_sub(additional, Ordering::AcqRel);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.reserved.load(Ordering::Acquire)
    }

    fn memory_limit(&self) -> MemoryLimit {
        let limit = self.limit.load(Ordering::Acquire);
        match (limit, self.engine.memory_limit()) {
            (0, engine) => engine,
            (mine, MemoryLimit::Finite(engine)) => MemoryLimit::Finite(mine.min(engine)),
            (mine, _) => MemoryLimit::Finite(mine),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::memory_pool::GreedyMemoryPool;

    #[test]
    fn the_session_limit_and_the_engine_limit_both_hold() {
        let engine: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1000));
        let pool: Arc<dyn MemoryPool> = Arc::new(SessionPool::new(engine.clone()));
        let a = MemoryConsumer::new("a").register(&pool);
        a.try_grow(600).unwrap();
        assert_eq!((pool.reserved(), engine.reserved()), (600, 600));

        // The engine's limit: 600 + 500 > 1000.
        let b = MemoryConsumer::new("b").register(&pool);
        assert!(b.try_grow(500).is_err());
        assert_eq!((pool.reserved(), engine.reserved()), (600, 600));

        a.shrink(400);
        assert_eq!((pool.reserved(), engine.reserved()), (200, 200));
        drop(a);
        assert_eq!((pool.reserved(), engine.reserved()), (0, 0));
    }

    #[test]
    fn a_session_limit_fails_before_the_engine_is_asked() {
        let engine: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let session = Arc::new(SessionPool::new(engine.clone()));
        session.set_limit(100);
        let pool: Arc<dyn MemoryPool> = session.clone();
        let sort = MemoryConsumer::new("sort").register(&pool);
        sort.try_grow(80).unwrap();
        let err = sort.try_grow(30).unwrap_err();
        assert!(
            matches!(err, DataFusionError::ResourcesExhausted(_)),
            "{err}"
        );
        assert!(
            err.to_string().contains("martdb.query_memory_limit"),
            "{err}"
        );
        assert_eq!((pool.reserved(), engine.reserved()), (80, 80));
        assert!(matches!(pool.memory_limit(), MemoryLimit::Finite(100)));

        session.set_limit(0);
        sort.try_grow(30).unwrap();
        assert_eq!((pool.reserved(), engine.reserved()), (110, 110));
    }
}

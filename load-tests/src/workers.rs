//! An origin's finite capacity: a pool of workers, each serving one request
//! at a time, and a FIFO queue of the requests waiting for one.
//!
//! # Design
//!
//! The workers are the permits of a [`tokio::sync::Semaphore`], whose
//! waiters are served first come, first served: the queue. "Unlimited"
//! (no `workers` set) is a pool of [`Semaphore::MAX_PERMITS`] workers,
//! which never makes a request wait.
//!
//! The pool can shrink while requests hold workers. A resize compares the
//! new size with the current one:
//! - growing first cancels any *debt* (workers owed from an earlier
//!   shrink, see below), then adds the rest as permits;
//! - shrinking removes idle permits at once (`forget_permits`), and the
//!   workers it could not remove because they are busy become a debt: each
//!   busy worker, when its request ends, is retired instead of returned
//!   while a debt remains.
//!
//! So a shrink applies to new admissions at once (no idle worker beyond
//! the new size remains to be taken), and the requests already being served
//! finish normally.
//!
//! A request that finds no idle worker waits, unless the queue already
//! holds `queue` requests (when a limit is set): it is then refused at once
//! ([`Admission::QueueFull`]). A waiting request that is abandoned (its
//! connection closed) leaves the queue.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::{Semaphore, SemaphorePermit};

/// The workers of an origin and the requests waiting for them.
#[derive(Debug)]
pub(crate) struct Workers {
    semaphore: Semaphore,
    sizing: Mutex<Sizing>,
    waiting: AtomicU64,
    busy: AtomicU64,
}

/// The pool's size and what it still owes.
#[derive(Debug)]
struct Sizing {
    /// Workers the pool should have.
    size: usize,
    /// Busy workers to retire when their request ends.
    debt: usize,
}

/// Whether a request got a worker.
pub(crate) enum Admission<'a> {
    /// It holds a worker until the value is dropped.
    Admitted(Worker<'a>),
    /// The queue was full: it is refused without waiting.
    QueueFull,
}

/// A busy worker, returned to the pool (or retired) when dropped.
pub(crate) struct Worker<'a> {
    pool: &'a Workers,
    permit: Option<SemaphorePermit<'a>>,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        self.pool.busy.fetch_sub(1, Ordering::SeqCst);
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut sizing = self.pool.sizing();
        if sizing.debt > 0 {
            sizing.debt -= 1;
            permit.forget();
        }
        // Otherwise the permit returns to the semaphore as it drops here,
        // while the lock is held, so a resize never sees it half-returned.
    }
}

/// Counts a request as waiting while alive.
struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A pool size for `workers` (`None`: unlimited).
fn size_of(workers: Option<u32>) -> usize {
    workers.map_or(Semaphore::MAX_PERMITS, |w| w as usize)
}

impl Workers {
    pub(crate) fn new(workers: Option<u32>) -> Self {
        let size = size_of(workers);
        Self {
            semaphore: Semaphore::new(size),
            sizing: Mutex::new(Sizing { size, debt: 0 }),
            waiting: AtomicU64::new(0),
            busy: AtomicU64::new(0),
        }
    }

    fn sizing(&self) -> std::sync::MutexGuard<'_, Sizing> {
        self.sizing.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the number of workers (`None`: unlimited); see the module
    /// documentation for what happens to busy workers.
    pub(crate) fn resize(&self, workers: Option<u32>) {
        let target = size_of(workers);
        let mut sizing = self.sizing();
        if target > sizing.size {
            let grow = target - sizing.size;
            let repaid = grow.min(sizing.debt);
            sizing.debt -= repaid;
            self.semaphore.add_permits(grow - repaid);
        } else {
            let shrink = sizing.size - target;
            let removed = self.semaphore.forget_permits(shrink);
            sizing.debt += shrink - removed;
        }
        sizing.size = target;
    }

    /// Waits for a worker in FIFO order, unless `queue` requests already
    /// wait (`None`: no limit on the queue).
    pub(crate) async fn admit(&self, queue: Option<u32>) -> Admission<'_> {
        let permit = match self.semaphore.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let limit = queue.map_or(u64::MAX, u64::from);
                let joined =
                    self.waiting
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |waiting| {
                            (waiting < limit).then_some(waiting + 1)
                        });
                if joined.is_err() {
                    return Admission::QueueFull;
                }
                let _waiting = Waiting(&self.waiting);
                self.semaphore
                    .acquire()
                    .await
                    .expect("the workers' semaphore is never closed")
            }
        };
        self.busy.fetch_add(1, Ordering::SeqCst);
        Admission::Admitted(Worker {
            pool: self,
            permit: Some(permit),
        })
    }

    /// Requests waiting for a worker.
    pub(crate) fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Requests being served by a worker.
    pub(crate) fn busy(&self) -> u64 {
        self.busy.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn admitted(admission: Admission<'_>) -> Worker<'_> {
        match admission {
            Admission::Admitted(worker) => worker,
            Admission::QueueFull => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let pool = Arc::new(Workers::new(Some(1)));
        let first = admitted(pool.admit(Some(1)).await);
        let queued = tokio::spawn({
            let pool = pool.clone();
            async move { matches!(pool.admit(Some(1)).await, Admission::Admitted(_)) }
        });
        while pool.waiting() < 1 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(pool.admit(Some(1)).await, Admission::QueueFull));
        assert_eq!(pool.busy(), 1);
        drop(first);
        assert!(queued.await.unwrap());
        assert_eq!((pool.busy(), pool.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn shrinking_retires_busy_workers_as_they_finish() {
        let pool = Workers::new(Some(3));
        let (a, b) = (
            admitted(pool.admit(None).await),
            admitted(pool.admit(None).await),
        );
        // One idle worker is removed at once, one busy worker is owed.
        pool.resize(Some(1));
        assert_eq!(pool.semaphore.available_permits(), 0);
        drop(a);
        assert_eq!(pool.semaphore.available_permits(), 0, "retired");
        drop(b);
        assert_eq!(pool.semaphore.available_permits(), 1);
        // Growing gives the workers back.
        pool.resize(Some(4));
        assert_eq!(pool.semaphore.available_permits(), 4);
    }

    #[tokio::test]
    async fn growing_repays_the_debt_first() {
        let pool = Workers::new(Some(2));
        let (a, b) = (
            admitted(pool.admit(None).await),
            admitted(pool.admit(None).await),
        );
        pool.resize(Some(0));
        pool.resize(Some(1));
        drop(a);
        drop(b);
        assert_eq!(pool.semaphore.available_permits(), 1);
    }

    #[tokio::test]
    async fn unlimited_never_waits_and_can_be_limited_later() {
        let pool = Workers::new(None);
        let held: Vec<_> = admit_many(&pool, 100).await;
        assert_eq!(pool.busy(), 100);
        pool.resize(Some(2));
        drop(held);
        assert_eq!(pool.semaphore.available_permits(), 2);
        let waiting = tokio::time::timeout(Duration::from_millis(50), async {
            let _a = pool.admit(None).await;
            let _b = pool.admit(None).await;
            pool.admit(None).await;
        });
        assert!(waiting.await.is_err(), "a third request waits");
    }

    async fn admit_many(pool: &Workers, count: usize) -> Vec<Worker<'_>> {
        let mut held = Vec::new();
        for _ in 0..count {
            held.push(admitted(pool.admit(Some(0)).await));
        }
        held
    }
}

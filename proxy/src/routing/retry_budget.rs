//! The retry budget of each pool, after Envoy's `retry_budget`: retries in
//! flight in a pool stay within `max(min_concurrency, percent / 100 ×
//! requests in flight)`, where requests in flight are the pool's attempts at
//! its backends; a burst beyond that is still allowed while the pool's
//! recent retries stay within `10 + percent / 100 × recent requests` (both
//! counts decay by half every second; 10 is Finagle's minimum of retries
//! per second, or `min_concurrency` if larger, and none when it is 0). A
//! retry over both is not made: the client gets the failure. With every
//! backend failing half its requests, retries then add about `percent`% to
//! the load instead of doubling it, while a few failures bunched together
//! are still retried.
//!
//! A [`RetryToken`] holds one retry in flight from the moment the retry is
//! decided until the request ends.

use crate::config::{PoolId, RetryBudget};
use crate::stats::backend::BackendStats;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How often the recent counts halve.
const HALF_LIFE_MS: u64 = 1000;
/// Recent retries always allowed beside the share: Finagle's default
/// minimum of 10 retries per second, so chance bunching in a pool that
/// has only just started to be busy is still retried.
const RECENT_RESERVE: f64 = 10.0;

/// One pool's retries in flight and recent requests and retries.
#[derive(Default)]
struct PoolRetries {
    in_flight: AtomicU64,
    recent_requests: AtomicU64,
    recent_retries: AtomicU64,
    /// When the recent counts last halved.
    halved_at_ms: AtomicU64,
}

impl PoolRetries {
    /// Halve the recent counts once per half-life that passed (by one
    /// caller; a count racing the halving is approximately kept).
    fn decay(&self, now_ms: u64) {
        let last = self.halved_at_ms.load(Ordering::Relaxed);
        let periods = now_ms.saturating_sub(last) / HALF_LIFE_MS;
        if periods == 0 {
            return;
        }
        let next = last + periods * HALF_LIFE_MS;
        if self
            .halved_at_ms
            .compare_exchange(last, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let shift = periods.min(63) as u32;
        for count in [&self.recent_requests, &self.recent_retries] {
            let _ = count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n >> shift));
        }
    }

    /// Whether one more retry keeps recent retries within `percent`% of
    /// recent requests plus a reserve: [`RECENT_RESERVE`] or
    /// `min_concurrency` if larger, none when `min_concurrency` is 0.
    fn within_recent_share(&self, budget: &RetryBudget) -> bool {
        let requests = self.recent_requests.load(Ordering::Relaxed) as f64;
        let retries = self.recent_retries.load(Ordering::Relaxed) as f64;
        let share = budget.percent / 100.0 * requests;
        let reserve = match budget.min_concurrency {
            0 => 0.0,
            n => RECENT_RESERVE.max(n as f64),
        };
        retries + 1.0 <= share + reserve
    }
}

/// Retries in flight and recent traffic, per pool.
pub struct RetryBudgets {
    pools: Box<[PoolRetries]>,
}

/// One retry in flight in a pool, released when dropped.
pub struct RetryToken {
    budgets: Arc<RetryBudgets>,
    pool: PoolId,
}

impl Drop for RetryToken {
    fn drop(&mut self) {
        self.budgets.pools[self.pool.0]
            .in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl RetryBudgets {
    /// Counters for `pools` pools, at zero.
    pub fn new(pools: usize) -> Self {
        Self {
            pools: (0..pools).map(|_| PoolRetries::default()).collect(),
        }
    }

    /// Retries in flight in `pool`.
    pub fn in_flight(&self, pool: PoolId) -> u64 {
        self.pools[pool.0].in_flight.load(Ordering::Relaxed)
    }

    /// Count a request's first attempt in `pool`.
    pub fn count_request(&self, pool: PoolId, now_ms: u64) {
        let counts = &self.pools[pool.0];
        counts.decay(now_ms);
        counts.recent_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A token for one more retry in `pool` if `budget` allows it while
    /// its `backends` have their current requests in flight; `None` when the
    /// budget is spent.
    pub fn try_acquire(
        self: &Arc<Self>,
        pool: PoolId,
        budget: &RetryBudget,
        backends: &[Arc<BackendStats>],
        now_ms: u64,
    ) -> Option<RetryToken> {
        let counts = &self.pools[pool.0];
        counts.decay(now_ms);
        let requests: i64 = backends.iter().map(|b| b.in_flight().max(0)).sum();
        let allowed = budget.allowed(requests as u64);
        let burst_allowed = counts.within_recent_share(budget);
        counts
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < allowed || burst_allowed).then_some(n + 1)
            })
            .ok()?;
        counts.recent_retries.fetch_add(1, Ordering::Relaxed);
        Some(RetryToken {
            budgets: self.clone(),
            pool,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::backend::InFlight;

    fn budget(percent: f64, min_concurrency: u32) -> RetryBudget {
        RetryBudget {
            percent,
            min_concurrency,
        }
    }

    /// `n` backends with `per_backend` requests in flight each (the guards
    /// are returned to keep them in flight).
    fn busy(n: usize, per_backend: usize) -> (Vec<Arc<BackendStats>>, Vec<InFlight>) {
        let stats: Vec<Arc<BackendStats>> = (0..n).map(|_| Arc::default()).collect();
        let guards = stats
            .iter()
            .flat_map(|s| (0..per_backend).map(|_| s.start()))
            .collect();
        (stats, guards)
    }

    #[test]
    fn the_reserve_is_allowed_whatever_the_load() {
        let budgets = Arc::new(RetryBudgets::new(1));
        let (idle, _guards) = busy(2, 0);
        let pool = PoolId(0);
        // No request in flight or recent: min_concurrency (3) in flight, and
        // the recent reserve (10) beyond it.
        let tokens: Vec<_> = (0..10)
            .map(|_| budgets.try_acquire(pool, &budget(20.0, 3), &idle, 0))
            .collect();
        assert!(tokens.iter().all(Option::is_some));
        assert!(budgets
            .try_acquire(pool, &budget(20.0, 3), &idle, 0)
            .is_none());
        assert_eq!(budgets.in_flight(pool), 10);
        drop(tokens);
        assert_eq!(budgets.in_flight(pool), 0, "tokens give their retry back");
    }

    #[test]
    fn the_budget_grows_with_requests_in_flight() {
        let budgets = Arc::new(RetryBudgets::new(2));
        let (stats, _guards) = busy(2, 25); // 50 in flight: 20% is 10
        let pool = PoolId(1);
        let tokens: Vec<_> = (0..10)
            .filter_map(|_| budgets.try_acquire(pool, &budget(20.0, 3), &stats, 0))
            .collect();
        assert_eq!(tokens.len(), 10);
        assert!(budgets
            .try_acquire(pool, &budget(20.0, 3), &stats, 0)
            .is_none());
        assert_eq!(
            budgets.in_flight(PoolId(0)),
            0,
            "pools have their own budgets"
        );
        assert!(budgets
            .try_acquire(pool, &budget(0.0, 0), &stats, 0)
            .is_none());
    }

    #[test]
    fn a_burst_passes_while_recent_retries_stay_within_the_share() {
        let budgets = Arc::new(RetryBudgets::new(1));
        let (idle, _guards) = busy(1, 0);
        let pool = PoolId(0);
        let policy = budget(20.0, 1);
        for _ in 0..20 {
            budgets.count_request(pool, 0);
        }
        // 20 recent requests: 4 retries (20%) plus the reserve of 10 may be
        // in flight at once.
        let tokens: Vec<_> = (0..20)
            .filter_map(|_| budgets.try_acquire(pool, &policy, &idle, 0))
            .collect();
        assert_eq!(tokens.len(), 14);
        drop(tokens);
        // The recent retries weigh on the share until they decay.
        let _first = budgets.try_acquire(pool, &policy, &idle, 500);
        assert!(budgets.try_acquire(pool, &policy, &idle, 500).is_none());
        // Three seconds on, counts are an eighth: 2 requests, 0 retries.
        for _ in 0..20 {
            budgets.count_request(pool, 3_500);
        }
        assert!(budgets.try_acquire(pool, &policy, &idle, 3_500).is_some());
    }
}

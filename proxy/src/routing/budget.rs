//! Event budgets: a route may use at most a fixed share of each region's
//! capacity, so that one event cannot starve another on the same pool.
//!
//! A region's capacity is the sum of the configured `capacity` (requests per
//! second) of the route's pool's backends in that region; the route's limit
//! there is `region_share × capacity`. (Server-Load reports a capacity in
//! concurrent requests, not a rate, so it does not enter the budget.)
//!
//! Each (route, region) has a lock-free rate limiter (GCRA: one atomic
//! "theoretical arrival time", a compare-and-swap per request, with a burst
//! tolerance of 100 ms of the limit) and counters of what it admitted,
//! rejected and spilled, which the engine turns into rates and decisions.
//! Routes without a budget have no entry: nothing is done for them.
//!
//! When the fleet shares its budgets through Redis (`fleet.budget_store`),
//! each (route, region) also has a [`SharedAllowance`]: the tokens this
//! instance leased from the fleet's limiter for the coming interval
//! (`crate::fleet::budgets` leases them). A request takes one token, with
//! no round trip; without one it is over budget. While Redis cannot be
//! reached the local limiter serves instead, at this instance's share of
//! the limit.

use crate::config::{BudgetPolicy, Pool, Snapshot};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// How far ahead of its schedule a limiter may run: the burst it admits.
const BURST_TOLERANCE_US: u64 = 100_000;

/// A lock-free rate limiter: Generic Cell Rate Algorithm in microseconds.
#[derive(Debug)]
pub struct RateLimiter {
    /// When the next request is due if requests came exactly at the rate.
    theoretical_arrival_us: AtomicU64,
    /// Microseconds per admitted request (`u64::MAX`: admit nothing).
    interval_us: AtomicU64,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        let limiter = Self {
            theoretical_arrival_us: AtomicU64::new(0),
            interval_us: AtomicU64::new(u64::MAX),
        };
        limiter.set_rate(per_second);
        limiter
    }

    /// Change the rate; requests already admitted keep their place.
    pub fn set_rate(&self, per_second: f64) {
        let interval = if per_second > 0.0 {
            (1e6 / per_second).max(1.0) as u64
        } else {
            u64::MAX
        };
        self.interval_us.store(interval, Ordering::Relaxed);
    }

    pub fn rate(&self) -> f64 {
        match self.interval_us.load(Ordering::Relaxed) {
            u64::MAX => 0.0,
            interval => 1e6 / interval as f64,
        }
    }

    /// Admit one request at `now_us` if the rate allows it.
    pub fn try_acquire(&self, now_us: u64) -> bool {
        let interval = self.interval_us.load(Ordering::Relaxed);
        if interval == u64::MAX {
            return false;
        }
        let mut due = self.theoretical_arrival_us.load(Ordering::Relaxed);
        loop {
            let start = due.max(now_us);
            if start - now_us > BURST_TOLERANCE_US {
                return false;
            }
            match self.theoretical_arrival_us.compare_exchange_weak(
                due,
                start.saturating_add(interval),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(actual) => due = actual,
            }
        }
    }
}

/// The tokens an instance holds of a budget the fleet shares.
#[derive(Debug, Default)]
pub struct SharedAllowance {
    /// Leased and not yet spent.
    pub tokens: AtomicI64,
    /// Requests that asked for a token since the last lease.
    pub asked: AtomicU64,
    /// Redis cannot be reached: the local limiter decides, at this
    /// instance's share of the limit.
    pub local_fallback: AtomicBool,
}

impl SharedAllowance {
    /// Take one token, if any is left.
    fn try_take(&self) -> bool {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t > 0).then(|| t - 1)
            })
            .is_ok()
    }
}

/// One route's budget in one region of its pool.
#[derive(Debug)]
pub struct RegionBudget {
    /// The region's name (`None`: the backends without a region).
    pub region: Option<String>,
    /// Configured capacity of the pool's backends in the region, req/s.
    pub capacity: f64,
    /// The route's limit in the region, req/s (for the whole fleet when
    /// it is shared).
    pub limit: f64,
    pub limiter: RateLimiter,
    /// Present when the fleet shares its budgets.
    pub shared: Option<SharedAllowance>,
    pub admitted: AtomicU64,
    pub rejected: AtomicU64,
    pub spilled: AtomicU64,
}

impl RegionBudget {
    /// Whether one more request fits: a leased token when the budget is
    /// shared (and Redis reachable), else the local limiter.
    fn try_acquire(&self, now_us: u64) -> bool {
        match &self.shared {
            Some(shared) if !shared.local_fallback.load(Ordering::Relaxed) => shared.try_take(),
            _ => self.limiter.try_acquire(now_us),
        }
    }
}

/// A route's budget: its policy and one limiter per region of its pool.
#[derive(Debug)]
pub struct RouteBudget {
    pub policy: BudgetPolicy,
    pub regions: Vec<RegionBudget>,
    /// Index into `regions` of each of the pool's backends.
    backend_region: Vec<usize>,
}

/// Whether a request fits its route's budget in a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over budget in this region (index into `RouteBudget::regions`).
    Over(usize),
}

impl RouteBudget {
    fn new(policy: BudgetPolicy, pool: &Pool, shared: bool) -> Self {
        let regions: Vec<RegionBudget> = pool
            .regions
            .iter()
            .map(|region| {
                let capacity: f64 = pool
                    .backends
                    .iter()
                    .filter(|b| b.region == *region)
                    .filter_map(|b| b.capacity)
                    .map(f64::from)
                    .sum();
                let limit = capacity * policy.region_share;
                RegionBudget {
                    region: region.clone(),
                    capacity,
                    limit,
                    limiter: RateLimiter::new(limit),
                    shared: shared.then(SharedAllowance::default),
                    admitted: AtomicU64::new(0),
                    rejected: AtomicU64::new(0),
                    spilled: AtomicU64::new(0),
                }
            })
            .collect();
        let backend_region = pool
            .backends
            .iter()
            .map(|b| {
                pool.regions
                    .iter()
                    .position(|r| *r == b.region)
                    .expect("every backend's region is listed")
            })
            .collect();
        Self {
            policy,
            regions,
            backend_region,
        }
    }

    /// The region (index) of one of the pool's backends.
    pub fn region_of(&self, backend: usize) -> usize {
        self.backend_region[backend]
    }

    /// Charge a request sent to `backend` against its region's budget.
    pub fn admit(&self, backend: usize, now_us: u64) -> Admission {
        let index = self.backend_region[backend];
        let region = &self.regions[index];
        if region.try_acquire(now_us) {
            region.admitted.fetch_add(1, Ordering::Relaxed);
            Admission::Admitted
        } else {
            Admission::Over(index)
        }
    }
}

/// The budgets of a snapshot's routes, by route index (`None`: no budget).
#[derive(Debug, Default)]
pub struct Budgets {
    pub routes: Vec<Option<RouteBudget>>,
}

impl Budgets {
    pub fn new(snapshot: &Snapshot) -> Self {
        let routes = snapshot
            .routes
            .routes()
            .iter()
            .map(|route| {
                let policy = route.budget.clone()?;
                let shared = snapshot.fleet.is_some();
                Some(RouteBudget::new(policy, snapshot.pool(route.pool?), shared))
            })
            .collect();
        Self { routes }
    }

    /// The budget of route `index`, if it has one.
    pub fn route(&self, index: usize) -> Option<&RouteBudget> {
        self.routes.get(index).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests offered every `gap_us` for `seconds`: how many get through.
    fn admitted(limiter: &RateLimiter, gap_us: u64, seconds: u64, start_us: u64) -> u64 {
        (0..seconds * 1_000_000 / gap_us)
            .filter(|i| limiter.try_acquire(start_us + i * gap_us))
            .count() as u64
    }

    #[test]
    fn admits_the_rate_and_no_more_under_overload() {
        let limiter = RateLimiter::new(100.0);
        // Offered 1000/s for 10 s: 100/s get through, plus the initial burst.
        let got = admitted(&limiter, 1_000, 10, 1);
        assert!((1_000..=1_011).contains(&got), "{got}");
    }

    #[test]
    fn under_the_rate_everything_passes() {
        let limiter = RateLimiter::new(100.0);
        assert_eq!(admitted(&limiter, 20_000, 10, 1), 500);
    }

    #[test]
    fn a_burst_is_bounded_by_the_tolerance() {
        let limiter = RateLimiter::new(100.0);
        // All at the same instant: 100 ms of the rate, plus the first.
        let burst = (0..1_000).filter(|_| limiter.try_acquire(5)).count();
        assert_eq!(burst, 11);
        // After a quiet second the limiter has not hoarded more.
        let later = (0..1_000)
            .filter(|_| limiter.try_acquire(2_000_000))
            .count();
        assert_eq!(later, 11);
    }

    #[test]
    fn rate_changes_apply_to_the_next_requests_and_zero_admits_nothing() {
        let limiter = RateLimiter::new(100.0);
        assert!(limiter.try_acquire(1));
        limiter.set_rate(0.0);
        assert_eq!(limiter.rate(), 0.0);
        assert!(!limiter.try_acquire(10_000_000));
        limiter.set_rate(10.0);
        assert!((limiter.rate() - 10.0).abs() < 1e-9);
        let got = admitted(&limiter, 1_000, 5, 20_000_000);
        assert!((50..=52).contains(&got), "{got}");
    }

    #[test]
    fn a_shared_budget_admits_its_leased_tokens_then_the_local_share_without_redis() {
        let region = RegionBudget {
            region: None,
            capacity: 100.0,
            limit: 100.0,
            limiter: RateLimiter::new(100.0),
            shared: Some(SharedAllowance::default()),
            admitted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            spilled: AtomicU64::new(0),
        };
        let shared = region.shared.as_ref().unwrap();
        assert!(!region.try_acquire(1), "no token leased yet");
        shared.tokens.store(3, Ordering::Relaxed);
        let admitted = (0..10).filter(|_| region.try_acquire(1)).count();
        assert_eq!(admitted, 3);
        assert_eq!(shared.asked.load(Ordering::Relaxed), 11);
        assert_eq!(shared.tokens.load(Ordering::Relaxed), 0);
        // Redis unreachable: the local limiter, at the share it was set to.
        shared.local_fallback.store(true, Ordering::Relaxed);
        region.limiter.set_rate(10.0);
        let local = admitted_by(&region, 1_000, 10, 5_000_000);
        assert!((100..=102).contains(&local), "{local}");
    }

    fn admitted_by(region: &RegionBudget, gap_us: u64, seconds: u64, start_us: u64) -> u64 {
        (0..seconds * 1_000_000 / gap_us)
            .filter(|i| region.try_acquire(start_us + i * gap_us))
            .count() as u64
    }

    #[test]
    fn concurrent_requests_never_exceed_the_rate() {
        let limiter = std::sync::Arc::new(RateLimiter::new(1_000.0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    (0..100_000u64)
                        .filter(|i| limiter.try_acquire(1 + i * 10))
                        .count()
                })
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // 1 s of fake time at 1000/s: 1000 plus the burst, whatever the interleaving.
        assert!((990..=1_101).contains(&total), "{total}");
    }
}

//! What the admin API shows of the control loop: one [`Inspection`] per
//! request, read from one published routing state under the engine's lock,
//! so every part of an answer comes from the same recompute.

use super::engine::EngineMemory;
use super::shadow::Prediction;
use super::spillover::RegionSignals;
use super::tiers::TierLoad;
use super::weights::Factors;
use crate::config::{BalanceMode, BudgetPolicy, Pool, Snapshot};
use crate::routing::state::RoutingState;
use crate::stats::backend::{Observation, PollRecord};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Everything the engine knows, at one moment.
pub struct Inspection {
    /// The snapshot `pools` follows.
    pub snapshot: Arc<Snapshot>,
    /// The wall clock's time (schedules are evaluated at it), Unix seconds.
    pub wall_now_s: i64,
    /// Per pool, in snapshot order.
    pub pools: Vec<PoolInspection>,
    /// Every route budget in every region, as last observed.
    pub budgets: Vec<BudgetInspection>,
}

/// One pool, for the admin API.
pub struct PoolInspection {
    /// Every backend, in snapshot order.
    pub backends: Vec<BackendInspection>,
    /// The pool's named regions.
    pub regions: Vec<RegionInspection>,
    /// Its priority tiers, highest first, as last computed.
    pub tiers: Vec<TierLoad>,
    /// Its shadow candidate as last computed (`None` without one, or before
    /// its first computation).
    pub shadow: Option<ShadowInspection>,
}

/// Everything the engine knows about one backend, for the admin API.
#[derive(Debug, Clone)]
pub struct BackendInspection {
    pub id: String,
    pub share: f64,
    pub eligible: bool,
    pub healthy: bool,
    pub ejected_for_ms: Option<u64>,
    pub times_ejected: u32,
    pub drained: bool,
    /// (share, remaining ms) of an operator pin.
    pub pinned: Option<(f64, u64)>,
    /// Remaining cool-down of an open canary breaker.
    pub canary_breaker_open_for_ms: Option<u64>,
    /// Slow-start progress: `Some(0.0..1.0)` while ramping.
    pub slow_start_progress: Option<f64>,
    /// The inputs behind the last computed share.
    pub factors: Option<Factors>,
    /// Consistent hashing: (vnodes, fraction of the key space owned).
    pub ring: Option<(u32, f64)>,
    pub observation: Observation,
    /// The last load poll, when the pool polls.
    pub last_poll: Option<PollRecord>,
}

/// One region of a pool, for the admin API.
#[derive(Debug, Clone)]
pub struct RegionInspection {
    pub region: String,
    /// Fraction of the region's traffic moved on to the next region.
    pub spill: f64,
    /// Sum of the region's backends' shares.
    pub share: f64,
    pub signals: RegionSignals,
    /// `high: <why>`, `between` or `clear`; `-` when spillover is off.
    pub pressure: String,
    /// The region's fraction of the pool's requests over the last seconds
    /// (`None` before there were any).
    pub actual_share: Option<f64>,
}

/// A pool's shadow candidate, for the admin API.
#[derive(Debug, Clone)]
pub struct ShadowInspection {
    pub mode: BalanceMode,
    pub sample: f64,
    /// Per backend, in snapshot order.
    pub candidate_shares: Vec<f64>,
    pub live_shares: Vec<f64>,
    pub prediction: Prediction,
    /// Sampled requests the candidate would have sent to the same backend /
    /// to another, since its parameters last changed.
    pub same: u64,
    pub different: u64,
}

/// One route's event budget, for the admin API.
#[derive(Debug, Clone)]
pub struct BudgetInspection {
    pub route: String,
    pub policy: BudgetPolicy,
    pub regions: Vec<RegionBudgetInspection>,
}

/// A route's budget in one region, for the admin API.
#[derive(Debug, Clone)]
pub struct RegionBudgetInspection {
    pub region: Option<String>,
    /// Configured capacity of the region's backends, req/s.
    pub capacity: f64,
    /// The route's limit there, req/s.
    pub limit: f64,
    /// Admitted requests per second, and those over the limit (shed or spilled).
    pub rate: f64,
    pub over_rate: f64,
    pub over_budget: bool,
    pub admitted: u64,
    pub rejected: u64,
    pub spilled: u64,
}

/// Read `current` and the memory behind it (both from the same recompute).
pub(super) fn read(
    current: &Arc<RoutingState>,
    memory: &EngineMemory,
    now_ms: u64,
    wall_now_s: i64,
) -> Inspection {
    let pools = current
        .snapshot
        .pools
        .iter()
        .map(|pool| PoolInspection {
            backends: backends(current, memory, pool, now_ms),
            regions: regions(current, memory, pool, now_ms),
            tiers: memory.tiers.get(&pool.name).cloned().unwrap_or_default(),
            shadow: shadow(memory, pool),
        })
        .collect();
    Inspection {
        snapshot: current.snapshot.clone(),
        wall_now_s,
        pools,
        budgets: budgets(current, memory),
    }
}

/// A reading of every backend of the pool, in snapshot order.
fn backends(
    current: &RoutingState,
    memory: &EngineMemory,
    pool: &Pool,
    now_ms: u64,
) -> Vec<BackendInspection> {
    let weights = current.weights[pool.id.0].as_ref();
    let key_space = weights
        .and_then(|w| w.ring.as_ref())
        .map(|r| r.key_space(pool.backends.len()));
    pool.backends
        .iter()
        .enumerate()
        .map(|(i, backend)| {
            let stats = &current.stats.pools[pool.id.0][i];
            let mem = memory
                .backends
                .get(&backend.id)
                .cloned()
                .unwrap_or_default();
            let slow_start = pool.policy.slow_start.as_millis() as u64;
            let slow_start_progress = mem
                .admitted_at_ms
                .map(|at| now_ms.saturating_sub(at))
                .filter(|elapsed| slow_start > 0 && *elapsed < slow_start)
                .map(|elapsed| elapsed as f64 / slow_start as f64);
            let share = weights.map_or(0.0, |w| w.shares[i]);
            BackendInspection {
                ring: key_space.as_ref().map(|owned| (mem.vnodes, owned[i])),
                id: backend.id.0.clone(),
                share,
                eligible: share > 0.0,
                healthy: stats.is_healthy(),
                ejected_for_ms: mem
                    .ejected_until_ms
                    .map(|until| until.saturating_sub(now_ms)),
                times_ejected: mem.times_ejected,
                drained: mem.drained,
                canary_breaker_open_for_ms: mem
                    .breaker_open_until_ms
                    .map(|until| until.saturating_sub(now_ms)),
                pinned: mem
                    .pinned
                    .map(|(share, until)| (share, until.saturating_sub(now_ms))),
                slow_start_progress,
                factors: mem.factors,
                observation: stats.observe(now_ms),
                last_poll: stats.last_poll(),
            }
        })
        .collect()
}

/// The pool's named regions: spill fraction, target share (the sum of its
/// backends' shares), actual share of recent requests and signals.
fn regions(
    current: &RoutingState,
    memory: &EngineMemory,
    pool: &Pool,
    now_ms: u64,
) -> Vec<RegionInspection> {
    let weights = current.weights[pool.id.0].as_ref();
    let requests: Vec<u64> = current.stats.pools[pool.id.0]
        .iter()
        .map(|s| s.observe(now_ms).recent_outcomes.total)
        .collect();
    let pool_requests: u64 = requests.iter().sum();
    pool.regions
        .iter()
        .flatten()
        .map(|region| {
            let mem = memory
                .regions
                .get(&(pool.name.clone(), region.clone()))
                .cloned()
                .unwrap_or_default();
            let share = weights.map_or(0.0, |w| {
                pool.backends
                    .iter()
                    .zip(&w.shares)
                    .filter(|(b, _)| b.region.as_ref() == Some(region))
                    .map(|(_, s)| s)
                    .sum()
            });
            let region_requests: u64 = pool
                .backends
                .iter()
                .zip(&requests)
                .filter(|(b, _)| b.region.as_ref() == Some(region))
                .map(|(_, n)| n)
                .sum();
            RegionInspection {
                region: region.clone(),
                spill: mem.state.fraction.max(mem.scheduled_floor),
                share,
                actual_share: (pool_requests > 0)
                    .then(|| region_requests as f64 / pool_requests as f64),
                signals: mem.signals,
                pressure: match mem.pressure.is_empty() {
                    true => "-".into(),
                    false => mem.pressure,
                },
            }
        })
        .collect()
}

fn shadow(memory: &EngineMemory, pool: &Pool) -> Option<ShadowInspection> {
    let shadow = pool.shadow.as_ref()?;
    let mem = memory.shadows.get(&pool.name)?;
    let (candidate_shares, live_shares, prediction) = mem.last.clone()?;
    Some(ShadowInspection {
        mode: shadow.policy.mode,
        sample: shadow.sample,
        candidate_shares,
        live_shares,
        prediction,
        same: mem.counters.same.get(),
        different: mem.counters.different.get(),
    })
}

/// Every route budget in every region, as last observed.
fn budgets(current: &RoutingState, memory: &EngineMemory) -> Vec<BudgetInspection> {
    let routes = current.snapshot.routes.routes();
    current
        .budgets
        .routes
        .iter()
        .enumerate()
        .filter_map(|(r, budget)| {
            let budget = budget.as_ref()?;
            let regions = budget
                .regions
                .iter()
                .enumerate()
                .map(|(i, region)| {
                    let seen = memory.budgets.get(&(r, i)).cloned().unwrap_or_default();
                    RegionBudgetInspection {
                        region: region.region.clone(),
                        capacity: region.capacity,
                        limit: region.limiter.rate(),
                        rate: seen.rate,
                        over_rate: seen.over_rate,
                        over_budget: seen.over_budget,
                        admitted: region.admitted.load(Ordering::Relaxed),
                        rejected: region.rejected.load(Ordering::Relaxed),
                        spilled: region.spilled.load(Ordering::Relaxed),
                    }
                })
                .collect();
            Some(BudgetInspection {
                route: routes[r].name.clone(),
                policy: budget.policy.clone(),
                regions,
            })
        })
        .collect()
}

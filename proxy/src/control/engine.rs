//! The engine loop: every `recompute_interval` it reads each pool's live
//! stats, applies passive outlier ejection, runs the weight formulas
//! ([`super::weights`]) and publishes the result atomically (`ArcSwap`) for
//! the per-request picker. Every share change, ejection and re-admission is
//! recorded in the [`DecisionLog`]; a share that moves more than 20 points
//! within 5 minutes logs a warning and bumps `ballast_share_swings_total`.
//!
//! Outlier ejection: `consecutive_failures` failures in a row eject a backend
//! for `base_ejection × times ejected` (at most `max_ejection`), unless that
//! would eject more than `max_ejected` of the pool. A backend coming back
//! re-enters through slow start; its ejection count is forgotten once it has
//! stayed in for `max_ejection`. If nothing in a pool is eligible, the pool
//! panics: every backend is used rather than failing every request.
//!
//! Regions: with geo rules, each region's spill fraction is moved by the
//! spillover controller ([`super::spillover`]) and published with the
//! weights; every change is a decision. Without geo rules (no client
//! regions), `region_max_share` caps each region's total share directly.
//!
//! Priority tiers ([`super::tiers`]): each tier's shares are computed as in
//! a pool of its own and scaled by the tier's load; a standby tier starting
//! to serve (failover) or going back to standby (failback) is a decision,
//! logged, and `ballast_priority_tier_load` shows every tier's load.
//!
//! Schedules ([`super::schedule`]): the first weight template of a pool
//! that applies at the wall clock's time multiplies its regions' weights;
//! a switch between templates is a decision, and
//! `ballast_schedule_active{pool,template}` shows which one is active.
//!
//! Shadow mode ([`crate::routing::shadow`]): a pool's candidate policy gets its
//! shares computed from the same inputs right after the live ones, with its
//! own smoothing memory (forgotten when its parameters change), published
//! beside the live weights with the predicted effect of switching.
//!
//! Consistent hashing ([`crate::routing::ring`]): in a pool with `consistent_hash`,
//! each recompute steps the ring's vnode counts toward the new shares within
//! `max_key_moves` and publishes the ring with the weights; keys moving is a
//! `key_move` decision. Event budgets ([`crate::routing::budget`]): the engine turns
//! each route and region's counters into rates for the admin API, and a
//! route going over its budget (or back under) is a `budget` decision.
//!
//! The engine's memory is keyed by backend id, like the live stats, so it
//! survives configuration reloads for backends that remain; spill state is
//! keyed by pool and region name.

use super::schedule;
use super::spillover::{region_signals, Pressure, RegionSignals, SpillState, Thresholds};
use super::tiers::{split_tiers, TierLoad};
use super::weights::{BackendInput, Computed, Factors};
use crate::config::{
    BackendId, BalanceMode, BudgetPolicy, Geo, Pool, PoolPolicy, ScheduleTemplate, ShadowPolicy,
    Snapshot, DEFAULT_SPILLOVER,
};
use crate::routing::budget::Budgets;
use crate::routing::picker::PoolWeights;
use crate::routing::ring;
use crate::routing::shadow::{predict, Prediction, ShadowCounters, ShadowWeights};
use crate::routing::state::RoutingState;
use crate::stats::backend::{BackendStats, Observation, PollRecord};
use crate::stats::clock::WallClock;
use crate::stats::live::LiveState;
use crate::stats::window::OutcomeSummary;
use crate::telemetry::decisions::{DecisionKind, DecisionLog, RoutingDecision};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::request_series::RequestSeries;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Share moves smaller than this are not logged as decisions.
const DECISION_THRESHOLD: f64 = 0.01;
/// A share moving more than this within `SWING_WINDOW` is a swing worth a warning.
const SWING_THRESHOLD: f64 = 0.2;
const SWING_WINDOW_MS: u64 = 5 * 60 * 1000;
/// Budget rates are measured over at least this long.
const BUDGET_RATE_WINDOW_MS: u64 = 1000;
/// A route over budget is back under once nothing was over for this long.
const BUDGET_CLEAR_MS: u64 = 3000;
/// The span of the full outcome window (see `stats::backend`).
const FULL_WINDOW_MS: u64 = 10_000;

/// What changed when a new snapshot was installed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// Backends that are new: they start in slow start.
    pub added: Vec<String>,
    /// Backends no longer configured: in-flight requests finish, nothing new is sent.
    pub removed: Vec<String>,
    /// Backends that stay, with what was learned about them.
    pub kept: usize,
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

/// The engine's memory of a pool's shadow candidate.
struct ShadowMemory {
    /// The candidate policy this memory was built under.
    policy: PoolPolicy,
    /// The candidate's last shares, for its smoothing.
    shares: HashMap<BackendId, f64>,
    counters: ShadowCounters,
    /// What was last computed: (candidate shares, live shares, prediction).
    last: Option<(Vec<f64>, Vec<f64>, Prediction)>,
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

/// A pool's last published ring, with the backends its owner indices
/// refer to (a reload may reorder them).
struct PublishedRing {
    ids: Vec<BackendId>,
    ring: Arc<ring::HashRing>,
}

/// The engine's memory of one route budget in one region.
#[derive(Debug, Clone, Default)]
struct BudgetMemory {
    /// When the counters below were read.
    at_ms: u64,
    admitted: u64,
    over: u64,
    rate: f64,
    over_rate: f64,
    over_budget: bool,
    last_over_ms: u64,
}

/// The engine's memory of one region of a pool.
#[derive(Debug, Clone, Default)]
struct RegionMemory {
    state: SpillState,
    signals: RegionSignals,
    pressure: String,
    /// The least spill the active schedule asks for (client regions only).
    scheduled_floor: f64,
}

/// What the engine remembers of each backend, by id. The ids come from the
/// configuration, never from clients, so a fast hasher is safe here.
type BackendMemories = HashMap<BackendId, BackendMemory, foldhash::fast::RandomState>;

/// The memory of backend `id`, created empty on first use; the id is copied
/// only then.
fn memory_of<'m>(memories: &'m mut BackendMemories, id: &BackendId) -> &'m mut BackendMemory {
    if !memories.contains_key(id) {
        memories.insert(id.clone(), BackendMemory::default());
    }
    memories.get_mut(id).expect("inserted above")
}

/// The engine's private memory of one backend.
#[derive(Debug, Clone, Default)]
struct BackendMemory {
    share: Option<f64>,
    factors: Option<Factors>,
    /// Slow start runs from here.
    admitted_at_ms: Option<u64>,
    ejected_until_ms: Option<u64>,
    times_ejected: u32,
    /// The health verdict seen last time, to notice changes.
    unhealthy: bool,
    /// An operator drained the backend: no new requests.
    drained: bool,
    /// An operator pinned the share until a time: (share, until_ms).
    pinned: Option<(f64, u64)>,
    /// A canary's open breaker: no traffic until then.
    breaker_open_until_ms: Option<u64>,
    /// (when, share) the swing warning compares against.
    swing_reference: Option<(u64, f64)>,
    /// Virtual nodes on its pool's consistent-hash ring.
    vnodes: u32,
}

pub struct Engine {
    state: Arc<ArcSwap<RoutingState>>,
    live: Arc<LiveState>,
    decisions: Arc<DecisionLog>,
    metrics: Arc<Metrics>,
    memory: Mutex<EngineMemory>,
    /// The time of day schedules are evaluated at.
    wall_clock: WallClock,
}

#[derive(Default)]
struct EngineMemory {
    backends: BackendMemories,
    /// By (pool name, region name).
    regions: HashMap<(String, String), RegionMemory>,
    /// The tiers' last loads, by pool name.
    tiers: HashMap<String, Vec<TierLoad>>,
    /// The active schedule template's name, by pool name.
    schedules: HashMap<String, Option<String>>,
    /// Shadow candidates, by pool name.
    shadows: HashMap<String, ShadowMemory>,
    /// Each hashed pool's last published ring, by pool name (once built,
    /// later changes are gradual).
    rings: HashMap<String, PublishedRing>,
    /// By (route index, region index); forgotten on reload with the budgets.
    budgets: HashMap<(usize, usize), BudgetMemory>,
    next_due_ms: HashMap<String, u64>,
}

impl Engine {
    /// An engine for `snapshot`; every backend starts fully admitted (no slow
    /// start at process start: there is no traffic to protect yet).
    pub fn new(
        snapshot: Arc<Snapshot>,
        live: Arc<LiveState>,
        decisions: Arc<DecisionLog>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let state = Arc::new(ArcSwap::from_pointee(RoutingState::new(
            Arc::new(live.resolve(&snapshot)),
            Arc::new(RequestSeries::new(&metrics, &snapshot)),
            Arc::new(Budgets::new(&snapshot)),
            snapshot,
        )));
        Self {
            state,
            live,
            decisions,
            metrics,
            memory: Mutex::new(EngineMemory::default()),
            wall_clock: WallClock::system(),
        }
    }

    /// Evaluate schedules against `clock` instead of the system's time.
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.wall_clock = clock;
        self
    }

    /// The time of day schedules are evaluated at.
    pub fn wall_clock(&self) -> &WallClock {
        &self.wall_clock
    }

    /// Switch to a new configuration (a reload). Backends that stay keep
    /// everything learned about them (stats, ejection, slow start, overrides);
    /// new ones start in slow start; removed ones are forgotten once the
    /// requests already sent to them finish. Weights are computed at once.
    pub fn install(&self, snapshot: Arc<Snapshot>, now_ms: u64) -> InstallReport {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let stats = Arc::new(self.live.resolve(&snapshot));
        let configured: HashSet<&BackendId> = snapshot
            .pools
            .iter()
            .flat_map(|p| p.backends.iter().map(|b| &b.id))
            .collect();
        let mut report = InstallReport::default();
        for id in &configured {
            match memory.backends.get(*id) {
                Some(_) => report.kept += 1,
                None => {
                    report.added.push(id.0.clone());
                    let mem = BackendMemory {
                        admitted_at_ms: Some(now_ms),
                        ..BackendMemory::default()
                    };
                    memory.backends.insert((*id).clone(), mem);
                }
            }
        }
        memory.backends.retain(|id, _| {
            let keep = configured.contains(id);
            if !keep {
                report.removed.push(id.0.clone());
            }
            keep
        });
        report.added.sort();
        report.removed.sort();
        memory.next_due_ms.clear();
        let spilling: HashSet<(String, String)> = snapshot
            .pools
            .iter()
            .flat_map(|p| {
                p.regions
                    .iter()
                    .flatten()
                    .map(|r| (p.name.clone(), r.clone()))
            })
            .collect();
        memory.regions.retain(|key, _| spilling.contains(key));
        memory
            .tiers
            .retain(|pool, _| snapshot.pool_by_name(pool).is_some());
        memory
            .schedules
            .retain(|pool, _| snapshot.pool_by_name(pool).is_some());
        memory.shadows.retain(|pool, shadow| {
            let keep = snapshot
                .pool_by_name(pool)
                .and_then(|p| p.shadow.as_ref())
                .is_some_and(|s| s.policy.same_weight_parameters(&shadow.policy));
            if !keep {
                self.forget_shadow_counters(pool);
            }
            shadow.shares.retain(|id, _| configured.contains(id));
            keep
        });
        memory.rings.retain(|pool, _| {
            snapshot
                .pool_by_name(pool)
                .is_some_and(|p| p.policy.consistent_hash.is_some())
        });
        memory.budgets.clear();
        self.metrics.hash_key_space.reset();
        self.metrics.hash_ring_moved.reset();
        self.metrics.backend_share.reset();
        self.metrics.region_spill.reset();
        self.metrics.tier_load.reset();
        self.metrics.schedule_active.reset();
        self.metrics.shadow_share.reset();
        self.metrics.shadow_predicted_latency.reset();
        self.metrics.shadow_predicted_error_rate.reset();
        self.metrics.shadow_moved_rps.reset();
        self.state.store(Arc::new(RoutingState::new(
            stats,
            Arc::new(RequestSeries::new(&self.metrics, &snapshot)),
            Arc::new(Budgets::new(&snapshot)),
            snapshot,
        )));
        self.recompute_due(&mut memory, now_ms);
        report
    }

    /// The published routing state, for the proxy.
    pub fn state(&self) -> Arc<ArcSwap<RoutingState>> {
        self.state.clone()
    }

    /// How often `tick` should run: the shortest pool interval.
    pub fn tick_interval(&self) -> Duration {
        let state = self.state.load();
        state
            .snapshot
            .pools
            .iter()
            .map(|p| p.policy.recompute_interval)
            .min()
            .unwrap_or(Duration::from_millis(500))
    }

    /// Recompute every pool that is due and publish the new weights.
    pub fn tick(&self, now_ms: u64) {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        self.recompute_due(&mut memory, now_ms);
    }

    fn recompute_due(&self, memory: &mut EngineMemory, now_ms: u64) {
        let current = self.state.load_full();
        let mut weights = current.weights.clone();
        let mut shadows = current.shadows.clone();
        let mut changed = false;
        for pool in &current.snapshot.pools {
            let due = memory.next_due_ms.get(&pool.name).copied().unwrap_or(0);
            if now_ms < due && weights[pool.id.0].is_some() {
                continue;
            }
            memory.next_due_ms.insert(
                pool.name.clone(),
                now_ms + pool.policy.recompute_interval.as_millis() as u64,
            );
            let stats = &current.stats.pools[pool.id.0];
            let observations: Vec<_> = stats.iter().map(|s| s.observe(now_ms)).collect();
            let template = self.note_schedule(pool, &mut memory.schedules, now_ms);
            let (mut pool_weights, tiers, shadow) = self.recompute_pool(
                pool,
                stats,
                &observations,
                current.snapshot.geo.is_some(),
                template.map(|t| &t.multipliers),
                memory,
                now_ms,
            );
            shadows[pool.id.0] = shadow.map(Arc::new);
            if pool.policy.consistent_hash.is_some() {
                pool_weights = self.step_ring(pool, pool_weights, memory, now_ms);
            }
            let previous = memory.tiers.insert(pool.name.clone(), tiers);
            self.note_tier_changes(pool, previous.as_deref(), &memory.tiers[&pool.name], now_ms);
            if let Some(geo) = &current.snapshot.geo {
                self.apply_spillover(
                    pool,
                    geo,
                    &observations,
                    &mut pool_weights,
                    &mut memory.regions,
                    now_ms,
                );
                self.apply_scheduled_spill(pool, template, &mut pool_weights, &mut memory.regions);
            }
            weights[pool.id.0] = Some(pool_weights);
            changed = true;
        }
        if changed {
            self.state
                .store(Arc::new(current.with_weights(weights, shadows)));
        }
        self.observe_budgets(&current, &mut memory.budgets, now_ms);
    }

    /// Turn each budget's counters into rates; a route starting to go over
    /// its budget in a region (shedding or spilling), or staying under it
    /// for `BUDGET_CLEAR_MS` again, is a decision.
    fn observe_budgets(
        &self,
        current: &RoutingState,
        memory: &mut HashMap<(usize, usize), BudgetMemory>,
        now_ms: u64,
    ) {
        let routes = current.snapshot.routes.routes();
        for (r, budget) in current.budgets.routes.iter().enumerate() {
            let Some(budget) = budget else { continue };
            for (i, region) in budget.regions.iter().enumerate() {
                let admitted = region.admitted.load(Ordering::Relaxed);
                let over = region.rejected.load(Ordering::Relaxed)
                    + region.spilled.load(Ordering::Relaxed);
                let seen = memory.entry((r, i)).or_insert(BudgetMemory {
                    at_ms: now_ms,
                    admitted,
                    over,
                    ..BudgetMemory::default()
                });
                let elapsed_ms = now_ms.saturating_sub(seen.at_ms);
                if elapsed_ms < BUDGET_RATE_WINDOW_MS {
                    continue;
                }
                let per_second = 1000.0 / elapsed_ms as f64;
                seen.rate = (admitted - seen.admitted) as f64 * per_second;
                seen.over_rate = (over - seen.over) as f64 * per_second;
                (seen.at_ms, seen.admitted, seen.over) = (now_ms, admitted, over);
                if seen.over_rate > 0.0 {
                    seen.last_over_ms = now_ms;
                }
                let going_over = seen.over_rate > 0.0 && !seen.over_budget;
                let back_under =
                    seen.over_budget && now_ms.saturating_sub(seen.last_over_ms) >= BUDGET_CLEAR_MS;
                if !going_over && !back_under {
                    continue;
                }
                seen.over_budget = going_over;
                let limit = region.limiter.rate();
                let route = &routes[r].name;
                let region_name = region.region.as_deref().unwrap_or("-");
                let reason = if going_over {
                    format!(
                        "route {route} over its budget in {region_name}: {:.0} req/s over the limit of {limit:.0} req/s ({:.0}% of {:.0} req/s capacity); {}",
                        seen.over_rate,
                        budget.policy.region_share * 100.0,
                        region.capacity,
                        budget.policy.over.as_str()
                    )
                } else {
                    format!(
                        "route {route} back under its budget in {region_name}: {:.0} of {limit:.0} req/s",
                        seen.rate
                    )
                };
                tracing::info!(route = %route, "{reason}");
                let usage = |rate: f64| if limit > 0.0 { rate / limit } else { 0.0 };
                self.decisions.record(RoutingDecision {
                    at: SystemTime::now(),
                    at_ms: now_ms,
                    pool: current.snapshot.pool(routes[r].pool).name.clone(),
                    backend: format!("{route}@{region_name}"),
                    kind: DecisionKind::Budget,
                    old_share: usage(seen.rate),
                    new_share: usage(seen.rate + seen.over_rate),
                    reason,
                });
            }
        }
    }

    /// Every route budget in every region, as last observed.
    pub fn inspect_budgets(&self) -> Vec<BudgetInspection> {
        let current = self.state.load_full();
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
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

    /// The pool's schedule template that applies now, if any; a switch from
    /// the one before is a decision, and the `schedule_active` gauges follow.
    fn note_schedule<'p>(
        &self,
        pool: &'p Pool,
        active: &mut HashMap<String, Option<String>>,
        now_ms: u64,
    ) -> Option<&'p ScheduleTemplate> {
        let templates = &pool.policy.schedules;
        let had_one = active.get(&pool.name).is_some_and(Option::is_some);
        if templates.is_empty() && !had_one {
            return None;
        }
        let template =
            schedule::active(templates, self.wall_clock.now_unix_s()).map(|i| &templates[i]);
        for t in templates {
            let on = template.is_some_and(|a| a.name == t.name);
            self.metrics
                .schedule_active
                .with_label_values(&[pool.name.as_str(), t.name.as_str()])
                .set(if on { 1.0 } else { 0.0 });
        }
        let name = template.map(|t| t.name.clone());
        let before = active.insert(pool.name.clone(), name.clone()).flatten();
        if before != name {
            let describe = |n: &Option<String>| n.clone().unwrap_or_else(|| "none".into());
            let multipliers = template.map_or_else(
                || "no multipliers".to_string(),
                |t| {
                    let list: Vec<String> = t
                        .multipliers
                        .iter()
                        .map(|(region, m)| format!("{region} x{m:.2}"))
                        .collect();
                    list.join(", ")
                },
            );
            let reason = format!(
                "schedule {} -> {} ({multipliers})",
                describe(&before),
                describe(&name)
            );
            tracing::info!(pool = %pool.name, "{reason}");
            self.decisions.record(RoutingDecision {
                at: SystemTime::now(),
                at_ms: now_ms,
                pool: pool.name.clone(),
                backend: describe(&name),
                kind: DecisionKind::Schedule,
                old_share: f64::from(u8::from(before.is_some())),
                new_share: f64::from(u8::from(name.is_some())),
                reason,
            });
        }
        template
    }

    /// `with_geo`: clients have regions (spillover acts per request);
    /// otherwise `region_max_share` caps the regions' shares here.
    /// `multipliers`: the active schedule's, by region.
    #[allow(clippy::too_many_arguments)]
    fn recompute_pool(
        &self,
        pool: &Pool,
        stats: &[Arc<BackendStats>],
        observations: &[Observation],
        with_geo: bool,
        multipliers: Option<&BTreeMap<String, f64>>,
        engine_memory: &mut EngineMemory,
        now_ms: u64,
    ) -> (PoolWeights, Vec<TierLoad>, Option<ShadowWeights>) {
        let memory = &mut engine_memory.backends;
        self.apply_outlier_ejection(pool, stats, memory, now_ms);
        self.note_health_changes(pool, stats, memory, now_ms);
        self.apply_canary_breakers(pool, observations, memory, now_ms);

        let mut inputs: Vec<BackendInput> = pool
            .backends
            .iter()
            .zip(observations)
            .map(|(backend, observation)| {
                let mem = memory_of(memory, &backend.id);
                BackendInput {
                    weight: f64::from(backend.weight),
                    capacity: backend.capacity.map(f64::from),
                    eligible: backend.weight > 0
                        && mem.ejected_until_ms.is_none()
                        && !mem.unhealthy
                        && !mem.drained
                        && mem.breaker_open_until_ms.is_none(),
                    admitted_at_ms: mem.admitted_at_ms,
                    previous_share: mem.share,
                    scale: multipliers
                        .zip(backend.region.as_ref())
                        .and_then(|(m, region)| m.get(region))
                        .copied()
                        .unwrap_or(1.0),
                    observation: *observation,
                }
            })
            .collect();
        if !inputs.iter().any(|i| i.eligible) {
            // Panic mode: better to try everything than to fail everything
            // (except what an operator drained on purpose).
            for (input, backend) in inputs.iter_mut().zip(&pool.backends) {
                let drained = memory.get(&backend.id).is_some_and(|m| m.drained);
                input.eligible = input.weight > 0.0 && !drained;
            }
        }
        self.expire_pins(pool, memory, now_ms);
        let (computed, tiers) =
            policy_shares(pool, &pool.policy, &inputs, with_geo, memory, now_ms);

        let shadow = pool.shadow.as_ref().map(|shadow| {
            let live: Vec<f64> = computed.iter().map(|c| c.share).collect();
            self.recompute_shadow(
                pool,
                shadow,
                &inputs,
                &live,
                observations,
                with_geo,
                engine_memory,
                now_ms,
            )
        });
        let memory = &mut engine_memory.backends;
        let expected_in_flight = expected_in_flight(&computed, observations);
        for (backend, result) in pool.backends.iter().zip(&computed) {
            let mem = memory_of(memory, &backend.id);
            self.note_share_change(pool, &backend.id, mem, result, now_ms);
            self.metrics
                .backend_share
                .with_label_values(&[pool.name.as_str(), backend.id.0.as_str()])
                .set(result.share);
        }
        let weights = PoolWeights::new(
            pool,
            computed.iter().map(|c| c.share).collect(),
            expected_in_flight,
        );
        (weights, tiers, shadow)
    }

    /// The shadow candidate's shares from the live `inputs` with its own
    /// parameters and smoothing memory, and the predicted effect against the
    /// `live` shares; published as gauges and kept for the admin API.
    #[allow(clippy::too_many_arguments)]
    fn recompute_shadow(
        &self,
        pool: &Pool,
        shadow: &ShadowPolicy,
        inputs: &[BackendInput],
        live: &[f64],
        observations: &[Observation],
        with_geo: bool,
        engine_memory: &mut EngineMemory,
        now_ms: u64,
    ) -> ShadowWeights {
        let reset = engine_memory
            .shadows
            .get(&pool.name)
            .is_none_or(|m| !m.policy.same_weight_parameters(&shadow.policy));
        if reset {
            self.forget_shadow_counters(&pool.name);
            let decisions = &self.metrics.shadow_decisions;
            let counters = ShadowCounters {
                same: decisions.with_label_values(&[pool.name.as_str(), "same"]),
                different: decisions.with_label_values(&[pool.name.as_str(), "different"]),
            };
            tracing::info!(pool = %pool.name, mode = shadow.policy.mode.as_str(), "shadow candidate starts from scratch");
            engine_memory.shadows.insert(
                pool.name.clone(),
                ShadowMemory {
                    policy: shadow.policy.clone(),
                    shares: HashMap::new(),
                    counters,
                    last: None,
                },
            );
        }
        let mem = engine_memory
            .shadows
            .get_mut(&pool.name)
            .expect("inserted above");
        let candidate_inputs: Vec<BackendInput> = inputs
            .iter()
            .zip(&pool.backends)
            .map(|(input, backend)| BackendInput {
                previous_share: mem.shares.get(&backend.id).copied(),
                ..*input
            })
            .collect();
        let (computed, _) = policy_shares(
            pool,
            &shadow.policy,
            &candidate_inputs,
            with_geo,
            &engine_memory.backends,
            now_ms,
        );
        let candidate: Vec<f64> = computed.iter().map(|c| c.share).collect();
        let prediction = predict(live, &candidate, observations);
        let name = pool.name.as_str();
        for (backend, share) in pool.backends.iter().zip(&candidate) {
            mem.shares.insert(backend.id.clone(), *share);
            self.metrics
                .shadow_share
                .with_label_values(&[name, backend.id.0.as_str()])
                .set(*share);
        }
        for (policy, outcome) in [
            ("live", prediction.live),
            ("candidate", prediction.candidate),
        ] {
            if let Some(latency) = outcome.latency_s {
                self.metrics
                    .shadow_predicted_latency
                    .with_label_values(&[name, policy])
                    .set(latency);
            }
            if let Some(errors) = outcome.error_rate {
                self.metrics
                    .shadow_predicted_error_rate
                    .with_label_values(&[name, policy])
                    .set(errors);
            }
        }
        self.metrics
            .shadow_moved_rps
            .with_label_values(&[name])
            .set(prediction.moved_rps);
        mem.last = Some((candidate.clone(), live.to_vec(), prediction));
        let weights =
            PoolWeights::new(pool, candidate, expected_in_flight(&computed, observations));
        ShadowWeights::new(weights, shadow.sample, mem.counters.clone())
    }

    /// Drop a pool's shadow decision counters (a candidate that is gone, or
    /// starts again with other parameters, counts from zero).
    fn forget_shadow_counters(&self, pool: &str) {
        for outcome in ["same", "different"] {
            // Absent series are fine: nothing to forget.
            let _ = self
                .metrics
                .shadow_decisions
                .remove_label_values(&[pool, outcome]);
        }
    }

    /// Every pool's shadow candidate as last computed (`None` for pools
    /// without one, or before its first computation).
    pub fn inspect_shadows(&self) -> Vec<Option<ShadowInspection>> {
        let current = self.state.load_full();
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        current
            .snapshot
            .pools
            .iter()
            .map(|pool| {
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
            })
            .collect()
    }

    /// Step the pool's ring toward the new shares within `max_key_moves`
    /// and publish it with them; keys moving is a decision.
    fn step_ring(
        &self,
        pool: &Pool,
        weights: PoolWeights,
        memory: &mut EngineMemory,
        now_ms: u64,
    ) -> PoolWeights {
        let Some(hash) = &pool.policy.consistent_hash else {
            return weights;
        };
        let ids: Vec<&str> = pool.backends.iter().map(|b| b.id.0.as_str()).collect();
        let (current, target) = if memory.rings.contains_key(&pool.name) {
            let current: Vec<u32> = pool
                .backends
                .iter()
                .map(|b| memory.backends.get(&b.id).map_or(0, |m| m.vnodes))
                .collect();
            let target = ring::rescaled_targets(&weights.shares, hash.vnodes, &current);
            (current, target)
        } else {
            let target = ring::target_counts(&weights.shares, hash.vnodes);
            (target.clone(), target)
        };
        let band = ring::dead_band(hash.vnodes);
        let step = ring::step_counts(&ids, &current, &target, band, hash.max_key_moves);
        let same_backends = |published: &&PublishedRing| {
            published.ids.iter().eq(pool.backends.iter().map(|b| &b.id))
        };
        let before = match memory.rings.get(&pool.name).filter(same_backends) {
            Some(published) => published.ring.clone(),
            None => Arc::new(ring::HashRing::build(&ids, &current)),
        };
        let (after, moved) = if step.counts == current {
            (before, 0.0)
        } else {
            let after = Arc::new(ring::HashRing::build(&ids, &step.counts));
            let moved = ring::moved_fraction(&before, &after);
            (after, moved)
        };
        memory.rings.insert(
            pool.name.clone(),
            PublishedRing {
                ids: pool.backends.iter().map(|b| b.id.clone()).collect(),
                ring: after.clone(),
            },
        );
        let key_space = after.key_space(ids.len());
        let mut changes = Vec::new();
        for (b, backend) in pool.backends.iter().enumerate() {
            memory_of(&mut memory.backends, &backend.id).vnodes = step.counts[b];
            self.metrics
                .hash_key_space
                .with_label_values(&[pool.name.as_str(), backend.id.0.as_str()])
                .set(key_space[b]);
            if current[b] != step.counts[b] {
                changes.push(format!(
                    "{} vnodes {} -> {} (target {}, share {:.3})",
                    backend.id, current[b], step.counts[b], target[b], weights.shares[b]
                ));
            }
        }
        self.metrics
            .hash_ring_moved
            .with_label_values(&[pool.name.as_str()])
            .set(moved);
        if moved > 0.0 {
            let reason = format!(
                "{:.2}% of the key space changed owner (budget {:.2}% per interval): {}",
                moved * 100.0,
                hash.max_key_moves * 100.0,
                changes.join(", ")
            );
            tracing::info!(pool = %pool.name, "{reason}");
            self.decisions.record(RoutingDecision {
                at: SystemTime::now(),
                at_ms: now_ms,
                pool: pool.name.clone(),
                backend: "ring".into(),
                kind: DecisionKind::KeyMove,
                old_share: 0.0,
                new_share: moved,
                reason,
            });
        }
        weights.with_ring(after)
    }

    /// Publish each tier's load; a tier below the first that starts taking
    /// more than its pre-warm trickle is a failover, one going back is a
    /// failback.
    fn note_tier_changes(
        &self,
        pool: &Pool,
        previous: Option<&[TierLoad]>,
        tiers: &[TierLoad],
        now_ms: u64,
    ) {
        let prewarm = pool.policy.prewarm_share;
        for (t, tier) in tiers.iter().enumerate() {
            let name = format!("tier {}", tier.priority);
            self.metrics
                .tier_load
                .with_label_values(&[pool.name.as_str(), &tier.priority.to_string()])
                .set(tier.load);
            if t == 0 {
                continue;
            }
            let before = previous.and_then(|p| p.iter().find(|b| b.priority == tier.priority));
            let was_serving = before.is_some_and(|b| b.serving(prewarm));
            if was_serving == tier.serving(prewarm) {
                continue;
            }
            let old = before.map_or(0.0, |b| b.load);
            let above: Vec<String> = tiers[..t]
                .iter()
                .map(|a| format!("tier {} health {:.2}", a.priority, a.health))
                .collect();
            let (kind, verb) = if tier.serving(prewarm) {
                (DecisionKind::Failover, "failover")
            } else {
                (DecisionKind::Failback, "failback")
            };
            let reason = format!(
                "{verb}: {name} load {old:.3} -> {:.3} ({})",
                tier.load,
                above.join(", ")
            );
            if kind == DecisionKind::Failover {
                tracing::warn!(pool = %pool.name, "{reason}");
            } else {
                tracing::info!(pool = %pool.name, "{reason}");
            }
            self.decisions.record(RoutingDecision {
                at: SystemTime::now(),
                at_ms: now_ms,
                pool: pool.name.clone(),
                backend: name,
                kind,
                old_share: old,
                new_share: tier.load,
                reason,
            });
        }
    }

    /// Every pool's priority tiers, highest first, as last computed.
    pub fn inspect_tiers(&self) -> Vec<Vec<TierLoad>> {
        let current = self.state.load_full();
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        current
            .snapshot
            .pools
            .iter()
            .map(|pool| memory.tiers.get(&pool.name).cloned().unwrap_or_default())
            .collect()
    }

    /// Judge each region's pressure, move its spill fraction one step, and
    /// publish it with the weights; changes are decisions.
    fn apply_spillover(
        &self,
        pool: &Pool,
        geo: &Geo,
        observations: &[Observation],
        weights: &mut PoolWeights,
        regions: &mut HashMap<(String, String), RegionMemory>,
        now_ms: u64,
    ) {
        let policy = &pool.policy;
        let thresholds = match (&policy.spillover, policy.region_max_share < 1.0) {
            _ if policy.mode == BalanceMode::RoundRobin => return,
            (Some(spillover), _) => Thresholds {
                policy: spillover,
                region_max_share: policy.region_max_share,
            },
            (None, true) => Thresholds {
                policy: &DEFAULT_SPILLOVER,
                region_max_share: policy.region_max_share,
            },
            (None, false) => return,
        };
        let stale_after = policy.server_load.stale_after.as_millis() as u64;
        let pool_requests: u64 = observations.iter().map(|o| o.recent_outcomes.total).sum();
        for region in pool.regions.iter().flatten() {
            let members: Vec<(&Observation, Option<f64>)> = pool
                .backends
                .iter()
                .enumerate()
                .filter(|(i, b)| b.region.as_ref() == Some(region) && weights.shares[*i] > 0.0)
                .map(|(i, _)| {
                    let o = &observations[i];
                    let fresh_utilization = o
                        .report
                        .filter(|r| now_ms.saturating_sub(r.received_at_ms) <= stale_after)
                        .and_then(|r| r.utilization);
                    (o, fresh_utilization)
                })
                .collect();
            let region_requests: u64 = pool
                .backends
                .iter()
                .zip(observations)
                .filter(|(b, _)| b.region.as_ref() == Some(region))
                .map(|(_, o)| o.recent_outcomes.total)
                .sum();
            let mem = regions
                .entry((pool.name.clone(), region.clone()))
                .or_default();
            if members.is_empty() {
                // Nothing to measure (or to spill from): hold still.
                mem.pressure = "no eligible backend".into();
            } else {
                mem.signals = region_signals(
                    thresholds.policy.latency_signal,
                    &members,
                    region_requests,
                    pool_requests,
                );
                let pressure = thresholds.pressure(&mem.signals);
                mem.pressure = match &pressure {
                    Pressure::High(why) => format!("high: {why}"),
                    Pressure::Between => "between".into(),
                    Pressure::Clear => "clear".into(),
                };
                if let Some(change) = thresholds.advance(&mut mem.state, &pressure, now_ms) {
                    let to = next_region(geo, pool, region);
                    let verb = if change.new > change.old {
                        "more"
                    } else {
                        "less"
                    };
                    tracing::info!(
                        pool = %pool.name, region = %region, to = %to,
                        "spilling {verb}: {:.2} -> {:.2} ({})", change.old, change.new, change.reason
                    );
                    self.decisions.record(RoutingDecision {
                        at: SystemTime::now(),
                        at_ms: now_ms,
                        pool: pool.name.clone(),
                        backend: region.clone(),
                        kind: DecisionKind::Spill,
                        old_share: change.old,
                        new_share: change.new,
                        reason: format!("spill:{region}->{to} {}", change.reason),
                    });
                }
            }
            weights.set_spill(region, mem.state.fraction);
            self.metrics
                .region_spill
                .with_label_values(&[pool.name.as_str(), region.as_str()])
                .set(mem.state.fraction);
        }
    }

    /// With client regions a request stays in its plan's first region, so a
    /// schedule moves clients rather than weights: region `R` keeps
    /// `m_R / m_max` of its clients and sends the rest on to the next region
    /// of their plan (as spillover does, never across a fence), at most
    /// the spillover `max`; the larger of this and the spillover
    /// controller's fraction is published.
    fn apply_scheduled_spill(
        &self,
        pool: &Pool,
        template: Option<&ScheduleTemplate>,
        weights: &mut PoolWeights,
        regions: &mut HashMap<(String, String), RegionMemory>,
    ) {
        let Some(template) = template else {
            for region in pool.regions.iter().flatten() {
                if let Some(mem) = regions.get_mut(&(pool.name.clone(), region.clone())) {
                    mem.scheduled_floor = 0.0;
                }
            }
            return;
        };
        let multiplier = |region: &str| template.multipliers.get(region).copied().unwrap_or(1.0);
        let strongest = pool
            .regions
            .iter()
            .flatten()
            .map(|r| multiplier(r))
            .fold(0.0, f64::max);
        let most = pool
            .policy
            .spillover
            .as_ref()
            .map_or(DEFAULT_SPILLOVER.max, |s| s.max);
        for region in pool.regions.iter().flatten() {
            let floor = (1.0 - multiplier(region) / strongest).clamp(0.0, most);
            let mem = regions
                .entry((pool.name.clone(), region.clone()))
                .or_default();
            mem.scheduled_floor = floor;
            let spill = weights.spill(region).max(floor);
            weights.set_spill(region, spill);
            self.metrics
                .region_spill
                .with_label_values(&[pool.name.as_str(), region.as_str()])
                .set(spill);
        }
    }

    fn apply_outlier_ejection(
        &self,
        pool: &Pool,
        stats: &[Arc<BackendStats>],
        memory: &mut BackendMemories,
        now_ms: u64,
    ) {
        let policy = &pool.policy.outlier;
        let max_ejected = (pool.backends.len() as f64 * policy.max_ejected).floor() as usize;
        for (i, backend) in pool.backends.iter().enumerate() {
            let mem = memory_of(memory, &backend.id);
            match mem.ejected_until_ms {
                Some(until) if now_ms >= until => {
                    mem.ejected_until_ms = None;
                    mem.admitted_at_ms = Some(now_ms);
                    stats[i].reset_consecutive_failures();
                    self.record(
                        pool,
                        &backend.id,
                        DecisionKind::Readmitted,
                        0.0,
                        0.0,
                        now_ms,
                        "ejection ended; slow start begins".into(),
                    );
                }
                None if mem.times_ejected > 0
                    && mem.admitted_at_ms.is_some_and(|at| {
                        now_ms.saturating_sub(at) >= policy.max_ejection.as_millis() as u64
                    }) =>
                {
                    mem.times_ejected = 0;
                }
                _ => {}
            }
        }
        let mut ejected = pool
            .backends
            .iter()
            .filter(|b| {
                memory
                    .get(&b.id)
                    .is_some_and(|m| m.ejected_until_ms.is_some())
            })
            .count();
        for (i, backend) in pool.backends.iter().enumerate() {
            // Read afresh: a backend re-admitted above had its count reset.
            let failures = stats[i].consecutive_failures();
            let mem = memory_of(memory, &backend.id);
            if mem.ejected_until_ms.is_some() || failures < policy.consecutive_failures {
                continue;
            }
            if ejected + 1 > max_ejected {
                continue;
            }
            mem.times_ejected += 1;
            let duration = (policy.base_ejection * mem.times_ejected).min(policy.max_ejection);
            mem.ejected_until_ms = Some(now_ms + duration.as_millis() as u64);
            ejected += 1;
            let old = mem.share.unwrap_or(0.0);
            self.metrics
                .ejections
                .with_label_values(&[pool.name.as_str()])
                .inc();
            tracing::warn!(pool = %pool.name, backend = %backend.id, failures, "ejecting backend for {duration:?}");
            self.record(
                pool,
                &backend.id,
                DecisionKind::Ejected,
                old,
                0.0,
                now_ms,
                format!(
                    "{failures} consecutive failures; ejected for {duration:?} (ejection #{})",
                    mem.times_ejected
                ),
            );
        }
    }

    /// Lift (and record) the pins that have expired.
    fn expire_pins(&self, pool: &Pool, memory: &mut BackendMemories, now_ms: u64) {
        for backend in &pool.backends {
            let Some(mem) = memory.get_mut(&backend.id) else {
                continue;
            };
            if mem.pinned.is_some_and(|(_, until)| now_ms >= until) {
                mem.pinned = None;
                let share = mem.share.unwrap_or(0.0);
                self.record(
                    pool,
                    &backend.id,
                    DecisionKind::Override,
                    share,
                    share,
                    now_ms,
                    "pin expired".into(),
                );
            }
        }
    }

    /// Keep healthy canaries between their floor and max share; the stable
    /// backends share the rest in proportion.
    fn apply_canary_bounds(pool: &Pool, computed: &mut [Computed]) {
        let stable_serving = pool
            .backends
            .iter()
            .zip(computed.iter())
            .any(|(b, c)| b.canary.is_none() && c.share > 0.0);
        if !stable_serving {
            return;
        }
        let fixed: Vec<Option<f64>> = pool
            .backends
            .iter()
            .zip(computed.iter())
            .map(|(b, c)| match &b.canary {
                Some(policy) if c.share > 0.0 => Some(c.share.clamp(policy.floor, policy.max)),
                _ => None,
            })
            .collect();
        fix_shares(computed, &fixed);
    }

    /// Open a canary's breaker when its error rate passes `max_error_rate`
    /// (over the last 2 s, or over 10 s once it has been back that long);
    /// close it after the cool-down, re-admitting through slow start.
    fn apply_canary_breakers(
        &self,
        pool: &Pool,
        observations: &[Observation],
        memory: &mut BackendMemories,
        now_ms: u64,
    ) {
        for (backend, observation) in pool.backends.iter().zip(observations) {
            let Some(policy) = &backend.canary else {
                continue;
            };
            let mem = memory_of(memory, &backend.id);
            match mem.breaker_open_until_ms {
                Some(until) if now_ms >= until => {
                    mem.breaker_open_until_ms = None;
                    mem.admitted_at_ms = Some(now_ms);
                    self.record(
                        pool,
                        &backend.id,
                        DecisionKind::CanaryReadmitted,
                        0.0,
                        0.0,
                        now_ms,
                        "canary breaker closed after cool-down; slow start begins".into(),
                    );
                }
                Some(_) => {}
                None => {
                    let back_long_enough = mem
                        .admitted_at_ms
                        .is_none_or(|at| now_ms.saturating_sub(at) >= FULL_WINDOW_MS);
                    let failing = |o: &OutcomeSummary| {
                        o.total >= policy.min_requests && o.error_rate() > policy.max_error_rate
                    };
                    let window = if failing(&observation.recent_outcomes) {
                        Some(observation.recent_outcomes)
                    } else if back_long_enough && failing(&observation.outcomes) {
                        Some(observation.outcomes)
                    } else {
                        None
                    };
                    let Some(window) = window else { continue };
                    mem.breaker_open_until_ms = Some(now_ms + policy.cooldown.as_millis() as u64);
                    let old = mem.share.unwrap_or(0.0);
                    self.metrics
                        .canary_trips
                        .with_label_values(&[pool.name.as_str()])
                        .inc();
                    let reason = format!(
                        "canary breaker opened: error rate {:.1}% over {} requests > {:.1}%; cool-down {:?}",
                        window.error_rate() * 100.0,
                        window.total,
                        policy.max_error_rate * 100.0,
                        policy.cooldown
                    );
                    tracing::warn!(pool = %pool.name, backend = %backend.id, "{reason}");
                    self.record(
                        pool,
                        &backend.id,
                        DecisionKind::CanaryTripped,
                        old,
                        0.0,
                        now_ms,
                        reason,
                    );
                }
            }
        }
    }

    /// Every pool's named regions: spill fraction, target share (the sum of
    /// its backends' shares), actual share of recent requests and signals.
    pub fn inspect_regions(&self, now_ms: u64) -> Vec<Vec<RegionInspection>> {
        let current = self.state.load_full();
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        current
            .snapshot
            .pools
            .iter()
            .map(|pool| {
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
            })
            .collect()
    }

    /// A reading of every backend of every pool, in snapshot order.
    pub fn inspect(&self, now_ms: u64) -> Vec<Vec<BackendInspection>> {
        let current = self.state.load_full();
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        current
            .snapshot
            .pools
            .iter()
            .map(|pool| {
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
            })
            .collect()
    }

    pub fn decisions(&self) -> &DecisionLog {
        &self.decisions
    }

    /// Stop sending new requests to a backend (`drain = true`) or resume.
    /// Returns false when no such backend is configured.
    pub fn set_drained(&self, id: &BackendId, drain: bool, now_ms: u64) -> bool {
        self.override_backend(id, now_ms, |mem| {
            mem.drained = drain;
            if !drain {
                mem.admitted_at_ms = Some(now_ms);
            }
            if drain {
                "drained by operator".to_string()
            } else {
                "undrained by operator; slow start begins".to_string()
            }
        })
    }

    /// Hold a backend's share at `share` for `duration` (`None` lifts a pin).
    pub fn set_pinned(&self, id: &BackendId, pin: Option<(f64, Duration)>, now_ms: u64) -> bool {
        self.override_backend(id, now_ms, |mem| match pin {
            Some((share, duration)) => {
                mem.pinned = Some((share, now_ms + duration.as_millis() as u64));
                format!("pinned at {share:.3} for {duration:?} by operator")
            }
            None => {
                mem.pinned = None;
                "pin lifted by operator".to_string()
            }
        })
    }

    fn override_backend(
        &self,
        id: &BackendId,
        now_ms: u64,
        change: impl FnOnce(&mut BackendMemory) -> String,
    ) -> bool {
        let current = self.state.load_full();
        let Some(pool) = current
            .snapshot
            .pools
            .iter()
            .find(|p| p.backends.iter().any(|b| &b.id == id))
        else {
            return false;
        };
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let mem = memory_of(&mut memory.backends, id);
        let share = mem.share.unwrap_or(0.0);
        let reason = change(mem);
        self.record(
            pool,
            id,
            DecisionKind::Override,
            share,
            share,
            now_ms,
            reason,
        );
        memory.next_due_ms.remove(&pool.name);
        self.recompute_due(&mut memory, now_ms);
        true
    }

    /// Record health verdict changes; a backend coming back starts slow.
    fn note_health_changes(
        &self,
        pool: &Pool,
        stats: &[Arc<BackendStats>],
        memory: &mut BackendMemories,
        now_ms: u64,
    ) {
        for (backend, stats) in pool.backends.iter().zip(stats) {
            let mem = memory_of(memory, &backend.id);
            let unhealthy = !stats.is_healthy();
            if unhealthy == mem.unhealthy {
                continue;
            }
            mem.unhealthy = unhealthy;
            let old = mem.share.unwrap_or(0.0);
            if unhealthy {
                self.record(
                    pool,
                    &backend.id,
                    DecisionKind::Unhealthy,
                    old,
                    0.0,
                    now_ms,
                    "active health check failing".into(),
                );
            } else {
                mem.admitted_at_ms = Some(now_ms);
                self.record(
                    pool,
                    &backend.id,
                    DecisionKind::Healthy,
                    old,
                    old,
                    now_ms,
                    "active health check passing; slow start begins".into(),
                );
            }
        }
    }

    fn note_share_change(
        &self,
        pool: &Pool,
        id: &BackendId,
        mem: &mut BackendMemory,
        result: &Computed,
        now_ms: u64,
    ) {
        let old = mem.share.unwrap_or(0.0);
        let new = result.share;
        if (new - old).abs() >= DECISION_THRESHOLD {
            let reason = describe_change(mem.factors.as_ref(), &result.factors);
            self.record(pool, id, DecisionKind::Share, old, new, now_ms, reason);
        }
        match mem.swing_reference {
            Some((at, reference)) if now_ms.saturating_sub(at) <= SWING_WINDOW_MS => {
                if (new - reference).abs() > SWING_THRESHOLD {
                    tracing::warn!(pool = %pool.name, backend = %id, "share moved from {reference:.3} to {new:.3} within 5 minutes");
                    self.metrics
                        .share_swings
                        .with_label_values(&[pool.name.as_str()])
                        .inc();
                    mem.swing_reference = Some((now_ms, new));
                }
            }
            _ => mem.swing_reference = Some((now_ms, new)),
        }
        mem.share = Some(new);
        mem.factors = Some(result.factors);
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        pool: &Pool,
        id: &BackendId,
        kind: DecisionKind,
        old: f64,
        new: f64,
        now_ms: u64,
        reason: String,
    ) {
        self.decisions.record(RoutingDecision {
            at: SystemTime::now(),
            at_ms: now_ms,
            pool: pool.name.clone(),
            backend: id.0.clone(),
            kind,
            old_share: old,
            new_share: new,
            reason,
        });
    }
}

/// Where `region`'s clients of `pool` go next: the first later region of
/// their plan with backends in the pool.
fn next_region(geo: &Geo, pool: &Pool, region: &str) -> String {
    geo.plans
        .get(region)
        .and_then(|plan| {
            plan.order
                .iter()
                .skip(1)
                .find(|r| pool.regions.iter().flatten().any(|p| p == *r))
        })
        .cloned()
        .unwrap_or_else(|| "next".to_string())
}

/// Scale regions whose backends' shares sum above `cap` down to it, and the
/// others up into the rest (water-filling); a no-op when `cap` cannot be met
/// (too few regions serving).
/// Every backend's share under `policy` (the pool's, or a shadow
/// candidate's) from `inputs`: the tier split and weight formulas, canary
/// bounds, the region cap without client regions, then operator pins.
fn policy_shares(
    pool: &Pool,
    policy: &PoolPolicy,
    inputs: &[BackendInput],
    with_geo: bool,
    memory: &BackendMemories,
    now_ms: u64,
) -> (Vec<Computed>, Vec<TierLoad>) {
    let (mut computed, tiers) = split_tiers(pool, policy, inputs, now_ms);
    Engine::apply_canary_bounds(pool, &mut computed);
    if !with_geo && policy.mode != BalanceMode::RoundRobin {
        cap_region_shares(pool, &mut computed, policy.region_max_share);
    }
    fix_shares(&mut computed, &pinned_shares(pool, memory));
    (computed, tiers)
}

/// The share each pinned backend holds (`None`: not pinned), as long as the
/// pins fit in the whole; a drained backend's pin does not apply.
fn pinned_shares(pool: &Pool, memory: &BackendMemories) -> Vec<Option<f64>> {
    let mut pinned_total = 0.0;
    pool.backends
        .iter()
        .map(|backend| {
            let mem = memory.get(&backend.id).filter(|m| !m.drained)?;
            let (share, _) = mem.pinned?;
            (pinned_total + share <= 1.0).then(|| {
                pinned_total += share;
                share
            })
        })
        .collect()
}

/// In-flight requests each backend is expected to carry at its share: pool
/// rate × share × latency.
fn expected_in_flight(computed: &[Computed], observations: &[Observation]) -> Vec<f64> {
    let pool_rps: f64 = observations.iter().map(|o| o.outcomes.per_second()).sum();
    computed
        .iter()
        .zip(observations)
        .map(|(result, observation)| {
            let latency_s = result
                .factors
                .latency_ms
                .or(observation.ewma_us.map(|us| us / 1000.0))
                .unwrap_or(0.0)
                / 1000.0;
            pool_rps * result.share * latency_s
        })
        .collect()
}

fn cap_region_shares(pool: &Pool, computed: &mut [Computed], cap: f64) {
    if cap >= 1.0 {
        return;
    }
    let mut capped: Vec<&str> = Vec::new();
    for _ in 0..pool.regions.len() {
        let total = |region: &str, computed: &[Computed]| -> f64 {
            pool.backends
                .iter()
                .zip(computed)
                .filter(|(b, _)| b.region.as_deref() == Some(region))
                .map(|(_, c)| c.share)
                .sum()
        };
        let over: Vec<&str> = pool
            .regions
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|r| !capped.contains(r) && total(r, computed) > cap + 1e-9)
            .collect();
        if over.is_empty() {
            return;
        }
        capped.extend(over);
        let free = pool.backends.iter().zip(computed.iter()).any(|(b, c)| {
            c.share > 0.0 && b.region.as_deref().is_none_or(|r| !capped.contains(&r))
        });
        if !free {
            return;
        }
        let fixed: Vec<Option<f64>> = pool
            .backends
            .iter()
            .zip(computed.iter())
            .map(|(b, c)| {
                let region = b.region.as_deref().filter(|r| capped.contains(r))?;
                let region_total = total(region, computed);
                Some(if region_total > 0.0 {
                    c.share * cap.min(region_total) / region_total
                } else {
                    0.0
                })
            })
            .collect();
        fix_shares(computed, &fixed);
    }
}

/// Set the `fixed` shares and scale every other eligible (non-zero) share so
/// that all sum to 1.
fn fix_shares(computed: &mut [Computed], fixed: &[Option<f64>]) {
    let fixed_total: f64 = fixed.iter().flatten().sum();
    if fixed_total == 0.0 && fixed.iter().all(Option::is_none) {
        return;
    }
    let remaining = (1.0 - fixed_total).max(0.0);
    let free_total: f64 = computed
        .iter()
        .zip(fixed)
        .filter(|(_, f)| f.is_none())
        .map(|(c, _)| c.share)
        .sum();
    for (c, f) in computed.iter_mut().zip(fixed) {
        c.share = match f {
            Some(share) => *share,
            None if free_total > 0.0 => c.share * remaining / free_total,
            None => 0.0,
        };
    }
}

/// Name the input that moved most between two computations.
fn describe_change(before: Option<&Factors>, after: &Factors) -> String {
    let Some(before) = before else {
        return "first computation".to_string();
    };
    let ratio = |a: f64, b: f64| {
        if a > 0.0 && b > 0.0 {
            (a / b).max(b / a)
        } else {
            1.0
        }
    };
    // A quiet backend's latency or errors came from its load endpoint.
    let source = if after.polled { "polled " } else { "" };
    if let (None, Some(ms)) = (before.latency_ms, after.latency_ms) {
        return format!("first {source}latency measurement {ms:.1}ms");
    }
    let mut candidates: Vec<(f64, String)> = Vec::new();
    if let (Some(a), Some(b)) = (before.latency_ms, after.latency_ms) {
        candidates.push((ratio(a, b), format!("{source}latency {a:.1}ms -> {b:.1}ms")));
    }
    candidates.push((
        ratio(before.error, after.error),
        format!(
            "{source}error factor {:.2} -> {:.2}",
            before.error, after.error
        ),
    ));
    candidates.push((
        ratio(before.utilization, after.utilization),
        format!(
            "utilization factor {:.2} -> {:.2}",
            before.utilization, after.utilization
        ),
    ));
    candidates.push((
        ratio(before.ramp, after.ramp),
        format!(
            "slow start {:.0}% -> {:.0}%",
            before.ramp * 100.0,
            after.ramp * 100.0
        ),
    ));

    candidates.push((
        ratio(before.schedule, after.schedule),
        format!("schedule x{:.2} -> x{:.2}", before.schedule, after.schedule),
    ));

    if before.stale != after.stale {
        candidates.push((
            f64::INFINITY,
            if after.stale {
                "load reports went stale".into()
            } else {
                "load reports resumed".into()
            },
        ));
    }
    match candidates.into_iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
        Some((r, text)) if r > 1.01 => text,
        // In capacity mode the base also moves with throughput.
        _ if ratio(before.base, after.base) > 1.01 => {
            format!("base weight {:.3} -> {:.3}", before.base, after.base)
        }
        _ => "other backends changed (smoothing toward target)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn engine(pool_extra: &str, backends: usize) -> Engine {
        let list: Vec<String> = (0..backends)
            .map(|i| format!("{{addr: \"127.0.0.1:{}\"}}", 9000 + i))
            .collect();
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n{pool_extra}    backends: [{}]\nroutes: [{{pool: p}}]\n",
            list.join(", ")
        );
        engine_from(&yaml)
    }

    fn engine_from(yaml: &str) -> Engine {
        let snapshot = Arc::new(crate::config::load_str(yaml, Path::new(".")).unwrap());
        Engine::new(
            snapshot,
            Arc::new(LiveState::new()),
            Arc::new(DecisionLog::default()),
            Arc::new(Metrics::new()),
        )
    }

    /// us-east: backends 0 and 1; us-west: backend 2. Clients default to us-east.
    fn regional(pool_extra: &str, with_geo: bool) -> Engine {
        let geo = if with_geo {
            "geo: {client_region: [{default: us-east}]}\n"
        } else {
            ""
        };
        engine_from(&format!(
            r#"
listeners: [{{address: "127.0.0.1:1"}}]
regions:
  us-east: {{fallback: [us-west]}}
  us-west: {{fallback: [us-east]}}
{geo}pools:
  p:
    recompute_interval: 100ms
    max_share: 1.0
{pool_extra}    backends:
      - {{addr: "127.0.0.1:9000", region: us-east}}
      - {{addr: "127.0.0.1:9001", region: us-east}}
      - {{addr: "127.0.0.1:9002", region: us-west}}
routes: [{{pool: p}}]
"#
        ))
    }

    /// Two primaries (tier 0) and a standby (tier 1) pre-warmed at 2%.
    fn tiered() -> Engine {
        engine_from(
            r#"
listeners: [{address: "127.0.0.1:1"}]
pools:
  p:
    recompute_interval: 100ms
    max_share: 1.0
    slow_start: 0s
    prewarm_share: 0.02
    backends:
      - {addr: "127.0.0.1:9000"}
      - {addr: "127.0.0.1:9001"}
      - {addr: "127.0.0.1:9002", priority: 1}
routes: [{pool: p}]
"#,
        )
    }

    #[test]
    fn a_standby_tier_gets_its_trickle_then_fails_over_and_back() {
        let e = tiered();
        traffic(&e, 3, 1_000, 10_000);
        e.tick(1_000);
        let s = shares(&e);
        assert!(
            (s[0] - 0.49).abs() < 1e-9 && (s[1] - 0.49).abs() < 1e-9,
            "{s:?}"
        );
        assert!((s[2] - 0.02).abs() < 1e-9, "pre-warm trickle: {s:?}");
        assert!(e
            .decisions
            .recent(10, |d| d.kind == DecisionKind::Failover)
            .is_empty());

        // Half of tier 0 fails: it keeps 0.5 × 1.4 = 70%.
        stats(&e, 1).record_health_check(false, 1, 1);
        e.tick(1_100);
        let s = shares(&e);
        assert!((s[0] - 0.7).abs() < 1e-9 && s[1] == 0.0, "{s:?}");
        assert!((s[2] - 0.3).abs() < 1e-9, "{s:?}");
        let failover = e.decisions.recent(10, |d| d.kind == DecisionKind::Failover);
        assert_eq!(failover.len(), 1);
        assert_eq!(failover[0].backend, "tier 1");
        assert!(
            failover[0]
                .reason
                .starts_with("failover: tier 1 load 0.020 -> 0.300"),
            "{}",
            failover[0].reason
        );
        let gauge = e.metrics.tier_load.with_label_values(&["p", "1"]).get();
        assert!((gauge - 0.3).abs() < 1e-9, "{gauge}");

        // All of tier 0 fails: the standby takes everything.
        stats(&e, 0).record_health_check(false, 1, 1);
        e.tick(1_200);
        assert_eq!(shares(&e), vec![0.0, 0.0, 1.0]);

        // Tier 0 recovers: back to the trickle, one failback.
        stats(&e, 0).record_health_check(true, 1, 1);
        stats(&e, 1).record_health_check(true, 1, 1);
        e.tick(1_300);
        let s = shares(&e);
        assert!((s[2] - 0.02).abs() < 1e-9, "{s:?}");
        let failback = e.decisions.recent(10, |d| d.kind == DecisionKind::Failback);
        assert_eq!(failback.len(), 1, "{failback:?}");
        let tiers = &e.inspect_tiers()[0];
        assert_eq!(tiers.len(), 2);
        assert!((tiers[1].load - 0.02).abs() < 1e-9 && tiers[0].health == 1.0);
    }

    /// Unix seconds of 2026-11-30 (a Monday) at `hour`:00 UTC.
    fn monday_at(hour: i64) -> i64 {
        schedule::days_from_civil(2026, 11, 30).unwrap() * 86_400 + hour * 3600
    }

    #[test]
    fn schedules_scale_regions_switch_as_decisions_and_compose_with_the_cap() {
        let schedules = "    smoothing: 1.0\n    schedules:\n      - {name: business-hours, regions: {us-west: 4.0}, days: [mon-fri], from: \"08:00\", to: \"18:00\", utc_offset: \"+01:00\"}\n      - {name: nights, regions: {us-east: 0.5}, from: \"22:00\", to: \"06:00\"}\n";
        let clock = WallClock::fixed(monday_at(3));
        let e = regional(schedules, false).with_wall_clock(clock.clone());
        traffic(&e, 3, 1_000, 10_000);
        // 03:00 UTC: "nights" (business hours are 07:00-17:00 UTC).
        e.tick(1_000);
        let s = shares(&e);
        // Raw weights 0.5, 0.5, 1: us-west gets half.
        assert!((s[2] - 0.5).abs() < 1e-9, "{s:?}");
        // 10:00 UTC: business hours, us-west x4: 4 / (1 + 1 + 4).
        clock.set(monday_at(10));
        e.tick(1_200);
        let s = shares(&e);
        assert!((s[2] - 4.0 / 6.0).abs() < 1e-9, "{s:?}");
        assert!((s[0] - 1.0 / 6.0).abs() < 1e-9, "{s:?}");
        // Still business hours: no new switch.
        e.tick(1_400);
        // 19:00 UTC: none applies, an even split.
        clock.set(monday_at(19));
        e.tick(1_600);
        let s = shares(&e);
        assert!(s.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-9), "{s:?}");
        let switches: Vec<String> = e
            .decisions
            .recent(100, |d| d.kind == DecisionKind::Schedule)
            .iter()
            .map(|d| d.reason.clone())
            .collect();
        assert_eq!(
            switches,
            vec![
                "schedule none -> nights (us-east x0.50)",
                "schedule nights -> business-hours (us-west x4.00)",
                "schedule business-hours -> none (no multipliers)",
            ]
        );
        let share_reasons: Vec<String> = e
            .decisions
            .recent(100, |d| {
                d.kind == DecisionKind::Share && d.backend.ends_with(":9002")
            })
            .iter()
            .map(|d| d.reason.clone())
            .collect();
        assert!(
            share_reasons.iter().any(|r| r == "schedule x1.00 -> x4.00"),
            "{share_reasons:?}"
        );
        let metrics = e.metrics.render();
        assert!(
            metrics.contains("ballast_schedule_active{pool=\"p\",template=\"business-hours\"} 0"),
            "{metrics}"
        );
        assert!(
            metrics.contains("ballast_schedule_active{pool=\"p\",template=\"nights\"} 0"),
            "{metrics}"
        );

        // The region cap still holds over a schedule.
        let capped = regional(&format!("    region_max_share: 0.5\n{schedules}"), false)
            .with_wall_clock(WallClock::fixed(monday_at(10)));
        traffic(&capped, 3, 1_000, 10_000);
        capped.tick(1_000);
        let s = shares(&capped);
        assert!((s[2] - 0.5).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_schedule_respects_max_share_and_canary_bounds() {
        let pool = |canary: &str| {
            format!(
                r#"
listeners: [{{address: "127.0.0.1:1"}}]
pools:
  p:
    recompute_interval: 100ms
    smoothing: 1.0
    max_share: 0.6
    schedules: [{{name: west-peak, regions: {{us-west: 10.0}}, days: [mon]}}]
    backends:
      - {{addr: "127.0.0.1:9000", region: us-east}}
      - {{addr: "127.0.0.1:9001", region: us-east}}
      - {{addr: "127.0.0.1:9002", region: us-west{canary}}}
routes: [{{pool: p}}]
"#
            )
        };
        // Raw weights 1, 1, 10: us-west would take 10/12, max_share caps it.
        let e = engine_from(&pool("")).with_wall_clock(WallClock::fixed(monday_at(10)));
        traffic(&e, 3, 1_000, 10_000);
        e.tick(1_000);
        let s = shares(&e);
        assert!((s[2] - 0.6).abs() < 1e-9, "{s:?}");
        assert!((s[0] - 0.2).abs() < 1e-9, "{s:?}");
        // A canary in the scheduled region stays within its bounds.
        let e = engine_from(&pool(", canary: {floor: 0.01, max: 0.1}"))
            .with_wall_clock(WallClock::fixed(monday_at(10)));
        traffic(&e, 3, 1_000, 10_000);
        e.tick(1_000);
        let s = shares(&e);
        assert!((s[2] - 0.1).abs() < 1e-9, "canary held at its max: {s:?}");
        assert!((s[0] - 0.45).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn with_client_regions_a_schedule_sends_clients_on_to_the_next_region() {
        let clock = WallClock::fixed(monday_at(10));
        let e = regional(
            "    schedules: [{name: west-peak, regions: {us-west: 4.0}, days: [mon]}]\n",
            true,
        )
        .with_wall_clock(clock.clone());
        traffic(&e, 3, 1_000, 10_000);
        e.tick(1_000);
        let spill = |e: &Engine, region: &str| {
            e.state().load().weights[0]
                .as_ref()
                .expect("computed")
                .spill(region)
        };
        // us-east (x1) keeps 1/4 of its clients, us-west (x4) all of its own.
        assert!((spill(&e, "us-east") - 0.75).abs() < 1e-9);
        assert_eq!(spill(&e, "us-west"), 0.0);
        let regions = e.inspect_regions(1_000);
        assert!(
            (regions[0][0].spill - 0.75).abs() < 1e-9,
            "{:?}",
            regions[0][0]
        );
        // Sunday: no template, no scheduled spill (and no pressure: none).
        clock.set(monday_at(-10));
        e.tick(1_200);
        assert_eq!(spill(&e, "us-east"), 0.0);
        assert_eq!(e.inspect_regions(1_200)[0][0].spill, 0.0);
    }

    #[test]
    fn a_reload_that_removes_the_active_schedule_restores_the_split() {
        let clock = WallClock::fixed(monday_at(10));
        let e = regional(
            "    smoothing: 1.0\n    schedules: [{name: peak, regions: {us-east: 3.0}, days: [mon]}]\n",
            false,
        )
        .with_wall_clock(clock);
        traffic(&e, 3, 1_000, 10_000);
        e.tick(1_000);
        let s = shares(&e);
        assert!((s[0] - 3.0 / 7.0).abs() < 1e-9, "{s:?}");
        let plain = regional("    smoothing: 1.0\n", false);
        let snapshot = plain.state().load().snapshot.clone();
        e.install(snapshot, 1_100);
        let s = shares(&e);
        assert!(s.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-9), "{s:?}");
        let last = e.decisions.recent(1, |d| d.kind == DecisionKind::Schedule);
        assert_eq!(last[0].reason, "schedule peak -> none (no multipliers)");
    }

    #[test]
    fn without_client_regions_region_max_share_caps_shares() {
        let e = regional("    region_max_share: 0.5\n", false);
        traffic(&e, 3, 1_000, 10_000);
        e.tick(1_000);
        let s = shares(&e);
        assert!((s[0] + s[1] - 0.5).abs() < 1e-9, "{s:?}");
        assert!((s[2] - 0.5).abs() < 1e-9, "{s:?}");
        let regions = e.inspect_regions(1_000);
        assert_eq!(regions[0][0].region, "us-east");
        assert!((regions[0][0].share - 0.5).abs() < 1e-9);
        assert_eq!(regions[0][0].spill, 0.0, "no spill without client regions");
    }

    #[test]
    fn a_slow_region_spills_step_by_step_and_comes_back_after_the_hold() {
        let e = regional(
            "    spillover: {latency_above: 200ms, step: 0.1, max: 0.5, hold: 1s}\n",
            true,
        );
        let spill = |e: &Engine| {
            e.state().load().weights[0]
                .as_ref()
                .unwrap()
                .spill("us-east")
        };
        // us-east answers in 300 ms, us-west in 20 ms.
        let mut now = 1_000;
        for tick in 0..8 {
            for b in 0..3 {
                let latency_us = if b < 2 { 300_000 } else { 20_000 };
                stats(&e, b).record_success(now, latency_us);
            }
            e.tick(now);
            let expected = (0.1 * (tick + 1) as f64).min(0.5);
            assert!(
                (spill(&e) - expected).abs() < 1e-9,
                "tick {tick}: {}",
                spill(&e)
            );
            now += 100;
        }
        let decisions = e.decisions.recent(100, |d| d.kind == DecisionKind::Spill);
        assert_eq!(decisions.len(), 5, "0.1 .. 0.5, then capped");
        assert_eq!(decisions[0].backend, "us-east");
        assert!(
            decisions[0]
                .reason
                .starts_with("spill:us-east->us-west ewma latency"),
            "{}",
            decisions[0].reason
        );
        let inspected = &e.inspect_regions(1_000)[0][0];
        assert!(
            inspected.pressure.starts_with("high: ewma latency"),
            "{}",
            inspected.pressure
        );
        // us-east recovers: after the hold, the spill steps back to 0.
        let last_out = now - 100;
        let mut back_at = Vec::new();
        for _ in 0..40 {
            for _ in 0..50 {
                stats(&e, 0).record_success(now, 10_000);
                stats(&e, 1).record_success(now, 10_000);
            }
            let before = spill(&e);
            e.tick(now);
            if spill(&e) < before {
                back_at.push(now);
            }
            now += 100;
        }
        assert_eq!(spill(&e), 0.0);
        assert_eq!(back_at.len(), 5, "{back_at:?}");
        assert!(
            back_at[0] >= last_out + 1_000,
            "held: {back_at:?} after {last_out}"
        );
    }

    fn stats(engine: &Engine, backend: usize) -> Arc<BackendStats> {
        engine.state().load().stats.pools[0][backend].clone()
    }

    fn shares(engine: &Engine) -> Vec<f64> {
        engine.state().load().weights[0]
            .as_ref()
            .expect("computed")
            .shares
            .clone()
    }

    fn kinds(engine: &Engine) -> Vec<DecisionKind> {
        engine
            .decisions
            .recent(100, |d| d.kind != DecisionKind::Share)
            .iter()
            .map(|d| d.kind)
            .collect()
    }

    /// Every backend answers `n` requests in `latency_us` at `now_ms`.
    fn traffic(engine: &Engine, backends: usize, now_ms: u64, latency_us: u64) {
        for b in 0..backends {
            for _ in 0..20 {
                stats(engine, b).record_success(now_ms, latency_us);
            }
        }
    }

    fn ring(engine: &Engine) -> Vec<u32> {
        engine.inspect(0)[0]
            .iter()
            .map(|b| b.ring.expect("a ring").0)
            .collect()
    }

    #[test]
    fn the_ring_follows_shares_within_the_move_budget_and_survives_a_reload() {
        let hashed = "    mode: round_robin\n    consistent_hash: {key: {header: x-session}, vnodes: 100, max_key_moves: 0.05}\n";
        let e = engine(hashed, 3);
        e.tick(0);
        assert_eq!(ring(&e), vec![100, 100, 100], "built at its target at once");
        let id = BackendId("p/127.0.0.1:9000".into());
        assert!(e.set_pinned(&id, Some((0.1, Duration::from_secs(600))), 0));
        let mut counts = vec![ring(&e)[0]];
        for tick in 1..=30 {
            e.tick(tick * 100);
            counts.push(ring(&e)[0]);
        }
        let moves = e.decisions.recent(100, |d| d.kind == DecisionKind::KeyMove);
        assert!(moves.len() >= 4, "{counts:?}");
        assert!(moves.iter().all(|d| d.new_share <= 0.05 + 1e-12));
        assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{counts:?}");
        assert!(counts[1] > 30, "gradual: {counts:?}");
        assert!(
            // 0.1 : 0.45 : 0.45 at the others' scale (100 vnodes for 0.45).
            counts.last().unwrap().abs_diff(22) <= ring::dead_band(100),
            "{counts:?}"
        );

        // A reload that adds a backend keeps the others' vnodes; the new one
        // starts empty and grows within the budget.
        let before = ring(&e);
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n{hashed}    backends: [{}]\nroutes: [{{pool: p}}]\n",
            (0..4)
                .map(|i| format!("{{addr: \"127.0.0.1:{}\"}}", 9000 + i))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let snapshot = Arc::new(crate::config::load_str(&yaml, Path::new(".")).unwrap());
        let moves_before = e
            .decisions
            .recent(1000, |d| d.kind == DecisionKind::KeyMove)
            .len();
        e.install(snapshot, 3_100);
        let after = ring(&e);
        let moved = e
            .decisions
            .recent(1000, |d| d.kind == DecisionKind::KeyMove);
        assert!(moved[moves_before..]
            .iter()
            .all(|d| d.new_share <= 0.05 + 1e-12));
        assert!(after[3] > 0 && after[3] < 100, "{before:?} -> {after:?}");
    }

    #[test]
    fn consecutive_failures_eject_and_ejection_ends_in_slow_start() {
        let e = engine("    slow_start: 10s\n    outlier: {consecutive_failures: 3, base_ejection: 1s, max_ejection: 10s}\n", 3);
        traffic(&e, 3, 1_000, 1_000);
        e.tick(1_000);
        for _ in 0..3 {
            stats(&e, 2).record_failure(1_050, None);
        }
        e.tick(1_100);
        assert_eq!(shares(&e)[2], 0.0, "ejected at once");
        assert_eq!(kinds(&e), vec![DecisionKind::Ejected]);
        e.tick(2_000);
        assert_eq!(
            shares(&e)[2],
            0.0,
            "still ejected before base_ejection passes"
        );
        e.tick(2_100);
        let back = shares(&e)[2];
        assert!(
            back > 0.0 && back < 0.1,
            "re-admitted through slow start: {back}"
        );
        assert_eq!(
            kinds(&e),
            vec![DecisionKind::Ejected, DecisionKind::Readmitted]
        );

        // A second ejection lasts twice as long.
        for _ in 0..3 {
            stats(&e, 2).record_failure(2_200, None);
        }
        e.tick(2_200);
        e.tick(4_100);
        assert_eq!(shares(&e)[2], 0.0, "ejection #2 lasts 2 s");
        e.tick(4_300);
        assert!(shares(&e)[2] > 0.0);
    }

    #[test]
    fn at_most_max_ejected_and_panic_when_nothing_is_eligible() {
        let e = engine(
            "    outlier: {consecutive_failures: 1, max_ejected: 0.5}\n",
            4,
        );
        for b in 0..4 {
            stats(&e, b).record_failure(1_000, None);
        }
        e.tick(1_000);
        let out = shares(&e);
        assert_eq!(
            out.iter().filter(|s| **s == 0.0).count(),
            2,
            "only half may be ejected: {out:?}"
        );

        let all = engine(
            "    outlier: {consecutive_failures: 1, max_ejected: 1.0}\n",
            2,
        );
        for b in 0..2 {
            stats(&all, b).record_failure(1_000, None);
        }
        all.tick(1_000);
        let out = shares(&all);
        assert!(
            out.iter().all(|s| (s - 0.5).abs() < 1e-9),
            "panic mode routes to everyone: {out:?}"
        );
    }

    #[test]
    fn unhealthy_backends_leave_and_return_through_slow_start() {
        let e = engine("    slow_start: 10s\n    max_share: 1.0\n", 2);
        traffic(&e, 2, 1_000, 1_000);
        e.tick(1_000);
        stats(&e, 1).record_health_check(false, 1, 1);
        e.tick(1_100);
        assert_eq!(shares(&e), vec![1.0, 0.0]);
        stats(&e, 1).record_health_check(true, 1, 1);
        e.tick(1_200);
        let back = shares(&e)[1];
        assert!(back > 0.0 && back < 0.1, "{back}");
        assert_eq!(
            kinds(&e),
            vec![DecisionKind::Unhealthy, DecisionKind::Healthy]
        );
    }

    #[test]
    fn share_changes_are_decisions_with_reasons_and_big_swings_are_counted() {
        let e = engine(
            "    smoothing: 1.0\n    max_share: 1.0\n    min_share: 0.0\n",
            2,
        );
        traffic(&e, 2, 1_000, 10_000);
        e.tick(1_000);
        for _ in 0..50 {
            stats(&e, 1).record_success(1_050, 100_000);
        }
        e.tick(1_100);
        let decisions = e
            .decisions
            .recent(10, |d| d.kind == DecisionKind::Share && d.at_ms == 1_100);
        let slow = decisions
            .iter()
            .find(|d| d.backend.ends_with(":9001"))
            .expect("a decision for the slowed backend");
        assert!(slow.new_share < slow.old_share);
        assert!(slow.reason.starts_with("latency "), "{}", slow.reason);
        let swings = e.metrics.share_swings.with_label_values(&["p"]).get();
        assert_eq!(swings, 2, "both shares moved more than 20 points");
    }

    #[test]
    fn pools_recompute_on_their_own_interval() {
        let e = engine("", 2);
        e.tick(1_000);
        let first = e.state().load_full();
        e.tick(1_050);
        assert!(
            Arc::ptr_eq(&first, &e.state().load_full()),
            "not due yet: nothing published"
        );
        e.tick(1_100);
        assert!(!Arc::ptr_eq(&first, &e.state().load_full()));
    }

    /// A pool of two stable backends and a canary (index 2) with `policy`.
    fn canary_engine(policy: &str) -> Engine {
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n    max_share: 1.0\n    slow_start: 10s\n    backends: [{{addr: \"127.0.0.1:9000\"}}, {{addr: \"127.0.0.1:9001\"}}, {{addr: \"127.0.0.1:9002\", canary: {policy}}}]\nroutes: [{{pool: p}}]\n"
        );
        engine_from(&yaml)
    }

    /// `n` answers from `backend` at `now_ms` taking `latency_us`, `errors` of them failures.
    fn answers(e: &Engine, backend: usize, now_ms: u64, n: u64, latency_us: u64, errors: u64) {
        for k in 0..n {
            if k < errors {
                stats(e, backend).record_failure(now_ms, Some(latency_us));
            } else {
                stats(e, backend).record_success(now_ms, latency_us);
            }
        }
    }

    #[test]
    fn a_healthy_canary_keeps_its_floor_even_when_slower() {
        let e = canary_engine("{floor: 0.05, max: 0.25}");
        let mut now = 1_000;
        for _ in 0..30 {
            answers(&e, 0, now, 20, 5_000, 0);
            answers(&e, 1, now, 20, 5_000, 0);
            answers(&e, 2, now, 20, 200_000, 0);
            e.tick(now);
            now += 100;
        }
        let out = shares(&e);
        assert!(
            (out[2] - 0.05).abs() < 1e-9,
            "floor holds for a 40x slower canary: {out:?}"
        );
        assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_faster_canary_grows_only_to_its_max() {
        let e = canary_engine("{floor: 0.01, max: 0.25}");
        let mut now = 1_000;
        for _ in 0..30 {
            answers(&e, 0, now, 20, 50_000, 0);
            answers(&e, 1, now, 20, 50_000, 0);
            answers(&e, 2, now, 20, 1_000, 0);
            e.tick(now);
            now += 100;
        }
        let out = shares(&e);
        assert!((out[2] - 0.25).abs() < 1e-9, "capped at max: {out:?}");
    }

    #[test]
    fn the_breaker_trips_on_an_error_burst_and_readmits_after_cool_down() {
        let e = canary_engine(
            "{floor: 0.05, max: 0.25, max_error_rate: 0.05, min_requests: 20, cooldown: 3s}",
        );
        let mut now = 1_000;
        for _ in 0..20 {
            answers(&e, 0, now, 20, 5_000, 0);
            answers(&e, 1, now, 20, 5_000, 0);
            answers(&e, 2, now, 10, 5_000, 0);
            e.tick(now);
            now += 100;
        }
        assert!(shares(&e)[2] >= 0.05);
        // From now on, 10% of the canary's answers fail.
        let burst_start = now;
        let mut tripped_at = None;
        while tripped_at.is_none() && now < burst_start + 5_000 {
            answers(&e, 0, now, 20, 5_000, 0);
            answers(&e, 1, now, 20, 5_000, 0);
            answers(&e, 2, now, 10, 5_000, 1);
            e.tick(now);
            if shares(&e)[2] == 0.0 {
                tripped_at = Some(now);
            }
            now += 100;
        }
        let tripped_at = tripped_at.expect("the breaker opened");
        assert!(
            tripped_at - burst_start <= 2_000,
            "within 2 seconds: {} ms",
            tripped_at - burst_start
        );
        assert_eq!(kinds(&e), vec![DecisionKind::CanaryTripped]);
        assert_eq!(e.metrics.canary_trips.with_label_values(&["p"]).get(), 1);

        e.tick(tripped_at + 2_900);
        assert_eq!(shares(&e)[2], 0.0, "still cooling down");
        e.tick(tripped_at + 3_000);
        let back = shares(&e)[2];
        assert!(
            (0.05 - 1e-9..0.1).contains(&back),
            "back at its floor, ramping: {back}"
        );
        assert_eq!(
            kinds(&e),
            vec![DecisionKind::CanaryTripped, DecisionKind::CanaryReadmitted]
        );
        // The errors of the burst are still in the 10 s window: they do not re-trip it.
        e.tick(tripped_at + 3_100);
        assert!(shares(&e)[2] > 0.0);
    }
}

#[cfg(test)]
mod shadow_tests {
    use super::*;
    use crate::config::PoolId;
    use crate::routing::picker::{pick, RequestFacts};
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::path::Path;

    /// A latency pool of a fast backend (10 ms) and one 4× slower (40 ms),
    /// with `shadow` (a YAML flow mapping, or empty for none).
    fn config(shadow: &str) -> Arc<Snapshot> {
        let shadow = if shadow.is_empty() {
            String::new()
        } else {
            format!("    shadow: {shadow}\n")
        };
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n    max_share: 1.0\n    min_share: 0.0\n    slow_start: 0s\n{shadow}    backends: [{{addr: \"127.0.0.1:9000\"}}, {{addr: \"127.0.0.1:9001\"}}]\nroutes: [{{pool: p}}]\n"
        );
        Arc::new(crate::config::load_str(&yaml, Path::new(".")).unwrap())
    }

    fn engine(shadow: &str) -> Engine {
        Engine::new(
            config(shadow),
            Arc::new(LiveState::new()),
            Arc::new(DecisionLog::default()),
            Arc::new(Metrics::new()),
        )
    }

    /// One recompute interval of traffic: backend 0 answers in 10 ms, backend 1 in 40 ms.
    fn step(e: &Engine, now_ms: u64) {
        let state = e.state().load_full();
        for _ in 0..20 {
            state.stats.pools[0][0].record_success(now_ms, 10_000);
            state.stats.pools[0][1].record_success(now_ms, 40_000);
        }
        e.tick(now_ms);
    }

    fn run(e: &Engine, from_ms: u64, steps: u64) -> u64 {
        for k in 0..steps {
            step(e, from_ms + k * 100);
        }
        from_ms + steps * 100
    }

    fn live_shares(e: &Engine) -> Vec<f64> {
        e.state().load().weights[0].as_ref().unwrap().shares.clone()
    }

    fn candidate_shares(e: &Engine) -> Vec<f64> {
        e.state().load().shadows[0]
            .as_ref()
            .expect("a candidate is published")
            .candidate
            .shares
            .clone()
    }

    /// `n` requests picked by the live policy with a seeded draw, each
    /// compared with the candidate if there is one (with draws of its own):
    /// (same, different, live picks per backend).
    fn compare(e: &Engine, n: u64, seed: u64) -> (u64, u64, Vec<u64>) {
        let state = e.state().load_full();
        let live = state.weights[0].as_ref().unwrap();
        let shadow = state.shadows[0].as_ref();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut shadow_rng = StdRng::seed_from_u64(seed + 1);
        let (mut same, mut different, mut picks) = (0, 0, vec![0; 2]);
        for ticket in 0..n {
            let facts = RequestFacts {
                pool: PoolId(0),
                ticket,
                tried: &[],
                weights: Some(live),
                stats: &state.stats.pools[0],
                plan: None,
                sticky: None,
                hash_key: None,
            };
            let chosen = pick(&state.snapshot, &facts, 0, &mut rng)
                .backend()
                .unwrap();
            picks[chosen] += 1;
            match shadow.and_then(|s| s.compare(live, chosen, false, &mut shadow_rng)) {
                Some(true) => same += 1,
                Some(false) => different += 1,
                None => {}
            }
        }
        (same, different, picks)
    }

    #[test]
    fn live_shares_are_identical_with_and_without_a_shadow() {
        let plain = engine("");
        let shadowed = engine("{mode: round_robin, smoothing: 1.0, max_share: 0.6}");
        for k in 0..30 {
            let now = 1_000 + k * 100;
            step(&plain, now);
            step(&shadowed, now);
            assert_eq!(live_shares(&plain), live_shares(&shadowed), "tick {k}");
        }
        assert!(live_shares(&plain)[0] > 0.7, "{:?}", live_shares(&plain));
        assert_eq!(candidate_shares(&shadowed), vec![0.5, 0.5]);
        let (_, _, plain_picks) = compare(&plain, 2_000, 7);
        let (_, _, shadowed_picks) = compare(&shadowed, 2_000, 7);
        assert_eq!(plain_picks, shadowed_picks, "same seed, same live picks");
    }

    #[test]
    fn a_candidate_with_the_live_parameters_agrees() {
        let e = engine("{sample: 1.0}");
        run(&e, 1_000, 20);
        assert_eq!(candidate_shares(&e), live_shares(&e));
        let (same, different, _) = compare(&e, 5_000, 1);
        assert_eq!(same + different, 5_000);
        assert!(
            (different as f64) < 0.01 * 5_000.0,
            "{different} of 5000 differ"
        );
        let shadow = &e.inspect_shadows()[0].clone().unwrap();
        assert_eq!(shadow.prediction.moved_fraction, 0.0);
        assert_eq!(shadow.same, same);
    }

    #[test]
    fn round_robin_against_latency_disagrees_by_the_share_difference() {
        let e = engine("{mode: round_robin}");
        run(&e, 1_000, 30);
        let live = live_shares(&e);
        // 1/10 : 1/40 → 0.8 / 0.2 once smoothed in; round robin: 0.5 / 0.5.
        assert!((live[0] - 0.8).abs() < 0.01, "{live:?}");
        let expected = (live[0] - 0.5).abs(); // ½ Σ |live − candidate|
        let (same, different, picks) = compare(&e, 4_000, 3);
        let rate = different as f64 / (same + different) as f64;
        assert!(
            (rate - expected).abs() < 0.04,
            "disagreement {rate:.3}, expected {expected:.3}"
        );
        assert!(
            picks[0] as f64 / 4_000.0 > 0.75,
            "requests follow the live policy: {picks:?}"
        );
        let shadow = e.inspect_shadows()[0].clone().unwrap();
        let p = shadow.prediction;
        let (live_s, candidate_s) = (p.live.latency_s.unwrap(), p.candidate.latency_s.unwrap());
        assert!(
            (live_s - (live[0] * 0.010 + live[1] * 0.040)).abs() < 1e-6,
            "{live_s}"
        );
        assert!((candidate_s - 0.025).abs() < 1e-6, "{candidate_s}");
        assert!((p.moved_fraction - expected).abs() < 1e-9);
        let metric = |policy: &str| {
            e.metrics
                .shadow_predicted_latency
                .with_label_values(&["p", policy])
                .get()
        };
        assert_eq!(metric("live"), live_s);
        assert_eq!(metric("candidate"), candidate_s);
        let counted = e
            .metrics
            .shadow_decisions
            .with_label_values(&["p", "different"])
            .get();
        assert_eq!(counted, different);
    }

    #[test]
    fn sampling_compares_only_a_fraction() {
        let e = engine("{mode: round_robin, sample: 0.1}");
        run(&e, 1_000, 10);
        let (same, different, _) = compare(&e, 5_000, 5);
        let compared = same + different;
        assert!((350..=650).contains(&compared), "{compared} of 5000");
    }

    #[test]
    fn reloads_keep_live_state_and_reset_the_candidate_when_its_parameters_change() {
        // A twin without a shadow goes through the same reloads: the live
        // shares must match it throughout.
        let e = engine("{mode: latency, smoothing: 0.1}");
        let twin = engine("");
        for engine in [&e, &twin] {
            engine.tick(900); // no measurements yet: even shares to smooth from
            run(engine, 1_000, 3);
        }
        let now = 1_300;
        // Smoothed from an even start: still well below the unsmoothed 0.8.
        assert!(candidate_shares(&e)[0] < 0.7, "{:?}", candidate_shares(&e));
        compare(&e, 100, 1);
        assert_eq!(live_shares(&e), live_shares(&twin));

        // Only the sample changes: the candidate keeps its memory and counts.
        e.install(config("{mode: latency, smoothing: 0.1, sample: 0.5}"), now);
        twin.install(config(""), now);
        assert_eq!(live_shares(&e), live_shares(&twin), "live state kept");
        let shadow = e.inspect_shadows()[0].clone().unwrap();
        assert_eq!(shadow.same + shadow.different, 100, "counts kept");
        let kept = candidate_shares(&e)[0];
        assert!(kept < 0.75, "still smoothing: {kept}");

        // Its smoothing changes: it starts again, unsmoothed at first.
        e.install(config("{mode: latency, smoothing: 0.2}"), now + 100);
        twin.install(config(""), now + 100);
        assert_eq!(live_shares(&e), live_shares(&twin), "live state kept");
        assert!(
            (candidate_shares(&e)[0] - 0.8).abs() < 1e-3,
            "{:?}",
            candidate_shares(&e)
        );
        let shadow = e.inspect_shadows()[0].clone().unwrap();
        assert_eq!((shadow.same, shadow.different), (0, 0), "counts restart");

        // Removed: nothing published, its series gone.
        e.install(config(""), now + 200);
        twin.install(config(""), now + 200);
        assert!(e.state().load().shadows[0].is_none());
        assert!(e.inspect_shadows()[0].is_none());
        assert_eq!(live_shares(&e), live_shares(&twin), "live state kept");
        let rendered = e.metrics.render();
        assert!(
            !rendered.contains("ballast_shadow_decisions_total"),
            "{rendered}"
        );
        assert!(!rendered.contains("ballast_shadow_share"), "{rendered}");
    }
}

//! The engine: the control loop's state and its short loop. Every
//! `recompute_interval` it reads each due pool's live stats, runs the
//! controllers over them in a fixed order (see [`super`]), publishes the
//! result atomically (`ArcSwap`) for the per-request picker and hands the
//! controllers' events to the [`EventSink`].
//!
//! The memory behind it is one lock's worth (`EngineMemory`), each part
//! owned by its controller; it is keyed by backend id, like the live stats,
//! so it survives configuration reloads for backends that remain; spill
//! state is keyed by pool and region name. Operator overrides change it
//! and recompute the pool at once. [`Engine::inspection`] reads it all at
//! one moment for the admin API. Each tick also prunes the routes' rate
//! limiters (at most once a second).

use super::backends::{self, memory_of, BackendMemories};
use super::budgets::{self, BudgetMemories};
use super::events::{Event, EventSink};
use super::inspect::{self, Inspection};
use super::overrides::SharedOverrides;
use super::tiers::{self, TierLoad};
use super::{canary, ejection, health, overrides, ring_steps, schedule, shadow, shares, spillover};
use crate::config::{BackendId, Pool, Snapshot};
use crate::routing::budget::Budgets;
use crate::routing::picker::PoolWeights;
use crate::routing::shadow::ShadowWeights;
use crate::routing::state::RoutingState;
use crate::stats::backend::{BackendStats, Observation};
use crate::stats::clock::WallClock;
use crate::stats::live::LiveState;
use crate::telemetry::decisions::{DecisionKind, DecisionLog};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::request_series::RequestSeries;
use arc_swap::ArcSwap;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(test)]
mod ejection_tests;
#[cfg(test)]
mod shadow_tests;
#[cfg(test)]
mod tests;

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

pub struct Engine {
    state: Arc<ArcSwap<RoutingState>>,
    live: Arc<LiveState>,
    decisions: Arc<DecisionLog>,
    metrics: Arc<Metrics>,
    events: EventSink,
    memory: Mutex<EngineMemory>,
}

/// Everything the controllers remember between recomputes.
#[derive(Default)]
pub(super) struct EngineMemory {
    pub(super) backends: BackendMemories,
    pub(super) regions: spillover::Regions,
    pub(super) tiers: tiers::Tiers,
    pub(super) schedules: schedule::Active,
    pub(super) shadows: shadow::Shadows,
    pub(super) rings: ring_steps::Rings,
    pub(super) budgets: BudgetMemories,
    next_due_ms: HashMap<String, u64>,
    /// When the routes' rate limiters next forget their idle keys.
    next_rate_limit_prune_ms: u64,
}

/// How often the routes' rate limiters forget keys whose bucket is full
/// again (their memory follows the clients of about the last second).
const RATE_LIMIT_PRUNE_INTERVAL_MS: u64 = 1000;

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
        let events = EventSink::new(decisions.clone(), metrics.clone(), WallClock::system());
        Self {
            state,
            live,
            decisions,
            metrics,
            events,
            memory: Mutex::new(EngineMemory::default()),
        }
    }

    /// Evaluate schedules against (and stamp decisions with) `clock`
    /// instead of the system's time.
    pub fn with_wall_clock(mut self, clock: WallClock) -> Self {
        self.events.set_clock(clock);
        self
    }

    /// Switch to a new configuration (a reload). Backends that stay keep
    /// everything learned about them (stats, ejection, slow start, overrides);
    /// new ones start in slow start; removed ones are forgotten once the
    /// requests already sent to them finish. Weights are computed at once.
    pub fn install(&self, snapshot: Arc<Snapshot>, now_ms: u64) -> InstallReport {
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let stats = Arc::new(self.live.resolve(&snapshot));
        let report = backends::install(&mut memory.backends, &snapshot, now_ms);
        memory.next_due_ms.clear();
        spillover::retain(&mut memory.regions, &snapshot);
        tiers::retain(&mut memory.tiers, &snapshot);
        schedule::retain(&mut memory.schedules, &snapshot);
        let configured = backends::configured(&snapshot);
        for pool in shadow::retain(&mut memory.shadows, &snapshot, &configured) {
            self.events.forget_shadow(&pool);
        }
        ring_steps::retain(&mut memory.rings, &snapshot);
        memory.budgets.clear();
        self.events.reset_gauges();
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
        if now_ms >= memory.next_rate_limit_prune_ms {
            memory.next_rate_limit_prune_ms = now_ms + RATE_LIMIT_PRUNE_INTERVAL_MS;
            let current = self.state.load();
            for limit in current
                .snapshot
                .routes
                .routes()
                .iter()
                .filter_map(|r| r.rate_limit.as_ref())
            {
                limit.prune();
            }
        }
    }

    /// Recompute each pool that is due (each on its own interval), hand the
    /// events to the sink and publish the pools together; then observe the
    /// budgets.
    fn recompute_due(&self, memory: &mut EngineMemory, now_ms: u64) {
        let current = self.state.load_full();
        let mut weights = current.weights.clone();
        let mut shadows = current.shadows.clone();
        let mut events = Vec::new();
        let mut changed = false;
        for pool in &current.snapshot.pools {
            let due = memory.next_due_ms.get(&pool.name).copied().unwrap_or(0);
            if now_ms < due && weights[pool.id.0].is_some() {
                continue;
            }
            let interval_ms = pool.policy.recompute_interval.as_millis() as u64;
            memory
                .next_due_ms
                .insert(pool.name.clone(), now_ms + interval_ms);
            let stats = &current.stats.pools[pool.id.0];
            let observations: Vec<_> = stats.iter().map(|s| s.observe(now_ms)).collect();
            let clock = self.events.clock();
            let template = schedule::note(pool, &mut memory.schedules, clock, &mut events);
            let with_geo = current.snapshot.geo.is_some();
            let multipliers = template.map(|t| &t.multipliers);
            let (mut pool_weights, tier_loads, shadow) = self.recompute_pool(
                pool,
                stats,
                &observations,
                (with_geo, multipliers),
                memory,
                now_ms,
                &mut events,
            );
            shadows[pool.id.0] = shadow.map(Arc::new);
            if pool.policy.consistent_hash.is_some() {
                let (rings, backends) = (&mut memory.rings, &mut memory.backends);
                pool_weights = ring_steps::step(pool, pool_weights, rings, backends, &mut events);
            }
            tiers::note(pool, &mut memory.tiers, tier_loads, &mut events);
            if let Some(geo) = &current.snapshot.geo {
                let regions = &mut memory.regions;
                let w = &mut pool_weights;
                spillover::apply(pool, geo, &observations, w, regions, now_ms, &mut events);
                schedule::apply_spill(pool, template, w, regions, &mut events);
            }
            weights[pool.id.0] = Some(pool_weights);
            changed = true;
        }
        self.events.emit_all(now_ms, events.drain(..));
        if changed {
            self.state
                .store(Arc::new(current.with_weights(weights, shadows)));
        }
        budgets::observe(&current, &mut memory.budgets, now_ms, &mut events);
        self.events.emit_all(now_ms, events);
    }

    /// One pool's shares, in controller order: ejections end and begin,
    /// health verdicts, canary breakers, the formulas' inputs, pins
    /// expiring, the share pipeline, the shadow candidate, share changes.
    /// `with_geo`: clients have regions (spillover acts per request);
    /// otherwise `region_max_share` caps the regions' shares here.
    /// `multipliers`: the active schedule's, by region.
    #[allow(clippy::too_many_arguments)]
    fn recompute_pool<'a>(
        &self,
        pool: &'a Pool,
        stats: &[Arc<BackendStats>],
        observations: &[Observation],
        (with_geo, multipliers): (bool, Option<&BTreeMap<String, f64>>),
        memory: &mut EngineMemory,
        now_ms: u64,
        events: &mut Vec<Event<'a>>,
    ) -> (PoolWeights, Vec<TierLoad>, Option<ShadowWeights>) {
        let backends = &mut memory.backends;
        for i in ejection::end_expired(pool, backends, now_ms, events) {
            stats[i].reset_consecutive_failures();
        }
        let failures: Vec<u32> = stats.iter().map(|s| s.consecutive_failures()).collect();
        let held_back = ejection::eject(pool, &failures, observations, backends, now_ms, events);
        for i in held_back {
            stats[i].reset_consecutive_failures();
        }
        let healthy: Vec<bool> = stats.iter().map(|s| s.is_healthy()).collect();
        health::note_changes(pool, &healthy, backends, now_ms, events);
        canary::breakers(pool, observations, backends, now_ms, events);
        let inputs = backends::inputs(pool, observations, backends, multipliers);
        overrides::expire_pins(pool, backends, now_ms, events);
        let (computed, tier_loads) =
            shares::policy_shares(pool, &pool.policy, &inputs, with_geo, backends, now_ms);

        let shadow = pool.shadow.as_ref().map(|candidate| {
            let live: Vec<f64> = computed.iter().map(|c| c.share).collect();
            let start = || self.events.start_shadow(&pool.name, candidate.policy.mode);
            shadow::recompute(
                pool,
                candidate,
                &inputs,
                &live,
                observations,
                with_geo,
                &mut memory.shadows,
                &memory.backends,
                now_ms,
                start,
                events,
            )
        });
        for (backend, result) in pool.backends.iter().zip(&computed) {
            let mem = memory_of(&mut memory.backends, &backend.id);
            shares::note_change(pool, &backend.id, mem, result, now_ms, events);
        }
        let (priors, held) = shares::steering(pool, &computed, &memory.backends);
        let weights = PoolWeights::new(
            pool,
            computed.iter().map(|c| c.share).collect(),
            shares::expected_in_flight(&computed, observations),
        )
        .with_steering(&priors, &held);
        (weights, tier_loads, shadow)
    }

    /// Everything the admin API shows, read at one moment: the published
    /// state and the memory behind it, under the engine's lock.
    pub fn inspection(&self, now_ms: u64) -> Inspection {
        let memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.state.load_full();
        let wall_now_s = self.events.clock().now_unix_s();
        inspect::read(&current, &memory, now_ms, wall_now_s)
    }

    pub fn decisions(&self) -> &DecisionLog {
        &self.decisions
    }

    /// Whether backend `id` is configured.
    pub fn has_backend(&self, id: &BackendId) -> bool {
        self.state
            .load()
            .snapshot
            .pools
            .iter()
            .any(|p| p.backends.iter().any(|b| &b.id == id))
    }

    /// Stop sending new requests to a backend (`drain = true`) or resume.
    /// Returns false when no such backend is configured.
    pub fn set_drained(&self, id: &BackendId, drain: bool, now_ms: u64) -> bool {
        self.override_backend(id, now_ms, |mem| overrides::drain(mem, drain, now_ms))
    }

    /// Hold a backend's share at `share` for `duration` (`None` lifts a pin).
    pub fn set_pinned(&self, id: &BackendId, pin: Option<(f64, Duration)>, now_ms: u64) -> bool {
        self.override_backend(id, now_ms, |mem| overrides::pin(mem, pin, now_ms))
    }

    /// Bring every backend's drain and pin in line with a fleet's stored
    /// overrides (see [`overrides::reconcile`]): each change is a decision,
    /// and the pools changed are recomputed at once.
    pub fn apply_shared_overrides(&self, shared: &SharedOverrides, unix_now_ms: u64, now_ms: u64) {
        let current = self.state.load_full();
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        for pool in &current.snapshot.pools {
            let mut changed = false;
            for backend in &pool.backends {
                let mem = memory_of(&mut memory.backends, &backend.id);
                let share = mem.share.unwrap_or(0.0);
                for reason in overrides::reconcile(mem, &backend.id, shared, unix_now_ms, now_ms) {
                    let event = Event::backend(
                        &pool.name,
                        &backend.id,
                        DecisionKind::Override,
                        (share, share),
                        reason,
                    );
                    self.events.emit(now_ms, event);
                    changed = true;
                }
            }
            if changed {
                memory.next_due_ms.remove(&pool.name);
            }
        }
        self.recompute_due(&mut memory, now_ms);
    }

    /// Each backend's share, by backend id (pools not computed yet left out).
    pub fn shares(&self) -> Vec<(String, f64)> {
        let current = self.state.load();
        current
            .snapshot
            .pools
            .iter()
            .zip(&current.weights)
            .filter_map(|(pool, weights)| Some((pool, weights.as_ref()?)))
            .flat_map(|(pool, weights)| {
                pool.backends
                    .iter()
                    .zip(&weights.shares)
                    .map(|(b, &share)| (b.id.to_string(), share))
            })
            .collect()
    }

    /// Apply an operator's `change` to backend `id` (a decision) and
    /// recompute its pool at once.
    fn override_backend(
        &self,
        id: &BackendId,
        now_ms: u64,
        change: impl FnOnce(&mut backends::BackendMemory) -> String,
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
        let kind = DecisionKind::Override;
        let event = Event::backend(&pool.name, id, kind, (share, share), reason);
        self.events.emit(now_ms, event);
        memory.next_due_ms.remove(&pool.name);
        self.recompute_due(&mut memory, now_ms);
        true
    }
}

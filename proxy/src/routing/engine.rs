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
//! The engine's memory is keyed by backend id, like the live stats, so it
//! survives configuration reloads for backends that remain.

use super::decisions::{DecisionKind, DecisionLog, RoutingDecision};
use super::picker::PoolWeights;
use super::weights::{compute_shares, BackendInput, Computed, Factors};
use crate::config::{BackendId, Pool, Snapshot};
use crate::metrics::Metrics;
use crate::stats::backend::BackendStats;
use crate::stats::live::{LiveState, ResolvedStats};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Share moves smaller than this are not logged as decisions.
const DECISION_THRESHOLD: f64 = 0.01;
/// A share moving more than this within `SWING_WINDOW` is a swing worth a warning.
const SWING_THRESHOLD: f64 = 0.2;
const SWING_WINDOW_MS: u64 = 5 * 60 * 1000;

/// What the proxy reads per request, published as one unit so the snapshot,
/// the stats handles and the weights always agree.
pub struct RoutingState {
    pub snapshot: Arc<Snapshot>,
    pub stats: ResolvedStats,
    /// Per pool; `None` until the engine has computed it.
    pub weights: Vec<Option<PoolWeights>>,
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
    /// (when, share) the swing warning compares against.
    swing_reference: Option<(u64, f64)>,
}

pub struct Engine {
    state: Arc<ArcSwap<RoutingState>>,
    live: Arc<LiveState>,
    decisions: Arc<DecisionLog>,
    metrics: Arc<Metrics>,
    memory: Mutex<EngineMemory>,
}

#[derive(Default)]
struct EngineMemory {
    backends: HashMap<BackendId, BackendMemory>,
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
        let stats = live.resolve(&snapshot);
        let weights = vec![None; snapshot.pools.len()];
        Self {
            state: Arc::new(ArcSwap::from_pointee(RoutingState {
                snapshot,
                stats,
                weights,
            })),
            live,
            decisions,
            metrics,
            memory: Mutex::new(EngineMemory::default()),
        }
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
        let current = self.state.load_full();
        let mut memory = self.memory.lock().unwrap_or_else(|p| p.into_inner());
        let mut weights = current.weights.clone();
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
            weights[pool.id.0] =
                Some(self.recompute_pool(pool, stats, &mut memory.backends, now_ms));
            changed = true;
        }
        if changed {
            self.state.store(Arc::new(RoutingState {
                snapshot: current.snapshot.clone(),
                stats: ResolvedStats {
                    pools: current.stats.pools.clone(),
                },
                weights,
            }));
        }
    }

    fn recompute_pool(
        &self,
        pool: &Pool,
        stats: &[Arc<BackendStats>],
        memory: &mut HashMap<BackendId, BackendMemory>,
        now_ms: u64,
    ) -> PoolWeights {
        let observations: Vec<_> = stats.iter().map(|s| s.observe(now_ms)).collect();
        self.apply_outlier_ejection(pool, stats, &observations, memory, now_ms);

        let mut inputs: Vec<BackendInput> = pool
            .backends
            .iter()
            .zip(&observations)
            .map(|(backend, observation)| {
                let mem = memory.entry(backend.id.clone()).or_default();
                BackendInput {
                    weight: f64::from(backend.weight),
                    capacity: backend.capacity.map(f64::from),
                    eligible: backend.weight > 0 && mem.ejected_until_ms.is_none(),
                    admitted_at_ms: mem.admitted_at_ms,
                    previous_share: mem.share,
                    observation: *observation,
                }
            })
            .collect();
        if !inputs.iter().any(|i| i.eligible) {
            // Panic mode: better to try everything than to fail everything.
            for input in inputs.iter_mut().filter(|i| i.weight > 0.0) {
                input.eligible = true;
            }
        }
        let computed = compute_shares(&pool.policy, &inputs, now_ms);

        let pool_rps: f64 = observations.iter().map(|o| o.outcomes.per_second()).sum();
        let mut expected_in_flight = Vec::with_capacity(computed.len());
        for ((backend, result), observation) in
            pool.backends.iter().zip(&computed).zip(&observations)
        {
            let latency_s = result
                .factors
                .latency_ms
                .or(observation.ewma_us.map(|us| us / 1000.0))
                .unwrap_or(0.0)
                / 1000.0;
            expected_in_flight.push(pool_rps * result.share * latency_s);
            let mem = memory.entry(backend.id.clone()).or_default();
            self.note_share_change(pool, &backend.id, mem, result, now_ms);
            self.metrics
                .backend_share
                .with_label_values(&[pool.name.as_str(), backend.id.0.as_str()])
                .set(result.share);
        }
        PoolWeights::new(
            computed.iter().map(|c| c.share).collect(),
            expected_in_flight,
        )
    }

    fn apply_outlier_ejection(
        &self,
        pool: &Pool,
        stats: &[Arc<BackendStats>],
        observations: &[crate::stats::backend::Observation],
        memory: &mut HashMap<BackendId, BackendMemory>,
        now_ms: u64,
    ) {
        let policy = &pool.policy.outlier;
        let max_ejected = (pool.backends.len() as f64 * policy.max_ejected).floor() as usize;
        for (i, backend) in pool.backends.iter().enumerate() {
            let mem = memory.entry(backend.id.clone()).or_default();
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
            let failures = observations[i].consecutive_failures;
            let mem = memory.entry(backend.id.clone()).or_default();
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

    pub fn live(&self) -> &LiveState {
        &self.live
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
    let mut candidates: Vec<(f64, String)> = Vec::new();
    if let (Some(a), Some(b)) = (before.latency_ms, after.latency_ms) {
        candidates.push((ratio(a, b), format!("latency {a:.1}ms -> {b:.1}ms")));
    }
    candidates.push((
        ratio(before.error, after.error),
        format!("error factor {:.2} -> {:.2}", before.error, after.error),
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
        ratio(before.base, after.base),
        format!("base weight {:.3} -> {:.3}", before.base, after.base),
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
        _ => "other backends changed (smoothing toward target)".to_string(),
    }
}

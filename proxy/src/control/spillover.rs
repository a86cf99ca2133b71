//! Load-driven regional spillover: how much of a region's traffic moves on
//! to the next region of each request's plan, decided per pool and region
//! every recompute interval, off the hot path.
//!
//! A region is under **pressure** when any configured signal passes its
//! threshold: its latency (`ewma` or window `p99`, request-weighted over its
//! eligible backends) above `latency_above`, its mean fresh reported
//! utilization above `utilization_above`, or its share of the pool's recent
//! traffic above `region_max_share`. It is **clear** when every signal is
//! below `hysteresis ×` its threshold (a signal without data counts as
//! clear). In between, nothing moves.
//!
//! The spill fraction `s` of a region moves by `step` per interval:
//! `s ← min(s + step, max)` under pressure; `s ← max(s − step, 0)` when
//! clear, but only once `hold` has passed since the last move out. The
//! band between the two thresholds, the hold and the bounded step keep it
//! from oscillating; `max < 1` keeps some traffic local so the region stays
//! measured and the pressure can be seen to clear.
//!
//! The picker applies `s` per request: a request whose next candidate region
//! is spilling moves on to the following region of its plan with probability
//! `s` (only when a later region can serve, and never outside a residency
//! fence, since fenced plans list only allowed regions).
//!
//! The controller keeps each region's spill state by pool and region name
//! and publishes its fraction with the weights; every change is a decision.
//! Without client regions (no geo rules), `region_max_share` caps each
//! region's total share directly instead ([`cap_region_shares`]).

use super::events::Event;
use super::shares::fix_shares;
use super::weights::{Computed, MIN_LATENCY_SAMPLES};
use crate::config::{Geo, LatencySignal, Pool, Snapshot, SpilloverPolicy, DEFAULT_SPILLOVER};
use crate::routing::picker::PoolWeights;
use crate::stats::backend::Observation;
use std::collections::{HashMap, HashSet};

/// Fewer requests than this in the pool's recent window: traffic shares are
/// too noisy to act on.
const MIN_POOL_REQUESTS_FOR_SHARE: u64 = 20;

/// What one region of a pool looks like at recompute time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RegionSignals {
    pub latency_ms: Option<f64>,
    pub utilization: Option<f64>,
    /// The region's fraction of the pool's recent traffic.
    pub traffic_share: Option<f64>,
}

/// A pool region's spill state, kept by the engine across intervals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpillState {
    /// Fraction of the region's traffic sent on to the next region.
    pub fraction: f64,
    /// When traffic last moved out; moving back waits `hold` after it.
    last_out_ms: Option<u64>,
}

/// The verdict on a region's signals.
#[derive(Debug, Clone, PartialEq)]
pub enum Pressure {
    /// A signal passed its threshold; the text says which.
    High(String),
    /// Every signal is below `hysteresis ×` its threshold.
    Clear,
    /// Below the thresholds but not clear: hold still.
    Between,
}

/// A change of spill fraction, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct SpillChange {
    pub old: f64,
    pub new: f64,
    pub reason: String,
}

/// Thresholds in force for a pool: its spillover policy (or the defaults
/// when only `region_max_share` is set) and its region cap.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds<'a> {
    pub policy: &'a SpilloverPolicy,
    /// Below 1: no region takes more than this of the pool's traffic.
    pub region_max_share: f64,
}

impl Thresholds<'_> {
    /// Judge a region's signals.
    pub fn pressure(&self, signals: &RegionSignals) -> Pressure {
        let policy = self.policy;
        let mut checks: Vec<(Option<f64>, Option<f64>, String)> = Vec::with_capacity(3);
        let latency_limit = policy.latency_above.map(|d| d.as_secs_f64() * 1000.0);
        checks.push((
            signals.latency_ms,
            latency_limit,
            format!("{} latency", policy.latency_signal.as_str()),
        ));
        checks.push((
            signals.utilization,
            policy.utilization_above,
            "utilization".to_string(),
        ));
        let cap = (self.region_max_share < 1.0).then_some(self.region_max_share);
        checks.push((signals.traffic_share, cap, "traffic share".to_string()));

        let mut clear = true;
        for (value, limit, name) in checks {
            let (Some(value), Some(limit)) = (value, limit) else {
                continue;
            };
            if value > limit {
                return Pressure::High(format!("{name} {} > {}", show(value), show(limit)));
            }
            if value >= limit * policy.hysteresis {
                clear = false;
            }
        }
        if clear {
            Pressure::Clear
        } else {
            Pressure::Between
        }
    }

    /// Move `state` one interval on; `Some` when the fraction changed.
    pub fn advance(
        &self,
        state: &mut SpillState,
        pressure: &Pressure,
        now_ms: u64,
    ) -> Option<SpillChange> {
        let policy = self.policy;
        let old = state.fraction;
        let (new, reason) = match pressure {
            Pressure::High(why) if old < policy.max => {
                state.last_out_ms = Some(now_ms);
                ((old + policy.step).min(policy.max), why.clone())
            }
            Pressure::Clear if old > 0.0 => {
                let held = state
                    .last_out_ms
                    .is_some_and(|at| now_ms.saturating_sub(at) < policy.hold.as_millis() as u64);
                if held {
                    return None;
                }
                (
                    (old - policy.step).max(0.0),
                    format!(
                        "pressure cleared (below {} of every threshold)",
                        policy.hysteresis
                    ),
                )
            }
            _ => return None,
        };
        // Steps are decimal fractions: keep them from accumulating float noise.
        let new = (new * 1e6).round() / 1e6;
        state.fraction = new;
        (new != old).then_some(SpillChange { old, new, reason })
    }
}

/// Signals of one region from its eligible backends' observations.
/// `pool_requests` and `region_requests` are recent-window counts.
pub fn region_signals(
    signal: LatencySignal,
    members: &[(&Observation, Option<f64>)],
    region_requests: u64,
    pool_requests: u64,
) -> RegionSignals {
    let latency = |o: &Observation| match signal {
        LatencySignal::Ewma => o.ewma_us,
        LatencySignal::P99 => (o.latency.count >= MIN_LATENCY_SAMPLES).then_some(o.latency.p99_us),
    };
    let weighted: Vec<(f64, f64)> = members
        .iter()
        .filter_map(|(o, _)| latency(o).map(|us| (us / 1000.0, o.outcomes.total as f64)))
        .collect();
    let total_weight: f64 = weighted.iter().map(|(_, w)| w).sum();
    let latency_ms = match (weighted.len(), total_weight > 0.0) {
        (0, _) => None,
        (_, true) => Some(weighted.iter().map(|(l, w)| l * w).sum::<f64>() / total_weight),
        (n, false) => Some(weighted.iter().map(|(l, _)| l).sum::<f64>() / n as f64),
    };
    let reports: Vec<f64> = members.iter().filter_map(|(_, u)| *u).collect();
    let utilization =
        (!reports.is_empty()).then(|| reports.iter().sum::<f64>() / reports.len() as f64);
    let traffic_share = (pool_requests >= MIN_POOL_REQUESTS_FOR_SHARE)
        .then(|| region_requests as f64 / pool_requests as f64);
    RegionSignals {
        latency_ms,
        utilization,
        traffic_share,
    }
}

/// Numbers in reasons: milliseconds and fractions, short.
fn show(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// The engine's memory of one region of a pool.
#[derive(Debug, Clone, Default)]
pub struct RegionMemory {
    pub state: SpillState,
    pub signals: RegionSignals,
    pub pressure: String,
    /// The least spill the active schedule asks for (client regions only).
    pub scheduled_floor: f64,
}

/// Every pool region's memory, by (pool name, region name).
pub type Regions = HashMap<(String, String), RegionMemory>;

/// Forget the regions `snapshot` no longer has.
pub fn retain(regions: &mut Regions, snapshot: &Snapshot) {
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
    regions.retain(|key, _| spilling.contains(key));
}

/// With client regions: judge each region's pressure, move its spill
/// fraction one step, and publish it with the weights; changes are
/// decisions.
pub fn apply<'a>(
    pool: &'a Pool,
    geo: &Geo,
    observations: &[Observation],
    weights: &mut PoolWeights,
    regions: &mut Regions,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) {
    let policy = &pool.policy;
    let thresholds = match (&policy.spillover, policy.region_max_share < 1.0) {
        _ if !policy.mode.is_adaptive() => return,
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
                events.push(Event::Spill {
                    pool: &pool.name,
                    region,
                    to: next_region(geo, pool, region),
                    old: change.old,
                    new: change.new,
                    reason: change.reason,
                });
            }
        }
        weights.set_spill(region, mem.state.fraction);
        events.push(Event::RegionSpill {
            pool: &pool.name,
            region,
            spill: mem.state.fraction,
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

/// Without client regions: scale regions whose backends' shares sum above
/// `cap` down to it, and the others up into the rest (water-filling); a
/// no-op when `cap` cannot be met (too few regions serving).
pub fn cap_region_shares(pool: &Pool, computed: &mut [Computed], cap: f64) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_SPILLOVER;
    use std::time::Duration;

    fn policy() -> SpilloverPolicy {
        SpilloverPolicy {
            latency_above: Some(Duration::from_millis(200)),
            utilization_above: Some(0.85),
            ..DEFAULT_SPILLOVER
        }
    }

    fn latency(ms: f64) -> RegionSignals {
        RegionSignals {
            latency_ms: Some(ms),
            ..RegionSignals::default()
        }
    }

    #[test]
    fn any_signal_over_its_threshold_is_pressure_and_all_under_the_band_is_clear() {
        let p = policy();
        let t = Thresholds {
            policy: &p,
            region_max_share: 0.7,
        };
        assert_eq!(
            t.pressure(&latency(250.0)),
            Pressure::High("ewma latency 250 > 200".into())
        );
        let util = RegionSignals {
            utilization: Some(0.9),
            ..latency(50.0)
        };
        assert_eq!(
            t.pressure(&util),
            Pressure::High("utilization 0.90 > 0.85".into())
        );
        let share = RegionSignals {
            traffic_share: Some(0.75),
            ..latency(50.0)
        };
        assert_eq!(
            t.pressure(&share),
            Pressure::High("traffic share 0.75 > 0.70".into())
        );
        assert_eq!(t.pressure(&latency(170.0)), Pressure::Between);
        assert_eq!(t.pressure(&latency(150.0)), Pressure::Clear);
        assert_eq!(t.pressure(&RegionSignals::default()), Pressure::Clear);
    }

    #[test]
    fn steps_out_to_max_then_back_after_the_hold() {
        let p = SpilloverPolicy {
            step: 0.1,
            max: 0.3,
            hold: Duration::from_secs(2),
            ..policy()
        };
        let t = Thresholds {
            policy: &p,
            region_max_share: 1.0,
        };
        let mut state = SpillState::default();
        let hot = t.pressure(&latency(300.0));
        let fractions: Vec<f64> = (0..5)
            .map(|i| {
                t.advance(&mut state, &hot, i * 500);
                state.fraction
            })
            .collect();
        assert_eq!(fractions, vec![0.1, 0.2, 0.3, 0.3, 0.3], "capped at max");
        // Last move out at 1000 ms: clear at 1500 and 2500 is held.
        assert_eq!(t.advance(&mut state, &Pressure::Clear, 1_500), None);
        assert_eq!(t.advance(&mut state, &Pressure::Clear, 2_500), None);
        let back = t.advance(&mut state, &Pressure::Clear, 3_000).unwrap();
        assert_eq!((back.old, back.new), (0.3, 0.2));
        assert!(back.reason.contains("cleared"), "{}", back.reason);
        t.advance(&mut state, &Pressure::Clear, 3_500);
        t.advance(&mut state, &Pressure::Clear, 4_000);
        assert_eq!(state.fraction, 0.0);
        assert_eq!(t.advance(&mut state, &Pressure::Clear, 4_500), None);
    }

    #[test]
    fn a_load_dependent_latency_settles_inside_the_band_without_oscillating() {
        // A region whose latency grows with the traffic it keeps:
        // 100 ms + 200 ms × (1 − spill). Pressure above 200 ms, clear below 160.
        let p = SpilloverPolicy {
            step: 0.05,
            hold: Duration::from_secs(3),
            ..policy()
        };
        let t = Thresholds {
            policy: &p,
            region_max_share: 1.0,
        };
        let mut state = SpillState::default();
        let mut changes = 0;
        let mut history = Vec::new();
        for tick in 0..200u64 {
            let kept = 1.0 - state.fraction;
            let signals = latency(100.0 + 200.0 * kept);
            if t.advance(&mut state, &t.pressure(&signals), tick * 500)
                .is_some()
            {
                changes += 1;
            }
            history.push(state.fraction);
        }
        let settled = history[history.len() - 1];
        assert!(
            history[20..].iter().all(|&f| f == settled),
            "no sawtooth: {history:?}"
        );
        let latency = 100.0 + 200.0 * (1.0 - settled);
        assert!((160.0..=200.0).contains(&latency), "{settled} → {latency}");
        assert!(changes <= 12, "{changes} changes");
    }

    fn observation(ewma_ms: f64, p99_ms: f64, requests: u64) -> Observation {
        let mut o = crate::stats::backend::BackendStats::new().observe(0);
        o.ewma_us = Some(ewma_ms * 1000.0);
        o.latency.count = requests;
        o.latency.p99_us = p99_ms * 1000.0;
        o.outcomes.total = requests;
        o
    }

    #[test]
    fn signals_are_request_weighted_and_need_enough_traffic_for_a_share() {
        let busy = observation(10.0, 30.0, 300);
        let quiet = observation(110.0, 500.0, 100);
        let members = [(&busy, Some(0.5)), (&quiet, None)];
        let s = region_signals(LatencySignal::Ewma, &members, 40, 100);
        assert_eq!(s.latency_ms, Some(35.0));
        assert_eq!(s.utilization, Some(0.5));
        assert_eq!(s.traffic_share, Some(0.4));
        let s = region_signals(LatencySignal::P99, &members, 4, 10);
        assert_eq!(s.latency_ms, Some(147.5));
        assert_eq!(s.traffic_share, None, "10 requests are too few");
        let unmeasured = observation(0.0, 0.0, 0);
        let mut unmeasured = unmeasured;
        unmeasured.ewma_us = None;
        let s = region_signals(LatencySignal::Ewma, &[(&unmeasured, None)], 0, 0);
        assert_eq!(s, RegionSignals::default());
    }
}

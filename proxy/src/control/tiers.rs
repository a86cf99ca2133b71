//! Priority tiers (Envoy's priority levels): how a pool's traffic splits
//! between its tiers, computed by the engine off the hot path.
//!
//! Tier `t`'s health `h_t` is the weight (or configured capacity) of its
//! eligible backends (healthy, not ejected, not drained) over the weight of
//! all its backends. With the overprovisioning factor `f` (default 1.4),
//! its capacity is `c_t = min(1, h_t · f)`, and tier `t` takes
//! `load_t = min(c_t, 1 − Σ_{u<t} load_u)`: tier 0 takes what it can, the
//! next tier the remainder, and so on. When all tiers together cannot take
//! everything (`Σ c_t < 1`), loads are normalized: `load_t = c_t / Σ c`.
//!
//! Pre-warm: each tier below the first that has a healthy backend gets at
//! least `prewarm_share`, taken from the tiers above in proportion to what
//! they take beyond their own trickle, so a standby always has fresh
//! measurements when failover comes.
//!
//! A tier is **serving** when it takes more than its pre-warm trickle;
//! otherwise it is on **standby**.
//!
//! Within a tier the weight engine works as in a pool of its own (bounds,
//! smoothing against the tier's previous shares); a backend's published
//! share is its share within its tier times the tier's load.
//!
//! A standby tier starting to serve (failover) or going back to standby
//! (failback) is a decision, logged, and `ballast_priority_tier_load` shows
//! every tier's load.

use super::events::Event;
use super::weights::{compute_shares, BackendInput, Computed};
use crate::config::{Pool, PoolPolicy, Snapshot};
use std::collections::HashMap;

/// Loads below this are treated as zero.
const EPSILON: f64 = 1e-9;

/// One tier's part: its health and the fraction of the pool's traffic it takes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TierLoad {
    pub priority: u32,
    /// Eligible weight over configured weight, 0..1.
    pub health: f64,
    /// Fraction of the pool's traffic, 0..1; the loads sum to 1 (or 0 when
    /// no tier is healthy).
    pub load: f64,
}

impl TierLoad {
    /// Whether the tier takes more than its pre-warm trickle.
    pub fn serving(&self, prewarm_share: f64) -> bool {
        self.load > prewarm_share + EPSILON
    }
}

/// Every backend's share of the pool (in `pool.backends` order) and each
/// tier's load, highest priority first, under `policy` (the pool's, or a
/// shadow candidate's).
pub fn split_tiers(
    pool: &Pool,
    policy: &PoolPolicy,
    inputs: &[BackendInput],
    now_ms: u64,
) -> (Vec<Computed>, Vec<TierLoad>) {
    let health: Vec<(u32, f64)> = pool
        .tiers
        .iter()
        .map(|&tier| {
            let (mut healthy, mut total) = (0.0, 0.0);
            for (backend, input) in pool.backends.iter().zip(inputs) {
                if backend.priority == tier {
                    total += input.weight;
                    if input.eligible {
                        healthy += input.weight;
                    }
                }
            }
            (tier, if total > 0.0 { healthy / total } else { 0.0 })
        })
        .collect();
    let loads = tier_loads(
        &health,
        policy.overprovisioning_factor,
        policy.prewarm_share,
    );
    let mut shares: Vec<Option<Computed>> = vec![None; inputs.len()];
    for tier in &loads {
        let member = |i: usize| pool.backends[i].priority == tier.priority;
        let previous_total: f64 = (0..inputs.len())
            .filter(|&i| member(i))
            .filter_map(|i| inputs[i].previous_share)
            .sum();
        let tier_inputs: Vec<BackendInput> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| BackendInput {
                eligible: input.eligible && member(i),
                previous_share: input
                    .previous_share
                    .filter(|_| previous_total > 0.0)
                    .map(|share| share / previous_total),
                ..*input
            })
            .collect();
        for (i, computed) in compute_shares(policy, &tier_inputs, now_ms)
            .into_iter()
            .enumerate()
        {
            if member(i) {
                shares[i] = Some(Computed {
                    share: computed.share * tier.load,
                    ..computed
                });
            }
        }
    }
    let computed = shares
        .into_iter()
        .map(|c| c.expect("every backend is in a tier"))
        .collect();
    (computed, loads)
}

/// Split the traffic between tiers given as `(priority, health)`, highest
/// priority (0) first.
pub fn tier_loads(tiers: &[(u32, f64)], factor: f64, prewarm_share: f64) -> Vec<TierLoad> {
    let capacity: Vec<f64> = tiers
        .iter()
        .map(|(_, health)| (health.clamp(0.0, 1.0) * factor).min(1.0))
        .collect();
    let total: f64 = capacity.iter().sum();
    let mut loads = Vec::with_capacity(tiers.len());
    let mut left = 1.0_f64;
    for c in &capacity {
        let load = if total < 1.0 {
            if total > 0.0 {
                c / total
            } else {
                0.0
            }
        } else {
            c.min(left)
        };
        left = (left - load).max(0.0);
        loads.push(load);
    }
    prewarm(&mut loads, &capacity, prewarm_share);
    tiers
        .iter()
        .zip(loads)
        .map(|(&(priority, health), load)| TierLoad {
            priority,
            health,
            load,
        })
        .collect()
}

/// Raise every healthy tier after the first to at least `share`, taking the
/// difference from the tiers above it in proportion to what they have
/// beyond their own trickle.
fn prewarm(loads: &mut [f64], capacity: &[f64], share: f64) {
    if share <= 0.0 {
        return;
    }
    let floor = |t: usize| {
        if t > 0 && capacity[t] > 0.0 {
            share
        } else {
            0.0
        }
    };
    for t in 1..loads.len() {
        if capacity[t] <= 0.0 || loads[t] >= share {
            continue;
        }
        let spare: f64 = (0..t).map(|u| loads[u] - floor(u)).sum();
        let wanted = share - loads[t];
        if spare <= wanted {
            continue;
        }
        for (u, load) in loads[..t].iter_mut().enumerate() {
            *load -= wanted * (*load - floor(u)) / spare;
        }
        loads[t] = share;
    }
}

/// Each pool's tiers as last computed, by pool name.
pub type Tiers = HashMap<String, Vec<TierLoad>>;

/// Forget the pools `snapshot` no longer has.
pub fn retain(memory: &mut Tiers, snapshot: &Snapshot) {
    memory.retain(|pool, _| snapshot.pool_by_name(pool).is_some());
}

/// Remember the pool's new tier loads and publish them; a tier below the
/// first that starts taking more than its pre-warm trickle is a failover,
/// one going back is a failback.
pub fn note<'a>(
    pool: &'a Pool,
    memory: &mut Tiers,
    tiers: Vec<TierLoad>,
    events: &mut Vec<Event<'a>>,
) {
    let prewarm = pool.policy.prewarm_share;
    let previous = memory.insert(pool.name.clone(), tiers);
    let tiers = &memory[&pool.name];
    for (t, tier) in tiers.iter().enumerate() {
        events.push(Event::TierLoad {
            pool: &pool.name,
            priority: tier.priority,
            load: tier.load,
        });
        if t == 0 {
            continue;
        }
        let before = previous
            .as_deref()
            .and_then(|p| p.iter().find(|b| b.priority == tier.priority));
        let was_serving = before.is_some_and(|b| b.serving(prewarm));
        if was_serving == tier.serving(prewarm) {
            continue;
        }
        let name = format!("tier {}", tier.priority);
        let old = before.map_or(0.0, |b| b.load);
        let above: Vec<String> = tiers[..t]
            .iter()
            .map(|a| format!("tier {} health {:.2}", a.priority, a.health))
            .collect();
        let failover = tier.serving(prewarm);
        let verb = if failover { "failover" } else { "failback" };
        let reason = format!(
            "{verb}: {name} load {old:.3} -> {:.3} ({})",
            tier.load,
            above.join(", ")
        );
        events.push(Event::TierSwitched {
            pool: &pool.name,
            tier: name,
            failover,
            old,
            new: tier.load,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loads(tiers: &[(u32, f64)], factor: f64, prewarm: f64) -> Vec<f64> {
        tier_loads(tiers, factor, prewarm)
            .iter()
            .map(|t| t.load)
            .collect()
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    #[test]
    fn a_healthy_first_tier_takes_everything() {
        let out = loads(&[(0, 1.0), (1, 1.0)], 1.4, 0.0);
        assert!(close(&out, &[1.0, 0.0]), "{out:?}");
        // Down to 1/1.4 healthy, the factor still covers it.
        let out = loads(&[(0, 0.72), (1, 1.0)], 1.4, 0.0);
        assert!(close(&out, &[1.0, 0.0]), "{out:?}");
    }

    #[test]
    fn at_half_health_the_first_tier_keeps_seventy_percent() {
        let out = loads(&[(0, 0.5), (1, 1.0)], 1.4, 0.0);
        assert!(close(&out, &[0.7, 0.3]), "{out:?}");
        let out = loads(&[(0, 0.5), (1, 0.5), (2, 1.0)], 1.4, 0.0);
        assert!(close(&out, &[0.7, 0.3, 0.0]), "{out:?}");
        let out = loads(&[(0, 0.0), (1, 1.0)], 1.4, 0.0);
        assert!(close(&out, &[0.0, 1.0]), "{out:?}");
    }

    #[test]
    fn prewarm_gives_each_healthy_standby_its_trickle() {
        let out = loads(&[(0, 1.0), (1, 1.0)], 1.4, 0.01);
        assert!(close(&out, &[0.99, 0.01]), "{out:?}");
        let out = loads(&[(0, 1.0), (1, 1.0), (2, 1.0)], 1.4, 0.02);
        assert!(close(&out, &[0.96, 0.02, 0.02]), "{out:?}");
        // A standby already above the trickle keeps its load.
        let out = loads(&[(0, 0.5), (1, 1.0)], 1.4, 0.02);
        assert!(close(&out, &[0.7, 0.3]), "{out:?}");
        // An unhealthy standby gets nothing.
        let out = loads(&[(0, 1.0), (1, 0.0)], 1.4, 0.02);
        assert!(close(&out, &[1.0, 0.0]), "{out:?}");
    }

    #[test]
    fn degraded_tiers_are_normalized() {
        // 0.2·1.4 + 0.3·1.4 = 0.7 < 1: each keeps its proportion.
        let out = loads(&[(0, 0.2), (1, 0.3)], 1.4, 0.0);
        assert!(close(&out, &[0.4, 0.6]), "{out:?}");
        let out = loads(&[(0, 0.0), (1, 0.0)], 1.4, 0.0);
        assert!(close(&out, &[0.0, 0.0]), "{out:?}");
        let out = loads(&[(0, 0.5)], 1.4, 0.0);
        assert!(close(&out, &[1.0]), "a lone tier takes everything: {out:?}");
    }

    #[test]
    fn a_tier_is_serving_above_its_trickle() {
        let out = tier_loads(&[(0, 1.0), (1, 1.0)], 1.4, 0.02);
        assert!(out[0].serving(0.02) && !out[1].serving(0.02));
        let out = tier_loads(&[(0, 0.5), (1, 1.0)], 1.4, 0.02);
        assert!(out[1].serving(0.02));
    }
}

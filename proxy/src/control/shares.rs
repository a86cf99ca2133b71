//! How a pool's shares are made and how their changes are noted.
//!
//! The pipeline, for the live policy and a shadow candidate alike: the
//! priority-tier split and weight formulas ([`super::tiers`],
//! [`super::weights`]), canary bounds ([`super::canary`]), the region cap
//! without client regions ([`super::spillover`]), then operator pins
//! ([`super::overrides`]).
//!
//! Every share that moves by a point or more is a decision naming the input
//! that moved most; a share that moves more than 20 points within 5 minutes
//! is a swing (a warning and `ballast_share_swings_total`).

use super::backends::{BackendMemories, BackendMemory};
use super::events::Event;
use super::tiers::{split_tiers, TierLoad};
use super::weights::{BackendInput, Computed, Factors};
use super::{canary, overrides, spillover};
use crate::config::{BackendId, Pool, PoolPolicy};
use crate::stats::backend::Observation;
use crate::telemetry::decisions::DecisionKind;

/// Share moves smaller than this are not logged as decisions.
const DECISION_THRESHOLD: f64 = 0.01;
/// A share moving more than this within `SWING_WINDOW` is a swing worth a warning.
const SWING_THRESHOLD: f64 = 0.2;
const SWING_WINDOW_MS: u64 = 5 * 60 * 1000;

/// Every backend's share under `policy` (the pool's, or a shadow
/// candidate's) from `inputs`: the tier split and weight formulas, canary
/// bounds, the region cap without client regions, then operator pins.
pub fn policy_shares(
    pool: &Pool,
    policy: &PoolPolicy,
    inputs: &[BackendInput],
    with_geo: bool,
    memory: &BackendMemories,
    now_ms: u64,
) -> (Vec<Computed>, Vec<TierLoad>) {
    let (mut computed, tiers) = split_tiers(pool, policy, inputs, now_ms);
    canary::bound(pool, &mut computed);
    if !with_geo && policy.mode.is_adaptive() {
        spillover::cap_region_shares(pool, &mut computed, policy.region_max_share);
    }
    fix_shares(&mut computed, &overrides::pinned_shares(pool, memory));
    (computed, tiers)
}

/// Set the `fixed` shares and scale every other eligible (non-zero) share so
/// that all sum to 1.
pub fn fix_shares(computed: &mut [Computed], fixed: &[Option<f64>]) {
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

/// The latency mode's per-request priors (the product of the engine's
/// factors other than the base: errors, reported utilization, a silent
/// reporter, slow start, schedule) and which backends are held to their
/// share because an operator pinned them.
pub fn steering(
    pool: &Pool,
    computed: &[Computed],
    memory: &BackendMemories,
) -> (Vec<f64>, Vec<bool>) {
    let priors = computed.iter().map(|c| c.factors.prior()).collect();
    let held = overrides::pinned_shares(pool, memory)
        .iter()
        .map(Option::is_some)
        .collect();
    (priors, held)
}

/// In-flight requests each backend is expected to carry at its share: pool
/// rate × share × latency.
pub fn expected_in_flight(computed: &[Computed], observations: &[Observation]) -> Vec<f64> {
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

/// Remember backend `id`'s new share; a move is a decision, a big one
/// within the swing window a swing; the share is published.
pub fn note_change<'a>(
    pool: &'a Pool,
    id: &'a BackendId,
    mem: &mut BackendMemory,
    result: &Computed,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) {
    let old = mem.share.unwrap_or(0.0);
    let new = result.share;
    if (new - old).abs() >= DECISION_THRESHOLD {
        let reason = describe_change(mem.factors.as_ref(), &result.factors);
        events.push(Event::backend(
            &pool.name,
            id,
            DecisionKind::Share,
            (old, new),
            reason,
        ));
    }
    match mem.swing_reference {
        Some((at, reference)) if now_ms.saturating_sub(at) <= SWING_WINDOW_MS => {
            if (new - reference).abs() > SWING_THRESHOLD {
                events.push(Event::ShareSwing {
                    pool: &pool.name,
                    backend: id,
                    from: reference,
                    to: new,
                });
                mem.swing_reference = Some((now_ms, new));
            }
        }
        _ => mem.swing_reference = Some((now_ms, new)),
    }
    mem.share = Some(new);
    mem.factors = Some(result.factors);
    events.push(Event::Share {
        pool: &pool.name,
        backend: id,
        share: new,
    });
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

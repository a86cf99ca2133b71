//! Canaries: a healthy canary's share is held between its `floor` and its
//! `max` (the stable backends share the rest in proportion), and its
//! breaker opens when its error rate passes `max_error_rate` (over the last
//! 2 s, or over 10 s once it has been back that long): no traffic for the
//! cool-down, then re-admission through slow start.

use super::backends::{memory_of, BackendMemories};
use super::events::Event;
use super::shares::fix_shares;
use super::weights::Computed;
use crate::config::Pool;
use crate::stats::backend::Observation;
use crate::stats::window::OutcomeSummary;
use crate::telemetry::decisions::DecisionKind;

/// The span of the full outcome window (see `stats::backend`).
const FULL_WINDOW_MS: u64 = 10_000;

/// Keep healthy canaries between their floor and max share; the stable
/// backends share the rest in proportion.
pub fn bound(pool: &Pool, computed: &mut [Computed]) {
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

/// Open the breakers of failing canaries; close those whose cool-down is
/// over.
pub fn breakers<'a>(
    pool: &'a Pool,
    observations: &[Observation],
    memory: &mut BackendMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
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
                events.push(Event::backend(
                    &pool.name,
                    &backend.id,
                    DecisionKind::CanaryReadmitted,
                    (0.0, 0.0),
                    "canary breaker closed after cool-down; slow start begins",
                ));
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
                events.push(Event::CanaryTripped {
                    pool: &pool.name,
                    backend: &backend.id,
                    old: mem.share.unwrap_or(0.0),
                    reason: format!(
                        "canary breaker opened: error rate {:.1}% over {} requests > {:.1}%; cool-down {:?}",
                        window.error_rate() * 100.0,
                        window.total,
                        policy.max_error_rate * 100.0,
                        policy.cooldown
                    ),
                });
            }
        }
    }
}

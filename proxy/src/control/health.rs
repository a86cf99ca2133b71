//! Active health verdicts: a backend whose health check starts failing
//! leaves its pool, one passing again comes back through slow start; each
//! change is a decision.

use super::backends::{memory_of, BackendMemories};
use super::events::Event;
use crate::config::Pool;
use crate::telemetry::decisions::DecisionKind;

/// Note the backends whose verdict (`healthy`, in `pool`'s order) changed.
pub fn note_changes<'a>(
    pool: &'a Pool,
    healthy: &[bool],
    memory: &mut BackendMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) {
    for (backend, healthy) in pool.backends.iter().zip(healthy) {
        let mem = memory_of(memory, &backend.id);
        let unhealthy = !healthy;
        if unhealthy == mem.unhealthy {
            continue;
        }
        mem.unhealthy = unhealthy;
        let old = mem.share.unwrap_or(0.0);
        let (kind, shares, reason) = if unhealthy {
            let reason = "active health check failing";
            (DecisionKind::Unhealthy, (old, 0.0), reason)
        } else {
            mem.admitted_at_ms = Some(now_ms);
            let reason = "active health check passing; slow start begins";
            (DecisionKind::Healthy, (old, old), reason)
        };
        events.push(Event::backend(
            &pool.name,
            &backend.id,
            kind,
            shares,
            reason,
        ));
    }
}

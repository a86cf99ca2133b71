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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn verdict_changes_are_noted_once_and_a_return_starts_slow() {
        let yaml = "listeners: [{address: \"127.0.0.1:1\"}]\npools:\n  p:\n    backends: [{addr: \"127.0.0.1:9000\"}, {addr: \"127.0.0.1:9001\"}]\nroutes: [{pool: p}]\n";
        let snapshot = crate::config::load_str(yaml, Path::new(".")).unwrap();
        let pool = &snapshot.pools[0];
        let mut memory = BackendMemories::default();
        let mut events = Vec::new();
        note_changes(pool, &[true, false], &mut memory, 1_000, &mut events);
        note_changes(pool, &[true, false], &mut memory, 1_100, &mut events);
        note_changes(pool, &[true, true], &mut memory, 1_200, &mut events);
        let kinds: Vec<DecisionKind> = events
            .iter()
            .map(|e| match e {
                Event::Backend { kind, .. } => *kind,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(kinds, vec![DecisionKind::Unhealthy, DecisionKind::Healthy]);
        let back = &memory[&pool.backends[1].id];
        assert_eq!(back.admitted_at_ms, Some(1_200));
    }
}

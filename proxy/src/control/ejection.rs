//! Passive outlier ejection: `consecutive_failures` failures in a row eject
//! a backend for `base_ejection × times ejected` (at most `max_ejection`),
//! unless that would eject more than `max_ejected` of the pool. A backend
//! coming back re-enters through slow start; its ejection count is
//! forgotten once it has stayed in for `max_ejection`. If nothing in a pool
//! is eligible, the pool panics (see [`super::backends`]).

use super::backends::{memory_of, BackendMemories};
use super::events::Event;
use crate::config::Pool;
use crate::telemetry::decisions::DecisionKind;

/// End the ejections that have run their course (slow start begins) and
/// forget the ejection count of backends that stayed in long enough.
/// Returns the re-admitted backends (indices in `pool`): their failure
/// counts must start again before [`eject`] reads them.
pub fn end_expired<'a>(
    pool: &'a Pool,
    memory: &mut BackendMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) -> Vec<usize> {
    let policy = &pool.policy.outlier;
    let mut readmitted = Vec::new();
    for (i, backend) in pool.backends.iter().enumerate() {
        let mem = memory_of(memory, &backend.id);
        match mem.ejected_until_ms {
            Some(until) if now_ms >= until => {
                mem.ejected_until_ms = None;
                mem.admitted_at_ms = Some(now_ms);
                readmitted.push(i);
                events.push(Event::backend(
                    &pool.name,
                    &backend.id,
                    DecisionKind::Readmitted,
                    (0.0, 0.0),
                    "ejection ended; slow start begins",
                ));
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
    readmitted
}

/// Eject the backends whose consecutive `failures` (in `pool`'s order)
/// reach the threshold, as long as at most `max_ejected` of the pool is out.
pub fn eject<'a>(
    pool: &'a Pool,
    failures: &[u32],
    memory: &mut BackendMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) {
    let policy = &pool.policy.outlier;
    let max_ejected = (pool.backends.len() as f64 * policy.max_ejected).floor() as usize;
    let mut ejected = pool
        .backends
        .iter()
        .filter(|b| {
            memory
                .get(&b.id)
                .is_some_and(|m| m.ejected_until_ms.is_some())
        })
        .count();
    for (backend, &failures) in pool.backends.iter().zip(failures) {
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
        events.push(Event::Ejected {
            pool: &pool.name,
            backend: &backend.id,
            old: mem.share.unwrap_or(0.0),
            failures,
            duration,
            reason: format!(
                "{failures} consecutive failures; ejected for {duration:?} (ejection #{})",
                mem.times_ejected
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Snapshot;
    use std::path::Path;
    use std::time::Duration;

    fn snapshot() -> Snapshot {
        let yaml = "listeners: [{address: \"127.0.0.1:1\"}]\npools:\n  p:\n    outlier: {consecutive_failures: 3, base_ejection: 1s, max_ejection: 10s, max_ejected: 0.5}\n    backends: [{addr: \"127.0.0.1:9000\"}, {addr: \"127.0.0.1:9001\"}, {addr: \"127.0.0.1:9002\"}, {addr: \"127.0.0.1:9003\"}]\nroutes: [{pool: p}]\n";
        crate::config::load_str(yaml, Path::new(".")).unwrap()
    }

    fn kinds(events: &[Event]) -> Vec<(String, DecisionKind)> {
        events
            .iter()
            .map(|e| match e {
                Event::Ejected { backend, .. } => (backend.0.clone(), DecisionKind::Ejected),
                Event::Backend { backend, kind, .. } => (backend.0.clone(), *kind),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn failures_eject_within_max_ejected_and_ejections_end_and_grow() {
        let snapshot = snapshot();
        let pool = &snapshot.pools[0];
        let mut memory = BackendMemories::default();
        let mut events = Vec::new();
        eject(pool, &[3, 5, 3, 0], &mut memory, 1_000, &mut events);
        let ejected = kinds(&events);
        assert_eq!(ejected.len(), 2, "half of the pool at most: {ejected:?}");
        assert!(matches!(
            events[0],
            Event::Ejected { duration, failures: 3, .. } if duration == Duration::from_secs(1)
        ));

        events.clear();
        assert!(end_expired(pool, &mut memory, 1_999, &mut events).is_empty());
        assert_eq!(
            end_expired(pool, &mut memory, 2_000, &mut events),
            vec![0, 1]
        );
        let readmitted = kinds(&events);
        assert!(readmitted
            .iter()
            .all(|(_, k)| *k == DecisionKind::Readmitted));

        events.clear();
        eject(pool, &[3, 0, 0, 0], &mut memory, 2_100, &mut events);
        assert!(matches!(
            events[0],
            Event::Ejected { duration, .. } if duration == Duration::from_secs(2)
        ));
    }
}

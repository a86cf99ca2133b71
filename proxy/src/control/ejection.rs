//! Passive outlier ejection: `consecutive_failures` failures in a row, or
//! (`failure_rate`) more than `threshold` of at least `min_requests`
//! requests failed over the 10 s outcome window, eject a backend for
//! `base_ejection × times ejected` (at most `max_ejection`), unless that
//! would eject more than `max_ejected` of the pool. The failure rate is an
//! absolute threshold (Envoy's `failure_percentage`, not its
//! `success_rate`, which needs 5 hosts to compare): it works with two
//! backends. A backend that came back from an ejection is judged by rate
//! only once the window holds no outcome from before it came back.
//!
//! A backend held back by `max_ejected` at the consecutive-failure threshold
//! has its count restarted: only new failures in a row eject it later.
//! A backend coming back re-enters through slow start; its ejection count is
//! forgotten once it has stayed in for `max_ejection`. If nothing in a pool
//! is eligible, the pool panics (see [`super::backends`]).

use super::backends::{memory_of, BackendMemories};
use super::events::Event;
use crate::config::Pool;
use crate::stats::backend::Observation;
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

/// Why a backend is ejected.
enum Cause {
    /// This many failures in a row.
    Consecutive(u32),
    /// `errors` of `total` requests failed over the window.
    Rate { errors: u64, total: u64 },
}

/// Eject the backends whose consecutive `failures` (in `pool`'s order)
/// reach the threshold, or whose failure rate in `observations` is over it,
/// as long as at most `max_ejected` of the pool is out. Returns the
/// backends at the consecutive-failure threshold that `max_ejected` held
/// back: their counts must restart.
pub fn eject<'a>(
    pool: &'a Pool,
    failures: &[u32],
    observations: &[Observation],
    memory: &mut BackendMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) -> Vec<usize> {
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
    let mut held_back = Vec::new();
    for (i, backend) in pool.backends.iter().enumerate() {
        let mem = memory_of(memory, &backend.id);
        if mem.ejected_until_ms.is_some() {
            continue;
        }
        let outcomes = &observations[i].outcomes;
        let came_back_within_window = mem.times_ejected > 0
            && mem
                .admitted_at_ms
                .is_some_and(|at| now_ms.saturating_sub(at) < outcomes.window_ms);
        let cause = if failures[i] >= policy.consecutive_failures {
            Cause::Consecutive(failures[i])
        } else {
            match policy.failure_rate {
                Some(rate)
                    if !came_back_within_window
                        && outcomes.total >= rate.min_requests
                        && outcomes.error_rate() > rate.threshold =>
                {
                    Cause::Rate {
                        errors: outcomes.errors,
                        total: outcomes.total,
                    }
                }
                _ => continue,
            }
        };
        if ejected + 1 > max_ejected {
            if matches!(cause, Cause::Consecutive(_)) {
                held_back.push(i);
            }
            continue;
        }
        mem.times_ejected += 1;
        let duration = (policy.base_ejection * mem.times_ejected).min(policy.max_ejection);
        mem.ejected_until_ms = Some(now_ms + duration.as_millis() as u64);
        ejected += 1;
        let times = mem.times_ejected;
        let (failures, what) = match cause {
            Cause::Consecutive(n) => (n, format!("{n} consecutive failures")),
            Cause::Rate { errors, total } => (
                errors as u32,
                format!(
                    "{errors} of {total} requests failed over {:.0} s (over {})",
                    outcomes.window_ms as f64 / 1000.0,
                    policy.failure_rate.map_or(0.0, |r| r.threshold)
                ),
            ),
        };
        events.push(Event::Ejected {
            pool: &pool.name,
            backend: &backend.id,
            old: mem.share.unwrap_or(0.0),
            failures,
            duration,
            reason: format!("{what}; ejected for {duration:?} (ejection #{times})"),
        });
    }
    held_back
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

    /// Observations of `n` backends that served nothing.
    fn quiet(n: usize) -> Vec<Observation> {
        (0..n)
            .map(|_| crate::stats::backend::BackendStats::new().observe(1_000))
            .collect()
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
        let held_back = eject(
            pool,
            &[3, 5, 3, 0],
            &quiet(4),
            &mut memory,
            1_000,
            &mut events,
        );
        let ejected = kinds(&events);
        assert_eq!(ejected.len(), 2, "half of the pool at most: {ejected:?}");
        assert_eq!(held_back, vec![2], "its count must restart");
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
        eject(
            pool,
            &[3, 0, 0, 0],
            &quiet(4),
            &mut memory,
            2_100,
            &mut events,
        );
        assert!(matches!(
            events[0],
            Event::Ejected { duration, .. } if duration == Duration::from_secs(2)
        ));
    }

    #[test]
    fn a_backend_back_from_ejection_is_judged_by_rate_on_new_outcomes_only() {
        let snapshot = snapshot();
        let pool = &snapshot.pools[0];
        let failing = crate::stats::backend::BackendStats::new();
        for _ in 0..30 {
            failing.record_failure(1_000, None);
        }
        let mut observations = quiet(4);
        observations[1] = failing.observe(1_000);
        let mut memory = BackendMemories::default();
        let mut events = Vec::new();
        eject(
            pool,
            &[0, 0, 0, 0],
            &observations,
            &mut memory,
            1_000,
            &mut events,
        );
        assert!(matches!(
            &events[..],
            [Event::Ejected { failures: 30, reason, .. }] if reason.contains("30 of 30 requests failed")
        ));
        events.clear();
        end_expired(pool, &mut memory, 2_000, &mut events);
        events.clear();
        // Its window still holds the failures from before it came back.
        observations[1] = failing.observe(2_000);
        eject(
            pool,
            &[0, 0, 0, 0],
            &observations,
            &mut memory,
            2_000,
            &mut events,
        );
        assert!(events.is_empty(), "not ejected again on old failures");
    }
}

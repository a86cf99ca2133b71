//! Operator overrides from the admin API: a drained backend gets no new
//! requests (undrained, it comes back through slow start); a pinned backend
//! holds its share until the pin expires or is lifted, as long as the pins
//! fit in the whole (a drained backend's pin does not apply). Every
//! override, and a pin expiring, is a decision.

use super::backends::{BackendMemories, BackendMemory};
use super::events::Event;
use crate::config::Pool;
use crate::telemetry::decisions::DecisionKind;
use std::time::Duration;

/// Drain (`true`) or undrain a backend; the reason to record.
pub fn drain(mem: &mut BackendMemory, drain: bool, now_ms: u64) -> String {
    mem.drained = drain;
    if drain {
        "drained by operator".to_string()
    } else {
        mem.admitted_at_ms = Some(now_ms);
        "undrained by operator; slow start begins".to_string()
    }
}

/// Pin a backend's share for a while (`None` lifts a pin); the reason to
/// record.
pub fn pin(mem: &mut BackendMemory, pin: Option<(f64, Duration)>, now_ms: u64) -> String {
    match pin {
        Some((share, duration)) => {
            mem.pinned = Some((share, now_ms + duration.as_millis() as u64));
            format!("pinned at {share:.3} for {duration:?} by operator")
        }
        None => {
            mem.pinned = None;
            "pin lifted by operator".to_string()
        }
    }
}

/// Lift the pins that have expired.
pub fn expire_pins<'a>(
    pool: &'a Pool,
    memory: &mut BackendMemories,
    now_ms: u64,
    events: &mut Vec<Event<'a>>,
) {
    for backend in &pool.backends {
        let Some(mem) = memory.get_mut(&backend.id) else {
            continue;
        };
        if mem.pinned.is_some_and(|(_, until)| now_ms >= until) {
            mem.pinned = None;
            let share = mem.share.unwrap_or(0.0);
            events.push(Event::backend(
                &pool.name,
                &backend.id,
                DecisionKind::Override,
                (share, share),
                "pin expired",
            ));
        }
    }
}

/// The share each pinned backend holds (`None`: not pinned), as long as the
/// pins fit in the whole; a drained backend's pin does not apply.
pub fn pinned_shares(pool: &Pool, memory: &BackendMemories) -> Vec<Option<f64>> {
    let mut pinned_total = 0.0;
    pool.backends
        .iter()
        .map(|backend| {
            let mem = memory.get(&backend.id).filter(|m| !m.drained)?;
            let (share, _) = mem.pinned?;
            (pinned_total + share <= 1.0).then(|| {
                pinned_total += share;
                share
            })
        })
        .collect()
}

//! Operator overrides from the admin API: a drained backend gets no new
//! requests (undrained, it comes back through slow start); a pinned backend
//! holds its share until the pin expires or is lifted, as long as the pins
//! fit in the whole (a drained backend's pin does not apply). Every
//! override, and a pin expiring, is a decision.
//!
//! In fleet mode the overrides live in the fleet's store instead: each
//! instance brings its own in line with the stored ones ([`reconcile`]),
//! so an override issued anywhere applies everywhere and outlives a
//! restart.

use super::backends::{BackendMemories, BackendMemory};
use super::events::Event;
use crate::config::{BackendId, Pool};
use crate::telemetry::decisions::DecisionKind;
use std::collections::HashMap;
use std::time::Duration;

/// A pin kept in a fleet's store.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedPin {
    pub share: f64,
    /// When it lapses, Unix ms.
    pub until_unix_ms: u64,
    /// The instance it was issued on.
    pub by: String,
}

/// The overrides a fleet's store holds, by backend; a drain names the
/// instance it was issued on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SharedOverrides {
    pub drained: HashMap<BackendId, String>,
    pub pinned: HashMap<BackendId, SharedPin>,
}

/// Pins whose ends differ by less than this are the same pin.
const SAME_PIN_MS: u64 = 1_000;

/// Bring one backend's overrides in line with the shared ones: the reasons
/// of the changes made (none when it already was). `unix_now_ms` and
/// `now_ms` are the same moment on the wall and the engine's clocks.
pub fn reconcile(
    mem: &mut BackendMemory,
    id: &BackendId,
    shared: &SharedOverrides,
    unix_now_ms: u64,
    now_ms: u64,
) -> Vec<String> {
    let mut reasons = Vec::new();
    let drained_by = shared.drained.get(id);
    if mem.drained != drained_by.is_some() {
        let reason = drain(mem, drained_by.is_some(), now_ms);
        reasons.push(match drained_by {
            Some(by) => format!("{reason} on {by} (fleet)"),
            None => format!("{reason} (fleet)"),
        });
    }
    let wanted = shared
        .pinned
        .get(id)
        .filter(|pin| pin.until_unix_ms > unix_now_ms)
        .map(|pin| (pin, now_ms + (pin.until_unix_ms - unix_now_ms)));
    let same = match (mem.pinned, &wanted) {
        (None, None) => true,
        (Some((share, until)), Some((pin, wanted_until))) => {
            share == pin.share && until.abs_diff(*wanted_until) < SAME_PIN_MS
        }
        _ => false,
    };
    if !same {
        let reason = match wanted {
            Some((pin, until)) => {
                let reason = self::pin(
                    mem,
                    Some((pin.share, Duration::from_millis(until - now_ms))),
                    now_ms,
                );
                format!("{reason} on {} (fleet)", pin.by)
            }
            None => format!("{} (fleet)", self::pin(mem, None, now_ms)),
        };
        reasons.push(reason);
    }
    reasons
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> BackendId {
        BackendId("p/127.0.0.1:80".into())
    }

    #[test]
    fn a_shared_drain_and_pin_are_applied_once_and_lifted_when_gone() {
        let mut mem = BackendMemory::default();
        let mut shared = SharedOverrides::default();
        shared.drained.insert(id(), "edge-1".into());
        shared.pinned.insert(
            id(),
            SharedPin {
                share: 0.3,
                until_unix_ms: 1_060_000,
                by: "edge-2".into(),
            },
        );
        let reasons = reconcile(&mut mem, &id(), &shared, 1_000_000, 5_000);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("drained") && reasons[0].contains("edge-1"));
        assert!(mem.drained);
        assert_eq!(mem.pinned, Some((0.3, 65_000)));
        // Read again a little later: nothing changes, nothing recorded.
        assert!(reconcile(&mut mem, &id(), &shared, 1_000_400, 5_400).is_empty());
        // Gone from the store: undrained and unpinned.
        let reasons = reconcile(
            &mut mem,
            &id(),
            &SharedOverrides::default(),
            1_001_000,
            6_000,
        );
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(!mem.drained);
        assert_eq!(mem.pinned, None);
    }

    #[test]
    fn a_lapsed_shared_pin_is_not_applied() {
        let mut mem = BackendMemory::default();
        let mut shared = SharedOverrides::default();
        shared.pinned.insert(
            id(),
            SharedPin {
                share: 0.3,
                until_unix_ms: 999_000,
                by: "edge-2".into(),
            },
        );
        assert!(reconcile(&mut mem, &id(), &shared, 1_000_000, 5_000).is_empty());
        assert_eq!(mem.pinned, None);
    }
}

//! What is known about each named backend entry: its last good addresses,
//! when it last resolved or failed, and when it is asked again.
//!
//! Next resolution: after a success, the records' shortest TTL clamped to
//! `[ttl_floor, ttl_ceiling]`; after `n` failures in a row,
//! `min(ttl_floor × 2^(n-1), ttl_ceiling)`.

use super::dns::{Failure, Resolved};
use crate::config::{DnsName, Snapshot};
use crate::telemetry::metrics::Metrics;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

/// A named entry: its pool and the name it asks for.
pub(super) type NameKey = (String, DnsName);

/// The most doublings of the retry delay after failures in a row.
const MAX_BACKOFF_DOUBLINGS: u32 = 16;

pub(super) struct NameState {
    /// Where the entry is in the file, e.g. `pools.api.backends[1]`.
    path: String,
    /// The last good addresses; `None` before the first success.
    pub(super) addrs: Option<Vec<SocketAddr>>,
    last_success: Option<SystemTime>,
    /// The last failure: when, its kind and its message.
    last_error: Option<(SystemTime, &'static str, String)>,
    /// Failures since the last success.
    failures: u32,
    pub(super) next_due: Instant,
}

/// What the state API shows of one named entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NameStatus {
    pub pool: String,
    pub name: String,
    /// `host` (A/AAAA) or `srv`.
    pub kind: &'static str,
    pub path: String,
    /// The last good addresses (empty before the first success).
    pub addresses: Vec<SocketAddr>,
    /// `pending` (never resolved yet), `ok`, or `failing` (the last
    /// resolution failed; the last good addresses stay).
    pub status: &'static str,
    pub last_success: Option<SystemTime>,
    pub last_error: Option<(SystemTime, &'static str, String)>,
    pub failures: u32,
    pub next_refresh: SystemTime,
}

impl NameState {
    fn new(path: String, now: Instant) -> Self {
        Self {
            path,
            addrs: None,
            last_success: None,
            last_error: None,
            failures: 0,
            next_due: now,
        }
    }

    /// Take a successful resolution; returns the addresses it replaces.
    pub(super) fn succeeded(
        &mut self,
        resolved: Resolved,
        now: Instant,
        wall: SystemTime,
        (floor, ceiling): (Duration, Duration),
    ) -> Option<Vec<SocketAddr>> {
        self.last_success = Some(wall);
        self.failures = 0;
        self.next_due = now + resolved.ttl.clamp(floor, ceiling);
        self.addrs.replace(resolved.addrs)
    }

    /// Take a failed resolution: the addresses stay; retry with backoff.
    pub(super) fn failed(
        &mut self,
        failure: &Failure,
        now: Instant,
        wall: SystemTime,
        (floor, ceiling): (Duration, Duration),
    ) {
        self.failures = self.failures.saturating_add(1);
        self.last_error = Some((wall, failure.kind.as_str(), failure.message.clone()));
        let doublings = (self.failures - 1).min(MAX_BACKOFF_DOUBLINGS);
        self.next_due = now + floor.saturating_mul(1 << doublings).min(ceiling);
    }

    pub(super) fn status(&self, key: &NameKey, now: Instant, wall: SystemTime) -> NameStatus {
        let status = match (&self.addrs, self.failures) {
            (_, 1..) => "failing",
            (None, 0) => "pending",
            (Some(_), 0) => "ok",
        };
        NameStatus {
            pool: key.0.clone(),
            name: key.1.to_string(),
            kind: key.1.kind(),
            path: self.path.clone(),
            addresses: self.addrs.clone().unwrap_or_default(),
            status,
            last_success: self.last_success,
            last_error: self.last_error.clone(),
            failures: self.failures,
            next_refresh: wall + self.next_due.saturating_duration_since(now),
        }
    }
}

/// Make `names` the named entries of `snapshot`: those that stay keep what
/// is known (their path is updated), new ones are due now, and those gone
/// are dropped with their address gauge.
pub(super) fn reconcile(
    names: &mut BTreeMap<NameKey, NameState>,
    snapshot: &Snapshot,
    metrics: &Metrics,
) {
    let now = Instant::now();
    let mut kept = BTreeMap::new();
    for (pool, entry) in snapshot.named_entries() {
        let key = (pool.to_string(), entry.name.clone());
        let mut state = names
            .remove(&key)
            .unwrap_or_else(|| NameState::new(entry.path.clone(), now));
        state.path = entry.path.clone();
        kept.insert(key, state);
    }
    for (pool, name) in names.keys() {
        let _ = metrics
            .discovery_addresses
            .remove_label_values(&[pool.as_str(), &name.to_string()]);
    }
    *names = kept;
}

#[cfg(test)]
mod tests;

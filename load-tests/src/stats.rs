//! Request counters of an origin: the total, per method, per path, per
//! `x-request-id` (to catch a request that arrived more than once), and the
//! outcomes the origin forced (injected errors, resets, hangs, requests
//! refused because its queue was full).
//!
//! Memory stays bounded. Each per-key table remembers at most a fixed number
//! of distinct keys ([`MAX_TRACKED_METHODS`], [`MAX_TRACKED_PATHS`],
//! [`MAX_TRACKED_REQUEST_IDS`]). Once a table is full, keys already in it
//! keep counting but new keys are not recorded: the total still counts
//! their requests, `count`/`count_path`/`seen_request_id` read 0 for them,
//! and a repeat of a request id first seen after the id table filled up is
//! not counted as a duplicate. [`OriginStats::reset`] empties the tables.

use http::Method;
use hyper::body::Incoming;
use hyper::Request;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Distinct methods counted one by one.
pub const MAX_TRACKED_METHODS: usize = 64;
/// Distinct paths counted one by one.
pub const MAX_TRACKED_PATHS: usize = 10_000;
/// Distinct `x-request-id` values remembered for duplicate detection.
pub const MAX_TRACKED_REQUEST_IDS: usize = 1_000_000;

/// Request counters.
#[derive(Debug, Default)]
pub struct OriginStats {
    total: AtomicU64,
    injected_errors: AtomicU64,
    resets: AtomicU64,
    hung: AtomicU64,
    queue_full: AtomicU64,
    keyed: Mutex<KeyedCounts>,
}

/// The counters of one moment, as the control API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub total: u64,
    pub by_method: BTreeMap<String, u64>,
    pub by_path: BTreeMap<String, u64>,
    /// Request ids that arrived more than once.
    pub duplicates: u64,
    pub injected_errors: u64,
    pub resets: u64,
    pub hung: u64,
    /// Requests answered 503 because the queue for a worker was full.
    pub queue_full: u64,
}

impl OriginStats {
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub fn count(&self, method: &Method) -> u64 {
        self.keyed().by_method.get(method.as_str())
    }

    /// Requests for exactly this path (without query).
    pub fn count_path(&self, path: &str) -> u64 {
        self.keyed().by_path.get(path)
    }

    /// How many times a request with this `x-request-id` arrived.
    pub fn seen_request_id(&self, id: &str) -> u64 {
        self.keyed().by_request_id.get(id)
    }

    /// How many distinct `x-request-id` values arrived more than once.
    pub fn duplicates(&self) -> u64 {
        self.keyed().duplicates
    }

    /// Requests answered with an injected error status.
    pub fn injected_errors(&self) -> u64 {
        self.injected_errors.load(Ordering::SeqCst)
    }

    /// Requests whose connection was reset instead of answered.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::SeqCst)
    }

    /// Requests that arrived while the origin was hanging.
    pub fn hung(&self) -> u64 {
        self.hung.load(Ordering::SeqCst)
    }

    /// Requests refused because the queue for a worker was full.
    pub fn queue_full(&self) -> u64 {
        self.queue_full.load(Ordering::SeqCst)
    }

    /// Every counter now.
    pub fn snapshot(&self) -> StatsSnapshot {
        let keyed = self.keyed();
        StatsSnapshot {
            total: self.total(),
            by_method: keyed.by_method.to_sorted(),
            by_path: keyed.by_path.to_sorted(),
            duplicates: keyed.duplicates,
            injected_errors: self.injected_errors(),
            resets: self.resets(),
            hung: self.hung(),
            queue_full: self.queue_full(),
        }
    }

    /// Sets every counter back to zero and forgets every key. Requests
    /// arriving meanwhile may be counted before or after the reset.
    pub fn reset(&self) {
        *self.keyed() = KeyedCounts::default();
        for counter in [
            &self.total,
            &self.injected_errors,
            &self.resets,
            &self.hung,
            &self.queue_full,
        ] {
            counter.store(0, Ordering::SeqCst);
        }
    }

    pub(crate) fn record(&self, req: &Request<Incoming>) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        let mut keyed = self.keyed();
        keyed.by_method.add(req.method().as_str());
        keyed.by_path.add(req.uri().path());
        if let Some(id) = request_id {
            keyed.add_request_id(id);
        }
    }

    pub(crate) fn record_injected_error(&self) {
        self.injected_errors.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn record_reset(&self) {
        self.resets.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn record_hang(&self) {
        self.hung.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn record_queue_full(&self) {
        self.queue_full.fetch_add(1, Ordering::SeqCst);
    }

    fn keyed(&self) -> std::sync::MutexGuard<'_, KeyedCounts> {
        // The counters stay consistent even if a holder panicked.
        self.keyed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The per-key tables, behind one lock.
#[derive(Debug)]
struct KeyedCounts {
    by_method: BoundedCounts,
    by_path: BoundedCounts,
    by_request_id: BoundedCounts,
    duplicates: u64,
}

impl Default for KeyedCounts {
    fn default() -> Self {
        Self {
            by_method: BoundedCounts::new(MAX_TRACKED_METHODS),
            by_path: BoundedCounts::new(MAX_TRACKED_PATHS),
            by_request_id: BoundedCounts::new(MAX_TRACKED_REQUEST_IDS),
            duplicates: 0,
        }
    }
}

impl KeyedCounts {
    fn add_request_id(&mut self, id: &str) {
        if self.by_request_id.add(id) == Some(2) {
            self.duplicates += 1;
        }
    }
}

/// Counts per key, remembering at most `max_keys` distinct keys.
#[derive(Debug)]
struct BoundedCounts {
    counts: HashMap<String, u64>,
    max_keys: usize,
}

impl BoundedCounts {
    fn new(max_keys: usize) -> Self {
        Self {
            counts: HashMap::new(),
            max_keys,
        }
    }

    /// Counts one more `key` and returns its new count, or `None` when the
    /// key is new and the table is full (the key is then not counted).
    fn add(&mut self, key: &str) -> Option<u64> {
        if let Some(count) = self.counts.get_mut(key) {
            *count += 1;
            return Some(*count);
        }
        if self.counts.len() >= self.max_keys {
            return None;
        }
        self.counts.insert(key.to_string(), 1);
        Some(1)
    }

    fn get(&self, key: &str) -> u64 {
        self.counts.get(key).copied().unwrap_or(0)
    }

    fn to_sorted(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(key, count)| (key.clone(), *count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_counts_stop_remembering_new_keys_when_full() {
        let mut counts = BoundedCounts::new(2);
        assert_eq!(counts.add("a"), Some(1));
        assert_eq!(counts.add("b"), Some(1));
        assert_eq!(counts.add("c"), None, "full: new keys are not counted");
        assert_eq!(counts.add("a"), Some(2), "known keys still count");
        assert_eq!((counts.get("a"), counts.get("c")), (2, 0));
    }

    #[test]
    fn duplicates_count_ids_seen_more_than_once() {
        let mut keyed = KeyedCounts::default();
        for id in ["a", "b", "a", "c", "c", "c"] {
            keyed.add_request_id(id);
        }
        assert_eq!(keyed.duplicates, 2);
        assert_eq!(keyed.by_request_id.get("c"), 3);
    }

    #[test]
    fn reset_clears_everything() {
        let stats = OriginStats::default();
        stats.total.store(3, Ordering::SeqCst);
        stats.record_reset();
        stats.keyed().add_request_id("x");
        stats.keyed().add_request_id("x");
        stats.reset();
        assert_eq!(
            stats.snapshot(),
            StatsSnapshot {
                total: 0,
                by_method: BTreeMap::new(),
                by_path: BTreeMap::new(),
                duplicates: 0,
                injected_errors: 0,
                resets: 0,
                hung: 0,
                queue_full: 0,
            }
        );
        assert_eq!(stats.seen_request_id("x"), 0);
    }
}

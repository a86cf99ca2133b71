//! Backends named by DNS, kept current: each named entry of the running
//! configuration (`addr: host:port`, `srv: name`) is resolved when it is due,
//! and a change of the addresses it stands for is installed in the engine
//! exactly as a reload is ([`Engine::install`]): the running snapshot is the
//! configured one with the latest addresses in place
//! ([`Snapshot::with_resolved`]), so an address that appears joins in slow
//! start and one that vanishes drains (its requests in flight finish, no new
//! ones are sent), while the others keep what was learned about them.
//!
//! When a name is due: after its records' shortest TTL, clamped to
//! `discovery.ttl_floor`..`ttl_ceiling`. A resolution that fails or comes
//! back empty keeps the last good addresses (none before the first success)
//! and is tried again after `ttl_floor`, doubling up to `ttl_ceiling`. Every
//! resolution is counted in `ballast_discovery_resolutions_total`; a change
//! and a failure each leave a `discovery` decision; [`Discovery::status`]
//! is what the state API shows.
//!
//! The reloader hands every new configuration here ([`Discovery::install`]):
//! names that stay keep their addresses; new ones are resolved at once.

pub mod dns;
mod names;

use crate::config::{DiscoverySettings, Snapshot};
use crate::control::engine::{Engine, InstallReport};
use crate::stats::clock;
use crate::telemetry::decisions::{DecisionKind, DecisionLog, RoutingDecision};
use crate::telemetry::metrics::Metrics;
use dns::{Dns, Failure, Resolved};
pub use names::NameStatus;
use names::{NameKey, NameState};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};
use tokio::sync::Notify;

/// Keeps the named backend entries resolved and the engine's snapshot current.
pub struct Discovery {
    engine: Arc<Engine>,
    metrics: Arc<Metrics>,
    decisions: Arc<DecisionLog>,
    inner: Mutex<Inner>,
    /// Woken when a configuration brings names to resolve.
    wake: Notify,
}

struct Inner {
    /// The configuration as compiled: named entries without addresses.
    configured: Arc<Snapshot>,
    names: BTreeMap<NameKey, NameState>,
    /// Built on first use, and again when the `discovery` settings change.
    dns: Option<Arc<Dns>>,
}

impl Inner {
    fn running_snapshot(&self) -> Snapshot {
        self.configured.with_resolved(|pool, name| {
            self.names
                .get(&(pool.to_string(), name.clone()))
                .and_then(|state| state.addrs.as_deref())
        })
    }

    fn settings(&self) -> &DiscoverySettings {
        &self.configured.discovery
    }
}

impl Discovery {
    /// Discovery for `configured`, whose running form (named entries without
    /// addresses yet) the engine was built with: see [`Self::running`].
    pub fn new(
        configured: Arc<Snapshot>,
        engine: Arc<Engine>,
        metrics: Arc<Metrics>,
        decisions: Arc<DecisionLog>,
    ) -> Self {
        let mut inner = Inner {
            configured: configured.clone(),
            names: BTreeMap::new(),
            dns: None,
        };
        names::reconcile(&mut inner.names, &configured, &metrics);
        Self {
            engine,
            metrics,
            decisions,
            inner: Mutex::new(inner),
            wake: Notify::new(),
        }
    }

    /// What the engine runs before any name has resolved: `configured`
    /// with no address for its named entries.
    pub fn running(configured: &Snapshot) -> Snapshot {
        configured.with_resolved(|_, _| None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Switch to a new configuration (a reload): named entries that stay
    /// keep their addresses, new ones are resolved at once.
    pub fn install(&self, configured: Arc<Snapshot>, now_ms: u64) -> InstallReport {
        let mut inner = self.lock();
        if inner.settings() != &configured.discovery {
            inner.dns = None;
        }
        inner.configured = configured;
        let configured = inner.configured.clone();
        names::reconcile(&mut inner.names, &configured, &self.metrics);
        let report = self
            .engine
            .install(Arc::new(inner.running_snapshot()), now_ms);
        drop(inner);
        self.wake.notify_one();
        report
    }

    /// Every named entry: its addresses and how its resolutions went.
    pub fn status(&self) -> Vec<NameStatus> {
        let inner = self.lock();
        let (now, wall) = (Instant::now(), SystemTime::now());
        inner
            .names
            .iter()
            .map(|(key, state)| state.status(key, now, wall))
            .collect()
    }

    /// The names due now and the resolver to ask, or when the next is due
    /// (`None`: no name to resolve; no resolver is built then).
    fn due(&self, now: Instant) -> (Vec<NameKey>, Option<Arc<Dns>>, Option<Instant>) {
        let mut inner = self.lock();
        if inner.names.is_empty() {
            return (Vec::new(), None, None);
        }
        let dns = match &inner.dns {
            Some(dns) => dns.clone(),
            None => {
                let dns = Arc::new(Dns::new(inner.settings()));
                inner.dns = Some(dns.clone());
                dns
            }
        };
        let due = inner
            .names
            .iter()
            .filter(|(_, state)| state.next_due <= now)
            .map(|(key, _)| key.clone())
            .collect();
        let next = inner.names.values().map(|state| state.next_due).min();
        (due, Some(dns), next)
    }

    /// Resolve names as they fall due, until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        loop {
            let (due, dns, next) = self.due(Instant::now());
            let Some(dns) = dns.filter(|_| !due.is_empty()) else {
                let sleep = async {
                    match next {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = sleep => {}
                    () = self.wake.notified() => {}
                }
                continue;
            };
            let mut resolutions = tokio::task::JoinSet::new();
            for key in due {
                let dns = dns.clone();
                resolutions.spawn(async move {
                    let result = dns.resolve(&key.1).await;
                    (key, result)
                });
            }
            // Each answer is taken as it comes: a name that times out does
            // not hold back the others'.
            while let Some(joined) = resolutions.join_next().await {
                if let Ok((key, result)) = joined {
                    self.apply(key, result);
                }
            }
        }
    }

    /// Record a resolution; install the new addresses if they changed.
    fn apply(&self, key: NameKey, result: Result<Resolved, Failure>) {
        let mut inner = self.lock();
        let (now, wall, now_ms) = (Instant::now(), SystemTime::now(), clock::now_ms());
        let bounds = (inner.settings().ttl_floor, inner.settings().ttl_ceiling);
        // A reload may have dropped the name while it was being resolved.
        let Some(state) = inner.names.get_mut(&key) else {
            return;
        };
        let (pool, name) = (key.0.as_str(), key.1.to_string());
        let result_label = match &result {
            Ok(_) => "ok",
            Err(failure) => failure.kind.as_str(),
        };
        self.metrics
            .discovery_resolutions
            .with_label_values(&[pool, &name, result_label])
            .inc();
        let change = match result {
            Ok(resolved) => {
                let before = state.succeeded(resolved, now, wall, bounds);
                let after = state.addrs.as_deref().unwrap_or_default();
                self.metrics
                    .discovery_addresses
                    .with_label_values(&[pool, &name])
                    .set(after.len() as f64);
                (before.as_deref() != Some(after))
                    .then(|| Change::of(before.as_deref().unwrap_or_default(), after))
            }
            Err(failure) => {
                state.failed(&failure, now, wall, bounds);
                Some(Change::failed(
                    &failure,
                    state.addrs.as_ref().map_or(0, Vec::len),
                ))
            }
        };
        let Some(change) = change else {
            return;
        };
        if change.failed {
            tracing::warn!(
                pool,
                name,
                "resolving a backend name failed: {}",
                change.reason
            );
        } else {
            tracing::info!(pool, name, "backend name resolved: {}", change.reason);
        }
        self.decisions.record(RoutingDecision {
            at: wall,
            at_ms: now_ms,
            pool: pool.to_string(),
            backend: name,
            kind: DecisionKind::Discovery,
            old_share: change.before as f64,
            new_share: change.after as f64,
            reason: change.reason,
        });
        if !change.failed {
            let report = self
                .engine
                .install(Arc::new(inner.running_snapshot()), now_ms);
            tracing::info!(
                added = ?report.added,
                removed = ?report.removed,
                kept = report.kept,
                "backends named by DNS changed"
            );
        }
    }
}

/// What a resolution changed, for the decision log: the address counts
/// before and after, and why.
struct Change {
    before: usize,
    after: usize,
    reason: String,
    /// The resolution failed: the addresses stay.
    failed: bool,
}

impl Change {
    /// From `before` to `after`: which addresses came and went.
    fn of(before: &[SocketAddr], after: &[SocketAddr]) -> Self {
        let added = after
            .iter()
            .filter(|a| !before.contains(a))
            .map(|a| format!("+{a}"));
        let removed = before
            .iter()
            .filter(|a| !after.contains(a))
            .map(|a| format!("-{a}"));
        let moves: Vec<String> = added.chain(removed).collect();
        Self {
            before: before.len(),
            after: after.len(),
            reason: format!(
                "addresses {} -> {}: {}",
                before.len(),
                after.len(),
                moves.join(" ")
            ),
            failed: false,
        }
    }

    /// A failure, with the `kept` addresses that stay.
    fn failed(failure: &Failure, kept: usize) -> Self {
        Self {
            before: kept,
            after: kept,
            reason: format!(
                "{}: {}; keeping {kept} address(es)",
                failure.kind.as_str(),
                failure.message
            ),
            failed: true,
        }
    }
}

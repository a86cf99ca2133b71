//! Follows a fleet's configuration in etcd: applies each revision of
//! `PREFIX/config` as it is written (validated exactly as a file reload is:
//! a bad one is refused and the running one kept), and keeps this
//! instance's registration under `PREFIX/members/INSTANCE` current (on a
//! lease, renewed every few seconds) with the revision it runs and the
//! errors of the last one it refused.
//!
//! It also follows the operator overrides under `PREFIX/overrides/`
//! ([`super::overrides`]): on every change it reads them all and brings the
//! engine in line, so a drain or pin issued on any instance applies here,
//! and one stored before this instance started applies from its start.
//! The registration is refreshed with every lease renewal, with the
//! backends' current shares, and the registered members are counted (the
//! fleet size the budgets fall back on, see [`super::budgets`]).
//!
//! When etcd cannot be reached the instance serves on with its last good
//! configuration, retries with backoff (0.2 s doubling to 5 s), and shows it
//! in `ballast_config_store_up` and its state API. On reconnecting it reads
//! the key again, so a revision written meanwhile is applied: nothing is
//! lost.

use super::budgets::LiveMembers;
use super::overrides::unix_now_ms;
use super::store::{Member, Store, StoreUrl};
use crate::control::engine::Engine;
use crate::reload::{ReloadOutcome, Reloader};
use crate::stats::clock;
use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use etcd_client::{EventType, WatchOptions};
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The registration lease's time to live; renewed every third of it.
const LEASE_TTL_SECS: i64 = 9;

/// The first and the longest wait before connecting again.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(200), Duration::from_secs(5));

/// This instance as the fleet sees it.
#[derive(Debug, Clone)]
pub struct Identity {
    pub instance: String,
    pub admin: String,
}

/// The background service following the store.
pub struct StoreFollower {
    pub url: StoreUrl,
    pub identity: Identity,
    pub reloader: Arc<Reloader>,
    pub engine: Arc<Engine>,
    /// How many instances are registered, for the budgets' fallback.
    pub live_members: Arc<LiveMembers>,
    pub metrics: Arc<Metrics>,
    /// Where relative paths in the configuration resolve.
    pub base_dir: PathBuf,
}

#[async_trait]
impl BackgroundService for StoreFollower {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut wait = BACKOFF.0;
        loop {
            let failure = tokio::select! {
                failure = self.follow() => failure,
                _ = shutdown.changed() => return,
            };
            if self.metrics.config_store_up.get() == 1 {
                wait = BACKOFF.0;
            }
            self.metrics.config_store_up.set(0);
            self.metrics.config_store_errors.inc();
            tracing::warn!(
                store = %self.url,
                "configuration store unreachable, serving the last good configuration; retrying in {wait:?}: {failure}"
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            wait = (wait * 2).min(BACKOFF.1);
        }
    }
}

impl StoreFollower {
    /// Connect, catch up, register, then apply each new revision; returns
    /// only on a failure.
    async fn follow(&self) -> String {
        match self.follow_until_failure().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn follow_until_failure(&self) -> Result<std::convert::Infallible, String> {
        let mut store = Store::connect(&self.url).await?;
        let lease = store
            .client
            .lease_grant(LEASE_TTL_SECS, None)
            .await
            .map_err(|e| format!("cannot take a lease: {e}"))?
            .id();
        let (mut keeper, mut renewals) = store
            .client
            .lease_keep_alive(lease)
            .await
            .map_err(|e| format!("cannot renew the lease: {e}"))?;
        let revision = self.catch_up(&mut store).await?;
        self.register(&mut store, lease).await?;
        self.metrics.config_store_up.set(1);
        tracing::info!(store = %self.url, revision, "following the configuration store");
        let key = self.url.config_key();
        let mut watch = store
            .client
            .watch(
                key.as_str(),
                Some(WatchOptions::new().with_start_revision(revision + 1)),
            )
            .await
            .map_err(|e| format!("cannot watch {key}: {e}"))?;
        let overrides_prefix = self.url.overrides_prefix();
        let mut override_watch = store
            .client
            .watch(
                overrides_prefix.as_str(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .map_err(|e| format!("cannot watch {overrides_prefix}: {e}"))?;
        let mut renew = tokio::time::interval(Duration::from_secs(LEASE_TTL_SECS as u64 / 3));
        loop {
            tokio::select! {
                message = watch.message() => {
                    let response = message
                        .map_err(|e| format!("watching {key}: {e}"))?
                        .ok_or_else(|| format!("etcd closed the watch of {key}"))?;
                    if response.canceled() {
                        return Err(format!("etcd cancelled the watch of {key}: {}", response.cancel_reason()));
                    }
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        match event.event_type() {
                            EventType::Put => {
                                let text = String::from_utf8_lossy(kv.value()).into_owned();
                                self.apply(text, kv.mod_revision()).await;
                            }
                            EventType::Delete => tracing::warn!(
                                key,
                                "the stored configuration was deleted; the running one stays"
                            ),
                        }
                    }
                    self.apply_overrides(&mut store).await?;
                    self.register(&mut store, lease).await?;
                }
                message = override_watch.message() => {
                    let response = message
                        .map_err(|e| format!("watching {overrides_prefix}: {e}"))?
                        .ok_or_else(|| format!("etcd closed the watch of {overrides_prefix}"))?;
                    if response.canceled() {
                        return Err(format!("etcd cancelled the watch of {overrides_prefix}: {}", response.cancel_reason()));
                    }
                    if !response.events().is_empty() {
                        self.apply_overrides(&mut store).await?;
                    }
                }
                _ = renew.tick() => {
                    keeper.keep_alive().await.map_err(|e| format!("cannot renew the lease: {e}"))?;
                    match renewals.message().await {
                        Ok(Some(renewed)) if renewed.ttl() > 0 => {}
                        Ok(_) => return Err("the registration lease expired".to_string()),
                        Err(e) => return Err(format!("cannot renew the lease: {e}")),
                    }
                    self.register(&mut store, lease).await?;
                    let members = store.members().await?;
                    self.live_members.set(members.iter().filter(|m| m.is_ok()).count());
                }
                () = self.reloader.store_read_requested() => {
                    self.catch_up(&mut store).await?;
                    self.register(&mut store, lease).await?;
                }
            }
        }
    }

    /// Read the stored configuration and apply it if it is new, then the
    /// stored overrides; the store's revision, from which to watch on.
    async fn catch_up(&self, store: &mut Store) -> Result<i64, String> {
        let (stored, revision) = store.config().await?;
        match stored {
            Some(stored) => self.apply(stored.text, stored.revision).await,
            None => tracing::warn!(
                key = self.url.config_key(),
                "no configuration stored; the running one stays"
            ),
        }
        self.apply_overrides(store).await?;
        Ok(revision)
    }

    /// Bring the engine's drains and pins in line with the stored ones.
    async fn apply_overrides(&self, store: &mut Store) -> Result<(), String> {
        let shared = store.overrides().await?;
        self.engine
            .apply_shared_overrides(&shared, unix_now_ms(), clock::now_ms());
        Ok(())
    }

    /// Apply one stored revision (on a blocking thread: compiling may read
    /// certificate files).
    async fn apply(&self, text: String, revision: i64) {
        let reloader = self.reloader.clone();
        let base_dir = self.base_dir.clone();
        let trigger = format!("store revision {revision}");
        let outcome = tokio::task::spawn_blocking(move || {
            reloader.apply(&text, &base_dir, Some(revision), &trigger)
        })
        .await;
        if let Ok(ReloadOutcome::Applied { .. } | ReloadOutcome::Unchanged) = outcome {
            self.metrics.config_store_revision.set(revision);
        }
    }

    /// Write this instance's registration, on `lease`.
    async fn register(&self, store: &mut Store, lease: i64) -> Result<(), String> {
        let status = self.reloader.status();
        let member = Member {
            instance: self.identity.instance.clone(),
            admin: self.identity.admin.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_revision: status.revision,
            rejected_revision: status.rejected_revision,
            errors: status.last_errors,
            updated: unix_now_ms() / 1_000,
            shares: self.engine.shares().into_iter().collect(),
        };
        let key = self.url.member_key(&self.identity.instance);
        let value = serde_json::to_string(&member).expect("a member serializes");
        store.put(&key, value, Some(lease)).await?;
        Ok(())
    }
}

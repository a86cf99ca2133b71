//! Configuration reload without dropping a request: parse → validate →
//! compile → swap atomically, triggered by a change of the file (its
//! directory is watched, so editors that replace the file and Kubernetes
//! ConfigMap symlink swaps are seen), by SIGHUP, or by `POST /reload` on the
//! admin endpoint. A configuration that comes from a fleet's store is
//! applied the same way, by the store's follower
//! ([`crate::fleet::follower`]), each new revision as it is written; SIGHUP
//! and `POST /reload` then ask the follower to read the store again.
//!
//! A bad configuration is rejected with every error; the running one stays,
//! and the failure is logged, kept for the admin API and counted in
//! `ballast_reloads_total{result="failed"}`. Routes, pools, backends and
//! their policies apply at once (see [`Engine::install`] for what happens to
//! learned state); the new configuration goes through [`Discovery::install`],
//! so backends named by DNS keep the addresses they resolved to. A TLS
//! listener's certificates (its default and the SNI ones) are replaced for
//! the next handshakes ([`ServedCertificates::install`]).
//!
//! Listeners (addresses, TLS on or off, `client_auth`, `min_version`,
//! `http2`), the admin address and server settings cannot change in a
//! running process: such changes are reported as warnings and take effect
//! on restart or graceful upgrade.
//!
//! [`Engine::install`]: crate::control::engine::Engine::install

use crate::config::{self, ConfigErrors, InstanceOverrides, Snapshot};
use crate::control::engine::InstallReport;
use crate::discovery::Discovery;
use crate::stats::clock;
use crate::telemetry::metrics::Metrics;
use crate::tls::renewal::ServedCertificates;
use notify::{RecursiveMode, Watcher};
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// The result of one reload attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// The new configuration is running.
    Applied {
        report: InstallReport,
        /// Changes that need a restart to take effect.
        warnings: Vec<String>,
    },
    /// The file is byte-for-byte what is already running.
    Unchanged,
    /// The configuration comes from a store: its follower was asked to read
    /// it again.
    Requested,
    /// The file is invalid; the running configuration stays.
    Rejected(ConfigErrors),
}

/// What the admin API shows about reloads.
#[derive(Debug, Clone, Default)]
pub struct ReloadStatus {
    /// Configurations applied since start (the first load is 1).
    pub generation: u64,
    /// The store revision of the running configuration (from a store only).
    pub revision: Option<i64>,
    /// The store revision last refused, while the refusal stands.
    pub rejected_revision: Option<i64>,
    pub last_attempt: Option<SystemTime>,
    pub last_trigger: Option<String>,
    pub last_success: Option<SystemTime>,
    /// Errors of the last attempt, if it was rejected.
    pub last_errors: Vec<String>,
    /// Warnings of the last applied reload.
    pub last_warnings: Vec<String>,
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// A fleet's store (its URL); relative paths in the configuration
    /// resolve against the working directory.
    Store(String),
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::File(path) => write!(f, "{}", path.display()),
            ConfigSource::Store(url) => write!(f, "{url}"),
        }
    }
}

pub struct Reloader {
    source: ConfigSource,
    /// What this instance's command line puts in place of the configuration's.
    overrides: InstanceOverrides,
    discovery: Arc<Discovery>,
    certificates: Arc<ServedCertificates>,
    metrics: Arc<Metrics>,
    /// Held for a whole reload so two triggers never interleave.
    state: Mutex<ReloaderState>,
    /// Wakes the store's follower to read the store again.
    store_read: tokio::sync::Notify,
}

struct ReloaderState {
    status: ReloadStatus,
    /// Hash of the configuration text that is running.
    running_hash: u64,
    /// The snapshot the process started with: listeners and server settings
    /// come from it until restart.
    started_with: Arc<Snapshot>,
}

fn hash_text(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

impl Reloader {
    /// A reloader for the configuration from `source`, of which `running`
    /// was compiled from `text` (store `revision`, from a store).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        source: ConfigSource,
        text: &str,
        revision: Option<i64>,
        overrides: InstanceOverrides,
        running: Arc<Snapshot>,
        discovery: Arc<Discovery>,
        certificates: Arc<ServedCertificates>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            source,
            overrides,
            discovery,
            certificates,
            metrics,
            state: Mutex::new(ReloaderState {
                status: ReloadStatus {
                    generation: 1,
                    revision,
                    last_success: Some(SystemTime::now()),
                    ..ReloadStatus::default()
                },
                running_hash: hash_text(text),
                started_with: running,
            }),
            store_read: tokio::sync::Notify::new(),
        }
    }

    /// Whether the file now differs from the configuration running.
    fn changed_on_disk(&self) -> bool {
        let ConfigSource::File(path) = &self.source else {
            return false;
        };
        let running = self.lock().running_hash;
        config::read_config(path).is_ok_and(|text| hash_text(&text) != running)
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// For a store-fed configuration, whether its follower is connected to
    /// the store now; `None` for a file.
    pub fn store_connected(&self) -> Option<bool> {
        match self.source {
            ConfigSource::Store(_) => Some(self.metrics.config_store_up.get() == 1),
            ConfigSource::File(_) => None,
        }
    }

    pub fn status(&self) -> ReloadStatus {
        self.lock().status.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReloaderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Load the file again and, if it is valid and different, switch to it;
    /// from a store, ask its follower to read it again.
    pub fn reload(&self, trigger: &str) -> ReloadOutcome {
        let path = match &self.source {
            ConfigSource::File(path) => path,
            ConfigSource::Store(_) => {
                self.store_read.notify_one();
                return ReloadOutcome::Requested;
            }
        };
        let text = match config::read_config(path) {
            Ok(text) => text,
            Err(errors) => {
                let mut state = self.lock();
                state.status.last_attempt = Some(SystemTime::now());
                state.status.last_trigger = Some(trigger.to_string());
                return self.reject(&mut state, trigger, errors);
            }
        };
        let base_dir = path.parent().unwrap_or_else(|| Path::new("."));
        self.apply(&text, base_dir, None, trigger)
    }

    /// Waits until a reload asks for the store to be read again.
    pub async fn store_read_requested(&self) {
        self.store_read.notified().await
    }

    /// Switch to the configuration `text` (store `revision`, from a store)
    /// if it is valid and differs from the running one; relative paths
    /// resolve against `base_dir`.
    pub fn apply(
        &self,
        text: &str,
        base_dir: &Path,
        revision: Option<i64>,
        trigger: &str,
    ) -> ReloadOutcome {
        let mut state = self.lock();
        state.status.last_attempt = Some(SystemTime::now());
        state.status.last_trigger = Some(trigger.to_string());
        let hash = hash_text(text);
        if hash == state.running_hash {
            tracing::debug!(trigger, "configuration unchanged; nothing to reload");
            state.status.last_errors.clear();
            state.status.rejected_revision = None;
            if revision.is_some() {
                state.status.revision = revision;
            }
            return ReloadOutcome::Unchanged;
        }
        let snapshot = match config::load_str_with(text, base_dir, &self.overrides) {
            Ok(snapshot) => Arc::new(snapshot),
            Err(errors) => {
                state.status.rejected_revision = revision;
                return self.reject(&mut state, trigger, errors);
            }
        };
        let warnings = restart_only_changes(&state.started_with, &snapshot);
        self.certificates.install(&snapshot);
        let report = self.discovery.install(snapshot, clock::now_ms());
        state.running_hash = hash;
        state.status.generation += 1;
        state.status.revision = revision;
        state.status.rejected_revision = None;
        state.status.last_success = Some(SystemTime::now());
        state.status.last_errors.clear();
        state.status.last_warnings = warnings.clone();
        self.metrics.reloads.with_label_values(&["ok"]).inc();
        tracing::info!(
            trigger,
            generation = state.status.generation,
            added = ?report.added,
            removed = ?report.removed,
            kept = report.kept,
            "configuration reloaded"
        );
        for warning in &warnings {
            tracing::warn!(trigger, "{warning}");
        }
        ReloadOutcome::Applied { report, warnings }
    }

    fn reject(
        &self,
        state: &mut ReloaderState,
        trigger: &str,
        errors: ConfigErrors,
    ) -> ReloadOutcome {
        self.metrics.reloads.with_label_values(&["failed"]).inc();
        tracing::error!(
            trigger,
            "configuration reload rejected; the running configuration stays.\n{errors}"
        );
        state.status.last_errors = errors.lines();
        ReloadOutcome::Rejected(errors)
    }

    /// Watch the configuration file's directory and reload (debounced) when
    /// the file changes. Runs until the process ends.
    pub async fn watch(self: Arc<Self>) {
        let ConfigSource::File(path) = &self.source else {
            return;
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let file_name = path.file_name().map(|n| n.to_os_string());
        let mut watcher =
            match notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    let relevant = event.paths.iter().any(|p| {
                        // Our file, or a Kubernetes-style `..data` symlink swap.
                        p.file_name() == file_name.as_deref()
                            || p.file_name().is_some_and(|n| n == "..data")
                    });
                    if relevant {
                        let _ = tx.send(());
                    }
                }
            }) {
                Ok(watcher) => watcher,
                Err(e) => {
                    tracing::error!(
                    "cannot watch the configuration file: {e}; reload with SIGHUP or POST /reload"
                );
                    return;
                }
            };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            tracing::error!(
                "cannot watch {}: {e}; reload with SIGHUP or POST /reload",
                dir.display()
            );
            return;
        }
        tracing::info!("watching {} for changes", path.display());
        // A change made between loading the file and watching it was missed.
        if self.changed_on_disk() {
            let reloader = self.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload("file change")).await;
        }
        while rx.recv().await.is_some() {
            // Debounce: wait until events stop for a moment.
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            let reloader = self.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload("file change")).await;
        }
    }
}

/// Describe changes that only a restart (or graceful upgrade) can apply.
fn restart_only_changes(running: &Snapshot, new: &Snapshot) -> Vec<String> {
    let mut warnings = Vec::new();
    let describe = |s: &Snapshot| -> Vec<String> {
        s.listeners
            .iter()
            .map(|l| match &l.tls {
                None => l.address.to_string(),
                Some(tls) => format!(
                    "{} tls(min {}{}{})",
                    l.address,
                    tls.min_version.as_str(),
                    match &tls.client_auth {
                        Some(auth) => format!(
                            ",client_auth {}{}",
                            auth.ca_file.display(),
                            if auth.required { "" } else { " optional" }
                        ),
                        None => String::new(),
                    },
                    if tls.http2 { ",h2" } else { "" }
                ),
            })
            .collect()
    };
    let (before, after) = (describe(running), describe(new));
    if before != after {
        warnings.push(format!(
            "listeners changed ({} -> {}); restart or perform a graceful upgrade to apply",
            before.join(" "),
            after.join(" ")
        ));
    }
    if running.admin.address != new.admin.address
        || running.admin.token_env != new.admin.token_env
        || running.admin.allowed_hosts != new.admin.allowed_hosts
    {
        warnings
            .push("admin settings changed; restart or perform a graceful upgrade to apply".into());
    }
    let settings = |s: &Snapshot| format!("{:?}", s.server);
    if settings(running) != settings(new) {
        warnings
            .push("server settings changed; restart or perform a graceful upgrade to apply".into());
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::engine::Engine;
    use crate::stats::live::LiveState;
    use crate::telemetry::decisions::DecisionLog;

    const CONFIG: &str = "listeners: [{address: \"127.0.0.1:1\"}]\npools: {p: {backends: [{addr: \"127.0.0.1:2\"}]}}\nroutes: [{pool: p}]\n";

    #[tokio::test]
    async fn a_change_made_before_watching_starts_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ballast.yaml");
        std::fs::write(&path, CONFIG).unwrap();
        let snapshot = Arc::new(crate::config::load_file(&path).unwrap());
        let metrics = Arc::new(Metrics::new());
        let decisions = Arc::new(DecisionLog::default());
        let engine = Arc::new(Engine::new(
            Arc::new(Discovery::running(&snapshot)),
            Arc::new(LiveState::new()),
            decisions.clone(),
            metrics.clone(),
        ));
        let discovery = Arc::new(Discovery::new(
            snapshot.clone(),
            engine,
            metrics.clone(),
            decisions,
        ));
        let certificates = Arc::new(ServedCertificates::new(&snapshot, metrics.clone()));
        let reloader = Arc::new(Reloader::new(
            ConfigSource::File(path.clone()),
            CONFIG,
            None,
            InstanceOverrides::default(),
            snapshot,
            discovery,
            certificates,
            metrics,
        ));
        assert!(!reloader.changed_on_disk());

        // Changed after loading, before anything watches the file.
        let renamed = CONFIG.replace("routes: [{pool: p}]", "routes: [{name: r, pool: p}]");
        std::fs::write(&path, renamed).unwrap();
        assert!(reloader.changed_on_disk());
        let watching = tokio::spawn(reloader.clone().watch());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while reloader.status().generation != 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                reloader.status()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!reloader.changed_on_disk());
        watching.abort();
    }
}

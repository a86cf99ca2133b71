//! The fleet's command-line side: reading the stored configuration an
//! instance starts with, `ballast config push` (validate locally, then
//! write) and `ballast config status` (the registered members and the
//! revision each runs). Each runs on a runtime of its own, before or instead
//! of the proxy's.

use super::store::{Member, Store, StoreUrl, StoredConfig};
use crate::check::CheckReport;
use std::time::{Duration, Instant};

/// Run `work` to completion on a small runtime of its own.
fn block_on<T>(work: impl std::future::Future<Output = T>) -> Result<T, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(runtime.block_on(work))
}

/// The configuration stored at `url`, waiting up to `patience` for etcd to
/// answer (an instance may start beside its store).
pub fn fetch_config(url: &StoreUrl, patience: Duration) -> Result<StoredConfig, String> {
    // A TLS setting that cannot work is no reason to wait.
    super::store::tls_options(url)?;
    block_on(async {
        let deadline = Instant::now() + patience;
        loop {
            let attempt = async {
                let mut store = Store::connect(url).await?;
                store.config().await
            };
            match attempt.await {
                Ok((Some(stored), _)) => return Ok(stored),
                Ok((None, _)) => {
                    return Err(format!(
                        "no configuration at {} in {url}: store one with `ballast config push --store {url} -c FILE`",
                        url.config_key()
                    ))
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("{e} (gave up after {patience:?})"))
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    })?
}

/// Validate the file checked in `report` and, when valid, store `text` as
/// the fleet's configuration: the store revision that wrote it. Nothing is
/// written when the file is invalid.
pub fn push(url: &StoreUrl, report: &CheckReport, text: &str) -> Result<i64, String> {
    if !report.valid {
        return Err(format!(
            "{} is not valid; nothing was written:\n{}",
            report.config,
            report.text()
        ));
    }
    block_on(async {
        let mut store = Store::connect(url).await?;
        store.push_config(text).await
    })?
}

/// What `ballast config status` reports.
pub struct FleetStatus {
    /// The stored configuration's revision; `None` when none is stored.
    pub revision: Option<i64>,
    /// Each registration, or why it could not be read.
    pub members: Vec<Result<Member, String>>,
}

impl FleetStatus {
    /// Read it from the store at `url`.
    pub async fn read(url: &StoreUrl) -> Result<Self, String> {
        let mut store = Store::connect(url).await?;
        let (stored, _) = store.config().await?;
        let members = store.members().await?;
        Ok(Self {
            revision: stored.map(|s| s.revision),
            members,
        })
    }

    /// `{"revision": N, "members": [...]}`; an unreadable registration is
    /// `{"error": ...}`.
    pub fn to_json(&self) -> serde_json::Value {
        let members: Vec<serde_json::Value> = self
            .members
            .iter()
            .map(|m| match m {
                Ok(member) => serde_json::to_value(member).unwrap_or_default(),
                Err(e) => serde_json::json!({ "error": e }),
            })
            .collect();
        serde_json::json!({"revision": self.revision, "members": members})
    }
}

/// The configuration's store revision and the registered members.
pub fn status(url: &StoreUrl) -> Result<FleetStatus, String> {
    block_on(FleetStatus::read(url))?
}

/// `ballast config status` for people: one line per member.
pub fn status_text(
    url: &StoreUrl,
    revision: Option<i64>,
    members: &[Result<Member, String>],
) -> String {
    let mut text = match revision {
        Some(revision) => format!("{url}: configuration at revision {revision}\n"),
        None => format!("{url}: no configuration stored\n"),
    };
    if members.is_empty() {
        text.push_str("no instance registered\n");
    }
    for member in members {
        let line = match member {
            Ok(m) => {
                let running = m.config_revision.map_or("-".to_string(), |r| r.to_string());
                let state = match (revision, m.config_revision, m.rejected_revision) {
                    (_, _, Some(rejected)) => {
                        format!("REFUSED revision {rejected}: {}", m.errors.join("; "))
                    }
                    (Some(stored), Some(running), None) if stored == running => "current".into(),
                    _ => "behind".into(),
                };
                format!(
                    "{} (admin {}, {}): runs revision {running}, {state}",
                    m.instance, m.admin, m.version
                )
            }
            Err(e) => e.clone(),
        };
        text.push_str(&line);
        text.push('\n');
    }
    text
}

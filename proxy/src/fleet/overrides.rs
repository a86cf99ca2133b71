//! Operator overrides shared by a fleet, kept in etcd so that a drain or
//! pin issued on any instance applies on every one and outlives restarts:
//!
//! - `PREFIX/overrides/drain/POOL/ADDR`: `{"by": INSTANCE, "at": UNIX_S}`;
//!   undrain deletes it;
//! - `PREFIX/overrides/pin/POOL/ADDR`: `{"share": S, "until_unix_ms": T,
//!   "by": INSTANCE, "at": UNIX_S}`, on a lease as long as the pin, so etcd
//!   removes it when it lapses; lifting the pin deletes it.
//!
//! Each instance's follower reads them all on every change and brings its
//! engine in line ([`crate::control::overrides::reconcile`]). An entry that
//! cannot be read is skipped with a warning naming its key: the others
//! still apply.

use super::store::Store;
use crate::config::BackendId;
use crate::control::overrides::{SharedOverrides, SharedPin};
use etcd_client::GetOptions;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime};

/// A stored drain.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDrain {
    by: String,
    at: u64,
}

/// A stored pin.
#[derive(Debug, Serialize, Deserialize)]
struct StoredPin {
    share: f64,
    until_unix_ms: u64,
    by: String,
    at: u64,
}

/// An override to store, on backend `id`.
#[derive(Debug, Clone, PartialEq)]
pub enum OverrideChange {
    Drain,
    Undrain,
    Pin { share: f64, duration: Duration },
    Unpin,
}

impl OverrideChange {
    /// The admin API's name of the action (`pin` for lifting a pin too).
    pub fn action(&self) -> &'static str {
        match self {
            OverrideChange::Drain => "drain",
            OverrideChange::Undrain => "undrain",
            OverrideChange::Pin { .. } | OverrideChange::Unpin => "pin",
        }
    }
}

/// The time now, Unix ms.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    fn override_key(&self, kind: &str, id: &BackendId) -> String {
        format!("{}{kind}/{id}", self.url.overrides_prefix())
    }

    /// Store `change` on backend `id`, issued on instance `by`; the store
    /// revision that holds it.
    pub async fn store_override(
        &mut self,
        id: &BackendId,
        change: &OverrideChange,
        by: &str,
    ) -> Result<i64, String> {
        let at = unix_now_ms() / 1_000;
        match change {
            OverrideChange::Drain => {
                let key = self.override_key("drain", id);
                let value = serde_json::to_string(&StoredDrain {
                    by: by.to_string(),
                    at,
                })
                .expect("a drain serializes");
                self.put(&key, value, None).await
            }
            OverrideChange::Pin { share, duration } => {
                let key = self.override_key("pin", id);
                let ttl = duration.as_secs_f64().ceil().max(1.0) as i64;
                let lease = self
                    .client
                    .lease_grant(ttl, None)
                    .await
                    .map_err(|e| format!("cannot take a lease for {key}: {e}"))?
                    .id();
                let value = serde_json::to_string(&StoredPin {
                    share: *share,
                    until_unix_ms: unix_now_ms() + duration.as_millis() as u64,
                    by: by.to_string(),
                    at,
                })
                .expect("a pin serializes");
                self.put(&key, value, Some(lease)).await
            }
            OverrideChange::Undrain | OverrideChange::Unpin => {
                let kind = if *change == OverrideChange::Undrain {
                    "drain"
                } else {
                    "pin"
                };
                let key = self.override_key(kind, id);
                let response = self
                    .client
                    .delete(key.as_str(), None)
                    .await
                    .map_err(|e| format!("cannot delete {key}: {e}"))?;
                Ok(response.header().map_or(0, |h| h.revision()))
            }
        }
    }

    /// Every stored override (unreadable entries skipped with a warning).
    pub async fn overrides(&mut self) -> Result<SharedOverrides, String> {
        let prefix = self.url.overrides_prefix();
        let response = self
            .client
            .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| format!("cannot list {prefix} in {}: {e}", self.url))?;
        let mut shared = SharedOverrides::default();
        for kv in response.kvs() {
            let key = String::from_utf8_lossy(kv.key());
            let rest = &key[prefix.len().min(key.len())..];
            let parsed = match rest.split_once('/') {
                Some(("drain", id)) => serde_json::from_slice::<StoredDrain>(kv.value())
                    .map_err(|e| e.to_string())
                    .map(|d| {
                        shared.drained.insert(BackendId(id.to_string()), d.by);
                    }),
                Some(("pin", id)) => serde_json::from_slice::<StoredPin>(kv.value())
                    .map_err(|e| e.to_string())
                    .and_then(|p| {
                        if !(p.share > 0.0 && p.share <= 1.0) {
                            return Err(format!("share {} is not in (0, 1]", p.share));
                        }
                        shared.pinned.insert(
                            BackendId(id.to_string()),
                            SharedPin {
                                share: p.share,
                                until_unix_ms: p.until_unix_ms,
                                by: p.by,
                            },
                        );
                        Ok(())
                    }),
                _ => {
                    tracing::warn!(key = %key, "not an override key (drain/POOL/ADDR or pin/POOL/ADDR); skipped");
                    continue;
                }
            };
            if let Err(e) = parsed {
                tracing::warn!(key = %key, "unreadable override skipped: {e}");
            }
        }
        Ok(shared)
    }
}

//! Certificates that renew without a restart. Every TLS listener's
//! certificate files are read every [`POLL_INTERVAL`] (following symlinks)
//! and fingerprinted by content; a pair whose bytes changed, and then stayed
//! the same for one more poll, is loaded and checked like at start: the
//! chain and the key parse, belong together and cover the certificate's
//! server names. A good pair is served from the next handshake on (the
//! listener's [`SniResolver`] set is swapped; connections already open keep
//! theirs); a bad one is refused with every error logged, the previous pair
//! keeps serving, and `ballast_tls_certificate_reloads_total` counts either.
//!
//! Polling rather than file notifications: it sees a file rewritten in
//! place, replaced by rename, or reached through a symlink that moved (a
//! Kubernetes secret's `..data` swap, certbot's `live/` links) alike, on any
//! filesystem, for the cost of reading a few kilobytes every two seconds.
//! Waiting for one unchanged poll keeps a renewal that writes the
//! certificate and the key one after the other from being refused half
//! done.
//!
//! A configuration reload hands its listeners' certificates over with
//! [`ServedCertificates::install`], so SNI certificates can be added and
//! removed without a restart.

use super::sni::{CertSet, SniResolver};
use crate::config::certs::{cert_covers_server_name, certify, load_chain, load_key, not_after};
use crate::config::{ServedCert, Snapshot};
use crate::telemetry::metrics::Metrics;
use rustls::sign::CertifiedKey;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often certificate files are read for changes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// The certificates every TLS listener serves, kept current.
pub struct ServedCertificates {
    listeners: Vec<WatchedListener>,
    metrics: Arc<Metrics>,
}

struct WatchedListener {
    address: SocketAddr,
    resolver: Arc<SniResolver>,
    certs: Mutex<Vec<WatchedCert>>,
}

struct WatchedCert {
    served: ServedCert,
    /// The fingerprint of the files last acted on (served or refused);
    /// `None` until the first poll.
    settled: Option<u64>,
    /// A new fingerprint seen once, acted on if the next poll sees it again.
    pending: Option<u64>,
}

impl WatchedCert {
    fn new(served: &ServedCert) -> Self {
        Self {
            served: served.clone(),
            settled: None,
            pending: None,
        }
    }
}

/// What became of one certificate at one poll.
enum Poll {
    Unchanged,
    Renewed(Arc<CertifiedKey>),
}

impl ServedCertificates {
    /// Resolvers for every TLS listener of `snapshot`.
    pub fn new(snapshot: &Snapshot, metrics: Arc<Metrics>) -> Self {
        let listeners = snapshot
            .listeners
            .iter()
            .filter_map(|listener| {
                let tls = listener.tls.as_ref()?;
                Some(WatchedListener {
                    address: listener.address,
                    resolver: Arc::new(SniResolver::new(tls)),
                    certs: Mutex::new(tls.certs().map(WatchedCert::new).collect()),
                })
            })
            .collect::<Vec<_>>();
        let this = Self { listeners, metrics };
        for listener in &this.listeners {
            let certs = listener.certs.lock().unwrap_or_else(|p| p.into_inner());
            this.publish_expiry(listener.address, &certs);
        }
        this
    }

    /// The certificate resolver of the TLS listener at `address`.
    pub fn resolver(&self, address: SocketAddr) -> Option<Arc<SniResolver>> {
        self.listeners
            .iter()
            .find(|l| l.address == address)
            .map(|l| l.resolver.clone())
    }

    /// Serve the certificates a reloaded configuration gives the running
    /// TLS listeners (matched by address; new or removed listeners need a
    /// restart).
    pub fn install(&self, snapshot: &Snapshot) {
        for listener in &self.listeners {
            let Some(tls) = snapshot
                .listeners
                .iter()
                .find(|l| l.address == listener.address)
                .and_then(|l| l.tls.as_ref())
            else {
                continue;
            };
            let mut certs = listener.certs.lock().unwrap_or_else(|p| p.into_inner());
            self.forget_expiry(listener.address, &certs);
            *certs = tls.certs().map(WatchedCert::new).collect();
            listener.resolver.replace(cert_set(&certs));
            self.publish_expiry(listener.address, &certs);
        }
    }

    /// Read every certificate file once and serve the pairs that changed and
    /// are valid. Blocking (file reads).
    pub fn poll(&self) {
        for listener in &self.listeners {
            let mut certs = listener.certs.lock().unwrap_or_else(|p| p.into_inner());
            let mut renewed = false;
            for cert in certs.iter_mut() {
                if let Poll::Renewed(key) = self.poll_one(listener.address, cert) {
                    cert.served.key = key;
                    renewed = true;
                }
            }
            if renewed {
                listener.resolver.replace(cert_set(&certs));
                self.publish_expiry(listener.address, &certs);
            }
        }
    }

    fn poll_one(&self, address: SocketAddr, cert: &mut WatchedCert) -> Poll {
        let fingerprint = fingerprint(&cert.served);
        if Some(fingerprint) == cert.settled {
            cert.pending = None;
            return Poll::Unchanged;
        }
        if cert.pending != Some(fingerprint) {
            cert.pending = Some(fingerprint);
            return Poll::Unchanged;
        }
        cert.settled = Some(fingerprint);
        cert.pending = None;
        let served = &cert.served;
        match load_checked(served) {
            Ok(key) if key.cert == served.key.cert => Poll::Unchanged,
            Ok(key) => {
                self.metrics
                    .tls_certificate_reloads
                    .with_label_values(&["ok"])
                    .inc();
                tracing::info!(
                    listener = %address,
                    cert = %served.cert_file.display(),
                    key = %served.key_file.display(),
                    not_after = not_after(&key).unwrap_or_default(),
                    "renewed certificate loaded; serving it from the next handshake"
                );
                Poll::Renewed(key)
            }
            Err(errors) => {
                self.metrics
                    .tls_certificate_reloads
                    .with_label_values(&["failed"])
                    .inc();
                for error in &errors {
                    tracing::warn!(
                        listener = %address,
                        cert = %served.cert_file.display(),
                        key = %served.key_file.display(),
                        "changed certificate refused; the previous one keeps serving: {error}"
                    );
                }
                Poll::Unchanged
            }
        }
    }

    /// Run [`poll`](Self::poll) every [`POLL_INTERVAL`], for as long as the
    /// future is polled.
    pub async fn watch(self: Arc<Self>) {
        if self.listeners.is_empty() {
            return;
        }
        loop {
            let this = self.clone();
            let _ = tokio::task::spawn_blocking(move || this.poll()).await;
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn publish_expiry(&self, address: SocketAddr, certs: &[WatchedCert]) {
        let listener = address.to_string();
        for cert in certs {
            if let Some(seconds) = not_after(&cert.served.key) {
                self.metrics
                    .tls_certificate_expiry
                    .with_label_values(&[listener.as_str(), &expiry_name(&cert.served)])
                    .set(seconds as f64);
            }
        }
    }

    fn forget_expiry(&self, address: SocketAddr, certs: &[WatchedCert]) {
        let listener = address.to_string();
        for cert in certs {
            let _ = self
                .metrics
                .tls_certificate_expiry
                .remove_label_values(&[listener.as_str(), &expiry_name(&cert.served)]);
        }
    }
}

/// The `name` label of a certificate's expiry: `default`, or its server names.
fn expiry_name(served: &ServedCert) -> String {
    if served.server_names.is_empty() {
        "default".to_string()
    } else {
        served.server_names.join(",")
    }
}

fn cert_set(certs: &[WatchedCert]) -> CertSet {
    let (default_cert, sni) = certs
        .split_first()
        .expect("a TLS listener has a default certificate");
    CertSet::new(&default_cert.served, sni.iter().map(|c| &c.served))
}

/// A fingerprint of the certificate's and key's bytes (an unreadable file
/// counts as its error message, so it changes when the error does).
fn fingerprint(served: &ServedCert) -> u64 {
    let mut hasher = DefaultHasher::new();
    for file in [&served.cert_file, &served.key_file] {
        match std::fs::read(file) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(e) => e.to_string().hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Load a changed pair and check it as at start; every error found.
fn load_checked(served: &ServedCert) -> Result<Arc<CertifiedKey>, Vec<String>> {
    let chain = load_chain(&served.cert_file);
    let key = load_key(&served.key_file);
    let (chain, key) = match (chain, key) {
        (Ok(chain), Ok(key)) => (chain, key),
        (chain, key) => return Err(chain.err().into_iter().chain(key.err()).collect()),
    };
    let certified =
        certify(chain, key, &served.cert_file, &served.key_file).map_err(|e| vec![e])?;
    let uncovered: Vec<String> = served
        .server_names
        .iter()
        .filter(|name| !cert_covers_server_name(&certified, name))
        .map(|name| {
            format!(
                "certificate {} is not valid for \"{name}\"",
                served.cert_file.display()
            )
        })
        .collect();
    if uncovered.is_empty() {
        Ok(certified)
    } else {
        Err(uncovered)
    }
}

#[cfg(test)]
mod tests;

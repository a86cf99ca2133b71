//! Certificate selection by SNI for one listener: exact names first, then the
//! longest matching `*.suffix` wildcard, then the listener's default
//! certificate.
//!
//! The set of certificates is held in an `ArcSwap`: a renewal or a reload
//! replaces it for the handshakes that follow, while handshakes already
//! under way finish with the set they started with. The resolver also
//! applies the listener's `min_version` in the handshake: a hello that
//! offers no TLS 1.3 cipher suite cannot negotiate TLS 1.3 and is refused
//! when 1.3 is the minimum (see [`policy`](super::policy) for the check on
//! the negotiated version that backs it).

use crate::config::{ServedCert, Tls, TlsVersion};
use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::CipherSuite;
use std::collections::HashMap;
use std::sync::Arc;

/// The certificates of one listener, indexed for selection.
#[derive(Debug)]
pub struct CertSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// (suffix with leading dot, cert), longest suffix first.
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
    default_cert: Arc<CertifiedKey>,
}

impl CertSet {
    /// Index `default_cert` and the certificates chosen by SNI.
    pub fn new<'a>(
        default_cert: &ServedCert,
        sni: impl IntoIterator<Item = &'a ServedCert>,
    ) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for served in sni {
            for name in &served.server_names {
                match name.strip_prefix('*') {
                    Some(suffix) => wildcards.push((suffix.to_string(), served.key.clone())),
                    None => {
                        exact
                            .entry(name.clone())
                            .or_insert_with(|| served.key.clone());
                    }
                }
            }
        }
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Self {
            exact,
            wildcards,
            default_cert: default_cert.key.clone(),
        }
    }

    /// The certificate for a server name (`None` = no SNI sent).
    pub fn select(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return self.default_cert.clone();
        };
        let name = name.to_ascii_lowercase();
        if let Some(cert) = self.exact.get(&name) {
            return cert.clone();
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map(|(_, cert)| cert.clone())
            .unwrap_or_else(|| self.default_cert.clone())
    }
}

/// A listener's certificate resolver: the current [`CertSet`] and the
/// listener's minimum TLS version.
#[derive(Debug)]
pub struct SniResolver {
    certs: ArcSwap<CertSet>,
    min_version: TlsVersion,
}

impl SniResolver {
    pub fn new(tls: &Tls) -> Self {
        Self {
            certs: ArcSwap::from_pointee(CertSet::new(&tls.default_cert, &tls.sni)),
            min_version: tls.min_version,
        }
    }

    /// Serve `certs` from the next handshake on.
    pub fn replace(&self, certs: CertSet) {
        self.certs.store(Arc::new(certs));
    }

    /// The certificate for a server name (`None` = no SNI sent).
    pub fn select(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        self.certs.load().select(server_name)
    }
}

/// Whether a client hello's cipher suites allow TLS 1.3.
fn offers_tls13(cipher_suites: &[CipherSuite]) -> bool {
    cipher_suites.iter().any(|suite| {
        matches!(
            suite,
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS13_AES_256_GCM_SHA384
                | CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
                | CipherSuite::TLS13_AES_128_CCM_SHA256
                | CipherSuite::TLS13_AES_128_CCM_8_SHA256
        )
    })
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if self.min_version == TlsVersion::Tls13 && !offers_tls13(client_hello.cipher_suites()) {
            tracing::debug!("refused a TLS handshake: the client does not offer TLS 1.3");
            return None;
        }
        Some(self.select(client_hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::devcert::DevCerts;

    fn served(name: &str, server_names: &[&str]) -> ServedCert {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate(&[name.to_string()]).unwrap();
        let (cert_file, key_file) = certs.write_leaf(dir.path(), "leaf").unwrap();
        let key = crate::tls::certs::load_certified_key(&cert_file, &key_file).unwrap();
        ServedCert {
            cert_file,
            key_file,
            server_names: server_names.iter().map(|n| n.to_string()).collect(),
            key,
        }
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let default_cert = served("default.test", &[]);
        let api = served("api.test", &["api.test"]);
        let wild = served("*.apps.test", &["*.apps.test"]);
        let resolver = SniResolver::new(&Tls {
            default_cert: default_cert.clone(),
            sni: vec![api.clone(), wild.clone()],
            http2: true,
            client_auth: None,
            min_version: TlsVersion::Tls12,
        });
        assert!(Arc::ptr_eq(&resolver.select(Some("api.test")), &api.key));
        assert!(Arc::ptr_eq(&resolver.select(Some("API.TEST")), &api.key));
        assert!(Arc::ptr_eq(
            &resolver.select(Some("x.apps.test")),
            &wild.key
        ));
        assert!(Arc::ptr_eq(
            &resolver.select(Some("apps.test")),
            &default_cert.key
        ));
        assert!(Arc::ptr_eq(
            &resolver.select(Some("other.test")),
            &default_cert.key
        ));
        assert!(Arc::ptr_eq(&resolver.select(None), &default_cert.key));

        // A replaced set serves from the next selection on.
        resolver.replace(CertSet::new(&default_cert, []));
        assert!(Arc::ptr_eq(
            &resolver.select(Some("api.test")),
            &default_cert.key
        ));
    }

    #[test]
    fn tls13_is_recognised_by_its_cipher_suites() {
        assert!(offers_tls13(&[
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS13_AES_128_GCM_SHA256
        ]));
        assert!(!offers_tls13(&[
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        ]));
    }
}

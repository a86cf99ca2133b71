//! Certificate selection by SNI for one listener: exact names first, then the
//! longest matching `*.suffix` wildcard, then the listener's default
//! certificate.

use crate::config::Tls;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// (suffix with leading dot, cert), longest suffix first.
    wildcards: Vec<(String, Arc<CertifiedKey>)>,
    default_cert: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(tls: &Tls) -> Self {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for (name, cert) in &tls.sni {
            match name.strip_prefix('*') {
                Some(suffix) => wildcards.push((suffix.to_string(), cert.clone())),
                None => {
                    exact.entry(name.clone()).or_insert_with(|| cert.clone());
                }
            }
        }
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Self {
            exact,
            wildcards,
            default_cert: tls.default_cert.clone(),
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

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(client_hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::devcert::DevCerts;

    fn key(name: &str) -> Arc<CertifiedKey> {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let certs = DevCerts::generate(&[name.to_string()]).unwrap();
        let (cert, key) = certs.write_leaf(dir.path(), "leaf").unwrap();
        crate::tls::certs::load_certified_key(&cert, &key).unwrap()
    }

    #[test]
    fn exact_then_wildcard_then_default() {
        let default_cert = key("default.test");
        let api = key("api.test");
        let wild = key("*.apps.test");
        let resolver = SniResolver::new(&Tls {
            default_cert: default_cert.clone(),
            sni: vec![
                ("api.test".into(), api.clone()),
                ("*.apps.test".into(), wild.clone()),
            ],
            http2: true,
            cert_files: vec![],
        });
        assert!(Arc::ptr_eq(&resolver.select(Some("api.test")), &api));
        assert!(Arc::ptr_eq(&resolver.select(Some("API.TEST")), &api));
        assert!(Arc::ptr_eq(&resolver.select(Some("x.apps.test")), &wild));
        assert!(Arc::ptr_eq(
            &resolver.select(Some("apps.test")),
            &default_cert
        ));
        assert!(Arc::ptr_eq(
            &resolver.select(Some("other.test")),
            &default_cert
        ));
        assert!(Arc::ptr_eq(&resolver.select(None), &default_cert));
    }
}

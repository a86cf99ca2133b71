//! TLS to the fleet's stores: etcd at an `etcds://` store URL, Redis at a
//! `rediss://` budget store. What verifies the store and what the store may
//! ask of the instance come from the environment, beside the credentials,
//! under `BALLAST_ETCD_` or `BALLAST_REDIS_`:
//!
//! - `..._CA_FILE`: a PEM bundle of the CAs the store's certificate must
//!   chain to (without it: the public roots of `webpki-roots`);
//! - `..._CERT_FILE` with `..._KEY_FILE`: a client certificate chain and its
//!   key, for a store that authenticates clients (mTLS).
//!
//! The files are read, parsed and matched (certificate to key) on every
//! connection, so a renewed client certificate is used from the next
//! reconnect on and a bad file is named instead of failing a handshake.
//! Any of these set beside a plain `etcd://` or `redis://` URL is an error:
//! a store meant to be reached over TLS is never reached without it.

use crate::config::certs::{check_pair, load_chain, load_key};
use std::path::Path;

/// The store TLS settings read from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTls {
    /// The CA bundle (PEM), when not the public roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The client certificate chain and key (PEM), for mTLS.
    pub client: Option<ClientIdentity>,
}

/// A client certificate chain and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity { .. }")
    }
}

/// Which store: the prefix of its variables and the schemes of its URLs.
#[derive(Debug, Clone, Copy)]
pub struct StoreKind {
    pub env_prefix: &'static str,
    pub plain_scheme: &'static str,
    pub tls_scheme: &'static str,
}

pub const ETCD: StoreKind = StoreKind {
    env_prefix: "BALLAST_ETCD",
    plain_scheme: "etcd",
    tls_scheme: "etcds",
};

pub const REDIS: StoreKind = StoreKind {
    env_prefix: "BALLAST_REDIS",
    plain_scheme: "redis",
    tls_scheme: "rediss",
};

/// The TLS settings for a store reached with TLS (`tls`) or without:
/// `None` without TLS; an error for an unreadable or mismatched file, or
/// for TLS files set beside a plain URL.
pub fn from_env(kind: StoreKind, tls: bool) -> Result<Option<StoreTls>, String> {
    from_lookup(kind, tls, |name| std::env::var(name).ok())
}

fn from_lookup(
    kind: StoreKind,
    tls: bool,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<StoreTls>, String> {
    let var = |suffix: &str| {
        let name = format!("{}_{suffix}", kind.env_prefix);
        let value = lookup(&name).filter(|v| !v.is_empty());
        (name, value)
    };
    let (ca_var, ca) = var("CA_FILE");
    let (cert_var, cert) = var("CERT_FILE");
    let (key_var, key) = var("KEY_FILE");
    if !tls {
        let set: Vec<&str> = [(&ca_var, &ca), (&cert_var, &cert), (&key_var, &key)]
            .into_iter()
            .filter(|(_, value)| value.is_some())
            .map(|(name, _)| name.as_str())
            .collect();
        if set.is_empty() {
            return Ok(None);
        }
        return Err(format!(
            "{} set, but the store URL is {}:// (no TLS); use {}:// to reach it over TLS",
            set.join(" and "),
            kind.plain_scheme,
            kind.tls_scheme
        ));
    }
    let ca_pem = match &ca {
        None => None,
        Some(path) => {
            load_chain(Path::new(path)).map_err(|e| format!("{ca_var}: {e}"))?;
            Some(read(path, &ca_var)?)
        }
    };
    let client = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let chain = load_chain(Path::new(&cert)).map_err(|e| format!("{cert_var}: {e}"))?;
            let key_der = load_key(Path::new(&key)).map_err(|e| format!("{key_var}: {e}"))?;
            check_pair(&chain, &key_der, Path::new(&cert), Path::new(&key))?;
            Some(ClientIdentity {
                cert_pem: read(&cert, &cert_var)?,
                key_pem: read(&key, &key_var)?,
            })
        }
        (Some(_), None) => return Err(format!("{cert_var} is set without {key_var}")),
        (None, Some(_)) => return Err(format!("{key_var} is set without {cert_var}")),
    };
    Ok(Some(StoreTls { ca_pem, client }))
}

fn read(path: &str, var: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{var}: cannot read {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    /// A self-signed certificate and its key, written to `dir`.
    fn pair(dir: &Path, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (
            cert_path.to_string_lossy().into_owned(),
            key_path.to_string_lossy().into_owned(),
        )
    }

    #[test]
    fn plain_urls_without_tls_files_need_nothing() {
        assert_eq!(from_lookup(ETCD, false, lookup(&[])), Ok(None));
        assert_eq!(
            from_lookup(REDIS, true, lookup(&[])),
            Ok(Some(StoreTls {
                ca_pem: None,
                client: None
            }))
        );
    }

    #[test]
    fn tls_files_beside_a_plain_url_are_refused() {
        let error = from_lookup(
            REDIS,
            false,
            lookup(&[("BALLAST_REDIS_CA_FILE", "/x/ca.pem".into())]),
        )
        .unwrap_err();
        assert!(error.contains("BALLAST_REDIS_CA_FILE set"), "{error}");
        assert!(error.contains("use rediss://"), "{error}");
    }

    #[test]
    fn a_ca_and_a_matching_client_pair_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = pair(dir.path(), "ca");
        let (cert, key) = pair(dir.path(), "client");
        let tls = from_lookup(
            ETCD,
            true,
            lookup(&[
                ("BALLAST_ETCD_CA_FILE", ca.clone()),
                ("BALLAST_ETCD_CERT_FILE", cert.clone()),
                ("BALLAST_ETCD_KEY_FILE", key.clone()),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(tls.ca_pem, Some(std::fs::read(&ca).unwrap()));
        let client = tls.client.unwrap();
        assert_eq!(client.cert_pem, std::fs::read(&cert).unwrap());
        assert_eq!(client.key_pem, std::fs::read(&key).unwrap());
        assert_eq!(format!("{client:?}"), "ClientIdentity { .. }");
    }

    #[test]
    fn bad_tls_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = pair(dir.path(), "client");
        let (_, other_key) = pair(dir.path(), "other");
        let not_pem = dir.path().join("junk.pem");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let not_pem = not_pem.to_string_lossy().into_owned();
        for (vars, expected) in [
            (
                vec![("BALLAST_ETCD_CA_FILE", "/nonexistent/ca.pem".to_string())],
                "BALLAST_ETCD_CA_FILE: cannot read certificate file /nonexistent/ca.pem",
            ),
            (
                vec![("BALLAST_ETCD_CA_FILE", not_pem.clone())],
                "contains no PEM certificate",
            ),
            (
                vec![("BALLAST_ETCD_CERT_FILE", cert.clone())],
                "BALLAST_ETCD_CERT_FILE is set without BALLAST_ETCD_KEY_FILE",
            ),
            (
                vec![("BALLAST_ETCD_KEY_FILE", key.clone())],
                "BALLAST_ETCD_KEY_FILE is set without BALLAST_ETCD_CERT_FILE",
            ),
            (
                vec![
                    ("BALLAST_ETCD_CERT_FILE", cert.clone()),
                    ("BALLAST_ETCD_KEY_FILE", other_key.clone()),
                ],
                "does not match certificate",
            ),
        ] {
            let error = from_lookup(ETCD, true, lookup(&vars)).unwrap_err();
            assert!(error.contains(expected), "{vars:?}: {error}");
        }
    }
}

//! Development certificates: a throwaway CA and leaf certificates it signs,
//! made with rcgen. For local testing only; `ballast gen-cert` writes a CA
//! and one server certificate; a [`DevCa`] also signs client certificates
//! (for mutual TLS to backends) and expired ones (to see them refused).

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// A CA and one leaf certificate for the given names, all PEM-encoded.
pub struct DevCerts {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub leaf_cert_pem: String,
    pub leaf_key_pem: String,
}

/// What a leaf certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeafUse {
    /// A server's certificate (TLS server authentication).
    Server,
    /// A client's certificate (TLS client authentication, mTLS).
    Client,
    /// A server's certificate that expired long ago (valid during 2000).
    ExpiredServer,
}

/// A leaf certificate and its key, PEM-encoded.
pub struct DevLeaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A development CA that can sign more leaf certificates.
pub struct DevCa {
    pub cert_pem: String,
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl DevCa {
    /// Make a fresh self-signed CA.
    pub fn generate() -> Result<Self, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Ballast development CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        Ok(Self {
            cert_pem: ca_cert.pem(),
            key_pem: ca_key.serialize_pem(),
            issuer: Issuer::new(ca_params, ca_key),
        })
    }

    /// Sign a leaf for `names` (DNS names, `*.` wildcards or IP addresses;
    /// the first is also its common name).
    pub fn issue(&self, names: &[String], usage: LeafUse) -> Result<DevLeaf, rcgen::Error> {
        let mut params = CertificateParams::new(names.to_vec())?;
        let common_name = names.first().map(String::as_str).unwrap_or("localhost");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![match usage {
            LeafUse::Server | LeafUse::ExpiredServer => ExtendedKeyUsagePurpose::ServerAuth,
            LeafUse::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        if usage == LeafUse::ExpiredServer {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(DevLeaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl DevCerts {
    /// Make a fresh CA and a leaf valid for `names` (DNS names, `*.` wildcards
    /// or IP addresses).
    pub fn generate(names: &[String]) -> Result<Self, rcgen::Error> {
        let ca = DevCa::generate()?;
        let leaf = ca.issue(names, LeafUse::Server)?;
        Ok(Self {
            ca_cert_pem: ca.cert_pem,
            ca_key_pem: ca.key_pem,
            leaf_cert_pem: leaf.cert_pem,
            leaf_key_pem: leaf.key_pem,
        })
    }

    /// Write `<stem>.crt` and `<stem>.key` (mode 0600) into `dir`.
    pub fn write_leaf(&self, dir: &Path, stem: &str) -> std::io::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.leaf_cert_pem)?;
        write_private(&key, &self.leaf_key_pem)?;
        Ok((cert, key))
    }

    /// Write `ca.crt`, `ca.key` and the leaf as `<stem>.crt`/`<stem>.key` into
    /// `dir`, creating it if needed. Returns the paths written.
    pub fn write_all(&self, dir: &Path, stem: &str) -> std::io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let ca_cert = dir.join("ca.crt");
        let ca_key = dir.join("ca.key");
        std::fs::write(&ca_cert, &self.ca_cert_pem)?;
        write_private(&ca_key, &self.ca_key_pem)?;
        let (cert, key) = self.write_leaf(dir, stem)?;
        Ok(vec![ca_cert, ca_key, cert, key])
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::certs::{cert_covers_name, load_certified_key};

    fn write(dir: &Path, name: &str, contents: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn loads_a_matching_pair_and_rejects_mismatch_and_garbage() {
        crate::tls::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let a = DevCerts::generate(&["a.test".to_string()]).unwrap();
        let b = DevCerts::generate(&["b.test".to_string()]).unwrap();
        let cert_a = write(dir.path(), "a.crt", &a.leaf_cert_pem);
        let key_a = write(dir.path(), "a.key", &a.leaf_key_pem);
        let key_b = write(dir.path(), "b.key", &b.leaf_key_pem);
        let junk = write(dir.path(), "junk.pem", "hello\n");
        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );

        let ok = load_certified_key(&cert_a, &key_a).unwrap();
        assert!(cert_covers_name(&ok, "a.test"));
        assert!(!cert_covers_name(&ok, "b.test"));

        let err = load_certified_key(&cert_a, &key_b).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        let err = load_certified_key(&junk, &key_a).unwrap_err();
        assert!(err.contains("contains no PEM certificate"), "{err}");
        let err = load_certified_key(&broken, &key_a).unwrap_err();
        assert!(err.contains("not a valid X.509 certificate"), "{err}");
        let err = load_certified_key(&cert_a, &junk).unwrap_err();
        assert!(err.contains("contains no PEM private key"), "{err}");
        let err = load_certified_key(&dir.path().join("missing.crt"), &key_a).unwrap_err();
        assert!(err.contains("cannot read certificate file"), "{err}");
    }
}

//! Loading a certificate chain and private key from PEM files, and a bundle
//! of CA certificates, with every failure turned into a clear message
//! instead of a panic later in the TLS stack (Pingora's `TlsSettings` and
//! `CertKey` panic on bad input, so nothing unchecked reaches them).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use std::path::Path;
use std::sync::Arc;

/// Read `cert` (a PEM chain, leaf first) and `key` (a PEM private key) and
/// check that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, String> {
    let chain = load_chain(cert)?;
    let key_der = load_key(key)?;
    certify(chain, key_der, cert, key)
}

/// Check that `chain` (from the file `cert`) and `key_der` (from `key`)
/// belong together, as [`load_certified_key`] does.
pub fn check_pair(
    chain: &[CertificateDer<'static>],
    key_der: &PrivateKeyDer<'static>,
    cert: &Path,
    key: &Path,
) -> Result<(), String> {
    certify(chain.to_vec(), key_der.clone_key(), cert, key).map(|_| ())
}

/// Read a PEM bundle of CA certificates (at least one).
pub fn load_ca_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    load_chain(path)
}

/// Check that `chain` and `key_der` belong together and make the pair
/// rustls serves.
pub fn certify(
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
    cert: &Path,
    key: &Path,
) -> Result<Arc<CertifiedKey>, String> {
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key_der, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => format!(
            "private key {} does not match certificate {}",
            key.display(),
            cert.display()
        ),
        other => format!(
            "cannot use certificate {} with key {}: {other}",
            cert.display(),
            key.display()
        ),
    })?;
    Ok(Arc::new(certified))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} file {}: {e}", path.display()))
}

/// Read a PEM certificate chain (leaf first), each one valid X.509.
pub fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} is not a valid PEM certificate: {e}", path.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "{} contains no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")",
            path.display()
        ));
    }
    for (i, cert) in chain.iter().enumerate() {
        webpki::EndEntityCert::try_from(cert).map_err(|e| {
            format!(
                "{}: certificate #{} is not a valid X.509 certificate: {e}",
                path.display(),
                i + 1
            )
        })?;
    }
    Ok(chain)
}

/// Read a PEM private key.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{} contains no PEM private key (expected \"-----BEGIN PRIVATE KEY-----\")",
            path.display()
        ),
        other => format!("{} is not a valid PEM private key: {other}", path.display()),
    })
}

/// Check that a certificate's leaf is valid for a configured server name:
/// an exact name, or a `*.suffix` wildcard (then the certificate must cover
/// any one label under the suffix).
pub fn cert_covers_server_name(certified: &CertifiedKey, server_name: &str) -> bool {
    match server_name.strip_prefix('*') {
        Some(suffix) => cert_covers_name(certified, &format!("sni-check{suffix}")),
        None => cert_covers_name(certified, server_name),
    }
}

/// The leaf certificate's `notAfter`, as Unix seconds.
pub fn not_after(certified: &CertifiedKey) -> Option<i64> {
    let leaf = certified.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    Some(parsed.validity().not_after.timestamp())
}

/// Check that a certificate's leaf is valid for a DNS name (wildcards in the
/// certificate count).
pub fn cert_covers_name(certified: &CertifiedKey, name: &str) -> bool {
    let Some(leaf) = certified.cert.first() else {
        return false;
    };
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|cert| cert.verify_is_valid_for_subject_name(&server_name))
        .is_ok()
}

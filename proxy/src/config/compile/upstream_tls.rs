//! `pools.<name>.tls`: TLS from Ballast to the pool's backends. The CA
//! bundle and the client certificate are read and checked here (the same
//! loading as listener certificates), so a bad file is a `ballast check`
//! error and connecting reads no file.

use super::fields::Checker;
use crate::config::certs::{check_pair, load_ca_bundle, load_chain, load_key};
use crate::config::raw::RawUpstreamTls;
use crate::config::snapshot::{UpstreamAlpn, UpstreamTls};
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rustls::pki_types::{PrivateKeyDer, ServerName};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;

pub(super) fn compile_upstream_tls(
    c: &mut Checker,
    pool_path: &str,
    pool_name: &str,
    raw: &RawUpstreamTls,
) -> Option<UpstreamTls> {
    let path = format!("{pool_path}.tls");
    let errors_before = c.errors.len();
    let sni = raw
        .sni
        .as_ref()
        .map(|name| name.trim().to_ascii_lowercase());
    if let Some(name) = &sni {
        if name.is_empty() || ServerName::try_from(name.as_str()).is_err() {
            c.error(
                format!("{path}.sni"),
                format!("invalid server name \"{name}\""),
            );
        }
    }
    let alpn = match raw.alpn.as_deref().map(str::trim) {
        None | Some("http1") => UpstreamAlpn::Http1,
        Some("h2") => UpstreamAlpn::H2,
        Some("h2_or_http1") => UpstreamAlpn::H2OrHttp1,
        Some(other) => {
            c.error(
                format!("{path}.alpn"),
                format!("unknown protocol \"{other}\" (expected http1, h2 or h2_or_http1)"),
            );
            UpstreamAlpn::Http1
        }
    };
    let verify = raw.verify.unwrap_or(true);
    let mut group = std::collections::hash_map::DefaultHasher::new();
    (pool_name, &sni, verify, alpn.as_str()).hash(&mut group);

    let ca_file = raw.ca.as_deref().map(|file| c.resolve(file));
    let ca = ca_file
        .as_ref()
        .and_then(|file| match load_ca_bundle(file) {
            Ok(certs) => {
                let wrapped: Vec<WrappedX509> = certs
                    .iter()
                    .map(|cert| {
                        cert.as_ref().hash(&mut group);
                        WrappedX509::new(cert.to_vec(), parse_x509)
                    })
                    .collect();
                Some(Arc::from(wrapped))
            }
            Err(message) => {
                c.error(format!("{path}.ca"), message);
                None
            }
        });
    let client = compile_client_cert(c, &path, raw, &mut group);
    if c.errors.len() > errors_before {
        return None;
    }
    if !verify {
        tracing::warn!(
            pool = pool_name,
            "pools.{pool_name}.tls.verify is false: the backends' certificates are not checked"
        );
    }
    let (client_cert, client_cert_file) = client.unzip();
    Some(UpstreamTls {
        sni,
        verify,
        alpn,
        ca,
        ca_file,
        client_cert,
        client_cert_file,
        connection_group: group.finish(),
    })
}

/// `client_cert` and `client_key`: both or neither, a chain and the key
/// that belongs to it.
fn compile_client_cert(
    c: &mut Checker,
    path: &str,
    raw: &RawUpstreamTls,
    group: &mut impl Hasher,
) -> Option<(Arc<CertKey>, PathBuf)> {
    let (cert, key) = match (&raw.client_cert, &raw.client_key) {
        (None, None) => return None,
        (Some(cert), Some(key)) => (c.resolve(cert), c.resolve(key)),
        (Some(_), None) => {
            c.error(
                format!("{path}.client_key"),
                "client_cert needs client_key (both or neither)",
            );
            return None;
        }
        (None, Some(_)) => {
            c.error(
                format!("{path}.client_cert"),
                "client_key needs client_cert (both or neither)",
            );
            return None;
        }
    };
    let chain =
        load_chain(&cert).map_err(|message| c.error(format!("{path}.client_cert"), message));
    let key_der = load_key(&key).map_err(|message| c.error(format!("{path}.client_key"), message));
    let (Ok(chain), Ok(key_der)) = (chain, key_der) else {
        return None;
    };
    if let Err(message) = check_pair(&chain, &key_der, &cert, &key) {
        c.error(format!("{path}.client_key"), message);
        return None;
    }
    let key_bytes = key_der.secret_der().to_vec();
    // Pingora reads the key back from bare DER, guessing its format.
    if PrivateKeyDer::try_from(key_bytes.clone()).is_err() {
        c.error(
            format!("{path}.client_key"),
            format!(
                "{}: this kind of private key is not supported",
                key.display()
            ),
        );
        return None;
    }
    let certs: Vec<Vec<u8>> = chain.iter().map(|cert| cert.to_vec()).collect();
    certs.hash(group);
    Some((Arc::new(CertKey::new(certs, key_bytes)), cert))
}

#[cfg(test)]
mod tests;

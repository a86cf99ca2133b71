//! `listeners`: addresses, and per listener the TLS certificates (default and
//! by SNI), each checked to cover the names it is served for, the CA bundle
//! client certificates are checked against (`client_auth`) and the minimum
//! TLS version; the sources trusted to send PROXY protocol headers.

use super::fields::{compile_nets, Checker};
use crate::config::certs::{cert_covers_server_name, load_ca_bundle, load_certified_key};
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::collections::HashSet;
use std::sync::Arc;

pub(super) fn compile_listeners(c: &mut Checker, raw: &[RawListener]) -> Vec<Listener> {
    if raw.is_empty() {
        c.error("listeners", "at least one listener is required");
    }
    let mut seen: Vec<std::net::SocketAddr> = Vec::new();
    let mut listeners = Vec::new();
    for (i, listener) in raw.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let address = c.socket_addr(&format!("{path}.address"), &listener.address);
        if let Some(addr) = address {
            if let Some(other) = seen.iter().find(|&&other| binds_overlap(addr, other)) {
                c.error(
                    format!("{path}.address"),
                    format!("{addr} overlaps listener address {other}"),
                );
            }
            seen.push(addr);
        }
        let tls = listener
            .tls
            .as_ref()
            .and_then(|tls| compile_tls(c, &format!("{path}.tls"), tls));
        let tls_failed = listener.tls.is_some() && tls.is_none();
        let h2c = listener.h2c.unwrap_or(false);
        if h2c && listener.tls.is_some() {
            c.error(
                format!("{path}.h2c"),
                "h2c is HTTP/2 over plain TCP; a TLS listener offers h2 by ALPN (tls.http2)",
            );
        }
        let proxy_protocol = listener.proxy_protocol.as_ref().map(|raw| {
            let trusted_path = format!("{path}.proxy_protocol.trusted");
            if raw.trusted.is_empty() {
                c.error(
                    &trusted_path,
                    "list the load balancers (addresses or CIDR ranges) that send PROXY headers",
                );
            }
            compile_nets(c, &trusted_path, &raw.trusted)
        });
        if let (Some(address), false) = (address, tls_failed) {
            listeners.push(Listener {
                address,
                tls,
                h2c,
                proxy_protocol,
            });
        }
    }
    listeners
}

/// Whether binding both addresses would clash: the same port on the same
/// address, or on any address when either is a wildcard (`0.0.0.0`, `[::]`,
/// which on Linux also takes IPv4).
pub(super) fn binds_overlap(a: std::net::SocketAddr, b: std::net::SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn compile_tls(c: &mut Checker, path: &str, raw: &RawTls) -> Option<Tls> {
    let errors_before = c.errors.len();
    let default_cert = load_pair(c, path, &raw.cert, &raw.key);
    let mut sni = Vec::new();
    let mut names_seen = HashSet::new();
    for (i, entry) in raw.sni.iter().enumerate() {
        let entry_path = format!("{path}.sni[{i}]");
        if let Some(served) = compile_sni_entry(c, &entry_path, entry, &mut names_seen) {
            sni.push(served);
        }
    }
    let client_auth = raw
        .client_auth
        .as_ref()
        .and_then(|auth| compile_client_auth(c, &format!("{path}.client_auth"), auth));
    let min_version = match raw.min_version.as_deref() {
        None | Some("1.2") => TlsVersion::Tls12,
        Some("1.3") => TlsVersion::Tls13,
        Some(other) => {
            c.error(
                format!("{path}.min_version"),
                format!("unknown TLS version \"{other}\" (expected \"1.2\" or \"1.3\")"),
            );
            TlsVersion::Tls12
        }
    };
    if c.errors.len() > errors_before {
        return None;
    }
    Some(Tls {
        default_cert: default_cert?,
        sni,
        http2: raw.http2.unwrap_or(true),
        client_auth,
        min_version,
    })
}

/// A certificate and its key, read and checked to belong together.
fn load_pair(c: &mut Checker, path: &str, cert: &str, key: &str) -> Option<ServedCert> {
    let (cert_file, key_file) = (c.resolve(cert), c.resolve(key));
    match load_certified_key(&cert_file, &key_file) {
        Ok(key) => Some(ServedCert {
            cert_file,
            key_file,
            server_names: Vec::new(),
            key,
        }),
        Err(message) => {
            c.error(format!("{path}.cert"), message);
            None
        }
    }
}

/// One `sni` entry: its certificate and the server names it is served for,
/// each valid, listed once across the listener, and covered by it.
fn compile_sni_entry(
    c: &mut Checker,
    entry_path: &str,
    entry: &RawSniCert,
    names_seen: &mut HashSet<String>,
) -> Option<ServedCert> {
    let mut served = load_pair(c, entry_path, &entry.cert, &entry.key)?;
    if entry.server_names.is_empty() {
        c.error(
            format!("{entry_path}.server_names"),
            "at least one server name is required",
        );
    }
    for (j, name) in entry.server_names.iter().enumerate() {
        let name_path = format!("{entry_path}.server_names[{j}]");
        let name = name.trim().to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        if bare.is_empty()
            || bare.contains('*')
            || rustls::pki_types::ServerName::try_from(bare).is_err()
        {
            c.error(name_path, format!("invalid server name \"{name}\""));
            continue;
        }
        if !names_seen.insert(name.clone()) {
            c.error(name_path, format!("server name \"{name}\" is listed twice"));
            continue;
        }
        if !cert_covers_server_name(&served.key, &name) {
            c.error(
                name_path,
                format!("certificate {} is not valid for \"{name}\"", entry.cert),
            );
            continue;
        }
        served.server_names.push(name);
    }
    Some(served)
}

/// `client_auth`: the CA bundle client certificates are checked against.
fn compile_client_auth(c: &mut Checker, path: &str, raw: &RawClientAuth) -> Option<ClientAuth> {
    let ca_file = c.resolve(&raw.ca);
    let roots = match load_ca_bundle(&ca_file) {
        Ok(roots) => roots,
        Err(message) => {
            c.error(format!("{path}.ca"), message);
            return None;
        }
    };
    let mut store = rustls::RootCertStore::empty();
    for (i, root) in roots.into_iter().enumerate() {
        if let Err(e) = store.add(root) {
            c.error(
                format!("{path}.ca"),
                format!(
                    "{}: certificate #{} cannot be a trust anchor: {e}",
                    ca_file.display(),
                    i + 1
                ),
            );
            return None;
        }
    }
    let required = raw.required.unwrap_or(true);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider);
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    match builder.build() {
        Ok(verifier) => Some(ClientAuth {
            ca_file,
            required,
            verifier,
        }),
        Err(e) => {
            c.error(
                format!("{path}.ca"),
                format!(
                    "cannot check client certificates against {}: {e}",
                    ca_file.display()
                ),
            );
            None
        }
    }
}

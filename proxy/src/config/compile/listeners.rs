//! `listeners`: addresses, and per listener the TLS certificates (default and
//! by SNI), each checked to cover the names it is served for.

use super::fields::Checker;
use crate::config::certs::{cert_covers_name, load_certified_key};
use crate::config::raw::*;
use crate::config::snapshot::*;
use rustls::sign::CertifiedKey;
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
        if let (Some(address), false) = (address, tls_failed) {
            listeners.push(Listener { address, tls, h2c });
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
    let default_cert = match load_certified_key(&c.resolve(&raw.cert), &c.resolve(&raw.key)) {
        Ok(cert) => Some(cert),
        Err(message) => {
            c.error(format!("{path}.cert"), message);
            None
        }
    };
    let mut cert_files = vec![c.resolve(&raw.cert)];
    let mut sni = Vec::new();
    let mut names_seen = HashSet::new();
    for (i, entry) in raw.sni.iter().enumerate() {
        cert_files.push(c.resolve(&entry.cert));
        let entry_path = format!("{path}.sni[{i}]");
        compile_sni_entry(c, &entry_path, entry, &mut names_seen, &mut sni);
    }
    Some(Tls {
        default_cert: default_cert?,
        sni,
        http2: raw.http2.unwrap_or(true),
        cert_files,
    })
}

/// One `sni` entry: its certificate and the server names it is served for,
/// each valid, listed once across the listener, and covered by it.
fn compile_sni_entry(
    c: &mut Checker,
    entry_path: &str,
    entry: &RawSniCert,
    names_seen: &mut HashSet<String>,
    sni: &mut Vec<(String, Arc<CertifiedKey>)>,
) {
    let cert = match load_certified_key(&c.resolve(&entry.cert), &c.resolve(&entry.key)) {
        Ok(cert) => cert,
        Err(message) => {
            c.error(format!("{entry_path}.cert"), message);
            return;
        }
    };
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
        let probe = match name.strip_prefix('*') {
            Some(suffix) => format!("sni-check{suffix}"),
            None => name.clone(),
        };
        if !cert_covers_name(&cert, &probe) {
            c.error(
                name_path,
                format!("certificate {} is not valid for \"{name}\"", entry.cert),
            );
            continue;
        }
        let key = match name.strip_prefix('*') {
            Some(suffix) => format!("*{suffix}"),
            None => name,
        };
        sni.push((key, cert.clone()));
    }
}

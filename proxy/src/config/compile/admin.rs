//! `admin` (the API's address and token), `explain` (when responses carry
//! the routing decision) and `client_address` (whose forwarding header is
//! believed): the keys about who may see and steer what.

use super::fields::Checker;
use super::fields::{compile_nets, header_name};
use crate::config::raw::*;
use crate::config::snapshot::*;

pub(super) fn compile_admin(c: &mut Checker, raw: Option<&RawAdmin>) -> Option<Admin> {
    let Some(raw) = raw else {
        return Some(Admin {
            address: DEFAULT_ADMIN_ADDRESS.parse().expect("valid default"),
            token_env: None,
            allowed_hosts: Vec::new(),
        });
    };
    let address = c.socket_addr("admin.address", &raw.address)?;
    if let Some(env) = &raw.token_env {
        if env.is_empty() || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            c.error(
                "admin.token_env",
                format!("invalid environment variable name \"{env}\""),
            );
        }
    }
    if !address.ip().is_loopback() && raw.token_env.is_none() {
        c.error(
            "admin.address",
            format!(
                "{address} is reachable from other hosts: set admin.token_env so the API \
                 (which can drain and pin backends) requires a token"
            ),
        );
    }
    let allowed_hosts = raw
        .allowed_hosts
        .iter()
        .enumerate()
        .filter_map(|(i, host)| {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                c.error(
                    format!("admin.allowed_hosts[{i}]"),
                    format!("invalid host name \"{host}\" (a DNS name without port, e.g. ballast-admin.internal)"),
                );
            }
            valid.then(|| host.to_ascii_lowercase())
        })
        .collect();
    Some(Admin {
        address,
        token_env: raw.token_env.clone(),
        allowed_hosts,
    })
}

pub(super) fn compile_client_address(
    c: &mut Checker,
    raw: &RawClientAddress,
) -> crate::config::ClientAddressRule {
    let header = header_name(
        c,
        "client_address.header".into(),
        raw.header.as_deref(),
        crate::config::DEFAULT_CLIENT_ADDRESS_HEADER,
    );
    let trusted_proxies = compile_nets(c, "client_address.trusted_proxies", &raw.trusted_proxies);
    if raw.trusted_proxies.is_empty() {
        c.error(
            "client_address.trusted_proxies",
            "list at least one trusted proxy (an IP address or CIDR range)",
        );
    }
    crate::config::ClientAddressRule {
        trusted_proxies,
        header,
    }
}

pub(super) fn compile_explain(c: &mut Checker, raw: &RawExplain) -> Explain {
    let debug_header = header_name(
        c,
        "explain.debug_header".into(),
        raw.debug_header.as_deref(),
        DEFAULT_DEBUG_HEADER,
    );
    let trusted_peers = compile_nets(c, "explain.trusted_peers", &raw.trusted_peers);
    Explain {
        always: raw.always.unwrap_or(false),
        debug_header,
        trusted_peers,
    }
}

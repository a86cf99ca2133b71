//! `pools.<name>.backends`: addresses or DNS names, regions, capacities,
//! weights, priorities and canary policies.

use super::fields::fraction;
use super::fields::Checker;
use crate::config::discovery::{BackendTemplate, DnsName, NamedEntry};
use crate::config::raw::*;
use crate::config::snapshot::*;
use std::collections::HashMap;
use std::net::SocketAddr;

fn compile_canary(c: &mut Checker, path: &str, raw: &RawCanaryPolicy) -> CanaryPolicy {
    let floor = fraction(
        c,
        format!("{path}.floor"),
        raw.floor,
        DEFAULT_CANARY.floor,
        0.0..=1.0,
    );
    let max = fraction(
        c,
        format!("{path}.max"),
        raw.max,
        DEFAULT_CANARY.max,
        0.0..=1.0,
    );
    if floor > max {
        c.error(
            format!("{path}.floor"),
            format!("{floor} is above max {max}"),
        );
    }
    let min_requests = raw.min_requests.unwrap_or(DEFAULT_CANARY.min_requests);
    if min_requests == 0 {
        c.error(format!("{path}.min_requests"), "must be at least 1");
    }
    CanaryPolicy {
        floor,
        max,
        max_error_rate: fraction(
            c,
            format!("{path}.max_error_rate"),
            raw.max_error_rate,
            DEFAULT_CANARY.max_error_rate,
            0.001..=1.0,
        ),
        min_requests,
        cooldown: c.duration(
            &format!("{path}.cooldown"),
            raw.cooldown.as_deref(),
            DEFAULT_CANARY.cooldown,
        ),
    }
}

/// A pool's backends: those written as addresses, and the entries that name
/// a host or an SRV record (resolved at run time).
pub(super) struct CompiledBackends {
    pub(super) fixed: Vec<Backend>,
    pub(super) named: Vec<NamedEntry>,
}

impl CompiledBackends {
    /// Every entry's template, fixed or named, for the checks that span the
    /// pool (regions, tiers, weights) whatever the names resolve to.
    pub(super) fn templates(&self) -> Vec<BackendTemplate> {
        let fixed = self.fixed.iter().map(|b| BackendTemplate {
            region: b.region.clone(),
            capacity: b.capacity,
            weight: b.weight,
            canary: b.canary.clone(),
            priority: b.priority,
            labels: b.labels.clone(),
        });
        fixed
            .chain(self.named.iter().map(|e| e.template.clone()))
            .collect()
    }
}

/// What an entry's `addr` or `srv` says to reach.
enum Target {
    Address(SocketAddr),
    Named(DnsName),
}

/// Whether `name` is a DNS name: dot-separated labels of letters, digits,
/// '-' and '_' (as in SRV names), each 1–63 long, 253 at most in all.
fn valid_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `addr` (IP:port or host:port) or `srv`, exactly one of them.
fn compile_target(c: &mut Checker, path: &str, backend: &RawBackend) -> Option<Target> {
    match (&backend.addr, &backend.srv) {
        (Some(_), Some(_)) => {
            c.error(path, "give either addr or srv, not both");
            None
        }
        (None, None) => {
            c.error(
                format!("{path}.addr"),
                "missing (give addr: IP:port or host:port, or srv: an SRV name)",
            );
            None
        }
        (None, Some(srv)) => {
            let srv = srv.trim();
            if valid_dns_name(srv) {
                Some(Target::Named(DnsName::Srv(srv.to_string())))
            } else {
                c.error(
                    format!("{path}.srv"),
                    format!(
                        "invalid SRV name \"{srv}\" (expected e.g. \"_http._tcp.api.internal\")"
                    ),
                );
                None
            }
        }
        (Some(addr), None) => {
            let text = addr.trim();
            if let Ok(addr) = text.parse::<SocketAddr>() {
                return Some(Target::Address(addr));
            }
            let named = text.rsplit_once(':').and_then(|(host, port)| {
                let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
                let looks_like_ip = host.parse::<std::net::IpAddr>().is_ok()
                    || host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
                (valid_dns_name(host) && !looks_like_ip).then(|| DnsName::Host {
                    host: host.to_ascii_lowercase(),
                    port,
                })
            });
            if named.is_none() {
                c.error(
                    format!("{path}.addr"),
                    format!("invalid address \"{text}\" (expected IP:port or host:port, e.g. \"127.0.0.1:8080\" or \"api.internal:8080\")"),
                );
            }
            named.map(Target::Named)
        }
    }
}

pub(super) fn compile_backends(
    c: &mut Checker,
    pool_path: &str,
    pool_name: &str,
    pool: &RawPool,
) -> CompiledBackends {
    let raw = &pool.backends;
    if raw.is_empty() {
        c.error(
            format!("{pool_path}.backends"),
            "a pool needs at least one backend",
        );
    }
    let mut first_index: HashMap<SocketAddr, usize> = HashMap::new();
    let mut first_name: HashMap<DnsName, usize> = HashMap::new();
    let mut compiled = CompiledBackends {
        fixed: Vec::new(),
        named: Vec::new(),
    };
    for (i, backend) in raw.iter().enumerate() {
        let path = format!("{pool_path}.backends[{i}]");
        let target = compile_target(c, &path, backend);
        if let Some(region) = &backend.region {
            if region.trim().is_empty() {
                c.error(format!("{path}.region"), "must not be empty");
            }
        }
        if backend.capacity == Some(0) {
            c.error(format!("{path}.capacity"), "must be greater than zero");
        }
        let weight = backend.weight.or(backend.capacity).unwrap_or(1);
        if weight > 1_000_000 {
            c.error(format!("{path}.weight"), "must be at most 1000000");
        }
        let canary = match &backend.canary {
            None | Some(RawCanary::Flag(false)) => None,
            Some(RawCanary::Flag(true)) => Some(DEFAULT_CANARY),
            Some(RawCanary::Policy(raw)) => Some(compile_canary(c, &format!("{path}.canary"), raw)),
        };
        let template = BackendTemplate {
            region: backend.region.clone(),
            capacity: backend.capacity,
            weight,
            canary,
            priority: backend
                .priority
                .or_else(|| {
                    let region = pool.regions.get(backend.region.as_ref()?)?;
                    region.priority
                })
                .unwrap_or(0),
            labels: backend.labels.clone(),
        };
        match target {
            None => {}
            Some(Target::Address(addr)) => {
                if let Some(first) = first_index.insert(addr, i) {
                    c.error(
                        format!("{path}.addr"),
                        format!("duplicate backend {addr} (also {pool_path}.backends[{first}])"),
                    );
                    continue;
                }
                compiled.fixed.push(template.backend(pool_name, addr, None));
            }
            Some(Target::Named(name)) => {
                if let Some(first) = first_name.insert(name.clone(), i) {
                    let key = if backend.srv.is_some() { "srv" } else { "addr" };
                    c.error(
                        format!("{path}.{key}"),
                        format!("duplicate backend {name} (also {pool_path}.backends[{first}])"),
                    );
                    continue;
                }
                compiled.named.push(NamedEntry {
                    name,
                    path,
                    template,
                });
            }
        }
    }
    compiled
}

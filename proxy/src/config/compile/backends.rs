//! `pools.<name>.backends`: addresses, regions, capacities, weights,
//! priorities and canary policies.

use super::fields::fraction;
use super::fields::Checker;
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

pub(super) fn compile_backends(
    c: &mut Checker,
    pool_path: &str,
    pool_name: &str,
    pool: &RawPool,
) -> Vec<Backend> {
    let raw = &pool.backends;
    if raw.is_empty() {
        c.error(
            format!("{pool_path}.backends"),
            "a pool needs at least one backend",
        );
    }
    let mut first_index: HashMap<SocketAddr, usize> = HashMap::new();
    let mut backends = Vec::new();
    for (i, backend) in raw.iter().enumerate() {
        let path = format!("{pool_path}.backends[{i}]");
        let addr = c.socket_addr(&format!("{path}.addr"), &backend.addr);
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
        let Some(addr) = addr else { continue };
        if let Some(first) = first_index.insert(addr, i) {
            c.error(
                format!("{path}.addr"),
                format!("duplicate backend {addr} (also {pool_path}.backends[{first}])"),
            );
            continue;
        }
        backends.push(Backend {
            id: BackendId::new(pool_name, addr),
            addr,
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
        });
    }
    backends
}

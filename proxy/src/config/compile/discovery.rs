//! `discovery`: which DNS servers resolve the backends named by DNS, and the
//! bounds put on the records' TTLs.

use super::fields::Checker;
use crate::config::discovery::{DiscoverySettings, DEFAULT_DISCOVERY};
use crate::config::raw::RawDiscovery;
use std::time::Duration;

/// The longest a query may be given.
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn compile_discovery(c: &mut Checker, raw: Option<&RawDiscovery>) -> DiscoverySettings {
    let Some(raw) = raw else {
        return DEFAULT_DISCOVERY;
    };
    let nameservers = raw
        .nameservers
        .iter()
        .enumerate()
        .filter_map(|(i, server)| c.socket_addr(&format!("discovery.nameservers[{i}]"), server))
        .collect();
    let ttl_floor = c.duration(
        "discovery.ttl_floor",
        raw.ttl_floor.as_deref(),
        DEFAULT_DISCOVERY.ttl_floor,
    );
    let ttl_ceiling = c.duration(
        "discovery.ttl_ceiling",
        raw.ttl_ceiling.as_deref(),
        DEFAULT_DISCOVERY.ttl_ceiling,
    );
    if ttl_floor > ttl_ceiling {
        c.error(
            "discovery.ttl_floor",
            format!("{ttl_floor:?} is above ttl_ceiling {ttl_ceiling:?}"),
        );
    }
    let timeout = c.duration(
        "discovery.timeout",
        raw.timeout.as_deref(),
        DEFAULT_DISCOVERY.timeout,
    );
    if timeout > MAX_QUERY_TIMEOUT {
        c.error("discovery.timeout", "must be at most 30s");
    }
    DiscoverySettings {
        nameservers,
        ttl_floor,
        ttl_ceiling,
        timeout,
    }
}

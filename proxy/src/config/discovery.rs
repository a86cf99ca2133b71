//! Backends named by DNS: the `discovery` settings, the named entries a pool
//! lists (`addr: host:port`, `srv: _service._proto.name`), and how a
//! compiled snapshot takes the addresses they currently resolve to.
//!
//! A pool compiles its named entries as templates: each resolved address
//! becomes a [`Backend`] that inherits the entry's region, capacity, weight,
//! canary policy, priority and labels. [`Snapshot::with_resolved`] builds the
//! snapshot the proxy runs from the configured one and the latest addresses,
//! exactly as if those addresses had been written in the file, so a change
//! of addresses is installed the way a reload is.

use super::compile::{distinct_regions, distinct_tiers};
use super::round_robin::smooth_wrr_schedule;
use super::snapshot::{Backend, BackendId, CanaryPolicy, Snapshot};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How names are resolved (the top-level `discovery` block).
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoverySettings {
    /// The DNS servers asked; empty: the system's (`/etc/resolv.conf`).
    pub nameservers: Vec<SocketAddr>,
    /// A name is not asked again sooner than this, whatever its TTL.
    pub ttl_floor: Duration,
    /// A name is asked again at least this often, whatever its TTL.
    pub ttl_ceiling: Duration,
    /// How long one query may take.
    pub timeout: Duration,
}

pub const DEFAULT_DISCOVERY: DiscoverySettings = DiscoverySettings {
    nameservers: Vec::new(),
    ttl_floor: Duration::from_secs(1),
    ttl_ceiling: Duration::from_secs(300),
    timeout: Duration::from_secs(2),
};

/// What a named entry asks DNS for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DnsName {
    /// `addr: host:port`: the host's A and AAAA records, each on `port`.
    Host { host: String, port: u16 },
    /// `srv: name`: the SRV records' targets (their A/AAAA records) and ports.
    Srv(String),
}

impl DnsName {
    /// `host` or `srv`, as the state API shows it.
    pub fn kind(&self) -> &'static str {
        match self {
            DnsName::Host { .. } => "host",
            DnsName::Srv(_) => "srv",
        }
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsName::Host { host, port } => write!(f, "{host}:{port}"),
            DnsName::Srv(name) => f.write_str(name),
        }
    }
}

/// What every backend made from an entry shares.
#[derive(Debug, Clone)]
pub struct BackendTemplate {
    pub region: Option<String>,
    pub capacity: Option<u32>,
    pub weight: u32,
    pub canary: Option<CanaryPolicy>,
    pub priority: u32,
    pub labels: BTreeMap<String, String>,
}

impl BackendTemplate {
    /// The backend at `addr` of pool `pool`.
    pub fn backend(&self, pool: &str, addr: SocketAddr, named: Option<&DnsName>) -> Backend {
        Backend {
            id: BackendId::new(pool, addr),
            addr,
            region: self.region.clone(),
            capacity: self.capacity,
            weight: self.weight,
            canary: self.canary.clone(),
            priority: self.priority,
            labels: self.labels.clone(),
            discovered_from: named.cloned(),
        }
    }
}

/// A backend entry that names a host or an SRV record.
#[derive(Debug, Clone)]
pub struct NamedEntry {
    pub name: DnsName,
    /// Where it is in the file, e.g. `pools.api.backends[1]`.
    pub path: String,
    pub template: BackendTemplate,
}

impl Snapshot {
    /// Every named entry, with its pool's name.
    pub fn named_entries(&self) -> impl Iterator<Item = (&str, &NamedEntry)> {
        self.pools
            .iter()
            .flat_map(|p| p.named.iter().map(move |e| (p.name.as_str(), e)))
    }

    /// This snapshot with each named entry's backends made from the
    /// addresses `resolved` gives for it (none until it has resolved). The
    /// backends written as addresses stay first; an address already in the
    /// pool is not added twice.
    pub fn with_resolved<'a>(
        &self,
        resolved: impl Fn(&str, &DnsName) -> Option<&'a [SocketAddr]>,
    ) -> Snapshot {
        let mut snapshot = self.clone();
        for pool in &mut snapshot.pools {
            pool.backends.retain(|b| b.discovered_from.is_none());
            let mut seen: HashSet<SocketAddr> = pool.backends.iter().map(|b| b.addr).collect();
            for entry in &pool.named {
                for &addr in resolved(&pool.name, &entry.name).unwrap_or_default() {
                    if seen.insert(addr) {
                        let backend = entry.template.backend(&pool.name, addr, Some(&entry.name));
                        pool.backends.push(backend);
                    }
                }
            }
            let weights: Vec<u32> = pool.backends.iter().map(|b| b.weight).collect();
            pool.schedule = smooth_wrr_schedule(&weights);
            pool.regions = distinct_regions(pool.backends.iter().map(|b| &b.region));
            pool.tiers = distinct_tiers(pool.backends.iter().map(|b| b.priority));
        }
        snapshot
    }
}

#[cfg(test)]
mod tests;

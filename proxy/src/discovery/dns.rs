//! Asking DNS what a named entry stands for, with hickory's async resolver:
//! a host's A and AAAA records, or an SRV record's targets and ports.
//!
//! The resolver's own cache is emptied before every resolution: when a name
//! is asked again is decided by the caller from the records' TTL (clamped to
//! the `discovery` floor and ceiling), so every resolution reaches a server.

use crate::config::{DiscoverySettings, DnsName};
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use std::net::SocketAddr;
use std::time::Duration;

/// What one resolution found.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// Sorted, without duplicates, never empty.
    pub addrs: Vec<SocketAddr>,
    /// The shortest TTL among the records used.
    pub ttl: Duration,
}

/// Why a resolution gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The name does not exist.
    NxDomain,
    /// The name exists but has no usable record.
    Empty,
    /// No answer: a timeout, a refused query, an unreachable server.
    Error,
}

impl FailureKind {
    /// The `result` label of `ballast_discovery_resolutions_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::NxDomain => "nxdomain",
            FailureKind::Empty => "empty",
            FailureKind::Error => "error",
        }
    }
}

/// A resolution that gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

impl From<ResolveError> for Failure {
    fn from(error: ResolveError) -> Self {
        let kind = if error.is_nx_domain() {
            FailureKind::NxDomain
        } else if error.is_no_records_found() {
            FailureKind::Empty
        } else {
            FailureKind::Error
        };
        Failure {
            kind,
            message: error.to_string(),
        }
    }
}

/// A resolver built from the `discovery` settings.
pub struct Dns {
    resolver: Result<TokioResolver, String>,
}

impl Dns {
    /// The configured nameservers (UDP, then TCP for truncated answers), or
    /// the system's when none is configured. A system configuration that
    /// cannot be read makes every resolution fail with that reason.
    pub fn new(settings: &DiscoverySettings) -> Self {
        let builder = if settings.nameservers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))
        } else {
            let servers: Vec<NameServerConfig> = settings
                .nameservers
                .iter()
                .flat_map(|&addr| {
                    [
                        NameServerConfig::new(addr, Protocol::Udp),
                        NameServerConfig::new(addr, Protocol::Tcp),
                    ]
                })
                .collect();
            let config =
                ResolverConfig::from_parts(None, vec![], NameServerConfigGroup::from(servers));
            let mut builder =
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            Ok(builder)
        };
        let resolver = builder.map(|mut builder| {
            let options: &mut ResolverOpts = builder.options_mut();
            options.timeout = settings.timeout;
            options.attempts = 1;
            options.cache_size = 0;
            // Both families, every address: each one is a backend.
            options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            builder.build()
        });
        Self { resolver }
    }

    /// Resolve `name` once.
    pub async fn resolve(&self, name: &DnsName) -> Result<Resolved, Failure> {
        let resolver = self.resolver.as_ref().map_err(|message| Failure {
            kind: FailureKind::Error,
            message: message.clone(),
        })?;
        resolver.clear_cache();
        let (mut addrs, ttl) = match name {
            DnsName::Host { host, port } => {
                let (ips, ttl) = lookup_host(resolver, host).await?;
                (ips.map(|ip| SocketAddr::new(ip, *port)).collect(), ttl)
            }
            DnsName::Srv(srv) => lookup_srv(resolver, srv).await?,
        };
        addrs.sort_unstable();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(Failure {
                kind: FailureKind::Empty,
                message: format!("{name} has no usable record"),
            });
        }
        Ok(Resolved { addrs, ttl })
    }
}

/// The shortest TTL of a lookup's answer records.
fn shortest_ttl(lookup: &hickory_resolver::lookup::Lookup) -> Duration {
    let seconds = lookup.records().iter().map(|r| r.ttl()).min().unwrap_or(0);
    Duration::from_secs(u64::from(seconds))
}

async fn lookup_host(
    resolver: &TokioResolver,
    host: &str,
) -> Result<(impl Iterator<Item = std::net::IpAddr>, Duration), Failure> {
    let lookup = resolver.lookup_ip(host).await?;
    let ttl = shortest_ttl(lookup.as_lookup());
    Ok((lookup.into_iter(), ttl))
}

/// Each SRV record's target resolved, on the record's port. A target that
/// does not resolve is left out; if none resolves, the first failure is the
/// answer.
async fn lookup_srv(
    resolver: &TokioResolver,
    name: &str,
) -> Result<(Vec<SocketAddr>, Duration), Failure> {
    let lookup = resolver.srv_lookup(name).await?;
    let mut ttl = shortest_ttl(lookup.as_lookup());
    let mut addrs = Vec::new();
    let mut first_failure = None;
    for record in lookup.iter() {
        // A target of "." says the service is not offered there.
        if record.target().is_root() || record.port() == 0 {
            continue;
        }
        match lookup_host(resolver, &record.target().to_ascii()).await {
            Ok((ips, target_ttl)) => {
                ttl = ttl.min(target_ttl);
                addrs.extend(ips.map(|ip| SocketAddr::new(ip, record.port())));
            }
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    match (addrs.is_empty(), first_failure) {
        (true, Some(failure)) => Err(failure),
        _ => Ok((addrs, ttl)),
    }
}

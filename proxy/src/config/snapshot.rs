//! The compiled, immutable runtime configuration.
//!
//! A [`Snapshot`] is built once per load or reload by `compile/` and then
//! only read. Pools and backends are addressed by index; each backend also has
//! a stable [`BackendId`] (pool name + address) under which live state that
//! outlives a reload is kept.
//!
//! Each type's defaults (`DEFAULT_*`, what an omitted key means) follow it;
//! the bounds a value must lie in are checked in `compile/`.

use super::access_log::{AccessFields, AccessOutput};
use super::client_address::ClientAddressRule;
use super::discovery::{DiscoverySettings, DnsName, NamedEntry};
use super::fleet::FleetBudgets;
pub use super::retry_policy::*;
use super::routes::RouteTable;
use super::trace_export::TraceExport;
use pingora::protocols::tls::CaType;
use pingora::utils::tls::CertKey;
use rustls::sign::CertifiedKey;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Index of a pool in [`Snapshot::pools`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PoolId(pub usize);

/// A backend's identity across reloads: `pool/address`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendId(pub String);

impl BackendId {
    pub fn new(pool: &str, addr: SocketAddr) -> Self {
        Self(format!("{pool}/{addr}"))
    }
}

impl fmt::Display for BackendId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything the running proxy needs, validated. Cloning shares the loaded
/// certificates.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub listeners: Vec<Listener>,
    pub admin: Admin,
    pub server: ServerSettings,
    pub routes: RouteTable,
    pub pools: Vec<Pool>,
    /// Client regions, fallbacks and fences; `None` when not configured.
    pub geo: Option<Geo>,
    /// When to explain routing decisions; `None`: never.
    pub explain: Option<Explain>,
    /// How backends named by DNS are resolved.
    pub discovery: DiscoverySettings,
    /// Whose forwarding header names the client; `None`: the peer is the client.
    pub client_address: Option<ClientAddressRule>,
    /// Event budgets shared by a fleet through Redis; `None`: per instance.
    pub fleet: Option<FleetBudgets>,
    /// Where request spans are exported; `None`: not exported.
    pub tracing: Option<TraceExport>,
}

/// When responses carry `X-Ballast-Decision`.
#[derive(Debug, Clone)]
pub struct Explain {
    pub always: bool,
    pub debug_header: http::HeaderName,
    pub trusted_peers: Vec<ipnet::IpNet>,
}

pub const DEFAULT_DEBUG_HEADER: &str = "x-ballast-debug";

/// How a client's region is found.
#[derive(Debug, Clone)]
pub enum RegionRule {
    /// A header, believed only from trusted peers.
    Header {
        name: http::HeaderName,
        trusted_peers: Vec<ipnet::IpNet>,
    },
    /// Client address ranges, longest prefix first.
    Cidr(Vec<(ipnet::IpNet, String)>),
    Default(String),
}

/// Where a client of one region may be served, in order of preference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionPlan {
    /// The client's region, then its fallbacks (only allowed ones when fenced).
    pub order: Vec<String>,
    /// Whether a residency fence applies: nothing outside `order` may serve.
    pub fenced: bool,
}

/// Compiled geo rules.
#[derive(Debug, Clone)]
pub struct Geo {
    pub rules: Vec<RegionRule>,
    /// Plan per known client region.
    pub plans: BTreeMap<String, RegionPlan>,
}
impl Snapshot {
    pub fn pool(&self, id: PoolId) -> &Pool {
        &self.pools[id.0]
    }

    pub fn pool_by_name(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// A downstream listening socket.
#[derive(Debug, Clone)]
pub struct Listener {
    pub address: SocketAddr,
    pub tls: Option<Tls>,
    /// A plain listener that also takes HTTP/2 with prior knowledge (h2c).
    pub h2c: bool,
    /// The sources that send PROXY protocol headers; `None`: no PROXY protocol.
    pub proxy_protocol: Option<Vec<ipnet::IpNet>>,
}

/// Loaded and checked TLS material for one listener.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Served when the client sends no SNI or an unknown name.
    pub default_cert: ServedCert,
    /// Certificates chosen by SNI, in configuration order.
    pub sni: Vec<ServedCert>,
    /// Offer h2 by ALPN (on by default).
    pub http2: bool,
    /// Client certificates asked for (mutual TLS), if configured.
    pub client_auth: Option<ClientAuth>,
    /// The oldest TLS version a client may use.
    pub min_version: TlsVersion,
}

impl Tls {
    /// Every certificate, the default first.
    pub fn certs(&self) -> impl Iterator<Item = &ServedCert> {
        std::iter::once(&self.default_cert).chain(&self.sni)
    }
}

/// A certificate a listener serves: its files, the names it is chosen for
/// and the checked pair as loaded.
#[derive(Debug, Clone)]
pub struct ServedCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Lower-case server names or `*.suffix` wildcards, each checked to be
    /// covered by the certificate; empty for the listener's default.
    pub server_names: Vec<String>,
    pub key: Arc<CertifiedKey>,
}

/// Mutual TLS on a listener: client certificates are checked against a CA
/// bundle.
#[derive(Debug, Clone)]
pub struct ClientAuth {
    pub ca_file: PathBuf,
    /// Refuse clients that present no certificate (a presented certificate
    /// is always checked).
    pub required: bool,
    pub verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

/// A TLS protocol version a listener accepts at the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "1.2",
            TlsVersion::Tls13 => "1.3",
        }
    }
}

/// The admin endpoint.
#[derive(Debug, Clone)]
pub struct Admin {
    pub address: SocketAddr,
    pub token_env: Option<String>,
    /// Host names accepted besides IP addresses and localhost, lowercase.
    pub allowed_hosts: Vec<String>,
}

pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";

/// Process-wide settings handed to Pingora.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads for the proxy service.
    pub threads: usize,
    /// On shutdown, how long in-flight requests get to finish after the
    /// listeners close; the process exits as soon as none are left.
    pub drain_timeout: Duration,
    /// How long an idle client connection waits for its next request
    /// (HTTP/1.1) or stream (HTTP/2).
    pub keepalive_timeout: Duration,
    /// How long a new client connection may take, in total, to deliver its
    /// first complete request header (a later HTTP/1.1 one: this plus
    /// `keepalive_timeout`).
    pub header_timeout: Duration,
    /// Client connections open at once in the process; `None` derives it at
    /// start from the open-file limit.
    pub max_connections: Option<usize>,
    /// Client connections open at once from one IP address (0: no limit).
    pub max_client_connections: usize,
    /// Streams open at once on one client HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
    pub upstream_keepalive_pool_size: usize,
    /// Unix socket over which a graceful upgrade hands over the listeners.
    pub upgrade_sock: PathBuf,
    pub limits: RequestLimits,
    /// The fields each access line carries.
    pub access_fields: AccessFields,
    /// Where the access lines go.
    pub access_output: AccessOutput,
}

pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 100;
pub const DEFAULT_KEEPALIVE_POOL_SIZE: usize = 128;
pub const DEFAULT_UPGRADE_SOCK: &str = "/tmp/ballast_upgrade.sock";

/// What a client request may carry; over a limit it is refused (414 / 431).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    pub max_uri_bytes: usize,
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// The largest request body (`None`: no limit); a route may override it.
    pub max_body_bytes: Option<u64>,
}

pub const DEFAULT_LIMITS: RequestLimits = RequestLimits {
    max_uri_bytes: 8192,
    max_headers: 100,
    max_header_bytes: 32 * 1024,
    max_body_bytes: None,
};

/// How a pool spreads requests over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BalanceMode {
    /// Shares follow `1 / p99 latency` (fast backends get more).
    Latency,
    /// Shares follow each backend's spare capacity (configured, reported or
    /// estimated from latency against `target_latency`).
    Capacity,
    /// Smooth weighted round robin over the configured weights: the static
    /// baseline, ignoring everything measured.
    RoundRobin,
    /// Linkerd's power of two choices over peak-EWMA round trips: per
    /// request, two eligible backends drawn at random, the one with the
    /// lower `round-trip estimate × (in flight + 1)` wins. The engine only
    /// decides which backends are eligible.
    PeakEwma,
}

impl BalanceMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BalanceMode::Latency => "latency",
            BalanceMode::Capacity => "capacity",
            BalanceMode::RoundRobin => "round_robin",
            BalanceMode::PeakEwma => "peak_ewma",
        }
    }

    /// Whether the weight engine sets the shares from what it measures
    /// (latency, capacity); otherwise shares are the configured weights and
    /// only eligibility changes.
    pub fn is_adaptive(self) -> bool {
        matches!(self, BalanceMode::Latency | BalanceMode::Capacity)
    }
}

/// Tuning of the weight engine for one pool.
#[derive(Debug, Clone)]
pub struct PoolPolicy {
    pub mode: BalanceMode,
    /// Capacity mode: the latency a backend should stay under.
    pub target_latency: Duration,
    /// Floor of a healthy backend's share (keeps slow paths measured).
    pub min_share: f64,
    /// Cap of any backend's share.
    pub max_share: f64,
    /// Weight given to a new computation: `w = α·w_calc + (1-α)·w_old`.
    pub smoothing: f64,
    pub recompute_interval: Duration,
    /// A returning backend ramps from ~10% of its fair share over this long.
    pub slow_start: Duration,
    pub server_load: ServerLoadPolicy,
    pub outlier: OutlierPolicy,
    /// Active health checks, when configured.
    pub health: Option<HealthPolicy>,
    /// Polling backends' load endpoints, when configured.
    pub load_poll: Option<LoadPollPolicy>,
    /// What is retried, how many times, within what budget.
    pub retries: RetryPolicy,
    /// No region takes more than this fraction of the pool's traffic (1 = no cap).
    pub region_max_share: f64,
    /// Load-driven spillover; `None`: only `region_max_share` moves traffic.
    pub spillover: Option<SpilloverPolicy>,
    /// Where a user's key is read for sticky canary assignment.
    pub canary_sticky: Option<StickyKey>,
    /// Consistent hashing on a request key; `None`: weighted picks only.
    pub consistent_hash: Option<ConsistentHash>,
    /// A priority tier takes `min(1, health × factor)` of what the tiers
    /// above it leave (at least 1).
    pub overprovisioning_factor: f64,
    /// Least share of each standby tier that has a healthy backend.
    pub prewarm_share: f64,
    /// Weight templates, in order: the first that applies wins.
    pub schedules: Vec<ScheduleTemplate>,
}

pub const DEFAULT_TARGET_LATENCY: Duration = Duration::from_millis(100);
pub const DEFAULT_MIN_SHARE: f64 = 0.02;
pub const DEFAULT_MAX_SHARE: f64 = 0.8;
pub const DEFAULT_SMOOTHING: f64 = 0.3;
pub const DEFAULT_RECOMPUTE_INTERVAL: Duration = Duration::from_millis(500);
pub const DEFAULT_SLOW_START: Duration = Duration::from_secs(2);
pub const DEFAULT_OVERPROVISIONING_FACTOR: f64 = 1.4;

/// Region weight multipliers that apply at certain local times
/// (see `routing::schedule` for how they are matched).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleTemplate {
    pub name: String,
    /// Region → multiplier of its backends' weights.
    pub multipliers: BTreeMap<String, f64>,
    /// Weekdays it applies on, Monday first; `None`: every day.
    pub days: Option<[bool; 7]>,
    /// Local minutes of the day `[from, to)`; `to < from` runs across midnight.
    pub window: Option<(u32, u32)>,
    /// Local dates, as days since 1970-01-01, both included.
    pub dates: Option<(i64, i64)>,
    /// Seconds added to UTC to get local time.
    pub utc_offset_s: i64,
}

impl PoolPolicy {
    /// Whether the weight engine computes the same shares under both
    /// policies (every parameter its formulas read is equal).
    pub fn same_weight_parameters(&self, other: &PoolPolicy) -> bool {
        self.mode == other.mode
            && self.target_latency == other.target_latency
            && self.min_share == other.min_share
            && self.max_share == other.max_share
            && self.smoothing == other.smoothing
            && self.slow_start == other.slow_start
            && self.server_load.stale_after == other.server_load.stale_after
            && self.region_max_share == other.region_max_share
            && self.overprovisioning_factor == other.overprovisioning_factor
            && self.prewarm_share == other.prewarm_share
    }
}

/// Which latency a spillover threshold compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatencySignal {
    Ewma,
    P99,
}

impl LatencySignal {
    pub fn as_str(self) -> &'static str {
        match self {
            LatencySignal::Ewma => "ewma",
            LatencySignal::P99 => "p99",
        }
    }
}

/// When a region is under pressure and how traffic moves off it and back.
#[derive(Debug, Clone, PartialEq)]
pub struct SpilloverPolicy {
    pub latency_above: Option<Duration>,
    pub latency_signal: LatencySignal,
    pub utilization_above: Option<f64>,
    /// Fraction moved per recompute interval.
    pub step: f64,
    /// Most ever moved away.
    pub max: f64,
    /// Back once every signal is below `hysteresis × threshold`.
    pub hysteresis: f64,
    /// No moving back until this long after the last move out.
    pub hold: Duration,
}

pub const DEFAULT_SPILLOVER: SpilloverPolicy = SpilloverPolicy {
    latency_above: None,
    latency_signal: LatencySignal::Ewma,
    utilization_above: None,
    step: 0.05,
    max: 0.9,
    hysteresis: 0.8,
    hold: Duration::from_secs(5),
};

/// Where a request's key is read.
#[derive(Debug, Clone, PartialEq)]
pub enum StickyKey {
    Header(http::HeaderName),
    Cookie(String),
    /// The N-th non-empty path segment, from 1.
    PathSegment(usize),
}

/// What a route over its event budget in a region does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverBudget {
    /// 503 with `Retry-After`.
    Shed,
    /// To the next region of the client's plan with budget left, else shed.
    Spill,
}

impl OverBudget {
    pub fn as_str(self) -> &'static str {
        match self {
            OverBudget::Shed => "shed",
            OverBudget::Spill => "spill",
        }
    }
}

/// A route's event budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetPolicy {
    /// Most of each region's configured capacity the route may use.
    pub region_share: f64,
    pub over: OverBudget,
    /// Sent as `Retry-After` (whole seconds) with a shed request.
    pub retry_after: Duration,
}

pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Consistent hashing: the key, the ring's size and how fast keys move.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsistentHash {
    pub key: StickyKey,
    /// Virtual nodes of a backend at fair share.
    pub vnodes: u32,
    /// Most of the key space that changes owner per recompute interval.
    pub max_key_moves: f64,
}

pub const DEFAULT_VNODES: u32 = 100;
pub const DEFAULT_MAX_KEY_MOVES: f64 = 0.05;

/// Where backends' load reports are read and whether they are passed on.
#[derive(Debug, Clone)]
pub struct ServerLoadPolicy {
    pub header: http::HeaderName,
    pub orca_header: http::HeaderName,
    /// Remove both headers before the response reaches the client.
    pub strip: bool,
    /// A backend that reported and then went quiet this long is degraded.
    pub stale_after: Duration,
}

pub const DEFAULT_SERVER_LOAD_HEADER: &str = "server-load";
pub const DEFAULT_ORCA_HEADER: &str = "endpoint-load-metrics";

pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3);

/// How a backend is probed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// `GET path` must answer 200.
    Http { path: String, host: Option<String> },
    /// A TCP connection must open.
    Tcp,
}

/// Active health checks for a pool.
#[derive(Debug, Clone)]
pub struct HealthPolicy {
    pub kind: HealthCheckKind,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes that bring an unhealthy backend back.
    pub healthy_after: u32,
    /// Consecutive failures that take a healthy backend out.
    pub unhealthy_after: u32,
}

pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_HEALTHY_AFTER: u32 = 2;
pub const DEFAULT_UNHEALTHY_AFTER: u32 = 2;

/// Polling backends' load endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPollPolicy {
    /// Path and query of the `GET`.
    pub path: String,
    /// Host header; `None`: the pool name.
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Only backends serving fewer requests per second are polled.
    pub quiet_below: f64,
}

pub const DEFAULT_LOAD_POLL_PATH: &str = "/load";
pub const DEFAULT_LOAD_POLL_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_LOAD_POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// 1 request/s is 10 in the 10 s window: the fewest that are measured.
pub const DEFAULT_QUIET_BELOW: f64 = 1.0;

/// A canary's bounds and breaker.
#[derive(Debug, Clone, PartialEq)]
pub struct CanaryPolicy {
    pub floor: f64,
    pub max: f64,
    pub max_error_rate: f64,
    pub min_requests: u64,
    pub cooldown: Duration,
}

pub const DEFAULT_CANARY: CanaryPolicy = CanaryPolicy {
    floor: 0.01,
    max: 0.25,
    max_error_rate: 0.05,
    min_requests: 20,
    cooldown: Duration::from_secs(30),
};

/// Passive outlier ejection.
#[derive(Debug, Clone)]
pub struct OutlierPolicy {
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    /// At most this fraction of a pool is ejected at once.
    pub max_ejected: f64,
    /// Ejection by failure rate over the outcome window; `None`: off.
    pub failure_rate: Option<FailureRateEjection>,
}

/// Eject a backend that failed more than `threshold` of at least
/// `min_requests` requests over the last 10 s (since it came back, if it
/// came back within them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureRateEjection {
    pub threshold: f64,
    pub min_requests: u64,
}

pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_EJECTED: f64 = 0.5;
pub const DEFAULT_FAILURE_RATE_THRESHOLD: f64 = 0.5;
pub const DEFAULT_FAILURE_RATE_MIN_REQUESTS: u64 = 20;

/// Upstream timeouts for one pool.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    pub idle: Duration,
}

pub const DEFAULT_TIMEOUTS: UpstreamTimeouts = UpstreamTimeouts {
    connect: Duration::from_secs(2),
    read: Duration::from_secs(30),
    write: Duration::from_secs(30),
    idle: Duration::from_secs(60),
};

/// How a pool reaches its backends over TLS: loaded and checked when the
/// configuration is compiled, so connecting reads no file.
#[derive(Debug, Clone)]
pub struct UpstreamTls {
    /// Sent by SNI and checked against the certificate; `None`: no SNI is
    /// sent and the certificate must name the backend's IP address.
    pub sni: Option<String>,
    /// Whether the backend's certificate is checked at all.
    pub verify: bool,
    pub alpn: UpstreamAlpn,
    /// The CAs trusted for the backends' certificates; `None`: the system's.
    pub ca: Option<Arc<CaType>>,
    pub ca_file: Option<PathBuf>,
    /// The certificate and key presented to a backend that asks (mTLS).
    pub client_cert: Option<Arc<CertKey>>,
    pub client_cert_file: Option<PathBuf>,
    /// Keeps the pool's pooled connections apart from other pools' (which
    /// may trust other CAs) and from those made under earlier settings.
    pub connection_group: u64,
}

/// The protocols a pool offers its backends by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamAlpn {
    Http1,
    H2,
    H2OrHttp1,
}

impl UpstreamAlpn {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamAlpn::Http1 => "http1",
            UpstreamAlpn::H2 => "h2",
            UpstreamAlpn::H2OrHttp1 => "h2_or_http1",
        }
    }
}

/// A set of backends a route sends traffic to.
#[derive(Debug, Clone)]
pub struct Pool {
    pub id: PoolId,
    pub name: String,
    pub policy: PoolPolicy,
    pub timeouts: UpstreamTimeouts,
    /// The backends written as addresses, then those resolved from the
    /// named entries (see [`Snapshot::with_resolved`]).
    pub backends: Vec<Backend>,
    /// Entries that name a host or an SRV record, resolved by DNS.
    pub named: Vec<NamedEntry>,
    /// Backend indices in smooth weighted round-robin order; one full cycle.
    pub schedule: Vec<u32>,
    /// The distinct regions of the backends, sorted (`None`: no region).
    pub regions: Vec<Option<String>>,
    /// The distinct priority tiers of the backends, highest (0) first.
    pub tiers: Vec<u32>,
    /// Read/write split; `None`: every request is routed alike.
    pub write: Option<WriteSplit>,
    /// A candidate policy evaluated in shadow, when configured.
    pub shadow: Option<ShadowPolicy>,
    /// TLS to the backends; `None`: plain HTTP.
    pub tls: Option<UpstreamTls>,
    /// Plain backends are spoken HTTP/2 with prior knowledge (h2c); never
    /// set with `tls`, whose ALPN chooses the protocol.
    pub h2c: bool,
}

impl Pool {
    /// The protocol spoken to the backends: `http1` or `h2c` in the clear,
    /// or the ALPN offer over TLS (`http1`, `h2`, `h2_or_http1`).
    pub fn protocol(&self) -> &'static str {
        match (&self.tls, self.h2c) {
            (Some(tls), _) => tls.alpn.as_str(),
            (None, true) => "h2c",
            (None, false) => "http1",
        }
    }
}

/// Which requests are writes and where they go.
#[derive(Debug, Clone)]
pub struct WriteSplit {
    /// The only region whose backends take writes.
    pub region: String,
    /// The plan of writes and pinned reads: the write region alone, fenced.
    pub plan: RegionPlan,
    pub methods: Vec<http::Method>,
    /// Segment-aware path prefixes under which every request is a write.
    pub path_prefixes: Vec<String>,
    /// A request carrying this header is a write.
    pub header: Option<http::HeaderName>,
    pub read_your_writes: Option<ReadYourWrites>,
}

/// What a read/write split counts as a write unless told otherwise.
pub const DEFAULT_WRITE_METHODS: [http::Method; 4] = [
    http::Method::POST,
    http::Method::PUT,
    http::Method::PATCH,
    http::Method::DELETE,
];

/// How long a client's reads stay on the write region after its write.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadYourWrites {
    pub ttl: Duration,
    pub carrier: PinCarrier,
}

pub const DEFAULT_PIN_TTL: Duration = Duration::from_secs(5);
pub const DEFAULT_PIN_COOKIE: &str = "ballast_ryw";

/// What carries a client's pin (the expiry, in Unix milliseconds).
#[derive(Debug, Clone, PartialEq)]
pub enum PinCarrier {
    /// A cookie the proxy sets on a write's response.
    Cookie(String),
    /// A header the proxy sets on a write's response and the client echoes.
    Header(http::HeaderName),
}

/// A candidate weight policy run beside the live one without routing.
#[derive(Debug, Clone)]
pub struct ShadowPolicy {
    /// The pool's policy with the candidate's parameters in place.
    pub policy: PoolPolicy,
    /// Fraction of requests compared with the candidate.
    pub sample: f64,
}

/// One upstream server.
#[derive(Debug, Clone)]
pub struct Backend {
    pub id: BackendId,
    pub addr: SocketAddr,
    pub region: Option<String>,
    pub capacity: Option<u32>,
    pub weight: u32,
    pub canary: Option<CanaryPolicy>,
    /// Priority tier: 0 is served first.
    pub priority: u32,
    pub labels: BTreeMap<String, String>,
    /// The named entry it was resolved from; `None`: written as an address.
    pub discovered_from: Option<DnsName>,
}

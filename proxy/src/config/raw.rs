//! The configuration file as written: plain serde types that mirror the YAML.
//!
//! No key is silently ignored: `parse` collects every key these types do not
//! know (serde_ignored) and reports each, with the nearest known key, so a
//! typo is an error. The structs inside untagged enums deny unknown fields
//! themselves (serde_ignored cannot see into an untagged enum's buffer). Values stay as strings where they need validation with a
//! good message (addresses, durations, header names); `compile.rs` turns them
//! into the runtime [`Snapshot`](super::Snapshot). The runtime never sees these types.
//!
//! The same types generate the configuration's JSON Schema
//! (`ballast schema`, shipped as `conf/ballast.schema.json`) so that editors
//! can validate the YAML; doc comments become the schema's descriptions.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;

pub use super::raw_edits::*;
pub use super::raw_fleet::RawFleet;
pub use super::raw_tracing::RawTracing;

/// The whole configuration file.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(title = "Ballast configuration")]
pub struct RawConfig {
    /// Downstream listening sockets (at least one).
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    /// The admin endpoint (default 127.0.0.1:9901).
    pub admin: Option<RawAdmin>,
    /// Process-wide settings.
    pub server: Option<RawServer>,
    /// Pools of backends, by name.
    #[serde(default)]
    pub pools: BTreeMap<String, RawPool>,
    /// Routes, matched in order; the first match wins.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Regions and their fallback order (network proximity).
    #[serde(default)]
    pub regions: BTreeMap<String, RawRegion>,
    /// Where clients are, and where they may be served.
    pub geo: Option<RawGeo>,
    /// Explaining routing decisions in a response header.
    pub explain: Option<RawExplain>,
    /// How backends named by DNS are resolved.
    pub discovery: Option<RawDiscovery>,
    /// Which forwarding proxies are believed about the client's address
    /// (`X-Forwarded-For`).
    pub client_address: Option<RawClientAddress>,
    /// State shared by the instances of a fleet beyond the configuration:
    /// the routes' event budgets kept in Redis for the whole fleet.
    pub fleet: Option<RawFleet>,
    /// A span per request, exported over OTLP.
    pub tracing: Option<RawTracing>,
}

/// The client's address behind proxies, load balancers or a CDN: the header
/// they append it to is walked right to left past the trusted ones.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawClientAddress {
    /// Proxies (IP addresses or CIDR ranges) whose forwarding header is
    /// believed; a request from any other peer is placed by its peer address.
    pub trusted_proxies: Vec<String>,
    /// The header the proxies append the client's address to (default
    /// `X-Forwarded-For`).
    pub header: Option<String>,
}

/// How backends named by DNS (`addr: host:port`, `srv:`) are resolved.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawDiscovery {
    /// DNS servers to ask, as ip:port (default: the system's, from /etc/resolv.conf).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// Shortest time between two resolutions of a name, whatever its TTL (default 1s).
    pub ttl_floor: Option<String>,
    /// Longest time between two resolutions of a name, whatever its TTL (default 5m).
    pub ttl_ceiling: Option<String>,
    /// How long one DNS query may take (default 2s).
    pub timeout: Option<String>,
}

/// When responses carry `X-Ballast-Decision`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawExplain {
    /// On every response (default false).
    pub always: Option<bool>,
    /// A request header that asks for the explanation (default X-Ballast-Debug)...
    pub debug_header: Option<String>,
    /// ...honoured only from these peers (CIDRs).
    #[serde(default)]
    pub trusted_peers: Vec<String>,
}

/// One region.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRegion {
    /// Regions to use, in order, when this one has no eligible backend.
    #[serde(default)]
    pub fallback: Vec<String>,
}

/// Client region resolution and residency fences.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawGeo {
    /// Rules tried in order; the first that yields a region wins.
    #[serde(default)]
    pub client_region: Vec<RawRegionRule>,
    /// Hard fences: these clients are only ever served by these regions.
    #[serde(default)]
    pub residency: Vec<RawFence>,
}

/// One client-region rule: exactly one of `header`, `cidr`, `default`.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRegionRule {
    /// A request header naming the client's region...
    pub header: Option<String>,
    /// ...honoured only from these peers (CIDRs; required with `header`).
    pub trusted_peers: Option<Vec<String>>,
    /// Client IP ranges (IPv4 or IPv6 CIDR) to regions; longest prefix wins.
    pub cidr: Option<BTreeMap<String, String>>,
    /// The region of everyone else.
    pub default: Option<String>,
}

/// A residency fence.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawFence {
    /// Client regions this fence applies to.
    pub clients: Vec<String>,
    /// The only regions that may serve them.
    pub allowed: Vec<String>,
}

/// A downstream listening socket, plain or TLS.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawListener {
    /// IP:port, e.g. "0.0.0.0:8443".
    pub address: String,
    /// Terminate TLS on this listener.
    pub tls: Option<RawTls>,
    /// Also accept HTTP/2 over cleartext with prior knowledge (h2c) on this
    /// plain listener, beside HTTP/1.1 (default false; a TLS listener offers
    /// h2 by ALPN instead).
    pub h2c: Option<bool>,
    /// Take PROXY protocol (v1 or v2) headers from an L4 load balancer in
    /// front: the client address they carry becomes the connection's.
    pub proxy_protocol: Option<RawProxyProtocol>,
}

/// PROXY protocol on a listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawProxyProtocol {
    /// Sources (IP addresses or CIDR ranges) that must send a PROXY header;
    /// a header from any other source is refused.
    pub trusted: Vec<String>,
}

/// TLS termination for one listener: a default certificate plus optional
/// extra certificates chosen by SNI.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain, leaf first; relative to the configuration file.
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// More certificates, chosen by SNI.
    #[serde(default)]
    pub sni: Vec<RawSniCert>,
    /// Offer h2 by ALPN (default true).
    pub http2: Option<bool>,
    /// Ask clients for a certificate signed by a CA in a bundle (mutual TLS).
    pub client_auth: Option<RawClientAuth>,
    /// The oldest TLS version accepted: "1.2" (default) or "1.3".
    pub min_version: Option<String>,
}

/// Mutual TLS on a listener.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawClientAuth {
    /// PEM bundle of the CA certificates client certificates must chain to;
    /// relative to the configuration file.
    pub ca: String,
    /// Refuse clients without a certificate (default true); when false, a
    /// client may present none, but one it presents must be valid.
    pub required: Option<bool>,
}

/// A certificate served when the client's SNI matches one of its names.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSniCert {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key.
    pub key: String,
    /// Names (exact, or `*.example.com`) this certificate answers for.
    pub server_names: Vec<String>,
}

/// The admin endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawAdmin {
    /// IP:port (default 127.0.0.1:9901).
    pub address: String,
    /// Environment variable holding the bearer token the API requires.
    pub token_env: Option<String>,
    /// Host names the API answers to without a token, besides IP addresses
    /// and localhost (e.g. a DNS name pointing at the admin address).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// Process-wide server settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawServer {
    /// Proxy worker threads (default: number of CPUs).
    pub threads: Option<usize>,
    /// On shutdown, how long in-flight requests get (default 10s).
    pub drain_timeout: Option<String>,
    /// How long a client's idle connection (HTTP/1.1 between requests,
    /// HTTP/2 with no open stream) is kept open (default 60s, at least 1s).
    pub keepalive_timeout: Option<String>,
    /// How long a new client connection may take to send its first
    /// complete request header, in total (default 10s, 100ms..1h); a later
    /// HTTP/1.1 request's header is due within keepalive_timeout plus this.
    pub header_timeout: Option<String>,
    /// Client connections open at once in the process, over all listeners
    /// (default: half the open-file limit less 256, at least 64).
    pub max_connections: Option<usize>,
    /// Client connections open at once from one IP address (default 0: no
    /// limit).
    pub max_client_connections: Option<usize>,
    /// Streams a client may have open at once on one HTTP/2 connection,
    /// 1..1000 (default 100).
    pub h2_max_concurrent_streams: Option<u32>,
    /// Idle upstream connections kept for reuse (default 128).
    pub upstream_keepalive_pool_size: Option<usize>,
    /// Unix socket for graceful upgrades (default /tmp/ballast_upgrade.sock).
    pub upgrade_sock: Option<String>,
    /// Limits on what a client may send.
    pub limits: Option<RawLimits>,
    /// What the access log (`ballast::access`) carries.
    pub access_log: Option<RawAccessLog>,
}

/// The access log's settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawAccessLog {
    /// The fields of each access line, in any order (default: request_id,
    /// trace_id, client_address, method, path, status, route, backend,
    /// attempts, grpc_status, duration_ms, upgraded_for_ms, error). Also:
    /// host, user_agent, pool, decision_rule, bytes_received, bytes_sent,
    /// upstream_connect_ms, upstream_first_byte_ms.
    pub fields: Option<Vec<String>>,
    /// `stderr` (default: with the other logs) or the path of a file the
    /// access lines are appended to (relative to the configuration file),
    /// reopened on SIGUSR1.
    pub output: Option<String>,
}

/// Limits on client requests; a request over one is refused before routing.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawLimits {
    /// Longest request target (path and query), 256..1048576 bytes (default
    /// 8192; longer: 414).
    pub max_uri_bytes: Option<usize>,
    /// Most request header fields, 8..256 (default 100; more: 431).
    pub max_headers: Option<usize>,
    /// Largest total of header names and values, 1024..1048576 bytes
    /// (default 32768; larger: 431).
    pub max_header_bytes: Option<usize>,
    /// Largest request body, 1..2^40 bytes (default: no limit; larger:
    /// 413); a route's max_body_bytes overrides it.
    pub max_body_bytes: Option<u64>,
}

/// A pool of backends that a route sends traffic to.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawPool {
    /// latency (default), capacity, round_robin or peak_ewma.
    pub mode: Option<String>,
    /// Capacity mode: the latency a backend should stay under (default 100ms).
    pub target_latency: Option<String>,
    /// Floor of a healthy backend's share, 0..0.5 (default 0.02).
    pub min_share: Option<f64>,
    /// Cap of any backend's share, 0.01..1 (default 0.8).
    pub max_share: Option<f64>,
    /// Weight of a new computation in the smoothed share, 0.01..1 (default 0.3).
    pub smoothing: Option<f64>,
    /// How often shares are recomputed, 50ms..10s (default 500ms).
    pub recompute_interval: Option<String>,
    /// Ramp of a returning backend from ~10% of its fair share (default 2s:
    /// with smoothing, at 90% of its fair share within 5 s).
    pub slow_start: Option<String>,
    /// Reading backends' Server-Load / ORCA reports.
    pub server_load: Option<RawServerLoad>,
    /// Passive outlier ejection.
    pub outlier: Option<RawOutlier>,
    /// Active health checks (off unless set).
    pub health: Option<RawHealth>,
    /// Polling each backend's load endpoint, for backends that get too
    /// little traffic to be measured (off unless set).
    pub load_poll: Option<RawLoadPoll>,
    /// Retry policy.
    pub retries: Option<RawRetries>,
    /// No region takes more than this fraction of the pool's traffic,
    /// 0.05..1 (default 1: no cap).
    pub region_max_share: Option<f64>,
    /// Load-driven spillover from a region under pressure to its fallbacks.
    pub spillover: Option<RawSpillover>,
    /// Keep each user on one side of a canary: the key that identifies a user.
    pub canary_sticky: Option<RawStickyKey>,
    /// Consistent hashing on a request key: a key keeps its backend while
    /// shares hold, and moves gradually as they change.
    pub consistent_hash: Option<RawConsistentHash>,
    /// Priority tiers: a tier takes `min(1, healthy fraction × this)` of
    /// what the tiers above it leave (default 1.4, at least 1).
    pub overprovisioning_factor: Option<f64>,
    /// Least share of each standby tier with a healthy backend, so it is
    /// never cold when failover comes, 0..0.2 (default 0).
    pub prewarm_share: Option<f64>,
    /// Scheduled weight templates by time of day, weekday or date: the
    /// first that applies multiplies its regions' weights (latency and
    /// capacity modes).
    #[serde(default)]
    pub schedules: Vec<RawSchedule>,
    /// A candidate weight policy evaluated beside the live one on every
    /// request without affecting it (shadow mode).
    pub shadow: Option<RawShadow>,
    /// Settings of the pool's backends by region.
    #[serde(default)]
    pub regions: BTreeMap<String, RawPoolRegion>,
    /// Read/write split: writes go to one region's backends, reads stay
    /// near the client (off unless set).
    pub write: Option<RawWrite>,
    /// Upstream connect timeout (default 2s).
    pub connect_timeout: Option<String>,
    /// Upstream read timeout (default 30s).
    pub read_timeout: Option<String>,
    /// Upstream write timeout (default 30s).
    pub write_timeout: Option<String>,
    /// Idle upstream keep-alive timeout (default 60s).
    pub idle_timeout: Option<String>,
    /// Connect to the backends over TLS (absent: plain HTTP).
    pub tls: Option<RawUpstreamTls>,
    /// The protocol spoken to plain (non-TLS) backends: http1 (default) or
    /// h2c (HTTP/2 over cleartext with prior knowledge). Over TLS the
    /// protocol is `tls.alpn`.
    pub protocol: Option<String>,
    /// The pool's backends (at least one).
    #[serde(default)]
    pub backends: Vec<RawBackend>,
}

/// TLS from Ballast to a pool's backends.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawUpstreamTls {
    /// Server name sent (SNI) and checked against the backend's certificate
    /// (default: none sent; the certificate must name the backend's IP address).
    pub sni: Option<String>,
    /// PEM bundle of the CAs trusted for the backends' certificates
    /// (default: the system's roots).
    pub ca: Option<String>,
    /// Check the backend's certificate (default true; false accepts any).
    pub verify: Option<bool>,
    /// PEM certificate chain presented to backends that ask for one (mTLS;
    /// with `client_key`).
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<String>,
    /// Protocol offered by ALPN: http1 (default), h2 or h2_or_http1.
    pub alpn: Option<String>,
}

/// A weight template: region multipliers that apply at certain local times.
/// It applies when every condition it sets holds.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSchedule {
    /// Name shown in the admin state, decisions and metrics (unique in the pool).
    pub name: String,
    /// Weight multiplier per region of the pool's backends, above 0 and at
    /// most 100 (regions not listed: 1).
    pub regions: BTreeMap<String, f64>,
    /// Weekdays it applies on: mon, tue, wed, thu, fri, sat, sun, or ranges
    /// such as mon-fri (default: every day).
    pub days: Option<Vec<String>>,
    /// Local start time, HH:MM (with `to`).
    pub from: Option<String>,
    /// Local end time, HH:MM, not included; before `from`: the window runs
    /// across midnight; 24:00 is the end of the day.
    pub to: Option<String>,
    /// Local dates it applies on, both included.
    pub dates: Option<RawDateRange>,
    /// UTC offset of its times and dates, ±HH:MM (default +00:00).
    pub utc_offset: Option<String>,
}

/// A range of dates, both included.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawDateRange {
    /// First date, YYYY-MM-DD.
    pub from: String,
    /// Last date, YYYY-MM-DD.
    pub to: String,
}

/// A candidate policy run in shadow: any weight-engine parameter it sets
/// replaces the pool's for the candidate; the others are the pool's. It sees
/// the same measurements as the live policy, never routes a request, and
/// reports how often it would have chosen differently and the predicted
/// effect.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawShadow {
    /// latency, capacity or round_robin (default: the pool's).
    pub mode: Option<String>,
    /// Capacity mode: the latency a backend should stay under (default: the pool's).
    pub target_latency: Option<String>,
    /// Floor of a healthy backend's share, 0..0.5 (default: the pool's).
    pub min_share: Option<f64>,
    /// Cap of any backend's share, 0.01..1 (default: the pool's).
    pub max_share: Option<f64>,
    /// Weight of a new computation in the smoothed share, 0.01..1 (default: the pool's).
    pub smoothing: Option<f64>,
    /// Ramp of a returning backend (default: the pool's).
    pub slow_start: Option<String>,
    /// No region takes more than this fraction of the pool's traffic,
    /// 0.05..1 (default: the pool's).
    pub region_max_share: Option<f64>,
    /// Priority tiers' overprovisioning factor, at least 1 (default: the pool's).
    pub overprovisioning_factor: Option<f64>,
    /// Least share of each standby tier, 0..0.2 (default: the pool's).
    pub prewarm_share: Option<f64>,
    /// Fraction of requests compared with the candidate, 0.001..1 (default 1).
    pub sample: Option<f64>,
}

/// Settings of a pool's backends in one region.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawPoolRegion {
    /// Priority tier of the region's backends (0 = highest, default 0).
    pub priority: Option<u32>,
}

/// Which requests are writes, and the one region that serves them.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawWrite {
    /// The region whose backends take every write (required; never another).
    pub region: String,
    /// Methods that are writes (default POST, PUT, PATCH, DELETE).
    pub methods: Option<Vec<String>>,
    /// Segment-aware path prefixes under which every request is a write,
    /// whatever its method.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// A request carrying this header is a write, whatever its method.
    pub header: Option<String>,
    /// After a write, the client's reads go to the write region for a while.
    pub read_your_writes: Option<RawReadYourWrites>,
}

/// How long and by what a client's reads stay pinned to the write region
/// after its write. The pin is the expiry time, carried by the client.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawReadYourWrites {
    /// How long reads stay pinned after a write, 10ms..1h (default 5s).
    pub ttl: Option<String>,
    /// Cookie set on a write's response and read back (default ballast_ryw)...
    pub cookie: Option<String>,
    /// ...or a header instead: set on a write's response, for the client to
    /// send back on its reads (at most one of the two).
    pub header: Option<String>,
}

/// How backends' `Server-Load` / ORCA reports are read.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawServerLoad {
    /// Header with the report (default Server-Load).
    pub header: Option<String>,
    /// Header with an ORCA TEXT report (default endpoint-load-metrics).
    pub orca_header: Option<String>,
    /// Remove both before the client sees them (default true).
    pub strip: Option<bool>,
    /// A reporter silent this long is degraded (default 3s).
    pub stale_after: Option<String>,
}

/// When a region is under pressure, and how fast traffic moves.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawSpillover {
    /// Pressure when the region's latency is above this (e.g. 200ms).
    pub latency_above: Option<String>,
    /// Which latency: ewma (default) or p99 (over the last 10 s).
    pub latency_signal: Option<String>,
    /// Pressure when the region's reported utilization is above this, 0.01..10.
    pub utilization_above: Option<f64>,
    /// Fraction of the region's traffic moved per recompute interval,
    /// 0.01..1 (default 0.05).
    pub step: Option<f64>,
    /// Most of a region's traffic ever moved away, 0.01..1 (default 0.9):
    /// some stays so the region is still measured.
    pub max: Option<f64>,
    /// Traffic moves back once every signal is below this fraction of its
    /// threshold, 0.1..0.99 (default 0.8).
    pub hysteresis: Option<f64>,
    /// No moving back until this long after the last move out (default 5s).
    pub hold: Option<String>,
}

/// Where a request's user key is read.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawStickyKey {
    /// A request header (e.g. X-User-Id)...
    pub header: Option<String>,
    /// ...or a cookie name (exactly one of the two).
    pub cookie: Option<String>,
}

/// Consistent hashing with virtual nodes that follow the live shares.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawConsistentHash {
    /// Where the key is read.
    pub key: RawHashKey,
    /// Virtual nodes of a backend at fair share, 1..1000 (default 100).
    pub vnodes: Option<u32>,
    /// Most of the key space that may change owner per recompute interval,
    /// 0.001..1 (default 0.05).
    pub max_key_moves: Option<f64>,
}

/// Where a request's hash key is read: exactly one of the three.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawHashKey {
    /// A request header (e.g. X-Session)...
    pub header: Option<String>,
    /// ...a cookie name...
    pub cookie: Option<String>,
    /// ...or the N-th path segment, from 1 (`/users/42`: 2 is `42`).
    pub path_segment: Option<usize>,
}

/// Passive outlier ejection.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawOutlier {
    /// Failures in a row that eject a backend (default 5).
    pub consecutive_failures: Option<u32>,
    /// Ejection time, multiplied by the number of ejections (default 30s).
    pub base_ejection: Option<String>,
    /// Longest ejection (default 5m).
    pub max_ejection: Option<String>,
    /// Largest fraction of the pool ejected at once (default 0.5).
    pub max_ejected: Option<f64>,
    /// Ejection by failure rate over the last 10 s (on by default;
    /// `false` turns it off).
    pub failure_rate: Option<RawFailureRate>,
}

/// `failure_rate: false`, or its settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawFailureRate {
    Flag(bool),
    Settings(RawFailureRateSettings),
}

/// Ejection by failure rate.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFailureRateSettings {
    /// Failure rate above which a backend is ejected, 0.05..1 (default 0.5).
    pub threshold: Option<f64>,
    /// Requests in the window before the rate is judged, at least 1
    /// (default 20).
    pub min_requests: Option<u64>,
}

/// Active health checks.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawHealth {
    /// http (default: GET path must answer 200) or tcp (connect).
    pub check: Option<String>,
    /// HTTP path (default /).
    pub path: Option<String>,
    /// Host header (default: the pool name).
    pub host: Option<String>,
    /// Time between checks (default 2s).
    pub interval: Option<String>,
    /// Per-check timeout (default 1s).
    pub timeout: Option<String>,
    /// Passes in a row to come back (default 2).
    pub healthy_after: Option<u32>,
    /// Failures in a row to go out (default 2).
    pub unhealthy_after: Option<u32>,
}

/// Polling a backend's load endpoint: `GET path` answering a JSON object
/// with any of `load` (utilization, 0 idle, 1 busy, up to 10),
/// `latency_ms`, `error_rate` (0..1), `capacity` and `inflight`; other
/// fields are ignored. A good answer is used like a `Server-Load` report.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawLoadPoll {
    /// HTTP path (default /load).
    pub path: Option<String>,
    /// Host header (default: the pool name).
    pub host: Option<String>,
    /// Time between polls of a backend, 100ms..1h, shorter than
    /// `server_load.stale_after` (default 2s).
    pub interval: Option<String>,
    /// Per-poll timeout, at most `interval` (default 500ms).
    pub timeout: Option<String>,
    /// Poll only backends serving fewer requests per second than this over
    /// the last 10 s, 0..1000000 (default 1: fewer than 10 requests in the
    /// window, too few to measure; a high value polls every backend).
    pub quiet_below: Option<f64>,
}

/// Retry policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRetries {
    /// Total tries per request, 1..5 (default 2).
    pub attempts: Option<u32>,
    /// What is retried: `connect_failure`, `reset`, `timeout`, 5xx status
    /// codes (default `[connect_failure, reset, timeout, 502, 503, 504]`)
    /// and `grpc_unavailable` (a gRPC UNAVAILABLE answered trailers-only);
    /// `reset`, `timeout` and statuses only for replay-safe requests.
    pub on: Option<Vec<RawRetryCondition>>,
    /// Bounds retries in flight per pool to
    /// `max(min_concurrency, percent% of its requests in flight)`.
    pub budget: Option<RawRetryBudget>,
}

/// One condition a request is retried on: a name, or a 5xx status code.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawRetryCondition {
    /// A response status, 500..599.
    Status(u16),
    /// `connect_failure`, `reset`, `timeout` or `grpc_unavailable`.
    Name(String),
}

/// The retry budget of a pool (Envoy's `retry_budget`).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRetryBudget {
    /// Retries in flight as a percentage of the pool's requests in flight,
    /// 0..100 (default 20).
    pub percent: Option<f64>,
    /// Retries in flight always allowed, whatever the load (default 3).
    pub min_concurrency: Option<u32>,
}

/// One upstream server, or every address a DNS name stands for.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
#[schemars(extend("oneOf" = [{"required": ["addr"]}, {"required": ["srv"]}]))]
pub struct RawBackend {
    /// IP:port, or host:port resolved by DNS (A/AAAA; every address becomes
    /// a backend). Unique within the pool. Give `addr` or `srv`, not both.
    pub addr: Option<String>,
    /// A DNS SRV name (e.g. _http._tcp.api.internal): every target and port
    /// it lists becomes a backend. Give `addr` or `srv`, not both.
    pub srv: Option<String>,
    /// The backend's region.
    pub region: Option<String>,
    /// Requests per second it can sustain (capacity mode; the default weight).
    pub capacity: Option<u32>,
    /// Round-robin weight (default: capacity, else 1; 0 = no traffic).
    pub weight: Option<u32>,
    /// Marks a canary: `true` for the defaults, or its policy.
    pub canary: Option<RawCanary>,
    /// Priority tier (0 = highest; default: its region's, else 0). A lower
    /// tier is served only when the tiers above lack healthy capacity.
    pub priority: Option<u32>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `canary: true`, or a canary policy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawCanary {
    Flag(bool),
    Policy(RawCanaryPolicy),
}

/// How much traffic a canary gets, and when its breaker opens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCanaryPolicy {
    /// Least share while healthy (default 0.01).
    pub floor: Option<f64>,
    /// Most share, however well it does (default 0.25).
    pub max: Option<f64>,
    /// Error rate that opens the breaker (default 0.05).
    pub max_error_rate: Option<f64>,
    /// Outcomes needed before the error rate counts (default 20).
    pub min_requests: Option<u64>,
    /// How long the breaker stays open before slow re-admission (default 30s).
    pub cooldown: Option<String>,
}

/// A route: a request matcher and the pool that serves what it matches.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawRoute {
    /// Name shown in logs and metrics (default route-N).
    pub name: Option<String>,
    /// Conditions the request must all meet (default: match everything).
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    /// The pool that serves matching requests (required unless the route
    /// redirects).
    pub pool: Option<String>,
    /// An event budget: the most of each region's capacity this route may use.
    pub budget: Option<RawBudget>,
    /// Header edits on the request sent to the backend.
    pub request_headers: Option<RawHeaderEdits>,
    /// Header edits on the backend's response.
    pub response_headers: Option<RawHeaderEdits>,
    /// Path and host rewrites on the request sent to the backend.
    pub rewrite: Option<RawRewrite>,
    /// Answer with a redirect instead of proxying (the route has no pool).
    pub redirect: Option<RawRedirect>,
    /// Largest request body, 1..2^40 bytes (default:
    /// server.limits.max_body_bytes; larger: 413).
    pub max_body_bytes: Option<u64>,
    /// A per-client rate limit (429 with Retry-After over it).
    pub rate_limit: Option<RawRateLimit>,
}

/// An event budget: a route's ceiling in each region of its pool.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawBudget {
    /// Most of a region's capacity (the sum of its backends' `capacity`,
    /// req/s) the route may use, 0.01..1.
    pub region_share: f64,
    /// Over budget in a region: `shed` (default; 503 with Retry-After) or
    /// `spill` (to the next region of the client's plan with budget left,
    /// never across a residency fence; else shed).
    pub over: Option<String>,
    /// Retry-After sent with a shed request, whole seconds, 1s..1h (default 1s).
    pub retry_after: Option<String>,
}

/// Conditions a request must all meet for a route to apply.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawMatch {
    /// Exact host, or *.example.com for any subdomain (port ignored).
    pub host: Option<String>,
    /// Segment-aware path prefix: /v1 matches /v1 and /v1/x, not /v10.
    pub path_prefix: Option<String>,
    /// HTTP methods.
    pub methods: Option<Vec<String>>,
    /// Exact header values.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

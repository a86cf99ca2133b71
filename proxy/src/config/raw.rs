//! The configuration file as written: plain serde types that mirror the YAML.
//!
//! Every struct rejects unknown fields so a typo is an error, not a silently
//! ignored setting. Values stay as strings where they need validation with a
//! good message (addresses, durations, header names); `compile.rs` turns them
//! into the runtime [`Snapshot`](super::Snapshot). The runtime never sees these types.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    pub admin: Option<RawAdmin>,
    pub server: Option<RawServer>,
    #[serde(default)]
    pub pools: BTreeMap<String, RawPool>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// A downstream listening socket, plain or TLS.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: String,
    pub tls: Option<RawTls>,
}

/// TLS termination for one listener: a default certificate plus optional
/// extra certificates chosen by SNI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
    #[serde(default)]
    pub sni: Vec<RawSniCert>,
    pub http2: Option<bool>,
}

/// A certificate served when the client's SNI matches one of its names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniCert {
    pub cert: String,
    pub key: String,
    /// Names (exact, or `*.example.com`) this certificate answers for.
    pub server_names: Vec<String>,
}

/// The admin endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub address: String,
    pub token_env: Option<String>,
}

/// Process-wide server settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub threads: Option<usize>,
    pub drain_timeout: Option<String>,
    pub upstream_keepalive_pool_size: Option<usize>,
    pub upgrade_sock: Option<String>,
}

/// A pool of backends that a route sends traffic to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub mode: Option<String>,
    pub target_latency: Option<String>,
    pub min_share: Option<f64>,
    pub max_share: Option<f64>,
    pub smoothing: Option<f64>,
    pub recompute_interval: Option<String>,
    pub slow_start: Option<String>,
    pub server_load: Option<RawServerLoad>,
    pub outlier: Option<RawOutlier>,
    pub health: Option<RawHealth>,
    pub retries: Option<RawRetries>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    #[serde(default)]
    pub backends: Vec<RawBackend>,
}

/// How backends' `Server-Load` / ORCA reports are read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerLoad {
    pub header: Option<String>,
    pub orca_header: Option<String>,
    pub strip: Option<bool>,
    pub stale_after: Option<String>,
}

/// Passive outlier ejection.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    pub consecutive_failures: Option<u32>,
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
    pub max_ejected: Option<f64>,
}

/// Active health checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub check: Option<String>,
    pub path: Option<String>,
    pub host: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub healthy_after: Option<u32>,
    pub unhealthy_after: Option<u32>,
}

/// Retry policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetries {
    pub attempts: Option<u32>,
}

/// One upstream server.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackend {
    pub addr: String,
    pub region: Option<String>,
    pub capacity: Option<u32>,
    pub weight: Option<u32>,
    #[serde(default)]
    pub canary: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// A route: a request matcher and the pool that serves what it matches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    pub pool: String,
}

/// Conditions a request must all meet for a route to apply.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub methods: Option<Vec<String>>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

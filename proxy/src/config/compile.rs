//! Validation and compilation: raw serde types in, an immutable [`Snapshot`]
//! out, or every problem found, each with its YAML path.
//!
//! Startup, `ballast check` and (later) reload all go through [`compile`], so
//! they accept and reject exactly the same files. Relative certificate paths
//! are resolved against the configuration file's directory.

use super::error::{ConfigError, ConfigErrors};
use super::raw::*;
use super::snapshot::*;
use crate::control::schedule::days_from_civil;
use crate::routing::picker::smooth_wrr_schedule;
use crate::routing::table::{HostMatch, Route, RouteTable};
use crate::tls::certs::{cert_covers_name, load_certified_key};
use http::{HeaderName, HeaderValue, Method};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:9901";
/// The longest duration any setting takes. The proxy adds durations to its
/// clocks (`Instant`s, and milliseconds in a `u64`); a bound keeps that
/// arithmetic far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_KEEPALIVE_POOL_SIZE: usize = 128;
pub const DEFAULT_UPGRADE_SOCK: &str = "/tmp/ballast_upgrade.sock";
/// The most headers Pingora parses; a request with more is refused by it.
const PARSER_MAX_HEADERS: usize = 256;
pub const DEFAULT_LIMITS: RequestLimits = RequestLimits {
    max_uri_bytes: 8192,
    max_headers: 100,
    max_header_bytes: 32 * 1024,
};
pub const DEFAULT_MIN_SHARE: f64 = 0.02;
pub const DEFAULT_MAX_SHARE: f64 = 0.8;
pub const DEFAULT_SMOOTHING: f64 = 0.3;
pub const DEFAULT_TARGET_LATENCY: Duration = Duration::from_millis(100);
pub const DEFAULT_RECOMPUTE_INTERVAL: Duration = Duration::from_millis(500);
const MIN_RECOMPUTE_INTERVAL: Duration = Duration::from_millis(50);
const MAX_RECOMPUTE_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_SLOW_START: Duration = Duration::from_secs(30);
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(3);
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 5;
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_EJECTED: f64 = 0.5;
pub const DEFAULT_ATTEMPTS: u32 = 2;
/// What a read/write split counts as a write unless told otherwise.
pub const DEFAULT_WRITE_METHODS: [Method; 4] =
    [Method::POST, Method::PUT, Method::PATCH, Method::DELETE];
pub const DEFAULT_PIN_TTL: Duration = Duration::from_secs(5);
const MIN_PIN_TTL: Duration = Duration::from_millis(10);
const MAX_PIN_TTL: Duration = Duration::from_secs(3600);
pub const DEFAULT_PIN_COOKIE: &str = "ballast_ryw";
pub const DEFAULT_OVERPROVISIONING_FACTOR: f64 = 1.4;
const MAX_SCHEDULE_MULTIPLIER: f64 = 100.0;
const MIN_SHARE_RANGE: RangeInclusive<f64> = 0.0..=0.5;
const MAX_SHARE_RANGE: RangeInclusive<f64> = 0.01..=1.0;
const SMOOTHING_RANGE: RangeInclusive<f64> = 0.01..=1.0;
const REGION_MAX_SHARE_RANGE: RangeInclusive<f64> = 0.05..=1.0;
const OVERPROVISIONING_RANGE: RangeInclusive<f64> = 1.0..=100.0;
const PREWARM_SHARE_RANGE: RangeInclusive<f64> = 0.0..=0.2;
const SHADOW_SAMPLE_RANGE: RangeInclusive<f64> = 0.001..=1.0;
const DEFAULT_VNODES: u32 = 100;
const MAX_VNODES: u32 = 1000;
const DEFAULT_MAX_KEY_MOVES: f64 = 0.05;
pub const DEFAULT_SPILLOVER: SpilloverPolicy = SpilloverPolicy {
    latency_above: None,
    latency_signal: LatencySignal::Ewma,
    utilization_above: None,
    step: 0.05,
    max: 0.9,
    hysteresis: 0.8,
    hold: Duration::from_secs(5),
};
pub const DEFAULT_CANARY: CanaryPolicy = CanaryPolicy {
    floor: 0.01,
    max: 0.25,
    max_error_rate: 0.05,
    min_requests: 20,
    cooldown: Duration::from_secs(30),
};
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_LOAD_POLL_PATH: &str = "/load";
pub const DEFAULT_LOAD_POLL_INTERVAL: Duration = Duration::from_secs(2);
pub const DEFAULT_LOAD_POLL_TIMEOUT: Duration = Duration::from_millis(500);
/// 1 request/s is 10 in the 10 s window: the fewest that are measured.
pub const DEFAULT_QUIET_BELOW: f64 = 1.0;
const MAX_QUIET_BELOW: f64 = 1e6;
const MIN_LOAD_POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_LOAD_POLL_INTERVAL: Duration = Duration::from_secs(3600);
pub const DEFAULT_HEALTHY_AFTER: u32 = 2;
pub const DEFAULT_UNHEALTHY_AFTER: u32 = 2;
const MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_TIMEOUTS: UpstreamTimeouts = UpstreamTimeouts {
    connect: Duration::from_secs(2),
    read: Duration::from_secs(30),
    write: Duration::from_secs(30),
    idle: Duration::from_secs(60),
};

/// Collects errors while walking the configuration.
struct Checker {
    errors: Vec<ConfigError>,
    base_dir: PathBuf,
}

impl Checker {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(path, message));
    }

    fn socket_addr(&mut self, path: &str, value: &str) -> Option<SocketAddr> {
        match SocketAddr::from_str(value.trim()) {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    path,
                    format!("invalid socket address \"{value}\" (expected IP:port, e.g. \"127.0.0.1:8080\")"),
                );
                None
            }
        }
    }

    /// Parse an optional duration; zero is allowed, more than
    /// [`MAX_DURATION`] is not.
    fn duration_or_zero(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match humantime::parse_duration(text.trim()) {
            Ok(parsed) if parsed <= MAX_DURATION => parsed,
            Ok(_) => {
                self.error(path, "must be at most 365d");
                default
            }
            Err(_) => {
                self.error(
                    path,
                    format!(
                        "invalid duration \"{text}\" (expected e.g. \"250ms\", \"2s\", \"1m\")"
                    ),
                );
                default
            }
        }
    }

    /// Parse an optional duration that must be positive.
    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        let parsed = self.duration_or_zero(path, value, default);
        if parsed.is_zero() {
            self.error(path, "must be greater than zero");
            return default;
        }
        parsed
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let path = Path::new(file);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// Validate `raw` and build the runtime snapshot. `base_dir` anchors relative
/// file paths (the directory of the configuration file).
pub fn compile(raw: RawConfig, base_dir: &Path) -> Result<Snapshot, ConfigErrors> {
    let mut c = Checker {
        errors: Vec::new(),
        base_dir: base_dir.to_path_buf(),
    };
    let listeners = compile_listeners(&mut c, &raw.listeners);
    let admin = compile_admin(&mut c, raw.admin.as_ref());
    let server = compile_server(&mut c, raw.server.as_ref());
    let pools = compile_pools(&mut c, &raw.pools);
    let routes = compile_routes(&mut c, &raw.routes, &pools);
    let geo = compile_geo(&mut c, &raw.regions, raw.geo.as_ref(), &pools);
    let explain = raw.explain.as_ref().map(|e| compile_explain(&mut c, e));

    if let Some(admin) = &admin {
        if listeners.iter().any(|l| l.address == admin.address) {
            c.error(
                "admin.address",
                format!("{} is also a proxy listener", admin.address),
            );
        }
    }

    match (admin, c.errors.is_empty()) {
        (Some(admin), true) => Ok(Snapshot {
            listeners,
            admin,
            server,
            routes,
            pools,
            geo,
            explain,
        }),
        _ => Err(ConfigErrors(c.errors)),
    }
}

fn compile_listeners(c: &mut Checker, raw: &[RawListener]) -> Vec<Listener> {
    if raw.is_empty() {
        c.error("listeners", "at least one listener is required");
    }
    let mut seen = HashSet::new();
    let mut listeners = Vec::new();
    for (i, listener) in raw.iter().enumerate() {
        let path = format!("listeners[{i}]");
        let address = c.socket_addr(&format!("{path}.address"), &listener.address);
        if let Some(addr) = address {
            if !seen.insert(addr) {
                c.error(
                    format!("{path}.address"),
                    format!("duplicate listener address {addr}"),
                );
            }
        }
        let tls = listener
            .tls
            .as_ref()
            .and_then(|tls| compile_tls(c, &format!("{path}.tls"), tls));
        let tls_failed = listener.tls.is_some() && tls.is_none();
        if let (Some(address), false) = (address, tls_failed) {
            listeners.push(Listener { address, tls });
        }
    }
    listeners
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
        let entry_path = format!("{path}.sni[{i}]");
        cert_files.push(c.resolve(&entry.cert));
        let cert = match load_certified_key(&c.resolve(&entry.cert), &c.resolve(&entry.key)) {
            Ok(cert) => cert,
            Err(message) => {
                c.error(format!("{entry_path}.cert"), message);
                continue;
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
    Some(Tls {
        default_cert: default_cert?,
        sni,
        http2: raw.http2.unwrap_or(true),
        cert_files,
    })
}

fn compile_admin(c: &mut Checker, raw: Option<&RawAdmin>) -> Option<Admin> {
    let Some(raw) = raw else {
        return Some(Admin {
            address: DEFAULT_ADMIN_ADDRESS.parse().expect("valid default"),
            token_env: None,
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
    Some(Admin {
        address,
        token_env: raw.token_env.clone(),
    })
}

fn compile_server(c: &mut Checker, raw: Option<&RawServer>) -> ServerSettings {
    let default_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(raw) = raw else {
        return ServerSettings {
            threads: default_threads,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            upstream_keepalive_pool_size: DEFAULT_KEEPALIVE_POOL_SIZE,
            upgrade_sock: PathBuf::from(DEFAULT_UPGRADE_SOCK),
            limits: DEFAULT_LIMITS,
        };
    };
    let threads = raw.threads.unwrap_or(default_threads);
    if threads == 0 || threads > 1024 {
        c.error("server.threads", "must be between 1 and 1024");
    }
    ServerSettings {
        threads,
        drain_timeout: c.duration_or_zero(
            "server.drain_timeout",
            raw.drain_timeout.as_deref(),
            DEFAULT_DRAIN_TIMEOUT,
        ),
        upstream_keepalive_pool_size: raw
            .upstream_keepalive_pool_size
            .unwrap_or(DEFAULT_KEEPALIVE_POOL_SIZE),
        upgrade_sock: match raw.upgrade_sock.as_deref() {
            None => PathBuf::from(DEFAULT_UPGRADE_SOCK),
            Some("") => {
                c.error("server.upgrade_sock", "must not be empty");
                PathBuf::from(DEFAULT_UPGRADE_SOCK)
            }
            Some(path) => c.resolve(path),
        },
        limits: compile_limits(c, raw.limits.as_ref()),
    }
}

fn compile_limits(c: &mut Checker, raw: Option<&RawLimits>) -> RequestLimits {
    let d = DEFAULT_LIMITS;
    let Some(raw) = raw else { return d };
    let mut bounded =
        |key: &str, value: Option<usize>, default: usize, min: usize, max: usize| match value {
            None => default,
            Some(v) if (min..=max).contains(&v) => v,
            Some(v) => {
                c.error(
                    format!("server.limits.{key}"),
                    format!("{v} is out of range (allowed {min} to {max})"),
                );
                default
            }
        };
    RequestLimits {
        max_uri_bytes: bounded(
            "max_uri_bytes",
            raw.max_uri_bytes,
            d.max_uri_bytes,
            256,
            1 << 20,
        ),
        max_headers: bounded(
            "max_headers",
            raw.max_headers,
            d.max_headers,
            8,
            PARSER_MAX_HEADERS,
        ),
        max_header_bytes: bounded(
            "max_header_bytes",
            raw.max_header_bytes,
            d.max_header_bytes,
            1024,
            1 << 20,
        ),
    }
}

fn compile_pools(c: &mut Checker, raw: &BTreeMap<String, RawPool>) -> Vec<Pool> {
    if raw.is_empty() {
        c.error("pools", "at least one pool is required");
    }
    let mut pools = Vec::new();
    for (name, pool) in raw {
        let path = format!("pools.{name}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            c.error(
                &path,
                format!("invalid pool name \"{name}\" (use letters, digits, '-', '_', '.')"),
            );
        }
        let mut policy = compile_policy(c, &path, pool);
        let timeouts = UpstreamTimeouts {
            connect: c.duration(
                &format!("{path}.connect_timeout"),
                pool.connect_timeout.as_deref(),
                DEFAULT_TIMEOUTS.connect,
            ),
            read: c.duration(
                &format!("{path}.read_timeout"),
                pool.read_timeout.as_deref(),
                DEFAULT_TIMEOUTS.read,
            ),
            write: c.duration(
                &format!("{path}.write_timeout"),
                pool.write_timeout.as_deref(),
                DEFAULT_TIMEOUTS.write,
            ),
            idle: c.duration(
                &format!("{path}.idle_timeout"),
                pool.idle_timeout.as_deref(),
                DEFAULT_TIMEOUTS.idle,
            ),
        };
        let backends = compile_backends(c, &path, name, pool);
        let weights: Vec<u32> = backends.iter().map(|b| b.weight).collect();
        if !backends.is_empty() && weights.iter().all(|&w| w == 0) {
            c.error(
                format!("{path}.backends"),
                "every backend has weight 0; at least one must be positive",
            );
        }
        let regions = distinct_regions(&backends);
        let named_regions = regions.iter().flatten().count();
        let moves_traffic = policy.spillover.is_some() || policy.region_max_share < 1.0;
        if moves_traffic && named_regions < 2 {
            c.error(
                &path,
                "spillover and region_max_share need backends in at least two regions",
            );
        }
        for region in pool.regions.keys() {
            if !regions.iter().flatten().any(|r| r == region) {
                c.error(
                    format!("{path}.regions.{region}"),
                    format!("no backend of the pool is in region \"{region}\""),
                );
            }
        }
        policy.schedules = compile_schedules(c, &path, pool, &regions);
        let mut tiers: Vec<u32> = backends.iter().map(|b| b.priority).collect();
        tiers.sort_unstable();
        tiers.dedup();
        if tiers.len() > 1 && policy.mode == BalanceMode::RoundRobin {
            c.error(
                format!("{path}.mode"),
                "priority tiers need an adaptive mode (latency or capacity); round_robin ignores them",
            );
        }
        let shadow_path = format!("{path}.shadow");
        let shadow = pool
            .shadow
            .as_ref()
            .map(|raw| compile_shadow(c, &shadow_path, raw, &policy));
        if let Some(candidate) = shadow.as_ref().map(|s| &s.policy) {
            // What the pool itself gets wrong is reported once, at its own path.
            let live_round_robin = policy.mode == BalanceMode::RoundRobin;
            if tiers.len() > 1 && candidate.mode == BalanceMode::RoundRobin && !live_round_robin {
                c.error(
                    format!("{shadow_path}.mode"),
                    "priority tiers need an adaptive mode (latency or capacity); round_robin ignores them",
                );
            }
            if candidate.region_max_share < 1.0 && !moves_traffic && named_regions < 2 {
                c.error(
                    format!("{shadow_path}.region_max_share"),
                    "region_max_share needs backends in at least two regions",
                );
            }
        }
        let canaries = backends.iter().any(|b| b.canary.is_some());
        if pool.canary_sticky.is_some() && !canaries {
            c.error(
                format!("{path}.canary_sticky"),
                "the pool has no canary backend",
            );
        }
        let write = pool
            .write
            .as_ref()
            .and_then(|w| compile_write(c, &format!("{path}.write"), w, &regions));
        if pool.consistent_hash.is_some() && pool.canary_sticky.is_some() {
            c.error(
                format!("{path}.consistent_hash"),
                "cannot be combined with canary_sticky (the ring already gives a canary its share of keys)",
            );
        }
        pools.push(Pool {
            id: PoolId(pools.len()),
            name: name.clone(),
            policy,
            timeouts,
            schedule: smooth_wrr_schedule(&weights),
            regions,
            tiers,
            write,
            shadow,
            backends,
        });
    }
    pools
}

/// The read/write split of a pool whose backends are in `regions`.
fn compile_write(
    c: &mut Checker,
    path: &str,
    raw: &RawWrite,
    regions: &[Option<String>],
) -> Option<WriteSplit> {
    let known = regions.iter().flatten().any(|r| *r == raw.region);
    if !known {
        let named: Vec<&str> = regions.iter().flatten().map(String::as_str).collect();
        c.error(
            format!("{path}.region"),
            format!(
                "no backend of the pool is in region \"{}\" (the pool's regions: {})",
                raw.region,
                if named.is_empty() {
                    "none".to_string()
                } else {
                    named.join(", ")
                }
            ),
        );
    }
    let methods = match &raw.methods {
        None => DEFAULT_WRITE_METHODS.to_vec(),
        Some(list) if list.is_empty() => {
            c.error(
                format!("{path}.methods"),
                "must not be empty (omit it for POST, PUT, PATCH, DELETE)",
            );
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                let method = Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes());
                if method.is_err() {
                    c.error(
                        format!("{path}.methods[{i}]"),
                        format!("invalid HTTP method \"{text}\""),
                    );
                }
                method.ok()
            })
            .collect(),
    };
    for (i, prefix) in raw.path_prefixes.iter().enumerate() {
        if !prefix.starts_with('/') {
            c.error(
                format!("{path}.path_prefixes[{i}]"),
                format!("must start with '/', got \"{prefix}\""),
            );
        }
    }
    let header = raw.header.as_deref().and_then(|name| {
        let parsed = HeaderName::from_str(name);
        if parsed.is_err() {
            c.error(
                format!("{path}.header"),
                format!("invalid header name \"{name}\""),
            );
        }
        parsed.ok()
    });
    let read_your_writes = raw
        .read_your_writes
        .as_ref()
        .and_then(|r| compile_read_your_writes(c, &format!("{path}.read_your_writes"), r));
    known.then(|| WriteSplit {
        region: raw.region.clone(),
        plan: RegionPlan {
            order: vec![raw.region.clone()],
            fenced: true,
        },
        methods,
        path_prefixes: raw.path_prefixes.clone(),
        header,
        read_your_writes,
    })
}

fn compile_read_your_writes(
    c: &mut Checker,
    path: &str,
    raw: &RawReadYourWrites,
) -> Option<ReadYourWrites> {
    let ttl_path = format!("{path}.ttl");
    let ttl = c.duration(&ttl_path, raw.ttl.as_deref(), DEFAULT_PIN_TTL);
    if !(MIN_PIN_TTL..=MAX_PIN_TTL).contains(&ttl) {
        c.error(ttl_path, "must be between 10ms and 1h");
    }
    let carrier = match (&raw.cookie, &raw.header) {
        (_, None) => {
            let name = raw.cookie.as_deref().unwrap_or(DEFAULT_PIN_COOKIE);
            if !valid_cookie_name(name) {
                c.error(
                    format!("{path}.cookie"),
                    format!("invalid cookie name \"{name}\""),
                );
                return None;
            }
            PinCarrier::Cookie(name.to_string())
        }
        (None, Some(name)) => match HeaderName::from_str(name) {
            Ok(name) => PinCarrier::Header(name),
            Err(_) => {
                c.error(
                    format!("{path}.header"),
                    format!("invalid header name \"{name}\""),
                );
                return None;
            }
        },
        (Some(_), Some(_)) => {
            c.error(path, "set at most one of cookie or header");
            return None;
        }
    };
    Some(ReadYourWrites { ttl, carrier })
}

/// A cookie name is an HTTP token.
fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

/// A pool's weight templates; `regions` are those of its backends.
fn compile_schedules(
    c: &mut Checker,
    path: &str,
    pool: &RawPool,
    regions: &[Option<String>],
) -> Vec<ScheduleTemplate> {
    if !pool.schedules.is_empty() && pool.mode.as_deref() == Some("round_robin") {
        c.error(
            format!("{path}.schedules"),
            "schedules need an adaptive mode (latency or capacity); round_robin weights are fixed",
        );
    }
    let mut names = HashSet::new();
    let mut templates = Vec::new();
    for (i, raw) in pool.schedules.iter().enumerate() {
        let path = format!("{path}.schedules[{i}]");
        let valid_name = !raw.name.is_empty()
            && raw
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_name {
            c.error(
                format!("{path}.name"),
                format!(
                    "invalid name \"{}\" (use letters, digits, '-', '_', '.')",
                    raw.name
                ),
            );
        } else if !names.insert(raw.name.as_str()) {
            c.error(
                format!("{path}.name"),
                format!("duplicate schedule name \"{}\"", raw.name),
            );
        }
        if raw.regions.is_empty() {
            c.error(
                format!("{path}.regions"),
                "name at least one region and its multiplier",
            );
        }
        for (region, multiplier) in &raw.regions {
            if !regions.iter().flatten().any(|r| r == region) {
                c.error(
                    format!("{path}.regions.{region}"),
                    format!("no backend of the pool is in region \"{region}\""),
                );
            }
            if !(multiplier.is_finite()
                && *multiplier > 0.0
                && *multiplier <= MAX_SCHEDULE_MULTIPLIER)
            {
                c.error(
                    format!("{path}.regions.{region}"),
                    format!("multiplier {multiplier} must be above 0 and at most {MAX_SCHEDULE_MULTIPLIER}"),
                );
            }
        }
        let days = raw
            .days
            .as_ref()
            .map(|days| parse_days(c, &format!("{path}.days"), days));
        let window = match (&raw.from, &raw.to) {
            (None, None) => None,
            (Some(from), Some(to)) => {
                let from_minute = parse_time(c, &format!("{path}.from"), from, false);
                let to_minute = parse_time(c, &format!("{path}.to"), to, true);
                match (from_minute, to_minute) {
                    (Some(f), Some(t)) if f == t % (24 * 60) => {
                        c.error(
                            format!("{path}.to"),
                            format!("\"{to}\" is the same time as from: an empty (or full-day) window; leave both out to apply all day"),
                        );
                        None
                    }
                    (Some(f), Some(t)) => Some((f, t % (24 * 60))),
                    _ => None,
                }
            }
            _ => {
                c.error(&path, "from and to go together");
                None
            }
        };
        let dates = raw.dates.as_ref().and_then(|range| {
            let first = parse_date(c, &format!("{path}.dates.from"), &range.from);
            let last = parse_date(c, &format!("{path}.dates.to"), &range.to);
            match (first, last) {
                (Some(first), Some(last)) if last < first => {
                    c.error(
                        format!("{path}.dates.to"),
                        format!("{} is before from {}", range.to, range.from),
                    );
                    None
                }
                (Some(first), Some(last)) => Some((first, last)),
                _ => None,
            }
        });
        if raw.days.is_none() && raw.from.is_none() && raw.to.is_none() && raw.dates.is_none() {
            c.error(&path, "needs days, from/to or dates (when it applies)");
        }
        let utc_offset_s = raw.utc_offset.as_deref().map_or(0, |text| {
            parse_utc_offset(c, &format!("{path}.utc_offset"), text)
        });
        templates.push(ScheduleTemplate {
            name: raw.name.clone(),
            multipliers: raw.regions.clone(),
            days,
            window,
            dates,
            utc_offset_s,
        });
    }
    templates
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `[mon, wed-fri]` → Monday-first flags.
fn parse_days(c: &mut Checker, path: &str, days: &[String]) -> [bool; 7] {
    let mut flags = [false; 7];
    if days.is_empty() {
        c.error(
            path,
            "name at least one day (or leave days out for every day)",
        );
    }
    let index = |name: &str| {
        WEEKDAYS
            .iter()
            .position(|d| d.eq_ignore_ascii_case(name.trim()))
    };
    for (i, day) in days.iter().enumerate() {
        let range = match day.split_once('-') {
            Some((first, last)) => index(first).zip(index(last)),
            None => index(day).map(|d| (d, d)),
        };
        match range {
            Some((first, last)) if first <= last => flags[first..=last].fill(true),
            _ => c.error(
                format!("{path}[{i}]"),
                format!("invalid day \"{day}\" (mon, tue, wed, thu, fri, sat, sun, or a range such as mon-fri)"),
            ),
        }
    }
    flags
}

/// `HH:MM` → minutes of the day; `24:00` only when `end_of_day_allowed`.
fn parse_time(c: &mut Checker, path: &str, text: &str, end_of_day_allowed: bool) -> Option<u32> {
    let parsed = text.split_once(':').and_then(|(h, m)| {
        let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        (two_digits(h) && two_digits(m)).then(|| (h.parse::<u32>().ok(), m.parse::<u32>().ok()))
    });
    match parsed {
        Some((Some(h), Some(m))) if h < 24 && m < 60 => Some(h * 60 + m),
        Some((Some(24), Some(0))) if end_of_day_allowed => Some(24 * 60),
        _ => {
            c.error(
                path,
                format!(
                    "invalid time \"{text}\" (expected HH:MM, 00:00 to 23:59{})",
                    if end_of_day_allowed { " or 24:00" } else { "" }
                ),
            );
            None
        }
    }
}

/// `YYYY-MM-DD` → days since 1970-01-01.
fn parse_date(c: &mut Checker, path: &str, text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split('-').collect();
    let parsed = match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            match (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) {
                (Ok(y), Ok(m), Ok(d)) => days_from_civil(y, m, d),
                _ => None,
            }
        }
        _ => None,
    };
    if parsed.is_none() {
        c.error(
            path,
            format!("invalid date \"{text}\" (expected YYYY-MM-DD)"),
        );
    }
    parsed
}

/// `+01:00` / `-05:30` → seconds; at most 14 hours either way.
fn parse_utc_offset(c: &mut Checker, path: &str, text: &str) -> i64 {
    let sign = match text.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => 0,
    };
    let minutes = text
        .get(1..)
        .filter(|_| sign != 0)
        .and_then(|rest| rest.split_once(':'))
        .and_then(|(h, m)| {
            let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
            (two_digits(h) && two_digits(m)).then(|| (h.parse::<i64>().ok(), m.parse::<i64>().ok()))
        });
    match minutes {
        Some((Some(h), Some(m))) if m < 60 && h * 60 + m <= 14 * 60 => sign * (h * 3600 + m * 60),
        _ => {
            c.error(
                path,
                format!("invalid UTC offset \"{text}\" (expected +HH:MM or -HH:MM, at most 14:00)"),
            );
            0
        }
    }
}

fn distinct_regions(backends: &[Backend]) -> Vec<Option<String>> {
    let mut regions: Vec<Option<String>> = backends.iter().map(|b| b.region.clone()).collect();
    regions.sort();
    regions.dedup();
    regions
}

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

/// A number that must lie in `range`.
fn fraction(
    c: &mut Checker,
    path: String,
    value: Option<f64>,
    default: f64,
    range: RangeInclusive<f64>,
) -> f64 {
    match value {
        None => default,
        Some(v) if v.is_finite() && range.contains(&v) => v,
        Some(v) => {
            c.error(
                path,
                format!(
                    "{v} is out of range (allowed {} to {})",
                    range.start(),
                    range.end()
                ),
            );
            default
        }
    }
}

fn header_name(
    c: &mut Checker,
    path: String,
    value: Option<&str>,
    default: &'static str,
) -> HeaderName {
    match value {
        None => HeaderName::from_static(default),
        Some(text) => HeaderName::from_str(text).unwrap_or_else(|_| {
            c.error(path, format!("invalid header name \"{text}\""));
            HeaderName::from_static(default)
        }),
    }
}

/// A balance mode by name; `None` is `default`.
fn compile_mode(
    c: &mut Checker,
    path: &str,
    value: Option<&str>,
    default: BalanceMode,
) -> BalanceMode {
    match value {
        None => default,
        Some("latency") => BalanceMode::Latency,
        Some("capacity") => BalanceMode::Capacity,
        Some("round_robin") => BalanceMode::RoundRobin,
        Some(other) => {
            c.error(
                format!("{path}.mode"),
                format!("unknown mode \"{other}\" (supported: latency, capacity, round_robin)"),
            );
            default
        }
    }
}

/// `min_share` must not be above `max_share`.
fn check_share_bounds(c: &mut Checker, path: &str, min_share: f64, max_share: f64) {
    if min_share > max_share {
        c.error(
            format!("{path}.min_share"),
            format!("{min_share} is above max_share {max_share}"),
        );
    }
}

/// The candidate policy of `pools.X.shadow`: the pool's `live` policy with
/// the parameters the shadow sets, each validated as the pool's own.
fn compile_shadow(c: &mut Checker, path: &str, raw: &RawShadow, live: &PoolPolicy) -> ShadowPolicy {
    let mut policy = live.clone();
    policy.mode = compile_mode(c, path, raw.mode.as_deref(), live.mode);
    policy.target_latency = c.duration(
        &format!("{path}.target_latency"),
        raw.target_latency.as_deref(),
        live.target_latency,
    );
    policy.min_share = fraction(
        c,
        format!("{path}.min_share"),
        raw.min_share,
        live.min_share,
        MIN_SHARE_RANGE,
    );
    policy.max_share = fraction(
        c,
        format!("{path}.max_share"),
        raw.max_share,
        live.max_share,
        MAX_SHARE_RANGE,
    );
    check_share_bounds(c, path, policy.min_share, policy.max_share);
    policy.smoothing = fraction(
        c,
        format!("{path}.smoothing"),
        raw.smoothing,
        live.smoothing,
        SMOOTHING_RANGE,
    );
    policy.slow_start = c.duration_or_zero(
        &format!("{path}.slow_start"),
        raw.slow_start.as_deref(),
        live.slow_start,
    );
    policy.region_max_share = fraction(
        c,
        format!("{path}.region_max_share"),
        raw.region_max_share,
        live.region_max_share,
        REGION_MAX_SHARE_RANGE,
    );
    policy.overprovisioning_factor = fraction(
        c,
        format!("{path}.overprovisioning_factor"),
        raw.overprovisioning_factor,
        live.overprovisioning_factor,
        OVERPROVISIONING_RANGE,
    );
    policy.prewarm_share = fraction(
        c,
        format!("{path}.prewarm_share"),
        raw.prewarm_share,
        live.prewarm_share,
        PREWARM_SHARE_RANGE,
    );
    ShadowPolicy {
        policy,
        sample: fraction(
            c,
            format!("{path}.sample"),
            raw.sample,
            1.0,
            SHADOW_SAMPLE_RANGE,
        ),
    }
}

fn compile_policy(c: &mut Checker, path: &str, pool: &RawPool) -> PoolPolicy {
    let mode = compile_mode(c, path, pool.mode.as_deref(), BalanceMode::Latency);
    let min_share = fraction(
        c,
        format!("{path}.min_share"),
        pool.min_share,
        DEFAULT_MIN_SHARE,
        MIN_SHARE_RANGE,
    );
    let max_share = fraction(
        c,
        format!("{path}.max_share"),
        pool.max_share,
        DEFAULT_MAX_SHARE,
        MAX_SHARE_RANGE,
    );
    check_share_bounds(c, path, min_share, max_share);
    let recompute_interval = c.duration(
        &format!("{path}.recompute_interval"),
        pool.recompute_interval.as_deref(),
        DEFAULT_RECOMPUTE_INTERVAL,
    );
    if !(MIN_RECOMPUTE_INTERVAL..=MAX_RECOMPUTE_INTERVAL).contains(&recompute_interval) {
        c.error(
            format!("{path}.recompute_interval"),
            format!("must be between {MIN_RECOMPUTE_INTERVAL:?} and {MAX_RECOMPUTE_INTERVAL:?}"),
        );
    }
    let server_load = pool.server_load.as_ref();
    let outlier = pool.outlier.as_ref();
    let attempts = pool
        .retries
        .as_ref()
        .and_then(|r| r.attempts)
        .unwrap_or(DEFAULT_ATTEMPTS);
    if !(1..=MAX_ATTEMPTS).contains(&attempts) {
        c.error(
            format!("{path}.retries.attempts"),
            format!("must be between 1 and {MAX_ATTEMPTS}"),
        );
    }
    let consecutive_failures = outlier
        .and_then(|o| o.consecutive_failures)
        .unwrap_or(DEFAULT_CONSECUTIVE_FAILURES);
    if consecutive_failures == 0 {
        c.error(
            format!("{path}.outlier.consecutive_failures"),
            "must be at least 1",
        );
    }
    let base_ejection = c.duration(
        &format!("{path}.outlier.base_ejection"),
        outlier.and_then(|o| o.base_ejection.as_deref()),
        DEFAULT_BASE_EJECTION,
    );
    let max_ejection = c.duration(
        &format!("{path}.outlier.max_ejection"),
        outlier.and_then(|o| o.max_ejection.as_deref()),
        DEFAULT_MAX_EJECTION,
    );
    if max_ejection < base_ejection {
        c.error(
            format!("{path}.outlier.max_ejection"),
            "must not be shorter than base_ejection",
        );
    }
    let mut policy = PoolPolicy {
        mode,
        target_latency: c.duration(
            &format!("{path}.target_latency"),
            pool.target_latency.as_deref(),
            DEFAULT_TARGET_LATENCY,
        ),
        min_share,
        max_share,
        smoothing: fraction(
            c,
            format!("{path}.smoothing"),
            pool.smoothing,
            DEFAULT_SMOOTHING,
            SMOOTHING_RANGE,
        ),
        recompute_interval,
        slow_start: c.duration_or_zero(
            &format!("{path}.slow_start"),
            pool.slow_start.as_deref(),
            DEFAULT_SLOW_START,
        ),
        server_load: ServerLoadPolicy {
            header: header_name(
                c,
                format!("{path}.server_load.header"),
                server_load.and_then(|s| s.header.as_deref()),
                "server-load",
            ),
            orca_header: header_name(
                c,
                format!("{path}.server_load.orca_header"),
                server_load.and_then(|s| s.orca_header.as_deref()),
                "endpoint-load-metrics",
            ),
            strip: server_load.and_then(|s| s.strip).unwrap_or(true),
            stale_after: c.duration(
                &format!("{path}.server_load.stale_after"),
                server_load.and_then(|s| s.stale_after.as_deref()),
                DEFAULT_STALE_AFTER,
            ),
        },
        outlier: OutlierPolicy {
            consecutive_failures,
            base_ejection,
            max_ejection,
            max_ejected: fraction(
                c,
                format!("{path}.outlier.max_ejected"),
                outlier.and_then(|o| o.max_ejected),
                DEFAULT_MAX_EJECTED,
                0.0..=1.0,
            ),
        },
        health: pool
            .health
            .as_ref()
            .map(|h| compile_health(c, &format!("{path}.health"), h)),
        load_poll: None,
        attempts,
        region_max_share: fraction(
            c,
            format!("{path}.region_max_share"),
            pool.region_max_share,
            1.0,
            REGION_MAX_SHARE_RANGE,
        ),
        spillover: pool
            .spillover
            .as_ref()
            .map(|s| compile_spillover(c, &format!("{path}.spillover"), s)),
        canary_sticky: pool
            .canary_sticky
            .as_ref()
            .and_then(|s| compile_sticky_key(c, &format!("{path}.canary_sticky"), s)),
        consistent_hash: pool
            .consistent_hash
            .as_ref()
            .and_then(|h| compile_consistent_hash(c, &format!("{path}.consistent_hash"), h)),
        overprovisioning_factor: fraction(
            c,
            format!("{path}.overprovisioning_factor"),
            pool.overprovisioning_factor,
            DEFAULT_OVERPROVISIONING_FACTOR,
            OVERPROVISIONING_RANGE,
        ),
        prewarm_share: fraction(
            c,
            format!("{path}.prewarm_share"),
            pool.prewarm_share,
            0.0,
            PREWARM_SHARE_RANGE,
        ),
        schedules: Vec::new(),
    };
    // Checked against `server_load.stale_after`, so compiled after it.
    policy.load_poll = pool.load_poll.as_ref().map(|raw| {
        let stale_after = policy.server_load.stale_after;
        compile_load_poll(c, &format!("{path}.load_poll"), raw, stale_after)
    });
    policy
}

fn compile_spillover(c: &mut Checker, path: &str, raw: &RawSpillover) -> SpilloverPolicy {
    let d = DEFAULT_SPILLOVER;
    let latency_above = raw
        .latency_above
        .as_deref()
        .map(|text| c.duration(&format!("{path}.latency_above"), Some(text), Duration::ZERO));
    let latency_signal = match raw.latency_signal.as_deref() {
        None | Some("ewma") => LatencySignal::Ewma,
        Some("p99") => LatencySignal::P99,
        Some(other) => {
            c.error(
                format!("{path}.latency_signal"),
                format!("unknown latency signal \"{other}\" (supported: ewma, p99)"),
            );
            d.latency_signal
        }
    };
    let utilization_above = raw.utilization_above.map(|u| {
        fraction(
            c,
            format!("{path}.utilization_above"),
            Some(u),
            1.0,
            0.01..=10.0,
        )
    });
    if latency_above.is_none() && utilization_above.is_none() {
        c.error(
            path,
            "needs latency_above or utilization_above (what counts as pressure)",
        );
    }
    SpilloverPolicy {
        latency_above,
        latency_signal,
        utilization_above,
        step: fraction(c, format!("{path}.step"), raw.step, d.step, 0.01..=1.0),
        max: fraction(c, format!("{path}.max"), raw.max, d.max, 0.01..=1.0),
        hysteresis: fraction(
            c,
            format!("{path}.hysteresis"),
            raw.hysteresis,
            d.hysteresis,
            0.1..=0.99,
        ),
        hold: c.duration_or_zero(&format!("{path}.hold"), raw.hold.as_deref(), d.hold),
    }
}

fn compile_sticky_key(c: &mut Checker, path: &str, raw: &RawStickyKey) -> Option<StickyKey> {
    if raw.header.is_some() == raw.cookie.is_some() {
        c.error(path, "set exactly one of header or cookie");
        return None;
    }
    compile_key(c, path, raw.header.as_ref(), raw.cookie.as_ref(), None)
}

fn compile_consistent_hash(
    c: &mut Checker,
    path: &str,
    raw: &RawConsistentHash,
) -> Option<ConsistentHash> {
    let key_path = format!("{path}.key");
    let RawHashKey {
        header,
        cookie,
        path_segment,
    } = &raw.key;
    let set = [header.is_some(), cookie.is_some(), path_segment.is_some()];
    if set.iter().filter(|&&s| s).count() != 1 {
        c.error(
            &key_path,
            "set exactly one of header, cookie or path_segment",
        );
        return None;
    }
    if *path_segment == Some(0) {
        c.error(
            format!("{key_path}.path_segment"),
            "path segments count from 1",
        );
        return None;
    }
    let vnodes = raw.vnodes.unwrap_or(DEFAULT_VNODES);
    if !(1..=MAX_VNODES).contains(&vnodes) {
        c.error(
            format!("{path}.vnodes"),
            format!("{vnodes} is out of range 1..={MAX_VNODES}"),
        );
    }
    let max_key_moves = fraction(
        c,
        format!("{path}.max_key_moves"),
        raw.max_key_moves,
        DEFAULT_MAX_KEY_MOVES,
        0.001..=1.0,
    );
    let key = compile_key(
        c,
        &key_path,
        header.as_ref(),
        cookie.as_ref(),
        *path_segment,
    )?;
    Some(ConsistentHash {
        key,
        vnodes,
        max_key_moves,
    })
}

/// A request key from exactly one source (checked by the caller).
fn compile_key(
    c: &mut Checker,
    path: &str,
    header: Option<&String>,
    cookie: Option<&String>,
    path_segment: Option<usize>,
) -> Option<StickyKey> {
    match (header, cookie) {
        _ if path_segment.is_some() => path_segment.map(StickyKey::PathSegment),
        (Some(name), _) => match HeaderName::from_str(name) {
            Ok(name) => Some(StickyKey::Header(name)),
            Err(_) => {
                c.error(
                    format!("{path}.header"),
                    format!("invalid header name \"{name}\""),
                );
                None
            }
        },
        (None, Some(name)) => {
            let valid = valid_cookie_name(name);
            if !valid {
                c.error(
                    format!("{path}.cookie"),
                    format!("invalid cookie name \"{name}\""),
                );
            }
            valid.then(|| StickyKey::Cookie(name.clone()))
        }
        (None, None) => None,
    }
}

fn compile_load_poll(
    c: &mut Checker,
    path: &str,
    raw: &RawLoadPoll,
    stale_after: Duration,
) -> LoadPollPolicy {
    let poll_path = raw
        .path
        .clone()
        .unwrap_or_else(|| DEFAULT_LOAD_POLL_PATH.to_string());
    if !poll_path.starts_with('/') || http::uri::PathAndQuery::from_str(&poll_path).is_err() {
        c.error(
            format!("{path}.path"),
            format!("invalid path \"{poll_path}\" (must start with '/')"),
        );
    }
    if let Some(host) = &raw.host {
        if host.is_empty() || HeaderValue::from_str(host).is_err() {
            c.error(
                format!("{path}.host"),
                format!("invalid host {host:?} (not a valid header value)"),
            );
        }
    }
    let interval = c.duration(
        &format!("{path}.interval"),
        raw.interval.as_deref(),
        DEFAULT_LOAD_POLL_INTERVAL,
    );
    if !(MIN_LOAD_POLL_INTERVAL..=MAX_LOAD_POLL_INTERVAL).contains(&interval) {
        c.error(
            format!("{path}.interval"),
            format!("must be between {MIN_LOAD_POLL_INTERVAL:?} and {MAX_LOAD_POLL_INTERVAL:?}"),
        );
    } else if interval >= stale_after {
        c.error(
            format!("{path}.interval"),
            format!(
                "{interval:?} must be shorter than server_load.stale_after ({stale_after:?}), \
                 or every poll would be stale before the next one"
            ),
        );
    }
    let timeout = c.duration(
        &format!("{path}.timeout"),
        raw.timeout.as_deref(),
        DEFAULT_LOAD_POLL_TIMEOUT.min(interval),
    );
    if timeout > interval {
        c.error(
            format!("{path}.timeout"),
            format!("{timeout:?} is longer than the interval {interval:?}"),
        );
    }
    let quiet_below = match raw.quiet_below {
        None => DEFAULT_QUIET_BELOW,
        Some(rps) if rps.is_finite() && rps > 0.0 && rps <= MAX_QUIET_BELOW => rps,
        Some(rps) => {
            c.error(
                format!("{path}.quiet_below"),
                format!("{rps} must be a rate in requests per second, above 0 and at most {MAX_QUIET_BELOW}"),
            );
            DEFAULT_QUIET_BELOW
        }
    };
    LoadPollPolicy {
        path: poll_path,
        host: raw.host.clone(),
        interval,
        timeout,
        quiet_below,
    }
}

fn compile_health(c: &mut Checker, path: &str, raw: &RawHealth) -> HealthPolicy {
    let kind = match raw.check.as_deref() {
        None | Some("http") => {
            let check_path = raw.path.clone().unwrap_or_else(|| "/".to_string());
            if !check_path.starts_with('/')
                || http::uri::PathAndQuery::from_str(&check_path).is_err()
            {
                c.error(
                    format!("{path}.path"),
                    format!("invalid path \"{check_path}\" (must start with '/')"),
                );
            }
            // Sent as the Host header of every check.
            if let Some(host) = &raw.host {
                if HeaderValue::from_str(host).is_err() {
                    c.error(
                        format!("{path}.host"),
                        format!("invalid host {host:?} (not a valid header value)"),
                    );
                }
            }
            HealthCheckKind::Http {
                path: check_path,
                host: raw.host.clone(),
            }
        }
        Some("tcp") => {
            if raw.path.is_some() || raw.host.is_some() {
                c.error(format!("{path}.check"), "a tcp check takes no path or host");
            }
            HealthCheckKind::Tcp
        }
        Some(other) => {
            c.error(
                format!("{path}.check"),
                format!("unknown check \"{other}\" (supported: http, tcp)"),
            );
            HealthCheckKind::Tcp
        }
    };
    let mut threshold = |name: &str, value: Option<u32>, default: u32| match value {
        Some(0) => {
            c.error(format!("{path}.{name}"), "must be at least 1");
            default
        }
        other => other.unwrap_or(default),
    };
    let healthy_after = threshold("healthy_after", raw.healthy_after, DEFAULT_HEALTHY_AFTER);
    let unhealthy_after = threshold(
        "unhealthy_after",
        raw.unhealthy_after,
        DEFAULT_UNHEALTHY_AFTER,
    );
    HealthPolicy {
        kind,
        interval: c.duration(
            &format!("{path}.interval"),
            raw.interval.as_deref(),
            DEFAULT_HEALTH_INTERVAL,
        ),
        timeout: c.duration(
            &format!("{path}.timeout"),
            raw.timeout.as_deref(),
            DEFAULT_HEALTH_TIMEOUT,
        ),
        healthy_after,
        unhealthy_after,
    }
}

fn compile_backends(
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

fn compile_routes(c: &mut Checker, raw: &[RawRoute], pools: &[Pool]) -> RouteTable {
    if raw.is_empty() {
        c.error("routes", "at least one route is required");
    }
    let mut names = HashSet::new();
    let mut routes = Vec::new();
    for (i, route) in raw.iter().enumerate() {
        let path = format!("routes[{i}]");
        let name = route.name.clone().unwrap_or_else(|| format!("route-{i}"));
        if !names.insert(name.clone()) {
            c.error(
                format!("{path}.name"),
                format!("duplicate route name \"{name}\""),
            );
        }
        let pool = pools.iter().find(|p| p.name == route.pool).map(|p| p.id);
        if pool.is_none() {
            let known: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
            c.error(
                format!("{path}.pool"),
                format!(
                    "unknown pool \"{}\" (defined pools: {})",
                    route.pool,
                    known.join(", ")
                ),
            );
        }
        let m = &route.matcher;
        let host = m
            .host
            .as_deref()
            .and_then(|h| compile_host(c, &format!("{path}.match.host"), h));
        if let Some(prefix) = &m.path_prefix {
            if !prefix.starts_with('/') {
                c.error(
                    format!("{path}.match.path_prefix"),
                    format!("must start with '/', got \"{prefix}\""),
                );
            }
        }
        let methods = m.methods.as_ref().map(|methods| {
            methods
                .iter()
                .enumerate()
                .filter_map(|(j, text)| {
                    match Method::from_bytes(text.trim().to_ascii_uppercase().as_bytes()) {
                        Ok(method) => Some(method),
                        Err(_) => {
                            c.error(
                                format!("{path}.match.methods[{j}]"),
                                format!("invalid HTTP method \"{text}\""),
                            );
                            None
                        }
                    }
                })
                .collect::<Vec<_>>()
        });
        if methods.as_ref().is_some_and(Vec::is_empty)
            && m.methods.as_ref().is_some_and(Vec::is_empty)
        {
            c.error(
                format!("{path}.match.methods"),
                "must not be empty (omit it to match every method)",
            );
        }
        let mut headers = Vec::new();
        for (header, value) in &m.headers {
            let header_path = format!("{path}.match.headers.{header}");
            match (HeaderName::from_str(header), HeaderValue::from_str(value)) {
                (Ok(n), Ok(v)) => headers.push((n, v)),
                (Err(_), _) => c.error(header_path, format!("invalid header name \"{header}\"")),
                (_, Err(_)) => c.error(header_path, format!("invalid header value \"{value}\"")),
            }
        }
        let budget = match (&route.budget, pool) {
            (Some(budget), Some(pool)) => {
                compile_budget(c, &format!("{path}.budget"), budget, &pools[pool.0])
            }
            _ => None,
        };
        if let Some(pool) = pool {
            routes.push(Route {
                name,
                host,
                path_prefix: m.path_prefix.clone(),
                methods,
                headers,
                pool,
                budget,
            });
        }
    }
    RouteTable::new(routes)
}

/// An event budget; its pool's backends must all have a capacity.
fn compile_budget(
    c: &mut Checker,
    path: &str,
    raw: &RawBudget,
    pool: &Pool,
) -> Option<BudgetPolicy> {
    let region_share = fraction(
        c,
        format!("{path}.region_share"),
        Some(raw.region_share),
        1.0,
        0.01..=1.0,
    );
    let over = match raw.over.as_deref() {
        None | Some("shed") => OverBudget::Shed,
        Some("spill") => OverBudget::Spill,
        Some(other) => {
            c.error(
                format!("{path}.over"),
                format!("unknown action \"{other}\" (supported: shed, spill)"),
            );
            OverBudget::Shed
        }
    };
    let retry_after_path = format!("{path}.retry_after");
    let retry_after = c.duration(
        &retry_after_path,
        raw.retry_after.as_deref(),
        Duration::from_secs(1),
    );
    if retry_after.subsec_nanos() != 0 || retry_after > Duration::from_secs(3600) {
        c.error(
            retry_after_path,
            "must be whole seconds from 1s to 1h (it is sent as Retry-After)",
        );
    }
    let uncapped: Vec<&str> = pool
        .backends
        .iter()
        .filter(|b| b.capacity.is_none())
        .map(|b| b.id.0.as_str())
        .collect();
    if !uncapped.is_empty() {
        c.error(
            path,
            format!(
                "a budget is a share of capacity: give every backend of pool \"{}\" a capacity (missing: {})",
                pool.name,
                uncapped.join(", ")
            ),
        );
        return None;
    }
    if over == OverBudget::Spill && pool.regions.iter().flatten().count() < 2 {
        c.error(
            format!("{path}.over"),
            format!(
                "spill needs the pool \"{}\" to have backends in at least two regions",
                pool.name
            ),
        );
    }
    Some(BudgetPolicy {
        region_share,
        over,
        retry_after,
    })
}

fn valid_region_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Regions, client-region rules and fences. Backend regions must be declared
/// under `regions` once any region is.
fn compile_geo(
    c: &mut Checker,
    regions: &BTreeMap<String, RawRegion>,
    geo: Option<&RawGeo>,
    pools: &[Pool],
) -> Option<Geo> {
    for (name, region) in regions {
        let path = format!("regions.{name}");
        if !valid_region_name(name) {
            c.error(
                &path,
                format!("invalid region name \"{name}\" (use letters, digits, '-', '_', '.')"),
            );
        }
        let mut seen = HashSet::new();
        for (i, fallback) in region.fallback.iter().enumerate() {
            let fallback_path = format!("{path}.fallback[{i}]");
            if !regions.contains_key(fallback) {
                c.error(fallback_path, format!("unknown region \"{fallback}\""));
            } else if fallback == name {
                c.error(fallback_path, "a region cannot fall back to itself");
            } else if !seen.insert(fallback) {
                c.error(fallback_path, format!("\"{fallback}\" is listed twice"));
            }
        }
    }
    if !regions.is_empty() {
        for pool in pools {
            for (i, backend) in pool.backends.iter().enumerate() {
                if let Some(region) = &backend.region {
                    if !regions.contains_key(region) {
                        c.error(
                            format!("pools.{}.backends[{i}].region", pool.name),
                            format!("unknown region \"{region}\" (declare it under regions)"),
                        );
                    }
                }
            }
        }
    }
    let geo = geo?;
    if regions.is_empty() {
        c.error(
            "geo",
            "geo rules need regions: declare them under `regions`",
        );
        return None;
    }
    let known = |c: &mut Checker, path: String, region: &str| {
        let ok = regions.contains_key(region);
        if !ok {
            c.error(path, format!("unknown region \"{region}\""));
        }
        ok
    };
    let mut rules = Vec::new();
    for (i, rule) in geo.client_region.iter().enumerate() {
        let path = format!("geo.client_region[{i}]");
        if rules.iter().any(|r| matches!(r, RegionRule::Default(_))) {
            c.error(&path, "unreachable: it comes after the `default` rule");
        }
        match (&rule.header, &rule.cidr, &rule.default) {
            (Some(header), None, None) => {
                let name = HeaderName::from_str(header).ok();
                if name.is_none() {
                    c.error(
                        format!("{path}.header"),
                        format!("invalid header name \"{header}\""),
                    );
                }
                let peers: Vec<ipnet::IpNet> = match &rule.trusted_peers {
                    None => {
                        c.error(
                            format!("{path}.trusted_peers"),
                            "required with `header`: only trusted peers may name a client's region",
                        );
                        Vec::new()
                    }
                    Some(list) => list
                        .iter()
                        .enumerate()
                        .filter_map(|(j, net)| {
                            parse_net(net).or_else(|| {
                                c.error(
                                    format!("{path}.trusted_peers[{j}]"),
                                    format!("invalid CIDR \"{net}\""),
                                );
                                None
                            })
                        })
                        .collect(),
                };
                if let Some(name) = name {
                    rules.push(RegionRule::Header {
                        name,
                        trusted_peers: peers,
                    });
                }
            }
            (None, Some(table), None) => {
                if rule.trusted_peers.is_some() {
                    c.error(
                        format!("{path}.trusted_peers"),
                        "only applies to a `header` rule",
                    );
                }
                let mut entries = Vec::new();
                for (net, region) in table {
                    let entry_path = format!("{path}.cidr.{net}");
                    let parsed = parse_net(net);
                    if parsed.is_none() {
                        c.error(&entry_path, format!("invalid CIDR \"{net}\""));
                    }
                    if let (Some(net), true) = (parsed, known(c, entry_path, region)) {
                        entries.push((net, region.clone()));
                    }
                }
                entries.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
                rules.push(RegionRule::Cidr(entries));
            }
            (None, None, Some(region)) => {
                if known(c, format!("{path}.default"), region) {
                    rules.push(RegionRule::Default(region.clone()));
                }
            }
            _ => c.error(
                &path,
                "each rule takes exactly one of `header`, `cidr`, `default`",
            ),
        }
    }
    let regions_with_backends: HashSet<&str> = pools
        .iter()
        .flat_map(|p| p.backends.iter().filter_map(|b| b.region.as_deref()))
        .collect();
    for (name, region) in regions {
        for (i, fallback) in region.fallback.iter().enumerate() {
            if regions.contains_key(fallback) && !regions_with_backends.contains(fallback.as_str())
            {
                c.error(
                    format!("regions.{name}.fallback[{i}]"),
                    format!("region \"{fallback}\" has no backends in any pool: falling back to it is impossible"),
                );
            }
        }
    }
    let mut fences: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
    for (i, fence) in geo.residency.iter().enumerate() {
        let path = format!("geo.residency[{i}]");
        if fence.allowed.is_empty() {
            c.error(format!("{path}.allowed"), "must name at least one region");
        }
        for (j, region) in fence.allowed.iter().enumerate() {
            let region_path = format!("{path}.allowed[{j}]");
            if known(c, region_path.clone(), region)
                && !regions_with_backends.contains(region.as_str())
            {
                c.error(
                    region_path,
                    format!("region \"{region}\" has no backends in any pool"),
                );
            }
        }
        for (j, client) in fence.clients.iter().enumerate() {
            let client_path = format!("{path}.clients[{j}]");
            if !known(c, client_path.clone(), client) {
                continue;
            }
            if fences.insert(client.as_str(), &fence.allowed).is_some() {
                c.error(client_path, format!("\"{client}\" is fenced twice"));
            }
        }
    }
    let plans = regions
        .iter()
        .map(|(name, region)| {
            let mut order = vec![name.clone()];
            for fallback in &region.fallback {
                if !order.contains(fallback) {
                    order.push(fallback.clone());
                }
            }
            let fenced = match fences.get(name.as_str()) {
                Some(allowed) => {
                    order.retain(|r| allowed.contains(r));
                    for region in allowed.iter() {
                        if !order.contains(region) {
                            order.push(region.clone());
                        }
                    }
                    true
                }
                None => false,
            };
            (name.clone(), RegionPlan { order, fenced })
        })
        .collect();
    Some(Geo { rules, plans })
}

fn compile_explain(c: &mut Checker, raw: &RawExplain) -> Explain {
    let debug_header = header_name(
        c,
        "explain.debug_header".into(),
        raw.debug_header.as_deref(),
        "x-ballast-debug",
    );
    let trusted_peers = raw
        .trusted_peers
        .iter()
        .enumerate()
        .filter_map(|(i, net)| {
            parse_net(net).or_else(|| {
                c.error(
                    format!("explain.trusted_peers[{i}]"),
                    format!("invalid CIDR \"{net}\""),
                );
                None
            })
        })
        .collect();
    Explain {
        always: raw.always.unwrap_or(false),
        debug_header,
        trusted_peers,
    }
}

/// A CIDR, or a bare address meaning just that host.
fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn compile_host(c: &mut Checker, path: &str, host: &str) -> Option<HostMatch> {
    let lower = host.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('.').unwrap_or(&lower);
    let (bare, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest.to_string(), true),
        None => (lower.to_string(), false),
    };
    let valid = !bare.is_empty()
        && bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !valid {
        c.error(path, format!("invalid host \"{host}\" (expected a name like api.example.com or *.example.com, without port)"));
        return None;
    }
    Some(if wildcard {
        HostMatch::Subdomain(format!(".{bare}"))
    } else {
        HostMatch::Exact(bare)
    })
}

//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! * [`check_config`]: load a configuration text and check what a loaded
//!   snapshot promises, used by the `config` and `config_mutate` targets;
//! * [`Mutation`]: structured edits of a known-good configuration, so that
//!   `config_mutate` reaches the semantic checks behind the YAML parser.

use arbitrary::Arbitrary;
use ballast::config::{
    compile, parse, raw::RawConfig, ConfigErrors, HealthCheckKind, PoolId, Snapshot,
};
use ballast::stats::clock::now_ms;
use http::{HeaderValue, Uri};
use serde_yaml_ng::{Mapping, Value};
use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Relative certificate paths resolve here, where nothing can be read.
pub const BASE_DIR: &str = "/nonexistent-base";

/// Loads `text` as `config::load_str` does, `compile(parse(text)?, base)`,
/// and checks the result: an error names at least one problem, and a
/// snapshot is as consistent as the proxy assumes (see [`check_snapshot`]).
///
/// The two steps are taken apart so that a text naming an absolute
/// certificate or key path can be skipped before compiling: no file outside
/// [`BASE_DIR`] is ever read (a fuzzer would eventually try `/dev/zero`).
/// Relative paths are read, and fail.
pub fn check_config(text: &str) {
    // Unknown keys are reported beside the parse; compiling goes on as
    // `load_str` does before it reports them.
    let raw = match parse(text) {
        Ok((raw, _unknown_keys)) => raw,
        Err(errors) => return check_errors(&errors),
    };
    if names_absolute_file(&raw) {
        return;
    }
    match compile(raw, Path::new(BASE_DIR)) {
        Ok(snapshot) => check_snapshot(&snapshot),
        Err(errors) => check_errors(&errors),
    }
}

fn names_absolute_file(raw: &RawConfig) -> bool {
    raw.listeners
        .iter()
        .filter_map(|listener| listener.tls.as_ref())
        .flat_map(|tls| {
            let sni = tls.sni.iter().flat_map(|sni| [&sni.cert, &sni.key]);
            [&tls.cert, &tls.key].into_iter().chain(sni)
        })
        .any(|file| Path::new(file).is_absolute())
}

fn check_errors(errors: &ConfigErrors) {
    assert!(!errors.0.is_empty(), "a failed load names no problem");
    for error in &errors.0 {
        assert!(
            !error.message.is_empty(),
            "empty message at {:?}",
            error.path
        );
    }
    assert_eq!(errors.lines().len(), errors.0.len());
    assert!(errors.to_string().lines().count() > errors.0.len());
}

/// What a compiled snapshot promises its readers: indices are in bounds,
/// names are unique, every validated number is in its range, health checks
/// can be sent, and every duration can be added to the proxy's clocks.
pub fn check_snapshot(snapshot: &Snapshot) {
    assert!(!snapshot.listeners.is_empty(), "no listener");
    let mut addresses = HashSet::new();
    for listener in &snapshot.listeners {
        assert!(addresses.insert(listener.address), "duplicate listener");
        // No certificate can be read under BASE_DIR.
        assert!(listener.tls.is_none(), "TLS listener without certificate");
    }
    assert!(!addresses.contains(&snapshot.admin.address));
    assert!((1..=1024).contains(&snapshot.server.threads));
    check_duration("server.drain_timeout", snapshot.server.drain_timeout);

    assert!(!snapshot.pools.is_empty(), "no pool");
    let mut pool_names = HashSet::new();
    for (index, pool) in snapshot.pools.iter().enumerate() {
        assert_eq!(pool.id, PoolId(index));
        assert!(pool_names.insert(pool.name.as_str()), "duplicate pool");
        assert_eq!(
            snapshot.pool_by_name(&pool.name).map(|p| p.id),
            Some(pool.id)
        );
        check_pool(pool);
    }

    let routes = snapshot.routes.routes();
    assert!(!routes.is_empty(), "no route");
    let mut route_names = HashSet::new();
    for route in routes {
        assert!(route_names.insert(route.name.as_str()), "duplicate route");
        match route.pool {
            Some(pool) => assert!(pool.0 < snapshot.pools.len(), "route to no pool"),
            None => assert!(
                route.redirect.is_some(),
                "route with neither pool nor redirect"
            ),
        }
        if let Some(prefix) = &route.path_prefix {
            assert!(prefix.starts_with('/'), "{prefix:?}");
        }
        if let Some(methods) = &route.methods {
            assert!(
                !methods.is_empty(),
                "route {} matches no method",
                route.name
            );
        }
    }
}

fn check_pool(pool: &ballast::config::Pool) {
    assert!(
        !pool.backends.is_empty() || !pool.named.is_empty(),
        "pool {} has no backend",
        pool.name
    );
    let mut names = HashSet::new();
    for entry in &pool.named {
        assert!(names.insert(&entry.name), "duplicate named entry");
        assert!(entry.template.weight <= 1_000_000);
        assert_ne!(entry.template.capacity, Some(0));
    }
    let mut addresses = HashSet::new();
    for backend in &pool.backends {
        assert!(addresses.insert(backend.addr), "duplicate backend");
        assert!(backend.weight <= 1_000_000);
        assert_ne!(backend.capacity, Some(0));
        if let Some(canary) = &backend.canary {
            assert!(0.0 <= canary.floor && canary.floor <= canary.max && canary.max <= 1.0);
            assert!(canary.min_requests >= 1);
        }
    }
    // Named entries have no backend until they resolve.
    let weights = pool.backends.iter().map(|backend| backend.weight);
    let named_weights = pool.named.iter().map(|entry| entry.template.weight);
    assert!(weights.chain(named_weights).any(|weight| weight > 0));
    let positive = pool.backends.iter().any(|backend| backend.weight > 0);
    assert_eq!(
        !pool.schedule.is_empty(),
        positive,
        "schedule of the positive weights"
    );
    for &index in &pool.schedule {
        let backend = pool.backends.get(index as usize).expect("scheduled index");
        assert!(backend.weight > 0, "a backend of weight 0 is scheduled");
    }
    let policy = &pool.policy;
    assert!(0.0 <= policy.min_share && policy.min_share <= policy.max_share);
    assert!(policy.max_share <= 1.0);
    assert!(policy.smoothing > 0.0 && policy.smoothing <= 1.0);
    assert!(policy.region_max_share > 0.0 && policy.region_max_share <= 1.0);
    assert!((1..=5).contains(&policy.retries.attempts));
    assert!(policy.outlier.consecutive_failures >= 1);
    assert!(policy.outlier.base_ejection <= policy.outlier.max_ejection);

    // The health checker sends these as its request's Host header and URI.
    if let Some(HealthCheckKind::Http { path, host }) = policy.health.as_ref().map(|h| &h.kind) {
        let host = host.as_deref().unwrap_or(&pool.name);
        assert!(
            HeaderValue::from_str(host).is_ok(),
            "health check host {host:?} is not a header value"
        );
        assert!(path.parse::<Uri>().is_ok(), "health check path {path:?}");
    }

    let timeouts = &pool.timeouts;
    let mut durations = vec![
        ("connect_timeout", timeouts.connect),
        ("read_timeout", timeouts.read),
        ("write_timeout", timeouts.write),
        ("idle_timeout", timeouts.idle),
        ("target_latency", policy.target_latency),
        ("recompute_interval", policy.recompute_interval),
        ("slow_start", policy.slow_start),
        ("server_load.stale_after", policy.server_load.stale_after),
        ("outlier.base_ejection", policy.outlier.base_ejection),
        ("outlier.max_ejection", policy.outlier.max_ejection),
    ];
    if let Some(health) = &policy.health {
        durations.push(("health.interval", health.interval));
        durations.push(("health.timeout", health.timeout));
    }
    if let Some(spillover) = &policy.spillover {
        durations.push(("spillover.hold", spillover.hold));
        if let Some(latency) = spillover.latency_above {
            durations.push(("spillover.latency_above", latency));
        }
    }
    for canary in pool.backends.iter().filter_map(|b| b.canary.as_ref()) {
        durations.push(("canary.cooldown", canary.cooldown));
    }
    for (what, duration) in durations {
        check_duration(what, duration);
    }
}

/// The proxy adds configured durations to its clocks as it runs: to an
/// `Instant` (a health check's next round, the drain deadline) and, in
/// milliseconds, to the `u64` clock of `stats::clock` (ejections, breakers).
/// Neither may overflow.
fn check_duration(what: &str, duration: Duration) {
    assert!(
        Instant::now().checked_add(duration).is_some(),
        "{what}: {duration:?} overflows an Instant"
    );
    let ms = u64::try_from(duration.as_millis()).ok();
    assert!(
        ms.and_then(|ms| ms.checked_add(now_ms())).is_some(),
        "{what}: {duration:?} overflows the millisecond clock"
    );
}

/// The configurations `config_mutate` starts from.
pub const SEED_CONFIGS: [&str; 3] = [
    include_str!("../../conf/ballast.yaml"),
    include_str!("../../conf/examples/multi-region.yaml"),
    include_str!("../corpus/config/every-match.yaml"),
];

/// [`SEED_CONFIGS`] as YAML trees, parsed once.
static SEED_TREES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    SEED_CONFIGS
        .iter()
        .map(|text| serde_yaml_ng::from_str(text).expect("seed configurations parse"))
        .collect()
});

/// Most edits applied to one configuration.
const MAX_EDITS: usize = 16;

/// Bounds on an edited tree (the seeds have a few hundred nodes and a depth
/// of 7), so that copying a tree into itself cannot blow it up.
const MAX_NODES: usize = 2_000;
const MAX_DEPTH: usize = 24;

/// A seed configuration and the edits made to it.
#[derive(Arbitrary, Debug)]
pub struct Mutation<'a> {
    /// Which of [`SEED_CONFIGS`] (modulo their number).
    pub seed: u8,
    /// Drop every listener's `tls` first, so that the configuration can load.
    pub drop_tls: bool,
    pub edits: Vec<Edit<'a>>,
}

/// A place in the YAML tree: at each mapping or sequence on the way down,
/// the child at this position (modulo the number of children). The walk
/// stops at a scalar or an empty container.
pub type TreePath = Vec<u8>;

/// One change to the YAML tree.
#[derive(Arbitrary, Debug)]
pub enum Edit<'a> {
    /// Replace a node.
    Replace { at: TreePath, with: NewValue<'a> },
    /// Remove a node from its mapping or sequence.
    Remove { at: TreePath },
    /// Add a key (one the configuration knows, or any text) to a mapping, or
    /// push a value onto a sequence.
    Insert {
        at: TreePath,
        key: NewKey<'a>,
        value: NewValue<'a>,
    },
    /// Copy a whole subtree over another node (skipped if the tree would
    /// outgrow `MAX_NODES` or `MAX_DEPTH`).
    Copy { from: TreePath, to: TreePath },
}

#[derive(Arbitrary, Debug)]
pub enum NewKey<'a> {
    Known(u8),
    Text(&'a str),
}

#[derive(Arbitrary, Debug)]
pub enum NewValue<'a> {
    /// One of [`INTERESTING_VALUES`].
    Known(u8),
    Text(&'a str),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Null,
    EmptyMapping,
    EmptySequence,
}

/// The configuration's keys (the fields of `config::raw`).
const KEYS: &[&str] = &[
    "addr",
    "address",
    "admin",
    "allowed",
    "always",
    "attempts",
    "backends",
    "base_ejection",
    "canary",
    "canary_sticky",
    "capacity",
    "cert",
    "check",
    "cidr",
    "client_region",
    "clients",
    "connect_timeout",
    "consecutive_failures",
    "cookie",
    "cooldown",
    "debug_header",
    "default",
    "drain_timeout",
    "explain",
    "fallback",
    "floor",
    "geo",
    "header",
    "headers",
    "health",
    "healthy_after",
    "hold",
    "host",
    "http2",
    "hysteresis",
    "idle_timeout",
    "interval",
    "key",
    "labels",
    "latency_above",
    "latency_signal",
    "limits",
    "listeners",
    "match",
    "max",
    "max_ejected",
    "max_ejection",
    "max_error_rate",
    "max_header_bytes",
    "max_headers",
    "max_share",
    "max_uri_bytes",
    "methods",
    "min_requests",
    "min_share",
    "mode",
    "name",
    "orca_header",
    "outlier",
    "path",
    "path_prefix",
    "pool",
    "pools",
    "read_timeout",
    "recompute_interval",
    "region",
    "region_max_share",
    "regions",
    "residency",
    "retries",
    "routes",
    "server",
    "server_load",
    "server_names",
    "slow_start",
    "smoothing",
    "sni",
    "spillover",
    "stale_after",
    "step",
    "strip",
    "target_latency",
    "threads",
    "timeout",
    "tls",
    "token_env",
    "trusted_peers",
    "unhealthy_after",
    "upgrade_sock",
    "upstream_keepalive_pool_size",
    "utilization_above",
    "weight",
    "write_timeout",
];

/// Values near the edges of what the configuration accepts.
const INTERESTING_VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "0.5",
    "1.0000001",
    "1e309",
    "-0",
    "4294967296",
    "18446744073709551616",
    "0s",
    "1ms",
    "100ms",
    "10s",
    "1h",
    "1000000000y",
    "500000000000y",
    "99999999999999999999s",
    "soon",
    "127.0.0.1:8080",
    "127.0.0.1:9901",
    "0.0.0.0:8080",
    "[::1]:0",
    "10.0.0.1:80",
    "localhost:80",
    "api.example.com",
    "*.example.com",
    "*",
    "*.",
    ".example.com",
    "exa mple.com",
    "/",
    "/v1",
    "/v1/",
    "v1",
    "",
    " ",
    "GET",
    "get",
    "B@D",
    "latency",
    "capacity",
    "round_robin",
    "fastest",
    "ewma",
    "p99",
    "10.0.0.0/8",
    "::/0",
    "192.0.2.0/24",
    "us-east",
    "eu-west",
    "ap-south",
    "api",
    "web",
    "static",
    "writes",
    "x-tenant",
    "bad header",
    "X-Client-Region",
    "tcp",
    "http",
    "/healthz",
];

impl Mutation<'_> {
    /// The seed configuration with the edits applied, as YAML text; `None`
    /// when the result cannot be written out.
    pub fn apply(&self) -> Option<String> {
        let mut tree = SEED_TREES[usize::from(self.seed) % SEED_TREES.len()].clone();
        if self.drop_tls {
            drop_tls(&mut tree);
        }
        for edit in self.edits.iter().take(MAX_EDITS) {
            edit.apply(&mut tree);
        }
        serde_yaml_ng::to_string(&tree).ok()
    }
}

fn drop_tls(tree: &mut Value) {
    if let Some(Value::Sequence(listeners)) = tree.get_mut("listeners") {
        for listener in listeners.iter_mut().filter_map(Value::as_mapping_mut) {
            listener.remove("tls");
        }
    }
}

impl Edit<'_> {
    fn apply(&self, tree: &mut Value) {
        match self {
            Edit::Replace { at, with } => *node_mut(tree, at) = with.to_value(),
            Edit::Remove { at } => {
                let Some((last, parent)) = at.split_last() else {
                    return;
                };
                match node_mut(tree, parent) {
                    Value::Mapping(map) if !map.is_empty() => {
                        let key = map.keys().nth(usize::from(*last) % map.len()).cloned();
                        map.remove(key.expect("index within the mapping"));
                    }
                    Value::Sequence(items) if !items.is_empty() => {
                        items.remove(usize::from(*last) % items.len());
                    }
                    _ => {}
                }
            }
            Edit::Insert { at, key, value } => match node_mut(tree, at) {
                Value::Mapping(map) => {
                    map.insert(key.to_value(), value.to_value());
                }
                Value::Sequence(items) => items.push(value.to_value()),
                _ => {}
            },
            Edit::Copy { from, to } => {
                let mut edited = tree.clone();
                *node_mut(&mut edited, to) = node_mut(tree, from).clone();
                let (nodes, depth) = size(&edited);
                if nodes <= MAX_NODES && depth <= MAX_DEPTH {
                    *tree = edited;
                }
            }
        }
    }
}

/// The node `path` leads to (see [`TreePath`]).
fn node_mut<'t>(mut node: &'t mut Value, path: &[u8]) -> &'t mut Value {
    for &step in path {
        let step = usize::from(step);
        let has_children = match &*node {
            Value::Mapping(map) => !map.is_empty(),
            Value::Sequence(items) => !items.is_empty(),
            Value::Tagged(_) => true,
            _ => false,
        };
        if !has_children {
            break;
        }
        node = match node {
            Value::Mapping(map) => {
                let len = map.len();
                map.values_mut()
                    .nth(step % len)
                    .expect("index within the mapping")
            }
            Value::Sequence(items) => {
                let len = items.len();
                &mut items[step % len]
            }
            Value::Tagged(tagged) => &mut tagged.value,
            _ => unreachable!("only containers have children"),
        };
    }
    node
}

/// The number of nodes in a tree, and its depth.
fn size(node: &Value) -> (usize, usize) {
    let children: Vec<&Value> = match node {
        Value::Mapping(map) => map.iter().flat_map(|(key, value)| [key, value]).collect(),
        Value::Sequence(items) => items.iter().collect(),
        Value::Tagged(tagged) => vec![&tagged.value],
        _ => Vec::new(),
    };
    children
        .into_iter()
        .map(size)
        .fold((1, 1), |(nodes, depth), child| {
            (nodes + child.0, depth.max(child.1 + 1))
        })
}

impl NewKey<'_> {
    fn to_value(&self) -> Value {
        match self {
            NewKey::Known(index) => Value::from(KEYS[usize::from(*index) % KEYS.len()]),
            NewKey::Text(text) => Value::from(*text),
        }
    }
}

impl NewValue<'_> {
    fn to_value(&self) -> Value {
        match self {
            NewValue::Known(index) => {
                let text = INTERESTING_VALUES[usize::from(*index) % INTERESTING_VALUES.len()];
                // Read as YAML, so that "0" is a number and "1h" a string.
                serde_yaml_ng::from_str(text).unwrap_or_else(|_| Value::from(text))
            }
            NewValue::Text(text) => Value::from(*text),
            NewValue::Integer(number) => Value::from(*number),
            NewValue::Float(number) => Value::from(*number),
            NewValue::Bool(flag) => Value::Bool(*flag),
            NewValue::Null => Value::Null,
            NewValue::EmptyMapping => Value::Mapping(Mapping::new()),
            NewValue::EmptySequence => Value::Sequence(Vec::new()),
        }
    }
}

//! Configuration loading and validation: good files compile, bad files are
//! rejected with every problem and its exact YAML path.

use ballast::config::{
    load_file, load_str, AccessField, AccessFields, AccessOutput, BalanceMode, ConfigErrors,
    PinCarrier,
};
use ballast::tls::devcert::DevCerts;
use std::path::Path;
use std::time::Duration;

fn errors(yaml: &str) -> Vec<String> {
    errors_in(yaml, Path::new("."))
}

fn errors_in(yaml: &str, base: &Path) -> Vec<String> {
    match load_str(yaml, base) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(ConfigErrors(list)) => list.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    backends:
      - {addr: "10.0.0.1:80", region: us-east, capacity: 1000}
      - {addr: "10.0.0.2:80", region: eu-west, capacity: 300, canary: true, labels: {version: v2}}
      - {addr: "10.0.0.3:80", weight: 7}
      - {addr: "[::1]:80"}
routes:
  - {name: api, match: {host: api.example.com, path_prefix: /v1, methods: [get, POST], headers: {x-tenant: blue}}, pool: api}
  - {match: {}, pool: api}
"#;

#[test]
fn minimal_config_compiles_with_defaults() {
    let snap = load_str(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(snap.listeners.len(), 1);
    assert_eq!(snap.admin.address.to_string(), "127.0.0.1:9901");
    assert_eq!(snap.server.drain_timeout, Duration::from_secs(10));
    let pool = snap.pool_by_name("api").unwrap();
    assert_eq!(pool.policy.mode, BalanceMode::Latency);
    assert_eq!(pool.policy.min_share, 0.02);
    assert_eq!(pool.policy.retries.attempts, 2);
    let weights: Vec<u32> = pool.backends.iter().map(|b| b.weight).collect();
    assert_eq!(
        weights,
        vec![1000, 300, 7, 1],
        "weight defaults to capacity, then 1"
    );
    assert_eq!(pool.backends[0].id.to_string(), "api/10.0.0.1:80");
    assert_eq!(pool.backends[3].id.to_string(), "api/[::1]:80");
    assert!(pool.backends[1].canary.is_some());
    assert_eq!(pool.backends[1].labels["version"], "v2");
    assert_eq!(pool.timeouts.connect, Duration::from_secs(2));
    let routes = snap.routes.routes();
    assert_eq!(routes[0].name, "api");
    assert_eq!(routes[1].name, "route-1");
    assert_eq!(routes[0].methods.as_ref().unwrap().len(), 2);
}

#[test]
fn every_semantic_error_is_reported_with_its_path() {
    let yaml = r#"
listeners:
  - {address: "127.0.0.1:8080"}
  - {address: "localhost:8080"}
  - {address: "127.0.0.1:8080"}
admin: {address: "127.0.0.1:8080"}
server: {threads: 0, drain_timeout: soon}
pools:
  api:
    mode: fastest
    connect_timeout: 0s
    backends:
      - {addr: "10.0.0.1:80", capacity: 0}
      - {addr: "10.0.0.2:80", region: ""}
      - {addr: "10.0.0.1"}
      - {addr: "10.0.0.1:80"}
  empty:
    backends: []
  "bad name":
    backends: [{addr: "10.0.0.9:80"}]
  zero:
    backends: [{addr: "10.0.0.5:80", weight: 0}]
routes:
  - {name: a, match: {path_prefix: v1, methods: [GET, "B@D"], headers: {"bad header": x}}, pool: api}
  - {name: a, match: {host: "exa mple.com"}, pool: missing}
"#;
    assert_eq!(
        errors(yaml),
        vec![
            r#"listeners[1].address: invalid socket address "localhost:8080" (expected IP:port, e.g. "127.0.0.1:8080")"#,
            "listeners[2].address: 127.0.0.1:8080 overlaps listener address 127.0.0.1:8080",
            r#"server.threads: must be between 1 and 1024"#,
            r#"server.drain_timeout: invalid duration "soon" (expected e.g. "250ms", "2s", "1m")"#,
            r#"pools.api.mode: unknown mode "fastest" (supported: latency, capacity, round_robin, peak_ewma)"#,
            "pools.api.connect_timeout: must be greater than zero",
            "pools.api.backends[0].capacity: must be greater than zero",
            "pools.api.backends[1].region: must not be empty",
            r#"pools.api.backends[2].addr: invalid address "10.0.0.1" (expected IP:port or host:port, e.g. "127.0.0.1:8080" or "api.internal:8080")"#,
            "pools.api.backends[3].addr: duplicate backend 10.0.0.1:80 (also pools.api.backends[0])",
            r#"pools.bad name: invalid pool name "bad name" (use letters, digits, '-', '_', '.')"#,
            "pools.empty.backends: a pool needs at least one backend",
            "pools.zero.backends: every backend has weight 0; at least one must be positive",
            "routes[0].match.path_prefix: must start with '/', got \"v1\"",
            r#"routes[0].match.methods[1]: invalid HTTP method "B@D""#,
            r#"routes[0].match.headers.bad header: invalid header name "bad header""#,
            r#"routes[1].name: duplicate route name "a""#,
            r#"routes[1].pool: unknown pool "missing" (defined pools: api, bad name, empty, zero)"#,
            r#"routes[1].match.host: invalid host "exa mple.com" (expected a name like api.example.com or *.example.com, without port)"#,
            "admin.address: 127.0.0.1:8080 overlaps proxy listener 127.0.0.1:8080",
        ]
    );
}

#[test]
fn wildcard_addresses_overlap_every_address_on_their_port() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}, {address: "0.0.0.0:8080"}, {address: "[::]:8081"}, {address: "127.0.0.2:8081"}, {address: "127.0.0.2:8082"}]
admin: {address: "127.0.0.1:8081"}
pools: {p: {backends: [{addr: "10.0.0.1:80"}]}}
routes: [{pool: p}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "listeners[1].address: 0.0.0.0:8080 overlaps listener address 127.0.0.1:8080",
            "listeners[3].address: 127.0.0.2:8081 overlaps listener address [::]:8081",
            "admin.address: 127.0.0.1:8081 overlaps proxy listener [::]:8081",
        ]
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_path() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    backends:
      - {adress: "10.0.0.1:80"}
routes: [{pool: api}]
"#;
    // The typo is reported with its likely meaning, beside what it hides.
    assert_eq!(
        errors(yaml),
        [
            "pools.api.backends[0].adress: unknown field `adress`; did you mean `addr`?",
            "pools.api.backends[0].addr: missing (give addr: IP:port or host:port, or srv: an SRV name)"
        ]
    );

    let errs = errors("listeners: []\nroutes: []\npools: {}\nlisteners_extra: 1\n");
    assert!(
        errs[0].starts_with("listeners_extra: unknown field `listeners_extra`"),
        "{}",
        errs[0]
    );
}

#[test]
fn wrong_types_and_broken_yaml_name_the_place() {
    let errs = errors("listeners: [{address: \"127.0.0.1:1\"}]\npools:\n  api:\n    backends:\n      - {addr: \"10.0.0.1:80\", capacity: lots}\nroutes: [{pool: api}]\n");
    assert!(
        errs[0].starts_with(
            "pools.api.backends[0].capacity: invalid type: string \"lots\", expected u32"
        ),
        "{}",
        errs[0]
    );

    let errs = errors("listeners: [\n  {address: \"127.0.0.1:1\"\npools: {}\n");
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].contains("line"),
        "YAML syntax errors carry a line: {}",
        errs[0]
    );

    assert_eq!(errors(""), vec!["configuration is empty"]);
    assert_eq!(errors("  \n\t\n"), vec!["configuration is empty"]);
}

#[test]
fn missing_sections_are_reported_together() {
    assert_eq!(
        errors("admin: {address: \"127.0.0.1:9901\"}\n"),
        vec![
            "listeners: at least one listener is required",
            "pools: at least one pool is required",
            "routes: at least one route is required",
        ]
    );
}

/// Write a dev CA and leaf for `names` into `dir` as `<stem>.crt`/`<stem>.key`.
fn make_cert(dir: &Path, stem: &str, names: &[&str]) -> DevCerts {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let certs = DevCerts::generate(&names).unwrap();
    certs.write_leaf(dir, stem).unwrap();
    certs
}

fn tls_config(tls: &str) -> String {
    format!(
        "listeners:\n  - address: \"127.0.0.1:8443\"\n    tls: {tls}\npools:\n  p:\n    backends: [{{addr: \"127.0.0.1:1\"}}]\nroutes: [{{pool: p}}]\n"
    )
}

#[test]
fn tls_material_is_checked_before_use() {
    ballast::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    make_cert(base, "good", &["localhost"]);
    make_cert(base, "api", &["api.test", "*.apps.test"]);
    let other = make_cert(base, "other", &["other.test"]);
    std::fs::write(base.join("junk.crt"), "not a certificate\n").unwrap();
    std::fs::write(base.join("mismatch.key"), &other.leaf_key_pem).unwrap();

    let ok = tls_config(
        "{cert: good.crt, key: good.key, sni: [{server_names: [api.test, \"*.apps.test\"], cert: api.crt, key: api.key}]}",
    );
    let snap = load_str(&ok, base).unwrap();
    let tls = snap.listeners[0].tls.as_ref().unwrap();
    assert!(tls.http2);
    let names: Vec<&str> = tls
        .sni
        .iter()
        .flat_map(|c| c.server_names.iter().map(String::as_str))
        .collect();
    assert_eq!(names, vec!["api.test", "*.apps.test"]);

    let bad = tls_config(
        "{cert: missing.crt, key: good.key, http2: false, sni: [{server_names: [api.test], cert: junk.crt, key: good.key}, {server_names: [nope.test, api.test, \"bad name\"], cert: api.crt, key: api.key}, {server_names: [], cert: good.crt, key: mismatch.key}]}",
    );
    let base_shown = base.display();
    assert_eq!(
        errors_in(&bad, base),
        vec![
            format!("listeners[0].tls.cert: cannot read certificate file {base_shown}/missing.crt: No such file or directory (os error 2)"),
            format!("listeners[0].tls.sni[0].cert: {base_shown}/junk.crt contains no PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")"),
            "listeners[0].tls.sni[1].server_names[0]: certificate api.crt is not valid for \"nope.test\"".to_string(),
            "listeners[0].tls.sni[1].server_names[2]: invalid server name \"bad name\"".to_string(),
            format!("listeners[0].tls.sni[2].cert: private key {base_shown}/mismatch.key does not match certificate {base_shown}/good.crt"),
        ]
    );
}

#[test]
fn shipped_configs_compile() {
    // The shipped files point at ../certs (relative to conf/); recreate that
    // layout with fresh dev certificates.
    ballast::tls::install_crypto_provider();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("certs")).unwrap();
    std::fs::create_dir_all(root.path().join("conf/examples")).unwrap();
    std::fs::create_dir_all(root.path().join("docker/ballast")).unwrap();
    make_cert(&root.path().join("certs"), "dev", &["localhost"]);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = vec![
        repo.join("conf/ballast.yaml"),
        repo.join("docker/ballast/ballast.yaml"),
    ];
    for entry in std::fs::read_dir(repo.join("conf/examples")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(files.len() >= 3);
    for file in files {
        let relative = file.strip_prefix(repo).unwrap();
        let copy = root.path().join(relative);
        std::fs::copy(&file, &copy).unwrap();
        if let Err(e) = load_file(&copy) {
            panic!("{} does not compile: {e}", relative.display());
        }
    }
}

#[test]
fn the_kubernetes_configmap_carries_a_valid_configuration() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(repo.join("docker/k8s/configmap.yaml")).unwrap();
    let configmap: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert_eq!(configmap["kind"].as_str(), Some("ConfigMap"));
    let embedded = configmap["data"]["ballast.yaml"]
        .as_str()
        .expect("data.ballast.yaml");
    if let Err(e) = load_str(embedded, Path::new("/etc/ballast")) {
        panic!("docker/k8s/configmap.yaml: data.ballast.yaml does not compile: {e}");
    }
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let err = load_file(Path::new("/nonexistent/ballast.yaml")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 configuration error:\n  cannot read /nonexistent/ballast.yaml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn retry_and_failure_rate_policies_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    outlier: {failure_rate: {threshold: 0.01, min_requests: 0}}
    retries: {on: [reset, 404, gateway_error, 503, reset], budget: {percent: 150}}
    backends: [{addr: "10.0.0.1:80"}]
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.api.retries.on[1]: status 404 is not a 5xx status (500 to 599)",
            r#"pools.api.retries.on[2]: unknown condition "gateway_error" (supported: connect_failure, reset, timeout, grpc_unavailable, or a status 500..599)"#,
            "pools.api.retries.on[4]: listed twice",
            "pools.api.retries.budget.percent: must be between 0 and 100, got 150",
            "pools.api.outlier.failure_rate.min_requests: must be at least 1",
            "pools.api.outlier.failure_rate.threshold: 0.01 is out of range (allowed 0.05 to 1)",
        ]
    );
    let defaults = load_str(
        "listeners: [{address: \"127.0.0.1:8080\"}]\npools: {api: {backends: [{addr: \"10.0.0.1:80\"}]}}\nroutes: [{pool: api}]\n",
        Path::new("."),
    )
    .unwrap();
    let policy = &defaults.pools[0].policy;
    assert_eq!(policy.retries.on, ballast::config::RetryOn::default());
    assert!(policy.retries.on.connect_failure && policy.retries.on.status(503));
    assert!(!policy.retries.on.status(500));
    assert_eq!(policy.retries.budget.percent, 20.0);
    assert_eq!(policy.retries.budget.min_concurrency, 3);
    let rate = policy.outlier.failure_rate.expect("on by default");
    assert_eq!((rate.threshold, rate.min_requests), (0.5, 20));
    let off = load_str(
        "listeners: [{address: \"127.0.0.1:8080\"}]\npools: {api: {outlier: {failure_rate: false}, retries: {on: [connect_failure, 500]}, backends: [{addr: \"10.0.0.1:80\"}]}}\nroutes: [{pool: api}]\n",
        Path::new("."),
    )
    .unwrap();
    let policy = &off.pools[0].policy;
    assert!(policy.outlier.failure_rate.is_none());
    assert!(!policy.retries.on.reset && !policy.retries.on.status(503));
    assert!(policy.retries.on.status(500));
}

#[test]
fn engine_policy_is_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    mode: capacity
    min_share: 0.6
    max_share: 1.5
    smoothing: 0
    recompute_interval: 20ms
    slow_start: forever
    server_load: {header: "bad header", stale_after: 0s}
    outlier: {consecutive_failures: 0, base_ejection: 1m, max_ejection: 10s, max_ejected: 2}
    health: {check: udp, interval: 0s, healthy_after: 0}
    retries: {attempts: 9}
    backends: [{addr: "10.0.0.1:80"}]
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.api.min_share: 0.6 is out of range (allowed 0 to 0.5)",
            "pools.api.max_share: 1.5 is out of range (allowed 0.01 to 1)",
            "pools.api.recompute_interval: must be between 50ms and 10s",
            "pools.api.retries.attempts: must be between 1 and 5",
            "pools.api.outlier.consecutive_failures: must be at least 1",
            "pools.api.outlier.max_ejection: must not be shorter than base_ejection",
            "pools.api.smoothing: 0 is out of range (allowed 0.01 to 1)",
            r#"pools.api.slow_start: invalid duration "forever" (expected e.g. "250ms", "2s", "1m")"#,
            r#"pools.api.server_load.header: invalid header name "bad header""#,
            "pools.api.server_load.stale_after: must be greater than zero",
            "pools.api.outlier.max_ejected: 2 is out of range (allowed 0 to 1)",
            r#"pools.api.health.check: unknown check "udp" (supported: http, tcp)"#,
            "pools.api.health.healthy_after: must be at least 1",
            "pools.api.health.interval: must be greater than zero",
        ]
    );
    let ok = load_str(
        "listeners: [{address: \"127.0.0.1:8080\"}]\npools: {api: {mode: capacity, target_latency: 50ms, health: {check: tcp}, backends: [{addr: \"10.0.0.1:80\"}]}}\nroutes: [{pool: api}]\n",
        Path::new("."),
    )
    .unwrap();
    let policy = &ok.pools[0].policy;
    assert_eq!(policy.mode, BalanceMode::Capacity);
    assert_eq!(policy.target_latency, Duration::from_millis(50));
    assert_eq!(
        policy.health.as_ref().unwrap().kind,
        ballast::config::HealthCheckKind::Tcp
    );
}

#[test]
fn the_shipped_json_schema_is_current() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let shipped = std::fs::read_to_string(repo.join("conf/ballast.schema.json")).unwrap();
    assert!(
        shipped == ballast::config::json_schema(),
        "conf/ballast.schema.json is out of date: run `ballast schema > conf/ballast.schema.json`"
    );
    let schema: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown keys are errors in the schema too"
    );
    assert_eq!(
        schema["$defs"]["RawBackend"]["oneOf"],
        serde_json::json!([{"required": ["addr"]}, {"required": ["srv"]}]),
        "a backend gives addr or srv"
    );
}

#[test]
fn regions_geo_and_fences_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
regions:
  us-east: {fallback: [us-west, us-east, mars]}
  us-west: {fallback: [empty, empty]}
  eu-west: {}
  empty: {}
  "bad region": {}
geo:
  client_region:
    - {header: X-Client-Region}
    - {header: X-Region, trusted_peers: ["10.0.0.0/33"]}
    - {cidr: {"10.1.0.0/16": eu-west, "nonsense": us-east, "10.2.0.0/16": venus}}
    - {default: us-east}
    - {default: eu-west}
    - {cidr: {}, default: us-east}
  residency:
    - {clients: [eu-west], allowed: [eu-west, empty]}
    - {clients: [eu-west, pluto], allowed: []}
pools:
  api:
    backends:
      - {addr: "10.0.0.1:80", region: us-east}
      - {addr: "10.0.0.2:80", region: us-west}
      - {addr: "10.0.0.3:80", region: eu-west}
      - {addr: "10.0.0.4:80", region: saturn}
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            r#"regions.bad region: invalid region name "bad region" (use letters, digits, '-', '_', '.')"#,
            "regions.us-east.fallback[1]: a region cannot fall back to itself",
            r#"regions.us-east.fallback[2]: unknown region "mars""#,
            r#"regions.us-west.fallback[1]: "empty" is listed twice"#,
            r#"pools.api.backends[3].region: unknown region "saturn" (declare it under regions)"#,
            "geo.client_region[0].trusted_peers: required with `header`: only trusted peers may name a client's region",
            r#"geo.client_region[1].trusted_peers[0]: invalid CIDR "10.0.0.0/33""#,
            r#"geo.client_region[2].cidr.10.2.0.0/16: unknown region "venus""#,
            r#"geo.client_region[2].cidr.nonsense: invalid CIDR "nonsense""#,
            "geo.client_region[4]: unreachable: it comes after the `default` rule",
            "geo.client_region[5]: unreachable: it comes after the `default` rule",
            "geo.client_region[5]: each rule takes exactly one of `header`, `cidr`, `default`",
            r#"regions.us-west.fallback[0]: region "empty" has no backends in any pool: falling back to it is impossible"#,
            r#"regions.us-west.fallback[1]: region "empty" has no backends in any pool: falling back to it is impossible"#,
            r#"geo.residency[0].allowed[1]: region "empty" has no backends in any pool"#,
            "geo.residency[1].allowed: must name at least one region",
            r#"geo.residency[1].clients[0]: "eu-west" is fenced twice"#,
            r#"geo.residency[1].clients[1]: unknown region "pluto""#,
        ]
    );
    assert_eq!(
        errors("listeners: [{address: \"127.0.0.1:8080\"}]\ngeo: {client_region: [{default: x}]}\npools: {p: {backends: [{addr: \"10.0.0.1:80\"}]}}\nroutes: [{pool: p}]\n"),
        vec!["geo: geo rules need regions: declare them under `regions`"]
    );
}

#[test]
fn spillover_region_caps_and_sticky_canaries_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  one_region:
    region_max_share: 0.02
    spillover: {latency_signal: p95, step: 0, max: 2, hysteresis: 1, hold: soon}
    canary_sticky: {header: x-user, cookie: uid}
    backends: [{addr: "10.0.0.1:80", region: a}]
  no_canary:
    spillover: {utilization_above: 11}
    canary_sticky: {cookie: "bad;name"}
    backends: [{addr: "10.0.0.2:80", region: a}, {addr: "10.0.0.3:80", region: b}]
routes: [{pool: one_region}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.no_canary.spillover.utilization_above: 11 is out of range (allowed 0.01 to 10)",
            r#"pools.no_canary.canary_sticky.cookie: invalid cookie name "bad;name""#,
            "pools.no_canary.canary_sticky: the pool has no canary backend",
            "pools.one_region.region_max_share: 0.02 is out of range (allowed 0.05 to 1)",
            r#"pools.one_region.spillover.latency_signal: unknown latency signal "p95" (supported: ewma, p99)"#,
            "pools.one_region.spillover: needs latency_above or utilization_above (what counts as pressure)",
            "pools.one_region.spillover.step: 0 is out of range (allowed 0.01 to 1)",
            "pools.one_region.spillover.max: 2 is out of range (allowed 0.01 to 1)",
            "pools.one_region.spillover.hysteresis: 1 is out of range (allowed 0.1 to 0.99)",
            r#"pools.one_region.spillover.hold: invalid duration "soon" (expected e.g. "250ms", "2s", "1m")"#,
            "pools.one_region.canary_sticky: set exactly one of header or cookie",
            "pools.one_region: spillover and region_max_share need backends in at least two regions",
            "pools.one_region.canary_sticky: the pool has no canary backend",
        ]
    );
    let ok = load_str(
        r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    region_max_share: 0.7
    spillover: {latency_above: 200ms, latency_signal: p99, utilization_above: 0.85}
    canary_sticky: {cookie: uid}
    backends: [{addr: "10.0.0.1:80", region: a}, {addr: "10.0.0.2:80", region: b, canary: true}]
routes: [{pool: api}]
"#,
        Path::new("."),
    )
    .unwrap();
    let policy = &ok.pools[0].policy;
    assert_eq!(policy.region_max_share, 0.7);
    let spillover = policy.spillover.as_ref().unwrap();
    assert_eq!(spillover.latency_above, Some(Duration::from_millis(200)));
    assert_eq!(
        spillover.latency_signal,
        ballast::config::LatencySignal::P99
    );
    assert_eq!(spillover.utilization_above, Some(0.85));
    assert_eq!(
        (spillover.step, spillover.max, spillover.hysteresis),
        (0.05, 0.9, 0.8),
        "defaults"
    );
    assert_eq!(spillover.hold, Duration::from_secs(5));
    assert_eq!(
        policy.canary_sticky,
        Some(ballast::config::StickyKey::Cookie("uid".into()))
    );
}

#[test]
fn priority_tiers_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    overprovisioning_factor: 0.9
    prewarm_share: 0.5
    regions: {us-west: {priority: 1}, mars: {priority: 2}}
    backends: [{addr: "10.0.0.1:80", region: us-east}, {addr: "10.0.0.2:80", region: us-west}]
  rr:
    mode: round_robin
    backends: [{addr: "10.0.0.3:80"}, {addr: "10.0.0.4:80", priority: 1}]
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.api.overprovisioning_factor: 0.9 is out of range (allowed 1 to 100)",
            "pools.api.prewarm_share: 0.5 is out of range (allowed 0 to 0.2)",
            r#"pools.api.regions.mars: no backend of the pool is in region "mars""#,
            "pools.rr.mode: priority tiers need an adaptive mode (latency or capacity); round_robin ignores them",
        ]
    );
    let ok = load_str(
        r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    prewarm_share: 0.01
    regions: {us-west: {priority: 2}}
    backends:
      - {addr: "10.0.0.1:80", region: us-east}
      - {addr: "10.0.0.2:80", region: us-west}
      - {addr: "10.0.0.3:80", region: us-west, priority: 1}
routes: [{pool: api}]
"#,
        Path::new("."),
    )
    .unwrap();
    let pool = &ok.pools[0];
    assert_eq!(pool.policy.overprovisioning_factor, 1.4, "default");
    assert_eq!(pool.policy.prewarm_share, 0.01);
    let priorities: Vec<u32> = pool.backends.iter().map(|b| b.priority).collect();
    assert_eq!(priorities, vec![0, 2, 1], "a backend's own priority wins");
    assert_eq!(pool.tiers, vec![0, 1, 2]);
}

#[test]
fn read_write_splits_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    write:
      region: mars
      methods: [POST, "BAD METHOD"]
      path_prefixes: [rpc]
      header: "bad header"
      read_your_writes: {ttl: 5ms, cookie: "bad;cookie"}
    backends: [{addr: "10.0.0.1:80", region: us-east}, {addr: "10.0.0.2:80", region: us-west}]
  both:
    write: {region: us-east, methods: [], read_your_writes: {ttl: 2h, cookie: a, header: X-Pin}}
    backends: [{addr: "10.0.0.3:80", region: us-east}]
  unregioned:
    write: {region: us-east}
    backends: [{addr: "10.0.0.4:80"}]
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.api.write.region: no backend of the pool is in region \"mars\" (the pool's regions: us-east, us-west)",
            "pools.api.write.methods[1]: invalid HTTP method \"BAD METHOD\"",
            "pools.api.write.path_prefixes[0]: must start with '/', got \"rpc\"",
            "pools.api.write.header: invalid header name \"bad header\"",
            "pools.api.write.read_your_writes.ttl: must be between 10ms and 1h",
            "pools.api.write.read_your_writes.cookie: invalid cookie name \"bad;cookie\"",
            "pools.both.write.methods: must not be empty (omit it for POST, PUT, PATCH, DELETE)",
            "pools.both.write.read_your_writes.ttl: must be between 10ms and 1h",
            "pools.both.write.read_your_writes: set at most one of cookie or header",
            "pools.unregioned.write.region: no backend of the pool is in region \"us-east\" (the pool's regions: none)",
        ]
    );
    let ok = load_str(
        r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    write: {region: us-east, read_your_writes: {}}
    backends: [{addr: "10.0.0.1:80", region: us-east}, {addr: "10.0.0.2:80", region: us-west}]
  hdr:
    write: {region: us-east, methods: [post], path_prefixes: [/rpc], header: X-Write, read_your_writes: {ttl: 300ms, header: X-Pin}}
    backends: [{addr: "10.0.0.3:80", region: us-east}]
  plain:
    backends: [{addr: "10.0.0.4:80"}]
routes: [{pool: api}]
"#,
        Path::new("."),
    )
    .unwrap();
    let api = ok.pool_by_name("api").unwrap().write.as_ref().unwrap();
    assert_eq!(api.region, "us-east");
    assert_eq!(api.plan.order, vec!["us-east".to_string()]);
    assert!(api.plan.fenced, "writes never leave the write region");
    let methods: Vec<&str> = api.methods.iter().map(|m| m.as_str()).collect();
    assert_eq!(methods, vec!["POST", "PUT", "PATCH", "DELETE"], "default");
    let ryw = api.read_your_writes.as_ref().unwrap();
    assert_eq!(ryw.ttl, Duration::from_secs(5), "default ttl");
    assert_eq!(
        ryw.carrier,
        PinCarrier::Cookie("ballast_ryw".into()),
        "default cookie"
    );
    let hdr = ok.pool_by_name("hdr").unwrap().write.as_ref().unwrap();
    assert_eq!(hdr.methods, vec![http::Method::POST]);
    assert_eq!(hdr.path_prefixes, vec!["/rpc".to_string()]);
    assert_eq!(hdr.header.as_ref().unwrap().as_str(), "x-write");
    let ryw = hdr.read_your_writes.as_ref().unwrap();
    assert_eq!(ryw.ttl, Duration::from_millis(300));
    assert_eq!(
        ryw.carrier,
        PinCarrier::Header(http::HeaderName::from_static("x-pin"))
    );
    assert!(ok.pool_by_name("plain").unwrap().write.is_none());
    let summary = ok.summary();
    assert!(
        summary.contains("    writes (POST,PUT,PATCH,DELETE) -> region us-east; reads pinned there for 5s after a write (cookie ballast_ryw)\n"),
        "{summary}"
    );
    assert!(
        summary.contains("    writes (POST, under /rpc, with header x-write) -> region us-east; reads pinned there for 300ms after a write (header x-pin)\n"),
        "{summary}"
    );
}

#[test]
fn request_limits_and_a_reachable_admin_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
admin: {address: "0.0.0.0:9901"}
server: {limits: {max_uri_bytes: 10, max_headers: 1000, max_header_bytes: 4096}}
pools: {api: {backends: [{addr: "10.0.0.1:80"}]}}
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "admin.address: 0.0.0.0:9901 is reachable from other hosts: set admin.token_env so the API (which can drain and pin backends) requires a token",
            "server.limits.max_uri_bytes: 10 is out of range (allowed 256 to 1048576)",
            "server.limits.max_headers: 1000 is out of range (allowed 8 to 256)",
        ]
    );
    let ok = load_str(
        &yaml
            .replace("0.0.0.0:9901\"}", "0.0.0.0:9901\", token_env: ADMIN_TOKEN}")
            .replace(
                "max_uri_bytes: 10, max_headers: 1000",
                "max_uri_bytes: 4096, max_headers: 50",
            ),
        Path::new("."),
    )
    .unwrap();
    let limits = ok.server.limits;
    assert_eq!(
        (
            limits.max_uri_bytes,
            limits.max_headers,
            limits.max_header_bytes
        ),
        (4096, 50, 4096)
    );
    let defaults = load_str(MINIMAL, Path::new(".")).unwrap().server.limits;
    assert_eq!(
        (
            defaults.max_uri_bytes,
            defaults.max_headers,
            defaults.max_header_bytes
        ),
        (8192, 100, 32768)
    );
}

/// Regression (found by the checks of the `config` fuzz target, fuzz/): a
/// duration too long for the proxy's clocks was accepted, and the proxy
/// panicked on it later, e.g. adding `drain_timeout` to the time shutdown
/// began, or a health check's `interval` to the time of its last round.
#[test]
fn durations_longer_than_365_days_are_rejected() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
server: {drain_timeout: 500000000000y}
pools:
  api:
    outlier: {max_ejection: 365d}
    health: {interval: 1000000000y, timeout: 366d}
    backends: [{addr: "10.0.0.1:80", canary: {cooldown: 99999999h}}]
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "server.drain_timeout: must be at most 365d",
            "pools.api.health.interval: must be at most 365d",
            "pools.api.health.timeout: must be at most 365d",
            "pools.api.backends[0].canary.cooldown: must be at most 365d",
        ]
    );
    let ok = load_str(
        &yaml
            .replace("500000000000y", "365d")
            .replace("{interval: 1000000000y, timeout: 366d}", "{interval: 1h}")
            .replace("99999999h", "8760h"),
        Path::new("."),
    )
    .unwrap();
    assert_eq!(ok.server.drain_timeout, Duration::from_secs(365 * 86_400));
    assert_eq!(
        ok.pools[0].policy.outlier.max_ejection,
        Duration::from_secs(365 * 86_400)
    );
}

/// Regression (found by the checks of the `config` fuzz target, fuzz/): a
/// health check host that is not a valid header value was accepted, and the
/// health checker panicked building its request.
#[test]
fn a_health_check_host_must_be_a_header_value() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    health: {host: "api\ninternal"}
    backends: [{addr: "10.0.0.1:80"}]
routes: [{pool: api}]
"#;
    assert_eq!(
        errors(yaml),
        vec![r#"pools.api.health.host: invalid host "api\ninternal" (not a valid header value)"#]
    );
    let ok = load_str(
        &yaml.replace(r#""api\ninternal""#, "api.internal:8080"),
        Path::new("."),
    )
    .unwrap();
    assert_eq!(
        ok.pools[0].policy.health.as_ref().unwrap().kind,
        ballast::config::HealthCheckKind::Http {
            path: "/".into(),
            host: Some("api.internal:8080".into()),
        }
    );
}

fn with_pool_settings(settings: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\npools:\n  api:\n{settings}    backends: [{{addr: \"10.0.0.1:80\"}}]\nroutes: [{{pool: api}}]\n"
    )
}

#[test]
fn load_poll_has_defaults_and_bad_settings_name_their_path() {
    let snap = load_str(&with_pool_settings("    load_poll: {}\n"), Path::new(".")).unwrap();
    let poll = snap.pools[0].policy.load_poll.clone().unwrap();
    assert_eq!(poll.path, "/load");
    assert_eq!(poll.interval, Duration::from_secs(2));
    assert_eq!(poll.timeout, Duration::from_millis(500));
    assert_eq!(poll.quiet_below, 1.0);
    assert_eq!(poll.host, None);
    let off = load_str(&with_pool_settings(""), Path::new(".")).unwrap();
    assert!(off.pools[0].policy.load_poll.is_none());

    assert_eq!(
        errors(&with_pool_settings(
            "    load_poll: {path: load, host: \"a\\nb\", interval: 50ms, quiet_below: -1}\n"
        )),
        vec![
            r#"pools.api.load_poll.path: invalid path "load" (must start with '/')"#,
            r#"pools.api.load_poll.host: invalid host "a\nb" (not a valid header value)"#,
            "pools.api.load_poll.interval: must be between 100ms and 3600s",
            "pools.api.load_poll.quiet_below: -1 must be a rate in requests per second, above 0 and at most 1000000",
        ]
    );
    assert_eq!(
        errors(&with_pool_settings(
            "    load_poll: {interval: 5s, timeout: 6s}\n"
        )),
        vec![
            "pools.api.load_poll.interval: 5s must be shorter than server_load.stale_after (3s), or every poll would be stale before the next one",
            "pools.api.load_poll.timeout: 6s is longer than the interval 5s",
        ]
    );
    assert_eq!(
        errors(&with_pool_settings(
            "    load_poll: {interval: 1s, every: 2s}\n"
        ))
        .len(),
        1,
        "unknown keys are rejected"
    );
}

fn regional_pool(settings: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\npools:\n  api:\n{settings}    backends: [{{addr: \"10.0.0.1:80\", region: eu}}, {{addr: \"10.0.0.2:80\", region: us}}]\nroutes: [{{pool: api}}]\n"
    )
}

#[test]
fn schedules_compile_and_bad_ones_name_their_path() {
    let snap = load_str(
        &regional_pool(
            r#"    schedules:
      - {name: business-hours, regions: {eu: 2.0, us: 0.5}, days: [mon-fri], from: "08:00", to: "18:00", utc_offset: "+01:00"}
      - {name: black-friday, dates: {from: 2026-11-27, to: 2026-11-30}, regions: {us: 3}}
      - {name: nights, regions: {eu: 0.5}, days: [sat, sun], from: "22:00", to: "24:00", utc_offset: "-05:30"}
"#,
        ),
        Path::new("."),
    )
    .unwrap();
    let schedules = &snap.pools[0].policy.schedules;
    assert_eq!(schedules.len(), 3);
    assert_eq!(schedules[0].name, "business-hours");
    assert_eq!(schedules[0].multipliers["eu"], 2.0);
    assert_eq!(
        schedules[0].days,
        Some([true, true, true, true, true, false, false])
    );
    assert_eq!(schedules[0].window, Some((8 * 60, 18 * 60)));
    assert_eq!(schedules[0].utc_offset_s, 3600);
    assert_eq!(schedules[1].dates, Some((20_784, 20_787)));
    assert_eq!(schedules[1].days, None);
    assert_eq!(schedules[2].window, Some((22 * 60, 0)));
    assert_eq!(schedules[2].utc_offset_s, -(5 * 3600 + 30 * 60));

    assert_eq!(
        errors(&regional_pool(
            r#"    schedules:
      - {name: "bad name", regions: {asia: 2, eu: 0}, days: [monday, fri-mon], from: "8:00", to: "25:00", utc_offset: "01:00"}
      - {name: same, regions: {eu: 2}, from: "09:00", to: "09:00"}
      - {name: same, regions: {eu: 2}, from: "09:00"}
      - {name: dates, regions: {}, dates: {from: 2026-02-30, to: 2026-1-1}}
      - {name: backwards, regions: {us: 2}, dates: {from: 2026-12-01, to: 2026-11-30}, utc_offset: "+15:00"}
      - {name: always, regions: {us: 2}}
"#,
        )),
        vec![
            r#"pools.api.schedules[0].name: invalid name "bad name" (use letters, digits, '-', '_', '.')"#,
            r#"pools.api.schedules[0].regions.asia: no backend of the pool is in region "asia""#,
            "pools.api.schedules[0].regions.eu: multiplier 0 must be above 0 and at most 100",
            r#"pools.api.schedules[0].days[0]: invalid day "monday" (mon, tue, wed, thu, fri, sat, sun, or a range such as mon-fri)"#,
            r#"pools.api.schedules[0].days[1]: invalid day "fri-mon" (mon, tue, wed, thu, fri, sat, sun, or a range such as mon-fri)"#,
            r#"pools.api.schedules[0].from: invalid time "8:00" (expected HH:MM, 00:00 to 23:59)"#,
            r#"pools.api.schedules[0].to: invalid time "25:00" (expected HH:MM, 00:00 to 23:59 or 24:00)"#,
            r#"pools.api.schedules[0].utc_offset: invalid UTC offset "01:00" (expected +HH:MM or -HH:MM, at most 14:00)"#,
            r#"pools.api.schedules[1].to: "09:00" is the same time as from: an empty (or full-day) window; leave both out to apply all day"#,
            r#"pools.api.schedules[2].name: duplicate schedule name "same""#,
            "pools.api.schedules[2]: from and to go together",
            "pools.api.schedules[3].regions: name at least one region and its multiplier",
            r#"pools.api.schedules[3].dates.from: invalid date "2026-02-30" (expected YYYY-MM-DD)"#,
            r#"pools.api.schedules[3].dates.to: invalid date "2026-1-1" (expected YYYY-MM-DD)"#,
            "pools.api.schedules[4].dates.to: 2026-11-30 is before from 2026-12-01",
            r#"pools.api.schedules[4].utc_offset: invalid UTC offset "+15:00" (expected +HH:MM or -HH:MM, at most 14:00)"#,
            "pools.api.schedules[5]: needs days, from/to or dates (when it applies)",
        ]
    );
    assert_eq!(
        errors(&regional_pool(
            "    mode: round_robin\n    schedules: [{name: x, regions: {eu: 2}, days: [mon]}]\n"
        )),
        vec!["pools.api.schedules: schedules need an adaptive mode (latency or capacity); round_robin ignores weights"]
    );
}

#[test]
fn shadow_policies_are_validated_like_the_pools_own() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    shadow:
      mode: fastest
      min_share: 0.6
      max_share: 0.3
      smoothing: 0
      target_latency: soon
      prewarm_share: 0.5
      sample: 0
    backends: [{addr: "10.0.0.1:80"}, {addr: "10.0.0.2:80", priority: 1}]
  web:
    min_share: 0.3
    shadow: {max_share: 0.2, mode: round_robin, region_max_share: 0.5}
    backends: [{addr: "10.0.0.3:80"}, {addr: "10.0.0.4:80", priority: 1}]
routes: [{pool: api}, {pool: web}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            r#"pools.api.shadow.mode: unknown mode "fastest" (supported: latency, capacity, round_robin, peak_ewma)"#,
            r#"pools.api.shadow.target_latency: invalid duration "soon" (expected e.g. "250ms", "2s", "1m")"#,
            "pools.api.shadow.min_share: 0.6 is out of range (allowed 0 to 0.5)",
            "pools.api.shadow.smoothing: 0 is out of range (allowed 0.01 to 1)",
            "pools.api.shadow.prewarm_share: 0.5 is out of range (allowed 0 to 0.2)",
            "pools.api.shadow.sample: 0 is out of range (allowed 0.001 to 1)",
            "pools.web.shadow.min_share: 0.3 is above max_share 0.2",
            "pools.web.shadow.mode: priority tiers need an adaptive mode (latency or capacity); round_robin ignores them",
            "pools.web.shadow.region_max_share: region_max_share needs backends in at least two regions",
        ]
    );
    let errs = errors(
        "listeners: [{address: \"127.0.0.1:8080\"}]\npools: {api: {shadow: {mode: capacity, weight: 2}, backends: [{addr: \"10.0.0.1:80\"}]}}\nroutes: [{pool: api}]\n",
    );
    assert!(
        errs[0].starts_with("pools.api.shadow.weight: unknown field `weight`"),
        "{errs:?}"
    );

    let ok = load_str(
        r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api:
    mode: latency
    smoothing: 0.5
    min_share: 0.05
    shadow: {mode: capacity, target_latency: 50ms, sample: 0.1}
    backends: [{addr: "10.0.0.1:80"}, {addr: "10.0.0.2:80"}]
  plain:
    backends: [{addr: "10.0.0.3:80"}]
routes: [{pool: api}, {pool: plain}]
"#,
        Path::new("."),
    )
    .unwrap();
    let shadow = ok.pools[0].shadow.as_ref().expect("configured");
    assert_eq!(shadow.policy.mode, BalanceMode::Capacity);
    assert_eq!(shadow.policy.target_latency, Duration::from_millis(50));
    assert_eq!(
        shadow.policy.smoothing, 0.5,
        "the pool's, not set by the shadow"
    );
    assert_eq!(shadow.policy.min_share, 0.05);
    assert_eq!(shadow.sample, 0.1);
    assert!(!shadow.policy.same_weight_parameters(&ok.pools[0].policy));
    assert!(ok.pools[1].shadow.is_none());
    let summary = ok.summary();
    assert!(
        summary.contains("api (latency, 2 backends, shadow capacity sample 0.1)")
            && summary.contains("plain (latency, 1 backends)\n"),
        "{summary}"
    );
}

#[test]
fn consistent_hashing_is_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  both_keys:
    consistent_hash: {key: {header: x-session, cookie: sid}, vnodes: 0, max_key_moves: 2}
    backends: [{addr: "10.0.0.1:80"}]
  no_key:
    consistent_hash: {key: {}}
    backends: [{addr: "10.0.0.2:80"}]
  segment_zero:
    consistent_hash: {key: {path_segment: 0}, vnodes: 5000}
    backends: [{addr: "10.0.0.3:80"}]
  with_canary_sticky:
    consistent_hash: {key: {cookie: "bad;name"}}
    canary_sticky: {header: x-user}
    backends: [{addr: "10.0.0.4:80"}, {addr: "10.0.0.5:80", canary: true}]
routes: [{pool: both_keys}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.both_keys.consistent_hash.key: set exactly one of header, cookie or path_segment",
            "pools.no_key.consistent_hash.key: set exactly one of header, cookie or path_segment",
            "pools.segment_zero.consistent_hash.key.path_segment: path segments count from 1",
            r#"pools.with_canary_sticky.consistent_hash.key.cookie: invalid cookie name "bad;name""#,
            "pools.with_canary_sticky.consistent_hash: cannot be combined with canary_sticky (the ring already gives a canary its share of keys)",
        ]
    );
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  p:
    consistent_hash: {key: {header: x-session}, vnodes: 0, max_key_moves: 2}
    backends: [{addr: "10.0.0.1:80"}]
routes: [{pool: p}]
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "pools.p.consistent_hash.vnodes: 0 is out of range 1..=1000",
            "pools.p.consistent_hash.max_key_moves: 2 is out of range (allowed 0.001 to 1)",
        ]
    );
    let ok = load_str(
        r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  by_segment:
    consistent_hash: {key: {path_segment: 2}}
    backends: [{addr: "10.0.0.1:80"}]
  by_header:
    consistent_hash: {key: {header: X-Session}, vnodes: 40, max_key_moves: 0.02}
    backends: [{addr: "10.0.0.2:80"}]
routes: [{pool: by_segment}, {pool: by_header}]
"#,
        Path::new("."),
    )
    .unwrap();
    let by_header = ok.pools[0].policy.consistent_hash.as_ref().unwrap();
    assert_eq!(
        by_header.key,
        ballast::config::StickyKey::Header(http::HeaderName::from_static("x-session"))
    );
    assert_eq!((by_header.vnodes, by_header.max_key_moves), (40, 0.02));
    let by_segment = ok.pools[1].policy.consistent_hash.as_ref().unwrap();
    assert_eq!(by_segment.key, ballast::config::StickyKey::PathSegment(2));
    assert_eq!(
        (by_segment.vnodes, by_segment.max_key_moves),
        (100, 0.05),
        "defaults"
    );
}

#[test]
fn event_budgets_are_validated() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  sized: {backends: [{addr: "10.0.0.1:80", capacity: 50}]}
  unsized: {backends: [{addr: "10.0.0.2:80", capacity: 50}, {addr: "10.0.0.3:80"}]}
routes:
  - {name: a, pool: sized, budget: {region_share: 1.5, over: queue, retry_after: 1500ms}}
  - {name: b, pool: unsized, budget: {region_share: 0.5}}
  - {name: c, pool: sized, budget: {region_share: 0.5, over: spill, retry_after: 2h}}
"#;
    assert_eq!(
        errors(yaml),
        vec![
            "routes[0].budget.region_share: 1.5 is out of range (allowed 0.01 to 1)",
            r#"routes[0].budget.over: unknown action "queue" (supported: shed, spill)"#,
            "routes[0].budget.retry_after: must be whole seconds from 1s to 1h (it is sent as Retry-After)",
            r#"routes[1].budget: a budget is a share of capacity: give every backend of pool "unsized" a capacity (missing: unsized/10.0.0.3:80)"#,
            "routes[2].budget.retry_after: must be whole seconds from 1s to 1h (it is sent as Retry-After)",
            r#"routes[2].budget.over: spill needs the pool "sized" to have backends in at least two regions"#,
        ]
    );
    let ok = load_str(
        r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  live: {backends: [{addr: "10.0.0.1:80", capacity: 50}]}
routes:
  - {name: keynote, match: {path_prefix: /keynote}, pool: live, budget: {region_share: 0.6}}
  - {name: update, pool: live}
"#,
        Path::new("."),
    )
    .unwrap();
    let routes = ok.routes.routes();
    let budget = routes[0].budget.as_ref().unwrap();
    assert_eq!(budget.region_share, 0.6);
    assert_eq!(budget.over, ballast::config::OverBudget::Shed, "default");
    assert_eq!(budget.retry_after, Duration::from_secs(1), "default");
    assert!(routes[1].budget.is_none());
}

#[test]
fn peak_ewma_is_a_mode_and_refuses_what_needs_weights() {
    let snap = load_str(&regional_pool("    mode: peak_ewma\n"), Path::new(".")).unwrap();
    assert_eq!(snap.pools[0].policy.mode, BalanceMode::PeakEwma);
    assert_eq!(
        errors(&regional_pool(
            "    mode: peak_ewma\n    schedules: [{name: x, regions: {eu: 2}, days: [mon]}]\n    shadow: {mode: latency}\n"
        )),
        vec![
            "pools.api.schedules: schedules need an adaptive mode (latency or capacity); peak_ewma ignores weights",
            "pools.api.shadow: shadow mode compares weight policies (latency, capacity, round_robin); peak_ewma chooses per request and has no weights to compare",
        ]
    );
    assert_eq!(
        errors(&regional_pool("    shadow: {mode: peak_ewma}\n")),
        vec!["pools.api.shadow.mode: shadow mode compares weight policies (latency, capacity, round_robin); peak_ewma chooses per request and has no weights to compare"]
    );
    let tiers = "listeners: [{address: \"127.0.0.1:8080\"}]\npools:\n  api:\n    mode: peak_ewma\n    backends: [{addr: \"10.0.0.1:80\"}, {addr: \"10.0.0.2:80\", priority: 1}]\nroutes: [{pool: api}]\n";
    assert_eq!(
        errors(tiers),
        vec!["pools.api.mode: priority tiers need an adaptive mode (latency or capacity); peak_ewma ignores them"]
    );
}

#[test]
fn client_connection_settings_have_defaults_and_bounds() {
    let snap = load_str(MINIMAL, Path::new(".")).unwrap();
    assert_eq!(snap.server.header_timeout, Duration::from_secs(10));
    assert_eq!(snap.server.max_connections, None, "derived at start");
    assert_eq!(
        snap.server.max_client_connections, 0,
        "no limit per address"
    );
    assert_eq!(snap.server.h2_max_concurrent_streams, 100);

    let set = format!(
        "{MINIMAL}server: {{header_timeout: 2s, max_connections: 500, max_client_connections: 50, h2_max_concurrent_streams: 10}}\n"
    );
    let snap = load_str(&set, Path::new(".")).unwrap();
    assert_eq!(snap.server.header_timeout, Duration::from_secs(2));
    assert_eq!(snap.server.max_connections, Some(500));
    assert_eq!(snap.server.max_client_connections, 50);
    assert_eq!(snap.server.h2_max_concurrent_streams, 10);

    let bad = format!(
        "{MINIMAL}server: {{header_timeout: 10ms, max_connections: 0, max_client_connections: 20000000, h2_max_concurrent_streams: 0}}\n"
    );
    assert_eq!(
        errors(&bad),
        vec![
            "server.header_timeout: must be between 100ms and 1h",
            "server.max_connections: 0 is out of range (allowed 1 to 10000000)",
            "server.max_client_connections: 20000000 is out of range (allowed 0, meaning no limit, to 10000000)",
            "server.h2_max_concurrent_streams: 0 is out of range (allowed 1 to 1000)",
        ]
    );
}

#[test]
fn access_log_fields_are_named_once_each_from_a_known_list() {
    let defaults = load_str(MINIMAL, Path::new(".")).unwrap().server;
    assert_eq!(defaults.access_fields, AccessFields::default());
    let set = format!(
        "{MINIMAL}server: {{access_log: {{fields: [status, user_agent, upstream_first_byte_ms]}}}}\n"
    );
    let fields = load_str(&set, Path::new(".")).unwrap().server.access_fields;
    assert_eq!(
        fields,
        [
            AccessField::Status,
            AccessField::UserAgent,
            AccessField::UpstreamFirstByteMs
        ]
        .into_iter()
        .collect()
    );
    let bad = format!("{MINIMAL}server: {{access_log: {{fields: [status, referer, status]}}}}\n");
    let found = errors(&bad);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("server.access_log.fields: unknown field \"referer\" (known: request_id, trace_id, client_address,"),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        "server.access_log.fields: \"status\" is named twice"
    );
    let output = format!("{MINIMAL}server: {{access_log: {{output: logs/access.log}}}}\n");
    let output = load_str(&output, Path::new("/etc/ballast")).unwrap();
    assert_eq!(
        output.server.access_output,
        AccessOutput::File("/etc/ballast/logs/access.log".into())
    );
    let stderr = format!("{MINIMAL}server: {{access_log: {{output: stderr}}}}\n");
    let stderr = load_str(&stderr, Path::new(".")).unwrap();
    assert_eq!(stderr.server.access_output, AccessOutput::Stderr);
    let empty = format!("{MINIMAL}server: {{access_log: {{fields: [], output: \"\"}}}}\n");
    assert_eq!(
        errors(&empty),
        vec![
            "server.access_log.fields: must name at least one field",
            "server.access_log.output: must be stderr or the path of a file"
        ]
    );
}

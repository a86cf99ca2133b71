use crate::config::{load_str, BackendId, ConfigErrors, DnsName, Snapshot};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

fn compile(pools: &str, extra: &str) -> Result<Snapshot, ConfigErrors> {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:1\"}}]\n{extra}pools: {pools}\nroutes: [{{pool: api}}]\n"
    );
    load_str(&yaml, Path::new("."))
}

fn errors(pools: &str, extra: &str) -> Vec<String> {
    compile(pools, extra).expect_err("invalid").lines()
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn host_and_srv_entries_compile_as_named_entries() {
    let snapshot = compile(
        "{api: {backends: [{addr: \"10.0.0.1:80\"}, {addr: \"API.Internal:8080\", region: eu, weight: 3, labels: {app: api}}, {srv: _http._tcp.api.internal, canary: true}]}}",
        "",
    )
    .unwrap();
    let pool = &snapshot.pools[0];
    assert_eq!(pool.backends.len(), 1, "only the address is a backend yet");
    assert_eq!(pool.named.len(), 2);
    assert_eq!(
        pool.named[0].name,
        DnsName::Host {
            host: "api.internal".into(),
            port: 8080
        }
    );
    assert_eq!(pool.named[0].path, "pools.api.backends[1]");
    assert_eq!(pool.named[0].template.weight, 3);
    assert_eq!(
        pool.named[1].name,
        DnsName::Srv("_http._tcp.api.internal".into())
    );
    assert!(pool.named[1].template.canary.is_some());
    assert_eq!(snapshot.discovery.ttl_floor, Duration::from_secs(1));
    assert_eq!(snapshot.discovery.ttl_ceiling, Duration::from_secs(300));
    assert!(snapshot.discovery.nameservers.is_empty());
}

#[test]
fn entries_name_exactly_one_target_in_a_valid_form() {
    assert_eq!(
        errors(
            "{api: {backends: [{addr: \"a.test:80\", srv: _x._tcp.a.test}, {region: r}, {addr: \"bad name:80\"}, {addr: \"a.test:0\"}, {addr: \"a.test\"}, {srv: \"-x.test\"}, {addr: \"10.0.0.1:99999\"}, {addr: \"b.test:80\"}, {addr: \"B.test:80\"}]}}",
            ""
        ),
        [
            "pools.api.backends[0]: give either addr or srv, not both",
            "pools.api.backends[1].addr: missing (give addr: IP:port or host:port, or srv: an SRV name)",
            "pools.api.backends[2].addr: invalid address \"bad name:80\" (expected IP:port or host:port, e.g. \"127.0.0.1:8080\" or \"api.internal:8080\")",
            "pools.api.backends[3].addr: invalid address \"a.test:0\" (expected IP:port or host:port, e.g. \"127.0.0.1:8080\" or \"api.internal:8080\")",
            "pools.api.backends[4].addr: invalid address \"a.test\" (expected IP:port or host:port, e.g. \"127.0.0.1:8080\" or \"api.internal:8080\")",
            "pools.api.backends[5].srv: invalid SRV name \"-x.test\" (expected e.g. \"_http._tcp.api.internal\")",
            "pools.api.backends[6].addr: invalid address \"10.0.0.1:99999\" (expected IP:port or host:port, e.g. \"127.0.0.1:8080\" or \"api.internal:8080\")",
            "pools.api.backends[8].addr: duplicate backend b.test:80 (also pools.api.backends[7])",
        ]
    );
}

#[test]
fn discovery_settings_are_checked() {
    let pools = "{api: {backends: [{addr: \"a.test:80\"}]}}";
    let snapshot = compile(
        pools,
        "discovery: {nameservers: [\"127.0.0.1:5353\"], ttl_floor: 200ms, ttl_ceiling: 10s, timeout: 1s}\n",
    )
    .unwrap();
    assert_eq!(snapshot.discovery.nameservers, [addr("127.0.0.1:5353")]);
    assert_eq!(snapshot.discovery.ttl_floor, Duration::from_millis(200));
    assert_eq!(snapshot.discovery.ttl_ceiling, Duration::from_secs(10));
    assert_eq!(snapshot.discovery.timeout, Duration::from_secs(1));
    assert_eq!(
        errors(
            pools,
            "discovery: {nameservers: [dns.test], ttl_floor: 1m, ttl_ceiling: 1s, timeout: 1m}\n"
        ),
        [
            "discovery.nameservers[0]: invalid socket address \"dns.test\" (expected IP:port, e.g. \"127.0.0.1:8080\")",
            "discovery.ttl_floor: 60s is above ttl_ceiling 1s",
            "discovery.timeout: must be at most 30s",
        ]
    );
}

#[test]
fn pool_checks_count_named_entries_whatever_they_resolve_to() {
    // Regions and tiers of named entries count before they resolve.
    let snapshot = compile(
        "{api: {spillover: {latency_above: 100ms}, backends: [{addr: \"a.test:80\", region: eu}, {srv: _h._tcp.b.test, region: us}]}}",
        "",
    )
    .unwrap();
    assert_eq!(snapshot.pools[0].regions.len(), 2);
    assert_eq!(
        errors("{api: {backends: [{addr: \"a.test:80\", weight: 0}]}}", ""),
        ["pools.api.backends: every backend has weight 0; at least one must be positive"]
    );
}

#[test]
fn resolved_addresses_become_backends_like_their_entry() {
    let configured = compile(
        "{api: {backends: [{addr: \"10.0.0.1:80\", region: eu}, {addr: \"a.test:80\", region: us, weight: 5, priority: 0, labels: {app: a}}]}}",
        "",
    )
    .unwrap();
    let resolved = [
        addr("10.0.0.2:80"),
        addr("10.0.0.1:80"),
        addr("10.0.0.3:80"),
    ];
    let running = configured.with_resolved(|pool, name| {
        assert_eq!((pool, name.to_string().as_str()), ("api", "a.test:80"));
        Some(&resolved[..])
    });
    let pool = &running.pools[0];
    let ids: Vec<&BackendId> = pool.backends.iter().map(|b| &b.id).collect();
    assert_eq!(
        ids,
        [
            &BackendId("api/10.0.0.1:80".into()),
            &BackendId("api/10.0.0.2:80".into()),
            &BackendId("api/10.0.0.3:80".into()),
        ],
        "an address already in the pool is not added twice"
    );
    let named = &pool.backends[1];
    assert_eq!(named.region.as_deref(), Some("us"));
    assert_eq!(named.weight, 5);
    assert_eq!(named.labels["app"], "a");
    assert_eq!(
        named.discovered_from.as_ref().unwrap().to_string(),
        "a.test:80"
    );
    assert!(pool.backends[0].discovered_from.is_none());
    assert_eq!(pool.schedule.len(), 11, "weights 1 + 5 + 5");
    assert_eq!(pool.regions.len(), 2);

    // Again from the running snapshot, with fewer addresses: no leftovers.
    let shrunk = running.with_resolved(|_, _| Some(&resolved[1..2]));
    assert_eq!(shrunk.pools[0].backends.len(), 1);
    assert_eq!(shrunk.pools[0].regions, [Some("eu".to_string())]);
    let none = configured.with_resolved(|_, _| None);
    assert_eq!(none.pools[0].backends.len(), 1);
}

#[test]
fn regions_of_named_entries_count_for_fallbacks_and_must_be_declared() {
    let regions =
        "regions: {eu: {fallback: [us]}, us: {}}\ngeo: {client_region: [{default: eu}]}\n";
    compile(
        "{api: {backends: [{addr: \"10.0.0.1:80\", region: eu}, {srv: _h._tcp.us.test, region: us}]}}",
        regions,
    )
    .expect("a fallback to a region only a name serves is possible");
    assert_eq!(
        errors(
            "{api: {backends: [{addr: \"10.0.0.1:80\", region: eu}, {addr: \"x.test:80\", region: us}, {addr: \"y.test:80\", region: mars}]}}",
            regions,
        ),
        ["pools.api.backends[2].region: unknown region \"mars\" (declare it under regions)"]
    );
}

#[test]
fn a_full_name_keeps_its_final_dot() {
    let snapshot = compile(
        "{api: {backends: [{addr: \"api.shop.svc.cluster.local.:8080\"}]}}",
        "",
    )
    .unwrap();
    assert_eq!(
        snapshot.pools[0].named[0].name.to_string(),
        "api.shop.svc.cluster.local.:8080"
    );
}

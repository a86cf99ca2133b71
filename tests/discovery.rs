//! Backends named by DNS, against a real DNS server on loopback whose records
//! change during each test: every address (A and AAAA) serves with its own
//! statistics, a new one joins in slow start, a vanished one drains, a
//! failing name keeps its last good addresses and says so, SRV records give
//! the ports, the TTL floor holds back re-queries, a reload keeps what was
//! resolved, an unresolvable name neither stops the proxy nor fails `ballast
//! check`, and every mode and feature copes with a pool whose names do not
//! resolve (or resolve only in part).

use crate::common::dns_server::{DnsServer, Mode};
use crate::common::*;
use ballast_load_tests::origin::{self, OriginConfig, OriginHandle};
use http::StatusCode;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// Origins on 127.0.0.2, 127.0.0.3, ... sharing one port, as the pods behind
/// one DNS name serving on the same port.
async fn origins_on_one_port(count: u8) -> (u16, Vec<OriginHandle>) {
    for _ in 0..20 {
        let port = free_port();
        let mut origins = Vec::new();
        for i in 0..count {
            let addr = SocketAddr::from(([127, 0, 0, 2 + i], port));
            match origin::spawn(addr, OriginConfig::new(format!("pod-{}", 2 + i))).await {
                Ok(origin) => origins.push(origin),
                Err(_) => break,
            }
        }
        if origins.len() == usize::from(count) {
            return (port, origins);
        }
    }
    panic!("no port free on every loopback address");
}

fn ip(origin: &OriginHandle) -> IpAddr {
    origin.addr.ip()
}

fn served(origin: &OriginHandle) -> u64 {
    origin.status().counters.total
}

/// The state API's `discovery` entry for `name`.
fn named<'a>(state: &'a Value, name: &str) -> &'a Value {
    state["discovery"]
        .as_array()
        .and_then(|names| names.iter().find(|n| n["name"] == name))
        .unwrap_or_else(|| panic!("no discovery entry {name} in {state:#}"))
}

/// The backends of pool `pool` in the state API.
fn backends<'a>(state: &'a Value, pool: &str) -> &'a Vec<Value> {
    state["pools"]
        .as_array()
        .and_then(|pools| pools.iter().find(|p| p["name"] == pool))
        .and_then(|p| p["backends"].as_array())
        .unwrap_or_else(|| panic!("no pool {pool} in {state:#}"))
}

fn backend_addrs(state: &Value, pool: &str) -> Vec<String> {
    let mut addrs: Vec<String> = backends(state, pool)
        .iter()
        .map(|b| b["addr"].as_str().unwrap().to_string())
        .collect();
    addrs.sort();
    addrs
}

/// Poll the state API until `ready` holds (at most 20 s).
async fn state_until(admin: SocketAddr, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = admin_json(admin, "/api/v1/state").await;
        if ready(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "never: {what}\n{state:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A proxy whose pool `api` is `entry` (a flow mapping), resolved by `dns`.
async fn proxy(dns: &DnsServer, pool_extra: &str, entries: &str) -> LoopbackProxy {
    let nameserver = dns.addr;
    let (pool_extra, entries) = (pool_extra.to_string(), entries.to_string());
    LoopbackProxy::start(move |listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\n\
             admin: {{address: \"{admin}\"}}\n\
             discovery: {{nameservers: [\"{nameserver}\"], ttl_floor: 100ms, timeout: 300ms}}\n\
             pools:\n  api: {{mode: round_robin, {pool_extra} backends: [{entries}]}}\n\
             routes: [{{pool: api}}]\n"
        )
    })
    .await
}

async fn get_ok(listen: SocketAddr) {
    let reply = get(listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_a_records_both_serve_with_their_own_stats() {
    let dns = DnsServer::start(0).await;
    let (port, origins) = origins_on_one_port(2).await;
    dns.set_host("api.test", &[ip(&origins[0]), ip(&origins[1])]);
    let entry = format!("{{addr: \"api.test:{port}\", region: r1, labels: {{app: api}}}}");
    let proxy = proxy(&dns, "", &entry).await;
    let name = format!("api.test:{port}");
    state_until(proxy.admin, "two backends", |s| {
        backends(s, "api").len() == 2
    })
    .await;

    for _ in 0..20 {
        get_ok(proxy.listen).await;
    }
    assert!(served(&origins[0]) > 0 && served(&origins[1]) > 0);
    let state = admin_json(proxy.admin, "/api/v1/state").await;
    for backend in backends(&state, "api") {
        assert_eq!(backend["discovered_from"], name.as_str(), "{backend:#}");
        assert_eq!(backend["region"], "r1");
        assert_eq!(backend["labels"]["app"], "api");
        assert!(backend["requests"].as_u64().unwrap() > 0, "{backend:#}");
    }
    let entry = named(&state, &name);
    assert_eq!(entry["status"], "ok");
    assert_eq!(entry["kind"], "host");
    assert_eq!(entry["addresses"].as_array().unwrap().len(), 2);
    assert!(entry["last_success"].is_number() && entry["next_refresh"].is_number());
    let text = metrics_text(proxy.admin).await;
    let gauge = format!("ballast_discovery_addresses{{name=\"{name}\",pool=\"api\"}} 2");
    assert!(text.contains(&gauge), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_record_joins_in_slow_start_and_gets_traffic() {
    let dns = DnsServer::start(0).await;
    let (port, origins) = origins_on_one_port(3).await;
    let (first, second, third) = (&origins[0], &origins[1], &origins[2]);
    dns.set_host("api.test", &[ip(first), ip(second)]);
    let nameserver = dns.addr;
    let proxy = LoopbackProxy::start(move |listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             discovery: {{nameservers: [\"{nameserver}\"], ttl_floor: 100ms}}\n\
             pools: {{api: {{mode: latency, slow_start: 30s, recompute_interval: 100ms, \
             backends: [{{addr: \"api.test:{port}\"}}]}}}}\nroutes: [{{pool: api}}]\n"
        )
    })
    .await;
    state_until(proxy.admin, "two backends", |s| {
        backends(s, "api").len() == 2
    })
    .await;
    for _ in 0..20 {
        get_ok(proxy.listen).await;
    }

    dns.set_host("api.test", &[ip(first), ip(second), ip(third)]);
    let state = state_until(proxy.admin, "three backends", |s| {
        backends(s, "api").len() == 3
    })
    .await;
    let share = |addr: SocketAddr| {
        backends(&state, "api")
            .iter()
            .find(|b| b["addr"] == addr.to_string())
            .map(|b| {
                (
                    b["share"].as_f64().unwrap(),
                    b["slow_start_progress"].as_f64(),
                )
            })
            .unwrap()
    };
    let (added_share, progress) = share(third.addr);
    assert!(progress.is_some_and(|p| p < 0.5), "{state:#}");
    // Ramping from about a tenth of its fair share (a third): below it, and
    // below the larger of the two it joins.
    let largest = share(first.addr).0.max(share(second.addr).0);
    assert!(
        added_share < 1.0 / 3.0 && added_share < largest,
        "{state:#}"
    );
    // Its share grows: it gets traffic within a bounded number of requests.
    for _ in 0..400 {
        if served(third) > 0 {
            break;
        }
        get_ok(proxy.listen).await;
    }
    assert!(served(third) > 0, "the added backend got no request");
    let decisions = admin_json(proxy.admin, "/api/v1/decisions?kind=discovery").await;
    let text = decisions.to_string();
    assert!(text.contains(&format!("+{}", third.addr)), "{decisions:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_record_drains_its_backend() {
    let dns = DnsServer::start(0).await;
    let (port, origins) = origins_on_one_port(3).await;
    let (first, second, third) = (&origins[0], &origins[1], &origins[2]);
    dns.set_host("api.test", &[ip(first), ip(second), ip(third)]);
    let proxy = proxy(&dns, "", &format!("{{addr: \"api.test:{port}\"}}")).await;
    state_until(proxy.admin, "three backends", |s| {
        backends(s, "api").len() == 3
    })
    .await;

    // A slow request on the first backend when its record goes: it
    // completes; no new request goes there.
    first.set_latency(Duration::from_secs(4));
    let mut slow = Vec::new();
    for _ in 0..6 {
        let listen = proxy.listen;
        slow.push(tokio::spawn(
            async move { get(listen, "api.test", "/").await },
        ));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while first.in_flight() == 0 {
        assert!(
            Instant::now() < deadline,
            "no request reached the first backend"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    dns.set_host("api.test", &[ip(second), ip(third)]);
    let state = state_until(proxy.admin, "the first backend gone", |s| {
        !backend_addrs(s, "api").contains(&first.addr.to_string())
    })
    .await;
    assert_eq!(backends(&state, "api").len(), 2);
    assert!(
        first.in_flight() > 0,
        "the slow request is still on its way"
    );
    let before = served(first);
    for _ in 0..20 {
        get_ok(proxy.listen).await;
    }
    assert_eq!(served(first), before, "a removed backend got new requests");
    for request in slow {
        let reply = request.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    }
    let decisions = admin_json(proxy.admin, "/api/v1/decisions?kind=discovery").await;
    let text = decisions.to_string();
    assert!(text.contains(&format!("-{}", first.addr)), "{decisions:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_removed_under_load_follows_the_ttl_and_loses_no_request() {
    let _serial = crate::routing::LOAD_LOCK.lock().await;
    // Records live 1 s: the change must show within that (and a margin).
    let dns = DnsServer::start(1).await;
    let (port, origins) = origins_on_one_port(3).await;
    let (first, second, third) = (&origins[0], &origins[1], &origins[2]);
    dns.set_host("api.test", &[ip(first), ip(second), ip(third)]);
    let proxy = proxy(&dns, "", &format!("{{addr: \"api.test:{port}\"}}")).await;
    state_until(proxy.admin, "three backends", |s| {
        backends(s, "api").len() == 3
    })
    .await;

    let load = tokio::spawn(drive(
        proxy.listen,
        8,
        Duration::from_millis(3000),
        100_000,
        |_, _| request(http::Method::GET, "api.test", "/", bytes::Bytes::new()),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        served(first) > 0,
        "the first backend served before its removal"
    );
    let removed_at = Instant::now();
    dns.set_host("api.test", &[ip(second), ip(third)]);
    state_until(proxy.admin, "the first backend gone", |s| {
        !backend_addrs(s, "api").contains(&first.addr.to_string())
    })
    .await;
    let followed = removed_at.elapsed();
    let after_removal = served(first);
    let outcome = load.await.unwrap();
    eprintln!(
        "record removed under load: followed in {followed:?}; {outcome:?}; the removed backend served {} after",
        served(first) - after_removal
    );
    assert!(
        followed < Duration::from_secs(3),
        "the removal followed the 1 s TTL: {followed:?}"
    );
    assert!(outcome.total() > 100, "{outcome:?}");
    assert_eq!(
        outcome.count(200),
        outcome.total(),
        "no request failed: {outcome:?}"
    );
    assert_eq!(
        served(first),
        after_removal,
        "no new request reached the removed backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_name_keeps_its_last_good_addresses_and_says_so() {
    let dns = DnsServer::start(0).await;
    let (port, origins) = origins_on_one_port(2).await;
    dns.set_host("api.test", &[ip(&origins[0]), ip(&origins[1])]);
    let proxy = proxy(&dns, "", &format!("{{addr: \"api.test:{port}\"}}")).await;
    let name = format!("api.test:{port}");
    state_until(proxy.admin, "two backends", |s| {
        backends(s, "api").len() == 2
    })
    .await;

    for (mode, result) in [
        (Mode::NxDomain, "nxdomain"),
        (Mode::Silent, "error"),
        (Mode::Records, "empty"),
    ] {
        dns.set_mode(mode);
        if mode == Mode::Records {
            dns.set_host("api.test", &[]);
        }
        let state = state_until(proxy.admin, result, |s| {
            named(s, &name)["last_error"]["result"] == result
        })
        .await;
        let entry = named(&state, &name);
        assert_eq!(entry["status"], "failing", "{entry:#}");
        assert_eq!(entry["addresses"].as_array().unwrap().len(), 2);
        assert_eq!(backends(&state, "api").len(), 2, "the last good set stays");
        get_ok(proxy.listen).await;
        let text = metrics_text(proxy.admin).await;
        let counter =
            format!("ballast_discovery_resolutions_total{{name=\"{name}\",pool=\"api\",result=\"{result}\"}}");
        assert!(text.contains(&counter), "{counter} missing:\n{text}");
    }
    let decisions = admin_json(proxy.admin, "/api/v1/decisions?kind=discovery").await;
    assert!(
        decisions.to_string().contains("keeping 2 address"),
        "{decisions:#}"
    );

    // Answers again: back to ok.
    dns.set_host("api.test", &[ip(&origins[0])]);
    let state = state_until(proxy.admin, "one backend", |s| {
        backends(s, "api").len() == 1
    })
    .await;
    assert_eq!(named(&state, &name)["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_each_backend_its_port() {
    let dns = DnsServer::start(0).await;
    let (a, b) = (origin_named("a").await, origin_named("b").await);
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
    dns.set_host("a.api.test", &[localhost]);
    dns.set_host("b.api.test", &[localhost]);
    dns.set_srv(
        "_http._tcp.api.test",
        &[(a.addr.port(), "a.api.test"), (b.addr.port(), "b.api.test")],
    );
    let proxy = proxy(&dns, "", "{srv: _http._tcp.api.test, weight: 3}").await;
    let state = state_until(proxy.admin, "two backends", |s| {
        backends(s, "api").len() == 2
    })
    .await;
    let mut expected = vec![a.addr.to_string(), b.addr.to_string()];
    expected.sort();
    assert_eq!(backend_addrs(&state, "api"), expected);
    assert!(backends(&state, "api").iter().all(|b| b["weight"] == 3));
    assert_eq!(named(&state, "_http._tcp.api.test")["kind"], "srv");
    for _ in 0..10 {
        get_ok(proxy.listen).await;
    }
    assert!(served(&a) > 0 && served(&b) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_floor_holds_back_requeries() {
    // Records with TTL 0 would be asked for again at once; the floor (1s)
    // spaces the queries.
    let dns = DnsServer::start(0).await;
    let origin = origin_named("only").await;
    dns.set_host("api.test", &[origin.addr.ip()]);
    let nameserver = dns.addr;
    let port = origin.addr.port();
    let proxy = LoopbackProxy::start(move |listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             discovery: {{nameservers: [\"{nameserver}\"], ttl_floor: 1s}}\n\
             pools: {{api: {{backends: [{{addr: \"api.test:{port}\"}}]}}}}\nroutes: [{{pool: api}}]\n"
        )
    })
    .await;
    state_until(proxy.admin, "one backend", |s| {
        backends(s, "api").len() == 1
    })
    .await;
    let started = Instant::now();
    let at_start = dns.queries("api.test");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let queries = dns.queries("api.test") - at_start;
    let elapsed = started.elapsed().as_secs_f64();
    // At most one resolution (an A and an AAAA query) per floor, plus one.
    let most = 2 * (elapsed.ceil() as usize + 1);
    assert!(queries >= 1, "the name was never asked again");
    assert!(
        queries <= most,
        "{queries} queries in {elapsed:.1}s with a 1s floor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_does_not_resolve_yet_does_not_stop_the_proxy() {
    let dns = DnsServer::start(0).await;
    let fixed = origin_named("fixed").await;
    let late = origin_named("late").await;
    let nameserver = dns.addr;
    let (fixed_addr, late_port) = (fixed.addr, late.addr.port());
    let proxy = LoopbackProxy::start(move |listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             discovery: {{nameservers: [\"{nameserver}\"], ttl_floor: 100ms, ttl_ceiling: 200ms}}\n\
             regions: {{r1: {{}}}}\ngeo: {{client_region: [{{default: r1}}]}}\n\
             pools:\n  fixed: {{backends: [{{addr: \"{fixed_addr}\", region: r1}}]}}\n  \
             late: {{backends: [{{addr: \"late.test:{late_port}\", region: r1}}]}}\n\
             routes: [{{match: {{host: late.test}}, pool: late}}, {{pool: fixed}}]\n"
        )
    })
    .await;
    let name = format!("late.test:{late_port}");
    let state = state_until(proxy.admin, "a failed resolution", |s| {
        named(s, &name)["failures"].as_u64() >= Some(2)
    })
    .await;
    assert_eq!(named(&state, &name)["status"], "failing");
    assert!(backends(&state, "late").is_empty());
    assert_eq!(
        get(proxy.listen, "fixed.test", "/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(proxy.listen, "late.test", "/").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    dns.set_host("late.test", &[late.addr.ip()]);
    state_until(proxy.admin, "the late backend", |s| {
        backends(s, "late").len() == 1
    })
    .await;
    assert_eq!(
        get(proxy.listen, "late.test", "/").await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_about_a_name_that_does_not_resolve_and_passes() {
    let dns = DnsServer::start(0).await;
    dns.set_host("up.test", &[IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ballast.yaml");
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\n\
         discovery: {{nameservers: [\"{}\"], timeout: 500ms}}\n\
         pools: {{api: {{backends: [{{addr: \"up.test:80\"}}, {{addr: \"down.test:80\"}}]}}}}\n\
         routes: [{{pool: api}}]\n",
        dns.addr
    );
    std::fs::write(&path, yaml).unwrap();
    let check = |extra: Option<&str>| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ballast"));
        command.arg("check").arg("--config").arg(&path).args(extra);
        command.output()
    };
    let output = check(None).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("2 named by DNS"), "{stdout}");
    assert!(stdout.contains("up.test:80 -> 127.0.0.2:80"), "{stdout}");
    assert!(
        stdout.contains("warning: pools.api.backends[1]: down.test:80 does not resolve"),
        "{stdout}"
    );
    assert_eq!(
        dns.queries("up.test"),
        2,
        "each name is asked once (A and AAAA)"
    );

    // --no-resolve: the file alone, no query.
    let output = check(Some("--no-resolve")).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("2 named by DNS") && !stdout.contains("warning"),
        "{stdout}"
    );
    assert_eq!(dns.queries("up.test"), 2, "--no-resolve asks nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_resolved_backends_and_what_was_learned() {
    // With a long floor, the name is not asked again soon: what the running
    // snapshot holds after the reload comes from the addresses kept.
    let dns = DnsServer::start(300).await;
    let (port, origins) = origins_on_one_port(2).await;
    dns.set_host("api.test", &[ip(&origins[0]), ip(&origins[1])]);
    let (listen, admin) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    let write = |route: &str| {
        let yaml = format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             discovery: {{nameservers: [\"{}\"], ttl_floor: 1m}}\n\
             pools: {{api: {{mode: round_robin, backends: [{{addr: \"api.test:{port}\"}}]}}}}\n\
             routes: [{{name: {route}, pool: api}}]\n",
            dns.addr
        );
        std::fs::write(&file, yaml).unwrap();
    };
    write("first");
    let _ballast = RunningBallast::start_file(&file, &[listen, admin]).await;
    state_until(admin, "two backends", |s| backends(s, "api").len() == 2).await;
    for _ in 0..10 {
        get_ok(listen).await;
    }
    let queries = dns.queries("api.test");

    write("second");
    let reply = send(admin, admin_request(http::Method::POST, "/reload", None)).await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    // The file watcher may have applied it first; then this one is unchanged.
    if body["status"] == "applied" {
        assert_eq!(body["added"], serde_json::json!([]), "{body:#}");
        assert_eq!(body["removed"], serde_json::json!([]), "{body:#}");
    }
    let state = state_until(admin, "the reload", |s| s["reload"]["generation"] == 2).await;
    assert_eq!(backends(&state, "api").len(), 2, "{state:#}");
    for backend in backends(&state, "api") {
        assert!(backend["requests"].as_u64().unwrap() > 0, "{backend:#}");
    }
    assert_eq!(
        dns.queries("api.test"),
        queries,
        "a reload asks no name again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_and_aaaa_records_both_become_backends() {
    let dns = DnsServer::start(0).await;
    let v4 = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let v6: IpAddr = "::1".parse().unwrap();
    dns.set_host("api.test", &[v4, v6]);
    let proxy = proxy(&dns, "", "{addr: \"api.test:9\"}").await;
    let state = state_until(proxy.admin, "two backends", |s| {
        backends(s, "api").len() == 2
    })
    .await;
    assert_eq!(backend_addrs(&state, "api"), ["127.0.0.2:9", "[::1]:9"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_feature_copes_with_names_that_do_not_resolve_or_resolve_in_part() {
    // Every pool's backends are named by DNS, and no name resolves: each
    // feature meets a pool without a backend, on requests and in the engine.
    let dns = DnsServer::start(0).await;
    let nameserver = dns.addr;
    let west = origin::spawn("127.0.0.2:0".parse().unwrap(), OriginConfig::new("west"))
        .await
        .unwrap();
    let port = west.addr.port();
    let proxy = LoopbackProxy::start(move |listen, admin| {
        let entry = |region: &str, extra: &str| {
            format!("{{addr: \"missing.test:{port}\", region: {region}{extra}}}")
        };
        let pool = |settings: &str, entries: &[String]| {
            format!(
                "{{recompute_interval: 50ms, {settings} backends: [{}]}}",
                entries.join(", ")
            )
        };
        let pools = [
            ("latency", pool("mode: latency,", &[entry("east", "")])),
            (
                "capacity",
                pool("mode: capacity,", &[entry("east", ", capacity: 10")]),
            ),
            ("ewma", pool("mode: peak_ewma,", &[entry("east", "")])),
            ("rr", pool("mode: round_robin,", &[entry("east", "")])),
            (
                "ring",
                pool(
                    "consistent_hash: {key: {header: x-session}},",
                    &[entry("east", "")],
                ),
            ),
            (
                "sticky",
                pool(
                    "canary_sticky: {header: x-user},",
                    &[entry("east", ", canary: true")],
                ),
            ),
            (
                "shadow",
                pool("shadow: {mode: capacity},", &[entry("east", "")]),
            ),
            (
                "tiers",
                pool(
                    "",
                    &[
                        entry("east", ""),
                        entry("west", ", priority: 1").replace("missing", "other"),
                    ],
                ),
            ),
            (
                "spill",
                pool(
                    "spillover: {latency_above: 100ms},",
                    &[
                        entry("east", ""),
                        entry("west", "").replace("missing", "other"),
                    ],
                ),
            ),
            (
                "split",
                pool(
                    "write: {region: east, read_your_writes: {ttl: 1s}},",
                    &[
                        entry("east", ""),
                        entry("west", "").replace("missing", "other"),
                    ],
                ),
            ),
        ];
        let pools: Vec<String> = pools
            .iter()
            .map(|(name, pool)| format!("  {name}: {pool}"))
            .collect();
        let routes: Vec<String> = [
            "latency", "capacity", "ewma", "rr", "ring", "sticky", "shadow", "tiers", "spill",
            "split",
        ]
        .iter()
        .map(|name| {
            let budget = if *name == "capacity" {
                ", budget: {region_share: 0.5}"
            } else {
                ""
            };
            format!("  - {{match: {{host: {name}.test}}, pool: {name}{budget}}}")
        })
        .collect();
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             discovery: {{nameservers: [\"{nameserver}\"], ttl_floor: 50ms, ttl_ceiling: 100ms}}\n\
             regions: {{east: {{fallback: [west]}}, west: {{fallback: [east]}}}}\n\
             geo: {{client_region: [{{default: east}}]}}\n\
             pools:\n{}\nroutes:\n{}\n",
            pools.join("\n"),
            routes.join("\n")
        )
    })
    .await;
    state_until(proxy.admin, "failed resolutions", |s| {
        s["discovery"]
            .as_array()
            .is_some_and(|names| names.iter().all(|n| n["failures"].as_u64() >= Some(2)))
    })
    .await;
    for name in [
        "latency", "capacity", "ewma", "rr", "ring", "sticky", "shadow", "tiers", "spill", "split",
    ] {
        for method in [http::Method::GET, http::Method::POST] {
            let req = request(
                method.clone(),
                &format!("{name}.test"),
                "/",
                bytes::Bytes::new(),
            );
            let reply = send(proxy.listen, req).await;
            assert_eq!(
                reply.status,
                StatusCode::SERVICE_UNAVAILABLE,
                "{name} {method}: {}",
                reply.text()
            );
        }
    }
    for path in ["/api/v1/state", "/api/v1/config", "/api/v1/decisions"] {
        admin_json(proxy.admin, path).await;
    }

    // Only the west names resolve: the pools with a west entry serve from
    // there (a lower tier, a fallback region); writes, bound to the east,
    // are refused.
    dns.set_host("other.test", &[west.addr.ip()]);
    state_until(proxy.admin, "the west backends", |s| {
        ["tiers", "spill", "split"]
            .iter()
            .all(|pool| backends(s, pool).len() == 1)
    })
    .await;
    for name in ["tiers", "spill", "split"] {
        let reply = get(proxy.listen, &format!("{name}.test"), "/").await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
        assert_eq!(reply.header("x-origin"), Some("west"));
    }
    let write = request(http::Method::POST, "split.test", "/", bytes::Bytes::new());
    assert_eq!(
        send(proxy.listen, write).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

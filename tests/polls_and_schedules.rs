//! Quiet backends judged by their polled load endpoints, and scheduled
//! region weights, end to end: real origins, a real Ballast in front, hot
//! reloads of the file it started from.

use crate::common::*;
use ballast_load_tests::origin::OriginHandle;
use http::Method;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// These tests measure shares under load on a small machine: one at a time.
static LOAD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Proxy {
    listen: SocketAddr,
    admin: SocketAddr,
    file: PathBuf,
    _dir: tempfile::TempDir,
    _ballast: RunningBallast,
}

fn config(listen: SocketAddr, admin: SocketAddr, pool: &str) -> String {
    format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 2s}}\npools:\n  p:\n{pool}routes: [{{pool: p}}]\n"
    )
}

/// Start Ballast from a file holding pool `p` (YAML indented four spaces).
async fn start(pool: &str) -> Proxy {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    std::fs::write(&file, config(listen, admin, pool)).unwrap();
    let ballast = RunningBallast::start_file(&file, &[listen, admin]).await;
    Proxy {
        listen,
        admin,
        file,
        _dir: dir,
        _ballast: ballast,
    }
}

impl Proxy {
    /// Rewrite the file with a new pool `p` and apply it by `POST /reload`.
    async fn reload(&self, pool: &str) {
        std::fs::write(&self.file, config(self.listen, self.admin, pool)).unwrap();
        let reply = send(self.admin, admin_request(Method::POST, "/reload", None)).await;
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert!(
            body["status"] == "applied" || body["status"] == "unchanged",
            "reload: {body}"
        );
    }

    async fn state(&self) -> Value {
        admin_json(self.admin, "/api/v1/state").await
    }

    async fn backend(&self, addr: SocketAddr) -> Value {
        let state = self.state().await;
        state["pools"][0]["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["addr"] == addr.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("no backend {addr} in {state:#}"))
    }

    /// `ballast_load_polls_total{pool="p",result}`, 0 when absent.
    async fn polls(&self, result: &str) -> u64 {
        let metrics = get(self.admin, "localhost", "/metrics").await.text();
        let series = format!("ballast_load_polls_total{{pool=\"p\",result=\"{result}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map_or(0, |v| v.parse().unwrap())
    }

    /// `requests` GETs, one at a time, paced at `per_second`.
    async fn paced(&self, requests: usize, per_second: u64) {
        let mut pace = tokio::time::interval(Duration::from_millis(1000 / per_second));
        for _ in 0..requests {
            pace.tick().await;
            let reply = get(self.listen, "x", "/work").await;
            assert_eq!(reply.status, 200, "{}", reply.text());
        }
    }
}

fn backend_list(origins: &[(&OriginHandle, &str)]) -> String {
    let list: Vec<String> = origins
        .iter()
        .map(|(o, extra)| format!("{{addr: \"{}\"{extra}}}", o.addr))
        .collect();
    format!("    backends: [{}]\n", list.join(", "))
}

/// Poll `check` every 50 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_canary_is_judged_by_its_polled_latency() {
    let _serial = LOAD_LOCK.lock().await;
    let stable_a = origin_with_latency("stable-a", Duration::from_millis(2)).await;
    let stable_b = origin_with_latency("stable-b", Duration::from_millis(2)).await;
    // The canary answers requests as fast as the others, but its load
    // endpoint says it is slow (say, under load from elsewhere).
    let canary = origin_with_latency("canary", Duration::from_millis(2)).await;
    canary.set_load_endpoint(Some(r#"{"latency_ms": 200, "load": 0.2, "inflight": 1}"#));
    let pool = format!(
        "    recompute_interval: 200ms\n    smoothing: 1.0\n    min_share: 0.01\n    max_share: 0.9\n    slow_start: 0s\n    load_poll: {{interval: 200ms, timeout: 150ms}}\n{}",
        backend_list(&[
            (&stable_a, ""),
            (&stable_b, ""),
            (&canary, ", canary: {floor: 0.01, max: 0.5}"),
        ])
    );
    let proxy = start(&pool).await;
    eventually(
        "a first good poll of the canary",
        Duration::from_secs(10),
        || async { proxy.backend(canary.addr).await["load_poll"]["result"] == "ok" },
    )
    .await;

    // 20 requests/s: the canary, at its floor, sees a handful in its 10 s
    // window, too few to measure; its polled latency decides.
    proxy.paced(60, 20).await;
    let slow = proxy.backend(canary.addr).await;
    let slow_share = slow["share"].as_f64().unwrap();
    eprintln!("canary polled slow: {slow:#}");
    assert_eq!(slow["why"]["latency_ms"], 200.0, "{slow:#}");
    assert_eq!(slow["why"]["polled"], true, "{slow:#}");
    assert_eq!(slow["report"]["source"], "load_poll");
    assert_eq!(slow["load_poll"]["latency_ms"], 200.0);
    assert!(
        slow["latency"]["samples"].as_u64().unwrap() < 10,
        "the canary stayed quiet: {slow:#}"
    );
    let state = proxy.state().await;
    let counted: u64 = state["pools"][0]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    let received = stable_a.stats.total() + stable_b.stats.total() + canary.stats.total();
    assert_eq!(counted, 60, "polls are not counted as traffic");
    assert!(received > 60, "the origins also answered polls: {received}");

    // The same canary polled fast.
    canary.set_load_endpoint(Some(r#"{"latency_ms": 2}"#));
    let mut fast_share = 0.0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        proxy.paced(10, 20).await;
        fast_share = proxy.backend(canary.addr).await["share"].as_f64().unwrap();
        if fast_share > 0.2 {
            break;
        }
    }
    eprintln!("canary share: polled slow {slow_share:.3}, polled fast {fast_share:.3}");
    assert!(slow_share <= 0.05, "slow canary at its floor: {slow_share}");
    assert!(
        fast_share > 5.0 * slow_share && fast_share > 0.2,
        "a fast poll lifts the canary: {slow_share} -> {fast_share}"
    );
    let decisions = admin_json(proxy.admin, "/api/v1/decisions?kind=share&limit=1000").await;
    let canary_id = format!("p/{}", canary.addr);
    let mentions_poll = decisions["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["backend"] == canary_id.as_str())
        .any(|d| {
            d["reason"]
                .as_str()
                .unwrap_or("")
                .contains("polled latency")
        });
    assert!(
        mentions_poll,
        "a share decision names the polled latency: {decisions:#}"
    );
    assert!(proxy.polls("ok").await >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_errors_are_counted_never_eject_and_a_reload_changes_path_and_interval() {
    let _serial = LOAD_LOCK.lock().await;
    let garbage = origin_named("garbage").await;
    garbage.set_load_endpoint(Some("{\"latency_ms\": \"fast\"}"));
    let missing = origin_named("missing").await;
    let pool = |path: &str, interval: &str| {
        format!(
            "    recompute_interval: 200ms\n    load_poll: {{path: \"{path}\", interval: {interval}, timeout: 100ms, quiet_below: 1000}}\n{}",
            backend_list(&[(&garbage, ""), (&missing, "")])
        )
    };
    let proxy = start(&pool("/load", "200ms")).await;
    eventually(
        "invalid and status polls counted",
        Duration::from_secs(10),
        || async { proxy.polls("invalid").await >= 2 && proxy.polls("status").await >= 2 },
    )
    .await;
    assert_eq!(proxy.polls("ok").await, 0);
    // Failed polls record no report and take nothing out of service.
    proxy.paced(20, 50).await;
    for origin in [&garbage, &missing] {
        let seen = proxy.backend(origin.addr).await;
        assert!(seen["share"].as_f64().unwrap() > 0.3, "{seen:#}");
        assert!(seen["report"].is_null(), "{seen:#}");
        assert!(seen["load_poll"]["latency_ms"].is_null(), "{seen:#}");
    }
    assert_eq!(
        proxy.backend(garbage.addr).await["load_poll"]["result"],
        "invalid"
    );
    assert_eq!(
        proxy.backend(missing.addr).await["load_poll"]["result"],
        "status"
    );

    // A rarely polled path that answers nothing useful...
    proxy.reload(&pool("/v2/nothing", "2s")).await;
    garbage.set_load_endpoint(Some(r#"{"latency_ms": 9, "error_rate": 0.0}"#));
    missing.set_load_endpoint(Some(r#"{"latency_ms": 9}"#));
    let state = proxy.state().await;
    assert_eq!(state["pools"][0]["load_poll"]["path"], "/v2/nothing");
    assert_eq!(state["pools"][0]["load_poll"]["interval_ms"], 2000);
    // ...then the right one, often: polls succeed, many per second.
    proxy.reload(&pool("/v2/load", "100ms")).await;
    let reloaded_at = Instant::now();
    let ok_before = proxy.polls("ok").await;
    eventually(
        "good polls after the reload",
        Duration::from_secs(10),
        || async { proxy.polls("ok").await >= ok_before + 2 * 10 },
    )
    .await;
    let elapsed = reloaded_at.elapsed();
    eprintln!("20 good polls (2 backends) in {elapsed:?} after the reload");
    assert!(
        elapsed < Duration::from_secs(4),
        "a 100ms interval polls far more often than 2s: {elapsed:?}"
    );
    let seen = proxy.backend(garbage.addr).await;
    assert_eq!(seen["load_poll"]["result"], "ok", "{seen:#}");
    assert_eq!(seen["load_poll"]["latency_ms"], 9.0, "{seen:#}");
    assert_eq!(seen["report"]["source"], "load_poll", "{seen:#}");
    let counted = seen["requests"].as_u64().unwrap()
        + proxy.backend(missing.addr).await["requests"]
            .as_u64()
            .unwrap();
    assert!(
        counted <= 20,
        "polls are not counted as requests: {counted}"
    );
    let received = garbage.stats.total() + missing.stats.total();
    assert!(
        received >= 20 + 2 * 10,
        "the origins answered the polls: {received}"
    );
}

/// `HH:MM` of the UTC time `offset_s` from now.
fn utc_hhmm(offset_s: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minute = (now + offset_s).rem_euclid(86_400) / 60;
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// The fraction of `requests` GETs (2 clients, so the picker's in-flight
/// check seldom overrides the shares) that reached `eu`.
async fn eu_fraction(proxy: &Proxy, eu: &OriginHandle, us: &OriginHandle, requests: usize) -> f64 {
    let (eu_before, us_before) = (eu.stats.total(), us.stats.total());
    let outcome = drive(
        proxy.listen,
        2,
        Duration::from_secs(30),
        requests / 2,
        |_, _| request(Method::GET, "x", "/work", bytes::Bytes::new()),
    )
    .await;
    assert_eq!(outcome.count(200), requests, "{outcome:?}");
    let eu_served = eu.stats.total() - eu_before;
    let us_served = us.stats.total() - us_before;
    eu_served as f64 / (eu_served + us_served) as f64
}

async fn region_share(proxy: &Proxy, region: &str) -> f64 {
    let state = proxy.state().await;
    state["pools"][0]["regions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == region)
        .and_then(|r| r["share"].as_f64())
        .unwrap_or_else(|| panic!("no region {region} in {state:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_active_now_shifts_traffic_and_a_reload_without_it_restores_the_split() {
    let _serial = LOAD_LOCK.lock().await;
    let eu = origin_named("eu").await;
    let us = origin_named("us").await;
    let base = format!(
        "    mode: capacity\n    recompute_interval: 200ms\n    smoothing: 1.0\n    max_share: 0.95\n    backends: [{{addr: \"{}\", region: eu, capacity: 10000}}, {{addr: \"{}\", region: us, capacity: 10000}}]\n",
        eu.addr, us.addr
    );
    // A sale long past is listed first and never applies; the window
    // around now does (it may run across midnight).
    let schedules = format!(
        "    schedules:\n      - {{name: past-sale, regions: {{us: 5}}, dates: {{from: 2020-01-01, to: 2020-01-02}}}}\n      - {{name: eu-peak, regions: {{eu: 3.0}}, from: \"{}\", to: \"{}\", utc_offset: \"+00:00\"}}\n",
        utc_hhmm(-2 * 3600),
        utc_hhmm(2 * 3600)
    );
    let proxy = start(&format!("{schedules}{base}")).await;
    let state = proxy.state().await;
    let schedule = &state["pools"][0]["schedule"];
    assert_eq!(schedule["active"], "eu-peak", "{schedule:#}");
    assert_eq!(schedule["multipliers"]["eu"], 3.0, "{schedule:#}");
    assert_eq!(
        schedule["templates"],
        serde_json::json!(["past-sale", "eu-peak"])
    );
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let next = schedule["next_switch"].as_i64().unwrap();
    assert!(
        (now_s + 3600..=now_s + 2 * 3600 + 60).contains(&next),
        "the window ends in about 2 h: {next} vs now {now_s}"
    );
    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_schedule_active{pool=\"p\",template=\"eu-peak\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ballast_schedule_active{pool=\"p\",template=\"past-sale\"} 0"),
        "{metrics}"
    );
    eventually(
        "eu at 3/4 of the shares",
        Duration::from_secs(10),
        || async { (region_share(&proxy, "eu").await - 0.75).abs() < 0.01 },
    )
    .await;
    let scheduled = eu_fraction(&proxy, &eu, &us, 800).await;

    proxy.reload(&base).await;
    eventually("an even split again", Duration::from_secs(10), || async {
        (region_share(&proxy, "eu").await - 0.5).abs() < 0.01
    })
    .await;
    let plain = eu_fraction(&proxy, &eu, &us, 800).await;
    eprintln!("eu fraction of 800 requests: eu-peak x3 {scheduled:.3}, without {plain:.3}");
    assert!(
        (scheduled - 0.75).abs() < 0.08,
        "x3 gives eu 3/4: {scheduled}"
    );
    assert!((plain - 0.5).abs() < 0.08, "even without: {plain}");
    assert!(scheduled - plain > 0.15, "{scheduled} vs {plain}");
    let switches = admin_json(proxy.admin, "/api/v1/decisions?kind=schedule").await;
    let reasons: Vec<&str> = switches["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "schedule none -> eu-peak (eu x3.00)",
            "schedule eu-peak -> none (no multipliers)"
        ]
    );
    assert!(proxy.state().await["pools"][0]["schedule"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_regions_a_schedule_sends_a_regions_clients_on() {
    let _serial = LOAD_LOCK.lock().await;
    let east = origin_named("east").await;
    let west = origin_named("west").await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, drain_timeout: 2s}}
regions:
  us-east: {{fallback: [us-west]}}
  us-west: {{fallback: [us-east]}}
geo:
  client_region: [{{header: X-Client-Region, trusted_peers: ["127.0.0.1/32"]}}, {{default: us-east}}]
pools:
  p:
    recompute_interval: 200ms
    schedules: [{{name: west-peak, regions: {{us-west: 4.0}}, from: "{}", to: "{}"}}]
    backends: [{{addr: "{}", region: us-east}}, {{addr: "{}", region: us-west}}]
routes: [{{pool: p}}]
"#,
        utc_hhmm(-2 * 3600),
        utc_hhmm(2 * 3600),
        east.addr,
        west.addr
    );
    let _ballast = RunningBallast::start(&yaml, std::path::Path::new("."), &[listen, admin]).await;
    let east_spill = || async {
        let state = admin_json(admin, "/api/v1/state").await;
        state["pools"][0]["regions"][0]["spill"].as_f64().unwrap()
    };
    eventually(
        "us-east sends 3/4 of its clients on",
        Duration::from_secs(10),
        || async { (east_spill().await - 0.75).abs() < 1e-9 },
    )
    .await;
    let (east_before, west_before) = (east.stats.total(), west.stats.total());
    let outcome = drive(listen, 2, Duration::from_secs(30), 300, |_, _| {
        http::Request::builder()
            .uri("/work")
            .header("host", "x")
            .header("x-client-region", "us-east")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    })
    .await;
    assert_eq!(outcome.count(200), 600, "{outcome:?}");
    let to_west = west.stats.total() - west_before;
    let stayed = east.stats.total() - east_before;
    let fraction = to_west as f64 / (to_west + stayed) as f64;
    eprintln!("us-east clients served in us-west under west-peak: {fraction:.3} of 600");
    assert!((fraction - 0.75).abs() < 0.08, "{fraction}");
}

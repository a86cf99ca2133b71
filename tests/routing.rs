//! The routing brain end to end: real origins whose behaviour changes under
//! bounded load, a real Ballast in front, and the shares and retries that
//! result.

use crate::common::*;
use ballast_load_tests::behaviour::{BehaviourUpdate, FailureMode};
use ballast_load_tests::origin::OriginHandle;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

type Proxy = LoopbackProxy;

async fn start(pool: &str) -> Proxy {
    LoopbackProxy::start(|listen, admin| format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 2s}}\npools:\n  p:\n{pool}routes: [{{pool: p}}]\n"
    ))
    .await
}

fn backends(origins: &[&OriginHandle]) -> String {
    format!("    backends: [{}]\n", backend_entries(origins))
}

/// These tests put real load on a small machine; run them one at a time so
/// their latency measurements do not include each other's CPU contention
/// (the `retries` tests, whose load is heavy, take the same lock).
pub(crate) static LOAD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn get_request(_: usize, _: usize) -> Request<Full<Bytes>> {
    request(Method::GET, "x", "/work", Bytes::new())
}

/// POSTs numbered `{prefix}-{worker}-{n}` in `header`.
fn numbered_post(
    header: &'static str,
    prefix: &'static str,
) -> impl Fn(usize, usize) -> Request<Full<Bytes>> + Send + Sync + 'static {
    move |worker, n| {
        Request::builder()
            .method(Method::POST)
            .uri("/orders")
            .header("host", "x")
            .header(header, format!("{prefix}-{worker}-{n}"))
            .body(Full::new(Bytes::from_static(b"{\"item\": 1}")))
            .unwrap()
    }
}

/// Eight clients for `run_ms`; `victim` is stopped after `kill_after_ms`,
/// at a moment it has a request in flight.
/// Returns what the clients saw and how many requests the victim had taken.
async fn load_and_kill<F>(
    listen: SocketAddr,
    victim: &OriginHandle,
    run_ms: u64,
    kill_after_ms: u64,
    make: F,
) -> (LoadOutcome, u64)
where
    F: Fn(usize, usize) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let load = tokio::spawn(drive(
        listen,
        8,
        Duration::from_millis(run_ms),
        100_000,
        make,
    ));
    tokio::time::sleep(Duration::from_millis(kill_after_ms)).await;
    // Kill it while it holds a request (within a bounded wait), so that
    // requests in flight on it fail, whatever share it has by then.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while victim.in_flight() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let served_before_kill = victim.stats.total();
    victim.stop();
    (load.await.unwrap(), served_before_kill)
}

/// Requests for `GET /work` from a client in `region` (trusted header).
fn from(region: &'static str) -> impl Fn(usize, usize) -> Request<Full<Bytes>> + Send + Sync {
    move |_, _| {
        Request::builder()
            .uri("/work")
            .header("host", "x")
            .header("x-client-region", region)
            .body(Full::new(Bytes::new()))
            .unwrap()
    }
}

/// The `ballast_backend_share` gauge of the backend at `addr`.
async fn published_share(admin: SocketAddr, addr: SocketAddr) -> f64 {
    let metrics = get(admin, "localhost", "/metrics").await.text();
    let needle = format!("backend=\"p/{addr}\",pool=\"p\"}} ");
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ballast_backend_share{")
                .and_then(|rest| rest.strip_prefix(&needle))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no share for {addr} in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_made_four_times_slower_gets_a_clearly_smaller_share() {
    let _serial = LOAD_LOCK.lock().await;
    let fast = origin_with_latency("fast", Duration::from_millis(10)).await;
    let slowed = origin_with_latency("slowed", Duration::from_millis(10)).await;
    let proxy = start(&format!(
        "    mode: latency\n    recompute_interval: 250ms\n    max_share: 0.95\n{}",
        backends(&[&fast, &slowed])
    ))
    .await;

    let warm = drive(
        proxy.listen,
        6,
        Duration::from_millis(1500),
        10_000,
        get_request,
    )
    .await;
    assert_eq!(warm.count(200), warm.total(), "{warm:?}");
    let before = published_share(proxy.admin, slowed.addr).await;
    assert!(
        (0.3..=0.7).contains(&before),
        "equal origins, similar shares: {before}"
    );

    slowed.set_latency(Duration::from_millis(40));
    let settle = drive(
        proxy.listen,
        6,
        Duration::from_millis(2000),
        10_000,
        get_request,
    )
    .await;
    let (fast_mark, slowed_mark) = (fast.stats.total(), slowed.stats.total());
    // Longer than a latency sample stays fresh (3 s): whatever exploration
    // draws, the slowed origin is probed again within this window.
    let measured = drive(
        proxy.listen,
        6,
        Duration::from_millis(3500),
        10_000,
        get_request,
    )
    .await;
    assert_eq!(
        settle.count(200) + measured.count(200),
        settle.total() + measured.total()
    );

    let fast_n = fast.stats.total() - fast_mark;
    let slowed_n = slowed.stats.total() - slowed_mark;
    let traffic_share = slowed_n as f64 / (fast_n + slowed_n) as f64;
    let after = published_share(proxy.admin, slowed.addr).await;
    eprintln!("slowed origin: published share {before:.3} -> {after:.3}; traffic share {traffic_share:.3} ({slowed_n} of {})", fast_n + slowed_n);
    // The published share comes from 10 s windows that still hold the
    // time before the change; the requests' own choice (below) is sharper.
    assert!(
        after < 0.4,
        "published share of the 4x slower origin: {after} (was {before})"
    );
    assert!(
        traffic_share < 0.35,
        "traffic to the 4x slower origin: {traffic_share:.3} ({slowed_n} of {})",
        fast_n + slowed_n
    );
    assert!(slowed_n > 0, "the slow origin keeps its floor traffic");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_ewma_sends_little_to_a_slower_origin_and_every_request_succeeds() {
    let _serial = LOAD_LOCK.lock().await;
    let fast = origin_with_latency("fast", Duration::from_millis(5)).await;
    let slow = origin_with_latency("slow", Duration::from_millis(40)).await;
    let proxy = start(&format!(
        "    mode: peak_ewma\n{}",
        backends(&[&fast, &slow])
    ))
    .await;
    let run = drive(
        proxy.listen,
        6,
        Duration::from_millis(2000),
        10_000,
        get_request,
    )
    .await;
    assert_eq!(run.count(200), run.total(), "{run:?}");
    let (fast_n, slow_n) = (fast.stats.total(), slow.stats.total());
    let slow_share = slow_n as f64 / (fast_n + slow_n) as f64;
    eprintln!("peak_ewma: slow origin got {slow_n} of {}", fast_n + slow_n);
    // Six clients on a 5 ms origin: the 8x slower one only wins a draw when
    // the fast one holds 7 or more requests, which six clients cannot make
    // (on a loaded machine the fast one slows too: 11% was seen; round
    // robin would give 50%).
    assert!(
        slow_share < 0.2,
        "traffic to the 8x slower origin: {slow_share:.3} ({slow_n} of {})",
        fast_n + slow_n
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_killed_mid_load_costs_no_get_errors() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(3)).await;
    let b = origin_with_latency("b", Duration::from_millis(3)).await;
    let victim = origin_with_latency("victim", Duration::from_millis(3)).await;
    let proxy = start(&format!(
        "    recompute_interval: 250ms\n{}",
        backends(&[&a, &b, &victim])
    ))
    .await;

    let (outcome, served_before_kill) =
        load_and_kill(proxy.listen, &victim, 3000, 1000, get_request).await;

    eprintln!("killed origin: {outcome:?}, victim served {served_before_kill} before the kill");
    assert!(
        served_before_kill > 0,
        "the victim took traffic before it died"
    );
    assert!(outcome.total() > 200, "{outcome:?}");
    assert_eq!(
        outcome.count(200),
        outcome.total(),
        "every GET succeeded: {outcome:?}"
    );
    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_retries_total{"),
        "retries happened:\n{metrics}"
    );
    assert!(
        metrics.contains("ballast_outlier_ejections_total{pool=\"p\"} 1"),
        "the dead origin was ejected:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_never_sent_twice() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(20)).await;
    let b = origin_with_latency("b", Duration::from_millis(20)).await;
    let victim = origin_with_latency("victim", Duration::from_millis(20)).await;
    let proxy = start(&format!(
        "    recompute_interval: 250ms\n    retries: {{attempts: 3}}\n{}",
        backends(&[&a, &b, &victim])
    ))
    .await;

    let post = numbered_post("x-request-id", "post");
    let (outcome, _) = load_and_kill(proxy.listen, &victim, 2500, 800, post).await;

    eprintln!("POSTs with a killed origin: {outcome:?}");
    assert!(outcome.total() > 100, "{outcome:?}");
    let mut sent = 0;
    for worker in 0..8 {
        for n in 0..100_000 {
            let id = format!("post-{worker}-{n}");
            let seen: u64 = [&a, &b, &victim]
                .iter()
                .map(|o| o.stats.seen_request_id(&id))
                .sum();
            if seen == 0 && n > outcome.total() {
                break;
            }
            assert!(seen <= 1, "{id} reached origins {seen} times");
            sent += seen;
        }
    }
    let posts: u64 = [&a, &b, &victim]
        .iter()
        .map(|o| o.stats.count(&Method::POST))
        .sum();
    assert_eq!(sent, posts, "every POST the origins saw was counted once");
    // POSTs in flight on the victim when it died fail rather than being replayed.
    assert_eq!(
        outcome.count(200) + outcome.count(502) + outcome.transport_errors,
        outcome.total(),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_load_reports_steer_traffic_and_never_reach_the_client() {
    let _serial = LOAD_LOCK.lock().await;
    let idle = origin_with_latency("idle", Duration::from_millis(2)).await;
    let busy = origin_with_latency("busy", Duration::from_millis(2)).await;
    let liar = origin_with_latency("liar", Duration::from_millis(2)).await;
    idle.set_server_load(Some("util=0.1, inflight=1, capacity=100"));
    busy.set_server_load(Some("0.95"));
    liar.set_server_load(Some("util=NaN"));
    let proxy = start(&format!(
        "    recompute_interval: 250ms\n    max_share: 0.95\n{}",
        backends(&[&idle, &busy, &liar])
    ))
    .await;

    let reply = get(proxy.listen, "x", "/").await;
    assert_eq!(
        reply.header("server-load"),
        None,
        "stripped before the client sees it"
    );
    drive(
        proxy.listen,
        4,
        Duration::from_millis(2000),
        10_000,
        get_request,
    )
    .await;

    let idle_share = published_share(proxy.admin, idle.addr).await;
    let busy_share = published_share(proxy.admin, busy.addr).await;
    eprintln!("server-load shares: idle {idle_share:.3}, busy {busy_share:.3}");
    assert!(
        busy_share < idle_share / 5.0,
        "busy {busy_share} vs idle {idle_share}"
    );
    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_server_load_errors_total{pool=\"p\",reason=\"out_of_range\"}")
            || metrics
                .contains("ballast_server_load_errors_total{pool=\"p\",reason=\"malformed\"}"),
        "the liar's NaN is counted:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_backend_out_and_slow_start_brings_it_back() {
    let _serial = LOAD_LOCK.lock().await;
    let steady = origin_with_latency("steady", Duration::from_millis(2)).await;
    let flaky = origin_with_latency("flaky", Duration::from_millis(2)).await;
    let proxy = start(&format!(
        "    recompute_interval: 100ms\n    slow_start: 4s\n    max_share: 1.0\n    health: {{path: /healthz, interval: 100ms, timeout: 500ms, healthy_after: 2, unhealthy_after: 2}}\n{}",
        backends(&[&steady, &flaky])
    ))
    .await;
    drive(
        proxy.listen,
        2,
        Duration::from_millis(600),
        10_000,
        get_request,
    )
    .await;
    assert!(published_share(proxy.admin, flaky.addr).await > 0.3);

    flaky.set_healthy(false);
    let mut waited = Duration::ZERO;
    while published_share(proxy.admin, flaky.addr).await > 0.0 {
        assert!(
            waited < Duration::from_secs(3),
            "unhealthy backend still has a share"
        );
        drive(
            proxy.listen,
            1,
            Duration::from_millis(100),
            10_000,
            get_request,
        )
        .await;
        waited += Duration::from_millis(100);
    }
    let mark = flaky.stats.count_path("/work");
    let out = drive(
        proxy.listen,
        2,
        Duration::from_millis(500),
        10_000,
        get_request,
    )
    .await;
    assert_eq!(out.count(200), out.total());
    assert_eq!(
        flaky.stats.count_path("/work"),
        mark,
        "no traffic while unhealthy"
    );

    flaky.set_healthy(true);
    let mut first_share = 0.0;
    let mut waited = Duration::ZERO;
    while first_share == 0.0 {
        assert!(
            waited < Duration::from_secs(3),
            "recovered backend never came back"
        );
        drive(
            proxy.listen,
            1,
            Duration::from_millis(100),
            10_000,
            get_request,
        )
        .await;
        waited += Duration::from_millis(100);
        first_share = published_share(proxy.admin, flaky.addr).await;
    }
    eprintln!("health: back in after {waited:?} at share {first_share:.3}");
    assert!(
        first_share < 0.25,
        "re-admitted through slow start, not at full share: {first_share}"
    );
    drive(
        proxy.listen,
        2,
        Duration::from_millis(4500),
        100_000,
        get_request,
    )
    .await;
    let ramped = published_share(proxy.admin, flaky.addr).await;
    eprintln!("health: after slow start share {ramped:.3}");
    assert!(ramped > 0.35, "ramped back to a fair share: {ramped}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_an_idempotency_key_is_retried_elsewhere() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(20)).await;
    let victim = origin_with_latency("victim", Duration::from_millis(20)).await;
    let proxy = start(&format!(
        "    recompute_interval: 250ms\n    retries: {{attempts: 2}}\n{}",
        backends(&[&a, &victim])
    ))
    .await;
    let keyed_post = numbered_post("idempotency-key", "pay");
    let (outcome, in_flight_on_victim) =
        load_and_kill(proxy.listen, &victim, 2000, 700, keyed_post).await;
    eprintln!("keyed POSTs with a killed origin: {outcome:?}");
    assert!(
        in_flight_on_victim > 0,
        "the victim took keyed POSTs before it died"
    );
    assert_eq!(outcome.count(200), outcome.total(), "{outcome:?}");
    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_retries_total{cause=\"reset\",pool=\"p\"}"),
        "POSTs in flight on the dead origin were retried:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_served_in_their_region_and_fences_hold() {
    let _serial = LOAD_LOCK.lock().await;
    let east = origin_with_latency("east", Duration::from_millis(1)).await;
    let west = origin_with_latency("west", Duration::from_millis(1)).await;
    let eu = origin_with_latency("eu", Duration::from_millis(1)).await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"{}
  p:
    recompute_interval: 100ms
    outlier: {{max_ejected: 1.0}}
    backends:
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-west}}
      - {{addr: "{}", region: eu-west}}
routes: [{{pool: p}}]
"#,
        three_regions(listen, admin),
        east.addr,
        west.addr,
        eu.addr
    );
    let _ballast = RunningBallast::start(&yaml, std::path::Path::new("."), &[listen, admin]).await;
    for (region, origin) in [("us-east", &east), ("us-west", &west), ("eu-west", &eu)] {
        let before = origin.stats.count_path("/work");
        let out = drive(listen, 2, Duration::from_millis(300), 50, from(region)).await;
        assert_eq!(out.count(200), out.total());
        assert_eq!(
            origin.stats.count_path("/work") - before,
            out.total() as u64,
            "{region} stays home"
        );
    }

    // Asked by a trusted peer, the response explains the decision.
    let mut asked = from("us-west")(0, 0);
    asked
        .headers_mut()
        .insert("x-ballast-debug", "1".parse().unwrap());
    let explained = send(listen, asked).await;
    let expected = format!(
        "client_region=us-west; rule=local; backend=p/{}; share=",
        west.addr
    );
    assert!(
        explained
            .header("x-ballast-decision")
            .unwrap()
            .starts_with(&expected),
        "{:?}",
        explained.headers
    );
    assert_eq!(
        send(listen, from("us-west")(0, 0))
            .await
            .header("x-ballast-decision"),
        None,
        "only when asked"
    );

    // us-east goes down: its clients spill to us-west without an error.
    east.stop();
    let out = drive(listen, 2, Duration::from_millis(800), 1000, from("us-east")).await;
    assert_eq!(out.count(200), out.total(), "{out:?}");
    let mut asked = from("us-east")(0, 0);
    asked
        .headers_mut()
        .insert("x-ballast-debug", "1".parse().unwrap());
    let explained = send(listen, asked).await;
    assert!(
        explained
            .header("x-ballast-decision")
            .unwrap()
            .contains("rule=fallback:us-east->us-west"),
        "{:?}",
        explained.headers
    );
    // Recorded as each request's handling ends, just after its response.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while admin_decisions(admin, "request").await.len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "explained requests are in the decision log"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // eu-west goes down: its fenced clients get a clear 503, never another region.
    // Until eu-west is taken out (ejected after its failures: both dead
    // regions may be), a request that fails there gets its own 502.
    eu.stop();
    let west_before = west.stats.count_path("/work");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let reply = loop {
        let reply = send(listen, from("eu-west")(0, 0)).await;
        if reply.status != http::StatusCode::BAD_GATEWAY {
            break reply;
        }
        assert!(std::time::Instant::now() < deadline, "eu-west is taken out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        reply.status,
        http::StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.text()
    );
    assert_eq!(
        reply.header("x-ballast-reason"),
        Some("residency; client region eu-west")
    );
    assert!(reply.text().contains("residency fence"), "{}", reply.text());
    let out = drive(listen, 2, Duration::from_millis(500), 1000, from("eu-west")).await;
    assert_eq!(out.count(503), out.total(), "{out:?}");
    assert_eq!(
        west.stats.count_path("/work"),
        west_before,
        "nothing leaked to us-west"
    );
    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_residency_rejections_total{client_region=\"eu-west\"}"),
        "{metrics}"
    );
}

/// A fenced client whose only allowed backend fails gets that failure (502
/// could not connect, 504 timed out), not a retry that its fence then
/// refuses with a residency 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_client_whose_backend_fails_gets_that_failure_not_a_residency_503() {
    let _serial = LOAD_LOCK.lock().await;
    let east = origin_named("east").await;
    let west = origin_named("west").await;
    let eu_slow = origin_with_latency("eu", Duration::from_secs(3)).await;
    let eu_dead = dead_addr();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"{}
  dead:
    backends:
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-west}}
      - {{addr: "{eu_dead}", region: eu-west}}
  slow:
    read_timeout: 300ms
    backends:
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-west}}
      - {{addr: "{}", region: eu-west}}
routes:
  - {{match: {{path_prefix: /dead}}, pool: dead}}
  - {{match: {{path_prefix: /slow}}, pool: slow}}
"#,
        three_regions(listen, admin),
        east.addr,
        west.addr,
        east.addr,
        west.addr,
        eu_slow.addr
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    let from_eu = |path: &str| {
        Request::builder()
            .uri(path)
            .header("host", "x")
            .header("x-client-region", "eu-west")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let reply = send(listen, from_eu("/dead")).await;
    assert_eq!(
        reply.status,
        http::StatusCode::BAD_GATEWAY,
        "{}",
        reply.text()
    );
    assert_eq!(
        reply.text(),
        "bad gateway: could not connect to the backend\n"
    );
    assert_eq!(reply.header("x-ballast-reason"), None);

    let reply = send(listen, from_eu("/slow")).await;
    assert_eq!(
        reply.status,
        http::StatusCode::GATEWAY_TIMEOUT,
        "{}",
        reply.text()
    );
    assert_eq!(
        reply.text(),
        "gateway timeout: the backend did not answer in time\n"
    );
    assert_eq!(reply.header("x-ballast-reason"), None);

    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        !metrics.contains("ballast_residency_rejections_total{"),
        "no request was refused by its fence:\n{metrics}"
    );
    assert!(
        !metrics.contains("ballast_retries_total{"),
        "nothing was retried:\n{metrics}"
    );
    assert_eq!(
        east.stats.total() + west.stats.total(),
        0,
        "nothing left the fence"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_going_bad_is_cut_off_within_two_seconds() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(2)).await;
    let b = origin_with_latency("b", Duration::from_millis(2)).await;
    let canary = origin_with_latency("canary", Duration::from_millis(2)).await;
    let proxy = start(&format!(
        "    recompute_interval: 100ms\n    retries: {{attempts: 1}}\n    backends:\n      - {{addr: \"{}\"}}\n      - {{addr: \"{}\"}}\n      - {{addr: \"{}\", canary: {{floor: 0.1, max: 0.3, max_error_rate: 0.05, min_requests: 10, cooldown: 30s}}}}\n",
        a.addr, b.addr, canary.addr
    ))
    .await;
    drive(
        proxy.listen,
        4,
        Duration::from_millis(1000),
        100_000,
        get_request,
    )
    .await;
    let before = published_share(proxy.admin, canary.addr).await;
    assert!(before >= 0.1 - 1e-9, "the canary keeps its floor: {before}");

    canary
        .update(ballast_load_tests::behaviour::BehaviourUpdate {
            error_rate: Some(0.3),
            ..Default::default()
        })
        .await
        .unwrap();
    let went_bad = std::time::Instant::now();
    let mut cut_off = None;
    while cut_off.is_none() && went_bad.elapsed() < Duration::from_secs(5) {
        drive(
            proxy.listen,
            4,
            Duration::from_millis(100),
            100_000,
            get_request,
        )
        .await;
        if published_share(proxy.admin, canary.addr).await == 0.0 {
            cut_off = Some(went_bad.elapsed());
        }
    }
    let cut_off = cut_off.expect("the canary breaker opened");
    eprintln!("canary cut off {cut_off:?} after going bad");
    assert!(cut_off <= Duration::from_secs(2), "{cut_off:?}");
    let mark = canary.stats.count_path("/work");
    drive(
        proxy.listen,
        4,
        Duration::from_millis(500),
        100_000,
        get_request,
    )
    .await;
    assert_eq!(
        canary.stats.count_path("/work"),
        mark,
        "no traffic while the breaker is open"
    );
    let tripped = admin_decisions(proxy.admin, "canary_tripped").await;
    assert_eq!(tripped.len(), 1, "{tripped:?}");
    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_canary_breaker_trips_total{pool=\"p\"} 1"),
        "{metrics}"
    );
}

async fn admin_decisions(admin: SocketAddr, kind: &str) -> Vec<serde_json::Value> {
    let value = admin_json(admin, &format!("/api/v1/decisions?kind={kind}")).await;
    value["decisions"].as_array().cloned().unwrap_or_default()
}

/// A region's spill fraction as the admin state shows it.
async fn region_spill(admin: SocketAddr, region: &str) -> f64 {
    let state = admin_json(admin, "/api/v1/state").await;
    state["pools"][0]["regions"]
        .as_array()
        .and_then(|regions| regions.iter().find(|r| r["region"] == region))
        .and_then(|r| r["spill"].as_f64())
        .unwrap_or_else(|| panic!("no region {region} in {state}"))
}

/// Poll `check` every 50 ms until it holds, for at most `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_region_spills_step_by_step_and_comes_back_but_fences_hold() {
    let _serial = LOAD_LOCK.lock().await;
    let fast = Duration::from_millis(2);
    let slow = Duration::from_millis(60);
    let east_a = origin_with_latency("east-a", fast).await;
    let east_b = origin_with_latency("east-b", fast).await;
    let west = origin_with_latency("west", fast).await;
    let eu = origin_with_latency("eu", fast).await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"
listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, drain_timeout: 2s}}
regions:
  us-east: {{fallback: [us-west, eu-west]}}
  us-west: {{fallback: [us-east]}}
  eu-west: {{fallback: [us-east]}}
geo:
  client_region: [{{header: X-Client-Region, trusted_peers: ["127.0.0.1"]}}, {{default: us-east}}]
  residency: [{{clients: [eu-west], allowed: [eu-west]}}]
explain: {{trusted_peers: ["127.0.0.1"]}}
pools:
  p:
    recompute_interval: 100ms
    spillover: {{latency_above: 30ms, step: 0.1, max: 0.6, hold: 1s}}
    backends:
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-west}}
      - {{addr: "{}", region: eu-west}}
routes: [{{pool: p}}]
"#,
        east_a.addr, east_b.addr, west.addr, eu.addr
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    let served = |o: &OriginHandle| o.stats.count_path("/work");

    // Calm: us-east clients stay in us-east.
    let out = drive(
        listen,
        4,
        Duration::from_millis(800),
        10_000,
        from("us-east"),
    )
    .await;
    assert_eq!(out.count(200), out.total(), "{out:?}");
    assert_eq!(served(&west), 0, "nothing spills while us-east is fast");
    assert_eq!(region_spill(admin, "us-east").await, 0.0);

    // us-east slows past the threshold: traffic moves to us-west a step at a time.
    east_a.set_latency(slow);
    east_b.set_latency(slow);
    let load = tokio::spawn(drive(
        listen,
        4,
        Duration::from_secs(6),
        100_000,
        from("us-east"),
    ));
    let took = eventually(
        "us-east spilling at its max",
        Duration::from_secs(6),
        || async move { region_spill(admin, "us-east").await >= 0.6 - 1e-9 },
    )
    .await;
    println!("us-east reached its max spill 0.6 in {took:?}");
    let spills = admin_decisions(admin, "spill").await;
    let fractions: Vec<f64> = spills
        .iter()
        .filter(|d| d["backend"] == "us-east")
        .map(|d| d["new_share"].as_f64().unwrap())
        .collect();
    assert_eq!(
        fractions,
        vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        "one step per interval, each a decision: {spills:?}"
    );
    assert!(
        spills[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("spill:us-east->us-west ewma latency"),
        "{spills:?}"
    );
    let (east_then, west_then) = (served(&east_a) + served(&east_b), served(&west));
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let east_moved = served(&east_a) + served(&east_b) - east_then;
    let west_moved = served(&west) - west_then;
    let west_share = west_moved as f64 / (east_moved + west_moved) as f64;
    println!("at spill 0.6, us-west took {west_share:.2} of us-east's requests by count");
    // Each request moves with probability 0.6, whatever the latencies.
    assert!(
        (0.4..=0.8).contains(&west_share),
        "{east_moved} east, {west_moved} west"
    );
    let mut asked = from("us-east")(0, 0);
    asked
        .headers_mut()
        .insert("x-ballast-debug", "1".parse().unwrap());
    let mut rules = Vec::new();
    for _ in 0..20 {
        let reply = send(listen, asked.clone()).await;
        rules.push(
            reply
                .header("x-ballast-decision")
                .unwrap_or("-")
                .to_string(),
        );
    }
    assert!(
        rules
            .iter()
            .any(|r| r.contains("rule=spill:us-east->us-west")),
        "{rules:?}"
    );
    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains(
            "ballast_spilled_requests_total{client_region=\"us-east\",pool=\"p\",region=\"us-west\"}"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("ballast_region_spill_fraction{pool=\"p\",region=\"us-east\"} 0.6"),
        "{metrics}"
    );
    let out = load.await.unwrap();
    assert_eq!(
        out.count(200),
        out.total(),
        "spilling loses nothing: {out:?}"
    );

    // eu-west slows too, but its clients are fenced: they all stay home.
    eu.set_latency(slow);
    let eu_before = served(&eu);
    let out = drive(listen, 2, Duration::from_secs(2), 100_000, from("eu-west")).await;
    assert_eq!(out.count(200), out.total(), "{out:?}");
    assert_eq!(
        served(&eu) - eu_before,
        out.total() as u64,
        "every fenced request served in eu-west"
    );
    eu.set_latency(fast);

    // us-east recovers: after the hold, traffic steps back home.
    east_a.set_latency(fast);
    east_b.set_latency(fast);
    let load = tokio::spawn(drive(
        listen,
        4,
        Duration::from_secs(5),
        1_000_000,
        from("us-east"),
    ));
    let took = eventually("us-east back home", Duration::from_secs(5), || async move {
        region_spill(admin, "us-east").await == 0.0
    })
    .await;
    println!("us-east spill back to 0 in {took:?}");
    let back: Vec<f64> = admin_decisions(admin, "spill")
        .await
        .iter()
        .filter(|d| d["backend"] == "us-east")
        .map(|d| d["new_share"].as_f64().unwrap())
        .collect();
    assert_eq!(
        back[6..],
        [0.5, 0.4, 0.3, 0.2, 0.1, 0.0],
        "back one step at a time, never up again: {back:?}"
    );
    let out = load.await.unwrap();
    assert_eq!(out.count(200), out.total(), "{out:?}");
    let west_before = served(&west);
    let out = drive(
        listen,
        4,
        Duration::from_millis(500),
        10_000,
        from("us-east"),
    )
    .await;
    assert_eq!(out.count(200), out.total(), "{out:?}");
    assert_eq!(served(&west), west_before, "nothing spills once back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_canary_users_stay_on_their_side() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(1)).await;
    let b = origin_with_latency("b", Duration::from_millis(1)).await;
    let canary = origin_with_latency("canary", Duration::from_millis(1)).await;
    let proxy = start(&format!(
        "    recompute_interval: 100ms\n    canary_sticky: {{header: x-user}}\n    backends:\n      - {{addr: \"{}\"}}\n      - {{addr: \"{}\"}}\n      - {{addr: \"{}\", canary: {{floor: 0.2, max: 0.2}}}}\n",
        a.addr, b.addr, canary.addr
    ))
    .await;
    // Let the engine publish shares (canary pinned at 0.2 by floor = max).
    drive(
        proxy.listen,
        2,
        Duration::from_millis(500),
        10_000,
        get_request,
    )
    .await;
    assert!((published_share(proxy.admin, canary.addr).await - 0.2).abs() < 1e-6);

    let mut on_canary = 0;
    for user in 0..60 {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..5 {
            let req = Request::builder()
                .uri("/work")
                .header("host", "x")
                .header("x-user", format!("user-{user}"))
                .body(Full::new(Bytes::new()))
                .unwrap();
            let reply = send(proxy.listen, req).await;
            assert_eq!(reply.status, 200);
            seen.insert(reply.header("x-origin").unwrap().to_string());
        }
        // The promise is the side of the canary; between the two stable
        // backends a user near their boundary may move as their shares jitter.
        let sides: std::collections::BTreeSet<bool> =
            seen.iter().map(|origin| origin == "canary").collect();
        assert_eq!(sides.len(), 1, "user-{user} crossed the canary: {seen:?}");
        on_canary += usize::from(seen.contains("canary"));
    }
    println!("{on_canary} of 60 users on the canary (share 0.2)");
    assert!((3..=24).contains(&on_canary), "{on_canary} of 60");
}

/// Refuse connections (`true`) or serve again.
async fn refuse(origin: &OriginHandle, refusing: bool) {
    let failure = if refusing {
        FailureMode::Refuse
    } else {
        FailureMode::Healthy
    };
    origin
        .update(BehaviourUpdate {
            failure: Some(failure),
            ..BehaviourUpdate::default()
        })
        .await
        .expect("origin changes mode");
}

/// A priority tier's load as the admin state shows it.
async fn tier_load(admin: SocketAddr, priority: u64) -> f64 {
    let state = admin_json(admin, "/api/v1/state").await;
    state["pools"][0]["tiers"]
        .as_array()
        .and_then(|tiers| tiers.iter().find(|t| t["priority"] == priority))
        .and_then(|t| t["load"].as_f64())
        .unwrap_or_else(|| panic!("no tier {priority} in {state}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prewarmed_standby_takes_over_when_the_primaries_fail_and_hands_back() {
    let _serial = LOAD_LOCK.lock().await;
    let primary_a = origin_with_latency("primary-a", Duration::from_millis(2)).await;
    let primary_b = origin_with_latency("primary-b", Duration::from_millis(2)).await;
    let standby = origin_with_latency("standby", Duration::from_millis(2)).await;
    let proxy = start(&format!(
        "    recompute_interval: 100ms\n    prewarm_share: 0.02\n    retries: {{attempts: 3}}\n    outlier: {{base_ejection: 1s}}\n    health: {{path: /healthz, interval: 100ms, timeout: 500ms, healthy_after: 2, unhealthy_after: 2}}\n    backends:\n      - {{addr: \"{}\"}}\n      - {{addr: \"{}\"}}\n      - {{addr: \"{}\", priority: 1}}\n",
        primary_a.addr, primary_b.addr, standby.addr
    ))
    .await;
    let standby_served = || standby.stats.count_path("/work");

    // Full health: the standby gets its 2% trickle, never nothing.
    drive(
        proxy.listen,
        4,
        Duration::from_millis(500),
        100_000,
        get_request,
    )
    .await;
    let mark = standby_served();
    let out = drive(
        proxy.listen,
        4,
        Duration::from_secs(2),
        100_000,
        get_request,
    )
    .await;
    let trickle = (standby_served() - mark) as f64 / out.total() as f64;
    eprintln!(
        "tiers: standby took {:.2}% of {} requests at full health",
        trickle * 100.0,
        out.total()
    );
    assert_eq!(out.count(200), out.total());
    assert!((0.005..=0.05).contains(&trickle), "trickle {trickle}");

    // Both primaries refuse connections under load: retries carry every GET
    // to the standby until the health checks move the traffic.
    let load = tokio::spawn(drive(
        proxy.listen,
        4,
        Duration::from_secs(3),
        100_000,
        get_request,
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failed_at = std::time::Instant::now();
    refuse(&primary_a, true).await;
    refuse(&primary_b, true).await;
    let took = eventually("failover", Duration::from_secs(3), || async {
        tier_load(proxy.admin, 1).await > 0.99
    })
    .await;
    eprintln!("tiers: standby took everything {took:?} after the primaries failed");
    let out = load.await.unwrap();
    eprintln!("tiers: during the failover {:?}", out.statuses);
    assert_eq!(out.count(200), out.total(), "no failed GET: {out:?}");
    let failover = admin_decisions(proxy.admin, "failover").await;
    assert_eq!(failover.len(), 1, "{failover:?}");
    assert_eq!(failover[0]["backend"], "tier 1");

    // The primaries come back: the standby returns to its trickle.
    refuse(&primary_a, false).await;
    refuse(&primary_b, false).await;
    let recovered_at = std::time::Instant::now();
    let back = eventually("failback", Duration::from_secs(3), || async {
        (tier_load(proxy.admin, 1).await - 0.02).abs() < 1e-6
    })
    .await;
    eprintln!(
        "tiers: back to the trickle {back:?} after recovery ({:?} after the failure)",
        failed_at.elapsed()
    );
    let mark = standby_served();
    let out = drive(
        proxy.listen,
        4,
        Duration::from_secs(1),
        100_000,
        get_request,
    )
    .await;
    assert_eq!(out.count(200), out.total());
    let trickle = (standby_served() - mark) as f64 / out.total() as f64;
    assert!(trickle <= 0.05, "back to a trickle: {trickle}");
    let failback = admin_decisions(proxy.admin, "failback").await;
    assert_eq!(failback.len(), 1, "{failback:?}");
    assert!(recovered_at.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_robin_shadow_beside_latency_routing_disagrees_and_predicts_slower_without_routing()
{
    let _serial = LOAD_LOCK.lock().await;
    let fast = origin_with_latency("fast", Duration::from_millis(2)).await;
    let slow = origin_with_latency("slow", Duration::from_millis(80)).await;
    let proxy = start(&format!(
        "    mode: latency\n    recompute_interval: 250ms\n    max_share: 0.95\n    shadow: {{mode: round_robin}}\n{}",
        backends(&[&fast, &slow])
    ))
    .await;
    let shadow_counts = || async {
        let state = admin_json(proxy.admin, "/api/v1/state").await;
        let shadow = state["pools"][0]["shadow"].clone();
        let count = |key: &str| shadow[key].as_u64().unwrap_or_else(|| panic!("{shadow}"));
        (count("same"), count("different"))
    };

    let settle = drive(
        proxy.listen,
        6,
        Duration::from_millis(2000),
        10_000,
        get_request,
    )
    .await;
    let (fast_mark, slow_mark) = (fast.stats.total(), slow.stats.total());
    let (same_mark, different_mark) = shadow_counts().await;
    // Longer than a latency sample stays fresh (3 s): whatever exploration
    // draws, the slowed origin is probed again within this window.
    let measured = drive(
        proxy.listen,
        6,
        Duration::from_millis(3500),
        10_000,
        get_request,
    )
    .await;
    assert_eq!(
        settle.count(200) + measured.count(200),
        settle.total() + measured.total()
    );
    let fast_n = fast.stats.total() - fast_mark;
    let slow_n = slow.stats.total() - slow_mark;
    let slow_traffic = slow_n as f64 / (fast_n + slow_n) as f64;
    let (same, different) = shadow_counts().await;
    let (same_n, different_n) = (same - same_mark, different - different_mark);
    let disagreement = different_n as f64 / (same_n + different_n) as f64;

    let state = admin_json(proxy.admin, "/api/v1/state").await;
    let shadow = &state["pools"][0]["shadow"];
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("{shadow}"));
    let compared = number(&shadow["compared"]);
    let moved = number(&shadow["predicted"]["moved_fraction"]);
    let live_ms = number(&shadow["predicted"]["live"]["latency_ms"]);
    let candidate_ms = number(&shadow["predicted"]["candidate"]["latency_ms"]);
    let slow_live_share = published_share(proxy.admin, slow.addr).await;
    eprintln!(
        "shadow round_robin vs live latency: disagreement {disagreement:.3} over {} requests (predicted moved fraction {moved:.3}), predicted {live_ms:.1} ms live vs {candidate_ms:.1} ms candidate; slow origin share {slow_live_share:.3}, traffic {slow_traffic:.3} ({slow_n} of {})",
        same_n + different_n,
        fast_n + slow_n
    );
    assert_eq!(shadow["mode"], "round_robin");
    let requests = (settle.total() + measured.total()) as f64;
    assert!(
        compared >= 0.9 * requests && compared <= requests,
        "every request is compared once weights are out: {compared} of {requests}"
    );
    assert_eq!(
        (same_n + different_n) as usize,
        measured.total(),
        "each measured request compared once"
    );
    // Live sends most to the fast origin; round robin would split evenly.
    assert!(
        disagreement > 0.25,
        "disagreement {disagreement} with the slow origin at {slow_live_share}"
    );
    assert!(
        (disagreement - moved).abs() < 0.12,
        "measured disagreement {disagreement:.3} against the share difference {moved:.3}"
    );
    assert!(
        candidate_ms > live_ms * 1.5,
        "round robin predicted slower: {candidate_ms} vs {live_ms}"
    );
    let candidate_slow_share = shadow["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["id"] == format!("p/{}", slow.addr)))
        .map(|b| number(&b["candidate_share"]));
    assert_eq!(candidate_slow_share, Some(0.5));
    // The requests themselves follow the live policy only.
    assert!(
        slow_traffic < 0.3,
        "traffic to the slow origin: {slow_traffic:.3} ({slow_n} of {})",
        fast_n + slow_n
    );

    let config = admin_json(proxy.admin, "/api/v1/config").await;
    assert_eq!(config["pools"][0]["shadow"]["mode"], "round_robin");
    assert_eq!(config["pools"][0]["shadow"]["sample"], 1.0);

    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    let different = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("ballast_shadow_decisions_total{outcome=\"different\",pool=\"p\"} ")
        })
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no shadow decisions in\n{metrics}"));
    assert!(different > 0.0);
    assert!(metrics
        .contains("ballast_shadow_predicted_latency_seconds{policy=\"candidate\",pool=\"p\"}"));
    assert!(metrics.contains(&format!(
        "ballast_shadow_share{{backend=\"p/{}\",pool=\"p\"}} 0.5",
        slow.addr
    )));
}

fn keyed_request(key: usize) -> Request<Full<Bytes>> {
    Request::builder()
        .uri("/work")
        .header("host", "x")
        .header("x-session", format!("session-{key}"))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The origin serving each of `keys` sessions (asked `tries` times each:
/// a key must land on the same origin unless the ring moved keys, a
/// `key_move` decision, while it was asked; then its last owner counts).
async fn key_owners(
    listen: SocketAddr,
    admin: SocketAddr,
    keys: usize,
    tries: usize,
) -> Vec<String> {
    let mut owners = Vec::with_capacity(keys);
    for key in 0..keys {
        let moves_before = key_moves(admin).await;
        let mut seen = std::collections::BTreeSet::new();
        let mut last = String::new();
        for _ in 0..tries {
            let reply = send(listen, keyed_request(key)).await;
            assert_eq!(reply.status, 200);
            last = reply.header("x-origin").unwrap().to_string();
            seen.insert(last.clone());
        }
        if seen.len() > 1 {
            assert!(
                key_moves(admin).await > moves_before,
                "session-{key} bounced between {seen:?} without a key move"
            );
        }
        owners.push(last);
    }
    owners
}

/// Key moves decided so far.
async fn key_moves(admin: SocketAddr) -> usize {
    let moves = admin_json(admin, "/api/v1/decisions?kind=key_move&limit=2048").await;
    moves["decisions"].as_array().map_or(0, Vec::len)
}

/// Keyed load until the ring holds still (no key moved for a whole round).
async fn until_the_ring_settles(listen: SocketAddr, admin: SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let before = key_moves(admin).await;
        drive(listen, 4, Duration::from_millis(500), 100_000, |w, n| {
            keyed_request(w * 100_000 + n)
        })
        .await;
        if key_moves(admin).await == before {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the ring never settled"
        );
    }
}

fn owned_by(owners: &[String], origin: &str) -> usize {
    owners.iter().filter(|o| *o == origin).count()
}

const HASHED: &str = "    recompute_interval: 100ms\n    consistent_hash: {key: {header: x-session}, vnodes: 100, max_key_moves: 0.05}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_keys_stick_and_leave_a_slowed_origin_gradually() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(2)).await;
    let b = origin_with_latency("b", Duration::from_millis(2)).await;
    let slowed = origin_with_latency("slowed", Duration::from_millis(2)).await;
    let proxy = start(&format!("{HASHED}{}", backends(&[&a, &b, &slowed]))).await;
    let load = |proxy: SocketAddr, ms: u64| {
        drive(proxy, 4, Duration::from_millis(ms), 100_000, |w, n| {
            keyed_request(w * 100_000 + n)
        })
    };
    until_the_ring_settles(proxy.listen, proxy.admin).await;
    let before = key_owners(proxy.listen, proxy.admin, 300, 3).await;
    let slowed_before = owned_by(&before, "slowed");
    println!(
        "keys per origin: a {} b {} slowed {slowed_before}",
        owned_by(&before, "a"),
        owned_by(&before, "b")
    );
    assert!(
        (50..=150).contains(&slowed_before),
        "{slowed_before} of 300"
    );

    let key_space = |state: &serde_json::Value| {
        state["pools"][0]["backends"][2]["ring"]["key_space"]
            .as_f64()
            .expect("key space in the admin state")
    };
    let initial = key_space(&admin_json(proxy.admin, "/api/v1/state").await);
    slowed.set_latency(Duration::from_millis(100));
    let mut fractions = vec![initial];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while *fractions.last().unwrap() > initial * 0.5 && std::time::Instant::now() < deadline {
        load(proxy.listen, 300).await;
        fractions.push(key_space(&admin_json(proxy.admin, "/api/v1/state").await));
    }
    println!("slowed origin's key space over time: {fractions:?}");
    let last = *fractions.last().unwrap();
    assert!(last <= initial * 0.5, "{fractions:?}");
    // Key moves are decisions, each within the budget, and together they
    // account for the key space the slowed origin lost.
    let moves = admin_json(proxy.admin, "/api/v1/decisions?kind=key_move&limit=1000").await;
    let moves = moves["decisions"].as_array().unwrap().clone();
    let moved: Vec<f64> = moves
        .iter()
        .map(|d| d["new_share"].as_f64().unwrap())
        .collect();
    println!("key moves per interval: {moved:?}");
    let lost = initial - last;
    assert!(
        moved.len() as f64 >= (lost / 0.05).floor(),
        "{lost} moved 5% at a time at most: {moved:?}"
    );
    assert!(moved.iter().sum::<f64>() >= lost - 1e-9, "{moved:?}");
    assert!(moved.iter().all(|&m| m <= 0.05 + 1e-9), "{moved:?}");

    until_the_ring_settles(proxy.listen, proxy.admin).await;
    let after = key_owners(proxy.listen, proxy.admin, 300, 3).await;
    let stayed = before.iter().zip(&after).filter(|(x, y)| x == y).count();
    let slowed_after = owned_by(&after, "slowed");
    println!("after: slowed {slowed_after} of 300 keys, {stayed} of 300 stayed put");
    assert!(
        (slowed_after as f64) < slowed_before as f64 * 0.6,
        "{slowed_after} vs {slowed_before}"
    );
    // Keys that moved are mostly the slowed origin's (the fast origins'
    // shares drift too on a loaded machine: 25 of 300 moved between them in
    // one run, against 55 leaving the slowed one).
    let moved_from = |slowed: bool| {
        before
            .iter()
            .zip(&after)
            .filter(|(x, y)| x != y && (*x == "slowed") == slowed)
            .count()
    };
    let (moved_from_fast, moved_from_slowed) = (moved_from(false), moved_from(true));
    assert!(
        moved_from_fast <= 30 && moved_from_fast < moved_from_slowed,
        "{moved_from_fast} keys left a fast origin, {moved_from_slowed} the slowed one"
    );
    assert!(stayed >= 180, "most keys stay put: {stayed} of 300");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ejected_origins_keys_go_elsewhere_and_the_rest_stay() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(2)).await;
    let b = origin_with_latency("b", Duration::from_millis(2)).await;
    let c = origin_with_latency("c", Duration::from_millis(2)).await;
    let proxy = start(&format!(
        "{HASHED}    retries: {{attempts: 3}}\n    outlier: {{consecutive_failures: 1, base_ejection: 30s}}\n{}",
        backends(&[&a, &b, &c])
    ))
    .await;
    until_the_ring_settles(proxy.listen, proxy.admin).await;
    let before = key_owners(proxy.listen, proxy.admin, 300, 2).await;
    assert!(owned_by(&before, "c") > 30, "{before:?}");

    refuse(&c, true).await;
    // Its keys are retried clockwise at once; the engine then ejects it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while published_share(proxy.admin, c.addr).await > 0.0 {
        assert!(std::time::Instant::now() < deadline, "c was never ejected");
        let out = drive(
            proxy.listen,
            2,
            Duration::from_millis(100),
            100_000,
            |w, n| keyed_request(w * 100_000 + n),
        )
        .await;
        assert_eq!(out.count(200), out.total(), "retried elsewhere: {out:?}");
    }
    let after = key_owners(proxy.listen, proxy.admin, 300, 2).await;
    let mut unmoved = 0;
    let mut others = 0;
    for (x, y) in before.iter().zip(&after) {
        assert_ne!(y, "c");
        if x != "c" {
            others += 1;
            unmoved += usize::from(x == y);
        }
    }
    println!("{unmoved} of {others} keys of the other origins stayed put");
    // Only c's keys had to move; the others' shares may still shift a
    // little (within the move budget) while this runs: 97–99% stayed on a
    // quiet machine, 93% beside other tests on two cores (a reshuffled ring
    // would keep about half).
    assert!(unmoved * 100 >= others * 90, "{unmoved} of {others}");
}

/// `GET path` from a client in `region` (trusted header).
fn event_request(path: &'static str, region: &'static str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", "x")
        .header("x-client-region", region)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Offer `path` from `region` far above its budget for `ms`: the outcome
/// and the seconds it took.
async fn flood(
    listen: SocketAddr,
    path: &'static str,
    region: &'static str,
    ms: u64,
) -> (LoadOutcome, f64) {
    let started = std::time::Instant::now();
    let out = drive(
        listen,
        3,
        Duration::from_millis(ms),
        100_000,
        move |_, _| event_request(path, region),
    )
    .await;
    (out, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_budgets_cap_each_route_and_shed_the_excess_with_retry_after() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_with_latency("a", Duration::from_millis(1)).await;
    let b = origin_with_latency("b", Duration::from_millis(1)).await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"
listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, drain_timeout: 2s}}
pools:
  live:
    recompute_interval: 100ms
    backends:
      - {{addr: "{}", capacity: 50}}
      - {{addr: "{}", capacity: 50}}
routes:
  - {{name: keynote, match: {{path_prefix: /keynote}}, pool: live, budget: {{region_share: 0.6, retry_after: 2s}}}}
  - {{name: update, match: {{path_prefix: /update}}, pool: live, budget: {{region_share: 0.4, over: shed}}}}
  - {{name: other, pool: live}}
"#,
        a.addr, b.addr
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;

    // Both events at once, each offered far more than the pool's 100 req/s.
    let keynote = tokio::spawn(flood(listen, "/keynote", "-", 3_000));
    let update = tokio::spawn(flood(listen, "/update", "-", 3_000));
    let (keynote, keynote_s) = keynote.await.unwrap();
    let (update, update_s) = update.await.unwrap();
    let keynote_rate = keynote.count(200) as f64 / keynote_s;
    let update_rate = update.count(200) as f64 / update_s;
    println!(
        "keynote admitted {keynote_rate:.1}/s of {:.0}/s offered, update {update_rate:.1}/s of {:.0}/s",
        keynote.total() as f64 / keynote_s,
        update.total() as f64 / update_s
    );
    assert!(
        (50.0..=68.0).contains(&keynote_rate),
        "{keynote_rate} {keynote:?}"
    );
    assert!(
        (32.0..=46.0).contains(&update_rate),
        "{update_rate} {update:?}"
    );
    assert_eq!(
        keynote.count(200) + keynote.count(503),
        keynote.total(),
        "{keynote:?}"
    );
    assert!(keynote.count(503) > keynote.count(200), "{keynote:?}");
    assert!(update.count(503) > update.count(200), "{update:?}");

    // A shed request says why and when to come back.
    let mut shed = None;
    for _ in 0..50 {
        let reply = send(listen, event_request("/keynote", "-")).await;
        if reply.status == 503 {
            shed = Some(reply);
            break;
        }
    }
    let shed = shed.expect("a request over the budget is shed");
    assert_eq!(shed.header("retry-after"), Some("2"));
    assert_eq!(
        shed.header("x-ballast-reason"),
        Some("event budget exceeded")
    );

    // A route without a budget is unaffected.
    let (other, _) = flood(listen, "/other", "-", 500).await;
    assert_eq!(other.count(200), other.total(), "{other:?}");

    // Visible: metrics, admin state, decisions; backends' health untouched.
    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_budget_rejections_total{region=\"-\",route=\"keynote\"}"),
        "{metrics}"
    );
    let state = admin_json(admin, "/api/v1/state").await;
    let budgets = state["budgets"].as_array().expect("budgets in the state");
    assert_eq!(budgets.len(), 2);
    assert_eq!(budgets[0]["route"], "keynote");
    assert_eq!(budgets[0]["regions"][0]["capacity"], 100.0);
    assert!((budgets[0]["regions"][0]["limit"].as_f64().unwrap() - 60.0).abs() < 0.5);
    assert!(budgets[0]["regions"][0]["rejected"].as_u64().unwrap() > 0);
    for backend in state["pools"][0]["backends"].as_array().unwrap() {
        assert_eq!(backend["eligible"], true, "{backend}");
        assert_eq!(backend["consecutive_failures"], 0, "{backend}");
    }
    let decisions = admin_json(admin, "/api/v1/decisions?kind=budget").await;
    let decisions = decisions["decisions"].as_array().unwrap();
    assert!(
        decisions.iter().any(|d| d["backend"] == "keynote@-"),
        "{decisions:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_over_budget_spills_to_the_next_region_but_never_across_a_fence() {
    let _serial = LOAD_LOCK.lock().await;
    let east = origin_with_latency("east", Duration::from_millis(1)).await;
    let west = origin_with_latency("west", Duration::from_millis(1)).await;
    let eu = origin_with_latency("eu", Duration::from_millis(1)).await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"{}
  live:
    recompute_interval: 100ms
    backends:
      - {{addr: "{}", region: us-east, capacity: 100}}
      - {{addr: "{}", region: us-west, capacity: 100}}
      - {{addr: "{}", region: eu-west, capacity: 100}}
routes:
  - {{name: keynote, pool: live, budget: {{region_share: 0.5, over: spill}}}}
"#,
        three_regions(listen, admin),
        east.addr,
        west.addr,
        eu.addr
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    let served = |o: &OriginHandle| o.stats.count_path("/keynote");

    let (out, seconds) = flood(listen, "/keynote", "us-east", 3_000).await;
    let (east_rate, west_rate) = (
        served(&east) as f64 / seconds,
        served(&west) as f64 / seconds,
    );
    println!("east clients: {east_rate:.1}/s in us-east, {west_rate:.1}/s spilled to us-west, {} shed of {}", out.count(503), out.total());
    assert!((40.0..=57.0).contains(&east_rate), "{east_rate}");
    assert!((40.0..=57.0).contains(&west_rate), "spilled: {west_rate}");
    assert!(out.count(503) > 0, "beyond both budgets: shed {out:?}");
    assert_eq!(served(&eu), 0, "only to the regions of the client's plan");
    // An explained request says why it went to us-west.
    let mut seen = Vec::new();
    while seen.len() < 100 {
        let mut req = event_request("/keynote", "us-east");
        req.headers_mut()
            .insert("x-ballast-debug", http::HeaderValue::from_static("1"));
        let reply = send(listen, req).await;
        seen.push(reply.header("x-ballast-decision").unwrap_or("").to_string());
        if seen
            .last()
            .unwrap()
            .contains("rule=budget:us-east->us-west")
        {
            break;
        }
    }
    assert!(
        seen.last()
            .unwrap()
            .contains("rule=budget:us-east->us-west"),
        "no budget spill explained: {seen:?}"
    );

    // A fenced client over budget is shed, never sent outside its fence.
    let (before_east, before_west) = (served(&east), served(&west));
    let (fenced, seconds) = flood(listen, "/keynote", "eu-west", 2_000).await;
    let eu_rate = served(&eu) as f64 / seconds;
    println!(
        "fenced eu clients: {eu_rate:.1}/s admitted, {} shed of {}",
        fenced.count(503),
        fenced.total()
    );
    assert!((40.0..=57.0).contains(&eu_rate), "{eu_rate}");
    assert!(fenced.count(503) > fenced.count(200), "{fenced:?}");
    assert_eq!((served(&east), served(&west)), (before_east, before_west));

    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_budget_spilled_total{region=\"us-east\",route=\"keynote\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ballast_budget_rejections_total{region=\"eu-west\",route=\"keynote\"}"),
        "{metrics}"
    );
}

/// The start of a configuration with three regions (us-east and us-west
/// falling back to each other, eu-west fenced in), geo by header and
/// explanations, up to `pools:`.
fn three_regions(listen: SocketAddr, admin: SocketAddr) -> String {
    format!(
        r#"
listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, drain_timeout: 2s}}
regions:
  us-east: {{fallback: [us-west]}}
  us-west: {{fallback: [us-east]}}
  eu-west: {{fallback: [us-east]}}
geo:
  client_region: [{{header: X-Client-Region, trusted_peers: ["127.0.0.1"]}}, {{default: us-east}}]
  residency: [{{clients: [eu-west], allowed: [eu-west]}}]
explain: {{trusted_peers: ["127.0.0.1"]}}
pools:"#
    )
}

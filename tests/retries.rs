//! Retries on 5xx responses and the retry budget, end to end: origins that
//! answer `503` to a fraction of requests, a real Ballast in front, and what
//! the clients and the origins see.

use crate::common::*;
// One at a time, and never beside the routing tests' latency measurements.
use crate::routing::LOAD_LOCK;
use ballast_load_tests::behaviour::BehaviourUpdate;
use ballast_load_tests::origin::OriginHandle;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use std::time::Duration;

type Proxy = LoopbackProxy;

/// A Ballast with one pool `p` over `origins`, configured by `pool` lines.
async fn start(pool: &str, origins: &[&OriginHandle]) -> Proxy {
    let list = backend_entries(origins);
    LoopbackProxy::start(|listen, admin| format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 2s}}\npools:\n  p:\n{pool}    backends: [{list}]\nroutes: [{{pool: p}}]\n"
    ))
    .await
}

/// An origin answering after 5 ms, `error_rate` of its requests with `503`.
async fn failing_origin(name: &str, error_rate: f64) -> OriginHandle {
    let origin = origin_with_latency(name, Duration::from_millis(5)).await;
    origin
        .update(BehaviourUpdate {
            error_rate: Some(error_rate),
            error_status: Some(503),
            ..BehaviourUpdate::default()
        })
        .await
        .unwrap();
    origin
}

fn get_request(_: usize, _: usize) -> Request<Full<Bytes>> {
    request(Method::GET, "x", "/work", Bytes::new())
}

/// POSTs with `x-request-id: {prefix}-{worker}-{n}`, and the same value in
/// `Idempotency-Key` when `keyed`.
fn numbered_post(
    prefix: &'static str,
    keyed: bool,
) -> impl Fn(usize, usize) -> Request<Full<Bytes>> + Send + Sync + 'static {
    move |worker, n| {
        let id = format!("{prefix}-{worker}-{n}");
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri("/orders")
            .header("host", "x")
            .header("x-request-id", id.as_str());
        if keyed {
            builder = builder.header("idempotency-key", id.as_str());
        }
        builder
            .body(Full::new(Bytes::from_static(b"{\"item\": 1}")))
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gets_all_succeed_when_one_backend_answers_30_percent_503() {
    let _serial = LOAD_LOCK.lock().await;
    let healthy = failing_origin("healthy", 0.0).await;
    let flaky = failing_origin("flaky", 0.3).await;
    let proxy = start("", &[&healthy, &flaky]).await;

    let gets = drive(
        proxy.listen,
        8,
        Duration::from_millis(2000),
        100_000,
        get_request,
    )
    .await;
    let retried = metric(
        &metrics_text(proxy.admin).await,
        "ballast_retries_total",
        &["cause=\"status\"", "pool=\"p\""],
    );
    let over_budget = metric(
        &metrics_text(proxy.admin).await,
        "ballast_retries_budget_exhausted_total",
        &["cause=\"status\"", "pool=\"p\""],
    );
    eprintln!(
        "GETs with one backend answering 30% 503: {gets:?}; {} injected, {retried} retried, {over_budget} over budget",
        flaky.stats.injected_errors()
    );
    assert!(
        flaky.stats.injected_errors() > 0,
        "the flaky origin failed some"
    );
    assert_eq!(gets.count(200), gets.total(), "no GET failed: {gets:?}");
    assert_eq!(
        retried,
        flaky.stats.injected_errors() as f64,
        "every 503 was retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_replay_safe_posts_are_retried_after_a_503() {
    let _serial = LOAD_LOCK.lock().await;
    let healthy = failing_origin("healthy", 0.0).await;
    let flaky = failing_origin("flaky", 0.3).await;
    // Round robin keeps half the traffic on the flaky origin.
    let proxy = start(
        "    mode: round_robin\n    outlier: {consecutive_failures: 1000}\n",
        &[&healthy, &flaky],
    )
    .await;

    let plain = drive(
        proxy.listen,
        4,
        Duration::from_millis(1000),
        100_000,
        numbered_post("plain", false),
    )
    .await;
    eprintln!("POSTs without a key: {plain:?}");
    assert!(
        plain.count(503) > 0,
        "the flaky origin's 503s reach the client"
    );
    assert_eq!(plain.count(200) + plain.count(503), plain.total());
    assert_eq!(
        plain.count(503) as u64,
        flaky.stats.injected_errors(),
        "each 503 was passed on, none retried"
    );
    assert_eq!(healthy.stats.duplicates() + flaky.stats.duplicates(), 0);
    assert_eq!(
        healthy.stats.count(&Method::POST) + flaky.stats.count(&Method::POST),
        plain.total() as u64,
        "each POST reached exactly one origin once"
    );

    let injected_before = flaky.stats.injected_errors();
    let keyed = drive(
        proxy.listen,
        4,
        Duration::from_millis(1000),
        100_000,
        numbered_post("keyed", true),
    )
    .await;
    eprintln!("POSTs with an Idempotency-Key: {keyed:?}");
    assert!(flaky.stats.injected_errors() > injected_before);
    assert_eq!(keyed.count(200), keyed.total(), "{keyed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_bounds_the_load_of_a_fleet_failing_half_its_requests() {
    let _serial = LOAD_LOCK.lock().await;
    let a = failing_origin("a", 0.5).await;
    let b = failing_origin("b", 0.5).await;
    // No ejection: the budget alone bounds the retries.
    let proxy = start(
        "    outlier: {consecutive_failures: 1000, failure_rate: false}\n",
        &[&a, &b],
    )
    .await;

    let gets = drive(
        proxy.listen,
        16,
        Duration::from_millis(2000),
        3_000,
        get_request,
    )
    .await;
    let upstream = a.stats.total() + b.stats.total();
    let ratio = upstream as f64 / gets.total() as f64;
    let exhausted = metric(
        &metrics_text(proxy.admin).await,
        "ballast_retries_budget_exhausted_total",
        &["cause=\"status\"", "pool=\"p\""],
    );
    eprintln!(
        "16 clients, both origins failing half: {gets:?}; {upstream} upstream requests ({ratio:.3}x), {exhausted} retries over budget"
    );
    assert!(ratio > 1.05, "retries were made: {ratio}");
    // The budget bounds retries in flight (3 beside 16 first attempts) and
    // recent retries (10 a second plus 20% of requests), so the ratio of
    // counts is about 1.2: 1.23 on an idle machine, up to 1.27 when a loaded
    // one halves the throughput and the fixed allowances weigh more.
    assert!(ratio <= 1.3, "retries stayed within budget: {ratio}");
    assert!(exhausted > 0.0, "the budget refused retries");
    assert_eq!(gets.count(200) + gets.count(503), gets.total(), "{gets:?}");
}

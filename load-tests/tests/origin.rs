//! The origin simulator over real sockets: routes, latency distributions,
//! error injection, failure modes, load reports and request-id counting.

mod common;

use ballast_load_tests::behaviour::{BehaviourUpdate, FailureMode, ServerLoadMode};
use ballast_load_tests::latency::LatencyDistribution;
use ballast_load_tests::origin::{self, OriginConfig, OriginHandle};
use common::{get, request, send, send_within, wait_until, Connection};
use http::{Method, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

async fn start(name: &str) -> OriginHandle {
    origin::spawn("127.0.0.1:0".parse().unwrap(), OriginConfig::new(name))
        .await
        .expect("origin starts")
}

async fn change(origin: &OriginHandle, update: BehaviourUpdate) {
    origin.update(update).await.expect("valid update");
}

async fn set_failure(origin: &OriginHandle, failure: FailureMode) {
    let update = BehaviourUpdate {
        failure: Some(failure),
        ..BehaviourUpdate::default()
    };
    change(origin, update).await;
}

async fn set_latency(origin: &OriginHandle, latency: LatencyDistribution) {
    let update = BehaviourUpdate {
        latency: Some(latency),
        ..BehaviourUpdate::default()
    };
    change(origin, update).await;
}

/// Sends GETs over `connections` kept-alive connections at once,
/// `per_connection` one after the other on each, and returns how long each
/// took in milliseconds.
async fn latencies_ms(
    origin: &OriginHandle,
    connections: usize,
    per_connection: usize,
) -> Vec<f64> {
    let mut workers = JoinSet::new();
    for _ in 0..connections {
        let addr = origin.addr;
        workers.spawn(async move {
            let mut connection = Connection::open(addr).await.unwrap();
            let mut latencies = Vec::new();
            for _ in 0..per_connection {
                let started = Instant::now();
                let reply = connection.get("/").await.expect("answered");
                assert_eq!(reply.status, StatusCode::OK);
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        });
    }
    workers.join_all().await.concat()
}

#[tokio::test]
async fn routes_answer_as_documented() {
    let origin = start("o").await;
    let reply = get(origin.addr, "/api/hello").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "o GET /api/hello\n");
    assert_eq!(reply.header("x-origin"), Some("o"));
    assert!(reply.header("server-load").is_none());

    let echo = send(origin.addr, request(Method::POST, "/x/echo", "ping"))
        .await
        .unwrap();
    assert_eq!(echo.body, "ping");
    let status = get(origin.addr, "/status/418").await.unwrap();
    assert_eq!(status.status, StatusCode::IM_A_TEAPOT);
    let stream = get(origin.addr, "/stream?chunks=3&delay_ms=1")
        .await
        .unwrap();
    assert_eq!(stream.body, "chunk 0\nchunk 1\nchunk 2\n");
    assert!(get(origin.addr, "/headers")
        .await
        .unwrap()
        .body
        .contains("host: test\n"));

    origin.set_healthy(false);
    let health = get(origin.addr, "/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    origin.set_healthy(true);
    assert_eq!(
        get(origin.addr, "/healthz").await.unwrap().status,
        StatusCode::OK
    );

    assert_eq!(origin.stats.total(), 7);
    assert_eq!(origin.stats.count(&Method::POST), 1);
    assert_eq!(origin.stats.count_path("/healthz"), 2);
}

#[tokio::test]
async fn fixed_latency_delays_every_request() {
    let origin = start("o").await;
    origin.set_latency(Duration::from_millis(50));
    let latencies = latencies_ms(&origin, 5, 4).await;
    assert!(
        latencies.iter().all(|&ms| (50.0..2000.0).contains(&ms)),
        "{latencies:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_latency_has_about_the_configured_mean() {
    let origin = start("o").await;
    set_latency(
        &origin,
        LatencyDistribution::Normal {
            mean: Duration::from_millis(40),
            stddev: Duration::from_millis(10),
        },
    )
    .await;
    let latencies = latencies_ms(&origin, 10, 10).await;
    let mean = latencies.iter().sum::<f64>() / latencies.len() as f64;
    assert!((28.0..=52.0).contains(&mean), "mean {mean} ms");
    let spread = latencies.iter().cloned().fold(f64::MIN, f64::max)
        - latencies.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread >= 10.0, "the latencies vary: {latencies:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_tail_latency_slows_the_configured_fraction() {
    let origin = start("o").await;
    set_latency(
        &origin,
        LatencyDistribution::LongTail {
            base: Duration::from_millis(5),
            tail: Duration::from_millis(300),
            tail_fraction: 0.2,
        },
    )
    .await;
    let latencies = latencies_ms(&origin, 10, 10).await;
    assert!(latencies.iter().all(|&ms| ms >= 5.0), "{latencies:?}");
    let slow = latencies.iter().filter(|&&ms| ms >= 300.0).count();
    assert!((5..=45).contains(&slow), "{slow} of 100 in the tail");
}

/// Sends 1000 GETs over 10 kept-alive connections and returns how many
/// were answered with each status.
async fn statuses_of_1000_requests(origin: &OriginHandle, path: &'static str) -> Vec<StatusCode> {
    let mut workers = JoinSet::new();
    for _ in 0..10 {
        let addr = origin.addr;
        workers.spawn(async move {
            let mut connection = Connection::open(addr).await.unwrap();
            let mut statuses = Vec::new();
            for _ in 0..100 {
                statuses.push(connection.get(path).await.unwrap().status);
            }
            statuses
        });
    }
    workers.join_all().await.concat()
}

#[tokio::test]
async fn error_rate_answers_that_fraction_with_the_error_status() {
    let origin = start("o").await;
    let update = BehaviourUpdate {
        error_rate: Some(0.3),
        ..BehaviourUpdate::default()
    };
    change(&origin, update).await;
    let statuses = statuses_of_1000_requests(&origin, "/work").await;
    let errors = statuses
        .iter()
        .filter(|&&s| s == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    let ok = statuses.iter().filter(|&&s| s == StatusCode::OK).count();
    assert_eq!(errors + ok, 1000);
    assert!((200..=400).contains(&errors), "{errors} errors of 1000");
    assert_eq!(origin.stats.injected_errors(), errors as u64);

    let update = BehaviourUpdate {
        error_rate: Some(0.0),
        ..BehaviourUpdate::default()
    };
    change(&origin, update).await;
    let statuses = statuses_of_1000_requests(&origin, "/work").await;
    assert!(statuses.iter().all(|&s| s == StatusCode::OK));
}

#[tokio::test]
async fn injected_errors_use_the_configured_status_but_spare_healthz() {
    let origin = start("o").await;
    let update = BehaviourUpdate {
        error_rate: Some(1.0),
        error_status: Some(502),
        ..BehaviourUpdate::default()
    };
    change(&origin, update).await;
    let reply = get(origin.addr, "/work").await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(reply.body, "injected error\n");
    assert_eq!(reply.header("x-origin"), Some("o"));
    assert_eq!(
        get(origin.addr, "/healthz").await.unwrap().status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_load_endpoint_serves_what_it_is_given_and_is_never_an_injected_error() {
    let origin = start("o").await;
    assert_eq!(
        get(origin.addr, "/load").await.unwrap().status,
        StatusCode::NOT_FOUND
    );
    origin.set_load_endpoint(Some(r#"{"latency_ms": 12}"#));
    change(
        &origin,
        BehaviourUpdate {
            error_rate: Some(1.0),
            ..BehaviourUpdate::default()
        },
    )
    .await;
    let reply = get(origin.addr, "/v2/load").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, r#"{"latency_ms": 12}"#);
    origin.set_load_endpoint(None);
    assert_eq!(
        get(origin.addr, "/load").await.unwrap().status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn refuse_closes_the_port_and_healthy_reopens_the_same_one() {
    let origin = start("o").await;
    let addr = origin.addr;
    let mut idle = TcpStream::connect(addr).await.unwrap();

    set_failure(&origin, FailureMode::Refuse).await;
    let refused = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    let mut buffer = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buffer))
        .await
        .expect("the open connection is closed");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");

    set_failure(&origin, FailureMode::Healthy).await;
    assert_eq!(origin.addr, addr);
    let reply = get(addr, "/again").await.unwrap();
    assert_eq!(reply.body, "o GET /again\n");

    // Twice more, to show the port can be closed and taken back repeatedly.
    set_failure(&origin, FailureMode::Refuse).await;
    assert!(TcpStream::connect(addr).await.is_err());
    set_failure(&origin, FailureMode::Healthy).await;
    assert_eq!(get(addr, "/").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn reset_reads_the_request_then_resets_the_connection() {
    let origin = start("o").await;
    set_failure(&origin, FailureMode::Reset).await;

    let mut raw = TcpStream::connect(origin.addr).await.unwrap();
    raw.write_all(b"POST /orders HTTP/1.1\r\nhost: test\r\ncontent-length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buffer))
        .await
        .expect("the connection ends");
    assert_eq!(
        read.map_err(|e| e.kind()),
        Err(ErrorKind::ConnectionReset),
        "a reset, not a response or a clean close"
    );

    let through_hyper = get(origin.addr, "/x").await;
    assert!(through_hyper.is_err(), "{through_hyper:?}");
    assert_eq!(origin.stats.resets(), 2);
    assert_eq!(origin.stats.count(&Method::POST), 1);

    set_failure(&origin, FailureMode::Healthy).await;
    assert_eq!(get(origin.addr, "/").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn reset_also_aborts_h2c_connections() {
    let origin = start("o").await;
    let stream = TcpStream::connect(origin.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let reply = sender.send_request(request(Method::GET, "/h2", "")).await;
    assert_eq!(reply.unwrap().status(), StatusCode::OK, "h2c is served");

    set_failure(&origin, FailureMode::Reset).await;
    let reset = tokio::time::timeout(
        Duration::from_secs(5),
        sender.send_request(request(Method::GET, "/h2", "")),
    )
    .await
    .expect("the request ends");
    assert!(reset.is_err(), "{reset:?}");
    assert_eq!(origin.stats.resets(), 1);
}

#[tokio::test]
async fn hang_answers_nothing_until_the_mode_changes() {
    let origin = Arc::new(start("o").await);
    set_failure(&origin, FailureMode::Hang).await;

    let addr = origin.addr;
    let held = tokio::spawn(async move { get(addr, "/held").await });
    wait_until("the first request hangs", || origin.stats.hung() == 1).await;

    let timed_out = send_within(
        addr,
        request(Method::GET, "/impatient", ""),
        Duration::from_millis(200),
    )
    .await;
    assert!(timed_out.is_err(), "{timed_out:?}");
    assert_eq!(origin.stats.hung(), 2);
    wait_until("the request whose client left is dropped", || {
        origin.in_flight() == 1
    })
    .await;
    assert!(!held.is_finished());

    set_failure(&origin, FailureMode::Healthy).await;
    let released = held.await.unwrap().expect("answered once released");
    assert_eq!(released.body, "o GET /held\n");
    assert_eq!(get(addr, "/after").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn a_hung_request_is_reset_when_the_mode_turns_to_reset() {
    let origin = Arc::new(start("o").await);
    set_failure(&origin, FailureMode::Hang).await;
    let addr = origin.addr;
    let held = tokio::spawn(async move { get(addr, "/held").await });
    wait_until("the request hangs", || origin.stats.hung() == 1).await;
    set_failure(&origin, FailureMode::Reset).await;
    assert!(held.await.unwrap().is_err());
    assert_eq!(origin.stats.resets(), 1);
}

#[tokio::test]
async fn honest_server_load_reports_requests_in_flight() {
    let origin = Arc::new(start("o").await);
    let update = BehaviourUpdate {
        server_load: Some(ServerLoadMode::Honest { slots: 10 }),
        ..BehaviourUpdate::default()
    };
    change(&origin, update).await;
    origin.set_latency(Duration::from_secs(10));
    let mut slow = JoinSet::new();
    for _ in 0..5 {
        let addr = origin.addr;
        slow.spawn(async move { get(addr, "/slow").await });
    }
    wait_until("five requests are in flight", || origin.in_flight() == 5).await;

    origin.set_latency(Duration::ZERO);
    let reply = get(origin.addr, "/quick").await.unwrap();
    assert_eq!(
        reply.header("server-load"),
        Some("util=0.600, inflight=6, capacity=10000"),
        "the five slow requests and this one; 10 slots at (at least) 1 ms"
    );
    slow.abort_all();
    wait_until("the slow requests are gone", || origin.in_flight() == 0).await;
}

#[tokio::test]
async fn fixed_server_load_is_sent_whatever_the_load() {
    let origin = start("o").await;
    origin.set_server_load(Some("0.95"));
    let reply = get(origin.addr, "/").await.unwrap();
    assert_eq!(reply.header("server-load"), Some("0.95"));
    origin.set_server_load(None);
    let reply = get(origin.addr, "/").await.unwrap();
    assert!(reply.header("server-load").is_none());
}

#[tokio::test]
async fn orca_reports_utilization_and_rates() {
    let origin = start("o").await;
    let update = BehaviourUpdate {
        server_load: Some(ServerLoadMode::Orca { slots: 4 }),
        ..BehaviourUpdate::default()
    };
    change(&origin, update).await;
    let mut connection = Connection::open(origin.addr).await.unwrap();
    connection.get("/status/500").await.unwrap();
    let reply = connection.get("/").await.unwrap();
    let report = reply.header("endpoint-load-metrics").unwrap();
    let metric = |key: &str| -> f64 {
        let (_, rest) = report.split_once(&format!("{key}=")).unwrap();
        rest.split(',').next().unwrap().parse().unwrap()
    };
    assert!(report.starts_with("TEXT "), "{report}");
    assert_eq!(metric("cpu_utilization"), 0.25, "{report}");
    assert!(metric("rps_fractional") >= 1.0, "{report}");
    assert!(metric("eps") >= 0.5, "{report}");
    assert!(reply.header("server-load").is_none());
}

#[tokio::test]
async fn repeated_request_ids_are_counted_as_duplicates() {
    let origin = start("o").await;
    let mut connection = Connection::open(origin.addr).await.unwrap();
    for id in ["a", "b", "a", "c", "c", "c"] {
        let mut request = request(Method::POST, "/orders", "{}");
        request
            .headers_mut()
            .insert("x-request-id", id.parse().unwrap());
        connection.send(request).await.unwrap();
    }
    connection.get("/no-id").await.unwrap();
    assert_eq!(origin.stats.duplicates(), 2);
    assert_eq!(origin.stats.seen_request_id("c"), 3);
    assert_eq!(origin.stats.seen_request_id("b"), 1);
    assert_eq!(origin.stats.total(), 7);

    origin.stats.reset();
    assert_eq!(origin.stats.duplicates(), 0);
    assert_eq!(origin.stats.total(), 0);
}

#[tokio::test]
async fn stopping_closes_the_port_and_open_connections() {
    let origin = Arc::new(start("o").await);
    origin.set_latency(Duration::from_secs(10));
    let addr = origin.addr;
    let pending = tokio::spawn(async move { get(addr, "/").await });
    wait_until("the request arrives", || origin.in_flight() == 1).await;
    origin.stop();
    assert!(
        pending.await.unwrap().is_err(),
        "the open connection closed"
    );
    assert!(TcpStream::connect(addr).await.is_err());
}

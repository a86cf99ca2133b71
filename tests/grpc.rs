//! gRPC through Ballast, end to end, with a real gRPC client and origins:
//! unary, server-streaming and bidirectional calls through an h2c listener
//! to h2c backends and to h2 backends over TLS, trailers intact; HTTP/1.1
//! clients beside them on the same listener; server-side failure codes
//! counted against the backend and call outcomes not; UNAVAILABLE answered
//! trailers-only retried on another backend with `retries.on:
//! [grpc_unavailable]` (and the last one passed on when every backend
//! refuses); a call ending without a status counted as failed; health
//! checks of an h2c pool over h2c; a stream that outlives a reload; and the
//! configuration's checks and summary.

use crate::common::grpc::{
    chat, grpc_client, grpc_origin, stream, unary, unary_at, EchoRequest, GrpcOrigin, NO_STATUS,
};
use crate::common::*;
// One at a time, and never beside the load tests' measurements (retry
// ratios, latencies), which a burst of proxies starting would disturb.
use crate::routing::LOAD_LOCK;
use ballast::config::{load_str, ConfigErrors};
use ballast::tls::devcert::{DevCa, LeafUse};
use http::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;

/// A Ballast with an h2c listener and one pool `g` over `origins`, spoken
/// h2c, configured further by `pool` lines.
async fn proxy_for(origins: &[&GrpcOrigin], pool: &str) -> LoopbackProxy {
    let list = origin_entries(origins);
    LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\", h2c: true}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 2, drain_timeout: 1s}}\npools:\n  g:\n    protocol: h2c\n{pool}\
             \x20   backends: [{list}]\nroutes: [{{pool: g}}]\n"
        )
    })
    .await
}

fn origin_entries(origins: &[&GrpcOrigin]) -> String {
    let list: Vec<String> = origins
        .iter()
        .map(|o| format!("{{addr: \"{}\"}}", o.addr))
        .collect();
    list.join(", ")
}

/// The admin state of the backend at `addr`.
async fn backend_state(admin: SocketAddr, addr: SocketAddr) -> Value {
    let state = admin_json(admin, "/api/v1/state").await;
    state["pools"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["backends"].as_array().unwrap().iter())
        .find(|b| b["addr"] == addr.to_string())
        .cloned()
        .unwrap_or_else(|| panic!("no backend {addr} in {state:#}"))
}

/// The backend's `requests` and `errors` once its stats have seen `calls`
/// requests (the outcome is recorded as the call ends, after the client
/// may already have its answer).
async fn counted(admin: SocketAddr, addr: SocketAddr, calls: u64) -> (u64, u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let backend = backend_state(admin, addr).await;
        let requests = backend["requests"].as_u64().unwrap();
        if requests >= calls || Instant::now() > deadline {
            return (requests, backend["errors"].as_u64().unwrap());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_goes_through_an_h2c_listener_to_an_h2c_backend() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let p = proxy_for(&[&origin], "").await;
    let mut client = grpc_client(p.listen);
    for i in 0..3 {
        let reply = unary(&mut client, &format!("hello {i}")).await.unwrap();
        assert_eq!(reply.text, format!("hello {i}"));
        assert_eq!(reply.origin, "a");
    }
    assert_eq!(origin.calls(), 3);
    assert_eq!(counted(p.admin, origin.addr, 3).await, (3, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_clients_still_work_on_an_h2c_listener() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let web = origin_named("web").await;
    let (g, w) = (origin.addr, web.addr);
    let p = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\", h2c: true}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 2, drain_timeout: 1s}}\npools:\n\
             \x20 g: {{protocol: h2c, backends: [{{addr: \"{g}\"}}]}}\n\
             \x20 web: {{backends: [{{addr: \"{w}\"}}]}}\n\
             routes:\n  - {{match: {{path_prefix: /test.Echo/}}, pool: g}}\n  - {{pool: web}}\n"
        )
    })
    .await;
    let reply = get(p.listen, "x", "/page").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-origin"), Some("web"), "{:?}", reply.headers);
    let mut client = grpc_client(p.listen);
    assert_eq!(unary(&mut client, "hi").await.unwrap().origin, "a");
    let reply = get(p.listen, "x", "/again").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_reaches_an_h2_backend_over_tls() {
    let _serial = LOAD_LOCK.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let leaf = ca
        .issue(&["backend.test".to_string()], LeafUse::Server)
        .unwrap();
    let ca_file = dir.path().join("ca.crt");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let origin = grpc_origin("tls", None, Some((&leaf.cert_pem, &leaf.key_pem))).await;
    let (addr, ca_file) = (origin.addr, ca_file.display().to_string());
    let p = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\", h2c: true}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 2, drain_timeout: 1s}}\npools:\n  g:\n\
             \x20   tls: {{sni: backend.test, ca: \"{ca_file}\", alpn: h2}}\n\
             \x20   backends: [{{addr: \"{addr}\"}}]\nroutes: [{{pool: g}}]\n"
        )
    })
    .await;
    let mut client = grpc_client(p.listen);
    let reply = unary(&mut client, "over tls").await.unwrap();
    assert_eq!(
        (reply.text.as_str(), reply.origin.as_str()),
        ("over tls", "tls")
    );
    let mut replies = stream(&mut client, "tls stream", 3).await.unwrap();
    for seq in 1..=3 {
        assert_eq!(replies.message().await.unwrap().unwrap().seq, seq);
    }
    assert!(replies.message().await.unwrap().is_none());
    assert_eq!(counted(p.admin, addr, 2).await, (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_keeps_its_messages_and_trailers() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let p = proxy_for(&[&origin], "").await;
    let mut client = grpc_client(p.listen);

    let mut replies = stream(&mut client, "ok", 5).await.unwrap();
    for seq in 1..=5 {
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!((reply.seq, reply.text.as_str()), (seq, "ok"));
    }
    // The end of the stream is its OK status, from the trailers.
    assert!(replies.message().await.unwrap().is_none());
    assert!(replies.trailers().await.unwrap().is_some());
    assert_eq!(counted(p.admin, origin.addr, 1).await, (1, 0));

    // A status in the trailers after the replies reaches the client whole,
    // and INTERNAL counts against the backend.
    let mut replies = stream(&mut client, "fail", 3).await.unwrap();
    for seq in 1..=3 {
        assert_eq!(replies.message().await.unwrap().unwrap().seq, seq);
    }
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{status:?}");
    assert_eq!(status.message(), "stream broke");
    assert_eq!(counted(p.admin, origin.addr, 2).await, (2, 1));
    for code in ["ok", "internal"] {
        let labels = ["pool=\"g\"", &format!("code=\"{code}\"")];
        let calls = metric(
            &metrics_text(p.admin).await,
            "ballast_grpc_calls_total",
            &labels,
        );
        assert_eq!(calls, 1.0, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bidirectional_stream_answers_each_message_as_it_comes() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let p = proxy_for(&[&origin], "").await;
    let mut client = grpc_client(p.listen);
    let (tx, mut replies) = chat(&mut client).await.unwrap();
    // Each reply comes before the next message is sent: both directions
    // stay open through Ballast at once.
    for seq in 1..=3 {
        let text = format!("message {seq}");
        tx.send(EchoRequest {
            text: text.clone(),
            count: 0,
        })
        .await
        .unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(5), replies.message())
            .await
            .expect("a reply before the client's stream ends")
            .unwrap()
            .unwrap();
        assert_eq!((reply.seq, reply.text), (seq, text));
    }
    drop(tx);
    assert!(replies.message().await.unwrap().is_none());
    assert_eq!(counted(p.admin, origin.addr, 1).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_trailers_only_counts_against_the_backend_and_is_not_retried_unlisted() {
    let _serial = LOAD_LOCK.lock().await;
    let down = grpc_origin("down", Some(Code::Unavailable), None).await;
    let up = grpc_origin("up", None, None).await;
    // The default retries.on does not list grpc_unavailable: a gRPC call is
    // a POST, and nothing else makes it replay-safe.
    // Round robin, no ejection: half the calls go to the refusing backend.
    let pool = "    mode: round_robin\n    outlier: {consecutive_failures: 100}\n";
    let p = proxy_for(&[&down, &up], pool).await;
    let mut client = grpc_client(p.listen);
    let mut refused = 0;
    for i in 0..20 {
        match unary(&mut client, &format!("call {i}")).await {
            Ok(reply) => assert_eq!(reply.origin, "up"),
            Err(status) => {
                assert_eq!(status.code(), Code::Unavailable, "{status:?}");
                assert_eq!(status.message(), "down refuses");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 10, "every other call went to the refusing backend");
    assert_eq!(down.calls(), refused);
    assert_eq!(down.calls() + up.calls(), 20, "nothing was retried");
    let calls = refused as u64;
    assert_eq!(counted(p.admin, down.addr, calls).await, (calls, calls));
    let unavailable = [
        "code=\"unavailable\"",
        &format!("backend=\"g/{}\"", down.addr),
    ];
    let counted_calls = metric(
        &metrics_text(p.admin).await,
        "ballast_grpc_calls_total",
        &unavailable,
    );
    assert_eq!(counted_calls, calls as f64);
    let up_calls = up.calls() as u64;
    assert_eq!(counted(p.admin, up.addr, up_calls).await, (up_calls, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_is_retried_on_another_backend_with_grpc_unavailable() {
    let _serial = LOAD_LOCK.lock().await;
    let down = grpc_origin("down", Some(Code::Unavailable), None).await;
    let up = grpc_origin("up", None, None).await;
    let pool = "    mode: round_robin\n    retries: {on: [connect_failure, grpc_unavailable]}\n    outlier: {consecutive_failures: 100}\n";
    let p = proxy_for(&[&down, &up], pool).await;
    let mut client = grpc_client(p.listen);
    for i in 0..20 {
        let reply = unary(&mut client, &format!("call {i}")).await.unwrap();
        assert_eq!(reply.origin, "up");
    }
    assert!(
        down.calls() >= 5,
        "round robin sends the refusing backend its turns"
    );
    assert_eq!(up.calls(), 20);
    let retried = metric(
        &metrics_text(p.admin).await,
        "ballast_retries_total",
        &["pool=\"g\"", "cause=\"grpc_unavailable\""],
    );
    assert_eq!(retried, down.calls() as f64);
    let calls = down.calls() as u64;
    assert_eq!(counted(p.admin, down.addr, calls).await, (calls, calls));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_after_replies_is_passed_on_not_retried() {
    let _serial = LOAD_LOCK.lock().await;
    let a = grpc_origin("a", None, None).await;
    let b = grpc_origin("b", None, None).await;
    let p = proxy_for(&[&a, &b], "    retries: {on: [grpc_unavailable]}\n").await;
    let mut client = grpc_client(p.listen);
    let mut replies = stream(&mut client, "going away", 2).await.unwrap();
    for seq in 1..=2 {
        assert_eq!(replies.message().await.unwrap().unwrap().seq, seq);
    }
    let status = replies.message().await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Unavailable, "going away")
    );
    assert_eq!(a.calls() + b.calls(), 1, "the call was sent once");
    let served = if a.calls() == 1 { &a } else { &b };
    assert_eq!(counted(p.admin, served.addr, 1).await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_error_status_is_not_counted_against_the_backend() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", Some(Code::NotFound), None).await;
    let p = proxy_for(&[&origin], "    retries: {on: [grpc_unavailable]}\n").await;
    let mut client = grpc_client(p.listen);
    for _ in 0..3 {
        let status = unary(&mut client, "missing").await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(status.message(), "a refuses");
    }
    assert_eq!(origin.calls(), 3, "NOT_FOUND is not retried");
    assert_eq!(counted(p.admin, origin.addr, 3).await, (3, 0));
    let not_found = ["pool=\"g\"", "code=\"not_found\""];
    let calls = metric(
        &metrics_text(p.admin).await,
        "ballast_grpc_calls_total",
        &not_found,
    );
    assert_eq!(calls, 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_outlives_a_reload() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let other = grpc_origin("b", None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ballast.yaml");
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = |backends: &[&GrpcOrigin]| {
        format!(
            "listeners: [{{address: \"{listen}\", h2c: true}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 2, drain_timeout: 1s}}\npools:\n  g:\n    protocol: h2c\n\
             \x20   backends: [{}]\nroutes: [{{pool: g}}]\n",
            origin_entries(backends)
        )
    };
    std::fs::write(&path, config(&[&origin])).unwrap();
    let _ballast = RunningBallast::start_file(&path, &[listen, admin]).await;
    let mut client = grpc_client(listen);
    let mut replies = stream(&mut client, "gated", 4).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().seq, 1);

    // A changed configuration (another backend) is applied mid-stream.
    std::fs::write(&path, config(&[&origin, &other])).unwrap();
    let reload = send(admin, admin_request(Method::POST, "/reload", None)).await;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.text());
    assert!(reload.text().contains("\"applied\""), "{}", reload.text());
    let state = admin_json(admin, "/api/v1/state").await;
    let backends = state["pools"][0]["backends"].as_array().unwrap().len();
    assert_eq!(backends, 2, "{state:#}");

    origin.open_gate();
    for seq in 2..=4 {
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!((reply.seq, reply.origin.as_str()), (seq, "a"));
    }
    assert!(replies.message().await.unwrap().is_none());
}

#[test]
fn nonsense_protocol_combinations_are_refused() {
    let yaml = r#"
listeners:
  - {address: "127.0.0.1:8080", h2c: true}
  - {address: "127.0.0.1:8443", h2c: true, tls: {cert: missing.crt, key: missing.key}}
pools:
  tls_h2c: {protocol: h2c, tls: {alpn: h2}, backends: [{addr: "10.0.0.1:443"}]}
  typo: {protocol: h2, backends: [{addr: "10.0.0.2:80"}]}
  retry: {retries: {on: [grpc_unavailabel]}, backends: [{addr: "10.0.0.3:80"}]}
routes: [{pool: typo}]
"#;
    let errors = match load_str(yaml, Path::new(".")) {
        Ok(_) => panic!("expected errors"),
        Err(ConfigErrors(list)) => list.iter().map(ToString::to_string).collect::<Vec<_>>(),
    };
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("listeners[1].h2c: h2c is HTTP/2 over plain TCP; a TLS listener offers h2 by ALPN"),
        "{errors:#?}"
    );
    assert!(
        has("pools.tls_h2c.protocol: h2c is HTTP/2 over plain TCP; for HTTP/2 over TLS set tls.alpn: h2"),
        "{errors:#?}"
    );
    assert!(
        has("pools.typo.protocol: unknown protocol \"h2\" (expected http1 or h2c)"),
        "{errors:#?}"
    );
    assert!(
        has("pools.retry.retries.on[0]: unknown condition \"grpc_unavailabel\""),
        "{errors:#?}"
    );
}

#[test]
fn the_summary_shows_each_pool_protocol_and_h2c_listeners() {
    let yaml = r#"
listeners: [{address: "127.0.0.1:8080", h2c: true}, {address: "127.0.0.1:8081"}]
pools:
  grpc: {protocol: h2c, retries: {on: [grpc_unavailable]}, backends: [{addr: "10.0.0.1:50051"}]}
  web: {backends: [{addr: "10.0.0.2:80"}]}
routes: [{pool: web}]
"#;
    let snapshot = load_str(yaml, Path::new(".")).unwrap();
    assert_eq!(snapshot.pool_by_name("grpc").unwrap().protocol(), "h2c");
    assert_eq!(snapshot.pool_by_name("web").unwrap().protocol(), "http1");
    assert!(
        snapshot
            .pool_by_name("grpc")
            .unwrap()
            .policy
            .retries
            .on
            .grpc_unavailable
    );
    let summary = snapshot.summary();
    assert!(
        summary.contains("127.0.0.1:8080 http h2c\n")
            && summary.contains("127.0.0.1:8081 http\n")
            && summary.contains("grpc (latency, 1 backends, h2c)")
            && summary.contains("web (latency, 1 backends)\n"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_backend_refuses_the_client_gets_the_last_unavailable() {
    let _serial = LOAD_LOCK.lock().await;
    let first = grpc_origin("first", Some(Code::Unavailable), None).await;
    let second = grpc_origin("second", Some(Code::Unavailable), None).await;
    let pool = "    retries: {attempts: 2, on: [grpc_unavailable]}\n    outlier: {consecutive_failures: 100}\n";
    let p = proxy_for(&[&first, &second], pool).await;
    let mut client = grpc_client(p.listen);
    let status = unary(&mut client, "anyone").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().ends_with(" refuses"), "{status:?}");
    assert_eq!(
        (first.calls(), second.calls()),
        (1, 1),
        "tried once on each backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_health_check_of_an_h2c_pool_speaks_h2c() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let health = "    health: {check: http, path: /, interval: 100ms, timeout: 1s}\n";
    let p = proxy_for(&[&origin], health).await;
    // The origin speaks HTTP/2 only: a check reaches it only over h2c (its
    // answer to `/` is HTTP 200 with UNIMPLEMENTED, a pass).
    let deadline = Instant::now() + Duration::from_secs(10);
    while origin.calls() < 3 {
        assert!(
            Instant::now() < deadline,
            "no health check reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backend = backend_state(p.admin, origin.addr).await;
    assert_eq!(backend["healthy"], true, "{backend:#}");
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(state["pools"][0]["protocol"], "h2c");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_ends_without_a_status_counts_against_the_backend() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = grpc_origin("a", None, None).await;
    let p = proxy_for(&[&origin], "").await;
    let mut client = grpc_client(p.listen);
    // The client reads UNKNOWN; so does the backend's record.
    let status = unary_at(&mut client, NO_STATUS, "anything")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unknown, "{status:?}");
    assert_eq!(counted(p.admin, origin.addr, 1).await, (1, 1));
    let missing = ["pool=\"g\"", "code=\"missing\""];
    let calls = metric(
        &metrics_text(p.admin).await,
        "ballast_grpc_calls_total",
        &missing,
    );
    assert_eq!(calls, 1.0);
}

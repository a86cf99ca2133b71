//! Failure drills under bounded load with real origins: a backend that
//! hangs, a backend that resets in the middle of a response body, and the
//! admin endpoint hammered while proxying. Idempotent requests must not
//! fail while another backend is healthy; non-idempotent ones must never
//! reach an origin twice.

use crate::common::*;
use ballast_load_tests::behaviour::{BehaviourUpdate, FailureMode};
use ballast_load_tests::origin::OriginHandle;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An origin answering in 2 ms.
async fn origin_2ms(name: &str) -> OriginHandle {
    origin_with_latency(name, Duration::from_millis(2)).await
}

/// These drills load a small machine; one at a time.
static LOAD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Proxy {
    listen: SocketAddr,
    admin: SocketAddr,
    _ballast: RunningBallast,
}

async fn start(pool: &str) -> Proxy {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 1s}}\npools:\n  p:\n{pool}routes: [{{pool: p}}]\n"
    );
    let ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    Proxy {
        listen,
        admin,
        _ballast: ballast,
    }
}

fn get_request(_: usize, _: usize) -> Request<Full<Bytes>> {
    request(Method::GET, "x", "/drill", Bytes::new())
}

fn numbered_post(worker: usize, n: usize) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri("/orders")
        .header("host", "x")
        .header("x-request-id", format!("post-{worker}-{n}"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_backend_times_out_and_only_safe_requests_are_retried() {
    // Round robin and no ejection keep the hanging backend in play, so the
    // POSTs reach it (the adaptive modes would soon stop sending it any).
    let _serial = LOAD_LOCK.lock().await;
    let healthy = origin_2ms("healthy").await;
    let hanging = origin_2ms("hanging").await;
    let proxy = start(&format!(
        "    mode: round_robin\n    read_timeout: 300ms\n    outlier: {{consecutive_failures: 1000, failure_rate: false}}\n    backends: [{{addr: \"{}\"}}, {{addr: \"{}\"}}]\n",
        healthy.addr, hanging.addr
    ))
    .await;
    hanging
        .update(BehaviourUpdate {
            failure: Some(FailureMode::Hang),
            ..BehaviourUpdate::default()
        })
        .await
        .unwrap();

    let gets = drive(
        proxy.listen,
        4,
        Duration::from_millis(1500),
        100_000,
        get_request,
    )
    .await;
    println!("GETs with a hanging backend: {gets:?}");
    assert!(hanging.stats.hung() > 0, "the hanging backend was tried");
    assert_eq!(gets.count(200), gets.total(), "every GET retried: {gets:?}");

    let posts = drive(
        proxy.listen,
        4,
        Duration::from_millis(1500),
        100_000,
        numbered_post,
    )
    .await;
    println!("POSTs with a hanging backend: {posts:?}");
    assert!(
        posts.count(504) > 0,
        "POSTs that reached the hanging backend time out: {posts:?}"
    );
    assert_eq!(
        posts.count(200) + posts.count(504),
        posts.total(),
        "{posts:?}"
    );
    for worker in 0..4 {
        for n in 0..posts.total() {
            let id = format!("post-{worker}-{n}");
            let seen = healthy.stats.seen_request_id(&id) + hanging.stats.seen_request_id(&id);
            assert!(seen <= 1, "{id} reached the origins {seen} times");
        }
    }
    assert_eq!(
        healthy.stats.count(&Method::POST) + hanging.stats.count(&Method::POST),
        posts.total() as u64,
        "each POST reached exactly one origin once"
    );
}

/// An origin that answers `200` with `Content-Length: 1000`, sends 100
/// bytes of the body and resets the connection.
async fn resetting_origin() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n")
                    .await;
                let _ = stream.write_all(&[b'x'; 100]).await;
                let _ = stream.flush().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
                // Linger 0: close with a reset.
                let _ = stream.set_zero_linger();
                drop(stream);
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_body_is_a_clean_error_never_a_truncated_success() {
    let _serial = LOAD_LOCK.lock().await;
    let origin = resetting_origin().await;
    let proxy = start(&format!("    backends: [{{addr: \"{origin}\"}}]\n")).await;
    for _ in 0..10 {
        let stream = tokio::net::TcpStream::connect(proxy.listen).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let outcome = match sender
            .send_request(request(Method::GET, "x", "/big", Bytes::new()))
            .await
        {
            Err(e) => format!("no response: {e}"),
            Ok(resp) if resp.status() != 200 => format!("status {}", resp.status()),
            Ok(resp) => match resp.into_body().collect().await {
                Ok(body) => panic!(
                    "a 200 completed with {} of 1000 bytes",
                    body.to_bytes().len()
                ),
                Err(e) => format!("body error: {e}"),
            },
        };
        assert!(
            outcome.starts_with("body error") || outcome == "status 502 Bad Gateway",
            "{outcome}"
        );
    }
    assert_eq!(get(proxy.admin, "localhost", "/healthz").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hammering_the_admin_endpoint_does_not_disturb_proxying() {
    let _serial = LOAD_LOCK.lock().await;
    let a = origin_2ms("a").await;
    let b = origin_2ms("b").await;
    let proxy = start(&format!(
        "    backends: [{{addr: \"{}\"}}, {{addr: \"{}\"}}]\n",
        a.addr, b.addr
    ))
    .await;
    let admin = proxy.admin;
    let hammer = tokio::spawn(drive(
        admin,
        4,
        Duration::from_millis(2000),
        100_000,
        |_, n| {
            let path = [
                "/api/v1/state",
                "/metrics",
                "/api/v1/decisions",
                "/dashboard",
            ][n % 4];
            request(Method::GET, "localhost", path, Bytes::new())
        },
    ));
    let traffic = drive(
        proxy.listen,
        4,
        Duration::from_millis(2000),
        100_000,
        get_request,
    )
    .await;
    let admin_calls = hammer.await.unwrap();
    println!("proxied {traffic:?} while the admin answered {admin_calls:?}");
    assert!(admin_calls.total() > 100, "{admin_calls:?}");
    assert_eq!(
        admin_calls.count(200),
        admin_calls.total(),
        "{admin_calls:?}"
    );
    assert!(traffic.total() > 100, "{traffic:?}");
    assert_eq!(traffic.count(200), traffic.total(), "{traffic:?}");
}

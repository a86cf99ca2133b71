//! WebSocket through Ballast: the upgrade passes end to end over HTTP/1.1,
//! an upgraded connection leaves the backend's in-flight count and latency
//! statistics alone, outlives a reload, and is waited for (at most
//! `server.drain_timeout`) on shutdown.

use crate::common::*;
use futures_util::{SinkExt, StreamExt};
use http::Method;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket origin on an ephemeral loopback port that echoes every text
/// message, prefixed with `name`. It answers the upgrade after 50 ms, as a
/// backend across a network would: Pingora 0.9 ends a tunnel whose 101
/// arrives before it has finished reading the upgrade request
/// (cloudflare/pingora#946; docs/operations.md, "WebSocket").
async fn echo_origin(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if let Message::Text(text) = message {
                        let reply = Message::text(format!("{name}: {text}"));
                        if socket.send(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

async fn connect(listen: SocketAddr) -> Socket {
    let (socket, response) =
        tokio_tungstenite::connect_async(format!("ws://{listen}/chat").as_str())
            .await
            .expect("WebSocket handshake through Ballast");
    assert_eq!(response.status(), 101);
    assert!(response.headers().contains_key("x-request-id"));
    socket
}

async fn echo(socket: &mut Socket, text: &str) -> String {
    socket.send(Message::text(text)).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .expect("an echo within 10 s")
        .expect("the connection is open")
        .expect("a message");
    reply.into_text().unwrap().to_string()
}

fn config(listen: SocketAddr, admin: SocketAddr, pools: &str) -> String {
    format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 2s}}\n{pools}routes: [{{pool: ws}}]\n"
    )
}

fn ws_pool(origin: SocketAddr) -> String {
    format!("pools: {{ws: {{backends: [{{addr: \"{origin}\"}}]}}}}\n")
}

fn the_backend(state: &Value) -> &Value {
    &state["pools"][0]["backends"][0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_proxied_without_counting_as_a_request_in_flight() {
    let origin = echo_origin("a").await;
    let proxy = LoopbackProxy::start(|listen, admin| config(listen, admin, &ws_pool(origin))).await;
    let mut socket = connect(proxy.listen).await;
    assert_eq!(echo(&mut socket, "hello").await, "a: hello");

    // Open and idle for a while: not in flight at the backend, nor in the
    // request gauge; counted as upgraded.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(echo(&mut socket, "still there").await, "a: still there");
    let state = admin_json(proxy.admin, "/api/v1/state").await;
    assert_eq!(the_backend(&state)["in_flight"], 0, "{state:#}");
    let metrics = metrics_text(proxy.admin).await;
    assert_eq!(
        metric_value(&metrics, "ballast_in_flight_requests", &[]).unwrap(),
        0.0
    );
    assert_eq!(
        metric_value(&metrics, "ballast_upgraded_connections", &[]).unwrap(),
        1.0
    );

    socket.close(None).await.unwrap();
    drop(socket);
    // The request ends when the connection does; what it counts for is the
    // handshake, not the 1.2 s it stayed open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = metrics_text(proxy.admin).await;
        if metric_value(&metrics, "ballast_upgraded_connections", &[]).unwrap() == 0.0 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "the upgraded connection ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let seconds = metric_value(
        &metrics,
        "ballast_request_duration_seconds_sum",
        &["route=\"route-0\""],
    )
    .unwrap();
    assert!(
        seconds < 1.0,
        "the route's duration counts the handshake only: {seconds} s"
    );
    let state = admin_json(proxy.admin, "/api/v1/state").await;
    let backend = the_backend(&state);
    assert_eq!(backend["requests"], 1, "{backend:#}");
    assert_eq!(backend["errors"], 0, "{backend:#}");
    let p99 = backend["latency"]["p99_ms"].as_f64().unwrap();
    assert!(
        p99 < 1000.0,
        "the backend's latency is the handshake's: {p99} ms"
    );

    // Plain requests to the same listener still work.
    let reply = get(proxy.listen, "x", "/chat").await;
    assert_ne!(reply.status, 101);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_outlives_a_reload() {
    let (a, b) = (echo_origin("a").await, echo_origin("b").await);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    std::fs::write(&file, config(listen, admin, &ws_pool(a))).unwrap();
    let _ballast = RunningBallast::start_file(&file, &[listen, admin]).await;
    let mut before = connect(listen).await;
    assert_eq!(echo(&mut before, "1").await, "a: 1");

    // The pool now names only `b`: new connections go there, the open one
    // stays with `a`.
    std::fs::write(&file, config(listen, admin, &ws_pool(b))).unwrap();
    let reply = send(admin, admin_request(Method::POST, "/reload", None)).await;
    assert!(reply.status.is_success(), "{}", reply.text());
    let mut after = connect(listen).await;
    assert_eq!(echo(&mut after, "2").await, "b: 2");
    assert_eq!(echo(&mut before, "3").await, "a: 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_an_open_websocket_until_the_drain_timeout() {
    let origin = echo_origin("a").await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = config(listen, admin, &ws_pool(origin));
    let mut ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    let mut socket = connect(listen).await;
    assert_eq!(echo(&mut socket, "before").await, "a: before");

    let started = Instant::now();
    let stopping = tokio::task::spawn_blocking(move || {
        ballast.stop();
        started.elapsed()
    });
    // Wait for the listener to close: the drain has begun.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(listen).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener closes on shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(echo(&mut socket, "during").await, "a: during");
    let stopped_after = stopping.await.unwrap();
    // drain_timeout is 2 s; the open connection held the shutdown that long.
    assert!(
        stopped_after >= Duration::from_millis(1900),
        "shutdown waited for the upgraded connection: {stopped_after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_is_closed_after_the_pools_read_timeout() {
    let origin = echo_origin("a").await;
    let proxy = LoopbackProxy::start(|listen, admin| {
        let pools =
            format!("pools: {{ws: {{read_timeout: 500ms, backends: [{{addr: \"{origin}\"}}]}}}}\n");
        config(listen, admin, &pools)
    })
    .await;
    let mut socket = connect(proxy.listen).await;
    assert_eq!(echo(&mut socket, "hello").await, "a: hello");
    // Silent for longer than the read timeout: Ballast ends the tunnel.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the idle tunnel was closed within 10 s");
    // The handshake was answered: the closed tunnel is not the backend's failure.
    let state = admin_json(proxy.admin, "/api/v1/state").await;
    let backend = the_backend(&state);
    assert_eq!(backend["requests"], 1, "{backend:#}");
    assert_eq!(backend["errors"], 0, "{backend:#}");
}

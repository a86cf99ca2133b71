//! End-to-end: a real Ballast server (on its own thread) in front of real
//! origin simulators on ephemeral loopback ports.

use crate::common::*;
use ballast::tls::devcert::DevCerts;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Setup {
    listen: SocketAddr,
    ballast: RunningBallast,
}

/// Start Ballast with one plain listener; `body` holds pools and routes.
async fn start(body: &str) -> Setup {
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 5s}}\n{body}"
    );
    let ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    Setup { listen, ballast }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_and_balances_by_weight() {
    let a = origin_named("a").await;
    let b = origin_named("b").await;
    let web = origin_named("web").await;
    let setup = start(&format!(
        r#"
pools:
  api:
    mode: round_robin
    backends: [{{addr: "{}", weight: 2}}, {{addr: "{}", weight: 1}}]
  web:
    backends: [{{addr: "{}"}}]
routes:
  - {{name: api, match: {{host: api.test, path_prefix: /v1}}, pool: api}}
  - {{name: web, match: {{}}, pool: web}}
"#,
        a.addr, b.addr, web.addr
    ))
    .await;

    for _ in 0..6 {
        let reply = get(setup.listen, "api.test:8080", "/v1/items").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.text().ends_with("GET /v1/items\n"),
            "{}",
            reply.text()
        );
    }
    assert_eq!((a.stats.total(), b.stats.total()), (4, 2), "2:1 weights");

    assert_eq!(
        get(setup.listen, "api.test", "/v10")
            .await
            .header("x-origin"),
        Some("web")
    );
    assert_eq!(
        get(setup.listen, "other.test", "/v1/x")
            .await
            .header("x-origin"),
        Some("web")
    );
    assert_eq!(
        get(setup.listen, "API.TEST", "/v1")
            .await
            .header("x-origin")
            .map(|o| o != "web"),
        Some(true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_client_headers_and_request_id() {
    let o = origin_named("o").await;
    let setup = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        o.addr
    ))
    .await;

    let req = http::Request::builder()
        .uri("/headers")
        .header("host", "h.test")
        .header("x-request-id", "req-42")
        .header("x-forwarded-for", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let reply = send(setup.listen, req).await;
    let seen = reply.text();
    assert!(seen.contains("x-request-id: req-42\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");
    assert_eq!(reply.header("x-request-id"), Some("req-42"));

    let reply = get(setup.listen, "h.test", "/headers").await;
    let id = reply
        .header("x-request-id")
        .expect("generated id")
        .to_string();
    assert_eq!(id.len(), 32);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(reply.text().contains(&format!("x-request-id: {id}\n")));
    assert!(reply.text().contains("x-forwarded-for: 127.0.0.1\n"));
    let other = get(setup.listen, "h.test", "/").await;
    assert_ne!(
        other.header("x-request-id"),
        Some(id.as_str()),
        "ids are unique"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagates_the_trace_context_with_its_own_span_as_parent() {
    let o = origin_named("o").await;
    let setup = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        o.addr
    ))
    .await;
    let with_trace = |traceparent: &str| {
        http::Request::builder()
            .uri("/headers")
            .header("host", "h.test")
            .header("traceparent", traceparent)
            .header("tracestate", "vendor=abc")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };

    let client = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    let seen = send(setup.listen, with_trace(client)).await.text();
    let (trace_id, parent_id, flags) = seen_traceparent(&seen);
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{seen}");
    assert_ne!(
        parent_id, "00f067aa0ba902b7",
        "Ballast's span is the parent"
    );
    assert_eq!(flags, "00", "the client's flags are kept");
    assert!(seen.contains("tracestate: vendor=abc\n"), "{seen}");
    let again = send(setup.listen, with_trace(client)).await.text();
    assert_ne!(seen_traceparent(&again).1, parent_id, "a span per request");

    let invalid = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let seen = send(setup.listen, with_trace(invalid)).await.text();
    let (fresh, _, flags) = seen_traceparent(&seen);
    assert_ne!(fresh, "0".repeat(32));
    assert_eq!(flags, "01", "a new trace is sampled");
    assert!(
        !seen.contains("tracestate"),
        "tracestate goes with an invalid parent: {seen}"
    );

    let seen = get(setup.listen, "h.test", "/headers").await.text();
    let other = get(setup.listen, "h.test", "/headers").await.text();
    assert_ne!(
        seen_traceparent(&seen).0,
        seen_traceparent(&other).0,
        "each request without one starts its own trace"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_attempt_is_observed_in_its_backends_latency_histogram() {
    let fast = origin_named("fast").await;
    let slow = origin_with_latency("slow", Duration::from_millis(40)).await;
    let proxy = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\npools: {{p: {{mode: round_robin, backends: [{}]}}}}\nroutes: [{{pool: p}}]\n",
            backend_entries(&[&fast, &slow])
        )
    })
    .await;
    for _ in 0..6 {
        assert_eq!(get(proxy.listen, "x", "/").await.status, StatusCode::OK);
    }
    let text = metrics_text(proxy.admin).await;
    let series = |origin: &ballast_load_tests::origin::OriginHandle, part: &str| {
        let backend = format!("backend=\"p/{}\"", origin.addr);
        metric(
            &text,
            &format!("ballast_backend_latency_seconds_{part}"),
            &[&backend, "pool=\"p\""],
        )
    };
    assert_eq!(series(&fast, "count"), fast.stats.total() as f64, "{text}");
    assert_eq!(series(&slow, "count"), slow.stats.total() as f64, "{text}");
    assert_eq!(series(&fast, "count") + series(&slow, "count"), 6.0);
    assert!(
        series(&slow, "sum") >= 0.04 * series(&slow, "count"),
        "the slow backend's latency shows: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_pass_through_once() {
    let o = origin_named("o").await;
    let setup = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        o.addr
    ))
    .await;
    let small = send(
        setup.listen,
        request(Method::POST, "x", "/echo", "hello, origin"),
    )
    .await;
    assert_eq!(small.status, StatusCode::OK);
    assert_eq!(small.text(), "hello, origin");

    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let reply = send(
        setup.listen,
        request(Method::POST, "x", "/echo", big.clone()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body == big, "4 MiB body came back intact");
    assert_eq!(o.stats.count(&Method::POST), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_stream_rather_than_buffer() {
    let o = origin_named("o").await;
    let setup = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        o.addr
    ))
    .await;
    let stream = TcpStream::connect(setup.listen).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let started = Instant::now();
    let resp = sender
        .send_request(request(
            Method::GET,
            "x",
            "/stream?chunks=3&delay_ms=300",
            Bytes::new(),
        ))
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut first_chunk_at = None;
    let mut received = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            first_chunk_at.get_or_insert_with(|| started.elapsed());
            received.extend_from_slice(&data);
        }
    }
    let finished_at = started.elapsed();
    assert_eq!(
        String::from_utf8(received).unwrap(),
        "chunk 0\nchunk 1\nchunk 2\n"
    );
    let first = first_chunk_at.unwrap();
    // The origin spaces chunks 300 ms apart: a streaming proxy hands over the
    // first one long before the last; a buffering one delivers all at once.
    assert!(
        finished_at - first >= Duration::from_millis(400),
        "first chunk at {first:?}, end at {finished_at:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_backend_is_502_slow_backend_is_504_and_no_route_is_404() {
    let slow = origin_with_latency("slow", Duration::from_secs(3)).await;
    let dead = dead_addr();
    let setup = start(&format!(
        r#"
pools:
  dead: {{backends: [{{addr: "{dead}"}}]}}
  slow: {{read_timeout: 300ms, backends: [{{addr: "{}"}}]}}
routes:
  - {{match: {{path_prefix: /dead}}, pool: dead}}
  - {{match: {{path_prefix: /slow}}, pool: slow}}
"#,
        slow.addr
    ))
    .await;

    let reply = get(setup.listen, "x", "/dead").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        reply.text(),
        "bad gateway: could not connect to the backend\n"
    );
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(reply.header("x-request-id").is_some());

    let started = Instant::now();
    let reply = get(setup.listen, "x", "/slow").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.text(),
        "gateway timeout: the backend did not answer in time\n"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timed out by read_timeout"
    );
    assert_eq!(
        slow.stats.total(),
        1,
        "a timed-out GET on a fresh connection is not resent"
    );

    let reply = get(setup.listen, "x", "/elsewhere").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.text(), "not found: no route matches this request\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_moves_to_another_backend_for_any_method() {
    let alive = origin_named("alive").await;
    let dead = dead_addr();
    let setup = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{dead}\"}}, {{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        alive.addr
    ))
    .await;
    for i in 0..6 {
        let method = if i % 2 == 0 {
            Method::GET
        } else {
            Method::POST
        };
        let reply = send(setup.listen, request(method, "x", "/echo", "payload")).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
        assert_eq!(reply.text(), "payload");
    }
    assert_eq!(
        alive.stats.count(&Method::POST),
        3,
        "each POST reached the origin exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400_and_the_proxy_keeps_serving() {
    let o = origin_named("o").await;
    let setup = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        o.addr
    ))
    .await;
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ] {
        let mut stream = TcpStream::connect(setup.listen).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        let mut response = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "{:?} -> {text:?}",
            String::from_utf8_lossy(garbage)
        );
    }
    assert_eq!(o.stats.total(), 0, "nothing malformed reached the origin");
    assert_eq!(get(setup.listen, "x", "/").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_lets_in_flight_requests_finish() {
    let slow = origin_with_latency("slow", Duration::from_millis(800)).await;
    let Setup { listen, ballast } = start(&format!(
        "pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        slow.addr
    ))
    .await;
    let in_flight = tokio::spawn(async move { get(listen, "x", "/work").await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.stats.total() == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = tokio::task::spawn_blocking(move || drop(ballast));
    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), "slow GET /work\n");
    stopping.await.unwrap();
    assert!(
        TcpStream::connect(listen).await.is_err(),
        "listener closed after stop"
    );
}

fn root_store(ca_pem: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// TLS handshake to `addr` with SNI `name`, trusting only `ca_pem`.
async fn tls_connect(
    addr: SocketAddr,
    name: &str,
    ca_pem: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(root_store(ca_pem))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(name.to_string()).unwrap(), tcp)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_picks_certificates_by_sni_and_speaks_h2() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let default_certs = DevCerts::generate(&["default.test".to_string()]).unwrap();
    default_certs.write_leaf(dir.path(), "default").unwrap();
    let api_certs = DevCerts::generate(&["api.test".to_string()]).unwrap();
    api_certs.write_leaf(dir.path(), "api").unwrap();

    let plain = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"
listeners:
  - {{address: "{plain}"}}
  - address: "{tls}"
    tls: {{cert: default.crt, key: default.key, sni: [{{server_names: [api.test], cert: api.crt, key: api.key}}]}}
admin: {{address: "{admin}"}}
server: {{threads: 1, drain_timeout: 2s}}
pools: {{p: {{backends: [{{addr: "{}"}}]}}}}
routes: [{{pool: p}}]
"#,
        o.addr
    );
    let _ballast = RunningBallast::start(&yaml, dir.path(), &[plain, tls, admin]).await;

    // Each certificate comes from its own CA, so a handshake that verifies
    // against one CA proves which certificate the server chose.
    let api = tls_connect(tls, "api.test", &api_certs.ca_cert_pem)
        .await
        .expect("api.test gets its cert");
    assert_eq!(api.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    assert!(tls_connect(tls, "api.test", &default_certs.ca_cert_pem)
        .await
        .is_err());
    tls_connect(tls, "default.test", &default_certs.ca_cert_pem)
        .await
        .expect("default cert otherwise");

    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(api),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("https://api.test/headers")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen = String::from_utf8_lossy(&body);
    assert!(seen.contains("x-forwarded-proto: https\n"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_gives_up_on_stragglers_at_the_drain_deadline() {
    let stuck = origin_with_latency("stuck", Duration::from_secs(30)).await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 1s}}\npools: {{p: {{read_timeout: 60s, backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        stuck.addr
    );
    let ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    let _in_flight = tokio::spawn(async move {
        let stream = TcpStream::connect(listen).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let _ = sender
            .send_request(request(Method::GET, "x", "/forever", Bytes::new()))
            .await;
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while stuck.stats.total() == 0 {
        assert!(
            Instant::now() < deadline,
            "request never reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    tokio::task::spawn_blocking(move || drop(ballast))
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "stopped {took:?} after being asked, with a 1 s drain deadline"
    );
}

//! Hostile and broken clients and backends against a live Ballast: request
//! limits, smuggling attempts, slow and vanishing clients, invalid HTTP/2,
//! absurd load reports and a spoofed client region. After each, the proxy
//! must still serve a well-behaved client.

use crate::common::*;
use ballast::tls::devcert::DevCerts;
use ballast_load_tests::origin::OriginHandle;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Proxy = LoopbackProxy;

/// Ballast on loopback with one pool `p` of `backends`, plus `extra` YAML.
async fn start(backends: &[&OriginHandle], extra: &str) -> Proxy {
    let list = backend_entries(backends);
    LoopbackProxy::start(|listen, admin| format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n{extra}pools: {{p: {{backends: [{list}]}}}}\nroutes: [{{pool: p}}]\n"
    ))
    .await
}

/// A plain GET still works.
async fn still_serves(listen: SocketAddr) {
    let reply = get(listen, "x", "/after").await;
    assert_eq!(reply.status, 200, "the proxy keeps serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_with_the_right_status() {
    let o = origin_named("o").await;
    let p = start(
        &[&o],
        "server: {threads: 1, drain_timeout: 1s, limits: {max_uri_bytes: 1024, max_headers: 20, max_header_bytes: 4096}}\n",
    )
    .await;
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    let answer = raw_exchange(p.listen, long_uri.as_bytes()).await;
    assert!(status_line(&answer).contains(" 414 "), "{answer}");

    let many: String = (0..30).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw_exchange(
        p.listen,
        format!("GET / HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(status_line(&answer).contains(" 431 "), "{answer}");

    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "b".repeat(5000)
    );
    let answer = raw_exchange(p.listen, big.as_bytes()).await;
    assert!(status_line(&answer).contains(" 431 "), "{answer}");

    // Beyond what the HTTP parser accepts at all (256 fields, 1 MiB): refused
    // or closed, never forwarded.
    let absurd: String = (0..300).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = raw_exchange(
        p.listen,
        format!("GET /absurd HTTP/1.1\r\nHost: x\r\n{absurd}\r\n").as_bytes(),
    )
    .await;
    assert!(
        answer.is_empty() || status_line(&answer).contains(" 400 "),
        "{answer}"
    );
    assert_eq!(o.stats.count_path("/absurd"), 0);
    assert_eq!(o.stats.total(), 0, "nothing oversized reached the origin");
    still_serves(p.listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_attempts_never_reach_the_origin_as_extra_requests() {
    let o = origin_named("o").await;
    let p = start(&[&o], "server: {threads: 1, drain_timeout: 1s}\n").await;

    // Content-Length and Transfer-Encoding together: chunked wins, the
    // connection is not reused, so the "hidden" request is never parsed.
    let cl_te = b"POST /cl-te HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = raw_exchange(p.listen, cl_te).await;
    assert!(
        answer.is_empty() || status_line(&answer).starts_with("HTTP/1.1 "),
        "{answer}"
    );
    // Two different Content-Lengths.
    let two_cl = b"POST /two-cl HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabcGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let answer = raw_exchange(p.listen, two_cl).await;
    assert!(
        answer.is_empty() || status_line(&answer).contains(" 400 "),
        "{answer}"
    );
    assert_eq!(o.stats.count_path("/two-cl"), 0, "ambiguous length refused");
    // Obsolete line folding in a request header.
    let folded =
        b"GET /folded HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\nConnection: close\r\n\r\n";
    let answer = raw_exchange(p.listen, folded).await;
    assert!(
        answer.is_empty() || status_line(&answer).contains(" 400 "),
        "{answer}"
    );
    assert_eq!(o.stats.count_path("/folded"), 0);
    assert_eq!(o.stats.count_path("/smuggled"), 0, "no smuggled request");
    still_serves(p.listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_vanishing_clients_do_not_hold_up_others() {
    let slow_origin = origin_with_latency("o", Duration::from_millis(300)).await;
    let p = start(&[&slow_origin], "server: {threads: 1, drain_timeout: 1s}\n").await;

    // 40 slowloris connections trickle a header byte every 100 ms, and 10
    // more trickle a body; all for 2 s.
    let mut hostile = Vec::new();
    for i in 0..50 {
        let listen = p.listen;
        hostile.push(tokio::spawn(async move {
            let Ok(mut stream) = TcpStream::connect(listen).await else {
                return;
            };
            let head = if i < 40 {
                b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaa".to_vec()
            } else {
                let mut h =
                    b"POST /slow-body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".to_vec();
                h.extend_from_slice(&[b'z'; 20]);
                h
            };
            let deadline = Instant::now() + Duration::from_secs(2);
            for byte in head {
                if Instant::now() > deadline || stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }
    // Clients that leave mid-request and mid-response.
    for _ in 0..10 {
        let mut stream = TcpStream::connect(p.listen).await.unwrap();
        stream
            .write_all(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        drop(stream);
        let mut stream = TcpStream::connect(p.listen).await.unwrap();
        stream
            .write_all(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        drop(stream); // the origin is still working on it
    }

    // Meanwhile a normal client is served at the origin's pace.
    let started = Instant::now();
    for _ in 0..3 {
        let reply = get(p.listen, "x", "/fine").await;
        assert_eq!(reply.status, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "3 requests at 300 ms took {took:?}"
    );
    for task in hostile {
        task.await.unwrap();
    }
    // Every abandoned request is eventually let go.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = get(p.admin, "localhost", "/metrics").await.text();
        if metrics.contains("ballast_in_flight_requests 0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests stuck in flight:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    still_serves(p.listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_load_reports_are_ignored_counted_and_never_forwarded() {
    let o = origin_named("o").await;
    let p = start(&[&o], "server: {threads: 1, drain_timeout: 1s}\n").await;
    let huge = "9".repeat(10 * 1024);
    for value in [
        "NaN",
        "-1",
        "1e308",
        "inf",
        "util=NaN, capacity=-5",
        huge.as_str(),
    ] {
        o.set_server_load(Some(value));
        let reply = get(p.listen, "x", "/report").await;
        assert_eq!(reply.status, 200, "{value:.20}");
        assert!(
            reply.header("server-load").is_none(),
            "stripped: {value:.20}"
        );
    }
    let metrics = get(p.admin, "localhost", "/metrics").await.text();
    let ignored: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("ballast_server_load_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(ignored, 6, "{metrics}");
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert!(
        state["pools"][0]["backends"][0]["report"].is_null(),
        "no absurd report was kept: {}",
        state["pools"][0]["backends"][0]
    );
    still_serves(p.listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_region_header_from_an_untrusted_peer_is_ignored() {
    let east = origin_named("east").await;
    let eu = origin_named("eu").await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"
listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 1, drain_timeout: 1s}}
regions: {{us-east: {{fallback: [eu-west]}}, eu-west: {{fallback: [us-east]}}}}
geo:
  client_region: [{{header: X-Client-Region, trusted_peers: ["10.0.0.0/8"]}}, {{default: us-east}}]
explain: {{always: true}}
pools: {{p: {{backends: [{{addr: "{}", region: us-east}}, {{addr: "{}", region: eu-west}}]}}}}
routes: [{{pool: p}}]
"#,
        east.addr, eu.addr
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    for _ in 0..20 {
        let req = http::Request::builder()
            .uri("/where")
            .header("host", "x")
            .header("x-client-region", "eu-west")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let reply = send(listen, req).await;
        assert_eq!(reply.status, 200);
        let decision = reply.header("x-ballast-decision").unwrap();
        assert!(
            decision.starts_with("client_region=us-east; rule=local"),
            "{decision}"
        );
    }
    assert_eq!(
        eu.stats.count_path("/where"),
        0,
        "the spoofed region had no effect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_http2_frames_close_that_connection_only() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let certs = DevCerts::generate(&["h2.test".to_string()]).unwrap();
    certs.write_leaf(dir.path(), "h2").unwrap();
    let plain = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{plain}\"}}, {{address: \"{tls}\", tls: {{cert: h2.crt, key: h2.key}}}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        o.addr
    );
    let _ballast = RunningBallast::start(&yaml, dir.path(), &[plain, tls, admin]).await;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certs.ca_cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let garbage: [&[u8]; 3] = [
        // A SETTINGS frame whose length is not a multiple of 6.
        b"\x00\x00\x05\x04\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05",
        // HEADERS on stream 0.
        b"\x00\x00\x01\x01\x05\x00\x00\x00\x00\x82",
        // A frame claiming 16 MiB.
        b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",
    ];
    for frame in garbage {
        let tcp = TcpStream::connect(tls).await.unwrap();
        let mut stream = connector
            .connect(ServerName::try_from("h2.test").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        let _ = stream.write_all(frame).await;
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the server closes a connection sending {frame:?}"
        );
    }
    assert_eq!(o.stats.total(), 0);
    still_serves(plain).await;
}

/// A bare HTTP/1.1 origin that records, per request, whether the whole body
/// its Content-Length announced arrived; it answers only complete requests.
async fn body_recorder() -> (SocketAddr, Arc<std::sync::Mutex<Vec<bool>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let complete = buf.len() >= head_end + length;
                record.lock().unwrap().push(complete);
                if complete {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )
                        .await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_body_never_delivers_a_complete_body() {
    let (origin, seen) = body_recorder().await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{origin}\"}}]}}}}\nroutes: [{{pool: p}}]\n"
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    for _ in 0..5 {
        let mut stream = TcpStream::connect(listen).await.unwrap();
        stream
            .write_all(b"POST /half HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(stream);
    }
    let answer = raw_exchange(
        listen,
        b"POST /whole HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert!(status_line(&answer).contains(" 200 "), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter().filter(|complete| **complete).count(),
        1,
        "only the whole request arrived whole: {seen:?}"
    );
}

/// A bare HTTP/1.1 origin: `/stream` answers with an endless chunked body, a
/// 1 KiB chunk every 20 ms for up to 10 s, and reports on `closed` how many
/// chunks it wrote before the connection went away; anything else gets an
/// empty 200.
async fn streaming_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    const CHUNKS: usize = 500;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (closed, reports) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let closed = closed.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    if !head.starts_with("GET /stream") {
                        let empty = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if stream.write_all(empty).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    let mut written = 0;
                    let mut gone = stream.write_all(head).await.is_err();
                    let payload = format!("400\r\n{}\r\n", "x".repeat(1024));
                    while !gone && written < CHUNKS {
                        gone = stream.write_all(payload.as_bytes()).await.is_err()
                            || stream.flush().await.is_err();
                        if !gone {
                            written += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                    let _ = closed.send(written);
                    return;
                }
            });
        }
    });
    (addr, reports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_leaving_mid_response_releases_the_request_and_its_upstream() {
    const CLIENTS: usize = 5;
    let (origin, mut closed) = streaming_origin().await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{origin}\"}}]}}}}\nroutes: [{{pool: p}}]\n"
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;

    // Each client reads the head and some of the body, then goes away.
    for _ in 0..CLIENTS {
        let mut stream = TcpStream::connect(listen).await.unwrap();
        stream
            .write_all(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        while received.len() < 4096 {
            let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut chunk))
                .await
                .expect("the body streams")
                .unwrap();
            assert!(n > 0, "the proxy closed the stream early");
            received.extend_from_slice(&chunk[..n]);
        }
        assert!(received.starts_with(b"HTTP/1.1 200"));
        drop(stream);
    }
    let left = Instant::now();

    // The proxy lets go of every upstream connection long before the
    // origin's 10 s body would have ended: it neither keeps reading the body
    // into nowhere nor parks the connection.
    let mut written = Vec::new();
    for _ in 0..CLIENTS {
        let chunks = tokio::time::timeout(Duration::from_secs(5), closed.recv())
            .await
            .expect("the upstream connection is closed after the client left")
            .unwrap();
        written.push(chunks);
    }
    assert!(
        written.iter().all(|&chunks| chunks < 50),
        "chunks written before the upstream was let go: {written:?}"
    );
    assert!(left.elapsed() < Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = get(admin, "localhost", "/metrics").await.text();
        if metrics.contains("ballast_in_flight_requests 0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "requests stuck in flight:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    still_serves(listen).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_keepalive_timeout() {
    let o = origin_named("o").await;
    let p = start(
        &[&o],
        "server: {threads: 1, drain_timeout: 1s, keepalive_timeout: 1s}\n",
    )
    .await;
    let mut stream = TcpStream::connect(p.listen).await.unwrap();
    let request = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two requests on the connection: it is kept alive between them.
    for _ in 0..2 {
        stream.write_all(request).await.unwrap();
        let mut head = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut head))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&head[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    }
    // Then idle: closed by the proxy within the timeout (and a margin).
    let started = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the idle connection was closed within 10 s");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout: {:?}",
        started.elapsed()
    );
}

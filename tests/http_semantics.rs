//! HTTP semantics a reverse proxy owes its clients and backends (RFC 9110,
//! 9112, 9113), against a live Ballast: absolute-form targets route by their
//! authority, HTTP/1.1 without `Host` and malformed request lines are
//! refused, unknown transfer codings get `501`, hop-by-hop response headers
//! stop at the proxy, HTTP/2 cookies are joined, request ids are random.

use crate::common::*;
use ballast_load_tests::origin::OriginHandle;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::HashSet;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Ballast with a host route `api.example` to origin `api` and a catch-all
/// to origin `other`; `listener` is extra listener YAML (e.g. `, h2c: true`).
async fn two_routes(api: &OriginHandle, other: &OriginHandle, listener: &str) -> LoopbackProxy {
    LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"{listener}}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 1, drain_timeout: 1s}}\n\
             pools: {{api: {{backends: [{{addr: \"{}\"}}]}}, other: {{backends: [{{addr: \"{}\"}}]}}}}\n\
             routes: [{{match: {{host: api.example}}, pool: api}}, {{pool: other}}]\n",
            api.addr, other.addr
        )
    })
    .await
}

/// The value of header `name` in a raw HTTP/1.1 answer.
fn raw_header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absolute_form_target_routes_by_its_authority() {
    let api = origin_named("api").await;
    let other = origin_named("other").await;
    let p = two_routes(&api, &other, "").await;
    let routed: [&[u8]; 3] = [
        b"GET http://api.example/headers HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"GET http://api.example/headers HTTP/1.0\r\n\r\n",
        b"GET http://api.example/headers HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n",
    ];
    for request in routed {
        let answer = raw_exchange(p.listen, request).await;
        let shown = String::from_utf8_lossy(request);
        assert!(status_line(&answer).contains(" 200 "), "{shown}\n{answer}");
        assert_eq!(
            raw_header(&answer, "x-origin"),
            Some("api"),
            "{shown}\n{answer}"
        );
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        assert!(
            body.lines().any(|line| line == "host: api.example"),
            "{shown}: the Host sent upstream is the target's authority\n{answer}"
        );
    }
    // Pingora refuses a Host that differs from the authority byte for byte
    // (400) before any routing; such a request never reaches the catch-all.
    let differing: [&[u8]; 2] = [
        b"GET http://api.example/headers HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n",
        b"GET http://api.example/headers HTTP/1.1\r\nHost: API.example\r\nConnection: close\r\n\r\n",
    ];
    for request in differing {
        let answer = raw_exchange(p.listen, request).await;
        let status = status_line(&answer);
        assert!(
            status.contains(" 400 ") || raw_header(&answer, "x-origin") == Some("api"),
            "{}\n{answer}",
            String::from_utf8_lossy(request)
        );
    }
    assert_eq!(other.stats.total(), 0, "nothing went to the catch-all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http11_without_host_is_refused_and_http10_without_host_is_served() {
    let api = origin_named("api").await;
    let other = origin_named("other").await;
    let p = two_routes(&api, &other, "").await;
    let answer = raw_exchange(p.listen, b"GET /no-host HTTP/1.1\r\n\r\n").await;
    assert!(status_line(&answer).contains(" 400 "), "{answer}");
    assert!(raw_header(&answer, "x-request-id").is_some(), "{answer}");
    assert_eq!(other.stats.count_path("/no-host"), 0);

    let answer = raw_exchange(p.listen, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(status_line(&answer).contains(" 200 "), "{answer}");
    assert_eq!(other.stats.count_path("/old"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_coding_other_than_chunked_gets_501_and_never_reaches_a_backend() {
    let api = origin_named("api").await;
    let other = origin_named("other").await;
    let p = two_routes(&api, &other, "").await;
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    for coding in ["gzip, chunked", "deflate,chunked", "chunked, chunked"] {
        let request = format!(
            "POST /coded HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n"
        );
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        let answer = raw_exchange(p.listen, &bytes).await;
        assert!(status_line(&answer).contains(" 501 "), "{coding}: {answer}");
        assert_eq!(raw_header(&answer, "connection"), Some("close"), "{answer}");
    }
    // Two fields, the first naming gzip.
    let split = b"POST /coded HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let answer = raw_exchange(p.listen, split).await;
    assert!(status_line(&answer).contains(" 501 "), "{answer}");
    assert_eq!(
        other.stats.count_path("/coded"),
        0,
        "no coded request forwarded"
    );

    let chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let answer = raw_exchange(p.listen, chunked).await;
    assert!(status_line(&answer).contains(" 200 "), "{answer}");
    assert!(answer.contains("hello"), "{answer}");
}

/// A bare HTTP/1.1 origin answering every request with `head` (status line
/// and fields, without the blank line) and a 2-byte body `ok`.
async fn canned_origin(head: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!("{head}\r\nContent-Length: 2\r\n\r\nok");
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_the_origin_names_in_connection_stop_at_the_proxy() {
    let origin = canned_origin(
        "HTTP/1.1 200 OK\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nX-Kept: yes",
    )
    .await;
    let p = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{origin}\"}}]}}}}\nroutes: [{{pool: p}}]\n"
        )
    })
    .await;
    let answer = raw_exchange(
        p.listen,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&answer).contains(" 200 "), "{answer}");
    for hop in ["x-secret", "keep-alive", "proxy-connection", "te"] {
        assert_eq!(raw_header(&answer, hop), None, "{hop} stripped:\n{answer}");
    }
    assert_eq!(raw_header(&answer, "x-kept"), Some("yes"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_http2_cookie_fields_reach_an_http1_backend_joined() {
    let api = origin_named("api").await;
    let other = origin_named("other").await;
    let p = two_routes(&api, &other, ", h2c: true").await;
    let tcp = TcpStream::connect(p.listen).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri("http://x/headers")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let seen = String::from_utf8_lossy(&body);
    let cookies: Vec<&str> = seen
        .lines()
        .filter_map(|line| line.strip_prefix("cookie: "))
        .collect();
    assert_eq!(cookies, ["a=1; b=2"], "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_request_ids_are_random_and_a_client_id_is_kept() {
    let api = origin_named("api").await;
    let other = origin_named("other").await;
    let p = two_routes(&api, &other, "").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let reply = get(p.listen, "x", "/").await;
        let id = reply.header("x-request-id").unwrap().to_string();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        ids.push(u128::from_str_radix(&id, 16).unwrap());
    }
    let distinct: HashSet<u128> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len());
    // A counter shares its leading digits and steps by small amounts;
    // random ids differ all over: no two consecutive ids share the first
    // 16 hex digits or lie within 2^64 of each other.
    for pair in ids.windows(2) {
        assert_ne!(
            pair[0] >> 64,
            pair[1] >> 64,
            "{:032x} {:032x}",
            pair[0],
            pair[1]
        );
    }
    let reply = send(
        p.listen,
        http::Request::builder()
            .uri("/")
            .header("host", "x")
            .header("x-request-id", "client-chosen-42")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(reply.header("x-request-id"), Some("client-chosen-42"));
}

//! Per-route rewriting end to end: header edits seen by the origin and by
//! the client, path and host rewrites seen by the origin, redirects (plain
//! and HTTP→HTTPS), request body limits (declared and streamed), per-client
//! rate limits, and the configuration errors of bad settings.

use crate::common::echo_origin::{spawn_echo_origin, EchoOrigin};
use crate::common::*;
use ballast::config::{load_str, ConfigErrors};
use http::{Method, StatusCode};
use std::path::Path;

/// A Ballast in front of one echo origin, with `routes` (YAML lines under
/// `routes:`, the pool named `echo`).
async fn proxy_with_routes(routes: &str) -> (LoopbackProxy, EchoOrigin) {
    let origin = spawn_echo_origin().await;
    let addr = origin.addr;
    let proxy = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2}}\npools:\n  echo:\n    backends: [{{addr: \"{addr}\"}}]\nroutes:\n{routes}"
        )
    })
    .await;
    (proxy, origin)
}

/// The value of header `name` in the origin's echo, each occurrence.
fn echoed<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    text.lines()
        .filter_map(|line| line.strip_prefix(prefix.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_and_response_headers_are_set_added_and_removed() {
    let (proxy, _origin) = proxy_with_routes(
        r#"
  - name: edited
    match: {path_prefix: /edited}
    pool: echo
    request_headers:
      set: {x-tenant: blue}
      add: {x-tag: added}
      remove: [x-secret]
    response_headers:
      set: {cache-control: no-store}
      add: {x-served-by: ballast}
      remove: [server, x-origin-secret]
  - {name: plain, match: {}, pool: echo}
"#,
    )
    .await;
    let req = http::Request::builder()
        .uri("/edited/a")
        .header("host", "x")
        .header("x-tenant", "red")
        .header("x-tag", "mine")
        .header("x-secret", "hunter2")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let reply = send(proxy.listen, req).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let text = reply.text();
    assert_eq!(echoed(&text, "x-tenant"), ["blue"], "{text}");
    assert_eq!(echoed(&text, "x-tag"), ["mine", "added"], "{text}");
    assert!(echoed(&text, "x-secret").is_empty(), "{text}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-served-by"), Some("ballast"));
    assert_eq!(reply.header("server"), None);
    assert_eq!(reply.header("x-origin-secret"), None);
    assert!(reply.header("x-request-id").is_some());

    // Another route's traffic is untouched.
    let plain = get(proxy.listen, "x", "/other").await;
    assert_eq!(plain.header("server"), Some("echo-origin"));
    assert_eq!(plain.header("x-origin-secret"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_and_hosts_are_rewritten_for_the_backend_only() {
    let (proxy, _origin) = proxy_with_routes(
        r#"
  - {name: strip, match: {path_prefix: /strip}, pool: echo, rewrite: {path_prefix: /}}
  - {name: replace, match: {path_prefix: /v1}, pool: echo, rewrite: {path_prefix: /internal/v2, host: api.internal}}
  - name: regex
    match: {path_prefix: /users}
    pool: echo
    rewrite: {regex: {pattern: "^/users/([0-9]+)/profile$", replacement: "/profiles/$1"}}
"#,
    )
    .await;
    let cases = [
        ("/strip/a/b?q=1", "GET /a/b?q=1"),
        ("/strip", "GET /"),
        ("/v1/items?page=2", "GET /internal/v2/items?page=2"),
        ("/users/42/profile", "GET /profiles/42"),
        ("/users/42/other", "GET /users/42/other"),
    ];
    for (path, line) in cases {
        let reply = get(proxy.listen, "client.example", path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
        let text = reply.text();
        assert_eq!(text.lines().next(), Some(line), "{path}: {text}");
        let host = if path.starts_with("/v1") {
            "api.internal"
        } else {
            "client.example"
        };
        assert_eq!(echoed(&text, "host"), [host], "{path}: {text}");
    }
}

fn errors(routes: &str) -> Vec<String> {
    let yaml = format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\npools:\n  echo:\n    backends: [{{addr: \"127.0.0.1:9\"}}]\nroutes:\n{routes}"
    );
    match load_str(&yaml, Path::new(".")) {
        Ok(_) => panic!("expected errors for:\n{yaml}"),
        Err(ConfigErrors(list)) => list.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn bad_edits_are_rejected_with_their_path() {
    let errors = errors(
        r#"
  - name: bad
    match: {}
    pool: echo
    request_headers: {set: {"bad header": x, x-ok: "line\nbreak"}, remove: [host]}
    response_headers: {add: {content-length: "1"}}
    rewrite: {path_prefix: /x, host: "bad host"}
  - name: badregex
    match: {path_prefix: /a}
    pool: echo
    rewrite: {regex: {pattern: "([a-z", replacement: /b}}
  - name: both
    match: {path_prefix: /a}
    pool: echo
    rewrite: {path_prefix: /b, regex: {pattern: a, replacement: b}}
  - name: huge
    match: {path_prefix: /a}
    pool: echo
    rewrite: {regex: {pattern: "\\w{1000}\\w{1000}", replacement: /b}}
"#,
    );
    let text = errors.join("\n");
    for expected in [
        "routes[0].request_headers.set.bad header: invalid header name",
        "routes[0].request_headers.set.x-ok: invalid header value",
        "routes[0].request_headers.remove[0]: \"host\" cannot be edited",
        "use rewrite.host",
        "routes[0].response_headers.add.content-length: \"content-length\" cannot be edited",
        "routes[0].rewrite.path_prefix: needs the route's match.path_prefix",
        "routes[0].rewrite.host: invalid host \"bad host\"",
        "routes[1].rewrite.regex.pattern: invalid regex",
        "routes[2].rewrite: set path_prefix or regex, not both",
        "routes[3].rewrite.regex.pattern: invalid regex",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_post_carries_its_body() {
    let (proxy, origin) = proxy_with_routes(
        "  - {name: api, match: {path_prefix: /api}, pool: echo, rewrite: {path_prefix: /}}\n",
    )
    .await;
    let reply = send(
        proxy.listen,
        request(Method::POST, "x", "/api/submit", "0123456789"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text().lines().next(), Some("POST /submit"));
    assert_eq!(origin.requests(), 1);
    assert_eq!(origin.body_bytes(), 10);
    assert_eq!(origin.complete_bodies(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_answer_with_their_status_and_location() {
    let (proxy, origin) = proxy_with_routes(
        r#"
  - {name: old, match: {path_prefix: /old}, redirect: {to: "https://new.example/moved", status: 302}}
  - {name: to-https, match: {host: plain.example}, redirect: {to: "https://{host}{path}{query}", status: 308}}
  - {name: default-status, match: {host: www.example}, redirect: {to: "{scheme}://example{path}"}}
  - {name: rest, match: {}, pool: echo}
"#,
    )
    .await;
    let cases = [
        ("any.example", "/old/page", 302, "https://new.example/moved"),
        (
            "plain.example:8080",
            "/a/b?x=1&y=2",
            308,
            "https://plain.example/a/b?x=1&y=2",
        ),
        ("plain.example", "/", 308, "https://plain.example/"),
        ("www.example", "/p", 301, "http://example/p"),
    ];
    for (host, path, status, location) in cases {
        let reply = get(proxy.listen, host, path).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{host}{path}: {}",
            reply.text()
        );
        assert_eq!(reply.header("location"), Some(location), "{host}{path}");
        assert!(reply.header("x-request-id").is_some());
    }
    // A POST to the HTTP→HTTPS route is redirected too (308 keeps its method).
    let post = send(
        proxy.listen,
        request(Method::POST, "plain.example", "/form", "a=1"),
    )
    .await;
    assert_eq!(post.status.as_u16(), 308);
    assert_eq!(post.header("location"), Some("https://plain.example/form"));
    assert_eq!(origin.requests(), 0, "a redirect never reaches the backend");
    let served = get(proxy.listen, "other.example", "/x").await;
    assert_eq!(served.status, StatusCode::OK);
}

#[test]
fn bad_redirects_are_rejected_with_their_path() {
    let errors = errors(
        r#"
  - {name: a, match: {}, redirect: {to: "https://{hostname}/", status: 200}}
  - {name: b, match: {}, pool: echo, redirect: {to: "https://x/"}}
  - {name: c, match: {}, redirect: {to: "https://x/ y"}, rewrite: {host: x}}
  - {name: d, match: {}}
"#,
    );
    let text = errors.join("\n");
    for expected in [
        "routes[0].redirect.status: 200 is not a redirect status",
        "routes[0].redirect.to: unknown placeholder {hostname} (known: {scheme}, {host}, {path}, {query})",
        "routes[1].pool: a route with a redirect answers by itself",
        "routes[2].redirect.to: must be a URL of visible ASCII characters",
        "routes[2].rewrite: a route with a redirect answers by itself",
        "routes[3].pool: required (or a redirect)",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// A chunked POST of `chunks` chunks of `size` bytes each, then the last
/// chunk; the connection closes after the answer.
fn chunked_post(path: &str, chunks: usize, size: usize) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..chunks {
        bytes.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        bytes.extend(std::iter::repeat_n(b'a', size));
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_with_413() {
    let origin = spawn_echo_origin().await;
    let addr = origin.addr;
    let proxy = LoopbackProxy::start(|listen, admin| {
        format!(
            r#"listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, limits: {{max_body_bytes: 100}}}}
pools:
  echo:
    backends: [{{addr: "{addr}"}}]
routes:
  - {{name: uploads, match: {{path_prefix: /upload}}, pool: echo, max_body_bytes: 1000}}
  - {{name: rest, match: {{}}, pool: echo}}
"#
        )
    })
    .await;
    // Declared lengths: the route's limit, and the server's for other routes.
    let small = send(
        proxy.listen,
        request(Method::POST, "x", "/upload/a", vec![b'a'; 1000]),
    )
    .await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.text());
    let big = send(
        proxy.listen,
        request(Method::POST, "x", "/upload/a", vec![b'a'; 1001]),
    )
    .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text());
    assert!(big.text().contains("content too large"), "{}", big.text());
    let other = send(
        proxy.listen,
        request(Method::POST, "x", "/else", vec![b'a'; 101]),
    )
    .await;
    assert_eq!(other.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        origin.requests(),
        1,
        "a declared oversized body never reaches the backend"
    );
    assert_eq!(origin.body_bytes(), 1000);

    // Chunked: within the limit it passes; over it, 413 and the backend
    // never receives a complete body.
    let within = raw_exchange(proxy.listen, &chunked_post("/upload/b", 4, 250)).await;
    assert_eq!(status_line(&within), "HTTP/1.1 200 OK", "{within}");
    assert_eq!(origin.complete_bodies(), 2);
    let sent_before = origin.body_bytes();
    let over = raw_exchange(proxy.listen, &chunked_post("/upload/c", 40, 250)).await;
    assert!(status_line(&over).starts_with("HTTP/1.1 413"), "{over}");
    assert_eq!(
        origin.complete_bodies(),
        2,
        "no oversized body arrives complete"
    );
    let forwarded = origin.body_bytes() - sent_before;
    assert!(
        forwarded <= 1000,
        "forwarded {forwarded} bytes of an oversized body"
    );
}

#[test]
fn bad_body_limits_are_rejected() {
    let errors = errors(
        r#"
  - {name: a, match: {}, pool: echo, max_body_bytes: 0}
  - {name: b, match: {}, redirect: {to: "/x"}, max_body_bytes: 10}
"#,
    );
    let text = errors.join("\n");
    for expected in [
        "routes[0].max_body_bytes: 0 is out of range",
        "routes[1].max_body_bytes: a route with a redirect answers by itself",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// A GET from the local address `from` (a loopback address) over a fresh
/// connection, with an optional `x-api-key`.
async fn get_from(
    proxy: std::net::SocketAddr,
    from: [u8; 4],
    path: &str,
    api_key: Option<&str>,
) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((from, 0)))
        .expect("bind a loopback source address");
    let stream = socket.connect(proxy).await.expect("connect");
    let mut builder = http::Request::builder().uri(path).header("host", "x");
    if let Some(key) = api_key {
        builder = builder.header("x-api-key", key);
    }
    let req = builder
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    send_over(stream, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_the_rate_limit_get_429_with_retry_after() {
    // One request per 10 s after a burst of 3: a loaded machine cannot
    // refill a token between the requests below.
    let (proxy, _origin) = proxy_with_routes(
        r#"
  - {name: by-address, match: {path_prefix: /a}, pool: echo, rate_limit: {requests_per_second: 0.1, burst: 3}}
  - {name: by-key, match: {path_prefix: /k}, pool: echo, rate_limit: {requests_per_second: 0.1, burst: 2, key: {header: x-api-key}}}
"#,
    )
    .await;
    let one = [127, 0, 0, 1];
    let two = [127, 0, 0, 2];
    for n in 0..3 {
        let reply = get_from(proxy.listen, one, "/a", None).await;
        assert_eq!(reply.status, StatusCode::OK, "request {n} of the burst");
    }
    let limited = get_from(proxy.listen, one, "/a", None).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text()
    );
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry_after), "Retry-After {retry_after}");
    // Another client address has its own bucket.
    let other = get_from(proxy.listen, two, "/a", None).await;
    assert_eq!(other.status, StatusCode::OK);

    // By header: each value its own bucket, whatever the address.
    for _ in 0..2 {
        assert_eq!(
            get_from(proxy.listen, one, "/k", Some("alpha"))
                .await
                .status,
            StatusCode::OK
        );
    }
    let alpha = get_from(proxy.listen, two, "/k", Some("alpha")).await;
    assert_eq!(alpha.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(alpha.header("retry-after").is_some());
    let beta = get_from(proxy.listen, one, "/k", Some("beta")).await;
    assert_eq!(beta.status, StatusCode::OK);

    let text = metrics_text(proxy.admin).await;
    assert_eq!(
        metric(
            &text,
            "ballast_rate_limited_total",
            &["route=\"by-address\""]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "ballast_rate_limited_total", &["route=\"by-key\""]),
        1.0
    );
}

#[test]
fn bad_rate_limits_are_rejected() {
    let errors = errors(
        r#"
  - {name: a, match: {}, pool: echo, rate_limit: {requests_per_second: 0, burst: 0}}
  - {name: b, match: {}, pool: echo, rate_limit: {requests_per_second: 5, key: client_ip}}
  - {name: c, match: {}, pool: echo, rate_limit: {requests_per_second: 5, key: {header: "bad name"}}}
"#,
    );
    let text = errors.join("\n");
    for expected in [
        "routes[0].rate_limit.requests_per_second: 0 is out of range",
        "routes[0].rate_limit.burst: 0 is out of range",
        "routes[1].rate_limit.key: unknown key \"client_ip\"",
        "routes[2].rate_limit.key.header: invalid header name \"bad name\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

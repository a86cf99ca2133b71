//! HTTP semantics a reverse proxy owes its clients and backends (RFC 9110,
//! 9112, 9113), against a live Ballast: absolute-form targets route by their
//! authority, HTTP/1.1 without `Host` and malformed request lines are
//! refused, unknown transfer codings get `501`, hop-by-hop response headers
//! stop at the proxy, HTTP/2 cookies are joined, request ids are random.

use crate::common::*;
use ballast_load_tests::origin::OriginHandle;
use bytes::Bytes;
use http_body_util::Full;
use std::collections::HashSet;

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

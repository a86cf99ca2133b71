//! Fuzzes route matching (`RouteTable::find`, as the proxy calls it for every
//! request) against a fixed table with exact and wildcard hosts, path
//! prefixes, methods and header conditions, and no catch-all route.
//!
//! The input is a request in lines: the Host header value (empty: none),
//! the method, the path, then `name: value` headers. The host goes through
//! `host_without_port`, as the proxy takes it from the Host header.
//!
//! Checked on every request:
//! * no panic;
//! * a match names a route of the table by its index, and a pool that exists;
//! * `host_without_port` returns a prefix of the host it is given;
//! * the result is the first route, in configuration order, whose every
//!   condition holds as the routing documentation describes them (host
//!   exact or `*.suffix`, case-insensitive; path prefix at a segment
//!   boundary; method in the list; each header present with that value);
//! * directly: on host `api.example.com` (any case), a path at or under the
//!   `/v1` segment goes to `api-writes` for POST, PUT and DELETE and to `v1`
//!   otherwise, and only such requests reach those two routes.
#![no_main]

use ballast::config::{load_str, Snapshot};
use ballast::routing::table::{host_without_port, HostMatch, RequestView, Route};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::LazyLock;

const CONFIG: &str = r#"
listeners: [{address: "127.0.0.1:8080"}]
pools:
  api: {backends: [{addr: "10.0.0.1:80"}]}
  writes: {backends: [{addr: "10.0.0.2:80"}]}
  web: {backends: [{addr: "10.0.0.3:80"}]}
routes:
  - name: api-writes
    match: {host: api.example.com, path_prefix: /v1, methods: [POST, PUT, DELETE]}
    pool: writes
  - {name: v1, match: {host: api.example.com, path_prefix: /v1}, pool: api}
  - {name: tenant-blue, match: {host: "*.example.com", headers: {x-tenant: blue}}, pool: api}
  - {name: static, match: {path_prefix: /static/}, pool: web}
  - name: admin
    match:
      host: "*.internal.example.com"
      path_prefix: /admin
      methods: [GET, HEAD]
      headers: {x-role: admin, x-tenant: green}
    pool: writes
  - {name: home, match: {host: example.com, path_prefix: /}, pool: web}
"#;

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let snapshot = load_str(CONFIG, Path::new("/nonexistent-base")).expect("the table loads");
    assert_eq!(snapshot.routes.routes().len(), 6);
    snapshot
});

/// Most headers put on one request.
const MAX_HEADERS: usize = 64;

fuzz_target!(|input: &[u8]| {
    let mut lines = input.split(|&byte| byte == b'\n');
    let host_header = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let Ok(method) = Method::from_bytes(lines.next().unwrap_or_default()) else {
        return;
    };
    let path = String::from_utf8_lossy(lines.next().unwrap_or_default());
    let mut headers = HeaderMap::new();
    for line in lines.take(MAX_HEADERS) {
        let Some(colon) = line.iter().position(|&byte| byte == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(&line[..colon]);
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii_start());
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.append(name, value);
        }
    }
    // As the proxy takes it from the Host header, port stripped; any text,
    // not only a valid header value: the table must cope with what it gets.
    let host = (!host_header.is_empty()).then(|| {
        let bare = host_without_port(&host_header);
        assert!(host_header.starts_with(bare), "{host_header:?} -> {bare:?}");
        bare
    });

    let view = RequestView {
        host,
        path: &path,
        method: &method,
        headers: &headers,
    };
    let routes = SNAPSHOT.routes.routes();
    let found = SNAPSHOT.routes.find(&view);

    if let Some((index, route)) = found {
        assert!(std::ptr::eq(route, &routes[index]), "index {index}");
        let pool = route.pool.expect("every route of this table has a pool");
        assert!(pool.0 < SNAPSHOT.pools.len());
    }
    let expected = routes
        .iter()
        .position(|route| documented_match(route, &view));
    assert_eq!(found.map(|(index, _)| index), expected, "{view:?}");

    let on_api_host = host.is_some_and(|host| host.eq_ignore_ascii_case("api.example.com"));
    let under_v1 = path == "/v1" || path.starts_with("/v1/");
    let found_name = found.map(|(_, route)| route.name.as_str());
    if on_api_host && under_v1 {
        let writes = [Method::POST, Method::PUT, Method::DELETE].contains(&method);
        let want = if writes { "api-writes" } else { "v1" };
        assert_eq!(found_name, Some(want), "{view:?}");
    }
    if matches!(found_name, Some("api-writes" | "v1")) {
        assert!(on_api_host && under_v1, "{view:?}");
    }
});

/// Whether `route` matches, written from the documentation of
/// `routing::table` rather than from its code.
fn documented_match(route: &Route, request: &RequestView<'_>) -> bool {
    let host_ok = match (&route.host, request.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(want)), Some(host)) => {
            host.to_ascii_lowercase() == want.to_ascii_lowercase()
        }
        (Some(HostMatch::Subdomain(suffix)), Some(host)) => {
            // `suffix` keeps its leading dot: at least one label before it.
            host.len() > suffix.len()
                && host
                    .to_ascii_lowercase()
                    .ends_with(&suffix.to_ascii_lowercase())
        }
    };
    let path_ok = match &route.path_prefix {
        None => true,
        Some(prefix) => match request.path.strip_prefix(prefix.as_str()) {
            None => false,
            Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        },
    };
    let method_ok = route
        .methods
        .as_ref()
        .is_none_or(|methods| methods.contains(request.method));
    let headers_ok = route.headers.iter().all(|(name, value)| {
        request
            .headers
            .get_all(name)
            .iter()
            .any(|sent| sent == value)
    });
    host_ok && path_ok && method_ok && headers_ok
}

//! Route matching: the first route whose every condition holds wins, in
//! configuration order.
//!
//! Conditions: host (exact, or `*.example.com` for any subdomain; case-insensitive,
//! port ignored), path prefix (segment-aware: `/v1` matches `/v1` and `/v1/x`
//! but not `/v10`), methods, and exact header values. Matching allocates nothing.

pub use crate::config::routes::{HostMatch, Route, RouteTable};
use http::{HeaderMap, Method};

impl HostMatch {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(want) => host.eq_ignore_ascii_case(want),
            HostMatch::Subdomain(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }
}

/// What a route looks at in a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Host without port, as sent (Host header or `:authority`).
    pub host: Option<&'a str>,
    pub path: &'a str,
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
}

impl Route {
    fn matches(&self, req: &RequestView<'_>) -> bool {
        if let Some(host_match) = &self.host {
            match req.host {
                Some(host) if host_match.matches(host) => {}
                _ => return false,
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !path_has_prefix(req.path, prefix) {
                return false;
            }
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(req.method) {
                return false;
            }
        }
        self.headers
            .iter()
            .all(|(name, value)| req.headers.get_all(name).iter().any(|v| v == value))
    }
}

/// Segment-aware prefix test: the prefix must end at a `/` boundary of the path.
pub fn path_has_prefix(path: &str, prefix: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

/// Strip an optional `:port` from a Host value (IPv6 literals keep their
/// brackets), and the trailing dot of a fully qualified name
/// (`example.com.` is `example.com`).
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    let name = match host.rfind(':') {
        Some(colon) if host[colon + 1..].bytes().all(|b| b.is_ascii_digit()) => &host[..colon],
        _ => host,
    };
    name.strip_suffix('.').unwrap_or(name)
}

impl RouteTable {
    /// The first route that matches, with its index, if any.
    pub fn find(&self, req: &RequestView<'_>) -> Option<(usize, &Route)> {
        self.routes()
            .iter()
            .enumerate()
            .find(|(_, route)| route.matches(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoolId;
    use http::{HeaderName, HeaderValue};

    fn route(name: &str, host: Option<HostMatch>, prefix: Option<&str>, pool: usize) -> Route {
        Route {
            name: name.into(),
            host,
            path_prefix: prefix.map(Into::into),
            methods: None,
            headers: vec![],
            pool: Some(PoolId(pool)),
            budget: None,
            edits: Default::default(),
            redirect: None,
            max_body_bytes: None,
            rate_limit: None,
        }
    }

    fn view<'a>(host: Option<&'a str>, path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            host,
            path,
            method: &Method::GET,
            headers,
        }
    }

    #[test]
    fn first_match_wins_in_order() {
        let table = RouteTable::new(vec![
            route(
                "v1",
                Some(HostMatch::Exact("api.example.com".into())),
                Some("/v1"),
                0,
            ),
            route(
                "api",
                Some(HostMatch::Exact("api.example.com".into())),
                None,
                1,
            ),
            route("any", None, None, 2),
        ]);
        let h = HeaderMap::new();
        let name = |host, path| {
            table
                .find(&view(host, path, &h))
                .map(|(_, r)| r.name.as_str())
        };
        assert_eq!(name(Some("api.example.com"), "/v1/users"), Some("v1"));
        assert_eq!(name(Some("API.Example.COM"), "/v1"), Some("v1"));
        assert_eq!(name(Some("api.example.com"), "/v10"), Some("api"));
        assert_eq!(name(Some("other"), "/v1"), Some("any"));
        assert_eq!(name(None, "/"), Some("any"));
    }

    #[test]
    fn no_match_without_catch_all() {
        let table = RouteTable::new(vec![route("v1", None, Some("/v1/"), 0)]);
        let h = HeaderMap::new();
        assert!(table.find(&view(None, "/v1", &h)).is_none());
        assert!(table.find(&view(None, "/v1/x", &h)).is_some());
    }

    #[test]
    fn subdomain_wildcard() {
        let m = HostMatch::Subdomain(".example.com".into());
        assert!(m.matches("a.example.com"));
        assert!(m.matches("a.b.EXAMPLE.com"));
        assert!(!m.matches("example.com"));
        assert!(!m.matches("badexample.com"));
        assert!(!m.matches(".example.com"));
    }

    #[test]
    fn methods_and_headers() {
        let mut r = route("w", None, None, 0);
        r.methods = Some(vec![Method::POST]);
        r.headers = vec![(
            HeaderName::from_static("x-tenant"),
            HeaderValue::from_static("blue"),
        )];
        let table = RouteTable::new(vec![r]);
        let mut h = HeaderMap::new();
        h.insert("x-tenant", HeaderValue::from_static("blue"));
        let post = RequestView {
            host: None,
            path: "/",
            method: &Method::POST,
            headers: &h,
        };
        assert!(table.find(&post).is_some());
        let get = RequestView {
            method: &Method::GET,
            ..post
        };
        assert!(table.find(&get).is_none());
        let empty = HeaderMap::new();
        let no_header = RequestView {
            headers: &empty,
            ..post
        };
        assert!(table.find(&no_header).is_none());
    }

    #[test]
    fn host_port_is_stripped() {
        assert_eq!(host_without_port("a.com:8080"), "a.com");
        assert_eq!(host_without_port("a.com"), "a.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }

    #[test]
    fn a_fully_qualified_host_matches_like_its_plain_name() {
        assert_eq!(host_without_port("a.com."), "a.com");
        assert_eq!(host_without_port("a.com.:8080"), "a.com");
        let exact = HostMatch::Exact("api.example.com".into());
        assert!(exact.matches(host_without_port("API.example.com.")));
        let wildcard = HostMatch::Subdomain(".example.com".into());
        assert!(wildcard.matches(host_without_port("x.example.com.:443")));
    }
}

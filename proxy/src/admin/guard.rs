//! Which requests the admin endpoint serves, against attacks from a web
//! page the operator's browser has open:
//!
//! - **Cross-site requests.** A request that can change something (any
//!   method but GET, HEAD and OPTIONS) carrying an `Origin` other than the
//!   admin endpoint's own, or `Sec-Fetch-Site: cross-site`, is refused: a
//!   page elsewhere could otherwise POST a drain with a plain form.
//! - **DNS rebinding.** Without a token, a request whose `Host` is neither an
//!   IP address, `localhost`, nor one of `admin.allowed_hosts` is refused: a
//!   name an attacker controls could otherwise resolve to 127.0.0.1 and
//!   make the operator's browser read and drive the API. With a token the
//!   browser cannot send it on the attacker's behalf, so any `Host` is fine.

use http::header::{HeaderMap, HOST, ORIGIN};
use http::Method;
use std::net::IpAddr;

/// What the guard knows of the endpoint.
pub struct Guard {
    /// Host names accepted besides IP addresses and `localhost`, lowercase.
    pub allowed_hosts: Vec<String>,
    /// Whether a bearer token is required.
    pub token_required: bool,
}

impl Guard {
    /// Why this request is refused, if it is.
    pub fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<String> {
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        if !self.token_required {
            if let Some(host) = host {
                if !self.known_host(host) {
                    return Some(format!(
                        "unknown Host \"{host}\": without a token the admin endpoint answers \
                         only to IP addresses, localhost and admin.allowed_hosts"
                    ));
                }
            }
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return None;
        }
        let cross_site = headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        let origin = headers.get(ORIGIN).map(|o| o.to_str().unwrap_or("?"));
        let foreign_origin = origin.is_some_and(|origin| {
            let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
            host.is_none_or(|host| !authority.eq_ignore_ascii_case(host))
        });
        (cross_site || foreign_origin).then(|| {
            format!(
                "cross-origin request refused (Origin {}): change the admin state from its own \
                 dashboard, curl or ballast ctl",
                origin.unwrap_or("absent")
            )
        })
    }

    fn known_host(&self, host: &str) -> bool {
        let name = strip_port(host);
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<IpAddr>().is_ok()
            || bare.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(bare))
    }
}

/// `host[:port]` or `[v6][:port]` without the port.
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(name, _)| name);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn open() -> Guard {
        Guard {
            allowed_hosts: vec!["ballast-admin.internal".into()],
            token_required: false,
        }
    }

    #[test]
    fn ips_localhost_and_allowed_names_are_known_hosts_without_a_token() {
        let guard = open();
        for host in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "[::1]:9901",
            "localhost:9901",
            "LOCALHOST",
            "10.1.2.3:9901",
            "Ballast-Admin.internal:9901",
        ] {
            let refused = guard.refusal(&Method::GET, &headers(&[("host", host)]));
            assert_eq!(refused, None, "{host}");
        }
        let refused = guard
            .refusal(&Method::GET, &headers(&[("host", "evil.example:9901")]))
            .unwrap();
        assert!(
            refused.contains("unknown Host \"evil.example:9901\""),
            "{refused}"
        );
        let with_token = Guard {
            token_required: true,
            ..open()
        };
        assert_eq!(
            with_token.refusal(&Method::GET, &headers(&[("host", "evil.example")])),
            None
        );
    }

    #[test]
    fn a_mutation_from_another_origin_is_refused_and_its_own_is_not() {
        let guard = open();
        let post = |pairs: &[(&'static str, &str)]| guard.refusal(&Method::POST, &headers(pairs));
        assert_eq!(
            post(&[("host", "127.0.0.1:9901")]),
            None,
            "curl sends no Origin"
        );
        assert_eq!(
            post(&[
                ("host", "127.0.0.1:9901"),
                ("origin", "http://127.0.0.1:9901")
            ]),
            None,
            "the dashboard's own"
        );
        let refused = post(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "http://evil.example"),
        ])
        .unwrap();
        assert!(refused.contains("Origin http://evil.example"), "{refused}");
        assert!(post(&[("host", "127.0.0.1:9901"), ("origin", "null")]).is_some());
        assert!(post(&[("host", "127.0.0.1:9901"), ("sec-fetch-site", "cross-site")]).is_some());
        // Reading is not a mutation.
        let read = guard.refusal(
            &Method::GET,
            &headers(&[
                ("host", "127.0.0.1:9901"),
                ("origin", "http://evil.example"),
            ]),
        );
        assert_eq!(read, None);
    }
}

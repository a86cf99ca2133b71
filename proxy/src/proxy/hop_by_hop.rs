//! Hop-by-hop response fields stop at the proxy (RFC 9110 §7.6.1): the
//! fields a backend names in `Connection`, `Connection` itself,
//! `Keep-Alive`, `Proxy-Connection` and `TE`. A `101 Switching Protocols`
//! keeps `Connection: upgrade` and `Upgrade`, which the tunnel needs.
//! `Content-Length` and `Transfer-Encoding` frame the body and are left to
//! Pingora even when named. (Requests are cleaned the same way by Pingora's
//! standard upstream request policy.)

use http::header::{self, HeaderName};
use http::StatusCode;
use pingora::http::ResponseHeader;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Remove the hop-by-hop fields from a backend's response.
pub(super) fn strip_response(resp: &mut ResponseHeader) {
    let upgrade = resp.status == StatusCode::SWITCHING_PROTOCOLS;
    if resp.headers.contains_key(header::CONNECTION) {
        let nominated: Vec<HeaderName> = resp
            .headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
            .filter(|name| strippable(name, upgrade))
            .collect();
        for name in &nominated {
            resp.remove_header(name);
        }
        if !upgrade {
            resp.remove_header(&header::CONNECTION);
        }
    }
    for name in [KEEP_ALIVE, PROXY_CONNECTION, header::TE] {
        if resp.headers.contains_key(&name) {
            resp.remove_header(&name);
        }
    }
}

/// Whether a field named in `Connection` may be removed: never the body's
/// framing, nor on a `101` the upgrade itself.
fn strippable(name: &HeaderName, upgrade: bool) -> bool {
    *name != header::CONTENT_LENGTH
        && *name != header::TRANSFER_ENCODING
        && !(upgrade && (*name == header::UPGRADE || *name == header::CONNECTION))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    fn names(resp: &ResponseHeader) -> Vec<&str> {
        resp.headers.keys().map(HeaderName::as_str).collect()
    }

    #[test]
    fn fields_named_in_connection_and_the_fixed_ones_are_removed() {
        let mut resp = response(
            200,
            &[
                ("connection", "X-Secret, keep-alive"),
                ("connection", "x-other, content-length"),
                ("x-secret", "1"),
                ("x-other", "2"),
                ("keep-alive", "timeout=5"),
                ("proxy-connection", "keep-alive"),
                ("te", "trailers"),
                ("content-length", "2"),
                ("x-kept", "yes"),
            ],
        );
        strip_response(&mut resp);
        assert_eq!(names(&resp), ["content-length", "x-kept"]);
    }

    #[test]
    fn a_switching_protocols_response_keeps_its_upgrade() {
        let mut resp = response(
            101,
            &[
                ("connection", "Upgrade, X-Secret"),
                ("upgrade", "websocket"),
                ("x-secret", "1"),
                ("sec-websocket-accept", "abc"),
            ],
        );
        strip_response(&mut resp);
        assert_eq!(
            names(&resp),
            ["connection", "upgrade", "sec-websocket-accept"]
        );
    }
}

//! Request rules Pingora leaves to the proxy: the authority of an
//! absolute-form target is the request's host (RFC 9112 §3.2.2); an HTTP/1.1
//! request without one needs a `Host` field (§3.2, `400`); `chunked` is the
//! only transfer coding Ballast forwards (§6.1, §7: any other is `501 Not
//! Implemented`); and the `cookie` fields of an HTTP/2 request reach the
//! backend as one, joined with `; ` (RFC 9113 §8.2.3).

use bytes::{BufMut, BytesMut};
use http::header::{self, HeaderValue};
use http::Version;
use pingora::http::authority::raw_target_authority;
use pingora::http::RequestHeader;

/// The authority of an absolute-form request target
/// (`GET http://api.example/x HTTP/1.1`), if the target is one.
pub(super) fn target_authority(req: &RequestHeader) -> Option<&str> {
    raw_target_authority(req.raw_path())
        .authority()
        .and_then(|authority| std::str::from_utf8(authority).ok())
}

/// The status and message refusing `req`, if it breaks one of the rules.
pub(super) fn refusal(req: &RequestHeader) -> Option<(u16, &'static str)> {
    if req.version == Version::HTTP_11
        && !req.headers.contains_key(header::HOST)
        && target_authority(req).is_none()
    {
        return Some((400, "bad request: an HTTP/1.1 request needs a Host header"));
    }
    if req.headers.contains_key(header::TRANSFER_ENCODING) && !only_chunked(req) {
        return Some((
            501,
            "not implemented: chunked is the only transfer coding accepted",
        ));
    }
    None
}

/// Whether the request's transfer codings, over all its
/// `Transfer-Encoding` fields, are exactly one `chunked`.
fn only_chunked(req: &RequestHeader) -> bool {
    let mut codings = req
        .headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|coding| !coding.is_empty());
    codings
        .next()
        .is_some_and(|first| first.eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none()
}

/// Join the request's `cookie` fields into one, separated by `; ` (HTTP/2
/// splits a cookie into fields; an HTTP/1.1 backend expects one line).
pub(super) fn join_cookies(req: &mut RequestHeader) -> pingora::Result<()> {
    let mut cookies = req.headers.get_all(header::COOKIE).iter();
    if cookies.next().is_none() || cookies.next().is_none() {
        return Ok(());
    }
    let mut joined = BytesMut::new();
    for (i, cookie) in req.headers.get_all(header::COOKIE).iter().enumerate() {
        if i > 0 {
            joined.put_slice(b"; ");
        }
        joined.put_slice(cookie.as_bytes());
    }
    let joined = HeaderValue::from_maybe_shared(joined.freeze())
        .expect("joined field values are a field value");
    req.insert_header(header::COOKIE, joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &str, version: Version, fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        req.set_version(version);
        for (name, value) in fields {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    #[test]
    fn an_absolute_form_target_names_its_authority() {
        let absolute = request("http://api.example:8080/x?y", Version::HTTP_11, &[]);
        assert_eq!(target_authority(&absolute), Some("api.example:8080"));
        let origin_form = request("/x", Version::HTTP_11, &[("host", "api.example")]);
        assert_eq!(target_authority(&origin_form), None);
    }

    #[test]
    fn http11_needs_a_host_or_an_absolute_target() {
        let bare = request("/x", Version::HTTP_11, &[]);
        assert_eq!(refusal(&bare).map(|r| r.0), Some(400));
        let old = request("/x", Version::HTTP_10, &[]);
        assert_eq!(refusal(&old), None);
        let absolute = request("http://api.example/x", Version::HTTP_11, &[]);
        assert_eq!(refusal(&absolute), None);
        let hosted = request("/x", Version::HTTP_11, &[("host", "x")]);
        assert_eq!(refusal(&hosted), None);
    }

    #[test]
    fn cookie_fields_are_joined_into_one() {
        let mut req = request(
            "/x",
            Version::HTTP_2,
            &[("cookie", "a=1"), ("x-other", "o"), ("cookie", "b=2; c=3")],
        );
        join_cookies(&mut req).unwrap();
        let cookies: Vec<_> = req.headers.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=2; c=3"]);
        let mut single = request("/x", Version::HTTP_2, &[("cookie", "a=1")]);
        join_cookies(&mut single).unwrap();
        assert_eq!(single.headers.get_all("cookie").iter().count(), 1);
    }

    #[test]
    fn chunked_alone_is_the_only_transfer_coding_taken() {
        for accepted in [&["chunked"][..], &["Chunked "], &[" chunked,"]] {
            let fields: Vec<_> = accepted.iter().map(|v| ("transfer-encoding", *v)).collect();
            let req = request(
                "/x",
                Version::HTTP_11,
                &[&[("host", "x")], &fields[..]].concat(),
            );
            assert_eq!(refusal(&req), None, "{accepted:?}");
        }
        for refused in [
            &["gzip, chunked"][..],
            &["gzip", "chunked"],
            &["chunked, chunked"],
            &["identity"],
            &[""],
        ] {
            let fields: Vec<_> = refused.iter().map(|v| ("transfer-encoding", *v)).collect();
            let req = request(
                "/x",
                Version::HTTP_11,
                &[&[("host", "x")], &fields[..]].concat(),
            );
            assert_eq!(refusal(&req).map(|r| r.0), Some(501), "{refused:?}");
        }
    }
}

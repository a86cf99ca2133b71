//! Request and response headers: request ids (kept or made at random), the request
//! limits, `X-Forwarded-*` and the trace context toward the backend, the read-your-writes pin
//! handed back on a write, and whether a request asked to be explained.

use super::context::RequestCtx;
use super::request_rules::target_authority;
use super::trace_context::{TraceContext, TRACEPARENT, TRACESTATE};
use crate::config::{Explain, PinCarrier, RequestLimits};
use crate::routing::read_write::pin_value;
use crate::routing::table::host_without_port;
use crate::stats::clock;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::Session;
use pingora::Result;
use std::net::IpAddr;

pub(super) const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
pub(super) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub(super) const X_BALLAST_REASON: &str = "x-ballast-reason";
pub(super) const X_BALLAST_DECISION: &str = "x-ballast-decision";
// The same names as header-map keys, for lookups: a `&str` key is parsed
// into a header name at every lookup. (Pingora's `insert_header` parses
// every name it is given, and copies a `HeaderName`'s bytes where a
// `&'static str` is borrowed: inserts keep the `&str` names.)
const X_REQUEST_ID_KEY: HeaderName = HeaderName::from_static(X_REQUEST_ID);
const X_FORWARDED_FOR_KEY: HeaderName = HeaderName::from_static(X_FORWARDED_FOR);
/// Longest client-supplied request id that is propagated as is.
const MAX_REQUEST_ID_LEN: usize = 128;

/// A new request id: 128 bits from the thread's CSPRNG (ChaCha, seeded and
/// reseeded from the operating system), as 32 lower-case hex digits, so no
/// client can predict another's id.
pub(super) fn new_request_id() -> HeaderValue {
    let bits: u128 = rand::random();
    let mut id = [0u8; 32];
    write_hex(&mut id[..16], (bits >> 64) as u64);
    write_hex(&mut id[16..], bits as u64);
    HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

/// The client's `X-Request-Id` if acceptable, else a new one.
pub(super) fn keep_or_make_request_id(req: &RequestHeader) -> HeaderValue {
    match req.headers.get(&X_REQUEST_ID_KEY) {
        Some(id) if acceptable_request_id(id) => id.clone(),
        _ => new_request_id(),
    }
}

/// The status and message for a request over one of `limits`, if it is.
pub(super) fn over_limit(
    req: &RequestHeader,
    limits: &RequestLimits,
) -> Option<(u16, &'static str)> {
    if req.raw_path().len() > limits.max_uri_bytes {
        return Some((414, "URI too long"));
    }
    if req.headers.len() > limits.max_headers {
        return Some((431, "request header fields too large: too many fields"));
    }
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > limits.max_header_bytes {
        return Some((431, "request header fields too large"));
    }
    None
}

/// A client-supplied request id is kept if it is short visible ASCII.
fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_graphic())
}

/// Lower-case hex digits of `value`, right-aligned in `out` (up to 16 bytes).
pub(super) fn write_hex(out: &mut [u8], mut value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// `X-Forwarded-For` with `client` appended to a `prior` value (kept only if
/// it is visible ASCII), built without formatting machinery.
fn forwarded_for(prior: Option<&HeaderValue>, client: IpAddr) -> HeaderValue {
    let prior = prior
        .map(HeaderValue::as_bytes)
        .filter(|p| !p.is_empty() && p.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)));
    let mut value = Vec::with_capacity(prior.map_or(0, |p| p.len() + 2) + 39);
    if let Some(prior) = prior {
        value.extend_from_slice(prior);
        value.extend_from_slice(b", ");
    }
    match client {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    value.push(b'.');
                }
                if octet >= 100 {
                    value.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    value.push(b'0' + octet / 10 % 10);
                }
                value.push(b'0' + octet % 10);
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            write!(value, "{v6}").expect("writing to a Vec cannot fail");
        }
    }
    HeaderValue::from_maybe_shared(Bytes::from(value)).expect("visible ASCII and an address")
}

/// The host a request is for, without the port: the authority of an
/// absolute-form target (which replaces `Host`, RFC 9112 §3.2.2), else the
/// URI's (HTTP/2 `:authority`), else `Host`.
pub(super) fn request_host(req: &RequestHeader) -> Option<&str> {
    target_authority(req)
        .or_else(|| req.uri.host())
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .map(host_without_port)
}

/// The TCP peer's address, when the connection came over IP.
pub(super) fn tcp_peer_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip())
}

/// Add `X-Forwarded-For` (the request's, with `peer` appended: the address
/// the connection came from, whatever the client is found to be),
/// `X-Forwarded-Proto`, `X-Request-Id` and the request's `traceparent`
/// (dropping a `tracestate` whose parent was invalid) to the request sent to
/// the backend.
pub(super) fn add_forwarding(
    session: &Session,
    upstream_request: &mut RequestHeader,
    peer: Option<IpAddr>,
    request_id: &HeaderValue,
    trace: Option<&TraceContext>,
) -> Result<()> {
    if let Some(trace) = trace {
        upstream_request.insert_header(TRACEPARENT, trace.header.clone())?;
        if !trace.continued() {
            upstream_request.remove_header(&TRACESTATE);
        }
    }
    if let Some(peer) = peer {
        let prior = upstream_request.headers.get(&X_FORWARDED_FOR_KEY);
        let forwarded_for = forwarded_for(prior, peer);
        upstream_request.insert_header(X_FORWARDED_FOR, forwarded_for)?;
    }
    let is_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let proto = HeaderValue::from_static(if is_tls { "https" } else { "http" });
    upstream_request.insert_header(X_FORWARDED_PROTO, proto)?;
    upstream_request.insert_header(X_REQUEST_ID, request_id.clone())?;
    Ok(())
}

/// Whether this request's decision should be explained: always, or when it
/// carries the debug header and comes from a trusted `peer`.
pub(super) fn wants_explanation(
    explain: &Explain,
    session: &Session,
    peer: Option<IpAddr>,
) -> bool {
    explain.always
        || (session
            .req_header()
            .headers
            .contains_key(&explain.debug_header)
            && peer.is_some_and(|ip| explain.trusted_peers.iter().any(|net| net.contains(&ip))))
}

/// On a write's response, the pin that keeps the client's reads on the
/// write region for the pool's read-your-writes ttl (a cookie added to any
/// the backend set, or the configured header).
pub(super) fn hand_back_pin(response: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
    let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) else {
        return Ok(());
    };
    let Some(ryw) = routing
        .snapshot
        .pool(pool)
        .write
        .as_ref()
        .and_then(|split| split.read_your_writes.as_ref())
    else {
        return Ok(());
    };
    let value = pin_value(ryw, clock::unix_ms());
    match &ryw.carrier {
        PinCarrier::Cookie(_) => {
            response.append_header(header::SET_COOKIE, value)?;
        }
        PinCarrier::Header(name) => response.insert_header(name.clone(), value)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_appends_the_client_address_as_display_would() {
        let addresses = [
            "0.0.0.0",
            "9.10.99.100",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ];
        for text in addresses {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(forwarded_for(None, ip), text);
            let prior = HeaderValue::from_static("203.0.113.9, 10.1.2.3");
            assert_eq!(
                forwarded_for(Some(&prior), ip),
                format!("203.0.113.9, 10.1.2.3, {text}")
            );
        }
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let unreadable = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert_eq!(forwarded_for(Some(&unreadable), localhost), "127.0.0.1");
        let empty = HeaderValue::from_static("");
        assert_eq!(forwarded_for(Some(&empty), localhost), "127.0.0.1");
    }

    #[test]
    fn new_request_ids_are_32_hex_digits_and_differ() {
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }

    #[test]
    fn hex_digits_fill_the_slot_right_aligned() {
        let mut id = [0u8; 16];
        write_hex(&mut id, 0x0123_4567_89ab_cdef);
        assert_eq!(&id, b"0123456789abcdef");
        write_hex(&mut id, 0xa);
        assert_eq!(&id, b"000000000000000a");
    }
}

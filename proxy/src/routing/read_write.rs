//! Read/write split with read-your-writes, kept pure: which kind of request
//! this is (a write, a read, or a read pinned to the write region because
//! the same client wrote a moment ago), and the pin handed back on a write.
//!
//! The pin is stateless so that any Ballast instance honours it: it is the
//! time the pin ends, in Unix milliseconds, carried by the client in a
//! cookie (or a header it echoes). No server-side table exists. A value
//! that does not parse is ignored; one already past is ignored; one further
//! ahead than the ttl is clamped to the ttl. Forging one can only send the
//! forger's own reads to the write region, which always serves fresh data.

use crate::config::{PinCarrier, ReadYourWrites, WriteSplit};
use crate::routing::sticky::cookie_value;
use crate::routing::table::path_has_prefix;
use crate::telemetry::request_series::RW_KINDS;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue, Method};

/// What a request is to a pool with a read/write split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// Served only by the write region; never anywhere else.
    Write,
    /// Served by normal routing (the client's regional plan).
    Read,
    /// A read within the ttl of the client's write: served by the write region.
    PinnedRead,
    /// A pinned read that the write region could not serve (or that the
    /// client's residency fence keeps out of it): served by normal routing.
    PinnedFallback,
    /// A write refused: the write region could not serve it, or the
    /// client's residency fence does not allow it.
    WriteRefused,
}

impl RequestKind {
    /// Every kind, in the order of [`RequestKind::index`].
    pub const ALL: [RequestKind; RW_KINDS] = [
        RequestKind::Write,
        RequestKind::Read,
        RequestKind::PinnedRead,
        RequestKind::PinnedFallback,
        RequestKind::WriteRefused,
    ];

    /// The kind's position in [`RequestKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The metric label and the `rw=` field of `X-Ballast-Decision`.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Write => "write",
            RequestKind::Read => "read",
            RequestKind::PinnedRead => "pinned_read",
            RequestKind::PinnedFallback => "pinned_fallback",
            RequestKind::WriteRefused => "write_refused",
        }
    }

    /// Whether the write region alone may serve it.
    pub fn writer_only(self) -> bool {
        matches!(self, RequestKind::Write | RequestKind::PinnedRead)
    }
}

/// Classify a request: a write by method, path prefix or header; else a
/// read, pinned when it carries a live pin at `now_unix_ms`.
pub fn classify(
    split: &WriteSplit,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    now_unix_ms: u64,
) -> RequestKind {
    let write = split.methods.contains(method)
        || split
            .path_prefixes
            .iter()
            .any(|prefix| path_has_prefix(path, prefix))
        || split
            .header
            .as_ref()
            .is_some_and(|name| headers.contains_key(name));
    if write {
        return RequestKind::Write;
    }
    match &split.read_your_writes {
        Some(ryw) if pin_until(ryw, headers, now_unix_ms).is_some() => RequestKind::PinnedRead,
        _ => RequestKind::Read,
    }
}

/// When the request's pin ends, if it carries one that is still live,
/// clamped to `now + ttl`.
fn pin_until(ryw: &ReadYourWrites, headers: &HeaderMap, now_unix_ms: u64) -> Option<u64> {
    let raw = match &ryw.carrier {
        PinCarrier::Cookie(name) => headers
            .get_all(COOKIE)
            .iter()
            .find_map(|value| cookie_value(value.as_bytes(), name.as_bytes())),
        PinCarrier::Header(name) => headers.get(name).map(HeaderValue::as_bytes),
    }?;
    let expiry = parse_millis(raw)?;
    let longest = now_unix_ms.saturating_add(ryw.ttl.as_millis() as u64);
    (expiry > now_unix_ms).then(|| expiry.min(longest))
}

/// The value to hand back on a write's response at `now_unix_ms`: a
/// `Set-Cookie` (the cookie lives as long as the pin, rounded up to a
/// second) or the bare expiry for a header carrier.
pub fn pin_value(ryw: &ReadYourWrites, now_unix_ms: u64) -> HeaderValue {
    let expiry = now_unix_ms.saturating_add(ryw.ttl.as_millis() as u64);
    let text = match &ryw.carrier {
        PinCarrier::Cookie(name) => {
            let max_age = ryw.ttl.as_millis().div_ceil(1000);
            format!("{name}={expiry}; Max-Age={max_age}; Path=/; HttpOnly; SameSite=Lax")
        }
        PinCarrier::Header(_) => expiry.to_string(),
    };
    HeaderValue::from_str(&text).expect("a validated cookie name and digits")
}

/// Decimal milliseconds: 1 to 19 ASCII digits, nothing else.
fn parse_millis(raw: &[u8]) -> Option<u64> {
    if raw.is_empty() || raw.len() > 19 || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    raw.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegionPlan;
    use http::HeaderName;
    use std::time::Duration;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn each_kind_sits_at_its_index_with_its_own_label() {
        let labels: Vec<&str> = RequestKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            labels,
            [
                "write",
                "read",
                "pinned_read",
                "pinned_fallback",
                "write_refused"
            ]
        );
        for (i, kind) in RequestKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i);
        }
    }

    fn split(carrier: PinCarrier) -> WriteSplit {
        WriteSplit {
            region: "us-east".into(),
            plan: RegionPlan {
                order: vec!["us-east".into()],
                fenced: true,
            },
            methods: vec![Method::POST, Method::PUT, Method::PATCH, Method::DELETE],
            path_prefixes: vec!["/rpc".into()],
            header: Some(HeaderName::from_static("x-write")),
            read_your_writes: Some(ReadYourWrites {
                ttl: Duration::from_millis(500),
                carrier,
            }),
        }
    }

    fn cookie_split() -> WriteSplit {
        split(PinCarrier::Cookie("ryw".into()))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn kind(split: &WriteSplit, method: Method, path: &str, h: &HeaderMap) -> RequestKind {
        classify(split, &method, path, h, NOW)
    }

    #[test]
    fn writes_are_found_by_method_path_prefix_or_header() {
        let s = cookie_split();
        let none = HeaderMap::new();
        for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(kind(&s, method, "/x", &none), RequestKind::Write);
        }
        assert_eq!(kind(&s, Method::GET, "/x", &none), RequestKind::Read);
        assert_eq!(kind(&s, Method::HEAD, "/x", &none), RequestKind::Read);
        assert_eq!(
            kind(&s, Method::GET, "/rpc/save", &none),
            RequestKind::Write
        );
        assert_eq!(kind(&s, Method::GET, "/rpcx", &none), RequestKind::Read);
        let marked = headers(&[("x-write", "1")]);
        assert_eq!(kind(&s, Method::GET, "/x", &marked), RequestKind::Write);
    }

    #[test]
    fn a_live_pin_makes_a_read_pinned_and_an_expired_one_does_not() {
        let s = cookie_split();
        let live = headers(&[("cookie", &format!("a=1; ryw={}; b=2", NOW + 200))]);
        assert_eq!(kind(&s, Method::GET, "/x", &live), RequestKind::PinnedRead);
        let expired = headers(&[("cookie", &format!("ryw={}", NOW - 1))]);
        assert_eq!(kind(&s, Method::GET, "/x", &expired), RequestKind::Read);
        let at_expiry = headers(&[("cookie", &format!("ryw={NOW}"))]);
        assert_eq!(kind(&s, Method::GET, "/x", &at_expiry), RequestKind::Read);
        let other_cookie = headers(&[("cookie", &format!("xryw={}", NOW + 200))]);
        assert_eq!(
            kind(&s, Method::GET, "/x", &other_cookie),
            RequestKind::Read
        );
        // In a second Cookie header too.
        let second = headers(&[("cookie", "a=1"), ("cookie", &format!("ryw={}", NOW + 1))]);
        assert_eq!(
            kind(&s, Method::GET, "/x", &second),
            RequestKind::PinnedRead
        );
    }

    #[test]
    fn garbage_pins_are_ignored_and_far_ones_clamped_to_the_ttl() {
        let ryw = cookie_split().read_your_writes.unwrap();
        for garbage in [
            "ryw=",
            "ryw=soon",
            "ryw=-5",
            "ryw=1e20",
            "ryw= 1800000000100",
            "ryw=18000000001000000000000",
            "ryw=99999999999999999999",
            "ryw=1800000000100x",
        ] {
            assert_eq!(
                pin_until(&ryw, &headers(&[("cookie", garbage)]), NOW),
                None,
                "{garbage}"
            );
        }
        let far = headers(&[("cookie", "ryw=9999999999999999999")]);
        assert_eq!(pin_until(&ryw, &far, NOW), Some(NOW + 500));
        let near = headers(&[("cookie", &format!("ryw={}", NOW + 100))]);
        assert_eq!(pin_until(&ryw, &near, NOW), Some(NOW + 100));
        let invalid_utf8 = {
            let mut map = HeaderMap::new();
            map.insert("cookie", HeaderValue::from_bytes(b"ryw=\xff1").unwrap());
            map
        };
        assert_eq!(pin_until(&ryw, &invalid_utf8, NOW), None);
    }

    #[test]
    fn a_header_carrier_reads_and_writes_the_bare_expiry() {
        let s = split(PinCarrier::Header(HeaderName::from_static("x-pin")));
        let ryw = s.read_your_writes.as_ref().unwrap();
        assert_eq!(pin_value(ryw, NOW), (NOW + 500).to_string());
        let live = headers(&[("x-pin", &(NOW + 10).to_string())]);
        assert_eq!(kind(&s, Method::GET, "/x", &live), RequestKind::PinnedRead);
        let cookie = headers(&[("cookie", &format!("x-pin={}", NOW + 10))]);
        assert_eq!(kind(&s, Method::GET, "/x", &cookie), RequestKind::Read);
    }

    #[test]
    fn the_cookie_set_on_a_write_pins_the_next_read_for_the_ttl() {
        let s = cookie_split();
        let ryw = s.read_your_writes.as_ref().unwrap();
        let set = pin_value(ryw, NOW);
        assert_eq!(
            set,
            format!(
                "ryw={}; Max-Age=1; Path=/; HttpOnly; SameSite=Lax",
                NOW + 500
            )
        );
        let sent_back = set.to_str().unwrap().split(';').next().unwrap().to_string();
        let next = headers(&[("cookie", &sent_back)]);
        assert_eq!(
            classify(&s, &Method::GET, "/x", &next, NOW + 499),
            RequestKind::PinnedRead
        );
        assert_eq!(
            classify(&s, &Method::GET, "/x", &next, NOW + 500),
            RequestKind::Read
        );
    }

    #[test]
    fn without_read_your_writes_reads_are_never_pinned() {
        let mut s = cookie_split();
        s.read_your_writes = None;
        let pinned = headers(&[("cookie", &format!("ryw={}", NOW + 200))]);
        assert_eq!(kind(&s, Method::GET, "/x", &pinned), RequestKind::Read);
        assert!(RequestKind::Write.writer_only());
        assert!(RequestKind::PinnedRead.writer_only());
        assert!(!RequestKind::PinnedFallback.writer_only());
    }
}

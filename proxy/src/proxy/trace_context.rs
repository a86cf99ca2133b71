//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): a request's
//! `traceparent` is continued when valid, and a new trace started when it is
//! absent or invalid. Ballast is one span per request: every attempt
//! (retries included) carries the same `traceparent` to its backend, with the
//! request's trace id and Ballast's span id as parent id, so each backend span
//! hangs off Ballast's span and the attempts are counted on it (the access
//! line's `attempts`). `tracestate` passes through untouched with a valid
//! `traceparent`, and is dropped with an invalid one (the specification's
//! rule: it belongs to the parent the request no longer has).

use super::headers::write_hex;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

pub(super) const TRACEPARENT: &str = "traceparent";
pub(super) const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// `traceparent` as a header-map key, for lookups (a `&str` key is parsed
/// at every lookup).
const TRACEPARENT_KEY: HeaderName = HeaderName::from_static(TRACEPARENT);

/// The `sampled` trace flag, set on the traces Ballast starts.
const SAMPLED: u8 = 0x01;

/// A `traceparent` of version 00 is exactly this long.
const VERSION_00_LEN: usize = 55;

/// The trace a request belongs to, and its span in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TraceContext {
    pub(super) trace_id: u128,
    /// The span id of the client's caller, when it sent a valid `traceparent`.
    pub(super) parent_id: Option<u64>,
    /// Ballast's span for this request.
    pub(super) span_id: u64,
    pub(super) flags: u8,
    /// The `traceparent` sent to the backends: the trace id, Ballast's span id
    /// and the flags (32 lower-case hex digits of the trace id at 3..35).
    pub(super) header: HeaderValue,
}

/// The parts of a valid `traceparent`.
#[derive(Debug, PartialEq, Eq)]
struct Parent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceContext {
    /// The request's trace: its `traceparent` continued if valid (exactly one,
    /// well formed), else a new trace, sampled with probability
    /// `sample_ratio`; a new span id either way.
    pub(super) fn continue_or_start(headers: &HeaderMap, sample_ratio: f64) -> Self {
        let mut values = headers.get_all(&TRACEPARENT_KEY).iter();
        let parent = match (values.next(), values.next()) {
            (Some(value), None) => parse(value.as_bytes()),
            _ => None,
        };
        let span_id = nonzero_random_u64();
        match parent {
            Some(parent) => Self::new(
                parent.trace_id,
                Some(parent.parent_id),
                span_id,
                parent.flags,
            ),
            None => {
                let trace_id = loop {
                    let id: u128 = rand::random();
                    if id != 0 {
                        break id;
                    }
                };
                let sampled = sample_ratio >= 1.0 || rand::random::<f64>() < sample_ratio;
                let flags = if sampled { SAMPLED } else { 0 };
                Self::new(trace_id, None, span_id, flags)
            }
        }
    }

    fn new(trace_id: u128, parent_id: Option<u64>, span_id: u64, flags: u8) -> Self {
        let mut text = [0u8; VERSION_00_LEN];
        text[..3].copy_from_slice(b"00-");
        write_hex(&mut text[3..19], (trace_id >> 64) as u64);
        write_hex(&mut text[19..35], trace_id as u64);
        text[35] = b'-';
        write_hex(&mut text[36..52], span_id);
        text[52] = b'-';
        write_hex(&mut text[53..55], u64::from(flags));
        let header = HeaderValue::from_bytes(&text).expect("hex digits and dashes");
        Self {
            trace_id,
            parent_id,
            span_id,
            flags,
            header,
        }
    }

    /// The trace id as 32 lower-case hex digits.
    pub(super) fn trace_id_hex(&self) -> &str {
        &self.header.to_str().expect("hex digits and dashes")[3..35]
    }

    /// Whether the trace is sampled (its span is exported).
    pub(super) fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// Whether the client's `tracestate` may go on: only with the
    /// `traceparent` it belongs to.
    pub(super) fn continued(&self) -> bool {
        self.parent_id.is_some()
    }
}

/// A span id: random, never all zero.
fn nonzero_random_u64() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// Parse a `traceparent`: version 00 exactly; a later version (not `ff`) by
/// its version 00 prefix, followed by the end or a `-`. Hex is lower case;
/// neither id may be all zero.
fn parse(value: &[u8]) -> Option<Parent> {
    if value.len() < VERSION_00_LEN {
        return None;
    }
    let version = hex(&value[0..2])?;
    match version {
        0 if value.len() != VERSION_00_LEN => return None,
        0xff => return None,
        _ if value.len() > VERSION_00_LEN && value[VERSION_00_LEN] != b'-' => return None,
        _ => {}
    }
    if value[2] != b'-' || value[35] != b'-' || value[52] != b'-' {
        return None;
    }
    let trace_id = (u128::from(hex(&value[3..19])?) << 64) | u128::from(hex(&value[19..35])?);
    let parent_id = hex(&value[36..52])?;
    let flags = hex(&value[53..55])? as u8;
    (trace_id != 0 && parent_id != 0).then_some(Parent {
        trace_id,
        parent_id,
        flags,
    })
}

/// The value of up to 16 lower-case hex digits.
fn hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| {
        let nibble = match digit {
            b'0'..=b'9' => digit - b'0',
            b'a'..=b'f' => digit - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(nibble))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(TRACEPARENT, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let trace = TraceContext::continue_or_start(&headers(&[EXAMPLE]), 1.0);
        assert_eq!(trace.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(trace.parent_id, Some(0x00f067aa0ba902b7));
        assert_ne!(trace.span_id, 0x00f067aa0ba902b7);
        assert_eq!(trace.flags, 1);
        assert_eq!(trace.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let sent = trace.header.to_str().unwrap();
        assert_eq!(
            sent,
            format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{:016x}-01",
                trace.span_id
            )
        );
        assert!(trace.continued());
        let unsampled = EXAMPLE.replace("-01", "-00");
        let trace = TraceContext::continue_or_start(&headers(&[&unsampled]), 1.0);
        assert!(trace.header.to_str().unwrap().ends_with("-00"));
    }

    #[test]
    fn a_later_version_is_read_by_its_version_00_prefix() {
        let later = format!("01{}-what-comes-next", &EXAMPLE[2..]);
        let parent = parse(later.as_bytes()).unwrap();
        assert_eq!(parent.parent_id, 0x00f067aa0ba902b7);
        assert!(parse(format!("01{}", &EXAMPLE[2..]).as_bytes()).is_some());
        assert!(parse(format!("01{}x", &EXAMPLE[2..]).as_bytes()).is_none());
    }

    #[test]
    fn invalid_traceparents_start_a_new_trace() {
        let invalid = [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ];
        for value in invalid {
            assert_eq!(parse(value.as_bytes()), None, "{value}");
            let trace = TraceContext::continue_or_start(&headers(&[value]), 1.0);
            assert!(!trace.continued(), "{value}");
            assert_ne!(trace.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        }
        let twice = TraceContext::continue_or_start(&headers(&[EXAMPLE, EXAMPLE]), 1.0);
        assert!(!twice.continued(), "two traceparent fields are invalid");
    }

    #[test]
    fn a_new_trace_is_valid_sampled_and_random() {
        let a = TraceContext::continue_or_start(&HeaderMap::new(), 1.0);
        let b = TraceContext::continue_or_start(&HeaderMap::new(), 1.0);
        assert_ne!(a.trace_id, b.trace_id);
        assert_eq!(a.parent_id, None);
        let parsed = parse(a.header.as_bytes()).unwrap();
        assert_eq!(parsed.trace_id, a.trace_id);
        assert_eq!(parsed.parent_id, a.span_id);
        assert_eq!(parsed.flags, SAMPLED);
    }

    #[test]
    fn new_traces_are_sampled_at_the_ratio_and_continued_ones_keep_theirs() {
        let none = TraceContext::continue_or_start(&HeaderMap::new(), 0.0);
        assert_eq!(none.flags, 0);
        assert!(none.header.to_str().unwrap().ends_with("-00"));
        let continued = TraceContext::continue_or_start(&headers(&[EXAMPLE]), 0.0);
        assert_eq!(continued.flags, SAMPLED);
        let sampled = (0..2000)
            .filter(|_| TraceContext::continue_or_start(&HeaderMap::new(), 0.25).flags == SAMPLED)
            .count();
        assert!((350..=650).contains(&sampled), "{sampled} of 2000 at 0.25");
    }
}

//! gRPC answers as the backend's record sees them. A gRPC call answers HTTP
//! 200 and carries its outcome in `grpc-status`: in the trailers after the
//! messages, or, when the backend answers with no message at all, in the
//! headers of a trailers-only response. The codes that say the backend
//! failed count against it like a 5xx: UNKNOWN, DEADLINE_EXCEEDED,
//! RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE and DATA_LOSS. The others are
//! the call's own outcome (NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED,
//! a client's CANCELLED, ...) and count as answers.

use http::header::{HeaderName, CONTENT_TYPE};
use http::HeaderMap;

/// The gRPC status header (or trailer).
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");

/// The gRPC status code UNAVAILABLE: the service could not take the call.
pub(super) const UNAVAILABLE: u32 = 14;

/// The gRPC status codes that count as the backend failing.
const BACKEND_FAILURES: [u32; 6] = [
    2,  // UNKNOWN
    4,  // DEADLINE_EXCEEDED
    8,  // RESOURCE_EXHAUSTED
    13, // INTERNAL
    UNAVAILABLE,
    15, // DATA_LOSS
];

/// Whether a call that ended with `code` counts as the backend failing.
pub(super) fn is_backend_failure(code: u32) -> bool {
    BACKEND_FAILURES.contains(&code)
}

/// The name of a gRPC status code, as the `code` label of
/// `ballast_grpc_calls_total`.
pub(super) fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "ok",
        "cancelled",
        "unknown",
        "invalid_argument",
        "deadline_exceeded",
        "not_found",
        "already_exists",
        "permission_denied",
        "resource_exhausted",
        "failed_precondition",
        "aborted",
        "out_of_range",
        "unimplemented",
        "internal",
        "unavailable",
        "data_loss",
        "unauthenticated",
    ];
    NAMES.get(code as usize).copied().unwrap_or("other")
}

/// What a backend's response headers say of a gRPC call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GrpcHead {
    /// Not a gRPC response.
    NotGrpc,
    /// A trailers-only response: the call ended with this status before
    /// any message.
    TrailersOnly(u32),
    /// Messages follow; the status comes in the trailers.
    Streaming,
}

/// Read a backend's HTTP 200 response headers as gRPC.
pub(super) fn read_head(headers: &HeaderMap) -> GrpcHead {
    let grpc = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !grpc {
        return GrpcHead::NotGrpc;
    }
    match status(headers) {
        Some(code) => GrpcHead::TrailersOnly(code),
        None => GrpcHead::Streaming,
    }
}

/// The `grpc-status` in `headers`; an unreadable one reads as UNKNOWN (2),
/// as a gRPC client reads it.
pub(super) fn status(headers: &HeaderMap) -> Option<u32> {
    let value = headers.get(&GRPC_STATUS)?;
    Some(
        value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(2),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn server_side_codes_count_and_call_outcomes_do_not() {
        for code in [2, 4, 8, 13, 14, 15] {
            assert!(is_backend_failure(code), "{code}");
        }
        // OK, CANCELLED, INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
        // PERMISSION_DENIED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE,
        // UNIMPLEMENTED, UNAUTHENTICATED.
        for code in [0, 1, 3, 5, 6, 7, 9, 10, 11, 12, 16] {
            assert!(!is_backend_failure(code), "{code}");
        }
    }

    #[test]
    fn codes_are_named() {
        assert_eq!(code_name(0), "ok");
        assert_eq!(code_name(5), "not_found");
        assert_eq!(code_name(UNAVAILABLE), "unavailable");
        assert_eq!(code_name(16), "unauthenticated");
        assert_eq!(code_name(17), "other");
    }

    #[test]
    fn the_head_tells_trailers_only_from_streaming() {
        let grpc = ("content-type", "application/grpc+proto");
        assert_eq!(read_head(&headers(&[grpc])), GrpcHead::Streaming);
        assert_eq!(
            read_head(&headers(&[grpc, ("grpc-status", "14")])),
            GrpcHead::TrailersOnly(14)
        );
        assert_eq!(
            read_head(&headers(&[grpc, ("grpc-status", "x")])),
            GrpcHead::TrailersOnly(2)
        );
        assert_eq!(
            read_head(&headers(&[
                ("content-type", "text/plain"),
                ("grpc-status", "14")
            ])),
            GrpcHead::NotGrpc
        );
        assert_eq!(read_head(&headers(&[])), GrpcHead::NotGrpc);
    }
}

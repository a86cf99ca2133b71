//! A backend's load report on its response: the `Server-Load` header and the
//! ORCA one, parsed and merged (`Server-Load` wins per field), then stripped
//! before the response reaches the client when the pool says so.

use crate::config::ServerLoadPolicy;
use crate::stats::server_load::{parse_orca, parse_server_load, LoadReport, ParseError};
use pingora::http::ResponseHeader;

/// The report carried by `response`, if any; each header that fails to
/// parse is passed to `on_error` and ignored. Strips both headers when
/// `policy.strip`.
pub(super) fn take_report(
    response: &mut ResponseHeader,
    policy: &ServerLoadPolicy,
    mut on_error: impl FnMut(ParseError),
) -> Option<LoadReport> {
    let headers = &response.headers;
    let primary = headers
        .get(&policy.header)
        .map(|v| parse_server_load(v.as_bytes()));
    let orca = headers
        .get(&policy.orca_header)
        .map(|v| parse_orca(v.as_bytes()));
    let mut ok = |result: Option<Result<LoadReport, ParseError>>| match result {
        Some(Ok(report)) => Some(report),
        Some(Err(error)) => {
            on_error(error);
            None
        }
        None => None,
    };
    let report = merge_reports(ok(primary), ok(orca));
    if policy.strip {
        response.remove_header(&policy.header);
        response.remove_header(&policy.orca_header);
    }
    report
}

/// The metric label of a load-report parse failure.
pub(super) fn parse_error_label(error: ParseError) -> &'static str {
    match error {
        ParseError::Empty => "empty",
        ParseError::TooLong => "too_long",
        ParseError::NotUtf8 => "not_utf8",
        ParseError::Malformed => "malformed",
        ParseError::OutOfRange => "out_of_range",
        ParseError::Unsupported => "unsupported",
    }
}

/// Merge a `Server-Load` report with an ORCA one; `Server-Load` wins per field.
fn merge_reports(primary: Option<LoadReport>, orca: Option<LoadReport>) -> Option<LoadReport> {
    match (primary, orca) {
        (Some(p), Some(o)) => Some(LoadReport {
            utilization: p.utilization.or(o.utilization),
            in_flight: p.in_flight.or(o.in_flight),
            capacity: p.capacity.or(o.capacity),
            latency_ms: p.latency_ms.or(o.latency_ms),
            requests_per_second: p.requests_per_second.or(o.requests_per_second),
            errors_per_second: p.errors_per_second.or(o.errors_per_second),
            error_rate: p.error_rate.or(o.error_rate),
        }),
        (p, o) => p.or(o),
    }
}

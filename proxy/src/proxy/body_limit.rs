//! The request body size limit: a route's `max_body_bytes`, else the
//! server's `limits.max_body_bytes`. A declared `Content-Length` over it is
//! refused (413) before any backend is chosen; a body without one
//! (chunked, or HTTP/2 without `content-length`) is counted as it streams,
//! and the chunk that crosses the limit fails the request with a 413
//! instead of being forwarded.

use super::context::RequestCtx;
use crate::config::routes::Route;
use crate::config::RequestLimits;
use http::header;
use pingora::http::RequestHeader;
use pingora::{Error, ErrorType, Result};

/// The message of a 413.
pub(super) const BODY_TOO_LARGE: &str = "content too large: the request body is over the limit";

/// The body limit that applies to a request of `route`, if any.
pub(super) fn body_limit(route: &Route, limits: &RequestLimits) -> Option<u64> {
    route.max_body_bytes.or(limits.max_body_bytes)
}

/// Whether the request declares a body longer than `limit`.
pub(super) fn declared_over(req: &RequestHeader, limit: u64) -> bool {
    req.headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.trim().parse::<u64>().ok())
        .is_some_and(|length| length > limit)
}

/// Count `chunk` against the request's limit; over it, the request fails
/// with a client error (413, not retried, not the backend's fault).
pub(super) fn count_chunk(ctx: &mut RequestCtx, chunk: Option<&bytes::Bytes>) -> Result<()> {
    let Some(limit) = ctx.body_limit else {
        return Ok(());
    };
    ctx.body_bytes += chunk.map_or(0, |c| c.len() as u64);
    if ctx.body_bytes > limit {
        ctx.body_over_limit = true;
        return Err(Error::explain(ErrorType::HTTPStatus(413), BODY_TOO_LARGE).into_down());
    }
    Ok(())
}

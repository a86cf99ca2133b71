//! Local responses: short plain-text errors (with `X-Request-Id`, and an
//! `X-Ballast-Reason` when a refusal has one), a route's redirects, the status a proxy error
//! maps to (and whether the client caused it), and the wording of refused writes, residency and budget refusals.

use super::context::RequestCtx;
use super::headers::{request_host, X_BALLAST_REASON, X_REQUEST_ID};
use crate::config::redirects::RequestParts;
use crate::config::routes::Route;
use crate::config::RegionPlan;
use crate::routing::picker::Unavailable;
use crate::routing::route::Refused;
use crate::routing::state::RoutingState;
use crate::telemetry::client_errors::ClientErrorKind;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::Session;
use pingora::{Error, ErrorSource, ErrorType, Result};

/// The reason given when a route's event budget sheds a request.
pub(super) const BUDGET_EXCEEDED: &str = "event budget exceeded";

/// Write a short plain-text error response (if nothing was sent yet), with
/// an optional `X-Ballast-Reason`.
pub(super) async fn respond_plain(
    session: &mut Session,
    status: u16,
    request_id: &HeaderValue,
    message: &str,
    reason: Option<&str>,
    retry_after: Option<u64>,
) {
    let body = Bytes::from(format!("{message}\n"));
    let resp = ResponseHeader::build(status, Some(5)).and_then(|mut resp| {
        resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(X_REQUEST_ID, request_id.clone())?;
        if let Some(reason) = reason {
            resp.insert_header(X_BALLAST_REASON, reason)?;
        }
        if let Some(seconds) = retry_after {
            resp.insert_header(header::RETRY_AFTER, seconds.to_string())?;
        }
        Ok(resp)
    });
    write_local_answer(session, resp, body).await;
}

/// A redirect route's status and `Location` for the request in `session`.
pub(super) fn redirect_to(session: &Session, route: &Route) -> Option<(u16, String)> {
    let redirect = route.redirect.as_ref()?;
    let req = session.req_header();
    let is_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let parts = RequestParts {
        scheme: if is_tls { "https" } else { "http" },
        host: request_host(req).unwrap_or_default(),
        path: req.uri.path(),
        query: req.uri.query(),
    };
    Some((redirect.status, redirect.location.render(&parts)))
}

/// Answer with a redirect to `location` (a short text body names it).
pub(super) async fn respond_redirect(
    session: &mut Session,
    status: u16,
    request_id: &HeaderValue,
    location: &str,
) {
    let Ok(value) = HeaderValue::from_str(location) else {
        respond_plain(
            session,
            500,
            request_id,
            "internal error: redirect target is not a valid header value",
            None,
            None,
        )
        .await;
        return;
    };
    let body = Bytes::from(format!("redirecting to {location}\n"));
    let resp = ResponseHeader::build(status, Some(5)).and_then(|mut resp| {
        resp.insert_header(header::LOCATION, value)?;
        resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(X_REQUEST_ID, request_id.clone())?;
        Ok(resp)
    });
    write_local_answer(session, resp, body).await;
}

/// Send an answer Ballast makes itself (a client that left is no error of
/// ours: noted at debug).
async fn write_local_answer(
    session: &mut Session,
    resp: pingora::Result<ResponseHeader>,
    body: Bytes,
) {
    let result = match resp {
        Ok(resp) => {
            session
                .as_downstream_mut()
                .write_error_response(resp, body)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not write a local answer to the client");
    }
}

/// Answer a failed request with `status`: the refusal recorded in `ctx`
/// (refused write, residency fence, event budget) or else `message`.
pub(super) async fn respond_failure(
    session: &mut Session,
    status: u16,
    id: &HeaderValue,
    message: &str,
    ctx: &RequestCtx,
) {
    match (
        &ctx.write_refusal,
        &ctx.fenced_region,
        ctx.budget_retry_after,
    ) {
        (Some((message, reason)), _, _) => {
            respond_plain(session, status, id, message, Some(reason), None).await;
        }
        (None, Some(region), _) => {
            let message = format!(
                "service unavailable: no backend allowed to serve region {region} is available (residency fence)"
            );
            let reason = format!("residency; client region {region}");
            respond_plain(session, status, id, &message, Some(&reason), None).await;
        }
        (None, None, Some(seconds)) => {
            let message = "service unavailable: this event is over its share of capacity";
            let reason = Some(BUDGET_EXCEEDED);
            respond_plain(session, status, id, message, reason, Some(seconds)).await;
        }
        (None, None, None) => respond_plain(session, status, id, message, None, None).await,
    }
}

/// Map a proxy error to the status the client should see (0 = connection is gone).
pub(super) fn status_for(error: &Error) -> (u16, &'static str) {
    match error.etype() {
        ErrorType::HTTPStatus(503) => {
            (503, "service unavailable: no backend can take this request")
        }
        ErrorType::HTTPStatus(code) => (*code, "request failed"),
        _ => match error.esource() {
            ErrorSource::Upstream => match error.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    (504, "gateway timeout: the backend did not answer in time")
                }
                ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
                    (502, "bad gateway: could not connect to the backend")
                }
                ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert => {
                    (502, "bad gateway: TLS to the backend failed")
                }
                _ => (502, "bad gateway: the backend failed"),
            },
            ErrorSource::Downstream => match error.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    (0, "client went away")
                }
                ErrorType::ReadTimedout => (408, "request timeout"),
                _ => (400, "bad request"),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal error"),
        },
    }
}

/// The kind of client error a proxy error is, if the client caused it.
pub(super) fn client_error_kind(error: &Error) -> Option<ClientErrorKind> {
    if *error.esource() != ErrorSource::Downstream {
        return None;
    }
    Some(match error.etype() {
        ErrorType::ReadTimedout | ErrorType::WriteTimedout => ClientErrorKind::Timeout,
        ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => {
            ClientErrorKind::Reset
        }
        _ => ClientErrorKind::BadRequest,
    })
}

/// The message and `X-Ballast-Reason` of a refused write: the write region
/// had no backend to take it, or the client's residency fence keeps it out.
fn write_refusal(write_region: &str, client_region: &str, fence_allows: bool) -> (String, String) {
    if fence_allows {
        (
            format!("service unavailable: no backend of the write region {write_region} is available, and writes go nowhere else"),
            format!("write-region; {write_region} has no available backend"),
        )
    } else {
        (
            format!("service unavailable: writes go to region {write_region}, which the residency fence of client region {client_region} does not allow"),
            format!("residency; writes go to {write_region}, not allowed for client region {client_region}"),
        )
    }
}

/// Note in `ctx` why routing found no backend (so [`respond_failure`] can
/// say it), and fail the request with a 503.
pub(super) fn refuse<T>(
    ctx: &mut RequestCtx,
    refused: Refused<'_>,
    placed: Option<(&str, &RegionPlan)>,
    routing: &RoutingState,
) -> Result<T> {
    let client = placed.map_or("-", |(region, _)| region);
    let why = match refused {
        Refused::Write {
            write_region,
            fence_allows,
        } => {
            ctx.write_refusal = Some(write_refusal(write_region, client, fence_allows));
            "write refused"
        }
        Refused::OverBudget { route, .. } => {
            ctx.budget_retry_after = routing
                .budgets
                .route(route)
                .map(|budget| budget.policy.retry_after.as_secs());
            BUDGET_EXCEEDED
        }
        Refused::Unavailable(Unavailable::Residency) => {
            ctx.fenced_region = Some(client.to_string());
            Unavailable::Residency.as_str()
        }
        Refused::Unavailable(why) => why.as_str(),
    };
    Error::e_explain(ErrorType::HTTPStatus(503), why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_on_the_client_side_are_client_errors() {
        let cases = [
            (
                Error::new_down(ErrorType::ReadTimedout),
                Some(ClientErrorKind::Timeout),
            ),
            (
                Error::new_down(ErrorType::ConnectionClosed),
                Some(ClientErrorKind::Reset),
            ),
            (
                Error::new_down(ErrorType::WriteError),
                Some(ClientErrorKind::Reset),
            ),
            (
                Error::new_down(ErrorType::InvalidHTTPHeader),
                Some(ClientErrorKind::BadRequest),
            ),
            (Error::new_up(ErrorType::ConnectionClosed), None),
            (Error::new_up(ErrorType::ReadTimedout), None),
            (Error::new_in(ErrorType::InternalError), None),
        ];
        for (e, kind) in cases {
            assert_eq!(client_error_kind(&e), kind, "{e}");
        }
    }
}

//! Whether a failed attempt is retried on another backend, per the pool's
//! `retries` policy:
//! - the failure must be one `retries.on` lists (`connect_failure`,
//!   `reset`, `timeout`, a 5xx status, `grpc_unavailable`);
//! - a connection failure (the request never left) is retried whatever the
//!   method, up to `MAX_CONNECT_RETRIES` times, outside the retry budget (it
//!   adds no load to any backend);
//! - any other failure only for a replay-safe request: an idempotent method
//!   (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or an `Idempotency-Key`, whose
//!   body is whole in the retry buffer, nothing of whose response has been
//!   sent, within `retries.attempts` tries and the pool's retry budget;
//! - a gRPC call (a POST) answered UNAVAILABLE trailers-only is replay-safe
//!   by that answer: the backend refused the call with no message sent, the
//!   uncommitted state in which gRPC's own retry policy retries, and a pool
//!   lists `grpc_unavailable` only when its services answer UNAVAILABLE for
//!   calls they did not process. The other conditions above still hold;
//! - and always only while the picker finds another backend the request may
//!   go to and has not tried (its residency fence, the write region).
//!
//! A retried 5xx response is dropped unsent (with its connection); when no
//! retry is allowed, the last attempt's response goes to the client as is.

use super::context::RequestCtx;
use super::headers::IDEMPOTENCY_KEY;
use super::BallastProxy;
use crate::stats::clock;
use pingora::prelude::Session;

/// Connection failures retried on another backend per request.
const MAX_CONNECT_RETRIES: usize = 3;

/// How an attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// No connection could be made.
    Connect,
    /// The connection failed after the request may have reached the backend.
    Reset,
    /// The backend did not answer (or read the request) in time.
    Timeout,
    /// The backend answered with this 5xx status.
    Status(u16),
    /// The backend answered a gRPC call UNAVAILABLE, trailers-only.
    GrpcUnavailable,
}

impl Failure {
    /// The `cause` label of the retry metrics.
    fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Status(_) => "status",
            Failure::GrpcUnavailable => "grpc_unavailable",
        }
    }
}

impl BallastProxy {
    /// Whether the request in `ctx` is retried after `failure`; a retry is
    /// counted, and holds a retry-budget token until the request ends.
    pub(super) fn decide_retry(
        &self,
        session: &Session,
        ctx: &mut RequestCtx,
        failure: Failure,
    ) -> bool {
        let (Some(routing), Some(pool_id)) = (ctx.routing.clone(), ctx.pool) else {
            return false;
        };
        let policy = &routing.snapshot.pool(pool_id).policy.retries;
        let listed = match failure {
            Failure::Connect => policy.on.connect_failure,
            Failure::Reset => policy.on.reset,
            Failure::Timeout => policy.on.timeout,
            Failure::Status(status) => policy.on.status(status),
            Failure::GrpcUnavailable => policy.on.grpc_unavailable,
        };
        if !listed {
            return false;
        }
        if failure == Failure::Connect {
            if ctx.connect_retries >= MAX_CONNECT_RETRIES
                || !Self::other_backend_available(session, ctx)
            {
                return false;
            }
            ctx.connect_retries += 1;
            self.count_retry(ctx, failure.label());
            return true;
        }
        let req = session.req_header();
        let replay_safe = failure == Failure::GrpcUnavailable
            || req.method.is_idempotent()
            || req.headers.contains_key(&IDEMPOTENCY_KEY);
        let attempts_left =
            ctx.tried.len().saturating_sub(ctx.connect_retries) < policy.attempts as usize;
        let possible = replay_safe
            && attempts_left
            && session.response_written().is_none()
            && !session.as_ref().retry_buffer_truncated()
            && Self::other_backend_available(session, ctx);
        if !possible {
            return false;
        }
        // A request's earlier retry gives its place back before it asks again.
        ctx.retry_token = None;
        let backends = &routing.stats.pools[pool_id.0];
        match routing
            .retry_budgets
            .try_acquire(pool_id, &policy.budget, backends, clock::now_ms())
        {
            Some(token) => {
                ctx.retry_token = Some(token);
                self.count_retry(ctx, failure.label());
                true
            }
            None => {
                self.count_retry_over_budget(ctx, failure.label());
                false
            }
        }
    }
}

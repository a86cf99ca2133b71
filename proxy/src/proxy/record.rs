//! Recording what happened to a request: its attempt's outcome in the
//! backend's live stats and latency histogram (a gRPC call's by its status, see [`super::grpc`]); spills, budget sheds, residency refusals, retries,
//! TLS failures, gRPC statuses and load-report errors in the metrics (and the budgets' counters); and
//! once it is done the request series (or the unrouted counters), the
//! decision log for an explained request, the access log line with its
//! configured fields, and the request's span for export.

use super::context::{Attempt, RequestCtx};
use super::grpc;
use super::headers::request_host;
use super::load_report::parse_error_label;
use super::BallastProxy;
use crate::config::PoolId;
use crate::routing::picker::Unavailable;
use crate::routing::route::{Chosen, Refused, Routed};
use crate::routing::state::RoutingState;
use crate::stats::clock;
use crate::stats::server_load::ParseError;
use crate::telemetry::access_line;
use crate::telemetry::decisions::{DecisionKind, RoutingDecision};
use crate::telemetry::metrics::status_class;
use crate::telemetry::spans::RequestSpan;
use crate::tls::upstream::tls_failure;
use http::header::USER_AGENT;
use pingora::prelude::Session;
use pingora::Error;
use std::sync::atomic::Ordering;

/// Count the backend's response in its stats (once per attempt): a server
/// error as a failure, anything else as a success with its latency.
pub(super) fn record_response(attempt: &mut Attempt, server_error: bool, now_ms: u64) {
    let latency_us = attempt.latency_us();
    record_outcome(attempt, server_error, now_ms, latency_us);
}

/// Count a gRPC call whose status came in the trailers, with the latency
/// to its response headers (a streaming call's length is not the
/// backend's speed).
pub(super) fn record_grpc_trailers(attempt: &mut Attempt, failed: bool, now_ms: u64) {
    if let Some(latency_us) = attempt.grpc_pending.take() {
        record_outcome(attempt, failed, now_ms, latency_us);
    }
}

fn record_outcome(attempt: &mut Attempt, server_error: bool, now_ms: u64, latency_us: u64) {
    if !attempt.recorded {
        attempt.recorded = true;
        attempt.observe_latency(latency_us);
        if server_error {
            attempt.stats.record_failure(now_ms, Some(latency_us));
        } else {
            attempt.stats.record_success(now_ms, latency_us);
            attempt.record_load_latency(now_ms, latency_us);
        }
    }
}

impl BallastProxy {
    /// Count what routing did with a request: a spill past its budget or a
    /// spilling region, a budget shed, a residency refusal.
    pub(super) fn record_routed(&self, routing: &RoutingState, pool: PoolId, routed: &Routed<'_>) {
        let client = routed.placed.map_or("-", |(region, _)| region);
        let budget_region = |route: usize, over: usize| {
            let budget = routing.budgets.route(route)?;
            let name = routing.snapshot.routes.routes()[route].name.as_str();
            Some((name, &budget.regions[over]))
        };
        match &routed.outcome {
            Ok(Chosen {
                over_budget: Some((route, over)),
                ..
            }) => {
                if let Some((route, region)) = budget_region(*route, *over) {
                    region.spilled.fetch_add(1, Ordering::Relaxed);
                    let name = region.region.as_deref().unwrap_or("-");
                    self.metrics
                        .budget_spilled
                        .with_label_values(&[route, name])
                        .inc();
                }
            }
            Ok(Chosen {
                backend,
                spilled: true,
                ..
            }) => {
                let pool = routing.snapshot.pool(pool);
                let region = pool.backends[*backend].region.as_deref().unwrap_or("-");
                self.metrics
                    .spilled_requests
                    .with_label_values(&[pool.name.as_str(), client, region])
                    .inc();
            }
            Ok(_) => {}
            Err(Refused::OverBudget { route, over }) => {
                if let Some((route, region)) = budget_region(*route, *over) {
                    region.rejected.fetch_add(1, Ordering::Relaxed);
                    let name = region.region.as_deref().unwrap_or("-");
                    self.metrics
                        .budget_rejections
                        .with_label_values(&[route, name])
                        .inc();
                }
            }
            Err(Refused::Unavailable(Unavailable::Residency)) => {
                self.metrics
                    .residency_rejections
                    .with_label_values(&[client])
                    .inc();
            }
            Err(_) => {}
        }
    }

    /// Count a retry of a routed request, by `cause`.
    pub(super) fn count_retry(&self, ctx: &RequestCtx, cause: &str) {
        if let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) {
            let pool = routing.snapshot.pool(pool).name.as_str();
            self.metrics.retries.with_label_values(&[pool, cause]).inc();
        }
    }

    /// Count a retry the pool's retry budget did not allow, by `cause`.
    pub(super) fn count_retry_over_budget(&self, ctx: &RequestCtx, cause: &str) {
        if let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) {
            let pool = routing.snapshot.pool(pool).name.as_str();
            self.metrics
                .retries_budget_exhausted
                .with_label_values(&[pool, cause])
                .inc();
        }
    }

    /// Count and log a connection to the request's backend that failed in
    /// TLS (nothing for other failures).
    pub(super) fn count_tls_failure(&self, ctx: &RequestCtx, error: &Error) {
        let Some(reason) = tls_failure(error) else {
            return;
        };
        let (Some(routing), Some(pool), Some(&backend)) =
            (&ctx.routing, ctx.pool, ctx.tried.last())
        else {
            return;
        };
        let pool = routing.snapshot.pool(pool);
        let backend = &pool.backends[backend].id;
        tracing::warn!(
            pool = %pool.name,
            %backend,
            reason,
            "TLS to the backend failed: {error}"
        );
        self.metrics
            .upstream_tls_errors
            .with_label_values(&[pool.name.as_str(), backend.0.as_str(), reason])
            .inc();
    }

    /// Count a gRPC call of the request's backend by the status it ended
    /// with (`None`: it ended without one), and keep it for the access log.
    pub(super) fn count_grpc_call(&self, ctx: &mut RequestCtx, code: Option<u32>) {
        ctx.grpc_status = code;
        let (Some(routing), Some(pool), Some(&backend)) =
            (&ctx.routing, ctx.pool, ctx.tried.last())
        else {
            return;
        };
        let pool = routing.snapshot.pool(pool);
        let code = code.map_or("missing", grpc::code_name);
        self.metrics
            .grpc_calls
            .with_label_values(&[
                pool.name.as_str(),
                pool.backends[backend].id.0.as_str(),
                code,
            ])
            .inc();
    }

    /// Count a load report a backend of the request's pool got wrong.
    pub(super) fn count_report_error(&self, ctx: &RequestCtx, error: ParseError) {
        if let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) {
            let pool = routing.snapshot.pool(pool).name.as_str();
            self.metrics
                .server_load_errors
                .with_label_values(&[pool, parse_error_label(error)])
                .inc();
        }
    }

    /// Record a finished request: series or unrouted counters, the decision
    /// log when explained, and the access log line.
    pub(super) fn record_done(&self, session: &Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        // A gRPC call that ended cleanly without a status failed (its client
        // reads UNKNOWN); one cut short was counted where it failed, or the
        // client left.
        if let (Some(attempt), None) = (ctx.attempt.as_mut(), e) {
            if attempt.grpc_pending.is_some() {
                record_grpc_trailers(attempt, true, clock::now_ms());
                self.count_grpc_call(ctx, None);
            }
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let route = ctx.route_name();
        let pool = ctx.pool_name();
        let elapsed = ctx.duration();
        if let (Some(routing), Some(pool), Some(kind)) = (&ctx.routing, ctx.pool, ctx.rw) {
            routing.series.count_rw(pool, kind.index(), kind.as_str());
        }
        if let Some(explanation) = &ctx.explanation {
            self.decisions.record(RoutingDecision {
                at: std::time::SystemTime::now(),
                at_ms: clock::now_ms(),
                pool: pool.to_string(),
                backend: ctx.backend_id().to_string(),
                kind: DecisionKind::Request,
                old_share: 0.0,
                new_share: 0.0,
                reason: format!("{explanation}; status={status}"),
            });
        }
        match (&ctx.routing, ctx.route) {
            (Some(routing), Some(route)) => {
                let backend = ctx.tried.last().copied();
                routing
                    .series
                    .observe(route, backend, status, elapsed.as_secs_f64());
            }
            _ => {
                self.metrics
                    .requests
                    .with_label_values(&[route, pool, "-", status_class(status)])
                    .inc();
                self.metrics
                    .request_duration
                    .with_label_values(&[route])
                    .observe(elapsed.as_secs_f64());
            }
        }
        self.log_access(session, e, ctx, status, elapsed);
        self.queue_span(session, e, ctx, status, elapsed);
    }

    /// The request's span, queued for export when `tracing` is configured
    /// and its trace is sampled.
    fn queue_span(
        &self,
        session: &Session,
        e: Option<&Error>,
        ctx: &RequestCtx,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        let Some(trace) = ctx.trace.as_ref().filter(|t| t.sampled()) else {
            return;
        };
        let traced = match &ctx.routing {
            Some(routing) => routing.snapshot.tracing.is_some(),
            None => self.routing.load().snapshot.tracing.is_some(),
        };
        if !traced {
            return;
        }
        let req = session.req_header();
        let backend = ctx.last_backend();
        let end = std::time::SystemTime::now();
        self.spans.push(RequestSpan {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent_id: trace.parent_id,
            flags: trace.flags,
            start: end.checked_sub(elapsed).unwrap_or(end),
            end,
            method: req.method.clone(),
            path: req.uri.path().to_string(),
            host: request_host(req).map(str::to_string),
            status,
            client_address: ctx.client,
            route: ctx.route().map(|r| r.name.clone()),
            pool: ctx.pool.is_some().then(|| ctx.pool_name().to_string()),
            backend: backend.map(|b| b.id.0.clone()),
            region: backend.and_then(|b| b.region.clone()),
            attempts: ctx.tried.len(),
            decision_rule: ctx.decision_rule.clone(),
            error: e
                .map(|e| e.etype().as_str().to_string())
                .or_else(|| (status >= 500).then(|| status.to_string())),
        });
    }

    /// The access line, with the configured fields (a field left out is
    /// neither computed nor written, nor one with nothing to say).
    fn log_access(
        &self,
        session: &Session,
        e: Option<&Error>,
        ctx: &RequestCtx,
        status: u16,
        elapsed: std::time::Duration,
    ) {
        use crate::config::AccessField as F;
        let on = |field| self.access_fields.has(field);
        let req = session.req_header();
        access_line::write(|line| {
            if on(F::RequestId) {
                line.text("request_id", ctx.request_id.to_str().unwrap_or("-"));
            }
            if on(F::TraceId) {
                line.text(
                    "trace_id",
                    ctx.trace.as_ref().map_or("-", |t| t.trace_id_hex()),
                );
            }
            if let (true, Some(client)) = (on(F::ClientAddress), ctx.client) {
                line.address("client_address", client);
            }
            if on(F::Method) {
                line.text("method", req.method.as_str());
            }
            if on(F::Host) {
                line.text("host", request_host(req).unwrap_or("-"));
            }
            if on(F::Path) {
                line.text("path", req.uri.path());
            }
            if let (true, Some(agent)) = (on(F::UserAgent), req.headers.get(USER_AGENT)) {
                line.text("user_agent", &String::from_utf8_lossy(agent.as_bytes()));
            }
            if on(F::Status) {
                line.number("status", status.into());
            }
            if on(F::Route) {
                line.text("route", ctx.route_name());
            }
            if on(F::Pool) {
                line.text("pool", ctx.pool_name());
            }
            if on(F::Backend) {
                line.text("backend", ctx.backend_id());
            }
            if on(F::Attempts) {
                line.number("attempts", ctx.tried.len() as u64);
            }
            if let (true, Some(rule)) = (on(F::DecisionRule), &ctx.decision_rule) {
                line.text("decision_rule", rule);
            }
            if let (true, Some(code)) = (on(F::GrpcStatus), ctx.grpc_status) {
                line.text("grpc_status", grpc::code_name(code));
            }
            if on(F::BytesReceived) {
                line.number("bytes_received", session.body_bytes_read() as u64);
            }
            if on(F::BytesSent) {
                line.number("bytes_sent", session.body_bytes_sent() as u64);
            }
            if let (true, Some(us)) = (on(F::UpstreamConnectMs), ctx.upstream_connect_us) {
                line.millis("upstream_connect_ms", us);
            }
            if let (true, Some(us)) = (on(F::UpstreamFirstByteMs), ctx.upstream_first_byte_us) {
                line.millis("upstream_first_byte_ms", us);
            }
            if on(F::DurationMs) {
                line.millis("duration_ms", elapsed.as_micros() as u64);
            }
            if let (true, Some(at)) = (on(F::UpgradedForMs), ctx.upgraded_after) {
                let open = ctx.started.elapsed().saturating_sub(at);
                line.millis("upgraded_for_ms", open.as_micros() as u64);
            }
            if let (true, Some(e)) = (on(F::Error), e) {
                line.display("error", e);
            }
        });
    }
}

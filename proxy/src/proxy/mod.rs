//! The Pingora glue: for each request, match a route, ask routing for a
//! backend ([`route_request`]), forward with X-Forwarded-* and X-Request-Id headers
//! and the W3C trace context ([`trace_context`]), record what
//! happened in the backend's live stats, read (and strip) its load report,
//! and turn failures into short, honest error responses (404 no route, 502
//! backend failed, 503 no backend available, 504 backend timed out).
//! A pool with `tls` reaches its backends over TLS ([`backend_peer`]); a
//! failed handshake is a failed connection like any other, and counted
//! by its reason.
//!
//! Retries never reuse a backend the request already tried; what is
//! retried, and when, is in [`retries`]: connection failures, and for
//! replay-safe requests resets, timeouts and listed 5xx responses (dropped
//! unsent), within the pool's attempts and retry budget, while another
//! backend remains that the request may go to (within the client's
//! residency fence; within the write region for a write), so a fenced
//! client whose allowed backends failed gets that 502, 503 or 504.
//!
//! With a read/write split, a write only ever goes to (and is only ever
//! retried within) the write region; a read pinned by the client's recent
//! write goes there too while it can serve, then falls back to normal routing.
//!
//! gRPC passes through like any HTTP/2 exchange, trailers included (h2c or
//! h2 to the backends, h2c or h2 from clients); a call's `grpc-status`
//! decides whether it counts against the backend ([`grpc`]), and a call
//! answered UNAVAILABLE trailers-only may be retried (`grpc_unavailable`).
//!
//! Bodies stream through Pingora untouched.

mod body_limit;
mod context;
mod edits;
mod grpc;
mod headers;
mod hop_by_hop;
mod load_report;
mod record;
mod request_rules;
mod responses;
mod retries;
mod trace_context;

pub use context::RequestCtx;

use crate::config::rate_limits::{RateKey, RateKeySource};
use crate::config::{AccessField, AccessFields, PoolId};
use crate::connections::header_deadline::HeaderDeadlines;
use crate::connections::proxy_protocol::ProxyProtocol;
use crate::connections::{connection_key, ClientConnections};
use crate::routing::explain::{decision_rule, explain_pick};
use crate::routing::read_write::{classify, RequestKind};
use crate::routing::retry::another_backend_remains;
use crate::routing::route::{route_request, RouteInput};
use crate::routing::state::RoutingState;
use crate::routing::table::RequestView;
use crate::stats::clock;
use crate::telemetry::client_errors::{self, ClientErrorKind};
use crate::telemetry::decisions::DecisionLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::spans::SpanQueue;
use crate::tls::policy::BelowMinVersion;
use crate::tls::upstream::backend_peer;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use context::Attempt;
use grpc::GrpcHead;
use headers::{
    add_forwarding, hand_back_pin, keep_or_make_request_id, new_request_id, over_limit,
    request_host, tcp_peer_ip, wants_explanation, X_BALLAST_DECISION, X_REQUEST_ID,
};
use http::StatusCode;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};
use responses::{
    client_error_kind, redirect_to, refuse, respond_failure, respond_plain, respond_redirect,
    status_for,
};
use retries::Failure;
use std::sync::Arc;
use trace_context::TraceContext;

/// What routing reads of the request in `session` (to `pool`, so far).
fn route_input<'a>(session: &'a Session, ctx: &'a RequestCtx, pool: PoolId) -> RouteInput<'a> {
    let req = session.req_header();
    RouteInput {
        route: ctx.route,
        pool,
        peer: ctx.peer,
        client: ctx.client,
        headers: &req.headers,
        path: req.uri.path(),
        tried: &ctx.tried,
        rw: ctx.rw,
    }
}

/// The proxy service: reads the routing state the engine publishes.
pub struct BallastProxy {
    routing: Arc<ArcSwap<RoutingState>>,
    metrics: Arc<Metrics>,
    /// Explained requests are recorded here.
    decisions: Arc<DecisionLog>,
    /// How long an idle client connection waits for its next request, in
    /// whole seconds (fixed at start, like the other server settings).
    keepalive_secs: u64,
    /// The client connections' header deadlines: told when each request
    /// starts and ends.
    header_deadlines: Arc<HeaderDeadlines>,
    /// The sources PROXY protocol headers named for the connections.
    proxy_protocol: Arc<ProxyProtocol>,
    /// The fields of the access line (fixed at start).
    access_fields: AccessFields,
    /// Finished requests' spans, for the OTLP exporter (when `tracing` is
    /// configured).
    spans: Arc<SpanQueue>,
}

impl BallastProxy {
    pub fn new(
        routing: Arc<ArcSwap<RoutingState>>,
        metrics: Arc<Metrics>,
        decisions: Arc<DecisionLog>,
        keepalive_timeout: std::time::Duration,
        clients: &ClientConnections,
        access_fields: AccessFields,
        spans: Arc<SpanQueue>,
    ) -> Self {
        Self {
            proxy_protocol: clients.proxy_protocol.clone(),
            access_fields,
            spans,
            keepalive_secs: keepalive_timeout.as_secs().max(1),
            header_deadlines: clients.header_deadlines.clone(),
            routing,
            metrics,
            decisions,
        }
    }

    /// The whole seconds to wait when the request is over its route's rate
    /// limit (counted in `rate_limited_total`); `None` when admitted.
    fn over_rate_limit(&self, session: &Session, ctx: &RequestCtx) -> Option<u64> {
        let route = ctx.route()?;
        let limit = route.rate_limit.as_ref()?;
        let key = match &limit.key {
            RateKeySource::ClientAddress => RateKey::Address(ctx.client),
            RateKeySource::Header(name) => RateKey::Header(
                session
                    .req_header()
                    .headers
                    .get(name)
                    .map(|value| value.as_bytes().into()),
            ),
        };
        let retry_after = limit.check(&key).err()?;
        self.metrics
            .rate_limited
            .with_label_values(&[route.name.as_str()])
            .inc();
        Some(retry_after)
    }

    /// Whether `ctx` may try another backend: the picker finds one it may
    /// go to (within its fence or write region) and has not tried.
    fn other_backend_available(session: &Session, ctx: &RequestCtx) -> bool {
        let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) else {
            return false;
        };
        another_backend_remains(routing, &route_input(session, ctx, pool))
    }
}

/// The mark of a TLS connection below its listener's `min_version`.
fn below_min_tls_version(session: &Session) -> Option<&BelowMinVersion> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<BelowMinVersion>()
}

#[async_trait]
impl ProxyHttp for BallastProxy {
    type CTX = RequestCtx;

    /// No downstream modules: Ballast compresses nothing, and Pingora's
    /// default (a disabled compression module) costs a setup per request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.metrics.in_flight)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // A complete request header: its connection's header deadline is met.
        let key = connection_key(session.client_addr(), session.server_addr());
        if let Some(key) = key {
            self.header_deadlines.request_started(key);
        }
        // Pingora keeps a reused HTTP/1.1 connection open for the next
        // request indefinitely; bound it (a connection the client asked to
        // close stays so).
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(self.keepalive_secs));
        }
        let req = session.req_header();
        ctx.request_id = keep_or_make_request_id(req);
        let routing = self.routing.load_full();
        let sample_ratio = routing.snapshot.tracing.as_ref().map(|t| t.sample_ratio);
        ctx.trace = Some(TraceContext::continue_or_start(
            &req.headers,
            sample_ratio.unwrap_or(1.0),
        ));
        ctx.peer = key
            .and_then(|key| self.proxy_protocol.source(key))
            .map(|source| source.ip())
            .or_else(|| tcp_peer_ip(session));
        ctx.client = match (&routing.snapshot.client_address, ctx.peer) {
            (Some(rule), Some(peer)) => Some(rule.client(peer, &req.headers)),
            _ => ctx.peer,
        };
        if let Some(below) = below_min_tls_version(session) {
            let id = ctx.request_id.clone();
            let message = format!(
                "TLS {} or newer is required on this listener (the connection negotiated {})",
                below.min_version.as_str(),
                below.negotiated
            );
            ctx.routing = Some(routing);
            session.set_keepalive(None);
            respond_plain(session, 426, &id, &message, None, None).await;
            return Ok(true);
        }
        if let Some((status, message)) = request_rules::refusal(req) {
            client_errors::record(ClientErrorKind::BadRequest, &message);
            // The body (if any) is left unread: the connection closes.
            session.set_keepalive(None);
            let id = ctx.request_id.clone();
            ctx.routing = Some(routing);
            respond_plain(session, status, &id, message, None, None).await;
            return Ok(true);
        }
        if let Some((status, message)) = over_limit(req, &routing.snapshot.server.limits) {
            let id = ctx.request_id.clone();
            ctx.routing = Some(routing);
            respond_plain(session, status, &id, message, None, None).await;
            return Ok(true);
        }
        let view = RequestView {
            host: request_host(req),
            path: req.uri.path(),
            method: &req.method,
            headers: &req.headers,
        };
        let found = routing
            .snapshot
            .routes
            .find(&view)
            .map(|(index, route)| (index, route.pool));
        let split = found
            .and_then(|(_, pool)| pool)
            .and_then(|pool| routing.snapshot.pool(pool).write.as_ref());
        if let Some(split) = split {
            let kind = classify(
                split,
                &req.method,
                req.uri.path(),
                &req.headers,
                clock::unix_ms(),
            );
            ctx.rw = Some(kind);
        }
        ctx.routing = Some(routing);
        match found {
            Some((index, pool)) => {
                ctx.route = Some(index);
                ctx.pool = pool;
                if let Some(retry_after) = self.over_rate_limit(session, ctx) {
                    let id = ctx.request_id.clone();
                    let message = "too many requests: over this route's rate limit";
                    respond_plain(session, 429, &id, message, None, Some(retry_after)).await;
                    return Ok(true);
                }
                if let Some((status, location)) = ctx.route().and_then(|r| redirect_to(session, r))
                {
                    let id = ctx.request_id.clone();
                    respond_redirect(session, status, &id, &location).await;
                    return Ok(true);
                }
                ctx.body_limit = match (&ctx.routing, ctx.route()) {
                    (Some(routing), Some(route)) => {
                        body_limit::body_limit(route, &routing.snapshot.server.limits)
                    }
                    _ => None,
                };
                if let Some(limit) = ctx.body_limit {
                    if body_limit::declared_over(session.req_header(), limit) {
                        // The body is left unread: the connection closes.
                        session.set_keepalive(None);
                        let id = ctx.request_id.clone();
                        let message = body_limit::BODY_TOO_LARGE;
                        respond_plain(session, 413, &id, message, None, None).await;
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            None => {
                let id = ctx.request_id.clone();
                respond_plain(
                    session,
                    404,
                    &id,
                    "not found: no route matches this request",
                    None,
                    None,
                )
                .await;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (Some(routing), Some(pool_id)) = (ctx.routing.clone(), ctx.pool) else {
            return Error::e_explain(ErrorType::InternalError, "no route selected");
        };
        let routed = route_request(&routing, &route_input(session, ctx, pool_id));
        self.record_routed(&routing, pool_id, &routed);
        ctx.rw = routed.rw;
        let chosen = match routed.outcome {
            Ok(chosen) => chosen,
            Err(refused) => return refuse(ctx, refused, routed.placed, &routing),
        };
        let backend = chosen.backend;
        if ctx.tried.is_empty() {
            routing
                .retry_budgets
                .count_request(pool_id, clock::now_ms());
        }
        ctx.tried.push(backend);
        // Each attempt sends the body from its start (a retry replays
        // Pingora's retry buffer through `request_body_filter`).
        ctx.body_bytes = 0;
        let pool = routing.snapshot.pool(pool_id);
        let explained = routing
            .snapshot
            .explain
            .as_ref()
            .is_some_and(|explain| wants_explanation(explain, session, ctx.peer));
        let traced = routing.snapshot.tracing.is_some();
        if explained || traced || self.access_fields.has(AccessField::DecisionRule) {
            let rule = decision_rule(pool, &chosen, routed.placed, ctx.rw);
            if explained {
                let share = routing.weights[pool_id.0]
                    .as_ref()
                    .map(|w| w.shares[backend]);
                let client_region = routed.placed.map(|(client, _)| client);
                let attempt = ctx.tried.len();
                ctx.explanation = Some(explain_pick(
                    pool,
                    &chosen,
                    client_region,
                    &rule,
                    share,
                    attempt,
                    ctx.rw,
                ));
            }
            ctx.decision_rule = Some(rule);
        }
        let stats = &routing.stats.pools[pool_id.0];
        let latency = routing.series.backend_latency(pool_id, backend);
        ctx.attempt = Some(Attempt::start(stats[backend].clone(), latency));
        ctx.upstream_connect_us = None;
        ctx.upstream_first_byte_us = None;
        let mut peer = backend_peer(pool.backends[backend].addr, pool.tls.as_ref(), pool.h2c);
        peer.options.connection_timeout = Some(pool.timeouts.connect);
        peer.options.read_timeout = Some(pool.timeouts.read);
        peer.options.write_timeout = Some(pool.timeouts.write);
        peer.options.idle_timeout = Some(pool.timeouts.idle);
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_connect_us = ctx.attempt.as_ref().map(Attempt::latency_us);
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        body_limit::count_chunk(ctx, body.as_ref())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        request_rules::join_cookies(upstream_request)?;
        if let Some(route) = ctx.route() {
            edits::rewrite_request(upstream_request, &route.edits.rewrite)?;
            edits::edit_request_headers(upstream_request, &route.edits.request_headers)?;
        }
        add_forwarding(
            session,
            upstream_request,
            ctx.peer,
            &ctx.request_id,
            ctx.trace.as_ref(),
        )
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        hop_by_hop::strip_response(upstream_response);
        let (Some(routing), Some(pool_id)) = (ctx.routing.clone(), ctx.pool) else {
            return Ok(());
        };
        let policy = &routing.snapshot.pool(pool_id).policy.server_load;
        let now_ms = clock::now_ms();
        let status = upstream_response.status;
        ctx.upstream_first_byte_us = ctx.attempt.as_ref().map(Attempt::latency_us);
        let grpc = match status.as_u16() {
            200 => grpc::read_head(&upstream_response.headers),
            _ => GrpcHead::NotGrpc,
        };
        if let Some(attempt) = ctx.attempt.as_mut() {
            match grpc {
                GrpcHead::NotGrpc => {
                    record::record_response(attempt, status.is_server_error(), now_ms)
                }
                GrpcHead::TrailersOnly(code) => {
                    record::record_response(attempt, grpc::is_backend_failure(code), now_ms)
                }
                GrpcHead::Streaming => attempt.grpc_pending = Some(attempt.latency_us()),
            }
        }
        if let GrpcHead::TrailersOnly(code) = grpc {
            self.count_grpc_call(ctx, Some(code));
        }
        if status == StatusCode::SWITCHING_PROTOCOLS && session.is_upgrade_req() {
            ctx.upgraded(&self.metrics.upgraded_connections);
        }
        let report = load_report::take_report(upstream_response, policy, |error| {
            self.count_report_error(ctx, error)
        });
        if let (Some(report), Some(attempt)) = (report, ctx.attempt.as_ref()) {
            attempt.stats.record_report(now_ms, &report);
        }
        if status.is_server_error()
            && self.decide_retry(session, ctx, Failure::Status(status.as_u16()))
        {
            // Pingora drops this response and its connection unsent, and
            // `error_while_proxy` passes the retry on.
            ctx.status_retry = true;
            return Error::e_explain(
                ErrorType::HTTPStatus(status.as_u16()),
                "backend answered a retried status",
            );
        }
        if grpc == GrpcHead::TrailersOnly(grpc::UNAVAILABLE)
            && self.decide_retry(session, ctx, Failure::GrpcUnavailable)
        {
            ctx.status_retry = true;
            return Error::e_explain(
                ErrorType::HTTPStatus(status.as_u16()),
                "backend answered a gRPC call UNAVAILABLE, retried",
            );
        }
        Ok(())
    }

    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        upstream_trailers: &mut http::HeaderMap,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(attempt) = ctx.attempt.as_mut() else {
            return Ok(());
        };
        if attempt.grpc_pending.is_some() {
            // A call whose trailers carry no status failed (its client reads
            // UNKNOWN).
            let code = grpc::status(upstream_trailers);
            let failed = code.is_none_or(grpc::is_backend_failure);
            record::record_grpc_trailers(attempt, failed, clock::now_ms());
            self.count_grpc_call(ctx, code);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(X_REQUEST_ID, ctx.request_id.clone())?;
        if ctx.rw == Some(RequestKind::Write) {
            hand_back_pin(upstream_response, ctx)?;
        }
        if let Some(explanation) = &ctx.explanation {
            upstream_response.insert_header(X_BALLAST_DECISION, explanation.as_str())?;
        }
        if let Some(route) = ctx.route() {
            edits::edit_response_headers(upstream_response, &route.edits.response_headers)?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(mut attempt) = ctx.attempt.take() {
            attempt.record_failure(None);
        }
        self.count_tls_failure(ctx, &e);
        let retry = self.decide_retry(session, ctx, Failure::Connect);
        e.set_retry(retry);
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if std::mem::take(&mut ctx.status_retry) {
            e.set_retry(true);
            return e;
        }
        if *e.esource() == ErrorSource::Downstream {
            // The client's fault (a malformed body, a header it may not
            // name, leaving early): not the backend's, and not retried.
            ctx.attempt = None;
            e.set_retry(false);
            return e;
        }
        let timed_out = matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
        );
        if let Some(attempt) = ctx.attempt.as_mut() {
            let latency = timed_out.then(|| attempt.latency_us());
            attempt.record_failure(latency);
        }
        self.count_tls_failure(ctx, &e);
        let failure = if timed_out {
            Failure::Timeout
        } else {
            Failure::Reset
        };
        let retry = self.decide_retry(session, ctx, failure);
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, message) = if ctx.body_over_limit {
            (413, body_limit::BODY_TOO_LARGE)
        } else {
            status_for(e)
        };
        if status != 0 {
            let id = if ctx.request_id.is_empty() {
                new_request_id()
            } else {
                ctx.request_id.clone()
            };
            respond_failure(session, status, &id, message, ctx).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    /// A client's error is logged at debug and counted instead (see
    /// [`client_errors`]); Pingora logs the others at ERROR.
    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        let Some(kind) = client_error_kind(error) else {
            return false;
        };
        client_errors::record(kind, error);
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        self.record_done(session, e, ctx);
        // The next request on a kept-alive HTTP/1.1 connection is due in
        // time too (an HTTP/2 connection's streams are independent).
        if !session.is_http2() {
            if let Some(key) = connection_key(session.client_addr(), session.server_addr()) {
                self.header_deadlines.request_finished(key);
            }
        }
    }
}

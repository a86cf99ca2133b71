//! The Pingora glue: for each request, match a route, ask the picker for a
//! backend, forward with X-Forwarded-* and X-Request-Id headers, record what
//! happened in the backend's live stats, read (and strip) its load report,
//! and turn failures into short, honest error responses (404 no route, 502
//! backend failed, 503 no backend available, 504 backend timed out).
//!
//! Retries never reuse a backend the request already tried while another
//! eligible one remains:
//! - a connection failure (the request never left) is retried whatever the
//!   method, up to `MAX_CONNECT_RETRIES` times;
//! - after the request may have reached a backend, only idempotent methods
//!   (GET, HEAD, OPTIONS, TRACE, PUT, DELETE) or requests carrying an
//!   `Idempotency-Key` are retried, within `retries.attempts` tries in total,
//!   and never once the response has started or the request body was too
//!   large to keep for a replay.
//!
//! With a read/write split, a write only ever goes to (and is only ever
//! retried within) the write region; a read pinned by the client's recent
//! write goes there too while it can serve, then falls back to normal routing.
//!
//! Bodies stream through Pingora untouched.

use crate::config::{
    Explain, OverBudget, PinCarrier, Pool, PoolId, RegionPlan, RequestLimits, Snapshot,
};
use crate::routing::budget::{Admission, RouteBudget};
use crate::routing::geo::plan_for;
use crate::routing::picker::{pick, Decision, RequestFacts, Unavailable};
use crate::routing::read_write::{classify, pin_value, RequestKind};
use crate::routing::state::RoutingState;
use crate::routing::sticky::key_hash;
use crate::routing::table::{host_without_port, RequestView};
use crate::stats::backend::{BackendStats, InFlight};
use crate::stats::clock;
use crate::stats::server_load::{parse_orca, parse_server_load, LoadReport, ParseError};
use crate::telemetry::decisions::{DecisionKind, DecisionLog, RoutingDecision};
use crate::telemetry::metrics::{status_class, Metrics};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const IDEMPOTENCY_KEY: &str = "idempotency-key";
const X_BALLAST_REASON: &str = "x-ballast-reason";
/// The reason given when a route's event budget sheds a request.
const BUDGET_EXCEEDED: &str = "event budget exceeded";
const X_BALLAST_DECISION: &str = "x-ballast-decision";
/// Longest client-supplied request id that is propagated as is.
const MAX_REQUEST_ID_LEN: usize = 128;
/// Connection failures retried on another backend per request.
const MAX_CONNECT_RETRIES: usize = 3;

/// The proxy service: reads the routing state the engine publishes.
pub struct BallastProxy {
    routing: Arc<ArcSwap<RoutingState>>,
    /// Seeds request ids; combined with a counter so ids are unique per process.
    id_prefix: u64,
    id_counter: AtomicU64,
    metrics: Arc<Metrics>,
    /// Explained requests are recorded here.
    decisions: Arc<DecisionLog>,
}

/// Counts a request as in flight from context creation until it is dropped.
struct InFlightGuard(prometheus::IntGauge);

impl InFlightGuard {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl BallastProxy {
    pub fn new(
        routing: Arc<ArcSwap<RoutingState>>,
        metrics: Arc<Metrics>,
        decisions: Arc<DecisionLog>,
    ) -> Self {
        Self {
            routing,
            id_prefix: rand::random(),
            id_counter: AtomicU64::new(0),
            metrics,
            decisions,
        }
    }

    /// 32 hex digits: the process's prefix, then a counter.
    fn new_request_id(&self) -> HeaderValue {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        let mut id = [0u8; 32];
        write_hex(&mut id[..16], self.id_prefix);
        write_hex(&mut id[16..], n);
        HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
    }

    /// Whether `ctx` may try another backend: one that is eligible and untried exists.
    fn other_backend_available(ctx: &RequestCtx) -> bool {
        let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) else {
            return false;
        };
        let pool_config = routing.snapshot.pool(pool);
        let writer_region = match (ctx.rw, &pool_config.write) {
            (Some(RequestKind::Write), Some(split)) => Some(split.region.as_str()),
            _ => None,
        };
        let eligible = |b: usize| {
            let in_scope = writer_region
                .is_none_or(|region| pool_config.backends[b].region.as_deref() == Some(region));
            in_scope
                && match &routing.weights[pool.0] {
                    Some(weights) => weights.shares[b] > 0.0,
                    None => true,
                }
        };
        (0..pool_config.backends.len()).any(|b| eligible(b) && !ctx.tried.contains(&b))
    }

    fn count_retry(&self, ctx: &RequestCtx, cause: &str) {
        if let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) {
            let pool = routing.snapshot.pool(pool).name.as_str();
            self.metrics.retries.with_label_values(&[pool, cause]).inc();
        }
    }

    fn count_report_error(&self, ctx: &RequestCtx, error: ParseError) {
        if let (Some(routing), Some(pool)) = (&ctx.routing, ctx.pool) {
            let pool = routing.snapshot.pool(pool).name.as_str();
            self.metrics
                .server_load_errors
                .with_label_values(&[pool, parse_error_label(error)])
                .inc();
        }
    }
}

/// One try of a request against one backend.
struct Attempt {
    stats: Arc<BackendStats>,
    started: Instant,
    /// Whether the outcome has been counted in the backend's stats.
    recorded: bool,
    _in_flight: InFlight,
}

impl Attempt {
    fn latency_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    fn record_failure(&mut self, latency_us: Option<u64>) {
        if !self.recorded {
            self.recorded = true;
            self.stats.record_failure(clock::now_ms(), latency_us);
        }
    }
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    /// Empty until `request_filter` keeps or makes one.
    request_id: HeaderValue,
    routing: Option<Arc<RoutingState>>,
    route: Option<usize>,
    pool: Option<PoolId>,
    tried: Vec<usize>,
    connect_retries: usize,
    attempt: Option<Attempt>,
    /// Set when a residency fence left no backend: the client's region.
    fenced_region: Option<String>,
    /// What the request is to a pool with a read/write split.
    rw: Option<RequestKind>,
    /// Set when a write is refused: the message and `X-Ballast-Reason`.
    write_refusal: Option<(String, String)>,
    /// Set when the route's event budget shed the request: Retry-After seconds.
    budget_retry_after: Option<u64>,
    /// The `X-Ballast-Decision` text, when this request is explained.
    explanation: Option<String>,
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    /// The id of the backend tried last, or `-`.
    fn backend_id(&self) -> &str {
        match (&self.routing, self.pool, self.tried.last()) {
            (Some(routing), Some(pool), Some(&b)) => {
                routing.snapshot.pool(pool).backends[b].id.0.as_str()
            }
            _ => "-",
        }
    }
}

/// The status and message for a request over one of `limits`, if it is.
fn over_limit(req: &RequestHeader, limits: &RequestLimits) -> Option<(u16, &'static str)> {
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

/// Lower-case hex digits of `value`, right-aligned in `out` (16 bytes).
fn write_hex(out: &mut [u8], mut value: u64) {
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

fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .host()
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .map(host_without_port)
}

/// Write a short plain-text error response (if nothing was sent yet), with
/// an optional `X-Ballast-Reason`.
async fn respond_plain(
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
        tracing::debug!(error = %e, "could not write error response to client");
    }
}

/// Charge a request to its route's budget in its backend's region. Over
/// budget there, `spill` picks again among the regions of the client's plan
/// that still have budget (and only those, so a residency fence is never
/// crossed), until one admits it; `Ok` carries the decision and, when
/// spilled, the region it left. `Err` is the region over budget: shed.
fn within_budget(
    budget: &RouteBudget,
    snapshot: &Snapshot,
    facts: &RequestFacts<'_>,
    decision: Decision,
) -> std::result::Result<(Decision, Option<usize>), usize> {
    let Some(mut backend) = decision.backend() else {
        return Ok((decision, None));
    };
    let mut first_over = None;
    let mut excluded: u64 = 0;
    loop {
        let over = match budget.admit(backend, clock::now_us()) {
            Admission::Admitted if first_over.is_none() => return Ok((decision, None)),
            Admission::Admitted => return Ok((Decision::Backend(backend), first_over)),
            Admission::Over(region) => region,
        };
        let first = *first_over.get_or_insert(over);
        if budget.policy.over == OverBudget::Shed || over >= 64 {
            return Err(first);
        }
        excluded |= 1 << over;
        let plan =
            spill_plan(budget, snapshot.pool(facts.pool), facts.plan, excluded).ok_or(first)?;
        let spilled = RequestFacts {
            plan: Some(&plan),
            ..*facts
        };
        let now_ms = clock::now_ms();
        backend = pick(snapshot, &spilled, now_ms, &mut rand::rng())
            .backend()
            .ok_or(first)?;
    }
}

/// The regions a request over budget may still go to, in order: those of
/// the client's plan (its region and fallbacks, within its fence), or
/// without a plan the pool's regions; minus those `excluded` (over budget).
fn spill_plan(
    budget: &RouteBudget,
    pool: &Pool,
    plan: Option<&RegionPlan>,
    excluded: u64,
) -> Option<RegionPlan> {
    let open = |name: &String| {
        budget
            .regions
            .iter()
            .position(|r| r.region.as_ref() == Some(name))
            .is_none_or(|i| i >= 64 || excluded & (1 << i) == 0)
    };
    let order: Vec<String> = match plan {
        Some(plan) => plan.order.iter().filter(|r| open(r)).cloned().collect(),
        None => pool
            .regions
            .iter()
            .flatten()
            .filter(|r| open(r))
            .cloned()
            .collect(),
    };
    (!order.is_empty()).then_some(RegionPlan {
        order,
        fenced: true,
    })
}

/// Map a proxy error to the status the client should see (0 = connection is gone).
fn status_for(error: &Error) -> (u16, &'static str) {
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

/// Whether this request's decision should be explained: always, or when it
/// carries the debug header and comes from a trusted peer.
fn wants_explanation(explain: &Explain, session: &Session) -> bool {
    explain.always
        || (session
            .req_header()
            .headers
            .contains_key(&explain.debug_header)
            && session
                .client_addr()
                .and_then(|a| a.as_inet())
                .is_some_and(|a| {
                    explain
                        .trusted_peers
                        .iter()
                        .any(|net| net.contains(&a.ip()))
                }))
}

/// `client_region=...; rule=...; backend=...; share=...; attempt=N`, where
/// the rule is `pool` (no geo), `local`, `spill:A->B` (an earlier region was
/// spilling), `fallback:A->B` (earlier regions could not serve),
/// `outside-plan:A->B`, `unregioned:A`, `budget:A->B` (the route was over
/// its event budget in region A), or with a read/write split `write:A->W` /
/// `pinned:A->W` (to the write region W; `write:W` and `pinned:W` without
/// geo); a split also adds `; rw=KIND` (see [`RequestKind::as_str`]).
#[allow(clippy::too_many_arguments)]
fn explain_pick(
    pool: &Pool,
    backend: usize,
    spilled: bool,
    over_budget_in: Option<&str>,
    placed: Option<(&str, &RegionPlan)>,
    share: Option<f64>,
    attempt: usize,
    rw: Option<RequestKind>,
) -> String {
    let chosen = &pool.backends[backend];
    let client = placed.map_or("-", |(client, _)| client);
    let to_writer = match rw {
        Some(RequestKind::Write) => Some("write"),
        Some(RequestKind::PinnedRead) => Some("pinned"),
        _ => None,
    };
    let rule = match (to_writer, placed, chosen.region.as_deref()) {
        _ if over_budget_in.is_some() => format!(
            "budget:{}->{}",
            over_budget_in.unwrap_or("-"),
            chosen.region.as_deref().unwrap_or("-")
        ),
        (Some(kind), Some((client, _)), Some(region)) => format!("{kind}:{client}->{region}"),
        (Some(kind), _, region) => format!("{kind}:{}", region.unwrap_or("-")),
        (None, None, _) => "pool".to_string(),
        (None, Some((client, _)), Some(region)) if spilled => format!("spill:{client}->{region}"),
        (None, Some((client, _)), Some(region)) if region == client => "local".to_string(),
        (None, Some((client, plan)), Some(region)) if plan.order.iter().any(|r| r == region) => {
            format!("fallback:{client}->{region}")
        }
        (None, Some((client, _)), Some(region)) => format!("outside-plan:{client}->{region}"),
        (None, Some((client, _)), None) => format!("unregioned:{client}"),
    };
    let mut text = format!(
        "client_region={client}; rule={rule}; backend={}; share={}; attempt={attempt}",
        chosen.id,
        share.map_or("-".to_string(), |s| format!("{s:.3}")),
    );
    if let Some(kind) = rw {
        text.push_str("; rw=");
        text.push_str(kind.as_str());
    }
    text
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

/// On a write's response, the pin that keeps the client's reads on the
/// write region for the pool's read-your-writes ttl (a cookie added to any
/// the backend set, or the configured header).
fn hand_back_pin(response: &mut ResponseHeader, ctx: &RequestCtx) -> Result<()> {
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

/// The metric label of a load-report parse failure.
fn parse_error_label(error: ParseError) -> &'static str {
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

#[async_trait]
impl ProxyHttp for BallastProxy {
    type CTX = RequestCtx;

    /// No downstream modules: Ballast compresses nothing, and Pingora's
    /// default (a disabled compression module) costs a setup per request.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            routing: None,
            route: None,
            pool: None,
            tried: Vec::new(),
            connect_retries: 0,
            attempt: None,
            fenced_region: None,
            rw: None,
            write_refusal: None,
            budget_retry_after: None,
            explanation: None,
            _in_flight: InFlightGuard::new(&self.metrics.in_flight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = match req.headers.get(X_REQUEST_ID) {
            Some(id) if acceptable_request_id(id) => id.clone(),
            _ => self.new_request_id(),
        };
        let routing = self.routing.load_full();
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
        if let Some(split) = found.and_then(|(_, pool)| routing.snapshot.pool(pool).write.as_ref())
        {
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
                ctx.pool = Some(pool);
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
        let stats = &routing.stats.pools[pool_id.0];
        let placed = routing.snapshot.geo.as_ref().and_then(|geo| {
            let peer = session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip());
            plan_for(geo, peer, &session.req_header().headers)
        });
        let pool = routing.snapshot.pool(pool_id);
        let req = session.req_header();
        let sticky = pool
            .policy
            .canary_sticky
            .as_ref()
            .and_then(|key| key_hash(key, &req.headers, req.uri.path()));
        let hash_key = pool
            .policy
            .consistent_hash
            .as_ref()
            .and_then(|hash| key_hash(&hash.key, &req.headers, req.uri.path()));
        let facts = RequestFacts {
            pool: pool_id,
            ticket: routing.next_ticket(pool_id),
            tried: &ctx.tried,
            weights: routing.weights[pool_id.0].as_ref(),
            stats,
            plan: placed.map(|(_, plan)| plan),
            sticky,
            hash_key,
        };
        let mut decision = None;
        let mut facts_used = facts;
        if let (Some(kind), Some(split)) = (ctx.rw, &pool.write) {
            if kind.writer_only() {
                let fence_allows = placed
                    .is_none_or(|(_, plan)| !plan.fenced || plan.order.contains(&split.region));
                if fence_allows {
                    let to_writers = RequestFacts {
                        plan: Some(&split.plan),
                        ..facts
                    };
                    let found = pick(
                        &routing.snapshot,
                        &to_writers,
                        clock::now_ms(),
                        &mut rand::rng(),
                    );
                    if found.backend().is_some() {
                        decision = Some(found);
                        facts_used = to_writers;
                    }
                }
                if decision.is_none() {
                    if kind == RequestKind::Write {
                        let client = placed.map_or("-", |(region, _)| region);
                        ctx.rw = Some(RequestKind::WriteRefused);
                        ctx.write_refusal =
                            Some(write_refusal(&split.region, client, fence_allows));
                        return Error::e_explain(ErrorType::HTTPStatus(503), "write refused");
                    }
                    ctx.rw = Some(RequestKind::PinnedFallback);
                }
            }
        }
        let mut decision = decision
            .unwrap_or_else(|| pick(&routing.snapshot, &facts, clock::now_ms(), &mut rand::rng()));
        let mut over_budget_in = None;
        let budget = ctx
            .route
            .filter(|_| ctx.tried.is_empty())
            .and_then(|r| Some((r, routing.budgets.route(r)?)));
        if let Some((route, budget)) = budget {
            let route_name = routing.snapshot.routes.routes()[route].name.as_str();
            let region_name = |i: usize| budget.regions[i].region.as_deref().unwrap_or("-");
            match within_budget(budget, &routing.snapshot, &facts_used, decision) {
                Ok((within, None)) => decision = within,
                Ok((within, Some(over))) => {
                    over_budget_in = Some(region_name(over));
                    budget.regions[over].spilled.fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .budget_spilled
                        .with_label_values(&[route_name, region_name(over)])
                        .inc();
                    decision = within;
                }
                Err(over) => {
                    budget.regions[over]
                        .rejected
                        .fetch_add(1, Ordering::Relaxed);
                    self.metrics
                        .budget_rejections
                        .with_label_values(&[route_name, region_name(over)])
                        .inc();
                    ctx.budget_retry_after = Some(budget.policy.retry_after.as_secs());
                    return Error::e_explain(ErrorType::HTTPStatus(503), BUDGET_EXCEEDED);
                }
            }
        }
        let backend = match decision {
            Decision::Backend(index) => index,
            Decision::Spilled(index) => {
                let client = placed.map_or("-", |(region, _)| region);
                let region = pool.backends[index].region.as_deref().unwrap_or("-");
                self.metrics
                    .spilled_requests
                    .with_label_values(&[pool.name.as_str(), client, region])
                    .inc();
                index
            }
            Decision::Unavailable(Unavailable::Residency) => {
                let region = placed.map_or("-", |(region, _)| region);
                self.metrics
                    .residency_rejections
                    .with_label_values(&[region])
                    .inc();
                ctx.fenced_region = Some(region.to_string());
                return Error::e_explain(
                    ErrorType::HTTPStatus(503),
                    Unavailable::Residency.as_str(),
                );
            }
            Decision::Unavailable(why) => {
                return Error::e_explain(ErrorType::HTTPStatus(503), why.as_str());
            }
        };
        if let (Some(shadow), Some(live), true) = (
            routing.shadows[pool_id.0].as_deref(),
            facts.weights,
            ctx.tried.is_empty(),
        ) {
            // A policy trial beside the live one: counted, never routed. A
            // write (or pinned read) is compared within the write region.
            let scoped = facts_used.plan.is_some();
            shadow.compare(live, backend, scoped, &mut rand::rng());
        }
        ctx.tried.push(backend);
        if let Some(explain) = &routing.snapshot.explain {
            if wants_explanation(explain, session) {
                let share = routing.weights[pool_id.0]
                    .as_ref()
                    .map(|w| w.shares[backend]);
                ctx.explanation = Some(explain_pick(
                    pool,
                    backend,
                    matches!(decision, Decision::Spilled(_)),
                    over_budget_in,
                    placed,
                    share,
                    ctx.tried.len(),
                    ctx.rw,
                ));
            }
        }
        let backend_stats = stats[backend].clone();
        ctx.attempt = Some(Attempt {
            _in_flight: backend_stats.start(),
            stats: backend_stats,
            started: Instant::now(),
            recorded: false,
        });
        let mut peer = HttpPeer::new(pool.backends[backend].addr, false, String::new());
        peer.options.connection_timeout = Some(pool.timeouts.connect);
        peer.options.read_timeout = Some(pool.timeouts.read);
        peer.options.write_timeout = Some(pool.timeouts.write);
        peer.options.idle_timeout = Some(pool.timeouts.idle);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let prior = upstream_request.headers.get(X_FORWARDED_FOR);
            let forwarded_for = forwarded_for(prior, client.ip());
            upstream_request.insert_header(X_FORWARDED_FOR, forwarded_for)?;
        }
        let is_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let proto = HeaderValue::from_static(if is_tls { "https" } else { "http" });
        upstream_request.insert_header(X_FORWARDED_PROTO, proto)?;
        upstream_request.insert_header(X_REQUEST_ID, ctx.request_id.clone())?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let (Some(routing), Some(pool_id)) = (ctx.routing.clone(), ctx.pool) else {
            return Ok(());
        };
        let policy = &routing.snapshot.pool(pool_id).policy.server_load;
        let now_ms = clock::now_ms();
        if let Some(attempt) = ctx.attempt.as_mut() {
            if !attempt.recorded {
                attempt.recorded = true;
                let latency_us = attempt.latency_us();
                if upstream_response.status.is_server_error() {
                    attempt.stats.record_failure(now_ms, Some(latency_us));
                } else {
                    attempt.stats.record_success(now_ms, latency_us);
                }
            }
        }
        let headers = &upstream_response.headers;
        let primary = headers
            .get(&policy.header)
            .map(|v| parse_server_load(v.as_bytes()));
        let orca = headers
            .get(&policy.orca_header)
            .map(|v| parse_orca(v.as_bytes()));
        let ok = |result: Option<std::result::Result<LoadReport, ParseError>>| match result {
            Some(Ok(report)) => Some(report),
            Some(Err(error)) => {
                self.count_report_error(ctx, error);
                None
            }
            None => None,
        };
        let report = merge_reports(ok(primary), ok(orca));
        if let (Some(report), Some(attempt)) = (report, ctx.attempt.as_ref()) {
            attempt.stats.record_report(now_ms, &report);
        }
        if policy.strip {
            upstream_response.remove_header(&policy.header);
            upstream_response.remove_header(&policy.orca_header);
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
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(mut attempt) = ctx.attempt.take() {
            attempt.record_failure(None);
        }
        if ctx.connect_retries < MAX_CONNECT_RETRIES && Self::other_backend_available(ctx) {
            ctx.connect_retries += 1;
            self.count_retry(ctx, "connect");
            e.set_retry(true);
        } else {
            e.set_retry(false);
        }
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
        let timed_out = matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
        );
        if let Some(attempt) = ctx.attempt.as_mut() {
            let latency = timed_out.then(|| attempt.latency_us());
            attempt.record_failure(latency);
        }
        let req = session.req_header();
        let replay_safe = req.method.is_idempotent() || req.headers.contains_key(IDEMPOTENCY_KEY);
        let attempts_left = match (&ctx.routing, ctx.pool) {
            (Some(routing), Some(pool)) => {
                let allowed = routing.snapshot.pool(pool).policy.attempts as usize;
                ctx.tried.len().saturating_sub(ctx.connect_retries) < allowed
            }
            _ => false,
        };
        let retry = replay_safe
            && attempts_left
            && session.response_written().is_none()
            && !session.as_ref().retry_buffer_truncated()
            && Self::other_backend_available(ctx);
        if retry {
            self.count_retry(ctx, "error");
        }
        e.set_retry(retry);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, message) = status_for(e);
        if status != 0 {
            let id = if ctx.request_id.is_empty() {
                self.new_request_id()
            } else {
                ctx.request_id.clone()
            };
            match (
                &ctx.write_refusal,
                &ctx.fenced_region,
                ctx.budget_retry_after,
            ) {
                (Some((message, reason)), _, _) => {
                    respond_plain(session, status, &id, message, Some(reason), None).await;
                }
                (None, Some(region), _) => {
                    let message = format!(
                        "service unavailable: no backend allowed to serve region {region} is available (residency fence)"
                    );
                    let reason = format!("residency; client region {region}");
                    respond_plain(session, status, &id, &message, Some(&reason), None).await;
                }
                (None, None, Some(seconds)) => {
                    let message = "service unavailable: this event is over its share of capacity";
                    let reason = Some(BUDGET_EXCEEDED);
                    respond_plain(session, status, &id, message, reason, Some(seconds)).await;
                }
                (None, None, None) => {
                    respond_plain(session, status, &id, message, None, None).await
                }
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let route = match (&ctx.routing, ctx.route) {
            (Some(routing), Some(i)) => routing.snapshot.routes.routes()[i].name.as_str(),
            _ => "-",
        };
        let pool = match (&ctx.routing, ctx.pool) {
            (Some(routing), Some(p)) => routing.snapshot.pool(p).name.as_str(),
            _ => "-",
        };
        let elapsed = ctx.started.elapsed();
        if let (Some(routing), Some(pool), Some(kind)) = (&ctx.routing, ctx.pool, ctx.rw) {
            routing.series.count_rw(pool, kind);
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
        tracing::info!(
            target: "ballast::access",
            request_id = ctx.request_id.to_str().unwrap_or("-"),
            method = %req.method,
            path = %req.uri.path(),
            status,
            route,
            backend = ctx.backend_id(),
            attempts = ctx.tried.len(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            error = e.map(|e| e.to_string()),
        );
    }
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
    fn hex_digits_fill_the_slot_right_aligned() {
        let mut id = [0u8; 16];
        write_hex(&mut id, 0x0123_4567_89ab_cdef);
        assert_eq!(&id, b"0123456789abcdef");
        write_hex(&mut id, 0xa);
        assert_eq!(&id, b"000000000000000a");
    }
}

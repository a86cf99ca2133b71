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

mod context;
mod headers;
mod load_report;
mod record;
mod responses;

pub use context::RequestCtx;

use crate::config::{OverBudget, Pool, RegionPlan, Snapshot};
use crate::routing::budget::{Admission, RouteBudget};
use crate::routing::geo::plan_for;
use crate::routing::picker::{pick, Decision, RequestFacts, Unavailable};
use crate::routing::read_write::{classify, RequestKind};
use crate::routing::state::RoutingState;
use crate::routing::sticky::key_hash;
use crate::routing::table::RequestView;
use crate::stats::clock;
use crate::telemetry::decisions::DecisionLog;
use crate::telemetry::metrics::Metrics;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use context::Attempt;
use headers::{
    add_forwarding, client_ip, hand_back_pin, over_limit, request_host, wants_explanation,
    RequestIds, IDEMPOTENCY_KEY, X_BALLAST_DECISION, X_REQUEST_ID,
};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorType, Result};
use responses::{respond_failure, respond_plain, status_for, write_refusal, BUDGET_EXCEEDED};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Connection failures retried on another backend per request.
const MAX_CONNECT_RETRIES: usize = 3;

/// The proxy service: reads the routing state the engine publishes.
pub struct BallastProxy {
    routing: Arc<ArcSwap<RoutingState>>,
    request_ids: RequestIds,
    metrics: Arc<Metrics>,
    /// Explained requests are recorded here.
    decisions: Arc<DecisionLog>,
}

impl BallastProxy {
    pub fn new(
        routing: Arc<ArcSwap<RoutingState>>,
        metrics: Arc<Metrics>,
        decisions: Arc<DecisionLog>,
    ) -> Self {
        Self {
            routing,
            request_ids: RequestIds::new(),
            metrics,
            decisions,
        }
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
        let req = session.req_header();
        ctx.request_id = self.request_ids.keep_or_make(req);
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
        let placed = routing
            .snapshot
            .geo
            .as_ref()
            .and_then(|geo| plan_for(geo, client_ip(session), &session.req_header().headers));
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
        ctx.attempt = Some(Attempt::start(stats[backend].clone()));
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
        add_forwarding(session, upstream_request, &ctx.request_id)
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
            record::record_response(attempt, upstream_response.status.is_server_error(), now_ms);
        }
        let report = load_report::take_report(upstream_response, policy, |error| {
            self.count_report_error(ctx, error)
        });
        if let (Some(report), Some(attempt)) = (report, ctx.attempt.as_ref()) {
            attempt.stats.record_report(now_ms, &report);
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
                self.request_ids.next()
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

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        self.record_done(session, e, ctx);
    }
}

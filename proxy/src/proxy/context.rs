//! The per-request state the hooks share: the routing state the request was
//! matched against, its trace context, its route and pool, the backends it tried, the attempt in
//! flight, and what a refusal or explanation needs to say.
//!
//! A request whose backend switches protocols (a WebSocket's 101) stops
//! being a request in flight there: the connection may stay open for hours
//! and says nothing of how busy the backend is, so it leaves the backend's
//! in-flight count and the `in_flight_requests` gauge for the
//! `upgraded_connections` one ([`RequestCtx::upgraded`]).

use super::trace_context::TraceContext;
use crate::config::routes::Route;
use crate::config::{Backend, PoolId};
use crate::routing::read_write::RequestKind;
use crate::routing::retry_budget::RetryToken;
use crate::routing::state::RoutingState;
use crate::stats::backend::{BackendStats, InFlight};
use crate::stats::clock;
use http::header::HeaderValue;
use prometheus::Histogram;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Counts a request in a gauge from its creation until it is dropped.
struct GaugeGuard(prometheus::IntGauge);

impl GaugeGuard {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One try of a request against one backend.
pub(super) struct Attempt {
    pub(super) stats: Arc<BackendStats>,
    /// `ballast_backend_latency_seconds` of the backend.
    latency: Histogram,
    started: Instant,
    /// Whether the outcome has been counted in the backend's stats.
    pub(super) recorded: bool,
    /// A gRPC call whose status is still to come in the trailers: the
    /// latency to its response headers, recorded with that status.
    pub(super) grpc_pending: Option<u64>,
    /// The in-flight count the try joined, itself included.
    joined: u64,
    /// Held until the try ends, or its connection is upgraded.
    in_flight: Option<InFlight>,
}

impl Attempt {
    /// Start a try against the backend with these `stats` and `latency`
    /// histogram.
    pub(super) fn start(stats: Arc<BackendStats>, latency: &Histogram) -> Self {
        let in_flight = stats.start();
        Self {
            joined: in_flight.joined(),
            in_flight: Some(in_flight),
            stats,
            latency: latency.clone(),
            started: Instant::now(),
            recorded: false,
            grpc_pending: None,
        }
    }

    pub(super) fn latency_us(&self) -> u64 {
        self.started.elapsed().as_micros() as u64
    }

    /// Observe the time to the backend's response headers in its latency
    /// histogram.
    pub(super) fn observe_latency(&self, latency_us: u64) {
        self.latency.observe(latency_us as f64 / 1e6);
    }

    /// File this attempt's latency under the load it joined (answers and
    /// timeouts: a fast error says nothing of how fast the backend serves).
    pub(super) fn record_load_latency(&self, now_ms: u64, latency_us: u64) {
        self.stats
            .record_load_latency(now_ms, self.joined, latency_us);
    }

    pub(super) fn record_failure(&mut self, latency_us: Option<u64>) {
        if !self.recorded {
            self.recorded = true;
            let now_ms = clock::now_ms();
            self.stats.record_failure(now_ms, latency_us);
            if let Some(latency_us) = latency_us {
                self.record_load_latency(now_ms, latency_us);
            }
        }
    }
}

/// Per-request state.
pub struct RequestCtx {
    pub(super) started: Instant,
    /// Empty until `request_filter` keeps or makes one.
    pub(super) request_id: HeaderValue,
    /// The address the connection came from: its TCP peer, or the source a
    /// trusted PROXY protocol header named. Set by `request_filter`; `None`
    /// before, or off IP.
    pub(super) peer: Option<IpAddr>,
    /// The request's client: `peer`, or the address trusted proxies
    /// forwarded (`client_address`). Geo placement, residency and the access
    /// log use it.
    pub(super) client: Option<IpAddr>,
    /// The request's trace and Ballast's span in it, from `request_filter` on.
    pub(super) trace: Option<TraceContext>,
    pub(super) routing: Option<Arc<RoutingState>>,
    pub(super) route: Option<usize>,
    pub(super) pool: Option<PoolId>,
    pub(super) tried: Vec<usize>,
    pub(super) connect_retries: usize,
    pub(super) attempt: Option<Attempt>,
    /// Set when the attempt's 5xx response is dropped for a retry, until
    /// `error_while_proxy` passes the retry on.
    pub(super) status_retry: bool,
    /// The pool's retry budget this request holds while it is retried.
    pub(super) retry_token: Option<RetryToken>,
    /// Set when a residency fence left no backend: the client's region.
    pub(super) fenced_region: Option<String>,
    /// What the request is to a pool with a read/write split.
    pub(super) rw: Option<RequestKind>,
    /// Set when a write is refused: the message and `X-Ballast-Reason`.
    pub(super) write_refusal: Option<(String, String)>,
    /// Set when the route's event budget shed the request: Retry-After seconds.
    pub(super) budget_retry_after: Option<u64>,
    /// The `X-Ballast-Decision` text, when this request is explained.
    pub(super) explanation: Option<String>,
    /// The rule that chose the last attempt's backend, when the access log
    /// or the explanation carries it.
    pub(super) decision_rule: Option<String>,
    /// The status a gRPC call ended with (the last attempt's), for the
    /// access log.
    pub(super) grpc_status: Option<u32>,
    /// The last attempt's time to a connection to its backend (a reused one:
    /// at once), in µs.
    pub(super) upstream_connect_us: Option<u64>,
    /// The last attempt's time to its backend's response headers, in µs.
    pub(super) upstream_first_byte_us: Option<u64>,
    /// Set when the backend switched protocols: how long that took.
    pub(super) upgraded_after: Option<std::time::Duration>,
    /// The request body size limit that applies, if any.
    pub(super) body_limit: Option<u64>,
    /// Request body bytes read so far.
    pub(super) body_bytes: u64,
    /// Set when the body crossed `body_limit` while streaming.
    pub(super) body_over_limit: bool,
    /// `in_flight_requests`, or `upgraded_connections` once upgraded.
    _counted: GaugeGuard,
}

impl RequestCtx {
    /// A fresh context, counted in the `in_flight` gauge until dropped.
    pub(super) fn new(in_flight: &prometheus::IntGauge) -> Self {
        Self {
            started: Instant::now(),
            request_id: HeaderValue::from_static(""),
            peer: None,
            client: None,
            trace: None,
            routing: None,
            route: None,
            pool: None,
            tried: Vec::new(),
            connect_retries: 0,
            attempt: None,
            status_retry: false,
            retry_token: None,
            fenced_region: None,
            rw: None,
            write_refusal: None,
            budget_retry_after: None,
            explanation: None,
            decision_rule: None,
            grpc_status: None,
            upstream_connect_us: None,
            upstream_first_byte_us: None,
            upgraded_after: None,
            body_limit: None,
            body_bytes: 0,
            body_over_limit: false,
            _counted: GaugeGuard::new(in_flight),
        }
    }

    /// The backend switched protocols: from now on the connection is counted
    /// in `upgraded` only (see the module header).
    pub(super) fn upgraded(&mut self, upgraded: &prometheus::IntGauge) {
        self.upgraded_after = Some(self.started.elapsed());
        if let Some(attempt) = self.attempt.as_mut() {
            attempt.in_flight = None;
        }
        self._counted = GaugeGuard::new(upgraded);
    }

    /// How long the request took: until its upgrade, for an upgraded one.
    pub(super) fn duration(&self) -> std::time::Duration {
        self.upgraded_after
            .unwrap_or_else(|| self.started.elapsed())
    }

    /// The backend tried last, if any.
    pub(super) fn last_backend(&self) -> Option<&Backend> {
        match (&self.routing, self.pool, self.tried.last()) {
            (Some(routing), Some(pool), Some(&b)) => Some(&routing.snapshot.pool(pool).backends[b]),
            _ => None,
        }
    }

    /// The id of the backend tried last, or `-`.
    pub(super) fn backend_id(&self) -> &str {
        self.last_backend().map_or("-", |b| b.id.0.as_str())
    }

    /// The route's name, or `-`.
    pub(super) fn route_name(&self) -> &str {
        self.route().map_or("-", |route| route.name.as_str())
    }

    /// The route the request matched, if any.
    pub(super) fn route(&self) -> Option<&Route> {
        match (&self.routing, self.route) {
            (Some(routing), Some(i)) => routing.snapshot.routes.routes().get(i),
            _ => None,
        }
    }

    /// The pool's name, or `-`.
    pub(super) fn pool_name(&self) -> &str {
        match (&self.routing, self.pool) {
            (Some(routing), Some(p)) => routing.snapshot.pool(p).name.as_str(),
            _ => "-",
        }
    }
}

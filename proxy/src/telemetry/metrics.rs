//! Ballast's Prometheus metrics, in one registry of its own (not the global
//! default), rendered by the admin endpoint at `GET /metrics`.
//!
//! Label values come from the configuration (route and pool names) and a
//! fixed set of status classes, so cardinality is bounded by the config.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Latency buckets in seconds: 1 ms to 30 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// `process_*`, build info and dropped log lines (`process_metrics`).
    process_registry: Registry,
    /// Finished requests by route, pool, backend (the last one tried) and status class.
    pub requests: IntCounterVec,
    /// Time from request start to the end of the response, by route.
    pub request_duration: HistogramVec,
    /// Each attempt's time to the backend's response headers, by pool and
    /// backend.
    pub backend_latency: HistogramVec,
    /// Requests being handled right now.
    pub in_flight: IntGauge,
    /// Upgraded (WebSocket) connections open right now.
    pub upgraded_connections: IntGauge,
    /// Each backend's current traffic share.
    pub backend_share: GaugeVec,
    /// Outlier ejections, by pool.
    pub ejections: IntCounterVec,
    /// Shares that moved more than 20 points within 5 minutes, by pool.
    pub share_swings: IntCounterVec,
    /// `Server-Load` / ORCA headers that could not be used, by pool and reason.
    pub server_load_errors: IntCounterVec,
    /// Requests retried on another backend, by pool and cause.
    pub retries: IntCounterVec,
    /// Retries not made because the pool's retry budget was spent, by pool and cause.
    pub retries_budget_exhausted: IntCounterVec,
    /// Configuration reloads, by result (`ok`, `failed`).
    pub reloads: IntCounterVec,
    /// 1 while the fleet's configuration store is followed; 0 while it
    /// cannot be reached, or without a store.
    pub config_store_up: IntGauge,
    /// Times the configuration store could not be reached or followed.
    pub config_store_errors: IntCounter,
    /// The store revision of the configuration running.
    pub config_store_revision: IntGauge,
    /// 1 while the fleet's budget store (Redis) answers; 0 while it does
    /// not (or no budget is shared).
    pub budget_store_up: IntGauge,
    /// Lease rounds that failed against the budget store.
    pub budget_store_errors: IntCounter,
    /// Request spans by what became of them (`exported`, `queue_full`,
    /// `export_failed`).
    pub trace_spans: IntCounterVec,
    /// Changed certificate files on a TLS listener, by result (`ok`: now
    /// served, `failed`: refused, the previous pair stays).
    pub tls_certificate_reloads: IntCounterVec,
    /// Each served certificate's `notAfter` (Unix seconds), by listener and name.
    pub tls_certificate_expiry: GaugeVec,
    /// Requests refused because a residency fence left no allowed backend.
    pub residency_rejections: IntCounterVec,
    /// Canary breakers opened, by pool.
    pub canary_trips: IntCounterVec,
    /// Fraction of each region's traffic being spilled to its fallbacks.
    pub region_spill: GaugeVec,
    /// Requests served by a later region because an earlier one was spilling.
    pub spilled_requests: IntCounterVec,
    /// Fraction of each pool's traffic its priority tiers take.
    pub tier_load: GaugeVec,
    /// Requests to pools with a read/write split, by pool and kind (`write`,
    /// `read`, `pinned_read`, `pinned_fallback`, `write_refused`).
    pub rw_requests: IntCounterVec,
    /// Load polls of backends, by pool and result (`ok`, `unreachable`,
    /// `timeout`, `status`, `too_large`, `invalid`).
    pub load_polls: IntCounterVec,
    /// Connections to backends that failed in their TLS handshake, by pool,
    /// backend and reason.
    pub upstream_tls_errors: IntCounterVec,
    /// gRPC calls by pool, backend and the status they ended with.
    pub grpc_calls: IntCounterVec,
    /// 1 for each pool's active schedule template, 0 for its others.
    pub schedule_active: GaugeVec,
    /// Sampled requests a shadow candidate would have sent to the same
    /// backend as the live policy, or to another, by pool and outcome.
    pub shadow_decisions: IntCounterVec,
    /// Each backend's share under its pool's shadow candidate.
    pub shadow_share: GaugeVec,
    /// Predicted mean latency of a pool under the live policy and under its
    /// shadow candidate, by pool and policy (`live`, `candidate`).
    pub shadow_predicted_latency: GaugeVec,
    /// Predicted error rate under each policy, by pool and policy.
    pub shadow_predicted_error_rate: GaugeVec,
    /// Requests per second the candidate would send to other backends.
    pub shadow_moved_rps: GaugeVec,
    /// Fraction of a pool's hash key space that changed owner at the last recompute.
    pub hash_ring_moved: GaugeVec,
    /// Fraction of a pool's hash key space each backend owns.
    pub hash_key_space: GaugeVec,
    /// Requests shed because their route was over its event budget in a region.
    pub budget_rejections: IntCounterVec,
    /// Requests sent to a later region because their route was over budget in an earlier one.
    pub budget_spilled: IntCounterVec,
    /// Requests answered 429 because their key was over the route's rate limit.
    pub rate_limited: IntCounterVec,
    /// Resolutions of backends named by DNS, by pool, name and result (`ok`,
    /// `nxdomain`, `empty`, `error`).
    pub discovery_resolutions: IntCounterVec,
    /// The addresses each named entry stands for now (its last good set).
    pub discovery_addresses: GaugeVec,
    /// Client connections open right now (after their TLS handshake).
    pub client_connections: IntGauge,
    /// Client connections closed at once because a limit was reached, by
    /// reason (`max_connections`, `max_client_connections`).
    pub client_connections_refused: IntCounterVec,
    /// Client connections closed by a deadline (`header_timeout`) or refused
    /// by PROXY protocol (`proxy_protocol_*`), by reason.
    pub client_connections_closed: IntCounterVec,
}

/// The status class label of a response status (0 = no response was sent).
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("ballast".into()), None).expect("valid prefix");
        let requests = IntCounterVec::new(
            Opts::new(
                "requests_total",
                "Requests handled, by route, pool, backend and status class",
            ),
            &["route", "pool", "backend", "status_class"],
        )
        .expect("valid metric");
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Request duration as seen by the proxy",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("valid metric");
        let backend_latency = HistogramVec::new(
            HistogramOpts::new(
                "backend_latency_seconds",
                "Time from sending an attempt to its backend's response headers",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
            &["pool", "backend"],
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("in_flight_requests", "Requests being handled right now")
            .expect("valid metric");
        let upgraded_connections = IntGauge::new(
            "upgraded_connections",
            "Upgraded (WebSocket) connections open right now",
        )
        .expect("valid metric");
        let backend_share = GaugeVec::new(
            Opts::new(
                "backend_share",
                "Current traffic share of each backend (0..1)",
            ),
            &["pool", "backend"],
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            GaugeVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let ejections = counter(
            "outlier_ejections_total",
            "Backends ejected after consecutive failures",
            &["pool"],
        );
        let share_swings = counter(
            "share_swings_total",
            "Backend shares that moved more than 20 points within 5 minutes",
            &["pool"],
        );
        let server_load_errors = counter(
            "server_load_errors_total",
            "Backend load reports ignored because they could not be parsed",
            &["pool", "reason"],
        );
        let retries = counter(
            "retries_total",
            "Requests retried on another backend",
            &["pool", "cause"],
        );
        let retries_budget_exhausted = counter(
            "retries_budget_exhausted_total",
            "Retries not made because the pool's retry budget was spent",
            &["pool", "cause"],
        );
        let reloads = counter(
            "reloads_total",
            "Configuration reloads, by result",
            &["result"],
        );
        let tls_certificate_reloads = counter(
            "tls_certificate_reloads_total",
            "Certificate files of TLS listeners that changed on disk, by result (ok: served from the next handshake; failed: refused, the previous pair stays)",
            &["result"],
        );
        let tls_certificate_expiry = gauge(
            "tls_certificate_expiry_seconds",
            "When each certificate a TLS listener serves expires (its notAfter, Unix seconds), by listener and name (default, or its server names)",
            &["listener", "name"],
        );
        let residency_rejections = counter(
            "residency_rejections_total",
            "Requests answered 503 because no backend in the client's allowed regions was available",
            &["client_region"],
        );
        let canary_trips = counter(
            "canary_breaker_trips_total",
            "Canary breakers opened by the canary's error rate",
            &["pool"],
        );
        let region_spill = GaugeVec::new(
            Opts::new(
                "region_spill_fraction",
                "Fraction of a region's traffic moved on to the next region of each plan (0..1)",
            ),
            &["pool", "region"],
        )
        .expect("valid metric");
        let spilled_requests = counter(
            "spilled_requests_total",
            "Requests served in a later region of their plan because an earlier one was spilling",
            &["pool", "client_region", "region"],
        );
        let tier_load = GaugeVec::new(
            Opts::new(
                "priority_tier_load",
                "Fraction of a pool's traffic its priority tier takes (0..1)",
            ),
            &["pool", "tier"],
        )
        .expect("valid metric");
        let rw_requests = counter(
            "rw_requests_total",
            "Requests to pools with a read/write split, by kind: write, read, pinned_read (after the client's write), pinned_fallback (pinned but served by normal routing), write_refused",
            &["pool", "kind"],
        );
        let load_polls = counter(
            "load_polls_total",
            "Polls of backends' load endpoints, by result (ok, unreachable, tls, timeout, status, too_large, invalid)",
            &["pool", "result"],
        );
        let upstream_tls_errors = counter(
            "upstream_tls_errors_total",
            "Connections to backends that failed in TLS, by reason (untrusted, wrong_name, expired, not_yet_valid, client_cert_refused, alpn, handshake)",
            &["pool", "backend", "reason"],
        );
        let grpc_calls = counter(
            "grpc_calls_total",
            "gRPC calls answered by backends, by the status they ended with (ok, unavailable, not_found, ...; missing: no grpc-status)",
            &["pool", "backend", "code"],
        );
        let schedule_active = GaugeVec::new(
            Opts::new(
                "schedule_active",
                "1 for the pool's active schedule template (the first that applies now), 0 for its others",
            ),
            &["pool", "template"],
        )
        .expect("valid metric");
        let shadow_decisions = counter(
            "shadow_decisions_total",
            "Sampled requests a shadow candidate policy would have sent to the same backend as the live policy (same) or to another (different)",
            &["pool", "outcome"],
        );
        let shadow_share = gauge(
            "shadow_share",
            "A backend's traffic share under its pool's shadow candidate policy (0..1)",
            &["pool", "backend"],
        );
        let shadow_predicted_latency = gauge(
            "shadow_predicted_latency_seconds",
            "Predicted mean latency of a pool: sum of share x measured mean latency, under the live policy and its shadow candidate",
            &["pool", "policy"],
        );
        let shadow_predicted_error_rate = gauge(
            "shadow_predicted_error_rate",
            "Predicted error rate of a pool: sum of share x measured error rate, under the live policy and its shadow candidate",
            &["pool", "policy"],
        );
        let shadow_moved_rps = gauge(
            "shadow_moved_requests_per_second",
            "Requests per second the shadow candidate would send to other backends than the live policy does",
            &["pool"],
        );
        let hash_ring_moved = GaugeVec::new(
            Opts::new(
                "hash_ring_moved_fraction",
                "Fraction of a pool's consistent-hash key space that changed owner at the last recompute (0..1)",
            ),
            &["pool"],
        )
        .expect("valid metric");
        let hash_key_space = GaugeVec::new(
            Opts::new(
                "hash_key_space_fraction",
                "Fraction of a pool's consistent-hash key space a backend owns (0..1)",
            ),
            &["pool", "backend"],
        )
        .expect("valid metric");
        let budget_rejections = counter(
            "budget_rejections_total",
            "Requests answered 503 because their route was over its event budget in a region",
            &["route", "region"],
        );
        let budget_spilled = counter(
            "budget_spilled_total",
            "Requests served in a later region because their route was over its event budget in this one",
            &["route", "region"],
        );
        let rate_limited = counter(
            "rate_limited_total",
            "Requests answered 429 because their client (address or header value) was over the route's rate limit",
            &["route"],
        );
        let discovery_resolutions = counter(
            "discovery_resolutions_total",
            "Resolutions of backends named by DNS, by result (ok, nxdomain, empty, error); a failed or empty one keeps the last good addresses",
            &["pool", "name", "result"],
        );
        let discovery_addresses = gauge(
            "discovery_addresses",
            "Addresses a backend entry named by DNS stands for now (its last good resolution)",
            &["pool", "name"],
        );
        let client_connections = IntGauge::new(
            "client_connections",
            "Client connections open right now (after their TLS handshake)",
        )
        .expect("valid metric");
        let client_connections_refused = counter(
            "client_connections_refused_total",
            "Client connections closed at once, unread, because a connection limit was reached, by reason (max_connections, max_client_connections)",
            &["reason"],
        );
        let client_connections_closed = counter(
            "client_connections_closed_total",
            "Client connections closed by a deadline or refused by PROXY protocol, by reason (header_timeout: no complete first request in time; proxy_protocol_untrusted, proxy_protocol_missing, proxy_protocol_invalid)",
            &["reason"],
        );
        let config_store_up = IntGauge::new(
            "config_store_up",
            "1 while the configuration store (etcd) is followed; 0 while it cannot be reached, or when the configuration comes from a file",
        )
        .expect("valid metric");
        let config_store_errors = IntCounter::new(
            "config_store_errors_total",
            "Times the configuration store could not be reached or followed",
        )
        .expect("valid metric");
        let config_store_revision = IntGauge::new(
            "config_store_revision",
            "The store revision of the configuration running",
        )
        .expect("valid metric");
        let budget_store_up = IntGauge::new(
            "budget_store_up",
            "1 while the fleet's budget store (Redis) answers the token leases; 0 while it cannot be reached (each instance then admits its share of every budget) or when no budget is shared",
        )
        .expect("valid metric");
        let budget_store_errors = IntCounter::new(
            "budget_store_errors_total",
            "Budget token leases that failed against the fleet's budget store",
        )
        .expect("valid metric");
        let trace_spans = counter(
            "trace_spans_total",
            "Request spans by what became of them: exported to the OTLP collector, dropped because the export queue was full (queue_full), or dropped after the collector failed every attempt (export_failed)",
            &["outcome"],
        );
        let collectors: [Box<dyn prometheus::core::Collector>; 46] = [
            Box::new(trace_spans.clone()),
            Box::new(budget_store_up.clone()),
            Box::new(budget_store_errors.clone()),
            Box::new(config_store_up.clone()),
            Box::new(config_store_errors.clone()),
            Box::new(config_store_revision.clone()),
            Box::new(super::client_errors::counter()),
            Box::new(tls_certificate_reloads.clone()),
            Box::new(tls_certificate_expiry.clone()),
            Box::new(client_connections.clone()),
            Box::new(client_connections_refused.clone()),
            Box::new(client_connections_closed.clone()),
            Box::new(discovery_resolutions.clone()),
            Box::new(discovery_addresses.clone()),
            Box::new(rw_requests.clone()),
            Box::new(upstream_tls_errors.clone()),
            Box::new(grpc_calls.clone()),
            Box::new(schedule_active.clone()),
            Box::new(load_polls.clone()),
            Box::new(shadow_decisions.clone()),
            Box::new(shadow_share.clone()),
            Box::new(shadow_predicted_latency.clone()),
            Box::new(shadow_predicted_error_rate.clone()),
            Box::new(shadow_moved_rps.clone()),
            Box::new(hash_ring_moved.clone()),
            Box::new(hash_key_space.clone()),
            Box::new(budget_rejections.clone()),
            Box::new(budget_spilled.clone()),
            Box::new(rate_limited.clone()),
            Box::new(tier_load.clone()),
            Box::new(region_spill.clone()),
            Box::new(spilled_requests.clone()),
            Box::new(canary_trips.clone()),
            Box::new(residency_rejections.clone()),
            Box::new(reloads.clone()),
            Box::new(requests.clone()),
            Box::new(request_duration.clone()),
            Box::new(backend_latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(upgraded_connections.clone()),
            Box::new(backend_share.clone()),
            Box::new(ejections.clone()),
            Box::new(share_swings.clone()),
            Box::new(server_load_errors.clone()),
            Box::new(retries.clone()),
            Box::new(retries_budget_exhausted.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("unique metric");
        }
        Self {
            registry,
            process_registry: super::process_metrics::registry(),
            requests,
            request_duration,
            backend_latency,
            in_flight,
            upgraded_connections,
            backend_share,
            ejections,
            share_swings,
            server_load_errors,
            retries,
            retries_budget_exhausted,
            reloads,
            config_store_up,
            config_store_errors,
            config_store_revision,
            budget_store_up,
            budget_store_errors,
            trace_spans,
            tls_certificate_reloads,
            tls_certificate_expiry,
            residency_rejections,
            canary_trips,
            region_spill,
            spilled_requests,
            tier_load,
            rw_requests,
            load_polls,
            upstream_tls_errors,
            grpc_calls,
            schedule_active,
            shadow_decisions,
            shadow_share,
            shadow_predicted_latency,
            shadow_predicted_error_rate,
            shadow_moved_rps,
            hash_ring_moved,
            hash_key_space,
            budget_rejections,
            budget_spilled,
            rate_limited,
            discovery_resolutions,
            discovery_addresses,
            client_connections,
            client_connections_refused,
            client_connections_closed,
        }
    }

    /// Every metric in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .and_then(|()| TextEncoder::new().encode(&self.process_registry.gather(), &mut out))
            .expect("text encoding into memory cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_labelled_counters() {
        let m = Metrics::new();
        m.requests
            .with_label_values(&["api", "p", "p/10.0.0.1:80", status_class(503)])
            .inc();
        m.in_flight.inc();
        let text = m.render();
        assert!(
            text.contains(
                "ballast_requests_total{backend=\"p/10.0.0.1:80\",pool=\"p\",route=\"api\",status_class=\"5xx\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("ballast_in_flight_requests 1"), "{text}");
        assert_eq!(status_class(0), "none");
        assert_eq!(status_class(204), "2xx");
    }
}

//! The per-request metric series (`ballast_requests_total`,
//! `ballast_request_duration_seconds`, `ballast_backend_latency_seconds`, and
//! `ballast_rw_requests_total` of pools with a read/write split) of one
//! configuration, as handles
//! resolved once and kept for as long as the configuration is: a request
//! then counts itself with an array index and an atomic add, without hashing
//! label values. A series is resolved on its first request, so `/metrics`
//! shows exactly the series that occurred, as when labels are looked up per
//! request.

use crate::config::{PoolId, Snapshot};
use crate::telemetry::metrics::{status_class, Metrics};
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use std::sync::OnceLock;

/// Status classes in label order; the index of a status is `class_index`.
const CLASSES: usize = 6;

/// How many kinds of request a pool with a read/write split counts: the
/// length of `routing::read_write::RequestKind::ALL`, whose type names it.
pub const RW_KINDS: usize = 5;

/// The series of every route of one snapshot.
pub struct RequestSeries {
    requests: IntCounterVec,
    durations: HistogramVec,
    routes: Box<[RouteSeries]>,
    rw_requests: IntCounterVec,
    backend_latencies: HistogramVec,
    pools: Box<[PoolSeries]>,
}

struct PoolSeries {
    name: String,
    /// A counter per request kind.
    rw_requests: [OnceLock<IntCounter>; RW_KINDS],
    /// Per backend: its id and its latency histogram.
    backend_latencies: Box<[(String, OnceLock<Histogram>)]>,
}

struct RouteSeries {
    route: String,
    pool: String,
    /// The pool's backend ids; index `len()` stands for "no backend" (`-`).
    backends: Box<[String]>,
    /// `(backend, class)` at `backend * CLASSES + class`.
    counters: Box<[OnceLock<IntCounter>]>,
    duration: OnceLock<Histogram>,
}

impl RequestSeries {
    pub fn new(metrics: &Metrics, snapshot: &Snapshot) -> Self {
        let routes = snapshot
            .routes
            .routes()
            .iter()
            .map(|route| {
                let pool = route.pool.map(|pool| snapshot.pool(pool));
                let backends: Vec<String> = pool
                    .map(|pool| pool.backends.iter().map(|b| b.id.0.clone()).collect())
                    .unwrap_or_default();
                RouteSeries {
                    route: route.name.clone(),
                    pool: pool.map_or_else(|| "-".to_string(), |pool| pool.name.clone()),
                    counters: (0..(backends.len() + 1) * CLASSES)
                        .map(|_| OnceLock::new())
                        .collect(),
                    backends: backends.into(),
                    duration: OnceLock::new(),
                }
            })
            .collect();
        Self {
            requests: metrics.requests.clone(),
            durations: metrics.request_duration.clone(),
            routes,
            rw_requests: metrics.rw_requests.clone(),
            backend_latencies: metrics.backend_latency.clone(),
            pools: snapshot
                .pools
                .iter()
                .map(|pool| PoolSeries {
                    name: pool.name.clone(),
                    rw_requests: Default::default(),
                    backend_latencies: pool
                        .backends
                        .iter()
                        .map(|b| (b.id.0.clone(), OnceLock::new()))
                        .collect(),
                })
                .collect(),
        }
    }

    /// The latency histogram of `pool`'s backend at index `backend` (time
    /// to its response headers, per attempt).
    pub fn backend_latency(&self, pool: PoolId, backend: usize) -> &Histogram {
        let series = &self.pools[pool.0];
        let (id, histogram) = &series.backend_latencies[backend];
        histogram.get_or_init(|| {
            self.backend_latencies
                .with_label_values(&[series.name.as_str(), id.as_str()])
        })
    }

    /// Count one request to `pool` (a pool with a read/write split) of the
    /// kind at `kind_index` (below [`RW_KINDS`]), labelled `kind_label`.
    pub fn count_rw(&self, pool: PoolId, kind_index: usize, kind_label: &str) {
        let series = &self.pools[pool.0];
        series.rw_requests[kind_index]
            .get_or_init(|| {
                self.rw_requests
                    .with_label_values(&[series.name.as_str(), kind_label])
            })
            .inc();
    }

    /// Count one request of `route` answered by `backend` (its index in the
    /// route's pool, `None` if no backend was tried) with `status`, and
    /// observe its duration.
    pub fn observe(&self, route: usize, backend: Option<usize>, status: u16, seconds: f64) {
        let series = &self.routes[route];
        let backend = backend.unwrap_or(series.backends.len());
        let class = class_index(status);
        series.counters[backend * CLASSES + class]
            .get_or_init(|| {
                let id = series.backends.get(backend).map_or("-", String::as_str);
                self.requests.with_label_values(&[
                    series.route.as_str(),
                    series.pool.as_str(),
                    id,
                    status_class(status),
                ])
            })
            .inc();
        series
            .duration
            .get_or_init(|| self.durations.with_label_values(&[series.route.as_str()]))
            .observe(seconds);
    }
}

/// The position of `status_class(status)` among the `CLASSES`.
fn class_index(status: u16) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use std::path::Path;

    #[test]
    fn each_series_counts_under_its_own_labels() {
        let yaml = "listeners: [{address: \"127.0.0.1:1\"}]\npools: {p: {backends: [{addr: \"127.0.0.1:2\"}, {addr: \"127.0.0.1:3\"}]}}\nroutes: [{name: r, pool: p}]\n";
        let snapshot = load_str(yaml, Path::new(".")).unwrap();
        let metrics = Metrics::new();
        let series = RequestSeries::new(&metrics, &snapshot);
        series.observe(0, Some(1), 200, 0.01);
        series.observe(0, Some(1), 204, 0.01);
        series.observe(0, Some(0), 503, 0.02);
        series.observe(0, None, 502, 0.03);
        let count = |backend: &str, class: &str| {
            metrics
                .requests
                .with_label_values(&["r", "p", backend, class])
                .get()
        };
        assert_eq!(count("p/127.0.0.1:3", "2xx"), 2);
        assert_eq!(count("p/127.0.0.1:2", "5xx"), 1);
        assert_eq!(count("-", "5xx"), 1);
        assert_eq!(count("p/127.0.0.1:2", "2xx"), 0);
        let duration = metrics.request_duration.with_label_values(&["r"]);
        assert_eq!(duration.get_sample_count(), 4);
        series.count_rw(PoolId(0), 2, "pinned_read");
        series.count_rw(PoolId(0), 2, "pinned_read");
        series.count_rw(PoolId(0), 0, "write");
        let rw = |kind: &str| metrics.rw_requests.with_label_values(&["p", kind]).get();
        assert_eq!(rw("pinned_read"), 2);
        assert_eq!(rw("write"), 1);
        assert_eq!(rw("read"), 0);
        series.backend_latency(PoolId(0), 1).observe(0.004);
        series.backend_latency(PoolId(0), 1).observe(0.2);
        let latency = |backend: &str| metrics.backend_latency.with_label_values(&["p", backend]);
        assert_eq!(latency("p/127.0.0.1:3").get_sample_count(), 2);
        assert!((latency("p/127.0.0.1:3").get_sample_sum() - 0.204).abs() < 1e-9);
        assert_eq!(latency("p/127.0.0.1:2").get_sample_count(), 0);
    }

    #[test]
    fn every_status_maps_to_the_class_of_its_label() {
        let labels = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];
        for status in [0, 100, 199, 200, 302, 404, 499, 500, 599, 600, 999] {
            assert_eq!(
                labels[class_index(status)],
                status_class(status),
                "{status}"
            );
        }
    }
}

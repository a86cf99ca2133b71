//! One backend's live statistics. Written on the hot path with atomics only
//! (no locks, no allocation); read by the weight engine off the hot path.
//!
//! - in-flight requests (a guard decrements on drop, whatever happens);
//! - latency: a 10 s sliding window (p50/p99/mean) and EWMA / peak EWMA;
//! - outcomes: a 10 s sliding window of successes and failures (5xx,
//!   connect failures, timeouts, resets), giving error rate and requests/s,
//!   and a 2 s one that canary breakers watch;
//! - consecutive failures, for outlier ejection;
//! - the last `Server-Load` / ORCA report or load poll and when it arrived
//!   (the newest wins, whichever way it came), and the last poll's outcome
//!   for the admin API;
//! - the verdict of active health checks (healthy until proven otherwise).

use super::clock;
use super::load_latency::LoadLatency;
use super::peak_ewma::PeakEwmaEstimate;
use super::server_load::LoadReport;
use super::window::{LatencyEwma, LatencySummary, LatencyWindow, OutcomeSummary, OutcomeWindow};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

const WINDOW_SLOTS: usize = 10;
const WINDOW_SLOT_MS: u64 = 1_000;
/// The span of the latency and outcome windows.
pub const WINDOW_MS: u64 = WINDOW_SLOTS as u64 * WINDOW_SLOT_MS;
/// The short outcome window canary breakers watch: 4 × 500 ms.
const RECENT_SLOTS: usize = 4;
const RECENT_SLOT_MS: u64 = 500;
/// Time constant of the latency EWMAs.
const EWMA_TAU_MS: u64 = 2_000;
/// Stored in an f64 slot to mean "not reported".
const ABSENT: u64 = u64::MAX;

/// The last self-report of a backend. Fields are independent atomics, so a
/// reader may see fields of two consecutive reports; each is still valid.
#[derive(Default)]
struct ReportCell {
    utilization: AtomicU64,
    capacity: AtomicU64,
    in_flight: AtomicU64,
    latency_ms: AtomicU64,
    error_rate: AtomicU64,
    /// The last report came from a load poll, not a response header.
    polled: AtomicBool,
    /// `clock::now_ms()` of the last report; 0 = never reported.
    received_at_ms: AtomicU64,
}

fn store_f64(cell: &AtomicU64, value: Option<f64>) {
    cell.store(value.map_or(ABSENT, f64::to_bits), Ordering::Relaxed);
}

fn load_f64(cell: &AtomicU64) -> Option<f64> {
    match cell.load(Ordering::Relaxed) {
        ABSENT => None,
        bits => Some(f64::from_bits(bits)),
    }
}

fn store_u64(cell: &AtomicU64, value: Option<u64>) {
    cell.store(value.unwrap_or(ABSENT), Ordering::Relaxed);
}

fn load_u64(cell: &AtomicU64) -> Option<u64> {
    match cell.load(Ordering::Relaxed) {
        ABSENT => None,
        v => Some(v),
    }
}

/// What a backend last said about itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastReport {
    pub utilization: Option<f64>,
    pub capacity: Option<u64>,
    pub in_flight: Option<u64>,
    pub latency_ms: Option<f64>,
    pub error_rate: Option<f64>,
    /// Polled from the backend's load endpoint rather than read from a response.
    pub polled: bool,
    pub received_at_ms: u64,
}

/// The outcome of the last load poll of a backend, for the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct PollRecord {
    pub at: SystemTime,
    pub at_ms: u64,
    /// `ok`, or why the poll was not used (`timeout`, `invalid`, ...).
    pub result: &'static str,
    /// What the backend said, when the poll succeeded.
    pub report: Option<LoadReport>,
}

/// What a request sent to a backend now should expect.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyOutlook {
    /// At the backend's current load plus this request, in µs.
    pub now_us: f64,
    /// With no other request in flight, in µs (remembered for a while when
    /// the backend stays busy, see [`super::load_latency::LoadLatency::alone`]).
    pub alone_us: f64,
}

impl LatencyOutlook {
    /// How much the backend's current load stretches its latency: `now /
    /// alone`, at least 1.
    pub fn stretch(&self) -> f64 {
        (self.now_us / self.alone_us.max(1.0)).max(1.0)
    }
}

/// A point-in-time reading of everything measured about one backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub in_flight: i64,
    pub latency: LatencySummary,
    pub ewma_us: Option<f64>,
    pub peak_ewma_us: Option<f64>,
    pub outcomes: OutcomeSummary,
    /// Outcomes of the last 2 s only, to react to bursts.
    pub recent_outcomes: OutcomeSummary,
    pub consecutive_failures: u32,
    pub report: Option<LastReport>,
}

pub struct BackendStats {
    in_flight: AtomicI64,
    latency: LatencyWindow,
    ewma: LatencyEwma,
    /// Linkerd's round-trip estimate, for the `peak_ewma` mode's choice.
    peak_ewma: PeakEwmaEstimate,
    /// Latency by the in-flight count a request joined, for the latency
    /// mode's choice.
    load_latency: LoadLatency,
    outcomes: OutcomeWindow,
    recent_outcomes: OutcomeWindow,
    consecutive_failures: AtomicU32,
    report: ReportCell,
    health: HealthCell,
    /// Written by the load poller only; read by the admin API.
    last_poll: Mutex<Option<PollRecord>>,
}

/// Active health-check state. Only the health checker writes it.
struct HealthCell {
    healthy: AtomicBool,
    passes_in_a_row: AtomicU32,
    failures_in_a_row: AtomicU32,
}

impl Default for BackendStats {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts one request as in flight on a backend until dropped.
pub struct InFlight {
    stats: Arc<BackendStats>,
    /// The in-flight count the request joined, itself included.
    joined: u64,
}

impl InFlight {
    /// The in-flight count the request joined, itself included.
    pub fn joined(&self) -> u64 {
        self.joined
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl BackendStats {
    pub fn new() -> Self {
        let report = ReportCell::default();
        for cell in [
            &report.utilization,
            &report.capacity,
            &report.in_flight,
            &report.latency_ms,
            &report.error_rate,
        ] {
            cell.store(ABSENT, Ordering::Relaxed);
        }
        Self {
            in_flight: AtomicI64::new(0),
            latency: LatencyWindow::new(WINDOW_SLOTS, WINDOW_SLOT_MS),
            ewma: LatencyEwma::new(EWMA_TAU_MS),
            peak_ewma: PeakEwmaEstimate::new(clock::now_ms()),
            load_latency: LoadLatency::default(),
            outcomes: OutcomeWindow::new(WINDOW_SLOTS, WINDOW_SLOT_MS),
            recent_outcomes: OutcomeWindow::new(RECENT_SLOTS, RECENT_SLOT_MS),
            consecutive_failures: AtomicU32::new(0),
            report,
            health: HealthCell {
                healthy: AtomicBool::new(true),
                passes_in_a_row: AtomicU32::new(0),
                failures_in_a_row: AtomicU32::new(0),
            },
            last_poll: Mutex::new(None),
        }
    }

    /// The active health verdict (true when no check is configured).
    pub fn is_healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Relaxed)
    }

    /// Count one health-check result; the verdict flips after `healthy_after`
    /// passes or `unhealthy_after` failures in a row. Returns the new verdict
    /// when it flipped.
    pub fn record_health_check(
        &self,
        passed: bool,
        healthy_after: u32,
        unhealthy_after: u32,
    ) -> Option<bool> {
        let h = &self.health;
        let (streak, other, needed) = if passed {
            (&h.passes_in_a_row, &h.failures_in_a_row, healthy_after)
        } else {
            (&h.failures_in_a_row, &h.passes_in_a_row, unhealthy_after)
        };
        other.store(0, Ordering::Relaxed);
        let in_a_row = streak.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let flips = passed != self.is_healthy() && in_a_row >= needed;
        if flips {
            h.healthy.store(passed, Ordering::Relaxed);
        }
        flips.then_some(passed)
    }

    /// Mark a request as sent to this backend; in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            stats: self.clone(),
            joined: before.max(0) as u64 + 1,
        }
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A request that joined `joined` in flight (itself included) was
    /// answered in `latency_us`: file it for [`Self::predicted_latency_us`].
    pub fn record_load_latency(&self, now_ms: u64, joined: u64, latency_us: u64) {
        self.load_latency.record(now_ms, joined, latency_us);
    }

    /// The latency one more request sent now should expect, and the one a
    /// request alone would, in µs, from what requests at each load saw (see
    /// [`super::load_latency`]); `None` until measured.
    pub fn latency_outlook(&self, now_ms: u64) -> Option<LatencyOutlook> {
        let joining = self.in_flight().max(0) as u64 + 1;
        Some(LatencyOutlook {
            now_us: self.load_latency.predict(now_ms, joining)?,
            alone_us: self.load_latency.alone(now_ms)?,
        })
    }

    /// The `peak_ewma` cost of sending this backend one more request now:
    /// Linkerd's round-trip estimate times (in flight + 1).
    pub fn peak_ewma_cost(&self, now_ms: u64) -> f64 {
        self.peak_ewma.cost(now_ms, self.in_flight())
    }

    /// The backend answered (status below 500): count a success and its latency.
    pub fn record_success(&self, now_ms: u64, latency_us: u64) {
        self.latency.record(now_ms, latency_us);
        self.ewma.record(now_ms, latency_us);
        self.peak_ewma.observe(now_ms, latency_us);
        self.outcomes.record(now_ms, true);
        self.recent_outcomes.record(now_ms, true);
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// The backend failed (5xx, connect failure, timeout, reset). A response,
    /// even a 5xx, still tells how long the backend took: pass its latency.
    pub fn record_failure(&self, now_ms: u64, latency_us: Option<u64>) {
        if let Some(latency_us) = latency_us {
            self.latency.record(now_ms, latency_us);
            self.ewma.record(now_ms, latency_us);
            self.peak_ewma.observe(now_ms, latency_us);
        }
        self.outcomes.record(now_ms, false);
        self.recent_outcomes.record(now_ms, false);
        self.consecutive_failures.fetch_add(1, Ordering::Relaxed);
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Ordering::Relaxed)
    }

    /// Start counting consecutive failures afresh (on re-admission).
    pub fn reset_consecutive_failures(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// Store a backend's self-report from a response header.
    pub fn record_report(&self, now_ms: u64, report: &LoadReport) {
        self.store_report(now_ms, report, false);
    }

    /// Store the outcome of a load poll: a report, when it succeeded, is used
    /// like a `Server-Load` one. It is not traffic: no request is counted.
    pub fn record_poll(&self, now_ms: u64, result: &'static str, report: Option<LoadReport>) {
        if let Some(report) = &report {
            self.store_report(now_ms, report, true);
        }
        let record = PollRecord {
            at: SystemTime::now(),
            at_ms: now_ms,
            result,
            report,
        };
        *self.last_poll.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
    }

    /// Forget a polled report once the backend is busy enough not to be
    /// polled (its own traffic measures it), so the silence is not read as a
    /// stale reporter. A report that came with a response stays.
    pub fn forget_polled_report(&self) {
        let cell = &self.report;
        if cell.polled.load(Ordering::Relaxed) {
            cell.received_at_ms.store(0, Ordering::Release);
            cell.polled.store(false, Ordering::Relaxed);
        }
    }

    pub fn last_poll(&self) -> Option<PollRecord> {
        self.last_poll
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn store_report(&self, now_ms: u64, report: &LoadReport, polled: bool) {
        let cell = &self.report;
        store_f64(&cell.utilization, report.utilization);
        store_u64(&cell.capacity, report.capacity);
        store_u64(&cell.in_flight, report.in_flight);
        store_f64(&cell.latency_ms, report.latency_ms);
        store_f64(&cell.error_rate, report.error_rate);
        cell.polled.store(polled, Ordering::Relaxed);
        cell.received_at_ms.store(now_ms.max(1), Ordering::Release);
    }

    pub fn last_report(&self) -> Option<LastReport> {
        let cell = &self.report;
        match cell.received_at_ms.load(Ordering::Acquire) {
            0 => None,
            received_at_ms => Some(LastReport {
                utilization: load_f64(&cell.utilization),
                capacity: load_u64(&cell.capacity),
                in_flight: load_u64(&cell.in_flight),
                latency_ms: load_f64(&cell.latency_ms),
                error_rate: load_f64(&cell.error_rate),
                polled: cell.polled.load(Ordering::Relaxed),
                received_at_ms,
            }),
        }
    }

    pub fn observe(&self, now_ms: u64) -> Observation {
        Observation {
            in_flight: self.in_flight(),
            latency: self.latency.summary(now_ms),
            ewma_us: self.ewma.ewma_us(),
            peak_ewma_us: self.ewma.peak_us(now_ms),
            outcomes: self.outcomes.summary(now_ms),
            recent_outcomes: self.recent_outcomes.summary(now_ms),
            consecutive_failures: self.consecutive_failures.load(Ordering::Relaxed),
            report: self.last_report(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_guard_and_outcomes() {
        let stats = Arc::new(BackendStats::new());
        let a = stats.start();
        let b = stats.start();
        assert_eq!(stats.in_flight(), 2);
        drop(a);
        assert_eq!(stats.in_flight(), 1);
        stats.record_success(1_000, 5_000);
        stats.record_failure(1_100, None);
        stats.record_failure(1_200, Some(9_000));
        let obs = stats.observe(1_500);
        assert_eq!(obs.outcomes.total, 3);
        assert_eq!(obs.outcomes.errors, 2);
        assert_eq!(obs.consecutive_failures, 2);
        assert_eq!(obs.latency.count, 2);
        stats.record_success(1_300, 5_000);
        assert_eq!(stats.observe(1_500).consecutive_failures, 0);
        drop(b);
        assert_eq!(stats.in_flight(), 0);
    }

    #[test]
    fn health_flips_only_after_enough_results_in_a_row() {
        let stats = BackendStats::new();
        assert!(stats.is_healthy());
        assert_eq!(stats.record_health_check(false, 2, 3), None);
        assert_eq!(stats.record_health_check(false, 2, 3), None);
        assert_eq!(
            stats.record_health_check(true, 2, 3),
            None,
            "a pass breaks the streak"
        );
        for _ in 0..2 {
            assert_eq!(stats.record_health_check(false, 2, 3), None);
        }
        assert_eq!(stats.record_health_check(false, 2, 3), Some(false));
        assert!(!stats.is_healthy());
        assert_eq!(stats.record_health_check(false, 2, 3), None);
        assert_eq!(stats.record_health_check(true, 2, 3), None);
        assert_eq!(stats.record_health_check(true, 2, 3), Some(true));
        assert!(stats.is_healthy());
    }

    #[test]
    fn reports_are_stored_and_absent_fields_stay_absent() {
        let stats = BackendStats::new();
        assert_eq!(stats.last_report(), None);
        stats.record_report(
            42,
            &LoadReport {
                utilization: Some(0.5),
                capacity: Some(400),
                ..LoadReport::default()
            },
        );
        let report = stats.last_report().unwrap();
        assert_eq!(report.utilization, Some(0.5));
        assert_eq!(report.capacity, Some(400));
        assert_eq!(report.in_flight, None);
        assert_eq!(report.latency_ms, None);
        assert_eq!(report.received_at_ms, 42);
        assert!(!report.polled);
    }

    #[test]
    fn a_poll_is_a_report_but_not_traffic() {
        let stats = BackendStats::new();
        stats.record_poll(5, "timeout", None);
        assert_eq!(stats.last_report(), None, "a failed poll reports nothing");
        assert_eq!(stats.last_poll().unwrap().result, "timeout");
        let polled = LoadReport {
            latency_ms: Some(80.0),
            error_rate: Some(0.02),
            ..LoadReport::default()
        };
        stats.record_poll(10, "ok", Some(polled));
        let report = stats.last_report().unwrap();
        assert!(report.polled);
        assert_eq!(report.latency_ms, Some(80.0));
        assert_eq!(report.error_rate, Some(0.02));
        let obs = stats.observe(20);
        assert_eq!(obs.outcomes.total, 0, "no request was counted");
        assert_eq!(obs.latency.count, 0, "no latency sample was recorded");
        assert_eq!(stats.last_poll().unwrap().report, Some(polled));

        stats.forget_polled_report();
        assert_eq!(stats.last_report(), None);
        // A report from a response is not forgotten.
        stats.record_report(30, &polled);
        stats.forget_polled_report();
        assert!(stats.last_report().is_some());
    }
}

//! The load an origin measures on itself and reports on its responses, in
//! the modes of [`ServerLoadMode`].
//!
//! [`LoadGauges`] tracks the requests in flight (from arrival until the
//! response head is handed to hyper) and the rate of requests and of errors
//! (5xx answers and resets). A rate is estimated over a sliding one-second
//! window: the count of the current window plus the previous window's count
//! weighted by the part of it still inside the last second, which smooths
//! the estimate without remembering every request.
//!
//! An origin serves `slots` requests at once. Utilizations are
//! `in_flight / slots`, capped at
//! [`MAX_REPORTED_UTILIZATION`] (the most a load-report parser is expected
//! to accept), with three decimals; the capacity it reports is in requests
//! per second, `slots / mean latency`, the unit Ballast reads.

use crate::behaviour::ServerLoadMode;
use http::header::{HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The highest utilization reported, however overloaded the origin is.
pub const MAX_REPORTED_UTILIZATION: f64 = 10.0;

const SERVER_LOAD: HeaderName = HeaderName::from_static("server-load");
const ENDPOINT_LOAD_METRICS: HeaderName = HeaderName::from_static("endpoint-load-metrics");
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// What an origin knows about its own load.
#[derive(Debug, Default)]
pub(crate) struct LoadGauges {
    in_flight: AtomicU64,
    pub(crate) requests: RateMeter,
    pub(crate) errors: RateMeter,
}

/// Counts a request as in flight until dropped.
pub(crate) struct InFlightGuard<'a>(&'a AtomicU64);

impl Drop for InFlightGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LoadGauges {
    /// Marks one request in flight for the life of the guard.
    pub(crate) fn enter(&self) -> InFlightGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(&self.in_flight)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The load header `mode` asks for, if any. A fixed value that is not a
    /// valid header value is not sent.
    /// `mean_latency` is the origin's mean delay per request.
    pub(crate) fn report(
        &self,
        mode: &ServerLoadMode,
        mean_latency: Duration,
    ) -> Option<(HeaderName, HeaderValue)> {
        let (name, text) = match mode {
            ServerLoadMode::Off => return None,
            ServerLoadMode::Fixed { value } => (SERVER_LOAD, value.clone()),
            ServerLoadMode::Honest { slots } => {
                let in_flight = self.in_flight();
                let text = format!(
                    "util={:.3}, inflight={in_flight}, capacity={}",
                    utilization(in_flight, *slots),
                    requests_per_second(*slots, mean_latency)
                );
                (SERVER_LOAD, text)
            }
            ServerLoadMode::Orca { slots } => {
                let now = Instant::now();
                let text = format!(
                    "TEXT cpu_utilization={:.3}, rps_fractional={:.3}, eps={:.3}",
                    utilization(self.in_flight(), *slots),
                    self.requests.per_second(now),
                    self.errors.per_second(now)
                );
                (ENDPOINT_LOAD_METRICS, text)
            }
        };
        HeaderValue::try_from(text).ok().map(|value| (name, value))
    }
}

fn utilization(in_flight: u64, slots: u64) -> f64 {
    (in_flight as f64 / slots.max(1) as f64).min(MAX_REPORTED_UTILIZATION)
}

/// Requests per second `slots` sustain at `mean_latency` each (at least 1;
/// an origin that answers at once is counted at 1 ms a request).
fn requests_per_second(slots: u64, mean_latency: Duration) -> u64 {
    let seconds = mean_latency.as_secs_f64().max(0.001);
    ((slots as f64 / seconds).round() as u64).max(1)
}

/// Events per second over a sliding one-second window.
#[derive(Debug)]
pub(crate) struct RateMeter {
    window: Mutex<RateWindow>,
}

#[derive(Debug)]
struct RateWindow {
    started: Instant,
    current: u64,
    previous: u64,
}

impl Default for RateMeter {
    fn default() -> Self {
        Self {
            window: Mutex::new(RateWindow {
                started: Instant::now(),
                current: 0,
                previous: 0,
            }),
        }
    }
}

impl RateMeter {
    pub(crate) fn record(&self) {
        self.record_at(Instant::now());
    }

    fn record_at(&self, now: Instant) {
        let mut window = self.lock();
        window.advance(now);
        window.current += 1;
    }

    pub(crate) fn per_second(&self, now: Instant) -> f64 {
        let mut window = self.lock();
        window.advance(now);
        let elapsed = now.saturating_duration_since(window.started);
        let previous_weight = 1.0 - elapsed.as_secs_f64() / RATE_WINDOW.as_secs_f64();
        (window.previous as f64 * previous_weight + window.current as f64)
            / RATE_WINDOW.as_secs_f64()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateWindow> {
        self.window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl RateWindow {
    /// Moves the window forward so that `now` falls inside it.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed < RATE_WINDOW {
            return;
        }
        // Only the window just before the current one still counts.
        self.previous = match elapsed < 2 * RATE_WINDOW {
            true => self.current,
            false => 0,
        };
        self.current = 0;
        // The remainder is below one window, so it fits in u64 nanoseconds.
        let into_window = (elapsed.as_nanos() % RATE_WINDOW.as_nanos()) as u64;
        self.started = now - Duration::from_nanos(into_window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honest_report_counts_requests_in_flight() {
        let gauges = LoadGauges::default();
        let mode = ServerLoadMode::Honest { slots: 4 };
        let _first = gauges.enter();
        let (name, value) = {
            let _second = gauges.enter();
            gauges.report(&mode, Duration::from_millis(20)).unwrap()
        };
        assert_eq!(name, "server-load");
        assert_eq!(value, "util=0.500, inflight=2, capacity=200");
        assert_eq!(gauges.in_flight(), 1, "the guard left when dropped");
    }

    #[test]
    fn utilization_is_capped() {
        let gauges = LoadGauges::default();
        let _guards: Vec<_> = (0..30).map(|_| gauges.enter()).collect();
        let (_, value) = gauges
            .report(&ServerLoadMode::Honest { slots: 2 }, Duration::ZERO)
            .unwrap();
        assert_eq!(value, "util=10.000, inflight=30, capacity=2000");
    }

    #[test]
    fn fixed_and_off_reports() {
        let gauges = LoadGauges::default();
        let mean = Duration::from_millis(10);
        assert_eq!(gauges.report(&ServerLoadMode::Off, mean), None);
        let fixed = ServerLoadMode::Fixed {
            value: "0.95".into(),
        };
        assert_eq!(
            gauges.report(&fixed, mean),
            Some((SERVER_LOAD, HeaderValue::from_static("0.95")))
        );
        let invalid = ServerLoadMode::Fixed {
            value: "a\nb".into(),
        };
        assert_eq!(gauges.report(&invalid, mean), None);
    }

    #[test]
    fn orca_report_has_utilization_and_rates() {
        let gauges = LoadGauges::default();
        let _request = gauges.enter();
        gauges.requests.record();
        let (name, value) = gauges
            .report(&ServerLoadMode::Orca { slots: 4 }, Duration::from_millis(5))
            .unwrap();
        assert_eq!(name, "endpoint-load-metrics");
        let text = value.to_str().unwrap();
        assert!(
            text.starts_with("TEXT cpu_utilization=0.250, rps_fractional="),
            "{text}"
        );
        assert!(text.ends_with(", eps=0.000"), "{text}");
    }

    #[test]
    fn rate_meter_slides_over_one_second() {
        let meter = RateMeter::default();
        let start = meter.lock().started;
        for _ in 0..10 {
            meter.record_at(start);
        }
        assert_eq!(meter.per_second(start), 10.0);
        let next_window = start + Duration::from_millis(1250);
        meter.record_at(next_window);
        // A quarter into the next window: 75% of the previous 10, plus 1.
        assert!((meter.per_second(next_window) - 8.5).abs() < 1e-9);
        assert_eq!(meter.per_second(start + Duration::from_secs(5)), 0.0);
    }
}

//! Linkerd's (tower's) peak-EWMA round-trip estimate of one backend, kept
//! exactly as tower's `PeakEwma` keeps it, for the `peak_ewma` balance mode.
//!
//! - A new backend starts at [`DEFAULT_RTT_US`] (Linkerd's 30 ms).
//! - An observed latency above the estimate replaces it at once (the peak).
//! - One at or below it is blended in: `e ← e·d + rtt·(1 − d)`, with
//!   `d = exp(−elapsed / decay)` and `elapsed` the time since the estimate
//!   was last touched.
//! - Reading the cost first decays the estimate toward zero over the time
//!   since it was last touched (`e ← e·d`) and marks it touched, so an idle
//!   backend's estimate falls and it gets tried again.
//! - The cost of sending one more request is `e × (in_flight + 1)`.
//!
//! Both reads and observations change the estimate, as in tower, so it sits
//! behind a small mutex: two per pick, one per finished request.

use std::sync::Mutex;

/// Linkerd's default round-trip estimate for a backend not yet measured.
pub const DEFAULT_RTT_US: f64 = 30_000.0;
/// Linkerd's decay period of the estimate.
pub const DECAY_MS: f64 = 10_000.0;

/// A backend's round-trip estimate and when it last changed.
#[derive(Debug)]
pub struct PeakEwmaEstimate {
    state: Mutex<Estimate>,
}

#[derive(Debug, Clone, Copy)]
struct Estimate {
    rtt_us: f64,
    touched_ms: u64,
}

impl Estimate {
    /// The weight the old estimate keeps after the time since it was touched.
    fn decay_to(&mut self, now_ms: u64) -> f64 {
        let elapsed = now_ms.saturating_sub(self.touched_ms) as f64;
        self.touched_ms = self.touched_ms.max(now_ms);
        (-elapsed / DECAY_MS).exp()
    }
}

impl PeakEwmaEstimate {
    /// A fresh estimate at the default round trip, as of `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            state: Mutex::new(Estimate {
                rtt_us: DEFAULT_RTT_US,
                touched_ms: now_ms,
            }),
        }
    }

    /// A request to this backend took `rtt_us`, finishing at `now_ms`.
    pub fn observe(&self, now_ms: u64, rtt_us: u64) {
        let rtt_us = rtt_us as f64;
        let mut estimate = self.lock();
        let decay = estimate.decay_to(now_ms);
        estimate.rtt_us = if estimate.rtt_us < rtt_us {
            rtt_us
        } else {
            estimate.rtt_us * decay + rtt_us * (1.0 - decay)
        };
    }

    /// The cost of one more request with `in_flight` already outstanding:
    /// the estimate, decayed to `now_ms`, times `in_flight + 1`.
    pub fn cost(&self, now_ms: u64, in_flight: i64) -> f64 {
        let mut estimate = self.lock();
        let decay = estimate.decay_to(now_ms);
        estimate.rtt_us *= decay;
        estimate.rtt_us * (in_flight.max(0) as f64 + 1.0)
    }

    /// The estimate as of its last change.
    #[cfg(test)]
    fn rtt_us(&self) -> f64 {
        self.lock().rtt_us
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Estimate> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn an_unmeasured_backend_costs_the_default_round_trip() {
        let e = PeakEwmaEstimate::new(1_000);
        assert!(close(e.cost(1_000, 0), DEFAULT_RTT_US));
        assert!(close(e.cost(1_000, 3), 4.0 * DEFAULT_RTT_US));
    }

    #[test]
    fn a_slower_round_trip_becomes_the_estimate_at_once() {
        let e = PeakEwmaEstimate::new(0);
        e.observe(0, 80_000);
        assert!(close(e.rtt_us(), 80_000.0));
    }

    #[test]
    fn a_faster_round_trip_is_blended_in_by_the_time_since_the_last_change() {
        let e = PeakEwmaEstimate::new(0);
        e.observe(0, 100_000);
        // Immediately after: the old estimate keeps all its weight.
        e.observe(0, 1_000);
        assert!(close(e.rtt_us(), 100_000.0));
        // One decay period later: weight e^-1 on the old estimate.
        e.observe(10_000, 1_000);
        let d = (-1.0f64).exp();
        assert!(close(e.rtt_us(), 100_000.0 * d + 1_000.0 * (1.0 - d)));
    }

    #[test]
    fn reading_the_cost_decays_the_estimate_toward_zero() {
        let e = PeakEwmaEstimate::new(0);
        e.observe(0, 50_000);
        let d = (-0.5f64).exp();
        assert!(close(e.cost(5_000, 0), 50_000.0 * d));
        // The decay is applied once: reading again at the same moment costs the same.
        assert!(close(e.cost(5_000, 1), 2.0 * 50_000.0 * d));
        // And it compounds, like tower's: two half periods make one period.
        assert!(close(e.cost(10_000, 0), 50_000.0 * d * d));
    }

    #[test]
    fn a_late_observation_does_not_move_time_backwards() {
        let e = PeakEwmaEstimate::new(0);
        e.cost(10_000, 0);
        e.observe(5_000, 1_000);
        assert!(close(e.cost(10_000, 0), e.rtt_us()));
    }
}

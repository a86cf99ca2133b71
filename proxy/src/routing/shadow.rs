//! Policy shadow mode: a candidate weight policy (`pools.X.shadow`) runs
//! beside the live one without routing anything, so an operator can see
//! what a policy change would do before making it.
//!
//! - The engine computes the candidate's shares every recompute from the same
//!   inputs as the live shares (measurements, eligibility, slow start,
//!   canary bounds, pins), with the candidate's parameters and its own
//!   smoothing memory, and publishes them beside the live weights.
//! - Per request, after the live pick, a sampled request is placed on the
//!   candidate's shares by the same uniform draw: the draw that lands on the
//!   chosen backend's interval of the live cumulative shares (a point drawn
//!   uniformly within that interval, which is exactly how a weighted draw
//!   reaches it) is read as the same fraction of the candidate's cumulative
//!   shares. Identical shares therefore always agree, and the disagreement
//!   rate measures the policies' difference rather than noise. The group
//!   the request was chosen in (the pool, or its region and tier with a
//!   regional plan) is kept.
//! - The predicted effect: the mean latency and error rate a policy's shares
//!   would give, `Σ share_i × measured_i` over the backends with
//!   measurements, and the requests per second that would move to other
//!   backends, `pool rate × ½ Σ |candidate_i − live_i|`.

use super::picker::PoolWeights;
use crate::stats::backend::Observation;
use prometheus::IntCounter;
use rand::Rng;

/// A pool's published candidate, read per request.
pub struct ShadowWeights {
    pub candidate: PoolWeights,
    /// Fraction of requests compared.
    sample: f64,
    counters: ShadowCounters,
}

/// The pool's `ballast_shadow_decisions_total` series, resolved once.
#[derive(Clone)]
pub struct ShadowCounters {
    pub same: IntCounter,
    pub different: IntCounter,
}

impl ShadowWeights {
    pub fn new(candidate: PoolWeights, sample: f64, counters: ShadowCounters) -> Self {
        Self {
            candidate,
            sample,
            counters,
        }
    }

    /// After the live policy chose `chosen` (weights `live`; `regional`: the
    /// request had a regional plan), count whether the candidate would have
    /// chosen the same backend. `None` when the request is not sampled.
    pub fn compare<R: Rng + ?Sized>(
        &self,
        live: &PoolWeights,
        chosen: usize,
        regional: bool,
        rng: &mut R,
    ) -> Option<bool> {
        if self.sample < 1.0 && rng.random::<f64>() >= self.sample {
            return None;
        }
        let same =
            live.shadow_choice(&self.candidate, chosen, regional, rng.random()) == Some(chosen);
        if same {
            self.counters.same.inc();
        } else {
            self.counters.different.inc();
        }
        Some(same)
    }
}

/// What one policy's shares predict for the pool.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolicyOutcome {
    /// Mean latency in seconds (`None` without any latency measured).
    pub latency_s: Option<f64>,
    /// Error rate 0..1 (`None` without any outcome measured).
    pub error_rate: Option<f64>,
}

/// The predicted effect of switching from the live policy to the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Prediction {
    pub live: PolicyOutcome,
    pub candidate: PolicyOutcome,
    /// Least fraction of requests that would go to another backend.
    pub moved_fraction: f64,
    /// The same, in requests per second at the pool's current rate.
    pub moved_rps: f64,
}

/// A backend's measured mean latency in seconds: over the last 10 s, else
/// its EWMA.
fn measured_latency_s(observation: &Observation) -> Option<f64> {
    let us = if observation.latency.count > 0 {
        Some(observation.latency.mean_us)
    } else {
        observation.ewma_us
    };
    us.map(|us| us / 1e6)
}

/// `Σ share × value` over the backends that have a value, renormalized over
/// their shares; `None` when none with a share has one.
fn expected(shares: &[f64], values: &[Option<f64>]) -> Option<f64> {
    let (mut weighted, mut covered) = (0.0, 0.0);
    for (share, value) in shares.iter().zip(values) {
        if let (Some(value), true) = (value, *share > 0.0) {
            weighted += share * value;
            covered += share;
        }
    }
    (covered > 0.0).then(|| weighted / covered)
}

/// Predict both policies' outcomes from the backends' measurements
/// (`live`, `candidate` and `observations` in the pool's backend order).
pub fn predict(live: &[f64], candidate: &[f64], observations: &[Observation]) -> Prediction {
    let latency: Vec<Option<f64>> = observations.iter().map(measured_latency_s).collect();
    let errors: Vec<Option<f64>> = observations
        .iter()
        .map(|o| (o.outcomes.total > 0).then(|| o.outcomes.error_rate()))
        .collect();
    let outcome = |shares: &[f64]| PolicyOutcome {
        latency_s: expected(shares, &latency),
        error_rate: expected(shares, &errors),
    };
    let moved_fraction = 0.5
        * live
            .iter()
            .zip(candidate)
            .map(|(l, c)| (l - c).abs())
            .sum::<f64>();
    let pool_rps: f64 = observations.iter().map(|o| o.outcomes.per_second()).sum();
    Prediction {
        live: outcome(live),
        candidate: outcome(candidate),
        moved_fraction,
        moved_rps: moved_fraction * pool_rps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::window::{LatencySummary, OutcomeSummary};

    fn observation(mean_ms: Option<f64>, total: u64, errors: u64) -> Observation {
        Observation {
            in_flight: 0,
            latency: LatencySummary {
                count: u64::from(mean_ms.is_some()) * total,
                mean_us: mean_ms.unwrap_or(0.0) * 1000.0,
                p50_us: 0.0,
                p99_us: 0.0,
                max_us: 0.0,
            },
            ewma_us: None,
            peak_ewma_us: None,
            outcomes: OutcomeSummary {
                total,
                errors,
                window_ms: 10_000,
            },
            recent_outcomes: OutcomeSummary::default(),
            consecutive_failures: 0,
            report: None,
        }
    }

    #[test]
    fn predicted_latency_and_errors_are_share_weighted_means() {
        // 10 ms with 0% errors, 40 ms with 10% errors; 1000 requests each over 10 s.
        let observations = [
            observation(Some(10.0), 1000, 0),
            observation(Some(40.0), 1000, 100),
        ];
        let p = predict(&[0.8, 0.2], &[0.5, 0.5], &observations);
        let live = p.live.latency_s.unwrap();
        let candidate = p.candidate.latency_s.unwrap();
        assert!((live - (0.8 * 0.010 + 0.2 * 0.040)).abs() < 1e-12, "{live}");
        assert!((candidate - 0.025).abs() < 1e-12, "{candidate}");
        assert!((p.live.error_rate.unwrap() - 0.02).abs() < 1e-12);
        assert!((p.candidate.error_rate.unwrap() - 0.05).abs() < 1e-12);
        assert!((p.moved_fraction - 0.3).abs() < 1e-12);
        // 200 requests/s in all: 30% of them would move.
        assert!((p.moved_rps - 60.0).abs() < 1e-9, "{}", p.moved_rps);
    }

    #[test]
    fn backends_without_measurements_are_left_out_of_the_mean() {
        let observations = [observation(Some(20.0), 100, 0), observation(None, 0, 0)];
        let p = predict(&[0.5, 0.5], &[0.0, 1.0], &observations);
        assert_eq!(p.live.latency_s, Some(0.020));
        assert_eq!(
            p.candidate.latency_s, None,
            "nothing measured where it goes"
        );
        assert_eq!(p.candidate.error_rate, None);
        assert!((p.moved_fraction - 0.5).abs() < 1e-12);
    }
}

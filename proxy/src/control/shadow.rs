//! Policy shadow mode, off the hot path: a pool's candidate policy
//! (`pools.X.shadow`) gets its shares computed every recompute right after
//! the live ones, from the same inputs (measurements, eligibility, slow
//! start, canary bounds, pins), with the candidate's parameters and its own
//! smoothing memory (forgotten, with its decision counts, when its weight
//! parameters change), and published beside the live weights with the
//! predicted effect of switching. The per-request comparison is
//! [`crate::routing::shadow`].
//!
//! The predicted effect: the mean latency and error rate a policy's shares
//! would give, `Σ share_i × measured_i` over the backends with
//! measurements, and the requests per second that would move to other
//! backends, `pool rate × ½ Σ |candidate_i − live_i|`.

use super::backends::BackendMemories;
use super::events::Event;
use super::shares::{expected_in_flight, policy_shares};
use super::weights::BackendInput;
use crate::config::{BackendId, Pool, PoolPolicy, ShadowPolicy, Snapshot};
use crate::routing::picker::PoolWeights;
use crate::routing::shadow::{ShadowCounters, ShadowWeights};
use crate::stats::backend::Observation;
use std::collections::{HashMap, HashSet};

/// The engine's memory of a pool's shadow candidate.
pub struct ShadowMemory {
    /// The candidate policy this memory was built under.
    pub policy: PoolPolicy,
    /// The candidate's last shares, for its smoothing.
    shares: HashMap<BackendId, f64>,
    pub counters: ShadowCounters,
    /// What was last computed: (candidate shares, live shares, prediction).
    pub last: Option<(Vec<f64>, Vec<f64>, Prediction)>,
}

/// Shadow candidates, by pool name.
pub type Shadows = HashMap<String, ShadowMemory>;

/// Keep the candidates `snapshot` still has with the same weight
/// parameters (forgetting backends no longer configured); returns the
/// pools whose candidate is gone or starts again.
pub fn retain(
    shadows: &mut Shadows,
    snapshot: &Snapshot,
    configured: &HashSet<&BackendId>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    shadows.retain(|pool, shadow| {
        let keep = snapshot
            .pool_by_name(pool)
            .and_then(|p| p.shadow.as_ref())
            .is_some_and(|s| s.policy.same_weight_parameters(&shadow.policy));
        if !keep {
            dropped.push(pool.clone());
        }
        shadow.shares.retain(|id, _| configured.contains(id));
        keep
    });
    dropped
}

/// The shadow candidate's shares from the live `inputs` with its own
/// parameters and smoothing memory, and the predicted effect against the
/// `live` shares, kept for the admin API. A candidate without memory, or
/// whose parameters changed, starts from scratch with the counters `start`
/// gives.
#[allow(clippy::too_many_arguments)]
pub fn recompute<'a>(
    pool: &'a Pool,
    shadow: &ShadowPolicy,
    inputs: &[BackendInput],
    live: &[f64],
    observations: &[Observation],
    with_geo: bool,
    shadows: &mut Shadows,
    backends: &BackendMemories,
    now_ms: u64,
    start: impl FnOnce() -> ShadowCounters,
    events: &mut Vec<Event<'a>>,
) -> ShadowWeights {
    let reset = shadows
        .get(&pool.name)
        .is_none_or(|m| !m.policy.same_weight_parameters(&shadow.policy));
    if reset {
        shadows.insert(
            pool.name.clone(),
            ShadowMemory {
                policy: shadow.policy.clone(),
                shares: HashMap::new(),
                counters: start(),
                last: None,
            },
        );
    }
    let mem = shadows.get_mut(&pool.name).expect("inserted above");
    let candidate_inputs: Vec<BackendInput> = inputs
        .iter()
        .zip(&pool.backends)
        .map(|(input, backend)| BackendInput {
            previous_share: mem.shares.get(&backend.id).copied(),
            ..*input
        })
        .collect();
    let (computed, _) = policy_shares(
        pool,
        &shadow.policy,
        &candidate_inputs,
        with_geo,
        backends,
        now_ms,
    );
    let candidate: Vec<f64> = computed.iter().map(|c| c.share).collect();
    let prediction = predict(live, &candidate, observations);
    for (backend, share) in pool.backends.iter().zip(&candidate) {
        mem.shares.insert(backend.id.clone(), *share);
        events.push(Event::ShadowShare {
            pool: &pool.name,
            backend: &backend.id,
            share: *share,
        });
    }
    events.push(Event::ShadowPrediction {
        pool: &pool.name,
        prediction,
    });
    mem.last = Some((candidate.clone(), live.to_vec(), prediction));
    let weights = PoolWeights::new(pool, candidate, expected_in_flight(&computed, observations));
    ShadowWeights::new(weights, shadow.sample, mem.counters.clone())
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

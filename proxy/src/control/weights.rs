//! The weight engine: turns what is measured and reported about each backend
//! into a traffic share, off the hot path (every `recompute_interval`).
//!
//! Per eligible backend *i* (healthy, not ejected), a base weight by mode:
//! - `latency`:  `b_i = 1 / lat_i`, with `lat_i` its p99 over the last 10 s
//!   (at least 10 samples), else its fresh self-reported latency (from a
//!   `Server-Load` header or a load poll: what a quiet backend, with too
//!   few requests in the window to measure, is judged by), else its
//!   latency EWMA; a backend with no latency data yet gets the mean base of the
//!   others (a fair share, so it gets measured).
//! - `capacity`: `cap_i` = fresh reported capacity, else configured capacity
//!   (a stale reporter: the smaller of its last report and the configured
//!   capacity, so going silent never makes a backend look bigger; all in
//!   requests/s, and scaled by `target/lat_i` when `lat_i > target`), else the estimate
//!   `max(rps_i · target / lat_i, 1)`; then `b_i = max(0.8·cap_i − rps_i, 0.05·cap_i)`:
//!   spare capacity, never planning past 80% of a backend's capacity.
//! - `round_robin` and `peak_ewma`: `b_i` = configured weight, and nothing
//!   below applies (a `peak_ewma` pool only uses its shares to know which
//!   backends are eligible).
//!
//! Then multiplicative factors: errors `exp(−10 · error_rate)` (with at least
//! 10 outcomes in the window, else a fresh polled error rate), reported utilization `clamp(1 − u, 0.05, 1)`,
//! a stale reporter (reported once, silent for `stale_after`) `× 0.1`,
//! slow start `0.1 + 0.9 · min(1, t / slow_start)` since (re)admission, and
//! the active schedule's multiplier of the backend's region.
//! Shares are the normalized products, smoothed `w = α·w_calc + (1−α)·w_old`,
//! then bounded to `[min_share, max_share]` by water-filling (the bounds
//! relax to `1/n` when `n` backends cannot satisfy them) and renormalized.
//! Ineligible backends get 0 at once: ejection is not smoothed.

use crate::config::{BalanceMode, PoolPolicy};
use crate::stats::backend::{LastReport, Observation};

pub const MIN_LATENCY_SAMPLES: u64 = 10;
pub const MIN_ERROR_SAMPLES: u64 = 10;
const ERROR_PENALTY: f64 = 10.0;
const STALE_FACTOR: f64 = 0.1;
const MIN_UTILIZATION_FACTOR: f64 = 0.05;
pub const SLOW_START_INITIAL: f64 = 0.1;
const CAPACITY_SAFETY: f64 = 0.8;
const MIN_HEADROOM: f64 = 0.05;
const MIN_ESTIMATED_CAPACITY: f64 = 1.0;

/// Everything the engine knows about one backend at recompute time.
#[derive(Debug, Clone, Copy)]
pub struct BackendInput {
    /// Configured weight (round-robin mode).
    pub weight: f64,
    /// Configured capacity, requests per second.
    pub capacity: Option<f64>,
    /// Healthy and not ejected.
    pub eligible: bool,
    /// When the backend was last (re)admitted; slow start runs from here.
    pub admitted_at_ms: Option<u64>,
    /// The share published last time, if any.
    pub previous_share: Option<f64>,
    /// The active schedule's multiplier of the backend's region (1: none).
    pub scale: f64,
    pub observation: Observation,
}

/// Why a backend got its share: each input's contribution.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Factors {
    /// Latency the engine used, in ms.
    pub latency_ms: Option<f64>,
    /// Base weight from the mode's formula.
    pub base: f64,
    pub error: f64,
    pub utilization: f64,
    pub stale: bool,
    pub ramp: f64,
    /// The latency or error factor came from a load poll (too few requests
    /// measured in the window).
    pub polled: bool,
    /// The active schedule's multiplier of the backend's region.
    pub schedule: f64,
}

impl Factors {
    /// Every factor but the base, multiplied: how much the engine trusts
    /// what is measured of the backend (1 when all is well).
    pub fn prior(&self) -> f64 {
        let stale = if self.stale { STALE_FACTOR } else { 1.0 };
        self.error * self.utilization * stale * self.ramp * self.schedule
    }
}

/// A backend's new share and the factors behind it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Computed {
    pub share: f64,
    pub factors: Factors,
}

/// Whether a backend's self-report is fresh, stale, or was never sent.
fn report_state(
    input: &BackendInput,
    policy: &PoolPolicy,
    now_ms: u64,
) -> (Option<LastReport>, bool) {
    match input.observation.report {
        None => (None, false),
        Some(report) => {
            let age = now_ms.saturating_sub(report.received_at_ms);
            if age > policy.server_load.stale_after.as_millis() as u64 {
                (None, true)
            } else {
                (Some(report), false)
            }
        }
    }
}

fn latency_ms(obs: &Observation, fresh_report_latency: Option<f64>) -> Option<f64> {
    let measured_p99 =
        (obs.latency.count >= MIN_LATENCY_SAMPLES).then(|| obs.latency.p99_us / 1000.0);
    measured_p99
        .or(fresh_report_latency)
        .or(obs.ewma_us.map(|us| us / 1000.0))
        .map(|ms| ms.max(0.001))
}

fn slow_start_ramp(policy: &PoolPolicy, admitted_at_ms: Option<u64>, now_ms: u64) -> f64 {
    let ramp_ms = policy.slow_start.as_millis() as f64;
    match admitted_at_ms {
        Some(at) if ramp_ms > 0.0 => {
            let progress = (now_ms.saturating_sub(at) as f64 / ramp_ms).min(1.0);
            SLOW_START_INITIAL + (1.0 - SLOW_START_INITIAL) * progress
        }
        _ => 1.0,
    }
}

/// Compute every backend's share. Shares of eligible backends sum to 1
/// (all zero when none is eligible).
pub fn compute_shares(policy: &PoolPolicy, inputs: &[BackendInput], now_ms: u64) -> Vec<Computed> {
    let mut factors = vec![Factors::default(); inputs.len()];
    let mut base: Vec<Option<f64>> = vec![None; inputs.len()];
    let target_ms = policy.target_latency.as_secs_f64() * 1000.0;

    for (i, input) in inputs.iter().enumerate() {
        if !input.eligible {
            continue;
        }
        let obs = &input.observation;
        let (fresh, stale) = report_state(input, policy, now_ms);
        let lat = latency_ms(obs, fresh.and_then(|r| r.latency_ms));
        let f = &mut factors[i];
        f.latency_ms = lat;
        let polled = fresh.filter(|r| r.polled);
        let sparse_latency = obs.latency.count < MIN_LATENCY_SAMPLES;
        f.polled = polled.is_some_and(|r| sparse_latency && r.latency_ms.is_some());
        f.error = 1.0;
        f.utilization = 1.0;
        f.ramp = 1.0;
        f.schedule = 1.0;
        base[i] = match policy.mode {
            BalanceMode::RoundRobin | BalanceMode::PeakEwma => Some(input.weight),
            BalanceMode::Latency => lat.map(|ms| 1.0 / ms),
            BalanceMode::Capacity => {
                let rps = obs.outcomes.per_second();
                let reported = |r: LastReport| r.capacity.map(|c| c as f64);
                let known = match (fresh, stale) {
                    (Some(report), _) => reported(report).or(input.capacity),
                    (None, true) => {
                        let last = obs.report.and_then(reported);
                        match (last, input.capacity) {
                            (Some(last), Some(configured)) => Some(last.min(configured)),
                            (last, configured) => last.or(configured),
                        }
                    }
                    (None, false) => input.capacity,
                };
                let capacity = match (known, lat) {
                    (Some(cap), Some(ms)) if ms > target_ms => Some(cap * target_ms / ms),
                    (Some(cap), _) => Some(cap),
                    (None, Some(ms)) => Some((rps * target_ms / ms).max(MIN_ESTIMATED_CAPACITY)),
                    (None, None) => None,
                };
                capacity.map(|cap| (CAPACITY_SAFETY * cap - rps).max(MIN_HEADROOM * cap))
            }
        };
        if !policy.mode.is_adaptive() {
            continue;
        }
        if obs.outcomes.total >= MIN_ERROR_SAMPLES {
            f.error = (-ERROR_PENALTY * obs.outcomes.error_rate()).exp();
        } else if let Some(rate) = polled.and_then(|r| r.error_rate) {
            f.error = (-ERROR_PENALTY * rate).exp();
            f.polled = true;
        }
        if let Some(u) = fresh.and_then(|r| r.utilization) {
            f.utilization = (1.0 - u).clamp(MIN_UTILIZATION_FACTOR, 1.0);
        }
        f.stale = stale;
        f.ramp = slow_start_ramp(policy, input.admitted_at_ms, now_ms);
        f.schedule = input.scale;
    }

    // Backends without data get the mean base of those with data.
    let known: Vec<f64> = base.iter().flatten().copied().collect();
    let neutral = if known.is_empty() {
        1.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let mut raw = vec![0.0; inputs.len()];
    for (i, input) in inputs.iter().enumerate() {
        if !input.eligible {
            continue;
        }
        let f = &mut factors[i];
        f.base = base[i].unwrap_or(neutral);
        raw[i] = f.base * f.prior();
    }
    let eligible: Vec<bool> = inputs.iter().map(|i| i.eligible).collect();
    let mut shares = normalize(&raw, &eligible);

    if policy.mode.is_adaptive() {
        let alpha = policy.smoothing;
        for (i, input) in inputs.iter().enumerate() {
            if let (true, Some(old)) = (input.eligible, input.previous_share) {
                shares[i] = alpha * shares[i] + (1.0 - alpha) * old;
            }
        }
        shares = normalize(&shares, &eligible);
        shares = bound_shares(&shares, &eligible, policy.min_share, policy.max_share);
    }
    shares
        .into_iter()
        .zip(factors)
        .map(|(share, factors)| Computed { share, factors })
        .collect()
}

/// Scale eligible values to sum to 1 (equal split if they sum to 0).
fn normalize(values: &[f64], eligible: &[bool]) -> Vec<f64> {
    let n = eligible.iter().filter(|e| **e).count();
    let total: f64 = values
        .iter()
        .zip(eligible)
        .filter(|(_, e)| **e)
        .map(|(v, _)| v.max(0.0))
        .sum();
    values
        .iter()
        .zip(eligible)
        .map(|(v, e)| match (*e, total > 0.0 && total.is_finite()) {
            (false, _) => 0.0,
            (true, true) => v.max(0.0) / total,
            (true, false) => 1.0 / n as f64,
        })
        .collect()
}

/// Bound eligible shares to `[min, max]` by water-filling: first raise those
/// under the floor, taking from the others in proportion; then lower those
/// over the cap, giving to the others in proportion (which only raises them).
/// Bounds that `n` backends cannot meet are relaxed to `1/n`.
pub fn bound_shares(shares: &[f64], eligible: &[bool], min: f64, max: f64) -> Vec<f64> {
    const EPSILON: f64 = 1e-12;
    let n = eligible.iter().filter(|e| **e).count();
    if n == 0 {
        return vec![0.0; shares.len()];
    }
    let equal = 1.0 / n as f64;
    let (min, max) = (min.min(equal), max.max(equal));
    let mut values = normalize(shares, eligible);

    pin_while_crossing(&mut values, eligible, min, |v| v < min - EPSILON);
    pin_while_crossing(&mut values, eligible, max, |v| v > max + EPSILON);
    values
}

/// Pin every eligible backend whose value `crosses` at `level` and rescale
/// the rest, until no more cross. Each pass pins all that cross at once, and
/// passes repeat only when rescaling pushes more across (rarely more than two
/// or three), so this stays O(n) in practice.
fn pin_while_crossing(
    values: &mut [f64],
    eligible: &[bool],
    level: f64,
    crosses: impl Fn(f64) -> bool,
) {
    let mut pinned = vec![false; values.len()];
    loop {
        let mut crossed = false;
        for i in 0..values.len() {
            if eligible[i] && !pinned[i] && crosses(values[i]) {
                pinned[i] = true;
                crossed = true;
            }
        }
        if !crossed {
            return;
        }
        redistribute(values, eligible, &pinned, level);
    }
}

/// Pin the `pinned` backends at `level` and scale the other eligible ones so
/// that everything sums to 1.
fn redistribute(values: &mut [f64], eligible: &[bool], pinned: &[bool], level: f64) {
    let pinned_count = pinned.iter().filter(|p| **p).count();
    let remaining = (1.0 - pinned_count as f64 * level).max(0.0);
    let free: Vec<usize> = (0..values.len())
        .filter(|&i| eligible[i] && !pinned[i])
        .collect();
    let free_total: f64 = free.iter().map(|&i| values[i]).sum();
    for i in 0..values.len() {
        if pinned[i] {
            values[i] = level;
        }
    }
    for &i in &free {
        values[i] = if free_total > 0.0 {
            values[i] * remaining / free_total
        } else {
            remaining / free.len() as f64
        };
    }
}

#[cfg(test)]
mod tests;

//! A run cut into 1-second buckets (by when each request was due): who
//! answered, how many failed, the p99 of each second; and convergence.
//!
//! # Convergence
//!
//! For a phase `[start, end)` (whole seconds) and a backend's share per
//! second `s[k]` (its fraction of the requests answered by any backend that
//! second), let `m` be the mean of `s` over the last [`SETTLE_SECONDS`]
//! seconds of the phase. The backend has converged at the first second `k`
//! from which every second up to the end of the phase stays within
//! ±[`BAND`] of `m`, provided that stretch lasts at least
//! [`SETTLE_SECONDS`]; the convergence time is `k − start`. A second in
//! which no backend answered is never within the band. When no such `k`
//! exists (the share still swings at the end), there is no convergence.

use super::load::Outcome;
use super::stats::percentile;
use std::ops::Range;
use std::time::Duration;

/// Half-width of the convergence band, as a share (5 points).
pub const BAND: f64 = 0.05;
/// The final stretch of a phase whose mean is the target, and the shortest
/// stable stretch that counts as converged.
pub const SETTLE_SECONDS: usize = 5;

/// One second of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Second {
    /// Requests answered by each backend (any status).
    pub answered_by: Vec<u64>,
    pub requests: u64,
    pub errors: u64,
    /// Client p99 latency (ms) of the requests sent this second.
    pub p99: Option<f64>,
}

impl Second {
    /// `backend`'s fraction of the answered requests.
    pub fn share(&self, backend: usize) -> Option<f64> {
        let answered: u64 = self.answered_by.iter().sum();
        (answered > 0).then(|| self.answered_by[backend] as f64 / answered as f64)
    }
}

/// Cuts `outcomes` into seconds `0..duration` for `backends` backends.
pub fn seconds(outcomes: &[Outcome], backends: usize, duration: Duration) -> Vec<Second> {
    let count = duration.as_secs_f64().ceil() as usize;
    let mut seconds = vec![
        Second {
            answered_by: vec![0; backends],
            ..Second::default()
        };
        count
    ];
    let mut latencies = vec![Vec::new(); count];
    for outcome in outcomes {
        let Some(second) = seconds.get_mut(outcome.sent_at.as_secs() as usize) else {
            continue;
        };
        second.requests += 1;
        second.errors += u64::from(outcome.is_error());
        if let Some(backend) = outcome.origin {
            second.answered_by[backend] += 1;
        }
        if outcome.was_sent() {
            latencies[outcome.sent_at.as_secs() as usize]
                .push(outcome.latency.as_secs_f64() * 1000.0);
        }
    }
    for (second, mut latencies) in seconds.iter_mut().zip(latencies) {
        latencies.sort_by(f64::total_cmp);
        second.p99 = percentile(&latencies, 0.99);
    }
    seconds
}

/// `backend`'s share in each second.
pub fn shares(seconds: &[Second], backend: usize) -> Vec<Option<f64>> {
    seconds.iter().map(|second| second.share(backend)).collect()
}

/// Mean of the known values in `range` (clamped to the data).
pub fn mean(values: &[Option<f64>], range: Range<usize>) -> Option<f64> {
    let known: Vec<f64> = clamp(values, range).iter().flatten().copied().collect();
    (!known.is_empty()).then(|| known.iter().sum::<f64>() / known.len() as f64)
}

/// Standard deviation of the known values in `range`.
pub fn spread(values: &[Option<f64>], range: Range<usize>) -> Option<f64> {
    let average = mean(values, range.clone())?;
    let known: Vec<f64> = clamp(values, range).iter().flatten().copied().collect();
    let variance = known.iter().map(|v| (v - average).powi(2)).sum::<f64>() / known.len() as f64;
    Some(variance.sqrt())
}

/// Seconds from `phase.start` until `shares` settled (see the module
/// documentation), or `None` if they did not.
pub fn convergence(shares: &[Option<f64>], phase: Range<usize>) -> Option<usize> {
    let end = phase.end.min(shares.len());
    let last_start = end.checked_sub(SETTLE_SECONDS)?;
    if last_start < phase.start {
        return None;
    }
    let target = mean(shares, last_start..end)?;
    let within = |share: &Option<f64>| share.is_some_and(|s| (s - target).abs() <= BAND);
    // Walk back from the end while the seconds stay within the band.
    let mut settled_from = end;
    while settled_from > phase.start && within(&shares[settled_from - 1]) {
        settled_from -= 1;
    }
    (settled_from <= last_start).then(|| settled_from - phase.start)
}

fn clamp<T>(values: &[T], range: Range<usize>) -> &[T] {
    let end = range.end.min(values.len());
    &values[range.start.min(end)..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::{Answer, Traffic};

    fn outcome(sent_ms: u64, latency_ms: u64, answer: Answer, origin: Option<usize>) -> Outcome {
        Outcome {
            sent_at: Duration::from_millis(sent_ms),
            latency: Duration::from_millis(latency_ms),
            answer,
            origin,
            traffic: Traffic::Read,
        }
    }

    #[test]
    fn requests_fall_in_the_second_they_were_due() {
        let outcomes = [
            outcome(100, 5, Answer::Status(200), Some(0)),
            outcome(999, 7, Answer::Status(200), Some(1)),
            outcome(1000, 9, Answer::Status(502), None),
            outcome(1500, 0, Answer::NotSent, None),
            outcome(2500, 1, Answer::Status(200), Some(0)),
            outcome(9000, 1, Answer::Status(200), Some(0)),
        ];
        let seconds = seconds(&outcomes, 2, Duration::from_secs(3));
        assert_eq!(seconds.len(), 3);
        assert_eq!(seconds[0].answered_by, [1, 1]);
        assert_eq!(seconds[0].p99, Some(7.0));
        assert_eq!(seconds[0].share(1), Some(0.5));
        assert_eq!((seconds[1].requests, seconds[1].errors), (2, 2));
        assert_eq!(seconds[1].share(0), None);
        assert_eq!(seconds[1].p99, Some(9.0));
        assert_eq!(seconds[2].share(0), Some(1.0));
    }

    fn known(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().copied().map(Some).collect()
    }

    #[test]
    fn convergence_is_the_start_of_the_final_stable_stretch() {
        // Change at second 2; the share falls 0.5 → 0.1 over three seconds.
        let shares = known(&[0.5, 0.5, 0.45, 0.3, 0.15, 0.11, 0.1, 0.09, 0.1, 0.1, 0.1]);
        assert_eq!(convergence(&shares, 2..11), Some(3));
        // Already within the band at the change: converged at once.
        assert_eq!(convergence(&known(&[0.5; 10]), 3..10), Some(0));
    }

    #[test]
    fn swinging_or_short_phases_do_not_converge() {
        let swinging = known(&[0.5, 0.1, 0.5, 0.1, 0.5, 0.1, 0.5, 0.1]);
        assert_eq!(convergence(&swinging, 0..8), None);
        assert_eq!(convergence(&known(&[0.5; 10]), 6..10), None);
        let gap = vec![Some(0.2), Some(0.2), None, Some(0.2), Some(0.2), Some(0.2)];
        assert_eq!(convergence(&gap, 0..6), None);
        // A stable stretch shorter than the settle window is not enough.
        let late = known(&[0.5, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1]);
        assert_eq!(convergence(&late, 0..9), None);
    }

    #[test]
    fn mean_and_spread_skip_unknown_seconds() {
        let values = vec![Some(0.2), None, Some(0.4)];
        assert!((mean(&values, 0..3).unwrap() - 0.3).abs() < 1e-12);
        assert!((spread(&values, 0..3).unwrap() - 0.1).abs() < 1e-12);
        assert_eq!(mean(&values, 1..2), None);
        assert_eq!(mean(&values, 5..9), None);
    }
}

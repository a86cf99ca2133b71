//! Latency percentiles and error rates over a set of requests.
//!
//! Percentiles are nearest-rank: the p-th percentile of n sorted values is
//! the value at rank ⌈p·n⌉ (1-based), so it is always a latency that was
//! observed. Latencies count every request that was sent (errors
//! included: a reset or a 502 still made the client wait); requests that
//! were not sent count only as errors.

use super::load::Outcome;

/// The nearest-rank `quantile` (0..=1) of ascending `sorted` values.
pub fn percentile(sorted: &[f64], quantile: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let rank = (quantile * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(last)])
}

/// What the client saw of a set of requests; latencies in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub requests: usize,
    pub errors: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub mean: f64,
}

impl Summary {
    /// `None` when no request was sent.
    pub fn of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> Option<Self> {
        let (mut requests, mut errors) = (0, 0);
        let mut latencies = Vec::new();
        for outcome in outcomes {
            requests += 1;
            errors += usize::from(outcome.is_error());
            if outcome.was_sent() {
                latencies.push(outcome.latency.as_secs_f64() * 1000.0);
            }
        }
        latencies.sort_by(f64::total_cmp);
        let at = |quantile| percentile(&latencies, quantile);
        Some(Self {
            requests,
            errors,
            p50: at(0.50)?,
            p95: at(0.95)?,
            p99: at(0.99)?,
            p999: at(0.999)?,
            mean: latencies.iter().sum::<f64>() / latencies.len() as f64,
        })
    }

    /// Requests answered without error.
    pub fn served(&self) -> usize {
        self.requests - self.errors
    }

    pub fn error_rate(&self) -> f64 {
        self.errors as f64 / self.requests as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::{Answer, Traffic};
    use std::time::Duration;

    fn outcome(ms: u64, answer: Answer) -> Outcome {
        Outcome {
            sent_at: Duration::ZERO,
            latency: Duration::from_millis(ms),
            answer,
            origin: None,
            traffic: Traffic::Read,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&values, 0.999), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn summary_counts_errors_and_skips_unsent_latencies() {
        let mut outcomes: Vec<Outcome> = (1..=98)
            .map(|ms| outcome(ms, Answer::Status(200)))
            .collect();
        outcomes.push(outcome(500, Answer::Status(502)));
        outcomes.push(outcome(0, Answer::NotSent));
        let summary = Summary::of(&outcomes).unwrap();
        assert_eq!(summary.requests, 100);
        assert_eq!(summary.errors, 2);
        assert_eq!(summary.served(), 98);
        assert!((summary.error_rate() - 0.02).abs() < 1e-12);
        assert_eq!(summary.p50, 50.0);
        assert_eq!(summary.p999, 500.0);
        let mean = ((1..=98).sum::<u64>() + 500) as f64 / 99.0;
        assert!((summary.mean - mean).abs() < 1e-9);
        assert_eq!(Summary::of(&[]), None);
        assert_eq!(Summary::of(&[outcome(0, Answer::NotSent)]), None);
    }
}

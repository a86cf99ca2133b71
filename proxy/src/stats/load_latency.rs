//! How long a backend takes at each load: a latency estimate per number of
//! requests in flight, so the picker can predict what one more request
//! would see (Prequal's "latency at this requests-in-flight", kept from the
//! proxy's own traffic instead of probes).
//!
//! A request is filed under the in-flight count it joined (itself
//! included), in buckets of powers of two: 1, 2, 3–4, 5–8, …, 257+. Each
//! bucket keeps a moving average of the latencies filed under it: a new
//! sample gets weight `1 − exp(−Δt / 1 s)` (Δt since the bucket last
//! changed), and at least 5%, so a busy bucket follows a change within a
//! few dozen requests and a quiet one takes its next sample as it is. A
//! sample counts for at most 3× the average it joins, and an outlier (above
//! 5×) that stands alone — the bucket's sample before it was not one —
//! for 1.5× (unless the average is stale, older than 3 s: no reference to
//! call a sample an outlier by). A rare pause (a request held 10× longer)
//! comes back among ordinary answers and moves a busy average by 2.5%, so
//! a backend that is as good as the others most of the time does not look
//! slow for seconds and lose its traffic to them (which only queues it
//! there). Queueing (answers 1.5–3× slower) counts in full, and a backend
//! that really turned much slower answers high again and again: from its
//! second such answer each moves the average 10% at least, so it is
//! followed within a few dozen requests. The request a pause holds still
//! counts where it matters, in the backend's in-flight.
//!
//! The prediction for a request that would join `n` in flight is the
//! largest fresh average (updated within the last 3 s) among the buckets up
//! to `n`'s — latency does not fall as load rises, and a backend that turned
//! slow at low load stays slow at higher load. When the highest fresh bucket
//! is below `n`'s, the prediction grows in proportion to `n` beyond that
//! bucket's top (the backend is assumed to run out of concurrency there).
//! When only buckets above `n`'s are fresh, the lowest of them is used.
//!
//! What a request alone would see ([`LoadLatency::alone`]) comes from the
//! lowest bucket measured within the last minute, fresh or not: a backend
//! kept busy never answers a request alone, and its latency at the lowest
//! load it shows already includes queueing. Remembering it errs on the
//! safe side: a backend that turned slower while busy looks more stretched
//! than it is, sheds load, and its low buckets fill again.
//!
//! Lock-free: each bucket is three relaxed atomics, as in [`super::window`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Buckets of in-flight counts: 1, 2, 3–4, …, 129–256, and 257 or more.
const BUCKETS: usize = 10;
/// Time constant of each bucket's average.
const TAU_MS: f64 = 1_000.0;
/// The old average keeps at most this weight per sample.
const MAX_KEPT_WEIGHT: f64 = 0.95;
/// A sample counts for at most this multiple of the average it joins...
const MAX_SAMPLE_RATIO: f64 = 3.0;
/// ...except a sample above this multiple (an outlier) that stands alone:
/// the sample before it in its bucket was not one too...
const OUTLIER_RATIO: f64 = 5.0;
/// ...which counts for this multiple (a rare pause).
const LONE_OUTLIER_RATIO: f64 = 1.5;
/// A bucket not updated for this long is not used.
const FRESH_MS: u64 = 3_000;
/// How long the lowest bucket is remembered as the latency alone.
const ALONE_MEMORY_MS: u64 = 60_000;
/// An empty bucket.
const NO_VALUE: u64 = u64::MAX;

/// Latency averages by in-flight count, for one backend.
pub struct LoadLatency {
    buckets: [Bucket; BUCKETS],
}

struct Bucket {
    /// `f64` bits of the average in µs, or [`NO_VALUE`].
    average_bits: AtomicU64,
    /// When the average last changed (`clock::now_ms`).
    updated_ms: AtomicU64,
    /// Whether the last sample filed here was an outlier (above
    /// [`OUTLIER_RATIO`] times the average it joined).
    last_was_outlier: AtomicBool,
}

impl Default for LoadLatency {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| Bucket {
                average_bits: AtomicU64::new(NO_VALUE),
                updated_ms: AtomicU64::new(0),
                last_was_outlier: AtomicBool::new(false),
            }),
        }
    }
}

/// The bucket of a request that joined `in_flight` requests (itself included).
fn bucket_of(in_flight: u64) -> usize {
    let above_one = in_flight.max(1) - 1;
    ((u64::BITS - above_one.leading_zeros()) as usize).min(BUCKETS - 1)
}

/// The largest in-flight count filed under `bucket` (for the last: its first).
fn top_of(bucket: usize) -> f64 {
    (1u64 << bucket) as f64
}

impl LoadLatency {
    /// A request that joined `in_flight` (itself included) took `latency_us`,
    /// finishing at `now_ms`.
    pub fn record(&self, now_ms: u64, in_flight: u64, latency_us: u64) {
        let bucket = &self.buckets[bucket_of(in_flight)];
        let previous_ms = bucket.updated_ms.fetch_max(now_ms, Relaxed);
        let elapsed = now_ms.saturating_sub(previous_ms) as f64;
        let kept = (-elapsed / TAU_MS).exp().min(MAX_KEPT_WEIGHT);
        let sample = latency_us as f64;
        let mut current = bucket.average_bits.load(Relaxed);
        let outlier = current != NO_VALUE && sample > f64::from_bits(current) * OUTLIER_RATIO;
        let after_outlier = bucket.last_was_outlier.swap(outlier, Relaxed);
        // A stale average is no reference to call a sample an outlier by.
        let stale = elapsed > FRESH_MS as f64;
        let max_ratio = if outlier && !after_outlier && !stale {
            LONE_OUTLIER_RATIO
        } else {
            MAX_SAMPLE_RATIO
        };
        loop {
            let next = match current {
                NO_VALUE => sample,
                bits => {
                    let average = f64::from_bits(bits);
                    average * kept + sample.min(average * max_ratio) * (1.0 - kept)
                }
            };
            match bucket.average_bits.compare_exchange_weak(
                current,
                next.to_bits(),
                Relaxed,
                Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The latency a request joining `in_flight` (itself included) should
    /// expect, in µs; `None` when no bucket is fresh.
    pub fn predict(&self, now_ms: u64, in_flight: u64) -> Option<f64> {
        let want = bucket_of(in_flight);
        let fresh = |b: &Bucket| b.average_within(now_ms, FRESH_MS);
        let mut highest: Option<(usize, f64)> = None;
        for (index, bucket) in self.buckets[..=want].iter().enumerate() {
            if let Some(average) = fresh(bucket) {
                let largest = highest.map_or(average, |(_, h)| h.max(average));
                highest = Some((index, largest));
            }
        }
        match highest {
            Some((index, largest)) if index == want => Some(largest),
            Some((index, largest)) => Some(largest * (in_flight as f64 / top_of(index)).max(1.0)),
            None => self.buckets[want + 1..].iter().find_map(fresh),
        }
    }

    /// The latency of a request alone, in µs: the lowest bucket measured
    /// within the last minute (see the module header); `None` when none was.
    pub fn alone(&self, now_ms: u64) -> Option<f64> {
        self.buckets
            .iter()
            .find_map(|b| b.average_within(now_ms, ALONE_MEMORY_MS))
    }
}

impl Bucket {
    /// The average, when it was updated within `max_age_ms` of `now_ms`.
    fn average_within(&self, now_ms: u64, max_age_ms: u64) -> Option<f64> {
        let bits = self.average_bits.load(Relaxed);
        let age = now_ms.saturating_sub(self.updated_ms.load(Relaxed));
        (bits != NO_VALUE && age <= max_age_ms).then(|| f64::from_bits(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_filed_by_powers_of_two_of_the_load_they_joined() {
        let got: Vec<usize> = [0, 1, 2, 3, 4, 5, 8, 9, 256, 257, 100_000]
            .iter()
            .map(|&n| bucket_of(n))
            .collect();
        assert_eq!(got, vec![0, 0, 1, 2, 2, 3, 3, 4, 8, 9, 9]);
    }

    #[test]
    fn a_single_sample_is_the_prediction_at_its_load() {
        let l = LoadLatency::default();
        assert_eq!(l.predict(1_000, 1), None);
        l.record(1_000, 3, 20_000);
        assert_eq!(l.predict(1_000, 4), Some(20_000.0));
        // Less load than ever measured: the lowest fresh bucket above.
        assert_eq!(l.predict(1_000, 1), Some(20_000.0));
        // More: in proportion beyond the top of the highest bucket (4).
        assert_eq!(l.predict(1_000, 8), Some(40_000.0));
    }

    #[test]
    fn the_prediction_never_falls_as_load_rises() {
        let l = LoadLatency::default();
        l.record(1_000, 1, 50_000);
        l.record(1_000, 16, 10_000);
        assert_eq!(l.predict(1_000, 16), Some(50_000.0));
    }

    #[test]
    fn a_busy_bucket_moves_a_twentieth_per_sample_and_a_quiet_one_takes_the_sample() {
        let l = LoadLatency::default();
        l.record(1_000, 1, 10_000);
        l.record(1_000, 1, 20_000);
        assert!((l.predict(1_000, 1).unwrap() - 10_500.0).abs() < 1e-6);
        l.record(60_000, 1, 30_000);
        assert!((l.predict(60_000, 1).unwrap() - 30_000.0).abs() < 1.0);
    }

    #[test]
    fn a_sample_up_to_five_times_the_average_counts_up_to_three_times_it() {
        let l = LoadLatency::default();
        l.record(1_000, 1, 20_000);
        // Queueing: 2.5x, counted in full.
        l.record(1_000, 1, 50_000);
        assert!((l.predict(1_000, 1).unwrap() - 21_500.0).abs() < 1e-6);
        // 4.9x of that: counted for 3x.
        l.record(1_000, 1, 105_000);
        assert!((l.predict(1_000, 1).unwrap() - (21_500.0 * 0.95 + 64_500.0 * 0.05)).abs() < 1e-6);
    }

    #[test]
    fn a_lone_outlier_among_ordinary_samples_counts_for_one_and_a_half_times_the_average() {
        let l = LoadLatency::default();
        l.record(1_000, 1, 20_000);
        l.record(1_000, 1, 200_000);
        assert!((l.predict(1_000, 1).unwrap() - 20_500.0).abs() < 1e-6);
        // Pauses one in fifty keep a busy average within a few percent.
        for i in 0..500 {
            let latency = if i % 50 == 0 { 200_000 } else { 20_000 };
            l.record(1_000, 1, latency);
        }
        assert!(l.predict(1_000, 1).unwrap() < 21_000.0);
        // A stale bucket takes a long sample nearly whole, capped at 3×.
        let before = l.predict(1_000, 1).unwrap();
        l.record(60_000, 1, 200_000);
        assert!((l.predict(60_000, 1).unwrap() - 3.0 * before).abs() < 1.0);
    }

    #[test]
    fn outliers_in_a_row_count_for_three_times_the_average() {
        let l = LoadLatency::default();
        l.record(1_000, 1, 20_000);
        l.record(1_000, 1, 200_000);
        l.record(1_000, 1, 200_000);
        // 20 500 × 0.95 + 61 500 × 0.05
        assert!((l.predict(1_000, 1).unwrap() - 22_550.0).abs() < 1e-6);
        // A busy bucket of a backend that really slowed down 10x is past
        // half of it within a few dozen samples.
        for _ in 0..25 {
            l.record(1_000, 1, 200_000);
        }
        assert!(l.predict(1_000, 1).unwrap() > 100_000.0);
    }

    #[test]
    fn the_latency_alone_is_remembered_for_a_minute_while_the_backend_stays_busy() {
        let l = LoadLatency::default();
        assert_eq!(l.alone(1_000), None);
        l.record(1_000, 1, 10_000);
        l.record(1_000, 12, 30_000);
        // Busy since: only the queueing bucket is fresh.
        l.record(20_000, 12, 30_000);
        assert_eq!(l.predict(20_000, 1), Some(30_000.0));
        assert_eq!(l.alone(20_000), Some(10_000.0));
        assert_eq!(l.alone(1_000 + ALONE_MEMORY_MS + 1), Some(30_000.0));
    }

    #[test]
    fn stale_buckets_are_not_used() {
        let l = LoadLatency::default();
        l.record(1_000, 1, 80_000);
        l.record(3_500, 8, 5_000);
        assert_eq!(l.predict(3_500, 8), Some(80_000.0));
        assert_eq!(l.predict(1_000 + FRESH_MS + 1, 8), Some(5_000.0));
        assert_eq!(l.predict(3_500 + FRESH_MS + 1, 8), None);
    }
}

//! Tests of the latency windows and their summaries.

use super::*;
use std::thread;

fn assert_close(actual: f64, expected: f64, relative: f64) {
    assert!(
        (actual - expected).abs() <= expected.abs() * relative,
        "{actual} is not within {relative} of {expected}"
    );
}

#[test]
fn buckets_tile_the_range_and_invert_the_index() {
    let mut next_lowest = 0;
    for index in 0..BUCKET_COUNT {
        let (lowest, width) = bucket_range(index);
        assert_eq!(lowest, next_lowest, "bucket {index} leaves a gap");
        assert_eq!(bucket_index(lowest), index);
        assert_eq!(bucket_index(lowest + width - 1), index);
        next_lowest = lowest + width;
    }
    assert!(next_lowest > 1 << 27, "range ends at {next_lowest}");
    assert_eq!(bucket_index(next_lowest), BUCKET_COUNT - 1);
    assert_eq!(bucket_index(u64::MAX), BUCKET_COUNT - 1);
}

#[test]
fn bucket_midpoints_are_within_one_eighth_of_every_value_in_range() {
    let in_range = (1u64..100_000).chain((100_000..1 << 28).step_by(997));
    for value in in_range {
        let midpoint = bucket_midpoint(bucket_index(value));
        assert_close(midpoint, value as f64, 0.125);
    }
}

#[test]
fn latency_slots_fit_the_memory_budget() {
    assert_eq!(std::mem::size_of::<Slot<LatencyCounters>>(), 472);
    assert!(10 * std::mem::size_of::<Slot<LatencyCounters>>() < 5 * 1024);
}

#[test]
fn uniform_latencies_give_expected_quantiles_mean_and_max() {
    let window = LatencyWindow::new(10, 100);
    for latency in 1..=10_000 {
        window.record(500, latency);
    }
    let summary = window.summary(500);
    assert_eq!(summary.count, 10_000);
    assert_eq!(summary.mean_us, 5000.5);
    assert_eq!(summary.max_us, 10_000.0);
    assert_close(summary.p50_us, 5000.0, 0.2);
    assert_close(summary.p99_us, 9900.0, 0.2);
}

#[test]
fn p99_of_a_99_to_1_mix_lands_in_the_slow_mode() {
    let window = LatencyWindow::new(10, 100);
    for _ in 0..9_900 {
        window.record(0, 1_000);
    }
    for _ in 0..100 {
        window.record(0, 200_000);
    }
    let summary = window.summary(0);
    assert_close(summary.p50_us, 1_000.0, 0.2);
    assert_close(summary.p99_us, 200_000.0, 0.2);
    assert_eq!(summary.mean_us, 2_990.0);
    assert_eq!(summary.max_us, 200_000.0);
}

#[test]
fn quantiles_never_exceed_the_maximum() {
    let window = LatencyWindow::new(1, 100);
    window.record(0, 8);
    let summary = window.summary(0);
    assert_eq!((summary.p50_us, summary.p99_us), (8.0, 8.0));
}

#[test]
fn quantiles_read_from_each_slots_range_match_a_sorted_reference() {
    use rand::{Rng, SeedableRng};

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x51_07_5A_4E);
    for _ in 0..500 {
        let window = LatencyWindow::new(4, 100);
        let mut live = Vec::new();
        let now_ms = rng.random_range(300..800);
        for _ in 0..rng.random_range(1..200) {
            let at_ms = rng.random_range(0..=now_ms);
            // Each slot's own spread, from one value to every bucket.
            let latency = match rng.random_range(0..4) {
                0 => rng.random_range(0..8),
                1 => rng.random_range(900..1_100),
                2 => rng.random_range(0..1 << 20),
                _ => rng.random_range(0..1 << 30),
            };
            window.record(at_ms, latency);
            if at_ms / 100 + 4 > now_ms / 100 {
                live.push(latency);
            }
        }
        live.sort_unstable();
        let summary = window.summary(now_ms);
        assert_eq!(summary.count, live.len() as u64);
        if live.is_empty() {
            continue;
        }
        let max = *live.last().unwrap();
        let reference = |percent: usize| {
            let sample = live[live.len() * percent / 100];
            bucket_midpoint(bucket_index(sample)).min(max as f64)
        };
        assert_eq!(summary.p50_us, reference(50), "{live:?}");
        assert_eq!(summary.p99_us, reference(99), "{live:?}");
    }
}

#[test]
fn huge_latencies_clamp_to_the_top_bucket_without_overflow() {
    let window = LatencyWindow::new(10, 100);
    window.record(0, u64::MAX);
    window.record(0, u64::MAX);
    window.record(0, 1 << 40);
    let summary = window.summary(0);
    assert_eq!(summary.count, 3);
    assert_eq!(summary.max_us, u64::MAX as f64);
    assert_eq!(summary.p99_us, bucket_midpoint(BUCKET_COUNT - 1));
    assert_eq!(summary.mean_us, MAX_SUMMED_LATENCY_US as f64);
}

#[test]
fn samples_age_out_when_their_slot_leaves_the_window() {
    let window = LatencyWindow::new(10, 100);
    window.record(250, 7);
    assert_eq!(window.summary(250).count, 1);
    // Epoch 2 is the oldest epoch of the window ending in epoch 11.
    assert_eq!(window.summary(1_199).count, 1);
    assert_eq!(window.summary(1_200), LatencySummary::default());
}

#[test]
fn a_reused_slot_is_reset() {
    let window = LatencyWindow::new(4, 100);
    for _ in 0..5 {
        window.record(50, 1_000);
    }
    // Epoch 4 reuses slot 0, which held epoch 0.
    window.record(450, 3);
    let slot = &window.ring.slots[0];
    assert_eq!(slot.epoch.load(Relaxed), 4);
    assert_eq!(slot.counters.count.load(Relaxed), 1);
    assert_eq!(slot.counters.max_us.load(Relaxed), 3);
    let summary = window.summary(450);
    assert_eq!(
        (summary.count, summary.max_us, summary.mean_us),
        (1, 3.0, 3.0)
    );
}

#[test]
fn a_long_idle_gap_empties_the_window() {
    let window = LatencyWindow::new(10, 100);
    let outcomes = OutcomeWindow::new(10, 100);
    for now in (0..1_000).step_by(10) {
        window.record(now, 100);
        outcomes.record(now, false);
    }
    let hour_later = 1_000 + 3_600_000;
    assert_eq!(window.summary(hour_later), LatencySummary::default());
    let idle = outcomes.summary(hour_later);
    assert_eq!((idle.total, idle.errors, idle.window_ms), (0, 0, 900));

    window.record(hour_later, 42);
    let summary = window.summary(hour_later);
    assert_eq!((summary.count, summary.max_us), (1, 42.0));
}

#[test]
fn samples_older_than_the_window_are_dropped() {
    let window = LatencyWindow::new(10, 100);
    window.record(5_000, 10);
    // Epoch 30 is 20 epochs behind epoch 50.
    window.record(3_000, 99_999);
    // Epoch 45 is late but still inside the window.
    window.record(4_500, 20);
    let summary = window.summary(5_000);
    assert_eq!((summary.count, summary.max_us), (2, 20.0));
    assert_eq!(window.summary(3_000), LatencySummary::default());
}

#[test]
fn a_sample_exactly_one_window_late_is_dropped() {
    let window = OutcomeWindow::new(4, 100);
    window.record(450, true);
    // Epoch 0 is exactly one window behind epoch 4.
    window.record(50, false);
    assert_eq!(window.summary(450).errors, 0);
    assert_eq!(window.summary(450).total, 1);
}

#[test]
fn outcome_error_rate() {
    let window = OutcomeWindow::new(10, 100);
    assert_eq!(window.summary(0).error_rate(), 0.0);
    for i in 0..100 {
        window.record(i, i % 4 != 0);
    }
    let summary = window.summary(99);
    assert_eq!((summary.total, summary.errors), (100, 25));
    assert_eq!(summary.error_rate(), 0.25);
}

#[test]
fn outcome_rate_during_warm_up_and_steady_state() {
    let window = OutcomeWindow::new(10, 1_000);
    assert_eq!(window.summary(0).window_ms, 1_000);
    assert_eq!(window.summary(0).per_second(), 0.0);

    // First sample at 5.2 s: epoch 5 starts at 5 s.
    window.record(5_200, true);
    let first = window.summary(5_400);
    assert_eq!((first.total, first.window_ms), (1, 1_000));
    assert_eq!(first.per_second(), 1.0);

    // 10 requests per second from then on.
    for now in (5_300..=30_000).step_by(100) {
        window.record(now, true);
    }
    let warm = window.summary(7_500);
    assert_eq!(warm.window_ms, 2_500);

    let steady = window.summary(30_000);
    // Epochs 21..=30 are live: 21.0 s to 30.0 s.
    assert_eq!(steady.window_ms, 9_000);
    assert_eq!(steady.total, 91);
    assert_close(steady.per_second(), 10.0, 0.02);

    let later = window.summary(30_999);
    assert_eq!(later.window_ms, 9_999);
    assert_close(later.per_second(), 91.0 / 9.999, 1e-12);
}

#[test]
fn default_outcome_summary_is_all_zero_rates() {
    let summary = OutcomeSummary::default();
    assert_eq!((summary.error_rate(), summary.per_second()), (0.0, 0.0));
}

#[test]
fn ewma_is_empty_before_the_first_sample() {
    let ewma = LatencyEwma::new(1_000);
    assert_eq!(ewma.ewma_us(), None);
    assert_eq!(ewma.peak_us(0), None);
    ewma.record(10_000, 250);
    assert_eq!(ewma.ewma_us(), Some(250.0));
    assert_eq!(ewma.peak_us(10_000), Some(250.0));
}

#[test]
fn ewma_covers_63_percent_of_a_step_after_one_time_constant() {
    let ewma = LatencyEwma::new(1_000);
    ewma.record(0, 100);
    for now in 1..=1_000 {
        ewma.record(now, 200);
    }
    let covered = (ewma.ewma_us().unwrap() - 100.0) / 100.0;
    assert_close(covered, 1.0 - (-1.0f64).exp(), 1e-9);

    // The same decay with a single sample one time constant later.
    let sparse = LatencyEwma::new(1_000);
    sparse.record(0, 100);
    sparse.record(1_000, 200);
    assert_close(sparse.ewma_us().unwrap(), ewma.ewma_us().unwrap(), 1e-9);
}

#[test]
fn samples_in_the_same_millisecond_only_move_the_peak() {
    let ewma = LatencyEwma::new(1_000);
    ewma.record(5, 100);
    ewma.record(5, 50);
    ewma.record(5, 400);
    assert_eq!(ewma.ewma_us(), Some(100.0));
    assert_eq!(ewma.peak_us(5), Some(400.0));
}

#[test]
fn peak_jumps_up_at_once_and_decays_down() {
    let ewma = LatencyEwma::new(1_000);
    for now in 0..=1_000 {
        ewma.record(now, 100);
    }
    ewma.record(1_001, 1_000);
    assert_eq!(ewma.peak_us(1_001), Some(1_000.0));
    assert!(ewma.ewma_us().unwrap() < 101.0);

    for now in 1_002..=2_001 {
        ewma.record(now, 100);
    }
    let excess = ewma.peak_us(2_001).unwrap() - 100.0;
    assert_close(excess, 900.0 * (-1.0f64).exp(), 1e-9);
    assert_close(ewma.ewma_us().unwrap(), 100.0, 0.01);
}

#[test]
fn idle_peak_decays_toward_zero() {
    let ewma = LatencyEwma::new(1_000);
    ewma.record(0, 100);
    ewma.record(1, 5_000);
    assert_close(
        ewma.peak_us(1_001).unwrap(),
        5_000.0 * (-1.0f64).exp(),
        1e-9,
    );
    assert!(ewma.peak_us(3_600_001).unwrap() < 1e-9);
    // Reading does not change the state; the plain EWMA is not decayed.
    assert_eq!(ewma.peak_us(1), Some(5_000.0));
    assert!(ewma.ewma_us().unwrap() > 100.0);
    // A sample after the idle time replaces the old spike.
    ewma.record(3_600_001, 300);
    assert_close(ewma.peak_us(3_600_001).unwrap(), 300.0, 1e-9);
}

#[test]
fn late_samples_do_not_decay_the_ewma() {
    let ewma = LatencyEwma::new(1_000);
    ewma.record(1_000, 100);
    ewma.record(500, 900);
    assert_eq!(ewma.ewma_us(), Some(100.0));
    assert_eq!(ewma.peak_us(1_000), Some(900.0));
}

#[test]
fn zero_time_constant_keeps_no_memory() {
    let ewma = LatencyEwma::new(0);
    ewma.record(0, 100);
    ewma.record(1, 40);
    assert_eq!(ewma.ewma_us(), Some(40.0));
    assert_eq!(ewma.peak_us(1), Some(40.0));
    assert_eq!(ewma.peak_us(2), Some(0.0));
}

#[test]
fn ewma_handles_the_largest_latency() {
    let ewma = LatencyEwma::new(1_000);
    ewma.record(0, u64::MAX);
    ewma.record(10, 1);
    assert!(ewma.ewma_us().unwrap().is_finite());
    assert!(ewma.peak_us(20).unwrap().is_finite());
}

#[test]
#[should_panic(expected = "at least one slot")]
fn zero_slots_panics() {
    LatencyWindow::new(0, 100);
}

#[test]
#[should_panic(expected = "at least 1 ms")]
fn zero_slot_length_panics() {
    OutcomeWindow::new(10, 0);
}

const THREADS: u64 = 4;

#[test]
fn concurrent_records_in_one_slot_are_all_counted() {
    const PER_THREAD: u64 = 100_000;
    let latencies = LatencyWindow::new(10, 1_000);
    let outcomes = OutcomeWindow::new(10, 1_000);
    let ewma = LatencyEwma::new(1_000);
    // Claim the slot first so that no reset races with the writers.
    latencies.record(42_000, 500);
    outcomes.record(42_000, true);
    thread::scope(|scope| {
        for thread in 0..THREADS {
            let (latencies, outcomes, ewma) = (&latencies, &outcomes, &ewma);
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    latencies.record(42_000, 1 + (i + thread) % 1_000);
                    outcomes.record(42_000, i % 10 != 0);
                    ewma.record(42_000, 100);
                }
            });
        }
    });
    let summary = latencies.summary(42_000);
    assert_eq!(summary.count, THREADS * PER_THREAD + 1);
    assert_eq!(summary.max_us, 1_000.0);
    let outcome = outcomes.summary(42_000);
    assert_eq!(outcome.total, THREADS * PER_THREAD + 1);
    assert_eq!(outcome.errors, THREADS * PER_THREAD / 10);
    assert_eq!(ewma.ewma_us(), Some(100.0));
}

#[test]
fn concurrent_records_across_slot_boundaries_stay_sane() {
    const SLOTS: u64 = 10;
    const SLOT_MS: u64 = 10;
    const PER_MS: u64 = 20;
    const LAST_MS: u64 = 5_000;
    let latencies = LatencyWindow::new(SLOTS as usize, SLOT_MS);
    let outcomes = OutcomeWindow::new(SLOTS as usize, SLOT_MS);
    let ewma = LatencyEwma::new(100);
    thread::scope(|scope| {
        for thread in 0..THREADS {
            let (latencies, outcomes, ewma) = (&latencies, &outcomes, &ewma);
            scope.spawn(move || {
                for i in 0..=LAST_MS * PER_MS {
                    let now = i / PER_MS;
                    let latency = 1 + (i * 7 + thread) % 10_000;
                    latencies.record(now, latency);
                    outcomes.record(now, i % 3 != 0);
                    ewma.record(now, latency);
                    if i % 997 == 0 {
                        let summary = latencies.summary(now);
                        assert!(summary.p50_us <= summary.p99_us);
                        assert!(summary.p99_us <= summary.max_us);
                        let outcome = outcomes.summary(now);
                        assert!(outcome.errors <= outcome.total);
                        assert!(outcome.window_ms <= SLOTS * SLOT_MS);
                    }
                }
            });
        }
    });
    // Each writer may carry at most one late sample into a reset slot.
    let window_ms = (SLOTS - 1) * SLOT_MS + LAST_MS % SLOT_MS + 1;
    let bound = THREADS * (window_ms * PER_MS + SLOTS);
    let summary = latencies.summary(LAST_MS);
    assert!(summary.count > 0 && summary.count <= bound, "{summary:?}");
    assert!(summary.max_us <= 10_000.0);
    let outcome = outcomes.summary(LAST_MS);
    assert!(outcome.total > 0 && outcome.total <= bound, "{outcome:?}");
    assert!(outcome.errors <= outcome.total);
    let average = ewma.ewma_us().unwrap();
    assert!((1.0..=10_000.0).contains(&average));
    assert!(ewma.peak_us(LAST_MS).unwrap() <= 10_000.0);
}

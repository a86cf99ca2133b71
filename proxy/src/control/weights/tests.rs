use super::*;
use crate::config::{OutlierPolicy, RetryBudget, RetryOn, RetryPolicy, ServerLoadPolicy};
use crate::stats::backend::LastReport;
use crate::stats::window::{LatencySummary, OutcomeSummary};
use std::time::Duration;

fn policy(mode: BalanceMode) -> PoolPolicy {
    PoolPolicy {
        mode,
        target_latency: Duration::from_millis(100),
        min_share: 0.02,
        max_share: 0.8,
        smoothing: 0.3,
        recompute_interval: Duration::from_millis(500),
        slow_start: Duration::from_secs(30),
        server_load: ServerLoadPolicy {
            header: http::HeaderName::from_static("server-load"),
            orca_header: http::HeaderName::from_static("endpoint-load-metrics"),
            strip: true,
            stale_after: Duration::from_secs(3),
        },
        outlier: OutlierPolicy {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
            max_ejected: 0.5,
            failure_rate: None,
        },
        health: None,
        load_poll: None,
        retries: RetryPolicy {
            attempts: 2,
            on: RetryOn::default(),
            budget: RetryBudget {
                percent: 20.0,
                min_concurrency: 3,
            },
        },
        region_max_share: 1.0,
        spillover: None,
        canary_sticky: None,
        consistent_hash: None,
        overprovisioning_factor: 1.4,
        prewarm_share: 0.0,
        schedules: Vec::new(),
    }
}

/// With two backends a 0.8 cap is also a 0.2 floor; these tests look at
/// the formulas themselves.
fn uncapped(mode: BalanceMode) -> PoolPolicy {
    PoolPolicy {
        max_share: 1.0,
        ..policy(mode)
    }
}

/// A backend measured at `p99_ms` over 100 requests, `errors` of them failed.
fn measured(p99_ms: f64, errors: u64) -> BackendInput {
    BackendInput {
        weight: 1.0,
        capacity: None,
        eligible: true,
        admitted_at_ms: None,
        previous_share: None,
        scale: 1.0,
        observation: Observation {
            in_flight: 0,
            latency: LatencySummary {
                count: 100,
                mean_us: p99_ms * 500.0,
                p50_us: p99_ms * 500.0,
                p99_us: p99_ms * 1000.0,
                max_us: p99_ms * 1000.0,
            },
            ewma_us: Some(p99_ms * 500.0),
            peak_ewma_us: Some(p99_ms * 1000.0),
            outcomes: OutcomeSummary {
                total: 100,
                errors,
                window_ms: 10_000,
            },
            recent_outcomes: OutcomeSummary::default(),
            consecutive_failures: 0,
            report: None,
        },
    }
}

fn shares(out: &[Computed]) -> Vec<f64> {
    out.iter().map(|c| c.share).collect()
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

/// Run the engine tick by tick, feeding each tick's shares back in.
fn run(policy: &PoolPolicy, inputs: &mut [BackendInput], now_ms: u64) -> Vec<f64> {
    let out = shares(&compute_shares(policy, inputs, now_ms));
    for (input, share) in inputs.iter_mut().zip(&out) {
        input.previous_share = Some(*share);
    }
    out
}

/// A backend with `samples` requests measured at `measured_ms` in the
/// window and a fresh polled report of `polled_ms` and `error_rate`.
fn quiet(samples: u64, measured_ms: f64, polled_ms: f64, error_rate: f64) -> BackendInput {
    let mut input = measured(measured_ms, 0);
    input.observation.latency.count = samples;
    input.observation.outcomes.total = samples;
    input.observation.report = Some(LastReport {
        utilization: None,
        capacity: None,
        in_flight: None,
        latency_ms: Some(polled_ms),
        error_rate: Some(error_rate),
        polled: true,
        received_at_ms: 1_000,
    });
    input
}

#[test]
fn a_quiet_backend_is_judged_by_its_polled_latency_and_errors() {
    let p = uncapped(BalanceMode::Latency);
    // Three requests in the window: too few; the poll says 40 ms.
    let out = compute_shares(&p, &[measured(10.0, 0), quiet(3, 10.0, 40.0, 0.0)], 1_500);
    assert!(out[1].factors.polled);
    assert_eq!(out[1].factors.latency_ms, Some(40.0));
    assert!(close(out[1].share, 0.2, 1e-9), "{out:?}");
    // The same backend polled fast gets an even split.
    let out = compute_shares(&p, &[measured(10.0, 0), quiet(3, 10.0, 10.0, 0.0)], 1_500);
    assert!(close(out[1].share, 0.5, 1e-9), "{out:?}");
    // A polled error rate of 10% costs exp(-1).
    let out = compute_shares(&p, &[measured(10.0, 0), quiet(3, 10.0, 10.0, 0.1)], 1_500);
    assert!(close(out[1].factors.error, (-1.0f64).exp(), 1e-9));
    // Enough requests measured: the measurements win over the poll.
    let out = compute_shares(&p, &[measured(10.0, 0), quiet(50, 10.0, 40.0, 0.5)], 1_500);
    assert!(!out[1].factors.polled);
    assert_eq!(out[1].factors.latency_ms, Some(10.0));
    assert_eq!(out[1].factors.error, 1.0);
    assert!(close(out[1].share, 0.5, 1e-9), "{out:?}");
    // A poll gone stale degrades the backend like a silent reporter.
    let out = compute_shares(&p, &[measured(10.0, 0), quiet(3, 10.0, 10.0, 0.0)], 4_001);
    assert!(out[1].factors.stale && !out[1].factors.polled);
}

#[test]
fn latency_mode_follows_inverse_p99_within_bounds() {
    let p = policy(BalanceMode::Latency);
    let out = shares(&compute_shares(
        &p,
        &[measured(10.0, 0), measured(40.0, 0)],
        0,
    ));
    assert!(
        close(out[0], 0.8, 1e-9) && close(out[1], 0.2, 1e-9),
        "{out:?}"
    );
    let out = shares(&compute_shares(
        &p,
        &[measured(10.0, 0), measured(20.0, 0), measured(40.0, 0)],
        0,
    ));
    let expected = [4.0 / 7.0, 2.0 / 7.0, 1.0 / 7.0];
    for (got, want) in out.iter().zip(expected) {
        assert!(close(*got, want, 1e-9), "{out:?}");
    }
}

#[test]
fn spike_drops_share_and_recovery_ramps_back_without_overshoot() {
    let p = uncapped(BalanceMode::Latency);
    let mut inputs = [measured(10.0, 0), measured(10.0, 0)];
    let mut now = 0;
    for _ in 0..5 {
        let out = run(&p, &mut inputs, now);
        assert!(close(out[1], 0.5, 1e-9));
        now += 500;
    }
    inputs[1] = BackendInput {
        previous_share: inputs[1].previous_share,
        ..measured(100.0, 0)
    };
    let mut series = vec![];
    for _ in 0..20 {
        series.push(run(&p, &mut inputs, now)[1]);
        now += 500;
    }
    assert!(
        series.windows(2).all(|w| w[1] <= w[0] + 1e-12),
        "share falls steadily: {series:?}"
    );
    assert!(
        series[2] < 0.3,
        "clearly smaller within 3 ticks: {series:?}"
    );
    let settled = 1.0 / 11.0;
    assert!(close(*series.last().unwrap(), settled, 0.01), "{series:?}");

    inputs[1] = BackendInput {
        previous_share: inputs[1].previous_share,
        ..measured(10.0, 0)
    };
    let mut recovery = vec![];
    for _ in 0..30 {
        recovery.push(run(&p, &mut inputs, now)[1]);
        now += 500;
    }
    assert!(
        recovery.windows(2).all(|w| w[1] >= w[0] - 1e-12),
        "ramps back monotonically: {recovery:?}"
    );
    assert!(
        recovery.iter().all(|s| *s <= 0.5 + 1e-9),
        "never overshoots: {recovery:?}"
    );
    assert!(close(*recovery.last().unwrap(), 0.5, 0.01), "{recovery:?}");
}

#[test]
fn silent_reporter_is_degraded_not_idle() {
    let p = uncapped(BalanceMode::Latency);
    let reporting = |received_at_ms| {
        let mut input = measured(10.0, 0);
        input.observation.report = Some(LastReport {
            utilization: Some(0.2),
            capacity: None,
            in_flight: None,
            latency_ms: None,
            error_rate: None,
            polled: false,
            received_at_ms,
        });
        input
    };
    let now = 60_000;
    let fresh = shares(&compute_shares(
        &p,
        &[reporting(now - 1_000), reporting(now - 1_000)],
        now,
    ));
    assert!(close(fresh[0], 0.5, 1e-9));
    let silent = compute_shares(&p, &[reporting(now - 1_000), reporting(now - 3_001)], now);
    assert!(silent[1].factors.stale);
    assert!(
        silent[1].share < 0.15,
        "a silent reporter's share shrinks: {silent:?}"
    );
    assert!(
        silent[1].share >= p.min_share - 1e-12,
        "but keeps the floor"
    );
}

#[test]
fn with_two_backends_the_cap_bounds_the_slow_one_too() {
    let p = policy(BalanceMode::Latency);
    let out = shares(&compute_shares(
        &p,
        &[measured(10.0, 0), measured(1000.0, 0)],
        0,
    ));
    assert!(
        close(out[0], 0.8, 1e-9) && close(out[1], 0.2, 1e-9),
        "{out:?}"
    );
}

#[test]
fn floor_and_cap_hold_and_shares_sum_to_one() {
    let mut p = policy(BalanceMode::Latency);
    p.min_share = 0.05;
    p.max_share = 0.6;
    let inputs = [
        measured(1.0, 0),
        measured(500.0, 0),
        measured(2000.0, 0),
        measured(5.0, 0),
    ];
    let out = shares(&compute_shares(&p, &inputs, 0));
    assert!(close(out.iter().sum::<f64>(), 1.0, 1e-9), "{out:?}");
    assert!(
        out.iter().all(|s| *s >= 0.05 - 1e-9 && *s <= 0.6 + 1e-9),
        "{out:?}"
    );
    assert!(close(out[0], 0.6, 1e-9));
}

#[test]
fn bounds_are_water_filled_and_relaxed_when_infeasible() {
    let all = [true, true];
    let two = bound_shares(&[0.99, 0.01], &all, 0.02, 0.8);
    assert!(
        close(two[0], 0.8, 1e-12) && close(two[1], 0.2, 1e-12),
        "{two:?}"
    );
    let three = bound_shares(&[0.5, 0.49, 0.01], &[true; 3], 0.02, 0.4);
    assert!(
        close(three[0], 0.4, 1e-9) && close(three[1], 0.4, 1e-9) && close(three[2], 0.2, 1e-9),
        "{three:?}"
    );
    assert_eq!(
        bound_shares(&[0.9, 0.1], &all, 0.0, 0.3),
        vec![0.5, 0.5],
        "cap relaxed to 1/n"
    );
    assert_eq!(bound_shares(&[0.3], &[true], 0.0, 0.5), vec![1.0]);
    assert_eq!(
        bound_shares(&[0.3, 0.7], &[false, true], 0.1, 0.5),
        vec![0.0, 1.0]
    );
    assert_eq!(
        bound_shares(&[0.3, 0.7], &[false, false], 0.1, 0.5),
        vec![0.0, 0.0]
    );
}

fn variance(series: &[f64]) -> f64 {
    let mean = series.iter().sum::<f64>() / series.len() as f64;
    series.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / series.len() as f64
}

#[test]
fn smoothing_prevents_sawtooth_between_close_backends() {
    // Two backends within 10% of each other whose measurements swap every tick.
    let series_for = |alpha: f64| {
        let mut p = policy(BalanceMode::Latency);
        p.smoothing = alpha;
        let mut inputs = [measured(10.0, 0), measured(11.0, 0)];
        let mut series = vec![];
        for tick in 0..200u64 {
            let (a, b) = if tick % 2 == 0 {
                (10.0, 11.0)
            } else {
                (11.0, 10.0)
            };
            inputs[0] = BackendInput {
                previous_share: inputs[0].previous_share,
                ..measured(a, 0)
            };
            inputs[1] = BackendInput {
                previous_share: inputs[1].previous_share,
                ..measured(b, 0)
            };
            series.push(run(&p, &mut inputs, tick * 500)[0]);
        }
        series
    };
    let raw = series_for(1.0);
    let smoothed = series_for(0.3);
    assert!(
        variance(&smoothed) < 0.1 * variance(&raw),
        "{} vs {}",
        variance(&smoothed),
        variance(&raw)
    );
    assert!(
        smoothed[10..].iter().all(|s| close(*s, 0.5, 0.01)),
        "{smoothed:?}"
    );
}

#[test]
fn errors_and_reported_utilization_reduce_shares() {
    let p = uncapped(BalanceMode::Latency);
    let out = shares(&compute_shares(
        &p,
        &[measured(10.0, 0), measured(10.0, 30)],
        0,
    ));
    assert!(out[1] < 0.1, "30% errors: {out:?}");
    let few = BackendInput {
        observation: Observation {
            outcomes: OutcomeSummary {
                total: 5,
                errors: 5,
                window_ms: 10_000,
            },
            ..measured(10.0, 0).observation
        },
        ..measured(10.0, 0)
    };
    let out = shares(&compute_shares(&p, &[measured(10.0, 0), few], 0));
    assert!(
        close(out[1], 0.5, 1e-9),
        "too few samples to judge: {out:?}"
    );

    let busy = |u| {
        let mut input = measured(10.0, 0);
        input.observation.report = Some(LastReport {
            utilization: Some(u),
            capacity: None,
            in_flight: None,
            latency_ms: None,
            error_rate: None,
            polled: false,
            received_at_ms: 1,
        });
        input
    };
    let out = shares(&compute_shares(&p, &[busy(0.2), busy(0.9)], 100));
    assert!(close(out[0] / out[1], 0.8 / 0.1, 1e-6), "{out:?}");
}

#[test]
fn slow_start_begins_near_a_tenth_of_fair_share_and_ramps() {
    let p = uncapped(BalanceMode::Latency);
    let newcomer = |admitted| BackendInput {
        admitted_at_ms: Some(admitted),
        ..measured(10.0, 0)
    };
    let at = |now| shares(&compute_shares(&p, &[measured(10.0, 0), newcomer(0)], now))[1];
    assert!(close(at(0), 0.1 / 1.1, 1e-9));
    assert!(close(at(15_000), 0.55 / 1.55, 1e-9));
    assert!(close(at(30_000), 0.5, 1e-9));
    assert!(close(at(90_000), 0.5, 1e-9));
}

#[test]
fn ineligible_backends_get_nothing_at_once() {
    let p = policy(BalanceMode::Latency);
    let mut down = measured(10.0, 0);
    down.eligible = false;
    down.previous_share = Some(0.5);
    let out = shares(&compute_shares(
        &p,
        &[measured(10.0, 0), down, measured(10.0, 0)],
        0,
    ));
    assert_eq!(out[1], 0.0);
    assert!(close(out[0], 0.5, 1e-9) && close(out[2], 0.5, 1e-9));
    let none = shares(&compute_shares(&p, &[down, down], 0));
    assert_eq!(none, vec![0.0, 0.0]);
}

#[test]
fn unmeasured_backends_get_a_fair_share() {
    let p = policy(BalanceMode::Latency);
    let mut fresh = measured(10.0, 0);
    fresh.observation.latency.count = 0;
    fresh.observation.ewma_us = None;
    let out = compute_shares(&p, &[measured(10.0, 0), measured(30.0, 0), fresh], 0);
    assert_eq!(out[2].factors.latency_ms, None);
    let mean_base = (1.0 / 10.0 + 1.0 / 30.0) / 2.0;
    assert!(close(out[2].factors.base, mean_base, 1e-12));
}

#[test]
fn capacity_mode_follows_spare_capacity() {
    let p = policy(BalanceMode::Capacity);
    let with_capacity = |cap: f64, p99: f64| BackendInput {
        capacity: Some(cap),
        ..measured(p99, 0)
    };
    // 100 outcomes over 10 s = 10 rps each; spare = 0.8·cap − 10.
    let out = shares(&compute_shares(
        &p,
        &[with_capacity(1000.0, 20.0), with_capacity(300.0, 20.0)],
        0,
    ));
    let (a, b) = (0.8 * 1000.0 - 10.0, 0.8 * 300.0 - 10.0);
    assert!(close(out[0], a / (a + b), 1e-9), "{out:?}");
    // Above target latency, capacity is scaled down by target/latency.
    let out = shares(&compute_shares(
        &p,
        &[with_capacity(1000.0, 400.0), with_capacity(300.0, 20.0)],
        0,
    ));
    let a = 0.8 * 250.0 - 10.0;
    assert!(close(out[0], a / (a + b), 1e-9), "{out:?}");
}

#[test]
fn a_stale_reporter_never_counts_bigger_than_its_last_report() {
    let p = uncapped(BalanceMode::Capacity);
    let now = 60_000;
    let reported = |capacity: u64, received_at_ms: u64| BackendInput {
        capacity: Some(1000.0),
        observation: Observation {
            report: Some(LastReport {
                utilization: None,
                capacity: Some(capacity),
                in_flight: None,
                latency_ms: None,
                error_rate: None,
                polled: false,
                received_at_ms,
            }),
            ..measured(20.0, 0).observation
        },
        ..measured(20.0, 0)
    };
    // Both report 100 req/s against a configured 1000: fresh, equal.
    let fresh = compute_shares(&p, &[reported(100, now), reported(100, now)], now);
    assert!(close(fresh[1].share, 0.5, 1e-9), "{fresh:?}");
    // The second goes silent: it keeps its last report (100, not the
    // configured 1000) and is degraded on top.
    let silent = compute_shares(&p, &[reported(100, now), reported(100, now - 3_001)], now);
    assert!(silent[1].factors.stale);
    let spare = 0.8 * 100.0 - 10.0;
    assert!(close(silent[1].factors.base, spare, 1e-9), "{silent:?}");
    assert!(silent[1].share < 0.1, "{silent:?}");
}

#[test]
fn round_robin_ignores_measurements() {
    let p = policy(BalanceMode::RoundRobin);
    let mut heavy = measured(500.0, 90);
    heavy.weight = 3.0;
    let out = shares(&compute_shares(&p, &[measured(1.0, 0), heavy], 0));
    assert!(
        close(out[0], 0.25, 1e-12) && close(out[1], 0.75, 1e-12),
        "{out:?}"
    );
}

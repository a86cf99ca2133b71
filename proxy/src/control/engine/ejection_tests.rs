//! Tests of the engine's ejection, health and re-admission: consecutive
//! failures, failure rates, max_ejected, panic, slow start.

use super::tests::{engine, engine_from, kinds, shares, stats, traffic};
use super::*;

#[test]
fn consecutive_failures_eject_and_ejection_ends_in_slow_start() {
    let e = engine("    slow_start: 10s\n    outlier: {consecutive_failures: 3, base_ejection: 1s, max_ejection: 10s}\n", 3);
    traffic(&e, 3, 1_000, 1_000);
    e.tick(1_000);
    for _ in 0..3 {
        stats(&e, 2).record_failure(1_050, None);
    }
    e.tick(1_100);
    assert_eq!(shares(&e)[2], 0.0, "ejected at once");
    assert_eq!(kinds(&e), vec![DecisionKind::Ejected]);
    e.tick(2_000);
    assert_eq!(
        shares(&e)[2],
        0.0,
        "still ejected before base_ejection passes"
    );
    e.tick(2_100);
    let back = shares(&e)[2];
    assert!(
        back > 0.0 && back < 0.1,
        "re-admitted through slow start: {back}"
    );
    assert_eq!(
        kinds(&e),
        vec![DecisionKind::Ejected, DecisionKind::Readmitted]
    );

    // A second ejection lasts twice as long.
    for _ in 0..3 {
        stats(&e, 2).record_failure(2_200, None);
    }
    e.tick(2_200);
    e.tick(4_100);
    assert_eq!(shares(&e)[2], 0.0, "ejection #2 lasts 2 s");
    e.tick(4_300);
    assert!(shares(&e)[2] > 0.0);
}

#[test]
fn a_backend_held_back_by_max_ejected_needs_new_failures_to_be_ejected() {
    let e = engine(
        "    outlier: {consecutive_failures: 2, base_ejection: 1s, max_ejected: 0.5, failure_rate: false}\n",
        4,
    );
    traffic(&e, 4, 1_000, 1_000);
    for b in 0..4 {
        for _ in 0..2 {
            stats(&e, b).record_failure(1_000, None);
        }
    }
    e.tick(1_000);
    let ejected = |e: &Engine| shares(e).iter().filter(|s| **s == 0.0).count();
    assert_eq!(ejected(&e), 2, "half the pool at most: {:?}", shares(&e));
    // The two ejected come back; the two held back had no new failure.
    e.tick(2_100);
    e.tick(2_200);
    assert_eq!(ejected(&e), 0, "nobody ejected later: {:?}", shares(&e));
    let ejections = kinds(&e)
        .iter()
        .filter(|k| **k == DecisionKind::Ejected)
        .count();
    assert_eq!(ejections, 2);
    // New failures in a row do eject.
    for _ in 0..2 {
        stats(&e, 3).record_failure(2_300, None);
    }
    e.tick(2_300);
    assert_eq!(shares(&e)[3], 0.0);
}

#[test]
fn a_failure_rate_over_the_threshold_ejects_without_failures_in_a_row() {
    let e = engine(
        "    outlier: {failure_rate: {threshold: 0.5, min_requests: 20}}\n",
        2,
    );
    traffic(&e, 1, 1_000, 1_000);
    // Backend 1: two failures for each success, never five in a row.
    for k in 0..30 {
        if k % 3 == 0 {
            stats(&e, 1).record_success(1_050, 1_000);
        } else {
            stats(&e, 1).record_failure(1_050, None);
        }
    }
    e.tick(1_100);
    assert_eq!(shares(&e)[1], 0.0, "ejected by rate: {:?}", shares(&e));
    let reasons: Vec<String> = e
        .decisions
        .recent(100, |d| d.kind == DecisionKind::Ejected)
        .iter()
        .map(|d| d.reason.clone())
        .collect();
    assert!(
        reasons[0].contains("20 of 30 requests failed"),
        "{reasons:?}"
    );

    // Under the threshold, or too few requests: kept.
    let kept = engine("", 2);
    traffic(&kept, 2, 1_000, 1_000);
    for _ in 0..19 {
        stats(&kept, 0).record_success(1_050, 1_000);
        stats(&kept, 0).record_failure(1_050, None);
        stats(&kept, 0).record_success(1_050, 1_000);
    }
    kept.tick(1_100);
    assert!(shares(&kept)[0] > 0.0, "a quarter failing stays in");
}

#[test]
fn at_most_max_ejected_and_panic_when_nothing_is_eligible() {
    let e = engine(
        "    outlier: {consecutive_failures: 1, max_ejected: 0.5}\n",
        4,
    );
    for b in 0..4 {
        stats(&e, b).record_failure(1_000, None);
    }
    e.tick(1_000);
    let out = shares(&e);
    assert_eq!(
        out.iter().filter(|s| **s == 0.0).count(),
        2,
        "only half may be ejected: {out:?}"
    );

    let all = engine(
        "    outlier: {consecutive_failures: 1, max_ejected: 1.0}\n",
        2,
    );
    for b in 0..2 {
        stats(&all, b).record_failure(1_000, None);
    }
    all.tick(1_000);
    let out = shares(&all);
    assert!(
        out.iter().all(|s| (s - 0.5).abs() < 1e-9),
        "panic mode routes to everyone: {out:?}"
    );
}

#[test]
fn unhealthy_backends_leave_and_return_through_slow_start() {
    let e = engine("    slow_start: 10s\n    max_share: 1.0\n", 2);
    traffic(&e, 2, 1_000, 1_000);
    e.tick(1_000);
    stats(&e, 1).record_health_check(false, 1, 1);
    e.tick(1_100);
    assert_eq!(shares(&e), vec![1.0, 0.0]);
    stats(&e, 1).record_health_check(true, 1, 1);
    e.tick(1_200);
    let back = shares(&e)[1];
    assert!(back > 0.0 && back < 0.1, "{back}");
    assert_eq!(
        kinds(&e),
        vec![DecisionKind::Unhealthy, DecisionKind::Healthy]
    );
}

#[test]
fn a_returning_backend_ramps_to_its_fair_share_within_5_s_by_default() {
    // Default slow start, smoothing and recompute interval.
    let e = engine_from(
        "listeners: [{address: \"127.0.0.1:1\"}]\npools:\n  p:\n    backends: [{addr: \"127.0.0.1:9000\"}, {addr: \"127.0.0.1:9001\"}, {addr: \"127.0.0.1:9002\"}]\nroutes: [{pool: p}]\n",
    );
    traffic(&e, 3, 1_000, 1_000);
    e.tick(1_000);
    stats(&e, 1).record_health_check(false, 1, 1);
    e.tick(1_500);
    assert_eq!(shares(&e)[1], 0.0, "out while unhealthy");
    stats(&e, 1).record_health_check(true, 1, 1);
    let mut ramp = Vec::new();
    for now in (2_000..=7_000).step_by(500) {
        traffic(&e, 3, now, 1_000);
        e.tick(now);
        ramp.push(shares(&e)[1]);
    }
    eprintln!("a returning backend's share every 500 ms: {ramp:.3?}");
    // Fair share is a third: it starts low and rises step by step ...
    assert!(ramp[0] < 0.05, "no herd on return: {ramp:?}");
    assert!(ramp[1] < 0.15, "still ramping after 500 ms: {ramp:?}");
    assert!(ramp.windows(2).take(6).all(|w| w[1] > w[0]), "{ramp:?}");
    // ... and holds 90% of it 5 s after its return.
    assert!(ramp[10] >= 0.3, "fair share within 5 s: {ramp:?}");
}

//! Tests of the latency mode's per-request choice: least predicted latency
//! at the backend's current load, within the shares' bounds.

use super::tests::{facts, stats};
use super::*;
use rand::SeedableRng;
use std::path::Path;

const NOW_MS: u64 = 50_000;

/// Backends 0 and 1 stable, backend 2 a canary, backend 3 a priority-1 standby.
fn snapshot() -> Snapshot {
    let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
pools:
  p:
    backends:
      - {addr: "10.0.0.1:80"}
      - {addr: "10.0.0.2:80"}
      - {addr: "10.0.0.3:80", canary: true}
      - {addr: "10.0.0.4:80", priority: 1}
routes: [{pool: p}]
"#;
    crate::config::load_str(yaml, Path::new(".")).unwrap()
}

fn fractions(
    snap: &Snapshot,
    weights: &PoolWeights,
    live: &[Arc<BackendStats>],
    n: usize,
) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut counts = vec![0usize; live.len()];
    for t in 0..n {
        match pick(
            snap,
            &facts(t as u64, &[], Some(weights), live),
            NOW_MS,
            &mut rng,
        ) {
            Decision::Backend(b) => counts[b] += 1,
            other => panic!("{other:?}"),
        }
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

/// Each backend answered requests that joined `joined` in flight in `ms`.
fn measured(live: &[Arc<BackendStats>], samples: &[(usize, u64, u64)]) {
    for &(backend, joined, ms) in samples {
        live[backend].record_load_latency(NOW_MS, joined, ms * 1_000);
    }
}

#[test]
fn a_share_cap_does_not_force_traffic_onto_a_clearly_slower_backend() {
    let snap = snapshot();
    let live = stats(4);
    measured(&live, &[(0, 1, 2), (1, 1, 80)]);
    // The engine's bounds keep 20% on the slow one; the choice does not.
    let w = PoolWeights::new(&snap.pools[0], vec![0.8, 0.2, 0.0, 0.0], vec![0.0; 4]);
    let got = fractions(&snap, &w, &live, 20_000);
    // Only the exploration fraction of its share reaches it: 1% × 20%.
    assert!(got[1] < 0.006, "{got:?}");
    assert!(got[1] > 0.0, "still explored: {got:?}");
}

#[test]
fn a_backend_is_avoided_while_its_load_predicts_queueing() {
    let snap = snapshot();
    let live = stats(4);
    // Backend 0: 2 ms alone, 40 ms when it joins 8 in flight (it queues);
    // backend 1: 20 ms whatever its load.
    measured(&live, &[(0, 1, 2), (0, 8, 40), (1, 1, 20), (1, 8, 20)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4]);
    let idle = fractions(&snap, &w, &live, 5_000);
    assert!(idle[0] > 0.95, "idle, the fast one wins: {idle:?}");
    let _busy: Vec<_> = (0..7).map(|_| live[0].start()).collect();
    let busy = fractions(&snap, &w, &live, 5_000);
    assert!(busy[1] > 0.95, "7 in flight predicts 40 ms: {busy:?}");
}

#[test]
fn the_engines_prior_weighs_on_the_cost() {
    let snap = snapshot();
    let live = stats(4);
    measured(&live, &[(0, 1, 5), (1, 1, 20)]);
    // Backend 0 answers errors: its prior exp(−10 × 0.3) ≈ 0.05 makes 5 ms cost 100.
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4])
        .with_steering(&[0.05, 1.0, 1.0, 1.0], &[false; 4]);
    let got = fractions(&snap, &w, &live, 5_000);
    assert!(got[1] > 0.95, "{got:?}");
}

#[test]
fn canaries_and_pinned_backends_get_exactly_their_share() {
    let snap = snapshot();
    let live = stats(4);
    // The canary is the fastest and backend 1 the slowest; neither matters.
    measured(&live, &[(0, 1, 10), (1, 1, 90), (2, 1, 1)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.45, 0.45, 0.1, 0.0], vec![0.0; 4])
        .with_steering(&[1.0; 4], &[false, true, false, false]);
    let got = fractions(&snap, &w, &live, 40_000);
    assert!((got[2] - 0.1).abs() < 0.01, "canary: {got:?}");
    assert!((got[1] - 0.45).abs() < 0.015, "pinned: {got:?}");
}

#[test]
fn the_choice_stays_in_the_tier_the_share_draw_chose() {
    let snap = snapshot();
    let live = stats(4);
    // The standby (tier 1) is the fastest, but gets only its pre-warm share.
    measured(&live, &[(0, 1, 30), (1, 1, 30), (3, 1, 1)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.48, 0.48, 0.0, 0.04], vec![0.0; 4]);
    let got = fractions(&snap, &w, &live, 40_000);
    assert!((got[3] - 0.04).abs() < 0.006, "{got:?}");
}

#[test]
fn an_unmeasured_backend_is_probed_one_request_at_a_time() {
    let snap = snapshot();
    let live = stats(4);
    measured(&live, &[(0, 1, 5)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut held = Vec::new();
    let mut to_new = 0;
    for t in 0..200 {
        let d = pick(&snap, &facts(t, &[], Some(&w), &live), NOW_MS, &mut rng);
        if d == Decision::Backend(1) {
            to_new += 1;
            held.push(live[1].start());
        }
    }
    // One probe, plus the exploration draws that land on it by share.
    assert!((1..=15).contains(&to_new), "{to_new}");
}

#[test]
fn retries_skip_tried_backends_and_unavailable_is_reported() {
    let snap = snapshot();
    let live = stats(4);
    measured(&live, &[(0, 1, 1), (1, 1, 50)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    for t in 0..100 {
        let d = pick(&snap, &facts(t, &[0], Some(&w), &live), NOW_MS, &mut rng);
        assert_eq!(d, Decision::Backend(1));
    }
    assert_eq!(
        pick(&snap, &facts(0, &[0, 1], Some(&w), &live), NOW_MS, &mut rng),
        Decision::Unavailable(Unavailable::AllTried)
    );
}

#[test]
fn a_queue_stops_growing_before_it_is_as_slow_as_an_idle_slower_backend() {
    let snap = snapshot();
    let live = stats(4);
    // Backend 0: 10 ms alone, 30 ms once 8 are in flight (a small, fast
    // backend queueing); backend 1: 50 ms at any load (a roomy, slow one).
    measured(&live, &[(0, 1, 10), (0, 8, 30), (1, 1, 50), (1, 8, 50)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4]);
    let _queued: Vec<_> = (0..7).map(|_| live[0].start()).collect();
    // 30 ms beats 50 ms for this request, but it stretches backend 0's
    // latency 3×: 30 × 3 = 90 > 50.
    let got = fractions(&snap, &w, &live, 2_000);
    assert!(got[1] > 0.95, "{got:?}");
}

#[test]
fn near_equal_costs_go_to_the_backend_with_fewer_in_flight_per_weight() {
    let snap = snapshot();
    let live = stats(4);
    // 20 and 21 ms: within the tolerance, a tie.
    measured(&live, &[(0, 1, 20), (0, 4, 20), (1, 1, 21), (1, 4, 21)]);
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4]);
    let _busy: Vec<_> = (0..3).map(|_| live[0].start()).collect();
    let got = fractions(&snap, &w, &live, 2_000);
    assert!(got[1] > 0.95, "the less loaded one: {got:?}");
}

#[test]
fn near_equal_costs_go_to_the_backend_not_queueing_before_the_less_loaded_one() {
    let snap = snapshot();
    let live = stats(4);
    // Backend 0: 10 ms alone, 20 ms once 5 are in flight (4 workers, one
    // request waiting); backend 1: 48 ms at any load (a roomy, slow one).
    // With 4 in flight on backend 0 the costs tie (20 × 2 = 40 against 48),
    // and backend 0 is the less loaded: the request still goes to an idle
    // worker of backend 1 rather than wait on backend 0.
    measured(
        &live,
        &[(0, 1, 10), (0, 4, 10), (0, 5, 20), (1, 1, 48), (1, 16, 48)],
    );
    let w = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0, 0.0], vec![0.0; 4]);
    let _busy_slow: Vec<_> = (0..10).map(|_| live[1].start()).collect();
    let _below_its_workers: Vec<_> = (0..3).map(|_| live[0].start()).collect();
    let got = fractions(&snap, &w, &live, 2_000);
    assert!(got[0] > 0.95, "an idle worker on the fast one: {got:?}");
    let _queueing = live[0].start();
    let got = fractions(&snap, &w, &live, 2_000);
    assert!(got[1] > 0.95, "no wait on the fast one: {got:?}");
}

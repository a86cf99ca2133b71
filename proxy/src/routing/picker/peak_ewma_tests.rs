//! Tests of the `peak_ewma` choice: Linkerd's power of two choices over
//! `round-trip estimate × (in_flight + 1)`, within eligibility and tries.

use super::tests::{facts, snapshot, stats};
use super::*;
use rand::SeedableRng;

/// Long after the stats were made, so their default estimates have decayed
/// away and the first answers set them exactly.
const NOW_MS: u64 = 100_000_000;

fn counts(
    snap: &Snapshot,
    weights: Option<&PoolWeights>,
    live: &[Arc<BackendStats>],
    tried: &[usize],
    n: usize,
) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut got = vec![0; live.len()];
    for t in 0..n {
        match pick(
            snap,
            &facts(t as u64, tried, weights, live),
            NOW_MS,
            &mut rng,
        ) {
            Decision::Backend(b) => got[b] += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    got
}

#[test]
fn of_two_backends_the_one_with_the_lower_cost_always_wins() {
    let snap = snapshot("peak_ewma", &[1, 1]);
    let live = stats(2);
    live[0].record_success(NOW_MS, 80_000);
    live[1].record_success(NOW_MS, 2_000);
    let weights = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5], vec![0.0; 2]);
    assert_eq!(counts(&snap, Some(&weights), &live, &[], 200), vec![0, 200]);
    // 50 requests outstanding on the fast one: 2 ms × 51 > 80 ms × 1.
    let _held: Vec<_> = (0..50).map(|_| live[1].start()).collect();
    assert_eq!(counts(&snap, Some(&weights), &live, &[], 200), vec![200, 0]);
}

#[test]
fn a_slow_backend_among_ten_loses_every_comparison_it_is_drawn_into() {
    let snap = snapshot("peak_ewma", &[1; 10]);
    let live = stats(10);
    for (i, s) in live.iter().enumerate() {
        s.record_success(NOW_MS, if i == 3 { 100_000 } else { 5_000 });
    }
    let weights = PoolWeights::new(&snap.pools[0], vec![0.1; 10], vec![0.0; 10]);
    let got = counts(&snap, Some(&weights), &live, &[], 5_000);
    assert_eq!(got[3], 0, "{got:?}");
    // The draws are uniform: each of the nine others gets about a ninth.
    for (i, &c) in got.iter().enumerate().filter(|&(i, _)| i != 3) {
        assert!((400..=720).contains(&c), "backend {i}: {got:?}");
    }
}

#[test]
fn only_eligible_untried_backends_are_drawn_before_and_after_weights() {
    let snap = snapshot("peak_ewma", &[1, 1, 1]);
    let live = stats(3);
    // Before the engine publishes weights: every backend of the pool.
    assert!(counts(&snap, None, &live, &[], 300).iter().all(|&c| c > 0));
    assert_eq!(counts(&snap, None, &live, &[0, 2], 50), vec![0, 50, 0]);
    // Backend 1 ejected (share 0): never drawn, even when it is the cheapest.
    live[0].record_success(NOW_MS, 50_000);
    live[2].record_success(NOW_MS, 50_000);
    let one_out = PoolWeights::new(&snap.pools[0], vec![0.5, 0.0, 0.5], vec![0.0; 3]);
    let got = counts(&snap, Some(&one_out), &live, &[], 300);
    assert_eq!(got[1], 0, "{got:?}");
    assert_eq!(
        counts(&snap, Some(&one_out), &live, &[0], 50),
        vec![0, 0, 50]
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    assert_eq!(
        pick(
            &snap,
            &facts(0, &[0, 2], Some(&one_out), &live),
            NOW_MS,
            &mut rng
        ),
        Decision::Unavailable(Unavailable::AllTried)
    );
}

#[test]
fn an_idle_backend_is_tried_again_once_its_estimate_has_decayed() {
    let snap = snapshot("peak_ewma", &[1, 1]);
    let live = stats(2);
    live[0].record_success(NOW_MS, 400_000);
    live[1].record_success(NOW_MS, 20_000);
    let weights = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5], vec![0.0; 2]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let at = |now_ms: u64, rng: &mut rand::rngs::StdRng| {
        pick(&snap, &facts(0, &[], Some(&weights), &live), now_ms, rng)
    };
    assert_eq!(at(NOW_MS, &mut rng), Decision::Backend(1));
    // The fast one stays busy (3 in flight, answering in 20 ms) while the
    // slow one idles: its 400 ms decays toward zero, while each new answer
    // of the fast one puts its decayed estimate back at 20 ms. 400 ms falls
    // below 20 ms × 4 after 10 s × ln(400 / 80) ≈ 16 s.
    let _held: Vec<_> = (0..3).map(|_| live[1].start()).collect();
    live[1].record_success(NOW_MS + 10_000, 20_000);
    assert_eq!(at(NOW_MS + 10_000, &mut rng), Decision::Backend(1));
    live[1].record_success(NOW_MS + 20_000, 20_000);
    assert_eq!(at(NOW_MS + 20_000, &mut rng), Decision::Backend(0));
}

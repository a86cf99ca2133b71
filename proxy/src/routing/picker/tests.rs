//! Tests of the picker: round robin, weighted choice, bursts spilling over, tried backends.

use super::*;
use rand::SeedableRng;

pub(super) fn snapshot(mode: &str, weights: &[u32]) -> Snapshot {
    let backends: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                "      - {{addr: \"127.0.0.1:{}\", weight: {w}}}\n",
                9000 + i
            )
        })
        .collect();
    let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    mode: {mode}\n    backends:\n{}routes: [{{pool: p}}]\n",
            backends.concat()
        );
    crate::config::load_str(&yaml, std::path::Path::new(".")).unwrap()
}

pub(super) fn stats(n: usize) -> Vec<Arc<BackendStats>> {
    (0..n).map(|_| Arc::new(BackendStats::new())).collect()
}

pub(super) fn facts<'a>(
    ticket: u64,
    tried: &'a [usize],
    weights: Option<&'a PoolWeights>,
    stats: &'a [Arc<BackendStats>],
) -> RequestFacts<'a> {
    RequestFacts {
        pool: PoolId(0),
        ticket,
        tried,
        weights,
        stats,
        plan: None,
        sticky: None,
        hash_key: None,
    }
}

#[test]
fn round_robin_walks_the_cycle_and_skips_tried_and_ineligible() {
    let snap = snapshot("round_robin", &[2, 1]);
    let live = stats(2);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let picks: Vec<Decision> = (0..6)
        .map(|t| pick(&snap, &facts(t, &[], None, &live), 0, &mut rng))
        .collect();
    use Decision::Backend as B;
    assert_eq!(picks, vec![B(0), B(1), B(0), B(0), B(1), B(0)]);
    assert_eq!(pick(&snap, &facts(0, &[0], None, &live), 0, &mut rng), B(1));
    assert_eq!(
        pick(&snap, &facts(0, &[0, 1], None, &live), 0, &mut rng),
        Decision::Unavailable(Unavailable::AllTried)
    );
    let first_down = PoolWeights::new(&snap.pools[0], vec![0.0, 1.0], vec![0.0, 0.0]);
    assert_eq!(
        pick(&snap, &facts(0, &[], Some(&first_down), &live), 0, &mut rng),
        B(1)
    );
    let all_down = PoolWeights::new(&snap.pools[0], vec![0.0, 0.0], vec![0.0, 0.0]);
    assert_eq!(
        pick(&snap, &facts(0, &[], Some(&all_down), &live), 0, &mut rng),
        Decision::Unavailable(Unavailable::NoEligibleBackend)
    );
}

#[test]
fn round_robin_hands_an_ineligible_backends_turns_out_by_weight() {
    // Weights 1:1:1:1, backend 1 out: the rest must stay at a third each,
    // not backend 2 taking backend 1's turns on top of its own.
    let snap = snapshot("round_robin", &[1, 1, 1, 1]);
    let live = stats(4);
    let one_out = PoolWeights::new(&snap.pools[0], vec![0.33, 0.0, 0.33, 0.34], vec![0.0; 4]);
    let got = distribution(&snap, &one_out, &live, 3_000, 1);
    for (g, want) in got.iter().zip([1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0 / 3.0]) {
        assert!((g - want).abs() < 0.001, "{got:?}");
    }
}

fn distribution(
    snap: &Snapshot,
    weights: &PoolWeights,
    live: &[Arc<BackendStats>],
    n: usize,
    seed: u64,
) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut counts = vec![0usize; weights.shares.len()];
    for t in 0..n {
        match pick(
            snap,
            &facts(t as u64, &[], Some(weights), live),
            0,
            &mut rng,
        ) {
            Decision::Backend(b) => counts[b] += 1,
            other => panic!("{other:?}"),
        }
    }
    counts.iter().map(|&c| c as f64 / n as f64).collect()
}

#[test]
fn weighted_choice_matches_shares_and_is_deterministic() {
    let snap = snapshot("latency", &[1, 1, 1, 1]);
    let live = stats(4);
    let weights = PoolWeights::new(&snap.pools[0], vec![0.6, 0.3, 0.1, 0.0], vec![1.0; 4]);
    let got = distribution(&snap, &weights, &live, 100_000, 1);
    for (g, want) in got.iter().zip([0.6, 0.3, 0.1, 0.0]) {
        assert!((g - want).abs() < 0.01, "{got:?}");
    }
    assert_eq!(
        got,
        distribution(&snap, &weights, &live, 100_000, 1),
        "same seed, same picks"
    );
}

#[test]
fn capacity_shares_hold_under_steady_load_and_bursts_spill_over() {
    let snap = snapshot("capacity", &[1, 1]);
    let live = stats(2);
    let weights = PoolWeights::new(&snap.pools[0], vec![0.8, 0.2], vec![8.0, 2.0]);
    // Both carry what they are expected to: the shares hold.
    let _a: Vec<_> = (0..8).map(|_| live[0].start()).collect();
    let _b: Vec<_> = (0..2).map(|_| live[1].start()).collect();
    let steady = distribution(&snap, &weights, &live, 50_000, 3);
    assert!((steady[0] - 0.8).abs() < 0.01, "{steady:?}");
    // A burst piles 40 requests onto backend 0: new requests go to 1 when drawn second.
    let _burst: Vec<_> = (0..40).map(|_| live[0].start()).collect();
    let burst = distribution(&snap, &weights, &live, 50_000, 3);
    assert!((burst[1] - (0.2 + 0.8 * 0.2)).abs() < 0.01, "{burst:?}");
}

#[test]
fn weighted_choice_avoids_tried_backends() {
    let snap = snapshot("latency", &[1, 1, 1]);
    let live = stats(3);
    let weights = PoolWeights::new(&snap.pools[0], vec![0.98, 0.01, 0.01], vec![0.0; 3]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for t in 0..1000 {
        let d = pick(&snap, &facts(t, &[0], Some(&weights), &live), 0, &mut rng);
        assert!(
            matches!(d, Decision::Backend(1) | Decision::Backend(2)),
            "{d:?}"
        );
    }
    assert_eq!(
        pick(
            &snap,
            &facts(0, &[0, 1, 2], Some(&weights), &live),
            0,
            &mut rng
        ),
        Decision::Unavailable(Unavailable::AllTried)
    );
}

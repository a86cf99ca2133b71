//! Tests of the picker with client regions: plans, fences and spill.

use super::*;
use rand::SeedableRng;
use std::path::Path;

/// us-east: b0, b1; us-west: b2; eu-west: b3; eu-central: b4; no region: b5.
fn snapshot(mode: &str) -> Snapshot {
    let yaml = format!(
        r#"
listeners: [{{address: "127.0.0.1:1"}}]
regions:
  us-east: {{fallback: [us-west, eu-west]}}
  us-west: {{fallback: [us-east]}}
  eu-west: {{fallback: [eu-central, us-east]}}
  eu-central: {{fallback: [eu-west]}}
geo:
  client_region: [{{default: us-east}}]
  residency: [{{clients: [eu-west, eu-central], allowed: [eu-west, eu-central]}}]
pools:
  p:
    mode: {mode}
    backends:
      - {{addr: "10.0.0.1:80", region: us-east}}
      - {{addr: "10.0.0.2:80", region: us-east}}
      - {{addr: "10.0.0.3:80", region: us-west}}
      - {{addr: "10.0.0.4:80", region: eu-west}}
      - {{addr: "10.0.0.5:80", region: eu-central}}
      - {{addr: "10.0.0.6:80"}}
routes: [{{pool: p}}]
"#
    );
    crate::config::load_str(&yaml, Path::new(".")).unwrap()
}

fn weights(snap: &Snapshot, shares: [f64; 6]) -> PoolWeights {
    PoolWeights::new(&snap.pools[0], shares.to_vec(), vec![0.0; 6])
}

fn picks(snap: &Snapshot, w: Option<&PoolWeights>, client: &str, tried: &[usize]) -> Vec<Decision> {
    let stats: Vec<Arc<BackendStats>> = (0..6).map(|_| Arc::new(BackendStats::new())).collect();
    let plan = &snap.geo.as_ref().unwrap().plans[client];
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    (0..200)
        .map(|ticket| {
            let facts = RequestFacts {
                pool: PoolId(0),
                ticket,
                tried,
                weights: w,
                stats: &stats,
                plan: Some(plan),
                sticky: None,
                hash_key: None,
            };
            pick(snap, &facts, 0, &mut rng)
        })
        .collect()
}

#[test]
fn a_candidate_remains_exactly_when_pick_finds_one() {
    let stats: Vec<Arc<BackendStats>> = (0..6).map(|_| Arc::new(BackendStats::new())).collect();
    for mode in ["round_robin", "latency"] {
        let snap = snapshot(mode);
        let plans = &snap.geo.as_ref().unwrap().plans;
        let all = weights(&snap, [0.2, 0.1, 0.2, 0.2, 0.2, 0.1]);
        let eu_out = weights(&snap, [0.3, 0.2, 0.3, 0.0, 0.0, 0.2]);
        for w in [None, Some(&all), Some(&eu_out)] {
            for plan in [None, Some(&plans["us-east"]), Some(&plans["eu-west"])] {
                for tried_set in 0u32..64 {
                    let tried: Vec<usize> = (0..6).filter(|b| tried_set & (1 << b) != 0).collect();
                    let facts = RequestFacts {
                        pool: PoolId(0),
                        ticket: u64::from(tried_set),
                        tried: &tried,
                        weights: w,
                        stats: &stats,
                        plan,
                        sticky: None,
                        hash_key: None,
                    };
                    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
                    let found = pick(&snap, &facts, 0, &mut rng).backend().is_some();
                    assert_eq!(
                        has_candidate(&snap, &facts),
                        found,
                        "{mode}, tried {tried:?}, plan {:?}, weights {}",
                        plan.map(|p| &p.order),
                        w.is_some()
                    );
                }
            }
        }
    }
    // A fenced eu-west client whose eu backends were tried has none left,
    // while backends elsewhere remain for an unfenced one.
    let snap = snapshot("latency");
    let plans = &snap.geo.as_ref().unwrap().plans;
    let w = weights(&snap, [0.2, 0.1, 0.2, 0.2, 0.2, 0.1]);
    let facts = |plan| RequestFacts {
        pool: PoolId(0),
        ticket: 0,
        tried: &[3, 4],
        weights: Some(&w),
        stats: &stats,
        plan,
        sticky: None,
        hash_key: None,
    };
    assert!(!has_candidate(&snap, &facts(Some(&plans["eu-west"]))));
    assert!(has_candidate(&snap, &facts(Some(&plans["us-east"]))));
    assert!(has_candidate(&snap, &facts(None)));
}

#[test]
fn a_shadow_choice_stays_in_the_group_the_request_was_served_in() {
    let snap = snapshot("latency");
    let live = weights(&snap, [0.3, 0.1, 0.2, 0.2, 0.1, 0.1]);
    let same = weights(&snap, [0.3, 0.1, 0.2, 0.2, 0.1, 0.1]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    for chosen in 0..6 {
        for _ in 0..50 {
            let v = rng.random::<f64>();
            assert_eq!(live.shadow_choice(&same, chosen, true, v), Some(chosen));
            assert_eq!(live.shadow_choice(&same, chosen, false, v), Some(chosen));
        }
    }
    // The candidate moves us-east's traffic onto b1 and gives eu-west nothing.
    let other = weights(&snap, [0.0, 0.4, 0.2, 0.0, 0.2, 0.2]);
    assert_eq!(
        live.shadow_choice(&other, 0, true, 0.5),
        Some(1),
        "same region"
    );
    assert_eq!(live.shadow_choice(&other, 2, true, 0.5), Some(2));
    assert_eq!(
        live.shadow_choice(&other, 3, true, 0.5),
        None,
        "no eu-west share"
    );
    // Without a plan, the point is read on the whole pool: b0's interval
    // [0, 0.3) is [0, 0.3) of the candidate too, all of it b1's.
    assert_eq!(live.shadow_choice(&other, 0, false, 0.9), Some(1));
}

fn backends(decisions: &[Decision]) -> std::collections::BTreeSet<usize> {
    decisions
        .iter()
        .map(|d| match d {
            Decision::Backend(b) => *b,
            other => panic!("{other:?}"),
        })
        .collect()
}

const EVEN: [f64; 6] = [1.0 / 6.0; 6];

#[test]
fn clients_stay_in_their_region_while_it_can_serve() {
    for mode in ["latency", "round_robin"] {
        let snap = snapshot(mode);
        let w = weights(&snap, EVEN);
        assert_eq!(
            backends(&picks(&snap, Some(&w), "us-east", &[])),
            [0, 1].into(),
            "{mode}"
        );
        assert_eq!(
            backends(&picks(&snap, Some(&w), "eu-central", &[])),
            [4].into(),
            "{mode}"
        );
    }
}

#[test]
fn unfenced_clients_fall_back_in_order_then_anywhere() {
    let snap = snapshot("latency");
    let east_down = weights(&snap, [0.0, 0.0, 0.25, 0.25, 0.25, 0.25]);
    assert_eq!(
        backends(&picks(&snap, Some(&east_down), "us-east", &[])),
        [2].into(),
        "first fallback"
    );
    let only_unregioned = weights(&snap, [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
    assert_eq!(
        backends(&picks(&snap, Some(&only_unregioned), "us-west", &[])),
        [5].into()
    );
    // A retry avoids what was tried and moves down the fallback list.
    let w = weights(&snap, EVEN);
    assert_eq!(
        backends(&picks(&snap, Some(&w), "us-west", &[2])),
        [0, 1].into()
    );
}

#[test]
fn fenced_clients_never_leak_even_when_their_regions_are_down() {
    for mode in ["latency", "round_robin"] {
        let snap = snapshot(mode);
        let eu_down = weights(&snap, [0.25, 0.25, 0.25, 0.0, 0.0, 0.25]);
        let all = picks(&snap, Some(&eu_down), "eu-west", &[]);
        assert!(
            all.iter()
                .all(|d| *d == Decision::Unavailable(Unavailable::Residency)),
            "{mode}: {all:?}"
        );
        // eu-west down, eu-central up: served by eu-central only, never us-east.
        let west_down = weights(&snap, [0.25, 0.25, 0.0, 0.0, 0.25, 0.25]);
        assert_eq!(
            backends(&picks(&snap, Some(&west_down), "eu-west", &[])),
            [4].into(),
            "{mode}"
        );
        // A retry after eu-central failed does not leave the fence.
        let retry = picks(&snap, Some(&west_down), "eu-west", &[4]);
        assert!(
            retry
                .iter()
                .all(|d| *d == Decision::Unavailable(Unavailable::Residency)),
            "{mode}"
        );
    }
}

/// Where `n` requests of `client` went: count per backend, and how many spilled.
fn tally(snap: &Snapshot, w: &PoolWeights, client: &str, n: u64) -> ([usize; 6], usize) {
    let stats: Vec<Arc<BackendStats>> = (0..6).map(|_| Arc::new(BackendStats::new())).collect();
    let plan = &snap.geo.as_ref().unwrap().plans[client];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut counts, mut spilled) = ([0; 6], 0);
    for ticket in 0..n {
        let facts = RequestFacts {
            pool: PoolId(0),
            ticket,
            tried: &[],
            weights: Some(w),
            stats: &stats,
            plan: Some(plan),
            sticky: None,
            hash_key: None,
        };
        let decision = pick(snap, &facts, 0, &mut rng);
        spilled += usize::from(matches!(decision, Decision::Spilled(_)));
        counts[decision.backend().expect("served")] += 1;
    }
    (counts, spilled)
}

#[test]
fn a_spilling_region_passes_that_fraction_to_the_next_region() {
    let snap = snapshot("latency");
    let mut w = weights(&snap, EVEN);
    w.set_spill("us-east", 0.3);
    let (counts, spilled) = tally(&snap, &w, "us-east", 20_000);
    let moved = counts[2] as f64 / 20_000.0;
    assert!((moved - 0.3).abs() < 0.02, "{counts:?}");
    assert_eq!(spilled, counts[2], "every request in us-west was spilled");
    assert_eq!(counts[3] + counts[4] + counts[5], 0, "{counts:?}");
    // us-west clients are not affected by us-east spilling...
    let (counts, spilled) = tally(&snap, &w, "us-west", 1_000);
    assert_eq!((counts[2], spilled), (1_000, 0));
    // ...and with nowhere later to go, nothing moves.
    let west_down = {
        let mut w = weights(&snap, [0.4, 0.4, 0.0, 0.0, 0.0, 0.2]);
        w.set_spill("us-east", 0.3);
        w
    };
    let (counts, spilled) = tally(&snap, &west_down, "us-east", 1_000);
    assert_eq!((counts[0] + counts[1], spilled), (1_000, 0), "{counts:?}");
}

#[test]
fn hashed_keys_stay_in_their_region_and_spill_as_a_fixed_subset() {
    let snap = snapshot("latency");
    let ids: Vec<&str> = snap.pools[0]
        .backends
        .iter()
        .map(|b| b.id.0.as_str())
        .collect();
    let ring = crate::routing::ring::HashRing::build(&ids, &[100; 6]);
    let mut w = weights(&snap, EVEN).with_ring(Arc::new(ring));
    w.set_spill("us-east", 0.3);
    let stats: Vec<Arc<BackendStats>> = (0..6).map(|_| Arc::new(BackendStats::new())).collect();
    let plan = &snap.geo.as_ref().unwrap().plans["us-east"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut place = |key: u64, weights: &PoolWeights| {
        let facts = RequestFacts {
            pool: PoolId(0),
            ticket: 0,
            tried: &[],
            weights: Some(weights),
            stats: &stats,
            plan: Some(plan),
            sticky: None,
            hash_key: Some(key),
        };
        pick(&snap, &facts, 0, &mut rng)
    };
    let keys: Vec<u64> = (0..4_000u64).map(mix).collect();
    let first: Vec<Decision> = keys.iter().map(|&k| place(k, &w)).collect();
    let again: Vec<Decision> = keys.iter().map(|&k| place(k, &w)).collect();
    assert_eq!(
        first, again,
        "the same key, the same backend, spilled or not"
    );
    let spilled = first.iter().filter(|d| **d == Decision::Spilled(2)).count();
    let share = spilled as f64 / keys.len() as f64;
    assert!((share - 0.3).abs() < 0.03, "{share}");
    assert!(first
        .iter()
        .all(|d| matches!(d, Decision::Backend(0 | 1) | Decision::Spilled(2))));
    // A larger spill only adds keys to those already spilled.
    w.set_spill("us-east", 0.5);
    for (&key, before) in keys.iter().zip(&first) {
        if *before == Decision::Spilled(2) {
            assert_eq!(place(key, &w), Decision::Spilled(2));
        }
    }
}

#[test]
fn spilling_never_crosses_a_fence() {
    let snap = snapshot("latency");
    let mut w = weights(&snap, EVEN);
    w.set_spill("eu-west", 1.0);
    let (counts, spilled) = tally(&snap, &w, "eu-west", 1_000);
    assert_eq!((counts[4], spilled), (1_000, 1_000), "all to eu-central");
    // eu-central down: eu-west keeps its own clients rather than leak.
    let mut central_down = weights(&snap, [0.2, 0.2, 0.2, 0.2, 0.0, 0.2]);
    central_down.set_spill("eu-west", 1.0);
    let (counts, spilled) = tally(&snap, &central_down, "eu-west", 1_000);
    assert_eq!((counts[3], spilled), (1_000, 0), "{counts:?}");
}

#[test]
fn panic_mode_still_respects_fences() {
    // Before the engine publishes (or when it routes to everyone), the
    // picker alone enforces the fence.
    let snap = snapshot("latency");
    assert_eq!(backends(&picks(&snap, None, "eu-west", &[])), [3].into());
    assert_eq!(backends(&picks(&snap, None, "eu-west", &[3])), [4].into());
    let all_tried = picks(&snap, None, "eu-west", &[3, 4]);
    assert!(all_tried
        .iter()
        .all(|d| *d == Decision::Unavailable(Unavailable::Residency)));
}

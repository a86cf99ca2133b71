//! Tests of the picker over priority tiers.

use super::*;
use rand::SeedableRng;
use std::path::Path;

/// us-east (b0, b1) serves; us-west (b2) is a standby region (tier 1);
/// eu-west (b3) is fenced and its own tier-1 standby b4 sits beside it.
fn snapshot() -> Snapshot {
    let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
regions:
  us-east: {fallback: [us-west]}
  us-west: {fallback: [us-east]}
  eu-west: {}
geo:
  client_region: [{default: us-east}]
  residency: [{clients: [eu-west], allowed: [eu-west]}]
pools:
  p:
    regions: {us-west: {priority: 1}}
    backends:
      - {addr: "10.0.0.1:80", region: us-east}
      - {addr: "10.0.0.2:80", region: us-east}
      - {addr: "10.0.0.3:80", region: us-west}
      - {addr: "10.0.0.4:80", region: eu-west}
      - {addr: "10.0.0.5:80", region: eu-west, priority: 1}
routes: [{pool: p}]
"#;
    crate::config::load_str(yaml, Path::new(".")).unwrap()
}

fn tally(snap: &Snapshot, shares: [f64; 5], client: &str, tried: &[usize]) -> [usize; 5] {
    let w = PoolWeights::new(&snap.pools[0], shares.to_vec(), vec![0.0; 5]);
    let stats: Vec<Arc<BackendStats>> = (0..5).map(|_| Arc::new(BackendStats::new())).collect();
    let plan = &snap.geo.as_ref().unwrap().plans[client];
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let mut counts = [0; 5];
    for ticket in 0..10_000 {
        let facts = RequestFacts {
            pool: PoolId(0),
            ticket,
            tried,
            weights: Some(&w),
            stats: &stats,
            plan: Some(plan),
            sticky: None,
            hash_key: None,
        };
        counts[pick(snap, &facts, 0, &mut rng).backend().expect("served")] += 1;
    }
    counts
}

#[test]
fn region_and_backend_priorities_make_tiers() {
    let snap = snapshot();
    let priorities: Vec<u32> = snap.pools[0].backends.iter().map(|b| b.priority).collect();
    assert_eq!(priorities, vec![0, 0, 1, 0, 1]);
    assert_eq!(snap.pools[0].tiers, vec![0, 1]);
}

#[test]
fn every_client_draws_its_tier_first_so_a_standby_region_gets_its_trickle() {
    let snap = snapshot();
    // Tier 0 takes 96%, tier 1 (us-west, and b4) 4%.
    let shares = [0.32, 0.32, 0.02, 0.32, 0.02];
    // us-west's own clients go to tier 0 in us-east, their fallback.
    let west = tally(&snap, shares, "us-west", &[]);
    let standby = west[2] as f64 / 10_000.0;
    assert!((0.03..0.05).contains(&standby), "{west:?}");
    assert_eq!(west[3] + west[4], 0, "nothing crosses to eu-west: {west:?}");
    // us-east clients reach the standby region through their plan too.
    let east = tally(&snap, shares, "us-east", &[]);
    assert!(
        (0.03..0.05).contains(&(east[2] as f64 / 10_000.0)),
        "{east:?}"
    );
}

#[test]
fn a_fenced_client_falls_to_another_tier_inside_its_fence_never_outside() {
    let snap = snapshot();
    // Failover: tier 0 is down everywhere but eu-west's b3, which this
    // request already tried.
    let shares = [0.0, 0.0, 0.5, 0.0, 0.5];
    let eu = tally(&snap, shares, "eu-west", &[]);
    assert_eq!(eu, [0, 0, 0, 0, 10_000]);
    let shares = [0.3, 0.3, 0.02, 0.36, 0.02];
    let eu = tally(&snap, shares, "eu-west", &[3]);
    assert_eq!(eu, [0, 0, 0, 0, 10_000], "the standby inside the fence");
}

//! Tests of sticky choices: canary stickiness and hashed keys.

use super::*;
use rand::SeedableRng;
use std::path::Path;

/// Two stable backends and a canary (backend 2).
fn snapshot() -> Snapshot {
    let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
pools:
  p:
    canary_sticky: {header: x-user}
    backends:
      - {addr: "10.0.0.1:80"}
      - {addr: "10.0.0.2:80"}
      - {addr: "10.0.0.3:80", canary: true}
routes: [{pool: p}]
"#;
    crate::config::load_str(yaml, Path::new(".")).unwrap()
}

/// The backend each of `users` keys lands on, picked `rounds` times with
/// different random draws.
fn placements(snap: &Snapshot, w: &PoolWeights, users: u64, rounds: u64) -> Vec<usize> {
    let stats: Vec<Arc<BackendStats>> = (0..3).map(|_| Arc::new(BackendStats::new())).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    (0..users)
        .map(|user| {
            let key = user.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let seen: Vec<usize> = (0..rounds)
                .map(|ticket| {
                    let facts = RequestFacts {
                        pool: PoolId(0),
                        ticket,
                        tried: &[],
                        weights: Some(w),
                        stats: &stats,
                        plan: None,
                        sticky: Some(key),
                        hash_key: None,
                    };
                    pick(snap, &facts, 0, &mut rng).backend().unwrap()
                })
                .collect();
            assert!(seen.iter().all(|&b| b == seen[0]), "user {user}: {seen:?}");
            seen[0]
        })
        .collect()
}

#[test]
fn users_keep_their_side_and_a_growing_canary_only_gains_users() {
    let snap = snapshot();
    let small = PoolWeights::new(&snap.pools[0], vec![0.45, 0.45, 0.1], vec![0.0; 3]);
    let before = placements(&snap, &small, 2_000, 5);
    let on_canary = before.iter().filter(|&&b| b == 2).count();
    assert!((170..=230).contains(&on_canary), "{on_canary} of 2000");
    // Stable backends shift between themselves and the canary grows.
    let grown = PoolWeights::new(&snap.pools[0], vec![0.2, 0.55, 0.25], vec![0.0; 3]);
    let after = placements(&snap, &grown, 2_000, 1);
    for (user, (b, a)) in before.iter().zip(&after).enumerate() {
        assert!(*b != 2 || *a == 2, "user {user} left the canary");
    }
    let on_canary = after.iter().filter(|&&b| b == 2).count();
    assert!((440..=560).contains(&on_canary), "{on_canary} of 2000");
    // A tripped canary (share 0) sends everyone to stable.
    let tripped = PoolWeights::new(&snap.pools[0], vec![0.5, 0.5, 0.0], vec![0.0; 3]);
    assert!(placements(&snap, &tripped, 500, 1).iter().all(|&b| b != 2));
}

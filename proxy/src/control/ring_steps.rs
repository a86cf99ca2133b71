//! Consistent hashing, off the hot path: in a pool with `consistent_hash`,
//! each recompute steps the ring's vnode counts toward the new shares within
//! `max_key_moves` ([`crate::routing::ring`]) and publishes the ring with
//! the weights. The first ring of a pool is built at its target at once;
//! later changes, a reload's included, are gradual. Keys moving is a
//! `key_move` decision, and `ballast_hash_key_space` shows each backend's
//! part of the key space.

use super::backends::{memory_of, BackendMemories};
use super::events::Event;
use crate::config::{BackendId, Pool, Snapshot};
use crate::routing::picker::PoolWeights;
use crate::routing::ring;
use std::collections::HashMap;
use std::sync::Arc;

/// A pool's last published ring, with the backends its owner indices
/// refer to (a reload may reorder them).
pub struct PublishedRing {
    ids: Vec<BackendId>,
    ring: Arc<ring::HashRing>,
}

/// Each hashed pool's last published ring, by pool name.
pub type Rings = HashMap<String, PublishedRing>;

/// Forget the rings of pools `snapshot` no longer hashes.
pub fn retain(rings: &mut Rings, snapshot: &Snapshot) {
    rings.retain(|pool, _| {
        snapshot
            .pool_by_name(pool)
            .is_some_and(|p| p.policy.consistent_hash.is_some())
    });
}

/// Step the pool's ring toward the new shares within `max_key_moves`
/// and publish it with them.
pub fn step<'a>(
    pool: &'a Pool,
    weights: PoolWeights,
    rings: &mut Rings,
    backends: &mut BackendMemories,
    events: &mut Vec<Event<'a>>,
) -> PoolWeights {
    let Some(hash) = &pool.policy.consistent_hash else {
        return weights;
    };
    let ids: Vec<&str> = pool.backends.iter().map(|b| b.id.0.as_str()).collect();
    let (current, target) = if rings.contains_key(&pool.name) {
        let current: Vec<u32> = pool
            .backends
            .iter()
            .map(|b| backends.get(&b.id).map_or(0, |m| m.vnodes))
            .collect();
        let target = ring::rescaled_targets(&weights.shares, hash.vnodes, &current);
        (current, target)
    } else {
        let target = ring::target_counts(&weights.shares, hash.vnodes);
        (target.clone(), target)
    };
    let band = ring::dead_band(hash.vnodes);
    let step = ring::step_counts(&ids, &current, &target, band, hash.max_key_moves);
    let same_backends =
        |published: &&PublishedRing| published.ids.iter().eq(pool.backends.iter().map(|b| &b.id));
    let before = match rings.get(&pool.name).filter(same_backends) {
        Some(published) => published.ring.clone(),
        None => Arc::new(ring::HashRing::build(&ids, &current)),
    };
    let (after, moved) = if step.counts == current {
        (before, 0.0)
    } else {
        let after = Arc::new(ring::HashRing::build(&ids, &step.counts));
        let moved = ring::moved_fraction(&before, &after);
        (after, moved)
    };
    rings.insert(
        pool.name.clone(),
        PublishedRing {
            ids: pool.backends.iter().map(|b| b.id.clone()).collect(),
            ring: after.clone(),
        },
    );
    let key_space = after.key_space(ids.len());
    let mut changes = Vec::new();
    for (b, backend) in pool.backends.iter().enumerate() {
        memory_of(backends, &backend.id).vnodes = step.counts[b];
        events.push(Event::KeySpace {
            pool: &pool.name,
            backend: &backend.id,
            fraction: key_space[b],
        });
        if current[b] != step.counts[b] {
            changes.push(format!(
                "{} vnodes {} -> {} (target {}, share {:.3})",
                backend.id, current[b], step.counts[b], target[b], weights.shares[b]
            ));
        }
    }
    let reason = if moved > 0.0 {
        format!(
            "{:.2}% of the key space changed owner (budget {:.2}% per interval): {}",
            moved * 100.0,
            hash.max_key_moves * 100.0,
            changes.join(", ")
        )
    } else {
        String::new()
    };
    events.push(Event::RingStepped {
        pool: &pool.name,
        moved,
        reason,
    });
    weights.with_ring(after)
}

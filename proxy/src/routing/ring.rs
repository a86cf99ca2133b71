//! Consistent hashing with virtual nodes whose count follows each backend's
//! live share.
//!
//! Backend `b` places virtual nodes at the fixed points `point(id_b, 0)`,
//! `point(id_b, 1)`, ...: with `n` vnodes it uses the first `n`, so adding or
//! removing a vnode changes one point and leaves the others where they were.
//! A key belongs to the first vnode at or after its hash, clockwise.
//!
//! The engine, off the hot path, computes each backend's target count,
//! proportional to its share (at first `vnodes × eligible backends × share`,
//! so a backend at fair share has `vnodes`; later at the scale that changes
//! the fewest vnodes, see [`rescaled_targets`]), and steps the counts
//! toward it one vnode at a time, charging
//! each step the arc of key space it hands from one owner to another, until
//! the next step would exceed the interval's move budget (`max_key_moves`).
//! The charge is exact per step, so the key space that changes owner in an
//! interval never exceeds the budget. A count within a tenth of `vnodes` of
//! its target (at least one vnode) is left alone, so the jitter of measured
//! shares does not move keys back and forth: a backend's key space follows
//! its share to within a tenth of a fair share. A backend that is no longer eligible
//! (ejected, unhealthy, drained) leaves the ring at once, free of charge: the
//! picker already walks past it to the next backend clockwise, which is where
//! its keys go when its vnodes leave.
//!
//! The published [`HashRing`] is a sorted array of points and their owners:
//! a lookup is a binary search, then a clockwise walk to the first backend
//! the caller accepts (eligible, in scope, not yet tried).

use std::collections::BTreeMap;
use std::ops::Bound::{Excluded, Unbounded};

/// The size of the 64-bit key space.
const KEY_SPACE: f64 = 18_446_744_073_709_551_616.0;
/// A vnode count within this fraction of `vnodes` of its target stays put.
const DEAD_BAND: f64 = 0.1;

/// The ring a pool's picker reads: vnode points sorted, with their owners.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashRing {
    points: Vec<u64>,
    owners: Vec<u32>,
}

impl HashRing {
    /// The ring of backends with these vnode counts (`ids[i]` owns `counts[i]`).
    pub fn build(ids: &[&str], counts: &[u32]) -> Self {
        let map = ring_map(ids, counts);
        Self {
            points: map.keys().copied().collect(),
            owners: map.values().copied().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The owner of `key`: the first backend clockwise from it that `accept`s.
    pub fn lookup(&self, key: u64, accept: impl Fn(usize) -> bool) -> Option<usize> {
        let len = self.points.len();
        let start = self.points.partition_point(|&p| p < key);
        (0..len)
            .map(|step| self.owners[(start + step) % len] as usize)
            .find(|&b| accept(b))
    }

    /// The fraction of the key space each of `backends` owns.
    pub fn key_space(&self, backends: usize) -> Vec<f64> {
        let mut owned = vec![0.0; backends];
        let len = self.points.len();
        if len == 1 {
            owned[self.owners[0] as usize] = 1.0;
            return owned;
        }
        for i in 0..len {
            let previous = self.points[(i + len - 1) % len];
            owned[self.owners[i] as usize] += arc(previous, self.points[i]);
        }
        owned
    }

    /// The owner of `key` with no backend skipped.
    fn owner(&self, key: u64) -> Option<u32> {
        let start = self.points.partition_point(|&p| p < key);
        match start {
            _ if self.points.is_empty() => None,
            i if i == self.points.len() => Some(self.owners[0]),
            i => Some(self.owners[i]),
        }
    }
}

/// The fraction of the key space whose owner differs between two rings
/// (computed exactly over the union of their points).
pub fn moved_fraction(before: &HashRing, after: &HashRing) -> f64 {
    let mut bounds: Vec<u64> = before.points.iter().chain(&after.points).copied().collect();
    bounds.sort_unstable();
    bounds.dedup();
    let len = bounds.len();
    if len == 0 {
        return 0.0;
    }
    if before.is_empty() || after.is_empty() {
        return 1.0;
    }
    (0..len)
        .filter(|&i| before.owner(bounds[i]) != after.owner(bounds[i]))
        .map(|i| match len {
            1 => 1.0,
            _ => arc(bounds[(i + len - 1) % len], bounds[i]),
        })
        .sum()
}

/// Target vnode counts at the nominal scale: `vnodes × eligible × share`,
/// eligible meaning share > 0 (a backend at fair share gets `vnodes`; every
/// eligible backend at least 1).
pub fn target_counts(shares: &[f64], vnodes: u32) -> Vec<u32> {
    let eligible = shares.iter().filter(|&&s| s > 0.0).count() as f64;
    scaled_counts(shares, eligible * f64::from(vnodes))
}

/// Target vnode counts proportional to `shares`, at the scale closest to
/// the `current` counts: the one that changes the fewest vnodes (the
/// share-weighted median of `count / share`), kept within half to twice the
/// nominal scale. Only what is proportional matters for the key space, so
/// when one backend's share falls, only its vnodes go: the others' key
/// space grows by what it gives up, and no key moves between them.
pub fn rescaled_targets(shares: &[f64], vnodes: u32, current: &[u32]) -> Vec<u32> {
    let eligible = shares.iter().filter(|&&s| s > 0.0).count() as f64;
    let nominal = eligible * f64::from(vnodes);
    let mut ratios: Vec<(f64, f64)> = shares
        .iter()
        .zip(current)
        .filter(|(&s, &c)| s > 0.0 && c > 0)
        .map(|(&s, &c)| (f64::from(c) / s, s))
        .collect();
    if ratios.is_empty() {
        return scaled_counts(shares, nominal);
    }
    ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half: f64 = ratios.iter().map(|(_, w)| w).sum::<f64>() / 2.0;
    let mut seen = 0.0;
    let median = ratios
        .iter()
        .find(|(_, w)| {
            seen += w;
            seen >= half
        })
        .map_or(nominal, |(ratio, _)| *ratio);
    scaled_counts(shares, median.clamp(nominal / 2.0, nominal * 2.0))
}

fn scaled_counts(shares: &[f64], scale: f64) -> Vec<u32> {
    shares
        .iter()
        .map(|&share| match share {
            s if s > 0.0 => ((s * scale).round() as u32).max(1),
            _ => 0,
        })
        .collect()
}

/// One interval's step of the vnode counts toward `target`.
#[derive(Debug, Clone, PartialEq)]
pub struct RingStep {
    pub counts: Vec<u32>,
    /// Key space moved by the budgeted steps (at most the budget).
    pub charged: f64,
}

/// How far (in vnodes) a count may be from its target and stay put.
pub fn dead_band(vnodes: u32) -> u32 {
    ((f64::from(vnodes) * DEAD_BAND) as u32).max(1)
}

/// Step `current` toward `target`, moving at most `budget` of the key space;
/// counts within `dead_band` of their target stay put.
/// Backends whose target is 0 leave at once, uncharged (their keys already go
/// to the next backend clockwise); the others move one vnode at a time, the
/// backend furthest from its target first, while the step's arc fits.
pub fn step_counts(
    ids: &[&str],
    current: &[u32],
    target: &[u32],
    dead_band: u32,
    budget: f64,
) -> RingStep {
    let mut counts: Vec<u32> = current
        .iter()
        .zip(target)
        .map(|(&c, &t)| if t == 0 { 0 } else { c })
        .collect();
    let target: Vec<u32> = counts
        .iter()
        .zip(target)
        .map(|(&c, &t)| if c.abs_diff(t) <= dead_band { c } else { t })
        .collect();
    if counts == target {
        return RingStep {
            counts,
            charged: 0.0,
        };
    }
    let mut ring = ring_map(ids, &counts);
    let mut blocked = vec![false; ids.len()];
    let mut charged = 0.0;
    loop {
        let next = (0..ids.len())
            .filter(|&b| !blocked[b] && counts[b] != target[b])
            .max_by_key(|&b| (counts[b].abs_diff(target[b]), std::cmp::Reverse(b)));
        let Some(b) = next else { break };
        let grow = counts[b] < target[b];
        let index = if grow { counts[b] } else { counts[b] - 1 };
        let point = vnode_point(ids[b], index);
        let cost = step_cost(&ring, point, b as u32, grow);
        if charged + cost > budget {
            blocked[b] = true;
            continue;
        }
        charged += cost;
        if grow {
            ring.insert(point, b as u32);
            counts[b] += 1;
        } else {
            ring.remove(&point);
            counts[b] -= 1;
        }
    }
    RingStep { counts, charged }
}

/// The key space that changes owner when `owner` adds (`grow`) or removes
/// its vnode at `point`: the arc from the previous point, unless the next
/// point belongs to `owner` too. Into or out of an empty ring: everything.
fn step_cost(ring: &BTreeMap<u64, u32>, point: u64, owner: u32, grow: bool) -> f64 {
    let others = if grow {
        ring.len()
    } else {
        ring.len().saturating_sub(1)
    };
    let previous = ring
        .range(..point)
        .next_back()
        .or_else(|| ring.iter().next_back())
        .map(|(&p, _)| p);
    let next_owner = ring
        .range((Excluded(point), Unbounded))
        .next()
        .or_else(|| ring.iter().next())
        .map(|(_, &o)| o);
    match previous {
        Some(previous) if others > 0 && next_owner != Some(owner) => arc(previous, point),
        Some(_) if others > 0 => 0.0,
        _ => 1.0,
    }
}

/// Fraction of the key space in `(from, to]`, clockwise.
fn arc(from: u64, to: u64) -> f64 {
    to.wrapping_sub(from) as f64 / KEY_SPACE
}

fn ring_map(ids: &[&str], counts: &[u32]) -> BTreeMap<u64, u32> {
    ids.iter()
        .zip(counts)
        .enumerate()
        .flat_map(|(b, (id, &n))| (0..n).map(move |i| (vnode_point(id, i), b as u32)))
        .collect()
}

/// The fixed position of a backend's `index`-th vnode (the same on every
/// instance and across reloads: it depends only on the backend id).
pub fn vnode_point(id: &str, index: u32) -> u64 {
    super::sticky::hash_parts(id.as_bytes(), &index.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: [&str; 3] = ["p/10.0.0.1:80", "p/10.0.0.2:80", "p/10.0.0.3:80"];

    fn keys() -> impl Iterator<Item = u64> {
        (0..20_000u64).map(|i| super::super::sticky::hash_parts(b"key", &i.to_le_bytes()))
    }

    fn owners(ring: &HashRing) -> Vec<Option<usize>> {
        keys().map(|k| ring.lookup(k, |_| true)).collect()
    }

    #[test]
    fn the_same_key_always_lands_on_the_same_backend() {
        let ring = HashRing::build(&IDS, &[100, 100, 100]);
        let again = HashRing::build(&IDS, &[100, 100, 100]);
        assert_eq!(owners(&ring), owners(&again));
        // 100 random points per backend: each owns a third, give or take
        // about 1/sqrt(100) of it.
        let spread = ring.key_space(3);
        for f in &spread {
            assert!((f - 1.0 / 3.0).abs() < 0.08, "{spread:?}");
        }
        assert!((spread.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn key_space_tracks_share_within_tolerance() {
        let shares = [0.5, 0.3, 0.2];
        let ring = HashRing::build(&IDS, &target_counts(&shares, 100));
        let spread = ring.key_space(3);
        for (got, want) in spread.iter().zip(shares) {
            assert!((got - want).abs() < 0.05, "{spread:?}");
        }
        // Sampled owners agree with the exact arcs.
        let sampled = owners(&ring);
        for (b, want) in spread.iter().enumerate() {
            let got = sampled.iter().filter(|&&o| o == Some(b)).count() as f64 / 20_000.0;
            assert!((got - want).abs() < 0.02, "{b}: {got} vs {want}");
        }
    }

    #[test]
    fn an_overloaded_backend_loses_key_space_gradually_within_the_budget() {
        let budget = 0.05;
        let shares = [0.1, 0.45, 0.45];
        let mut counts = target_counts(&[1.0 / 3.0; 3], 100);
        let mut fractions = vec![HashRing::build(&IDS, &counts).key_space(3)[0]];
        for _ in 0..40 {
            let target = rescaled_targets(&shares, 100, &counts);
            let before = HashRing::build(&IDS, &counts);
            let step = step_counts(&IDS, &counts, &target, dead_band(100), budget);
            let after = HashRing::build(&IDS, &step.counts);
            let moved = moved_fraction(&before, &after);
            assert!(moved <= budget + 1e-12, "moved {moved}");
            assert!(moved <= step.charged + 1e-12, "{moved} > {}", step.charged);
            // Sampled owner maps agree with the exact measure, and only the
            // overloaded backend's keys move.
            let (old, new) = (owners(&before), owners(&after));
            let changed: Vec<_> = old.iter().zip(&new).filter(|(a, b)| a != b).collect();
            let sampled = changed.len() as f64 / 20_000.0;
            assert!((sampled - moved).abs() < 0.01, "{sampled} vs {moved}");
            assert!(changed.iter().all(|(a, _)| **a == Some(0)), "{changed:?}");
            counts = step.counts;
            fractions.push(after.key_space(3)[0]);
        }
        assert!(fractions[1] > 0.2, "not all at once: {fractions:?}");
        assert!(fractions.windows(2).all(|w| w[1] <= w[0] + 1e-12));
        let last = *fractions.last().unwrap();
        assert!((last - 0.1).abs() < 0.05, "{fractions:?}");
        assert_eq!(&counts[1..], &[100, 100], "the others keep their vnodes");
    }

    #[test]
    fn rescaling_keeps_the_counts_that_already_fit() {
        let current = [100, 100, 100];
        assert_eq!(
            rescaled_targets(&[0.49, 0.49, 0.02], 100, &current),
            vec![100, 100, 4]
        );
        assert_eq!(
            rescaled_targets(&[0.5, 0.5, 0.0], 100, &current),
            vec![100, 100, 0]
        );
        // A returning backend joins at the others' scale.
        assert_eq!(
            rescaled_targets(&[0.45, 0.45, 0.1], 100, &[100, 100, 0]),
            vec![100, 100, 22]
        );
        // Far from the nominal scale, it is pulled back within 2x.
        assert_eq!(
            rescaled_targets(&[0.5, 0.5], 100, &[1000, 1000]),
            vec![200, 200]
        );
        assert_eq!(rescaled_targets(&[0.5, 0.5], 100, &[0, 0]), vec![100, 100]);
    }

    #[test]
    fn removing_a_backend_moves_only_its_keys() {
        let ring = HashRing::build(&IDS, &[100, 100, 100]);
        let step = step_counts(&IDS, &[100, 100, 100], &[100, 100, 0], 1, 0.0);
        assert_eq!(step.counts, vec![100, 100, 0]);
        assert_eq!(step.charged, 0.0, "leaving is free");
        let without = HashRing::build(&IDS, &step.counts);
        for (before, after) in owners(&ring).iter().zip(owners(&without)) {
            if *before != Some(2) {
                assert_eq!(*before, after, "a key not on the removed backend moved");
            } else {
                assert_ne!(after, Some(2));
            }
        }
        // Walking past an ineligible backend gives the same owners.
        let walked: Vec<_> = keys().map(|k| ring.lookup(k, |b| b != 2)).collect();
        assert_eq!(walked, owners(&without));
    }

    #[test]
    fn share_jitter_inside_the_dead_band_moves_nothing() {
        let counts = [100, 100, 100];
        let jitter = target_counts(&[0.36, 0.31, 0.33], 100);
        let step = step_counts(&IDS, &counts, &jitter, dead_band(100), 1.0);
        assert_eq!(step.counts, counts);
        assert_eq!(step.charged, 0.0);
        let real = target_counts(&[0.5, 0.25, 0.25], 100);
        let step = step_counts(&IDS, &counts, &real, dead_band(100), 1.0);
        assert_eq!(step.counts, real, "a real change goes all the way");
    }

    #[test]
    fn moved_fraction_is_exact_for_simple_rings() {
        let all = HashRing::build(&IDS, &[50, 50, 50]);
        assert_eq!(moved_fraction(&all, &all), 0.0);
        let gone = HashRing::build(&IDS, &[50, 50, 0]);
        let third = all.key_space(3)[2];
        assert!((moved_fraction(&all, &gone) - third).abs() < 1e-12);
        assert_eq!(moved_fraction(&all, &HashRing::default()), 1.0);
    }

    #[test]
    fn targets_give_fair_share_backends_the_configured_vnodes() {
        assert_eq!(target_counts(&[0.5, 0.5, 0.0], 100), vec![100, 100, 0]);
        assert_eq!(target_counts(&[0.25; 4], 64), vec![64; 4]);
        assert_eq!(target_counts(&[0.999, 0.001], 10), vec![20, 1]);
    }
}

//! The per-request choices that weigh each candidate's live cost rather
//! than keeping shares: the latency mode's least predicted latency, and
//! Linkerd's power of two choices over peak-EWMA round trips.
//!
//! # Least predicted latency (`latency` mode)
//!
//! A first candidate is drawn by share, as the shares would have it. It is
//! kept when it is held to its share (a canary, a pinned backend) or, for
//! [`EXPLORE_FRACTION`] of requests, to keep every backend measured at the
//! rate its share gives. Otherwise the request goes to the backend of the
//! first candidate's priority tier (eligible, not yet tried, not held) with
//! the lowest cost: the latency it should see there now — what requests that
//! joined as many in flight saw, see [`crate::stats::load_latency`] —
//! divided by the engine's prior (errors, reported utilization, a silent
//! reporter, slow start, the region's schedule; 1 when all is well). Groups
//! of up to [`FULL_SCAN`] eligible members are scanned whole, from a random
//! member so ties are broken at random; larger ones compare the first
//! candidate with [`EXTRA_DRAWS`] more drawn uniformly among the eligible. A backend not measured yet, or
//! whose measurements are all stale, costs nothing while it has no request
//! in flight: it is probed one request at a time until its next answer.

use super::{best_untried, Group, PoolWeights, RequestFacts, DRAW_ATTEMPTS};
use crate::config::Pool;
use rand::Rng;

/// Share of requests that keep their share-drawn candidate, to keep every
/// backend measured.
pub const EXPLORE_FRACTION: f64 = 0.01;
/// Groups with up to this many eligible members are scanned whole.
pub const FULL_SCAN: usize = 8;
/// Candidates drawn uniformly beside the first in larger groups.
const EXTRA_DRAWS: usize = 3;

/// The latency mode's choice in `group`; see the module header.
pub(super) fn least_predicted_latency<R: Rng + ?Sized>(
    pool: &Pool,
    weights: &PoolWeights,
    group: &Group,
    facts: &RequestFacts<'_>,
    now_ms: u64,
    rng: &mut R,
) -> Option<usize> {
    let total = group.total();
    if total <= 0.0 {
        return None;
    }
    let draw = |rng: &mut R| -> Option<usize> {
        (0..DRAW_ATTEMPTS)
            .map(|_| group.member_at(rng.random::<f64>() * total))
            .find(|b| !facts.tried.contains(b))
    };
    let Some(first) = draw(rng) else {
        return best_untried(weights, group, facts);
    };
    if weights.steering[first].by_share || rng.random::<f64>() < EXPLORE_FRACTION {
        return Some(first);
    }
    let tier = pool.backends[first].priority;
    let candidate = |b: usize| {
        weights.eligible(b)
            && !weights.steering[b].by_share
            && pool.backends[b].priority == tier
            && !facts.tried.contains(&b)
    };
    let cost = |b: usize| -> f64 {
        let Some(stats) = facts.stats.get(b) else {
            return f64::INFINITY;
        };
        match stats.predicted_latency_us(now_ms) {
            Some(latency) => latency / weights.steering[b].prior.max(f64::MIN_POSITIVE),
            None if stats.in_flight() <= 0 => 0.0,
            None => f64::INFINITY,
        }
    };
    let mut best = (first, cost(first));
    let mut consider = |b: usize| {
        if b != best.0 && candidate(b) {
            let c = cost(b);
            if c < best.1 {
                best = (b, c);
            }
        }
    };
    if group.eligible.len() <= FULL_SCAN {
        let start = rng.random_range(0..group.members.len());
        let (head, tail) = group.members.split_at(start);
        tail.iter().chain(head).for_each(|&b| consider(b));
    } else {
        for _ in 0..EXTRA_DRAWS {
            consider(group.eligible[rng.random_range(0..group.eligible.len())] as usize);
        }
    }
    Some(best.0)
}

/// Linkerd's power of two choices over peak-EWMA costs: two distinct
/// candidates (not yet tried) drawn uniformly at random; the cheaper wins,
/// the first on a tie. One candidate is taken as it is.
pub(super) fn peak_ewma<R: Rng + ?Sized>(
    candidates: &[u32],
    facts: &RequestFacts<'_>,
    now_ms: u64,
    rng: &mut R,
) -> Option<usize> {
    let untried: Vec<u32>;
    let candidates = if facts.tried.is_empty() {
        candidates
    } else {
        untried = candidates
            .iter()
            .copied()
            .filter(|&b| !facts.tried.contains(&(b as usize)))
            .collect();
        &untried
    };
    let (a, b) = match candidates.len() {
        0 => return None,
        1 => return Some(candidates[0] as usize),
        len => {
            let a = rng.random_range(0..len);
            let b = rng.random_range(0..len - 1);
            (a, if b >= a { b + 1 } else { b })
        }
    };
    let (a, b) = (candidates[a] as usize, candidates[b] as usize);
    let cost = |backend: usize| {
        facts
            .stats
            .get(backend)
            .map_or(f64::INFINITY, |s| s.peak_ewma_cost(now_ms))
    };
    Some(if cost(a) <= cost(b) { a } else { b })
}


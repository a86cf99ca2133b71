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
//! the lowest cost: the latency `T` it should see there now — what requests
//! that joined as many in flight saw, see [`crate::stats::load_latency`] —
//! stretched by how much load stretches that backend's latency (`T² /
//! T_alone`, see [`marginal_cost`]), divided by the engine's prior (errors,
//! reported utilization, a silent reporter, slow start, the region's
//! schedule; 1 when all is well). Costs within [`COST_TOLERANCE`] of each
//! other are a tie. A tie is won by the backend whose latency is clearly
//! less stretched by queueing (`T / T_alone`, lower by the same tolerance):
//! a request that would wait behind others on a small fast backend goes to
//! an idle worker of a slower roomy one instead, which keeps the fast one
//! busy without a queue and the pool's throughput at its best (the mean of
//! a closed loop falls with it, by Little's law). Between backends as
//! stretched, the one with fewer requests in flight per unit of weight
//! wins, so near-equal backends share the load steadily. Groups
//! of up to [`FULL_SCAN`] eligible members are scanned whole, from a random
//! member so ties are broken at random; larger ones compare the first
//! candidate with [`EXTRA_DRAWS`] more drawn uniformly among the eligible. A backend not measured yet, or
//! whose measurements are all stale, costs nothing while it has no request
//! in flight: it is probed one request at a time until its next answer.

use super::{best_untried, Group, PoolWeights, RequestFacts, DRAW_ATTEMPTS};
use crate::config::Pool;
use crate::stats::backend::LatencyOutlook;
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
    let assess = |b: usize| -> Assessed {
        let Some(stats) = facts.stats.get(b) else {
            return Assessed::UNUSABLE;
        };
        let in_flight = stats.in_flight().max(0) as f64;
        let load = (in_flight + 1.0) / f64::from(pool.backends[b].weight.max(1));
        let (cost, stretch) = match stats.latency_outlook(now_ms) {
            Some(outlook) => (
                marginal_cost(outlook) / weights.steering[b].prior.max(f64::MIN_POSITIVE),
                outlook.stretch(),
            ),
            None if in_flight == 0.0 => (0.0, 1.0),
            None => (f64::INFINITY, f64::INFINITY),
        };
        Assessed {
            cost,
            stretch,
            load,
        }
    };
    let mut best = (first, assess(first));
    // `first` is assessed once, above, whichever backend the scan meets.
    let mut consider = |b: usize| {
        if b != first && b != best.0 && candidate(b) {
            let assessed = assess(b);
            if assessed.beats(&best.1) {
                best = (b, assessed);
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

/// Costs within this fraction of each other are a tie, broken by load.
const COST_TOLERANCE: f64 = 0.2;

/// A candidate's cost, how much queueing stretches its latency, and its
/// load (in flight + 1, per unit of weight).
#[derive(Debug, Clone, Copy)]
struct Assessed {
    cost: f64,
    stretch: f64,
    load: f64,
}

impl Assessed {
    const UNUSABLE: Assessed = Assessed {
        cost: f64::INFINITY,
        stretch: f64::INFINITY,
        load: f64::INFINITY,
    };

    /// Clearly cheaper; or as cheap (within [`COST_TOLERANCE`]) and clearly
    /// less stretched by queueing; or as cheap, as stretched and less loaded.
    fn beats(&self, other: &Assessed) -> bool {
        let clearly_below = |mine: f64, theirs: f64| mine < theirs * (1.0 - COST_TOLERANCE);
        if clearly_below(self.cost, other.cost) {
            return true;
        }
        if clearly_below(other.cost, self.cost) {
            return false;
        }
        if clearly_below(self.stretch, other.stretch) {
            return true;
        }
        !clearly_below(other.stretch, self.stretch) && self.load < other.load
    }
}

/// What sending one more request costs the pool: for a queue, the latency
/// it will see times how much queueing stretches the backend's latency
/// (`T² / T_alone`, the marginal cost of load on an M/M/1 queue). On a
/// backend with room to spare it is just the latency; on one that queues, a
/// request also delays those behind it, so a queue stops growing well
/// before it is as slow as an idle slower backend.
fn marginal_cost(outlook: LatencyOutlook) -> f64 {
    outlook.now_us * outlook.stretch()
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

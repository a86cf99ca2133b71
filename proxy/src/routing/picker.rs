//! The per-request backend choice, kept pure:
//! `pick(&Snapshot, &RequestFacts, now_ms, &mut rng) -> Decision`.
//!
//! No I/O, no globals; clock and randomness are injected, so tests drive it
//! deterministically.
//!
//! - `round_robin` pools, and any pool before the engine has published
//!   weights, use smooth weighted round robin (nginx's algorithm): one
//!   precomputed cycle of backend indices per pool in which backend `i`
//!   appears `w_i / gcd(w)` times, as evenly interleaved as possible; the
//!   caller hands each request a ticket (a per-pool counter) that indexes it.
//!   Once weights are published, each group (the pool, each region) walks
//!   that cycle filtered to its eligible members, so a backend taken out
//!   hands its turns to the others in proportion to their weights rather
//!   than to whichever follows it in the cycle.
//! - adaptive pools draw two candidates by published share (binary search
//!   over cumulative shares: O(log n)) and keep the first unless it is
//!   overloaded: power of two choices on load *relative to expectation*,
//!   `r = (in_flight + 1) / (expected_in_flight + 1)` where the engine's
//!   expectation is `pool rate × share × latency`. The second candidate wins
//!   only when `r_first > 2` and `r_second < r_first`, so in steady state the
//!   shares hold exactly, while a burst that piles onto one backend between
//!   recomputes spills to another.
//!
//! Backends a request already tried, and backends with share 0 (ejected,
//! unhealthy), are skipped while any other remains.
//!
//! With a regional plan, regions are tried in the plan's order. A region
//! that is spilling (see [`crate::control::spillover`]) passes a request on to the
//! next region with probability equal to its spill fraction, when a later
//! region of the plan can serve; the answer is then [`Decision::Spilled`].
//!
//! Priority tiers (see [`crate::control::tiers`]): the engine's shares already split
//! the pool between tiers, so a draw over the whole pool follows the tier
//! loads. With a regional plan, a request first draws its tier by the
//! tiers' total shares, then walks its plan among that tier's backends; when
//! that tier cannot serve it (within its fence), the other tiers are tried,
//! highest first. A standby region thus gets its pre-warm trickle from
//! every client, and a fence is never crossed to reach a tier.
//!
//! Consistent hashing (see [`super::ring`]): in a pool with a ring, a
//! request carrying the hash key goes to the key's owner on the ring, in
//! whatever scope the plan walk is in: the walk goes clockwise to the first
//! backend of that scope (region and tier) that is eligible and not yet
//! tried. The ring spans the whole pool, so restricted to a region it is
//! still a consistent ring over that region's backends: a key only changes
//! backend within a region when that region's vnodes change. A keyed
//! request also draws its tier and its region spills from its own hash
//! (salted), so the same keys spill while a spill fraction holds. Requests
//! without the key are drawn by share as usual.
//!
//! Sticky canary assignment: a request carrying a user key (hashed to
//! `k ∈ [0, 1)`) is not drawn at random but placed at `k` on its group's
//! cumulative shares, canaries first. A user stays on the same side of the
//! canary while the canary's share holds, and as it grows, users only join it.

use super::ring::HashRing;
use crate::config::{BalanceMode, Pool, PoolId, RegionPlan, Snapshot};
use crate::stats::backend::BackendStats;
use rand::Rng;
use std::sync::Arc;

/// A candidate with more than this many times its expected in-flight load is overloaded.
const OVERLOAD_RATIO: f64 = 2.0;
/// Weighted draws tried before falling back to a scan when candidates were already tried.
const DRAW_ATTEMPTS: usize = 4;

/// Backends drawn from together: the whole pool, or the members of one
/// priority tier in one region.
#[derive(Debug, Clone, PartialEq)]
struct Group {
    region: Option<String>,
    tier: u32,
    /// Backend indices: canaries first, each part in ascending order.
    members: Vec<usize>,
    /// How many members are canaries.
    canaries: usize,
    /// Running sums of the members' shares, for the weighted draw.
    cumulative: Vec<f64>,
    /// The pool's round-robin cycle restricted to eligible members.
    cycle: Vec<u32>,
    /// Fraction of requests reaching this region that move on to the next.
    spill: f64,
}

impl Group {
    /// `members` are reordered canaries first, for sticky assignment.
    fn new(
        pool: &Pool,
        (region, tier): (Option<String>, u32),
        mut members: Vec<usize>,
        shares: &[f64],
    ) -> Self {
        members.sort_by_key(|&b| (pool.backends[b].canary.is_none(), b));
        let canaries = members
            .iter()
            .filter(|&&b| pool.backends[b].canary.is_some())
            .count();
        let cumulative = members
            .iter()
            .scan(0.0, |sum, &b| {
                *sum += shares[b].max(0.0);
                Some(*sum)
            })
            .collect();
        let mut group = Self {
            region,
            tier,
            members,
            canaries,
            cumulative,
            cycle: Vec::new(),
            spill: 0.0,
        };
        group.cycle = pool
            .schedule
            .iter()
            .copied()
            .filter(|&b| shares[b as usize] > 0.0 && group.position(b as usize).is_some())
            .collect();
        group
    }

    /// Whether any member can take a request.
    fn serving(&self) -> bool {
        self.total() > 0.0 || !self.cycle.is_empty()
    }

    fn total(&self) -> f64 {
        self.cumulative.last().copied().unwrap_or(0.0)
    }

    /// Where `backend` is in `members` (binary search in each part).
    fn position(&self, backend: usize) -> Option<usize> {
        let (canaries, stable) = self.members.split_at(self.canaries);
        canaries.binary_search(&backend).ok().or_else(|| {
            stable
                .binary_search(&backend)
                .ok()
                .map(|i| i + self.canaries)
        })
    }

    /// The member whose cumulative interval contains `point` in `[0, total)`.
    fn member_at(&self, point: f64) -> usize {
        let index = self.cumulative.partition_point(|&c| c <= point);
        self.members[index.min(self.members.len() - 1)]
    }
}

/// A pool's published routing weights.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolWeights {
    /// Share of traffic per backend (0 = not eligible); sums to 1 or to 0.
    pub shares: Vec<f64>,
    /// In-flight requests each backend is expected to carry at its share.
    pub expected_in_flight: Vec<f64>,
    all: Group,
    /// One group per priority tier and region (regions include "no region").
    regions: Vec<Group>,
    /// Running sums of the tiers' total shares, in `Pool::tiers` order.
    tier_cumulative: Vec<f64>,
    /// The consistent-hash ring, in pools that hash a request key.
    pub ring: Option<Arc<HashRing>>,
}

impl PoolWeights {
    /// Weights for `pool`'s backends with these shares (same order).
    pub fn new(pool: &Pool, shares: Vec<f64>, expected_in_flight: Vec<f64>) -> Self {
        let all = Group::new(pool, (None, 0), (0..shares.len()).collect(), &shares);
        let mut regions = Vec::new();
        for &tier in &pool.tiers {
            for name in &pool.regions {
                let members: Vec<usize> = (0..shares.len())
                    .filter(|&b| {
                        let backend = &pool.backends[b];
                        backend.region == *name && backend.priority == tier
                    })
                    .collect();
                if !members.is_empty() {
                    regions.push(Group::new(pool, (name.clone(), tier), members, &shares));
                }
            }
        }
        let tier_cumulative = pool
            .tiers
            .iter()
            .scan(0.0, |sum, &tier| {
                *sum += pool
                    .backends
                    .iter()
                    .zip(&shares)
                    .filter(|(b, _)| b.priority == tier)
                    .map(|(_, s)| s.max(0.0))
                    .sum::<f64>();
                Some(*sum)
            })
            .collect();
        Self {
            shares,
            expected_in_flight,
            all,
            regions,
            tier_cumulative,
            ring: None,
        }
    }

    /// The same weights with this consistent-hash ring.
    pub fn with_ring(self, ring: Arc<HashRing>) -> Self {
        Self {
            ring: Some(ring),
            ..self
        }
    }

    fn eligible(&self, backend: usize) -> bool {
        self.shares[backend] > 0.0
    }

    /// Send `fraction` of the requests that reach `region` on to the next
    /// region of their plan.
    pub fn set_spill(&mut self, region: &str, fraction: f64) {
        for group in self
            .regions
            .iter_mut()
            .filter(|g| g.region.as_deref() == Some(region))
        {
            group.spill = fraction.clamp(0.0, 1.0);
        }
    }

    /// The spill fraction of `region` (0 when it is not spilling).
    pub fn spill(&self, region: &str) -> f64 {
        self.regions
            .iter()
            .find(|g| g.region.as_deref() == Some(region))
            .map_or(0.0, |g| g.spill)
    }

    fn region_group(&self, region: Option<&str>, tier: u32) -> Option<&Group> {
        self.regions
            .iter()
            .find(|g| g.tier == tier && g.region.as_deref() == region)
    }

    /// Where a shadow `candidate` (weights of the same pool) would have sent
    /// a request these weights sent to `chosen`: the point `v ∈ [0, 1)` of
    /// `chosen`'s interval on the cumulative shares of the group it was
    /// chosen in (the pool, or its region and tier when `regional`), read as
    /// the same fraction of the candidate's cumulative shares of that group.
    /// `None`: the candidate gives that group nothing.
    pub fn shadow_choice(
        &self,
        candidate: &PoolWeights,
        chosen: usize,
        regional: bool,
        v: f64,
    ) -> Option<usize> {
        let (live_group, candidate_group) = if regional {
            let index = self
                .regions
                .iter()
                .position(|g| g.position(chosen).is_some())?;
            (&self.regions[index], candidate.regions.get(index)?)
        } else {
            (&self.all, &candidate.all)
        };
        let at = live_group.position(chosen)?;
        let low = if at == 0 {
            0.0
        } else {
            live_group.cumulative[at - 1]
        };
        let high = live_group.cumulative[at];
        let (live_total, candidate_total) = (live_group.total(), candidate_group.total());
        if live_total <= 0.0 || candidate_total <= 0.0 {
            return None;
        }
        let fraction = (low + v * (high - low)) / live_total;
        Some(candidate_group.member_at(fraction * candidate_total))
    }

    /// Index (in `Pool::tiers`) of the tier a request is drawn into.
    /// `uniform` is a draw in `[0, 1)`.
    fn draw_tier(&self, uniform: f64) -> usize {
        let total = self.tier_cumulative.last().copied().unwrap_or(0.0);
        if self.tier_cumulative.len() <= 1 || total <= 0.0 {
            return 0;
        }
        let point = uniform * total;
        let index = self.tier_cumulative.partition_point(|&c| c <= point);
        index.min(self.tier_cumulative.len() - 1)
    }
}

/// What the picker knows about one request.
#[derive(Clone, Copy)]
pub struct RequestFacts<'a> {
    pub pool: PoolId,
    /// Successive requests to a pool get successive tickets (round robin).
    pub ticket: u64,
    /// Backend indices this request already tried.
    pub tried: &'a [usize],
    /// The engine's weights for this pool, once published.
    pub weights: Option<&'a PoolWeights>,
    /// Live stats of the pool's backends, for their in-flight counts.
    pub stats: &'a [Arc<BackendStats>],
    /// The client's regional plan, when geo rules place it.
    pub plan: Option<&'a RegionPlan>,
    /// The hash of the request's user key, for sticky canary assignment.
    pub sticky: Option<u64>,
    /// The hash of the request's consistent-hash key.
    pub hash_key: Option<u64>,
}

/// The picker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the request to this backend (index into the pool's backends).
    Backend(usize),
    /// Send it to this backend, in a later region of the plan than one
    /// that could have served it: that region is spilling.
    Spilled(usize),
    /// No backend can take the request.
    Unavailable(Unavailable),
}

/// Why no backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// No backend is eligible (all ejected or unhealthy, or all weights 0).
    NoEligibleBackend,
    /// Every eligible backend was already tried by this request.
    AllTried,
    /// The client is fenced and no backend in its allowed regions can serve.
    Residency,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::NoEligibleBackend => "no eligible backend",
            Unavailable::AllTried => "all eligible backends already tried",
            Unavailable::Residency => "no backend in the client's allowed regions",
        }
    }
}

/// Which backends a choice may consider.
#[derive(Debug, Clone, Copy)]
enum Scope<'a> {
    /// Every backend of the pool.
    Pool,
    /// The backends of one priority tier in one region (`None`: those
    /// without a region).
    Region(Option<&'a str>, u32),
}

impl Scope<'_> {
    fn contains(self, pool: &Pool, backend: usize) -> bool {
        let backend = &pool.backends[backend];
        match self {
            Scope::Pool => true,
            Scope::Region(region, tier) => {
                backend.region.as_deref() == region && backend.priority == tier
            }
        }
    }
}

impl PoolWeights {
    fn group(&self, scope: Scope<'_>) -> Option<&Group> {
        match scope {
            Scope::Pool => Some(&self.all),
            Scope::Region(region, tier) => self.region_group(region, tier),
        }
    }
}

impl Decision {
    /// The chosen backend, spilled or not.
    pub fn backend(self) -> Option<usize> {
        match self {
            Decision::Backend(b) | Decision::Spilled(b) => Some(b),
            Decision::Unavailable(_) => None,
        }
    }
}

/// Most plan regions a request can be spilled past (bits of a `u64`).
const MAX_SPILL_HOPS: usize = 64;

/// Choose a backend for one request. With a regional plan, the plan's
/// regions are tried in order; an unfenced client then falls back to any
/// other region (and to backends without one); a fenced client never does.
pub fn pick<R: Rng + ?Sized>(
    snapshot: &Snapshot,
    facts: &RequestFacts<'_>,
    _now_ms: u64,
    rng: &mut R,
) -> Decision {
    let pool = snapshot.pool(facts.pool);
    let choose = |scope: Scope<'_>, rng: &mut R| -> Option<usize> {
        if let (Some(key), Some(weights)) = (facts.hash_key, facts.weights) {
            if let Some(ring) = &weights.ring {
                return ring.lookup(key, |b| {
                    weights.eligible(b) && !facts.tried.contains(&b) && scope.contains(pool, b)
                });
            }
        }
        match (pool.policy.mode, facts.weights) {
            (BalanceMode::RoundRobin, Some(weights)) => {
                let ticket = facts.sticky.unwrap_or(facts.ticket);
                round_robin(&weights.group(scope)?.cycle, ticket, facts.tried, |_| true)
            }
            (_, None) => round_robin(&pool.schedule, facts.ticket, facts.tried, |b| {
                scope.contains(pool, b)
            }),
            (_, Some(weights)) => weighted(weights, weights.group(scope)?, facts, rng),
        }
    };
    let Some(plan) = facts.plan else {
        return choose(Scope::Pool, rng).map_or_else(
            || Decision::Unavailable(why_unavailable(facts)),
            Decision::Backend,
        );
    };
    // A hashed key draws its tier and its spills from its own hash, so it
    // stays put while loads and spill fractions hold.
    let mut draw = |salt: u64| match facts.hash_key {
        Some(key) => unit_interval(mix(key ^ salt)),
        None => rng.random::<f64>(),
    };
    let drawn = match facts.weights {
        Some(w) if pool.tiers.len() > 1 => w.draw_tier(draw(TIER_SALT)),
        _ => 0,
    };
    let others = (0..pool.tiers.len()).filter(|&t| t != drawn);
    for t in std::iter::once(drawn).chain(others) {
        if let Some(found) = pick_in_tier(pool, plan, pool.tiers[t], facts, rng, &choose) {
            return found;
        }
    }
    Decision::Unavailable(why_unavailable(facts))
}

/// Walk `plan` among the backends of `tier`: its regions in order, passing
/// spilling ones on when a later one can serve (those passed are tried
/// last); then, for an unfenced client, any other region.
fn pick_in_tier<R: Rng + ?Sized>(
    pool: &Pool,
    plan: &RegionPlan,
    tier: u32,
    facts: &RequestFacts<'_>,
    rng: &mut R,
    choose: &impl Fn(Scope<'_>, &mut R) -> Option<usize>,
) -> Option<Decision> {
    let mut passed: u64 = 0;
    for (i, region) in plan.order.iter().enumerate() {
        let spill = facts.weights.map_or(0.0, |w| w.spill(region));
        let spills = |rng: &mut R| match facts.hash_key {
            Some(key) => unit_interval(mix(key ^ (SPILL_SALT + i as u64))) < spill,
            None => rng.random::<f64>() < spill,
        };
        if spill > 0.0 && i < MAX_SPILL_HOPS && spills(rng) {
            let later_serves = facts.weights.is_some_and(|w| {
                plan.order[i + 1..]
                    .iter()
                    .any(|r| w.region_group(Some(r), tier).is_some_and(Group::serving))
            });
            if later_serves {
                passed |= 1 << i;
                continue;
            }
        }
        if let Some(found) = choose(Scope::Region(Some(region), tier), rng) {
            return Some(match passed {
                0 => Decision::Backend(found),
                _ => Decision::Spilled(found),
            });
        }
    }
    let passed_over = plan
        .order
        .iter()
        .enumerate()
        .filter(|(i, _)| passed & (1 << i) != 0);
    for (_, region) in passed_over {
        if let Some(found) = choose(Scope::Region(Some(region), tier), rng) {
            return Some(Decision::Backend(found));
        }
    }
    if !plan.fenced {
        let outside = pool
            .regions
            .iter()
            .filter(|r| r.as_ref().is_none_or(|r| !plan.order.contains(r)));
        for region in outside {
            if let Some(found) = choose(Scope::Region(region.as_deref(), tier), rng) {
                return Some(Decision::Backend(found));
            }
        }
    }
    None
}

/// Whether [`pick`] would find a backend for `facts`: one that is eligible
/// (a positive share once weights are published, a place in the pool's
/// round-robin cycle before), not yet tried, and within the plan's fence
/// (a fenced plan's regions only). Asked before a retry, with the plan the
/// retry would be picked under.
pub fn has_candidate(snapshot: &Snapshot, facts: &RequestFacts<'_>) -> bool {
    let pool = snapshot.pool(facts.pool);
    let eligible = |b: usize| match facts.weights {
        Some(weights) => weights.eligible(b),
        None => pool.schedule.contains(&(b as u32)),
    };
    let in_fence = |b: usize| match facts.plan {
        Some(plan) if plan.fenced => pool.backends[b]
            .region
            .as_ref()
            .is_some_and(|region| plan.order.contains(region)),
        _ => true,
    };
    (0..pool.backends.len()).any(|b| !facts.tried.contains(&b) && eligible(b) && in_fence(b))
}

fn why_unavailable(facts: &RequestFacts<'_>) -> Unavailable {
    match (facts.plan, facts.weights) {
        (Some(plan), _) if plan.fenced => Unavailable::Residency,
        (_, Some(weights)) if weights.all.total() <= 0.0 => Unavailable::NoEligibleBackend,
        _ if facts.tried.is_empty() => Unavailable::NoEligibleBackend,
        _ => Unavailable::AllTried,
    }
}

/// The backend at this request's ticket in `cycle`, or the next one after
/// it that the request has not tried and `allowed` accepts.
fn round_robin(
    cycle: &[u32],
    ticket: u64,
    tried: &[usize],
    allowed: impl Fn(usize) -> bool,
) -> Option<usize> {
    if cycle.is_empty() {
        return None;
    }
    let len = cycle.len();
    let start = (ticket % len as u64) as usize;
    (0..len)
        .map(|step| cycle[(start + step) % len] as usize)
        .find(|&b| !tried.contains(&b) && allowed(b))
}

fn weighted<R: Rng + ?Sized>(
    weights: &PoolWeights,
    group: &Group,
    facts: &RequestFacts<'_>,
    rng: &mut R,
) -> Option<usize> {
    let total = group.total();
    if total <= 0.0 {
        return None;
    }
    if let Some(key) = facts.sticky {
        let placed = group.member_at(unit_interval(key) * total);
        if !facts.tried.contains(&placed) {
            return Some(placed);
        }
    }
    let mut draw = || -> Option<usize> {
        (0..DRAW_ATTEMPTS)
            .map(|_| group.member_at(rng.random::<f64>() * total))
            .find(|b| !facts.tried.contains(b))
    };
    let Some(first) = draw() else {
        return best_untried(weights, group, facts);
    };
    let second = draw().unwrap_or(first);
    if first == second {
        return Some(first);
    }
    let load = |b: usize| {
        let in_flight = facts.stats.get(b).map_or(0, |s| s.in_flight()).max(0) as f64;
        let expected = weights.expected_in_flight.get(b).copied().unwrap_or(0.0);
        (in_flight + 1.0) / (expected + 1.0)
    };
    let (first_load, second_load) = (load(first), load(second));
    if first_load > OVERLOAD_RATIO && second_load < first_load {
        Some(second)
    } else {
        Some(first)
    }
}

/// Salts that make a key's tier and spill draws independent of its ring
/// position and of each other.
const TIER_SALT: u64 = 0x7469_6572;
const SPILL_SALT: u64 = 0x7370_696c_6c00;

/// SplitMix64's finalizer: a well-spread function of `x`.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A hash spread over `[0, 1)`.
fn unit_interval(hash: u64) -> f64 {
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// The eligible member with the largest share that this request has not tried.
fn best_untried(weights: &PoolWeights, group: &Group, facts: &RequestFacts<'_>) -> Option<usize> {
    group
        .members
        .iter()
        .copied()
        .filter(|&b| weights.eligible(b) && !facts.tried.contains(&b))
        .max_by(|&a, &b| weights.shares[a].total_cmp(&weights.shares[b]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn snapshot(mode: &str, weights: &[u32]) -> Snapshot {
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

    fn stats(n: usize) -> Vec<Arc<BackendStats>> {
        (0..n).map(|_| Arc::new(BackendStats::new())).collect()
    }

    fn facts<'a>(
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
    fn shares_hold_under_steady_load_and_bursts_spill_over() {
        let snap = snapshot("latency", &[1, 1]);
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
}

#[cfg(test)]
mod regional_tests {
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

    fn picks(
        snap: &Snapshot,
        w: Option<&PoolWeights>,
        client: &str,
        tried: &[usize],
    ) -> Vec<Decision> {
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
                        let tried: Vec<usize> =
                            (0..6).filter(|b| tried_set & (1 << b) != 0).collect();
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
}

#[cfg(test)]
mod sticky_tests {
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
}

#[cfg(test)]
mod tier_tests {
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
}

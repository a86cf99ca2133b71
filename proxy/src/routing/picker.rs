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
//! - `latency` pools (the default) choose per request by least predicted
//!   latency within the shares' bounds: a first candidate drawn by share
//!   (kept for canaries, pinned backends and a small exploration
//!   fraction), then the backend of its tier whose latency at its current
//!   in-flight count, divided by the engine's prior, is lowest (see
//!   [`cost`]).
//! - `capacity` pools draw two candidates by published share (binary search
//!   over cumulative shares: O(log n)) and keep the first unless it is
//!   overloaded: power of two choices on load *relative to expectation*,
//!   `r = (in_flight + 1) / (expected_in_flight + 1)` where the engine's
//!   expectation is `pool rate × share × latency`. The second candidate wins
//!   only when `r_first > 2` and `r_second < r_first`, so in steady state the
//!   shares hold exactly, while a burst that piles onto one backend between
//!   recomputes spills to another.
//! - `peak_ewma` pools use Linkerd's choice instead: two distinct eligible
//!   members of the group drawn uniformly, the one with the lower
//!   `round-trip estimate × (in_flight + 1)` wins (see
//!   [`crate::stats::peak_ewma`]); shares only say who is eligible.
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
    /// The eligible members (share above 0), for the `peak_ewma` draw.
    eligible: Vec<u32>,
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
            eligible: Vec::new(),
            spill: 0.0,
        };
        group.eligible = group
            .members
            .iter()
            .filter(|&&b| shares[b] > 0.0)
            .map(|&b| b as u32)
            .collect();
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

/// How the latency mode's per-request choice treats one backend.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Steering {
    /// The engine's multiplier of what is measured (errors, reported
    /// utilization, a silent reporter, slow start, schedule); a backend's
    /// predicted latency is divided by it. 1 when all is well.
    pub prior: f64,
    /// Held to its share (a canary, a pinned backend): only the share draw
    /// sends it requests.
    pub by_share: bool,
}

/// A pool's published routing weights.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolWeights {
    /// Share of traffic per backend (0 = not eligible); sums to 1 or to 0.
    pub shares: Vec<f64>,
    /// Per backend, how the latency mode's choice treats it.
    pub steering: Vec<Steering>,
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
        let steering = pool
            .backends
            .iter()
            .map(|b| Steering {
                prior: 1.0,
                by_share: b.canary.is_some(),
            })
            .collect();
        Self {
            shares,
            steering,
            expected_in_flight,
            all,
            regions,
            tier_cumulative,
            ring: None,
        }
    }

    /// The same weights with these priors (see [`Steering::prior`]), and
    /// these backends held to their share beside the canaries.
    pub fn with_steering(mut self, priors: &[f64], held: &[bool]) -> Self {
        for ((steering, &prior), &held) in self.steering.iter_mut().zip(priors).zip(held) {
            steering.prior = prior;
            steering.by_share |= held;
        }
        self
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
    now_ms: u64,
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
            (BalanceMode::PeakEwma, Some(weights)) => {
                cost::peak_ewma(&weights.group(scope)?.eligible, facts, now_ms, rng)
            }
            (BalanceMode::Latency, Some(weights)) => {
                let group = weights.group(scope)?;
                if let Some(placed) = sticky_placement(group, facts) {
                    return Some(placed);
                }
                cost::least_predicted_latency(pool, weights, group, facts, now_ms, rng)
            }
            (BalanceMode::PeakEwma, None) => {
                let in_scope: Vec<u32> = (0..pool.backends.len() as u32)
                    .filter(|&b| pool.backends[b as usize].weight > 0)
                    .filter(|&b| scope.contains(pool, b as usize))
                    .collect();
                cost::peak_ewma(&in_scope, facts, now_ms, rng)
            }
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
        // A pool whose backends are all named by DNS has no tier until a
        // name resolves.
        let Some(&tier) = pool.tiers.get(t) else {
            continue;
        };
        if let Some(found) = pick_in_tier(pool, plan, tier, facts, rng, &choose) {
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
    if let Some(placed) = sticky_placement(group, facts) {
        return Some(placed);
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

/// A request with a user key, placed at its key on the group's cumulative
/// shares (canaries first), unless it already tried that backend.
fn sticky_placement(group: &Group, facts: &RequestFacts<'_>) -> Option<usize> {
    let total = group.total();
    let key = facts.sticky.filter(|_| total > 0.0)?;
    let placed = group.member_at(unit_interval(key) * total);
    (!facts.tried.contains(&placed)).then_some(placed)
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

mod cost;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod latency_tests;

#[cfg(test)]
mod peak_ewma_tests;

#[cfg(test)]
mod regional_tests;

#[cfg(test)]
mod sticky_tests;

#[cfg(test)]
mod tier_tests;

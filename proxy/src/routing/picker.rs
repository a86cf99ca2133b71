//! The per-request backend choice, kept pure:
//! `pick(&Snapshot, &RequestFacts, now, &mut rng) -> Decision`.
//!
//! No I/O, no globals, clock and randomness injected, so tests drive it
//! deterministically. Today's policy is smooth weighted round robin (the
//! nginx algorithm): each pool carries one precomputed cycle of backend
//! indices in which backend `i` appears `w_i / gcd(w)` times, interleaved as
//! evenly as possible; the caller hands each request a ticket (a per-pool
//! counter) and the ticket indexes the cycle. Backends a request already tried
//! are skipped. `now` and `rng` are part of the seam for adaptive policies.

use crate::config::{PoolId, Snapshot};
use rand::Rng;
use std::time::Instant;

/// Longest round-robin cycle kept per pool; larger weight sums are scaled down.
const MAX_SCHEDULE_LEN: u64 = 4096;

/// What the picker knows about one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub pool: PoolId,
    /// Successive requests to a pool get successive tickets.
    pub ticket: u64,
    /// Backend indices this request already tried; avoided while others remain.
    pub tried: &'a [usize],
}

/// The picker's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send the request to this backend (index into the pool's backends).
    Backend(usize),
    /// No backend can take the request.
    Unavailable(Unavailable),
}

/// Why no backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// Every backend has weight 0 (or the pool is empty).
    NoEligibleBackend,
    /// Every eligible backend was already tried by this request.
    AllTried,
}

impl Unavailable {
    pub fn as_str(self) -> &'static str {
        match self {
            Unavailable::NoEligibleBackend => "no eligible backend",
            Unavailable::AllTried => "all eligible backends already tried",
        }
    }
}

/// Choose a backend for one request.
pub fn pick<R: Rng + ?Sized>(
    snapshot: &Snapshot,
    facts: &RequestFacts<'_>,
    _now: Instant,
    _rng: &mut R,
) -> Decision {
    let schedule = &snapshot.pool(facts.pool).schedule;
    if schedule.is_empty() {
        return Decision::Unavailable(Unavailable::NoEligibleBackend);
    }
    let len = schedule.len();
    let start = (facts.ticket % len as u64) as usize;
    (0..len)
        .map(|step| schedule[(start + step) % len] as usize)
        .find(|backend| !facts.tried.contains(backend))
        .map_or(
            Decision::Unavailable(Unavailable::AllTried),
            Decision::Backend,
        )
}

/// One smooth weighted round-robin cycle over `weights` (zero = never chosen).
pub fn smooth_wrr_schedule(weights: &[u32]) -> Vec<u32> {
    let weights = reduce_weights(weights);
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut schedule = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        schedule.push(best as u32);
    }
    schedule
}

/// Divide by the common factor, then scale so the sum fits `MAX_SCHEDULE_LEN`
/// (each positive weight stays at least 1).
fn reduce_weights(weights: &[u32]) -> Vec<u32> {
    let divisor = weights.iter().fold(0u32, |g, &w| gcd(g, w)).max(1);
    let reduced: Vec<u32> = weights.iter().map(|&w| w / divisor).collect();
    let total: u64 = reduced.iter().map(|&w| u64::from(w)).sum();
    if total <= MAX_SCHEDULE_LEN {
        return reduced;
    }
    reduced
        .iter()
        .map(|&w| match w {
            0 => 0,
            w => ((u64::from(w) * MAX_SCHEDULE_LEN / total) as u32).max(1),
        })
        .collect()
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn counts(schedule: &[u32], n: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for &i in schedule {
            c[i as usize] += 1;
        }
        c
    }

    #[test]
    fn schedule_follows_weights_and_interleaves() {
        let s = smooth_wrr_schedule(&[5, 1, 1]);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(counts(&smooth_wrr_schedule(&[1000, 300]), 2), vec![10, 3]);
        assert_eq!(smooth_wrr_schedule(&[0, 2]), vec![1]);
        assert!(smooth_wrr_schedule(&[0, 0]).is_empty());
        assert!(smooth_wrr_schedule(&[]).is_empty());
    }

    #[test]
    fn huge_weights_are_scaled_but_keep_every_backend() {
        let s = smooth_wrr_schedule(&[1_000_000, 999_999, 1]);
        assert!(s.len() as u64 <= MAX_SCHEDULE_LEN + 3);
        let c = counts(&s, 3);
        assert!(c[2] >= 1);
        assert!((c[0] as i64 - c[1] as i64).abs() <= 1);
    }

    fn snapshot(weights: &[u32]) -> Snapshot {
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
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    backends:\n{}routes: [{{pool: p}}]\n",
            backends.concat()
        );
        crate::config::load_str(&yaml, std::path::Path::new(".")).unwrap()
    }

    #[test]
    fn pick_walks_the_cycle_and_skips_tried_backends() {
        let snap = snapshot(&[2, 1]);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let now = Instant::now();
        let picks: Vec<Decision> = (0..6)
            .map(|ticket| {
                let facts = RequestFacts {
                    pool: PoolId(0),
                    ticket,
                    tried: &[],
                };
                pick(&snap, &facts, now, &mut rng)
            })
            .collect();
        use Decision::Backend as B;
        assert_eq!(picks, vec![B(0), B(1), B(0), B(0), B(1), B(0)]);

        let retry = RequestFacts {
            pool: PoolId(0),
            ticket: 0,
            tried: &[0],
        };
        assert_eq!(pick(&snap, &retry, now, &mut rng), B(1));
        let exhausted = RequestFacts {
            pool: PoolId(0),
            ticket: 0,
            tried: &[0, 1],
        };
        assert_eq!(
            pick(&snap, &exhausted, now, &mut rng),
            Decision::Unavailable(Unavailable::AllTried)
        );
    }
}

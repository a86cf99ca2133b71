//! A route's per-client rate limit: a GCRA token bucket per key (the
//! client's address, or a request header's value), kept in a `governor`
//! keyed limiter that lives as long as the configuration that made it.
//! Keys whose bucket is full again are pruned ([`RateLimit::prune`]), so
//! memory follows the clients seen within about one refill period.
//! Limits are per Ballast instance.

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::HeaderName;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// What a request is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKeySource {
    ClientAddress,
    /// A request header's value; requests without it share one bucket.
    Header(HeaderName),
}

/// The key of one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    Address(Option<IpAddr>),
    Header(Option<Box<[u8]>>),
}

/// A route's rate limit and its buckets.
pub struct RateLimit {
    pub requests_per_second: f64,
    pub burst: u32,
    pub key: RateKeySource,
    limiter: DefaultKeyedRateLimiter<RateKey>,
    clock: DefaultClock,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("requests_per_second", &self.requests_per_second)
            .field("burst", &self.burst)
            .field("key", &self.key)
            .field("keys", &self.limiter.len())
            .finish()
    }
}

impl RateLimit {
    /// `requests_per_second` must be positive and `burst` at least 1
    /// (the configuration checks both).
    pub fn new(requests_per_second: f64, burst: u32, key: RateKeySource) -> Option<Self> {
        let period = Duration::from_secs_f64(1.0 / requests_per_second);
        let quota = Quota::with_period(period)?.allow_burst(burst.try_into().ok()?);
        Some(Self {
            requests_per_second,
            burst,
            key,
            limiter: DefaultKeyedRateLimiter::dashmap(quota),
            clock: DefaultClock::default(),
        })
    }

    /// Admit one request under `key`: `Ok`, or `Err` with the whole
    /// seconds (rounded up, at least 1) until it would be admitted.
    pub fn check(&self, key: &RateKey) -> Result<(), u64> {
        match self.limiter.check_key(key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs_f64().ceil().max(1.0) as u64)
            }
        }
    }

    /// Forget the keys whose bucket is full again (they would be admitted
    /// as if new).
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// How many keys are kept.
    pub fn keys(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_admitted_then_refused_with_whole_seconds_and_keys_are_separate() {
        let limit = RateLimit::new(0.5, 3, RateKeySource::ClientAddress).unwrap();
        let a = RateKey::Address(Some("127.0.0.1".parse().unwrap()));
        let b = RateKey::Address(Some("127.0.0.2".parse().unwrap()));
        for _ in 0..3 {
            assert_eq!(limit.check(&a), Ok(()));
        }
        let wait = limit.check(&a).unwrap_err();
        assert!((1..=2).contains(&wait), "{wait}");
        assert_eq!(limit.check(&b), Ok(()));
        assert_eq!(limit.keys(), 2);
    }

    #[test]
    fn full_buckets_are_pruned() {
        let limit = RateLimit::new(1000.0, 1, RateKeySource::ClientAddress).unwrap();
        for i in 0..50u8 {
            let key = RateKey::Address(Some(IpAddr::from([10, 0, 0, i])));
            assert_eq!(limit.check(&key), Ok(()));
        }
        assert_eq!(limit.keys(), 50);
        std::thread::sleep(Duration::from_millis(20));
        limit.prune();
        assert_eq!(limit.keys(), 0);
    }
}

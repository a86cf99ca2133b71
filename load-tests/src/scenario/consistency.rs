//! What the read-your-writes workload saw, from the client side: where the
//! writes went, and whether reads that followed a user's own write were
//! served where that write is already visible.
//!
//! Only complete 2xx/3xx answers whose origin is known are counted. The
//! clients' region is the first backend's (as in the generated
//! configurations); a read is
//! - *fresh* when sent within the replication lag of its user's last write:
//!   served outside the write region, it is **stale**;
//! - *pinned* when sent within the ttl of that write: Ballast should serve
//!   it from the write region;
//! - *free* when its user never wrote or wrote at least the ttl plus
//!   [`BOUNDARY`] ago: it should be served in the clients' region. Reads in
//!   between are not counted as either (the proxy's pin ends at the ttl
//!   after it answered the write, a little before the client's clock says).

use super::load::{Outcome, Traffic};
use super::plan::Scenario;
use std::time::Duration;

/// Reads this close after the ttl are neither pinned nor free.
pub const BOUNDARY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Consistency {
    pub writes: u64,
    /// Writes answered by a backend outside the write region.
    pub writes_elsewhere: u64,
    pub fresh_reads: u64,
    /// Fresh reads answered outside the write region.
    pub stale_reads: u64,
    pub pinned_reads: u64,
    /// Pinned reads answered by the write region.
    pub pinned_at_writer: u64,
    pub free_reads: u64,
    /// Free reads answered in the clients' region.
    pub free_local: u64,
}

impl Consistency {
    /// Fraction of pinned reads the write region answered.
    pub fn pinned_share(&self) -> Option<f64> {
        fraction(self.pinned_at_writer, self.pinned_reads)
    }

    /// Fraction of free reads answered in the clients' region.
    pub fn local_share(&self) -> Option<f64> {
        fraction(self.free_local, self.free_reads)
    }
}

fn fraction(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The counts for a run of `scenario`, when it has a read-your-writes plan.
pub fn measure(scenario: &Scenario, outcomes: &[Outcome]) -> Option<Consistency> {
    let plan = scenario.read_your_writes?;
    let region_of = |backend: usize| scenario.backends.get(backend).and_then(|b| b.region);
    let home = scenario.backends.first().and_then(|b| b.region);
    let mut seen = Consistency::default();
    for outcome in outcomes.iter().filter(|o| !o.is_error()) {
        let Some(region) = outcome.origin.and_then(region_of) else {
            continue;
        };
        let at_writer = region == plan.write_region;
        match outcome.traffic {
            Traffic::Write => {
                seen.writes += 1;
                seen.writes_elsewhere += u64::from(!at_writer);
            }
            Traffic::ReadAfterWrite(since) if since < plan.ttl => {
                if since < plan.replication_lag {
                    seen.fresh_reads += 1;
                    seen.stale_reads += u64::from(!at_writer);
                }
                seen.pinned_reads += 1;
                seen.pinned_at_writer += u64::from(at_writer);
            }
            Traffic::ReadAfterWrite(since) if since < plan.ttl + BOUNDARY => {}
            Traffic::Read | Traffic::ReadAfterWrite(_) => {
                seen.free_reads += 1;
                seen.free_local += u64::from(Some(region) == home);
            }
        }
    }
    Some(seen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::load::Answer;
    use crate::scenario::plan::{catalogue, Pace};

    fn outcome(origin: usize, traffic: Traffic) -> Outcome {
        Outcome {
            sent_at: Duration::ZERO,
            latency: Duration::from_millis(1),
            answer: Answer::Status(200),
            origin: Some(origin),
            traffic,
        }
    }

    #[test]
    fn reads_after_a_write_are_judged_by_where_they_were_served() {
        let scenario = catalogue(Pace::Quick)
            .into_iter()
            .find(|s| s.key == "read-your-writes")
            .unwrap();
        let (replica, primary) = (0, 1);
        let ms = Duration::from_millis;
        let mut failed = outcome(replica, Traffic::ReadAfterWrite(ms(10)));
        failed.answer = Answer::Status(503);
        let outcomes = [
            outcome(primary, Traffic::Write),
            outcome(replica, Traffic::Write),
            outcome(primary, Traffic::ReadAfterWrite(ms(10))),
            outcome(replica, Traffic::ReadAfterWrite(ms(499))),
            outcome(replica, Traffic::ReadAfterWrite(ms(700))),
            outcome(primary, Traffic::ReadAfterWrite(ms(999))),
            outcome(replica, Traffic::ReadAfterWrite(ms(1050))),
            outcome(replica, Traffic::ReadAfterWrite(ms(1100))),
            outcome(primary, Traffic::Read),
            outcome(replica, Traffic::Read),
            failed,
        ];
        let seen = measure(&scenario, &outcomes).unwrap();
        assert_eq!(
            seen,
            Consistency {
                writes: 2,
                writes_elsewhere: 1,
                fresh_reads: 2,
                stale_reads: 1,
                pinned_reads: 4,
                pinned_at_writer: 2,
                free_reads: 3,
                free_local: 2,
            }
        );
        assert_eq!(seen.pinned_share(), Some(0.5));
        let baseline = catalogue(Pace::Quick).swap_remove(0);
        assert_eq!(measure(&baseline, &outcomes), None);
    }
}

//! The decision log: every routing change the engine makes (a share moving,
//! an ejection, a re-admission), with the input that caused it, in a bounded
//! ring buffer that the admin API reads. Only the engine writes, off the hot
//! path; the lock is never held across an await.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::SystemTime;

/// How many decisions are kept.
pub const DECISION_LOG_CAPACITY: usize = 2048;

/// What kind of change was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// A backend's share moved.
    Share,
    /// A backend was ejected after consecutive failures.
    Ejected,
    /// An ejected backend was re-admitted (slow start begins).
    Readmitted,
    /// Active health checks took a backend out.
    Unhealthy,
    /// Active health checks brought a backend back (slow start begins).
    Healthy,
    /// An operator drained, undrained or pinned a backend.
    Override,
    /// A canary's error rate opened its breaker.
    CanaryTripped,
    /// A canary's breaker closed after the cool-down (slow start begins).
    CanaryReadmitted,
    /// One explained request: where it went and why.
    Request,
    /// A region's spill fraction moved (`backend` names the region; the
    /// shares are the old and new fractions).
    Spill,
    /// A standby priority tier started taking more than its pre-warm
    /// trickle (`backend` names the tier; the shares are its old and new load).
    Failover,
    /// A priority tier went back to standby (its pre-warm trickle or nothing).
    Failback,
    /// A pool switched schedule templates (`backend` names the new one, or
    /// `none`; the shares are 0/1: was one active, is one active).
    Schedule,
    /// Keys moved on a consistent-hash ring (`backend` is `ring`; the new
    /// share is the fraction of the key space that changed owner).
    KeyMove,
    /// A route went over (or back under) its event budget in a region
    /// (`backend` names `route@region`; the shares are the old and new usage).
    Budget,
    /// The addresses a backend entry named by DNS stands for changed, or
    /// resolving it failed (`backend` is the name; the shares are the old
    /// and new address counts).
    Discovery,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 16] = [
        DecisionKind::Share,
        DecisionKind::Ejected,
        DecisionKind::Readmitted,
        DecisionKind::Unhealthy,
        DecisionKind::Healthy,
        DecisionKind::Override,
        DecisionKind::CanaryTripped,
        DecisionKind::CanaryReadmitted,
        DecisionKind::Request,
        DecisionKind::Spill,
        DecisionKind::Failover,
        DecisionKind::Failback,
        DecisionKind::Schedule,
        DecisionKind::KeyMove,
        DecisionKind::Budget,
        DecisionKind::Discovery,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Share => "share",
            DecisionKind::Ejected => "ejected",
            DecisionKind::Readmitted => "readmitted",
            DecisionKind::Unhealthy => "unhealthy",
            DecisionKind::Healthy => "healthy",
            DecisionKind::Override => "override",
            DecisionKind::CanaryTripped => "canary_tripped",
            DecisionKind::CanaryReadmitted => "canary_readmitted",
            DecisionKind::Request => "request",
            DecisionKind::Spill => "spill",
            DecisionKind::Failover => "failover",
            DecisionKind::Failback => "failback",
            DecisionKind::Schedule => "schedule",
            DecisionKind::KeyMove => "key_move",
            DecisionKind::Budget => "budget",
            DecisionKind::Discovery => "discovery",
        }
    }
}

/// One routing decision.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutingDecision {
    pub at: SystemTime,
    pub at_ms: u64,
    pub pool: String,
    pub backend: String,
    pub kind: DecisionKind,
    pub old_share: f64,
    pub new_share: f64,
    /// The input that moved, e.g. `p99 12.0ms -> 48.5ms`.
    pub reason: String,
}

/// A bounded, newest-last log of decisions.
pub struct DecisionLog {
    entries: Mutex<VecDeque<RoutingDecision>>,
    capacity: usize,
}

impl DecisionLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(VecDeque::with_capacity(capacity.min(DECISION_LOG_CAPACITY))),
            capacity,
        }
    }

    pub fn record(&self, decision: RoutingDecision) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() == self.capacity {
            entries.pop_front();
        }
        entries.push_back(decision);
    }

    /// The newest `limit` decisions that match `filter`, oldest first.
    pub fn recent(
        &self,
        limit: usize,
        filter: impl Fn(&RoutingDecision) -> bool,
    ) -> Vec<RoutingDecision> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut matching: Vec<RoutingDecision> = entries
            .iter()
            .rev()
            .filter(|d| filter(d))
            .take(limit)
            .cloned()
            .collect();
        matching.reverse();
        matching
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for DecisionLog {
    fn default() -> Self {
        Self::new(DECISION_LOG_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(n: u64, pool: &str) -> RoutingDecision {
        RoutingDecision {
            at: SystemTime::UNIX_EPOCH,
            at_ms: n,
            pool: pool.into(),
            backend: format!("{pool}/b"),
            kind: DecisionKind::Share,
            old_share: 0.5,
            new_share: 0.4,
            reason: "test".into(),
        }
    }

    #[test]
    fn bounded_and_filtered_newest_last() {
        let log = DecisionLog::new(3);
        for n in 0..5 {
            log.record(decision(n, if n % 2 == 0 { "a" } else { "b" }));
        }
        assert_eq!(log.len(), 3);
        let all: Vec<u64> = log.recent(10, |_| true).iter().map(|d| d.at_ms).collect();
        assert_eq!(all, vec![2, 3, 4]);
        let a: Vec<u64> = log
            .recent(10, |d| d.pool == "a")
            .iter()
            .map(|d| d.at_ms)
            .collect();
        assert_eq!(a, vec![2, 4]);
        let last: Vec<u64> = log.recent(1, |_| true).iter().map(|d| d.at_ms).collect();
        assert_eq!(last, vec![4]);
    }
}

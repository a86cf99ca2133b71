//! The one place the control loop's outcomes leave it: the controllers
//! return [`Event`]s, and [`EventSink`] turns each into its log line, its
//! metric and its entry in the [`DecisionLog`], stamped with the engine's
//! `now_ms` and its injected [`WallClock`]. The controllers themselves never
//! touch metrics, logs or the decision log, so they are tested on their
//! events alone.

use crate::config::{BackendId, BalanceMode};
use crate::control::shadow::Prediction;
use crate::routing::shadow::ShadowCounters;
use crate::stats::clock::WallClock;
use crate::telemetry::decisions::{DecisionKind, DecisionLog, RoutingDecision};
use crate::telemetry::metrics::Metrics;
use std::sync::Arc;
use std::time::Duration;

/// Something a controller decided or measured, borrowing its names from
/// the snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Event<'a> {
    /// A decision about one backend that is only recorded: a share moving,
    /// a re-admission, a health verdict changing, an operator override, a
    /// canary breaker closing.
    Backend {
        pool: &'a str,
        backend: &'a BackendId,
        kind: DecisionKind,
        old: f64,
        new: f64,
        reason: String,
    },
    /// A backend was ejected after `failures` consecutive failures.
    Ejected {
        pool: &'a str,
        backend: &'a BackendId,
        old: f64,
        failures: u32,
        duration: Duration,
        reason: String,
    },
    /// A canary's breaker opened.
    CanaryTripped {
        pool: &'a str,
        backend: &'a BackendId,
        old: f64,
        reason: String,
    },
    /// A share moved more than 20 points within 5 minutes.
    ShareSwing {
        pool: &'a str,
        backend: &'a BackendId,
        from: f64,
        to: f64,
    },
    /// The share published for a backend.
    Share {
        pool: &'a str,
        backend: &'a BackendId,
        share: f64,
    },
    /// A region's spill fraction moved (towards region `to`).
    Spill {
        pool: &'a str,
        region: &'a str,
        to: String,
        old: f64,
        new: f64,
        reason: String,
    },
    /// The spill fraction published for a region.
    RegionSpill {
        pool: &'a str,
        region: &'a str,
        spill: f64,
    },
    /// A priority tier's load.
    TierLoad {
        pool: &'a str,
        priority: u32,
        load: f64,
    },
    /// A standby tier started serving (`failover`) or went back to standby.
    TierSwitched {
        pool: &'a str,
        tier: String,
        failover: bool,
        old: f64,
        new: f64,
        reason: String,
    },
    /// Whether a schedule template is the active one.
    ScheduleActive {
        pool: &'a str,
        template: &'a str,
        on: bool,
    },
    /// A pool switched schedule templates (`None`: no template).
    ScheduleSwitched {
        pool: &'a str,
        from: Option<String>,
        to: Option<String>,
        reason: String,
    },
    /// The fraction of a consistent-hash ring's key space a backend owns.
    KeySpace {
        pool: &'a str,
        backend: &'a BackendId,
        fraction: f64,
    },
    /// A ring step moved `moved` of the key space; a decision when non-zero.
    RingStepped {
        pool: &'a str,
        moved: f64,
        reason: String,
    },
    /// A shadow candidate's share for a backend.
    ShadowShare {
        pool: &'a str,
        backend: &'a BackendId,
        share: f64,
    },
    /// The predicted effect of switching to a pool's shadow candidate.
    ShadowPrediction {
        pool: &'a str,
        prediction: Prediction,
    },
    /// A route went over its event budget in a region (`target` is
    /// `route@region`), or back under; `usage` is (old, new).
    Budget {
        pool: &'a str,
        route: &'a str,
        target: String,
        usage: (f64, f64),
        reason: String,
    },
}

impl<'a> Event<'a> {
    /// A decision about a backend that is only recorded.
    pub fn backend(
        pool: &'a str,
        backend: &'a BackendId,
        kind: DecisionKind,
        (old, new): (f64, f64),
        reason: impl Into<String>,
    ) -> Self {
        Event::Backend {
            pool,
            backend,
            kind,
            old,
            new,
            reason: reason.into(),
        }
    }
}

/// Turns events into log lines, metrics and decisions.
pub struct EventSink {
    decisions: Arc<DecisionLog>,
    metrics: Arc<Metrics>,
    /// Stamps decisions; schedules are evaluated against it too.
    clock: WallClock,
}

impl EventSink {
    pub fn new(decisions: Arc<DecisionLog>, metrics: Arc<Metrics>, clock: WallClock) -> Self {
        Self {
            decisions,
            metrics,
            clock,
        }
    }

    pub fn clock(&self) -> &WallClock {
        &self.clock
    }

    pub fn set_clock(&mut self, clock: WallClock) {
        self.clock = clock;
    }

    /// Every event, in order, as happening at `now_ms`.
    pub fn emit_all<'a>(&self, now_ms: u64, events: impl IntoIterator<Item = Event<'a>>) {
        for event in events {
            self.emit(now_ms, event);
        }
    }

    pub fn emit(&self, now_ms: u64, event: Event<'_>) {
        let m = &*self.metrics;
        match event {
            Event::Backend {
                pool,
                backend,
                kind,
                old,
                new,
                reason,
            } => self.decide(now_ms, pool, backend.0.clone(), kind, (old, new), reason),
            Event::Ejected {
                pool,
                backend,
                old,
                failures,
                duration,
                reason,
            } => {
                m.ejections.with_label_values(&[pool]).inc();
                tracing::warn!(pool = %pool, backend = %backend, failures, "ejecting backend for {duration:?}");
                let kind = DecisionKind::Ejected;
                self.decide(now_ms, pool, backend.0.clone(), kind, (old, 0.0), reason);
            }
            Event::CanaryTripped {
                pool,
                backend,
                old,
                reason,
            } => {
                m.canary_trips.with_label_values(&[pool]).inc();
                tracing::warn!(pool = %pool, backend = %backend, "{reason}");
                let kind = DecisionKind::CanaryTripped;
                self.decide(now_ms, pool, backend.0.clone(), kind, (old, 0.0), reason);
            }
            Event::ShareSwing {
                pool,
                backend,
                from,
                to,
            } => {
                tracing::warn!(pool = %pool, backend = %backend, "share moved from {from:.3} to {to:.3} within 5 minutes");
                m.share_swings.with_label_values(&[pool]).inc();
            }
            Event::Share {
                pool,
                backend,
                share,
            } => m
                .backend_share
                .with_label_values(&[pool, backend.0.as_str()])
                .set(share),
            Event::Spill {
                pool,
                region,
                to,
                old,
                new,
                reason,
            } => {
                let verb = if new > old { "more" } else { "less" };
                tracing::info!(
                    pool = %pool, region = %region, to = %to,
                    "spilling {verb}: {old:.2} -> {new:.2} ({reason})"
                );
                let reason = format!("spill:{region}->{to} {reason}");
                let kind = DecisionKind::Spill;
                self.decide(now_ms, pool, region.to_string(), kind, (old, new), reason);
            }
            Event::RegionSpill {
                pool,
                region,
                spill,
            } => m.region_spill.with_label_values(&[pool, region]).set(spill),
            Event::TierLoad {
                pool,
                priority,
                load,
            } => m
                .tier_load
                .with_label_values(&[pool, &priority.to_string()])
                .set(load),
            Event::TierSwitched {
                pool,
                tier,
                failover,
                old,
                new,
                reason,
            } => {
                let kind = if failover {
                    tracing::warn!(pool = %pool, "{reason}");
                    DecisionKind::Failover
                } else {
                    tracing::info!(pool = %pool, "{reason}");
                    DecisionKind::Failback
                };
                self.decide(now_ms, pool, tier, kind, (old, new), reason);
            }
            Event::ScheduleActive { pool, template, on } => m
                .schedule_active
                .with_label_values(&[pool, template])
                .set(if on { 1.0 } else { 0.0 }),
            Event::ScheduleSwitched {
                pool,
                from,
                to,
                reason,
            } => {
                tracing::info!(pool = %pool, "{reason}");
                let shares = (
                    f64::from(u8::from(from.is_some())),
                    f64::from(u8::from(to.is_some())),
                );
                let name = to.unwrap_or_else(|| "none".into());
                self.decide(now_ms, pool, name, DecisionKind::Schedule, shares, reason);
            }
            Event::KeySpace {
                pool,
                backend,
                fraction,
            } => m
                .hash_key_space
                .with_label_values(&[pool, backend.0.as_str()])
                .set(fraction),
            Event::RingStepped {
                pool,
                moved,
                reason,
            } => {
                m.hash_ring_moved.with_label_values(&[pool]).set(moved);
                if moved > 0.0 {
                    tracing::info!(pool = %pool, "{reason}");
                    let kind = DecisionKind::KeyMove;
                    self.decide(now_ms, pool, "ring".into(), kind, (0.0, moved), reason);
                }
            }
            Event::ShadowShare {
                pool,
                backend,
                share,
            } => m
                .shadow_share
                .with_label_values(&[pool, backend.0.as_str()])
                .set(share),
            Event::ShadowPrediction { pool, prediction } => {
                for (policy, outcome) in [
                    ("live", prediction.live),
                    ("candidate", prediction.candidate),
                ] {
                    if let Some(latency) = outcome.latency_s {
                        m.shadow_predicted_latency
                            .with_label_values(&[pool, policy])
                            .set(latency);
                    }
                    if let Some(errors) = outcome.error_rate {
                        m.shadow_predicted_error_rate
                            .with_label_values(&[pool, policy])
                            .set(errors);
                    }
                }
                m.shadow_moved_rps
                    .with_label_values(&[pool])
                    .set(prediction.moved_rps);
            }
            Event::Budget {
                pool,
                route,
                target,
                usage,
                reason,
            } => {
                tracing::info!(route = %route, "{reason}");
                self.decide(now_ms, pool, target, DecisionKind::Budget, usage, reason);
            }
        }
    }

    /// A new configuration: the per-snapshot gauges start empty.
    pub fn reset_gauges(&self) {
        let m = &*self.metrics;
        m.hash_key_space.reset();
        m.hash_ring_moved.reset();
        m.backend_share.reset();
        m.region_spill.reset();
        m.tier_load.reset();
        m.schedule_active.reset();
        m.shadow_share.reset();
        m.shadow_predicted_latency.reset();
        m.shadow_predicted_error_rate.reset();
        m.shadow_moved_rps.reset();
    }

    /// A pool's shadow candidate starts from scratch: its decision counters
    /// restart from zero.
    pub fn start_shadow(&self, pool: &str, mode: BalanceMode) -> ShadowCounters {
        self.forget_shadow(pool);
        let decisions = &self.metrics.shadow_decisions;
        tracing::info!(pool = %pool, mode = mode.as_str(), "shadow candidate starts from scratch");
        ShadowCounters {
            same: decisions.with_label_values(&[pool, "same"]),
            different: decisions.with_label_values(&[pool, "different"]),
        }
    }

    /// Drop a pool's shadow decision counters (a candidate that is gone, or
    /// starts again with other parameters, counts from zero).
    pub fn forget_shadow(&self, pool: &str) {
        for outcome in ["same", "different"] {
            // Absent series are fine: nothing to forget.
            let _ = self
                .metrics
                .shadow_decisions
                .remove_label_values(&[pool, outcome]);
        }
    }

    fn decide(
        &self,
        now_ms: u64,
        pool: &str,
        backend: String,
        kind: DecisionKind,
        (old_share, new_share): (f64, f64),
        reason: String,
    ) {
        self.decisions.record(RoutingDecision {
            at: self.clock.now(),
            at_ms: now_ms,
            pool: pool.to_string(),
            backend,
            kind,
            old_share,
            new_share,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn a_decision_is_stamped_by_the_injected_clock_and_counted() {
        let decisions = Arc::new(DecisionLog::default());
        let metrics = Arc::new(Metrics::new());
        let clock = WallClock::fixed(1_000_000);
        let sink = EventSink::new(decisions.clone(), metrics.clone(), clock);
        let id = BackendId("p/127.0.0.1:9000".into());
        sink.emit(
            42,
            Event::Ejected {
                pool: "p",
                backend: &id,
                old: 0.5,
                failures: 3,
                duration: Duration::from_secs(1),
                reason: "3 consecutive failures".into(),
            },
        );
        let d = &decisions.recent(1, |_| true)[0];
        assert_eq!(d.at, UNIX_EPOCH + Duration::from_secs(1_000_000));
        assert_eq!((d.at_ms, d.kind), (42, DecisionKind::Ejected));
        assert_eq!((d.old_share, d.new_share), (0.5, 0.0));
        assert_eq!(metrics.ejections.with_label_values(&["p"]).get(), 1);
    }
}

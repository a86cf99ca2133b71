//! Tests of the weight engine: tiers, schedules, spillover, the ring,
//! decisions, recompute intervals and canaries (ejection and health are in
//! `ejection_tests`, shadow mode in `shadow_tests`).

use super::*;
use crate::control::inspect::{BackendInspection, RegionInspection, ShadowInspection};
use crate::routing::ring;
use crate::stats::backend::BackendStats;
use std::path::Path;

/// The admin views the tests read, each from its own inspection.
pub(super) trait Views {
    fn inspect(&self, now_ms: u64) -> Vec<Vec<BackendInspection>>;
    fn inspect_regions(&self, now_ms: u64) -> Vec<Vec<RegionInspection>>;
    fn inspect_tiers(&self) -> Vec<Vec<TierLoad>>;
    fn inspect_shadows(&self) -> Vec<Option<ShadowInspection>>;
}

impl Views for Engine {
    fn inspect(&self, now_ms: u64) -> Vec<Vec<BackendInspection>> {
        let pools = self.inspection(now_ms).pools;
        pools.into_iter().map(|p| p.backends).collect()
    }

    fn inspect_regions(&self, now_ms: u64) -> Vec<Vec<RegionInspection>> {
        let pools = self.inspection(now_ms).pools;
        pools.into_iter().map(|p| p.regions).collect()
    }

    fn inspect_tiers(&self) -> Vec<Vec<TierLoad>> {
        let pools = self.inspection(0).pools;
        pools.into_iter().map(|p| p.tiers).collect()
    }

    fn inspect_shadows(&self) -> Vec<Option<ShadowInspection>> {
        let pools = self.inspection(0).pools;
        pools.into_iter().map(|p| p.shadow).collect()
    }
}

pub(super) fn engine(pool_extra: &str, backends: usize) -> Engine {
    let list: Vec<String> = (0..backends)
        .map(|i| format!("{{addr: \"127.0.0.1:{}\"}}", 9000 + i))
        .collect();
    let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n{pool_extra}    backends: [{}]\nroutes: [{{pool: p}}]\n",
            list.join(", ")
        );
    engine_from(&yaml)
}

pub(super) fn engine_from(yaml: &str) -> Engine {
    let snapshot = Arc::new(crate::config::load_str(yaml, Path::new(".")).unwrap());
    Engine::new(
        snapshot,
        Arc::new(LiveState::new()),
        Arc::new(DecisionLog::default()),
        Arc::new(Metrics::new()),
    )
}

/// us-east: backends 0 and 1; us-west: backend 2. Clients default to us-east.
fn regional(pool_extra: &str, with_geo: bool) -> Engine {
    let geo = if with_geo {
        "geo: {client_region: [{default: us-east}]}\n"
    } else {
        ""
    };
    engine_from(&format!(
        r#"
listeners: [{{address: "127.0.0.1:1"}}]
regions:
  us-east: {{fallback: [us-west]}}
  us-west: {{fallback: [us-east]}}
{geo}pools:
  p:
    recompute_interval: 100ms
    max_share: 1.0
{pool_extra}    backends:
      - {{addr: "127.0.0.1:9000", region: us-east}}
      - {{addr: "127.0.0.1:9001", region: us-east}}
      - {{addr: "127.0.0.1:9002", region: us-west}}
routes: [{{pool: p}}]
"#
    ))
}

/// Two primaries (tier 0) and a standby (tier 1) pre-warmed at 2%.
fn tiered() -> Engine {
    engine_from(
        r#"
listeners: [{address: "127.0.0.1:1"}]
pools:
  p:
    recompute_interval: 100ms
    max_share: 1.0
    slow_start: 0s
    prewarm_share: 0.02
    backends:
      - {addr: "127.0.0.1:9000"}
      - {addr: "127.0.0.1:9001"}
      - {addr: "127.0.0.1:9002", priority: 1}
routes: [{pool: p}]
"#,
    )
}

#[test]
fn a_standby_tier_gets_its_trickle_then_fails_over_and_back() {
    let e = tiered();
    traffic(&e, 3, 1_000, 10_000);
    e.tick(1_000);
    let s = shares(&e);
    assert!(
        (s[0] - 0.49).abs() < 1e-9 && (s[1] - 0.49).abs() < 1e-9,
        "{s:?}"
    );
    assert!((s[2] - 0.02).abs() < 1e-9, "pre-warm trickle: {s:?}");
    assert!(e
        .decisions
        .recent(10, |d| d.kind == DecisionKind::Failover)
        .is_empty());

    // Half of tier 0 fails: it keeps 0.5 × 1.4 = 70%.
    stats(&e, 1).record_health_check(false, 1, 1);
    e.tick(1_100);
    let s = shares(&e);
    assert!((s[0] - 0.7).abs() < 1e-9 && s[1] == 0.0, "{s:?}");
    assert!((s[2] - 0.3).abs() < 1e-9, "{s:?}");
    let failover = e.decisions.recent(10, |d| d.kind == DecisionKind::Failover);
    assert_eq!(failover.len(), 1);
    assert_eq!(failover[0].backend, "tier 1");
    assert!(
        failover[0]
            .reason
            .starts_with("failover: tier 1 load 0.020 -> 0.300"),
        "{}",
        failover[0].reason
    );
    let gauge = e.metrics.tier_load.with_label_values(&["p", "1"]).get();
    assert!((gauge - 0.3).abs() < 1e-9, "{gauge}");

    // All of tier 0 fails: the standby takes everything.
    stats(&e, 0).record_health_check(false, 1, 1);
    e.tick(1_200);
    assert_eq!(shares(&e), vec![0.0, 0.0, 1.0]);

    // Tier 0 recovers: back to the trickle, one failback.
    stats(&e, 0).record_health_check(true, 1, 1);
    stats(&e, 1).record_health_check(true, 1, 1);
    e.tick(1_300);
    let s = shares(&e);
    assert!((s[2] - 0.02).abs() < 1e-9, "{s:?}");
    let failback = e.decisions.recent(10, |d| d.kind == DecisionKind::Failback);
    assert_eq!(failback.len(), 1, "{failback:?}");
    let tiers = &e.inspect_tiers()[0];
    assert_eq!(tiers.len(), 2);
    assert!((tiers[1].load - 0.02).abs() < 1e-9 && tiers[0].health == 1.0);
}

/// Unix seconds of 2026-11-30 (a Monday) at `hour`:00 UTC.
fn monday_at(hour: i64) -> i64 {
    crate::config::days_from_civil(2026, 11, 30).unwrap() * 86_400 + hour * 3600
}

#[test]
fn schedules_scale_regions_switch_as_decisions_and_compose_with_the_cap() {
    let schedules = "    smoothing: 1.0\n    schedules:\n      - {name: business-hours, regions: {us-west: 4.0}, days: [mon-fri], from: \"08:00\", to: \"18:00\", utc_offset: \"+01:00\"}\n      - {name: nights, regions: {us-east: 0.5}, from: \"22:00\", to: \"06:00\"}\n";
    let clock = WallClock::fixed(monday_at(3));
    let e = regional(schedules, false).with_wall_clock(clock.clone());
    traffic(&e, 3, 1_000, 10_000);
    // 03:00 UTC: "nights" (business hours are 07:00-17:00 UTC).
    e.tick(1_000);
    let s = shares(&e);
    // Raw weights 0.5, 0.5, 1: us-west gets half.
    assert!((s[2] - 0.5).abs() < 1e-9, "{s:?}");
    // 10:00 UTC: business hours, us-west x4: 4 / (1 + 1 + 4).
    clock.set(monday_at(10));
    e.tick(1_200);
    let s = shares(&e);
    assert!((s[2] - 4.0 / 6.0).abs() < 1e-9, "{s:?}");
    assert!((s[0] - 1.0 / 6.0).abs() < 1e-9, "{s:?}");
    // Still business hours: no new switch.
    e.tick(1_400);
    // 19:00 UTC: none applies, an even split.
    clock.set(monday_at(19));
    e.tick(1_600);
    let s = shares(&e);
    assert!(s.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-9), "{s:?}");
    let switches: Vec<String> = e
        .decisions
        .recent(100, |d| d.kind == DecisionKind::Schedule)
        .iter()
        .map(|d| d.reason.clone())
        .collect();
    assert_eq!(
        switches,
        vec![
            "schedule none -> nights (us-east x0.50)",
            "schedule nights -> business-hours (us-west x4.00)",
            "schedule business-hours -> none (no multipliers)",
        ]
    );
    let share_reasons: Vec<String> = e
        .decisions
        .recent(100, |d| {
            d.kind == DecisionKind::Share && d.backend.ends_with(":9002")
        })
        .iter()
        .map(|d| d.reason.clone())
        .collect();
    assert!(
        share_reasons.iter().any(|r| r == "schedule x1.00 -> x4.00"),
        "{share_reasons:?}"
    );
    let metrics = e.metrics.render();
    assert!(
        metrics.contains("ballast_schedule_active{pool=\"p\",template=\"business-hours\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ballast_schedule_active{pool=\"p\",template=\"nights\"} 0"),
        "{metrics}"
    );

    // The region cap still holds over a schedule.
    let capped = regional(&format!("    region_max_share: 0.5\n{schedules}"), false)
        .with_wall_clock(WallClock::fixed(monday_at(10)));
    traffic(&capped, 3, 1_000, 10_000);
    capped.tick(1_000);
    let s = shares(&capped);
    assert!((s[2] - 0.5).abs() < 1e-9, "{s:?}");
}

#[test]
fn a_schedule_respects_max_share_and_canary_bounds() {
    let pool = |canary: &str| {
        format!(
            r#"
listeners: [{{address: "127.0.0.1:1"}}]
pools:
  p:
    recompute_interval: 100ms
    smoothing: 1.0
    max_share: 0.6
    schedules: [{{name: west-peak, regions: {{us-west: 10.0}}, days: [mon]}}]
    backends:
      - {{addr: "127.0.0.1:9000", region: us-east}}
      - {{addr: "127.0.0.1:9001", region: us-east}}
      - {{addr: "127.0.0.1:9002", region: us-west{canary}}}
routes: [{{pool: p}}]
"#
        )
    };
    // Raw weights 1, 1, 10: us-west would take 10/12, max_share caps it.
    let e = engine_from(&pool("")).with_wall_clock(WallClock::fixed(monday_at(10)));
    traffic(&e, 3, 1_000, 10_000);
    e.tick(1_000);
    let s = shares(&e);
    assert!((s[2] - 0.6).abs() < 1e-9, "{s:?}");
    assert!((s[0] - 0.2).abs() < 1e-9, "{s:?}");
    // A canary in the scheduled region stays within its bounds.
    let e = engine_from(&pool(", canary: {floor: 0.01, max: 0.1}"))
        .with_wall_clock(WallClock::fixed(monday_at(10)));
    traffic(&e, 3, 1_000, 10_000);
    e.tick(1_000);
    let s = shares(&e);
    assert!((s[2] - 0.1).abs() < 1e-9, "canary held at its max: {s:?}");
    assert!((s[0] - 0.45).abs() < 1e-9, "{s:?}");
}

#[test]
fn with_client_regions_a_schedule_sends_clients_on_to_the_next_region() {
    let clock = WallClock::fixed(monday_at(10));
    let e = regional(
        "    schedules: [{name: west-peak, regions: {us-west: 4.0}, days: [mon]}]\n",
        true,
    )
    .with_wall_clock(clock.clone());
    traffic(&e, 3, 1_000, 10_000);
    e.tick(1_000);
    let spill = |e: &Engine, region: &str| {
        e.state().load().weights[0]
            .as_ref()
            .expect("computed")
            .spill(region)
    };
    // us-east (x1) keeps 1/4 of its clients, us-west (x4) all of its own.
    assert!((spill(&e, "us-east") - 0.75).abs() < 1e-9);
    assert_eq!(spill(&e, "us-west"), 0.0);
    let regions = e.inspect_regions(1_000);
    assert!(
        (regions[0][0].spill - 0.75).abs() < 1e-9,
        "{:?}",
        regions[0][0]
    );
    // Sunday: no template, no scheduled spill (and no pressure: none).
    clock.set(monday_at(-10));
    e.tick(1_200);
    assert_eq!(spill(&e, "us-east"), 0.0);
    assert_eq!(e.inspect_regions(1_200)[0][0].spill, 0.0);
}

#[test]
fn a_reload_that_removes_the_active_schedule_restores_the_split() {
    let clock = WallClock::fixed(monday_at(10));
    let e = regional(
        "    smoothing: 1.0\n    schedules: [{name: peak, regions: {us-east: 3.0}, days: [mon]}]\n",
        false,
    )
    .with_wall_clock(clock);
    traffic(&e, 3, 1_000, 10_000);
    e.tick(1_000);
    let s = shares(&e);
    assert!((s[0] - 3.0 / 7.0).abs() < 1e-9, "{s:?}");
    let plain = regional("    smoothing: 1.0\n", false);
    let snapshot = plain.state().load().snapshot.clone();
    e.install(snapshot, 1_100);
    let s = shares(&e);
    assert!(s.iter().all(|x| (x - 1.0 / 3.0).abs() < 1e-9), "{s:?}");
    let last = e.decisions.recent(1, |d| d.kind == DecisionKind::Schedule);
    assert_eq!(last[0].reason, "schedule peak -> none (no multipliers)");
}

#[test]
fn without_client_regions_region_max_share_caps_shares() {
    let e = regional("    region_max_share: 0.5\n", false);
    traffic(&e, 3, 1_000, 10_000);
    e.tick(1_000);
    let s = shares(&e);
    assert!((s[0] + s[1] - 0.5).abs() < 1e-9, "{s:?}");
    assert!((s[2] - 0.5).abs() < 1e-9, "{s:?}");
    let regions = e.inspect_regions(1_000);
    assert_eq!(regions[0][0].region, "us-east");
    assert!((regions[0][0].share - 0.5).abs() < 1e-9);
    assert_eq!(regions[0][0].spill, 0.0, "no spill without client regions");
}

#[test]
fn a_slow_region_spills_step_by_step_and_comes_back_after_the_hold() {
    let e = regional(
        "    spillover: {latency_above: 200ms, step: 0.1, max: 0.5, hold: 1s}\n",
        true,
    );
    let spill = |e: &Engine| {
        e.state().load().weights[0]
            .as_ref()
            .unwrap()
            .spill("us-east")
    };
    // us-east answers in 300 ms, us-west in 20 ms.
    let mut now = 1_000;
    for tick in 0..8 {
        for b in 0..3 {
            let latency_us = if b < 2 { 300_000 } else { 20_000 };
            stats(&e, b).record_success(now, latency_us);
        }
        e.tick(now);
        let expected = (0.1 * (tick + 1) as f64).min(0.5);
        assert!(
            (spill(&e) - expected).abs() < 1e-9,
            "tick {tick}: {}",
            spill(&e)
        );
        now += 100;
    }
    let decisions = e.decisions.recent(100, |d| d.kind == DecisionKind::Spill);
    assert_eq!(decisions.len(), 5, "0.1 .. 0.5, then capped");
    assert_eq!(decisions[0].backend, "us-east");
    assert!(
        decisions[0]
            .reason
            .starts_with("spill:us-east->us-west ewma latency"),
        "{}",
        decisions[0].reason
    );
    let inspected = &e.inspect_regions(1_000)[0][0];
    assert!(
        inspected.pressure.starts_with("high: ewma latency"),
        "{}",
        inspected.pressure
    );
    // us-east recovers: after the hold, the spill steps back to 0.
    let last_out = now - 100;
    let mut back_at = Vec::new();
    for _ in 0..40 {
        for _ in 0..50 {
            stats(&e, 0).record_success(now, 10_000);
            stats(&e, 1).record_success(now, 10_000);
        }
        let before = spill(&e);
        e.tick(now);
        if spill(&e) < before {
            back_at.push(now);
        }
        now += 100;
    }
    assert_eq!(spill(&e), 0.0);
    assert_eq!(back_at.len(), 5, "{back_at:?}");
    assert!(
        back_at[0] >= last_out + 1_000,
        "held: {back_at:?} after {last_out}"
    );
}

pub(super) fn stats(engine: &Engine, backend: usize) -> Arc<BackendStats> {
    engine.state().load().stats.pools[0][backend].clone()
}

pub(super) fn shares(engine: &Engine) -> Vec<f64> {
    engine.state().load().weights[0]
        .as_ref()
        .expect("computed")
        .shares
        .clone()
}

pub(super) fn kinds(engine: &Engine) -> Vec<DecisionKind> {
    engine
        .decisions
        .recent(100, |d| d.kind != DecisionKind::Share)
        .iter()
        .map(|d| d.kind)
        .collect()
}

/// Every backend answers `n` requests in `latency_us` at `now_ms`.
pub(super) fn traffic(engine: &Engine, backends: usize, now_ms: u64, latency_us: u64) {
    for b in 0..backends {
        for _ in 0..20 {
            stats(engine, b).record_success(now_ms, latency_us);
        }
    }
}

fn ring(engine: &Engine) -> Vec<u32> {
    engine.inspect(0)[0]
        .iter()
        .map(|b| b.ring.expect("a ring").0)
        .collect()
}

#[test]
fn the_ring_follows_shares_within_the_move_budget_and_survives_a_reload() {
    let hashed = "    mode: round_robin\n    consistent_hash: {key: {header: x-session}, vnodes: 100, max_key_moves: 0.05}\n";
    let e = engine(hashed, 3);
    e.tick(0);
    assert_eq!(ring(&e), vec![100, 100, 100], "built at its target at once");
    let id = BackendId("p/127.0.0.1:9000".into());
    assert!(e.set_pinned(&id, Some((0.1, Duration::from_secs(600))), 0));
    let mut counts = vec![ring(&e)[0]];
    for tick in 1..=30 {
        e.tick(tick * 100);
        counts.push(ring(&e)[0]);
    }
    let moves = e.decisions.recent(100, |d| d.kind == DecisionKind::KeyMove);
    assert!(moves.len() >= 4, "{counts:?}");
    assert!(moves.iter().all(|d| d.new_share <= 0.05 + 1e-12));
    assert!(counts.windows(2).all(|w| w[1] <= w[0]), "{counts:?}");
    assert!(counts[1] > 30, "gradual: {counts:?}");
    assert!(
        // 0.1 : 0.45 : 0.45 at the others' scale (100 vnodes for 0.45).
        counts.last().unwrap().abs_diff(22) <= ring::dead_band(100),
        "{counts:?}"
    );

    // A reload that adds a backend keeps the others' vnodes; the new one
    // starts empty and grows within the budget.
    let before = ring(&e);
    let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n{hashed}    backends: [{}]\nroutes: [{{pool: p}}]\n",
            (0..4)
                .map(|i| format!("{{addr: \"127.0.0.1:{}\"}}", 9000 + i))
                .collect::<Vec<_>>()
                .join(", ")
        );
    let snapshot = Arc::new(crate::config::load_str(&yaml, Path::new(".")).unwrap());
    let moves_before = e
        .decisions
        .recent(1000, |d| d.kind == DecisionKind::KeyMove)
        .len();
    e.install(snapshot, 3_100);
    let after = ring(&e);
    let moved = e
        .decisions
        .recent(1000, |d| d.kind == DecisionKind::KeyMove);
    assert!(moved[moves_before..]
        .iter()
        .all(|d| d.new_share <= 0.05 + 1e-12));
    assert!(after[3] > 0 && after[3] < 100, "{before:?} -> {after:?}");
}

#[test]
fn share_changes_are_decisions_with_reasons_and_big_swings_are_counted() {
    let e = engine(
        "    smoothing: 1.0\n    max_share: 1.0\n    min_share: 0.0\n",
        2,
    );
    traffic(&e, 2, 1_000, 10_000);
    e.tick(1_000);
    for _ in 0..50 {
        stats(&e, 1).record_success(1_050, 100_000);
    }
    e.tick(1_100);
    let decisions = e
        .decisions
        .recent(10, |d| d.kind == DecisionKind::Share && d.at_ms == 1_100);
    let slow = decisions
        .iter()
        .find(|d| d.backend.ends_with(":9001"))
        .expect("a decision for the slowed backend");
    assert!(slow.new_share < slow.old_share);
    assert!(slow.reason.starts_with("latency "), "{}", slow.reason);
    let swings = e.metrics.share_swings.with_label_values(&["p"]).get();
    assert_eq!(swings, 2, "both shares moved more than 20 points");
}

#[test]
fn pools_recompute_on_their_own_interval() {
    let e = engine("", 2);
    e.tick(1_000);
    let first = e.state().load_full();
    e.tick(1_050);
    assert!(
        Arc::ptr_eq(&first, &e.state().load_full()),
        "not due yet: nothing published"
    );
    e.tick(1_100);
    assert!(!Arc::ptr_eq(&first, &e.state().load_full()));
}

/// A pool of two stable backends and a canary (index 2) with `policy`.
fn canary_engine(policy: &str) -> Engine {
    let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    recompute_interval: 100ms\n    max_share: 1.0\n    slow_start: 10s\n    backends: [{{addr: \"127.0.0.1:9000\"}}, {{addr: \"127.0.0.1:9001\"}}, {{addr: \"127.0.0.1:9002\", canary: {policy}}}]\nroutes: [{{pool: p}}]\n"
        );
    engine_from(&yaml)
}

/// `n` answers from `backend` at `now_ms` taking `latency_us`, `errors` of them failures.
fn answers(e: &Engine, backend: usize, now_ms: u64, n: u64, latency_us: u64, errors: u64) {
    for k in 0..n {
        if k < errors {
            stats(e, backend).record_failure(now_ms, Some(latency_us));
        } else {
            stats(e, backend).record_success(now_ms, latency_us);
        }
    }
}

#[test]
fn a_healthy_canary_keeps_its_floor_even_when_slower() {
    let e = canary_engine("{floor: 0.05, max: 0.25}");
    let mut now = 1_000;
    for _ in 0..30 {
        answers(&e, 0, now, 20, 5_000, 0);
        answers(&e, 1, now, 20, 5_000, 0);
        answers(&e, 2, now, 20, 200_000, 0);
        e.tick(now);
        now += 100;
    }
    let out = shares(&e);
    assert!(
        (out[2] - 0.05).abs() < 1e-9,
        "floor holds for a 40x slower canary: {out:?}"
    );
    assert!((out.iter().sum::<f64>() - 1.0).abs() < 1e-9);
}

#[test]
fn a_faster_canary_grows_only_to_its_max() {
    let e = canary_engine("{floor: 0.01, max: 0.25}");
    let mut now = 1_000;
    for _ in 0..30 {
        answers(&e, 0, now, 20, 50_000, 0);
        answers(&e, 1, now, 20, 50_000, 0);
        answers(&e, 2, now, 20, 1_000, 0);
        e.tick(now);
        now += 100;
    }
    let out = shares(&e);
    assert!((out[2] - 0.25).abs() < 1e-9, "capped at max: {out:?}");
}

#[test]
fn the_breaker_trips_on_an_error_burst_and_readmits_after_cool_down() {
    let e = canary_engine(
        "{floor: 0.05, max: 0.25, max_error_rate: 0.05, min_requests: 20, cooldown: 3s}",
    );
    let mut now = 1_000;
    for _ in 0..20 {
        answers(&e, 0, now, 20, 5_000, 0);
        answers(&e, 1, now, 20, 5_000, 0);
        answers(&e, 2, now, 10, 5_000, 0);
        e.tick(now);
        now += 100;
    }
    assert!(shares(&e)[2] >= 0.05);
    // From now on, 10% of the canary's answers fail.
    let burst_start = now;
    let mut tripped_at = None;
    while tripped_at.is_none() && now < burst_start + 5_000 {
        answers(&e, 0, now, 20, 5_000, 0);
        answers(&e, 1, now, 20, 5_000, 0);
        answers(&e, 2, now, 10, 5_000, 1);
        e.tick(now);
        if shares(&e)[2] == 0.0 {
            tripped_at = Some(now);
        }
        now += 100;
    }
    let tripped_at = tripped_at.expect("the breaker opened");
    assert!(
        tripped_at - burst_start <= 2_000,
        "within 2 seconds: {} ms",
        tripped_at - burst_start
    );
    assert_eq!(kinds(&e), vec![DecisionKind::CanaryTripped]);
    assert_eq!(e.metrics.canary_trips.with_label_values(&["p"]).get(), 1);

    e.tick(tripped_at + 2_900);
    assert_eq!(shares(&e)[2], 0.0, "still cooling down");
    e.tick(tripped_at + 3_000);
    let back = shares(&e)[2];
    assert!(
        (0.05 - 1e-9..0.1).contains(&back),
        "back at its floor, ramping: {back}"
    );
    assert_eq!(
        kinds(&e),
        vec![DecisionKind::CanaryTripped, DecisionKind::CanaryReadmitted]
    );
    // The errors of the burst are still in the 10 s window: they do not re-trip it.
    e.tick(tripped_at + 3_100);
    assert!(shares(&e)[2] > 0.0);
}

//! The scenarios whose origins have finite capacity: each backend has a
//! number of workers and a FIFO queue (see [`crate::workers`]), so latency
//! grows with the load a backend gets and sending everything to the
//! fastest one is punished.
//!
//! A backend's capacity is workers ÷ mean latency (requests per second),
//! and it is also its configured `capacity` (Ballast) and static weight
//! (the others): the operator knows what each backend was sized for, not
//! what it does now. Each scenario states the utilization it offers: for
//! an open loop, its rate ÷ the fleet's capacity ([`open_rate`]); for a
//! closed loop, its clients ÷ the fleet's workers ([`closed_clients`]), the
//! share of the workers the clients could keep busy at once.

use super::plan::{
    backend, by_pace, mark, seconds, set_latency, BackendSpec, Change, Load, Pace, Scenario,
};
use crate::behaviour::{BehaviourUpdate, Limit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// A backend of `workers` workers at `latency_ms`, configured with the
/// capacity that gives.
fn finite(name: &'static str, latency_ms: f64, workers: u32) -> BackendSpec {
    let spec = BackendSpec {
        workers: Some(workers),
        ..backend(name, latency_ms, 0)
    };
    with_capacity(spec)
}

/// `spec` configured with the capacity its workers and latency give.
fn with_capacity(spec: BackendSpec) -> BackendSpec {
    let capacity = spec
        .sustainable_rate()
        .map_or(0, |rate| rate.round() as u64);
    BackendSpec {
        capacity: capacity.max(1),
        ..spec
    }
}

/// The fleet's capacity in requests per second.
pub fn fleet_capacity(backends: &[BackendSpec]) -> f64 {
    backends
        .iter()
        .filter_map(BackendSpec::sustainable_rate)
        .sum()
}

/// The open-loop rate that offers `utilization` of the fleet's capacity.
pub fn open_rate(backends: &[BackendSpec], utilization: f64) -> u32 {
    (fleet_capacity(backends) * utilization).round() as u32
}

/// The closed-loop clients that could keep `utilization` of the fleet's
/// workers busy.
pub fn closed_clients(backends: &[BackendSpec], utilization: f64) -> u32 {
    let workers: u32 = backends.iter().filter_map(|b| b.workers).sum();
    (f64::from(workers) * utilization).round() as u32
}

fn workers_change(at: Duration, backend: usize, workers: u32) -> Change {
    Change {
        at,
        backend,
        update: BehaviourUpdate {
            workers: Some(Limit::At(workers)),
            ..BehaviourUpdate::default()
        },
    }
}

fn percent(utilization: f64) -> String {
    format!("{:.0}%", utilization * 100.0)
}

/// Full pace only: `b` alternates 80 ms / 2 ms every second.
pub fn flapping_1s() -> Scenario {
    let (start, duration) = (seconds(6.0), seconds(24.0));
    let backends = vec![finite("a", 10.0, 6), finite("b", 10.0, 6)];
    let utilization = 0.35;
    let rate = open_rate(&backends, utilization);
    let flips = (duration - start).as_secs() as u32;
    let changes = (0..flips)
        .map(|flip| {
            let ms = if flip % 2 == 0 { 80.0 } else { 2.0 };
            set_latency(start + seconds(1.0) * flip, 1, ms)
        })
        .collect();
    Scenario {
        key: "flapping-1s",
        title: "Flapping every second (finite capacity)",
        story: format!(
            "Two backends of 6 workers at 10 ms (600 req/s each); from t={}s `b` alternates \
             between 80 ms (75 req/s) and 2 ms (3000 req/s) every second. Open loop at {rate} \
             req/s: {} of the nominal capacity, 62% of the fleet's while `b` is slow. A policy \
             that keeps sending `b` its nominal half queues requests there in every slow second.",
            start.as_secs(),
            percent(utilization),
        ),
        backends,
        duration,
        load: Load::Open { rate },
        changes,
        marks: vec![mark(start, "flapping")],
        focus: 1,
        read_your_writes: None,
    }
}

/// A fast backend that queues beyond 4 in flight, beside a slow roomy one.
pub fn small_fast_vs_roomy_slow(pace: Pace) -> Scenario {
    let backends = vec![finite("fast", 10.0, 4), finite("roomy", 50.0, 32)];
    let utilization = 0.7;
    let clients = closed_clients(&backends, utilization);
    Scenario {
        key: "small-fast-vs-roomy-slow",
        title: "Small fast backend beside a roomy slow one",
        story: format!(
            "`fast`: 4 workers at 10 ms (400 req/s); `roomy`: 32 workers at 50 ms (640 req/s). \
             Closed loop of {clients} clients ({} of the 36 workers); nothing changes. The \
             fastest backend is the best only while it has an idle worker: beyond 4 in flight \
             a request waits there behind the others.",
            percent(utilization)
        ),
        backends,
        duration: by_pace(pace, 20.0, 12.0),
        load: Load::Closed { clients },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus: 0,
        read_your_writes: None,
    }
}

/// One of three backends answers 30% of its requests with 503.
pub fn errors_503(pace: Pace) -> Scenario {
    let at = by_pace(pace, 8.0, 5.0);
    let backends = vec![
        finite("a", 10.0, 3),
        finite("b", 10.0, 3),
        finite("c", 10.0, 3),
    ];
    let utilization = 0.5;
    let rate = open_rate(&backends, utilization);
    Scenario {
        key: "errors-503",
        title: "One backend answering 30% of requests with 503",
        story: format!(
            "Three backends of 3 workers at 10 ms (300 req/s each); from t={}s `c` answers 30% \
             of its requests with 503 (after its delay, holding a worker). Open loop at {rate} \
             req/s ({} of capacity). Every request is a `GET`, which every contender may retry \
             on another backend: the client-visible errors column shows who does.",
            at.as_secs(),
            percent(utilization)
        ),
        backends,
        duration: by_pace(pace, 25.0, 14.0),
        load: Load::Open { rate },
        changes: vec![Change {
            at,
            backend: 2,
            update: BehaviourUpdate {
                error_rate: Some(0.3),
                ..BehaviourUpdate::default()
            },
        }],
        marks: vec![mark(at, "errors")],
        focus: 2,
        read_your_writes: None,
    }
}

/// Full pace only: ten backends configured alike, one 20× slower.
pub fn ten_one_slow() -> Scenario {
    const NAMES: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "slow"];
    let mut backends: Vec<BackendSpec> = NAMES.iter().map(|n| finite(n, 20.0, 2)).collect();
    // Configured like the others: the operator does not know it is slow.
    backends[9].latency_ms = 400.0;
    let utilization = 0.5;
    let rate = open_rate(&backends, utilization);
    Scenario {
        key: "ten-one-slow",
        title: "Ten backends, one 20× slower",
        story: format!(
            "Ten backends of 2 workers, configured alike (100 req/s each at 20 ms), but `slow` \
             answers in 400 ms (5 req/s). Open loop at {rate} req/s ({} of the fleet's real \
             capacity, 905 req/s); nothing changes. A tenth of the traffic is 10× what `slow` \
             can serve.",
            percent(utilization)
        ),
        backends,
        duration: seconds(20.0),
        load: Load::Open { rate },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus: 9,
        read_your_writes: None,
    }
}

/// Full pace only: workers 2 : 4 : 8 : 16 at 40 ms, closed loop at
/// `utilization` of the workers.
pub fn capacities_1_2_4_8(utilization: f64) -> Scenario {
    let backends = vec![
        finite("x1", 40.0, 2),
        finite("x2", 40.0, 4),
        finite("x4", 40.0, 8),
        finite("x8", 40.0, 16),
    ];
    let clients = closed_clients(&backends, utilization);
    let (key, title) = match utilization >= 0.8 {
        true => (
            "capacities-1-2-4-8-90",
            "Capacities 1:2:4:8 at 90% utilization",
        ),
        false => (
            "capacities-1-2-4-8-70",
            "Capacities 1:2:4:8 at 70% utilization",
        ),
    };
    Scenario {
        key,
        title,
        story: format!(
            "Four backends at 40 ms with 2, 4, 8 and 16 workers (50, 100, 200 and 400 req/s: \
             capacities 1:2:4:8 by workers at equal latency, configured as such). Closed loop \
             of {clients} clients ({} of the 30 workers); nothing changes. The ideal share of \
             `x1` is 1/15 (6.7%).",
            percent(utilization)
        ),
        backends,
        duration: seconds(20.0),
        load: Load::Closed { clients },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus: 0,
        read_your_writes: None,
    }
}

/// Full pace only: an antagonist takes half of `b`'s workers for 5 s.
pub fn half_workers_lost() -> Scenario {
    let (lost, back) = (seconds(8.0), seconds(13.0));
    let backends = vec![
        finite("a", 20.0, 8),
        finite("b", 20.0, 8),
        finite("c", 20.0, 8),
    ];
    let utilization = 0.5;
    let rate = open_rate(&backends, utilization);
    Scenario {
        key: "half-workers-lost",
        title: "A backend losing half its workers for 5 s",
        story: format!(
            "Three backends of 8 workers at 20 ms (400 req/s each). Open loop at {rate} req/s \
             ({} of capacity). At t={}s an antagonist takes 4 of `b`'s workers (200 req/s \
             left: its third of the load saturates it); at t={}s it gives them back.",
            percent(utilization),
            lost.as_secs(),
            back.as_secs()
        ),
        backends,
        duration: seconds(25.0),
        load: Load::Open { rate },
        changes: vec![workers_change(lost, 1, 4), workers_change(back, 1, 8)],
        marks: vec![mark(lost, "lost"), mark(back, "back")],
        focus: 1,
        read_your_writes: None,
    }
}

/// Full pace only: a backend with rare 200 ms pauses.
pub fn heavy_tail() -> Scenario {
    let paused = with_capacity(BackendSpec {
        pauses: Some((0.02, 200.0)),
        ..finite("pausing", 20.0, 4)
    });
    let backends = vec![finite("a", 20.0, 4), finite("b", 20.0, 4), paused];
    let utilization = 0.7;
    let rate = open_rate(&backends, utilization);
    Scenario {
        key: "heavy-tail",
        title: "A backend with rare long pauses",
        story: format!(
            "Three backends of 4 workers at 20 ms (200 req/s each); `pausing` takes 200 ms \
             instead for 2% of its requests (mean 23.6 ms: 169 req/s), and each pause holds one \
             of its 4 workers, so the requests queued behind it wait too. Open loop at {rate} \
             req/s ({} of capacity); nothing changes.",
            percent(utilization)
        ),
        backends,
        duration: seconds(20.0),
        load: Load::Open { rate },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus: 2,
        read_your_writes: None,
    }
}

/// The names of the fifty mixed backends.
const FIFTY: [&str; 50] = [
    "m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09", "m10", "m11", "m12", "m13",
    "m14", "m15", "m16", "m17", "m18", "m19", "m20", "m21", "m22", "m23", "m24", "m25", "m26",
    "m27", "m28", "m29", "m30", "m31", "m32", "m33", "m34", "m35", "m36", "m37", "m38", "m39",
    "m40", "m41", "m42", "m43", "m44", "m45", "m46", "m47", "m48", "m49", "m50",
];

/// The seed of the fifty mixed backends' latencies and workers.
const FIFTY_SEED: u64 = 50;

/// Full pace only: fifty backends of mixed latency and workers.
pub fn fifty_mixed() -> Scenario {
    let mut rng = StdRng::seed_from_u64(FIFTY_SEED);
    let backends: Vec<BackendSpec> = FIFTY
        .iter()
        .map(|name| {
            let latency_ms = f64::from(rng.random_range(4u32..=20)) * 5.0;
            finite(name, latency_ms, rng.random_range(1..=3))
        })
        .collect();
    let focus = (0..backends.len())
        .min_by_key(|&index| backends[index].capacity)
        .unwrap_or(0);
    let utilization = 0.3;
    let rate = open_rate(&backends, utilization);
    Scenario {
        key: "fifty-mixed",
        title: "Fifty mixed backends",
        story: format!(
            "Fifty backends with 1 to 3 workers at 20 to 100 ms (drawn with seed {FIFTY_SEED}), \
             configured with their capacities: {:.0} req/s in all. Open loop at {rate} req/s \
             ({} of capacity); nothing changes. Tracked: `{}`, the smallest ({} req/s).",
            fleet_capacity(&backends),
            percent(utilization),
            backends[focus].name,
            backends[focus].capacity,
        ),
        backends,
        duration: seconds(20.0),
        load: Load::Open { rate },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus,
        read_your_writes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::catalogue;

    fn find(key: &str) -> Scenario {
        catalogue(Pace::Full)
            .into_iter()
            .find(|s| s.key == key)
            .unwrap()
    }

    /// The offered fraction of the fleet: rate ÷ capacity, or clients ÷
    /// workers.
    fn utilization(scenario: &Scenario) -> f64 {
        match scenario.load {
            Load::Open { rate } => f64::from(rate) / fleet_capacity(&scenario.backends),
            Load::Closed { clients } => {
                let workers: u32 = scenario.backends.iter().filter_map(|b| b.workers).sum();
                f64::from(clients) / f64::from(workers)
            }
        }
    }

    #[test]
    fn each_scenario_offers_its_stated_utilization() {
        for (key, stated) in [
            ("flapping-1s", 0.35),
            ("small-fast-vs-roomy-slow", 0.7),
            ("errors-503", 0.5),
            ("capacities-1-2-4-8-70", 0.7),
            ("capacities-1-2-4-8-90", 0.9),
            ("half-workers-lost", 0.5),
            ("heavy-tail", 0.7),
            ("fifty-mixed", 0.3),
        ] {
            let measured = utilization(&find(key));
            assert!((measured - stated).abs() < 0.02, "{key}: {measured}");
            assert!(find(key).backends.iter().all(|b| b.workers.is_some()));
        }
        // Configured alike, but the real capacity is 9 × 100 + 5 req/s.
        let ten = find("ten-one-slow");
        assert_eq!(fleet_capacity(&ten.backends).round(), 905.0);
        assert!(ten.backends.iter().all(|b| b.capacity == 100));
        assert_eq!(ten.load, Load::Open { rate: 453 });
    }

    #[test]
    fn capacities_follow_workers_and_latency() {
        let small = find("small-fast-vs-roomy-slow");
        let capacities: Vec<u64> = small.backends.iter().map(|b| b.capacity).collect();
        assert_eq!(capacities, [400, 640]);
        assert_eq!(small.load, Load::Closed { clients: 25 });
        let tiers = find("capacities-1-2-4-8-90");
        let capacities: Vec<u64> = tiers.backends.iter().map(|b| b.capacity).collect();
        assert_eq!(capacities, [50, 100, 200, 400]);
        assert_eq!(tiers.load, Load::Closed { clients: 27 });
        let heavy = find("heavy-tail");
        assert_eq!(heavy.load, Load::Open { rate: 399 });
        let pausing = &heavy.backends[2];
        assert_eq!(pausing.capacity, 169);
        assert_eq!(pausing.latency().mean(), Duration::from_micros(23_600));
    }

    #[test]
    fn the_fifty_are_mixed_and_the_same_every_time() {
        let fifty = find("fifty-mixed");
        assert_eq!(fifty.backends.len(), 50);
        let again = fifty_mixed();
        let shape = |s: &Scenario| -> Vec<(u64, Option<u32>)> {
            s.backends
                .iter()
                .map(|b| (b.latency_ms as u64, b.workers))
                .collect()
        };
        assert_eq!(shape(&fifty), shape(&again));
        let workers: std::collections::BTreeSet<_> =
            fifty.backends.iter().filter_map(|b| b.workers).collect();
        assert_eq!(workers.len(), 3, "{workers:?}");
        let focus = fifty.backends[fifty.focus].capacity;
        assert!(fifty.backends.iter().all(|b| b.capacity >= focus));
    }

    #[test]
    fn the_antagonist_takes_half_the_workers_and_gives_them_back() {
        let lost = find("half-workers-lost");
        let workers: Vec<_> = lost.changes.iter().map(|c| c.update.workers).collect();
        assert_eq!(workers, [Some(Limit::At(4)), Some(Limit::At(8))]);
        assert_eq!(lost.phase(0), (seconds(8.0), seconds(13.0)));
        let flapping = find("flapping-1s");
        assert_eq!(flapping.changes.len(), 18);
        assert_eq!(
            flapping.changes[1].at - flapping.changes[0].at,
            seconds(1.0)
        );
    }
}

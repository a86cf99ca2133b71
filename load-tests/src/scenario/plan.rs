//! The scenarios: which backends exist, how they behave at the start, what
//! changes at which moment, and which backend the change is about.
//!
//! Times are offsets from the start of the load. A scenario is plain data;
//! [`catalogue`] builds every scenario for a [`Pace`], and the quick pace
//! keeps a subset with phases of at most 12 s. The scenarios whose origins
//! have finite capacity are in [`super::queueing`].

use super::queueing;
use crate::behaviour::{BehaviourUpdate, FailureMode, ServerLoadMode};
use crate::latency::LatencyDistribution;
use std::time::Duration;

/// How long scenarios run: `Full` for the committed report, `Quick` for CI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    Full,
    Quick,
}

/// The load a scenario offers (see [`super::load`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// Requests started `rate` times a second whatever the answers.
    Open { rate: u32 },
    /// `clients` clients, each sending its next request when the last one
    /// is answered.
    Closed { clients: u32 },
}

impl Load {
    /// How the report states it.
    pub fn describe(self) -> String {
        match self {
            Self::Open { rate } => format!("open loop, {rate} requests/s"),
            Self::Closed { clients } => format!("closed loop, {clients} clients"),
        }
    }
}

/// The open-loop rate of the scenarios whose origins have unlimited
/// capacity (requests per second).
pub const DEFAULT_OPEN_RATE: u32 = 400;

/// One simulated origin behind the proxy.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    pub name: &'static str,
    /// Mean latency; each request draws from a normal distribution with a
    /// standard deviation of a tenth of it.
    pub latency_ms: f64,
    /// Requests per second it is sized for: ballast's `capacity`, and the
    /// static weight of every round-robin contender.
    pub capacity: u64,
    pub canary: bool,
    pub server_load: ServerLoadMode,
    /// The backend's region, for Ballast (see `configs::Upstream::region`).
    pub region: Option<&'static str>,
    /// A standby: served only when the others fail (see
    /// `configs::Upstream::standby`).
    pub standby: bool,
    /// Requests it serves at once (`None`: unlimited); see
    /// [`crate::workers`].
    pub workers: Option<u32>,
    /// Requests that may wait for a worker (`None`: unlimited).
    pub queue: Option<u32>,
    /// Rare pauses: this fraction of its requests takes this many ms
    /// instead of `latency_ms` (a long-tail mixture; `None`: none).
    pub pauses: Option<(f64, f64)>,
}

impl BackendSpec {
    /// The distribution its delays are drawn from.
    pub fn latency(&self) -> LatencyDistribution {
        match self.pauses {
            None => latency_around(self.latency_ms),
            Some((fraction, pause_ms)) => LatencyDistribution::LongTail {
                base: seconds(self.latency_ms / 1000.0),
                tail: seconds(pause_ms / 1000.0),
                tail_fraction: fraction,
            },
        }
    }

    /// Requests per second its workers sustain (workers ÷ mean latency),
    /// or `None` when they are unlimited.
    pub fn sustainable_rate(&self) -> Option<f64> {
        let mean = self.latency().mean().as_secs_f64();
        self.workers.map(|workers| f64::from(workers) / mean)
    }
}

/// A behaviour change applied to one backend at a moment of the run.
#[derive(Debug, Clone)]
pub struct Change {
    pub at: Duration,
    pub backend: usize,
    pub update: BehaviourUpdate,
}

/// A moment whose aftermath is measured: the phase from it to the next
/// mark (or the end) is where convergence is looked for.
#[derive(Debug, Clone)]
pub struct Mark {
    pub at: Duration,
    pub label: &'static str,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    /// Short name, used for files and `--scenario`.
    pub key: &'static str,
    pub title: &'static str,
    pub story: String,
    pub backends: Vec<BackendSpec>,
    pub duration: Duration,
    pub load: Load,
    pub changes: Vec<Change>,
    /// At least one; the first opens the "after the change" window.
    pub marks: Vec<Mark>,
    /// The backend the scenario is about (its share is tracked).
    pub focus: usize,
    /// Users who write now and then and read their writes back, instead of
    /// anonymous `GET /work` requests (`None`: the latter).
    pub read_your_writes: Option<ReadYourWritesPlan>,
}

/// The read-your-writes workload: simulated users, each sending every
/// `write_every`-th of its requests as a write (`POST`) and the others as
/// reads (`GET`), and keeping the cookies its writes' responses set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadYourWritesPlan {
    /// The region of the writer (the proxy's write region, for Ballast).
    pub write_region: &'static str,
    /// Ballast's read-your-writes ttl.
    pub ttl: Duration,
    /// How far the readers' region lags the writer's: a read sent this soon
    /// after its user's write returned, and served outside the write
    /// region, is stale.
    pub replication_lag: Duration,
    pub users: usize,
    pub write_every: usize,
}

impl Scenario {
    /// The phase after `mark`: from it to the next mark or the end.
    pub fn phase(&self, mark: usize) -> (Duration, Duration) {
        let end = self
            .marks
            .get(mark + 1)
            .map_or(self.duration, |next| next.at);
        (self.marks[mark].at, end)
    }

    pub fn focus_name(&self) -> &'static str {
        self.backends[self.focus].name
    }
}

/// Every scenario at `pace` (the quick pace keeps baseline, latency spike,
/// failure, canary, spillover, failover, read-your-writes, and of the
/// finite-capacity scenarios of [`queueing`] the small fast backend beside
/// a roomy slow one and the 30% of 503s).
pub fn catalogue(pace: Pace) -> Vec<Scenario> {
    match pace {
        Pace::Full => vec![
            steady_baseline(pace),
            latency_spike(pace),
            path_failure(pace),
            slow_degradation(),
            flapping(),
            canary_going_bad(pace),
            reporter_goes_silent(),
            regional_spillover(pace),
            standby_failover(pace),
            read_your_writes(pace),
            queueing::flapping_1s(),
            queueing::small_fast_vs_roomy_slow(pace),
            queueing::errors_503(pace),
            queueing::ten_one_slow(),
            queueing::capacities_1_2_4_8(0.7),
            queueing::capacities_1_2_4_8(0.9),
            queueing::half_workers_lost(),
            queueing::heavy_tail(),
            queueing::fifty_mixed(),
        ],
        Pace::Quick => vec![
            steady_baseline(pace),
            latency_spike(pace),
            path_failure(pace),
            canary_going_bad(pace),
            regional_spillover(pace),
            standby_failover(pace),
            read_your_writes(pace),
            queueing::small_fast_vs_roomy_slow(pace),
            queueing::errors_503(pace),
        ],
    }
}

pub(super) fn seconds(value: f64) -> Duration {
    Duration::from_secs_f64(value)
}

pub(super) fn by_pace(pace: Pace, full: f64, quick: f64) -> Duration {
    match pace {
        Pace::Full => seconds(full),
        Pace::Quick => seconds(quick),
    }
}

/// A normal distribution around `ms`, with a tenth of it as deviation.
pub fn latency_around(ms: f64) -> LatencyDistribution {
    LatencyDistribution::Normal {
        mean: seconds(ms / 1000.0),
        stddev: seconds(ms / 10_000.0),
    }
}

pub(super) fn backend(name: &'static str, latency_ms: f64, capacity: u64) -> BackendSpec {
    BackendSpec {
        name,
        latency_ms,
        capacity,
        canary: false,
        server_load: ServerLoadMode::Off,
        region: None,
        standby: false,
        workers: None,
        queue: None,
        pauses: None,
    }
}

pub(super) fn set_latency(at: Duration, backend: usize, ms: f64) -> Change {
    Change {
        at,
        backend,
        update: BehaviourUpdate {
            latency: Some(latency_around(ms)),
            ..BehaviourUpdate::default()
        },
    }
}

pub(super) fn mark(at: Duration, label: &'static str) -> Mark {
    Mark { at, label }
}

fn steady_baseline(pace: Pace) -> Scenario {
    Scenario {
        key: "baseline",
        title: "Steady asymmetric baseline",
        story: "A big fast backend (5 ms, sized for 1000 req/s) beside a small slow one \
                (40 ms, 200 req/s); nothing changes. Convergence is counted from the start."
            .into(),
        backends: vec![backend("big", 5.0, 1000), backend("small", 40.0, 200)],
        duration: by_pace(pace, 12.0, 10.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus: 1,
        read_your_writes: None,
    }
}

fn latency_spike(pace: Pace) -> Scenario {
    let at = by_pace(pace, 10.0, 6.0);
    Scenario {
        key: "spike",
        title: "Sudden latency spike",
        story: format!(
            "Two equal backends (10 ms, 500 req/s each); `b` jumps to 80 ms at t={}s.",
            at.as_secs()
        ),
        backends: vec![backend("a", 10.0, 500), backend("b", 10.0, 500)],
        duration: by_pace(pace, 25.0, 18.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes: vec![set_latency(at, 1, 80.0)],
        marks: vec![mark(at, "spike")],
        focus: 1,
        read_your_writes: None,
    }
}

/// At the quick pace the path stays down to the end: with the default
/// 30 s ejection, a recovery would not show within 12 s.
fn path_failure(pace: Pace) -> Scenario {
    let failure = |at, mode| Change {
        at,
        backend: 1,
        update: BehaviourUpdate {
            failure: Some(mode),
            ..BehaviourUpdate::default()
        },
    };
    let down = by_pace(pace, 10.0, 6.0);
    let mut changes = vec![failure(down, FailureMode::Reset)];
    let mut marks = vec![mark(down, "down")];
    let story = match pace {
        Pace::Full => {
            let back = seconds(30.0);
            changes.push(failure(back, FailureMode::Healthy));
            marks.push(mark(back, "back"));
            format!(
                "from t={}s and serves again from t={}s",
                down.as_secs(),
                back.as_secs()
            )
        }
        Pace::Quick => format!("from t={}s to the end", down.as_secs()),
    };
    Scenario {
        key: "failure",
        title: "Complete failure of one path",
        story: format!(
            "Three equal backends (10 ms, 400 req/s each); `b` resets every connection \
             (reads the request, then closes with a TCP RST) {story}."
        ),
        backends: vec![
            backend("a", 10.0, 400),
            backend("b", 10.0, 400),
            backend("c", 10.0, 400),
        ],
        duration: by_pace(pace, 40.0, 18.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes,
        marks,
        focus: 1,
        read_your_writes: None,
    }
}

/// Full pace only: latency of `b` climbs 10 → 100 ms in 0.5 s steps.
fn slow_degradation() -> Scenario {
    let (start, ramp) = (seconds(8.0), seconds(20.0));
    let steps = 40;
    let changes = (1..=steps)
        .map(|step| {
            let progress = f64::from(step) / f64::from(steps);
            set_latency(start + ramp.mul_f64(progress), 1, 10.0 + 90.0 * progress)
        })
        .collect();
    Scenario {
        key: "degradation",
        title: "Slow degradation (compressed)",
        story: format!(
            "Two equal backends (10 ms, 500 req/s each); from t={}s `b`'s latency climbs \
             linearly to 100 ms over 20 s (a step every 0.5 s), then stays there.",
            start.as_secs()
        ),
        backends: vec![backend("a", 10.0, 500), backend("b", 10.0, 500)],
        duration: start + ramp + seconds(5.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes,
        marks: vec![mark(start, "ramp")],
        focus: 1,
        read_your_writes: None,
    }
}

/// Full pace only: `b` alternates 80 ms / 10 ms every 2 s.
fn flapping() -> Scenario {
    let (start, duration) = (seconds(8.0), seconds(24.0));
    let period = seconds(2.0);
    let flips = ((duration - start).as_secs_f64() / period.as_secs_f64()) as u32;
    let changes = (0..flips)
        .map(|flip| {
            let ms = if flip % 2 == 0 { 80.0 } else { 10.0 };
            set_latency(start + period * flip, 1, ms)
        })
        .collect();
    Scenario {
        key: "flapping",
        title: "Rapid flapping",
        story: format!(
            "Two equal backends (10 ms, 500 req/s each); from t={}s `b` alternates between \
             80 ms and 10 ms every 2 s. A steady share is the goal: convergence means the \
             share stopped swinging.",
            start.as_secs()
        ),
        backends: vec![backend("a", 10.0, 500), backend("b", 10.0, 500)],
        duration,
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes,
        marks: vec![mark(start, "flapping")],
        focus: 1,
        read_your_writes: None,
    }
}

fn canary_going_bad(pace: Pace) -> Scenario {
    let at = by_pace(pace, 8.0, 6.0);
    let canary = BackendSpec {
        canary: true,
        ..backend("canary", 10.0, 100)
    };
    Scenario {
        key: "canary",
        title: "Canary going bad",
        story: format!(
            "Two stable backends (10 ms, 500 req/s each) and a canary (10 ms, 100 req/s, \
             `canary: true`: Ballast's default canary bounds and breaker); the canary answers \
             30% of requests with 503 from t={}s.",
            at.as_secs()
        ),
        backends: vec![
            backend("stable-a", 10.0, 500),
            backend("stable-b", 10.0, 500),
            canary,
        ],
        duration: by_pace(pace, 20.0, 18.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
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

/// Full pace only: `b` stops reporting `Server-Load` as it slows down.
fn reporter_goes_silent() -> Scenario {
    let at = seconds(10.0);
    let reporting = |name| BackendSpec {
        server_load: ServerLoadMode::Honest { slots: 5 },
        ..backend(name, 10.0, 500)
    };
    Scenario {
        key: "silent",
        title: "Reporter going silent",
        story: format!(
            "Two equal backends (10 ms, 500 req/s) that report `Server-Load` honestly: \
             `util=<in flight / 5>, inflight=<n>, capacity=500` (5 requests at once at 10 ms \
             each: 500 req/s). At t={}s `b` stops reporting and slows to 40 ms.",
            at.as_secs()
        ),
        backends: vec![reporting("a"), reporting("b")],
        duration: seconds(22.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes: vec![Change {
            at,
            backend: 1,
            update: BehaviourUpdate {
                latency: Some(latency_around(40.0)),
                server_load: Some(ServerLoadMode::Off),
                ..BehaviourUpdate::default()
            },
        }],
        marks: vec![mark(at, "silent")],
        focus: 1,
        read_your_writes: None,
    }
}

/// The clients' own region saturates.
fn regional_spillover(pace: Pace) -> Scenario {
    let at = by_pace(pace, 10.0, 6.0);
    let in_region = |region, spec: BackendSpec| BackendSpec {
        region: Some(region),
        ..spec
    };
    Scenario {
        key: "spillover",
        title: "Preferred region overloaded (spillover)",
        story: format!(
            "The clients' region (`near`, 10 ms) and a remote one (`far`, 40 ms: the distance), \
             both sized for 1000 req/s. Ballast places every client in `near`, which falls back \
             to `far`, and spills over on latency above {} or reported utilization above {} \
             ({} of `near`'s traffic per 500 ms interval, at most 0.9); nginx and HAProxy have \
             no regions and balance both as equals. At t={}s `near` saturates: 150 ms, and it \
             reports `Server-Load: 1.2`. Ballast's published share is the backend's weight \
             within its region, not the spill.",
            crate::scenario::configs::SPILL_LATENCY_ABOVE,
            crate::scenario::configs::SPILL_UTILIZATION_ABOVE,
            crate::scenario::configs::SPILL_STEP,
            at.as_secs()
        ),
        backends: vec![
            in_region("near", backend("near", 10.0, 1000)),
            in_region("far", backend("far", 40.0, 1000)),
        ],
        duration: by_pace(pace, 25.0, 16.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes: vec![Change {
            at,
            backend: 0,
            update: BehaviourUpdate {
                latency: Some(latency_around(150.0)),
                server_load: Some(ServerLoadMode::Fixed {
                    value: "1.2".into(),
                }),
                ..BehaviourUpdate::default()
            },
        }],
        marks: vec![mark(at, "overload")],
        focus: 0,
        read_your_writes: None,
    }
}

/// Both primaries fail; a pre-warmed standby takes over, and hands back
/// when they return.
fn standby_failover(pace: Pace) -> Scenario {
    let failure = |at, backend, mode| Change {
        at,
        backend,
        update: BehaviourUpdate {
            failure: Some(mode),
            ..BehaviourUpdate::default()
        },
    };
    let (down, back) = (by_pace(pace, 10.0, 6.0), by_pace(pace, 25.0, 12.0));
    let standby = BackendSpec {
        standby: true,
        ..backend("standby", 10.0, 500)
    };
    Scenario {
        key: "failover",
        title: "Failover to a pre-warmed standby",
        story: format!(
            "Two primaries (10 ms, 500 req/s each) and a standby (10 ms, 500 req/s): for              Ballast's adaptive modes a priority-1 tier pre-warmed with {}% of the traffic, for              nginx and HAProxy a `backup` server (Ballast's round robin has no tiers and              balances all three). At t={}s both primaries refuse connections; at t={}s they              serve again (a primary ejected meanwhile stays out for its 30 s ejection).",
            crate::scenario::configs::PREWARM_PERCENT,
            down.as_secs(),
            back.as_secs()
        ),
        backends: vec![
            backend("primary-a", 10.0, 500),
            backend("primary-b", 10.0, 500),
            standby,
        ],
        duration: by_pace(pace, 40.0, 18.0),
        load: Load::Open { rate: DEFAULT_OPEN_RATE },
        changes: vec![
            failure(down, 0, FailureMode::Refuse),
            failure(down, 1, FailureMode::Refuse),
            failure(back, 0, FailureMode::Healthy),
            failure(back, 1, FailureMode::Healthy),
        ],
        marks: vec![mark(down, "primaries down"), mark(back, "primaries back")],
        focus: 2,
        read_your_writes: None,
    }
}

/// Active-active reads, a single writer far away: users read from their
/// own region and write to the writer's, and after a write read from the
/// writer until the replicas have caught up.
fn read_your_writes(pace: Pace) -> Scenario {
    let plan = ReadYourWritesPlan {
        write_region: "primary",
        ttl: seconds(1.0),
        replication_lag: seconds(0.5),
        users: 40,
        write_every: 25,
    };
    let in_region = |region, spec: BackendSpec| BackendSpec {
        region: Some(region),
        ..spec
    };
    Scenario {
        key: "read-your-writes",
        title: "Read/write split with read-your-writes",
        story: format!(
            "The users' region (`replica`, 10 ms) serves reads; the write region (`primary`, \
             40 ms: the distance) takes every write, and the replica lags it by {lag} ms. {users} \
             users share the load; each sends every {every}th request as a `POST` (a write) and \
             the others as `GET`s, with the cookies its writes' responses set. A read sent within \
             {lag} ms of its user's write and served by `replica` is stale. Ballast (every mode) \
             has `write: {{region: primary, read_your_writes: {{ttl: {ttl} ms}}}}`: writes go to \
             `primary` only, and a user's reads follow them there for the ttl. nginx and HAProxy \
             have no read/write split: they balance every request over both, writes included.",
            lag = plan.replication_lag.as_millis(),
            users = plan.users,
            every = plan.write_every,
            ttl = plan.ttl.as_millis(),
        ),
        backends: vec![
            in_region("replica", backend("replica", 10.0, 1000)),
            in_region(plan.write_region, backend("primary", 40.0, 1000)),
        ],
        duration: by_pace(pace, 15.0, 10.0),
        load: Load::Open {
            rate: DEFAULT_OPEN_RATE,
        },
        changes: vec![],
        marks: vec![mark(Duration::ZERO, "start")],
        focus: 1,
        read_your_writes: Some(plan),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_pace_keeps_nine_scenarios_with_short_phases() {
        let quick = catalogue(Pace::Quick);
        let keys: Vec<_> = quick.iter().map(|s| s.key).collect();
        assert_eq!(
            keys,
            [
                "baseline",
                "spike",
                "failure",
                "canary",
                "spillover",
                "failover",
                "read-your-writes",
                "small-fast-vs-roomy-slow",
                "errors-503"
            ]
        );
        // Each runs once per Ballast mode: 134 s × 3 of load in all, of
        // which the two finite-capacity scenarios take 26 s × 3.
        let total: Duration = quick.iter().map(|s| s.duration).sum();
        assert_eq!(total, seconds(134.0));
        for scenario in &quick {
            let mut bounds = vec![Duration::ZERO];
            bounds.extend(scenario.marks.iter().map(|m| m.at));
            bounds.push(scenario.duration);
            for pair in bounds.windows(2) {
                assert!(pair[1] - pair[0] <= seconds(12.0), "{}", scenario.key);
            }
        }
    }

    #[test]
    fn full_scenarios_fit_in_a_minute_and_stay_consistent() {
        let full = catalogue(Pace::Full);
        assert_eq!(full.len(), 19);
        for scenario in full {
            assert!(scenario.duration <= seconds(60.0), "{}", scenario.key);
            if scenario.backends.iter().any(|b| b.workers.is_some()) {
                assert!(scenario.duration <= seconds(40.0), "{}", scenario.key);
            }
            if scenario.read_your_writes.is_some() {
                assert!(matches!(scenario.load, Load::Open { .. }));
            }
            assert!(scenario.focus < scenario.backends.len());
            for change in &scenario.changes {
                assert!(change.at < scenario.duration, "{}", scenario.key);
                assert!(change.backend < scenario.backends.len());
                change.update.validate().unwrap();
            }
            let (start, end) = scenario.phase(0);
            assert!(start < end);
        }
    }

    #[test]
    fn degradation_ends_at_100_ms_and_flapping_alternates() {
        let full = catalogue(Pace::Full);
        let find = |key| full.iter().find(|s| s.key == key).unwrap();
        let last = find("degradation").changes.last().unwrap().update.latency;
        assert_eq!(last, Some(latency_around(100.0)));
        let flips: Vec<_> = find("flapping")
            .changes
            .iter()
            .map(|c| c.update.latency)
            .collect();
        assert_eq!(flips[0], Some(latency_around(80.0)));
        assert_eq!(flips[1], Some(latency_around(10.0)));
        assert_eq!(flips.len(), 8);
    }
}

//! Quality assertions for the quick pace: each compares a measured value
//! with a threshold (or with the round-robin baseline) and passes or fails.

use super::analysis::Analysis;
use super::contender::{BallastMode, Contender};
use super::report::ScenarioResults;

const LATENCY: Contender = Contender::Ballast(BallastMode::Latency);
const CAPACITY: Contender = Contender::Ballast(BallastMode::Capacity);
const ROUND_ROBIN: Contender = Contender::Ballast(BallastMode::RoundRobin);
const LEASTCONN: Contender = Contender::Haproxy;
/// The quick scenarios in which the default mode's mean must not be above
/// HAProxy `leastconn`'s (plain balancing: no canary, region or write rule
/// that HAProxy's configuration does not have).
const AGAINST_LEASTCONN: [&str; 5] = [
    "baseline",
    "spike",
    "failure",
    "small-fast-vs-roomy-slow",
    "errors-503",
];
/// Slack for a loaded machine in the comparison with `leastconn`: 5%, and
/// 1 ms beside it, the spread of a 12 ms mean between two runs of the same
/// contender where every policy sits at the same floor (two equal backends
/// left in `failure`) on a 2-core machine that also runs the origins and
/// the load.
const LEASTCONN_MARGIN: f64 = 1.05;
const LEASTCONN_SLACK_MS: f64 = 1.0;

/// One assertion and what was measured for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// The scenario it is about.
    pub scenario: &'static str,
    pub name: String,
    pub measured: String,
    pub passed: bool,
}

/// The assertions of the quick pace about the scenarios in `results`. A
/// value that could not be measured fails its check.
pub fn quick_checks(results: &[ScenarioResults]) -> Vec<Check> {
    let find = |key: &str, contender: Contender| -> Option<&Analysis> {
        results
            .iter()
            .find(|r| r.scenario.key == key)?
            .analyses
            .iter()
            .find(|a| a.contender == contender)
    };
    let after = |key, contender| find(key, contender).and_then(|a| a.after);
    let focus_after = |key, contender| {
        find(key, contender)
            .and_then(|a| a.focus_after)
            .map(percent)
    };
    let mut checks = Vec::new();

    // The default mode is no worse than least connections on mean latency,
    // and a backend answering 30% 503 costs GETs nothing.
    for key in AGAINST_LEASTCONN {
        checks.push(below(
            key,
            &format!(
                "ballast latency mean after the change ≤ {LEASTCONN_MARGIN} × haproxy leastconn's + {LEASTCONN_SLACK_MS} ms"
            ),
            "ms",
            after(key, LATENCY).map(|s| s.mean),
            after(key, LEASTCONN).map(|s| LEASTCONN_MARGIN * s.mean + LEASTCONN_SLACK_MS),
        ));
    }
    checks.push(below(
        "errors-503",
        "ballast latency client errors with one backend answering 30% 503 = 0",
        "errors",
        find("errors-503", LATENCY)
            .and_then(|a| a.whole)
            .map(|s| s.errors as f64),
        Some(1.0),
    ));

    // Capacity mode follows the configured capacities (1000 : 200).
    let capacity_share = 100.0 * 200.0 / 1200.0;
    checks.push(below(
        "baseline",
        "ballast capacity, |share of `small` − 16.7%| < 4 points",
        "points",
        focus_after("baseline", CAPACITY).map(|share| (share - capacity_share).abs()),
        Some(4.0),
    ));
    // A latency spike: the latency mode moves traffic off the slow path.
    checks.push(below(
        "spike",
        "ballast latency, share of the spiked backend (last 5 s) < 25%",
        "%",
        focus_after("spike", LATENCY),
        Some(25.0),
    ));
    checks.push(below(
        "spike",
        "ballast latency p99 after the spike < round_robin's",
        "ms",
        after("spike", LATENCY).map(|s| s.p99),
        after("spike", ROUND_ROBIN).map(|s| s.p99),
    ));
    checks.push(below(
        "spike",
        "ballast latency mean latency after the spike < 0.75 × round_robin's",
        "ms",
        after("spike", LATENCY).map(|s| s.mean),
        after("spike", ROUND_ROBIN).map(|s| 0.75 * s.mean),
    ));
    // A dead path: GETs are retried elsewhere, then the path is ejected.
    for contender in [LATENCY, CAPACITY, ROUND_ROBIN] {
        checks.push(below(
            "failure",
            &format!("{} error rate while a path is down < 1%", contender.label()),
            "%",
            after("failure", contender).map(|s| percent(s.error_rate())),
            Some(1.0),
        ));
    }
    // A canary going bad is cut off by its breaker, in about a second.
    checks.push(below(
        "canary",
        "ballast latency, canary's share (last 5 s) < 1%",
        "%",
        focus_after("canary", LATENCY),
        Some(1.0),
    ));
    checks.push(below(
        "canary",
        "ballast latency, seconds until the canary's share settles < 3",
        "s",
        find("canary", LATENCY)
            .and_then(|a| a.convergence.first().copied().flatten())
            .map(|seconds| seconds as f64),
        Some(3.0),
    ));
    for contender in [LATENCY, CAPACITY] {
        checks.push(below(
            "canary",
            &format!("{} error rate after the change < 1%", contender.label()),
            "%",
            after("canary", contender).map(|s| percent(s.error_rate())),
            Some(1.0),
        ));
    }
    // The clients' region saturates: Ballast spills to the next region.
    checks.push(below(
        "spillover",
        "ballast latency, share of the saturated region (last 5 s) < 20%",
        "%",
        focus_after("spillover", LATENCY),
        Some(20.0),
    ));
    checks.push(below(
        "spillover",
        "ballast latency, seconds until the spill settles < 4",
        "s",
        find("spillover", LATENCY)
            .and_then(|a| a.convergence.first().copied().flatten())
            .map(|seconds| seconds as f64),
        Some(4.0),
    ));
    checks.push(below(
        "spillover",
        "ballast latency mean latency after the overload < 0.6 × round_robin's",
        "ms",
        after("spillover", LATENCY).map(|s| s.mean),
        after("spillover", ROUND_ROBIN).map(|s| 0.6 * s.mean),
    ));
    // Both primaries fail: the pre-warmed standby takes over at once.
    let standby_before = find("failover", LATENCY)
        .and_then(|a| a.focus_before)
        .map(percent);
    checks.push(below(
        "failover",
        "ballast latency, standby's share before the failure (pre-warm 2%) < 5%",
        "%",
        standby_before,
        Some(5.0),
    ));
    checks.push(above(
        "failover",
        "ballast latency, standby's share before the failure > 0.5%",
        "%",
        standby_before,
        0.5,
    ));
    checks.push(above(
        "failover",
        "ballast latency, standby's share while the primaries are down > 90%",
        "%",
        focus_after("failover", LATENCY),
        90.0,
    ));
    checks.push(below(
        "failover",
        "ballast latency error rate while the primaries are down < 1%",
        "%",
        after("failover", LATENCY).map(|s| percent(s.error_rate())),
        Some(1.0),
    ));
    // Read/write split: writes only at the writer, no stale read after a
    // user's own write, and reads otherwise local.
    const RYW: &str = "read-your-writes";
    for contender in [LATENCY, CAPACITY, ROUND_ROBIN] {
        let seen = find(RYW, contender).and_then(|a| a.consistency);
        let label = contender.label();
        checks.push(below(
            RYW,
            &format!("{label}, writes served outside the write region = 0"),
            "writes",
            seen.map(|s| s.writes_elsewhere as f64),
            Some(1.0),
        ));
        checks.push(below(
            RYW,
            &format!("{label}, stale reads (within the replication lag of the user's write) = 0"),
            "reads",
            seen.filter(|s| s.fresh_reads > 0)
                .map(|s| s.stale_reads as f64),
            Some(1.0),
        ));
        checks.push(above(
            RYW,
            &format!("{label}, reads within the ttl served by the write region > 95%"),
            "%",
            seen.and_then(|s| s.pinned_share()).map(percent),
            95.0,
        ));
        checks.push(above(
            RYW,
            &format!("{label}, other reads served locally > 90%"),
            "%",
            seen.and_then(|s| s.local_share()).map(percent),
            90.0,
        ));
        checks.push(below(
            RYW,
            &format!("{label} error rate < 1%"),
            "%",
            find(RYW, contender)
                .and_then(|a| a.whole)
                .map(|s| percent(s.error_rate())),
            Some(1.0),
        ));
    }
    checks.retain(|check| results.iter().any(|r| r.scenario.key == check.scenario));
    checks
}

fn percent(fraction: f64) -> f64 {
    fraction * 100.0
}

/// Passes when `value < limit`.
fn below(
    scenario: &'static str,
    name: &str,
    unit: &str,
    value: Option<f64>,
    limit: Option<f64>,
) -> Check {
    match (value, limit) {
        (Some(value), Some(limit)) => Check {
            scenario,
            name: name.to_string(),
            measured: format!("{value:.2} {unit} (limit {limit:.2} {unit})"),
            passed: value < limit,
        },
        _ => Check {
            scenario,
            name: name.to_string(),
            measured: "not measured".into(),
            passed: false,
        },
    }
}

/// Passes when `value > limit`.
fn above(scenario: &'static str, name: &str, unit: &str, value: Option<f64>, limit: f64) -> Check {
    let mut check = below(scenario, name, unit, value.map(|v| -v), Some(-limit));
    if let Some(value) = value {
        check.measured = format!("{value:.2} {unit} (limit {limit:.2} {unit})");
    }
    check
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::plan::{catalogue, Pace};

    #[test]
    fn below_compares_and_fails_what_was_not_measured() {
        assert!(below("s", "x", "ms", Some(1.0), Some(2.0)).passed);
        assert!(!below("s", "x", "ms", Some(2.0), Some(2.0)).passed);
        let missing = below("s", "x", "ms", None, Some(2.0));
        assert!(!missing.passed);
        assert_eq!(missing.measured, "not measured");
        assert_eq!(
            below("s", "x", "%", Some(0.5), Some(1.0)).measured,
            "0.50 % (limit 1.00 %)"
        );
        assert!(above("s", "x", "%", Some(95.0), 90.0).passed);
        assert!(!above("s", "x", "%", Some(90.0), 90.0).passed);
        assert!(!above("s", "x", "%", None, 90.0).passed);
        assert_eq!(
            above("s", "x", "%", Some(95.0), 90.0).measured,
            "95.00 % (limit 90.00 %)"
        );
    }

    #[test]
    fn checks_cover_the_scenarios_run_and_fail_missing_contenders() {
        assert!(quick_checks(&[]).is_empty());
        let canary = ScenarioResults {
            scenario: catalogue(Pace::Quick).swap_remove(3),
            analyses: vec![],
            failures: vec!["ballast latency: failed to run".into()],
        };
        let checks = quick_checks(&[canary]);
        assert!(!checks.is_empty());
        assert!(checks.iter().all(|c| c.scenario == "canary" && !c.passed));
    }
}

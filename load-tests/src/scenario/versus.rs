//! The default mode against the best contenders, reported (not enforced)
//! for every plain balancing scenario run with Ballast's default and
//! HAProxy `leastconn`: mean and p99 after the change ≤ 0.8× leastconn's,
//! never more than 5% worse than any contender on either, and never more
//! client errors. The contenders are the other proxies' policies and
//! Ballast's `round_robin` and `peak_ewma` (the capacity mode is another
//! Ballast default, not a contender).

use super::contender::{BallastMode, Contender};
use super::report::ScenarioResults;
use super::stats::Summary;

/// Scenarios that exercise what only Ballast is configured for here
/// (canary breakers, `Server-Load`, regions, tiers, read-your-writes): the
/// other proxies balance them blind, so they are left out.
const FEATURE_SCENARIOS: [&str; 5] = [
    "canary",
    "silent",
    "spillover",
    "failover",
    "read-your-writes",
];
const DEFAULT: Contender = Contender::Ballast(BallastMode::Latency);
/// The default's mean and p99 target, as a multiple of leastconn's.
const LEASTCONN_TARGET: f64 = 0.8;
/// How much worse than any contender the default may be, on mean or p99.
const ANY_CONTENDER_TARGET: f64 = 1.05;

/// The table, or nothing when no scenario ran both the default and leastconn.
pub fn section(results: &[ScenarioResults]) -> String {
    let rows: String = results
        .iter()
        .filter(|r| !FEATURE_SCENARIOS.contains(&r.scenario.key))
        .filter_map(row)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "## Against the best contenders\n\n\
         Reported, not enforced: Ballast's default (`latency` mode) after the change (the whole \
         run where nothing changes), against HAProxy `leastconn` and the best of the other \
         contenders on each measure. Targets: mean and p99 ≤ {LEASTCONN_TARGET}× leastconn's \
         (or within 5% of the best where leastconn already sits at a floor no policy can beat), \
         never more than {ANY_CONTENDER_TARGET}× any contender's, and no more client errors \
         (whole run) than any.\n\n\
         | scenario | default mean / p99 ms | leastconn mean / p99 ms | ÷ leastconn (mean, p99) | \
         best other mean / p99 ms | ÷ best other (mean, p99) | errors: default / fewest other |\n\
         |---|---:|---:|---:|---:|---:|---:|\n{rows}\n"
    )
}

/// One scenario's row, when it ran the default and leastconn.
fn row(result: &ScenarioResults) -> Option<String> {
    let after = |contender| {
        result
            .analyses
            .iter()
            .find(|a| a.contender == contender)
            .and_then(|a| a.after)
    };
    let (default, leastconn) = (after(DEFAULT)?, after(Contender::Haproxy)?);
    let others: Vec<(Contender, Summary, usize)> = result
        .analyses
        .iter()
        .filter(|a| is_contender(a.contender))
        .filter_map(|a| Some((a.contender, a.after?, a.whole?.errors)))
        .collect();
    let best = |measure: fn(&Summary) -> f64| {
        others
            .iter()
            .min_by(|a, b| measure(&a.1).total_cmp(&measure(&b.1)))
            .map(|(contender, summary, _)| (*contender, measure(summary)))
    };
    let (best_mean, best_p99) = (best(|s| s.mean)?, best(|s| s.p99)?);
    let verdict = |met: bool| if met { "✓" } else { "✗" };
    let to_leastconn = (default.mean / leastconn.mean, default.p99 / leastconn.p99);
    let to_best = (default.mean / best_mean.1, default.p99 / best_p99.1);
    let default_errors = result
        .analyses
        .iter()
        .find(|a| a.contender == DEFAULT)
        .and_then(|a| a.whole)
        .map_or(0, |s| s.errors);
    let fewest_errors = others.iter().map(|o| o.2).min().unwrap_or(0);
    Some(format!(
        "| {} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}, {:.2} {} | {:.1} ({}) / {:.1} ({}) | {:.2}, {:.2} {} | {default_errors} / {fewest_errors} {} |\n",
        result.scenario.key,
        default.mean,
        default.p99,
        leastconn.mean,
        leastconn.p99,
        to_leastconn.0,
        to_leastconn.1,
        verdict(to_leastconn.0 <= LEASTCONN_TARGET && to_leastconn.1 <= LEASTCONN_TARGET),
        best_mean.1,
        best_mean.0.label(),
        best_p99.1,
        best_p99.0.label(),
        to_best.0,
        to_best.1,
        verdict(to_best.0 <= ANY_CONTENDER_TARGET && to_best.1 <= ANY_CONTENDER_TARGET),
        verdict(default_errors <= fewest_errors),
    ))
}

/// The policies the default is compared with.
fn is_contender(contender: Contender) -> bool {
    !matches!(
        contender,
        Contender::Ballast(BallastMode::Latency | BallastMode::Capacity)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::analysis::analyse;
    use crate::scenario::contender::NginxBalance;
    use crate::scenario::plan::{catalogue, Pace};
    use crate::scenario::runner::Run;

    /// A run whose every request takes `ms`, one in ten failing with 503
    /// when `failing`.
    fn run(contender: Contender, ms: u64, failing: bool) -> Run {
        Run::synthetic(contender, |n| {
            let status = if failing && n % 10 == 0 { 503 } else { 200 };
            (ms, status, 0)
        })
    }

    fn results(key: &str, runs: &[Run]) -> ScenarioResults {
        let scenario = catalogue(Pace::Quick)
            .into_iter()
            .find(|s| s.key == key)
            .expect("a quick scenario");
        let analyses = runs.iter().map(|r| analyse(&scenario, r)).collect();
        ScenarioResults {
            scenario,
            analyses,
            failures: vec![],
        }
    }

    #[test]
    fn the_default_is_compared_with_leastconn_and_the_best_other() {
        let text = section(&[results(
            "baseline",
            &[
                run(DEFAULT, 8, false),
                run(Contender::Ballast(BallastMode::Capacity), 2, false),
                run(Contender::Haproxy, 20, false),
                run(Contender::Nginx(NginxBalance::LeastConn), 10, true),
            ],
        )]);
        assert!(text.starts_with("## Against the best contenders"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("| baseline |"))
            .expect("a baseline row");
        // 8 ms ÷ 20 ms; the capacity mode (2 ms) is not a contender.
        assert!(
            row.contains("| 8.0 / 8.0 | 20.0 / 20.0 | 0.40, 0.40 ✓ |"),
            "{row}"
        );
        assert!(row.contains("| 10.0 (nginx least_conn) /"), "{row}");
        assert!(row.contains("| 0.80, 0.80 ✓ | 0 / 0 ✓ |"), "{row}");
    }

    #[test]
    fn misses_and_feature_scenarios_show() {
        let missed = section(&[results(
            "baseline",
            &[run(DEFAULT, 12, true), run(Contender::Haproxy, 10, false)],
        )]);
        assert!(missed.contains("| 1.20, 1.20 ✗ |"), "{missed}");
        assert!(missed.contains("| 10 / 0 ✗ |"), "{missed}");
        let canary = results(
            "canary",
            &[run(DEFAULT, 8, false), run(Contender::Haproxy, 20, false)],
        );
        assert_eq!(section(&[canary]), "", "a feature scenario has no row");
        let alone = results("spike", &[run(DEFAULT, 8, false)]);
        assert_eq!(section(&[alone]), "", "no leastconn, no row");
    }
}

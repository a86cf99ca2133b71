//! The routing-quality targets, reported (not enforced) for the steady
//! asymmetric baseline and the latency spike: each adaptive Ballast mode
//! against Ballast's own round robin in the same run — client p99 after the
//! change ≤ 0.5×, error rate ≤ 0.2×, convergence ≤ 2 s, and the standard
//! deviation of the tracked share once converged (no sawtooth).

use super::analysis::Analysis;
use super::contender::{BallastMode, Contender};
use super::report::ScenarioResults;
use std::fmt::Write;

const SCENARIOS: [&str; 2] = ["baseline", "spike"];
const ADAPTIVE: [BallastMode; 2] = [BallastMode::Latency, BallastMode::Capacity];
const P99_TARGET: f64 = 0.5;
const ERROR_TARGET: f64 = 0.2;
const CONVERGENCE_TARGET_S: usize = 2;

/// The targets table, or nothing when none of its scenarios ran.
pub fn section(results: &[ScenarioResults]) -> String {
    let mut rows = String::new();
    for result in results
        .iter()
        .filter(|r| SCENARIOS.contains(&r.scenario.key))
    {
        let find = |contender| result.analyses.iter().find(|a| a.contender == contender);
        let Some(baseline) = find(Contender::Ballast(BallastMode::RoundRobin)) else {
            continue;
        };
        for mode in ADAPTIVE {
            if let Some(adaptive) = find(Contender::Ballast(mode)) {
                let _ = writeln!(rows, "{}", row(result.scenario.key, adaptive, baseline));
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    format!(
        "## Targets\n\n\
         Reported, not enforced: each adaptive mode against Ballast's round robin in the same \
         run, after the change (from the start for `baseline`). Targets: p99 ≤ {P99_TARGET}×, \
         error rate ≤ {ERROR_TARGET}×, convergence ≤ {CONVERGENCE_TARGET_S} s; *sd* is the \
         tracked share's standard deviation over the phase (a sawtooth would show as a large \
         one).\n\n\
         | scenario | mode | p99 ms (round robin) | p99 ratio | errors % (round robin) | error ratio | convergence | sd (points) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n{rows}\n"
    )
}

fn row(scenario: &str, adaptive: &Analysis, baseline: &Analysis) -> String {
    let verdict = |met: bool| if met { "✓" } else { "✗" };
    let (p99, errors) = match (adaptive.after, baseline.after) {
        (Some(a), Some(b)) => {
            let ratio = a.p99 / b.p99;
            let p99 = format!(
                "{:.1} ({:.1}) | {ratio:.2} {}",
                a.p99,
                b.p99,
                verdict(ratio <= P99_TARGET)
            );
            let (ea, eb) = (a.error_rate(), b.error_rate());
            let error_ratio = match (ea, eb) {
                (0.0, _) => format!("0 {}", verdict(true)),
                (_, 0.0) => format!("∞ {}", verdict(false)),
                _ => format!("{:.2} {}", ea / eb, verdict(ea / eb <= ERROR_TARGET)),
            };
            let errors = format!("{:.2} ({:.2}) | {error_ratio}", 100.0 * ea, 100.0 * eb);
            (p99, errors)
        }
        _ => ("– | –".to_string(), "– | –".to_string()),
    };
    let convergence = match adaptive.convergence.first().copied().flatten() {
        Some(s) => format!("{s} s {}", verdict(s <= CONVERGENCE_TARGET_S)),
        None => format!("n/a {}", verdict(false)),
    };
    let spread = adaptive
        .focus_spread
        .map_or("–".to_string(), |sd| format!("{:.1}", 100.0 * sd));
    format!(
        "| {scenario} | {} | {p99} | {errors} | {convergence} | {spread} |",
        adaptive.contender.label()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::analysis::analyse;
    use crate::scenario::plan::{catalogue, Pace};
    use crate::scenario::runner::Run;

    /// A run where every request takes `slow_ms` once in five, else 5 ms.
    fn run(contender: Contender, slow_ms: u64) -> Run {
        Run::synthetic(contender, |n| {
            if n % 5 == 0 {
                (slow_ms, 200, 1)
            } else {
                (5, 200, 0)
            }
        })
    }

    #[test]
    fn adaptive_modes_are_compared_with_round_robin() {
        let scenario = catalogue(Pace::Quick).swap_remove(0);
        let analyses = vec![
            analyse(
                &scenario,
                &run(Contender::Ballast(BallastMode::RoundRobin), 40),
            ),
            analyse(
                &scenario,
                &run(Contender::Ballast(BallastMode::Latency), 10),
            ),
        ];
        let results = [ScenarioResults {
            scenario,
            analyses,
            failures: vec![],
        }];
        let text = section(&results);
        assert!(text.starts_with("## Targets"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("| baseline | ballast latency"))
            .expect("a row for the latency mode");
        assert!(row.contains("| 10.0 (40.0) | 0.25 ✓ |"), "{row}");
        assert!(row.contains("| 0.00 (0.00) | 0 ✓ |"), "{row}");
        assert!(!text.contains("ballast capacity"), "no run, no row");
        assert_eq!(section(&[]), "");
    }
}

//! The written results: a Markdown report (a table per scenario,
//! contenders as rows, and the per-second shares) and a CSV per scenario
//! with every 1-s bucket.

use super::analysis::Analysis;
use super::checks::Check;
use super::configs::EQUIVALENCES;
use super::plan::{Pace, Scenario};
use super::published::SAMPLE_EVERY;
use super::timeline::{BAND, SETTLE_SECONDS};
use std::fmt::Write;
use std::time::Duration;

/// The results of one scenario.
pub struct ScenarioResults {
    pub scenario: Scenario,
    pub analyses: Vec<Analysis>,
    /// Contenders that could not run, with why.
    pub failures: Vec<String>,
}

/// How the runs were made, for the report's header.
pub struct RunInfo {
    pub date: String,
    pub pace: Pace,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub cpus: usize,
    /// `name version` of each program used.
    pub versions: Vec<String>,
    /// The workspace's revision.
    pub source: Option<String>,
    /// Contenders skipped, with why.
    pub skipped: Vec<String>,
    pub elapsed: Duration,
}

pub fn markdown(info: &RunInfo, results: &[ScenarioResults], checks: &[Check]) -> String {
    let mut out = String::new();
    let pace = match info.pace {
        Pace::Full => "full",
        Pace::Quick => "quick",
    };
    let _ = write!(
        out,
        "# Ballast load-test scenarios\n\n\
         Measured {date} on a {cpus}-CPU machine ({pace} pace, {elapsed:.0} s in all), \
         with {versions}{source}.\n\n",
        date = info.date,
        source = info
            .source
            .as_ref()
            .map_or(String::new(), |rev| format!("; workspace at `{rev}`")),
        cpus = info.cpus,
        elapsed = info.elapsed.as_secs_f64(),
        versions = info.versions.join(", "),
    );
    for note in &info.skipped {
        let _ = writeln!(out, "- {note}");
    }
    let _ = write!(
        out,
        "{skipped_gap}## Method\n\n\
         - **Load** (each scenario states its own): *open loop*, `GET /work` started at a fixed \
         rate on a fixed schedule whatever the answers (so every contender faces the same offered \
         load), at most {max} outstanding (a request due beyond that is not sent and counts as an \
         error); or *closed loop*, N clients each sending the next request as soon as the last \
         one is answered. Both over keep-alive connections from one pooled client; a request is \
         given up after {timeout} s. Latency runs from sending to the end of the response body.\n\
         - **Origins**: in-process simulators on loopback; each request waits a delay drawn from a \
         normal distribution (standard deviation a tenth of the mean) unless the scenario says \
         otherwise. Origins with finite capacity have N workers, each serving one request for its \
         delay, and a FIFO queue for the others (beyond a queue limit, 503 at once); a backend's \
         capacity is workers ÷ mean latency, and a scenario's utilization is its open-loop rate \
         ÷ the fleet's capacity, or for a closed loop its clients ÷ the fleet's workers. Every \
         response names its origin in `x-origin`, which tells who served it.\n\
         - **Proxy**: a child process on loopback with a configuration generated per run \
         (`load-tests/src/scenario/configs.rs`), chosen to make the contenders comparable (table \
         below). Ballast runs with `max_share: 0.95` instead of the default 0.8, which with two \
         backends would keep at least 20% on the worse one.\n\
         - **Share**: the fraction of the requests due in a second that each backend answered \
         (1-s buckets). *before → after* is the tracked backend's mean share over the {settle} s \
         before the change and over the last {settle} s of the phase after it; *sd* is the \
         standard deviation of its 1-s share over that phase, and *steady sd* over its steady \
         state (from convergence to the end of the phase, or its last {settle} s when it never \
         settles), in points.\n\
         - **Convergence**: for the phase after a change, the first second from which the tracked \
         backend's 1-s share stays within ±{band:.0} points of its mean over the last {settle} s of \
         the phase, for at least {settle} s; counted from the change, and followed by that mean \
         (*→ share %*). *n/a*: it never settles.\n\
         - **Published**: Ballast's own share of the tracked backend (`GET /api/v1/state`, sampled \
         every {sample} ms), mean over the last {settle} s of the phase.\n\
         - **Errors** and **latency**: for the whole run and for the phase after the (first) \
         change; errors are what clients saw (after the proxy's retries), as counts and \
         percentages. Anything but a complete 2xx/3xx response is an error. Latency percentiles are \
         nearest-rank over every request sent, errors included.\n\n{EQUIVALENCES}\n",
        skipped_gap = if info.skipped.is_empty() { "" } else { "\n" },
        timeout = info.timeout.as_secs_f64(),
        max = info.max_in_flight,
        settle = SETTLE_SECONDS,
        band = BAND * 100.0,
        sample = SAMPLE_EVERY.as_millis(),
    );
    if !checks.is_empty() {
        out.push_str("## Quality checks\n\n| check | measured | result |\n|---|---|---|\n");
        for check in checks {
            let verdict = if check.passed { "PASS" } else { "**FAIL**" };
            let _ = writeln!(
                out,
                "| {}: {} | {} | {verdict} |",
                check.scenario, check.name, check.measured
            );
        }
        out.push('\n');
    }
    out.push_str(&super::versus::section(results));
    out.push_str(&super::targets::section(results));
    for (number, result) in results.iter().enumerate() {
        scenario_section(&mut out, number + 1, result, true);
    }
    out
}

/// The scenario sections alone, without the per-second shares (for the
/// terminal).
pub fn markdown_tables(results: &[ScenarioResults]) -> String {
    let mut out = String::new();
    for (number, result) in results.iter().enumerate() {
        scenario_section(&mut out, number + 1, result, false);
    }
    out
}

fn scenario_section(out: &mut String, number: usize, result: &ScenarioResults, details: bool) {
    let scenario = &result.scenario;
    let _ = write!(
        out,
        "## {number}. {} (`{}`)\n\n{}\n\n",
        scenario.title, scenario.key, scenario.story
    );
    let focus = scenario.focus_name();
    let marks: Vec<String> = scenario
        .marks
        .iter()
        .map(|m| format!("{} at {} s", m.label, m.at.as_secs()))
        .collect();
    let _ = write!(
        out,
        "Load: {}. Tracked backend: `{focus}`; measured phases start at: {}; {} s in all.\n\n\
         ![{key}]({key}.png)\n\n\
         | contender | served | errors run / after (% run / after) | run p50 / p99 / p99.9 ms | after p50 / p95 / p99 / p99.9 / mean ms | `{focus}` share % before → after (sd) | steady sd | published % | convergence |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---|\n",
        scenario.load.describe(),
        marks.join(", "),
        scenario.duration.as_secs(),
        key = scenario.key,
    );
    for analysis in &result.analyses {
        let _ = writeln!(out, "{}", table_row(scenario, analysis));
    }
    for failure in &result.failures {
        let _ = writeln!(out, "\n{failure}");
    }
    out.push('\n');
    consistency_table(out, result);
    if details {
        shares_table(out, result);
    }
}

fn table_row(scenario: &Scenario, analysis: &Analysis) -> String {
    let convergence: Vec<String> = scenario
        .marks
        .iter()
        .zip(&analysis.convergence)
        .zip(&analysis.settled_shares)
        .map(|((mark, seconds), share)| {
            let seconds = seconds.map_or("n/a".into(), |s| format!("{s} s"));
            format!("{}: {seconds} (→ {})", mark.label, percent(*share))
        })
        .collect();
    let (served, errors, run_latency) = match &analysis.whole {
        Some(whole) => (
            format!("{} / {}", whole.served(), whole.requests),
            (whole.errors.to_string(), percent(Some(whole.error_rate()))),
            format!("{} / {} / {}", ms(whole.p50), ms(whole.p99), ms(whole.p999)),
        ),
        None => ("0".into(), ("–".into(), "–".into()), "–".into()),
    };
    let (after_errors, after_latency) = match &analysis.after {
        Some(after) => (
            (after.errors.to_string(), percent(Some(after.error_rate()))),
            format!(
                "{} / {} / {} / {} / {}",
                ms(after.p50),
                ms(after.p95),
                ms(after.p99),
                ms(after.p999),
                ms(after.mean)
            ),
        ),
        None => (("–".into(), "–".into()), "–".into()),
    };
    let errors = format!(
        "{} / {} ({} / {})",
        errors.0, after_errors.0, errors.1, after_errors.1
    );
    let share = match analysis.focus_before {
        Some(_) => format!(
            "{} → {}",
            percent(analysis.focus_before),
            percent(analysis.focus_after)
        ),
        None => percent(analysis.focus_after),
    };
    format!(
        "| {} | {served} | {errors} | {run_latency} | {after_latency} | {share} ({}) | {} | {} | {} |",
        analysis.contender.label(),
        percent(analysis.focus_spread),
        percent(analysis.focus_steady_spread),
        percent(analysis.published_after),
        convergence.join(", "),
    )
}

/// Where the read-your-writes workload's writes and reads went, per
/// contender (see [`super::consistency`]).
fn consistency_table(out: &mut String, result: &ScenarioResults) {
    let Some(plan) = result.scenario.read_your_writes else {
        return;
    };
    let _ = write!(
        out,
        "| contender | writes (outside `{region}`) | reads within {lag} ms of the user's write: stale | reads within the {ttl} ms ttl: served by `{region}` % | other reads: served locally % |\n\
         |---|---:|---:|---:|---:|\n",
        region = plan.write_region,
        lag = plan.replication_lag.as_millis(),
        ttl = plan.ttl.as_millis(),
    );
    for analysis in &result.analyses {
        let Some(seen) = analysis.consistency else {
            continue;
        };
        let _ = writeln!(
            out,
            "| {} | {} ({}) | {} of {} | {} of {} | {} of {} |",
            analysis.contender.label(),
            seen.writes,
            seen.writes_elsewhere,
            seen.stale_reads,
            seen.fresh_reads,
            percent(seen.pinned_share()),
            seen.pinned_reads,
            percent(seen.local_share()),
            seen.free_reads,
        );
    }
    out.push('\n');
}

/// Per-second shares of every backend, one column per contender, folded.
fn shares_table(out: &mut String, result: &ScenarioResults) {
    if result.analyses.is_empty() {
        return;
    }
    let names: Vec<&str> = result.scenario.backends.iter().map(|b| b.name).collect();
    let _ = write!(
        out,
        "<details><summary>Share per second, % ({})</summary>\n\n| s |",
        names.join(" / ")
    );
    for analysis in &result.analyses {
        let _ = write!(out, " {} |", analysis.contender.label());
    }
    out.push_str("\n|---:|");
    out.push_str(&"---|".repeat(result.analyses.len()));
    out.push('\n');
    let seconds = result.analyses[0].seconds.len();
    for second in 0..seconds {
        let _ = write!(out, "| {second} |");
        for analysis in &result.analyses {
            let cell: Vec<String> = (0..names.len())
                .map(|backend| {
                    let share = analysis.seconds.get(second).and_then(|s| s.share(backend));
                    share.map_or("–".into(), |s| format!("{:.0}", s * 100.0))
                })
                .collect();
            let _ = write!(out, " {} |", cell.join(" / "));
        }
        out.push('\n');
    }
    out.push_str("\n</details>\n\n");
}

/// Every 1-s bucket of every contender: requests, errors, p99, and each
/// backend's observed and published share.
pub fn csv(result: &ScenarioResults) -> String {
    let names: Vec<&str> = result.scenario.backends.iter().map(|b| b.name).collect();
    let mut out = String::from("contender,second,requests,errors,p99_ms");
    for name in &names {
        let _ = write!(out, ",share_{name}");
    }
    for name in &names {
        let _ = write!(out, ",published_{name}");
    }
    out.push('\n');
    let optional = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.4}"));
    for analysis in &result.analyses {
        for (second, bucket) in analysis.seconds.iter().enumerate() {
            let _ = write!(
                out,
                "{},{second},{},{},{}",
                analysis.contender.label(),
                bucket.requests,
                bucket.errors,
                optional(bucket.p99)
            );
            for backend in 0..names.len() {
                let _ = write!(out, ",{}", optional(bucket.share(backend)));
            }
            for backend in 0..names.len() {
                let published = analysis.published.get(second).and_then(|p| p[backend]);
                let _ = write!(out, ",{}", optional(published));
            }
            out.push('\n');
        }
    }
    out
}

fn percent(value: Option<f64>) -> String {
    value.map_or("–".into(), |v| format!("{:.1}", v * 100.0))
}

fn ms(value: f64) -> String {
    format!("{value:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::analysis::analyse;
    use crate::scenario::contender::{BallastMode, Contender};
    use crate::scenario::load::{Answer, Outcome, Traffic};
    use crate::scenario::plan::catalogue;
    use crate::scenario::runner::Run;

    fn results() -> ScenarioResults {
        let scenario = catalogue(Pace::Quick).swap_remove(0);
        let outcomes = (0..100u64)
            .map(|n| Outcome {
                sent_at: Duration::from_millis(n * 100),
                latency: Duration::from_millis(if n % 5 == 0 { 40 } else { 5 }),
                answer: Answer::Status(200),
                origin: Some(usize::from(n % 5 == 0)),
                traffic: Traffic::Read,
            })
            .collect();
        let run = Run {
            contender: Contender::Ballast(BallastMode::Latency),
            outcomes,
            published: vec![],
        };
        let analysis = analyse(&scenario, &run);
        ScenarioResults {
            scenario,
            analyses: vec![analysis],
            failures: vec![],
        }
    }

    #[test]
    fn the_report_has_a_row_per_contender_and_the_checks() {
        let info = RunInfo {
            date: "2026-01-02".into(),
            pace: Pace::Quick,
            timeout: Duration::from_secs(5),
            max_in_flight: 64,
            cpus: 2,
            versions: vec!["ballast 0.1.0".into()],
            source: Some("abc1234".into()),
            skipped: vec![],
            elapsed: Duration::from_secs(12),
        };
        let checks = [Check {
            scenario: "baseline",
            name: "a check".into(),
            measured: "1 < 2".into(),
            passed: true,
        }];
        let text = markdown(&info, &[results()], &checks);
        assert!(text.contains(
            "Measured 2026-01-02 on a 2-CPU machine (quick pace, 12 s in all), \
             with ballast 0.1.0; workspace at `abc1234`."
        ));
        assert!(text.contains("| baseline: a check | 1 < 2 | PASS |"));
        assert!(text.contains("![baseline](baseline.png)"));
        assert!(
            text.contains(
                "| ballast latency | 100 / 100 | 0 / 0 (0.0 / 0.0) | 5.0 / 40.0 / 40.0 |"
            ),
            "{text}"
        );
        assert!(
            text.contains("| 20.0 (0.0) | 0.0 | – | start: 0 s (→ 20.0) |"),
            "{text}"
        );
        assert!(text.contains("| 0 | 80 / 20 |"));
    }

    #[test]
    fn the_csv_has_a_line_per_second() {
        let csv = csv(&results());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "contender,second,requests,errors,p99_ms,share_big,share_small,published_big,published_small"
        );
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[1], "ballast latency,0,10,0,40.0000,0.8000,0.2000,,");
    }
}

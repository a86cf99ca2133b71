//! `ballast-scenarios`: run the load-test scenarios against Ballast (in each
//! routing mode) and, when installed, nginx and HAProxy; write a Markdown
//! report, a CSV and a PNG per scenario; with `--quick`, run a short subset
//! against Ballast and HAProxy `leastconn` and exit non-zero when a quality
//! check fails.
//!
//! ```text
//! ballast-scenarios [--quick] [--ballast PATH] [--out DIR] [--scenario KEY]... [--rate N]
//!                   [--contender TEXT]...
//! ```
//!
//! Exit status: 0 when every run completed (and, with `--quick`, every
//! check passed); 1 otherwise; 2 for usage errors.

use ballast_load_tests::scenario::analysis::{analyse, Analysis};
use ballast_load_tests::scenario::chart;
use ballast_load_tests::scenario::checks::{quick_checks, Check};
use ballast_load_tests::scenario::contender::{self, Contender};
use ballast_load_tests::scenario::plan::{catalogue, Load, Pace, Scenario};
use ballast_load_tests::scenario::report::{self, RunInfo, ScenarioResults};
use ballast_load_tests::scenario::runner::{self, Settings};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Parser)]
#[command(
    name = "ballast-scenarios",
    version,
    about = "Load-test scenarios: Ballast's routing modes against each other, nginx and HAProxy"
)]
struct Cli {
    /// Short subset (baseline, spike, failure, canary, spillover, failover,
    /// read-your-writes, small-fast-vs-roomy-slow, errors-503), phases of
    /// at most 12 s, Ballast's weight modes and HAProxy leastconn, with
    /// quality checks.
    #[arg(long)]
    quick: bool,
    /// The ballast binary (default: $CARGO_TARGET_DIR/release/ballast,
    /// else target/release/ballast of this workspace).
    #[arg(long, value_name = "PATH")]
    ballast: Option<PathBuf>,
    /// Where to write the report (default: load-tests/results/DATE, or
    /// DATE-quick with --quick).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run only these scenarios (repeatable): baseline, spike, failure,
    /// degradation, flapping, canary, silent, spillover, failover,
    /// read-your-writes; with finite-capacity origins: flapping-1s,
    /// small-fast-vs-roomy-slow, errors-503, ten-one-slow,
    /// capacities-1-2-4-8-70, capacities-1-2-4-8-90, half-workers-lost,
    /// heavy-tail, fifty-mixed.
    #[arg(long = "scenario", value_name = "KEY")]
    scenarios: Vec<String>,
    /// Requests per second of every open-loop scenario, instead of each
    /// one's own (400 for those with origins of unlimited capacity; the
    /// finite-capacity scenarios' rates give their stated utilization,
    /// which another rate changes).
    #[arg(long, value_parser = clap::value_parser!(u32).range(10..=5000))]
    rate: Option<u32>,
    /// Run only the contenders whose label contains this (repeatable), e.g.
    /// `--contender latency --contender haproxy`.
    #[arg(long = "contender", value_name = "TEXT")]
    contenders: Vec<String>,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_IN_FLIGHT: usize = 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs everything; `Ok(false)` when a run failed or a check did not pass.
fn run(cli: Cli) -> Result<bool, String> {
    let began = Instant::now();
    let pace = if cli.quick { Pace::Quick } else { Pace::Full };
    let mut scenarios = select(catalogue(pace), &cli.scenarios)?;
    if let Some(rate) = cli.rate {
        for scenario in &mut scenarios {
            if let Load::Open { .. } = scenario.load {
                scenario.load = Load::Open { rate };
            }
        }
    }
    let ballast = ballast_binary(cli.ballast)?;
    chart::load_font()?;
    let date = today();
    let out = cli.out.unwrap_or_else(|| {
        let name = match pace {
            Pace::Full => date.clone(),
            Pace::Quick => format!("{date}-quick"),
        };
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join(name)
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let (contenders, skipped) = contender::contenders(pace);
    let contenders = contender::filter(contenders, &cli.contenders)?;
    for note in &skipped {
        println!("note: {note}");
    }
    let settings = Settings {
        ballast: ballast.clone(),
        timeout: REQUEST_TIMEOUT,
        max_in_flight: MAX_IN_FLIGHT,
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start tokio: {e}"))?;
    let suite = async {
        let mut results = Vec::new();
        for scenario in scenarios {
            results.push(run_scenario(scenario, &contenders, &settings).await);
        }
        results
    };
    // On Ctrl-C the suite is dropped, which stops every proxy it started.
    let results: Vec<ScenarioResults> = runtime.block_on(async {
        tokio::select! {
            results = suite => Ok(results),
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_string()),
        }
    })?;
    let checks: Vec<Check> = match pace {
        Pace::Quick => quick_checks(&results),
        Pace::Full => Vec::new(),
    };
    let mut versions = vec![contender::version(&ballast)];
    let mut programs: Vec<&str> = contenders.iter().filter_map(|c| c.program()).collect();
    // nginx runs as two contenders.
    programs.dedup();
    versions.extend(
        programs
            .into_iter()
            .map(|program| contender::version(Path::new(program))),
    );
    let info = RunInfo {
        date,
        pace,
        timeout: REQUEST_TIMEOUT,
        max_in_flight: MAX_IN_FLIGHT,
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        versions,
        source: source_revision(),
        skipped,
        elapsed: began.elapsed(),
    };
    let mut complete = true;
    for result in &results {
        complete &= result.failures.is_empty();
        let write = |name: String, text: String| {
            std::fs::write(out.join(&name), text).map_err(|e| format!("cannot write {name}: {e}"))
        };
        write(format!("{}.csv", result.scenario.key), report::csv(result))?;
        chart::draw(result, &out.join(format!("{}.png", result.scenario.key)))?;
    }
    let markdown = report::markdown(&info, &results, &checks);
    let report_path = out.join("README.md");
    std::fs::write(&report_path, &markdown)
        .map_err(|e| format!("cannot write {}: {e}", report_path.display()))?;
    println!("\n{}", report::markdown_tables(&results));
    for check in &checks {
        let verdict = if check.passed { "PASS" } else { "FAIL" };
        println!(
            "{verdict}: {}: {} — {}",
            check.scenario, check.name, check.measured
        );
    }
    println!("report: {}", report_path.display());
    let passed = checks.iter().all(|c| c.passed);
    if !complete {
        eprintln!("some runs failed (see above)");
    }
    Ok(complete && passed)
}

async fn run_scenario(
    scenario: Scenario,
    contenders: &[Contender],
    settings: &Settings,
) -> ScenarioResults {
    println!(
        "== {} ({}, {} s)",
        scenario.title,
        scenario.key,
        scenario.duration.as_secs()
    );
    let mut analyses: Vec<Analysis> = Vec::new();
    let mut failures = Vec::new();
    for &contender in contenders {
        match runner::run(&scenario, contender, settings).await {
            Ok(run) => {
                let analysis = analyse(&scenario, &run);
                println!("   {}", progress_line(&analysis));
                analyses.push(analysis);
            }
            Err(message) => {
                println!("   {}: FAILED: {message}", contender.label());
                failures.push(format!("{}: failed to run: {message}", contender.label()));
            }
        }
    }
    ScenarioResults {
        scenario,
        analyses,
        failures,
    }
}

fn progress_line(analysis: &Analysis) -> String {
    match &analysis.after {
        Some(after) => format!(
            "{:<20} {} requests, {} errors ({:.2}%) after the change, mean / p99 after {:.1} / {:.1} ms",
            analysis.contender.label(),
            after.requests,
            after.errors,
            after.error_rate() * 100.0,
            after.mean,
            after.p99
        ),
        None => format!("{:<20} no requests", analysis.contender.label()),
    }
}

fn select(all: Vec<Scenario>, wanted: &[String]) -> Result<Vec<Scenario>, String> {
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !all.iter().any(|s| s.key == w.as_str()))
    {
        let keys: Vec<&str> = all.iter().map(|s| s.key).collect();
        return Err(format!(
            "unknown scenario {unknown:?} (at this pace: {})",
            keys.join(", ")
        ));
    }
    Ok(all
        .into_iter()
        .filter(|s| wanted.is_empty() || wanted.iter().any(|w| w == s.key))
        .collect())
}

/// `--ballast`, else `$CARGO_TARGET_DIR/release/ballast`, else this
/// workspace's `target/release/ballast`.
fn ballast_binary(given: Option<PathBuf>) -> Result<PathBuf, String> {
    let path = given.unwrap_or_else(|| {
        let from_env = std::env::var_os("CARGO_TARGET_DIR")
            .map(|dir| PathBuf::from(dir).join("release/ballast"))
            .filter(|p| p.is_file());
        from_env.unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/ballast")
        })
    });
    match path.is_file() {
        true => Ok(path),
        false => Err(format!(
            "no ballast binary at {} (build it with `cargo build --release -p ballast`, or pass --ballast PATH)",
            path.display()
        )),
    }
}

/// The workspace's git revision (`-dirty` with local changes), if known.
fn source_revision() -> Option<String> {
    let output = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "describe",
            "--always",
            "--dirty",
        ])
        .output()
        .ok()?;
    let revision = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !revision.is_empty()).then_some(revision)
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let (year, month, day) = civil_date(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(19_723), (2024, 1, 1));
        assert_eq!(civil_date(20_513), (2026, 3, 1));
    }

    #[test]
    fn unknown_scenarios_are_refused() {
        let error = select(catalogue(Pace::Quick), &["flapping".into()]).unwrap_err();
        assert!(
            error.contains("baseline, spike, failure, canary"),
            "{error}"
        );
        let chosen = select(catalogue(Pace::Full), &["canary".into()]).unwrap();
        assert_eq!(chosen.len(), 1);
    }
}

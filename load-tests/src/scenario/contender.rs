//! The contenders a scenario runs against: Ballast in each routing mode,
//! and, when they are installed, nginx (weighted round robin and
//! `least_conn`) and HAProxy (`leastconn`).

use super::plan::Pace;
use std::path::{Path, PathBuf};

/// Ballast's routing modes (`pools.*.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BallastMode {
    Latency,
    Capacity,
    RoundRobin,
    /// Linkerd's P2C over peak-EWMA round trips: the in-house reference.
    PeakEwma,
}

impl BallastMode {
    /// The value of `mode:` in the configuration.
    pub fn as_config(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Capacity => "capacity",
            Self::RoundRobin => "round_robin",
            Self::PeakEwma => "peak_ewma",
        }
    }

    /// Whether the weight engine adapts the shares (tiers need it).
    pub fn is_adaptive(self) -> bool {
        matches!(self, Self::Latency | Self::Capacity)
    }
}

/// nginx's balancing methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NginxBalance {
    /// The default: weighted round robin.
    RoundRobin,
    /// `least_conn`: the fewest active connections, weighted.
    LeastConn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Ballast(BallastMode),
    /// nginx with one of its balancing methods.
    Nginx(NginxBalance),
    /// HAProxy, `balance leastconn` (weighted).
    Haproxy,
}

impl Contender {
    /// How the report names it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ballast(BallastMode::Latency) => "ballast latency",
            Self::Ballast(BallastMode::Capacity) => "ballast capacity",
            Self::Ballast(BallastMode::RoundRobin) => "ballast round_robin",
            Self::Ballast(BallastMode::PeakEwma) => "ballast peak_ewma",
            Self::Nginx(NginxBalance::RoundRobin) => "nginx round robin",
            Self::Nginx(NginxBalance::LeastConn) => "nginx least_conn",
            Self::Haproxy => "haproxy leastconn",
        }
    }

    /// The program a third-party contender needs on `PATH`.
    pub fn program(self) -> Option<&'static str> {
        match self {
            Self::Ballast(_) => None,
            Self::Nginx(_) => Some("nginx"),
            Self::Haproxy => Some("haproxy"),
        }
    }
}

/// The contenders to run at `pace`, and a note for each one skipped. The
/// quick pace runs Ballast's three weight modes and HAProxy, the policy its
/// checks compare the default with.
pub fn contenders(pace: Pace) -> (Vec<Contender>, Vec<String>) {
    let mut chosen = vec![
        Contender::Ballast(BallastMode::Latency),
        Contender::Ballast(BallastMode::Capacity),
        Contender::Ballast(BallastMode::RoundRobin),
    ];
    let mut skipped = Vec::new();
    let others: &[Contender] = match pace {
        Pace::Quick => &[Contender::Haproxy],
        Pace::Full => {
            chosen.push(Contender::Ballast(BallastMode::PeakEwma));
            &[
                Contender::Nginx(NginxBalance::RoundRobin),
                Contender::Nginx(NginxBalance::LeastConn),
                Contender::Haproxy,
            ]
        }
    };
    for &contender in others {
        let program = contender
            .program()
            .expect("third-party contenders name a program");
        match find_on_path(program) {
            Some(_) => chosen.push(contender),
            None => skipped.push(format!(
                "{}: skipped, `{program}` is not on PATH",
                contender.label()
            )),
        }
    }
    (chosen, skipped)
}

/// `contenders` restricted to those whose label contains one of `wanted`
/// (all when `wanted` is empty); an error names a filter that matches none.
pub fn filter(contenders: Vec<Contender>, wanted: &[String]) -> Result<Vec<Contender>, String> {
    if let Some(unknown) = wanted
        .iter()
        .find(|w| !contenders.iter().any(|c| c.label().contains(w.as_str())))
    {
        let labels: Vec<&str> = contenders.iter().map(|c| c.label()).collect();
        return Err(format!(
            "no contender matches \"{unknown}\" (available: {})",
            labels.join(", ")
        ));
    }
    Ok(contenders
        .into_iter()
        .filter(|c| wanted.is_empty() || wanted.iter().any(|w| c.label().contains(w.as_str())))
        .collect())
}

/// The first executable file named `program` in `$PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `program version`, from the first line the program prints for
/// `--version` (Ballast, by any file name that starts with `ballast`, as a
/// copied build `ballast-before` does) or `-v` (nginx, HAProxy), without
/// their prefixes and suffixes.
pub fn version(program: &Path) -> String {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let flag = if name.starts_with("ballast") {
        "--version"
    } else {
        "-v"
    };
    let reported = std::process::Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .and_then(|output| {
            let text = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(tidy_version)
        });
    reported.unwrap_or_else(|| format!("{name} (version unknown)"))
}

/// `nginx version: nginx/1.22.1` → `nginx/1.22.1`;
/// `HAProxy version 2.6.12 2023/01/01 - https://haproxy.org/` →
/// `HAProxy version 2.6.12 2023/01/01`.
fn tidy_version(line: &str) -> String {
    let line = line.trim_start_matches("nginx version: ");
    line.split(" - ").next().unwrap_or(line).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_are_filtered_by_label() {
        let all = vec![
            Contender::Ballast(BallastMode::Latency),
            Contender::Ballast(BallastMode::PeakEwma),
            Contender::Haproxy,
        ];
        let wanted = vec!["latency".to_string(), "haproxy".to_string()];
        assert_eq!(
            filter(all.clone(), &wanted).unwrap(),
            vec![Contender::Ballast(BallastMode::Latency), Contender::Haproxy]
        );
        assert_eq!(filter(all.clone(), &[]).unwrap(), all);
        let error = filter(all, &["envoy".to_string()]).unwrap_err();
        assert!(error.contains("no contender matches \"envoy\""), "{error}");
    }

    #[test]
    fn versions_lose_their_decorations() {
        assert_eq!(tidy_version("nginx version: nginx/1.22.1"), "nginx/1.22.1");
        assert_eq!(
            tidy_version("HAProxy version 2.6.12-1 2026/10/17 - https://haproxy.org/"),
            "HAProxy version 2.6.12-1 2026/10/17"
        );
        assert_eq!(tidy_version("ballast 0.1.0"), "ballast 0.1.0");
    }

    #[test]
    fn the_quick_pace_runs_ballasts_weight_modes_and_haproxy() {
        let (chosen, skipped) = contenders(Pace::Quick);
        let ballast: Vec<Contender> = chosen
            .iter()
            .copied()
            .filter(|c| c.program().is_none())
            .collect();
        assert_eq!(
            ballast,
            vec![
                Contender::Ballast(BallastMode::Latency),
                Contender::Ballast(BallastMode::Capacity),
                Contender::Ballast(BallastMode::RoundRobin),
            ]
        );
        let others: Vec<Contender> = chosen
            .into_iter()
            .filter(|c| c.program().is_some())
            .collect();
        // HAProxy runs when installed, and is named as skipped otherwise.
        assert_eq!(others.len() + skipped.len(), 1);
        assert!(others.iter().all(|&c| c == Contender::Haproxy));
        assert!(skipped
            .iter()
            .all(|note| note.starts_with("haproxy leastconn: skipped")));
    }
}

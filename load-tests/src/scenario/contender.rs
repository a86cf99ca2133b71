//! The contenders a scenario runs against: Ballast in each routing mode,
//! and nginx and HAProxy when they are installed.

use super::plan::Pace;
use std::path::{Path, PathBuf};

/// Ballast's routing modes (`pools.*.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BallastMode {
    Latency,
    Capacity,
    RoundRobin,
}

impl BallastMode {
    /// The value of `mode:` in the configuration.
    pub fn as_config(self) -> &'static str {
        match self {
            Self::Latency => "latency",
            Self::Capacity => "capacity",
            Self::RoundRobin => "round_robin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Ballast(BallastMode),
    /// nginx, weighted round robin.
    Nginx,
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
            Self::Nginx => "nginx round robin",
            Self::Haproxy => "haproxy leastconn",
        }
    }

    /// The program a third-party contender needs on `PATH`.
    pub fn program(self) -> Option<&'static str> {
        match self {
            Self::Ballast(_) => None,
            Self::Nginx => Some("nginx"),
            Self::Haproxy => Some("haproxy"),
        }
    }
}

/// The contenders to run at `pace`, and a note for each one skipped. The
/// quick pace runs Ballast only.
pub fn contenders(pace: Pace) -> (Vec<Contender>, Vec<String>) {
    let mut chosen = vec![
        Contender::Ballast(BallastMode::Latency),
        Contender::Ballast(BallastMode::Capacity),
        Contender::Ballast(BallastMode::RoundRobin),
    ];
    let mut skipped = Vec::new();
    if pace == Pace::Quick {
        return (chosen, skipped);
    }
    for contender in [Contender::Nginx, Contender::Haproxy] {
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

/// The first executable file named `program` in `$PATH`.
fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `program version`, as the program itself reports it (first line of
/// `--version` / `-v`, whichever stream it uses).
pub fn version(program: &Path) -> String {
    let name = program.file_name().map_or_else(
        || program.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let flag = if name == "ballast" { "--version" } else { "-v" };
    let reported = std::process::Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .and_then(|output| {
            let text = [output.stdout, output.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(str::to_string)
        });
    reported.unwrap_or_else(|| format!("{name} (version unknown)"))
}

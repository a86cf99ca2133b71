//! `ballast check`: validate a configuration file, resolve the backends it
//! names by DNS once, and report — as text for people or as JSON for CI
//! pipelines (`--json`). Every problem is reported at once; a name that does
//! not resolve now is a warning, not an error (the proxy starts all the same
//! and keeps trying).

use crate::config::{self, ConfigError, ConfigView, Snapshot};
use crate::discovery::dns::Dns;
use serde::Serialize;
use std::path::Path;

/// What `ballast check` found.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// The file checked, as given.
    pub config: String,
    pub valid: bool,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
    /// What each backend named by DNS stands for now (when resolved).
    pub names: Vec<ResolvedName>,
    /// The validated configuration (absent when it is not valid).
    pub configuration: Option<ConfigView>,
    #[serde(skip)]
    summary: Option<String>,
}

/// One error or warning, at its place in the file (`line N` for a
/// variable, the YAML path otherwise).
#[derive(Debug, Serialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl From<&ConfigError> for Problem {
    fn from(error: &ConfigError) -> Self {
        Self {
            path: error.path.clone(),
            message: error.message.clone(),
        }
    }
}

/// A DNS name of a pool and the addresses it resolved to.
#[derive(Debug, Serialize)]
pub struct ResolvedName {
    pub pool: String,
    pub name: String,
    pub addresses: Vec<String>,
}

/// Check the file at `path`; with `resolve`, resolve its DNS names once.
pub fn check(path: &Path, resolve: bool) -> CheckReport {
    let mut report = CheckReport {
        config: path.display().to_string(),
        valid: false,
        errors: Vec::new(),
        warnings: Vec::new(),
        names: Vec::new(),
        configuration: None,
        summary: None,
    };
    match config::load_file(path) {
        Ok(snapshot) => {
            report.valid = true;
            if resolve {
                resolve_names(&snapshot, &mut report);
            }
            report.summary = Some(snapshot.summary());
            report.configuration = Some(ConfigView::new(&snapshot));
        }
        Err(errors) => report.errors = errors.0.iter().map(Problem::from).collect(),
    }
    report
}

impl CheckReport {
    /// The report for people: on stdout when valid, on stderr when not.
    pub fn text(&self) -> String {
        let mut out = String::new();
        if self.valid {
            out.push_str(&format!("{}: configuration OK\n", self.config));
            out.push_str(self.summary.as_deref().unwrap_or_default());
            if !self.names.is_empty() {
                out.push_str("names:\n");
            }
            for name in &self.names {
                let addresses = name.addresses.join(" ");
                out.push_str(&format!("  {}: {} -> {addresses}\n", name.pool, name.name));
            }
        } else {
            let count = self.errors.len();
            let plural = if count == 1 { "" } else { "s" };
            out.push_str(&format!(
                "{}: {count} configuration error{plural}:\n",
                self.config
            ));
            for error in &self.errors {
                out.push_str(&format!("  {}\n", render(error)));
            }
        }
        for warning in &self.warnings {
            out.push_str(&format!("warning: {}\n", render(warning)));
        }
        out
    }

    /// The report as pretty JSON.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes") + "\n"
    }
}

fn render(problem: &Problem) -> String {
    if problem.path.is_empty() {
        problem.message.clone()
    } else {
        format!("{}: {}", problem.path, problem.message)
    }
}

fn resolve_names(snapshot: &Snapshot, report: &mut CheckReport) {
    let entries: Vec<_> = snapshot.named_entries().collect();
    if entries.is_empty() {
        return;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report.warnings.push(Problem {
                path: String::new(),
                message: format!("cannot resolve the backends named by DNS: {e}"),
            });
            return;
        }
    };
    runtime.block_on(async {
        let dns = Dns::new(&snapshot.discovery);
        for (pool, entry) in entries {
            match dns.resolve(&entry.name).await {
                Ok(resolved) => report.names.push(ResolvedName {
                    pool: pool.to_string(),
                    name: entry.name.to_string(),
                    addresses: resolved.addrs.iter().map(ToString::to_string).collect(),
                }),
                Err(failure) => report.warnings.push(Problem {
                    path: entry.path.clone(),
                    message: format!(
                        "{} does not resolve now ({}: {}); the proxy starts without its backends and keeps trying",
                        entry.name,
                        failure.kind.as_str(),
                        failure.message
                    ),
                }),
            }
        }
    });
}

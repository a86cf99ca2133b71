//! The `ballast` command: run the proxy, check a configuration, make
//! development certificates, or probe an HTTP endpoint (container health
//! checks).

use ballast::config::{self, AccessOutput};
use ballast::probes::http_probe::{self, ProbeUrl};
use ballast::server::{ProxyServer, StartOptions};
use ballast::telemetry::logging::{self, LogFormat};
use ballast::tls::devcert::DevCerts;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// mimalloc: a proxy allocates and frees small buffers for every request,
/// which glibc's allocator serves markedly slower (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ballast",
    version,
    about = "An L7 reverse proxy for backends that are not alike"
)]
struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "BALLAST_LOG_FORMAT")]
    log_format: LogFormat,
    /// Log level or filter (e.g. `debug`, `info,ballast::access=warn`); overrides BALLAST_LOG.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// Configuration file.
        #[arg(
            short,
            long,
            default_value = "conf/ballast.yaml",
            env = "BALLAST_CONFIG"
        )]
        config: PathBuf,
        /// Take over the listening sockets of a running Ballast (graceful
        /// upgrade: start this, then send SIGQUIT to the old process).
        #[arg(long)]
        upgrade: bool,
    },
    /// Validate a configuration file: print a summary, or every error and exit 1.
    /// Backends named by DNS are resolved once; one that does not resolve is a
    /// warning, not an error.
    Check {
        /// Configuration file.
        #[arg(
            short,
            long,
            default_value = "conf/ballast.yaml",
            env = "BALLAST_CONFIG"
        )]
        config: PathBuf,
        /// Do not resolve the backends named by DNS (check the file only, as
        /// where those names mean nothing, e.g. outside their cluster).
        #[arg(long)]
        no_resolve: bool,
        /// Print the report as JSON on stdout (errors, warnings, resolved
        /// names and the validated configuration), for CI pipelines.
        #[arg(long)]
        json: bool,
    },
    /// Print the configuration's JSON Schema (for editors validating the YAML).
    Schema,
    /// Write a development CA and a certificate it signs (never use in production).
    GenCert {
        /// Directory to write ca.crt, ca.key, <stem>.crt and <stem>.key into.
        #[arg(short, long, default_value = "certs")]
        out: PathBuf,
        /// File name stem of the leaf certificate.
        #[arg(long, default_value = "dev")]
        stem: String,
        /// Names (DNS, *.wildcard or IP) the certificate is valid for.
        #[arg(long = "name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()])]
        names: Vec<String>,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Probe an HTTP endpoint once (e.g. the admin /readyz): exit 0 on a 2xx
    /// answer, 1 on anything else (for images without curl).
    Probe {
        /// http://IP:PORT/PATH, e.g. http://127.0.0.1:9901/readyz.
        url: ProbeUrl,
        /// Give up after this long (connect, send and answer together).
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    ballast::tls::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            config,
            no_resolve,
            json,
        } => check(&config, !no_resolve, json),
        Command::Schema => {
            print!("{}", config::json_schema());
            ExitCode::SUCCESS
        }
        Command::GenCert {
            out,
            stem,
            names,
            force,
        } => gen_cert(&out, &stem, &names, force),
        Command::Probe { url, timeout } => match http_probe::probe(&url, timeout) {
            Ok(status) => {
                println!("{}{}: {status}", url.authority, url.path);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}{}: {e}", url.authority, url.path);
                ExitCode::FAILURE
            }
        },
        Command::Run { config, upgrade } => {
            run(&config, upgrade, cli.log_format, cli.log_level.as_deref())
        }
    }
}

fn check(path: &std::path::Path, resolve: bool, json: bool) -> ExitCode {
    let report = ballast::check::check(path, resolve);
    if json {
        print!("{}", report.json());
    } else if report.valid {
        print!("{}", report.text());
    } else {
        eprint!("{}", report.text());
    }
    if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn gen_cert(out: &std::path::Path, stem: &str, names: &[String], force: bool) -> ExitCode {
    let targets = [
        "ca.crt".to_string(),
        "ca.key".to_string(),
        format!("{stem}.crt"),
        format!("{stem}.key"),
    ];
    if !force {
        if let Some(existing) = targets.iter().map(|f| out.join(f)).find(|p| p.exists()) {
            eprintln!(
                "error: {} already exists (use --force to replace)",
                existing.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let written = DevCerts::generate(names)
        .map_err(|e| format!("cannot generate certificate: {e}"))
        .and_then(|certs| {
            certs
                .write_all(out, stem)
                .map_err(|e| format!("cannot write into {}: {e}", out.display()))
        });
    match written {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
            println!("valid for: {}", names.join(", "));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Load the configuration, start logging (the access log's output is in
/// the configuration) and serve until stopped.
fn run(
    path: &std::path::Path,
    upgrade: bool,
    log_format: LogFormat,
    log_level: Option<&str>,
) -> ExitCode {
    let snapshot = match config::load_file(path) {
        Ok(snapshot) => Arc::new(snapshot),
        Err(errors) => {
            eprintln!("{}: {errors}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let access_file = match &snapshot.server.access_output {
        AccessOutput::Stderr => None,
        AccessOutput::File(path) => Some(path.as_path()),
    };
    let _log_writer = match logging::init(log_format, log_level, access_file) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for line in snapshot.summary().lines() {
        tracing::info!("{line}");
    }
    let options = StartOptions {
        config_file: Some(path.to_path_buf()),
        upgrade,
    };
    let server = match ProxyServer::new(snapshot, &options) {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = %path.display(), "ballast {} serving", env!("CARGO_PKG_VERSION"));
    server.run(true);
    tracing::info!("ballast stopped");
    ExitCode::SUCCESS
}

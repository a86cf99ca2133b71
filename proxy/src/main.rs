//! The `ballast` command: run the proxy (from a file, or from a fleet's
//! store), check a configuration, push one to a fleet's store, make
//! development certificates, or probe an HTTP endpoint (container health
//! checks).

use ballast::config::{self, AccessOutput, InstanceOverrides};
use ballast::fleet::commands;
use ballast::fleet::store::StoreUrl;
use ballast::probes::http_probe::{self, ProbeUrl};
use ballast::server::{ConfigOrigin, ProxyServer, StartOptions};
use ballast::telemetry::logging::{self, LogFormat};
use ballast::tls::devcert::DevCerts;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
        /// Take the configuration from a fleet's store instead of a file,
        /// and follow it: etcd://HOST:PORT[,HOST:PORT...][/PREFIX].
        #[arg(long, env = "BALLAST_CONFIG_STORE", conflicts_with = "config")]
        config_store: Option<StoreUrl>,
        /// How long to wait at start for the store to answer.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        store_timeout: Duration,
        /// This instance's listener addresses, one per configured listener
        /// in order, in place of the configuration's (repeat the flag).
        #[arg(long = "listen", value_name = "ADDR")]
        listen: Vec<SocketAddr>,
        /// This instance's admin address, in place of the configuration's.
        #[arg(long, value_name = "ADDR")]
        admin: Option<SocketAddr>,
        /// This instance's name in the fleet (default: host name and admin port).
        #[arg(long, env = "BALLAST_INSTANCE")]
        instance: Option<String>,
        /// Take over the listening sockets of a running Ballast (graceful
        /// upgrade: start this, then send SIGQUIT to the old process).
        #[arg(long)]
        upgrade: bool,
    },
    /// A fleet's stored configuration: push one, or see what each instance runs.
    #[command(subcommand)]
    Config(ConfigCommand),
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

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate a configuration file as `ballast check` does and, when valid,
    /// store it for the fleet (nothing is written when it is not).
    Push {
        /// The fleet's store: etcd://HOST:PORT[,HOST:PORT...][/PREFIX].
        #[arg(long, env = "BALLAST_CONFIG_STORE")]
        store: StoreUrl,
        /// Configuration file.
        #[arg(short, long, default_value = "conf/ballast.yaml")]
        config: PathBuf,
        /// Do not resolve the backends named by DNS while validating.
        #[arg(long)]
        no_resolve: bool,
    },
    /// The stored configuration's revision and each registered instance:
    /// the revision it runs, or the one it refused and why.
    Status {
        /// The fleet's store: etcd://HOST:PORT[,HOST:PORT...][/PREFIX].
        #[arg(long, env = "BALLAST_CONFIG_STORE")]
        store: StoreUrl,
        /// Print the members as JSON.
        #[arg(long)]
        json: bool,
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
        Command::Run {
            config,
            config_store,
            store_timeout,
            listen,
            admin,
            instance,
            upgrade,
        } => {
            let origin = match config_store {
                Some(url) => Origin::Store(url, store_timeout),
                None => Origin::File(config),
            };
            let instance = Instance {
                overrides: InstanceOverrides { listen, admin },
                name: instance,
            };
            run(
                origin,
                instance,
                upgrade,
                cli.log_format,
                cli.log_level.as_deref(),
            )
        }
        Command::Config(command) => config_command(command),
    }
}

fn config_command(command: ConfigCommand) -> ExitCode {
    match command {
        ConfigCommand::Push {
            store,
            config,
            no_resolve,
        } => {
            let report = ballast::check::check(&config, !no_resolve);
            let pushed = config::read_config(&config)
                .map_err(|e| format!("{}: {e}", config.display()))
                .and_then(|text| commands::push(&store, &report, &text));
            match pushed {
                Ok(revision) => {
                    println!(
                        "stored {} as {} at revision {revision}",
                        config.display(),
                        store.config_key()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        ConfigCommand::Status { store, json } => match commands::status(&store) {
            Ok(status) => {
                if json {
                    println!("{:#}", status.to_json());
                } else {
                    print!(
                        "{}",
                        commands::status_text(&store, status.revision, &status.members)
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
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

/// Where `ballast run` takes its configuration from.
enum Origin {
    File(PathBuf),
    /// A fleet's store, and how long to wait for it at start.
    Store(StoreUrl, Duration),
}

/// What the command line sets for this instance alone.
struct Instance {
    overrides: InstanceOverrides,
    name: Option<String>,
}

/// Read the configuration's text: where it came from, its text, and where
/// its relative paths resolve.
fn read_origin(origin: Origin) -> Result<(ConfigOrigin, PathBuf), String> {
    match origin {
        Origin::File(path) => {
            let text =
                config::read_config(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let base_dir = path
                .parent()
                .unwrap_or_else(|| Path::new("."))
                .to_path_buf();
            Ok((ConfigOrigin::File { path, text }, base_dir))
        }
        Origin::Store(url, patience) => {
            let stored = commands::fetch_config(&url, patience)?;
            let base_dir = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            let origin = ConfigOrigin::Store {
                url,
                text: stored.text,
                revision: stored.revision,
            };
            Ok((origin, base_dir))
        }
    }
}

/// Load the configuration, start logging (the access log's output is in
/// the configuration) and serve until stopped.
fn run(
    origin: Origin,
    instance: Instance,
    upgrade: bool,
    log_format: LogFormat,
    log_level: Option<&str>,
) -> ExitCode {
    let (origin, base_dir) = match read_origin(origin) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (text, described) = match &origin {
        ConfigOrigin::File { path, text } => (text, path.display().to_string()),
        ConfigOrigin::Store {
            url,
            text,
            revision,
        } => (text, format!("{url} (revision {revision})")),
    };
    let snapshot = match config::load_str_with(text, &base_dir, &instance.overrides) {
        Ok(snapshot) => Arc::new(snapshot),
        Err(errors) => {
            eprintln!("{described}: {errors}");
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
        origin: Some(origin.clone()),
        overrides: instance.overrides,
        instance: instance.name,
        upgrade,
    };
    let server = match ProxyServer::new(snapshot, &options) {
        Ok(server) => server,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(config = %described, "ballast {} serving", env!("CARGO_PKG_VERSION"));
    server.run(true);
    tracing::info!("ballast stopped");
    ExitCode::SUCCESS
}

//! `ballast-origin`: run one or more simulated origins in one process.
//!
//! `ballast-origin --origin us-east-a@127.0.0.1:9101 --origin eu-west-a@127.0.0.1:9201/40ms --control 127.0.0.1:9100`
//! serves each origin on its address, with an optional fixed latency, and
//! optionally the JSON control API (see `ballast_load_tests::control`) that
//! changes their behaviour at runtime. Port 0 picks a free port; the
//! addresses in use are printed on startup. SIGINT or SIGTERM stops
//! everything and exits with status 0.

use ballast_load_tests::{control, origin};
use clap::Parser;
use origin::OriginConfig;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "ballast-origin",
    version,
    about = "Simulated HTTP origins for Ballast demos and tests"
)]
struct Cli {
    /// NAME@IP:PORT[/LATENCY], e.g. `api-1@127.0.0.1:9101/20ms`. Repeatable.
    #[arg(long = "origin", required = true, value_parser = parse_origin)]
    origins: Vec<(OriginConfig, SocketAddr)>,
    /// Serve the JSON control API on IP:PORT, e.g. `127.0.0.1:9100`.
    #[arg(long, value_name = "IP:PORT")]
    control: Option<SocketAddr>,
}

fn parse_origin(spec: &str) -> Result<(OriginConfig, SocketAddr), String> {
    let (name, rest) = spec
        .split_once('@')
        .ok_or_else(|| format!("\"{spec}\": expected NAME@IP:PORT[/LATENCY]"))?;
    let (addr, latency) = match rest.split_once('/') {
        Some((addr, latency)) => (addr, Some(latency)),
        None => (rest, None),
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|_| format!("\"{spec}\": invalid address \"{addr}\""))?;
    let latency = match latency {
        Some(text) => humantime::parse_duration(text)
            .map_err(|e| format!("\"{spec}\": invalid latency \"{text}\": {e}"))?,
        None => Duration::ZERO,
    };
    if name.is_empty() {
        return Err(format!("\"{spec}\": empty name"));
    }
    if name.contains('/') {
        return Err(format!(
            "\"{spec}\": a name cannot contain '/' (it is part of control API paths)"
        ));
    }
    let mut config = OriginConfig::new(name);
    config.latency = latency;
    Ok((config, addr))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    // Installed first, so that a signal arriving during startup stops the
    // process cleanly too.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;

    let mut origins = Vec::new();
    for (config, addr) in cli.origins {
        let name = config.name.clone();
        let latency = config.latency;
        let handle = origin::spawn(addr, config)
            .await
            .map_err(|e| format!("cannot listen on {addr} for origin {name}: {e}"))?;
        announce(&format!(
            "origin {name} listening on {} (latency {latency:?})",
            handle.addr
        ));
        origins.push(Arc::new(handle));
    }
    let _control = match cli.control {
        Some(addr) => {
            let handle = control::spawn(addr, origins.iter().cloned())
                .await
                .map_err(|e| format!("cannot serve the control API on {addr}: {e}"))?;
            announce(&format!("control API listening on {}", handle.addr));
            Some(handle)
        }
        None => None,
    };

    let signal_name = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    announce(&format!("{signal_name} received, stopping"));
    Ok(())
}

/// Prints a line on stdout; a closed stdout (the reader went away) is not
/// a reason to stop serving or to fail.
fn announce(line: &str) {
    let _ = writeln!(std::io::stdout(), "{line}");
}

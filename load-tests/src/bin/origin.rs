//! `ballast-origin`: run one or more simulated origins in one process.
//!
//! `ballast-origin --origin us-east-a@127.0.0.1:9101 --origin eu-west-a@127.0.0.1:9201/40ms`
//! serves each origin on its address, with an optional fixed latency, until
//! interrupted.

use ballast_load_tests::origin::{self, OriginConfig};
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

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
    let mut config = OriginConfig::new(name);
    config.latency = latency;
    Ok((config, addr))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mut handles = Vec::new();
    for (config, addr) in cli.origins {
        let name = config.name.clone();
        let latency = config.latency;
        match origin::spawn(addr, config).await {
            Ok(handle) => {
                println!(
                    "origin {name} listening on {} (latency {latency:?})",
                    handle.addr
                );
                handles.push(handle);
            }
            Err(e) => {
                eprintln!("error: cannot listen on {addr} for origin {name}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let _ = tokio::signal::ctrl_c().await;
    std::process::ExitCode::SUCCESS
}

//! The smallest Pingora HTTP proxy, as a baseline for `load-tests/bench.sh`,
//! built twice: `ballast-bare-pingora` with the system allocator (glibc) and
//! `ballast-bare-pingora-mimalloc` with the allocator Ballast uses.
//!
//! `ballast-bare-pingora --listen 127.0.0.1:8081 --upstream 127.0.0.1:9000 --threads 1`
//! listens on one address and sends every request to one fixed upstream
//! over keep-alive HTTP/1.1 connections: no routing, no statistics, no
//! metrics, no logging, no header changes. What Ballast costs on top of
//! Pingora is the difference between the two.
//!
//! SIGTERM stops it at once (no grace period: nothing is drained), SIGINT
//! too; it then exits with status 0.

use async_trait::async_trait;
use clap::{CommandFactory, FromArgMatches, Parser};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::Result;
use std::net::SocketAddr;

#[derive(Parser)]
#[command(
    version,
    about = "A minimal Pingora proxy to one fixed upstream (benchmark baseline)"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, value_name = "IP:PORT")]
    listen: SocketAddr,
    /// The one upstream every request goes to (plain HTTP).
    #[arg(long, value_name = "IP:PORT")]
    upstream: SocketAddr,
    /// Worker threads of the proxy service.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Forwards every request to `upstream`, untouched.
struct BareProxy {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for BareProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

/// Parse the command line of the binary `name` and serve until SIGTERM or
/// SIGINT (then exit the process).
pub fn main(name: &'static str) {
    let matches = Cli::command().name(name).get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let conf = ServerConf {
        threads: cli.threads.max(1),
        // Stop quickly: the benchmark kills it when it is done.
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora::proxy::http_proxy_service(
        &server.configuration,
        BareProxy {
            upstream: cli.upstream,
        },
    );
    proxy.add_tcp(&cli.listen.to_string());
    server.add_service(proxy);
    // Serves until SIGTERM or SIGINT, then exits the process.
    server.run_forever();
}

//! Assembling and running the Pingora server from a [`Snapshot`]: the proxy
//! service with its plain and TLS listeners (certificates chosen by SNI and
//! renewed in place, client certificates checked when configured, h2
//! offered by ALPN; plain listeners with `h2c` served by a second proxy
//! service that also takes HTTP/2 with prior knowledge), each behind the
//! client connection limits ([`crate::connections`]), and the admin
//! service.
//!
//! Shutdown: SIGTERM and SIGINT drain gracefully: the listeners close, and
//! [`ProxyServer::run`] returns as soon as no request is in flight and no
//! upgraded connection (WebSocket) is open, or when
//! `server.drain_timeout` has passed, whichever comes first. SIGQUIT hands the
//! listening sockets to a new process (Pingora's graceful upgrade) and then
//! drains the same way. A [`Stopper`] does what SIGTERM does, from inside the
//! process.

use crate::admin::{AdminApp, FleetAdmin, Guard};
use crate::config::{InstanceOverrides, ServerSettings, Snapshot, TlsVersion};
use crate::connections::header_deadline::{FirstByteDeadline, HeaderDeadlines};
use crate::connections::limits::ConnectionCounts;
use crate::connections::proxy_protocol::ProxyProtocol;
use crate::connections::{open_files, BeforeTls, ClientConnections, Gate};
use crate::control::engine::Engine;
use crate::discovery::Discovery;
use crate::fleet::budgets::{BudgetLeases, LiveMembers};
use crate::fleet::follower::{Identity, StoreFollower};
use crate::fleet::store::StoreUrl;
use crate::probes::health::HealthLoop;
use crate::probes::load_poll::LoadPollLoop;
use crate::proxy::BallastProxy;
use crate::reload::{ConfigSource, Reloader};
use crate::stats::clock;
use crate::stats::live::LiveState;
use crate::telemetry::access_file::{self, ReopenOnSignal};
use crate::telemetry::decisions::DecisionLog;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::otlp::OtlpExport;
use crate::telemetry::spans::SpanQueue;
use crate::tls::policy::VersionCheck;
use crate::tls::renewal::ServedCertificates;
use async_trait::async_trait;
use pingora::apps::HttpServerOptions;
use pingora::connectors::TransportConnector;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::http::v2::server::{default_h2_options, H2Options};
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Why the server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
    #[error("cannot set up TLS for listener {addr}: {message}")]
    Tls { addr: SocketAddr, message: String },
    #[error("admin.token_env names {variable}, but that environment variable is unset or empty")]
    AdminToken { variable: String },
}

/// Asks a running server to shut down gracefully.
#[derive(Clone)]
pub struct Stopper(Arc<watch::Sender<bool>>);

impl Stopper {
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// Waits for a stop request and, optionally, Unix signals.
struct ShutdownWatch {
    stop: watch::Receiver<bool>,
    unix_signals: bool,
}

#[async_trait]
impl ShutdownSignalWatch for ShutdownWatch {
    async fn recv(&self) -> ShutdownSignal {
        let mut stop = self.stop.clone();
        let stopped = async move {
            // An error means every Stopper is gone: then only signals can stop us.
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        if !self.unix_signals {
            stopped.await;
            return ShutdownSignal::GracefulTerminate;
        }
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
        ) else {
            tracing::error!("cannot install signal handlers; only an internal stop will shut down");
            stopped.await;
            return ShutdownSignal::GracefulTerminate;
        };
        tokio::select! {
            _ = stopped => ShutdownSignal::GracefulTerminate,
            _ = term.recv() => { tracing::info!("SIGTERM: draining and shutting down"); ShutdownSignal::GracefulTerminate }
            _ = int.recv() => { tracing::info!("SIGINT: draining and shutting down"); ShutdownSignal::GracefulTerminate }
            _ = quit.recv() => { tracing::info!("SIGQUIT: handing listeners to the new process"); ShutdownSignal::GracefulUpgrade }
        }
    }
}

/// Reloads the configuration on SIGHUP and when its file changes.
struct ReloadLoop(Arc<Reloader>);

#[async_trait]
impl BackgroundService for ReloadLoop {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let watcher = tokio::spawn(self.0.clone().watch());
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(e) => {
                tracing::error!("cannot listen for SIGHUP: {e}");
                None
            }
        };
        loop {
            tokio::select! {
                Some(()) = async { match hangup.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => {
                    let reloader = self.0.clone();
                    let _ = tokio::task::spawn_blocking(move || reloader.reload("SIGHUP")).await;
                }
                _ = shutdown.changed() => break,
            }
        }
        watcher.abort();
    }
}

/// The admin bearer token, read from the environment variable the
/// configuration names.
fn admin_token(snapshot: &Snapshot) -> Result<Option<String>, StartError> {
    let Some(name) = &snapshot.admin.token_env else {
        return Ok(None);
    };
    match std::env::var(name) {
        Ok(token) if !token.is_empty() => Ok(Some(token)),
        _ => Err(StartError::AdminToken {
            variable: name.clone(),
        }),
    }
}

/// Runs the weight engine every tick until shutdown.
struct EngineLoop(Arc<Engine>);

#[async_trait]
impl BackgroundService for EngineLoop {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        loop {
            self.0.tick(clock::now_ms());
            tokio::select! {
                _ = tokio::time::sleep(self.0.tick_interval()) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Keeps the backends named by DNS resolved until shutdown.
struct DiscoveryLoop(Arc<Discovery>);

#[async_trait]
impl BackgroundService for DiscoveryLoop {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        tokio::select! {
            () = self.0.clone().run() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Keeps the TLS listeners' certificates current until shutdown.
struct CertificateRenewalLoop(Arc<ServedCertificates>);

#[async_trait]
impl BackgroundService for CertificateRenewalLoop {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        tokio::select! {
            () = self.0.clone().watch() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Bytes of response an HTTP/2 stream may have buffered towards its
/// client: with the streams limit, this bounds what a client that never
/// opens its receive window can make Ballast hold.
const H2_MAX_SEND_BUFFER_BYTES: usize = 64 * 1024;

/// Pingora's bounded HTTP/2 defaults (header list size), with the
/// configured stream limit and a smaller send buffer per stream.
fn h2_options(settings: &ServerSettings) -> H2Options {
    let mut options = default_h2_options();
    options.max_concurrent_streams(settings.h2_max_concurrent_streams);
    options.max_send_buffer_size(H2_MAX_SEND_BUFFER_BYTES);
    options
}

/// The connection limits and header deadline all proxy services share,
/// after raising the open-file limit (which the default total limit is
/// derived from).
fn client_connections(snapshot: &Snapshot, metrics: &Arc<Metrics>) -> Arc<ClientConnections> {
    let settings = &snapshot.server;
    let open_file_limit = open_files::raise_open_file_limit();
    let max_connections = settings
        .max_connections
        .unwrap_or_else(|| open_files::default_max_connections(open_file_limit));
    tracing::info!(
        max_connections,
        max_client_connections = settings.max_client_connections,
        header_timeout = ?settings.header_timeout,
        "client connection limits"
    );
    Arc::new(ClientConnections {
        counts: Arc::new(ConnectionCounts::new(
            max_connections,
            settings.max_client_connections,
            metrics.clone(),
        )),
        header_deadlines: Arc::new(HeaderDeadlines::new(
            settings.header_timeout,
            settings.keepalive_timeout,
        )),
        proxy_protocol: Arc::new(ProxyProtocol::new(
            &snapshot.listeners,
            settings.header_timeout,
            metrics.clone(),
        )),
        metrics: metrics.clone(),
    })
}

/// How to start a [`ProxyServer`].
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Where the configuration came from; enables hot reload.
    pub origin: Option<ConfigOrigin>,
    /// The addresses this instance's command line gave in place of the
    /// configuration's (they apply to every reload too).
    pub overrides: InstanceOverrides,
    /// This instance's name in a fleet (default: the host name and the
    /// admin port).
    pub instance: Option<String>,
    /// Take the listening sockets over from a running Ballast (graceful upgrade).
    pub upgrade: bool,
}

/// Where a running configuration came from, and its text.
#[derive(Debug, Clone)]
pub enum ConfigOrigin {
    /// A file, watched for changes.
    File { path: PathBuf, text: String },
    /// A fleet's store, followed: the text at store `revision`.
    Store {
        url: StoreUrl,
        text: String,
        revision: i64,
    },
}

/// A configured server, ready to run.
pub struct ProxyServer {
    server: Server,
    stop_tx: Arc<watch::Sender<bool>>,
    metrics: Arc<Metrics>,
    drain_timeout: Duration,
}

/// An instance's name when none is given: the host name and the admin
/// port, unique among instances on one host.
pub fn default_instance_name(admin_port: u16) -> String {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    format!("{host}-{admin_port}")
}

/// Check every address can be bound now, so a busy port is a clear error at
/// start rather than a listener that silently never comes up.
fn check_bindable(snapshot: &Snapshot) -> Result<(), StartError> {
    let proxy = snapshot
        .listeners
        .iter()
        .map(|l| (l.address, "proxy listener"));
    for (addr, what) in proxy.chain(std::iter::once((snapshot.admin.address, "admin"))) {
        std::net::TcpListener::bind(addr).map_err(|source| StartError::Bind {
            addr,
            what,
            source,
        })?;
    }
    Ok(())
}

impl ProxyServer {
    /// Build the server for `snapshot`. With `options.config_file`, the
    /// configuration reloads on SIGHUP, on `POST /reload` and when the file
    /// changes; with `options.upgrade`, the listening sockets are taken over
    /// from a running process (Pingora's graceful upgrade). Does not bind or
    /// serve until [`run`](Self::run).
    pub fn new(snapshot: Arc<Snapshot>, options: &StartOptions) -> Result<Self, StartError> {
        if !options.upgrade {
            check_bindable(&snapshot)?;
        }
        let token = admin_token(&snapshot)?;
        let settings = &snapshot.server;
        // Pingora sleeps its whole grace period after closing the listeners;
        // `run` returns earlier, once nothing is in flight.
        let conf = ServerConf {
            threads: settings.threads,
            grace_period_seconds: Some(settings.drain_timeout.as_secs_f64().ceil() as u64),
            graceful_shutdown_timeout_seconds: Some(1),
            upstream_keepalive_pool_size: settings.upstream_keepalive_pool_size,
            upgrade_sock: settings.upgrade_sock.display().to_string(),
            ..ServerConf::default()
        };
        let opt = pingora::server::configuration::Opt {
            upgrade: options.upgrade,
            ..Default::default()
        };
        let mut server = Server::new_with_opt_and_conf(opt, conf);
        server.bootstrap();

        let metrics = Arc::new(Metrics::new());
        let decisions = Arc::new(DecisionLog::default());
        let engine = Arc::new(Engine::new(
            Arc::new(Discovery::running(&snapshot)),
            Arc::new(LiveState::new()),
            decisions.clone(),
            metrics.clone(),
        ));
        let discovery = Arc::new(Discovery::new(
            snapshot.clone(),
            engine.clone(),
            metrics.clone(),
            decisions.clone(),
        ));
        let clients = client_connections(&snapshot, &metrics);
        let spans = Arc::new(SpanQueue::new(
            metrics.trace_spans.with_label_values(&["queue_full"]),
        ));
        let proxy_service = |name: &str, h2c: bool| {
            let app = BallastProxy::new(
                engine.state(),
                metrics.clone(),
                decisions.clone(),
                settings.keepalive_timeout,
                &clients,
                settings.access_fields,
                spans.clone(),
            );
            let mut proxy = HttpProxy::new(app, server.configuration.clone());
            let mut options = HttpServerOptions::default();
            options.h2c = h2c;
            // An HTTP/2 connection with no open stream is idle like a
            // kept-alive HTTP/1.1 one.
            options.h2_idle_timeout = Some(settings.keepalive_timeout);
            proxy.server_options = Some(options);
            proxy.h2_options = Some(h2_options(settings));
            proxy.handle_init_modules();
            Service::new(name.to_string(), Gate::new(proxy, clients.clone()))
        };
        // Pingora's h2c switch is per service: the listeners that take h2c
        // are served by a second service of the same proxy.
        let certificates = Arc::new(ServedCertificates::new(&snapshot, metrics.clone()));
        let mut proxy = proxy_service("ballast proxy", false);
        let mut h2c_proxy = proxy_service("ballast proxy h2c", true);
        proxy.endpoints().set_pre_tls_callback(Arc::new(BeforeTls {
            proxy_protocol: clients.proxy_protocol.clone(),
            first_byte: FirstByteDeadline {
                timeout: settings.header_timeout,
                metrics: metrics.clone(),
            },
        }));
        for listener in &snapshot.listeners {
            let addr = listener.address.to_string();
            match &listener.tls {
                None if listener.h2c => h2c_proxy.add_tcp(&addr),
                None => proxy.add_tcp(&addr),
                Some(tls) => {
                    let tls_error = |message: String| StartError::Tls {
                        addr: listener.address,
                        message,
                    };
                    let settings = match tls.min_version {
                        TlsVersion::Tls12 => TlsSettings::intermediate("", ""),
                        TlsVersion::Tls13 => TlsSettings::with_callbacks(Box::new(VersionCheck {
                            min_version: tls.min_version,
                        })),
                    };
                    let mut settings = settings.map_err(|e| tls_error(e.to_string()))?;
                    let resolver = certificates.resolver(listener.address).ok_or_else(|| {
                        tls_error("no certificates were loaded for it".to_string())
                    })?;
                    settings.set_cert_resolver(resolver);
                    if let Some(client_auth) = &tls.client_auth {
                        settings.set_client_cert_verifier(client_auth.verifier.clone());
                    }
                    if tls.http2 {
                        settings.enable_h2();
                    }
                    proxy.add_tls_with_settings(&addr, None, settings);
                }
            }
        }
        server.add_service(proxy);
        if snapshot.listeners.iter().any(|l| l.h2c) {
            server.add_service(h2c_proxy);
        }
        server.add_service(background_service(
            "ballast certificate renewal",
            CertificateRenewalLoop(certificates.clone()),
        ));
        server.add_service(background_service(
            "ballast health checks",
            HealthLoop {
                routing: engine.state(),
            },
        ));
        server.add_service(background_service(
            "ballast load polls",
            LoadPollLoop {
                routing: engine.state(),
                metrics: metrics.clone(),
                connector: Arc::new(TransportConnector::new(None)),
            },
        ));
        server.add_service(background_service(
            "ballast weight engine",
            EngineLoop(engine.clone()),
        ));
        server.add_service(background_service(
            "ballast discovery",
            DiscoveryLoop(discovery.clone()),
        ));
        let reloader = options.origin.as_ref().map(|origin| {
            let (source, text, revision) = match origin {
                ConfigOrigin::File { path, text } => (ConfigSource::File(path.clone()), text, None),
                ConfigOrigin::Store {
                    url,
                    text,
                    revision,
                } => (ConfigSource::Store(url.to_string()), text, Some(*revision)),
            };
            Arc::new(Reloader::new(
                source,
                text,
                revision,
                options.overrides.clone(),
                snapshot.clone(),
                discovery.clone(),
                certificates.clone(),
                metrics.clone(),
            ))
        });
        if let Some(file) = access_file::installed() {
            server.add_service(background_service(
                "ballast access log reopen",
                ReopenOnSignal(file),
            ));
        }
        if let Some(reloader) = &reloader {
            server.add_service(background_service(
                "ballast reload",
                ReloadLoop(reloader.clone()),
            ));
        }
        let live_members = Arc::new(LiveMembers::default());
        server.add_service(background_service(
            "ballast budget leases",
            BudgetLeases {
                engine: engine.clone(),
                metrics: metrics.clone(),
                live_members: live_members.clone(),
            },
        ));
        let admin = snapshot.admin.address;
        let instance = options
            .instance
            .clone()
            .unwrap_or_else(|| default_instance_name(admin.port()));
        server.add_service(background_service(
            "ballast span export",
            OtlpExport {
                settings: {
                    let engine = engine.clone();
                    Box::new(move || engine.state().load().snapshot.tracing.clone())
                },
                queue: spans,
                metrics: metrics.clone(),
                instance: instance.clone(),
            },
        ));
        let mut fleet = None;
        if let (Some(ConfigOrigin::Store { url, revision, .. }), Some(reloader)) =
            (&options.origin, &reloader)
        {
            metrics.config_store_revision.set(*revision);
            fleet = Some(FleetAdmin {
                url: url.clone(),
                instance: instance.clone(),
            });
            server.add_service(background_service(
                "ballast configuration store",
                StoreFollower {
                    url: url.clone(),
                    identity: Identity {
                        instance,
                        admin: admin.to_string(),
                    },
                    reloader: reloader.clone(),
                    engine: engine.clone(),
                    live_members,
                    metrics: metrics.clone(),
                    base_dir: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
                },
            ));
        }

        let mut admin = Service::new(
            "ballast admin".to_string(),
            AdminApp {
                engine: engine.clone(),
                discovery,
                metrics: metrics.clone(),
                reloader: reloader.clone(),
                fleet,
                guard: Guard {
                    allowed_hosts: snapshot.admin.allowed_hosts.clone(),
                    token_required: token.is_some(),
                },
                token,
            },
        );
        admin.add_tcp(&snapshot.admin.address.to_string());
        server.add_service(admin);

        let (stop_tx, _) = watch::channel(false);
        Ok(Self {
            server,
            stop_tx: Arc::new(stop_tx),
            metrics,
            drain_timeout: snapshot.server.drain_timeout,
        })
    }

    pub fn stopper(&self) -> Stopper {
        Stopper(self.stop_tx.clone())
    }

    /// Serve until stopped (by a [`Stopper`], or by a signal when
    /// `unix_signals` is set). Returns once the listeners are closed and
    /// in-flight requests have finished or `drain_timeout` has passed; Pingora's
    /// own teardown then finishes in the background.
    pub fn run(self, unix_signals: bool) {
        let watch = ShutdownWatch {
            stop: self.stop_tx.subscribe(),
            unix_signals,
        };
        let mut phases = self.server.watch_execution_phase();
        let server = self.server;
        let pingora = std::thread::Builder::new()
            .name("pingora-main".into())
            .spawn(move || {
                server.run(RunArgs {
                    shutdown_signal: Box::new(watch),
                })
            })
            .expect("spawn the server thread");
        loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                Ok(ExecutionPhase::Terminated)
                | Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    let _ = pingora.join();
                    return;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            }
        }
        drain(&self.metrics, self.drain_timeout);
    }
}

/// Wait until no request is in flight and no upgraded connection is open,
/// or `timeout` passes.
fn drain(metrics: &Metrics, timeout: Duration) {
    let started = Instant::now();
    let deadline = started + timeout;
    let open = || (metrics.in_flight.get(), metrics.upgraded_connections.get());
    let (requests, upgraded) = open();
    tracing::info!(
        in_flight = requests,
        upgraded,
        "listeners closed; draining in-flight requests and upgraded connections (at most {timeout:?})"
    );
    while open() != (0, 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    match open() {
        (0, 0) => tracing::info!("drained in {:?}", started.elapsed()),
        (requests, upgraded) => tracing::warn!(
            "drain timeout: {requests} request(s) in flight and {upgraded} upgraded connection(s) are abandoned"
        ),
    }
}

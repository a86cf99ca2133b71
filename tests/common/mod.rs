//! Shared helpers for the integration tests: free loopback ports, an
//! in-process Ballast server on its own thread, and a small HTTP client;
//! `tls_origin` is a TLS origin for the upstream TLS tests; `grpc` a gRPC
//! origin and client; `dns_server` a DNS server whose records a test
//! changes; `raw_client` writes exact bytes; `echo_origin` answers
//! with the request it received; `etcd` a real etcd server and `fleet` the `ballast` processes that follow it; `redis` a real Redis server; `metrics` reads `/metrics`.

pub mod dns_server;
pub mod echo_origin;
pub mod etcd;
pub mod fleet;
pub mod grpc;
pub mod metrics;
pub mod otlp_receiver;
pub mod raw_client;
pub mod redis;
pub mod store_tls;
pub mod tls_origin;

pub use metrics::{metric, metric_value, metrics_text};
pub use raw_client::{raw_exchange, raw_exchange_half_closed, status_line};

use ballast::server::{ConfigOrigin, ProxyServer, StartOptions, Stopper};
use ballast_load_tests::origin::{self, OriginConfig, OriginHandle};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A loopback port that was free a moment ago, and not handed out before
/// in this test process. It is taken from below the kernel's ephemeral
/// range: a port from that range, once released, can be given to any
/// socket bound to port 0 (another test's origin) before the server it
/// was meant for binds it, and that server's readiness check would then
/// be answered by the stranger.
pub fn free_port() -> u16 {
    /// Below Linux's default ephemeral range (32768–60999), above the
    /// well-known and most registered service ports.
    const FIRST: u16 = 20_000;
    const LAST: u16 = 32_767;
    static NEXT: std::sync::Mutex<Option<u16>> = std::sync::Mutex::new(None);
    let mut next = NEXT.lock().unwrap();
    // Start at a point that differs between test processes.
    let mut port = next.unwrap_or(FIRST + (std::process::id() % u32::from(LAST - FIRST)) as u16);
    for _ in FIRST..=LAST {
        let candidate = port;
        port = if port == LAST { FIRST } else { port + 1 };
        if TcpListener::bind(("127.0.0.1", candidate)).is_ok() {
            *next = Some(port);
            return candidate;
        }
    }
    panic!("no free loopback port in {FIRST}–{LAST}");
}

/// An address nothing listens on (bound then released).
pub fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// Wait until `addr` accepts TCP connections.
pub async fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "{addr} never started listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Ballast server running on its own thread; stopped and joined on drop.
pub struct RunningBallast {
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl RunningBallast {
    /// Compile `yaml` (paths relative to `base_dir`), start it, and wait for
    /// the listeners in `ready` to accept connections.
    pub async fn start(yaml: &str, base_dir: &Path, ready: &[SocketAddr]) -> Self {
        let snapshot = ballast::config::load_str(yaml, base_dir)
            .unwrap_or_else(|e| panic!("test config invalid: {e}\n{yaml}"));
        Self::launch(snapshot, StartOptions::default(), ready).await
    }

    /// Start from a configuration file, which then reloads on change and on
    /// `POST /reload`.
    pub async fn start_file(path: &Path, ready: &[SocketAddr]) -> Self {
        let text = ballast::config::read_config(path).expect("test config readable");
        let snapshot =
            ballast::config::load_file(path).unwrap_or_else(|e| panic!("test config invalid: {e}"));
        let options = StartOptions {
            origin: Some(ConfigOrigin::File {
                path: path.to_path_buf(),
                text,
            }),
            ..StartOptions::default()
        };
        Self::launch(snapshot, options, ready).await
    }

    async fn launch(
        snapshot: ballast::config::Snapshot,
        options: StartOptions,
        ready: &[SocketAddr],
    ) -> Self {
        ballast::tls::install_crypto_provider();
        let server = ProxyServer::new(Arc::new(snapshot), &options).expect("server builds");
        let stopper = server.stopper();
        let thread = std::thread::spawn(move || server.run(false));
        for addr in ready {
            wait_listening(*addr).await;
        }
        assert!(
            !thread.is_finished(),
            "Ballast stopped during start-up (its log says why); something else answers on {ready:?}"
        );
        Self {
            stopper,
            thread: Some(thread),
        }
    }

    /// Stop gracefully and wait for the server thread to finish.
    pub fn stop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread panicked");
        }
    }
}

impl Drop for RunningBallast {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn send(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let stream = TcpStream::connect(addr).await.expect("connect");
    send_over(stream, req).await
}

/// One HTTP/1.1 request over `stream` (e.g. a connection made from a
/// chosen local address).
pub async fn send_over(stream: TcpStream, req: Request<Full<Bytes>>) -> Reply {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Build a request with a Host header.
pub fn request(
    method: Method,
    host: &str,
    path: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, host)
        .body(Full::new(body.into()))
        .unwrap()
}

pub async fn get(addr: SocketAddr, host: &str, path: &str) -> Reply {
    send(addr, request(Method::GET, host, path, Bytes::new())).await
}

/// What a bounded load run saw.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Responses by status code.
    pub statuses: std::collections::BTreeMap<u16, usize>,
    /// Requests sent that got no HTTP response at all.
    pub transport_errors: usize,
}

impl LoadOutcome {
    pub fn total(&self) -> usize {
        self.statuses.values().sum::<usize>() + self.transport_errors
    }

    pub fn count(&self, status: u16) -> usize {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// `workers` keep-alive clients send `make(worker, n)` requests to `addr`
/// until `duration` passes (at most `max_per_worker` each).
pub async fn drive<F>(
    addr: SocketAddr,
    workers: usize,
    duration: Duration,
    max_per_worker: usize,
    make: F,
) -> LoadOutcome
where
    F: Fn(usize, usize) -> Request<Full<Bytes>> + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut outcome = LoadOutcome::default();
            let mut sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> = None;
            for n in 0..max_per_worker {
                if Instant::now() >= deadline {
                    break;
                }
                if sender.as_ref().is_none_or(|s| s.is_closed()) {
                    let stream = TcpStream::connect(addr).await.expect("connect to proxy");
                    let (s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .expect("handshake");
                    tokio::spawn(conn);
                    sender = Some(s);
                }
                let s = sender.as_mut().expect("connected");
                if s.ready().await.is_err() {
                    // Closed before this request was sent (the last answer
                    // said `Connection: close` and the close raced
                    // `is_closed`): nothing was lost, connect again.
                    sender = None;
                    continue;
                }
                match s.send_request(make(worker, n)).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        let body = resp.into_body().collect().await;
                        if body.is_err() {
                            outcome.transport_errors += 1;
                            sender = None;
                        } else {
                            *outcome.statuses.entry(status).or_default() += 1;
                        }
                    }
                    Err(_) => {
                        outcome.transport_errors += 1;
                        sender = None;
                    }
                }
            }
            outcome
        }));
    }
    let mut total = LoadOutcome::default();
    for task in tasks {
        let outcome = task.await.expect("load worker");
        for (status, n) in outcome.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.transport_errors += outcome.transport_errors;
    }
    total
}

/// A request with a method, path and optional bearer token, no body.
pub fn admin_request(method: Method, path: &str, token: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, "localhost");
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

/// GET `path` on the admin endpoint and parse the JSON answer.
pub async fn admin_json(admin: SocketAddr, path: &str) -> serde_json::Value {
    let reply = send(admin, admin_request(Method::GET, path, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", reply.text()))
}

/// A simulated origin on an ephemeral loopback port, answering at once.
pub async fn origin_named(name: &str) -> OriginHandle {
    origin_with_latency(name, Duration::ZERO).await
}

/// A simulated origin on an ephemeral loopback port, answering after `latency`.
pub async fn origin_with_latency(name: &str, latency: Duration) -> OriginHandle {
    let mut config = OriginConfig::new(name);
    config.latency = latency;
    origin::spawn("127.0.0.1:0".parse().unwrap(), config)
        .await
        .unwrap()
}

/// A Ballast on two free loopback ports, stopped when dropped.
pub struct LoopbackProxy {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    _ballast: RunningBallast,
}

impl LoopbackProxy {
    /// Start a Ballast whose configuration `config(listen, admin)` writes.
    pub async fn start(config: impl FnOnce(SocketAddr, SocketAddr) -> String) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let yaml = config(listen, admin);
        let ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
        Self {
            listen,
            admin,
            _ballast: ballast,
        }
    }
}

/// `{addr: "..."}, ...`: the flow-mapping entries of `origins` as backends.
pub fn backend_entries(origins: &[&OriginHandle]) -> String {
    let list: Vec<String> = origins
        .iter()
        .map(|o| format!("{{addr: \"{}\"}}", o.addr))
        .collect();
    list.join(", ")
}

/// The `traceparent` the origin saw, split into trace id, parent id and flags.
pub fn seen_traceparent(seen: &str) -> (String, String, String) {
    let value = seen
        .lines()
        .find_map(|line| line.strip_prefix("traceparent: "))
        .unwrap_or_else(|| panic!("no traceparent in {seen}"));
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00", "{value}");
    let lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    assert!(parts[1].len() == 32 && lower_hex(parts[1]), "{value}");
    assert!(parts[2].len() == 16 && lower_hex(parts[2]), "{value}");
    assert_ne!(parts[1], "0".repeat(32));
    assert_ne!(parts[2], "0".repeat(16));
    (parts[1].into(), parts[2].into(), parts[3].into())
}

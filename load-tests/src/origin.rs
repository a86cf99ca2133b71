//! A simulated origin server (HTTP/1.1 and h2c via hyper's auto builder).
//!
//! Every response carries `x-origin: <name>`. The end of the path decides
//! the answer, so any prefix a route needs works (`/api/echo` = `/echo`):
//! - `.../echo`: streams the request body back;
//! - `.../headers`: the request headers, one `name: value` per line;
//! - `.../stream?chunks=N&delay_ms=D`: N chunks, D ms apart, streamed;
//! - `.../status/CODE`: an empty response with that status;
//! - `.../healthz`: 200, or 503 after `set_healthy(false)`;
//! - `.../load`: the JSON body given to `set_load_endpoint` (a load
//!   endpoint for Ballast's load polls), or 404 when none is;
//! - anything else: `NAME METHOD PATH\n`.
//!
//! # Behaviour
//!
//! What the origin does is a [`Behaviour`], changeable while it runs through
//! the [`OriginHandle`] (or the control API, see [`crate::control`]). Each
//! request goes through these steps:
//! 1. it is counted ([`OriginStats`]) and marked in flight;
//! 2. under [`FailureMode::Hang`] it waits until the mode changes, then
//!    carries on under the new mode; under [`FailureMode::Reset`] its body
//!    is read, then its connection is closed with a TCP reset (RST);
//! 3. unless it is for `/healthz` or `/load`, it takes one of the origin's
//!    workers, waiting for one in FIFO order when all are busy; when
//!    `queue` requests already wait, it is answered 503 with the body
//!    `queue full\n` at once (see [`crate::workers`]; no `workers` set:
//!    unlimited);
//! 4. it waits a delay drawn from the latency distribution, holding its
//!    worker (if any) until it is answered;
//! 5. with probability `error_rate` (never for `/healthz` or `/load`) it is answered
//!    with `error_status` and the body `injected error\n`; otherwise the
//!    path decides the answer as above;
//! 6. the load report of the `server_load` mode is added to the response.
//!
//! # Refusing connections
//!
//! A listening socket cannot stop listening and stay open, and a listener
//! that merely stops accepting still completes handshakes from its
//! backlog. So [`FailureMode::Refuse`] closes the listening socket and
//! every open connection, and leaving it binds the same address again
//! (tokio sets `SO_REUSEADDR`, so connections still in `TIME_WAIT` do not
//! block the bind). If another process took the port in between, the
//! change fails with the bind error and the origin keeps refusing.
//! [`OriginHandle::update`] returns once the listener is closed or bound.
//!
//! Stopping the origin (or dropping its handle) closes the listener and
//! every open connection.

use crate::behaviour::{Behaviour, BehaviourUpdate, FailureMode, ServerLoadMode};
use crate::latency::LatencyDistribution;
use crate::load_report::LoadGauges;
use crate::reset::{ResetSwitch, ResettableStream};
use crate::workers::{Admission, Workers};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use serde::Serialize;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

pub use crate::stats::{OriginStats, StatsSnapshot};

type Body = BoxBody<Bytes, hyper::Error>;

/// Pause after a failed `accept` (such as running out of file
/// descriptors) before trying again.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// How an origin starts.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub name: String,
    /// Fixed delay added before every response.
    pub latency: Duration,
}

impl OriginConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            latency: Duration::ZERO,
        }
    }
}

/// An origin's name, address, behaviour and counters, as the control API
/// shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginStatus {
    pub name: String,
    pub addr: SocketAddr,
    pub in_flight: u64,
    /// Requests holding a worker.
    pub busy_workers: u64,
    /// Requests waiting for a worker.
    pub queued: u64,
    pub behaviour: Behaviour,
    pub counters: StatsSnapshot,
}

/// Why [`OriginHandle::update`] changed nothing.
#[derive(Debug)]
pub enum UpdateError {
    /// A field is out of range; the message names it.
    Invalid(String),
    /// The listening socket could not be bound again (or the origin was
    /// stopped); the origin keeps refusing connections.
    Listener(io::Error),
}

impl fmt::Display for UpdateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(message) => f.write_str(message),
            Self::Listener(error) => write!(f, "cannot listen again: {error}"),
        }
    }
}

impl std::error::Error for UpdateError {}

/// State shared by the handle, the accept task and the request handlers.
struct Origin {
    name: String,
    name_header: HeaderValue,
    stats: Arc<OriginStats>,
    behaviour: watch::Sender<Arc<Behaviour>>,
    gauges: LoadGauges,
    workers: Workers,
    /// The body `.../load` answers; `None`: 404.
    load_body: std::sync::RwLock<Option<Bytes>>,
}

impl Origin {
    fn current(&self) -> Arc<Behaviour> {
        self.behaviour.borrow().clone()
    }

    /// Changes the behaviour, and sizes the workers to match it.
    fn modify(&self, change: impl FnOnce(&mut Behaviour)) {
        self.behaviour.send_modify(|behaviour| {
            let behaviour = Arc::make_mut(behaviour);
            change(behaviour);
            self.workers.resize(behaviour.workers);
        });
    }

    /// Waits until the failure mode is no longer `Hang`, and returns the
    /// behaviour then.
    async fn wait_while_hanging(&self) -> Arc<Behaviour> {
        let mut changes = self.behaviour.subscribe();
        let released = changes
            .wait_for(|behaviour| behaviour.failure != FailureMode::Hang)
            .await
            .map(|behaviour| behaviour.clone());
        // The sender lives in `self`, so the channel cannot close here.
        released.unwrap_or_else(|_closed| self.current())
    }
}

/// An update that sets the failure mode, for the accept task to apply
/// together with the listener change it needs; `done` gets the outcome.
struct FailureChange {
    update: BehaviourUpdate,
    done: oneshot::Sender<io::Result<()>>,
}

/// A running origin; stops when dropped.
pub struct OriginHandle {
    pub addr: SocketAddr,
    pub stats: Arc<OriginStats>,
    origin: Arc<Origin>,
    failure_changes: mpsc::Sender<FailureChange>,
    task: JoinHandle<()>,
}

impl OriginHandle {
    pub fn name(&self) -> &str {
        &self.origin.name
    }

    /// The current behaviour.
    pub fn behaviour(&self) -> Behaviour {
        Behaviour::clone(&self.origin.current())
    }

    /// Requests received and not answered yet.
    pub fn in_flight(&self) -> u64 {
        self.origin.gauges.in_flight()
    }

    /// Requests holding a worker.
    pub fn busy_workers(&self) -> u64 {
        self.origin.workers.busy()
    }

    /// Requests waiting for a worker.
    pub fn queued(&self) -> u64 {
        self.origin.workers.waiting()
    }

    /// Name, address, behaviour and counters.
    pub fn status(&self) -> OriginStatus {
        OriginStatus {
            name: self.origin.name.clone(),
            addr: self.addr,
            in_flight: self.in_flight(),
            busy_workers: self.origin.workers.busy(),
            queued: self.origin.workers.waiting(),
            behaviour: self.behaviour(),
            counters: self.stats.snapshot(),
        }
    }

    /// Make `/healthz` answer 200 (healthy) or 503.
    pub fn set_healthy(&self, healthy: bool) {
        self.origin.modify(|behaviour| behaviour.healthy = healthy);
    }

    /// Send this `Server-Load` value on every response (`None`: send none).
    /// A value that is not a valid header value is not sent.
    pub fn set_server_load(&self, value: Option<&str>) {
        let mode = match value {
            Some(value) => ServerLoadMode::Fixed {
                value: value.to_string(),
            },
            None => ServerLoadMode::Off,
        };
        self.origin.modify(|behaviour| behaviour.server_load = mode);
    }

    /// Answer `.../load` with this body (`None`: 404), sent as
    /// `application/json` whatever it is, so tests can serve garbage too.
    pub fn set_load_endpoint(&self, body: Option<&str>) {
        let body = body.map(|b| Bytes::from(b.to_string()));
        *self
            .origin
            .load_body
            .write()
            .unwrap_or_else(|p| p.into_inner()) = body;
    }

    /// Add this fixed latency before every response.
    pub fn set_latency(&self, latency: Duration) {
        self.origin.modify(|behaviour| {
            behaviour.latency = LatencyDistribution::Fixed { latency };
        });
    }

    /// Change the fields `update` sets, and return the new behaviour. An
    /// invalid update changes nothing. A change into or out of
    /// [`FailureMode::Refuse`] completes (listener closed, or bound again)
    /// before this returns.
    ///
    /// An update that sets `failure` is applied by the task that owns the
    /// listener, one at a time, so the listener always agrees with the
    /// failure mode, even when the caller gives up waiting.
    pub async fn update(&self, update: BehaviourUpdate) -> Result<Behaviour, UpdateError> {
        update.validate().map_err(UpdateError::Invalid)?;
        match update.failure {
            Some(_) => self
                .change_failure(update)
                .await
                .map_err(UpdateError::Listener)?,
            None => self.origin.modify(|behaviour| behaviour.apply(&update)),
        }
        Ok(self.behaviour())
    }

    /// Close the listener and every connection.
    pub fn stop(&self) {
        self.task.abort();
    }

    async fn change_failure(&self, update: BehaviourUpdate) -> io::Result<()> {
        let stopped = || io::Error::other("the origin is stopped");
        let (done, outcome) = oneshot::channel();
        self.failure_changes
            .send(FailureChange { update, done })
            .await
            .map_err(|_| stopped())?;
        outcome.await.map_err(|_| stopped())?
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start an origin on `listen` (port 0 picks a free port).
pub async fn spawn(listen: SocketAddr, config: OriginConfig) -> io::Result<OriginHandle> {
    let name_header = HeaderValue::from_str(&config.name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "origin name {:?} cannot be sent as a header value",
                config.name
            ),
        )
    })?;
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let behaviour = Behaviour {
        latency: LatencyDistribution::Fixed {
            latency: config.latency,
        },
        ..Behaviour::default()
    };
    let stats = Arc::new(OriginStats::default());
    let origin = Arc::new(Origin {
        name: config.name,
        name_header,
        stats: stats.clone(),
        behaviour: watch::Sender::new(Arc::new(behaviour)),
        gauges: LoadGauges::default(),
        workers: Workers::new(None),
        load_body: std::sync::RwLock::new(None),
    });
    let (failure_changes, failure_change_queue) = mpsc::channel(1);
    let task = tokio::spawn(accept_loop(
        addr,
        listener,
        origin.clone(),
        failure_change_queue,
    ));
    Ok(OriginHandle {
        addr,
        stats,
        origin,
        failure_changes,
        task,
    })
}

/// Accepts connections and serves each in its own task, until aborted.
/// Owns the listener, and applies the failure mode changes that close it
/// or open it again.
async fn accept_loop(
    addr: SocketAddr,
    listener: TcpListener,
    origin: Arc<Origin>,
    mut failure_changes: mpsc::Receiver<FailureChange>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            change = failure_changes.recv() => {
                let Some(FailureChange { update, done }) = change else {
                    return;
                };
                let refuse = update.failure == Some(FailureMode::Refuse);
                let outcome = match (refuse, listener.is_some()) {
                    (true, true) => {
                        listener = None;
                        connections.shutdown().await;
                        Ok(())
                    }
                    (false, false) => TcpListener::bind(addr).await.map(|bound| {
                        listener = Some(bound);
                    }),
                    _ => Ok(()),
                };
                if outcome.is_ok() {
                    origin.modify(|behaviour| behaviour.apply(&update));
                }
                let _ = done.send(outcome);
            }
            accepted = accept(listener.as_ref()) => match accepted {
                Ok((stream, _peer)) => {
                    connections.spawn(serve_connection(stream, origin.clone()));
                }
                Err(_) => tokio::time::sleep(ACCEPT_RETRY_DELAY).await,
            },
            Some(_finished) = connections.join_next() => {}
        }
    }
}

/// The next connection, or never when the listener is closed.
async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Serves one connection until it ends or a request handler resets it.
async fn serve_connection(stream: TcpStream, origin: Arc<Origin>) {
    let reset = Arc::new(ResetSwitch::default());
    let io = TokioIo::new(ResettableStream::new(stream, reset.clone()));
    let service = service_fn({
        let reset = reset.clone();
        move |req| handle(req, origin.clone(), reset.clone())
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection(io, service);
    tokio::select! {
        _ = connection => {}
        () = reset.pulled() => {}
    }
}

async fn handle(
    req: Request<Incoming>,
    origin: Arc<Origin>,
    reset: Arc<ResetSwitch>,
) -> Result<Response<Body>, Infallible> {
    let _in_flight = origin.gauges.enter();
    origin.stats.record(&req);
    origin.gauges.requests.record();
    let mut behaviour = origin.current();
    if behaviour.failure == FailureMode::Hang {
        origin.stats.record_hang();
        behaviour = origin.wait_while_hanging().await;
    }
    if behaviour.failure == FailureMode::Reset {
        origin.stats.record_reset();
        origin.gauges.errors.record();
        drain(req.into_body()).await;
        reset.pull();
        // The connection task drops this future with the connection.
        return std::future::pending().await;
    }
    // `Refuse` closes the listener and the connections; a request released
    // from a hang by the switch to it is answered on a closing connection.
    let route = Route::of(req.uri().path());
    let served_by_workers = !matches!(route, Route::Healthz | Route::Load);
    let _worker = match served_by_workers {
        true => match origin.workers.admit(behaviour.queue).await {
            Admission::Admitted(worker) => Some(worker),
            Admission::QueueFull => {
                origin.stats.record_queue_full();
                origin.gauges.errors.record();
                let mut response = Response::new(full("queue full\n"));
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                response
                    .headers_mut()
                    .insert("x-origin", origin.name_header.clone());
                return Ok(response);
            }
        },
        false => None,
    };
    let delay = behaviour.latency.sample(&mut rand::rng());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (status, body) = match served_by_workers && injects_error(behaviour.error_rate) {
        true => {
            origin.stats.record_injected_error();
            let status = StatusCode::from_u16(behaviour.error_status)
                .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            (status, full("injected error\n"))
        }
        false => answer(req, route, &origin, behaviour.healthy),
    };
    if status.is_server_error() {
        origin.gauges.errors.record();
    }
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert("x-origin", origin.name_header.clone());
    if let Some((name, value)) = origin
        .gauges
        .report(&behaviour.server_load, behaviour.latency.mean())
    {
        headers.insert(name, value);
    }
    Ok(response)
}

fn injects_error(error_rate: f64) -> bool {
    error_rate > 0.0 && rand::rng().random::<f64>() < error_rate
}

/// Reads a body to its end (or its first error), discarding it.
async fn drain(mut body: Incoming) {
    while let Some(Ok(_frame)) = body.frame().await {}
}

/// What a path asks for, decided by its last segments.
#[derive(Debug, PartialEq)]
enum Route {
    Echo,
    Headers,
    Stream,
    Healthz,
    Load,
    Status(StatusCode),
    Describe,
}

impl Route {
    fn of(path: &str) -> Self {
        let mut segments = path.rsplit('/').filter(|s| !s.is_empty());
        let (last, before_last) = (segments.next().unwrap_or(""), segments.next().unwrap_or(""));
        match (before_last, last) {
            (_, "echo") => Self::Echo,
            (_, "headers") => Self::Headers,
            (_, "stream") => Self::Stream,
            (_, "healthz") => Self::Healthz,
            (_, "load") => Self::Load,
            ("status", code) => Self::Status(
                code.parse()
                    .ok()
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .unwrap_or(StatusCode::BAD_REQUEST),
            ),
            _ => Self::Describe,
        }
    }
}

/// The normal answer of `route`.
fn answer(
    req: Request<Incoming>,
    route: Route,
    origin: &Origin,
    healthy: bool,
) -> (StatusCode, Body) {
    match route {
        Route::Echo => (StatusCode::OK, req.into_body().boxed()),
        Route::Headers => {
            let text: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            (StatusCode::OK, full(text))
        }
        Route::Stream => (StatusCode::OK, chunked(req.uri().query())),
        Route::Healthz => match healthy {
            true => (StatusCode::OK, full("ok\n")),
            false => (StatusCode::SERVICE_UNAVAILABLE, full("unhealthy\n")),
        },
        Route::Status(status) => (status, full("")),
        Route::Load => {
            let body = origin
                .load_body
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            match body {
                Some(body) => (StatusCode::OK, full(body)),
                None => (StatusCode::NOT_FOUND, full("no load endpoint\n")),
            }
        }
        Route::Describe => (
            StatusCode::OK,
            full(format!(
                "{} {} {}\n",
                origin.name,
                req.method(),
                req.uri().path()
            )),
        ),
    }
}

fn full(text: impl Into<Bytes>) -> Body {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed()
}

fn query_param(query: Option<&str>, key: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

/// A body of `chunks` lines sent `delay_ms` apart (query parameters).
fn chunked(query: Option<&str>) -> Body {
    let chunks = query_param(query, "chunks").unwrap_or(5).min(10_000);
    let delay = Duration::from_millis(query_param(query, "delay_ms").unwrap_or(10).min(10_000));
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, hyper::Error>>(1);
    tokio::spawn(async move {
        for i in 0..chunks {
            let frame = Frame::data(Bytes::from(format!("chunk {i}\n")));
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
            tokio::time::sleep(delay).await;
        }
    });
    BodyExt::boxed(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_decided_by_the_last_segments() {
        assert_eq!(Route::of("/api/echo"), Route::Echo);
        assert_eq!(Route::of("/headers/"), Route::Headers);
        assert_eq!(Route::of("/x/stream"), Route::Stream);
        assert_eq!(Route::of("/healthz"), Route::Healthz);
        assert_eq!(Route::of("/load"), Route::Load);
        assert_eq!(Route::of("/v2/load"), Route::Load);
        assert_eq!(Route::of("/download"), Route::Describe);
        assert_eq!(
            Route::of("/a/status/502"),
            Route::Status(StatusCode::BAD_GATEWAY)
        );
        assert_eq!(
            Route::of("/status/abc"),
            Route::Status(StatusCode::BAD_REQUEST)
        );
        assert_eq!(Route::of("/"), Route::Describe);
        assert_eq!(Route::of("/status"), Route::Describe);
    }

    #[test]
    fn error_injection_follows_the_rate() {
        assert!(!(0..1000).any(|_| injects_error(0.0)));
        assert!((0..1000).all(|_| injects_error(1.0)));
    }

    #[tokio::test]
    async fn a_name_that_is_not_a_header_value_is_refused() {
        let error = spawn("127.0.0.1:0".parse().unwrap(), OriginConfig::new("a\nb"))
            .await
            .err()
            .expect("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}

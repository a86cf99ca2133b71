//! A simulated origin server (HTTP/1.1 and h2c via hyper's auto builder).
//!
//! Every response carries `x-origin: <name>`. The end of the path decides
//! the answer, so any prefix a route needs works (`/api/echo` = `/echo`):
//! - `.../echo`: streams the request body back;
//! - `.../headers`: the request headers, one `name: value` per line;
//! - `.../stream?chunks=N&delay_ms=D`: N chunks, D ms apart, streamed;
//! - `.../status/CODE`: an empty response with that status;
//! - `.../healthz`: 200, or 503 after `set_healthy(false)`;
//! - anything else: `NAME METHOD PATH\n`.
//!
//! A latency and a `Server-Load` header, both changeable at runtime, can be
//! added to every response. Requests are counted
//! per method so tests can prove a request was (or was not) sent twice.
//! Stopping the origin (or dropping its handle) closes the listener and
//! every open connection.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

type Body = BoxBody<Bytes, hyper::Error>;

/// How an origin behaves.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    pub name: String,
    /// Added before every response.
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

/// Request counters.
#[derive(Debug, Default)]
pub struct OriginStats {
    total: AtomicU64,
    by_method: Mutex<HashMap<String, u64>>,
    by_path: Mutex<HashMap<String, u64>>,
    by_request_id: Mutex<HashMap<String, u64>>,
}

impl OriginStats {
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::SeqCst)
    }

    pub fn count(&self, method: &Method) -> u64 {
        let map = self.by_method.lock().expect("stats lock");
        map.get(method.as_str()).copied().unwrap_or(0)
    }

    /// Requests for exactly this path (without query).
    pub fn count_path(&self, path: &str) -> u64 {
        let map = self.by_path.lock().expect("stats lock");
        map.get(path).copied().unwrap_or(0)
    }

    /// How many times a request with this `x-request-id` arrived.
    pub fn seen_request_id(&self, id: &str) -> u64 {
        let map = self.by_request_id.lock().expect("stats lock");
        map.get(id).copied().unwrap_or(0)
    }

    fn record(&self, req: &Request<Incoming>) {
        self.total.fetch_add(1, Ordering::SeqCst);
        *self
            .by_method
            .lock()
            .expect("stats lock")
            .entry(req.method().as_str().to_string())
            .or_default() += 1;
        *self
            .by_path
            .lock()
            .expect("stats lock")
            .entry(req.uri().path().to_string())
            .or_default() += 1;
        if let Some(id) = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
        {
            *self
                .by_request_id
                .lock()
                .expect("stats lock")
                .entry(id.to_string())
                .or_default() += 1;
        }
    }
}

/// Behaviour that can change while the origin runs.
struct Live {
    name: String,
    latency_us: AtomicU64,
    /// Sent as `Server-Load` on every response when set.
    server_load: Mutex<Option<String>>,
    /// What `/healthz` answers: 200 when healthy, 503 otherwise.
    healthy: AtomicBool,
}

/// A running origin; stops when dropped.
pub struct OriginHandle {
    pub addr: SocketAddr,
    pub stats: Arc<OriginStats>,
    live: Arc<Live>,
    task: JoinHandle<()>,
}

impl OriginHandle {
    /// Make `/healthz` answer 200 (healthy) or 503.
    pub fn set_healthy(&self, healthy: bool) {
        self.live.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Send this `Server-Load` value on every response (`None`: send none).
    pub fn set_server_load(&self, value: Option<&str>) {
        *self.live.server_load.lock().expect("origin lock") = value.map(str::to_string);
    }

    /// Change the latency added before every response.
    pub fn set_latency(&self, latency: Duration) {
        self.live
            .latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
    }

    /// Close the listener and every connection.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for OriginHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start an origin on `listen` (port 0 picks a free port).
pub async fn spawn(listen: SocketAddr, config: OriginConfig) -> std::io::Result<OriginHandle> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(OriginStats::default());
    let live = Arc::new(Live {
        name: config.name,
        latency_us: AtomicU64::new(config.latency.as_micros() as u64),
        server_load: Mutex::new(None),
        healthy: AtomicBool::new(true),
    });
    let config = live.clone();
    let task_stats = stats.clone();
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let config = config.clone();
            let stats = task_stats.clone();
            connections.spawn(async move {
                let service = service_fn(move |req| handle(req, config.clone(), stats.clone()));
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            while connections.try_join_next().is_some() {}
        }
    });
    Ok(OriginHandle {
        addr,
        stats,
        live,
        task,
    })
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

async fn handle(
    req: Request<Incoming>,
    config: Arc<Live>,
    stats: Arc<OriginStats>,
) -> Result<Response<Body>, Infallible> {
    stats.record(&req);
    let latency_us = config.latency_us.load(Ordering::Relaxed);
    if latency_us > 0 {
        tokio::time::sleep(Duration::from_micros(latency_us)).await;
    }
    let path = req.uri().path().to_string();
    let mut segments = path.rsplit('/').filter(|s| !s.is_empty());
    let (last, before_last) = (segments.next().unwrap_or(""), segments.next().unwrap_or(""));
    let (status, body) = match (before_last, last) {
        (_, "echo") => (StatusCode::OK, req.into_body().boxed()),
        (_, "headers") => {
            let text: String = req
                .headers()
                .iter()
                .map(|(k, v)| format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())))
                .collect();
            (StatusCode::OK, full(text))
        }
        (_, "stream") => (StatusCode::OK, chunked(req.uri().query())),
        (_, "healthz") => match config.healthy.load(Ordering::Relaxed) {
            true => (StatusCode::OK, full("ok\n")),
            false => (StatusCode::SERVICE_UNAVAILABLE, full("unhealthy\n")),
        },
        ("status", code) => {
            let status = code
                .parse()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .unwrap_or(StatusCode::BAD_REQUEST);
            (status, full(""))
        }
        _ => (
            StatusCode::OK,
            full(format!("{} {} {}\n", config.name, req.method(), path)),
        ),
    };
    let mut response = Response::builder()
        .status(status)
        .header("x-origin", config.name.as_str());
    if let Some(load) = config.server_load.lock().expect("origin lock").as_deref() {
        response = response.header("server-load", load);
    }
    let response = response.body(body).expect("valid response");
    Ok(response)
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

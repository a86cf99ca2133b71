//! The Pingora glue: for each request, match a route, ask the picker for a
//! backend, forward with X-Forwarded-* and X-Request-Id headers, and turn
//! failures into short, honest error responses (404 no route, 502 backend
//! failed, 503 no backend available, 504 backend timed out).
//!
//! Bodies stream through Pingora untouched. A connect failure (the request
//! never reached the backend) is retried once on another backend whatever the
//! method.

use crate::config::{PoolId, Snapshot};
use crate::metrics::{status_class, Metrics};
use crate::routing::picker::{pick, Decision, RequestFacts};
use crate::routing::table::{host_without_port, RequestView};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const X_REQUEST_ID: &str = "x-request-id";
const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// Longest client-supplied request id that is propagated as is.
const MAX_REQUEST_ID_LEN: usize = 128;
/// Connect failures retried on another backend per request.
const MAX_CONNECT_RETRIES: usize = 1;

/// The proxy service: holds the current configuration snapshot.
pub struct BallastProxy {
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// Per-pool round-robin tickets, indexed by pool.
    tickets: Vec<AtomicU64>,
    /// Seeds request ids; combined with a counter so ids are unique per process.
    id_prefix: u64,
    id_counter: AtomicU64,
    metrics: Arc<Metrics>,
}

/// Counts a request as in flight from context creation until it is dropped.
struct InFlightGuard(prometheus::IntGauge);

impl InFlightGuard {
    fn new(gauge: &prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl BallastProxy {
    pub fn new(snapshot: Arc<ArcSwap<Snapshot>>, metrics: Arc<Metrics>) -> Self {
        let pools = snapshot.load().pools.len();
        Self {
            snapshot,
            tickets: (0..pools).map(|_| AtomicU64::new(0)).collect(),
            id_prefix: rand::random(),
            id_counter: AtomicU64::new(0),
            metrics,
        }
    }

    fn new_request_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:016x}", self.id_prefix, n)
    }

    fn next_ticket(&self, pool: PoolId) -> u64 {
        self.tickets
            .get(pool.0)
            .map_or(0, |t| t.fetch_add(1, Ordering::Relaxed))
    }
}

/// Per-request state.
pub struct RequestCtx {
    started: Instant,
    request_id: String,
    snapshot: Option<Arc<Snapshot>>,
    route: Option<usize>,
    pool: Option<PoolId>,
    tried: Vec<usize>,
    connect_retries: usize,
    _in_flight: InFlightGuard,
}

impl RequestCtx {
    fn backend_label(&self) -> String {
        match (&self.snapshot, self.pool, self.tried.last()) {
            (Some(snap), Some(pool), Some(&b)) => snap.pool(pool).backends[b].id.to_string(),
            _ => "-".to_string(),
        }
    }
}

/// A client-supplied request id is kept if it is short visible ASCII.
fn acceptable_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID_LEN
        && bytes.iter().all(|b| b.is_ascii_graphic())
}

fn request_host(req: &RequestHeader) -> Option<&str> {
    req.uri
        .host()
        .or_else(|| req.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .map(host_without_port)
}

/// Write a short plain-text error response (if nothing was sent yet).
async fn respond_plain(session: &mut Session, status: u16, request_id: &str, message: &str) {
    let body = Bytes::from(format!("{message}\n"));
    let resp = ResponseHeader::build(status, Some(4)).and_then(|mut resp| {
        resp.insert_header(header::CONTENT_TYPE, "text/plain; charset=utf-8")?;
        resp.insert_header(header::CONTENT_LENGTH, body.len().to_string())?;
        resp.insert_header(X_REQUEST_ID, request_id)?;
        Ok(resp)
    });
    let result = match resp {
        Ok(resp) => {
            session
                .as_downstream_mut()
                .write_error_response(resp, body)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "could not write error response to client");
    }
}

/// Map a proxy error to the status the client should see (0 = connection is gone).
fn status_for(error: &Error) -> (u16, &'static str) {
    match error.etype() {
        ErrorType::HTTPStatus(code) => (*code, "request failed"),
        _ => match error.esource() {
            ErrorSource::Upstream => match error.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    (504, "gateway timeout: the backend did not answer in time")
                }
                ErrorType::ConnectRefused | ErrorType::ConnectNoRoute | ErrorType::ConnectError => {
                    (502, "bad gateway: could not connect to the backend")
                }
                _ => (502, "bad gateway: the backend failed"),
            },
            ErrorSource::Downstream => match error.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => {
                    (0, "client went away")
                }
                ErrorType::ReadTimedout => (408, "request timeout"),
                _ => (400, "bad request"),
            },
            ErrorSource::Internal | ErrorSource::Unset => (500, "internal error"),
        },
    }
}

#[async_trait]
impl ProxyHttp for BallastProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            request_id: String::new(),
            snapshot: None,
            route: None,
            pool: None,
            tried: Vec::new(),
            connect_retries: 0,
            _in_flight: InFlightGuard::new(&self.metrics.in_flight),
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = match req.headers.get(X_REQUEST_ID) {
            Some(id) if acceptable_request_id(id) => {
                String::from_utf8_lossy(id.as_bytes()).into_owned()
            }
            _ => self.new_request_id(),
        };
        let snapshot = self.snapshot.load_full();
        let view = RequestView {
            host: request_host(req),
            path: req.uri.path(),
            method: &req.method,
            headers: &req.headers,
        };
        let found = snapshot
            .routes
            .find(&view)
            .map(|(index, route)| (index, route.pool));
        match found {
            Some((index, pool)) => {
                ctx.route = Some(index);
                ctx.pool = Some(pool);
                ctx.snapshot = Some(snapshot);
                Ok(false)
            }
            None => {
                ctx.snapshot = Some(snapshot);
                let id = ctx.request_id.clone();
                respond_plain(
                    session,
                    404,
                    &id,
                    "not found: no route matches this request",
                )
                .await;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let (Some(snapshot), Some(pool_id)) = (ctx.snapshot.clone(), ctx.pool) else {
            return Error::e_explain(ErrorType::InternalError, "no route selected");
        };
        let facts = RequestFacts {
            pool: pool_id,
            ticket: self.next_ticket(pool_id),
            tried: &ctx.tried,
        };
        let backend = match pick(&snapshot, &facts, Instant::now(), &mut rand::rng()) {
            Decision::Backend(index) => index,
            Decision::Unavailable(why) => {
                return Error::e_explain(ErrorType::HTTPStatus(503), why.as_str());
            }
        };
        ctx.tried.push(backend);
        let pool = snapshot.pool(pool_id);
        let mut peer = HttpPeer::new(pool.backends[backend].addr, false, String::new());
        peer.options.connection_timeout = Some(pool.timeouts.connect);
        peer.options.read_timeout = Some(pool.timeouts.read);
        peer.options.write_timeout = Some(pool.timeouts.write);
        peer.options.idle_timeout = Some(pool.timeouts.idle);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(client) = session.client_addr().and_then(|a| a.as_inet()) {
            let ip = client.ip().to_string();
            let forwarded_for = match upstream_request.headers.get(X_FORWARDED_FOR) {
                Some(prior) => match prior.to_str() {
                    Ok(prior) => format!("{prior}, {ip}"),
                    Err(_) => ip,
                },
                None => ip,
            };
            upstream_request.insert_header(X_FORWARDED_FOR, forwarded_for)?;
        }
        let is_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        upstream_request.insert_header(X_FORWARDED_PROTO, if is_tls { "https" } else { "http" })?;
        upstream_request.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(X_REQUEST_ID, ctx.request_id.as_str())?;
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let others_left = match (&ctx.snapshot, ctx.pool) {
            (Some(snap), Some(pool)) => ctx.tried.len() < snap.pool(pool).backends.len(),
            _ => false,
        };
        if others_left && ctx.connect_retries < MAX_CONNECT_RETRIES {
            ctx.connect_retries += 1;
            e.set_retry(true);
        }
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let (status, message) = status_for(e);
        if status != 0 {
            let message = match e.etype() {
                ErrorType::HTTPStatus(503) => {
                    "service unavailable: no backend can take this request"
                }
                _ => message,
            };
            let id = if ctx.request_id.is_empty() {
                self.new_request_id()
            } else {
                ctx.request_id.clone()
            };
            respond_plain(session, status, &id, message).await;
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let req = session.req_header();
        let route = match (&ctx.snapshot, ctx.route) {
            (Some(snap), Some(i)) => snap.routes.routes()[i].name.as_str(),
            _ => "-",
        };
        let pool = match (&ctx.snapshot, ctx.pool) {
            (Some(snap), Some(p)) => snap.pool(p).name.as_str(),
            _ => "-",
        };
        let elapsed = ctx.started.elapsed();
        self.metrics
            .requests
            .with_label_values(&[route, pool, status_class(status)])
            .inc();
        self.metrics
            .request_duration
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
        tracing::info!(
            target: "ballast::access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = %req.uri.path(),
            status,
            route,
            backend = %ctx.backend_label(),
            attempts = ctx.tried.len(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            error = e.map(|e| e.to_string()),
        );
    }
}

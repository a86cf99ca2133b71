//! The control API: a small JSON-over-HTTP/1.1 server that shows and
//! changes the behaviour of running origins.
//!
//! | request                                 | answer                                   |
//! |-----------------------------------------|------------------------------------------|
//! | `GET /origins`                          | `{"origins": [STATUS, ...]}`             |
//! | `GET /origins/{name}`                   | `STATUS`                                 |
//! | `PUT /origins/{name}` with an update    | `STATUS` after the change                |
//! | `POST /origins/{name}/reset-counters`   | `STATUS` with the counters at zero       |
//!
//! `STATUS` is an [`OriginStatus`]: `name`, `addr`, `in_flight`,
//! `busy_workers`, `queued`, `behaviour` (a [`Behaviour`](crate::behaviour::Behaviour)) and
//! `counters`. The body of a `PUT` is a
//! [`BehaviourUpdate`]: any subset of the fields of `behaviour`, e.g.
//!
//! ```text
//! curl -X PUT localhost:9100/origins/api-1 -d '{"latency": {"kind": "normal",
//!   "mean_ms": 40, "stddev_ms": 10}, "error_rate": 0.05, "failure": "healthy",
//!   "server_load": {"mode": "honest", "slots": 100}}'
//! curl -X PUT localhost:9100/origins/api-1 -d '{"workers": 4, "queue": 64}'
//! curl -X PUT localhost:9100/origins/api-1 -d '{"workers": "unlimited"}'
//! ```
//!
//! Errors are `{"error": "<message>"}`: 400 for a body that is not a valid
//! update (nothing changes then), 404 for an unknown origin or path, 405
//! for a method a path does not support, 413 for a body over
//! [`MAX_BODY_BYTES`], 500 when an origin cannot listen on its port again.

use crate::behaviour::BehaviourUpdate;
use crate::origin::{OriginHandle, OriginStatus, UpdateError};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Largest request body read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

type Origins = BTreeMap<String, Arc<OriginHandle>>;

/// A running control API; stops (listener and connections) when dropped.
pub struct ControlHandle {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serve the control API for `origins` on `listen` (port 0 picks a free
/// port). Origin names must be unique.
pub async fn spawn(
    listen: SocketAddr,
    origins: impl IntoIterator<Item = Arc<OriginHandle>>,
) -> io::Result<ControlHandle> {
    let mut by_name = Origins::new();
    for origin in origins {
        let name = origin.name().to_string();
        if by_name.insert(name.clone(), origin).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("two origins are named {name:?}"),
            ));
        }
    }
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(accept_loop(listener, Arc::new(by_name)));
    Ok(ControlHandle { addr, task })
}

async fn accept_loop(listener: TcpListener, origins: Arc<Origins>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let origins = origins.clone();
                    let service = service_fn(move |req| handle(req, origins.clone()));
                    connections.spawn(async move {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(_) => tokio::time::sleep(ACCEPT_RETRY_DELAY).await,
            },
            Some(_finished) = connections.join_next() => {}
        }
    }
}

#[derive(Serialize)]
struct OriginList {
    origins: Vec<OriginStatus>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

/// A failed request: its status and the message sent as `{"error": ...}`.
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    origins: Arc<Origins>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(route(req, &origins).await.unwrap_or_else(|error| {
        json(
            error.status,
            &ErrorBody {
                error: &error.message,
            },
        )
    }))
}

async fn route(
    req: Request<Incoming>,
    origins: &Origins,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    match segments.as_slice() {
        ["origins"] => {
            only(&method, &[Method::GET])?;
            let origins = origins.values().map(|origin| origin.status()).collect();
            Ok(json(StatusCode::OK, &OriginList { origins }))
        }
        ["origins", name] => {
            let origin = find(origins, name)?;
            only(&method, &[Method::GET, Method::PUT])?;
            if method == Method::PUT {
                let update = read_update(req).await?;
                origin.update(update).await.map_err(|error| match error {
                    UpdateError::Invalid(message) => {
                        ApiError::new(StatusCode::BAD_REQUEST, message)
                    }
                    UpdateError::Listener(_) => {
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
                    }
                })?;
            }
            Ok(json(StatusCode::OK, &origin.status()))
        }
        ["origins", name, "reset-counters"] => {
            let origin = find(origins, name)?;
            only(&method, &[Method::POST])?;
            origin.stats.reset();
            Ok(json(StatusCode::OK, &origin.status()))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no such path: {path}"),
        )),
    }
}

fn find<'a>(origins: &'a Origins, name: &str) -> Result<&'a OriginHandle, ApiError> {
    origins
        .get(name)
        .map(|origin| &**origin)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no origin named {name:?}")))
}

/// Refuses any method but the `allowed` ones.
fn only(method: &Method, allowed: &[Method]) -> Result<(), ApiError> {
    if allowed.contains(method) {
        return Ok(());
    }
    let allowed: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {method} is not allowed here (allowed: {})",
            allowed.join(", ")
        ),
    ))
}

async fn read_update(req: Request<Incoming>) -> Result<BehaviourUpdate, ApiError> {
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(
            |error| match error.is::<http_body_util::LengthLimitError>() {
                true => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the body is larger than {MAX_BODY_BYTES} bytes"),
                ),
                false => ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {error}"),
                ),
            },
        )?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|error| ApiError::new(StatusCode::BAD_REQUEST, format!("invalid update: {error}")))
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let (status, mut body) = match serde_json::to_vec_pretty(value) {
        Ok(body) => (status, body),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            br#"{"error": "cannot encode the answer"}"#.to_vec(),
        ),
    };
    body.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

//! The admin endpoint (by default on 127.0.0.1 only).
//!
//! - `GET /healthz` — the process is up; `GET /readyz` — a valid
//!   configuration is loaded and the proxy serves (both never need a token,
//!   so probes work);
//! - `GET /dashboard` (also `/`) — the live dashboard page (it holds no
//!   data itself; its API calls carry the token);
//! - `GET /metrics` — Prometheus text;
//! - `GET /api/v1/state`, `GET /api/v1/decisions`, `GET /api/v1/config` — JSON;
//! - `POST /reload`;
//! - `POST /api/v1/backends/{pool}/{addr}/drain` and `.../undrain`,
//!   `POST .../pin?share=0.3&for=5m`, `DELETE .../pin` — operator overrides,
//!   recorded as decisions; in fleet mode stored for every instance;
//! - `GET /api/v1/fleet` — in fleet mode, the registered instances.
//!
//! When `admin.token_env` names an environment variable, every other request
//! must carry `Authorization: Bearer <token>` (compared in constant time);
//! without it the answer is 401. Every request but the probes also passes
//! the [`Guard`]: no cross-site mutations, and without a token no Host
//! but an IP address, `localhost` or `admin.allowed_hosts` (403).

mod api;
mod fleet;
mod guard;

pub use fleet::FleetAdmin;
pub use guard::Guard;

use crate::control::engine::Engine;
use crate::discovery::Discovery;
use crate::reload::Reloader;
use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The admin HTTP application.
pub struct AdminApp {
    pub engine: Arc<Engine>,
    /// The backends named by DNS, for the state API.
    pub discovery: Arc<Discovery>,
    pub metrics: Arc<Metrics>,
    /// Present when the proxy was started from a configuration file or store.
    pub reloader: Option<Arc<Reloader>>,
    /// Present in fleet mode: overrides go to the store, and
    /// `/api/v1/fleet` lists the instances.
    pub fleet: Option<FleetAdmin>,
    /// The bearer token every API request must carry, if one is configured.
    pub token: Option<String>,
    /// Refuses cross-site mutations and, without a token, unknown Hosts.
    pub guard: Guard,
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
/// The live dashboard: static HTML and JavaScript that polls the JSON API.
const DASHBOARD: &str = include_str!("dashboard.html");
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) fn respond(status: StatusCode, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static response parts are valid")
}

fn plain(status: StatusCode, text: &str) -> Response<Vec<u8>> {
    respond(status, TEXT, text.as_bytes().to_vec())
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Vec<u8>> {
    respond(
        status,
        JSON,
        serde_json::to_vec_pretty(value).expect("JSON values serialize"),
    )
}

pub(crate) fn json_error(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    json(status, &serde_json::json!({ "error": message }))
}

impl AdminApp {
    fn authorized(&self, session: &ServerSession) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let Some(header) = session
            .req_header()
            .headers
            .get(http::header::AUTHORIZATION)
        else {
            return false;
        };
        let Some(presented) = header.as_bytes().strip_prefix(b"Bearer ") else {
            return false;
        };
        presented.ct_eq(token.as_bytes()).into()
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let query = req.uri.query().unwrap_or("").to_string();
        match (&method, path.as_str()) {
            (&Method::GET | &Method::HEAD, "/healthz") => return plain(StatusCode::OK, "ok\n"),
            (&Method::GET | &Method::HEAD, "/readyz") => return plain(StatusCode::OK, "ready\n"),
            _ => {}
        }
        if let Some(reason) = self.guard.refusal(&method, &req.headers) {
            return json_error(StatusCode::FORBIDDEN, &reason);
        }
        if matches!(method, Method::GET | Method::HEAD)
            && matches!(path.as_str(), "/" | "/dashboard")
        {
            // The page holds no data; its API calls carry the token.
            return respond(StatusCode::OK, HTML, DASHBOARD.as_bytes().to_vec());
        }
        if !self.authorized(session) {
            let mut response =
                json_error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
        match (method, path.as_str()) {
            (Method::GET, "/metrics") => respond(
                StatusCode::OK,
                PROMETHEUS_TEXT,
                self.metrics.render().into_bytes(),
            ),
            (Method::GET, "/api/v1/state") => {
                api::state(&self.engine, &self.discovery, self.reloader.as_deref())
            }
            (Method::GET, "/api/v1/decisions") => api::decisions(&self.engine, &query),
            (Method::GET, "/api/v1/config") => api::config(&self.engine),
            (Method::POST, "/reload") => api::reload(self.reloader.clone()).await,
            (method, path) if path.starts_with(api::BACKENDS_PREFIX) => {
                match api::parse_override(&self.engine, &method, path, &query) {
                    Ok((id, change)) => match &self.fleet {
                        Some(fleet) => fleet.store_override(&id, &change).await,
                        None => api::apply_override(&self.engine, &id, &change),
                    },
                    Err((status, message)) => json_error(status, &message),
                }
            }
            (Method::GET, "/api/v1/fleet") => match &self.fleet {
                Some(fleet) => fleet.members().await,
                None => json_error(
                    StatusCode::NOT_FOUND,
                    "not in fleet mode (start with --config-store to share a configuration)",
                ),
            },
            (
                _,
                "/metrics" | "/api/v1/state" | "/api/v1/decisions" | "/api/v1/config" | "/reload"
                | "/api/v1/fleet",
            ) => json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
            _ => json_error(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

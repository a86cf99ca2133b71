//! The admin endpoint: `GET /healthz` (the process is up), `GET /readyz` (a
//! valid configuration is loaded and the proxy is serving) and `GET /metrics`
//! (Prometheus text format). Anything else is 404.

use crate::metrics::Metrics;
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// The admin HTTP application.
pub struct AdminApp {
    pub metrics: Arc<Metrics>,
}

const TEXT: &str = "text/plain; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

fn plain(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    typed(status, TEXT, body)
}

fn typed(status: StatusCode, content_type: &str, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(body.as_bytes().to_vec())
        .expect("static response parts are valid")
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.method != http::Method::GET && req.method != http::Method::HEAD {
            return plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        }
        match req.uri.path() {
            "/healthz" => plain(StatusCode::OK, "ok\n"),
            "/readyz" => plain(StatusCode::OK, "ready\n"),
            "/metrics" => typed(StatusCode::OK, PROMETHEUS_TEXT, &self.metrics.render()),
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

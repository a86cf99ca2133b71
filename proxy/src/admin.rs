//! The admin endpoint. For now it answers liveness and readiness only:
//! `GET /healthz` (the process is up) and `GET /readyz` (the proxy has a valid
//! configuration loaded and is serving). Anything else is 404.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The admin HTTP application.
pub struct AdminApp;

fn plain(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
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
            _ => plain(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

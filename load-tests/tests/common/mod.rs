//! HTTP/1.1 client helpers shared by the integration tests: requests over
//! fresh or kept-alive connections with a deadline, and polling for a
//! condition instead of sleeping for a guessed time.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Deadline of a request when a test does not choose one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A complete response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// One HTTP/1.1 connection, kept alive across requests.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
}

impl Connection {
    pub async fn open(addr: SocketAddr) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr).await?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self { sender })
    }

    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> Result<Reply, Error> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, Error> {
        self.send(request(Method::GET, path, "")).await
    }
}

pub fn request(method: Method, path: &str, body: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "test")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("valid request")
}

/// Sends `request` on a new connection, failing after `timeout`.
pub async fn send_within(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Result<Reply, Error> {
    tokio::time::timeout(timeout, async {
        Connection::open(addr).await?.send(request).await
    })
    .await?
}

pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Result<Reply, Error> {
    send_within(addr, request, DEFAULT_TIMEOUT).await
}

pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply, Error> {
    send(addr, request(Method::GET, path, "")).await
}

/// Polls `condition` until it holds, panicking after ten seconds.
pub async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

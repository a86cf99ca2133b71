//! An origin that answers every request with what it received: the request
//! line (method and target) and each header as `name: value`, one a line,
//! and counts the body bytes it read, so a test sees what Ballast forwarded.
//! Its answers carry `server: echo-origin` and `x-origin-secret: 1` for
//! response edits to remove.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// A running echo origin; stopped when dropped.
pub struct EchoOrigin {
    pub addr: SocketAddr,
    /// Requests whose headers arrived.
    requests: Arc<AtomicUsize>,
    /// Body bytes read, over all requests.
    body_bytes: Arc<AtomicUsize>,
    /// Requests whose body arrived complete.
    complete_bodies: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl EchoOrigin {
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn body_bytes(&self) -> usize {
        self.body_bytes.load(Ordering::SeqCst)
    }

    pub fn complete_bodies(&self) -> usize {
        self.complete_bodies.load(Ordering::SeqCst)
    }
}

impl Drop for EchoOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start an echo origin on an ephemeral loopback port.
pub async fn spawn_echo_origin() -> EchoOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let body_bytes = Arc::new(AtomicUsize::new(0));
    let complete_bodies = Arc::new(AtomicUsize::new(0));
    let counters = (
        requests.clone(),
        body_bytes.clone(),
        complete_bodies.clone(),
    );
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (requests, body_bytes, complete) = counters.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (requests, body_bytes, complete) =
                        (requests.clone(), body_bytes.clone(), complete.clone());
                    async move {
                        requests.fetch_add(1, Ordering::SeqCst);
                        let mut text = format!("{} {}\n", req.method(), req.uri());
                        for (name, value) in req.headers() {
                            text.push_str(&format!(
                                "{name}: {}\n",
                                String::from_utf8_lossy(value.as_bytes())
                            ));
                        }
                        let mut body = req.into_body();
                        let mut ended = true;
                        while let Some(frame) = body.frame().await {
                            match frame {
                                Ok(frame) => {
                                    if let Some(data) = frame.data_ref() {
                                        body_bytes.fetch_add(data.len(), Ordering::SeqCst);
                                    }
                                }
                                Err(_) => {
                                    ended = false;
                                    break;
                                }
                            }
                        }
                        if ended {
                            complete.fetch_add(1, Ordering::SeqCst);
                        }
                        let response = Response::builder()
                            .header("server", "echo-origin")
                            .header("x-origin-secret", "1")
                            .header("content-type", "text/plain")
                            .body(Full::new(Bytes::from(text)))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    EchoOrigin {
        addr,
        requests,
        body_bytes,
        complete_bodies,
        task,
    }
}

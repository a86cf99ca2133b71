//! A gRPC origin and client for the gRPC tests, without generated code: the
//! messages are prost structs written by hand, the origin serves them with
//! tonic's generic server handlers on hyper (h2c, or h2 over TLS), and the
//! client is tonic's generic client over a hyper HTTP/2 client.
//!
//! The origin's service `test.Echo` has a unary `Unary` (echoes the text,
//! names the origin), a server-streaming `Stream` (`count` replies
//! numbered from 1) and a bidirectional `Chat` (a numbered reply to each
//! message, as it comes). An origin may answer every call with one status
//! instead (trailers-only); a stream asked with the text `gated` waits after
//! its first reply until the test opens the gate; one asked with `fail`
//! ends with INTERNAL in its trailers after its replies, one asked with
//! `going away` with UNAVAILABLE. `NoStatus` answers a reply and no status.

use super::tls_origin::{server_config, OriginAlpn, TlsOriginConfig};
use http::uri::PathAndQuery;
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::server::{ServerStreamingService, StreamingService, UnaryService};
use tonic::{Code, Status};
use tonic_prost::ProstCodec;

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoRequest {
    #[prost(string, tag = "1")]
    pub text: String,
    /// Replies a stream sends.
    #[prost(uint32, tag = "2")]
    pub count: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoReply {
    #[prost(string, tag = "1")]
    pub text: String,
    /// The name of the origin that answered.
    #[prost(string, tag = "2")]
    pub origin: String,
    /// The reply's number in its stream (1 for a unary call).
    #[prost(uint32, tag = "3")]
    pub seq: u32,
}

pub const UNARY: &str = "/test.Echo/Unary";
pub const STREAM: &str = "/test.Echo/Stream";
pub const CHAT: &str = "/test.Echo/Chat";
/// A unary call answered with its reply and no status at all (no trailers).
pub const NO_STATUS: &str = "/test.Echo/NoStatus";

/// What the origin's calls meet.
struct Shared {
    name: String,
    /// Every call answered with this status, trailers-only.
    refuse: Option<Code>,
    calls: AtomicUsize,
    gate: watch::Receiver<bool>,
}

/// A running gRPC origin; stops when dropped.
pub struct GrpcOrigin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    gate: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl GrpcOrigin {
    /// Calls received (every method).
    pub fn calls(&self) -> usize {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// Let gated streams go on to their end.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }
}

impl Drop for GrpcOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Reply<T> = Pin<Box<dyn Future<Output = Result<tonic::Response<T>, Status>> + Send>>;
type ReplyStream = ReceiverStream<Result<EchoReply, Status>>;

struct Unary(Arc<Shared>);

impl UnaryService<EchoRequest> for Unary {
    type Response = EchoReply;
    type Future = Reply<EchoReply>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            if let Some(code) = shared.refuse {
                return Err(Status::new(code, format!("{} refuses", shared.name)));
            }
            Ok(tonic::Response::new(EchoReply {
                text: request.into_inner().text,
                origin: shared.name.clone(),
                seq: 1,
            }))
        })
    }
}

struct Streaming(Arc<Shared>);

impl ServerStreamingService<EchoRequest> for Streaming {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = Reply<ReplyStream>;

    fn call(&mut self, request: tonic::Request<EchoRequest>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            if let Some(code) = shared.refuse {
                return Err(Status::new(code, format!("{} refuses", shared.name)));
            }
            let request = request.into_inner();
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let mut gate = shared.gate.clone();
                for seq in 1..=request.count {
                    if seq == 2 && request.text == "gated" {
                        let _ = gate.wait_for(|open| *open).await;
                    }
                    let reply = EchoReply {
                        text: request.text.clone(),
                        origin: shared.name.clone(),
                        seq,
                    };
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
                let end = match request.text.as_str() {
                    "fail" => Some(Status::internal("stream broke")),
                    "going away" => Some(Status::unavailable("going away")),
                    _ => None,
                };
                if let Some(status) = end {
                    let _ = tx.send(Err(status)).await;
                }
            });
            Ok(tonic::Response::new(ReceiverStream::new(rx)))
        })
    }
}

struct Chat(Arc<Shared>);

impl StreamingService<EchoRequest> for Chat {
    type Response = EchoReply;
    type ResponseStream = ReplyStream;
    type Future = Reply<ReplyStream>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<EchoRequest>>) -> Self::Future {
        let shared = self.0.clone();
        Box::pin(async move {
            let mut inbound = request.into_inner();
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                let mut seq = 0;
                while let Ok(Some(message)) = inbound.message().await {
                    seq += 1;
                    let reply = EchoReply {
                        text: message.text,
                        origin: shared.name.clone(),
                        seq,
                    };
                    if tx.send(Ok(reply)).await.is_err() {
                        return;
                    }
                }
            });
            Ok(tonic::Response::new(ReceiverStream::new(rx)))
        })
    }
}

/// One reply, framed as gRPC frames a message (uncompressed, its length),
/// and then nothing: no trailers, no status.
fn reply_without_status(origin: &str) -> http::Response<tonic::body::Body> {
    let message = prost::Message::encode_to_vec(&EchoReply {
        text: "no status".to_string(),
        origin: origin.to_string(),
        seq: 1,
    });
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    http::Response::builder()
        .header("content-type", "application/grpc")
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from(frame),
        )))
        .unwrap()
}

/// Answer one HTTP/2 request as the `test.Echo` service.
async fn serve_call(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<http::Response<tonic::body::Body>, Infallible> {
    shared.calls.fetch_add(1, Ordering::SeqCst);
    let mut grpc = tonic::server::Grpc::new(ProstCodec::<EchoReply, EchoRequest>::default());
    let response = match req.uri().path() {
        UNARY => grpc.unary(Unary(shared), req).await,
        STREAM => grpc.server_streaming(Streaming(shared), req).await,
        CHAT => grpc.streaming(Chat(shared), req).await,
        NO_STATUS => reply_without_status(&shared.name),
        _ => Status::unimplemented("no such method").into_http(),
    };
    Ok(response)
}

/// Start a gRPC origin named `name` on a free loopback port: h2c, or h2 over
/// TLS with `tls` (certificate and key PEM); answering every call with
/// `refuse` when set.
pub async fn grpc_origin(
    name: &str,
    refuse: Option<Code>,
    tls: Option<(&str, &str)>,
) -> GrpcOrigin {
    ballast::tls::install_crypto_provider();
    let acceptor = tls.map(|(cert_pem, key_pem)| {
        let config = server_config(&TlsOriginConfig {
            cert_pem,
            key_pem,
            client_ca_pem: None,
            alpn: OriginAlpn::H2,
        });
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (gate, gate_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        name: name.to_string(),
        refuse,
        calls: AtomicUsize::new(0),
        gate: gate_rx,
    });
    let serving = shared.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, shared) = (acceptor.clone(), serving.clone());
            let _ = tcp.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(move |req| serve_call(shared.clone(), req));
                let http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                let _ = match acceptor {
                    None => http2.serve_connection(TokioIo::new(tcp), service).await,
                    Some(acceptor) => {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        http2.serve_connection(TokioIo::new(tls), service).await
                    }
                };
            });
        }
    });
    GrpcOrigin {
        addr,
        shared,
        gate,
        task,
    }
}

/// A gRPC client speaking h2c to `addr` (prior knowledge).
pub type GrpcClient = tonic::client::Grpc<Client<HttpConnector, tonic::body::Body>>;

pub fn grpc_client(addr: SocketAddr) -> GrpcClient {
    // Without TCP_NODELAY, a request's headers and message, written apart,
    // wait out the peer's delayed ACK (40 ms a call).
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let http = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build(connector);
    let origin: Uri = format!("http://{addr}").parse().unwrap();
    tonic::client::Grpc::with_origin(http, origin)
}

/// Call `Unary` with `text`.
pub async fn unary(client: &mut GrpcClient, text: &str) -> Result<EchoReply, Status> {
    unary_at(client, UNARY, text).await
}

/// Call the unary method at `path` with `text`.
pub async fn unary_at(
    client: &mut GrpcClient,
    path: &'static str,
    text: &str,
) -> Result<EchoReply, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = tonic::Request::new(EchoRequest {
        text: text.to_string(),
        count: 1,
    });
    let codec = ProstCodec::<EchoRequest, EchoReply>::default();
    client
        .unary(request, PathAndQuery::from_static(path), codec)
        .await
        .map(tonic::Response::into_inner)
}

/// Call `Stream` with `text` for `count` replies.
pub async fn stream(
    client: &mut GrpcClient,
    text: &str,
    count: u32,
) -> Result<tonic::Streaming<EchoReply>, Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let request = tonic::Request::new(EchoRequest {
        text: text.to_string(),
        count,
    });
    let codec = ProstCodec::<EchoRequest, EchoReply>::default();
    client
        .server_streaming(request, PathAndQuery::from_static(STREAM), codec)
        .await
        .map(tonic::Response::into_inner)
}

/// Open a `Chat`: messages sent on the returned sender are answered, one
/// reply each, on the returned stream.
pub async fn chat(
    client: &mut GrpcClient,
) -> Result<(mpsc::Sender<EchoRequest>, tonic::Streaming<EchoReply>), Status> {
    client
        .ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let (tx, rx) = mpsc::channel(4);
    let codec = ProstCodec::<EchoRequest, EchoReply>::default();
    let replies = client
        .streaming(
            tonic::Request::new(ReceiverStream::new(rx)),
            PathAndQuery::from_static(CHAT),
            codec,
        )
        .await?
        .into_inner();
    Ok((tx, replies))
}

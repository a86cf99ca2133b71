//! A TLS origin on an ephemeral loopback port, for the upstream TLS tests:
//! it serves one certificate, optionally requires a client certificate
//! signed by a given CA, and speaks HTTP/1.1 or h2 as its ALPN says. Each
//! answer reports what the origin saw: the HTTP version
//! (`x-origin-version`) and whether a client certificate was presented
//! (`x-origin-client-cert`). `/load` answers a load report.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Which protocol the origin accepts by ALPN.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum OriginAlpn {
    Http1,
    H2,
}

pub struct TlsOriginConfig<'a> {
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
    /// Require a client certificate signed by this CA.
    pub client_ca_pem: Option<&'a str>,
    pub alpn: OriginAlpn,
}

/// A running TLS origin; stops when dropped.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    /// Requests answered, each over a completed TLS handshake.
    pub requests: Arc<AtomicUsize>,
    /// The paths requested, in order.
    pub paths: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The rustls configuration of an origin: its certificate, the client CA
/// it requires, its ALPN.
pub fn server_config(config: &TlsOriginConfig<'_>) -> rustls::ServerConfig {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(config.cert_pem.as_bytes())
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_slice(config.key_pem.as_bytes()).unwrap();
    let builder = rustls::ServerConfig::builder();
    let builder = match config.client_ca_pem {
        None => builder.with_no_client_auth(),
        Some(ca_pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(chain, key).unwrap();
    server.alpn_protocols = match config.alpn {
        OriginAlpn::Http1 => vec![b"http/1.1".to_vec()],
        OriginAlpn::H2 => vec![b"h2".to_vec()],
    };
    server
}

/// Start a TLS origin on a free loopback port.
pub async fn tls_origin(config: TlsOriginConfig<'_>) -> TlsOrigin {
    ballast::tls::install_crypto_provider();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config(&config)));
    let alpn = config.alpn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(Mutex::new(Vec::new()));
    let (count, seen) = (requests.clone(), paths.clone());
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, count, seen) = (acceptor.clone(), count.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let client_cert = tls.get_ref().1.peer_certificates().is_some();
                let service = service_fn(move |req: Request<Incoming>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    seen.lock().unwrap().push(req.uri().path().to_string());
                    let body = match req.uri().path() {
                        "/load" => r#"{"latency_ms": 5}"#,
                        _ => "tls origin\n",
                    };
                    let response = Response::builder()
                        .header("x-origin-version", format!("{:?}", req.version()))
                        .header("x-origin-client-cert", client_cert.to_string())
                        .header("content-type", "text/plain")
                        .body(Full::new(Bytes::from(body)))
                        .unwrap();
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = TokioIo::new(tls);
                let _ = match alpn {
                    OriginAlpn::Http1 => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await
                    }
                    OriginAlpn::H2 => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await
                    }
                };
            });
        }
    });
    TlsOrigin {
        addr,
        requests,
        paths,
        task,
    }
}

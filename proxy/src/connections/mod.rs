//! Client connections before and between requests: the connection limits
//! (`server.max_connections`, `server.max_client_connections`), the header
//! deadline (`server.header_timeout`), the open-file limit and PROXY
//! protocol (`listeners[].proxy_protocol`).
//!
//! [`Gate`] wraps the proxy's Pingora application: every client connection
//! (after its TLS handshake) passes through it. Over a limit it is closed
//! at once, unread; otherwise it holds a [`limits::Slot`] until it closes,
//! reads a PROXY header where its listener takes one ([`proxy_protocol`]),
//! and is closed when its request header is overdue
//! ([`header_deadline`]). Idle connections after a request are Pingora's to
//! close (`server.keepalive_timeout`, HTTP/1.1 and HTTP/2 alike).

pub mod header_deadline;
pub mod limits;
pub mod open_files;
pub mod proxy_protocol;

use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use header_deadline::{ConnectionKey, FirstByteDeadline, HeaderDeadlines, HEADER_TIMEOUT};
use limits::ConnectionCounts;
use pingora::apps::ServerApp;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::socket::SocketAddr as PeerAddr;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest, Stream};
use pingora::server::ShutdownWatch;
use pingora::{Error, ErrorType};
use proxy_protocol::ProxyProtocol;
use std::sync::Arc;

/// What every proxy service shares about client connections.
pub struct ClientConnections {
    pub counts: Arc<ConnectionCounts>,
    pub header_deadlines: Arc<HeaderDeadlines>,
    pub proxy_protocol: Arc<ProxyProtocol>,
    pub metrics: Arc<Metrics>,
}

/// The address pair of a connection, when both are IP addresses.
pub fn connection_key(peer: Option<&PeerAddr>, local: Option<&PeerAddr>) -> Option<ConnectionKey> {
    Some((*peer?.as_inet()?, *local?.as_inet()?))
}

/// What a TLS listener's connection goes through before its handshake: its
/// PROXY header (where the listener takes one), then the wait for the
/// ClientHello's first byte.
pub struct BeforeTls {
    pub proxy_protocol: Arc<ProxyProtocol>,
    pub first_byte: FirstByteDeadline,
}

#[async_trait]
impl PreTlsProcess for BeforeTls {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let digest = stream.get_socket_digest();
        let key = digest
            .as_ref()
            .and_then(|d| connection_key(d.peer_addr(), d.local_addr()));
        if let Some(key) = key {
            if let Err(refusal) = self.proxy_protocol.accept_before_tls(stream, key).await {
                return Error::e_explain(ErrorType::ReadError, refusal.label());
            }
        }
        self.first_byte.process(stream).await
    }
}

/// A Pingora application behind the connection limits and header deadline.
pub struct Gate<A> {
    inner: Arc<A>,
    clients: Arc<ClientConnections>,
}

impl<A> Gate<A> {
    pub fn new(inner: A, clients: Arc<ClientConnections>) -> Self {
        Self {
            inner: Arc::new(inner),
            clients,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Gate<A> {
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let digest = stream.get_socket_digest();
        let key = digest
            .as_ref()
            .and_then(|d| connection_key(d.peer_addr(), d.local_addr()));
        let Ok(_slot) = self.clients.counts.admit(key.map(|(peer, _)| peer.ip())) else {
            return None;
        };
        let Some(key) = key else {
            return self.inner.process_new(stream, shutdown).await;
        };
        let Ok(_source) = self
            .clients
            .proxy_protocol
            .accept(stream.as_mut(), key)
            .await
        else {
            return None;
        };
        let serve = self.inner.process_new(stream, shutdown);
        let mut deadline = self.clients.header_deadlines.register(key);
        tokio::select! {
            served = serve => served,
            () = deadline.passed() => {
                self.clients
                    .metrics
                    .client_connections_closed
                    .with_label_values(&[HEADER_TIMEOUT])
                    .inc();
                None
            }
        }
    }

    async fn cleanup(&self) {
        self.inner.cleanup().await;
    }
}

//! The header deadline: a new client connection has `server.header_timeout`
//! in total to deliver its first complete request header, however slowly
//! its bytes trickle in. Connections waiting for theirs are registered by
//! their address pair; the proxy reports each request it reads
//! ([`FirstRequests::seen`]), which lifts the deadline of its connection.
//!
//! For a TLS listener, the wait for the client's first byte (its
//! ClientHello) is bounded the same way ([`FirstByteDeadline`]).

use crate::telemetry::metrics::Metrics;
use async_trait::async_trait;
use dashmap::DashMap;
use pingora::listeners::PreTlsProcess;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::Peek;
use pingora::{Error, ErrorType};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// A TCP connection: the client's address and the listener's.
pub type ConnectionKey = (SocketAddr, SocketAddr);

/// The label of `ballast_client_connections_closed_total` for a connection
/// closed by this deadline.
pub const HEADER_TIMEOUT: &str = "header_timeout";

struct Waiting {
    id: u64,
    seen: oneshot::Sender<()>,
}

/// Connections that have not yet delivered a complete request header.
#[derive(Default)]
pub struct FirstRequests {
    waiting: DashMap<ConnectionKey, Waiting>,
    next_id: AtomicU64,
}

impl FirstRequests {
    /// Register `key` as waiting for its first request.
    pub fn expect(self: &Arc<Self>, key: ConnectionKey) -> AwaitingFirstRequest {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (seen, seen_rx) = oneshot::channel();
        self.waiting.insert(key, Waiting { id, seen });
        AwaitingFirstRequest {
            registry: self.clone(),
            key,
            id,
            seen: seen_rx,
        }
    }

    /// The connection `key` delivered a complete request header.
    pub fn seen(&self, key: ConnectionKey) {
        if let Some((_, waiting)) = self.waiting.remove(&key) {
            let _ = waiting.seen.send(());
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// One connection's wait for its first request; leaves the registry when
/// dropped.
pub struct AwaitingFirstRequest {
    registry: Arc<FirstRequests>,
    key: ConnectionKey,
    id: u64,
    seen: oneshot::Receiver<()>,
}

impl AwaitingFirstRequest {
    /// Returns when `timeout` passes before the first request is seen;
    /// never returns once it has been.
    pub async fn overdue(&mut self, timeout: Duration) {
        if tokio::time::timeout(timeout, &mut self.seen).await.is_ok() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for AwaitingFirstRequest {
    fn drop(&mut self) {
        self.registry
            .waiting
            .remove_if(&self.key, |_, waiting| waiting.id == self.id);
    }
}

/// Closes a connection to a TLS listener whose client sends nothing (no
/// ClientHello) within the header timeout.
pub struct FirstByteDeadline {
    pub timeout: Duration,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl PreTlsProcess for FirstByteDeadline {
    async fn process(&self, stream: &mut L4Stream) -> pingora::Result<()> {
        let mut first = [0u8; 1];
        match tokio::time::timeout(self.timeout, stream.try_peek(&mut first)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Error::e_because(
                ErrorType::ReadError,
                "while waiting for the TLS ClientHello",
                e,
            ),
            Err(_) => {
                self.metrics
                    .client_connections_closed
                    .with_label_values(&[HEADER_TIMEOUT])
                    .inc();
                Error::e_explain(
                    ErrorType::ReadTimedout,
                    "no TLS ClientHello within server.header_timeout",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(port: u16) -> ConnectionKey {
        (
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 1], 80)),
        )
    }

    #[tokio::test]
    async fn a_connection_without_a_request_is_overdue() {
        let registry = Arc::new(FirstRequests::default());
        let mut waiting = registry.expect(key(1000));
        waiting.overdue(Duration::from_millis(50)).await;
        drop(waiting);
        assert_eq!(
            registry.len(),
            0,
            "the overdue connection left the registry"
        );
    }

    #[tokio::test]
    async fn a_seen_request_lifts_the_deadline() {
        let registry = Arc::new(FirstRequests::default());
        let mut waiting = registry.expect(key(1000));
        let _other = registry.expect(key(1001));
        registry.seen(key(1000));
        let lifted = tokio::time::timeout(
            Duration::from_millis(300),
            waiting.overdue(Duration::from_millis(50)),
        )
        .await;
        assert!(lifted.is_err(), "never overdue after its first request");
        assert_eq!(registry.len(), 1, "only the other connection still waits");
    }

    #[tokio::test]
    async fn an_old_wait_does_not_remove_a_newer_one_for_the_same_key() {
        let registry = Arc::new(FirstRequests::default());
        let old = registry.expect(key(1000));
        let _new = registry.expect(key(1000));
        drop(old);
        assert_eq!(registry.len(), 1);
    }
}

//! The header deadline: a client connection has `server.header_timeout` in
//! total to deliver its first complete request header, however slowly its
//! bytes trickle in. After each HTTP/1.1 request it has
//! `server.keepalive_timeout` plus `server.header_timeout` to deliver the
//! next one: idle time is Pingora's to bound (per read), and this bounds a
//! next header dribbled slowly enough to keep every read alive.
//!
//! Open connections are registered by their address pair; the proxy
//! reports when it has read a request header ([`HeaderDeadlines::request_started`],
//! which lifts the deadline) and when an HTTP/1.1 request has finished
//! ([`HeaderDeadlines::request_finished`], which sets the next one).
//!
//! For a TLS listener, the wait for the client's first byte (its
//! ClientHello) is bounded by the header timeout ([`FirstByteDeadline`]).

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
use tokio::time::Instant;

/// A TCP connection: the client's address and the listener's.
pub type ConnectionKey = (SocketAddr, SocketAddr);

/// A map keyed by connection, hashed with foldhash: it is looked up twice
/// per request, and SipHash costs more than the rest of the lookup.
pub type ConnectionMap<V> = DashMap<ConnectionKey, V, foldhash::fast::RandomState>;

/// The label of `ballast_client_connections_closed_total` for a connection
/// closed by this deadline.
pub const HEADER_TIMEOUT: &str = "header_timeout";

/// One connection's deadline, moved by the proxy and read by the
/// connection's waiter. The waiter is never woken by a change: deadlines
/// only move later, so it sleeps until the one it last read and looks
/// again (a request costs two atomic stores, not two task wake-ups and a
/// timer).
struct SharedDeadline {
    base: Instant,
    /// Nanoseconds from `base`; [`Self::NONE`] while a request is handled.
    nanos: AtomicU64,
}

impl SharedDeadline {
    const NONE: u64 = u64::MAX;

    fn new(base: Instant, at: Instant) -> Self {
        let shared = SharedDeadline {
            base,
            nanos: AtomicU64::new(Self::NONE),
        };
        shared.set(Some(at));
        shared
    }

    fn set(&self, at: Option<Instant>) {
        let nanos = at.map_or(Self::NONE, |at| {
            let nanos = at.saturating_duration_since(self.base).as_nanos();
            u64::try_from(nanos).unwrap_or(Self::NONE - 1)
        });
        self.nanos.store(nanos, Ordering::Release);
    }

    fn get(&self) -> Option<Instant> {
        match self.nanos.load(Ordering::Acquire) {
            Self::NONE => None,
            nanos => Some(self.base + Duration::from_nanos(nanos)),
        }
    }
}

struct Registered {
    id: u64,
    deadline: Arc<SharedDeadline>,
}

/// The open client connections and their header deadlines.
pub struct HeaderDeadlines {
    header_timeout: Duration,
    keepalive_timeout: Duration,
    base: Instant,
    connections: ConnectionMap<Registered>,
    next_id: AtomicU64,
}

impl HeaderDeadlines {
    pub fn new(header_timeout: Duration, keepalive_timeout: Duration) -> Self {
        HeaderDeadlines {
            header_timeout,
            keepalive_timeout,
            base: Instant::now(),
            connections: ConnectionMap::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// Register a new connection: its first request header is due within
    /// the header timeout.
    pub fn register(self: &Arc<Self>, key: ConnectionKey) -> ConnectionDeadline {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = Arc::new(SharedDeadline::new(
            self.base,
            Instant::now() + self.header_timeout,
        ));
        self.connections.insert(
            key,
            Registered {
                id,
                deadline: deadline.clone(),
            },
        );
        ConnectionDeadline {
            registry: self.clone(),
            key,
            id,
            deadline,
            // Only a finished request sets a deadline once the waiter runs,
            // at least this far from when it does: a waiter that found none
            // looks again after this long and is never late.
            recheck: self.keepalive_timeout + self.header_timeout,
        }
    }

    /// The connection `key` delivered a complete request header.
    pub fn request_started(&self, key: ConnectionKey) {
        self.set(key, None);
    }

    /// An HTTP/1.1 request on `key` has finished: the next header is due
    /// within the keep-alive and header timeouts.
    pub fn request_finished(&self, key: ConnectionKey) {
        self.set(
            key,
            Some(Instant::now() + self.keepalive_timeout + self.header_timeout),
        );
    }

    fn set(&self, key: ConnectionKey, deadline: Option<Instant>) {
        if let Some(registered) = self.connections.get(&key) {
            registered.deadline.set(deadline);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.connections.len()
    }
}

/// One connection's header deadline; leaves the registry when dropped.
pub struct ConnectionDeadline {
    registry: Arc<HeaderDeadlines>,
    key: ConnectionKey,
    id: u64,
    deadline: Arc<SharedDeadline>,
    recheck: Duration,
}

impl ConnectionDeadline {
    /// Returns when the deadline in force passes.
    pub async fn passed(&mut self) {
        loop {
            match self.deadline.get() {
                Some(at) if at <= Instant::now() => return,
                Some(at) => tokio::time::sleep_until(at).await,
                None => tokio::time::sleep(self.recheck).await,
            }
        }
    }
}

impl Drop for ConnectionDeadline {
    fn drop(&mut self) {
        self.registry
            .connections
            .remove_if(&self.key, |_, registered| registered.id == self.id);
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

    const HEADER: Duration = Duration::from_millis(50);
    const KEEPALIVE: Duration = Duration::from_millis(100);

    fn key(port: u16) -> ConnectionKey {
        (
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from(([127, 0, 0, 1], 80)),
        )
    }

    fn registry() -> Arc<HeaderDeadlines> {
        Arc::new(HeaderDeadlines::new(HEADER, KEEPALIVE))
    }

    #[tokio::test]
    async fn a_connection_without_a_request_passes_its_deadline() {
        let registry = registry();
        let started = Instant::now();
        let mut deadline = registry.register(key(1000));
        deadline.passed().await;
        assert!(started.elapsed() >= HEADER);
        drop(deadline);
        assert_eq!(registry.len(), 0, "a closed connection leaves the registry");
    }

    #[tokio::test]
    async fn a_request_in_progress_has_no_deadline() {
        let registry = registry();
        let mut deadline = registry.register(key(1000));
        let _other = registry.register(key(1001));
        registry.request_started(key(1000));
        let waited = tokio::time::timeout(Duration::from_millis(300), deadline.passed()).await;
        assert!(waited.is_err(), "no deadline while a request is handled");
        assert_eq!(registry.len(), 2);
    }

    #[tokio::test]
    async fn after_a_request_the_next_header_is_due_after_keepalive_and_header_timeouts() {
        let registry = registry();
        let mut deadline = registry.register(key(1000));
        registry.request_started(key(1000));
        let finished = Instant::now();
        registry.request_finished(key(1000));
        deadline.passed().await;
        assert!(finished.elapsed() >= KEEPALIVE + HEADER);
    }

    #[tokio::test]
    async fn an_old_registration_does_not_remove_a_newer_one_for_the_same_key() {
        let registry = registry();
        let old = registry.register(key(1000));
        let _new = registry.register(key(1000));
        drop(old);
        assert_eq!(registry.len(), 1);
    }
}

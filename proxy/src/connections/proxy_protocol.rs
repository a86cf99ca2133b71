//! PROXY protocol (v1 text and v2 binary, HAProxy's specification) on the
//! listeners with `proxy_protocol`: an L4 load balancer in front sends, before
//! anything else on the connection, the address of the client it accepted.
//!
//! On such a listener, a connection from a `trusted` source must start with
//! a PROXY header: its source address becomes the connection's (the
//! request's peer, as if the balancer were not there). A `LOCAL` (v2) or
//! `UNKNOWN` (v1) header, the balancer's own health check, leaves the
//! connection's own. A connection from any other source that starts with a
//! PROXY header is refused (it would be claiming an address), as is a
//! trusted one without a header or with a malformed one, and one that has
//! not sent its header within `server.header_timeout`; each is logged and
//! counted in `ballast_client_connections_closed_total{reason}`. Untrusted
//! sources may still connect directly and speak HTTP.
//!
//! Only the header's bytes are consumed (the first bytes are peeked), so
//! what follows — an HTTP request, or a TLS ClientHello — is read as usual.
//! On a plain listener the gate reads the header ([`ProxyProtocol::accept`]);
//! on a TLS listener it comes before the ClientHello, so Pingora's pre-TLS
//! callback reads it ([`ProxyProtocol::accept_before_tls`]) and the gate
//! claims it after the handshake ([`ProxyProtocol::claim`]). The addresses
//! read are kept by the connection's address pair until it closes
//! ([`ProxiedSource`]); the proxy looks its requests' peer up there. One
//! read before a handshake that then fails is never claimed: it is swept
//! once older than any handshake may last.

use super::header_deadline::{ConnectionKey, ConnectionMap};
use crate::config::Listener;
use crate::telemetry::metrics::Metrics;
use ipnet::IpNet;
use pingora::protocols::Peek;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header's first bytes.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// How many bytes are peeked to tell a PROXY header from anything else: no
/// HTTP request or TLS record is shorter.
const SNIFF_LEN: usize = 6;
/// The longest v1 header, CRLF included.
const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: signature, version and command, family,
/// length.
const V2_FIXED_LEN: usize = 16;

/// Why a connection was refused: the `reason` label and the log line.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A PROXY header from a source not in `trusted`.
    Untrusted,
    /// A trusted source sent no PROXY header.
    Missing,
    /// A PROXY header that does not parse, or the connection closed in it.
    Invalid(String),
    /// No header within the header timeout.
    Timeout,
    /// The connection closed (or failed) before its first bytes: not
    /// counted, like any client that leaves.
    Closed,
}

impl Refusal {
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Untrusted => "proxy_protocol_untrusted",
            Refusal::Missing => "proxy_protocol_missing",
            Refusal::Invalid(_) => "proxy_protocol_invalid",
            Refusal::Timeout => "header_timeout",
            Refusal::Closed => "closed",
        }
    }

    fn message(&self) -> String {
        match self {
            Refusal::Untrusted => {
                "a PROXY protocol header from a source outside listeners[].proxy_protocol.trusted"
                    .to_string()
            }
            Refusal::Missing => {
                "no PROXY protocol header from a trusted source (listeners[].proxy_protocol)"
                    .to_string()
            }
            Refusal::Invalid(why) => format!("a malformed PROXY protocol header: {why}"),
            Refusal::Timeout => "no PROXY protocol header within server.header_timeout".to_string(),
            Refusal::Closed => "the connection closed before its first bytes".to_string(),
        }
    }
}

/// An unclaimed source older than this belongs to a TLS handshake that
/// failed (Pingora bounds a handshake at 60 s).
const UNCLAIMED_TTL: Duration = Duration::from_secs(120);
/// Unclaimed sources are swept every this many reads before TLS.
const SWEEP_EVERY: u64 = 1024;

struct Source {
    id: u64,
    addr: SocketAddr,
    /// When read before a TLS handshake and not yet claimed by the gate.
    unclaimed_since: Option<Instant>,
}

/// One listener's PROXY protocol settings.
struct ProxiedListener {
    address: SocketAddr,
    trusted: Vec<IpNet>,
    tls: bool,
}

/// The listeners that take PROXY protocol, and the sources their
/// connections' headers named.
pub struct ProxyProtocol {
    listeners: Vec<ProxiedListener>,
    sources: ConnectionMap<Source>,
    next_id: AtomicU64,
    header_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl ProxyProtocol {
    pub fn new(listeners: &[Listener], header_timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            listeners: listeners
                .iter()
                .filter_map(|l| {
                    Some(ProxiedListener {
                        address: l.address,
                        trusted: l.proxy_protocol.clone()?,
                        tls: l.tls.is_some(),
                    })
                })
                .collect(),
            sources: ConnectionMap::default(),
            next_id: AtomicU64::new(0),
            header_timeout,
            metrics,
        }
    }

    /// The listener a connection reached at `local`, if it takes PROXY
    /// protocol.
    fn listener_at(&self, local: SocketAddr) -> Option<&ProxiedListener> {
        self.listeners.iter().find(|l| {
            l.address.port() == local.port()
                && (l.address.ip() == local.ip() || l.address.ip().is_unspecified())
        })
    }

    /// The source a PROXY header named for the connection `key`, if any.
    pub fn source(&self, key: ConnectionKey) -> Option<SocketAddr> {
        if self.listeners.is_empty() {
            return None;
        }
        self.sources.get(&key).map(|source| source.addr)
    }

    /// A new connection `key` reached the gate on `stream`: on a plain
    /// listener that takes PROXY protocol, read its header; on a TLS one,
    /// claim the header read before the handshake. `Ok(None)`: nothing to
    /// keep (no PROXY protocol here, a direct client, or a health check). A
    /// refusal is logged and counted; the caller closes the connection.
    pub async fn accept<S>(
        self: &Arc<Self>,
        stream: &mut S,
        key: ConnectionKey,
    ) -> Result<Option<ProxiedSource>, Refusal>
    where
        S: AsyncRead + Peek + Unpin + Send + ?Sized,
    {
        match self.listener_at(key.1) {
            None => Ok(None),
            Some(listener) if listener.tls => Ok(self.claim(key)),
            Some(_) => {
                let addr = self.read(stream, key).await?;
                Ok(addr.map(|addr| self.keep(key, addr)))
            }
        }
    }

    /// Read the PROXY header before the TLS handshake of connection `key`,
    /// if its listener takes one; kept for the gate to claim.
    pub async fn accept_before_tls<S>(
        &self,
        stream: &mut S,
        key: ConnectionKey,
    ) -> Result<(), Refusal>
    where
        S: AsyncRead + Peek + Unpin + Send + ?Sized,
    {
        if self.listener_at(key.1).is_none() {
            return Ok(());
        }
        if let Some(addr) = self.read(stream, key).await? {
            let id = self.insert(key, addr, Some(Instant::now()));
            if id % SWEEP_EVERY == SWEEP_EVERY - 1 {
                self.sources.retain(|_, source| {
                    source
                        .unclaimed_since
                        .is_none_or(|since| since.elapsed() < UNCLAIMED_TTL)
                });
            }
        }
        Ok(())
    }

    /// Claim the source read before connection `key`'s TLS handshake.
    fn claim(self: &Arc<Self>, key: ConnectionKey) -> Option<ProxiedSource> {
        let mut source = self.sources.get_mut(&key)?;
        source.unclaimed_since.take()?;
        Some(ProxiedSource {
            registry: self.clone(),
            key,
            id: source.id,
        })
    }

    fn insert(
        &self,
        key: ConnectionKey,
        addr: SocketAddr,
        unclaimed_since: Option<Instant>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.sources.insert(
            key,
            Source {
                id,
                addr,
                unclaimed_since,
            },
        );
        id
    }

    fn keep(self: &Arc<Self>, key: ConnectionKey, addr: SocketAddr) -> ProxiedSource {
        let id = self.insert(key, addr, None);
        ProxiedSource {
            registry: self.clone(),
            key,
            id,
        }
    }

    /// Read connection `key`'s PROXY header (within the header timeout),
    /// logging and counting a refusal.
    async fn read<S>(
        &self,
        stream: &mut S,
        key: ConnectionKey,
    ) -> Result<Option<SocketAddr>, Refusal>
    where
        S: AsyncRead + Peek + Unpin + Send + ?Sized,
    {
        let (peer, local) = key;
        let trusted = self
            .listener_at(local)
            .is_some_and(|l| l.trusted.iter().any(|net| net.contains(&peer.ip())));
        let read = tokio::time::timeout(self.header_timeout, read_header(stream, trusted));
        match read.await.unwrap_or(Err(Refusal::Timeout)) {
            Ok(addr) => Ok(addr),
            Err(Refusal::Closed) => Err(Refusal::Closed),
            Err(refusal) => {
                tracing::warn!(%peer, %local, "connection refused: {}", refusal.message());
                self.metrics
                    .client_connections_closed
                    .with_label_values(&[refusal.label()])
                    .inc();
                Err(refusal)
            }
        }
    }
}

/// A connection's PROXY source, kept until the connection closes.
pub struct ProxiedSource {
    registry: Arc<ProxyProtocol>,
    key: ConnectionKey,
    id: u64,
}

impl Drop for ProxiedSource {
    fn drop(&mut self) {
        self.registry
            .sources
            .remove_if(&self.key, |_, source| source.id == self.id);
    }
}

/// Read a PROXY header from a `trusted` source's stream (or check that an
/// untrusted one sends none): the source address it names, `None` for a
/// health check or an untrusted source's plain connection.
async fn read_header<S>(stream: &mut S, trusted: bool) -> Result<Option<SocketAddr>, Refusal>
where
    S: AsyncRead + Peek + Unpin + Send + ?Sized,
{
    let mut sniff = [0u8; SNIFF_LEN];
    let peeked = stream
        .try_peek(&mut sniff)
        .await
        .map_err(|_| Refusal::Closed)?;
    if !peeked {
        return Err(Refusal::Invalid("the connection cannot be peeked".into()));
    }
    let is_v1 = sniff == *V1_PREFIX;
    let is_v2 = sniff == V2_SIGNATURE[..SNIFF_LEN];
    match (is_v1 || is_v2, trusted) {
        (false, false) => return Ok(None),
        (true, false) => return Err(Refusal::Untrusted),
        (false, true) => return Err(Refusal::Missing),
        (true, true) => {}
    }
    let invalid = |e: std::io::Error| Refusal::Invalid(e.to_string());
    if is_v2 {
        let mut header = vec![0u8; V2_FIXED_LEN];
        stream.read_exact(&mut header).await.map_err(invalid)?;
        let length = u16::from_be_bytes([header[14], header[15]]) as usize;
        header.resize(V2_FIXED_LEN + length, 0);
        stream
            .read_exact(&mut header[V2_FIXED_LEN..])
            .await
            .map_err(invalid)?;
        let parsed = ppp::v2::Header::try_from(header.as_slice())
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        return Ok(match (parsed.command, parsed.addresses) {
            (ppp::v2::Command::Local, _) => None,
            (_, ppp::v2::Addresses::IPv4(a)) => Some((a.source_address, a.source_port).into()),
            (_, ppp::v2::Addresses::IPv6(a)) => Some((a.source_address, a.source_port).into()),
            _ => None,
        });
    }
    // v1: up to CRLF, a byte at a time so nothing after it is consumed.
    let mut header = Vec::with_capacity(V1_MAX_LEN);
    while !header.ends_with(b"\r\n") {
        if header.len() == V1_MAX_LEN {
            return Err(Refusal::Invalid("a v1 header longer than 107 bytes".into()));
        }
        header.push(stream.read_u8().await.map_err(invalid)?);
    }
    let parsed = ppp::v1::Header::try_from(header.as_slice())
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
    Ok(match parsed.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
        ppp::v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
        ppp::v1::Addresses::Unknown => None,
    })
}

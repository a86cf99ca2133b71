//! A listener's `min_version`, checked on the negotiated connection.
//!
//! Pingora 0.9's rustls listener builds its `ServerConfig` itself with TLS
//! 1.2 and 1.3 both enabled, and takes no custom one, so the minimum cannot
//! be set in rustls. It is applied twice instead: the certificate resolver
//! ([`SniResolver`](super::sni::SniResolver)) refuses, in the handshake, a
//! client hello that offers no TLS 1.3 cipher suite (OpenSSL, Go, browsers
//! and curl limited to 1.2 are refused there); and [`VersionCheck`] marks
//! any connection that still negotiated an older version (a client that
//! lists TLS 1.3 suites without offering the version, as rustls limited to
//! 1.2 does) so that the proxy answers its requests with 426 (closing an
//! HTTP/1.1 connection after the first): no request is ever proxied below
//! the minimum.

use crate::config::TlsVersion;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use std::any::Any;
use std::sync::Arc;

/// Marks connections below the listener's minimum TLS version.
pub struct VersionCheck {
    pub min_version: TlsVersion,
}

/// The mark on a connection that negotiated a TLS version below its
/// listener's minimum (kept in Pingora's `SslDigest` extension).
#[derive(Debug)]
pub struct BelowMinVersion {
    /// What the connection negotiated, e.g. `TLSv1_2`.
    pub negotiated: &'static str,
    pub min_version: TlsVersion,
}

impl VersionCheck {
    /// Whether a negotiated version (as rustls names it) meets the minimum.
    fn allows(&self, negotiated: Option<&str>) -> bool {
        match self.min_version {
            TlsVersion::Tls12 => true,
            TlsVersion::Tls13 => negotiated == rustls::ProtocolVersion::TLSv1_3.as_str(),
        }
    }
}

#[async_trait]
impl TlsAccept for VersionCheck {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        if self.allows(tls.version()) {
            return None;
        }
        Some(Arc::new(BelowMinVersion {
            negotiated: tls.version().unwrap_or("unknown"),
            min_version: self.min_version,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls13_meets_a_tls13_minimum() {
        let strict = VersionCheck {
            min_version: TlsVersion::Tls13,
        };
        assert!(strict.allows(rustls::ProtocolVersion::TLSv1_3.as_str()));
        assert!(!strict.allows(rustls::ProtocolVersion::TLSv1_2.as_str()));
        assert!(!strict.allows(None));
        let default = VersionCheck {
            min_version: TlsVersion::Tls12,
        };
        assert!(default.allows(rustls::ProtocolVersion::TLSv1_2.as_str()));
    }
}

//! TLS to backends: the Pingora peer for one backend of a pool, plain
//! (HTTP/1.1, or h2c: HTTP/2 with prior knowledge) or with the pool's `tls`
//! settings (server name, trusted CAs, verification, client certificate,
//! ALPN), built from material the configuration already loaded. The proxy,
//! the health checks and the load polls all connect through it, so they
//! reach a backend alike.

use crate::config::{UpstreamAlpn, UpstreamTls};
use pingora::prelude::HttpPeer;
use pingora::protocols::ALPN;
use pingora::{Error, ErrorType};
use std::net::SocketAddr;

/// A peer for the backend at `addr`, over TLS when `tls` is set; in the
/// clear, speaking h2c when `h2c` is set (Pingora speaks HTTP/2 without
/// TLS to a peer whose only offer is h2).
pub fn backend_peer(addr: SocketAddr, tls: Option<&UpstreamTls>, h2c: bool) -> HttpPeer {
    let Some(tls) = tls else {
        let mut peer = HttpPeer::new(addr, false, String::new());
        if h2c {
            peer.options.alpn = ALPN::H2;
        }
        return peer;
    };
    // Without a configured name the certificate must name the IP address
    // (rustls sends no SNI for an address).
    let server_name = match &tls.sni {
        Some(name) => name.clone(),
        None => addr.ip().to_string(),
    };
    let mut peer = HttpPeer::new(addr, true, server_name);
    peer.options.verify_cert = tls.verify;
    peer.options.verify_hostname = tls.verify;
    peer.options.ca = tls.ca.clone();
    peer.client_cert_key = tls.client_cert.clone();
    peer.options.alpn = alpn(tls.alpn);
    peer.group_key = tls.connection_group;
    peer
}

fn alpn(offered: UpstreamAlpn) -> ALPN {
    match offered {
        UpstreamAlpn::Http1 => ALPN::H1,
        UpstreamAlpn::H2 => ALPN::H2,
        UpstreamAlpn::H2OrHttp1 => ALPN::H2H1,
    }
}

/// Why connecting to a backend failed in its TLS handshake, as a short
/// label; `None` when the failure was not TLS (a refused connection, a
/// timeout). The backend refusing Ballast's client certificate shows up
/// as an alert, which TLS 1.3 delivers after the handshake, on the first
/// read.
pub fn tls_failure(error: &Error) -> Option<&'static str> {
    let text = error.to_string();
    let tls_type = matches!(
        error.etype(),
        ErrorType::TLSHandshakeFailure | ErrorType::InvalidCert | ErrorType::TLSWantX509Lookup
    );
    if !tls_type && !text.contains("received fatal alert") {
        return None;
    }
    // rustls names a certificate error in prose or by its variant,
    // depending on the error; both are looked for.
    let reasons = [
        ("unknownissuer", "untrusted"),
        // Signed by a CA of the same name as a trusted one, but not by it.
        ("badsignature", "untrusted"),
        ("notvalidforname", "wrong_name"),
        ("not valid for name", "wrong_name"),
        ("notvalidyet", "not_yet_valid"),
        ("not valid yet", "not_yet_valid"),
        ("expired", "expired"),
        ("certificaterequired", "client_cert_refused"),
        ("badcertificate", "client_cert_refused"),
        ("unknownca", "client_cert_refused"),
        ("noapplicationprotocol", "alpn"),
    ];
    let text = text.to_ascii_lowercase();
    Some(
        reasons
            .iter()
            .find(|(needle, _)| text.contains(needle))
            .map_or("handshake", |(_, reason)| reason),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(etype: ErrorType, text: &str) -> Option<&'static str> {
        tls_failure(&Error::explain(etype, text.to_string()))
    }

    #[test]
    fn tls_failures_are_told_apart_by_reason() {
        let handshake = ErrorType::TLSHandshakeFailure;
        let cases = [
            ("invalid peer certificate: UnknownIssuer", "untrusted"),
            ("invalid peer certificate: BadSignature", "untrusted"),
            (
                "invalid peer certificate: certificate not valid for name \"a.test\"",
                "wrong_name",
            ),
            (
                "invalid peer certificate: certificate expired: verification time 1, but certificate is not valid after 0",
                "expired",
            ),
            ("invalid peer certificate: NotValidYet", "not_yet_valid"),
            ("peer is incompatible", "handshake"),
        ];
        for (text, reason) in cases {
            assert_eq!(failure(handshake.clone(), text), Some(reason), "{text}");
        }
        assert_eq!(
            failure(
                ErrorType::ReadError,
                "received fatal alert: CertificateRequired"
            ),
            Some("client_cert_refused")
        );
        assert_eq!(failure(ErrorType::ConnectRefused, "refused"), None);
        assert_eq!(failure(ErrorType::ReadError, "connection reset"), None);
    }
}

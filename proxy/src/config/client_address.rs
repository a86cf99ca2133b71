//! `client_address`: which forwarding proxies are believed about a
//! request's client, and the walk that finds it.
//!
//! A request from a trusted proxy carries the client's address in a header
//! each proxy appended its own peer to (`X-Forwarded-For: client, proxy1,
//! proxy2`). The walk reads it right to left, starting from the peer:
//! while the address in hand is a trusted proxy, the entry to its left is
//! the address that proxy received the request from. The first untrusted
//! address is the client (entries further left were written by the client
//! itself, and are never believed). When every entry is trusted, the
//! leftmost is the client. A malformed entry (not an IP address, with or
//! without a port) stops the walk: the last trusted hop is the client. This
//! is nginx's `real_ip_recursive on` with `set_real_ip_from`.

use http::{HeaderMap, HeaderName};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

pub const DEFAULT_CLIENT_ADDRESS_HEADER: &str = "x-forwarded-for";

/// Compiled `client_address`.
#[derive(Debug, Clone)]
pub struct ClientAddressRule {
    pub trusted_proxies: Vec<IpNet>,
    pub header: HeaderName,
}

impl ClientAddressRule {
    fn trusts(&self, address: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// The client of a request received from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        // Repeated header lines are one list, in order (RFC 9110 §5.3).
        for line in headers.get_all(&self.header).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for entry in line.rsplit(',') {
                if !self.trusts(client) {
                    return client;
                }
                match parse_entry(entry) {
                    Some(address) => client = address,
                    None => return client,
                }
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an IP address, or one with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> ClientAddressRule {
        ClientAddressRule {
            trusted_proxies: vec![
                "10.0.0.0/8".parse().unwrap(),
                "2001:db8::/32".parse().unwrap(),
            ],
            header: HeaderName::from_static(DEFAULT_CLIENT_ADDRESS_HEADER),
        }
    }

    fn client(peer: &str, lines: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append("x-forwarded-for", line.parse().unwrap());
        }
        rule().client(peer.parse().unwrap(), &headers).to_string()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(client("192.0.2.9", &["198.51.100.1"]), "192.0.2.9");
    }

    #[test]
    fn the_walk_skips_trusted_proxies_from_the_right() {
        assert_eq!(client("10.0.0.1", &["198.51.100.1"]), "198.51.100.1");
        assert_eq!(
            client("10.0.0.1", &["203.0.113.66, 198.51.100.1, 10.1.1.1"]),
            "198.51.100.1",
            "the spoofed leftmost entry is never reached"
        );
        assert_eq!(
            client("10.0.0.1", &["203.0.113.66", "198.51.100.1, 10.1.1.1"]),
            "198.51.100.1",
            "repeated lines are one list"
        );
    }

    #[test]
    fn all_trusted_gives_the_leftmost_and_no_header_the_peer() {
        assert_eq!(client("10.0.0.1", &["10.2.2.2, 10.1.1.1"]), "10.2.2.2");
        assert_eq!(client("10.0.0.1", &[]), "10.0.0.1");
    }

    #[test]
    fn a_malformed_entry_stops_at_the_last_trusted_hop() {
        assert_eq!(
            client("10.0.0.1", &["198.51.100.1, unknown, 10.1.1.1"]),
            "10.1.1.1"
        );
        assert_eq!(client("10.0.0.1", &["198.51.100.1,"]), "10.0.0.1");
    }

    #[test]
    fn a_bad_range_or_header_is_an_error_with_its_path() {
        let yaml = r#"
listeners: [{address: "127.0.0.1:1"}]
pools: {p: {backends: [{addr: "127.0.0.1:2"}]}}
routes: [{pool: p}]
client_address: {trusted_proxies: ["10.0.0.0/8", "10.0.0.0/33"], header: "bad header"}
"#;
        let errors = crate::config::load_str(yaml, std::path::Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains(r#"client_address.trusted_proxies[1]: invalid CIDR "10.0.0.0/33""#),
            "{errors}"
        );
        assert!(
            errors.contains(r#"client_address.header: invalid header name "bad header""#),
            "{errors}"
        );
    }

    #[test]
    fn entries_may_carry_ports_and_ipv6() {
        assert_eq!(client("10.0.0.1", &["198.51.100.1:4711"]), "198.51.100.1");
        assert_eq!(
            client("10.0.0.1", &["[2001:db9::1]:443, 2001:db8::5"]),
            "2001:db9::1"
        );
    }
}

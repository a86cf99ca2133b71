//! Where a client is, and which regions may serve it.
//!
//! The client's region comes from the configured rules, in order: a header
//! (believed only when the connection's peer is a trusted address, so a
//! client cannot pick its own region), the client address (the peer's, or
//! the one trusted proxies forwarded: `client_address`) against a CIDR table
//! (IPv4 and IPv6; longest prefix wins), a default. Each region's plan lists the
//! regions to prefer, in order: its own, then its fallbacks (network
//! proximity). A fenced region's plan holds only its allowed regions, and
//! nothing outside the plan may ever serve it.

use crate::config::{Geo, RegionPlan, RegionRule};
use http::HeaderMap;
use std::net::IpAddr;

/// The client's region by the first rule that yields one.
pub fn client_region<'g>(
    geo: &'g Geo,
    peer: Option<IpAddr>,
    client: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<&'g str> {
    geo.rules.iter().find_map(|rule| match rule {
        RegionRule::Header {
            name,
            trusted_peers,
        } => {
            let peer = peer?;
            if !trusted_peers.iter().any(|net| net.contains(&peer)) {
                return None;
            }
            let claimed = headers.get(name)?.to_str().ok()?.trim();
            geo.plans
                .get_key_value(claimed)
                .map(|(name, _)| name.as_str())
        }
        RegionRule::Cidr(table) => {
            let client = client?;
            table
                .iter()
                .find(|(net, _)| net.contains(&client))
                .map(|(_, region)| region.as_str())
        }
        RegionRule::Default(region) => Some(region.as_str()),
    })
}

/// The plan for a client, if geo rules place it in a region.
pub fn plan_for<'g>(
    geo: &'g Geo,
    peer: Option<IpAddr>,
    client: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<(&'g str, &'g RegionPlan)> {
    let region = client_region(geo, peer, client, headers)?;
    geo.plans.get(region).map(|plan| (region, plan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn geo(rules: &str) -> Geo {
        let yaml = format!(
            r#"
listeners: [{{address: "127.0.0.1:1"}}]
regions:
  us-east: {{fallback: [us-west, eu-west]}}
  us-west: {{fallback: [us-east]}}
  eu-west: {{fallback: [eu-central, us-east]}}
  eu-central: {{fallback: [eu-west]}}
geo:
{rules}
  residency: [{{clients: [eu-west, eu-central], allowed: [eu-west, eu-central]}}]
pools:
  p:
    backends:
      - {{addr: "10.0.0.1:80", region: us-east}}
      - {{addr: "10.0.0.2:80", region: us-west}}
      - {{addr: "10.0.0.3:80", region: eu-west}}
      - {{addr: "10.0.0.4:80", region: eu-central}}
routes: [{{pool: p}}]
"#
        );
        crate::config::load_str(&yaml, Path::new("."))
            .unwrap()
            .geo
            .unwrap()
    }

    /// The region of a client that is its connection's peer.
    fn region_of<'g>(g: &'g Geo, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<&'g str> {
        client_region(g, peer, peer, headers)
    }

    fn headers(region: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-client-region", region.parse().unwrap());
        h
    }

    const RULES: &str = r#"  client_region:
    - {header: X-Client-Region, trusted_peers: ["10.9.0.0/16", "::1"]}
    - {cidr: {"192.168.0.0/16": us-west, "192.168.7.0/24": eu-west, "2001:db8::/32": eu-central}}
    - {default: us-east}"#;

    #[test]
    fn header_only_from_trusted_peers() {
        let g = geo(RULES);
        let trusted: IpAddr = "10.9.1.2".parse().unwrap();
        let untrusted: IpAddr = "192.168.7.9".parse().unwrap();
        assert_eq!(
            region_of(&g, Some(trusted), &headers("eu-central")),
            Some("eu-central")
        );
        assert_eq!(
            region_of(&g, Some("::1".parse().unwrap()), &headers("us-west")),
            Some("us-west")
        );
        assert_eq!(
            region_of(&g, Some(untrusted), &headers("us-east")),
            Some("eu-west"),
            "a spoofed header from an untrusted peer is ignored"
        );
        assert_eq!(
            region_of(&g, Some(trusted), &headers("mars")),
            Some("us-east"),
            "unknown region ignored"
        );
    }

    #[test]
    fn longest_prefix_wins_for_v4_and_v6_then_default() {
        let g = geo(RULES);
        let h = HeaderMap::new();
        assert_eq!(
            region_of(&g, Some("192.168.7.1".parse().unwrap()), &h),
            Some("eu-west")
        );
        assert_eq!(
            region_of(&g, Some("192.168.8.1".parse().unwrap()), &h),
            Some("us-west")
        );
        assert_eq!(
            region_of(&g, Some("2001:db8::5".parse().unwrap()), &h),
            Some("eu-central")
        );
        assert_eq!(
            region_of(&g, Some("8.8.8.8".parse().unwrap()), &h),
            Some("us-east")
        );
        assert_eq!(region_of(&g, None, &h), Some("us-east"));
    }

    #[test]
    fn the_header_trusts_the_peer_and_cidr_rules_place_the_client() {
        let g = geo(RULES);
        let proxy: IpAddr = "10.9.1.2".parse().unwrap();
        let client: IpAddr = "192.168.7.1".parse().unwrap();
        assert_eq!(
            client_region(&g, Some(proxy), Some(client), &HeaderMap::new()),
            Some("eu-west"),
            "placed by the forwarded client, not the proxy"
        );
        assert_eq!(
            client_region(&g, Some(client), Some(proxy), &headers("us-west")),
            Some("us-east"),
            "the header is believed from a trusted peer only"
        );
        assert_eq!(
            client_region(&g, Some(proxy), Some(client), &headers("us-west")),
            Some("us-west")
        );
    }

    #[test]
    fn plans_follow_fallbacks_and_fences() {
        let g = geo(RULES);
        let plan = |r: &str| g.plans[r].clone();
        assert_eq!(plan("us-east").order, vec!["us-east", "us-west", "eu-west"]);
        assert!(!plan("us-east").fenced);
        assert_eq!(
            plan("eu-west").order,
            vec!["eu-west", "eu-central"],
            "us-east fallback dropped by the fence"
        );
        assert!(plan("eu-west").fenced);
        assert_eq!(plan("eu-central").order, vec!["eu-central", "eu-west"]);
    }
}

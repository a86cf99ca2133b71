//! The client's address behind proxies: `client_address` walks
//! `X-Forwarded-For` from a trusted proxy and places the client by the
//! address found (geo CIDR rules, the access log), while the header from
//! any other peer is ignored. Clients connect from distinct loopback
//! addresses (127.0.0.2 is the trusted proxy, 127.0.0.1 is not).

use crate::common::{origin_named, LoopbackProxy};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

const TRUSTED_PROXY: [u8; 4] = [127, 0, 0, 2];
const OTHER_PEER: [u8; 4] = [127, 0, 0, 1];

/// Two regions: clients in 198.51.100.0/24 are in eu-west (the backend
/// named `eu`), everyone else in us-east (`us`).
async fn two_region_proxy(
    extra: &str,
) -> (LoopbackProxy, [ballast_load_tests::origin::OriginHandle; 2]) {
    let us = origin_named("us").await;
    let eu = origin_named("eu").await;
    let (us_addr, eu_addr) = (us.addr, eu.addr);
    let extra = extra.to_string();
    let proxy = LoopbackProxy::start(move |listen, admin| {
        format!(
            r#"
listeners: [{{address: "{listen}"{extra}}}]
admin: {{address: "{admin}"}}
server: {{threads: 1, drain_timeout: 1s}}
regions:
  us-east: {{fallback: [eu-west]}}
  eu-west: {{fallback: [us-east]}}
geo:
  client_region: [{{cidr: {{"198.51.100.0/24": eu-west}}}}, {{default: us-east}}]
  residency: [{{clients: [eu-west], allowed: [eu-west]}}]
client_address: {{trusted_proxies: ["127.0.0.2", "127.0.0.3"]}}
pools:
  p:
    backends: [{{addr: "{us_addr}", region: us-east}}, {{addr: "{eu_addr}", region: eu-west}}]
routes: [{{pool: p}}]
"#
        )
    })
    .await;
    (proxy, [us, eu])
}

/// Connect to `to` from the loopback address `from`, write `bytes` and read
/// until the server closes (or 3 s pass).
pub async fn exchange_from(from: impl Into<IpAddr>, to: SocketAddr, bytes: &[u8]) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from.into(), 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// A GET of the origin's `/headers` carrying `X-Forwarded-For: forwarded`.
fn get_forwarded(forwarded: &str) -> Vec<u8> {
    format!(
        "GET /headers HTTP/1.1\r\nHost: app\r\nConnection: close\r\nX-Forwarded-For: {forwarded}\r\n\r\n"
    )
    .into_bytes()
}

/// The origin that answered (`x-origin`).
fn origin_of(answer: &str) -> &str {
    answer
        .lines()
        .find_map(|l| l.strip_prefix("x-origin: "))
        .unwrap_or_else(|| panic!("no x-origin in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_from_a_trusted_proxy_places_the_client_and_is_ignored_from_others() {
    let (proxy, _origins) = two_region_proxy("").await;
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &get_forwarded("198.51.100.7")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        origin_of(&answer),
        "eu",
        "placed in eu-west by the forwarded address"
    );
    assert!(
        answer.contains("x-forwarded-for: 198.51.100.7, 127.0.0.2\n"),
        "upstream, the address the connection came from is appended: {answer}"
    );

    let answer = exchange_from(OTHER_PEER, proxy.listen, &get_forwarded("198.51.100.7")).await;
    assert_eq!(
        origin_of(&answer),
        "us",
        "an untrusted peer's header is ignored"
    );
    assert!(
        answer.contains("x-forwarded-for: 198.51.100.7, 127.0.0.1\n"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_leftmost_entries_are_skipped_over_several_trusted_hops() {
    let (proxy, _origins) = two_region_proxy("").await;
    // The client (203.0.113.5) claimed to be in eu-west; the trusted hops
    // recorded who it really is.
    let spoofed = "198.51.100.66, 203.0.113.5, 127.0.0.3";
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &get_forwarded(spoofed)).await;
    assert_eq!(origin_of(&answer), "us", "{answer}");
    let honest = "203.0.113.5, 198.51.100.7, 127.0.0.3";
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &get_forwarded(honest)).await;
    assert_eq!(origin_of(&answer), "eu", "{answer}");
    // A malformed entry stops the walk at the last trusted hop (127.0.0.3,
    // not in eu-west's range).
    let malformed = "198.51.100.7, unknown, 127.0.0.3";
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &get_forwarded(malformed)).await;
    assert_eq!(origin_of(&answer), "us", "{answer}");
}

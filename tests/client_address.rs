//! The client's address behind proxies and load balancers: `client_address`
//! walks `X-Forwarded-For` from a trusted proxy and places the client by the
//! address found (geo CIDR rules, the access log), while the header from
//! any other peer is ignored; a listener's `proxy_protocol` takes the
//! client's address from a PROXY v1 or v2 header sent by a trusted load
//! balancer, and refuses one from anyone else, on plain and TLS listeners
//! (the header precedes the ClientHello). Clients connect from
//! distinct loopback addresses (127.0.0.2 is the trusted proxy and
//! balancer, 127.0.0.1 is not).

use crate::common::{metric, metrics_text, origin_named, LoopbackProxy};
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

/// A PROXY v2 header: a TCP connection from `source` (IPv4) to 192.0.2.1:80.
fn proxy_v2(source: [u8; 4], port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0x00, 12]);
    header.extend_from_slice(&source);
    header.extend_from_slice(&[192, 0, 2, 1]);
    header.extend_from_slice(&port.to_be_bytes());
    header.extend_from_slice(&80u16.to_be_bytes());
    header
}

const BEHIND_A_BALANCER: &str = r#", proxy_protocol: {trusted: ["127.0.0.2"]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_from_a_trusted_balancer_sets_the_client_address() {
    let (proxy, _origins) = two_region_proxy(BEHIND_A_BALANCER).await;
    let request = b"GET /headers HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

    let mut v1 = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec();
    v1.extend_from_slice(request);
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &v1).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(origin_of(&answer), "eu", "placed by the PROXY v1 source");
    assert!(
        answer.contains("x-forwarded-for: 198.51.100.7\n"),
        "{answer}"
    );

    let mut v2 = proxy_v2([198, 51, 100, 8], 40001);
    v2.extend_from_slice(request);
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &v2).await;
    assert_eq!(
        origin_of(&answer),
        "eu",
        "placed by the PROXY v2 source: {answer}"
    );
    assert!(
        answer.contains("x-forwarded-for: 198.51.100.8\n"),
        "{answer}"
    );

    // The balancer's health check (UNKNOWN) is the balancer's own connection.
    let mut unknown = b"PROXY UNKNOWN\r\n".to_vec();
    unknown.extend_from_slice(request);
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, &unknown).await;
    assert!(answer.contains("x-forwarded-for: 127.0.0.2\n"), "{answer}");

    // A direct client of the same listener is served as itself.
    let answer = exchange_from(OTHER_PEER, proxy.listen, request).await;
    assert_eq!(origin_of(&answer), "us", "{answer}");
    assert!(answer.contains("x-forwarded-for: 127.0.0.1\n"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_from_an_untrusted_source_or_missing_from_a_trusted_one_is_refused() {
    let (proxy, _origins) = two_region_proxy(BEHIND_A_BALANCER).await;
    let request = b"GET /headers HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";

    let mut spoofed = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 80\r\n".to_vec();
    spoofed.extend_from_slice(request);
    let answer = exchange_from(OTHER_PEER, proxy.listen, &spoofed).await;
    assert_eq!(answer, "", "closed unanswered");
    let mut spoofed_v2 = proxy_v2([198, 51, 100, 8], 40001);
    spoofed_v2.extend_from_slice(request);
    assert_eq!(
        exchange_from(OTHER_PEER, proxy.listen, &spoofed_v2).await,
        ""
    );

    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, request).await;
    assert_eq!(answer, "", "a trusted balancer must send the header");
    let answer = exchange_from(TRUSTED_PROXY, proxy.listen, b"PROXY TCP4 nonsense\r\n").await;
    assert_eq!(answer, "");

    let metrics = metrics_text(proxy.admin).await;
    let closed = |reason: &str| {
        metric(
            &metrics,
            "ballast_client_connections_closed_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert_eq!(closed("proxy_protocol_untrusted"), 2.0, "{metrics}");
    assert_eq!(closed("proxy_protocol_missing"), 1.0, "{metrics}");
    assert_eq!(closed("proxy_protocol_invalid"), 1.0, "{metrics}");
}

#[test]
fn check_refuses_a_bad_or_empty_trusted_list() {
    let yaml = r#"
listeners:
  - {address: "127.0.0.1:8080", proxy_protocol: {trusted: ["10.0.0.0/8", "10.0.0.300"]}}
  - {address: "127.0.0.1:8081", proxy_protocol: {trusted: []}}
pools: {p: {backends: [{addr: "127.0.0.1:2"}]}}
routes: [{pool: p}]
"#;
    let errors = ballast::config::load_str(yaml, std::path::Path::new("."))
        .unwrap_err()
        .to_string();
    for expected in [
        r#"listeners[0].proxy_protocol.trusted[1]: invalid CIDR "10.0.0.300""#,
        "listeners[1].proxy_protocol.trusted: list the load balancers",
    ] {
        assert!(errors.contains(expected), "{expected} in {errors}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_on_a_tls_listener_precedes_the_handshake() {
    use ballast::tls::devcert::{DevCa, LeafUse};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let leaf = ca
        .issue(&["app.test".to_string()], LeafUse::Server)
        .unwrap();
    let (cert, key) = (dir.path().join("app.crt"), dir.path().join("app.key"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    let tls = format!(
        r#", proxy_protocol: {{trusted: ["127.0.0.2"]}}, tls: {{cert: "{}", key: "{}", http2: false}}"#,
        cert.display(),
        key.display()
    );
    let (proxy, _origins) = two_region_proxy(&tls).await;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));

    // The PROXY header, then a TLS handshake and a request on the same socket.
    let exchange = |from: [u8; 4], header: Vec<u8>| {
        let connector = connector.clone();
        let listen = proxy.listen;
        async move {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(from.into(), 0)).unwrap();
            let mut tcp = socket.connect(listen).await.unwrap();
            tcp.write_all(&header).await.unwrap();
            let name = ServerName::try_from("app.test").unwrap();
            let handshake =
                tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp));
            let mut tls = handshake.await.ok()?.ok()?;
            let request = b"GET /headers HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
            tls.write_all(request).await.ok()?;
            let mut answer = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut answer)).await;
            Some(String::from_utf8_lossy(&answer).into_owned())
        }
    };

    let answer = exchange(TRUSTED_PROXY, proxy_v2([198, 51, 100, 9], 40002))
        .await
        .expect("a handshake after the PROXY header");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        origin_of(&answer),
        "eu",
        "placed by the PROXY source: {answer}"
    );
    assert!(
        answer.contains("x-forwarded-for: 198.51.100.9\n"),
        "{answer}"
    );
    assert!(answer.contains("x-forwarded-proto: https\n"), "{answer}");

    let v1 = b"PROXY TCP4 198.51.100.7 192.0.2.1 40000 443\r\n".to_vec();
    let refused = exchange(OTHER_PEER, v1).await;
    assert!(
        refused.is_none(),
        "an untrusted source's header ends the connection: {refused:?}"
    );
    let answer = exchange(OTHER_PEER, Vec::new())
        .await
        .expect("a direct TLS client");
    assert_eq!(origin_of(&answer), "us", "{answer}");

    let metrics = metrics_text(proxy.admin).await;
    assert_eq!(
        metric(
            &metrics,
            "ballast_client_connections_closed_total",
            &["reason=\"proxy_protocol_untrusted\""]
        ),
        1.0,
        "{metrics}"
    );
}

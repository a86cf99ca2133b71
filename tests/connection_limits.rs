//! Client connections that hold resources without making progress: idle
//! HTTP/2 connections, request headers dribbled byte by byte, silent TLS
//! clients, too many connections in total or from one address, and the
//! HTTP/2 stream limit a client is told.

use crate::common::*;
use ballast::tls::devcert::DevCerts;
use ballast_load_tests::origin::OriginHandle;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00";
const SETTINGS_ACK: &[u8] = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00";
/// HEADERS on stream 1, END_STREAM | END_HEADERS: GET http://x/ (HPACK:
/// :method GET, :scheme http, :path /, :authority "x").
const GET_ON_STREAM_1: &[u8] = b"\x00\x00\x06\x01\x05\x00\x00\x00\x01\x82\x86\x84\x41\x01x";

/// Not closed before this: the deadlines in these tests are 1 s.
const NOT_BEFORE: Duration = Duration::from_millis(500);
/// Closed within this, even on a loaded machine.
const WITHIN: Duration = Duration::from_secs(10);

/// Ballast on loopback with one pool of `origin`, and `server` settings.
async fn start(origin: &OriginHandle, server: &str) -> LoopbackProxy {
    let backends = backend_entries(&[origin]);
    LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s, {server}}}\npools: {{p: {{backends: [{backends}]}}}}\nroutes: [{{pool: p}}]\n"
        )
    })
    .await
}

/// Ballast with a plain `h2c` listener and a TLS listener offering h2, and
/// `server` settings; returns (h2c, tls, admin, the client TLS connector).
async fn start_h2(
    origin: &OriginHandle,
    server: &str,
    dir: &std::path::Path,
) -> (
    RunningBallast,
    SocketAddr,
    SocketAddr,
    SocketAddr,
    tokio_rustls::TlsConnector,
) {
    ballast::tls::install_crypto_provider();
    let certs = DevCerts::generate(&["h2.test".to_string()]).unwrap();
    certs.write_leaf(dir, "h2").unwrap();
    let h2c = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let tls = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{h2c}\", h2c: true}}, {{address: \"{tls}\", tls: {{cert: h2.crt, key: h2.key}}}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s, {server}}}\npools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
        origin.addr
    );
    let ballast = RunningBallast::start(&yaml, dir, &[h2c, tls, admin]).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certs.ca_cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    (ballast, h2c, tls, admin, connector)
}

/// How long until the server closes `stream` (what it sends is read and
/// dropped); `None` if it is still open after [`WITHIN`].
async fn time_to_close(
    stream: &mut (impl AsyncRead + Unpin),
    started: Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(WITHIN, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
    closed.ok().map(|()| started.elapsed())
}

fn assert_closed_by_the_deadline(closed: Option<Duration>, what: &str) {
    let after = closed.unwrap_or_else(|| panic!("{what}: still open after {WITHIN:?}"));
    assert!(
        after >= NOT_BEFORE,
        "{what}: closed too early, after {after:?}"
    );
}

/// One HTTP/2 frame: (type, flags, stream, payload).
async fn read_frame(stream: &mut (impl AsyncRead + Unpin)) -> Option<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await.ok()?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.ok()?;
    Some((head[3], head[4], id, payload))
}

/// Send the preface and SETTINGS; return the server's first SETTINGS
/// payload (acknowledged).
async fn h2_handshake(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) -> Vec<u8> {
    stream.write_all(PREFACE).await.unwrap();
    stream.write_all(SETTINGS).await.unwrap();
    loop {
        let (kind, flags, _, payload) = tokio::time::timeout(WITHIN, read_frame(stream))
            .await
            .expect("the server's SETTINGS in time")
            .expect("a frame");
        if kind == 4 && flags & 1 == 0 {
            stream.write_all(SETTINGS_ACK).await.unwrap();
            return payload;
        }
    }
}

/// GET / on stream 1 and read until its response ends.
async fn h2_get(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    stream.write_all(GET_ON_STREAM_1).await.unwrap();
    tokio::time::timeout(WITHIN, async {
        loop {
            let (kind, flags, id, _) = read_frame(stream).await.expect("the response");
            assert_ne!(kind, 7, "GOAWAY instead of a response");
            if id == 1 && (kind == 0 || kind == 1) && flags & 1 == 1 {
                return;
            }
        }
    })
    .await
    .expect("the response in time");
}

/// The value of the metric series starting with `series` (0 if absent).
async fn metric(admin: SocketAddr, series: &str) -> u64 {
    let text = get(admin, "localhost", "/metrics").await.text();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Wait until `series` reads `value` (at most [`WITHIN`]).
async fn wait_for_metric(admin: SocketAddr, series: &str, value: u64) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let now = metric(admin, series).await;
        if now == value {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} stays {now}, expected {value}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const OPEN: &str = "ballast_client_connections ";

fn refused(reason: &str) -> String {
    format!("ballast_client_connections_refused_total{{reason=\"{reason}\"}} ")
}

/// A connection from `source` to `addr`.
async fn connect_from(source: [u8; 4], addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(addr).await.unwrap()
}

/// GET / with `Connection: close` on `stream`; the answer's status line.
async fn status_of_get(mut stream: TcpStream) -> String {
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WITHIN, stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_are_closed_after_the_keepalive_timeout() {
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    // A long header deadline, so only the idle timeout can close them.
    let (_ballast, h2c, tls, _admin, connector) =
        start_h2(&o, "keepalive_timeout: 1s, header_timeout: 1h", dir.path()).await;

    // h2c with prior knowledge: only the preface and SETTINGS, no stream.
    let mut only_preface = TcpStream::connect(h2c).await.unwrap();
    h2_handshake(&mut only_preface).await;
    let started = Instant::now();
    let closed = time_to_close(&mut only_preface, started).await;
    assert_closed_by_the_deadline(closed, "h2c after the preface");

    // h2c after a finished request.
    let mut after_request = TcpStream::connect(h2c).await.unwrap();
    h2_handshake(&mut after_request).await;
    h2_get(&mut after_request).await;
    let started = Instant::now();
    let closed = time_to_close(&mut after_request, started).await;
    assert_closed_by_the_deadline(closed, "h2c after a request");

    // h2 over TLS: after the preface, then after a request.
    for request in [false, true] {
        let tcp = TcpStream::connect(tls).await.unwrap();
        let mut stream = connector
            .connect(ServerName::try_from("h2.test").unwrap(), tcp)
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        h2_handshake(&mut stream).await;
        if request {
            h2_get(&mut stream).await;
        }
        let started = Instant::now();
        let closed = time_to_close(&mut stream, started).await;
        assert_closed_by_the_deadline(closed, &format!("h2 over TLS (request: {request})"));
    }
    assert_eq!(o.stats.total(), 2, "both requests were served");
}

/// Dribble a request header that never ends on `stream`, one byte every
/// 200 ms (each read makes progress); how long until the server closes it.
async fn dribble_until_closed(stream: TcpStream) -> Option<Duration> {
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let dribble = tokio::spawn(async move {
        let header = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: {}", "a".repeat(100));
        for byte in header.as_bytes() {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let closed = time_to_close(&mut reader, started).await;
    dribble.abort();
    closed
}

const CLOSED_BY_HEADER_TIMEOUT: &str =
    "ballast_client_connections_closed_total{reason=\"header_timeout\"} ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_header_dribbled_byte_by_byte_is_cut_off_at_the_header_timeout() {
    let o = origin_named("o").await;
    let p = start(&o, "header_timeout: 1s").await;
    let stream = TcpStream::connect(p.listen).await.unwrap();
    let closed = dribble_until_closed(stream).await;
    assert_closed_by_the_deadline(closed, "a dribbled header");
    assert_eq!(o.stats.total(), 0);
    wait_for_metric(p.admin, CLOSED_BY_HEADER_TIMEOUT, 1).await;
    assert_eq!(get(p.listen, "x", "/after").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_dribbled_after_a_kept_alive_request_is_cut_off_too() {
    let o = origin_named("o").await;
    // The next header is due within keep-alive + header timeout (2 s).
    let p = start(&o, "header_timeout: 1s, keepalive_timeout: 1s").await;
    let mut stream = TcpStream::connect(p.listen).await.unwrap();
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(WITHIN, stream.read(&mut head))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let closed = dribble_until_closed(stream).await;
    assert_closed_by_the_deadline(closed, "a header dribbled after a request");
    assert_eq!(o.stats.total(), 1);
    wait_for_metric(p.admin, CLOSED_BY_HEADER_TIMEOUT, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_closed_at_the_header_timeout_plain_and_tls() {
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let (_ballast, h2c, tls, admin, _) = start_h2(&o, "header_timeout: 1s", dir.path()).await;
    // Nothing at all on a plain (h2c) listener, then on a TLS listener (no
    // ClientHello).
    for (addr, what) in [(h2c, "plain"), (tls, "TLS")] {
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let started = Instant::now();
        let closed = time_to_close(&mut silent, started).await;
        assert_closed_by_the_deadline(closed, &format!("a silent {what} connection"));
    }
    wait_for_metric(admin, CLOSED_BY_HEADER_TIMEOUT, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_is_not_held_to_the_header_timeout_after_its_first_request() {
    let o = origin_named("o").await;
    let p = start(&o, "header_timeout: 1s").await;
    let mut stream = TcpStream::connect(p.listen).await.unwrap();
    for round in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = vec![0u8; 4096];
        let n = tokio::time::timeout(WITHIN, stream.read(&mut head))
            .await
            .expect("an answer")
            .unwrap();
        let text = String::from_utf8_lossy(&head[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "round {round}: {text}");
        if round == 0 {
            // Idle for longer than the header timeout, within the keep-alive one.
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_over_max_client_connections_is_refused_while_others_are_served() {
    let o = origin_named("o").await;
    let p = start(&o, "max_client_connections: 5, header_timeout: 1h").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from([127, 0, 0, 1], p.listen).await);
    }
    wait_for_metric(p.admin, OPEN, 5).await;
    // The sixth from the same address: closed without an answer, counted.
    let sixth = connect_from([127, 0, 0, 1], p.listen).await;
    assert_eq!(status_of_get(sixth).await, "", "closed unanswered");
    wait_for_metric(p.admin, &refused("max_client_connections"), 1).await;
    // Another address is served meanwhile.
    let other = connect_from([127, 0, 0, 2], p.listen).await;
    assert_eq!(status_of_get(other).await, "HTTP/1.1 200 OK");
    // One of the five leaves: the address gets a place again.
    held.pop();
    wait_for_metric(p.admin, OPEN, 4).await;
    let again = connect_from([127, 0, 0, 1], p.listen).await;
    assert_eq!(status_of_get(again).await, "HTTP/1.1 200 OK");
    assert_eq!(metric(p.admin, &refused("max_connections")).await, 0);
    assert_eq!(
        o.stats.total(),
        2,
        "the refused connection reached no origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_max_connections_are_refused_from_any_address() {
    let o = origin_named("o").await;
    let p = start(&o, "max_connections: 3, header_timeout: 1h").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], p.listen).await);
    }
    wait_for_metric(p.admin, OPEN, 3).await;
    let fourth = connect_from([127, 0, 0, 2], p.listen).await;
    assert_eq!(status_of_get(fourth).await, "", "closed unanswered");
    wait_for_metric(p.admin, &refused("max_connections"), 1).await;
    held.pop();
    wait_for_metric(p.admin, OPEN, 2).await;
    let again = connect_from([127, 0, 0, 2], p.listen).await;
    assert_eq!(status_of_get(again).await, "HTTP/1.1 200 OK");
    assert_eq!(o.stats.total(), 1);
}

/// HEADERS for GET / on stream `id`, as [`GET_ON_STREAM_1`].
fn get_on_stream(id: u32) -> Vec<u8> {
    let mut frame = GET_ON_STREAM_1.to_vec();
    frame[5..9].copy_from_slice(&id.to_be_bytes());
    frame
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_told_the_stream_limit_and_a_stream_over_it_is_refused() {
    let o = origin_with_latency("o", Duration::from_secs(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let (_ballast, h2c, _, _, _) = start_h2(&o, "h2_max_concurrent_streams: 2", dir.path()).await;
    let mut stream = TcpStream::connect(h2c).await.unwrap();
    let settings = h2_handshake(&mut stream).await;
    let max_streams = settings.chunks_exact(6).find_map(|entry| {
        (u16::from_be_bytes([entry[0], entry[1]]) == 3)
            .then(|| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]))
    });
    assert_eq!(max_streams, Some(2), "SETTINGS_MAX_CONCURRENT_STREAMS");
    // Three streams at once to a slow origin: the third is refused, the
    // first two are answered.
    for id in [1, 3, 5] {
        stream.write_all(&get_on_stream(id)).await.unwrap();
    }
    let (mut answered, mut refused) = (Vec::new(), Vec::new());
    tokio::time::timeout(WITHIN, async {
        while answered.len() + refused.len() < 3 {
            let (kind, flags, id, payload) = read_frame(&mut stream).await.expect("a frame");
            match kind {
                0 | 1 if flags & 1 == 1 => answered.push(id),
                // RST_STREAM with REFUSED_STREAM (7).
                3 if payload == [0, 0, 0, 7] => refused.push(id),
                3 | 7 => panic!("unexpected reset or GOAWAY on {id}: {payload:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("every stream answered or refused in time");
    answered.sort_unstable();
    assert_eq!((answered, refused), (vec![1, 3], vec![5]));
    assert_eq!(o.stats.total(), 2, "the refused stream reached no origin");
}

//! Polling quiet backends' load endpoints. A backend that gets little
//! traffic (a canary at its floor, a standby) has too few requests in the
//! window to be measured; a pool with `load_poll` has each backend's
//! `GET path` answered with a small JSON object about its load, which is
//! stored like a `Server-Load` report (see [`parse_load`] for the schema).
//!
//! - Every `interval`, each backend of the pool serving fewer than
//!   `quiet_below` requests/s over the last 10 s (default 1: fewer than the
//!   10 requests the engine needs to measure it) is polled, all in
//!   parallel, each poll bounded by `timeout`; busy backends are measured
//!   by their own traffic (and `Server-Load`), so polling costs little. A backend that is busy
//!   enough to be skipped forgets its polled report, so the silence is not
//!   read as a stale reporter.
//! - A poll is not traffic: no request, latency sample or outcome is counted.
//! - A pool with `tls` is polled over TLS with its own settings (server
//!   name, CAs, verification, client certificate), offering HTTP/1.1 by
//!   ALPN: a backend that speaks only h2 cannot be polled.
//! - A failed poll (unreachable, a TLS failure, timeout, a status other
//!   than 2xx, a body over [`MAX_BODY`] bytes or not the schema) is counted in
//!   `ballast_load_polls_total{pool,result}` and records nothing: it never
//!   ejects a backend (health checks do that), but once the last good
//!   report is older than `server_load.stale_after` the backend is degraded
//!   like a silent `Server-Load` reporter.
//!
//! The loop reads the published configuration at every tick, so a reload
//! changes paths and intervals at once.

use crate::config::{LoadPollPolicy, Pool};
use crate::routing::state::RoutingState;
use crate::stats::backend::{BackendStats, WINDOW_MS};
use crate::stats::clock;
use crate::stats::server_load::LoadReport;
use crate::telemetry::metrics::Metrics;
use crate::tls::upstream::{backend_peer, tls_failure};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::connectors::TransportConnector;
use pingora::prelude::HttpPeer;
use pingora::protocols::ALPN;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

/// Largest response body read; a longer one is refused (`too_large`).
pub const MAX_BODY: usize = 16 * 1024;
/// Largest response head read.
const MAX_HEAD: usize = 8 * 1024;
/// How often the loop wakes up to see which pools are due.
const TICK: Duration = Duration::from_millis(100);

const MAX_UTILIZATION: f64 = 10.0;
const MAX_LATENCY_MS: f64 = 3_600_000.0;
const MAX_COUNT: f64 = 1e9;

/// Why a poll was not used; `as_str` is the metric's `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollError {
    /// No connection could be made, or it broke.
    Unreachable,
    /// The TLS handshake failed (the certificate was refused, or ours).
    Tls,
    /// No full answer within the timeout.
    Timeout,
    /// The answer was not HTTP, or had a status other than 2xx.
    Status,
    /// The body is longer than [`MAX_BODY`] bytes.
    TooLarge,
    /// The body is not a JSON object of the schema.
    Invalid,
}

impl PollError {
    pub fn as_str(self) -> &'static str {
        match self {
            PollError::Unreachable => "unreachable",
            PollError::Tls => "tls",
            PollError::Timeout => "timeout",
            PollError::Status => "status",
            PollError::TooLarge => "too_large",
            PollError::Invalid => "invalid",
        }
    }
}

/// The JSON a load endpoint answers. Every field is optional (`null` is
/// absent); unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct LoadBody {
    /// Utilization: 0 idle, 1 fully busy, above 1 overloaded (at most 10).
    load: Option<f64>,
    /// The backend's own recent latency, ms.
    latency_ms: Option<f64>,
    /// Fraction of its recent requests that failed, 0..1.
    error_rate: Option<f64>,
    /// Requests it can serve at once (a whole number, at least 1).
    capacity: Option<f64>,
    /// Requests it is serving now (a whole number).
    inflight: Option<f64>,
}

/// Parse a load endpoint's body: a JSON object with any of `load`,
/// `latency_ms`, `error_rate`, `capacity`, `inflight`, at least one of
/// them. A value out of range, of the wrong type, or a duplicate key makes
/// the whole body invalid: half a report is not trusted.
pub fn parse_load(body: &[u8]) -> Result<LoadReport, PollError> {
    if body.len() > MAX_BODY {
        return Err(PollError::TooLarge);
    }
    let parsed: LoadBody = serde_json::from_slice(body).map_err(|_| PollError::Invalid)?;
    let bounded = |value: Option<f64>, low: f64, high: f64| match value {
        Some(v) if !(low..=high).contains(&v) => Err(PollError::Invalid),
        other => Ok(other),
    };
    let count = |value: Option<f64>, low: f64| match bounded(value, low, MAX_COUNT)? {
        Some(v) if v.fract() != 0.0 => Err(PollError::Invalid),
        other => Ok(other.map(|v| v as u64)),
    };
    let report = LoadReport {
        utilization: bounded(parsed.load, 0.0, MAX_UTILIZATION)?,
        latency_ms: bounded(parsed.latency_ms, 0.0, MAX_LATENCY_MS)?,
        error_rate: bounded(parsed.error_rate, 0.0, 1.0)?,
        capacity: count(parsed.capacity, 1.0)?,
        in_flight: count(parsed.inflight, 0.0)?,
        ..LoadReport::default()
    };
    if report == LoadReport::default() {
        return Err(PollError::Invalid);
    }
    Ok(report)
}

/// `GET path` from `peer` over HTTP/1.1 (`Connection: close`), plain or
/// TLS as the peer says, and return the body of a 2xx answer, all within
/// `timeout`.
pub async fn fetch(
    connector: &TransportConnector,
    peer: &HttpPeer,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<Vec<u8>, PollError> {
    tokio::time::timeout(timeout, fetch_unbounded(connector, peer, host, path))
        .await
        .map_err(|_| PollError::Timeout)?
}

async fn fetch_unbounded(
    connector: &TransportConnector,
    peer: &HttpPeer,
    host: &str,
    path: &str,
) -> Result<Vec<u8>, PollError> {
    let mut stream = connector
        .new_stream(peer)
        .await
        .map_err(|e| match tls_failure(&e) {
            Some(_) => PollError::Tls,
            None => PollError::Unreachable,
        })?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: ballast-load-poll\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|_| PollError::Unreachable)?;
    // One byte more than the most that is accepted, to tell "too large".
    let limit = MAX_HEAD + MAX_BODY + 1;
    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|_| PollError::Unreachable)?;
        if n == 0 {
            break;
        }
        response.extend_from_slice(&chunk[..n]);
        if response.len() >= limit {
            break;
        }
        if complete_body(&response).is_some() {
            break;
        }
    }
    let head_end = find(&response, b"\r\n\r\n").ok_or(PollError::Status)?;
    let (status, content_length, chunked) = parse_head(&response[..head_end])?;
    if !(200..=299).contains(&status) {
        return Err(PollError::Status);
    }
    let body = &response[head_end + 4..];
    let body = match (chunked, content_length) {
        (true, _) => dechunk(body)?,
        (false, Some(len)) if len > MAX_BODY => return Err(PollError::TooLarge),
        (false, Some(len)) if body.len() < len => return Err(PollError::Unreachable),
        (false, Some(len)) => body[..len].to_vec(),
        (false, None) => body.to_vec(),
    };
    if body.len() > MAX_BODY {
        return Err(PollError::TooLarge);
    }
    Ok(body)
}

/// The length of a complete response in `buf` when its head says how long
/// the body is (`Content-Length`) and all of it has arrived.
fn complete_body(buf: &[u8]) -> Option<usize> {
    let head_end = find(buf, b"\r\n\r\n")?;
    let (_, content_length, chunked) = parse_head(&buf[..head_end]).ok()?;
    let total = head_end + 4 + content_length?;
    (!chunked && buf.len() >= total).then_some(total)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Status, `Content-Length` and whether the body is chunked.
fn parse_head(head: &[u8]) -> Result<(u16, Option<usize>, bool), PollError> {
    if head.len() > MAX_HEAD {
        return Err(PollError::Status);
    }
    let head = std::str::from_utf8(head).map_err(|_| PollError::Status)?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(PollError::Status);
    };
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return Err(PollError::Status);
    }
    let status: u16 = code.parse().map_err(|_| PollError::Status)?;
    let mut content_length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(PollError::Status);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse().map_err(|_| PollError::Status)?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok((status, content_length, chunked))
}

/// Decode a chunked body (extensions and trailers ignored).
fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, PollError> {
    let mut out = Vec::new();
    loop {
        let line_end = find(body, b"\r\n").ok_or(PollError::Invalid)?;
        let size_text = std::str::from_utf8(&body[..line_end]).map_err(|_| PollError::Invalid)?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| PollError::Invalid)?;
        if size == 0 {
            return Ok(out);
        }
        if out.len() + size > MAX_BODY {
            return Err(PollError::TooLarge);
        }
        let data = &body[line_end + 2..];
        if data.len() < size + 2 {
            return Err(PollError::Invalid);
        }
        out.extend_from_slice(&data[..size]);
        body = &data[size + 2..];
    }
}

/// Poll one backend once.
async fn poll_backend(
    connector: &TransportConnector,
    peer: &HttpPeer,
    host: &str,
    policy: &LoadPollPolicy,
) -> Result<LoadReport, PollError> {
    let body = fetch(connector, peer, host, &policy.path, policy.timeout).await?;
    parse_load(&body)
}

/// The peer a poll of the backend at `addr` connects to: the pool's own,
/// offering only HTTP/1.1 by ALPN (the one protocol a poll speaks; an h2c
/// pool's backends are polled in HTTP/1.1 too).
fn poll_peer(pool: &Pool, addr: SocketAddr) -> HttpPeer {
    let mut peer = backend_peer(addr, pool.tls.as_ref(), false);
    if pool.tls.is_some() {
        peer.options.alpn = ALPN::H1;
    }
    peer
}

/// Poll the backends of `pool` that are due (all, or the quiet ones) and
/// record the results.
pub async fn poll_pool(
    pool: &Pool,
    stats: &[Arc<BackendStats>],
    metrics: &Metrics,
    connector: &Arc<TransportConnector>,
) {
    let Some(policy) = &pool.policy.load_poll else {
        return;
    };
    let host: Arc<str> = Arc::from(policy.host.as_deref().unwrap_or(&pool.name));
    let now_ms = clock::now_ms();
    let mut polls = JoinSet::new();
    for (index, backend) in pool.backends.iter().enumerate() {
        // Over the whole window, even before it has filled: a backend is
        // quiet while it has too few requests in it to be measured.
        let requests = stats[index].observe(now_ms).outcomes.total as f64;
        if requests >= policy.quiet_below * (WINDOW_MS as f64 / 1000.0) {
            stats[index].forget_polled_report();
            continue;
        }
        let peer = poll_peer(pool, backend.addr);
        let (connector, host, policy) = (connector.clone(), host.clone(), policy.clone());
        polls.spawn(async move {
            let result = poll_backend(&connector, &peer, &host, &policy).await;
            (index, result)
        });
    }
    while let Some(joined) = polls.join_next().await {
        let Ok((index, result)) = joined else {
            continue;
        };
        let label = match result {
            Ok(_) => "ok",
            Err(e) => e.as_str(),
        };
        if let Err(e) = result {
            tracing::debug!(pool = %pool.name, backend = %pool.backends[index].id, "load poll failed: {}", e.as_str());
        }
        metrics
            .load_polls
            .with_label_values(&[pool.name.as_str(), label])
            .inc();
        stats[index].record_poll(clock::now_ms(), label, result.ok());
    }
}

/// Polls the load endpoints of every pool that configures `load_poll`,
/// until shutdown.
pub struct LoadPollLoop {
    pub routing: Arc<ArcSwap<RoutingState>>,
    pub metrics: Arc<Metrics>,
    /// Makes the polls' connections (TLS included), one for every pool.
    pub connector: Arc<TransportConnector>,
}

#[async_trait]
impl BackgroundService for LoadPollLoop {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // By pool name: when the next round is due, under which policy (a
        // reload that changes the policy makes the pool due at once).
        let mut next_due: HashMap<String, (tokio::time::Instant, LoadPollPolicy)> = HashMap::new();
        loop {
            let routing = self.routing.load_full();
            let now = tokio::time::Instant::now();
            let mut rounds = JoinSet::new();
            for pool in &routing.snapshot.pools {
                let Some(policy) = &pool.policy.load_poll else {
                    continue;
                };
                let due = next_due
                    .get(&pool.name)
                    .is_none_or(|(at, used)| now >= *at || used != policy);
                if !due {
                    continue;
                }
                next_due.insert(pool.name.clone(), (now + policy.interval, policy.clone()));
                let (routing, metrics, id) = (routing.clone(), self.metrics.clone(), pool.id);
                let connector = self.connector.clone();
                rounds.spawn(async move {
                    let pool = routing.snapshot.pool(id);
                    poll_pool(pool, &routing.stats.pools[id.0], &metrics, &connector).await;
                });
            }
            tokio::select! {
                _ = async { while rounds.join_next().await.is_some() {} ; tokio::time::sleep(TICK).await } => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// `fetch` over plain HTTP from `addr`.
    async fn fetch_plain(
        addr: SocketAddr,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, PollError> {
        let connector = TransportConnector::new(None);
        let peer = backend_peer(addr, None, false);
        fetch(&connector, &peer, host, path, timeout).await
    }

    #[test]
    fn every_field_is_read_and_unknown_ones_ignored() {
        let report = parse_load(
            br#"{"load": 0.4, "latency_ms": 35, "error_rate": 0.01, "capacity": 400,
                 "inflight": 3, "version": "1.2.3", "extra": {"nested": [1, 2]}}"#,
        )
        .unwrap();
        assert_eq!(
            report,
            LoadReport {
                utilization: Some(0.4),
                latency_ms: Some(35.0),
                error_rate: Some(0.01),
                capacity: Some(400),
                in_flight: Some(3),
                ..LoadReport::default()
            }
        );
        let subset = parse_load(br#"{"latency_ms": 12.5, "load": null}"#).unwrap();
        assert_eq!(subset.latency_ms, Some(12.5));
        assert_eq!(subset.utilization, None);
    }

    #[test]
    fn garbage_and_adversarial_bodies_are_invalid() {
        let deep = "[".repeat(100_000);
        let deep_field = format!(r#"{{"latency_ms": 5, "x": {}}}"#, "[".repeat(5_000));
        for bad in [
            "",
            "null",
            "[]",
            "42",
            "\"load\"",
            "{}",
            r#"{"unrelated": 1}"#,
            r#"{"load": "0.5"}"#,
            r#"{"load": -0.1}"#,
            r#"{"load": 11}"#,
            r#"{"latency_ms": -1}"#,
            r#"{"latency_ms": 1e300}"#,
            r#"{"error_rate": 1.5}"#,
            r#"{"capacity": 0}"#,
            r#"{"capacity": 2.5}"#,
            r#"{"inflight": -3}"#,
            r#"{"inflight": 1e12}"#,
            r#"{"latency_ms": 5, "latency_ms": 50}"#,
            r#"{"latency_ms": 5"#,
            "\u{feff}{\"latency_ms\": 5}",
            "<html>busy</html>",
            &deep,
            &deep_field,
        ] {
            assert!(
                parse_load(bad.as_bytes()).is_err(),
                "{:?} should be rejected",
                &bad[..bad.len().min(40)]
            );
        }
        assert_eq!(parse_load(&[0xff, 0xfe, 0x00]), Err(PollError::Invalid));
    }

    #[test]
    fn huge_bodies_are_refused_unparsed() {
        let padding = " ".repeat(MAX_BODY);
        let huge = format!(r#"{{"latency_ms": 5}}{padding}"#);
        assert_eq!(parse_load(huge.as_bytes()), Err(PollError::TooLarge));
    }

    #[test]
    fn chunked_bodies_are_decoded_and_bounded() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n").unwrap(),
            b"hello world"
        );
        assert_eq!(dechunk(b"zz\r\n"), Err(PollError::Invalid));
        assert_eq!(dechunk(b"5\r\nhel"), Err(PollError::Invalid));
        assert_eq!(dechunk(b"ffffff\r\n"), Err(PollError::TooLarge));
    }

    /// A server answering every connection with `answer` after reading the
    /// request head; returns its address.
    async fn serve(answer: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 512];
                    while find(&request, b"\r\n\r\n").is_none() {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = stream.write_all(&answer).await;
                });
            }
        });
        addr
    }

    fn http(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn fetch_reads_a_body_and_refuses_what_it_should() {
        let timeout = Duration::from_secs(5);
        let ok = serve(http("200 OK", r#"{"latency_ms": 7}"#)).await;
        let body = fetch_plain(ok, "pool", "/load", timeout).await.unwrap();
        assert_eq!(parse_load(&body).unwrap().latency_ms, Some(7.0));

        let chunked = serve(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"lo\r\na\r\nad\": 0.25}\r\n0\r\n\r\n"
                .to_vec(),
        )
        .await;
        let body = fetch_plain(chunked, "pool", "/load", timeout)
            .await
            .unwrap();
        assert_eq!(parse_load(&body).unwrap().utilization, Some(0.25));

        let failing = serve(http("503 Service Unavailable", r#"{"load": 1}"#)).await;
        assert_eq!(
            fetch_plain(failing, "pool", "/load", timeout).await,
            Err(PollError::Status)
        );
        let not_http = serve(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
        assert_eq!(
            fetch_plain(not_http, "pool", "/load", timeout).await,
            Err(PollError::Status)
        );
        let huge = serve(http("200 OK", &"x".repeat(MAX_BODY + 1))).await;
        assert_eq!(
            fetch_plain(huge, "pool", "/load", timeout).await,
            Err(PollError::TooLarge)
        );
        let endless = serve(
            [
                b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
                vec![b'x'; 4 * MAX_BODY],
            ]
            .concat(),
        )
        .await;
        assert_eq!(
            fetch_plain(endless, "pool", "/load", timeout).await,
            Err(PollError::TooLarge)
        );

        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            fetch_plain(closed, "pool", "/load", timeout).await,
            Err(PollError::Unreachable)
        );
    }

    #[tokio::test]
    async fn quiet_below_polls_only_quiet_backends_and_busy_ones_forget_their_poll() {
        let body = r#"{"latency_ms": 40}"#;
        let quiet = serve(http("200 OK", body)).await;
        let busy = serve(http("200 OK", body)).await;
        let yaml = format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\npools:\n  p:\n    load_poll: {{interval: 1s, quiet_below: 5}}\n    backends: [{{addr: \"{quiet}\"}}, {{addr: \"{busy}\"}}]\nroutes: [{{pool: p}}]\n"
        );
        let snapshot = crate::config::load_str(&yaml, std::path::Path::new(".")).unwrap();
        let pool = &snapshot.pools[0];
        let stats = [Arc::new(BackendStats::new()), Arc::new(BackendStats::new())];
        let metrics = Metrics::new();
        let connector = Arc::new(TransportConnector::new(None));

        // 49 requests are 4.9/s over the window: still quiet.
        let now_ms = clock::now_ms();
        for _ in 0..49 {
            stats[1].record_success(now_ms, 1_000);
        }
        // Both quiet: both polled.
        poll_pool(pool, &stats, &metrics, &connector).await;
        assert!(stats
            .iter()
            .all(|s| s.last_report().is_some_and(|r| r.polled)));
        assert_eq!(metrics.load_polls.with_label_values(&["p", "ok"]).get(), 2);

        // The second gets 100 requests: 10/s over the 10 s window, above
        // 5/s. It is skipped, and forgets its polled report.
        for _ in 0..51 {
            stats[1].record_success(now_ms, 1_000);
        }
        poll_pool(pool, &stats, &metrics, &connector).await;
        assert_eq!(metrics.load_polls.with_label_values(&["p", "ok"]).get(), 3);
        assert!(stats[0].last_report().is_some());
        assert_eq!(
            stats[1].last_report(),
            None,
            "not read as a silent reporter"
        );
    }

    #[tokio::test]
    async fn a_silent_endpoint_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let started = std::time::Instant::now();
        assert_eq!(
            fetch_plain(addr, "pool", "/load", Duration::from_millis(200)).await,
            Err(PollError::Timeout)
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

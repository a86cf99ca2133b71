//! The read/write split end to end: real origins in a write region
//! (us-east) and a read region (us-west), a real Ballast in front, and the
//! origins' own counts of which requests reached them.

use crate::common::*;
use ballast_load_tests::origin::OriginHandle;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

/// Each test starts its own origins and proxy; one at a time keeps the
/// small machine's timing honest.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TTL_MS: u64 = 500;

struct Setup {
    listen: SocketAddr,
    admin: SocketAddr,
    east: [OriginHandle; 2],
    west: [OriginHandle; 2],
    _ballast: RunningBallast,
}

async fn start() -> Setup {
    let east = [origin_named("east-1").await, origin_named("east-2").await];
    let west = [origin_named("west-1").await, origin_named("west-2").await];
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        r#"
listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, drain_timeout: 2s}}
regions:
  us-east: {{fallback: [us-west]}}
  us-west: {{fallback: [us-east]}}
  eu-west: {{fallback: [us-west]}}
geo:
  client_region: [{{header: X-Client-Region, trusted_peers: ["127.0.0.1"]}}, {{default: us-west}}]
  residency: [{{clients: [eu-west], allowed: [us-west]}}]
explain: {{trusted_peers: ["127.0.0.1"]}}
pools:
  p:
    recompute_interval: 100ms
    health: {{check: tcp, interval: 100ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1}}
    write: {{region: us-east, read_your_writes: {{ttl: {TTL_MS}ms}}}}
    backends:
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-east}}
      - {{addr: "{}", region: us-west}}
      - {{addr: "{}", region: us-west}}
routes: [{{pool: p}}]
"#,
        east[0].addr, east[1].addr, west[0].addr, west[1].addr
    );
    let ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    Setup {
        listen,
        admin,
        east,
        west,
        _ballast: ballast,
    }
}

fn count(origins: &[OriginHandle], method: &Method) -> u64 {
    origins.iter().map(|o| o.stats.count(method)).sum()
}

/// A request from a client in `region`, with an optional `Cookie` header,
/// asking for the decision to be explained.
fn from(region: &str, method: Method, cookie: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri("/items")
        .header("host", "x")
        .header("x-client-region", region)
        .header("x-ballast-debug", "1");
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    // No body: the origins answer `/items` without reading one, and hyper
    // then closes the connection, which a pooled reuse could race.
    builder.body(Full::new(Bytes::new())).unwrap()
}

fn origin_of(reply: &Reply) -> &str {
    reply.header("x-origin").unwrap_or("-")
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The `name=value` part of the pin cookie a write's response sets.
fn pin_cookie(reply: &Reply) -> String {
    let set = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("ballast_ryw="))
        .unwrap_or_else(|| panic!("no pin cookie in {:?}", reply.headers));
    assert!(set.contains("Max-Age=1; Path=/; HttpOnly"), "{set}");
    set.split(';').next().unwrap().to_string()
}

/// `ballast_rw_requests_total` of `kind`, once `expected` accepts it: a
/// request is counted as its handling ends, just after its response.
async fn rw_count(admin: SocketAddr, kind: &str, expected: impl Fn(u64) -> bool) -> u64 {
    let needle = format!("ballast_rw_requests_total{{kind=\"{kind}\",pool=\"p\"}} ");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = get(admin, "localhost", "/metrics").await.text();
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(&needle))
            .map_or(0, |v| v.parse().unwrap());
        if expected(count) || Instant::now() > deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stop `origin` and wait until its address refuses connections.
async fn stop(origin: &OriginHandle) {
    origin.stop();
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(origin.addr).await.is_ok() {
        assert!(Instant::now() < deadline, "{} still accepts", origin.addr);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_only_the_write_region_and_reads_stay_near_the_client() {
    let _serial = SERIAL.lock().await;
    let s = start().await;
    let writes = |_: usize, n: usize| {
        let method = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE][n % 4].clone();
        let mut req = from("us-west", method, None);
        req.headers_mut().remove("x-ballast-debug");
        req
    };
    let out = drive(s.listen, 4, Duration::from_millis(600), 200, writes).await;
    assert!(out.total() >= 40, "{out:?}");
    assert_eq!(out.count(200), out.total(), "{out:?}");
    let written: u64 = [Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
        .iter()
        .map(|m| count(&s.east, m))
        .sum();
    assert_eq!(written, out.total() as u64, "every write reached us-east");
    for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        assert_eq!(count(&s.west, &m), 0, "no {m} reached us-west");
    }
    assert!(
        s.east.iter().all(|o| o.stats.total() > 0),
        "both writers share the writes"
    );

    // Reads without a pin stay in the client's region.
    let reads = |_: usize, _: usize| {
        let mut req = from("us-west", Method::GET, None);
        req.headers_mut().remove("x-ballast-debug");
        req
    };
    let out = drive(s.listen, 4, Duration::from_millis(600), 200, reads).await;
    assert_eq!(out.count(200), out.total(), "{out:?}");
    assert_eq!(count(&s.west, &Method::GET), out.total() as u64);
    assert_eq!(count(&s.east, &Method::GET), 0);

    // The decision explains itself; the write hands back the pin.
    let write = send(s.listen, from("us-west", Method::POST, None)).await;
    assert_eq!(write.status, StatusCode::OK);
    let decision = write.header("x-ballast-decision").unwrap();
    assert!(
        decision.contains("rule=write:us-west->us-east"),
        "{decision}"
    );
    assert!(decision.ends_with("; rw=write"), "{decision}");
    pin_cookie(&write);
    let read = send(s.listen, from("us-west", Method::GET, None)).await;
    let decision = read.header("x-ballast-decision").unwrap();
    assert!(decision.contains("rule=local"), "{decision}");
    assert!(decision.ends_with("; rw=read"), "{decision}");
    assert_eq!(read.header("set-cookie"), None, "reads set no pin");

    // A client whose residency fence excludes the write region: its writes
    // are refused with a reason, its reads are served within the fence.
    let east_before = s.east[0].stats.total() + s.east[1].stats.total();
    let refused = send(s.listen, from("eu-west", Method::POST, None)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.header("x-ballast-reason"),
        Some("residency; writes go to us-east, not allowed for client region eu-west")
    );
    assert!(
        refused.text().contains("residency fence"),
        "{}",
        refused.text()
    );
    assert_eq!(refused.header("set-cookie"), None);
    let fenced_read = send(s.listen, from("eu-west", Method::GET, None)).await;
    assert_eq!(fenced_read.status, StatusCode::OK);
    assert!(
        origin_of(&fenced_read).starts_with("west"),
        "{fenced_read:?}"
    );
    assert_eq!(
        s.east[0].stats.total() + s.east[1].stats.total(),
        east_before
    );

    // Counted by kind, and the split is visible in the admin state.
    assert!(rw_count(s.admin, "write", |n| n > 40).await > 40);
    assert!(rw_count(s.admin, "read", |n| n > 1).await > 1);
    assert_eq!(rw_count(s.admin, "write_refused", |n| n >= 1).await, 1);
    let state = admin_json(s.admin, "/api/v1/state").await;
    let write = &state["pools"][0]["write"];
    assert_eq!(write["region"], "us-east", "{state}");
    assert_eq!(write["read_your_writes"]["ttl_ms"], TTL_MS);
    assert_eq!(write["read_your_writes"]["cookie"], "ballast_ryw");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_write_the_clients_reads_go_to_the_write_region_until_the_ttl() {
    let _serial = SERIAL.lock().await;
    let s = start().await;
    let write = send(s.listen, from("us-west", Method::POST, None)).await;
    assert_eq!(write.status, StatusCode::OK);
    assert!(origin_of(&write).starts_with("east"), "{write:?}");
    let cookie = pin_cookie(&write);
    let expiry: u64 = cookie["ballast_ryw=".len()..].parse().unwrap();
    let now = unix_ms();
    assert!(expiry > now && expiry <= now + TTL_MS, "{expiry} vs {now}");

    // Reads that finished before the expiry were pinned to us-east; reads
    // that started after it are back in us-west.
    let (mut pinned, mut unpinned) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let started = unix_ms();
        let read = send(s.listen, from("us-west", Method::GET, Some(&cookie))).await;
        let finished = unix_ms();
        assert_eq!(read.status, StatusCode::OK);
        let decision = read.header("x-ballast-decision").unwrap();
        if finished < expiry {
            pinned += 1;
            assert!(origin_of(&read).starts_with("east"), "{read:?}");
            assert!(
                decision.contains("rule=pinned:us-west->us-east"),
                "{decision}"
            );
            assert!(decision.ends_with("; rw=pinned_read"), "{decision}");
        } else if started > expiry {
            unpinned += 1;
            assert!(origin_of(&read).starts_with("west"), "{read:?}");
            assert!(decision.ends_with("; rw=read"), "{decision}");
            if unpinned >= 20 {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{pinned} pinned, {unpinned} after"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pinned >= 5, "{pinned} reads within the ttl");

    // Another client, without the pin, was never pinned.
    let other = send(s.listen, from("us-west", Method::GET, None)).await;
    assert!(origin_of(&other).starts_with("west"), "{other:?}");

    // Garbage, forged-format and expired pins are ignored; one too far
    // ahead only pins (for at most the ttl, as any real pin would).
    let west_before = count(&s.west, &Method::GET);
    let garbage = [
        "ballast_ryw=".to_string(),
        "ballast_ryw=soon".to_string(),
        "ballast_ryw=-1".to_string(),
        "ballast_ryw=1e30".to_string(),
        "ballast_ryw=99999999999999999999999".to_string(),
        format!("ballast_ryw={}", unix_ms() - 1),
        format!("other=1; xballast_ryw={}", unix_ms() + 60_000),
    ];
    for cookie in &garbage {
        let read = send(s.listen, from("us-west", Method::GET, Some(cookie))).await;
        assert_eq!(read.status, StatusCode::OK, "{cookie}");
        assert!(origin_of(&read).starts_with("west"), "{cookie}: {read:?}");
        assert_eq!(read.header("set-cookie"), None, "{cookie}");
    }
    assert_eq!(
        count(&s.west, &Method::GET) - west_before,
        garbage.len() as u64
    );
    let far = format!("ballast_ryw={}", unix_ms() + 3_600_000);
    let read = send(s.listen, from("us-west", Method::GET, Some(&far))).await;
    assert!(origin_of(&read).starts_with("east"), "{read:?}");
    assert!(rw_count(s.admin, "pinned_read", |n| n >= 6).await >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_never_leave_the_write_region_even_when_it_fails() {
    let _serial = SERIAL.lock().await;
    let s = start().await;
    // One writer down: writes that cannot connect to it are retried on the
    // other writer, never on a reader.
    stop(&s.east[0]).await;
    let posts = |_: usize, _: usize| {
        let mut req = from("us-west", Method::POST, None);
        req.headers_mut().remove("x-ballast-debug");
        req
    };
    let out = drive(s.listen, 4, Duration::from_millis(600), 200, posts).await;
    assert_eq!(out.count(200), out.total(), "{out:?}");
    assert_eq!(s.east[1].stats.count(&Method::POST), out.total() as u64);
    assert_eq!(count(&s.west, &Method::POST), 0);

    // The whole write region down: writes are refused, with a reason once
    // the region is known to be down; a pinned read falls back to its region.
    stop(&s.east[1]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let reply = send(s.listen, from("us-west", Method::POST, None)).await;
        assert!(
            [StatusCode::BAD_GATEWAY, StatusCode::SERVICE_UNAVAILABLE].contains(&reply.status),
            "{reply:?}"
        );
        if reply.header("x-ballast-reason").is_some() {
            break reply;
        }
        assert!(Instant::now() < deadline, "the write region never went out");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.header("x-ballast-reason"),
        Some("write-region; us-east has no available backend")
    );
    assert!(
        refused.text().contains("writes go nowhere else"),
        "{}",
        refused.text()
    );
    let out = drive(s.listen, 4, Duration::from_millis(400), 100, posts).await;
    assert_eq!(out.count(503), out.total(), "{out:?}");
    assert_eq!(count(&s.west, &Method::POST), 0, "no write reached us-west");

    let pin = format!("ballast_ryw={}", unix_ms() + TTL_MS);
    let read = send(s.listen, from("us-west", Method::GET, Some(&pin))).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(origin_of(&read).starts_with("west"), "{read:?}");
    let decision = read.header("x-ballast-decision").unwrap();
    assert!(decision.ends_with("; rw=pinned_fallback"), "{decision}");
    assert_eq!(rw_count(s.admin, "pinned_fallback", |n| n >= 1).await, 1);
    assert!(rw_count(s.admin, "write_refused", |n| n > 1).await > 1);
}

/// Without geo, with the pin in a header, more kinds of write, and a
/// reload that moves the writer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_pin_without_geo_and_a_reload_that_moves_the_writer() {
    let _serial = SERIAL.lock().await;
    let east = origin_named("east").await;
    let west = origin_named("west").await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = |writer: &str| {
        format!(
            r#"
listeners: [{{address: "{listen}"}}]
admin: {{address: "{admin}"}}
server: {{threads: 2, drain_timeout: 2s}}
explain: {{trusted_peers: ["127.0.0.1"]}}
pools:
  p:
    mode: round_robin
    write:
      region: {writer}
      methods: [POST]
      path_prefixes: [/rpc]
      header: X-Write
      read_your_writes: {{ttl: 10s, header: X-Ballast-Pin}}
    backends: [{{addr: "{}", region: us-east}}, {{addr: "{}", region: us-west}}]
routes: [{{pool: p}}]
"#,
            east.addr, west.addr
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    std::fs::write(&file, config("us-east")).unwrap();
    let _ballast = RunningBallast::start_file(&file, &[listen, admin]).await;
    let req = |method: Method, path: &str, headers: &[(&str, &str)]| {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "x")
            .header("x-ballast-debug", "1");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Full::new(Bytes::new())).unwrap()
    };

    // Writes by method, path prefix and header; the pin comes back in the header.
    let write = send(listen, req(Method::POST, "/items", &[])).await;
    assert_eq!(origin_of(&write), "east", "{write:?}");
    let pin = write.header("x-ballast-pin").unwrap().to_string();
    let expiry: u64 = pin.parse().unwrap();
    assert!(expiry > unix_ms() && expiry <= unix_ms() + 10_000, "{pin}");
    assert_eq!(write.header("set-cookie"), None);
    let decision = write.header("x-ballast-decision").unwrap();
    assert!(decision.contains("rule=write:us-east;"), "{decision}");
    for (path, headers) in [("/rpc/save", vec![]), ("/items", vec![("x-write", "1")])] {
        let reply = send(listen, req(Method::GET, path, &headers)).await;
        assert_eq!(origin_of(&reply), "east", "{path} {headers:?}: {reply:?}");
        assert!(
            reply.header("x-ballast-pin").is_some(),
            "a write hands back the pin"
        );
    }
    // DELETE is not a write here: it is balanced like a read.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let reply = send(listen, req(Method::DELETE, "/items", &[])).await;
        seen.insert(origin_of(&reply).to_string());
        assert_eq!(reply.header("x-ballast-pin"), None);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // Reads with the pin stay on the writer; without it they use both regions.
    for _ in 0..10 {
        let reply = send(
            listen,
            req(Method::GET, "/items", &[("x-ballast-pin", &pin)]),
        )
        .await;
        assert_eq!(origin_of(&reply), "east", "{reply:?}");
        let decision = reply.header("x-ballast-decision").unwrap();
        assert!(decision.contains("rule=pinned:us-east;"), "{decision}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let reply = send(listen, req(Method::GET, "/items", &[])).await;
        seen.insert(origin_of(&reply).to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");

    // A reload moves the writer: writes and pinned reads follow at once.
    std::fs::write(&file, config("us-west")).unwrap();
    // (The file watcher may apply it first: then this answers "unchanged".)
    let reload = send(admin, admin_request(Method::POST, "/reload", None)).await;
    assert_eq!(reload.status, StatusCode::OK, "{}", reload.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = admin_json(admin, "/api/v1/state").await;
        if state["pools"][0]["write"]["region"] == "us-west" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reload never applied: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..10 {
        let write = send(listen, req(Method::POST, "/items", &[])).await;
        assert_eq!(origin_of(&write), "west", "{write:?}");
        let pinned = send(
            listen,
            req(Method::GET, "/items", &[("x-ballast-pin", &pin)]),
        )
        .await;
        assert_eq!(origin_of(&pinned), "west", "{pinned:?}");
    }
    assert_eq!(
        east.stats.count(&Method::POST),
        1,
        "one write before the reload"
    );
}

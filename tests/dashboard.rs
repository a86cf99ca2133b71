//! The live dashboard in a real browser: headless Chromium loads the page
//! from a running proxy, which must list the pool's backends (and its
//! shadow candidate) and keep updating; a screenshot is kept for people to
//! look at.
//!
//! Needs Chromium (`apt-get install chromium`), so it is ignored by a plain
//! `cargo test`; `load-tests/test.sh` installs Chromium and runs it with
//! `cargo test -p ballast --test integration -- --ignored dashboard::`.

use crate::common::*;
use ballast_load_tests::origin::{self, OriginConfig};
use bytes::Bytes;
use http::Method;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn chromium() -> PathBuf {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .map(PathBuf::from)
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is required for this test: apt-get install chromium")
}

/// Run headless Chromium on `url` with extra arguments; returns stdout.
fn headless(url: &str, profile: &Path, extra: &[&str]) -> String {
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--virtual-time-budget=5000",
            "--window-size=1280,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium; run by load-tests/test.sh"]
async fn the_dashboard_shows_the_backends_and_updates() {
    let fast = origin::spawn("127.0.0.1:0".parse().unwrap(), OriginConfig::new("fast"))
        .await
        .unwrap();
    let mut slow_config = OriginConfig::new("slow");
    slow_config.latency = Duration::from_millis(30);
    let slow = origin::spawn("127.0.0.1:0".parse().unwrap(), slow_config)
        .await
        .unwrap();
    let standby = origin::spawn("127.0.0.1:0".parse().unwrap(), OriginConfig::new("standby"))
        .await
        .unwrap();
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\npools: {{web: {{recompute_interval: 200ms, shadow: {{mode: capacity}}, backends: [{{addr: \"{}\", region: east}}, {{addr: \"{}\", region: west, canary: true}}, {{addr: \"{}\", region: east, priority: 1}}]}}}}\nroutes: [{{pool: web}}]\n",
        fast.addr, slow.addr, standby.addr
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[listen, admin]).await;
    let traffic = tokio::spawn(drive(
        listen,
        2,
        Duration::from_secs(12),
        100_000,
        |_, _| request(Method::GET, "x", "/", Bytes::new()),
    ));
    tokio::time::sleep(Duration::from_millis(800)).await;

    let url = format!("http://{admin}/dashboard");
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking({
        let (url, profile) = (url.clone(), profile.path().to_path_buf());
        move || headless(&url, &profile, &["--dump-dom"])
    })
    .await
    .unwrap();
    for backend in [fast.addr, slow.addr, standby.addr] {
        assert!(
            dom.contains(&format!("data-backend=\"web/{backend}\"")),
            "backend {backend} not shown:\n{dom}"
        );
    }
    assert!(dom.contains("data-pool=\"web\""));
    assert!(
        dom.contains("· HTTP/1.1"),
        "how the pool reaches its backends"
    );
    for region in ["east", "west"] {
        assert!(
            dom.contains(&format!("data-region=\"{region}\"")),
            "region {region} not shown:\n{dom}"
        );
    }
    assert!(dom.contains("canary"), "canary state shown");
    for tier in ["0", "1"] {
        assert!(
            dom.contains(&format!("data-tier=\"{tier}\"")),
            "priority tier {tier} not shown:\n{dom}"
        );
    }
    assert!(
        dom.contains(">standby<"),
        "the standby tier is shown as such"
    );
    assert!(
        dom.contains("data-shadow=\"capacity\"") && dom.contains("would differ on"),
        "shadow candidate shown:\n{dom}"
    );
    let updates: u32 = dom
        .split("data-count=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect("update counter");
    assert!(
        updates >= 2,
        "the page polls and re-renders: {updates} updates"
    );
    assert!(!dom.contains("HTTP 5"), "no API errors shown");

    let screenshot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&screenshot);
    tokio::task::spawn_blocking({
        let (url, profile, shot) = (url, profile.path().to_path_buf(), screenshot.clone());
        move || {
            headless(
                &url,
                &profile,
                &[&format!("--screenshot={}", shot.display())],
            )
        }
    })
    .await
    .unwrap();
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot written ({size} bytes)");
    eprintln!("dashboard screenshot: {}", screenshot.display());
    let outcome = traffic.await.unwrap();
    assert_eq!(outcome.count(200), outcome.total(), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Chromium; run by load-tests/test.sh"]
async fn the_dashboard_lists_the_fleet() {
    use crate::common::etcd::Etcd;
    use crate::common::fleet::{pushed, until, Instance, PROPAGATION_LIMIT};
    let etcd = Etcd::start().await;
    let store = etcd.url("/fleet-dashboard");
    let dir = tempfile::tempdir().unwrap();
    let origin = origin_named("o").await;
    pushed(
        &store,
        dir.path(),
        &format!(
            "listeners: [{{address: \"127.0.0.1:1\"}}]\nadmin: {{address: \"127.0.0.1:2\"}}\nserver: {{drain_timeout: 1s}}\npools: {{web: {{recompute_interval: 200ms, backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n",
            origin.addr
        ),
    );
    let one = Instance::start(&store, "one", dir.path()).await;
    let _two = Instance::start(&store, "two", dir.path()).await;
    until("both registered", PROPAGATION_LIMIT * 3, async || {
        let fleet = admin_json(one.admin, "/api/v1/fleet").await;
        fleet["members"].as_array().is_some_and(|m| m.len() == 2)
    })
    .await;
    let url = format!("http://{}/dashboard", one.admin);
    let profile = tempfile::tempdir().unwrap();
    let dom = tokio::task::spawn_blocking({
        let profile = profile.path().to_path_buf();
        move || headless(&url, &profile, &["--dump-dom"])
    })
    .await
    .unwrap();
    for name in ["one", "two"] {
        assert!(
            dom.contains(&format!("data-fleet-member=\"{name}\"")),
            "instance {name} not listed:\n{dom}"
        );
    }
    assert!(dom.contains("one (this)"), "{dom}");
    assert!(dom.contains(&store), "the store is named:\n{dom}");
    assert!(!dom.contains("HTTP 5"), "no API errors shown:\n{dom}");
}

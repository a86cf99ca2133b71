//! Hot reload and the admin endpoint: a live proxy started from a file,
//! reconfigured under load; every admin endpoint's shape; auth; overrides.

use crate::common::*;
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

struct Ports {
    listen: SocketAddr,
    admin: SocketAddr,
}

fn ports() -> Ports {
    Ports {
        listen: SocketAddr::from(([127, 0, 0, 1], free_port())),
        admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
    }
}

fn config(p: &Ports, admin_extra: &str, pools_and_routes: &str) -> String {
    format!(
        "listeners: [{{address: \"{}\"}}]\nadmin: {{address: \"{}\"{admin_extra}}}\nserver: {{threads: 2, drain_timeout: 2s}}\n{pools_and_routes}",
        p.listen, p.admin
    )
}

fn backend(state: &Value, pool: &str, addr: SocketAddr) -> Value {
    state["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pool)
        .and_then(|p| {
            p["backends"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["addr"] == addr.to_string())
        })
        .cloned()
        .unwrap_or_else(|| panic!("no {pool}/{addr} in {state:#}"))
}

async fn post(admin: SocketAddr, path: &str) -> Reply {
    send(admin, admin_request(Method::POST, path, None)).await
}

/// Wait (bounded) until the admin state reports `generation`.
async fn wait_generation(admin: SocketAddr, generation: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = admin_json(admin, "/api/v1/state").await;
        if state["reload"]["generation"].as_u64() >= Some(generation) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "generation {generation} never came: {:#}",
            state["reload"]
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_nothing_and_keep_what_was_learned() {
    let a = origin_named("a").await;
    let b = origin_named("b").await;
    let c = origin_named("c").await;
    let p = ports();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    let write = |body: &str| std::fs::write(&file, config(&p, "", body)).unwrap();
    write(&format!("pools: {{web: {{backends: [{{addr: \"{}\"}}, {{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n", a.addr, b.addr));
    let _ballast = RunningBallast::start_file(&file, &[p.listen, p.admin]).await;

    let load = tokio::spawn(drive(
        p.listen,
        4,
        Duration::from_millis(3500),
        100_000,
        |_, _| request(Method::GET, "x", "/work", Bytes::new()),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let learned = backend(&admin_json(p.admin, "/api/v1/state").await, "web", a.addr)["requests"]
        .as_u64()
        .unwrap();
    assert!(learned > 0);

    // 1: a new route and pool, picked up by the file watcher.
    write(&format!(
        "pools: {{web: {{backends: [{{addr: \"{}\"}}, {{addr: \"{}\"}}]}}, new: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{match: {{path_prefix: /new}}, pool: new}}, {{pool: web}}]\n",
        a.addr, b.addr, c.addr
    ));
    wait_generation(p.admin, 2).await;
    assert_eq!(
        get(p.listen, "x", "/new/thing").await.header("x-origin"),
        Some("c")
    );
    let kept = backend(&admin_json(p.admin, "/api/v1/state").await, "web", a.addr)["requests"]
        .as_u64()
        .unwrap();
    assert!(
        kept >= learned,
        "stats of a kept backend survive: {kept} < {learned}"
    );

    // 2: a backend added (it starts in slow start) and one removed, by POST /reload.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A long slow start, so the new backend is still ramping when looked at.
    write(&format!(
        "pools: {{web: {{slow_start: 30s, backends: [{{addr: \"{}\"}}, {{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n",
        a.addr, c.addr
    ));
    let reply = post(p.admin, "/reload").await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    if body["status"] == "applied" {
        assert_eq!(
            body["added"],
            serde_json::json!([format!("web/{}", c.addr)]),
            "{body:#}"
        );
        assert_eq!(
            body["removed"],
            serde_json::json!([format!("new/{}", c.addr), format!("web/{}", b.addr)]),
            "{body:#}"
        );
    } else {
        // The watcher got there first.
        assert_eq!(body["status"], "unchanged", "{body:#}");
    }
    wait_generation(p.admin, 3).await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert!(
        backend(&state, "web", c.addr)["slow_start_progress"]
            .as_f64()
            .is_some(),
        "new backend ramps: {state:#}"
    );
    assert_eq!(
        get(p.listen, "x", "/new/thing")
            .await
            .header("x-origin")
            .map(|o| o == "a" || o == "c"),
        Some(true)
    );

    let outcome = load.await.unwrap();
    eprintln!("reload under load: {outcome:?}");
    assert!(outcome.total() > 100);
    assert_eq!(
        outcome.count(200),
        outcome.total(),
        "no request failed across reloads: {outcome:?}"
    );
    let b_after = b.stats.count_path("/work");
    tokio::time::sleep(Duration::from_millis(200)).await;
    drive(p.listen, 2, Duration::from_millis(300), 1000, |_, _| {
        request(Method::GET, "x", "/work", Bytes::new())
    })
    .await;
    assert_eq!(
        b.stats.count_path("/work"),
        b_after,
        "a removed backend gets nothing new"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_is_rejected_reported_and_counted() {
    let a = origin_named("a").await;
    let p = ports();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    let good = config(
        &p,
        "",
        &format!(
            "pools: {{web: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n",
            a.addr
        ),
    );
    std::fs::write(&file, &good).unwrap();
    let _ballast = RunningBallast::start_file(&file, &[p.listen, p.admin]).await;

    std::fs::write(
        &file,
        good.replace(
            "routes: [{pool: web}]",
            "routes: [{pool: nowhere}]\nbogus: 1",
        ),
    )
    .unwrap();
    let reply = post(p.admin, "/reload").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["status"], "rejected");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("bogus: unknown field `bogus`"),
        "{body:#}"
    );

    std::fs::write(
        &file,
        good.replace("routes: [{pool: web}]", "routes: [{pool: nowhere}]"),
    )
    .unwrap();
    let reply = post(p.admin, "/reload").await;
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body["errors"],
        serde_json::json!(["routes[0].pool: unknown pool \"nowhere\" (defined pools: web)"])
    );

    assert_eq!(
        get(p.listen, "x", "/").await.status,
        StatusCode::OK,
        "the running configuration stays"
    );
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(state["reload"]["generation"], 1);
    assert!(
        state["reload"]["last_errors"][0]
            .as_str()
            .unwrap()
            .contains("unknown pool"),
        "{:#}",
        state["reload"]
    );
    let metrics = get(p.admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains("ballast_reloads_total{result=\"failed\"} "),
        "{metrics}"
    );

    let listener_change = good.replace(&p.listen.to_string(), "127.0.0.1:1");
    std::fs::write(&file, listener_change).unwrap();
    let body: Value = serde_json::from_slice(&post(p.admin, "/reload").await.body).unwrap();
    assert_eq!(body["status"], "applied");
    assert!(
        body["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("listeners changed"),
        "{body:#}"
    );
    assert_eq!(
        get(p.listen, "x", "/").await.status,
        StatusCode::OK,
        "the old listener keeps serving"
    );
}

/// Lay out `dir` like a Kubernetes ConfigMap volume, or swap its data the
/// way the kubelet's atomic writer does: the file lives in a timestamped
/// directory, `..data` points at that directory, and `ballast.yaml` points
/// at `..data/ballast.yaml`. An update writes a new timestamped directory,
/// points a temporary `..data_tmp` link at it and renames that over
/// `..data` (one atomic step), then removes the old directory.
fn configmap_write(dir: &Path, version: &str, text: &str) {
    use std::os::unix::fs::symlink;
    let data = format!("..2026_01_01_00_00_00.{version}");
    std::fs::create_dir(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("ballast.yaml"), text).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    match old {
        Some(old) => std::fs::remove_dir_all(dir.join(old)).unwrap(),
        None => symlink("..data/ballast.yaml", dir.join("ballast.yaml")).unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_symlink_swap_is_reloaded() {
    let a = origin_named("a").await;
    let b = origin_named("b").await;
    let p = ports();
    let dir = tempfile::tempdir().unwrap();
    let pool = |addr: SocketAddr| {
        config(
            &p,
            "",
            &format!(
                "pools: {{web: {{backends: [{{addr: \"{addr}\"}}]}}}}\nroutes: [{{pool: web}}]\n"
            ),
        )
    };
    configmap_write(dir.path(), "000000001", &pool(a.addr));
    let file = dir.path().join("ballast.yaml");
    assert!(file.symlink_metadata().unwrap().file_type().is_symlink());
    let _ballast = RunningBallast::start_file(&file, &[p.listen, p.admin]).await;
    assert_eq!(get(p.listen, "x", "/").await.header("x-origin"), Some("a"));

    // Only `..data` changes name here: `ballast.yaml` itself is untouched.
    configmap_write(dir.path(), "000000002", &pool(b.addr));
    wait_generation(p.admin, 2).await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(state["reload"]["last_trigger"], "file change", "{state:#}");
    assert_eq!(get(p.listen, "x", "/").await.header("x-origin"), Some("b"));

    // A second swap is seen too (the watch survives the old directory's removal).
    configmap_write(dir.path(), "000000003", &pool(a.addr));
    wait_generation(p.admin, 3).await;
    assert_eq!(get(p.listen, "x", "/").await.header("x-origin"), Some("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_requires_the_token_when_one_is_configured() {
    let a = origin_named("a").await;
    let p = ports();
    let variable = format!("BALLAST_TEST_TOKEN_{}", p.admin.port());
    // SAFETY of the test: the variable name is unique to this test.
    std::env::set_var(&variable, "s3cret-token");
    let yaml = config(
        &p,
        &format!(", token_env: {variable}"),
        &format!(
            "pools: {{web: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n",
            a.addr
        ),
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[p.listen, p.admin]).await;

    for path in [
        "/metrics",
        "/api/v1/state",
        "/api/v1/decisions",
        "/api/v1/config",
    ] {
        let none = send(p.admin, admin_request(Method::GET, path, None)).await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(none.header("www-authenticate"), Some("Bearer"));
        let wrong = send(
            p.admin,
            admin_request(Method::GET, path, Some("s3cret-tokem")),
        )
        .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
        let right = send(
            p.admin,
            admin_request(Method::GET, path, Some("s3cret-token")),
        )
        .await;
        assert_eq!(right.status, StatusCode::OK, "{path}");
    }
    let reload = send(p.admin, admin_request(Method::POST, "/reload", None)).await;
    assert_eq!(reload.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        send(p.admin, admin_request(Method::GET, "/healthz", None))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        send(p.admin, admin_request(Method::GET, "/readyz", None))
            .await
            .status,
        StatusCode::OK
    );

    let config = send(
        p.admin,
        admin_request(Method::GET, "/api/v1/config", Some("s3cret-token")),
    )
    .await
    .text();
    assert!(
        !config.contains("s3cret-token"),
        "the token never appears: {config}"
    );
    assert!(config.contains("<redacted>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_endpoint_answers_in_shape_and_overrides_are_decisions() {
    let a = origin_named("a").await;
    let b = origin_named("b").await;
    let p = ports();
    let yaml = config(
        &p,
        "",
        &format!(
            "pools: {{web: {{recompute_interval: 100ms, max_share: 1.0, backends: [{{addr: \"{}\", region: east}}, {{addr: \"{}\", canary: true}}]}}}}\nroutes: [{{name: all, pool: web}}]\n",
            a.addr, b.addr
        ),
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[p.listen, p.admin]).await;
    drive(p.listen, 2, Duration::from_millis(400), 1000, |_, _| {
        request(Method::GET, "x", "/", Bytes::new())
    })
    .await;

    let state = admin_json(p.admin, "/api/v1/state").await;
    let first = backend(&state, "web", a.addr);
    for field in [
        "share",
        "eligible",
        "healthy",
        "in_flight",
        "latency",
        "error_rate",
        "requests_per_second",
        "why",
        "region",
        "canary",
    ] {
        assert!(first.get(field).is_some(), "state lacks {field}: {first:#}");
    }
    assert_eq!(first["region"], "east");
    assert_eq!(backend(&state, "web", b.addr)["canary"], true);
    assert!(state["reload"].is_null(), "started without a file");

    let config = admin_json(p.admin, "/api/v1/config").await;
    assert_eq!(config["routes"][0]["name"], "all");
    assert_eq!(config["pools"][0]["mode"], "latency");

    // Drain b: it gets no traffic; the override is a decision.
    let id = format!("web/{}", b.addr);
    let reply = post(p.admin, &format!("/api/v1/backends/{id}/drain")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(
        backend(&admin_json(p.admin, "/api/v1/state").await, "web", b.addr)["share"],
        0.0
    );
    let before = b.stats.count_path("/");
    drive(p.listen, 2, Duration::from_millis(300), 1000, |_, _| {
        request(Method::GET, "x", "/", Bytes::new())
    })
    .await;
    assert_eq!(
        b.stats.count_path("/"),
        before,
        "drained backends get nothing"
    );
    assert_eq!(
        post(p.admin, &format!("/api/v1/backends/{id}/undrain"))
            .await
            .status,
        StatusCode::OK
    );

    // Pin a's share.
    let encoded = format!("web%2F{}", a.addr.to_string().replace(':', "%3A"));
    let reply = post(
        p.admin,
        &format!("/api/v1/backends/{encoded}/pin?share=0.7&for=1m"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let pinned = backend(&admin_json(p.admin, "/api/v1/state").await, "web", a.addr);
    assert!(
        (pinned["share"].as_f64().unwrap() - 0.7).abs() < 1e-9,
        "{pinned:#}"
    );
    assert_eq!(pinned["pinned"]["share"], 0.7);
    let lifted = send(
        p.admin,
        admin_request(
            Method::DELETE,
            &format!("/api/v1/backends/web/{}/pin", a.addr),
            None,
        ),
    )
    .await;
    assert_eq!(lifted.status, StatusCode::OK);

    let overrides = admin_json(p.admin, "/api/v1/decisions?kind=override").await;
    let reasons: Vec<&str> = overrides["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 4, "{overrides:#}");
    assert!(reasons[0].starts_with("drained by operator"));
    assert!(reasons[2].starts_with("pinned at 0.700"));
    let filtered = admin_json(
        p.admin,
        &format!("/api/v1/decisions?backend={encoded}&limit=1"),
    )
    .await;
    assert_eq!(filtered["decisions"].as_array().unwrap().len(), 1);

    // Bad input is a clear 4xx and changes nothing.
    for (method, path, status) in [
        (
            Method::POST,
            format!("/api/v1/backends/{id}/pin?share=2"),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/backends/web/10.9.9.9:1/drain".to_string(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::POST,
            format!("/api/v1/backends/{id}/explode"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/api/v1/backends/{id}/drain"),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (
            Method::GET,
            "/api/v1/decisions?limit=0".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/decisions?kind=magic".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::DELETE,
            "/api/v1/state".to_string(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
        (Method::GET, "/nowhere".to_string(), StatusCode::NOT_FOUND),
        (Method::POST, "/reload".to_string(), StatusCode::CONFLICT),
    ] {
        let reply = send(p.admin, admin_request(method.clone(), &path, None)).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.text());
        let body: Value = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|_| panic!("{path}: JSON error body"));
        assert!(body["error"].is_string(), "{body}");
    }

    let metrics = get(p.admin, "localhost", "/metrics").await.text();
    // Summed over backends.
    let count = |text: &str| -> u64 {
        text.lines()
            .filter(|l| {
                l.starts_with("ballast_requests_total{")
                    && l.contains("pool=\"web\",route=\"all\",status_class=\"2xx\"}")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = count(&metrics);
    get(p.listen, "x", "/").await;
    // A request is counted as its handling ends, just after the response.
    let deadline = Instant::now() + Duration::from_secs(5);
    while count(&get(p.admin, "localhost", "/metrics").await.text()) != before + 1 {
        assert!(Instant::now() < deadline, "metrics never moved");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for name in [
        "ballast_backend_share",
        "ballast_request_duration_seconds_bucket",
        "ballast_in_flight_requests",
    ] {
        assert!(metrics.contains(name), "{name} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_is_added_changed_and_removed_by_reload_without_touching_live_state() {
    let a = origin_named("a").await;
    let b = origin_named("b").await;
    let p = ports();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    let with = |shadow: &str| {
        config(
            &p,
            "",
            &format!(
                "pools: {{web: {{recompute_interval: 100ms, {shadow}backends: [{{addr: \"{}\"}}, {{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n",
                a.addr, b.addr
            ),
        )
    };
    std::fs::write(&file, with("")).unwrap();
    let _ballast = RunningBallast::start_file(&file, &[p.listen, p.admin]).await;
    let traffic = |n: usize| async move {
        for _ in 0..n {
            assert_eq!(get(p.listen, "x", "/").await.status, StatusCode::OK);
        }
    };
    traffic(40).await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert!(
        state["pools"][0]["shadow"].is_null(),
        "no shadow configured"
    );
    let served = |state: &Value| {
        [a.addr, b.addr]
            .map(|addr| backend(state, "web", addr)["requests"].as_u64().unwrap())
            .iter()
            .sum::<u64>()
    };
    let learned = served(&state);
    assert!(learned >= 40, "{state:#}");

    // Added.
    std::fs::write(&file, with("shadow: {mode: round_robin}, ")).unwrap();
    let body: Value = serde_json::from_slice(&post(p.admin, "/reload").await.body).unwrap();
    // The file watcher may have applied it first.
    assert!(
        body["status"] == "applied" || body["status"] == "unchanged",
        "{body:#}"
    );
    traffic(40).await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    let shadow = &state["pools"][0]["shadow"];
    assert_eq!(shadow["mode"], "round_robin", "{state:#}");
    assert_eq!(shadow["compared"], 40, "{shadow:#}");
    // Either backend may have taken all 40: the counts only add up.
    assert!(
        served(&state) >= learned + 40,
        "live stats kept across the reload: {state:#}"
    );

    // Only the sample changes: the candidate and its counts are kept.
    std::fs::write(&file, with("shadow: {mode: round_robin, sample: 0.5}, ")).unwrap();
    post(p.admin, "/reload").await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(state["pools"][0]["shadow"]["compared"], 40);
    assert_eq!(state["pools"][0]["shadow"]["sample"], 0.5);

    // Its mode changes: it starts again.
    std::fs::write(&file, with("shadow: {mode: capacity}, ")).unwrap();
    post(p.admin, "/reload").await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(state["pools"][0]["shadow"]["mode"], "capacity");
    assert_eq!(state["pools"][0]["shadow"]["compared"], 0, "counts restart");

    // Removed.
    std::fs::write(&file, with("")).unwrap();
    post(p.admin, "/reload").await;
    traffic(10).await;
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert!(state["pools"][0]["shadow"].is_null());
    let metrics = get(p.admin, "localhost", "/metrics").await.text();
    assert!(!metrics.contains("ballast_shadow_"), "{metrics}");
    assert!(metrics.contains("ballast_backend_share{"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_mutations_and_unknown_hosts_are_refused_without_a_token() {
    let a = origin_named("a").await;
    let p = ports();
    let yaml = config(
        &p,
        ", allowed_hosts: [ballast-admin.internal]",
        &format!(
            "pools: {{web: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: web}}]\n",
            a.addr
        ),
    );
    let _ballast = RunningBallast::start(&yaml, Path::new("."), &[p.listen, p.admin]).await;
    let drain = format!("/api/v1/backends/web/{}/drain", a.addr);
    let with = |pairs: &[(&'static str, &str)], method: Method, path: &str| {
        let mut req = admin_request(method, path, None);
        for (name, value) in pairs {
            req.headers_mut().insert(*name, value.parse().unwrap());
        }
        req
    };

    // A form posted from another site's page.
    let cross = with(&[("origin", "http://evil.example")], Method::POST, &drain);
    let reply = send(p.admin, cross).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert!(reply.text().contains("cross-origin"), "{}", reply.text());
    // A page on a name rebound to 127.0.0.1 reading the state.
    let rebound = with(
        &[("host", "evil.example:9901")],
        Method::GET,
        "/api/v1/state",
    );
    let reply = send(p.admin, rebound).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.text());
    assert!(reply.text().contains("unknown Host"), "{}", reply.text());
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(
        backend(&state, "web", a.addr)["drained"],
        false,
        "nothing drained"
    );

    // Probes answer whatever the Host; an allowed name and curl's own requests work.
    let probe = with(&[("host", "evil.example")], Method::GET, "/healthz");
    assert_eq!(send(p.admin, probe).await.status, StatusCode::OK);
    let named = with(
        &[("host", "ballast-admin.internal:9901")],
        Method::GET,
        "/metrics",
    );
    assert_eq!(send(p.admin, named).await.status, StatusCode::OK);
    let reply = send(p.admin, admin_request(Method::POST, &drain, None)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(backend(&state, "web", a.addr)["drained"], true);
}

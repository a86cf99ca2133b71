//! The `ballast` binary: exit codes and messages of `check`, `gen-cert` and
//! `run`, including startup failures and shutdown by signal.

use crate::common::{free_port, get, wait_listening};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn ballast(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .env_remove("BALLAST_CONFIG")
        .output()
        .expect("run ballast")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn config(listen: SocketAddr, admin: SocketAddr, backend: SocketAddr) -> String {
    format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{drain_timeout: 3s}}\npools: {{p: {{backends: [{{addr: \"{backend}\"}}]}}}}\nroutes: [{{pool: p}}]\n"
    )
}

#[test]
fn version_and_help() {
    let out = ballast(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        stdout(&out).trim(),
        format!("ballast {}", env!("CARGO_PKG_VERSION"))
    );
    let out = ballast(&["--help"]);
    assert!(out.status.success());
    for command in ["run", "check", "gen-cert", "probe"] {
        assert!(stdout(&out).contains(command), "{}", stdout(&out));
    }
    let out = ballast(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn check_reports_a_typo_with_its_meaning_beside_every_other_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "typos.yaml",
        "listeners: [{address: \"127.0.0.1:18080\"}]\nserverr: {threads: 2}\npools:\n  api:\n    modee: latency\n    backends: [{addr: \"127.0.0.1:19001\", regoin: eu}]\n    tls: {ca: missing/ca.pem}\nroutes: [{pool: apii}]\n",
    );
    let out = ballast(&["check", "-c", &path]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let missing = dir.path().join("missing/ca.pem");
    for expected in [
        "5 configuration errors:".to_string(),
        "serverr: unknown field `serverr`; did you mean `server`?".to_string(),
        "pools.api.modee: unknown field `modee`; did you mean `mode`?".to_string(),
        "pools.api.backends[0].regoin: unknown field `regoin`; did you mean `region`?".to_string(),
        format!(
            "pools.api.tls.ca: cannot read certificate file {}",
            missing.display()
        ),
        "routes[0].pool: unknown pool \"apii\" (defined pools: api); did you mean \"api\"?"
            .to_string(),
    ] {
        assert!(err.contains(&expected), "{expected} missing:\n{err}");
    }
}

#[test]
fn check_json_reports_errors_or_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "listeners: [{address: nowhere}]\npools: {p: {backends: [{addr: \"127.0.0.1:1\"}]}}\nroutes: [{pool: p, weigth: 2}]\n",
    );
    let out = ballast(&["check", "--json", "-c", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["configuration"], serde_json::Value::Null);
    let paths: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["routes[0].weigth", "listeners[0].address"],
        "{report:#}"
    );

    let good = write(
        dir.path(),
        "good.yaml",
        &config(
            "127.0.0.1:18080".parse().unwrap(),
            "127.0.0.1:19901".parse().unwrap(),
            "127.0.0.1:19001".parse().unwrap(),
        ),
    );
    let out = ballast(&["check", "--json", "-c", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["errors"], serde_json::json!([]));
    assert_eq!(
        report["configuration"]["pools"][0]["name"], "p",
        "{report:#}"
    );
}

#[test]
fn check_fills_in_environment_variables_and_names_the_unset_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "env.yaml",
        "# ${NOT_EXPANDED_IN_A_COMMENT}\nlisteners: [{address: \"127.0.0.1:${BALLAST_TEST_PORT:-18080}\"}]\npools: {p: {backends: [{addr: \"${BALLAST_TEST_BACKEND}\"}]}}\nroutes: [{pool: p}]\n",
    );
    let run = |backend: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ballast"));
        command.args(["check", "--json", "-c", &path]);
        command
            .env_remove("BALLAST_CONFIG")
            .env_remove("BALLAST_TEST_PORT");
        match backend {
            Some(backend) => command.env("BALLAST_TEST_BACKEND", backend),
            None => command.env_remove("BALLAST_TEST_BACKEND"),
        };
        let out = command.output().unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let report = run(Some("127.0.0.1:19001"));
    assert_eq!(report["valid"], true, "{report:#}");
    let config = &report["configuration"];
    assert_eq!(
        config["listeners"][0]["address"], "127.0.0.1:18080",
        "{config:#}"
    );
    assert_eq!(
        config["pools"][0]["backends"][0]["addr"], "127.0.0.1:19001",
        "{config:#}"
    );

    let report = run(None);
    assert_eq!(report["valid"], false);
    assert_eq!(
        report["errors"],
        serde_json::json!([{
            "path": "line 3",
            "message": "environment variable BALLAST_TEST_BACKEND is unset or empty (write `${BALLAST_TEST_BACKEND:-default}` to give a default)"
        }])
    );
}

#[test]
fn check_reports_ok_or_every_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.yaml",
        &config(
            "127.0.0.1:18080".parse().unwrap(),
            "127.0.0.1:19901".parse().unwrap(),
            "127.0.0.1:19001".parse().unwrap(),
        ),
    );
    let out = ballast(&["check", "-c", &good]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("configuration OK"));
    assert!(
        stdout(&out).contains("p (latency, 1 backends)"),
        "{}",
        stdout(&out)
    );

    let bad = write(
        dir.path(),
        "bad.yaml",
        "listeners: [{address: nowhere}]\npools: {p: {backends: [{addr: \"10.0.0.1\"}]}}\nroutes: [{pool: q}]\n",
    );
    let out = ballast(&["check", "-c", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("3 configuration errors:"), "{err}");
    assert!(
        err.contains("listeners[0].address: invalid socket address \"nowhere\""),
        "{err}"
    );
    assert!(
        err.contains("pools.p.backends[0].addr: invalid address \"10.0.0.1\""),
        "{err}"
    );
    assert!(err.contains("routes[0].pool: unknown pool \"q\""), "{err}");

    for (name, text) in [
        ("broken.yaml", "listeners: [\n"),
        ("binary.yaml", "\u{0}\u{1}\u{2}"),
        ("list.yaml", "- 1\n- 2\n"),
    ] {
        let path = write(dir.path(), name, text);
        let out = ballast(&["check", "-c", &path]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("panicked"),
            "{name}: {}",
            stderr(&out)
        );
    }

    let out = ballast(&["check", "-c", "/nonexistent/ballast.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/ballast.yaml"));
}

#[test]
fn gen_cert_writes_private_keys_privately_and_never_overwrites_silently() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("certs");
    let out_arg = out_dir.to_string_lossy().into_owned();
    let out = ballast(&[
        "gen-cert",
        "--out",
        &out_arg,
        "--name",
        "api.test",
        "--name",
        "127.0.0.1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for file in ["ca.crt", "ca.key", "dev.crt", "dev.key"] {
        assert!(out_dir.join(file).exists(), "{file}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out_dir.join("dev.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    ballast::tls::install_crypto_provider();
    let key =
        ballast::tls::certs::load_certified_key(&out_dir.join("dev.crt"), &out_dir.join("dev.key"))
            .unwrap();
    assert!(ballast::tls::certs::cert_covers_name(&key, "api.test"));

    let again = ballast(&["gen-cert", "--out", &out_arg]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("already exists (use --force to replace)"));
    assert!(ballast(&["gen-cert", "--out", &out_arg, "--force"])
        .status
        .success());
}

#[test]
fn run_refuses_bad_config_and_busy_ports() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.yaml", "listeners: []\n");
    let out = ballast(&["run", "-c", &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("listeners: at least one listener is required"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let cfg = write(
        dir.path(),
        "busy.yaml",
        &config(busy_addr, admin, "127.0.0.1:1".parse().unwrap()),
    );
    let out = ballast(&["run", "-c", &cfg]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot listen on {busy_addr} (proxy listener)")),
        "{err}"
    );
}

/// The `ballast` binary running on a fresh configuration file in front of one origin.
struct RunningBinary {
    child: std::process::Child,
    listen: SocketAddr,
    admin: SocketAddr,
    origin: ballast_load_tests::origin::OriginHandle,
    config_file: String,
    config_text: String,
    _dir: tempfile::TempDir,
}

impl RunningBinary {
    /// Start `ballast [global_args] run -c FILE`, stderr piped, and wait until it listens.
    async fn start(global_args: &[&str]) -> Self {
        Self::start_with(global_args, |_| String::new()).await
    }

    /// Like [`RunningBinary::start`], with `server(dir)` (keys of the
    /// `server` map, `dir` the configuration's directory) added to the
    /// configuration.
    async fn start_with(global_args: &[&str], server: impl FnOnce(&Path) -> String) -> Self {
        let origin = ballast_load_tests::origin::spawn(
            "127.0.0.1:0".parse().unwrap(),
            ballast_load_tests::origin::OriginConfig::new("o"),
        )
        .await
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut config_text = config(listen, admin, origin.addr);
        let server = server(dir.path());
        if !server.is_empty() {
            config_text = config_text.replace(
                "server: {drain_timeout: 3s}",
                &format!("server: {{drain_timeout: 3s, {server}}}"),
            );
        }
        let config_file = write(dir.path(), "run.yaml", &config_text);
        let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(global_args)
            .args(["run", "-c", &config_file])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_listening(listen).await;
        wait_listening(admin).await;
        Self {
            child,
            listen,
            admin,
            origin,
            config_file,
            config_text,
            _dir: dir,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_then_exits_cleanly_on_sigterm() {
    let running = RunningBinary::start(&["--log-format", "json"]).await;
    let (listen, admin, origin) = (running.listen, running.admin, &running.origin);
    let mut child = running.child;

    assert_eq!(get(listen, "x", "/hello").await.text(), "o GET /hello\n");
    let health = get(admin, "localhost", "/healthz").await;
    assert_eq!(health.status, http::StatusCode::OK);
    let metrics = get(admin, "localhost", "/metrics").await.text();
    assert!(
        metrics.contains(&format!(
            "ballast_requests_total{{backend=\"p/{}\",pool=\"p\",route=\"route-0\",status_class=\"2xx\"}} 1",
            origin.addr
        )),
        "{metrics}"
    );
    // The request's bookkeeping ends just after its response is written.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !get(admin, "localhost", "/metrics")
        .await
        .text()
        .contains("ballast_in_flight_requests 0")
    {
        assert!(
            Instant::now() < deadline,
            "in-flight gauge never returned to 0"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(admin, "localhost", "/nope").await.status,
        http::StatusCode::NOT_FOUND
    );

    // `ballast probe`, the container health check: 0 on 2xx, 1 otherwise.
    let ready = format!("http://{admin}/readyz");
    let out = ballast(&["probe", &ready]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("{admin}/readyz: 200"));
    let out = ballast(&["probe", "--timeout", "1s", &format!("http://{admin}/nope")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("status 404"), "{}", stderr(&out));

    // The process describes itself beside its traffic.
    let metrics = crate::common::metrics_text(admin).await;
    let version = format!(
        "ballast_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(metrics.contains(&version), "{metrics}");
    for name in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(
            crate::common::metric_value(&metrics, name, &[]).is_some(),
            "{name}:\n{metrics}"
        );
    }
    assert!(crate::common::metric(&metrics, "process_resident_memory_bytes", &[]) > 1e6);

    let started = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut logs = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
        (status, logs)
    })
    .await
    .unwrap();
    let (status, logs) = status;
    assert!(status.success(), "exit status {status:?}\n{logs}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "an idle proxy exits without waiting out the drain timeout"
    );
    let access_line = logs
        .lines()
        .find(|l| l.contains("\"target\":\"ballast::access\""))
        .expect("a JSON access log line");
    assert!(access_line.contains("\"path\":\"/hello\""), "{access_line}");
    assert!(access_line.contains("\"status\":200"), "{access_line}");
    assert!(logs.contains("drained in"), "{logs}");

    let out = ballast(&["probe", &ready]);
    assert_eq!(out.status.code(), Some(1), "nothing listens any more");
    assert!(stderr(&out).contains("cannot connect"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_line_carries_exactly_the_configured_fields() {
    let fields = "trace_id, client_address, user_agent, bytes_received, bytes_sent, upstream_connect_ms, upstream_first_byte_ms, status, decision_rule";
    let running = RunningBinary::start_with(&["--log-format", "json"], |_| {
        format!("access_log: {{fields: [{fields}]}}")
    })
    .await;
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri("/echo")
        .header("host", "x")
        .header("user-agent", "probe/1.0")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"hello",
        )))
        .unwrap();
    let reply = crate::common::send(running.listen, req).await;
    assert_eq!(reply.text(), "hello");
    let logs = stop_and_read_logs(running.child).await;
    let line = logs
        .lines()
        .find(|l| l.contains("\"target\":\"ballast::access\""))
        .expect("a JSON access log line");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    let mut keys: Vec<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|k| !["timestamp", "level", "target"].contains(k))
        .collect();
    keys.sort_unstable();
    let mut expected: Vec<&str> = fields.split(", ").collect();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{line}");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["client_address"], "127.0.0.1");
    assert_eq!(line["user_agent"], "probe/1.0");
    assert_eq!(line["bytes_received"], 5);
    assert_eq!(line["bytes_sent"], 5);
    assert_eq!(line["status"], 200);
    assert_eq!(
        line["decision_rule"], "pool",
        "no geo rules: chosen in the pool"
    );
    let connect = line["upstream_connect_ms"].as_f64().unwrap();
    let first_byte = line["upstream_first_byte_ms"].as_f64().unwrap();
    assert!(0.0 <= connect && connect <= first_byte, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_line_follows_the_log_format_and_filter() {
    let running = RunningBinary::start(&[]).await;
    let reply = get(running.listen, "x", "/say%20%22hi%22").await;
    assert_eq!(reply.status, http::StatusCode::OK);
    let logs = stop_and_read_logs(running.child).await;
    let line = logs
        .lines()
        .find(|l| l.contains(" INFO ballast::access: "))
        .unwrap_or_else(|| panic!("a text access line: {logs}"));
    assert!(line.contains(" path=\"/say%20%22hi%22\""), "{line}");
    assert!(line.contains(" status=200 "), "{line}");
    assert!(line.contains(" client_address=\"127.0.0.1\""), "{line}");

    let running = RunningBinary::start(&["--log-level", "info,ballast::access=warn"]).await;
    let reply = get(running.listen, "x", "/quiet").await;
    assert_eq!(reply.status, http::StatusCode::OK);
    let logs = stop_and_read_logs(running.child).await;
    assert!(
        logs.contains("drained in"),
        "other lines still logged: {logs}"
    );
    assert!(!logs.contains("ballast::access"), "{logs}");
}

/// The access lines in `path` (each a JSON object), none if it is missing.
fn access_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Wait (at most 10 s) until `ready` holds.
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ready() {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_file_is_reopened_on_sigusr1_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let running = RunningBinary::start_with(&["--log-format", "json"], |_| {
        format!(
            "access_log: {{fields: [path, status], output: \"{}\"}}",
            log.display()
        )
    })
    .await;
    let paths = |lines: &[serde_json::Value]| -> Vec<String> {
        lines
            .iter()
            .map(|line| line["path"].as_str().unwrap().to_string())
            .collect()
    };
    for i in 0..5 {
        let reply = get(running.listen, "x", &format!("/before-{i}")).await;
        assert_eq!(reply.status, http::StatusCode::OK);
    }
    wait_until("5 lines in the access log", || {
        access_lines(&log).len() == 5
    })
    .await;
    std::fs::rename(&log, &rotated).unwrap();
    let signalled = Command::new("kill")
        .args(["-USR1", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(signalled.success());
    wait_until("a new file at the access log's path", || log.exists()).await;
    for i in 0..5 {
        let reply = get(running.listen, "x", &format!("/after-{i}")).await;
        assert_eq!(reply.status, http::StatusCode::OK);
    }
    wait_until("10 lines over both files", || {
        access_lines(&rotated).len() + access_lines(&log).len() == 10
    })
    .await;
    let logs = stop_and_read_logs(running.child).await;

    let old = paths(&access_lines(&rotated));
    let new = paths(&access_lines(&log));
    let before: Vec<String> = (0..5).map(|i| format!("/before-{i}")).collect();
    let after: Vec<String> = (0..5).map(|i| format!("/after-{i}")).collect();
    assert_eq!(old[..5], before[..], "{old:?}");
    // The signal is handled a moment after the new file appears: a line
    // written in between is still in the old file, and none is lost.
    let moved = old.len() - 5;
    assert!(moved < 5, "the reopen took effect: {old:?} {new:?}");
    assert_eq!(old[5..], after[..moved]);
    assert_eq!(new[..], after[moved..]);
    assert_eq!(access_lines(&log)[0]["status"], 200);
    assert!(logs.contains("SIGUSR1: access log reopened"), "{logs}");
    assert!(
        !logs.contains("ballast::access"),
        "no access line on stderr: {logs}"
    );
}

#[test]
fn probe_rejects_urls_it_cannot_probe() {
    for url in ["https://127.0.0.1:9901/readyz", "127.0.0.1:9901", "http://"] {
        let out = ballast(&["probe", url]);
        assert_eq!(out.status.code(), Some(2), "{url}: usage error");
    }
    let out = ballast(&["probe", "--timeout", "soon", "http://127.0.0.1:9/"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_file_changes_reload_a_running_binary() {
    let running = RunningBinary::start(&[]).await;
    let (listen, admin, cfg, first) = (
        running.listen,
        running.admin,
        running.config_file.clone(),
        running.config_text.clone(),
    );
    let mut child = running.child;
    let reload_status = || async move {
        let state: serde_json::Value =
            serde_json::from_slice(&get(admin, "localhost", "/api/v1/state").await.body).unwrap();
        state["reload"].clone()
    };
    let wait_for = |what: &'static str, check: Box<dyn Fn(&serde_json::Value) -> bool + Send>| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status = reload_status().await;
            if check(&status) {
                return status;
            }
            assert!(Instant::now() < deadline, "{what}: {status:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // A file change is picked up by the watcher.
    let second = first.replace("routes: [{pool: p}]", "routes: [{name: renamed, pool: p}]");
    std::fs::write(&cfg, &second).unwrap();
    wait_for("watcher reload", Box::new(|s| s["generation"] == 2)).await;

    // SIGHUP is handled (the default action would kill the process).
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let status = wait_for("SIGHUP reload", Box::new(|s| s["last_trigger"] == "SIGHUP")).await;
    assert_eq!(status["generation"], 2, "unchanged file: nothing applied");
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after SIGHUP"
    );
    assert_eq!(get(listen, "x", "/again").await.text(), "o GET /again\n");

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success());
}

/// One GET on a fresh connection: the status, or what went wrong.
async fn try_get(addr: SocketAddr, path: &str) -> Result<u16, String> {
    use http_body_util::BodyExt;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .uri(path)
        .header("host", "x")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    Ok(status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_upgrade_hands_over_the_sockets_without_a_failed_request() {
    let origin = ballast_load_tests::origin::spawn(
        "127.0.0.1:0".parse().unwrap(),
        ballast_load_tests::origin::OriginConfig::new("o"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let sock = dir.path().join("upgrade.sock");
    let text = config(listen, admin, origin.addr).replace(
        "server: {drain_timeout: 3s}",
        &format!(
            "server: {{drain_timeout: 3s, upgrade_sock: \"{}\"}}",
            sock.display()
        ),
    );
    let file = write(dir.path(), "run.yaml", &text);
    let spawn = |upgrade: bool| {
        let mut args = vec!["run", "-c", file.as_str()];
        if upgrade {
            args.push("--upgrade");
        }
        Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut old = spawn(false);
    wait_listening(listen).await;
    wait_listening(admin).await;

    // A client sends a request every 20 ms, each on a new connection, for 6 s.
    let client = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(6);
        while Instant::now() < deadline {
            outcomes.push(try_get(listen, "/during").await);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        outcomes
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut new = spawn(true);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            Instant::now() < deadline,
            "the new process waits on the socket"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let quit = Command::new("kill")
        .args(["-QUIT", &old.id().to_string()])
        .status()
        .unwrap();
    assert!(quit.success());

    let outcomes = client.await.unwrap();
    let failed: Vec<&Result<u16, String>> = outcomes.iter().filter(|o| **o != Ok(200)).collect();
    println!(
        "{} requests across the upgrade, {} failed",
        outcomes.len(),
        failed.len()
    );
    assert!(outcomes.len() > 100, "{} requests", outcomes.len());
    assert!(failed.is_empty(), "{failed:?}");

    let old_status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = old.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = old.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert!(
        old_status.is_some_and(|s| s.success()),
        "the old process exits cleanly: {old_status:?}"
    );
    assert_eq!(
        try_get(listen, "/after").await,
        Ok(200),
        "the new one serves"
    );
    assert!(
        new.try_wait().unwrap().is_none(),
        "the new one keeps running"
    );
    Command::new("kill")
        .args(["-TERM", &new.id().to_string()])
        .status()
        .unwrap();
    let new_status = tokio::task::spawn_blocking(move || new.wait().unwrap())
        .await
        .unwrap();
    assert!(new_status.success(), "{new_status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_never_appears_in_logs_or_responses() {
    const TOKEN: &str = "tok-9f3c2e7a51d04b86";
    const NEAR_MISS: &str = "tok-9f3c2e7a51d04b87";
    let origin = ballast_load_tests::origin::spawn(
        "127.0.0.1:0".parse().unwrap(),
        ballast_load_tests::origin::OriginConfig::new("o"),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let text = config(listen, admin, origin.addr).replace(
        &format!("admin: {{address: \"{admin}\"}}"),
        &format!("admin: {{address: \"{admin}\", token_env: BALLAST_ADMIN_TOKEN}}"),
    );
    let file = write(dir.path(), "run.yaml", &text);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["--log-format", "json", "--log-level", "debug"])
        .args(["run", "-c", &file])
        .env("BALLAST_ADMIN_TOKEN", TOKEN)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Debug logs are plentiful: read them as they come so the pipe never fills.
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut logs = String::new();
        std::io::Read::read_to_string(&mut stderr_pipe, &mut logs).unwrap();
        logs
    });
    wait_listening(listen).await;
    wait_listening(admin).await;

    let call = |method: http::Method, path: &str, token: Option<&str>| {
        let mut req = crate::common::request(method, "x", path, bytes::Bytes::new());
        if let Some(token) = token {
            req.headers_mut().insert(
                http::header::AUTHORIZATION,
                format!("Bearer {token}").parse().unwrap(),
            );
        }
        req
    };
    let mut bodies = Vec::new();
    for path in [
        "/metrics",
        "/api/v1/state",
        "/api/v1/decisions",
        "/api/v1/config",
        "/healthz",
        "/readyz",
        "/",
    ] {
        for token in [Some(TOKEN), Some(NEAR_MISS), None] {
            let reply = crate::common::send(admin, call(http::Method::GET, path, token)).await;
            bodies.push(format!("{path} {:?} {}", reply.headers, reply.text()));
        }
    }
    // A reload that succeeds and one that fails (its errors are logged).
    let reply = crate::common::send(admin, call(http::Method::POST, "/reload", Some(TOKEN))).await;
    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.text());
    bodies.push(reply.text());
    std::fs::write(&file, text.replace("pools:", "pools: {broken\n")).unwrap();
    let reply = crate::common::send(admin, call(http::Method::POST, "/reload", Some(TOKEN))).await;
    assert_ne!(reply.status, http::StatusCode::OK);
    bodies.push(reply.text());
    // A client sends the token to the proxy, too: it is forwarded (it is the
    // client's header) but never logged.
    let reply =
        crate::common::send(listen, call(http::Method::GET, "/with-auth", Some(TOKEN))).await;
    assert_eq!(reply.status, http::StatusCode::OK);

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let (status, logs) =
        tokio::task::spawn_blocking(move || (child.wait().unwrap(), reader.join().unwrap()))
            .await
            .unwrap();
    assert!(status.success(), "{status:?}\n{logs}");
    // The logs are there and detailed (debug, reload errors, access lines)...
    assert!(logs.contains("\"level\":\"DEBUG\""), "{logs}");
    assert!(logs.contains("/with-auth"), "{logs}");
    assert!(logs.contains("reload"), "{logs}");
    // ...and neither the token nor a guess at it appears anywhere.
    for secret in [TOKEN, NEAR_MISS, "9f3c2e7a51d04b8"] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
        for body in &bodies {
            assert!(!body.contains(secret), "{secret} in a response: {body}");
        }
    }
}

/// SIGTERM a running binary and return its stderr once it has exited.
async fn stop_and_read_logs(mut child: std::process::Child) -> String {
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::task::spawn_blocking(move || {
        child.wait().unwrap();
        let mut logs = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut logs).unwrap();
        logs
    })
    .await
    .unwrap()
}

/// The value of `ballast_client_errors_total{kind}` in a metrics page.
fn client_errors(metrics: &str, kind: &str) -> u64 {
    let series = format!("ballast_client_errors_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {series}in\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaving_clients_are_counted_and_summarised_not_logged_as_errors() {
    use tokio::io::AsyncWriteExt;
    let running = RunningBinary::start(&["--log-format", "json"]).await;
    let (listen, admin) = (running.listen, running.admin);
    let started = Instant::now();
    for _ in 0..20 {
        // Part of a request head, then gone.
        let mut stream = tokio::net::TcpStream::connect(listen).await.unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        drop(stream);
        // An HTTP/1.1 request without Host.
        let answer = crate::common::raw_exchange(listen, b"GET / HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        // A body cut short.
        let mut stream = tokio::net::TcpStream::connect(listen).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(stream);
        // Not HTTP at all.
        crate::common::raw_exchange(listen, b"HELLO THERE\r\n\r\n").await;
    }
    assert_eq!(
        get(listen, "x", "/after").await.status,
        http::StatusCode::OK
    );
    // The last client's error is counted just after it leaves.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let metrics = get(admin, "localhost", "/metrics").await.text();
        if client_errors(&metrics, "reset") >= 20 || Instant::now() > deadline {
            break metrics;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(client_errors(&metrics, "bad_request"), 20, "{metrics}");
    assert!(client_errors(&metrics, "reset") >= 20, "{metrics}");
    let elapsed = started.elapsed();

    let logs = stop_and_read_logs(running.child).await;
    let errors: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines:\n{}",
        errors.len(),
        errors.join("\n")
    );
    let summaries = logs
        .lines()
        .filter(|line| {
            line.contains("\"level\":\"WARN\"") && line.contains("client protocol errors")
        })
        .count();
    let allowed = 1 + elapsed.as_secs() as usize / 10;
    assert!(
        (1..=allowed).contains(&summaries),
        "{summaries} summaries in {elapsed:?}:\n{logs}"
    );
}

//! Configuration files that are not what they seem — a FIFO, a device, a
//! deeply nested document — are refused promptly with a clear error, by a
//! running Ballast's reload (whose admin endpoint keeps answering) and by
//! `ballast check`; the running configuration stays.

use crate::common::*;
use http::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(listen: SocketAddr, admin: SocketAddr, origin: SocketAddr) -> String {
    format!(
        "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 1, drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{origin}\"}}]}}}}\nroutes: [{{pool: p}}]\n"
    )
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
}

/// `POST /reload`, which must answer within 10 s: the errors it reports.
async fn refused_reload(admin: SocketAddr) -> String {
    let reply = tokio::time::timeout(
        Duration::from_secs(10),
        send(admin, admin_request(Method::POST, "/reload", None)),
    )
    .await
    .expect("the reload answers within 10 s");
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.text()
    );
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["status"], "rejected");
    body["errors"].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_a_device_or_deep_nesting_in_place_of_the_config_is_refused_at_once() {
    let origin = origin_named("o").await;
    let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ballast.yaml");
    std::fs::write(&file, config(listen, admin, origin.addr)).unwrap();
    let _ballast = RunningBallast::start_file(&file, &[listen, admin]).await;

    // A FIFO nobody writes to.
    std::fs::remove_file(&file).unwrap();
    mkfifo(&file);
    let errors = refused_reload(admin).await;
    assert!(errors.contains("not a regular file (a FIFO)"), "{errors}");
    // The admin endpoint and the proxy are unaffected.
    let state = admin_json(admin, "/api/v1/state").await;
    assert_eq!(state["reload"]["generation"], 1, "{state:#}");
    assert_eq!(get(listen, "x", "/").await.status, StatusCode::OK);

    // A link to a device that never ends.
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &file).unwrap();
    let errors = refused_reload(admin).await;
    assert!(errors.contains("not a regular file (a device)"), "{errors}");

    // Collections nested 50 000 deep (250 KB).
    std::fs::remove_file(&file).unwrap();
    let deep = format!("pools: {}{}\n", "[".repeat(50_000), "]".repeat(50_000));
    std::fs::write(&file, deep).unwrap();
    let started = Instant::now();
    let errors = refused_reload(admin).await;
    assert!(errors.contains("nested deeper than 64 levels"), "{errors}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused before parsing: {:?}",
        started.elapsed()
    );
    assert_eq!(get(listen, "x", "/").await.status, StatusCode::OK);
}

#[test]
fn check_refuses_a_fifo_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ballast.yaml");
    mkfifo(&fifo);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(["check", "-c"])
        .arg(&fifo)
        .env_remove("BALLAST_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ballast check waited on a FIFO for 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a regular file (a FIFO)"), "{stderr}");
}

//! The `ballast-origin` binary: serves several origins and the control API
//! from one process, and exits cleanly on SIGINT and SIGTERM.

mod common;

use common::{get, request, send};
use http::{Method, StatusCode};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    origins: Vec<(String, SocketAddr)>,
    control: SocketAddr,
}

/// Starts the binary with two origins and the control API on free ports,
/// and reads the addresses it prints.
async fn start() -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast-origin"))
        .args([
            "--origin",
            "a@127.0.0.1:0/5ms",
            "--origin",
            "b@127.0.0.1:0",
            "--control",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut origins = Vec::new();
    for _ in 0..2 {
        let line = next_line(&mut lines).await;
        let name = line["origin ".len()..]
            .split(' ')
            .next()
            .unwrap()
            .to_string();
        origins.push((name, address_in(&line)));
    }
    let control = address_in(&next_line(&mut lines).await);
    Running {
        child,
        lines,
        origins,
        control,
    }
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("a line in time")
        .unwrap()
        .expect("a line before the end of output")
}

fn address_in(line: &str) -> SocketAddr {
    let (_, rest) = line.split_once("listening on ").expect(line);
    rest.split(' ').next().unwrap().parse().expect(line)
}

async fn signal_and_wait(mut running: Running, signal: &str) {
    let pid = running.child.id().unwrap().to_string();
    let sent = Command::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), running.child.wait())
        .await
        .expect("the process stops")
        .unwrap();
    assert!(exit.success(), "{signal}: {exit}");
    let farewell = next_line(&mut running.lines).await;
    assert!(farewell.ends_with("received, stopping"), "{farewell}");
}

#[tokio::test]
async fn serves_origins_and_control_then_stops_on_sigterm() {
    let running = start().await;
    assert_eq!(running.origins[0].0, "a");
    assert_eq!(running.origins[1].0, "b");
    let a = running.origins[0].1;
    let reply = get(a, "/hello").await.unwrap();
    assert_eq!(reply.body, "a GET /hello\n");

    let listed = get(running.control, "/origins").await.unwrap();
    assert_eq!(
        listed.json()["origins"][0]["behaviour"]["latency"]["ms"],
        5.0
    );
    let changed = send(
        running.control,
        request(Method::PUT, "/origins/b", r#"{"error_rate": 1}"#),
    )
    .await
    .unwrap();
    assert_eq!(changed.status, StatusCode::OK);
    let b = running.origins[1].1;
    assert_eq!(
        get(b, "/").await.unwrap().status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    signal_and_wait(running, "-TERM").await;
    assert!(tokio::net::TcpStream::connect(a).await.is_err());
}

#[tokio::test]
async fn stops_on_sigint() {
    let running = start().await;
    signal_and_wait(running, "-INT").await;
}

#[tokio::test]
async fn rejects_a_malformed_origin() {
    let status = Command::new(env!("CARGO_BIN_EXE_ballast-origin"))
        .args(["--origin", "a/b@127.0.0.1:0"])
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(!status.success());
}

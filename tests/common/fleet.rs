//! Fleet mode's test helpers: `ballast` processes following a real etcd
//! ([`super::etcd`]), `ballast config push` and `status`, and a client that
//! says which origin answered.

use super::{drive, free_port, wait_listening, LoadOutcome};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// How long every instance may take to apply what was stored, in these
/// tests: the claim is 1 s, with room for a loaded machine.
pub const PROPAGATION_LIMIT: Duration = Duration::from_secs(3);

pub fn ballast(args: &[&str]) -> Output {
    ballast_with_env(args, &[])
}

/// `ballast ARGS` with `env` added to its environment.
pub fn ballast_with_env(args: &[&str], env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args(args)
        .env_remove("BALLAST_CONFIG_STORE")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run ballast")
}

/// `ballast config push` of `text` (written to a file in `dir`).
pub fn push(store: &str, dir: &Path, text: &str) -> Output {
    push_with_env(store, dir, text, &[])
}

/// [`push`] with `env` added to the environment.
pub fn push_with_env(store: &str, dir: &Path, text: &str, env: &[(String, String)]) -> Output {
    let file = dir.join("push.yaml");
    std::fs::write(&file, text).unwrap();
    ballast_with_env(
        &[
            "config",
            "push",
            "--store",
            store,
            "-c",
            file.to_str().unwrap(),
        ],
        env,
    )
}

pub fn pushed(store: &str, dir: &Path, text: &str) {
    let out = push(store, dir, text);
    assert!(
        out.status.success(),
        "config push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ballast config status --json`.
pub fn status(store: &str) -> serde_json::Value {
    let out = ballast(&["config", "status", "--store", store, "--json"]);
    assert!(
        out.status.success(),
        "config status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status is JSON")
}

/// One `ballast run --config-store` process; SIGKILLed when dropped.
pub struct Instance {
    pub name: String,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
    child: Child,
}

impl Instance {
    /// Start instance `name` on the store, and wait until it listens.
    pub async fn start(store: &str, name: &str, dir: &Path) -> Self {
        Self::start_with_env(store, name, dir, &[]).await
    }

    /// [`Instance::start`] with `env` added to its environment.
    pub async fn start_with_env(
        store: &str,
        name: &str,
        dir: &Path,
        env: &[(String, String)],
    ) -> Self {
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_ballast"))
            .args(["--log-level", "warn", "run", "--config-store", store])
            .args(["--listen", &listen.to_string()])
            .args(["--admin", &admin.to_string()])
            .args(["--instance", name])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_listening(listen).await;
        wait_listening(admin).await;
        Self {
            name: name.to_string(),
            listen,
            admin,
            log,
            child,
        }
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `x-origin` that answered a GET through `listen`.
pub async fn served_by(listen: SocketAddr) -> Result<String, String> {
    let stream = TcpStream::connect(listen)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let request = Request::get("/")
        .header("host", "fleet.test")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let origin = response
        .headers()
        .get("x-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let status = response.status();
    response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok(origin)
}

/// Two keep-alive clients sending GETs through `listen` for `duration`.
pub fn load_on(listen: SocketAddr, duration: Duration) -> tokio::task::JoinHandle<LoadOutcome> {
    tokio::spawn(drive(listen, 2, duration, 100_000, |_, _| {
        Request::get("/")
            .header("host", "fleet.test")
            .body(Full::new(Bytes::new()))
            .unwrap()
    }))
}

/// Wait until `ready` holds, for at most `limit`.
pub async fn until(what: &str, limit: Duration, mut ready: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !ready().await {
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn members(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["members"].as_array().cloned().unwrap_or_default()
}

/// Open-loop GETs through `listen` at `per_second` for `duration`, over
/// four keep-alive connections: each answer's status (0 for a transport
/// error) and when it was really sent, after the start (on a loaded
/// machine a connection falls behind its schedule and catches up later).
pub async fn paced(
    listen: SocketAddr,
    per_second: f64,
    duration: Duration,
) -> Vec<(Duration, u16)> {
    const CONNECTIONS: usize = 4;
    let gap = Duration::from_secs_f64(CONNECTIONS as f64 / per_second);
    let start = Instant::now();
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|worker| {
            tokio::spawn(async move {
                let mut answers = Vec::new();
                let mut sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> = None;
                let mut due = start + gap.mul_f64(worker as f64 / CONNECTIONS as f64);
                while due < start + duration {
                    tokio::time::sleep_until(due.into()).await;
                    due += gap;
                    // A connection the proxy closed after its last answer
                    // (`Connection: close`) is replaced before sending.
                    if sender.as_mut().is_none_or(|s| s.is_closed()) {
                        sender = connect(listen).await;
                    }
                    if let Some(s) = sender.as_mut() {
                        if s.ready().await.is_err() {
                            sender = connect(listen).await;
                        }
                    }
                    let sent = start.elapsed();
                    let Some(s) = sender.as_mut() else {
                        answers.push((sent, 0));
                        continue;
                    };
                    let request = Request::get("/")
                        .header("host", "fleet.test")
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let (status, closing) = match s.send_request(request).await {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let closing = response
                                .headers()
                                .get(http::header::CONNECTION)
                                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                            match response.into_body().collect().await {
                                Ok(_) => (status, closing),
                                Err(_) => (0, true),
                            }
                        }
                        Err(_) => (0, true),
                    };
                    if closing {
                        sender = None;
                    }
                    answers.push((sent, status));
                }
                answers
            })
        })
        .collect();
    let mut answers = Vec::new();
    for worker in workers {
        answers.extend(worker.await.unwrap());
    }
    answers
}

async fn connect(
    listen: SocketAddr,
) -> Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(listen).await.ok()?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    Some(sender)
}

//! One run: a scenario against one contender. Starts the scenario's
//! origins in-process and the proxy as a child process on loopback ports,
//! drives the load, plays the scripted changes, samples Ballast's published
//! shares, then stops everything.

use super::configs::{self, Upstream};
use super::contender::Contender;
use super::load::{self, LoadPlan, Outcome};
use super::plan::{Change, ReadYourWritesPlan, Scenario};
use super::process::{ProxyProcess, Readiness};
use super::published::{self, Sample};
use crate::behaviour::{BehaviourUpdate, Limit};
use crate::origin::{self, OriginConfig, OriginHandle};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;
use tokio::sync::watch;
use tokio::time::Instant;

/// Lead time between readiness and the first request.
const LEAD: Duration = Duration::from_millis(200);

/// How long the scripted changes may still take once the load is over.
const SCRIPT_GRACE: Duration = Duration::from_secs(5);

/// What every run shares.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The `ballast` binary.
    pub ballast: PathBuf,
    /// How long a request may take before the client gives up.
    pub timeout: Duration,
    pub max_in_flight: usize,
}

/// What a run recorded.
#[derive(Debug, Clone)]
pub struct Run {
    pub contender: Contender,
    pub outcomes: Vec<Outcome>,
    /// Ballast only; empty for the others.
    pub published: Vec<Sample>,
}

#[cfg(test)]
impl Run {
    /// A made-up run for the report's tests: 100 reads sent 100 ms apart;
    /// `request(n)` gives the n-th one's latency in ms, status and origin.
    pub fn synthetic(contender: Contender, request: impl Fn(u64) -> (u64, u16, usize)) -> Run {
        use super::load::{Answer, Traffic};
        use std::time::Duration;
        let outcomes = (0..100u64)
            .map(|n| {
                let (latency_ms, status, origin) = request(n);
                Outcome {
                    sent_at: Duration::from_millis(n * 100),
                    latency: Duration::from_millis(latency_ms),
                    answer: Answer::Status(status),
                    origin: Some(origin),
                    traffic: Traffic::Read,
                }
            })
            .collect();
        Run {
            contender,
            outcomes,
            published: vec![],
        }
    }
}

/// Runs `scenario` against `contender`.
pub async fn run(
    scenario: &Scenario,
    contender: Contender,
    settings: &Settings,
) -> Result<Run, String> {
    let origins = start_origins(scenario).await?;
    let upstreams: Vec<Upstream> = scenario
        .backends
        .iter()
        .zip(&origins)
        .map(|(spec, origin)| Upstream {
            addr: origin.addr,
            capacity: spec.capacity,
            canary: spec.canary,
            region: spec.region,
            standby: spec.standby,
        })
        .collect();
    let dir =
        tempfile::tempdir().map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let listen = free_port()?;
    let (command, readiness, admin) = prepare(
        contender,
        dir.path(),
        listen,
        &upstreams,
        scenario.read_your_writes.as_ref(),
        settings,
    )?;
    let proxy = ProxyProcess::start(command, &dir.path().join("proxy.log"), readiness).await?;

    if let Some(admin) = admin {
        let addrs: Vec<SocketAddr> = upstreams.iter().map(|u| u.addr).collect();
        if let Err(error) = published::read_once(admin, &addrs).await {
            proxy.stop().await;
            return Err(format!(
                "cannot read the published shares ({error}); is {} an older build?",
                settings.ballast.display()
            ));
        }
    }
    let start = Instant::now() + LEAD;
    let (stop_sampling, sampling_stopped) = watch::channel(false);
    let sampler = admin.map(|admin| {
        let addrs = upstreams.iter().map(|u| u.addr).collect();
        tokio::spawn(published::sample(admin, addrs, start, sampling_stopped))
    });
    let mut script = tokio::spawn(play(scenario.changes.clone(), origins.clone(), start));
    let plan = LoadPlan {
        target: listen,
        load: scenario.load,
        duration: scenario.duration,
        timeout: settings.timeout,
        max_in_flight: settings.max_in_flight,
        read_your_writes: scenario.read_your_writes,
    };
    let names: Vec<&str> = scenario.backends.iter().map(|b| b.name).collect();
    let outcomes = load::drive(&plan, start, &names).await;
    let _ = stop_sampling.send(true);
    let published = match sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };
    // Every change is due before the load ends; an update still pending
    // now is stuck.
    let played = match tokio::time::timeout(SCRIPT_GRACE, &mut script).await {
        Ok(Ok(played)) => played,
        Ok(Err(e)) => Err(format!("the script failed: {e}")),
        Err(_) => {
            script.abort();
            Err("a scripted change did not complete".to_string())
        }
    };
    proxy.stop().await;
    played?;
    Ok(Run {
        contender,
        outcomes,
        published,
    })
}

async fn start_origins(scenario: &Scenario) -> Result<Vec<Arc<OriginHandle>>, String> {
    let mut origins = Vec::new();
    for spec in &scenario.backends {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let origin = origin::spawn(loopback, OriginConfig::new(spec.name))
            .await
            .map_err(|e| format!("cannot start origin {}: {e}", spec.name))?;
        let initial = BehaviourUpdate {
            latency: Some(spec.latency()),
            server_load: Some(spec.server_load.clone()),
            workers: Some(spec.workers.map_or(Limit::Unlimited, Limit::At)),
            queue: Some(spec.queue.map_or(Limit::Unlimited, Limit::At)),
            ..BehaviourUpdate::default()
        };
        origin
            .update(initial)
            .await
            .map_err(|e| format!("origin {}: {e}", spec.name))?;
        origins.push(Arc::new(origin));
    }
    Ok(origins)
}

/// The command that starts `contender`, when it is ready, and its admin
/// address (Ballast only).
fn prepare(
    contender: Contender,
    dir: &Path,
    listen: SocketAddr,
    upstreams: &[Upstream],
    read_your_writes: Option<&ReadYourWritesPlan>,
    settings: &Settings,
) -> Result<(Command, Readiness, Option<SocketAddr>), String> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map(|()| path)
            .map_err(|e| format!("cannot write {name}: {e}"))
    };
    match contender {
        Contender::Ballast(mode) => {
            let admin = free_port()?;
            let config = write(
                "ballast.yaml",
                configs::ballast_yaml(mode, listen, admin, upstreams, read_your_writes),
            )?;
            let mut command = Command::new(&settings.ballast);
            command
                .args(["--log-level", "warn", "run", "-c"])
                .arg(config);
            let ready = format!("http://{admin}/readyz")
                .parse()
                .map_err(|e| format!("readiness URI: {e}"))?;
            Ok((command, Readiness::Http(ready), Some(admin)))
        }
        Contender::Nginx(balance) => {
            let config = write(
                "nginx.conf",
                configs::nginx_conf(balance, dir, listen, upstreams),
            )?;
            let mut command = Command::new("nginx");
            command
                .arg("-p")
                .arg(dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(config)
                .args(["-g", "daemon off;"]);
            Ok((command, Readiness::Listening(listen), None))
        }
        Contender::Haproxy => {
            let config = write("haproxy.cfg", configs::haproxy_cfg(listen, upstreams))?;
            let mut command = Command::new("haproxy");
            command.arg("-db").arg("-f").arg(config);
            Ok((command, Readiness::Listening(listen), None))
        }
    }
}

/// Applies each change at its moment.
async fn play(
    changes: Vec<Change>,
    origins: Vec<Arc<OriginHandle>>,
    start: Instant,
) -> Result<(), String> {
    for change in changes {
        tokio::time::sleep_until(start + change.at).await;
        let origin = &origins[change.backend];
        origin
            .update(change.update)
            .await
            .map_err(|e| format!("cannot change origin {}: {e}", origin.name()))?;
    }
    Ok(())
}

/// A loopback address with a port free at the moment of asking.
fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

//! The proxy under test as a child process: started with its output in a
//! log file, awaited until ready, stopped with SIGTERM (SIGKILL if it
//! lingers). A handle dropped without being stopped (an error, Ctrl-C)
//! sends SIGTERM, which every contender answers by exiting (nginx's master
//! takes its workers down with it, which SIGKILL would not do).

use super::fetch::Fetcher;
use http::Uri;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// How long a proxy may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(15);
/// How long a stopped proxy may take to exit before it is killed.
const EXIT_WITHIN: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(50);

/// When a started proxy counts as ready.
pub enum Readiness {
    /// `GET` of this URI answers 200.
    Http(Uri),
    /// The address accepts TCP connections.
    Listening(SocketAddr),
}

pub struct ProxyProcess {
    child: Child,
    log: PathBuf,
}

impl ProxyProcess {
    /// Starts `command` (stdout and stderr to `log`) and waits until
    /// `readiness` holds.
    pub async fn start(
        mut command: Command,
        log: &Path,
        readiness: Readiness,
    ) -> Result<Self, String> {
        let output =
            File::create(log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let errors = output
            .try_clone()
            .map_err(|e| format!("cannot share {}: {e}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", command.as_std().get_program()))?;
        let mut process = Self {
            child,
            log: log.to_path_buf(),
        };
        process.wait_ready(&readiness).await?;
        Ok(process)
    }

    async fn wait_ready(&mut self, readiness: &Readiness) -> Result<(), String> {
        let fetcher = Fetcher::new(Duration::from_secs(1));
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "exited during startup ({status}){}",
                    self.log_tail()
                ));
            }
            let ready = match readiness {
                Readiness::Http(uri) => matches!(fetcher.get(uri).await, Ok((200, _))),
                Readiness::Listening(addr) => TcpStream::connect(addr).await.is_ok(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {READY_WITHIN:?}{}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within [`EXIT_WITHIN`].
    pub async fn stop(mut self) {
        self.terminate();
        if tokio::time::timeout(EXIT_WITHIN, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// SIGTERM, unless it has already exited.
    fn terminate(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// The last lines of the log, to explain a failure.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(10)..].join("\n  ");
        match tail.is_empty() {
            true => String::new(),
            false => format!("; its output ends with:\n  {tail}"),
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

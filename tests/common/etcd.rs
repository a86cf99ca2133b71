//! A real etcd server (Debian's `etcd-server`) on free loopback ports, with
//! its data in a temporary directory; it can be killed and started again on
//! the same ports and data, as an outage would.

use super::free_port;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One etcd member, killed when dropped.
pub struct Etcd {
    pub client: SocketAddr,
    peer: SocketAddr,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    /// Start etcd and wait until it reports itself healthy.
    pub async fn start() -> Self {
        let mut etcd = Self {
            client: SocketAddr::from(([127, 0, 0, 1], free_port())),
            peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
            data: tempfile::tempdir().unwrap(),
            child: None,
        };
        etcd.restart().await;
        etcd
    }

    /// The store URL of a fleet under `prefix` (e.g. `/ballast`).
    pub fn url(&self, prefix: &str) -> String {
        format!("etcd://{}{prefix}", self.client)
    }

    /// Kill etcd at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start etcd (again) on the same ports and data, and wait until healthy.
    pub async fn restart(&mut self) {
        self.kill();
        let client = format!("http://{}", self.client);
        let peer = format!("http://{}", self.peer);
        let child = Command::new("etcd")
            .args(["--name", "default", "--data-dir"])
            .arg(self.data.path().join("etcd"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start etcd ({e}): install etcd-server (load-tests/test.sh does)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.healthy().await {
            assert!(
                Instant::now() < deadline,
                "etcd never became healthy on {}",
                self.client
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether etcd's `/health` answers `"health":"true"`.
    async fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.client).await else {
            return false;
        };
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.client
        );
        if stream.write_all(request.as_bytes()).await.is_err() {
            return false;
        }
        let mut answer = String::new();
        let read =
            tokio::time::timeout(Duration::from_secs(2), stream.read_to_string(&mut answer)).await;
        matches!(read, Ok(Ok(_))) && answer.contains("\"health\":\"true\"")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}

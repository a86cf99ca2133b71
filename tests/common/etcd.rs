//! A real etcd server (Debian's `etcd-server`) on free loopback ports, with
//! its data in a temporary directory; it can be killed and started again on
//! the same ports and data, as an outage would. It may serve its clients
//! over TLS and require client certificates ([`StoreTlsFiles`]); its health
//! is read from a plain metrics port either way.

use super::free_port;
use super::store_tls::StoreTlsFiles;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One etcd member, killed when dropped.
pub struct Etcd {
    pub client: SocketAddr,
    peer: SocketAddr,
    metrics: SocketAddr,
    tls: Option<StoreTlsFiles>,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    /// Start etcd and wait until it reports itself healthy.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start etcd serving clients over TLS with `tls`'s server certificate,
    /// requiring client certificates signed by its CA.
    pub async fn start_tls(tls: &StoreTlsFiles) -> Self {
        Self::start_with(Some(tls.clone())).await
    }

    async fn start_with(tls: Option<StoreTlsFiles>) -> Self {
        let mut etcd = Self {
            client: SocketAddr::from(([127, 0, 0, 1], free_port())),
            peer: SocketAddr::from(([127, 0, 0, 1], free_port())),
            metrics: SocketAddr::from(([127, 0, 0, 1], free_port())),
            tls,
            data: tempfile::tempdir().unwrap(),
            child: None,
        };
        etcd.restart().await;
        etcd
    }

    /// The store URL of a fleet under `prefix` (e.g. `/ballast`).
    pub fn url(&self, prefix: &str) -> String {
        let scheme = if self.tls.is_some() { "etcds" } else { "etcd" };
        format!("{scheme}://{}{prefix}", self.client)
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
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}", self.client);
        let peer = format!("http://{}", self.peer);
        let mut command = Command::new("etcd");
        command
            .args(["--name", "default", "--data-dir"])
            .arg(self.data.path().join("etcd"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(["--listen-metrics-urls", &format!("http://{}", self.metrics)])
            .args(["--log-level", "error"]);
        if let Some(tls) = &self.tls {
            command
                .arg("--cert-file")
                .arg(&tls.server_cert)
                .arg("--key-file")
                .arg(&tls.server_key)
                .arg("--trusted-ca-file")
                .arg(&tls.ca)
                .arg("--client-cert-auth");
        }
        let child = command
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

    /// Whether etcd's `/health` (on its metrics port) answers
    /// `"health":"true"`.
    async fn healthy(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.metrics).await else {
            return false;
        };
        let request = format!(
            "GET /health HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics
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

//! A real Redis server (Debian's `redis-server`) on a free loopback port,
//! without persistence; killed when dropped or on demand, as an outage. It
//! may serve over TLS and require client certificates ([`StoreTlsFiles`]);
//! its readiness is read from a plain port either way.

use super::free_port;
use super::store_tls::StoreTlsFiles;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Redis {
    /// The plain port.
    pub addr: SocketAddr,
    /// The TLS port, with its certificates.
    tls: Option<(SocketAddr, StoreTlsFiles)>,
    child: Option<Child>,
}

impl Redis {
    /// Start Redis and wait until it answers PING.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// Start Redis with a TLS port beside the plain one, serving `tls`'s
    /// server certificate and requiring client certificates signed by its
    /// CA.
    pub async fn start_tls(tls: &StoreTlsFiles) -> Self {
        let port = SocketAddr::from(([127, 0, 0, 1], free_port()));
        Self::start_with(Some((port, tls.clone()))).await
    }

    async fn start_with(tls: Option<(SocketAddr, StoreTlsFiles)>) -> Self {
        let mut redis = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            tls,
            child: None,
        };
        redis.restart().await;
        redis
    }

    /// Start Redis (again) on the same port, empty, and wait until it
    /// answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let addr = self.addr;
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no"]);
        if let Some((tls_addr, files)) = &self.tls {
            command
                .args(["--tls-port", &tls_addr.port().to_string()])
                .arg("--tls-cert-file")
                .arg(&files.server_cert)
                .arg("--tls-key-file")
                .arg(&files.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&files.ca)
                .args(["--tls-auth-clients", "yes"]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}): install it (load-tests/test.sh does)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers_ping().await {
            assert!(Instant::now() < deadline, "redis never answered on {addr}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `rediss://` to the TLS port when there is one, else `redis://`.
    pub fn url(&self) -> String {
        match &self.tls {
            Some((tls_addr, _)) => format!("rediss://{tls_addr}"),
            None => format!("redis://{}", self.addr),
        }
    }

    /// Kill Redis at once (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(self.addr).await else {
            return false;
        };
        if stream.write_all(b"PING\r\n").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        let read = tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut answer));
        matches!(read.await, Ok(Ok(_))) && &answer == b"+PONG\r\n"
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

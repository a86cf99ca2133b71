//! A real Redis server (Debian's `redis-server`) on a free loopback port,
//! without persistence; killed when dropped or on demand, as an outage.

use super::free_port;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Redis {
    pub addr: SocketAddr,
    child: Option<Child>,
}

impl Redis {
    /// Start Redis and wait until it answers PING.
    pub async fn start() -> Self {
        let mut redis = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
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
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no"])
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

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
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

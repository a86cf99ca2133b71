//! A raw TCP client for requests no well-behaved HTTP client would send:
//! write exact bytes, read whatever comes back until the server closes.

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Write `bytes` on a fresh connection and read until the server closes it
/// (or 3 s pass); the answer as lossy text. The write side stays open, so
/// the server decides when the request ends.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    exchange(addr, bytes, false).await
}

/// Like [`raw_exchange`], but the client shuts its write side after the
/// bytes, so a server waiting for more sees the end of the stream.
pub async fn raw_exchange_half_closed(addr: SocketAddr, bytes: &[u8]) -> String {
    exchange(addr, bytes, true).await
}

async fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(bytes).await;
    if half_close {
        let _ = stream.shutdown().await;
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The first line of an answer read by [`raw_exchange`].
pub fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

//! Aborting a connection with a TCP reset (RST) instead of an orderly close.
//!
//! hyper owns a connection's socket while it serves it, so a request
//! handler cannot close the socket itself. Instead it pulls the
//! connection's [`ResetSwitch`]: the task serving the connection stops and
//! drops hyper's connection, and the [`ResettableStream`] hyper was reading
//! from sets `SO_LINGER` to zero as it is dropped. Closing a socket with a
//! zero linger makes the kernel send RST rather than FIN, so the client
//! sees "connection reset by peer" rather than a clean end of stream.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Asks the task serving a connection to abort it with a reset.
#[derive(Debug, Default)]
pub(crate) struct ResetSwitch {
    pulled: AtomicBool,
    notify: Notify,
}

impl ResetSwitch {
    pub(crate) fn pull(&self) {
        self.pulled.store(true, Ordering::SeqCst);
        // Stores a permit when the serving task is not waiting yet.
        self.notify.notify_one();
    }

    /// Resolves once the switch is pulled (a single waiter is expected).
    pub(crate) async fn pulled(&self) {
        self.notify.notified().await;
    }

    fn is_pulled(&self) -> bool {
        self.pulled.load(Ordering::SeqCst)
    }
}

/// A TCP stream that closes with RST when its switch was pulled.
#[derive(Debug)]
pub(crate) struct ResettableStream {
    stream: TcpStream,
    switch: Arc<ResetSwitch>,
}

impl ResettableStream {
    pub(crate) fn new(stream: TcpStream, switch: Arc<ResetSwitch>) -> Self {
        Self { stream, switch }
    }
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.switch.is_pulled() {
            // If the option cannot be set, the socket closes normally (FIN).
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

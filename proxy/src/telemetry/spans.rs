//! The span of a request, as the proxy records it once the request is done,
//! and the bounded queue that carries it to the exporter
//! ([`super::otlp`]). Recording never waits: a span that finds the queue
//! full is dropped and counted (`ballast_trace_spans_total{outcome=
//! "queue_full"}`), so a slow or absent collector costs requests nothing.

use prometheus::IntCounter;
use std::sync::Mutex;
use std::time::SystemTime;
use tokio::sync::mpsc;

/// How many finished spans may wait for the exporter.
pub const QUEUE_CAPACITY: usize = 16_384;

/// One request as a span: Ballast's span in the request's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpan {
    pub trace_id: u128,
    pub span_id: u64,
    /// The caller's span, when the request came with a `traceparent`.
    pub parent_id: Option<u64>,
    pub flags: u8,
    pub start: SystemTime,
    pub end: SystemTime,
    pub method: http::Method,
    pub path: String,
    pub host: Option<String>,
    /// The response status sent (0: none was).
    pub status: u16,
    pub client_address: Option<std::net::IpAddr>,
    pub route: Option<String>,
    pub pool: Option<String>,
    /// The backend of the last attempt.
    pub backend: Option<String>,
    /// The last attempt's backend's region.
    pub region: Option<String>,
    pub attempts: usize,
    pub decision_rule: Option<String>,
    /// What failed, when the request ended in an error.
    pub error: Option<String>,
}

/// Finished spans on their way to the exporter.
pub struct SpanQueue {
    sender: mpsc::Sender<RequestSpan>,
    receiver: Mutex<Option<mpsc::Receiver<RequestSpan>>>,
    dropped: IntCounter,
}

impl SpanQueue {
    /// A queue counting the spans it drops in `dropped`.
    pub fn new(dropped: IntCounter) -> Self {
        Self::with_capacity(QUEUE_CAPACITY, dropped)
    }

    fn with_capacity(capacity: usize, dropped: IntCounter) -> Self {
        let (sender, receiver) = mpsc::channel(capacity);
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            dropped,
        }
    }

    /// Queue `span` for export, or drop it when the queue is full.
    pub fn push(&self, span: RequestSpan) {
        if self.sender.try_send(span).is_err() {
            self.dropped.inc();
        }
    }

    /// The receiving end, for the one exporter (`None` once taken).
    pub fn take_receiver(&self) -> Option<mpsc::Receiver<RequestSpan>> {
        self.receiver.lock().ok()?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn span(id: u64) -> RequestSpan {
        RequestSpan {
            trace_id: 1,
            span_id: id,
            parent_id: None,
            flags: 1,
            start: SystemTime::UNIX_EPOCH,
            end: SystemTime::UNIX_EPOCH,
            method: http::Method::GET,
            path: "/".into(),
            host: None,
            status: 200,
            client_address: None,
            route: None,
            pool: None,
            backend: None,
            region: None,
            attempts: 1,
            decision_rule: None,
            error: None,
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let dropped = IntCounter::new("dropped", "test").unwrap();
        let queue = SpanQueue::with_capacity(2, dropped.clone());
        for id in 1..=3 {
            queue.push(span(id));
        }
        assert_eq!(dropped.get(), 1);
        let mut receiver = queue.take_receiver().unwrap();
        assert_eq!(receiver.try_recv().unwrap().span_id, 1);
        assert_eq!(receiver.try_recv().unwrap().span_id, 2);
        assert!(receiver.try_recv().is_err());
        assert!(queue.take_receiver().is_none(), "one exporter only");
    }
}

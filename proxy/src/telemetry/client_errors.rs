//! Client protocol errors: requests refused as malformed, clients that
//! reset their connection or fail their handshake, and reads from a client
//! that timed out. They are the client's doing, and a churn of misbehaving
//! clients must not flood the log: each is logged at debug (target
//! `ballast::client`), counted in `ballast_client_errors_total{kind}`, and
//! summarised in at most one WARN per 10 s. Errors on the backend side keep
//! their own levels.
//!
//! The tally is process-wide: Pingora reports the errors it meets before a
//! request exists (a client leaving mid-header, a failed TLS or HTTP/2
//! handshake) only through its log records, which [`super::logging`]
//! classifies and hands here.

use crate::stats::clock;
use prometheus::{IntCounter, IntCounterVec, Opts};
use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::LazyLock;

/// What a client did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientErrorKind {
    /// A request the proxy could not or would not take as sent (`400`, `501`).
    BadRequest,
    /// The client closed or reset its connection before the exchange ended.
    Reset,
    /// Reading from (or writing to) the client timed out.
    Timeout,
    /// The client's TLS or HTTP/2 handshake failed.
    Handshake,
}

impl ClientErrorKind {
    const ALL: [ClientErrorKind; 4] = [
        ClientErrorKind::BadRequest,
        ClientErrorKind::Reset,
        ClientErrorKind::Timeout,
        ClientErrorKind::Handshake,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientErrorKind::BadRequest => "bad_request",
            ClientErrorKind::Reset => "reset",
            ClientErrorKind::Timeout => "timeout",
            ClientErrorKind::Handshake => "handshake",
        }
    }
}

/// The shortest time between two summaries.
const SUMMARY_INTERVAL_MS: u64 = 10_000;

/// `ballast_client_errors_total{kind}`, shared by every metrics registry.
static COUNTER: LazyLock<IntCounterVec> = LazyLock::new(|| {
    IntCounterVec::new(
        Opts::new(
            "client_errors_total",
            "Client protocol errors, by kind (bad_request, reset, timeout, handshake); each is logged at debug",
        ),
        &["kind"],
    )
    .expect("valid metric")
});
static BY_KIND: LazyLock<[IntCounter; 4]> =
    LazyLock::new(|| ClientErrorKind::ALL.map(|kind| COUNTER.with_label_values(&[kind.as_str()])));
/// Errors since the last summary.
static UNSUMMARISED: AtomicU64 = AtomicU64::new(0);
/// When the last summary was logged (`clock::now_ms`, 0 = never).
static LAST_SUMMARY_MS: AtomicU64 = AtomicU64::new(0);

/// The counter, for a metrics registry to include.
pub fn counter() -> IntCounterVec {
    // Every kind shows, at 0 until it happens.
    LazyLock::force(&BY_KIND);
    COUNTER.clone()
}

/// Count a client error of `kind` and log `detail` at debug (plus a summary
/// if none was logged in the last 10 s).
pub fn record(kind: ClientErrorKind, detail: &dyn Display) {
    BY_KIND[kind as usize].inc();
    tracing::debug!(target: "ballast::client", kind = kind.as_str(), "client protocol error: {detail}");
    UNSUMMARISED.fetch_add(1, Ordering::Relaxed);
    let now = clock::now_ms();
    let last = LAST_SUMMARY_MS.load(Ordering::Relaxed);
    if last != 0 && now.saturating_sub(last) < SUMMARY_INTERVAL_MS {
        return;
    }
    if LAST_SUMMARY_MS
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    let count = UNSUMMARISED.swap(0, Ordering::Relaxed);
    let seconds = match last {
        0 => "since start".to_string(),
        last => format!("in the last {} s", (now - last) / 1000),
    };
    tracing::warn!(
        target: "ballast::client",
        errors = count,
        "{count} client protocol errors {seconds} (each logged at debug; by kind in ballast_client_errors_total)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_own_label_and_counter() {
        for kind in ClientErrorKind::ALL {
            let before = COUNTER.with_label_values(&[kind.as_str()]).get();
            record(kind, &"test");
            assert_eq!(
                COUNTER.with_label_values(&[kind.as_str()]).get(),
                before + 1
            );
        }
    }
}

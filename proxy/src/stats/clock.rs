//! Monotonic milliseconds since a process-wide origin. Everything that keeps
//! time-windowed state takes `now_ms: u64` as a parameter, so tests drive it
//! with a fake clock and production reads this one.

use std::sync::OnceLock;
use std::time::Instant;

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Milliseconds since the process started measuring (never 0 after the first call
/// returns, so 0 can mean "never" in atomics).
pub fn now_ms() -> u64 {
    origin().elapsed().as_millis() as u64 + 1
}

/// The same clock in microseconds (for rate limiters).
pub fn now_us() -> u64 {
    origin().elapsed().as_micros() as u64 + 1
}

/// The same clock, for an arbitrary instant (e.g. when a request started).
pub fn ms_at(instant: Instant) -> u64 {
    instant.saturating_duration_since(origin()).as_millis() as u64 + 1
}

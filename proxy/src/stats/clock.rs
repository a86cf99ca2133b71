//! Monotonic milliseconds since a process-wide origin. Everything that keeps
//! time-windowed state takes `now_ms: u64` as a parameter, so tests drive it
//! with a fake clock and production reads this one.
//!
//! Schedules need the time of day as well: [`WallClock`] is the system's
//! wall clock, or a fixed one that tests set.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Wall-clock milliseconds since the Unix epoch, for values that travel
/// between processes (0 if the clock is before 1970).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Wall-clock time for schedules: the system's, or one a test sets.
#[derive(Debug, Clone, Default)]
pub struct WallClock {
    fixed: Option<Arc<AtomicI64>>,
}

impl WallClock {
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that stays at `unix_s` until [`set`](Self::set).
    pub fn fixed(unix_s: i64) -> Self {
        Self {
            fixed: Some(Arc::new(AtomicI64::new(unix_s))),
        }
    }

    /// Move a fixed clock (and every clone of it); a system clock ignores it.
    pub fn set(&self, unix_s: i64) {
        if let Some(fixed) = &self.fixed {
            fixed.store(unix_s, Ordering::Relaxed);
        }
    }

    /// The time now (a fixed clock: its whole second), e.g. to stamp a
    /// decision with.
    pub fn now(&self) -> SystemTime {
        match &self.fixed {
            Some(fixed) => {
                let unix_s = fixed.load(Ordering::Relaxed);
                let offset = Duration::from_secs(unix_s.unsigned_abs());
                if unix_s >= 0 {
                    UNIX_EPOCH + offset
                } else {
                    UNIX_EPOCH - offset
                }
            }
            None => SystemTime::now(),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_unix_s(&self) -> i64 {
        match &self.fixed {
            Some(fixed) => fixed.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        }
    }
}

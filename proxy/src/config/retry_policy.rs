//! A pool's retry policy, as compiled: how many tries, on which failures,
//! and the budget that bounds retries in flight.

pub const DEFAULT_ATTEMPTS: u32 = 2;
pub const DEFAULT_RETRY_BUDGET_PERCENT: f64 = 20.0;
pub const DEFAULT_RETRY_MIN_CONCURRENCY: u32 = 3;

/// A pool's retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total tries per request (1 = no retry); connect failures aside.
    pub attempts: u32,
    pub on: RetryOn,
    pub budget: RetryBudget,
}

/// The failures a request is retried on.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOn {
    /// The connection could not be made: the request never left.
    pub connect_failure: bool,
    /// The connection failed (reset, closed, garbled) after the request may
    /// have reached the backend.
    pub reset: bool,
    /// The backend did not answer (or take the request) in time.
    pub timeout: bool,
    /// Response statuses (5xx) retried, ascending.
    pub statuses: Vec<u16>,
    /// A gRPC call the backend answered UNAVAILABLE trailers-only: it
    /// refused the call before processing it, so even a POST may go to
    /// another backend.
    pub grpc_unavailable: bool,
}

impl Default for RetryOn {
    fn default() -> Self {
        Self {
            connect_failure: true,
            reset: true,
            timeout: true,
            statuses: vec![502, 503, 504],
            grpc_unavailable: false,
        }
    }
}

impl RetryOn {
    /// Whether a response with this status is retried.
    pub fn status(&self, status: u16) -> bool {
        self.statuses.binary_search(&status).is_ok()
    }
}

/// Retries in flight in a pool stay within
/// `max(min_concurrency, percent / 100 × requests in flight)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    pub percent: f64,
    pub min_concurrency: u32,
}

impl RetryBudget {
    /// How many retries may be in flight while `in_flight` requests are.
    pub fn allowed(&self, in_flight: u64) -> u64 {
        let share = (self.percent / 100.0 * in_flight as f64).floor() as u64;
        share.max(self.min_concurrency as u64)
    }
}

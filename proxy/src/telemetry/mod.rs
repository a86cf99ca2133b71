//! What Ballast tells the outside world about itself: Prometheus metrics
//! (`metrics`), the tally of client protocol errors (`client_errors`), the
//! per-request metric series of one configuration (`request_series`), the
//! process's own (`process_metrics`), the log of routing decisions
//! (`decisions`), structured logging (`logging`, written through
//! `buffered_output`), the access log's writer (`access_line`) and its file
//! (`access_file`), and the request spans (`spans`) exported over OTLP
//! (`otlp`).

pub mod access_file;
pub mod access_line;
pub mod buffered_output;
pub mod client_errors;
pub mod decisions;
pub mod logging;
pub mod metrics;
pub mod otlp;
pub mod process_metrics;
pub mod request_series;
pub mod spans;

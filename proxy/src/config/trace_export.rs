//! Span export over OTLP, as compiled from the `tracing` section.

use std::path::PathBuf;
use std::time::Duration;

/// Where and how the request spans are exported.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceExport {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub otlp_endpoint: String,
    pub service_name: String,
    /// The share of the traces Ballast starts that are sampled.
    pub sample_ratio: f64,
    pub export_interval: Duration,
    pub max_batch: usize,
    pub timeout: Duration,
    /// The CA bundle for an `https://` collector (PEM, read when compiled).
    pub ca_pem: Option<Vec<u8>>,
    /// Where the CA bundle was read from.
    pub ca_file: Option<PathBuf>,
}

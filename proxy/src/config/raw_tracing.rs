//! The `tracing` section as written (see [`super::raw`]): where spans are
//! exported over OpenTelemetry's OTLP.

use schemars::JsonSchema;
use serde::Deserialize;

/// A span per request, exported to an OpenTelemetry collector over
/// OTLP/gRPC (W3C `traceparent` is propagated whether or not this is set).
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct RawTracing {
    /// The collector's OTLP/gRPC endpoint: `http://HOST:PORT` (usually port
    /// 4317), or `https://` for TLS.
    pub otlp_endpoint: String,
    /// `service.name` of the spans (default `ballast`).
    pub service_name: Option<String>,
    /// The share of the traces Ballast starts that are sampled, 0 to 1
    /// (default 1). A request that arrives with a `traceparent` keeps its
    /// caller's decision.
    pub sample_ratio: Option<f64>,
    /// How often spans are sent (default 1s; 100ms to 1m); a batch also
    /// goes as soon as it is full.
    pub export_interval: Option<String>,
    /// The most spans in one export request (default 512; 1 to 10000).
    pub max_batch: Option<usize>,
    /// How long one export may take (default 5s).
    pub timeout: Option<String>,
    /// PEM bundle of the CAs an `https://` collector's certificate must chain
    /// to (default: the public roots), relative to this file.
    pub ca_file: Option<String>,
}

//! Exporting request spans ([`super::spans`]) to an OpenTelemetry collector
//! over OTLP/gRPC, as the running configuration's `tracing` section says:
//! spans are sent in batches of up to `max_batch`, at least every
//! `export_interval`; a failed export is tried twice more (after 0.2 s and
//! 0.4 s), then its spans are dropped and counted
//! (`ballast_trace_spans_total{outcome="export_failed"}`), with one warning
//! per run of failures. A new endpoint or CA in a reload takes effect with
//! the next batch; without the section queued spans are discarded. On
//! shutdown what was queued is sent once.
//!
//! Each span carries OpenTelemetry's HTTP server attributes
//! (`http.request.method`, `url.path`, `server.address`,
//! `http.response.status_code`, `client.address`, `error.type`) and
//! Ballast's own: `ballast.route`, `ballast.pool`, `ballast.backend`,
//! `ballast.backend.region`, `ballast.attempts`, `ballast.decision_rule`.

use super::metrics::Metrics;
use super::spans::{RequestSpan, SpanQueue};
use crate::config::TraceExport;
use async_trait::async_trait;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// The waits before the second and third attempt of a failed export.
const RETRY_WAITS: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(400)];

/// How long to wait for spans while no export is configured.
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// The running configuration's `tracing` section, read before each batch.
pub type ExportSettings = Box<dyn Fn() -> Option<TraceExport> + Send + Sync>;

/// The background service exporting the spans of `queue`.
pub struct OtlpExport {
    pub settings: ExportSettings,
    pub queue: Arc<SpanQueue>,
    pub metrics: Arc<Metrics>,
    /// `service.instance.id` of the spans.
    pub instance: String,
}

/// A client for one configured collector.
struct Collector {
    endpoint: String,
    ca_pem: Option<Vec<u8>>,
    client: TraceServiceClient<Channel>,
}

#[async_trait]
impl BackgroundService for OtlpExport {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some(mut receiver) = self.queue.take_receiver() else {
            return;
        };
        let mut collector: Option<Collector> = None;
        let mut failing = false;
        loop {
            let settings = (self.settings)();
            let (wait, max_batch) = settings
                .as_ref()
                .map_or((IDLE_WAIT, 1), |s| (s.export_interval, s.max_batch));
            let (batch, stopping) = collect(&mut receiver, max_batch, wait, &mut shutdown).await;
            if let (Some(settings), false) = (&settings, batch.is_empty()) {
                let attempts = if stopping { 1 } else { 1 + RETRY_WAITS.len() };
                match self.export(settings, &mut collector, batch, attempts).await {
                    Ok(()) if failing => {
                        failing = false;
                        tracing::info!(endpoint = %settings.otlp_endpoint, "span export works again");
                    }
                    Ok(()) => {}
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(endpoint = %settings.otlp_endpoint, "span export failed, spans are dropped until it works: {e}");
                    }
                    Err(_) => {}
                }
            }
            if stopping {
                return;
            }
        }
    }
}

/// The spans that arrive within `wait`, at most `max_batch` (fewer when
/// the batch fills first); whether the server is stopping (then what is
/// queued already is taken at once).
async fn collect(
    receiver: &mut mpsc::Receiver<RequestSpan>,
    max_batch: usize,
    wait: Duration,
    shutdown: &mut pingora::server::ShutdownWatch,
) -> (Vec<RequestSpan>, bool) {
    let deadline = Instant::now() + wait;
    let mut batch = Vec::new();
    while batch.len() < max_batch {
        tokio::select! {
            span = receiver.recv() => match span {
                Some(span) => batch.push(span),
                None => return (batch, true),
            },
            _ = tokio::time::sleep_until(deadline) => break,
            _ = shutdown.changed() => {
                while let (true, Ok(span)) = (batch.len() < max_batch, receiver.try_recv()) {
                    batch.push(span);
                }
                return (batch, true);
            }
        }
    }
    (batch, false)
}

impl OtlpExport {
    /// Send `batch` to the configured collector, in up to `attempts`
    /// tries; the spans are counted as exported or failed.
    async fn export(
        &self,
        settings: &TraceExport,
        collector: &mut Option<Collector>,
        batch: Vec<RequestSpan>,
        attempts: usize,
    ) -> Result<(), String> {
        let spans = batch.len() as u64;
        let request = export_request(settings, &self.instance, batch);
        let mut outcome = Err(String::new());
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(RETRY_WAITS[attempt - 1]).await;
            }
            outcome = match client_for(settings, collector) {
                Ok(client) => client
                    .export(request.clone())
                    .await
                    .map(|_| ())
                    .map_err(|status| format!("{}: {}", status.code(), status.message())),
                Err(e) => Err(e),
            };
            if outcome.is_ok() {
                break;
            }
        }
        let label = if outcome.is_ok() {
            "exported"
        } else {
            "export_failed"
        };
        self.metrics
            .trace_spans
            .with_label_values(&[label])
            .inc_by(spans);
        outcome
    }
}

/// The client for the configured collector, made anew when the endpoint
/// or the CA changed.
fn client_for<'a>(
    settings: &TraceExport,
    collector: &'a mut Option<Collector>,
) -> Result<&'a mut TraceServiceClient<Channel>, String> {
    let current = collector
        .as_ref()
        .is_some_and(|c| c.endpoint == settings.otlp_endpoint && c.ca_pem == settings.ca_pem);
    if !current {
        *collector = Some(Collector {
            endpoint: settings.otlp_endpoint.clone(),
            ca_pem: settings.ca_pem.clone(),
            client: TraceServiceClient::new(channel(settings)?),
        });
    }
    Ok(&mut collector.as_mut().expect("just set").client)
}

/// A lazily connecting channel to the collector.
fn channel(settings: &TraceExport) -> Result<Channel, String> {
    let endpoint = &settings.otlp_endpoint;
    let mut channel = Endpoint::from_shared(endpoint.clone())
        .map_err(|e| format!("{endpoint}: {e}"))?
        .connect_timeout(settings.timeout)
        .timeout(settings.timeout);
    if endpoint.starts_with("https://") {
        let tls = match &settings.ca_pem {
            Some(pem) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
            None => ClientTlsConfig::new().with_webpki_roots(),
        };
        channel = channel
            .tls_config(tls)
            .map_err(|e| format!("{endpoint}: {e}"))?;
    }
    Ok(channel.connect_lazy())
}

/// The OTLP request carrying `spans`.
fn export_request(
    settings: &TraceExport,
    instance: &str,
    spans: Vec<RequestSpan>,
) -> ExportTraceServiceRequest {
    let resource = Resource {
        attributes: vec![
            text("service.name", &settings.service_name),
            text("service.instance.id", instance),
            text("service.version", env!("CARGO_PKG_VERSION")),
        ],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "ballast".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans: spans.into_iter().map(otlp_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One request span as OTLP has it.
fn otlp_span(request: RequestSpan) -> Span {
    let mut attributes = vec![
        text("http.request.method", request.method.as_str()),
        text("url.path", &request.path),
        number("ballast.attempts", request.attempts as i64),
    ];
    if request.status != 0 {
        attributes.push(number("http.response.status_code", request.status.into()));
    }
    let optional = [
        ("server.address", request.host.as_deref()),
        ("ballast.route", request.route.as_deref()),
        ("ballast.pool", request.pool.as_deref()),
        ("ballast.backend", request.backend.as_deref()),
        ("ballast.backend.region", request.region.as_deref()),
        ("ballast.decision_rule", request.decision_rule.as_deref()),
        ("error.type", request.error.as_deref()),
    ];
    attributes.extend(
        optional
            .into_iter()
            .filter_map(|(key, value)| value.map(|v| text(key, v))),
    );
    if let Some(client) = request.client_address {
        attributes.push(text("client.address", &client.to_string()));
    }
    // A server span is an error on a 5xx or when no response was sent.
    let failed = request.status >= 500 || request.status == 0;
    let name = match &request.route {
        Some(route) => format!("{} {route}", request.method),
        None => request.method.to_string(),
    };
    Span {
        trace_id: request.trace_id.to_be_bytes().to_vec(),
        span_id: request.span_id.to_be_bytes().to_vec(),
        parent_span_id: request
            .parent_id
            .map_or_else(Vec::new, |id| id.to_be_bytes().to_vec()),
        flags: request.flags.into(),
        name,
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: unix_nanos(request.start),
        end_time_unix_nano: unix_nanos(request.end),
        attributes,
        status: Some(Status {
            code: if failed {
                status::StatusCode::Error as i32
            } else {
                status::StatusCode::Unset as i32
            },
            message: request.error.unwrap_or_default(),
        }),
        ..Default::default()
    }
}

fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn text(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn number(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

//! `tracing`: the OTLP collector spans go to, with its batching, sampling
//! and TLS settings.

use super::fields::{fraction, Checker};
use crate::config::certs::load_ca_bundle;
use crate::config::raw::RawTracing;
use crate::config::TraceExport;
use std::time::Duration;

const DEFAULT_SERVICE_NAME: &str = "ballast";
const DEFAULT_EXPORT_INTERVAL: Duration = Duration::from_secs(1);
const EXPORT_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));
const DEFAULT_MAX_BATCH: usize = 512;
const MAX_BATCH_LIMIT: usize = 10_000;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) fn compile_tracing(c: &mut Checker, raw: &RawTracing) -> TraceExport {
    let endpoint = raw.otlp_endpoint.trim().to_string();
    let tls = match check_endpoint(&endpoint) {
        Ok(tls) => tls,
        Err(e) => {
            c.error("tracing.otlp_endpoint", e);
            false
        }
    };
    let service_name = raw
        .service_name
        .clone()
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
    if service_name.trim().is_empty() {
        c.error("tracing.service_name", "must not be empty");
    }
    let sample_ratio = fraction(
        c,
        "tracing.sample_ratio".into(),
        raw.sample_ratio,
        1.0,
        0.0..=1.0,
    );
    let export_interval = c.duration(
        "tracing.export_interval",
        raw.export_interval.as_deref(),
        DEFAULT_EXPORT_INTERVAL,
    );
    if !(EXPORT_INTERVAL_RANGE.0..=EXPORT_INTERVAL_RANGE.1).contains(&export_interval) {
        c.error(
            "tracing.export_interval",
            format!("{export_interval:?} is out of range (allowed 100ms to 1m)"),
        );
    }
    let max_batch = raw.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
    if !(1..=MAX_BATCH_LIMIT).contains(&max_batch) {
        c.error(
            "tracing.max_batch",
            format!("{max_batch} is out of range (allowed 1 to {MAX_BATCH_LIMIT})"),
        );
    }
    let timeout = c.duration("tracing.timeout", raw.timeout.as_deref(), DEFAULT_TIMEOUT);
    let ca_file = raw.ca_file.as_deref().map(|file| c.resolve(file));
    let ca_pem = match &ca_file {
        None => None,
        Some(_) if !tls => {
            c.error(
                "tracing.ca_file",
                "only an https:// endpoint uses a CA bundle",
            );
            None
        }
        Some(path) => match load_ca_bundle(path).and_then(|_| {
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        }) {
            Ok(pem) => Some(pem),
            Err(e) => {
                c.error("tracing.ca_file", e);
                None
            }
        },
    };
    TraceExport {
        otlp_endpoint: endpoint,
        service_name,
        sample_ratio,
        export_interval,
        max_batch: max_batch.clamp(1, MAX_BATCH_LIMIT),
        timeout,
        ca_pem,
        ca_file,
    }
}

/// `http://HOST:PORT` or `https://HOST:PORT` (a path is not allowed: OTLP/gRPC
/// has its own); whether it is TLS.
fn check_endpoint(endpoint: &str) -> Result<bool, String> {
    let expected = "expected http://HOST:PORT or https://HOST:PORT (OTLP/gRPC, usually port 4317)";
    let uri: http::Uri = endpoint
        .parse()
        .map_err(|_| format!("\"{endpoint}\" is not a URL: {expected}"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("\"{endpoint}\": {expected}")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("\"{endpoint}\": {expected}"))?;
    if authority.as_str().contains('@') {
        return Err("credentials do not belong in the endpoint".into());
    }
    if authority.port_u16().is_none() || authority.host().is_empty() {
        return Err(format!("\"{endpoint}\" names no port: {expected}"));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(format!(
            "\"{endpoint}\": no path (the OTLP/gRPC service has its own)"
        ));
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_or_https_with_a_port_and_no_path() {
        assert_eq!(check_endpoint("http://127.0.0.1:4317"), Ok(false));
        assert_eq!(check_endpoint("https://otel.internal:4317"), Ok(true));
        for (endpoint, expected) in [
            ("127.0.0.1:4317", "expected http://"),
            ("grpc://127.0.0.1:4317", "expected http://"),
            ("http://127.0.0.1", "names no port"),
            ("http://127.0.0.1:4317/v1/traces", "no path"),
            ("http://u:p@127.0.0.1:4317", "credentials"),
        ] {
            let error = check_endpoint(endpoint).unwrap_err();
            assert!(error.contains(expected), "{endpoint}: {error}");
        }
    }
}

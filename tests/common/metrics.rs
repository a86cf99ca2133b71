//! Reading Ballast's Prometheus metrics in tests.

use super::get;
use std::net::SocketAddr;

/// The admin endpoint's `/metrics` text.
pub async fn metrics_text(admin: SocketAddr) -> String {
    get(admin, "localhost", "/metrics").await.text()
}

/// The value of the first series of `name` (exactly that metric, with or
/// without labels) whose label set contains each of `labels`
/// (e.g. `pool="p"`); `None` when there is no such series.
pub fn metric_value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_set, value) = match rest.strip_prefix('{') {
            Some(labelled) => labelled.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        if !labels.iter().all(|label| label_set.contains(label)) {
            return None;
        }
        Some(value.trim().parse().expect("a metric value is a number"))
    })
}

/// Like [`metric_value`], 0 when the series is absent (a counter that has
/// not counted yet).
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    metric_value(text, name, labels).unwrap_or(0.0)
}

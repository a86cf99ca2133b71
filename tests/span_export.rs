//! A span per request exported over OTLP/gRPC to a local collector: the
//! span is the one the backend saw as its parent (`traceparent`), carries
//! the route, pool, backend, region, attempts and decision rule, marks a
//! failed request as an error, follows the caller's sampling decision and
//! `sample_ratio` for the traces Ballast starts; a collector that is down
//! costs no request, and the spans it missed are counted.

use crate::common::fleet::until;
use crate::common::otlp_receiver::{OtlpReceiver, ReceivedSpan};
use crate::common::*;
use bytes::Bytes;
use http_body_util::Full;
use std::time::Duration;

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

fn traced_get(path: &str, traceparent: Option<&str>) -> http::Request<Full<Bytes>> {
    let mut request = http::Request::builder().uri(path).header("host", "h.test");
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    request.body(Full::new(Bytes::new())).unwrap()
}

async fn spans_of(receiver: &OtlpReceiver, trace: &str, count: usize) -> Vec<ReceivedSpan> {
    until("spans exported", Duration::from_secs(10), async || {
        receiver
            .spans()
            .iter()
            .filter(|s| s.trace_id_hex() == trace)
            .count()
            >= count
    })
    .await;
    receiver
        .spans()
        .into_iter()
        .filter(|s| s.trace_id_hex() == trace)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_is_exported_as_the_span_its_backend_saw_as_parent() {
    let receiver = OtlpReceiver::start().await;
    let origin = origin_named("o").await;
    let dead = dead_addr();
    let proxy = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             pools:\n  p: {{backends: [{{addr: \"{}\", region: eu}}]}}\n  gone: {{backends: [{{addr: \"{dead}\"}}], retries: {{attempts: 1}}}}\n\
             routes:\n  - {{name: broken, match: {{path_prefix: /broken}}, pool: gone}}\n  - {{name: api, pool: p}}\n\
             tracing: {{otlp_endpoint: \"{}\", service_name: edge-test, sample_ratio: 0, export_interval: 100ms}}\n",
            origin.addr,
            receiver.endpoint()
        )
    })
    .await;

    // A sampled caller: exported, whatever sample_ratio says.
    let caller = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    let seen = send(proxy.listen, traced_get("/headers", Some(&caller)))
        .await
        .text();
    let (trace, parent, flags) = seen_traceparent(&seen);
    assert_eq!((trace.as_str(), flags.as_str()), (CLIENT_TRACE, "01"));
    let spans = spans_of(&receiver, CLIENT_TRACE, 1).await;
    let span = &spans[0];
    assert_eq!(
        span.span_id_hex(),
        parent,
        "the backend's parent is the span"
    );
    assert_eq!(span.parent_id_hex(), CLIENT_SPAN);
    assert_eq!(span.span.name, "GET api");
    assert_eq!(span.span.kind, 2, "a server span");
    assert!(span.span.end_time_unix_nano >= span.span.start_time_unix_nano);
    for (key, expected) in [
        ("http.request.method", "GET".to_string()),
        ("url.path", "/headers".to_string()),
        ("server.address", "h.test".to_string()),
        ("http.response.status_code", "200".to_string()),
        ("client.address", "127.0.0.1".to_string()),
        ("ballast.route", "api".to_string()),
        ("ballast.pool", "p".to_string()),
        ("ballast.backend", format!("p/{}", origin.addr)),
        ("ballast.backend.region", "eu".to_string()),
        ("ballast.attempts", "1".to_string()),
    ] {
        assert_eq!(
            span.attribute(key).as_deref(),
            Some(expected.as_str()),
            "{key}: {span:?}"
        );
    }
    assert!(
        span.attribute("ballast.decision_rule").is_some(),
        "{span:?}"
    );
    assert_eq!(span.span.status.as_ref().map(|s| s.code), Some(0));
    assert_eq!(
        span.resource_attribute("service.name").as_deref(),
        Some("edge-test")
    );

    // A failed request: an error span with its status and cause.
    let broken_trace = "0af7651916cd43dd8448eb211c80319c";
    let reply = send(
        proxy.listen,
        traced_get(
            "/broken",
            Some(&format!("00-{broken_trace}-b7ad6b7169203331-01")),
        ),
    )
    .await;
    assert_eq!(reply.status, 502);
    let failed = &spans_of(&receiver, broken_trace, 1).await[0];
    assert_eq!(
        failed.span.status.as_ref().map(|s| s.code),
        Some(2),
        "{failed:?}"
    );
    assert_eq!(
        failed.attribute("http.response.status_code").as_deref(),
        Some("502")
    );
    assert_eq!(failed.attribute("ballast.route").as_deref(), Some("broken"));
    assert!(failed.attribute("error.type").is_some(), "{failed:?}");

    // Not sampled by the caller, or started by Ballast at sample_ratio 0:
    // propagated unsampled, never exported.
    let unsampled_trace = "11111111111111111111111111111111";
    let seen = send(
        proxy.listen,
        traced_get(
            "/headers",
            Some(&format!("00-{unsampled_trace}-b7ad6b7169203331-00")),
        ),
    )
    .await
    .text();
    assert_eq!(seen_traceparent(&seen).2, "00");
    let seen = send(proxy.listen, traced_get("/headers", None))
        .await
        .text();
    let (started, _, flags) = seen_traceparent(&seen);
    assert_eq!(flags, "00", "sample_ratio 0 starts unsampled traces");
    // A later sampled request is exported; the two before it never are.
    let last_trace = "22222222222222222222222222222222";
    send(
        proxy.listen,
        traced_get(
            "/headers",
            Some(&format!("00-{last_trace}-b7ad6b7169203331-01")),
        ),
    )
    .await;
    spans_of(&receiver, last_trace, 1).await;
    let exported: Vec<String> = receiver.spans().iter().map(|s| s.trace_id_hex()).collect();
    assert!(
        !exported.contains(&unsampled_trace.to_string()),
        "{exported:?}"
    );
    assert!(!exported.contains(&started), "{exported:?}");
    assert_eq!(exported.len(), 3, "{exported:?}");
    let metrics = metrics_text(proxy.admin).await;
    assert_eq!(
        metric_value(
            &metrics,
            "ballast_trace_spans_total",
            &["outcome=\"exported\""]
        ),
        Some(3.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_costs_no_request() {
    let origin = origin_named("o").await;
    let nowhere = dead_addr();
    let proxy = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             pools: {{p: {{backends: [{{addr: \"{}\"}}]}}}}\nroutes: [{{pool: p}}]\n\
             tracing: {{otlp_endpoint: \"http://{nowhere}\", export_interval: 100ms, timeout: 1s}}\n",
            origin.addr
        )
    })
    .await;
    let outcome = drive(proxy.listen, 2, Duration::from_millis(500), 40, |_, _| {
        traced_get("/", None)
    })
    .await;
    assert!(outcome.total() > 0);
    assert_eq!(outcome.count(200), outcome.total(), "{outcome:?}");
    let sent = outcome.total() as f64;
    until(
        "the missed spans counted",
        Duration::from_secs(20),
        async || {
            let metrics = metrics_text(proxy.admin).await;
            metric_value(
                &metrics,
                "ballast_trace_spans_total",
                &["outcome=\"export_failed\""],
            ) == Some(sent)
        },
    )
    .await;
}

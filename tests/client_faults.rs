//! A client's own faults are not its backend's: malformed requests and
//! bodies are refused or dropped without counting against a backend,
//! ejecting it, or being retried elsewhere.

use crate::common::*;
use serde_json::Value;

fn backends(state: &Value) -> &Vec<Value> {
    state["pools"][0]["backends"].as_array().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_count_against_or_eject_a_backend() {
    let (a, b) = (origin_named("a").await, origin_named("b").await);
    let list = backend_entries(&[&a, &b]);
    let proxy = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\nserver: {{threads: 2, drain_timeout: 1s}}\npools: {{p: {{outlier: {{consecutive_failures: 3}}, backends: [{list}]}}}}\nroutes: [{{pool: p}}]\n"
        )
    })
    .await;

    // A Connection header naming a header Ballast itself sets.
    for _ in 0..6 {
        raw_exchange_half_closed(
            proxy.listen,
            b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close, X-Forwarded-For\r\n\r\n",
        )
        .await;
    }
    // A chunked body whose chunk-size line is not hexadecimal.
    for _ in 0..12 {
        raw_exchange_half_closed(
            proxy.listen,
            b"POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        )
        .await;
    }
    // A body shorter than its Content-Length, the client gone.
    for _ in 0..6 {
        raw_exchange_half_closed(
            proxy.listen,
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
        )
        .await;
    }

    let state = admin_json(proxy.admin, "/api/v1/state").await;
    for backend in backends(&state) {
        assert_eq!(backend["errors"], 0, "{backend:#}");
        assert_eq!(backend["times_ejected"], 0, "{backend:#}");
        assert_eq!(backend["consecutive_failures"], 0, "{backend:#}");
        assert_eq!(backend["healthy"], true, "{backend:#}");
    }
    let metrics = get(proxy.admin, "localhost", "/metrics").await.text();
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("ballast_retries_total")),
        "nothing was retried:\n{metrics}"
    );
    let reply = get(proxy.listen, "x", "/after").await;
    assert_eq!(reply.status, 200);
}

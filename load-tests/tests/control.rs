//! The control API over real sockets: listing origins, changing their
//! behaviour, resetting counters, and rejecting bad requests.

mod common;

use ballast_load_tests::behaviour::FailureMode;
use ballast_load_tests::control::{self, ControlHandle};
use ballast_load_tests::latency::LatencyDistribution;
use ballast_load_tests::origin::{self, OriginConfig, OriginHandle};
use common::{get, request, send, Reply};
use http::{Method, StatusCode};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

struct Fixture {
    a: Arc<OriginHandle>,
    b: Arc<OriginHandle>,
    control: ControlHandle,
}

async fn start() -> Fixture {
    let any_port = "127.0.0.1:0".parse().unwrap();
    let a = Arc::new(
        origin::spawn(any_port, OriginConfig::new("a"))
            .await
            .unwrap(),
    );
    let b = Arc::new(
        origin::spawn(any_port, OriginConfig::new("b"))
            .await
            .unwrap(),
    );
    let control = control::spawn(any_port, [a.clone(), b.clone()])
        .await
        .unwrap();
    Fixture { a, b, control }
}

impl Fixture {
    async fn call(&self, method: Method, path: &str, body: &str) -> Reply {
        let reply = send(self.control.addr, request(method, path, body))
            .await
            .expect("the control API answers");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        reply
    }

    async fn put_a(&self, body: &str) -> Reply {
        self.call(Method::PUT, "/origins/a", body).await
    }
}

#[tokio::test]
async fn get_lists_every_origin_with_behaviour_and_counters() {
    let fixture = start().await;
    get(fixture.a.addr, "/one").await.unwrap();
    get(fixture.a.addr, "/two").await.unwrap();

    let reply = fixture.call(Method::GET, "/origins", "").await;
    assert_eq!(reply.status, StatusCode::OK);
    let origins = reply.json()["origins"].as_array().unwrap().clone();
    assert_eq!(origins.len(), 2);
    let a = &origins[0];
    assert_eq!(a["name"], "a");
    assert_eq!(a["addr"], fixture.a.addr.to_string());
    assert_eq!(a["in_flight"], 0);
    assert_eq!((&a["busy_workers"], &a["queued"]), (&json!(0), &json!(0)));
    assert_eq!(
        a["behaviour"],
        json!({
            "latency": {"kind": "fixed", "ms": 0.0},
            "error_rate": 0.0,
            "error_status": 503,
            "failure": "healthy",
            "server_load": {"mode": "off"},
            "healthy": true,
            "workers": null,
            "queue": null
        })
    );
    assert_eq!(a["counters"]["total"], 2);
    assert_eq!(a["counters"]["by_method"], json!({"GET": 2}));
    assert_eq!(a["counters"]["by_path"], json!({"/one": 1, "/two": 1}));
    assert_eq!(a["counters"]["duplicates"], 0);
    assert_eq!(origins[1]["name"], "b");
    assert_eq!(origins[1]["counters"]["total"], 0);

    let one = fixture.call(Method::GET, "/origins/b", "").await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json()["addr"], fixture.b.addr.to_string());
}

#[tokio::test]
async fn put_changes_only_the_given_fields() {
    let fixture = start().await;
    let reply = fixture
        .put_a(
            r#"{
                "latency": {"kind": "normal", "mean_ms": 5, "stddev_ms": 1.5},
                "error_rate": 0.25,
                "error_status": 502,
                "server_load": {"mode": "honest", "slots": 8},
                "healthy": false
            }"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let behaviour = reply.json()["behaviour"].clone();
    assert_eq!(
        behaviour["latency"],
        json!({"kind": "normal", "mean_ms": 5.0, "stddev_ms": 1.5})
    );
    assert_eq!(behaviour["error_rate"], 0.25);
    assert_eq!(behaviour["error_status"], 502);
    assert_eq!(behaviour["failure"], "healthy", "unchanged");
    assert_eq!(
        behaviour["server_load"],
        json!({"mode": "honest", "slots": 8})
    );
    assert_eq!(behaviour["healthy"], false);

    let in_process = fixture.a.behaviour();
    assert_eq!(
        in_process.latency,
        LatencyDistribution::Normal {
            mean: Duration::from_millis(5),
            stddev: Duration::from_micros(1500),
        }
    );
    assert_eq!(in_process.error_rate, 0.25);
    assert_eq!(fixture.b.behaviour(), Default::default(), "b is untouched");
    let health = get(fixture.a.addr, "/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        health
            .header("server-load")
            .map(|v| v.contains("capacity=1600")),
        Some(true),
        "8 slots at a 5 ms mean: 1600 req/s"
    );
}

#[tokio::test]
async fn put_failure_modes_take_effect_before_the_answer() {
    let fixture = start().await;
    let addr = fixture.a.addr;
    let reply = fixture.put_a(r#"{"failure": "refuse"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["behaviour"]["failure"], "refuse");
    assert!(TcpStream::connect(addr).await.is_err());

    let reply = fixture.put_a(r#"{"failure": "healthy"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(get(addr, "/").await.unwrap().status, StatusCode::OK);

    let reply = fixture.put_a(r#"{"failure": "reset"}"#).await;
    assert_eq!(reply.json()["behaviour"]["failure"], "reset");
    assert!(get(addr, "/").await.is_err());
    let counters = fixture.call(Method::GET, "/origins/a", "").await.json()["counters"].clone();
    assert_eq!(counters["resets"], 1);
}

#[tokio::test]
async fn a_port_taken_meanwhile_keeps_the_origin_refusing() {
    let fixture = start().await;
    let addr = fixture.a.addr;
    assert_eq!(
        fixture.put_a(r#"{"failure": "refuse"}"#).await.status,
        StatusCode::OK
    );
    let squatter = tokio::net::TcpListener::bind(addr).await.unwrap();

    let reply = fixture
        .put_a(r#"{"failure": "healthy", "healthy": false}"#)
        .await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    let message = reply.json()["error"].as_str().unwrap().to_string();
    assert!(message.starts_with("cannot listen again:"), "{message}");
    assert_eq!(fixture.a.behaviour().failure, FailureMode::Refuse);
    assert!(
        fixture.a.behaviour().healthy,
        "nothing of the update applied"
    );

    drop(squatter);
    assert_eq!(
        fixture.put_a(r#"{"failure": "healthy"}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(get(addr, "/").await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn reset_counters_zeroes_one_origin() {
    let fixture = start().await;
    get(fixture.a.addr, "/").await.unwrap();
    get(fixture.b.addr, "/").await.unwrap();
    let reply = fixture
        .call(Method::POST, "/origins/a/reset-counters", "")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["counters"]["total"], 0);
    assert_eq!(fixture.a.stats.total(), 0);
    assert_eq!(fixture.b.stats.total(), 1);
}

#[tokio::test]
async fn bad_updates_are_rejected_with_a_message_and_change_nothing() {
    let fixture = start().await;
    for (body, expected) in [
        ("", "EOF while parsing"),
        ("{", "EOF while parsing"),
        ("not json", "invalid update: expected ident"),
        (r#"{"colour": "red"}"#, "unknown field `colour`"),
        (r#"{"error_rate": 2}"#, "error_rate must be between 0 and 1"),
        (r#"{"error_rate": 0.5, "error_status": 404}"#, "5xx"),
        (r#"{"failure": "explode"}"#, "unknown variant `explode`"),
        (r#"{"latency": {"kind": "fixed", "ms": -1}}"#, "0 or more"),
        (r#"{"latency": {"kind": "fixed", "ms": 1e9}}"#, "at most"),
        (
            r#"{"server_load": {"mode": "honest", "slots": 0}}"#,
            "slots",
        ),
        (
            r#"{"server_load": {"mode": "fixed", "value": "line\nbreak"}}"#,
            "header value",
        ),
    ] {
        let reply = fixture.put_a(body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let message = reply.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(fixture.a.behaviour(), Default::default());

    let too_big = format!(r#"{{"error_rate": 0{}}}"#, " ".repeat(70_000));
    let reply = fixture.put_a(&too_big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn unknown_origins_paths_and_methods_are_refused() {
    let fixture = start().await;
    for (method, path, status) in [
        (Method::PUT, "/origins/nope", StatusCode::NOT_FOUND),
        (Method::GET, "/origins/nope", StatusCode::NOT_FOUND),
        (
            Method::POST,
            "/origins/nope/reset-counters",
            StatusCode::NOT_FOUND,
        ),
        (Method::GET, "/", StatusCode::NOT_FOUND),
        (Method::GET, "/origins/a/other", StatusCode::NOT_FOUND),
        (Method::DELETE, "/origins/a", StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/origins", StatusCode::METHOD_NOT_ALLOWED),
        (
            Method::GET,
            "/origins/a/reset-counters",
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ] {
        let reply = fixture
            .call(method.clone(), path, r#"{"healthy": false}"#)
            .await;
        assert_eq!(reply.status, status, "{method} {path}");
        assert!(reply.json()["error"].is_string(), "{method} {path}");
    }
    assert!(fixture.a.behaviour().healthy);
}

#[tokio::test]
async fn duplicate_names_are_refused() {
    let any_port = "127.0.0.1:0".parse().unwrap();
    let first = Arc::new(
        origin::spawn(any_port, OriginConfig::new("same"))
            .await
            .unwrap(),
    );
    let second = Arc::new(
        origin::spawn(any_port, OriginConfig::new("same"))
            .await
            .unwrap(),
    );
    let error = control::spawn(any_port, [first, second])
        .await
        .err()
        .unwrap();
    assert!(error.to_string().contains("\"same\""), "{error}");
}

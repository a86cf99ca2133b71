//! TLS from Ballast to its backends: a pool with `tls` reaches a real TLS
//! origin (certificates from the project's own dev CA) when the certificate
//! checks out, fails like a refused connection (502, counted against the
//! backend, counted by reason in `ballast_upstream_tls_errors_total`) when
//! it does not, presents a client certificate when asked (mTLS), speaks h2
//! when ALPN says so, and health checks and load polls connect the same way.

use crate::common::tls_origin::{tls_origin, OriginAlpn, TlsOrigin, TlsOriginConfig};
use crate::common::*;
use ballast::tls::devcert::{DevCa, DevLeaf, LeafUse};
use http::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A dev CA and a directory to write PEM files into.
struct Pki {
    dir: TempDir,
    ca: DevCa,
}

impl Pki {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca: DevCa::generate().unwrap(),
        }
    }

    fn leaf(&self, name: &str, usage: LeafUse) -> DevLeaf {
        self.ca.issue(&[name.to_string()], usage).unwrap()
    }

    /// Write `contents` as `name` and return its absolute path.
    fn write(&self, name: &str, contents: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.display().to_string()
    }

    fn ca_file(&self) -> String {
        self.write("ca.crt", &self.ca.cert_pem)
    }
}

/// An HTTP/1.1 origin serving `leaf`, with no client certificate asked.
async fn origin_with(leaf: &DevLeaf) -> TlsOrigin {
    tls_origin(TlsOriginConfig {
        cert_pem: &leaf.cert_pem,
        key_pem: &leaf.key_pem,
        client_ca_pem: None,
        alpn: OriginAlpn::Http1,
    })
    .await
}

/// A Ballast with one pool `api` on `origin`, its `tls` and `extra` lines.
async fn proxy_for(origin: &TlsOrigin, tls: &str, extra: &str) -> LoopbackProxy {
    let backend = origin.addr;
    LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 2, drain_timeout: 1s}}\npools:\n  api:\n    tls: {tls}\n{extra}\
             \x20   backends: [{{addr: \"{backend}\"}}]\nroutes: [{{pool: api}}]\n"
        )
    })
    .await
}

/// The state of pool `api`'s only backend.
async fn backend_state(p: &LoopbackProxy) -> Value {
    let state = admin_json(p.admin, "/api/v1/state").await;
    state["pools"][0]["backends"][0].clone()
}

/// A request through the proxy fails with 502, the backend's failure is
/// counted, and the TLS error is counted with `reason`.
async fn assert_tls_failure(p: &LoopbackProxy, origin: &TlsOrigin, reason: &str) {
    let reply = get(p.listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(
        origin.requests.load(Ordering::SeqCst),
        0,
        "no request got through"
    );
    let text = metrics_text(p.admin).await;
    let backend = format!("backend=\"api/{}\"", origin.addr);
    let counted = metric(
        &text,
        "ballast_upstream_tls_errors_total",
        &["pool=\"api\"", &backend, &format!("reason=\"{reason}\"")],
    );
    assert!(counted >= 1.0, "no {reason} TLS error counted:\n{text}");
    let state = backend_state(p).await;
    assert!(
        state["errors"].as_u64().unwrap() >= 1
            && state["consecutive_failures"].as_u64().unwrap() >= 1,
        "the failure counts against the backend: {state:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_backend_is_reached_over_tls() {
    let pki = Pki::new();
    let origin = origin_with(&pki.leaf("backend.test", LeafUse::Server)).await;
    let tls = format!("{{sni: backend.test, ca: \"{}\"}}", pki.ca_file());
    let p = proxy_for(&origin, &tls, "").await;

    let reply = get(p.listen, "api.test", "/hello").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.text(), "tls origin\n");
    assert_eq!(reply.header("x-origin-version"), Some("HTTP/1.1"));
    assert_eq!(origin.requests.load(Ordering::SeqCst), 1);

    let state = admin_json(p.admin, "/api/v1/state").await;
    let shown = &state["pools"][0]["tls"];
    assert_eq!(shown["sni"], "backend.test");
    assert_eq!(shown["verify"], true);
    assert_eq!(shown["alpn"], "http1");
    assert_eq!(shown["mtls"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_sni_the_certificate_must_name_the_backend_address() {
    let pki = Pki::new();
    let origin = origin_with(&pki.leaf("127.0.0.1", LeafUse::Server)).await;
    let tls = format!("{{ca: \"{}\"}}", pki.ca_file());
    let health =
        "    health: {path: /healthz, interval: 100ms, healthy_after: 1, unhealthy_after: 1}\n";
    let p = proxy_for(&origin, &tls, health).await;

    let reply = get(p.listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while !origin.paths.lock().unwrap().iter().any(|p| p == "/healthz") {
        assert!(
            Instant::now() < deadline,
            "no health check reached the origin"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(backend_state(&p).await["healthy"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_fails_like_a_refused_connection() {
    let pki = Pki::new();
    let origin = origin_with(&pki.leaf("backend.test", LeafUse::Server)).await;
    let tls = format!("{{sni: other.test, ca: \"{}\"}}", pki.ca_file());
    let p = proxy_for(&origin, &tls, "").await;
    assert_tls_failure(&p, &origin, "wrong_name").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_fails_and_verify_false_accepts_it() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let origin = origin_with(&pki.leaf("backend.test", LeafUse::Server)).await;
    let tls = format!("{{sni: backend.test, ca: \"{}\"}}", stranger.ca_file());
    let p = proxy_for(&origin, &tls, "").await;
    assert_tls_failure(&p, &origin, "untrusted").await;
    drop(p);

    let tls = format!(
        "{{sni: backend.test, ca: \"{}\", verify: false}}",
        stranger.ca_file()
    );
    let p = proxy_for(&origin, &tls, "").await;
    let reply = get(p.listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(origin.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_fails() {
    let pki = Pki::new();
    let origin = origin_with(&pki.leaf("backend.test", LeafUse::ExpiredServer)).await;
    let tls = format!("{{sni: backend.test, ca: \"{}\"}}", pki.ca_file());
    let p = proxy_for(&origin, &tls, "").await;
    assert_tls_failure(&p, &origin, "expired").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_requires_a_client_certificate_gets_one() {
    let pki = Pki::new();
    let server = pki.leaf("backend.test", LeafUse::Server);
    let origin = tls_origin(TlsOriginConfig {
        cert_pem: &server.cert_pem,
        key_pem: &server.key_pem,
        client_ca_pem: Some(&pki.ca.cert_pem),
        alpn: OriginAlpn::Http1,
    })
    .await;
    let ca = pki.ca_file();

    let without = format!("{{sni: backend.test, ca: \"{ca}\"}}");
    let p = proxy_for(&origin, &without, "").await;
    let reply = get(p.listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(origin.requests.load(Ordering::SeqCst), 0);
    let text = metrics_text(p.admin).await;
    let refused = ["pool=\"api\"", "reason=\"client_cert_refused\""];
    assert_eq!(
        metric(&text, "ballast_upstream_tls_errors_total", &refused),
        1.0,
        "{text}"
    );
    drop(p);

    let client = pki.leaf("ballast", LeafUse::Client);
    let cert = pki.write("client.crt", &client.cert_pem);
    let key = pki.write("client.key", &client.key_pem);
    let with = format!(
        "{{sni: backend.test, ca: \"{ca}\", client_cert: \"{cert}\", client_key: \"{key}\"}}"
    );
    let p = proxy_for(&origin, &with, "").await;
    let reply = get(p.listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-origin-client-cert"), Some("true"));
    let state = admin_json(p.admin, "/api/v1/state").await;
    assert_eq!(state["pools"][0]["tls"]["mtls"], true);
    let config = admin_json(p.admin, "/api/v1/config").await;
    let shown = config.to_string();
    assert!(
        !shown.contains("PRIVATE KEY") && !shown.contains("client.key"),
        "no key material or key path is shown: {shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_speaks_http2_to_an_h2_only_backend() {
    let pki = Pki::new();
    let leaf = pki.leaf("backend.test", LeafUse::Server);
    let origin = tls_origin(TlsOriginConfig {
        cert_pem: &leaf.cert_pem,
        key_pem: &leaf.key_pem,
        client_ca_pem: None,
        alpn: OriginAlpn::H2,
    })
    .await;
    let ca = pki.ca_file();
    for alpn in ["h2", "h2_or_http1"] {
        let tls = format!("{{sni: backend.test, ca: \"{ca}\", alpn: {alpn}}}");
        let p = proxy_for(&origin, &tls, "").await;
        for _ in 0..3 {
            let reply = get(p.listen, "api.test", "/").await;
            assert_eq!(reply.status, StatusCode::OK, "{alpn}: {}", reply.text());
            assert_eq!(reply.header("x-origin-version"), Some("HTTP/2.0"), "{alpn}");
        }
    }

    // Offering HTTP/1.1 alone, nothing is agreed.
    let tls = format!("{{sni: backend.test, ca: \"{ca}\"}}");
    let p = proxy_for(&origin, &tls, "").await;
    let served = origin.requests.load(Ordering::SeqCst);
    let reply = get(p.listen, "api.test", "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY, "{}", reply.text());
    assert_eq!(origin.requests.load(Ordering::SeqCst), served);
    let text = metrics_text(p.admin).await;
    let unagreed = ["pool=\"api\"", "reason=\"alpn\""];
    assert_eq!(
        metric(&text, "ballast_upstream_tls_errors_total", &unagreed),
        1.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_load_polls_use_the_pool_tls() {
    let pki = Pki::new();
    let server = pki.leaf("backend.test", LeafUse::Server);
    let origin = tls_origin(TlsOriginConfig {
        cert_pem: &server.cert_pem,
        key_pem: &server.key_pem,
        client_ca_pem: Some(&pki.ca.cert_pem),
        alpn: OriginAlpn::Http1,
    })
    .await;
    let client = pki.leaf("ballast", LeafUse::Client);
    let (cert, key) = (
        pki.write("client.crt", &client.cert_pem),
        pki.write("client.key", &client.key_pem),
    );
    let tls = format!(
        "{{sni: backend.test, ca: \"{}\", client_cert: \"{cert}\", client_key: \"{key}\"}}",
        pki.ca_file()
    );
    let probes =
        "    health: {path: /healthz, interval: 100ms, healthy_after: 1, unhealthy_after: 1}\n\
                  \x20   load_poll: {path: /load, interval: 100ms}\n";
    let p = proxy_for(&origin, &tls, probes).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics_text(p.admin).await;
        let polled = metric(
            &text,
            "ballast_load_polls_total",
            &["pool=\"api\"", "result=\"ok\""],
        );
        let checked = origin.paths.lock().unwrap().iter().any(|p| p == "/healthz");
        if polled >= 1.0 && checked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no TLS health check or load poll: {:?}\n{text}",
            origin.paths.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = backend_state(&p).await;
    assert_eq!(state["healthy"], true, "{state:#}");
    assert_eq!(state["load_poll"]["result"], "ok", "{state:#}");
    drop(p);

    // Trusting another CA, both fail: the backend goes unhealthy.
    let stranger = Pki::new();
    let tls = format!(
        "{{sni: backend.test, ca: \"{}\", client_cert: \"{cert}\", client_key: \"{key}\"}}",
        stranger.ca_file()
    );
    let p = proxy_for(&origin, &tls, probes).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = backend_state(&p).await;
        if state["healthy"] == false && state["load_poll"]["result"] == "tls" {
            break;
        }
        assert!(Instant::now() < deadline, "{state:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn check_names_a_missing_ca_file() {
    let yaml = "listeners: [{address: \"127.0.0.1:8080\"}]\npools:\n  api:\n    tls: {ca: missing-ca.pem}\n    backends: [{addr: \"10.0.0.1:443\"}]\nroutes: [{pool: api}]\n";
    let errors = ballast::config::load_str(yaml, Path::new("/nonexistent")).unwrap_err();
    let lines = errors.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "pools.api.tls.ca: cannot read certificate file /nonexistent/missing-ca.pem"
        ),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_certificate_is_retried_on_another_backend_and_ejects_its_own() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let good = origin_with(&pki.leaf("backend.test", LeafUse::Server)).await;
    let bad = origin_with(&stranger.leaf("backend.test", LeafUse::Server)).await;
    let tls = format!("{{sni: backend.test, ca: \"{}\"}}", pki.ca_file());
    let (good_addr, bad_addr) = (good.addr, bad.addr);
    let p = LoopbackProxy::start(|listen, admin| {
        format!(
            "listeners: [{{address: \"{listen}\"}}]\nadmin: {{address: \"{admin}\"}}\n\
             server: {{threads: 2, drain_timeout: 1s}}\npools:\n  api:\n    mode: round_robin\n\
             \x20   tls: {tls}\n    outlier: {{consecutive_failures: 3}}\n\
             \x20   backends: [{{addr: \"{good_addr}\"}}, {{addr: \"{bad_addr}\"}}]\n\
             routes: [{{pool: api}}]\n"
        )
    })
    .await;

    for i in 0..20 {
        let reply = get(p.listen, "api.test", "/").await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "request {i}: {}",
            reply.text()
        );
    }
    assert_eq!(good.requests.load(Ordering::SeqCst), 20);
    assert_eq!(bad.requests.load(Ordering::SeqCst), 0);
    let text = metrics_text(p.admin).await;
    let retried = metric(
        &text,
        "ballast_retries_total",
        &["pool=\"api\"", "cause=\"connect\""],
    );
    assert!(
        retried >= 3.0,
        "refused certificates retried as connect failures:\n{text}"
    );
    let bad_backend = format!("backend=\"api/{bad_addr}\"");
    let counted = metric(
        &text,
        "ballast_upstream_tls_errors_total",
        &[&bad_backend, "reason=\"untrusted\""],
    );
    assert_eq!(counted, retried, "{text}");

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state = admin_json(p.admin, "/api/v1/state").await;
        let bad_state = &state["pools"][0]["backends"][1];
        assert_eq!(bad_state["addr"], bad_addr.to_string());
        if bad_state["times_ejected"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "never ejected: {bad_state:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

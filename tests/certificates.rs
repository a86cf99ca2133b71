//! Certificates on TLS listeners: a certificate renewed on disk (at the same
//! path, or by a Kubernetes-style `..data` symlink swap) is served to new
//! handshakes within seconds; a bad renewal is refused, counted, and the old
//! certificate keeps serving; SNI certificates come and go with a reload;
//! `client_auth` requires a client certificate from the configured CA; and
//! `min_version: "1.3"` refuses a TLS 1.2-only client.

use crate::common::*;
use ballast::tls::devcert::{DevCa, DevLeaf, LeafUse};
use http::Method;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::SupportedProtocolVersion;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a renewal may take to be served: two polls of 2 s, on a loaded
/// machine.
const RENEWAL_BOUND: Duration = Duration::from_secs(20);

fn leaf(ca: &DevCa, name: &str, usage: LeafUse) -> DevLeaf {
    ca.issue(&[name.to_string()], usage).unwrap()
}

fn write_leaf(dir: &Path, stem: &str, leaf: &DevLeaf) {
    std::fs::write(dir.join(format!("{stem}.crt")), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), &leaf.key_pem).unwrap();
}

fn der(leaf: &DevLeaf) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()
}

/// A TLS client trusting `ca`, speaking `versions`, presenting `client` if given.
fn client(
    ca: &DevCa,
    versions: &[&'static SupportedProtocolVersion],
    client: Option<&DevLeaf>,
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_protocol_versions(versions)
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![der(leaf)],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn handshake(
    connector: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// The leaf certificate a fresh handshake for `name` is served.
async fn served_leaf(ca: &DevCa, addr: SocketAddr, name: &str) -> CertificateDer<'static> {
    let stream = handshake(&client(ca, rustls::ALL_VERSIONS, None), addr, name)
        .await
        .unwrap_or_else(|e| panic!("handshake for {name}: {e}"));
    stream.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Poll fresh handshakes until `name` is served `expected`; how long it took.
async fn wait_for_leaf(
    ca: &DevCa,
    addr: SocketAddr,
    name: &str,
    expected: &CertificateDer<'static>,
) -> Duration {
    let started = Instant::now();
    while &served_leaf(ca, addr, name).await != expected {
        assert!(
            started.elapsed() < RENEWAL_BOUND,
            "{name} was not served the new certificate within {RENEWAL_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Whether an HTTP request over the connection gets an HTTP answer (a
/// client certificate refused in TLS 1.3 shows only here, after the
/// client's side of the handshake finished).
async fn answers(mut stream: Tls) -> bool {
    let request = b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    response.starts_with(b"HTTP/1.1 200")
}

/// The status line's start (`HTTP/1.1 NNN`) of the answer to one request.
async fn reply_status(mut stream: Tls) -> Option<String> {
    let request = b"GET / HTTP/1.1\r\nHost: site.test\r\n\r\n";
    stream.write_all(request).await.ok()?;
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response));
    assert!(
        read.await.is_ok(),
        "the connection is closed after the answer"
    );
    Some(String::from_utf8_lossy(response.get(..12)?).into_owned())
}

/// The value of the first series of `name` whose labels include each of
/// `labels` (0 when there is none).
fn metric(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next())
        .map_or(0.0, |value| value.parse().unwrap())
}

async fn certificate_reloads(admin: SocketAddr, result: &str) -> f64 {
    let text = get(admin, "localhost", "/metrics").await.text();
    metric(
        &text,
        "ballast_tls_certificate_reloads_total",
        &[&format!("result=\"{result}\"")],
    )
}

/// Addresses for one Ballast: a TLS listener and the admin endpoint.
struct Addrs {
    tls: SocketAddr,
    admin: SocketAddr,
}

impl Addrs {
    fn new() -> Self {
        Self {
            tls: SocketAddr::from(([127, 0, 0, 1], free_port())),
            admin: SocketAddr::from(([127, 0, 0, 1], free_port())),
        }
    }

    /// A configuration with one TLS listener (its `tls` block given) and
    /// one pool of `origin`.
    fn config(&self, tls: &str, origin: SocketAddr) -> String {
        format!(
            "listeners: [{{address: \"{}\", tls: {tls}}}]\nadmin: {{address: \"{}\"}}\nserver: {{threads: 1, drain_timeout: 1s}}\npools: {{p: {{backends: [{{addr: \"{origin}\"}}]}}}}\nroutes: [{{pool: p}}]\n",
            self.tls, self.admin
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_renewed_at_the_same_path_is_served_to_new_handshakes() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let first = leaf(&ca, "site.test", LeafUse::Server);
    write_leaf(dir.path(), "site", &first);
    let a = Addrs::new();
    let yaml = a.config("{cert: site.crt, key: site.key}", o.addr);
    let _ballast = RunningBallast::start(&yaml, dir.path(), &[a.tls, a.admin]).await;
    assert_eq!(served_leaf(&ca, a.tls, "site.test").await, der(&first));
    let open = handshake(&client(&ca, rustls::ALL_VERSIONS, None), a.tls, "site.test")
        .await
        .unwrap();

    let renewed = leaf(&ca, "site.test", LeafUse::Server);
    write_leaf(dir.path(), "site", &renewed);
    let took = wait_for_leaf(&ca, a.tls, "site.test", &der(&renewed)).await;
    println!("same-path renewal served after {took:?}");
    assert!(
        answers(open).await,
        "a connection opened before keeps working"
    );
    assert_eq!(certificate_reloads(a.admin, "ok").await, 1.0);
    assert_eq!(certificate_reloads(a.admin, "failed").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_data_symlink_swap_is_served_to_new_handshakes() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    let ca = DevCa::generate().unwrap();
    // A mounted secret: the files are links through `..data` to a
    // timestamped directory, which an update replaces in one rename.
    let first = leaf(&ca, "site.test", LeafUse::Server);
    std::fs::create_dir_all(secret.join("..2026_12_07_a")).unwrap();
    write_leaf(&secret.join("..2026_12_07_a"), "tls", &first);
    std::os::unix::fs::symlink("..2026_12_07_a", secret.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{file}"), secret.join(file)).unwrap();
    }
    let a = Addrs::new();
    let yaml = a.config("{cert: secret/tls.crt, key: secret/tls.key}", o.addr);
    let _ballast = RunningBallast::start(&yaml, dir.path(), &[a.tls, a.admin]).await;
    assert_eq!(served_leaf(&ca, a.tls, "site.test").await, der(&first));

    let renewed = leaf(&ca, "site.test", LeafUse::Server);
    std::fs::create_dir_all(secret.join("..2026_12_07_b")).unwrap();
    write_leaf(&secret.join("..2026_12_07_b"), "tls", &renewed);
    std::os::unix::fs::symlink("..2026_12_07_b", secret.join("..data_tmp")).unwrap();
    std::fs::rename(secret.join("..data_tmp"), secret.join("..data")).unwrap();
    std::fs::remove_dir_all(secret.join("..2026_12_07_a")).unwrap();
    let took = wait_for_leaf(&ca, a.tls, "site.test", &der(&renewed)).await;
    println!("..data swap served after {took:?}");
    assert_eq!(certificate_reloads(a.admin, "failed").await, 0.0);
}

/// Wait until the admin endpoint counts `at_least` refused renewals.
async fn wait_for_refusals(admin: SocketAddr, at_least: f64) {
    let started = Instant::now();
    while certificate_reloads(admin, "failed").await < at_least {
        assert!(
            started.elapsed() < RENEWAL_BOUND,
            "refused renewal #{at_least} not counted within {RENEWAL_BOUND:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_renewal_is_refused_and_the_old_certificate_keeps_serving() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let first = leaf(&ca, "site.test", LeafUse::Server);
    write_leaf(dir.path(), "site", &first);
    let a = Addrs::new();
    let yaml = a.config("{cert: site.crt, key: site.key}", o.addr);
    let _ballast = RunningBallast::start(&yaml, dir.path(), &[a.tls, a.admin]).await;

    // Garbage in place of the certificate.
    std::fs::write(dir.path().join("site.crt"), "not a certificate").unwrap();
    wait_for_refusals(a.admin, 1.0).await;
    assert_eq!(served_leaf(&ca, a.tls, "site.test").await, der(&first));

    // A valid certificate with a key that is not its own.
    let renewed = leaf(&ca, "site.test", LeafUse::Server);
    let stranger = leaf(&ca, "site.test", LeafUse::Server);
    std::fs::write(dir.path().join("site.crt"), &renewed.cert_pem).unwrap();
    std::fs::write(dir.path().join("site.key"), &stranger.key_pem).unwrap();
    wait_for_refusals(a.admin, 2.0).await;
    assert_eq!(served_leaf(&ca, a.tls, "site.test").await, der(&first));
    assert_eq!(certificate_reloads(a.admin, "ok").await, 0.0);

    let text = get(a.admin, "localhost", "/metrics").await.text();
    let expiry = metric(
        &text,
        "ballast_tls_certificate_expiry_seconds",
        &[&format!("listener=\"{}\"", a.tls), "name=\"default\""],
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(expiry > now, "the served certificate's notAfter: {expiry}");

    // Fixed: the right key arrives and the pair is served.
    std::fs::write(dir.path().join("site.key"), &renewed.key_pem).unwrap();
    wait_for_leaf(&ca, a.tls, "site.test", &der(&renewed)).await;
    assert_eq!(certificate_reloads(a.admin, "ok").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_certificates_are_added_and_removed_by_a_reload() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    // The default certificate is valid for both names, so the client can
    // check whichever it is served.
    let site = ca
        .issue(&["site.test".into(), "extra.test".into()], LeafUse::Server)
        .unwrap();
    let extra = leaf(&ca, "extra.test", LeafUse::Server);
    write_leaf(dir.path(), "site", &site);
    write_leaf(dir.path(), "extra", &extra);
    let a = Addrs::new();
    let without = a.config("{cert: site.crt, key: site.key}", o.addr);
    let with = a.config(
        "{cert: site.crt, key: site.key, sni: [{cert: extra.crt, key: extra.key, server_names: [extra.test]}]}",
        o.addr,
    );
    let path = dir.path().join("ballast.yaml");
    std::fs::write(&path, &without).unwrap();
    let _ballast = RunningBallast::start_file(&path, &[a.tls, a.admin]).await;
    let reload = || async {
        let reply = send(a.admin, admin_request(Method::POST, "/reload", None)).await;
        assert!(reply.status.is_success(), "{}", reply.text());
    };
    assert_eq!(served_leaf(&ca, a.tls, "extra.test").await, der(&site));

    std::fs::write(&path, &with).unwrap();
    reload().await;
    assert_eq!(served_leaf(&ca, a.tls, "extra.test").await, der(&extra));
    assert_eq!(served_leaf(&ca, a.tls, "site.test").await, der(&site));

    std::fs::write(&path, &without).unwrap();
    reload().await;
    assert_eq!(served_leaf(&ca, a.tls, "extra.test").await, der(&site));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_auth_requires_a_certificate_from_the_configured_ca() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    let clients_ca = DevCa::generate().unwrap();
    let other_ca = DevCa::generate().unwrap();
    write_leaf(dir.path(), "site", &leaf(&ca, "site.test", LeafUse::Server));
    std::fs::write(dir.path().join("clients-ca.crt"), &clients_ca.cert_pem).unwrap();
    let trusted = leaf(&clients_ca, "client.test", LeafUse::Client);
    let untrusted = leaf(&other_ca, "client.test", LeafUse::Client);
    let required = Addrs::new();
    let optional = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = required
        .config(
            "{cert: site.crt, key: site.key, client_auth: {ca: clients-ca.crt}}",
            o.addr,
        )
        .replacen(
            "listeners: [",
            &format!("listeners: [{{address: \"{optional}\", tls: {{cert: site.crt, key: site.key, client_auth: {{ca: clients-ca.crt, required: false}}}}}}, "),
            1,
        );
    let _ballast =
        RunningBallast::start(&yaml, dir.path(), &[required.tls, optional, required.admin]).await;

    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let connect = |addr: SocketAddr, cert: Option<&DevLeaf>| {
            let connector = client(&ca, versions, cert);
            async move {
                match handshake(&connector, addr, "site.test").await {
                    Ok(stream) => answers(stream).await,
                    Err(_) => false,
                }
            }
        };
        let label = format!("{:?}", versions[0].version);
        assert!(
            !connect(required.tls, None).await,
            "{label}: no certificate"
        );
        assert!(
            connect(required.tls, Some(&trusted)).await,
            "{label}: trusted"
        );
        assert!(
            !connect(required.tls, Some(&untrusted)).await,
            "{label}: other CA"
        );
        assert!(connect(optional, None).await, "{label}: optional, none");
        assert!(
            connect(optional, Some(&trusted)).await,
            "{label}: optional, trusted"
        );
        assert!(
            !connect(optional, Some(&untrusted)).await,
            "{label}: optional, other CA"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_version_1_3_refuses_a_tls_1_2_only_client() {
    ballast::tls::install_crypto_provider();
    let o = origin_named("o").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    write_leaf(dir.path(), "site", &leaf(&ca, "site.test", LeafUse::Server));
    let strict = Addrs::new();
    let default = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let yaml = strict
        .config(
            "{cert: site.crt, key: site.key, min_version: \"1.3\"}",
            o.addr,
        )
        .replacen(
            "listeners: [",
            &format!(
                "listeners: [{{address: \"{default}\", tls: {{cert: site.crt, key: site.key}}}}, "
            ),
            1,
        );
    let _ballast =
        RunningBallast::start(&yaml, dir.path(), &[strict.tls, default, strict.admin]).await;
    let tls12 = client(&ca, &[&rustls::version::TLS12], None);
    let tls13 = client(&ca, &[&rustls::version::TLS13], None);
    // rustls limited to 1.2 still lists the TLS 1.3 cipher suites, so the
    // handshake completes; its first request is refused and the connection
    // closed.
    let stream = handshake(&tls12, strict.tls, "site.test").await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(
        reply_status(stream).await.as_deref(),
        Some("HTTP/1.1 426"),
        "a TLS 1.2-only client is refused"
    );
    let stream = handshake(&tls13, strict.tls, "site.test").await.unwrap();
    assert_eq!(
        stream.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(answers(stream).await);
    // A client that offers only TLS 1.2 cipher suites (as OpenSSL, curl and
    // browsers limited to 1.2 do) is refused in the handshake.
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| suite.version() == &rustls::version::TLS12);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let tls12_suites_only = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tls12_suites_only = tokio_rustls::TlsConnector::from(Arc::new(tls12_suites_only));
    let refused = handshake(&tls12_suites_only, strict.tls, "site.test").await;
    let Err(error) = refused else {
        panic!("a client offering only TLS 1.2 suites is refused in the handshake");
    };
    let error = error.to_string();
    assert!(error.contains("AccessDenied"), "{error}");
    let stream = handshake(&tls12_suites_only, default, "site.test")
        .await
        .unwrap();
    assert!(answers(stream).await);
    // The same client is welcome where 1.2 is allowed.
    let stream = handshake(&tls12, default, "site.test").await.unwrap();
    assert!(answers(stream).await);
}

#[test]
fn client_auth_and_min_version_errors_name_the_key_and_the_file() {
    ballast::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate().unwrap();
    write_leaf(dir.path(), "site", &leaf(&ca, "site.test", LeafUse::Server));
    let yaml = "listeners: [{address: \"127.0.0.1:1\", tls: {cert: site.crt, key: site.key, client_auth: {ca: missing-ca.crt}, min_version: \"1.1\"}}]\npools: {p: {backends: [{addr: \"127.0.0.1:2\"}]}}\nroutes: [{pool: p}]\n";
    let errors = ballast::config::load_str(yaml, dir.path())
        .unwrap_err()
        .lines();
    let missing = dir.path().join("missing-ca.crt");
    assert_eq!(
        errors,
        vec![
            format!(
                "listeners[0].tls.client_auth.ca: cannot read certificate file {}: No such file or directory (os error 2)",
                missing.display()
            ),
            "listeners[0].tls.min_version: unknown TLS version \"1.1\" (expected \"1.2\" or \"1.3\")"
                .to_string(),
        ]
    );
}

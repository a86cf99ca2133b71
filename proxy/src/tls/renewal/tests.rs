use super::*;
use crate::tls::devcert::DevCerts;
use std::path::Path;

fn write_pair(dir: &Path, name: &str) -> DevCerts {
    let certs = DevCerts::generate(&[name.to_string()]).unwrap();
    certs.write_leaf(dir, "site").unwrap();
    certs
}

fn served_default(certs: &ServedCertificates) -> Arc<CertifiedKey> {
    certs
        .resolver("127.0.0.1:1".parse().unwrap())
        .unwrap()
        .select(None)
}

fn setup() -> (tempfile::TempDir, ServedCertificates, Arc<Metrics>) {
    crate::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), "site.test");
    let yaml = "listeners: [{address: \"127.0.0.1:1\", tls: {cert: site.crt, key: site.key}}]\npools: {p: {backends: [{addr: \"127.0.0.1:2\"}]}}\nroutes: [{pool: p}]\n";
    let snapshot = crate::config::load_str(yaml, dir.path()).unwrap();
    let metrics = Arc::new(Metrics::new());
    let certs = ServedCertificates::new(&snapshot, metrics.clone());
    (dir, certs, metrics)
}

fn reloads(metrics: &Metrics, result: &str) -> u64 {
    metrics
        .tls_certificate_reloads
        .with_label_values(&[result])
        .get()
}

#[test]
fn a_changed_pair_is_served_once_it_settles() {
    let (dir, certs, metrics) = setup();
    let before = served_default(&certs);
    certs.poll();
    certs.poll();
    assert!(
        Arc::ptr_eq(&served_default(&certs), &before),
        "unchanged files keep the pair"
    );
    assert_eq!(reloads(&metrics, "ok"), 0);

    let renewed = write_pair(dir.path(), "site.test");
    certs.poll();
    assert!(
        Arc::ptr_eq(&served_default(&certs), &before),
        "not before it settled"
    );
    certs.poll();
    let now = served_default(&certs);
    let expected = crate::config::certs::load_chain(&dir.path().join("site.crt")).unwrap();
    assert_eq!(now.cert, expected, "{}", renewed.leaf_cert_pem);
    assert_eq!(reloads(&metrics, "ok"), 1);
    assert_eq!(reloads(&metrics, "failed"), 0);
}

#[test]
fn a_bad_pair_is_refused_with_every_error_and_the_old_one_stays() {
    let (dir, certs, metrics) = setup();
    let before = served_default(&certs);
    std::fs::write(dir.path().join("site.crt"), "garbage").unwrap();
    std::fs::write(dir.path().join("site.key"), "garbage").unwrap();
    let served = &certs.listeners[0].certs.lock().unwrap()[0].served.clone();
    let errors = load_checked(served).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    certs.poll();
    certs.poll();
    certs.poll();
    assert!(Arc::ptr_eq(&served_default(&certs), &before));
    assert_eq!(reloads(&metrics, "failed"), 1, "counted once per change");

    // A key from another pair: parses, but does not match.
    let other = DevCerts::generate(&["site.test".to_string()]).unwrap();
    let good = write_pair(dir.path(), "site.test");
    std::fs::write(dir.path().join("site.key"), &other.leaf_key_pem).unwrap();
    certs.poll();
    certs.poll();
    assert!(Arc::ptr_eq(&served_default(&certs), &before));
    assert_eq!(reloads(&metrics, "failed"), 2);

    std::fs::write(dir.path().join("site.key"), &good.leaf_key_pem).unwrap();
    certs.poll();
    certs.poll();
    assert!(!Arc::ptr_eq(&served_default(&certs), &before));
    assert_eq!(reloads(&metrics, "ok"), 1);
}

#[test]
fn expiry_is_published_per_certificate() {
    let (_dir, _certs, metrics) = setup();
    let text = metrics.render();
    assert!(
        text.contains(
            "ballast_tls_certificate_expiry_seconds{listener=\"127.0.0.1:1\",name=\"default\"}"
        ),
        "{text}"
    );
}

//! `pools.<name>.tls`: what compiles, and each mistake reported at its path.

use crate::config::{load_str, ConfigErrors, UpstreamAlpn};
use crate::tls::devcert::{DevCa, LeafUse};
use std::path::Path;

fn config(tls: &str) -> String {
    format!(
        "listeners: [{{address: \"127.0.0.1:8080\"}}]\n\
         pools:\n  api:\n    tls: {tls}\n    backends: [{{addr: \"10.0.0.1:443\"}}]\n\
         routes: [{{pool: api}}]\n"
    )
}

fn errors(tls: &str, base: &Path) -> Vec<String> {
    match load_str(&config(tls), base) {
        Ok(_) => panic!("expected errors for tls: {tls}"),
        Err(ConfigErrors(list)) => list.iter().map(ToString::to_string).collect(),
    }
}

/// A CA, a client certificate it signs, and an unrelated key, in `dir`.
fn write_material(dir: &Path) {
    crate::tls::install_crypto_provider();
    let ca = DevCa::generate().unwrap();
    let client = ca.issue(&["ballast".into()], LeafUse::Client).unwrap();
    let other = ca.issue(&["other".into()], LeafUse::Client).unwrap();
    std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
    std::fs::write(dir.join("client.crt"), &client.cert_pem).unwrap();
    std::fs::write(dir.join("client.key"), &client.key_pem).unwrap();
    std::fs::write(dir.join("other.key"), &other.key_pem).unwrap();
    std::fs::write(dir.join("junk.pem"), "not a certificate\n").unwrap();
}

#[test]
fn defaults_and_full_settings_compile() {
    let dir = tempfile::tempdir().unwrap();
    write_material(dir.path());
    let snap = load_str(&config("{}"), dir.path()).unwrap();
    let tls = snap.pools[0].tls.as_ref().unwrap();
    assert_eq!(tls.sni, None);
    assert!(tls.verify);
    assert_eq!(tls.alpn, UpstreamAlpn::Http1);
    assert!(tls.ca.is_none() && tls.client_cert.is_none());

    let full = "{sni: API.Internal, ca: ca.crt, client_cert: client.crt, client_key: client.key, alpn: h2_or_http1}";
    let snap = load_str(&config(full), dir.path()).unwrap();
    let tls = snap.pools[0].tls.as_ref().unwrap();
    assert_eq!(tls.sni.as_deref(), Some("api.internal"));
    assert_eq!(tls.alpn, UpstreamAlpn::H2OrHttp1);
    assert_eq!(tls.ca.as_ref().map(|ca| ca.len()), Some(1));
    assert!(tls.client_cert.is_some());
    let summary = snap.summary();
    assert!(
        summary.contains("tls sni=api.internal ca=") && summary.contains("alpn=h2_or_http1 mtls"),
        "{summary}"
    );

    let plain = load_str(&config("null"), dir.path()).unwrap();
    assert!(plain.pools[0].tls.is_none(), "tls: null is plain HTTP");
}

#[test]
fn the_connection_group_follows_the_trusted_material() {
    let dir = tempfile::tempdir().unwrap();
    write_material(dir.path());
    let group = |tls: &str| {
        let snap = load_str(&config(tls), dir.path()).unwrap();
        snap.pools[0].tls.as_ref().unwrap().connection_group
    };
    assert_eq!(group("{ca: ca.crt}"), group("{ca: ca.crt}"));
    assert_ne!(group("{ca: ca.crt}"), group("{}"));
    assert_ne!(group("{}"), group("{verify: false}"));
}

#[test]
fn client_cert_and_key_come_together() {
    let dir = tempfile::tempdir().unwrap();
    write_material(dir.path());
    assert_eq!(
        errors("{client_cert: client.crt}", dir.path()),
        ["pools.api.tls.client_key: client_cert needs client_key (both or neither)"]
    );
    assert_eq!(
        errors("{client_key: client.key}", dir.path()),
        ["pools.api.tls.client_cert: client_key needs client_cert (both or neither)"]
    );
}

#[test]
fn unreadable_invalid_and_mismatched_files_name_their_key() {
    let dir = tempfile::tempdir().unwrap();
    write_material(dir.path());
    let errs = errors("{ca: missing.crt}", dir.path());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("pools.api.tls.ca: cannot read certificate file")
            && errs[0].contains("missing.crt"),
        "{errs:?}"
    );
    let errs = errors("{ca: junk.pem}", dir.path());
    assert!(
        errs[0].starts_with("pools.api.tls.ca: ")
            && errs[0].contains("contains no PEM certificate"),
        "{errs:?}"
    );
    let errs = errors(
        "{client_cert: client.crt, client_key: other.key}",
        dir.path(),
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("pools.api.tls.client_key: private key")
            && errs[0].contains("does not match certificate"),
        "{errs:?}"
    );
    let errs = errors(
        "{client_cert: client.crt, client_key: junk.pem}",
        dir.path(),
    );
    assert!(
        errs[0].starts_with("pools.api.tls.client_key: ")
            && errs[0].contains("contains no PEM private key"),
        "{errs:?}"
    );
    let errs = errors(
        "{client_cert: junk.pem, client_key: client.key}",
        dir.path(),
    );
    assert!(
        errs[0].starts_with("pools.api.tls.client_cert: "),
        "{errs:?}"
    );
}

#[test]
fn bad_alpn_and_server_names_are_refused() {
    let base = Path::new(".");
    assert_eq!(
        errors("{alpn: h3}", base),
        ["pools.api.tls.alpn: unknown protocol \"h3\" (expected http1, h2 or h2_or_http1)"]
    );
    assert_eq!(
        errors("{sni: \"bad name!\"}", base),
        ["pools.api.tls.sni: invalid server name \"bad name!\""]
    );
    let errs = errors("{verify: maybe}", base);
    assert!(errs[0].starts_with("pools.api.tls.verify"), "{errs:?}");
    let errs = errors("{server_name: x}", base);
    assert!(errs[0].contains("unknown field"), "{errs:?}");
}

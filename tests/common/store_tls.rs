//! Certificates for a store reached over mutual TLS: a CA, a server
//! certificate for 127.0.0.1 and a client certificate it signed, as files
//! (kept while any clone lives), and the environment an instance reads them
//! from.

use ballast::tls::devcert::{DevCa, LeafUse};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Clone)]
pub struct StoreTlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

impl StoreTlsFiles {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ca = DevCa::generate().unwrap();
        let names = ["127.0.0.1".to_string(), "localhost".to_string()];
        let server = ca.issue(&names, LeafUse::Server).unwrap();
        let client = ca.issue(&["ballast".to_string()], LeafUse::Client).unwrap();
        let write = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            path
        };
        Self {
            ca: write("ca.crt", &ca.cert_pem),
            server_cert: write("server.crt", &server.cert_pem),
            server_key: write("server.key", &server.key_pem),
            client_cert: write("client.crt", &client.cert_pem),
            client_key: write("client.key", &client.key_pem),
            _dir: Arc::new(dir),
        }
    }

    /// `PREFIX_CA_FILE`, `PREFIX_CERT_FILE` and `PREFIX_KEY_FILE` naming
    /// these files, for `prefix` `BALLAST_ETCD` or `BALLAST_REDIS`.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        let path = |p: &Path| p.display().to_string();
        vec![
            (format!("{prefix}_CA_FILE"), path(&self.ca)),
            (format!("{prefix}_CERT_FILE"), path(&self.client_cert)),
            (format!("{prefix}_KEY_FILE"), path(&self.client_key)),
        ]
    }
}

//! TLS: termination (SNI selection, renewal of certificates in place, the
//! minimum version), origination to backends (`upstream`:
//! the peer a pool's `tls` settings make) and dev certificate generation;
//! certificate loading and checking live in `config::certs` (re-exported
//! as `certs`).

pub use crate::config::certs;
pub mod devcert;
pub mod policy;
pub mod renewal;
pub mod sni;
pub mod upstream;

/// Install rustls's `ring` crypto provider as the process default. Safe to call
/// more than once; the first call wins.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

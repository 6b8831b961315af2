//! What the end-to-end tests that speak to the hub over raw TLS share: a client config that
//! trusts the hub's CA, and the mapping of any error into the tests' [`SystemError`].

use std::path::Path;
use std::sync::Arc;

use aloft_tests::system::SystemError;
use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Any error, as a test failure with its text.
pub fn other(e: impl std::fmt::Display) -> SystemError {
    SystemError::Mismatch(e.to_string())
}

/// A TLS client that trusts the CA in `ca` (the hub's `ca.pem`) and offers HTTP/1.1, which
/// the tests speak by hand.
pub fn tls_config(ca: &Path) -> Result<Arc<ClientConfig>, SystemError> {
    let pem = std::fs::read(ca).map_err(other)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.map_err(other)?).map_err(other)?;
    }
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(other)?
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

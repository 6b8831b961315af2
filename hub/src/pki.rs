//! The hub's certificates: `init` makes a CA and a server certificate signed by it for
//! the hub's names; `run` loads the server certificate and key into a rustls config
//! (`ring` provider, the only one built).
//!
//! Invariants: private keys are written mode 0600; the CA key stays in the data directory
//! so that more server certificates can be issued later; validity starts a day before
//! `init` (clock skew) and lasts ten years.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The CA certificate agents and clients trust.
pub const CA_CERT: &str = "ca.pem";
/// The CA's key.
pub const CA_KEY: &str = "ca.key";
/// The server certificate.
pub const SERVER_CERT: &str = "server.pem";
/// The server key.
pub const SERVER_KEY: &str = "server.key";

/// Why certificates could not be made or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Generating failed.
    #[error("making certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds no usable certificate or key.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Writes `contents` to a new file readable only by its owner.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), std::io::Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Makes the CA and a server certificate for `sans` (DNS names or IP addresses) in `dir`.
pub fn create(dir: &Path, sans: &[String]) -> Result<(), PkiError> {
    let now = time::OffsetDateTime::now_utc();
    let not_before = now - time::Duration::days(1);
    let not_after = now + time::Duration::days(3650);

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Aloft hub CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.not_before = not_before;
    ca.not_after = not_after;
    let ca_cert = ca.self_signed(&ca_key)?;

    let server_key = KeyPair::generate()?;
    let mut server = CertificateParams::new(sans.to_vec())?;
    server
        .distinguished_name
        .push(DnType::CommonName, "aloft-hub");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = not_before;
    server.not_after = not_after;
    let issuer = Issuer::new(ca, &ca_key);
    let server_cert = server.signed_by(&server_key, &issuer)?;

    let ca_path = dir.join(CA_CERT);
    std::fs::write(&ca_path, ca_cert.pem()).map_err(io(&ca_path))?;
    let ca_key_path = dir.join(CA_KEY);
    write_private(&ca_key_path, ca_key.serialize_pem().as_bytes()).map_err(io(&ca_key_path))?;
    // The chain the server presents: its certificate, then the CA's.
    let cert_path = dir.join(SERVER_CERT);
    std::fs::write(
        &cert_path,
        format!("{}{}", server_cert.pem(), ca_cert.pem()),
    )
    .map_err(io(&cert_path))?;
    let key_path = dir.join(SERVER_KEY);
    write_private(&key_path, server_key.serialize_pem().as_bytes()).map_err(io(&key_path))?;
    Ok(())
}

/// The TLS server config from the data directory (HTTP/1.1 only: WebSocket upgrades need
/// it, and the API needs nothing more).
pub fn server_config(dir: &Path) -> Result<Arc<ServerConfig>, PkiError> {
    let cert_path = dir.join(SERVER_CERT);
    let pem = std::fs::read(&cert_path).map_err(io(&cert_path))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| PkiError::Pem {
            path: cert_path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(PkiError::Pem {
            path: cert_path.display().to_string(),
            message: "no certificate".into(),
        });
    }
    let key_path = dir.join(SERVER_KEY);
    let pem = std::fs::read(&key_path).map_err(io(&key_path))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| PkiError::Pem {
        path: key_path.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

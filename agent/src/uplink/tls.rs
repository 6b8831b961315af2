//! TLS to the hub: rustls with the `ring` provider, the hub's CA from the config (else the
//! system's roots), and certificate validity checked against a time that a board without
//! an RTC can trust.
//!
//! A board that boots in 1970 must connect before its first GPS fix (docs/design.md, edge <->
//! hub protocol): [`FloorVerifier`] wraps rustls's WebPKI verifier and checks validity at
//! the latest of the system clock, the agent's last good UTC (persisted across boots) and
//! the build time ([`build_utc_ns`]). Invariant: that time is never earlier than the system
//! clock, so the floor can only make an expired certificate look expired sooner, never make
//! a not-yet-valid one pass on a clock that is right.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// Why the TLS setup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("CA file {path}: {message}")]
    CaFile {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// No root to trust (no CA file and no system roots).
    #[error("no trusted root certificates: {0}")]
    NoRoots(String),
    /// rustls refused the setup.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
    /// The verifier could not be built from the roots.
    #[error("certificate verifier: {0}")]
    Verifier(String),
}

/// The build time of this agent, ns since the Unix epoch (build.rs: `SOURCE_DATE_EPOCH`
/// when set, else when the build script ran).
pub fn build_utc_ns() -> i64 {
    option_env!("ALOFT_BUILD_UTC_S")
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|s| s.checked_mul(1_000_000_000))
        .unwrap_or(0)
}

/// A source of the latest UTC the agent trusts other than the system clock, ns (the
/// timekeeper's last good UTC; `None` when there is none).
pub type TrustedTime = Arc<dyn Fn() -> Option<i64> + Send + Sync>;

/// WebPKI verification with validity checked at `max(system clock, trusted time, build
/// time)`.
pub struct FloorVerifier {
    inner: Arc<WebPkiServerVerifier>,
    trusted: TrustedTime,
    build_utc_ns: i64,
}

impl fmt::Debug for FloorVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FloorVerifier")
            .field("build_utc_ns", &self.build_utc_ns)
            .finish_non_exhaustive()
    }
}

impl FloorVerifier {
    /// Verifies chains to `roots`; `trusted` is read at every handshake.
    pub fn new(
        roots: RootCertStore,
        trusted: TrustedTime,
        build_utc_ns: i64,
    ) -> Result<Self, TlsError> {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        Ok(FloorVerifier {
            inner,
            trusted,
            build_utc_ns,
        })
    }

    /// The time validity is checked at, given the system clock's `now`.
    pub fn check_time(&self, now: UnixTime) -> UnixTime {
        let floor_ns = (self.trusted)().unwrap_or(0).max(self.build_utc_ns).max(0);
        let floor = Duration::from_nanos(u64::try_from(floor_ns).unwrap_or(0));
        let system = Duration::from_secs(now.as_secs());
        UnixTime::since_unix_epoch(system.max(floor))
    }
}

impl ServerCertVerifier for FloorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let at = self.check_time(now);
        if at.as_secs() != now.as_secs() {
            tracing::debug!(
                system_s = now.as_secs(),
                checked_at_s = at.as_secs(),
                "Certificate validity checked at the trusted time, the system clock is behind."
            );
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, at)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The `ring` provider, explicitly: never the process default (which could be aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots to trust: the certificates of `ca_file` (PEM), else the system's.
pub fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |message: String| TlsError::CaFile {
                path: path.display().to_string(),
                message,
            };
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| ca_error(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("holds no PEM certificate".into()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| ca_error(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "A system root certificate could not be read.");
            }
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::NoRoots(
                    "the system has none; set hub.ca_file".into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// The client config for the hub: TLS 1.2 and 1.3 with `ring`, the floor verifier.
pub fn client_config(
    ca_file: Option<&Path>,
    trusted: TrustedTime,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = FloorVerifier::new(roots(ca_file)?, trusted, build_utc_ns())?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };

    use super::*;

    const DAY_S: i64 = 86_400;

    fn unix_now_s() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    }

    /// A CA and a `localhost` certificate valid from `not_before_s` for a day.
    fn chain(not_before_s: i64) -> (RootCertStore, CertificateDer<'static>) {
        let at = |s: i64| {
            (std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(s).unwrap_or(0))).into()
        };
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        ca.not_before = at(not_before_s - DAY_S);
        ca.not_after = at(not_before_s + 30 * DAY_S);
        let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("key");
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
        leaf.not_before = at(not_before_s);
        leaf.not_after = at(not_before_s + DAY_S);
        let cert = leaf.signed_by(&key, &issuer).expect("leaf");
        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.der().clone()).expect("root");
        (roots, cert.der().clone())
    }

    fn verify(verifier: &FloorVerifier, cert: &CertificateDer<'_>, system_s: u64) -> bool {
        let name = ServerName::try_from("localhost").expect("name");
        verifier
            .verify_server_cert(
                cert,
                &[],
                &name,
                &[],
                UnixTime::since_unix_epoch(Duration::from_secs(system_s)),
            )
            .is_ok()
    }

    #[test]
    fn a_certificate_valid_from_now_verifies_on_a_1970_clock_with_a_recent_last_good_time() {
        let now = unix_now_s();
        let (roots, cert) = chain(now - 60);
        let last_good_ns = (now - 10) * 1_000_000_000;
        let verifier =
            FloorVerifier::new(roots, Arc::new(move || Some(last_good_ns)), 0).expect("verifier");
        assert!(
            verify(&verifier, &cert, 0),
            "1970 clock, recent last good time"
        );
    }

    #[test]
    fn without_a_trusted_time_a_1970_clock_fails_and_a_right_clock_passes() {
        let now = unix_now_s();
        let (roots, cert) = chain(now - 60);
        let verifier = FloorVerifier::new(roots, Arc::new(|| None), 0).expect("verifier");
        assert!(!verify(&verifier, &cert, 0), "not yet valid in 1970");
        assert!(verify(&verifier, &cert, u64::try_from(now).expect("now")));
    }

    #[test]
    fn the_build_time_is_a_floor_too_and_never_hides_an_expiry() {
        let now = unix_now_s();
        let (roots, cert) = chain(now - 60);
        let verifier = FloorVerifier::new(roots, Arc::new(|| None), (now - 30) * 1_000_000_000)
            .expect("verifier");
        assert!(verify(&verifier, &cert, 0), "build time within validity");
        // A clock past the expiry is believed: the floor never moves time back.
        let later = u64::try_from(now + 2 * DAY_S).expect("later");
        assert!(!verify(&verifier, &cert, later));
    }

    #[test]
    fn this_build_has_a_build_time() {
        // build.rs sets it from SOURCE_DATE_EPOCH or the build's clock: after 2020.
        assert!(build_utc_ns() > 1_577_836_800 * 1_000_000_000);
    }
}

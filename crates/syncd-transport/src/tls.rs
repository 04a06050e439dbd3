//! rustls configuration for BEP: TLS 1.3 only, ALPN `bep/1.0`, exactly one self-signed certificate
//! on each side, no resumption, and verifiers that accept any self-signed peer certificate while
//! still verifying the handshake signature made with the certificate's key.
//!
//! Trust is not decided here: the peer's device ID (SHA-256 of its certificate) is checked against
//! the configured devices after the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, ResolvesClientCert, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use syncd_types::DeviceId;

use crate::identity::Identity;

/// The ALPN protocol name BEP uses (exact, lowercase).
pub const ALPN_BEP: &[u8] = b"bep/1.0";

/// Errors building a TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// rustls refused the configuration (e.g. TLS 1.3 unsupported by the provider).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The workspace's one crypto provider: `ring`.
pub fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A client configuration presenting `identity`'s certificate.
pub fn client_config(identity: &Identity) -> Result<Arc<ClientConfig>, TlsConfigError> {
    client_config_for_key(identity.certified_key())
}

/// A server configuration presenting `identity`'s certificate and requesting a client certificate.
pub fn server_config(identity: &Identity) -> Result<Arc<ServerConfig>, TlsConfigError> {
    server_config_for_key(identity.certified_key())
}

/// Like [`client_config`], for an arbitrary certificate and signing key (tools and tests; the key
/// is not checked against the certificate).
pub fn client_config_for_key(key: Arc<CertifiedKey>) -> Result<Arc<ClientConfig>, TlsConfigError> {
    let provider = Arc::new(provider());
    let algs = provider.signature_verification_algorithms;
    let mut cfg = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SelfSignedPeer { algs }))
        .with_client_cert_resolver(Arc::new(OneCert(key)));
    cfg.alpn_protocols = vec![ALPN_BEP.to_vec()];
    cfg.resumption = Resumption::disabled();
    // Go's dialer sends no SNI.
    cfg.enable_sni = false;
    Ok(Arc::new(cfg))
}

/// Like [`server_config`], for an arbitrary certificate and signing key (tools and tests).
pub fn server_config_for_key(key: Arc<CertifiedKey>) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = Arc::new(provider());
    let algs = provider.signature_verification_algorithms;
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(Arc::new(SelfSignedPeer { algs }))
        .with_cert_resolver(Arc::new(OneCert(key)));
    cfg.alpn_protocols = vec![ALPN_BEP.to_vec()];
    cfg.session_storage = Arc::new(NoServerSessionStorage {});
    cfg.send_tls13_tickets = 0;
    Ok(Arc::new(cfg))
}

/// The server name used when dialing `ip`. SNI is disabled, so it never reaches the wire, and the
/// verifier ignores it.
pub fn dial_server_name(ip: std::net::IpAddr) -> ServerName<'static> {
    ServerName::IpAddress(ip.into())
}

/// The device ID of the peer on an established TLS connection: SHA-256 of its only certificate.
pub fn peer_device_id(conn: &rustls::CommonState) -> Option<DeviceId> {
    match conn.peer_certificates() {
        Some([cert]) => Some(DeviceId::from_cert_der(cert.as_ref())),
        _ => None,
    }
}

/// Accepts any single self-signed certificate; verifies TLS 1.3 handshake signatures for real.
#[derive(Debug)]
struct SelfSignedPeer {
    algs: WebPkiSupportedAlgorithms,
}

impl SelfSignedPeer {
    fn check_single(intermediates: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        if intermediates.is_empty() {
            Ok(())
        } else {
            // Syncthing requires exactly one certificate.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

impl ServerCertVerifier for SelfSignedPeer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Self::check_single(intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Unreachable with a TLS 1.3-only config; refuse rather than accept blindly.
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for SelfSignedPeer {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        // Syncthing refuses a peer without a certificate; so do we, in the handshake.
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Self::check_single(intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not supported".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Always presents the one certified key.
#[derive(Debug)]
pub(crate) struct OneCert(pub(crate) Arc<CertifiedKey>);

impl ResolvesClientCert for OneCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

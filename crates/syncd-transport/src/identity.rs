//! The local device's identity: a self-signed certificate and its private key.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use syncd_types::DeviceId;

/// File name of the certificate inside a home directory (Syncthing's name).
pub const CERT_FILE: &str = "cert.pem";
/// File name of the private key inside a home directory (Syncthing's name).
pub const KEY_FILE: &str = "key.pem";
/// The certificate name a stock Syncthing peer requires (CN or SAN DNS name).
pub const CERT_NAME: &str = "syncthing";

/// Errors while generating, loading or saving an [`Identity`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` PEM block.
    #[error("no certificate found in PEM data: {reason}")]
    NoCertificate {
        /// Why the PEM parser found none.
        reason: String,
    },
    /// The key file holds no PKCS#8, SEC1 or PKCS#1 private key.
    #[error("no private key found in PEM data: {reason}")]
    NoPrivateKey {
        /// Why the PEM parser found none.
        reason: String,
    },
    /// The key type is not one the TLS stack can sign with.
    #[error("unsupported private key: {reason}")]
    UnsupportedKey {
        /// The crypto provider's message.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("private key does not match the certificate's public key")]
    KeyMismatch,
    /// Only one of `cert.pem` / `key.pem` exists; refusing to overwrite half an identity.
    #[error("{present} exists but {missing} does not; refusing to generate a new identity over it")]
    HalfPresent {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {reason}")]
    Generate {
        /// rcgen's message.
        reason: String,
    },
}

/// A device identity: one self-signed certificate, its key, and the device ID derived from it.
///
/// Invariant: the key matches the certificate (checked on load where the key type allows it), and
/// `device_id() == DeviceId::from_cert_der(cert_der())`.
#[derive(Clone)]
pub struct Identity {
    cert_pem: String,
    key_pem: String,
    cert: CertificateDer<'static>,
    certified: Arc<CertifiedKey>,
    device_id: DeviceId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("device_id", &self.device_id.to_string())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a fresh ECDSA P-384 identity shaped like Syncthing's own (CN and SAN
    /// `syncthing`, O `Syncthing`, OU `Automatically Generated`, 20-year validity, random serial).
    pub fn generate() -> Result<Self, IdentityError> {
        use rcgen::{
            CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
            SerialNumber,
        };
        let gen_err = |e: rcgen::Error| IdentityError::Generate {
            reason: e.to_string(),
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(gen_err)?;
        let mut params = CertificateParams::new(vec![CERT_NAME.to_string()]).map_err(gen_err)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, CERT_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Syncthing");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "Automatically Generated");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        // A positive 63-bit serial (DER integers are signed; keep the top bit clear).
        let serial = rand::random::<u64>() >> 1;
        params.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
        // Valid from midnight UTC today for twenty years.
        let today = time::OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT);
        params.not_before = today;
        params.not_after = today + time::Duration::days(20 * 365 + 5);
        let cert = params.self_signed(&key).map_err(gen_err)?;
        Self::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
    }

    /// Builds an identity from PEM text: the first `CERTIFICATE` block of `cert_pem`, and the first
    /// private key of `key_pem` (`PRIVATE KEY` PKCS#8, `EC PRIVATE KEY` SEC1 as Syncthing writes
    /// for ECDSA, or `RSA PRIVATE KEY` PKCS#1).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, IdentityError> {
        let cert =
            CertificateDer::from_pem_slice(cert_pem).map_err(|e| IdentityError::NoCertificate {
                reason: e.to_string(),
            })?;
        let key =
            PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| IdentityError::NoPrivateKey {
                reason: e.to_string(),
            })?;
        let provider = crate::tls::provider();
        let signing_key = load_signing_key(&provider, key)?;
        let certified = CertifiedKey::new(vec![cert.clone()], signing_key);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(_) => return Err(IdentityError::KeyMismatch),
        }
        Ok(Self {
            cert_pem: String::from_utf8_lossy(cert_pem).into_owned(),
            key_pem: String::from_utf8_lossy(key_pem).into_owned(),
            device_id: DeviceId::from_cert_der(cert.as_ref()),
            cert,
            certified: Arc::new(certified),
        })
    }

    /// Loads `cert.pem` and `key.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let cert = read(&cert_path)?;
        let key = read(&key_path)?;
        Self::from_pem(&cert, &key)
    }

    /// Loads the identity in `dir`, or generates and saves a new one when neither file exists.
    /// Refuses (typed error) when only one of the two files exists.
    pub fn load_or_generate(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(dir),
            (false, false) => {
                let id = Self::generate()?;
                id.save(dir)?;
                Ok(id)
            }
            (true, false) => Err(IdentityError::HalfPresent {
                present: cert_path,
                missing: key_path,
            }),
            (false, true) => Err(IdentityError::HalfPresent {
                present: key_path,
                missing: cert_path,
            }),
        }
    }

    /// Writes `cert.pem` and `key.pem` (the key readable by the owner only) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        std::fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let cert_path = dir.join(CERT_FILE);
        std::fs::write(&cert_path, &self.cert_pem).map_err(|source| IdentityError::Io {
            path: cert_path.clone(),
            source,
        })?;
        let key_path = dir.join(KEY_FILE);
        write_private(&key_path, self.key_pem.as_bytes()).map_err(|source| IdentityError::Io {
            path: key_path.clone(),
            source,
        })
    }

    /// This device's ID (SHA-256 of the certificate's DER).
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The certificate's DER bytes.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The certificate as PEM text.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub(crate) fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.certified)
    }
}

fn load_signing_key(
    provider: &CryptoProvider,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<dyn rustls::sign::SigningKey>, IdentityError> {
    provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| IdentityError::UnsupportedKey {
            reason: e.to_string(),
        })
}

fn read(path: &Path) -> Result<Vec<u8>, IdentityError> {
    std::fs::read(path).map_err(|source| IdentityError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

//! HTTPS for the GUI and REST API (`gui.tls`, Syncthing's `useTLS`): a self-signed certificate
//! made at first start in the home (`https-cert.pem`, `https-key.pem`, as Syncthing names
//! them), and the listener the REST server accepts connections from.
//!
//! [`GuiListener`] accepts TCP connections; with TLS on, it looks at each connection's first
//! byte: a TLS handshake is completed (on its own task, with a deadline, so a slow client
//! holds up nobody) and served; plain HTTP from another machine gets a redirect to the
//! `https://` URL (as Syncthing does); plain HTTP from loopback is served as it is, so the
//! CLI on this machine (`syncd status`, `syncd wait`) keeps working without a TLS client.
//! Nothing a client sends can make it panic or stop accepting.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

/// The certificate file in the home (Syncthing's name).
pub const HTTPS_CERT_FILE: &str = "https-cert.pem";
/// The private key file in the home (Syncthing's name).
pub const HTTPS_KEY_FILE: &str = "https-key.pem";

/// How long a client may take to send its first byte and finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond that, new connections wait in the kernel's queue.
const MAX_PENDING: usize = 256;
/// The most of a plain-HTTP request head read to answer it with a redirect.
const MAX_HEAD: usize = 8 * 1024;

/// The GUI's certificate could not be made, read or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Reading or writing a file.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// Only one of the two files exists.
    #[error("{} exists but {} does not; remove it to have a new certificate made", present.display(), missing.display())]
    HalfPresent {
        /// The file that is there.
        present: std::path::PathBuf,
        /// The file that is missing.
        missing: std::path::PathBuf,
    },
    /// Generating the certificate.
    #[error("making the GUI certificate: {0}")]
    Generate(String),
    /// The PEM files do not hold a usable certificate and key.
    #[error("the GUI certificate in {dir}: {reason}")]
    Invalid {
        /// The home.
        dir: String,
        /// What is wrong.
        reason: String,
    },
}

/// The rustls server config for the GUI, from the certificate in `home`, made first if
/// neither file exists.
pub fn server_config(home: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert_pem, key_pem) = load_or_create(home)?;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |reason: String| TlsError::Invalid {
        dir: home.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("{HTTPS_CERT_FILE}: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(format!("{HTTPS_CERT_FILE} holds no certificate")));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(format!("{HTTPS_KEY_FILE}: {e}")))?;
    let provider = Arc::new(syncd_transport::tls::provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| invalid(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The PEM texts of `https-cert.pem` and `https-key.pem`, made (and saved, the key readable
/// by the owner only) when neither exists.
pub fn load_or_create(home: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let cert_path = home.join(HTTPS_CERT_FILE);
    let key_path = home.join(HTTPS_KEY_FILE);
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Io {
            path: p.to_owned(),
            source,
        })
    };
    match (cert_path.exists(), key_path.exists()) {
        (true, true) => Ok((read(&cert_path)?, read(&key_path)?)),
        (true, false) => Err(TlsError::HalfPresent {
            present: cert_path,
            missing: key_path,
        }),
        (false, true) => Err(TlsError::HalfPresent {
            present: key_path,
            missing: cert_path,
        }),
        (false, false) => {
            let (cert, key) = generate()?;
            write_private(&key_path, key.as_bytes())?;
            std::fs::write(&cert_path, cert.as_bytes()).map_err(|source| TlsError::Io {
                path: cert_path.clone(),
                source,
            })?;
            tracing::info!(cert = %cert_path.display(), "made a self-signed certificate for the GUI");
            Ok((cert.into_bytes(), key.into_bytes()))
        }
    }
}

/// A self-signed ECDSA P-256 certificate for this machine's names (PEM cert, PEM key).
fn generate() -> Result<(String, String), TlsError> {
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let host = crate::home::hostname();
    let mut names = vec!["localhost".to_owned()];
    if !host.is_empty() && host != "localhost" {
        names.push(host.clone());
    }
    let mut params = CertificateParams::new(names).map_err(err)?;
    for ip in ["127.0.0.1", "::1"] {
        if let Ok(ip) = ip.parse() {
            params.subject_alt_names.push(SanType::IpAddress(ip));
        }
    }
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "syncd GUI");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "syncd");
    let serial = rand::random::<u64>() >> 1;
    params.serial_number = Some(rcgen::SerialNumber::from(serial.to_be_bytes().to_vec()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let year = i32::try_from(1970 + now / 31_556_952).unwrap_or(2025);
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    let wrap = |source| TlsError::Io {
        path: path.to_owned(),
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(wrap)?;
    std::io::Write::write_all(&mut f, data).map_err(wrap)
}

/// A connection the REST server reads and writes: plain TCP or TLS over it.
pub trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

type Accepted = Option<(Box<dyn Conn>, SocketAddr)>;

/// The REST server's listener (see the module doc).
pub struct GuiListener {
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    pending: JoinSet<Accepted>,
}

impl GuiListener {
    /// Serves plain HTTP, or HTTPS with `tls`.
    pub fn new(tcp: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        GuiListener {
            tcp,
            tls: tls.map(TlsAcceptor::from),
            pending: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for GuiListener {
    type Io = Box<dyn Conn>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                r = self.tcp.accept(), if self.pending.len() < MAX_PENDING => match r {
                    Ok((stream, peer)) => match &self.tls {
                        None => return (Box::new(stream), peer),
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            self.pending.spawn(handshake(acceptor, stream, peer));
                        }
                    },
                    // Out of file descriptors and the like: wait a little and go on.
                    Err(e) => {
                        tracing::debug!(error = %e, "accepting a REST connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(done) = self.pending.join_next(), if !self.pending.is_empty() => {
                    if let Ok(Some(conn)) = done {
                        return conn;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// TLS if the client starts a handshake; otherwise plain HTTP for loopback and a redirect to
/// HTTPS for anyone else.
async fn handshake(acceptor: TlsAcceptor, stream: TcpStream, peer: SocketAddr) -> Accepted {
    let mut first = [0u8; 1];
    let n = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
        .await
        .ok()?
        .ok()?;
    // 0x16: a TLS record of type handshake (the ClientHello).
    if n == 1 && first[0] == 0x16 {
        let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
            .await
            .ok()?;
        match tls {
            Ok(s) => Some((Box::new(s), peer)),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "GUI TLS handshake failed");
                None
            }
        }
    } else if peer.ip().is_loopback() {
        Some((Box::new(stream), peer))
    } else {
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, redirect_to_https(stream)).await;
        None
    }
}

/// Answers one plain-HTTP request with a redirect to the same URL over HTTPS.
async fn redirect_to_https(mut stream: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&head);
    let target = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .filter(|t| t.starts_with('/'))
        .unwrap_or("/");
    let host = text.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("host").then(|| v.trim())
    });
    let valid = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'<' && b != b'>')
    };
    let resp = match host.filter(|h| !h.is_empty() && valid(h) && valid(target)) {
        Some(host) => format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://{host}{target}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
        None => "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 31\r\n\
                 Connection: close\r\n\r\nThis GUI is served over HTTPS.\n"
            .to_owned(),
    };
    stream.write_all(resp.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_certificate_is_made_once_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (c1, k1) = load_or_create(dir.path()).unwrap();
        let (c2, k2) = load_or_create(dir.path()).unwrap();
        assert_eq!((c1, k1), (c2, k2));
        assert!(server_config(dir.path()).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(HTTPS_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
        std::fs::remove_file(dir.path().join(HTTPS_KEY_FILE)).unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(TlsError::HalfPresent { .. })
        ));
        std::fs::write(dir.path().join(HTTPS_KEY_FILE), b"garbage").unwrap();
        assert!(matches!(
            server_config(dir.path()),
            Err(TlsError::Invalid { .. })
        ));
    }
}

//! Global discovery v3 client: server URLs with their options, one HTTPS request at a time
//! over hyper's HTTP/1.1 client connection and tokio-rustls.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use syncd_types::DeviceId;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::identity::Identity;
use crate::tls;

/// Syncthing's public discovery servers' certificate ID (all of them share it).
pub const DEFAULT_SERVER_ID: &str =
    "LYXKCHX-VI3NYZR-ALCJBHF-WMZYSPK-QG6QJA3-MPFYMSO-U56GTUK-NA2MIAW";

/// What `default` in a server list expands to (Syncthing 1.19.2's `DefaultDiscoveryServers`).
pub fn default_servers() -> Vec<String> {
    let mut v = vec![format!(
        "https://discovery.syncthing.net/v2/?noannounce&id={DEFAULT_SERVER_ID}"
    )];
    v.extend(default_v4());
    v.extend(default_v6());
    v
}

fn default_v4() -> Vec<String> {
    vec![format!(
        "https://discovery-v4.syncthing.net/v2/?nolookup&id={DEFAULT_SERVER_ID}"
    )]
}

fn default_v6() -> Vec<String> {
    vec![format!(
        "https://discovery-v6.syncthing.net/v2/?nolookup&id={DEFAULT_SERVER_ID}"
    )]
}

/// Expands `default`, `default-v4` and `default-v6` in a configured server list, drops
/// blanks and duplicates, keeps the order.
pub fn expand_servers(configured: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in configured {
        let expanded = match s.trim() {
            "" => Vec::new(),
            "default" => default_servers(),
            "default-v4" => default_v4(),
            "default-v6" => default_v6(),
            other => vec![other.to_owned()],
        };
        for e in expanded {
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// Why a server URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServerUrlError {
    /// Not `http(s)://host[:port]/path[?options]`.
    #[error("discovery server {url:?}: {reason}")]
    Invalid {
        /// The URL as configured.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// `?id=` is not a device ID.
    #[error("discovery server {url:?}: bad id: {reason}")]
    BadId {
        /// The URL as configured.
        url: String,
        /// The parse error.
        reason: String,
    },
}

/// A parsed server URL (Syncthing's `parseOptions`): the query holds our options and is
/// stripped before any request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// `https` or `http`.
    pub https: bool,
    /// Host (a name, an IPv4 literal or a bracket-less IPv6 literal).
    pub host: String,
    /// Port (443/80 when absent).
    pub port: u16,
    /// Path, at least `/`.
    pub path: String,
    /// `?id=`: the server certificate's device ID (implies `insecure`).
    pub id: Option<DeviceId>,
    /// `?insecure`: no certificate verification.
    pub insecure: bool,
    /// `?noannounce`: lookups only.
    pub no_announce: bool,
    /// `?nolookup`: announcements only.
    pub no_lookup: bool,
}

impl ServerUrl {
    /// Parses a configured server URL.
    pub fn parse(url: &str) -> Result<ServerUrl, ServerUrlError> {
        let bad = |reason| ServerUrlError::Invalid {
            url: url.to_owned(),
            reason,
        };
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("expected https:// or http://"));
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, q),
            None => (rest, ""),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port = port.unwrap_or(if https { 443 } else { 80 });
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let mut s = ServerUrl {
            https,
            host,
            port,
            path: path.to_owned(),
            id: None,
            insecure: false,
            no_announce: false,
            no_lookup: false,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let on = v != "false";
            match k {
                "id" => {
                    let id = v.parse::<DeviceId>().map_err(|e| ServerUrlError::BadId {
                        url: url.to_owned(),
                        reason: e.to_string(),
                    })?;
                    s.id = Some(id);
                    s.insecure = true;
                }
                "insecure" => s.insecure = s.insecure || on,
                "noannounce" => s.no_announce = on,
                "nolookup" => s.no_lookup = on,
                _ => {}
            }
        }
        if !(https || s.insecure && s.no_announce) {
            return Err(bad("http:// needs both ?insecure and ?noannounce"));
        }
        Ok(s)
    }

    /// `scheme://host:port/path`, without our options: the key of `discoveryStatus`.
    pub fn without_query(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

fn split_host_port(authority: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_owned(), port));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_owned(), Some(p.parse().ok()?))),
        Some(_) => None,
        None => Some((authority.to_owned(), None)),
    }
}

/// Why a request to a discovery server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GlobalError {
    /// DNS or TCP connect failed.
    #[error("connect: {0}")]
    Connect(std::io::Error),
    /// TLS failed (including a certificate that is not the pinned one).
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// The server sent something that is not HTTP/1.1, or hung up.
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built (a host that is not a valid header).
    #[error("bad request: {0}")]
    Request(String),
    /// The whole exchange took longer than the timeout.
    #[error("timed out")]
    Timeout,
    /// The body was longer than we read.
    #[error("reply body too large")]
    TooLarge,
    /// A status we did not want (`500 Internal Server Error`).
    #[error("{status}")]
    Status {
        /// Code and reason, as Syncthing shows it (`400 Bad Request`).
        status: String,
        /// Its `Retry-After`, seconds.
        retry_after: Option<u64>,
    },
    /// A 200 lookup answer that is not `{"addresses":[…]}`.
    #[error("malformed lookup reply: {0}")]
    Malformed(String),
}

impl GlobalError {
    /// The server's `Retry-After`, when it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GlobalError::Status { retry_after, .. } => retry_after.map(Duration::from_secs),
            _ => None,
        }
    }

    /// A short, stable description of the kind of failure, for "log once per cause".
    pub(crate) fn cause(&self) -> String {
        match self {
            GlobalError::Status { status, .. } => status.clone(),
            GlobalError::Connect(e) | GlobalError::Tls(e) => format!("{:?}", e.kind()),
            GlobalError::Http(_) => "http".into(),
            GlobalError::Request(_) => "request".into(),
            GlobalError::Timeout => "timeout".into(),
            GlobalError::TooLarge => "too large".into(),
            GlobalError::Malformed(_) => "malformed".into(),
        }
    }
}

/// A discovery server reply.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) reannounce_after: Option<u64>,
    pub(crate) retry_after: Option<u64>,
    pub(crate) body: Bytes,
}

impl Reply {
    fn status_error(&self) -> GlobalError {
        let reason = hyper::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        GlobalError::Status {
            status: format!("{} {reason}", self.status).trim_end().to_owned(),
            retry_after: self.retry_after,
        }
    }
}

/// Request timeout (Syncthing's HTTP client: 5 s).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest reply body read.
pub const MAX_REPLY: usize = 64 * 1024;
/// At most this many addresses are kept from one lookup.
pub const MAX_LOOKUP_ADDRESSES: usize = 64;

/// A client for one server: TLS configurations for announcing (with our certificate) and
/// looking up (without).
pub(crate) struct Client {
    pub(crate) url: ServerUrl,
    announce_tls: Arc<ClientConfig>,
    lookup_tls: Arc<ClientConfig>,
    pub(crate) timeout: Duration,
}

impl Client {
    pub(crate) fn new(url: ServerUrl, identity: &Identity) -> Result<Client, rustls::Error> {
        let announce_tls = client_tls(&url, Some(identity))?;
        let lookup_tls = client_tls(&url, None)?;
        Ok(Client {
            url,
            announce_tls,
            lookup_tls,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// `POST {"addresses":[…]}`: `Ok(reannounce_after)` on 204.
    pub(crate) async fn announce(&self, addresses: &[String]) -> Result<Option<u64>, GlobalError> {
        let body = serde_json::json!({ "addresses": addresses }).to_string();
        let reply = self
            .request(
                "POST",
                self.url.path.clone(),
                Some(body),
                &self.announce_tls,
            )
            .await?;
        if (200..300).contains(&reply.status) {
            Ok(reply.reannounce_after)
        } else {
            Err(reply.status_error())
        }
    }

    /// `GET ?device=ID`: `Ok(Some(addresses))` when found, `Ok(None)` on 404 (with its
    /// `Retry-After`, if any, in the second field).
    pub(crate) async fn lookup(
        &self,
        device: DeviceId,
    ) -> Result<(Option<Vec<String>>, Option<u64>), GlobalError> {
        let path = format!("{}?device={device}", self.url.path);
        let reply = self.request("GET", path, None, &self.lookup_tls).await?;
        match reply.status {
            200 => Ok((Some(parse_lookup(&reply.body)?), None)),
            404 => Ok((None, reply.retry_after)),
            _ => Err(reply.status_error()),
        }
    }

    async fn request(
        &self,
        method: &str,
        path: String,
        body: Option<String>,
        tls: &Arc<ClientConfig>,
    ) -> Result<Reply, GlobalError> {
        tokio::time::timeout(self.timeout, self.request_inner(method, path, body, tls))
            .await
            .map_err(|_| GlobalError::Timeout)?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: String,
        body: Option<String>,
        tls: &Arc<ClientConfig>,
    ) -> Result<Reply, GlobalError> {
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(GlobalError::Connect)?;
        let _ = tcp.set_nodelay(true);
        if self.url.https {
            let name = server_name(&self.url.host)?;
            let stream = TlsConnector::from(Arc::clone(tls))
                .connect(name, tcp)
                .await
                .map_err(GlobalError::Tls)?;
            send(stream, &self.url, method, path, body).await
        } else {
            send(tcp, &self.url, method, path, body).await
        }
    }
}

async fn send<S>(
    io: S,
    url: &ServerUrl,
    method: &str,
    path: String,
    body: Option<String>,
) -> Result<Reply, GlobalError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io)).await?;
    // The connection task ends with the exchange (one request, then the stream is dropped).
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host = if url.host.contains(':') {
        format!("[{}]:{}", url.host, url.port)
    } else {
        format!("{}:{}", url.host, url.port)
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::USER_AGENT,
            concat!("syncd/", env!("CARGO_PKG_VERSION")),
        );
    if body.is_some() {
        req = req.header(hyper::header::CONTENT_TYPE, "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| GlobalError::Request(e.to_string()))?;
    let resp = sender.send_request(req).await?;
    let header = |name: &str| -> Option<u64> {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    };
    let status = resp.status().as_u16();
    let reannounce_after = header("Reannounce-After");
    let retry_after = header("Retry-After");
    let body = Limited::new(resp.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(h) => GlobalError::Http(*h),
            Err(_) => GlobalError::TooLarge,
        })?
        .to_bytes();
    driver.abort();
    Ok(Reply {
        status,
        reannounce_after,
        retry_after,
        body,
    })
}

/// `{"seen":…,"addresses":[…]}` → the addresses (bounded, blanks dropped).
pub(crate) fn parse_lookup(body: &[u8]) -> Result<Vec<String>, GlobalError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| GlobalError::Malformed(e.to_string()))?;
    let list = v
        .get("addresses")
        .and_then(|a| a.as_array())
        .ok_or_else(|| GlobalError::Malformed("no \"addresses\" list".into()))?;
    Ok(list
        .iter()
        .filter_map(|a| a.as_str())
        .filter(|a| !a.is_empty() && a.len() <= 1024)
        .take(MAX_LOOKUP_ADDRESSES)
        .map(str::to_owned)
        .collect())
}

fn server_name(host: &str) -> Result<ServerName<'static>, GlobalError> {
    ServerName::try_from(host.to_owned()).map_err(|e| GlobalError::Request(e.to_string()))
}

/// TLS 1.2 or 1.3 (Go's default), ALPN `http/1.1`; the server is checked by its pinned
/// ID, not at all (`?insecure`), or against the webpki roots.
fn client_tls(
    url: &ServerUrl,
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(tls::provider());
    let algs = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let verifier: Arc<dyn ServerCertVerifier> = if url.insecure {
        Arc::new(PinnedServer { id: url.id, algs })
    } else {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut cfg = match identity {
        Some(id) => builder.with_client_cert_resolver(Arc::new(tls::OneCert(id.certified_key()))),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// `?id=`: the server's certificate must hash to that device ID; `?insecure` alone: any
/// certificate. Handshake signatures are verified either way.
#[derive(Debug)]
struct PinnedServer {
    id: Option<DeviceId>,
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.id {
            Some(want) if DeviceId::from_cert_der(end_entity.as_ref()) != want => {
                Err(rustls::Error::General(format!(
                    "server certificate is {}, not the pinned {want}",
                    DeviceId::from_cert_der(end_entity.as_ref())
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
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

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "LYXKCHX-VI3NYZR-ALCJBHF-WMZYSPK-QG6QJA3-MPFYMSO-U56GTUK-NA2MIAW";

    #[test]
    fn options_are_parsed_and_stripped() {
        let s = ServerUrl::parse(&format!("https://127.0.0.1:18443/v2/?id={ID}&noannounce"));
        let s = s.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.port, 18443);
        assert_eq!(s.path, "/v2/");
        assert!(s.insecure && s.no_announce && !s.no_lookup);
        assert_eq!(s.id.map(|d| d.to_string()).as_deref(), Some(ID));
        assert_eq!(s.without_query(), "https://127.0.0.1:18443/v2/");
        let v6 = ServerUrl::parse("https://[::1]/?nolookup=false&insecure=false");
        let v6 = v6.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 443));
        assert!(!v6.no_lookup && !v6.insecure);
        assert_eq!(v6.without_query(), "https://[::1]:443/");
    }

    #[test]
    fn bad_urls_are_refused() {
        for u in [
            "ftp://x/",
            "https://:5/",
            "https://host:notaport/",
            "http://host/",
            "http://host/?insecure",
            "https://host/?id=nonsense",
        ] {
            assert!(ServerUrl::parse(u).is_err(), "{u}");
        }
        assert!(ServerUrl::parse("http://host/?insecure&noannounce").is_ok());
    }

    #[test]
    fn default_expands_to_syncthings_three_servers() {
        let got = expand_servers(&["default".into(), "default-v4".into(), " ".into()]);
        assert_eq!(got.len(), 3);
        assert!(got[0].starts_with("https://discovery.syncthing.net/v2/?noannounce&id="));
        assert!(got[1].starts_with("https://discovery-v4.syncthing.net/v2/?nolookup&id="));
        assert!(got[2].starts_with("https://discovery-v6.syncthing.net/v2/?nolookup&id="));
        for g in &got {
            assert!(ServerUrl::parse(g).is_ok(), "{g}");
        }
    }

    #[test]
    fn lookup_replies_are_checked() {
        let ok = parse_lookup(br#"{"seen":"2026-01-01T00:00:00Z","addresses":["tcp://a:1",""]}"#);
        assert_eq!(ok.ok(), Some(vec!["tcp://a:1".to_owned()]));
        for bad in [&b"<html>"[..], b"{}", b"{\"addresses\":5}", b""] {
            assert!(matches!(parse_lookup(bad), Err(GlobalError::Malformed(_))));
        }
    }
}

//! A small blocking HTTP/1.1 client over `std::net::TcpStream`, for the CLI talking to its own
//! daemon's REST API (one request per connection, `Connection: close`). Blocking on purpose:
//! the CLI has no runtime, and tests call it from inside theirs, where hyper's client would need
//! a runtime of its own on another thread. The response is parsed by httparse (hyper's parser,
//! already in the tree).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::home::REST_ADDRESS_FILE;

/// Why a request to the daemon failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Nothing accepts connections at the address: no daemon is running there.
    #[error("no syncd daemon answers at {addr} ({source}); start one with `syncd serve`")]
    NotRunning {
        /// The address tried.
        addr: SocketAddr,
        /// The connect error.
        source: std::io::Error,
    },
    /// The connection broke or timed out.
    #[error("talking to the daemon at {addr}: {source}")]
    Io {
        /// The daemon's address.
        addr: SocketAddr,
        /// The IO error.
        source: std::io::Error,
    },
    /// The daemon answered with an error status.
    #[error("the daemon answered {status}: {body}")]
    Status {
        /// HTTP status code.
        status: u16,
        /// The plain-text error body.
        body: String,
    },
    /// The answer was not HTTP or not the JSON expected.
    #[error("unexpected answer from the daemon: {0}")]
    BadResponse(String),
}

/// A response: status, headers (names lowercased) and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client for one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    api_key: String,
    timeout: Duration,
}

impl Client {
    /// A client for the daemon at `addr` using `api_key`.
    pub fn new(addr: SocketAddr, api_key: impl Into<String>) -> Self {
        Client {
            addr,
            api_key: api_key.into(),
            timeout: Duration::from_secs(30),
        }
    }

    /// The client for the daemon of `home`: the address a running daemon recorded in
    /// `<home>/rest-address`, else the config's `gui.address` (an unspecified IP such as
    /// `0.0.0.0` becomes loopback).
    pub fn for_home(home: &Path, config: &Config) -> Option<Self> {
        let recorded = std::fs::read_to_string(home.join(REST_ADDRESS_FILE))
            .ok()
            .and_then(|s| s.trim().parse::<SocketAddr>().ok());
        let mut addr = recorded.or_else(|| config.gui.address.parse().ok())?;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Some(Client::new(addr, config.gui.api_key.clone()))
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the read timeout for the next requests (long polls need more than the default).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one request; any status is returned as a [`Response`].
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Response, ClientError> {
        let io = |source| ClientError::Io {
            addr: self.addr,
            source,
        };
        let mut stream =
            TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(|source| {
                ClientError::NotRunning {
                    addr: self.addr,
                    source,
                }
            })?;
        stream.set_read_timeout(Some(self.timeout)).map_err(io)?;
        stream.set_write_timeout(Some(self.timeout)).map_err(io)?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nConnection: close\r\n\
             Accept: application/json\r\nContent-Length: {}\r\n",
            self.addr,
            self.api_key,
            body.len()
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(io)?;
        parse_response(&raw)
    }

    /// Sends a request and decodes a 2xx JSON body (`null` for an empty body); other statuses
    /// become [`ClientError::Status`].
    pub fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let resp = self.request(method, path, body)?;
        if !(200..300).contains(&resp.status) {
            return Err(ClientError::Status {
                status: resp.status,
                body: resp.text().trim().to_owned(),
            });
        }
        if resp.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&resp.body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// `GET path` decoded as JSON.
    pub fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.json("GET", path, None)
    }
}

/// Percent-encodes a query parameter value (`application/x-www-form-urlencoded`, as axum's
/// `Query` decodes it).
pub fn encode_query(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_owned())
        .unwrap_or_default()
}

fn parse_response(raw: &[u8]) -> Result<Response, ClientError> {
    let bad = |m: &str| ClientError::BadResponse(m.to_owned());
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let body_at = match head.parse(raw) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(bad("the response ended inside its head")),
        Err(e) => return Err(bad(&format!("not an HTTP response: {e}"))),
    };
    let status = head.code.ok_or_else(|| bad("no HTTP status"))?;
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let body = raw.get(body_at..).unwrap_or_default();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The body of a `Transfer-Encoding: chunked` response (chunk sizes read by httparse).
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let (start, size) = match httparse::parse_chunk_size(data).ok()? {
            httparse::Status::Complete(c) => c,
            httparse::Status::Partial => return None,
        };
        let size = usize::try_from(size).ok()?;
        data = data.get(start..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_response() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Syncthing-ID: A\r\n\r\n{\"a\":1}")
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-syncthing-id"), Some("A"));
        assert_eq!(r.body, b"{\"a\":1}");
    }

    #[test]
    fn parses_chunked_response() {
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nno \r\n6\r\nfolder\r\n0\r\n\r\n")
            .unwrap();
        assert_eq!((r.status, r.text().as_str()), (404, "no folder"));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for raw in [
            &b""[..],
            b"hello",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(parse_response(raw).is_err());
        }
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("a b/ü&x"), "a+b%2F%C3%BC%26x");
        assert_eq!(
            serde_urlencoded::from_str::<Vec<(String, String)>>(&format!(
                "k={}",
                encode_query("a b/ü&x=+")
            ))
            .unwrap(),
            [("k".to_owned(), "a b/ü&x=+".to_owned())]
        );
    }

    #[test]
    fn connecting_to_a_closed_port_says_not_running() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        // The listener is dropped here, so the port is closed.
        let err = Client::new(port, "k").get("/rest/system/ping").unwrap_err();
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err}");
    }
}

//! A minimal HTTP/1.1 client for Syncthing-compatible REST APIs on loopback: one request per
//! connection (`Connection: close`), `X-API-Key` on every request, chunked or
//! length-delimited bodies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A REST request that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// Connecting, sending or receiving failed (e.g. the daemon is still starting).
    #[error("{method} {path} to {addr}: {source}")]
    Io {
        /// The server.
        addr: SocketAddr,
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The reply is not a well-formed HTTP/1.1 response.
    #[error("malformed HTTP response: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
    /// The server answered with a status outside 2xx (from [`Rest::get`] and [`Rest::post`]).
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// The method.
        method: String,
        /// The path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The body, trimmed.
        body: String,
    },
}

/// A REST endpoint: address and API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rest {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// Sent as `X-API-Key`.
    pub api_key: String,
}

impl Rest {
    /// `127.0.0.1:port` with `api_key`.
    pub fn loopback(port: u16, api_key: &str) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            api_key: api_key.to_owned(),
        }
    }

    /// `GET path`; the body when the status is 2xx.
    pub fn get(&self, path: &str, timeout: Duration) -> Result<String, RestError> {
        self.expect_2xx("GET", path, timeout)
    }

    /// `POST path` with an empty body; the body when the status is 2xx.
    pub fn post(&self, path: &str, timeout: Duration) -> Result<String, RestError> {
        self.expect_2xx("POST", path, timeout)
    }

    fn expect_2xx(&self, method: &str, path: &str, timeout: Duration) -> Result<String, RestError> {
        self.send_json(method, path, "", timeout)
    }

    /// `method path` with an empty body; the status and decoded body, whatever the status.
    /// `timeout` bounds the connect and each read and write.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<(u16, String), RestError> {
        self.request_with(method, path, "", timeout)
    }

    /// `method path` with a JSON `body`; the body of the answer when its status is 2xx.
    pub fn send_json(
        &self,
        method: &str,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<String, RestError> {
        let (status, answer) = self.request_with(method, path, body, timeout)?;
        if !(200..300).contains(&status) {
            return Err(RestError::Status {
                method: method.to_owned(),
                path: path.to_owned(),
                status,
                body: answer.trim().to_owned(),
            });
        }
        Ok(answer)
    }

    fn request_with(
        &self,
        method: &str,
        path: &str,
        body: &str,
        timeout: Duration,
    ) -> Result<(u16, String), RestError> {
        let io = |source| RestError::Io {
            addr: self.addr,
            method: method.to_owned(),
            path: path.to_owned(),
            source,
        };
        let mut s = TcpStream::connect_timeout(&self.addr, timeout).map_err(io)?;
        s.set_read_timeout(Some(timeout)).map_err(io)?;
        s.set_write_timeout(Some(timeout)).map_err(io)?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.api_key,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(io)?;
        parse_response(&raw)
    }
}

fn malformed(reason: impl Into<String>) -> RestError {
    RestError::Malformed {
        reason: reason.into(),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn utf8(bytes: &[u8]) -> Result<&str, RestError> {
    std::str::from_utf8(bytes).map_err(|e| malformed(e.to_string()))
}

/// Splits a complete HTTP/1.1 response into status code and decoded body (chunked, or cut at
/// `Content-Length`, or all that follows the headers).
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), RestError> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| malformed("no end of headers"))?;
    let head = utf8(raw.get(..end).unwrap_or_default())?;
    let body = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed(format!("bad status line {status_line:?}")))?;
    let mut chunked = false;
    let mut length: Option<usize> = None;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked") {
            chunked = true;
        } else if k == "content-length" {
            length = v.parse().ok();
        }
    }
    let bytes = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or_else(|| malformed("body shorter than Content-Length"))?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, RestError> {
    let mut out = Vec::new();
    loop {
        let eol = find(body, b"\r\n").ok_or_else(|| malformed("bad chunk header"))?;
        let size_text = utf8(body.get(..eol).unwrap_or_default())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| malformed(format!("bad chunk size {size_text:?}: {e}")))?;
        body = body.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(
            body.get(..size)
                .ok_or_else(|| malformed("chunk shorter than its size"))?,
        );
        body = body.get(size + 2..).unwrap_or_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_chunked_body() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=y\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(raw).unwrap(), (200, "{\"a\":1}".to_string()));
    }

    #[test]
    fn honours_content_length_and_reports_the_status() {
        let raw = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nCSRF Errorjunk";
        assert_eq!(
            parse_response(raw).unwrap(),
            (403, "CSRF Error".to_string())
        );
    }

    #[test]
    fn rejects_a_response_without_headers_end() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }

    #[test]
    fn sends_the_api_key_and_reports_a_non_2xx_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert_ne!(n, 0, "request cut short");
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let rest = Rest::loopback(port, "the-key");
        let err = rest
            .get("/rest/x", Duration::from_secs(30))
            .expect_err("404 is an error");
        assert!(
            matches!(err, RestError::Status { status: 404, ref body, .. } if body == "nope"),
            "{err}"
        );
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /rest/x HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("\r\nX-API-Key: the-key\r\n"), "{req}");
    }
}

//! A minimal HTTP/1.1 client for the daemons' REST APIs on loopback: one request per
//! connection (`Connection: close`), `X-API-Key` auth, chunked or length-delimited bodies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A REST endpoint: address and API key.
#[derive(Debug, Clone)]
pub struct Rest {
    /// `127.0.0.1:PORT`.
    pub addr: SocketAddr,
    /// Sent as `X-API-Key`.
    pub api_key: String,
}

impl Rest {
    /// `GET path`; the body when the status is 2xx.
    pub fn get(&self, path: &str, timeout: Duration) -> Result<String, String> {
        self.request("GET", path, timeout)
    }

    /// `POST path` with an empty body; the body when the status is 2xx.
    pub fn post(&self, path: &str, timeout: Duration) -> Result<String, String> {
        self.request("POST", path, timeout)
    }

    fn request(&self, method: &str, path: &str, timeout: Duration) -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&self.addr, timeout)
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        s.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        s.set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nX-API-Key: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.addr, self.api_key
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let (status, body) = parse_response(&raw)?;
        if !(200..300).contains(&status) {
            return Err(format!("{method} {path}: HTTP {status}: {}", body.trim()));
        }
        Ok(body)
    }
}

/// Splits a complete HTTP/1.1 response into status code and decoded body.
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of headers")?;
    let head =
        std::str::from_utf8(raw.get(..end).unwrap_or_default()).map_err(|e| e.to_string())?;
    let body = raw.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
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
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("bad chunk header")?;
        let size_text =
            std::str::from_utf8(body.get(..eol).unwrap_or_default()).map_err(|e| e.to_string())?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        body = body.get(eol + 2..).unwrap_or_default();
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(body.get(..size).ok_or("chunk shorter than its size")?);
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
}

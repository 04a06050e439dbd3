//! The web GUI: static files embedded in the binary, `/meta.js`, the `/qr/` PNG, and the
//! CSRF tokens that let the GUI page call `/rest/*` without knowing the API key.
//!
//! How the page authenticates, as Syncthing's GUI does when no GUI password is set: loading a
//! page sets the cookie `CSRF-Token-<first 5 of the device ID>`; the page's script copies it into
//! the header `X-CSRF-Token-<same>` of every REST call. Another origin can neither read the
//! cookie nor send that header without a CORS preflight we never grant. Stricter than
//! Syncthing: a token is handed out, and accepted, only on connections from a loopback address
//! whose `Host` is a loopback name too (a browser on this machine, or an `ssh -L` tunnel, whose
//! connections arrive from loopback; not a DNS-rebinding page under its own name);
//! anyone else gets the page without a token and must type the API key, so a GUI bound beyond
//! loopback is no more open than the REST API itself.
//!
//! Everything here is text or bytes fixed at build time, except the QR image, which is computed
//! from the query with a bounded length.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../gui/index.html");
const APP_JS: &str = include_str!("../gui/app.js");
const STYLE_CSS: &str = include_str!("../gui/style.css");
const FAVICON_SVG: &str = include_str!("../gui/favicon.svg");

/// The page may load only its own scripts, styles and images: even if untrusted text ever
/// reached the DOM as markup, no inline script or foreign resource would run.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// How many CSRF tokens are remembered (each page load adds one; the oldest is forgotten).
const MAX_TOKENS: usize = 25;

/// The longest text `/qr/` encodes (a device ID is 63 characters).
const MAX_QR_TEXT: usize = 512;

/// Pixels per QR module, and the quiet zone in modules.
const QR_SCALE: usize = 6;
const QR_QUIET: usize = 4;

/// An embedded file, if `path` names one.
pub fn asset(path: &str) -> Option<(&'static str, &'static str)> {
    Some(match path {
        "/" | "/index.html" => ("text/html; charset=utf-8", INDEX_HTML),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "/favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return None,
    })
}

/// The response for an embedded file, with the headers every GUI page carries.
pub fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(h);
    r
}

/// CSP, no framing, no caching of the (small) files so an upgraded daemon serves its own GUI.
pub fn secure_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `/meta.js`, as Syncthing: `var metadata = {"deviceID":"…"};`.
pub fn meta_js(device_id: &str) -> Response {
    let body = format!(
        "var metadata = {};\n",
        serde_json::json!({ "deviceID": device_id })
    );
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    secure_headers(h);
    r
}

/// `GET /qr/?text=`: a PNG of the QR code (error correction level M, as Syncthing).
pub fn qr_response(text: &str) -> Response {
    if text.len() > MAX_QR_TEXT {
        return (StatusCode::BAD_REQUEST, "text too long\n").into_response();
    }
    match qr_png(text) {
        Some(png) => {
            let mut r = png.into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
            secure_headers(h);
            r
        }
        None => (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode\n").into_response(),
    }
}

/// The QR code of `text` as a grayscale PNG, black modules on white with a quiet zone.
pub fn qr_png(text: &str) -> Option<Vec<u8>> {
    let code =
        qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M).ok()?;
    let modules = code.width();
    let dark: Vec<bool> = code
        .to_colors()
        .into_iter()
        .map(|c| c == qrcode::Color::Dark)
        .collect();
    let side = (modules + 2 * QR_QUIET) * QR_SCALE;
    let mut pixels = Vec::with_capacity(side * side);
    for y in 0..side {
        let my = (y / QR_SCALE).checked_sub(QR_QUIET);
        for x in 0..side {
            let mx = (x / QR_SCALE).checked_sub(QR_QUIET);
            let is_dark = match (mx, my) {
                (Some(mx), Some(my)) if mx < modules && my < modules => {
                    dark.get(my * modules + mx).copied().unwrap_or(false)
                }
                _ => false,
            };
            pixels.push(if is_dark { 0 } else { 255 });
        }
    }
    let side = u32::try_from(side).ok()?;
    Some(png_gray8(side, side, &pixels))
}

/// A minimal PNG writer: 8-bit grayscale, no filtering, zlib with stored (uncompressed) deflate
/// blocks. Small QR images do not need compression, and this keeps the dependency list short.
/// `pixels` holds `width * height` bytes, row by row.
pub fn png_gray8(width: u32, height: u32, pixels: &[u8]) -> Vec<u8> {
    let w = width as usize;
    // Each scanline starts with its filter type (0 = none).
    let mut raw = Vec::with_capacity((w + 1) * height as usize);
    for row in pixels.chunks(w.max(1)).take(height as usize) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut out = Vec::new();
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // bit depth 8, color type 0 (gray), compression 0, filter 0, interlace 0
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(out.get(start..).unwrap_or_default());
    out.extend_from_slice(&crc.to_be_bytes());
}

/// zlib framing around stored deflate blocks (RFC 1950/1951).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65535 * 5 + 16);
    // CMF: deflate, 32 KiB window; FLG: check bits so that CMF*256+FLG is a multiple of 31.
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        let last = u8::from(blocks.peek().is_none());
        out.push(last);
        let len = u16::try_from(block.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut c = n as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[n] = c;
        n += 1;
    }
    table
};

/// CRC-32 (ISO-HDLC, as PNG uses).
fn crc32(data: &[u8]) -> u32 {
    let mut c = u32::MAX;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that cannot overflow before the modulo.
    for block in data.chunks(5552) {
        for &x in block {
            a += u32::from(x);
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// The CSRF tokens handed to GUI pages (most recent last).
#[derive(Debug, Default)]
pub struct CsrfTokens {
    tokens: Mutex<VecDeque<String>>,
}

impl CsrfTokens {
    /// A new token, remembered (only the newest 25 are kept).
    pub fn issue(&self) -> String {
        let token = crate::config::random_api_key();
        if let Ok(mut t) = self.tokens.lock() {
            t.push_back(token.clone());
            while t.len() > MAX_TOKENS {
                t.pop_front();
            }
        }
        token
    }

    /// Whether `token` is one we handed out.
    pub fn valid(&self, token: &str) -> bool {
        !token.is_empty()
            && self
                .tokens
                .lock()
                .is_ok_and(|t| t.iter().any(|k| crate::rest::ct_eq(k, token)))
    }
}

/// The cookie and header names: `CSRF-Token-` + the first 5 characters of the device ID.
pub fn csrf_cookie_name(device_id: &str) -> String {
    format!("CSRF-Token-{}", device_id.get(..5).unwrap_or(device_id))
}

/// The header the page sends the token in.
pub fn csrf_header_name(device_id: &str) -> String {
    format!("X-{}", csrf_cookie_name(device_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_and_adler32_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        assert_eq!(adler32(&[]), 1);
    }

    #[test]
    fn stored_zlib_splits_long_data_into_blocks() {
        let data = vec![7u8; 70_000];
        let z = zlib_stored(&data);
        // header + two blocks (5 bytes each) + data + adler
        assert_eq!(z.len(), 2 + 5 + 5 + 70_000 + 4);
        assert_eq!(z[2], 0, "first block is not the last");
        assert_eq!(z[2 + 5 + 65535], 1, "second block is the last");
    }

    #[test]
    fn png_has_signature_and_chunks() {
        let png = png_gray8(2, 2, &[0, 255, 255, 0]);
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!(&png[png.len() - 8..png.len() - 4], b"IEND");
    }

    #[test]
    fn qr_of_a_device_id_is_a_png_and_overlong_text_is_refused() {
        let id = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
        let png = qr_png(id).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let r = qr_response(&"x".repeat(MAX_QR_TEXT + 1));
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn csrf_tokens_are_remembered_up_to_a_limit() {
        let t = CsrfTokens::default();
        let first = t.issue();
        assert!(t.valid(&first));
        assert!(!t.valid(""));
        assert!(!t.valid("nope"));
        for _ in 0..MAX_TOKENS {
            t.issue();
        }
        assert!(!t.valid(&first), "the oldest token is forgotten");
    }

    #[test]
    fn csrf_names_use_the_first_five_characters_of_the_id() {
        assert_eq!(csrf_cookie_name("ABCDEFG-HIJ"), "CSRF-Token-ABCDE");
        assert_eq!(csrf_header_name("ABCDEFG-HIJ"), "X-CSRF-Token-ABCDE");
        assert_eq!(csrf_cookie_name("AB"), "CSRF-Token-AB");
    }
}

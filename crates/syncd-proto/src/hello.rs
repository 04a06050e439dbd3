//! The pre-authentication Hello: `u32 BE magic`, `u16 BE length ≤ 32767`, protobuf `Hello`.

use prost::Message as _;

use crate::bep;
use crate::error::{HelloError, ProstFault, classify_prost};

/// The first word of a BEP v1 Hello.
pub const HELLO_MAGIC: u32 = 0x2EA7_D90B;

/// The largest Hello body a receiver accepts (Syncthing reads the length as `int16`... and
/// rejects anything above 32767).
pub const MAX_HELLO_LEN: usize = 32_767;

/// First words that mean "a Syncthing older than v0.14": v0.12 ClusterConfig headers and the
/// v0.13 magic.
const TOO_OLD_MAGICS: [u32; 3] = [0x0001_0001, 0x0001_0000, 0x9F79_BC40];

/// Appends a framed Hello (magic, big-endian length, body) to `out`.
///
/// A Hello must fit in 32767 bytes. Only `device_name` and `client_version` are free text; if
/// the encoded Hello would be larger, `device_name` (then `client_version`) is shortened at a
/// character boundary until it fits, so the frame is always one a peer accepts.
pub fn encode_hello(hello: &bep::Hello, out: &mut Vec<u8>) {
    let mut len = hello.encoded_len();
    let mut shortened;
    let mut msg = hello;
    if len > MAX_HELLO_LEN {
        shortened = hello.clone();
        for field in [0, 1, 2] {
            let s = match field {
                0 => &mut shortened.device_name,
                1 => &mut shortened.client_version,
                _ => &mut shortened.client_name,
            };
            let excess = len.saturating_sub(MAX_HELLO_LEN);
            // Removing `excess` bytes of text also shrinks the length varint, so this converges.
            let mut keep = s.len().saturating_sub(excess + 4);
            while keep > 0 && !s.is_char_boundary(keep) {
                keep -= 1;
            }
            s.truncate(keep);
            len = shortened.encoded_len();
            if len <= MAX_HELLO_LEN {
                break;
            }
        }
        msg = &shortened;
    }
    out.reserve(6 + len);
    out.extend_from_slice(&HELLO_MAGIC.to_be_bytes());
    // `len` ≤ 32767 here: the three strings are the only variable-size fields.
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    msg.encode_raw(out);
}

/// Reads a framed Hello from the start of `buf`.
///
/// Returns `Ok(None)` while more bytes are needed, and `Ok(Some((hello, consumed)))` once the
/// whole Hello is there: bytes from `consumed` on belong to the post-Hello message stream (a
/// peer may pipeline its ClusterConfig right behind its Hello) and must be kept.
pub fn decode_hello(buf: &[u8]) -> Result<Option<(bep::Hello, usize)>, HelloError> {
    let Some(magic) = buf.first_chunk::<4>().map(|b| u32::from_be_bytes(*b)) else {
        return Ok(None);
    };
    if magic != HELLO_MAGIC {
        return Err(if TOO_OLD_MAGICS.contains(&magic) {
            HelloError::TooOldVersion { magic }
        } else {
            HelloError::UnknownMagic { magic }
        });
    }
    let Some(len) = buf.get(4..6).and_then(|b| b.first_chunk::<2>()) else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes(*len));
    if len > MAX_HELLO_LEN {
        return Err(HelloError::TooBig { len });
    }
    let Some(body) = buf.get(6..6 + len) else {
        return Ok(None);
    };
    let hello = bep::Hello::decode(body).map_err(|e| match classify_prost(e) {
        ProstFault::Other(source) => HelloError::Protobuf { source },
        ProstFault::InvalidUtf8 => HelloError::InvalidUtf8,
    })?;
    Ok(Some((hello, 6 + len)))
}

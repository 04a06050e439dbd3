//! Post-Hello message framing: `u16 BE header length`, `Header`, `u32 BE message length`, body
//! (protobuf, or a big-endian u32 uncompressed length plus one raw LZ4 block).

use prost::Message as _;

use crate::bep::{self, MessageCompression, MessageType};
use crate::error::{DecodeError, EncodeError, ProstFault, classify_prost};

/// The largest message body (and decompressed body) either side accepts.
pub const MAX_MESSAGE_LEN: usize = 500_000_000;

/// Bodies smaller than this are never compressed.
pub const COMPRESSION_THRESHOLD: usize = 128;

/// The largest header length a receiver accepts (the length is read as `int16`).
const MAX_HEADER_LEN: usize = 32_767;

/// One post-Hello BEP message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Type 0: the folders the sender shares.
    ClusterConfig(bep::ClusterConfig),
    /// Type 1: a full index for a folder.
    Index(bep::Index),
    /// Type 2: additions to an index.
    IndexUpdate(bep::IndexUpdate),
    /// Type 3: a block request.
    Request(bep::Request),
    /// Type 4: the answer to a Request.
    Response(bep::Response),
    /// Type 5: blocks available in temporary files.
    DownloadProgress(bep::DownloadProgress),
    /// Type 6: keepalive.
    Ping(bep::Ping),
    /// Type 7: the last message before the sender closes.
    Close(bep::Close),
}

impl Message {
    /// The message's wire type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::ClusterConfig(_) => MessageType::ClusterConfig,
            Message::Index(_) => MessageType::Index,
            Message::IndexUpdate(_) => MessageType::IndexUpdate,
            Message::Request(_) => MessageType::Request,
            Message::Response(_) => MessageType::Response,
            Message::DownloadProgress(_) => MessageType::DownloadProgress,
            Message::Ping(_) => MessageType::Ping,
            Message::Close(_) => MessageType::Close,
        }
    }

    /// Length of the protobuf body, uncompressed.
    pub fn encoded_len(&self) -> usize {
        match self {
            Message::ClusterConfig(m) => m.encoded_len(),
            Message::Index(m) => m.encoded_len(),
            Message::IndexUpdate(m) => m.encoded_len(),
            Message::Request(m) => m.encoded_len(),
            Message::Response(m) => m.encoded_len(),
            Message::DownloadProgress(m) => m.encoded_len(),
            Message::Ping(m) => m.encoded_len(),
            Message::Close(m) => m.encoded_len(),
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Message::ClusterConfig(m) => m.encode_raw(out),
            Message::Index(m) => m.encode_raw(out),
            Message::IndexUpdate(m) => m.encode_raw(out),
            Message::Request(m) => m.encode_raw(out),
            Message::Response(m) => m.encode_raw(out),
            Message::DownloadProgress(m) => m.encode_raw(out),
            Message::Ping(m) => m.encode_raw(out),
            Message::Close(m) => m.encode_raw(out),
        }
    }

    fn decode_body(message_type: MessageType, body: &[u8]) -> Result<Message, DecodeError> {
        let result = match message_type {
            MessageType::ClusterConfig => {
                bep::ClusterConfig::decode(body).map(Message::ClusterConfig)
            }
            MessageType::Index => bep::Index::decode(body).map(Message::Index),
            MessageType::IndexUpdate => bep::IndexUpdate::decode(body).map(Message::IndexUpdate),
            MessageType::Request => bep::Request::decode(body).map(Message::Request),
            MessageType::Response => bep::Response::decode(body).map(Message::Response),
            MessageType::DownloadProgress => {
                bep::DownloadProgress::decode(body).map(Message::DownloadProgress)
            }
            MessageType::Ping => bep::Ping::decode(body).map(Message::Ping),
            MessageType::Close => bep::Close::decode(body).map(Message::Close),
        };
        result.map_err(|e| match classify_prost(e) {
            ProstFault::InvalidUtf8 => DecodeError::InvalidUtf8 { message_type },
            ProstFault::Other(source) => DecodeError::Protobuf {
                message_type,
                source,
            },
        })
    }
}

/// When the sender compresses: the device's `compression` setting in Syncthing's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionPolicy {
    /// Every message type except Response (Syncthing's default).
    #[default]
    Metadata,
    /// Every message type, Response included.
    Always,
    /// Nothing.
    Never,
}

impl CompressionPolicy {
    fn wants(self, message_type: MessageType) -> bool {
        match self {
            CompressionPolicy::Metadata => message_type != MessageType::Response,
            CompressionPolicy::Always => true,
            CompressionPolicy::Never => false,
        }
    }
}

/// Appends one framed message to `out`.
///
/// The body is LZ4-compressed (a big-endian u32 uncompressed length, then one raw LZ4 block)
/// when `policy` covers its type, it is at least 128 bytes, and compression saves at least
/// 1/32 (3.125%) of it, exactly as Syncthing decides; otherwise it goes out plain.
pub fn encode_message(
    msg: &Message,
    policy: CompressionPolicy,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let message_type = msg.message_type();
    let len = msg.encoded_len();
    if len > MAX_MESSAGE_LEN {
        return Err(EncodeError::MessageTooLong { len });
    }
    if policy.wants(message_type) && len >= COMPRESSION_THRESHOLD {
        let mut body = Vec::with_capacity(len);
        msg.encode_body(&mut body);
        let block = lz4_flex::block::compress(&body);
        let compressed_len = 4 + block.len();
        if !block.is_empty() && compressed_len <= len - len / 32 {
            write_header(message_type, MessageCompression::Lz4, out);
            out.reserve(4 + compressed_len);
            out.extend_from_slice(&wire_u32(compressed_len).to_be_bytes());
            out.extend_from_slice(&wire_u32(len).to_be_bytes());
            out.extend_from_slice(&block);
            return Ok(());
        }
        write_header(message_type, MessageCompression::None, out);
        out.reserve(4 + len);
        out.extend_from_slice(&wire_u32(len).to_be_bytes());
        out.extend_from_slice(&body);
        return Ok(());
    }
    write_header(message_type, MessageCompression::None, out);
    out.reserve(4 + len);
    out.extend_from_slice(&wire_u32(len).to_be_bytes());
    msg.encode_body(out);
    Ok(())
}

/// Lengths here are ≤ MAX_MESSAGE_LEN + 4 (checked by the caller), so they fit a u32.
fn wire_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn write_header(message_type: MessageType, compression: MessageCompression, out: &mut Vec<u8>) {
    let header = bep::Header {
        r#type: message_type as i32,
        compression: compression as i32,
    };
    // At most 4 bytes: two small varint fields.
    let len = u16::try_from(header.encoded_len()).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes());
    header.encode_raw(out);
}

/// The largest output an LZ4 block of `compressed` bytes can decompress to: a match encodes at
/// most 255 output bytes per input byte, plus a small constant for the final sequence.
fn lz4_max_output(compressed: usize) -> usize {
    compressed.saturating_mul(255).saturating_add(255)
}

/// A sans-IO streaming decoder for the post-Hello message stream.
///
/// Feed bytes as they arrive, in any split; pull whole messages with
/// [`next_message`](Decoder::next_message). Memory grows only with bytes actually fed (a
/// declared length is never pre-allocated) and with bytes actually decompressed (bounded by
/// LZ4's maximal ratio over the compressed bytes received). Unknown message types are
/// discarded as their bytes arrive, without being buffered. After an error the decoder stays
/// failed: the connection must be dropped.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    pos: usize,
    /// Bytes of an unknown-type message still to discard.
    skip: usize,
    failed: bool,
}

impl Decoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = bytes.get(n..).unwrap_or_default();
        }
        if bytes.is_empty() {
            return;
        }
        self.compact();
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet returned as (or discarded with) a message.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Drops consumed bytes once they are at least half the buffer (amortised O(1) per byte).
    fn compact(&mut self) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
    }

    /// The next whole message, `Ok(None)` if more bytes are needed, or the peer's fault.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        if self.failed {
            return Err(DecodeError::AlreadyFailed);
        }
        let result = self.next_inner();
        if result.is_err() {
            self.failed = true;
            self.buf = Vec::new();
            self.pos = 0;
        }
        result
    }

    fn next_inner(&mut self) -> Result<Option<Message>, DecodeError> {
        loop {
            let avail = self.buf.get(self.pos..).unwrap_or_default();
            let Some(hl) = avail.first_chunk::<2>() else {
                return Ok(None);
            };
            let raw_hl = u16::from_be_bytes(*hl);
            let header_len = usize::from(raw_hl);
            if header_len > MAX_HEADER_LEN {
                return Err(DecodeError::NegativeHeaderLength { len: raw_hl });
            }
            let Some(header_bytes) = avail.get(2..2 + header_len) else {
                return Ok(None);
            };
            let Some(ml) = avail
                .get(2 + header_len..)
                .and_then(|b| b.first_chunk::<4>())
            else {
                return Ok(None);
            };
            let header = bep::Header::decode(header_bytes)
                .map_err(|source| DecodeError::Header { source })?;
            let raw_ml = u32::from_be_bytes(*ml);
            let msg_len = usize::try_from(raw_ml).unwrap_or(usize::MAX);
            if msg_len > MAX_MESSAGE_LEN {
                return Err(DecodeError::MessageTooLong { len: raw_ml });
            }
            let compression = MessageCompression::try_from(header.compression).map_err(|_| {
                DecodeError::UnknownCompression {
                    value: header.compression,
                }
            })?;
            let start = 2 + header_len + 4;
            let Ok(message_type) = MessageType::try_from(header.r#type) else {
                // Unknown type: skip the body, forward compatibility. Whatever is buffered is
                // discarded now, the rest as it arrives.
                let buffered = avail.len() - start;
                let here = buffered.min(msg_len);
                self.pos += start + here;
                self.skip = msg_len - here;
                if self.skip > 0 {
                    return Ok(None);
                }
                continue;
            };
            let Some(body) = avail.get(start..start + msg_len) else {
                return Ok(None);
            };
            let message = match compression {
                MessageCompression::None => Message::decode_body(message_type, body)?,
                MessageCompression::Lz4 => {
                    let plain = decompress(body)?;
                    Message::decode_body(message_type, &plain)?
                }
            };
            self.pos += start + msg_len;
            return Ok(Some(message));
        }
    }
}

/// Undoes Syncthing's LZ4 body: a big-endian u32 uncompressed length, then one raw block.
pub(crate) fn decompress(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let Some((prefix, block)) = body.split_first_chunk::<4>() else {
        return Err(DecodeError::CompressedTooShort { len: body.len() });
    };
    let declared = u32::from_be_bytes(*prefix);
    let size = usize::try_from(declared).unwrap_or(usize::MAX);
    if size > MAX_MESSAGE_LEN {
        return Err(DecodeError::DecompressedTooLong { len: declared });
    }
    if size > lz4_max_output(block.len()) {
        return Err(DecodeError::DecompressedSizeImpossible {
            declared,
            compressed: block.len(),
        });
    }
    lz4_flex::block::decompress(block, size).map_err(|e| DecodeError::Lz4 {
        detail: e.to_string(),
    })
}

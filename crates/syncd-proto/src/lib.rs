//! `syncd-proto`: the bytes of Syncthing's Block Exchange Protocol v1, sans-IO.
//!
//! This crate turns BEP messages into bytes and bytes into messages, and tells a receiver
//! whether what a peer sent breaks the protocol. Key items:
//!
//! - [`bep`]: the prost wire structs (Hello, ClusterConfig, Index, FileInfo, Request, ...) from
//!   our own `proto/bep.proto`, including syncd's extension `FileInfo::syncd_chunks`.
//! - [`encode_hello`] / [`decode_hello`]: the pre-authentication Hello frame.
//! - [`encode_message`] and the streaming [`Decoder`]: post-Hello framing with Syncthing's LZ4
//!   rules (raw block, **big-endian** length prefix, 128-byte threshold, ≥ 3.125% saving).
//! - [`validate_file_info`] / [`validate_request`]: the disconnect-worthy faults, one
//!   [`ValidationError`] variant each.
//! - [`block_size`], [`blocks_hash`]: the block-size table and the 2.x `blocks_hash`.
//! - [`cdc`]: the FastCDC parameters and format version of syncd's chunk-list extension.
//! - [`derived`]: the byte format of syncd's derived records (moves and deletions as a few
//!   bytes per name): [`derived::Group`] to and from the wire, the digest over the rebuilt
//!   records, [`DerivedError`] for malformed groups.
//! - [`discovery`]: local discovery v4 packets (magic + protobuf `Announce`), decoded
//!   with typed [`discovery::AnnounceError`]s and bounded address lists.
//! - [`DeviceId`] / [`ShortId`]: re-exported from `syncd-types`.
//!
//! Invariants: nothing a peer sends can make this crate panic; every fault is a typed error.
//! The [`Decoder`]'s memory grows only with bytes actually fed or decompressed: a declared
//! length is never allocated up front, and a declared uncompressed length is refused when LZ4
//! could not produce it from the bytes received. Messages of unknown type are skipped.
//!
//! What it does **not** do: no sockets, no TLS, no async runtime, no clock (that is
//! `syncd-transport`); no protocol state such as "ClusterConfig first" or index bookkeeping
//! (that is `syncd-engine`, which also decides which records to derive and rebuilds them
//! from its index); no file hashing (that is `syncd-scan`).
//!
//! ```
//! use syncd_proto::{bep, encode_message, CompressionPolicy, Decoder, Message};
//!
//! let mut wire = Vec::new();
//! let close = Message::Close(bep::Close { reason: "bye".into() });
//! encode_message(&close, CompressionPolicy::Metadata, &mut wire).unwrap();
//! assert_eq!(wire, [0, 2, 0x08, 0x07, 0, 0, 0, 5, 0x0a, 0x03, b'b', b'y', b'e']);
//!
//! let mut decoder = Decoder::new();
//! for byte in &wire {
//!     decoder.feed(std::slice::from_ref(byte)); // any split works
//! }
//! assert_eq!(decoder.next_message().unwrap(), Some(close));
//! assert_eq!(decoder.next_message().unwrap(), None);
//! ```

pub mod bep;
mod blocks;
pub mod cdc;
pub mod derived;
pub mod discovery;
mod error;
mod frame;
mod hello;
mod validate;

pub use blocks::{
    DESIRED_PER_FILE_BLOCKS, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, block_size, blocks_hash,
    blocks_hash_v1, effective_block_size,
};
pub use error::{DecodeError, DerivedError, EncodeError, HelloError, Records, ValidationError};
pub use frame::{
    COMPRESSION_THRESHOLD, CompressionPolicy, Decoder, MAX_MESSAGE_LEN, Message, encode_message,
};
pub use hello::{HELLO_MAGIC, MAX_HELLO_LEN, decode_hello, encode_hello};
pub use syncd_types::{DeviceId, ShortId};
pub use validate::{
    MAX_REQUEST_SIZE, normalize_file_info, validate_file_info, validate_file_info_strict,
    validate_request,
};

/// The Hello `client_name` by which two syncd peers recognise each other.
pub const SYNCD_CLIENT_NAME: &str = "syncd";

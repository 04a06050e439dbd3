//! The crate's error families: one per operation, each variant a distinct peer fault.

use crate::bep::MessageType;

/// Why the bytes at the start of a connection are not an acceptable Hello.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HelloError {
    /// The peer speaks a pre-v0.14 protocol (v0.12 header or v0.13 magic).
    #[error("peer runs a too old Syncthing version (first word {magic:#010x})")]
    TooOldVersion {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// The first word is no BEP magic we know ("unknown (newer?) version").
    #[error("unknown magic {magic:#010x}: not BEP v1, or a newer version")]
    UnknownMagic {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// The declared Hello length is above 32767.
    #[error("hello message too big: {len} bytes (limit 32767)")]
    TooBig {
        /// The declared length.
        len: usize,
    },
    /// The Hello body is not a valid protobuf `Hello`.
    #[error("malformed Hello: {source}")]
    Protobuf {
        /// prost's description.
        source: prost::DecodeError,
    },
    /// A string field of the Hello is not valid UTF-8.
    #[error("Hello contains invalid UTF-8 in a string field")]
    InvalidUtf8,
}

/// Why the post-Hello byte stream cannot be decoded. Every variant is a peer fault after which
/// the connection must be dropped (Syncthing drops it without a Close).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The 2-byte header length, read as `int16`, is negative.
    #[error("negative header length ({len:#06x})")]
    NegativeHeaderLength {
        /// The raw 16-bit value.
        len: u16,
    },
    /// The `Header` is not valid protobuf.
    #[error("malformed message header: {source}")]
    Header {
        /// prost's description.
        source: prost::DecodeError,
    },
    /// `Header.compression` is neither NONE (0) nor LZ4 (1).
    #[error("unknown message compression {value}")]
    UnknownCompression {
        /// The value found.
        value: i32,
    },
    /// The 4-byte message length, read as `int32`, is negative or above 500,000,000.
    #[error("message length {len} is negative or above 500000000")]
    MessageTooLong {
        /// The raw 32-bit value.
        len: u32,
    },
    /// An LZ4 body is shorter than its 4-byte length prefix.
    #[error("compressed message body of {len} bytes has no 4-byte length prefix")]
    CompressedTooShort {
        /// The body length.
        len: usize,
    },
    /// The declared uncompressed length is above 500,000,000.
    #[error("declared uncompressed length {len} is above 500000000")]
    DecompressedTooLong {
        /// The declared length.
        len: u32,
    },
    /// The declared uncompressed length is more than LZ4 can possibly produce from the
    /// compressed bytes (a decompression bomb; refused before allocating).
    #[error("declared uncompressed length {declared} is impossible for {compressed} LZ4 bytes")]
    DecompressedSizeImpossible {
        /// The declared length.
        declared: u32,
        /// The LZ4 block's length.
        compressed: usize,
    },
    /// The LZ4 block is corrupt or decompresses to more than declared.
    #[error("bad LZ4 block: {detail}")]
    Lz4 {
        /// lz4_flex's description (its error type is neither `Clone` nor `PartialEq`).
        detail: String,
    },
    /// The body is not valid protobuf for its message type.
    #[error("malformed {message_type:?} message: {source}")]
    Protobuf {
        /// The message type from the header.
        message_type: MessageType,
        /// prost's description.
        source: prost::DecodeError,
    },
    /// A `string` field of the message holds invalid UTF-8 (fatal since Syncthing 1.29).
    #[error("{message_type:?} message contains invalid UTF-8 in a string field")]
    InvalidUtf8 {
        /// The message type from the header.
        message_type: MessageType,
    },
    /// An earlier call already returned an error; the stream position is lost.
    #[error("the decoder already failed; drop the connection")]
    AlreadyFailed,
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded body would exceed the 500,000,000-byte message limit.
    #[error("message of {len} bytes exceeds the 500000000-byte limit")]
    MessageTooLong {
        /// The encoded body length.
        len: usize,
    },
}

/// Why a FileInfo or Request received from a peer breaks the protocol (spec bep-wire §7.7–7.8).
/// Syncthing closes the connection on each of these; so should the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    /// The name is not a canonical folder-relative path.
    #[error("invalid file name {name:?}: {source}")]
    InvalidName {
        /// The name as received.
        name: String,
        /// Why `RelPath` refused it.
        source: syncd_types::PathError,
    },
    /// A deleted entry carries blocks.
    #[error("{name}: deleted entry has blocks")]
    DeletedWithBlocks {
        /// The file's name.
        name: String,
    },
    /// A directory carries blocks.
    #[error("{name}: directory has blocks")]
    DirectoryWithBlocks {
        /// The file's name.
        name: String,
    },
    /// A symlink carries blocks.
    #[error("{name}: symlink has blocks")]
    SymlinkWithBlocks {
        /// The file's name.
        name: String,
    },
    /// A live (not deleted, not invalid) regular file has no blocks.
    #[error("{name}: file has no blocks")]
    FileWithoutBlocks {
        /// The file's name.
        name: String,
    },
    /// A live empty file does not have exactly one block of offset 0 and size 0.
    #[error("{name}: an empty file must have exactly one zero-size block, found {blocks} block(s)")]
    EmptyFileBlocks {
        /// The file's name.
        name: String,
        /// How many blocks it has.
        blocks: usize,
    },
    /// A file's size is negative.
    #[error("{name}: negative size {size}")]
    NegativeSize {
        /// The file's name.
        name: String,
        /// The size.
        size: i64,
    },
    /// A live file's blocks are not contiguous from offset 0 or do not add up to its size.
    #[error("{name}: blocks do not cover the file's {size} bytes contiguously")]
    BlocksDoNotCoverSize {
        /// The file's name.
        name: String,
        /// The declared size.
        size: i64,
    },
    /// A block's hash is not a 32-byte SHA-256.
    #[error("{name}: block {index} has a {len}-byte hash, expected 32")]
    BlockHashLength {
        /// The file's name.
        name: String,
        /// The block's index.
        index: usize,
        /// The hash length found.
        len: usize,
    },
    /// Strict (2.1.2) rule: a directory's size is neither 0 nor 128.
    #[error("{name}: directory size {size} is neither 0 nor 128")]
    DirectorySize {
        /// The file's name.
        name: String,
        /// The size.
        size: i64,
    },
    /// Strict (2.1.2) rule: a symlink's size is not 0.
    #[error("{name}: symlink size {size} is not 0")]
    SymlinkSize {
        /// The file's name.
        name: String,
        /// The size.
        size: i64,
    },
    /// A Request's size is negative or above 32 MiB.
    #[error("request size {size} is negative or above 32 MiB")]
    RequestSize {
        /// The requested size.
        size: i32,
    },
    /// A Request's offset is negative.
    #[error("request offset {offset} is negative")]
    RequestOffset {
        /// The requested offset.
        offset: i64,
    },
    /// A Request carries no hash (required by Syncthing 2.1.2+ and by us).
    #[error("request for {name} has no hash")]
    RequestWithoutHash {
        /// The requested file.
        name: String,
    },
}

/// What went wrong inside prost: a UTF-8 failure (which the spec treats as its own fault) or
/// anything else.
pub(crate) enum ProstFault {
    InvalidUtf8,
    Other(prost::DecodeError),
}

/// prost reports invalid UTF-8 in a `string` field only through its message text; this is the
/// one place that reads it (a test pins the wording).
pub(crate) fn classify_prost(e: prost::DecodeError) -> ProstFault {
    if e.to_string().contains("not UTF-8") {
        ProstFault::InvalidUtf8
    } else {
        ProstFault::Other(e)
    }
}

/// Which records of a derived group a sequence list belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Records {
    /// `copy_sequences`.
    Copies,
    /// `delete_sequences`.
    Deletions,
}

impl std::fmt::Display for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Records::Copies => "copy",
            Records::Deletions => "deletion",
        })
    }
}

/// Why a received derived group ([`crate::derived`]) is malformed. Every variant is a peer
/// fault: the receiver applies nothing of the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DerivedError {
    /// A length in `names` is not a valid varint.
    #[error("derived names: bad varint at byte {offset}")]
    NameVarint {
        /// Offset of the varint in `names`.
        offset: usize,
    },
    /// A name shares more bytes with the previous name than that name has.
    #[error("derived name {index} shares {shared} bytes with a previous name of {previous}")]
    SharedTooLong {
        /// The name's position in the group.
        index: usize,
        /// The shared count found.
        shared: u64,
        /// The previous name's length.
        previous: usize,
    },
    /// A name is longer than [`crate::derived::MAX_NAME_BYTES`].
    #[error("derived name {index} is {len} bytes long, above 65536")]
    NameTooLong {
        /// The name's position in the group.
        index: usize,
        /// Its declared length.
        len: u64,
    },
    /// `names` ends inside a name.
    #[error("derived name {index} is truncated")]
    NamesTruncated {
        /// The name's position in the group.
        index: usize,
    },
    /// A name is not after the previous one in byte order.
    #[error("derived name {index} is not after the previous one")]
    NotAscending {
        /// The name's position in the group.
        index: usize,
    },
    /// A name is not valid UTF-8.
    #[error("derived name {index} is not UTF-8")]
    NotUtf8 {
        /// The name's position in the group.
        index: usize,
    },
    /// More names than [`crate::derived::MAX_NAMES`].
    #[error("more than 1048576 names in one derived group")]
    TooManyNames,
    /// Adding a delta overflows `i64`.
    #[error("{what} sequence {index} overflows")]
    SequenceOverflow {
        /// Copies or deletions.
        what: Records,
        /// The sequence's position.
        index: usize,
    },
    /// A sequence is not above 0.
    #[error("{what} sequence {index} is {sequence}, not above 0")]
    BadSequence {
        /// Copies or deletions.
        what: Records,
        /// The sequence's position.
        index: usize,
        /// The value reached.
        sequence: i64,
    },
    /// A sequence list is neither empty nor one per name.
    #[error("{sequences} {what} sequences for {names} names")]
    SequenceCount {
        /// Copies or deletions.
        what: Records,
        /// Sequences found.
        sequences: usize,
        /// Names in the group.
        names: usize,
    },
    /// The group has neither copies nor deletions.
    #[error("derived group with no records")]
    Empty,
    /// A name the group stands for is not a canonical folder-relative path.
    #[error("derived name {name:?}: {source}")]
    InvalidName {
        /// The joined name.
        name: String,
        /// Why `RelPath` refused it.
        source: syncd_types::PathError,
    },
}

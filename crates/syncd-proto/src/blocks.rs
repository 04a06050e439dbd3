//! BEP block sizes and the `blocks_hash` summary.

use sha2::{Digest, Sha256};

use crate::bep;

/// The smallest BEP block size, 128 KiB (also what `block_size` 0 on the wire means).
pub const MIN_BLOCK_SIZE: u32 = 128 * 1024;

/// The largest BEP block size, 16 MiB.
pub const MAX_BLOCK_SIZE: u32 = 16 * 1024 * 1024;

/// Syncthing aims at no more than this many blocks per file.
pub const DESIRED_PER_FILE_BLOCKS: u64 = 2000;

/// The block size Syncthing uses for a file of `file_size` bytes: the smallest power of two
/// from 128 KiB to 16 MiB with `file_size < 2000 × size`, else 16 MiB.
pub fn block_size(file_size: u64) -> u32 {
    let mut size = MIN_BLOCK_SIZE;
    while size < MAX_BLOCK_SIZE && file_size >= DESIRED_PER_FILE_BLOCKS * u64::from(size) {
        size *= 2;
    }
    size
}

/// The block size a FileInfo's `block_size` field stands for: 0 or anything below 128 KiB
/// means 128 KiB.
pub fn effective_block_size(wire: i32) -> u32 {
    u32::try_from(wire).map_or(MIN_BLOCK_SIZE, |s| s.max(MIN_BLOCK_SIZE))
}

/// Syncthing 2.x's `blocks_hash`: SHA-256 over the concatenated block hashes. Use it only as a
/// shortcut; it differs from 1.19's value ([`blocks_hash_v1`]) for the same content.
pub fn blocks_hash(blocks: &[bep::BlockInfo]) -> [u8; 32] {
    let mut h = Sha256::new();
    for b in blocks {
        h.update(&b.hash);
    }
    h.finalize().into()
}

/// Syncthing 1.19's `blocks_hash`: SHA-256 over `hash ‖ weak_hash (u32 BE)` for every block.
pub fn blocks_hash_v1(blocks: &[bep::BlockInfo]) -> [u8; 32] {
    let mut h = Sha256::new();
    for b in blocks {
        h.update(&b.hash);
        h.update(b.weak_hash.to_be_bytes());
    }
    h.finalize().into()
}

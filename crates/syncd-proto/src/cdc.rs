//! syncd's content-defined chunking parameters, bound to [`FORMAT_VERSION`] (docs/protocol.md).
//!
//! The scanner cuts every regular file with FastCDC (`fastcdc` crate `=5.0.0`, module
//! `v2020`, normalisation level 1) using these sizes, hashes each chunk with SHA-256 and
//! announces the list in `FileInfo.syncd_chunks` (protobuf field [`FIELD_NUMBER`]). A peer
//! uses a chunk list only when its `format_version` equals [`FORMAT_VERSION`]; changing any
//! value here requires a new format version.

use crate::bep;

// The format's promises, checked at compile time: power-of-two sizes, min < avg < max, an
// average of at most 256 KiB (an insertion costs < 1 MB), a field number above Syncthing's
// database-only fields and outside protobuf's reserved 19000-19999.
const _: () = {
    assert!(MIN_SIZE.is_power_of_two() && AVG_SIZE.is_power_of_two() && MAX_SIZE.is_power_of_two());
    assert!(MIN_SIZE < AVG_SIZE && AVG_SIZE < MAX_SIZE);
    assert!(AVG_SIZE <= 256 * 1024);
    assert!(FIELD_NUMBER > 1003 && (FIELD_NUMBER < 19000 || FIELD_NUMBER > 19999));
};

/// Version of the chunking format: the parameters below and the v2020 algorithm.
pub const FORMAT_VERSION: u32 = 1;

/// Smallest chunk (except a file's last), 16 KiB.
pub const MIN_SIZE: u32 = 16 * 1024;

/// Average chunk size FastCDC aims at, 64 KiB: an insertion costs about one or two chunks.
pub const AVG_SIZE: u32 = 64 * 1024;

/// Largest chunk, 256 KiB.
pub const MAX_SIZE: u32 = 256 * 1024;

/// The exact `fastcdc` crate version whose `v2020` cut points these parameters name.
pub const FASTCDC_VERSION: &str = "5.0.0";

/// The protobuf field number of `FileInfo.syncd_chunks`, above every number Syncthing uses
/// (1–20 on the wire, 1000–1003 in its database).
pub const FIELD_NUMBER: u32 = 7001;

/// The file's chunk list when it is usable: format version [`FORMAT_VERSION`], chunks
/// contiguous from offset 0 covering exactly `size` bytes, each 1..=[`MAX_SIZE`] bytes with a
/// 32-byte hash. Anything else returns `None` and the file is synced by blocks alone (a chunk
/// list is an optimisation; a bad one is ignored, never a reason to drop the peer).
pub fn usable_chunks(f: &bep::FileInfo) -> Option<&[bep::SyncdChunk]> {
    let c = f.syncd_chunks.as_ref()?;
    if c.format_version != FORMAT_VERSION {
        return None;
    }
    let mut next: i64 = 0;
    for chunk in &c.chunks {
        let size_ok = u32::try_from(chunk.size).is_ok_and(|s| (1..=MAX_SIZE).contains(&s));
        if chunk.offset != next || !size_ok || chunk.hash.len() != 32 {
            return None;
        }
        next += i64::from(chunk.size);
    }
    (next == f.size).then_some(c.chunks.as_slice())
}

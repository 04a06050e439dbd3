//! The checks a receiver applies to what a peer announces or asks (spec bep-wire §7.7–7.8).

use syncd_types::RelPath;

use crate::bep::{self, FileInfoType};
use crate::error::ValidationError;

/// The largest Request size Syncthing 2.1+ accepts: twice the largest block size.
pub const MAX_REQUEST_SIZE: i32 = 32 * 1024 * 1024;

/// Length of a SHA-256 hash.
const HASH_LEN: usize = 32;

fn is_symlink(t: i32) -> bool {
    matches!(
        FileInfoType::try_from(t),
        Ok(FileInfoType::Symlink | FileInfoType::SymlinkFile | FileInfoType::SymlinkDirectory)
    )
}

fn check_name(name: &str) -> Result<(), ValidationError> {
    RelPath::from_wire(name)
        .map(|_| ())
        .map_err(|source| ValidationError::InvalidName {
            name: name.to_owned(),
            source,
        })
}

/// Checks one FileInfo from a peer's Index/IndexUpdate with the rules every Syncthing version
/// enforces by closing the connection:
///
/// - the name is canonical (`RelPath::from_wire`);
/// - deleted entries, directories and symlinks carry no blocks;
/// - a live (not deleted, not invalid) regular file has blocks; an empty one exactly one
///   zero-size block at offset 0; its blocks are contiguous from 0, add up to `size`, and every
///   hash is 32 bytes (syncd requests exactly these ranges and verifies these hashes);
/// - sizes are not negative.
///
/// Directory and symlink sizes are *not* checked here: Syncthing 1.19 relays odd sizes (128,
/// 4096) from third devices, so a receiver accepts and normalises them
/// ([`normalize_file_info`]). [`validate_file_info_strict`] adds Syncthing 2.1.2's size rules.
/// Invalid UTF-8 in a string field never reaches this function: decoding already fails with
/// [`DecodeError::InvalidUtf8`](crate::DecodeError::InvalidUtf8).
pub fn validate_file_info(f: &bep::FileInfo) -> Result<(), ValidationError> {
    check_name(&f.name)?;
    let name = || f.name.clone();
    if f.size < 0 {
        return Err(ValidationError::NegativeSize {
            name: name(),
            size: f.size,
        });
    }
    let has_blocks = !f.blocks.is_empty();
    if f.deleted && has_blocks {
        return Err(ValidationError::DeletedWithBlocks { name: name() });
    }
    if f.r#type == FileInfoType::Directory as i32 && has_blocks {
        return Err(ValidationError::DirectoryWithBlocks { name: name() });
    }
    if is_symlink(f.r#type) && has_blocks {
        return Err(ValidationError::SymlinkWithBlocks { name: name() });
    }
    if f.r#type != FileInfoType::File as i32 || f.deleted {
        return Ok(());
    }
    if !has_blocks {
        return if f.invalid {
            Ok(())
        } else {
            Err(ValidationError::FileWithoutBlocks { name: name() })
        };
    }
    if f.invalid {
        // Never pulled, so the block list's shape does not matter.
        return Ok(());
    }
    if f.size == 0 {
        let ok = matches!(f.blocks.as_slice(), [b] if b.offset == 0 && b.size == 0);
        if !ok {
            return Err(ValidationError::EmptyFileBlocks {
                name: name(),
                blocks: f.blocks.len(),
            });
        }
    }
    let mut next: i64 = 0;
    for (index, b) in f.blocks.iter().enumerate() {
        if b.hash.len() != HASH_LEN {
            return Err(ValidationError::BlockHashLength {
                name: name(),
                index,
                len: b.hash.len(),
            });
        }
        if b.offset != next || b.size < 0 {
            return Err(ValidationError::BlocksDoNotCoverSize {
                name: name(),
                size: f.size,
            });
        }
        next = next.saturating_add(i64::from(b.size));
    }
    if next != f.size {
        return Err(ValidationError::BlocksDoNotCoverSize {
            name: name(),
            size: f.size,
        });
    }
    Ok(())
}

/// [`validate_file_info`] plus Syncthing 2.1.2's rules: a directory's size is 0 or 128, a
/// symlink's size is 0. Use it for peers that are known to be strict (syncd itself).
pub fn validate_file_info_strict(f: &bep::FileInfo) -> Result<(), ValidationError> {
    validate_file_info(f)?;
    if f.r#type == FileInfoType::Directory as i32 && f.size != 0 && f.size != 128 {
        return Err(ValidationError::DirectorySize {
            name: f.name.clone(),
            size: f.size,
        });
    }
    if is_symlink(f.r#type) && f.size != 0 {
        return Err(ValidationError::SymlinkSize {
            name: f.name.clone(),
            size: f.size,
        });
    }
    Ok(())
}

/// Brings a received FileInfo to the form syncd stores and re-announces: directories and
/// symlinks get size 0, deprecated symlink types become `SYMLINK`.
pub fn normalize_file_info(f: &mut bep::FileInfo) {
    if f.r#type == FileInfoType::Directory as i32 {
        f.size = 0;
    }
    if is_symlink(f.r#type) {
        f.size = 0;
        f.r#type = FileInfoType::Symlink as i32;
    }
}

/// Checks a Request from a peer: a canonical name, 0 ≤ size ≤ 32 MiB, a non-negative offset,
/// and a hash present.
pub fn validate_request(r: &bep::Request) -> Result<(), ValidationError> {
    check_name(&r.name)?;
    if r.size < 0 || r.size > MAX_REQUEST_SIZE {
        return Err(ValidationError::RequestSize { size: r.size });
    }
    if r.offset < 0 {
        return Err(ValidationError::RequestOffset { offset: r.offset });
    }
    if r.hash.is_empty() {
        return Err(ValidationError::RequestWithoutHash {
            name: r.name.clone(),
        });
    }
    Ok(())
}

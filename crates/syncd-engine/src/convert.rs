//! The edge between the wire (`syncd_proto::bep`) and the index (`syncd_index::FileRecord`).
//! Wire structs never double as records: every received FileInfo is validated, normalised and
//! converted here, every announced record is converted back here.

use syncd_conflict::{Counter, VersionVector};
use syncd_index::{Block, FileRecord};
use syncd_proto::bep;
use syncd_types::{FileKind, RelPath, ShortId};

use crate::error::PeerError;

/// Converts a local record to the FileInfo we announce. `with_chunks` adds syncd's chunk
/// extension (only for peers whose Hello says `syncd`).
pub(crate) fn record_to_wire(r: &FileRecord, with_chunks: bool) -> bep::FileInfo {
    let kind = match r.kind {
        FileKind::File => bep::FileInfoType::File,
        FileKind::Directory => bep::FileInfoType::Directory,
        FileKind::Symlink => bep::FileInfoType::Symlink,
    };
    let block_size = r.blocks.first().map_or_else(
        || syncd_proto::block_size(r.size),
        |b| b.size.max(syncd_proto::block_size(r.size)),
    );
    let blocks: Vec<bep::BlockInfo> = r
        .blocks
        .iter()
        .map(|b| bep::BlockInfo {
            offset: clamp_i64(b.offset),
            size: clamp_i32(b.size),
            hash: b.hash.to_vec(),
            weak_hash: 0,
        })
        .collect();
    let syncd_chunks =
        (with_chunks && r.kind == FileKind::File && !r.chunks.is_empty() && !r.deleted).then(
            || bep::SyncdChunks {
                format_version: syncd_proto::cdc::FORMAT_VERSION,
                chunks: r
                    .chunks
                    .iter()
                    .map(|c| bep::SyncdChunk {
                        offset: clamp_i64(c.offset),
                        size: clamp_i32(c.size),
                        hash: c.hash.to_vec(),
                    })
                    .collect(),
            },
        );
    bep::FileInfo {
        name: r.name.as_str().to_owned(),
        r#type: kind as i32,
        size: clamp_i64(r.size),
        permissions: r.permissions,
        modified_s: r.modified_s,
        deleted: r.deleted,
        invalid: r.invalid,
        no_permissions: r.no_permissions,
        // A receive-only change goes out with an empty version (Syncthing's
        // prepareFileInfoForIndex): it never wins, and no peer sees itself as outdated.
        version: Some(bep::Vector {
            counters: if r.receive_only {
                Vec::new()
            } else {
                r.version
                    .counters()
                    .iter()
                    .map(|c| bep::Counter {
                        id: c.id.get(),
                        value: c.value,
                    })
                    .collect()
            },
        }),
        sequence: clamp_i64(r.sequence),
        modified_ns: r.modified_ns,
        modified_by: r.modified_by.get(),
        block_size: if r.kind == FileKind::File && !r.deleted {
            clamp_i32(block_size)
        } else {
            0
        },
        blocks,
        symlink_target: r.symlink_target.clone(),
        blocks_hash: r.blocks_hash.clone(),
        previous_blocks_hash: r.previous_blocks_hash.clone(),
        syncd_chunks,
        ..Default::default()
    }
}

/// Validates, normalises and converts a received FileInfo. Invalid ones are a peer fault.
pub(crate) fn wire_to_record(mut f: bep::FileInfo) -> Result<FileRecord, PeerError> {
    let invalid = |reason: String, name: &str| PeerError::InvalidFile {
        name: name.to_owned(),
        reason,
    };
    syncd_proto::validate_file_info(&f).map_err(|e| invalid(e.to_string(), &f.name))?;
    syncd_proto::normalize_file_info(&mut f);
    let name = RelPath::from_wire(&f.name).map_err(|e| invalid(e.to_string(), &f.name))?;
    let kind = match f.r#type() {
        bep::FileInfoType::File => FileKind::File,
        bep::FileInfoType::Directory => FileKind::Directory,
        _ => FileKind::Symlink,
    };
    let chunks = syncd_proto::cdc::usable_chunks(&f)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| {
                    Some(Block {
                        offset: u64::try_from(c.offset).ok()?,
                        size: u32::try_from(c.size).ok()?,
                        hash: c.hash.as_slice().try_into().ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut blocks = Vec::with_capacity(f.blocks.len());
    for b in &f.blocks {
        blocks.push(Block {
            offset: u64::try_from(b.offset)
                .map_err(|_| invalid(format!("negative block offset {}", b.offset), &f.name))?,
            size: u32::try_from(b.size)
                .map_err(|_| invalid(format!("negative block size {}", b.size), &f.name))?,
            hash: b
                .hash
                .as_slice()
                .try_into()
                .map_err(|_| invalid(format!("block hash of {} bytes", b.hash.len()), &f.name))?,
        });
    }
    let version = wire_version(f.version.as_ref());
    let mut r = FileRecord::new(name, kind);
    r.size = u64::try_from(f.size).unwrap_or(0);
    r.modified_s = f.modified_s;
    r.modified_ns = f.modified_ns;
    r.permissions = f.permissions;
    r.version = version;
    r.sequence = u64::try_from(f.sequence).unwrap_or(0);
    r.deleted = f.deleted;
    r.invalid = f.invalid;
    r.no_permissions = f.no_permissions;
    r.symlink_target = f.symlink_target;
    r.modified_by = ShortId(f.modified_by);
    // Our records carry the 2.x blocks hash (SHA-256 of the block hashes); recompute it from
    // the blocks so that 1.19's differently defined value never makes equal content unequal.
    r.blocks_hash = if blocks.is_empty() {
        Vec::new()
    } else {
        syncd_proto::blocks_hash(&f.blocks).to_vec()
    };
    r.previous_blocks_hash = f.previous_blocks_hash;
    r.blocks = blocks;
    r.chunks = chunks;
    Ok(r)
}

/// A received version vector (absent: empty).
pub(crate) fn wire_version(v: Option<&bep::Vector>) -> VersionVector {
    VersionVector::from_counters(
        v.map(|v| v.counters.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|c| Counter {
                id: ShortId(c.id),
                value: c.value,
            }),
    )
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileRecord {
        let mut r = FileRecord::new(RelPath::new("dir/file.txt").unwrap(), FileKind::File);
        r.size = 5;
        r.modified_s = 1_700_000_000;
        r.modified_ns = 42;
        r.permissions = 0o644;
        r.version = VersionVector::new().updated(ShortId(7), 1_700_000_000);
        r.sequence = 9;
        r.modified_by = ShortId(7);
        r.blocks = vec![Block {
            offset: 0,
            size: 5,
            hash: [3; 32],
        }];
        r.blocks_hash = syncd_proto::blocks_hash(&[bep::BlockInfo {
            offset: 0,
            size: 5,
            hash: vec![3; 32],
            weak_hash: 0,
        }])
        .to_vec();
        r.chunks = vec![Block {
            offset: 0,
            size: 5,
            hash: [4; 32],
        }];
        r
    }

    #[test]
    fn a_receive_only_change_goes_out_invalid_with_an_empty_version() {
        let mut r = sample();
        r.invalid = true;
        r.receive_only = true;
        let f = record_to_wire(&r, false);
        assert!(f.invalid);
        assert!(f.version.unwrap_or_default().counters.is_empty());
        // Received back, a record never carries the local flag.
        assert!(
            !wire_to_record(record_to_wire(&r, false))
                .unwrap()
                .receive_only
        );
    }

    #[test]
    fn record_survives_the_wire_round_trip() {
        let r = sample();
        assert_eq!(wire_to_record(record_to_wire(&r, true)).unwrap(), r);
    }

    #[test]
    fn chunks_are_sent_only_to_syncd_peers() {
        assert!(record_to_wire(&sample(), false).syncd_chunks.is_none());
        assert!(record_to_wire(&sample(), true).syncd_chunks.is_some());
    }

    #[test]
    fn a_name_escaping_the_root_is_a_peer_fault() {
        let mut f = record_to_wire(&sample(), false);
        f.name = "../etc/passwd".into();
        assert!(matches!(
            wire_to_record(f),
            Err(PeerError::InvalidFile { .. })
        ));
    }

    #[test]
    fn a_short_block_hash_is_a_peer_fault_not_a_panic() {
        let mut f = record_to_wire(&sample(), false);
        f.blocks[0].hash = vec![1, 2, 3];
        assert!(wire_to_record(f).is_err());
    }
}

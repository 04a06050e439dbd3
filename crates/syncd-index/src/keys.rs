//! Table definitions and key layouts (see `docs/index-format.md`). All integers in keys are
//! big-endian so byte order equals numeric order.

use redb::TableDefinition;

/// `&str` → bytes: `format` (u32 BE), `local_device` (32 bytes).
pub(crate) const META: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("meta");
/// Folder ID → folder number (u32 BE) + delete rule (u8).
pub(crate) const FOLDERS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("folders");
/// Device ID (32 bytes) → device number; the local device is 0.
pub(crate) const DEVICES: TableDefinition<'_, &[u8], u32> = TableDefinition::new("devices");
/// folder(4) + device(4) → index ID (u64 BE) + max sequence (varint) + record count (varint).
pub(crate) const FOLDER_DEVICES: TableDefinition<'_, &[u8], &[u8]> =
    TableDefinition::new("folder_devices");
/// folder(4) + name → entry (every device's record for that name).
pub(crate) const FILES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("files");
/// folder(4) + class(1: 0 change, 1 deletion) + name → (): what the local device needs. A
/// folder in scan mode (need mode byte of its `folders` row) lists its deletions only.
pub(crate) const NEED: TableDefinition<'_, &[u8], ()> = TableDefinition::new("need");
/// folder(4) + local sequence (u64 BE) → name.
pub(crate) const SEQUENCES: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("sequences");
/// hash(32) + folder(4) + offset (u64 BE) + name → size: where local data with that hash lies.
pub(crate) const BLOCKS: TableDefinition<'_, &[u8], u32> = TableDefinition::new("blocks");
/// folder(4) + kind(1: 0 global, 1 have, 2 need) + device(4) → counts.
pub(crate) const COUNTS: TableDefinition<'_, &[u8], &[u8]> = TableDefinition::new("counts");
/// `&str` → bytes: what the engine observed of other devices (pending devices and folders),
/// opaque to the index (see [`crate::Index::observed`]).
pub(crate) const OBSERVED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("observed");

pub(crate) const NEED_CHANGE: u8 = 0;
pub(crate) const NEED_DELETE: u8 = 1;

pub(crate) const COUNT_GLOBAL: u8 = 0;
pub(crate) const COUNT_HAVE: u8 = 1;
pub(crate) const COUNT_NEED: u8 = 2;
pub(crate) const COUNT_RECEIVE_ONLY: u8 = 3;

/// The local device's number in every folder.
pub(crate) const LOCAL: u32 = 0;

pub(crate) fn file_key(folder: u32, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + name.len());
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(name);
    k
}

/// `[start, end)` covering every key that starts with `folder`.
pub(crate) fn folder_range(folder: u32) -> (Vec<u8>, Vec<u8>) {
    let start = folder.to_be_bytes().to_vec();
    let end = match folder.checked_add(1) {
        Some(n) => n.to_be_bytes().to_vec(),
        None => vec![0xff; 5],
    };
    (start, end)
}

pub(crate) fn need_key(folder: u32, class: u8, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + name.len());
    k.extend_from_slice(&folder.to_be_bytes());
    k.push(class);
    k.extend_from_slice(name);
    k
}

/// `[start, end)` covering every need key of `folder` in `class`.
pub(crate) fn need_range(folder: u32, class: u8) -> (Vec<u8>, Vec<u8>) {
    let mut start = folder.to_be_bytes().to_vec();
    start.push(class);
    let mut end = folder.to_be_bytes().to_vec();
    end.push(class + 1);
    (start, end)
}

pub(crate) fn seq_key(folder: u32, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(12);
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn block_key(hash: &[u8; 32], folder: u32, offset: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(44 + name.len());
    k.extend_from_slice(hash);
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(&offset.to_be_bytes());
    k.extend_from_slice(name);
    k
}

pub(crate) fn folder_device_key(folder: u32, device: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(8);
    k.extend_from_slice(&folder.to_be_bytes());
    k.extend_from_slice(&device.to_be_bytes());
    k
}

pub(crate) fn counts_key(folder: u32, kind: u8, device: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.extend_from_slice(&folder.to_be_bytes());
    k.push(kind);
    k.extend_from_slice(&device.to_be_bytes());
    k
}

pub(crate) fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

pub(crate) fn be_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

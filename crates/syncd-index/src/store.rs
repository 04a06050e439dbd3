//! [`Index`]: opening the database, folders and devices, and the shared evaluation of one
//! name's records (global, need, counts).

use std::collections::BTreeMap;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use syncd_conflict::{Candidate, DeleteRule, needs, remote_needs, select_global};
use syncd_types::{DeviceId, FolderId};

use crate::codec::{Reader, put_uvarint};
use crate::counts::Counts;
use crate::error::{DecodeError, IndexError, OpenError};
use crate::keys::*;
use crate::read::FolderReader;
use crate::record::{Entry, FileRecord};
use crate::write::FolderWriter;

/// Version of the on-disk layout (tables, keys and values) described in `docs/index-format.md`.
pub const FORMAT_VERSION: u32 = 5;

/// The oldest format [`Index::open`] upgrades in place. Version 1 lacks only the optional inode
/// of a record (flag bit 3), so its entries are valid version-2 entries with the inode unknown;
/// version 2 lacks only the need mode byte of a `folders` row, whose absence means what
/// version 2 did (every needed name listed in `need`); versions 3 and 4 lack only optional
/// record flags (bit 4, the replaced record; bit 5, a receive-only change) that are then
/// unset. The upgrade rewrites the version number and nothing else.
const OLDEST_MIGRATED_FORMAT: u32 = 1;

/// redb page-cache size used unless [`IndexOptions::cache_size`] says otherwise: 16 MiB.
pub const DEFAULT_CACHE_SIZE: usize = 16 * 1024 * 1024;

/// How to open an [`Index`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexOptions {
    /// Bytes of redb page cache (redb's own default is 1 GiB; ours is [`DEFAULT_CACHE_SIZE`]).
    pub cache_size: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            cache_size: DEFAULT_CACHE_SIZE,
        }
    }
}

/// The on-disk index of one syncd device: every folder's records for the local device and
/// each peer, with global versions, the need set, counts and the block map.
///
/// Reads take a consistent snapshot ([`Index::read`]); writes are batches that commit as one
/// transaction ([`Index::write`]).
pub struct Index {
    pub(crate) db: Database,
    local: DeviceId,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Index {
    /// Opens (creating if absent) the index at `path` for the local device `local`, with the
    /// default 16 MiB cache.
    pub fn open(path: impl AsRef<Path>, local: DeviceId) -> Result<Index, OpenError> {
        Index::open_with(path, local, IndexOptions::default())
    }

    /// Opens (creating if absent) the index at `path` with explicit options.
    pub fn open_with(
        path: impl AsRef<Path>,
        local: DeviceId,
        options: IndexOptions,
    ) -> Result<Index, OpenError> {
        let db = Database::builder()
            .set_cache_size(options.cache_size)
            .create(path)?;
        let txn = db.begin_write().map_err(IndexError::from)?;
        {
            let mut meta = txn.open_table(META).map_err(IndexError::from)?;
            let format = meta
                .get("format")
                .map_err(IndexError::from)?
                .map(|g| be_u32(g.value()));
            match format {
                None => {
                    meta.insert("format", FORMAT_VERSION.to_be_bytes().as_slice())
                        .map_err(IndexError::from)?;
                    meta.insert("local_device", local.as_bytes().as_slice())
                        .map_err(IndexError::from)?;
                }
                Some(Some(FORMAT_VERSION)) => {}
                Some(Some(v)) if (OLDEST_MIGRATED_FORMAT..FORMAT_VERSION).contains(&v) => {
                    meta.insert("format", FORMAT_VERSION.to_be_bytes().as_slice())
                        .map_err(IndexError::from)?;
                }
                Some(found) => {
                    return Err(OpenError::UnsupportedFormat {
                        found: found.unwrap_or(u32::MAX),
                        supported: FORMAT_VERSION,
                    });
                }
            }
            let stored = meta
                .get("local_device")
                .map_err(IndexError::from)?
                .and_then(|g| DeviceId::from_slice(g.value()));
            match stored {
                Some(s) if s == local => {}
                Some(stored) => {
                    return Err(OpenError::WrongDevice {
                        stored,
                        requested: local,
                    });
                }
                None => {
                    return Err(IndexError::Corrupt(DecodeError::Truncated {
                        what: "meta local_device",
                        offset: 0,
                    })
                    .into());
                }
            }
            let mut devices = txn.open_table(DEVICES).map_err(IndexError::from)?;
            if devices
                .get(local.as_bytes().as_slice())
                .map_err(IndexError::from)?
                .is_none()
            {
                devices
                    .insert(local.as_bytes().as_slice(), LOCAL)
                    .map_err(IndexError::from)?;
            }
            // Create the remaining tables so read transactions always find them.
            txn.open_table(FOLDERS).map_err(IndexError::from)?;
            txn.open_table(FOLDER_DEVICES).map_err(IndexError::from)?;
            txn.open_table(FILES).map_err(IndexError::from)?;
            txn.open_table(NEED).map_err(IndexError::from)?;
            txn.open_table(SEQUENCES).map_err(IndexError::from)?;
            txn.open_table(BLOCKS).map_err(IndexError::from)?;
            txn.open_table(COUNTS).map_err(IndexError::from)?;
            txn.open_table(OBSERVED).map_err(IndexError::from)?;
        }
        txn.commit().map_err(IndexError::from)?;
        Ok(Index { db, local })
    }

    /// The local device this index belongs to.
    pub fn local_device(&self) -> DeviceId {
        self.local
    }

    /// Starts a write batch on `folder` (created, empty, with a fresh local index ID and
    /// [`DeleteRule::V1`], if new). Nothing is visible until [`FolderWriter::commit`]; dropping
    /// the writer discards the batch. One writer at a time: a second call blocks until the
    /// first is committed or dropped.
    pub fn write(&self, folder: &FolderId) -> Result<FolderWriter<'_>, IndexError> {
        FolderWriter::begin(self, self.db.begin_write()?, folder)
    }

    /// A consistent snapshot of `folder` (empty if the folder was never written).
    pub fn read(&self, folder: &FolderId) -> Result<FolderReader, IndexError> {
        FolderReader::begin(self.db.begin_read()?, folder)
    }

    /// Every folder in the index.
    pub fn folders(&self) -> Result<Vec<FolderId>, IndexError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(FOLDERS)?;
        let mut out = Vec::new();
        for item in t.iter()? {
            let (k, _) = item?;
            if let Ok(f) = FolderId::new(k.value()) {
                out.push(f);
            }
        }
        Ok(out)
    }

    /// Rewrites the file to release free pages; returns whether anything was compacted.
    pub fn compact(&mut self) -> Result<bool, IndexError> {
        Ok(self.db.compact()?)
    }

    /// Every entry of the observed table whose key starts with `prefix`, in key order. The
    /// table is a small key-value store beside the folders for what the engine learnt of
    /// other devices (pending devices and folders); the values are the caller's bytes.
    pub fn observed(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, IndexError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(OBSERVED)?;
        let mut out = Vec::new();
        for item in t.range(prefix..)? {
            let (k, v) = item?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Writes `put` and removes `remove` from the observed table in one transaction.
    pub fn update_observed(
        &self,
        put: &[(String, Vec<u8>)],
        remove: &[String],
    ) -> Result<(), IndexError> {
        let txn = self.db.begin_write()?;
        {
            let mut t = txn.open_table(OBSERVED)?;
            for k in remove {
                t.remove(k.as_str())?;
            }
            for (k, v) in put {
                t.insert(k.as_str(), v.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Number of names stored across all folders (a table length, no scan).
    pub fn name_count(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(FILES)?.len()?)
    }
}

/// Folder row: number (u32 BE) + delete rule byte + need mode byte (1 when needed changes are
/// found by scanning `files` instead of listed in `need`, see [`crate::keys::NEED`]).
pub(crate) fn encode_folder(idx: u32, rule: DeleteRule, scan_changes: bool) -> [u8; 6] {
    let b = idx.to_be_bytes();
    [
        b[0],
        b[1],
        b[2],
        b[3],
        rule_byte(rule),
        u8::from(scan_changes),
    ]
}

/// The folder number, delete rule and need mode of a folder row (a version-2 row has no mode
/// byte: every needed name is listed).
pub(crate) fn decode_folder(b: &[u8]) -> Result<(u32, DeleteRule, bool), DecodeError> {
    let idx = be_u32(b).ok_or(DecodeError::Truncated {
        what: "folder",
        offset: 0,
    })?;
    let rule = match b.get(4) {
        Some(1) => DeleteRule::V1,
        Some(2) => DeleteRule::V2,
        other => {
            return Err(DecodeError::OutOfRange {
                what: "folder",
                field: "delete rule",
                value: u64::from(other.copied().unwrap_or(0)),
            });
        }
    };
    let scan_changes = match b.get(5) {
        None | Some(0) => false,
        Some(1) => true,
        Some(other) => {
            return Err(DecodeError::OutOfRange {
                what: "folder",
                field: "need mode",
                value: u64::from(*other),
            });
        }
    };
    Ok((idx, rule, scan_changes))
}

fn rule_byte(rule: DeleteRule) -> u8 {
    match rule {
        DeleteRule::V1 => 1,
        DeleteRule::V2 => 2,
    }
}

/// Per (folder, device) state: delta-index bookkeeping and how many records it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct DevState {
    pub(crate) index_id: u64,
    pub(crate) max_sequence: u64,
    pub(crate) records: u64,
}

impl DevState {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = self.index_id.to_be_bytes().to_vec();
        put_uvarint(&mut out, self.max_sequence);
        put_uvarint(&mut out, self.records);
        out
    }

    pub(crate) fn decode(b: &[u8]) -> Result<DevState, DecodeError> {
        let mut r = Reader::new(b, "folder device");
        let index_id = u64::from_be_bytes(r.array()?);
        let max_sequence = r.uvarint()?;
        let records = r.uvarint()?;
        Ok(DevState {
            index_id,
            max_sequence,
            records,
        })
    }
}

/// Loads the device numbering (small: one row per device ever seen).
pub(crate) fn load_devices(
    t: &impl ReadableTable<&'static [u8], u32>,
) -> Result<Vec<DeviceId>, IndexError> {
    let mut by_idx: BTreeMap<u32, DeviceId> = BTreeMap::new();
    for item in t.iter()? {
        let (k, v) = item?;
        let id = DeviceId::from_slice(k.value()).ok_or(DecodeError::OutOfRange {
            what: "devices",
            field: "device id length",
            value: k.value().len() as u64,
        })?;
        by_idx.insert(v.value(), id);
    }
    let mut out = Vec::with_capacity(by_idx.len());
    for (i, (idx, id)) in by_idx.into_iter().enumerate() {
        if idx as usize != i {
            return Err(DecodeError::OutOfRange {
                what: "devices",
                field: "device number",
                value: u64::from(idx),
            }
            .into());
        }
        out.push(id);
    }
    Ok(out)
}

/// Loads the folder's devices and their states.
pub(crate) fn load_folder_devices(
    t: &impl ReadableTable<&'static [u8], &'static [u8]>,
    folder: u32,
) -> Result<BTreeMap<u32, DevState>, IndexError> {
    let (start, end) = folder_range(folder);
    let mut out = BTreeMap::new();
    for item in t.range::<&[u8]>(start.as_slice()..end.as_slice())? {
        let (k, v) = item?;
        let dev = k
            .value()
            .get(4..)
            .and_then(be_u32)
            .ok_or(DecodeError::Truncated {
                what: "folder device key",
                offset: 4,
            })?;
        out.insert(dev, DevState::decode(v.value())?);
    }
    Ok(out)
}

/// What one name contributes: the global record and which devices need it.
pub(crate) struct Evaluation {
    /// Position in `entry.records` of the global record.
    pub(crate) global: Option<usize>,
}

/// Builds the candidates of `entry` (device numbers mapped to IDs) in device-number order, the
/// local device first.
pub(crate) fn candidates<'e>(
    entry: &'e Entry,
    devices: &[DeviceId],
) -> Result<Vec<Candidate<'e>>, IndexError> {
    entry
        .records
        .iter()
        .map(|(d, r)| {
            let id = devices.get(*d as usize).ok_or(DecodeError::OutOfRange {
                what: "entry",
                field: "device number",
                value: u64::from(*d),
            })?;
            Ok(r.candidate(*id))
        })
        .collect()
}

pub(crate) fn evaluate(
    entry: &Entry,
    devices: &[DeviceId],
    rule: DeleteRule,
) -> Result<Evaluation, IndexError> {
    // One record (a name only one device has, as during an initial sync) needs no vector.
    if let [(d, r)] = entry.records.as_slice() {
        let id = devices.get(*d as usize).ok_or(DecodeError::OutOfRange {
            what: "entry",
            field: "device number",
            value: u64::from(*d),
        })?;
        let cand = r.candidate(*id);
        return Ok(Evaluation {
            global: select_global(std::slice::from_ref(&cand), rule),
        });
    }
    let cands = candidates(entry, devices)?;
    Ok(Evaluation {
        global: select_global(&cands, rule),
    })
}

/// Whether `device` (holding `record`, if any) needs `global`: the local device by
/// [`needs`], a peer by [`remote_needs`] (its completion).
pub(crate) fn device_needs(
    device: u32,
    record: Option<&FileRecord>,
    global: &FileRecord,
    global_device: DeviceId,
    devices: &[DeviceId],
) -> bool {
    let id = devices
        .get(device as usize)
        .copied()
        .unwrap_or(DeviceId::EMPTY);
    let cand = record.map(|r| r.candidate(id));
    let g = global.candidate(global_device);
    if device == LOCAL {
        needs(cand.as_ref(), &g)
    } else {
        remote_needs(cand.as_ref(), &g)
    }
}

/// The need class of a name for the local device (`NEED_CHANGE` or `NEED_DELETE`), `None` when
/// it does not need the name; with the position in `entry.records` of the global record.
pub(crate) fn local_need(
    entry: &Entry,
    devices: &[DeviceId],
    rule: DeleteRule,
) -> Result<Option<(usize, u8)>, IndexError> {
    if entry.records.is_empty() {
        return Ok(None);
    }
    let eval = evaluate(entry, devices, rule)?;
    let Some(gi) = eval.global else {
        return Ok(None);
    };
    let Some((gd, g)) = entry.records.get(gi) else {
        return Ok(None);
    };
    let gid = devices
        .get(*gd as usize)
        .copied()
        .unwrap_or(DeviceId::EMPTY);
    Ok(device_needs(LOCAL, entry.get(LOCAL), g, gid, devices)
        .then_some((gi, if g.deleted { NEED_DELETE } else { NEED_CHANGE })))
}

/// The global counts contribution of a name: its global record, when that record is valid.
pub(crate) fn global_counts(entry: &Entry, eval: &Evaluation) -> Option<Counts> {
    let (_, g) = entry.records.get(eval.global?)?;
    (!g.invalid).then(|| Counts::of(g))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::RemoteBatch;

    const ME: DeviceId = DeviceId::from_bytes([1; 32]);

    /// Overwrites the stored format number, as an older or newer build would have left it.
    fn set_stored_format(path: &Path, version: u32) {
        let db = Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", version.to_be_bytes().as_slice())
            .unwrap();
        txn.commit().unwrap();
    }

    fn stored_format(path: &Path) -> Option<u32> {
        let db = Database::create(path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        meta.get("format").unwrap().and_then(|g| be_u32(g.value()))
    }

    #[test]
    fn the_observed_table_keeps_entries_by_prefix_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        {
            let idx = Index::open(&path, ME).unwrap();
            assert!(idx.observed("a/").unwrap().is_empty());
            let put = vec![
                ("a/1".to_owned(), vec![1]),
                ("a/2".to_owned(), vec![2]),
                ("b/1".to_owned(), vec![3]),
            ];
            idx.update_observed(&put, &[]).unwrap();
            idx.update_observed(&[("a/3".to_owned(), vec![4])], &["a/1".to_owned()])
                .unwrap();
        }
        let idx = Index::open(&path, ME).unwrap();
        assert_eq!(
            idx.observed("a/").unwrap(),
            vec![("a/2".to_owned(), vec![2]), ("a/3".to_owned(), vec![4])]
        );
        assert_eq!(
            idx.observed("b/").unwrap(),
            vec![("b/1".to_owned(), vec![3])]
        );
        assert_eq!(idx.observed("").unwrap().len(), 3);
    }

    #[test]
    fn older_format_indexes_are_upgraded_in_place_on_open() {
        for old in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("i.redb");
            drop(Index::open(&path, ME).unwrap());
            set_stored_format(&path, old);
            drop(Index::open(&path, ME).unwrap());
            assert_eq!(
                stored_format(&path),
                Some(FORMAT_VERSION),
                "from format {old}"
            );
        }
    }

    #[test]
    fn version_2_folder_row_lists_every_needed_name() {
        assert_eq!(
            decode_folder(&[0, 0, 0, 7, 2]).unwrap(),
            (7, DeleteRule::V2, false)
        );
    }

    const PEER: DeviceId = DeviceId::from_bytes([2; 32]);

    fn remote(name: &str) -> FileRecord {
        let mut f = FileRecord::new(
            syncd_types::RelPath::new(name).unwrap(),
            syncd_types::FileKind::File,
        );
        f.size = 1;
        f.sequence = 1;
        f.version = syncd_conflict::VersionVector::new().updated(PEER.short(), 1);
        f
    }

    fn scans_changes(index: &Index, folder: &FolderId) -> bool {
        let txn = index.db.begin_read().unwrap();
        let t = txn.open_table(FOLDERS).unwrap();
        let row = t.get(folder.as_str()).unwrap().unwrap();
        decode_folder(row.value()).unwrap().2
    }

    fn needed_names(index: &Index, folder: &FolderId) -> Vec<String> {
        let r = index.read(folder).unwrap();
        r.need()
            .unwrap()
            .map(|n| n.unwrap().global.name.as_str().to_owned())
            .collect()
    }

    #[test]
    fn need_mode_follows_the_share_of_needed_changes_and_the_need_set_stays_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path().join("i.redb"), ME).unwrap();
        let folder = FolderId::new("f").unwrap();
        let names: Vec<String> = (0..64).map(|i| format!("d/{i:02}")).collect();
        let mut w = index.write(&folder).unwrap();
        w.apply_remote(PEER, RemoteBatch::Full, names.iter().map(|n| remote(n)))
            .unwrap();
        w.commit().unwrap();
        // 64 of 64 names needed: scan mode, same need set in name order.
        assert!(scans_changes(&index, &folder));
        assert_eq!(needed_names(&index, &folder), names);

        // A needed deletion is listed in scan mode too, and comes after the changes.
        let mut gone = remote("d/00");
        gone.deleted = true;
        gone.size = 0;
        gone.version = gone.version.updated(PEER.short(), 2);
        let mut w = index.write(&folder).unwrap();
        w.apply_local([remote("d/00")]).unwrap();
        w.apply_remote(PEER, RemoteBatch::Update, [gone]).unwrap();
        w.commit().unwrap();
        assert!(scans_changes(&index, &folder));
        let mut expected: Vec<String> = names[1..].to_vec();
        expected.push("d/00".to_owned());
        assert_eq!(needed_names(&index, &folder), expected);

        // The local device catches up on all but 3 changes (3 < 64/16): listed again.
        let mut w = index.write(&folder).unwrap();
        w.apply_local(names[1..61].iter().map(|n| remote(n)))
            .unwrap();
        w.commit().unwrap();
        assert!(!scans_changes(&index, &folder));
        let mut expected: Vec<String> = names[61..].to_vec();
        expected.push("d/00".to_owned());
        assert_eq!(needed_names(&index, &folder), expected);
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        drop(Index::open(&path, ME).unwrap());
        set_stored_format(&path, FORMAT_VERSION + 1);
        assert!(matches!(
            Index::open(&path, ME),
            Err(OpenError::UnsupportedFormat { found, supported })
                if found == FORMAT_VERSION + 1 && supported == FORMAT_VERSION
        ));
    }
}

//! [`FolderReader`]: a consistent snapshot of one folder, and the streaming iterators over it.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use redb::{ReadOnlyTable, ReadTransaction};
use syncd_conflict::DeleteRule;
use syncd_types::{DeviceId, FolderId, RelPath};

use crate::counts::Counts;
use crate::error::{DecodeError, IndexError};
use crate::keys::*;
use crate::need::{NeedIter, RowSource};
use crate::record::{Entry, FileRecord};
use crate::store::{DevState, decode_folder, evaluate, load_devices, load_folder_devices};

/// The counts of a folder as `/rest/db/status` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderCounts {
    /// The global (winning, valid) version of every name.
    pub global: Counts,
    /// The local device's valid records.
    pub local: Counts,
    /// What the local device needs (sizes of the global versions it lacks).
    pub need: Counts,
    /// The local device's receive-only changes (records with
    /// [`crate::FileRecord::receive_only`]).
    pub receive_only: Counts,
}

/// What the index holds about one device in one folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceState {
    /// The index ID (for the local device: ours, announced in ClusterConfig; for a peer: the
    /// one it announced, 0 if unknown).
    pub index_id: u64,
    /// Highest sequence: for the local device the last assigned, for a peer the highest seen.
    pub max_sequence: u64,
    /// The device's valid records.
    pub have: Counts,
    /// What the device still needs of the global versions (for a peer: its completion).
    pub need: Counts,
}

/// The global (winning) version of a name and who announced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalRecord {
    /// The device whose record won (the local device if it holds the winner).
    pub device: DeviceId,
    /// The winning record.
    pub record: FileRecord,
}

/// One entry of the need set: what the local device must do for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needed {
    /// The global version to reach (a deletion when `global.deleted`).
    pub global: FileRecord,
    /// The local record, if any (for conflict decisions and the "changed on disk" check).
    pub local: Option<FileRecord>,
    /// Peers announcing exactly the global version, valid: where its blocks can be fetched.
    pub available: Vec<DeviceId>,
}

/// Where local data with a given block or chunk hash lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockLocation {
    /// The local file.
    pub name: RelPath,
    /// Byte offset of the data in the file.
    pub offset: u64,
    /// Length of the data.
    pub size: u32,
}

/// A read snapshot of one folder. Holding it pins that snapshot (redb keeps its pages until
/// the reader is dropped), so drop readers promptly.
pub struct FolderReader {
    txn: ReadTransaction,
    /// `None` when the folder has never been written: every query answers empty.
    fidx: Option<u32>,
    rule: DeleteRule,
    /// The folder's need mode: needed changes are found by scanning `files`, not listed.
    scan_changes: bool,
    devices: Vec<DeviceId>,
    states: BTreeMap<u32, DevState>,
}

impl std::fmt::Debug for FolderReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderReader")
            .field("fidx", &self.fidx)
            .finish_non_exhaustive()
    }
}

impl FolderReader {
    pub(crate) fn begin(
        txn: ReadTransaction,
        folder: &FolderId,
    ) -> Result<FolderReader, IndexError> {
        let devices = load_devices(&txn.open_table(DEVICES)?)?;
        let row = txn
            .open_table(FOLDERS)?
            .get(folder.as_str())?
            .map(|g| decode_folder(g.value()))
            .transpose()?;
        let (fidx, rule, scan_changes, states) = match row {
            Some((fidx, rule, scan_changes)) => {
                let states = load_folder_devices(&txn.open_table(FOLDER_DEVICES)?, fidx)?;
                (Some(fidx), rule, scan_changes, states)
            }
            None => (None, DeleteRule::default(), false, BTreeMap::new()),
        };
        Ok(FolderReader {
            txn,
            fidx,
            rule,
            scan_changes,
            devices,
            states,
        })
    }

    /// The folder's delete rule.
    pub fn delete_rule(&self) -> DeleteRule {
        self.rule
    }

    /// The local device's index ID for this folder (0 if the folder was never written).
    pub fn local_index_id(&self) -> u64 {
        self.states.get(&LOCAL).map_or(0, |s| s.index_id)
    }

    /// The last local sequence assigned (0 if none).
    pub fn local_sequence(&self) -> u64 {
        self.states.get(&LOCAL).map_or(0, |s| s.max_sequence)
    }

    /// Every device of the folder (the local device first).
    pub fn devices(&self) -> Vec<DeviceId> {
        self.states
            .keys()
            .filter_map(|d| self.devices.get(*d as usize).copied())
            .collect()
    }

    /// What the index holds about `device` in this folder; `None` if it is not a folder device.
    pub fn device(&self, device: DeviceId) -> Result<Option<DeviceState>, IndexError> {
        let (Some(fidx), Some(dev)) = (self.fidx, self.device_number(device)) else {
            return Ok(None);
        };
        let Some(s) = self.states.get(&dev) else {
            return Ok(None);
        };
        Ok(Some(DeviceState {
            index_id: s.index_id,
            max_sequence: s.max_sequence,
            have: self.counts_of(fidx, COUNT_HAVE, dev)?,
            need: self.counts_of(fidx, COUNT_NEED, dev)?,
        }))
    }

    /// Global, local and need counts (no scan).
    pub fn counts(&self) -> Result<FolderCounts, IndexError> {
        let Some(fidx) = self.fidx else {
            return Ok(FolderCounts::default());
        };
        Ok(FolderCounts {
            global: self.counts_of(fidx, COUNT_GLOBAL, LOCAL)?,
            local: self.counts_of(fidx, COUNT_HAVE, LOCAL)?,
            need: self.counts_of(fidx, COUNT_NEED, LOCAL)?,
            receive_only: self.counts_of(fidx, COUNT_RECEIVE_ONLY, LOCAL)?,
        })
    }

    /// The record `device` holds (local device) or announced (peer) for `name`.
    pub fn get(&self, device: DeviceId, name: &RelPath) -> Result<Option<FileRecord>, IndexError> {
        let Some(dev) = self.device_number(device) else {
            return Ok(None);
        };
        Ok(self.entry(name)?.and_then(|mut e| e.set(dev, None)))
    }

    /// The global version of `name`: the winning record and its device. `None` if no device
    /// has a record for it.
    pub fn global(&self, name: &RelPath) -> Result<Option<GlobalRecord>, IndexError> {
        let Some(mut entry) = self.entry(name)? else {
            return Ok(None);
        };
        let eval = evaluate(&entry, &self.devices, self.rule)?;
        let Some(i) = eval.global else {
            return Ok(None);
        };
        if i >= entry.records.len() {
            return Ok(None);
        }
        let (d, record) = entry.records.swap_remove(i);
        Ok(Some(GlobalRecord {
            device: self.device_id(d)?,
            record,
        }))
    }

    /// Every record held for every device of `name`, with the device.
    pub fn all_records(&self, name: &RelPath) -> Result<Vec<(DeviceId, FileRecord)>, IndexError> {
        let Some(entry) = self.entry(name)? else {
            return Ok(Vec::new());
        };
        entry
            .records
            .into_iter()
            .map(|(d, r)| Ok((self.device_id(d)?, r)))
            .collect()
    }

    /// Local records with sequence greater than `after`, in sequence order, streamed from disk
    /// (what a peer whose view of our index ends at `after` lacks, spec §7.3). Take them in
    /// batches with [`Iterator::take`] or [`FolderReader::local_batch`].
    pub fn local_since(&self, after: u64) -> Result<LocalSince, IndexError> {
        let files = self.txn.open_table(FILES)?;
        let seqs = self.txn.open_table(SEQUENCES)?;
        let range = match self.fidx {
            Some(fidx) => {
                let start = seq_key(fidx, after.saturating_add(1));
                let (_, end) = folder_range(fidx);
                Some(seqs.range::<&[u8]>(start.as_slice()..end.as_slice())?)
            }
            None => None,
        };
        Ok(LocalSince {
            files,
            range,
            fidx: self.fidx.unwrap_or(0),
            done: after == u64::MAX,
        })
    }

    /// The local records of `dir` and of every name below it, in name order, streamed from
    /// disk: one range of the folder's entries instead of a pass over all local records, so a
    /// rescan of one directory costs what the directory holds, not what the folder holds.
    /// Names with no local record (only peers announce them) are skipped.
    pub fn local_under(&self, dir: &RelPath) -> Result<LocalUnder, IndexError> {
        let files = self.txn.open_table(FILES)?;
        let own = match self.fidx {
            Some(fidx) => {
                let key = file_key(fidx, dir.as_str().as_bytes());
                files.get(key.as_slice())?.map(|g| g.value().to_vec())
            }
            None => None,
        };
        let range = match self.fidx {
            Some(fidx) => {
                // Every name below `dir` starts with "dir/"; '0' is the byte after '/'.
                let start = file_key(fidx, format!("{}/", dir.as_str()).as_bytes());
                let end = file_key(fidx, format!("{}0", dir.as_str()).as_bytes());
                Some(files.range::<&[u8]>(start.as_slice()..end.as_slice())?)
            }
            None => None,
        };
        Ok(LocalUnder {
            own: own.map(|v| (dir.clone(), v)),
            range,
            done: false,
        })
    }

    /// Visits, in name order, every name of the folder (or `dir` and the names below it)
    /// that has a global record: `f` gets the global record, the local record if any, and
    /// whether `device` needs the global (`None`: the local device; a peer: by its
    /// completion rule). Streams from disk; stops early when `f` returns
    /// [`ControlFlow::Break`]. For listings (what a device needs, a directory tree).
    pub fn visit_globals(
        &self,
        dir: Option<&RelPath>,
        device: Option<DeviceId>,
        mut f: impl FnMut(&FileRecord, Option<&FileRecord>, bool) -> ControlFlow<()>,
    ) -> Result<(), IndexError> {
        let Some(fidx) = self.fidx else {
            return Ok(());
        };
        let dev = match device {
            None => Some(LOCAL),
            Some(d) => self.device_number(d),
        };
        let files = self.txn.open_table(FILES)?;
        let mut visit = |name: &RelPath, bytes: &[u8]| -> Result<ControlFlow<()>, IndexError> {
            let entry = Entry::decode(name, bytes)?;
            let eval = evaluate(&entry, &self.devices, self.rule)?;
            let Some((gd, global)) = eval.global.and_then(|i| entry.records.get(i)) else {
                return Ok(ControlFlow::Continue(()));
            };
            let gid = self.device_id(*gd)?;
            let needed = dev.is_some_and(|d| {
                crate::store::device_needs(d, entry.get(d), global, gid, &self.devices)
            });
            Ok(f(global, entry.get(LOCAL), needed))
        };
        let (start, end) = match dir {
            Some(dir) => {
                let key = file_key(fidx, dir.as_str().as_bytes());
                if let Some(g) = files.get(key.as_slice())?
                    && visit(dir, g.value())?.is_break()
                {
                    return Ok(());
                }
                // Every name below `dir` starts with "dir/"; '0' is the byte after '/'.
                (
                    file_key(fidx, format!("{}/", dir.as_str()).as_bytes()),
                    file_key(fidx, format!("{}0", dir.as_str()).as_bytes()),
                )
            }
            None => folder_range(fidx),
        };
        for item in files.range::<&[u8]>(start.as_slice()..end.as_slice())? {
            let (k, v) = item?;
            let name = RelPath::from_bytes(k.value().get(4..).unwrap_or_default())
                .map_err(DecodeError::from)?;
            if visit(&name, v.value())?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Up to `max` local records with sequence greater than `after`, in sequence order.
    pub fn local_batch(&self, after: u64, max: usize) -> Result<Vec<FileRecord>, IndexError> {
        self.local_since(after)?.take(max).collect()
    }

    /// The local need set, streamed from disk in pull order: first every needed change
    /// (files, directories, symlinks) in name order, so a directory comes before its contents;
    /// then every needed deletion in reverse name order, so contents are deleted before their
    /// directory (deepest first).
    ///
    /// While the local device needs most of the folder (more than a quarter of its names as
    /// changes, e.g. during an initial sync) the changes are found by reading the folder's
    /// entries in order and keeping the needed ones; otherwise from the listed need set (see
    /// "need mode" in `docs/index-format.md`). Either way the result is the same.
    pub fn need(&self) -> Result<NeedIter, IndexError> {
        let files = self.txn.open_table(FILES)?;
        let need = self.txn.open_table(NEED)?;
        let (mut changes, mut scan, mut deletes) = (None, None, None);
        if let Some(fidx) = self.fidx {
            if self.scan_changes {
                let (start, end) = folder_range(fidx);
                scan = Some(files.range::<&[u8]>(start.as_slice()..end.as_slice())?);
            } else {
                let (cs, ce) = need_range(fidx, NEED_CHANGE);
                changes = Some(need.range::<&[u8]>(cs.as_slice()..ce.as_slice())?);
            }
            let (ds, de) = need_range(fidx, NEED_DELETE);
            deletes = Some(need.range::<&[u8]>(ds.as_slice()..de.as_slice())?.rev());
        }
        let rows = RowSource::new(files, changes, scan, deletes, self.fidx.unwrap_or(0));
        Ok(NeedIter::new(rows, self.rule, self.devices.clone()))
    }

    /// Local files holding data with `hash` (a block or chunk hash), at most `max` of them.
    pub fn find_block(
        &self,
        hash: &[u8; 32],
        max: usize,
    ) -> Result<Vec<BlockLocation>, IndexError> {
        let Some(fidx) = self.fidx else {
            return Ok(Vec::new());
        };
        let t = self.txn.open_table(BLOCKS)?;
        let mut start = hash.to_vec();
        start.extend_from_slice(&fidx.to_be_bytes());
        let mut out = Vec::new();
        for item in t.range::<&[u8]>(start.as_slice()..)? {
            if out.len() >= max {
                break;
            }
            let (k, v) = item?;
            let k = k.value();
            if k.get(..36) != Some(start.as_slice()) {
                break;
            }
            let offset = k.get(36..).and_then(be_u64).ok_or(DecodeError::Truncated {
                what: "block key",
                offset: 36,
            })?;
            let name =
                RelPath::from_bytes(k.get(44..).unwrap_or_default()).map_err(DecodeError::from)?;
            out.push(BlockLocation {
                name,
                offset,
                size: v.value(),
            });
        }
        Ok(out)
    }

    fn device_number(&self, device: DeviceId) -> Option<u32> {
        self.devices
            .iter()
            .position(|d| *d == device)
            .map(|i| i as u32)
    }

    fn device_id(&self, dev: u32) -> Result<DeviceId, IndexError> {
        self.devices.get(dev as usize).copied().ok_or_else(|| {
            IndexError::Corrupt(DecodeError::OutOfRange {
                what: "entry",
                field: "device number",
                value: u64::from(dev),
            })
        })
    }

    fn entry(&self, name: &RelPath) -> Result<Option<Entry>, IndexError> {
        let Some(fidx) = self.fidx else {
            return Ok(None);
        };
        let t = self.txn.open_table(FILES)?;
        let key = file_key(fidx, name.as_str().as_bytes());
        Ok(match t.get(key.as_slice())? {
            Some(g) => Some(Entry::decode(name, g.value())?),
            None => None,
        })
    }

    fn counts_of(&self, fidx: u32, kind: u8, dev: u32) -> Result<Counts, IndexError> {
        let t = self.txn.open_table(COUNTS)?;
        Ok(match t.get(counts_key(fidx, kind, dev).as_slice())? {
            Some(g) => Counts::decode(g.value())?,
            None => Counts::default(),
        })
    }
}

/// Local records by sequence, from [`FolderReader::local_since`].
pub struct LocalSince {
    files: ReadOnlyTable<&'static [u8], &'static [u8]>,
    range: Option<redb::Range<'static, &'static [u8], &'static [u8]>>,
    fidx: u32,
    done: bool,
}

impl std::fmt::Debug for LocalSince {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSince").finish_non_exhaustive()
    }
}

/// One row of the sequence table, as a range yields it.
type SeqRow = Result<
    (
        redb::AccessGuard<'static, &'static [u8]>,
        redb::AccessGuard<'static, &'static [u8]>,
    ),
    redb::StorageError,
>;

impl LocalSince {
    fn record(&mut self, item: SeqRow) -> Result<FileRecord, IndexError> {
        let (_, name) = item?;
        let name = RelPath::from_bytes(name.value()).map_err(DecodeError::from)?;
        let key = file_key(self.fidx, name.as_str().as_bytes());
        let g = self
            .files
            .get(key.as_slice())?
            .ok_or(DecodeError::OutOfRange {
                what: "sequence index",
                field: "missing entry",
                value: 0,
            })?;
        let mut e = Entry::decode(&name, g.value())?;
        e.set(LOCAL, None)
            .ok_or(IndexError::Corrupt(DecodeError::OutOfRange {
                what: "sequence index",
                field: "missing local record",
                value: 0,
            }))
    }
}

impl Iterator for LocalSince {
    type Item = Result<FileRecord, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.range.as_mut()?.next()?;
        let r = self.record(item);
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

/// From the newest record back (e.g. the records a later batch will hold, newest first).
impl DoubleEndedIterator for LocalSince {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.range.as_mut()?.next_back()?;
        let r = self.record(item);
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

/// The local records of a directory and everything below it, from
/// [`FolderReader::local_under`].
pub struct LocalUnder {
    /// The directory's own entry, yielded first.
    own: Option<(RelPath, Vec<u8>)>,
    range: Option<redb::Range<'static, &'static [u8], &'static [u8]>>,
    done: bool,
}

impl std::fmt::Debug for LocalUnder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUnder").finish_non_exhaustive()
    }
}

impl Iterator for LocalUnder {
    type Item = Result<FileRecord, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.done {
                return None;
            }
            let r = if let Some((name, bytes)) = self.own.take() {
                Entry::decode(&name, &bytes).map_err(IndexError::from)
            } else {
                let item = self.range.as_mut()?.next()?;
                (|| {
                    let (k, v) = item?;
                    let name = RelPath::from_bytes(k.value().get(4..).unwrap_or_default())
                        .map_err(DecodeError::from)?;
                    Ok(Entry::decode(&name, v.value())?)
                })()
            };
            match r {
                Ok(mut e) => {
                    if let Some(rec) = e.set(LOCAL, None) {
                        return Some(Ok(rec));
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

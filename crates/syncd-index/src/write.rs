//! [`FolderWriter`]: one write batch on one folder, committed as one redb transaction.

use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use syncd_conflict::DeleteRule;
use syncd_types::{DeviceId, FolderId, RelPath};

use crate::counts::{Counts, Delta};
use crate::error::{DecodeError, IndexError};
use crate::keys::*;
use crate::record::{Entry, FileRecord, Replaced};
use crate::store::{
    DevState, Index, decode_folder, device_needs, encode_folder, evaluate, global_counts,
    load_devices, load_folder_devices, local_need,
};

/// Names processed per chunk when a whole folder is rewritten (dropping a device, changing the
/// delete rule): bounds the memory of those scans.
const SCAN_CHUNK: usize = 1024;

/// Remote records held back by a writer before they are applied, in key order, in one pass:
/// several coalesced Index messages then update the B-trees in one sorted sweep.
const PENDING_MAX: usize = 10_000;

/// Whether a remote batch is a full `Index` (replaces everything held for that device) or an
/// `IndexUpdate` (adds to or overwrites it), spec bep-wire §7.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteBatch {
    /// A full `Index`: the device's previous records are dropped first.
    Full,
    /// An `IndexUpdate`.
    Update,
}

/// A write batch on one folder. Every change is applied inside one transaction; nothing is
/// visible to readers or survives a crash until [`FolderWriter::commit`] returns. Dropping the
/// writer without committing discards the batch.
///
/// Memory: the records passed in, plus per-device bookkeeping; never per-file state beyond
/// the batch.
pub struct FolderWriter<'db> {
    index: &'db Index,
    txn: WriteTransaction,
    folder: FolderId,
    st: State,
    /// Remote records accepted but not yet applied (at most [`PENDING_MAX`]), with their
    /// device number; applied in key order before anything that reads or drops records.
    pending: Vec<(u32, FileRecord)>,
}

/// The writer's bookkeeping, apart from the transaction so tables (which borrow the
/// transaction) and the bookkeeping can be used together.
struct State {
    fidx: u32,
    rule: DeleteRule,
    /// The folder's need mode: when set, needed changes are not listed in `need` (readers
    /// find them by scanning `files`); needed deletions always are. Changes only at commit.
    scan_changes: bool,
    /// Device number → ID for every device ever seen.
    devices: Vec<DeviceId>,
    /// This folder's devices (local included) and their states, written at commit.
    states: BTreeMap<u32, DevState>,
    /// Count changes by (kind, device), applied at commit.
    deltas: BTreeMap<(u8, u32), Delta>,
    /// Scratch buffers reused for every name of the batch: a `files` key, a `need` key, an
    /// encoded entry and an encoded record.
    key: Vec<u8>,
    need_key: Vec<u8>,
    value: Vec<u8>,
    body: Vec<u8>,
}

impl std::fmt::Debug for FolderWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderWriter")
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

/// The tables one name update touches.
struct Tables<'t> {
    files: Table<'t, &'static [u8], &'static [u8]>,
    need: Table<'t, &'static [u8], ()>,
}

impl<'db> FolderWriter<'db> {
    pub(crate) fn begin(
        index: &'db Index,
        txn: WriteTransaction,
        folder: &FolderId,
    ) -> Result<FolderWriter<'db>, IndexError> {
        let devices = load_devices(&txn.open_table(DEVICES)?)?;
        let (fidx, rule, scan_changes, states) = {
            let mut folders = txn.open_table(FOLDERS)?;
            let existing = folders
                .get(folder.as_str())?
                .map(|g| decode_folder(g.value()));
            match existing {
                Some(row) => {
                    let (fidx, rule, scan_changes) = row?;
                    let states = load_folder_devices(&txn.open_table(FOLDER_DEVICES)?, fidx)?;
                    (fidx, rule, scan_changes, states)
                }
                None => {
                    let n = folders.len()?;
                    let fidx = u32::try_from(n)
                        .ok()
                        .filter(|n| *n < u32::MAX)
                        .ok_or(IndexError::TooMany { what: "folders" })?;
                    folders.insert(
                        folder.as_str(),
                        encode_folder(fidx, DeleteRule::V1, false).as_slice(),
                    )?;
                    let mut states = BTreeMap::new();
                    states.insert(
                        LOCAL,
                        DevState {
                            index_id: random_index_id(),
                            ..DevState::default()
                        },
                    );
                    (fidx, DeleteRule::V1, false, states)
                }
            }
        };
        Ok(FolderWriter {
            index,
            txn,
            folder: folder.clone(),
            st: State {
                fidx,
                rule,
                scan_changes,
                devices,
                states,
                deltas: BTreeMap::new(),
                key: Vec::new(),
                need_key: Vec::new(),
                value: Vec::new(),
                body: Vec::new(),
            },
            pending: Vec::new(),
        })
    }

    /// The folder's delete rule as of this batch.
    pub fn delete_rule(&self) -> DeleteRule {
        self.st.rule
    }

    /// Applies local changes (scanner or puller results), in order. Each record gets the next
    /// local sequence (the `sequence` passed in is ignored); the record's version is stored as
    /// given (bumping it is the caller's decision). Returns the highest local sequence after
    /// the batch.
    pub fn apply_local(
        &mut self,
        records: impl IntoIterator<Item = FileRecord>,
    ) -> Result<u64, IndexError> {
        self.flush()?;
        let st = &mut self.st;
        let fidx = st.fidx;
        let mut seq = st.state(LOCAL).max_sequence;
        {
            let mut t = Tables::open(&self.txn)?;
            let mut seqs = self.txn.open_table(SEQUENCES)?;
            let mut blocks = self.txn.open_table(BLOCKS)?;
            // Sequences follow the input order; the tables are then updated in key order
            // (a stable sort, so a name given twice still ends with its last record).
            let records = sorted_by_name(records.into_iter().map(|mut rec| {
                seq += 1;
                rec.sequence = seq;
                rec
            }));
            for mut rec in records {
                let rec_seq = rec.sequence;
                let name = rec.name.clone();
                let new_blocks = block_keys(fidx, &rec);
                rec.replaced = None;
                // A deletion is stored a second time, knowing what it replaced (deletions
                // are few next to new and changed records, and carry no blocks).
                let deletion = rec.deleted.then(|| rec.clone());
                let old = st.set_record(&mut t, LOCAL, rec)?;
                if let (Some(mut d), Some(o)) = (deletion, &old)
                    && !o.deleted
                    && !o.invalid
                    && o.kind == d.kind
                    && o.blocks_hash == d.previous_blocks_hash
                {
                    d.replaced = Some(Replaced {
                        sequence: o.sequence,
                        fingerprint: o.content_fingerprint(),
                    });
                    st.set_record(&mut t, LOCAL, d)?;
                }
                if let Some(old) = &old {
                    seqs.remove(seq_key(fidx, old.sequence).as_slice())?;
                    for (k, _) in block_keys(fidx, old) {
                        blocks.remove(k.as_slice())?;
                    }
                }
                seqs.insert(seq_key(fidx, rec_seq).as_slice(), name.as_str().as_bytes())?;
                for (k, size) in new_blocks {
                    blocks.insert(k.as_slice(), size)?;
                }
            }
        }
        st.state_mut(LOCAL)?.max_sequence = seq;
        Ok(seq)
    }

    /// Applies records announced by `device` (a peer, not the local device). With
    /// [`RemoteBatch::Full`] everything previously held for the device is dropped first.
    /// Records keep the sender's sequence; the device's max sequence becomes the highest seen.
    /// Their `inode` is stored as 0 (unknown): inodes describe local files only.
    ///
    /// The records of consecutive calls are held back (up to ~10,000) and applied together in
    /// key order, so an error while applying them (a corrupt stored entry) may be reported by
    /// a later call on this writer or by [`FolderWriter::commit`]; either way the batch must
    /// then be dropped, as after any error.
    pub fn apply_remote(
        &mut self,
        device: DeviceId,
        batch: RemoteBatch,
        records: impl IntoIterator<Item = FileRecord>,
    ) -> Result<(), IndexError> {
        let dev = self.remote_device(device)?;
        if batch == RemoteBatch::Full {
            self.drop_records(dev)?;
            self.st.state_mut(dev)?.max_sequence = 0;
        }
        let mut max = self.st.state(dev).max_sequence;
        for mut rec in records {
            max = max.max(rec.sequence);
            // The inode, what a deletion replaced and the receive-only flag are local
            // knowledge; a peer's record never carries them.
            rec.inode = 0;
            rec.replaced = None;
            rec.receive_only = false;
            self.pending.push((dev, rec));
        }
        self.st.state_mut(dev)?.max_sequence = max;
        if self.pending.len() >= PENDING_MAX {
            self.flush()?;
        }
        Ok(())
    }

    /// Applies the held-back remote records in key order (a stable sort, so a name given
    /// twice by one device still ends with its last record).
    fn flush(&mut self) -> Result<(), IndexError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        // Sort positions rather than the records themselves (a record is a few hundred bytes
        // that a merge sort would move several times); stable, as the records must be.
        let mut order: Vec<u32> = (0..pending.len() as u32).collect();
        order.sort_by(|a, b| {
            let name = |i: &u32| {
                pending
                    .get(*i as usize)
                    .map_or(&[][..], |(_, r)| r.name.as_str().as_bytes())
            };
            name(a).cmp(name(b))
        });
        let mut slots: Vec<Option<(u32, FileRecord)>> = pending.drain(..).map(Some).collect();
        let st = &mut self.st;
        let mut t = Tables::open(&self.txn)?;
        for i in order {
            if let Some((dev, rec)) = slots.get_mut(i as usize).and_then(Option::take) {
                st.set_record(&mut t, dev, rec)?;
            }
        }
        // Keep the allocation for the next coalesced messages.
        self.pending = pending;
        Ok(())
    }

    /// Records the index ID `device` announces for its own index in this folder (spec §7.3).
    /// When it differs from the stored one, or is 0, everything held for the device is dropped
    /// and its max sequence reset: a full `Index` must follow. Returns whether records were
    /// dropped (i.e. whether a full index is expected).
    pub fn set_remote_index_id(
        &mut self,
        device: DeviceId,
        index_id: u64,
    ) -> Result<bool, IndexError> {
        let dev = self.remote_device(device)?;
        if index_id != 0 && self.st.state(dev).index_id == index_id {
            return Ok(false);
        }
        self.drop_records(dev)?;
        let s = self.st.state_mut(dev)?;
        s.index_id = index_id;
        s.max_sequence = 0;
        Ok(true)
    }

    /// Drops everything held for `device` and forgets it in this folder (the folder is no
    /// longer shared with it): its counts and completion disappear.
    pub fn remove_device(&mut self, device: DeviceId) -> Result<(), IndexError> {
        let Some(dev) = self.st.devices.iter().position(|d| *d == device) else {
            return Ok(());
        };
        let dev = dev as u32;
        if dev == LOCAL || !self.st.states.contains_key(&dev) {
            return Ok(());
        }
        self.drop_records(dev)?;
        self.st.states.remove(&dev);
        self.st.deltas.retain(|(_, d), _| *d != dev);
        let fidx = self.st.fidx;
        let mut fd = self.txn.open_table(FOLDER_DEVICES)?;
        fd.remove(folder_device_key(fidx, dev).as_slice())?;
        let mut counts = self.txn.open_table(COUNTS)?;
        for kind in [COUNT_HAVE, COUNT_NEED] {
            counts.remove(counts_key(fidx, kind, dev).as_slice())?;
        }
        Ok(())
    }

    /// Adds `device` to the folder with no records, so its completion is tracked (it needs
    /// every valid live global entry). A device is also added by its first remote batch or
    /// index ID.
    pub fn add_device(&mut self, device: DeviceId) -> Result<(), IndexError> {
        self.remote_device(device).map(|_| ())
    }

    /// Changes the folder's delete rule; when it differs, every global, the need set and the
    /// counts are recomputed under the new rule (one pass over the folder).
    pub fn set_delete_rule(&mut self, rule: DeleteRule) -> Result<(), IndexError> {
        let old = self.st.rule;
        if rule == old {
            return Ok(());
        }
        self.flush()?;
        for_each_name(&self.txn, &mut self.st, |st, t, name| {
            st.update_name(t, name, old, rule, |_| ((), false))
        })?;
        self.st.rule = rule;
        let mut folders = self.txn.open_table(FOLDERS)?;
        folders.insert(
            self.folder.as_str(),
            encode_folder(self.st.fidx, rule, self.st.scan_changes).as_slice(),
        )?;
        Ok(())
    }

    /// Makes the batch durable and visible.
    pub fn commit(mut self) -> Result<(), IndexError> {
        self.flush()?;
        let FolderWriter {
            txn, folder, st, ..
        } = self;
        {
            let mut fd = txn.open_table(FOLDER_DEVICES)?;
            for (dev, s) in &st.states {
                fd.insert(
                    folder_device_key(st.fidx, *dev).as_slice(),
                    s.encode().as_slice(),
                )?;
            }
            let mut counts = txn.open_table(COUNTS)?;
            for ((kind, dev), delta) in &st.deltas {
                if delta.is_zero() {
                    continue;
                }
                let key = counts_key(st.fidx, *kind, *dev);
                let base = match counts.get(key.as_slice())? {
                    Some(g) => Counts::decode(g.value())?,
                    None => Counts::default(),
                };
                let new = delta
                    .applied_to(&base)
                    .map_err(|what| IndexError::CountUnderflow {
                        folder: folder.to_string(),
                        what,
                    })?;
                counts.insert(key.as_slice(), new.encode().as_slice())?;
            }
            let stored = |kind: u8| -> Result<Counts, IndexError> {
                Ok(
                    match counts.get(counts_key(st.fidx, kind, LOCAL).as_slice())? {
                        Some(g) => Counts::decode(g.value())?,
                        None => Counts::default(),
                    },
                )
            };
            let need = stored(COUNT_NEED)?;
            let names = stored(COUNT_GLOBAL)?.entries();
            let changes = need.entries() - need.deleted;
            let scan = if st.scan_changes {
                changes.saturating_mul(LIST_BELOW) >= names
            } else {
                changes.saturating_mul(SCAN_ABOVE) > names
            };
            if scan != st.scan_changes {
                set_need_mode(&txn, &st, scan)?;
                txn.open_table(FOLDERS)?.insert(
                    folder.as_str(),
                    encode_folder(st.fidx, st.rule, scan).as_slice(),
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The number of a remote device, numbering it and adding it to the folder if new. A new
    /// folder device starts needing every global it has no record for.
    fn remote_device(&mut self, device: DeviceId) -> Result<u32, IndexError> {
        if device == self.index.local_device() {
            return Err(IndexError::LocalDeviceAsRemote);
        }
        let st = &mut self.st;
        let dev = match st.devices.iter().position(|d| *d == device) {
            Some(i) => i as u32,
            None => {
                let n = u32::try_from(st.devices.len())
                    .map_err(|_| IndexError::TooMany { what: "devices" })?;
                self.txn
                    .open_table(DEVICES)?
                    .insert(device.as_bytes().as_slice(), n)?;
                st.devices.push(device);
                n
            }
        };
        if !st.states.contains_key(&dev) && !self.pending.is_empty() {
            // The new device's need is computed from the stored entries: apply first.
            self.flush()?;
        }
        let st = &mut self.st;
        if let std::collections::btree_map::Entry::Vacant(v) = st.states.entry(dev) {
            v.insert(DevState::default());
            let mut total = Delta::default();
            for_each_entry(&self.txn, st.fidx, |entry| {
                let eval = evaluate(entry, &st.devices, st.rule)?;
                if let Some((gd, g)) = eval.global.and_then(|i| entry.records.get(i)) {
                    let gid = st
                        .devices
                        .get(*gd as usize)
                        .copied()
                        .unwrap_or(DeviceId::EMPTY);
                    if device_needs(dev, None, g, gid, &st.devices) {
                        total.add(&Counts::of(g));
                    }
                }
                Ok(())
            })?;
            *st.delta(COUNT_NEED, dev) = total;
        }
        Ok(dev)
    }

    /// Removes every record of `dev` in the folder (chunked scan).
    fn drop_records(&mut self, dev: u32) -> Result<(), IndexError> {
        // Held-back records count only once applied.
        self.flush()?;
        if self.st.state(dev).records == 0 {
            return Ok(());
        }
        let rule = self.st.rule;
        for_each_name(&self.txn, &mut self.st, |st, t, name| {
            st.update_name(t, name, rule, rule, |e| ((), e.set(dev, None).is_some()))
        })
    }
}

impl<'t> Tables<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Tables<'t>, IndexError> {
        Ok(Tables {
            files: txn.open_table(FILES)?,
            need: txn.open_table(NEED)?,
        })
    }
}

/// Calls `f` for every name of the folder, in chunks, with the tables open for updates.
fn for_each_name(
    txn: &WriteTransaction,
    st: &mut State,
    mut f: impl FnMut(&mut State, &mut Tables<'_>, &RelPath) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let (mut start, end) = folder_range(st.fidx);
    loop {
        let mut names = Vec::with_capacity(SCAN_CHUNK);
        let mut t = Tables::open(txn)?;
        for item in t.files.range::<&[u8]>(start.as_slice()..end.as_slice())? {
            let (k, _) = item?;
            names.push(name_of(k.value())?);
            if names.len() == SCAN_CHUNK {
                break;
            }
        }
        let Some(last) = names.last() else {
            return Ok(());
        };
        start = file_key(st.fidx, last.as_str().as_bytes());
        start.push(0);
        for name in &names {
            f(st, &mut t, name)?;
        }
    }
}

/// Calls `f` for every stored entry of the folder (read-only, chunked).
fn for_each_entry(
    txn: &WriteTransaction,
    fidx: u32,
    mut f: impl FnMut(&Entry) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let (mut start, end) = folder_range(fidx);
    let files = txn.open_table(FILES)?;
    loop {
        let mut entries = Vec::with_capacity(SCAN_CHUNK);
        let mut last = None;
        for item in files.range::<&[u8]>(start.as_slice()..end.as_slice())? {
            let (k, v) = item?;
            let name = name_of(k.value())?;
            entries.push(Entry::decode(&name, v.value())?);
            last = Some(k.value().to_vec());
            if entries.len() == SCAN_CHUNK {
                break;
            }
        }
        let Some(last) = last else {
            return Ok(());
        };
        start = last;
        start.push(0);
        for e in &entries {
            f(e)?;
        }
    }
}

impl State {
    fn state(&self, dev: u32) -> DevState {
        self.states.get(&dev).copied().unwrap_or_default()
    }

    fn state_mut(&mut self, dev: u32) -> Result<&mut DevState, IndexError> {
        self.states
            .get_mut(&dev)
            .ok_or(IndexError::Corrupt(DecodeError::OutOfRange {
                what: "folder device",
                field: "device number",
                value: u64::from(dev),
            }))
    }

    /// Whether names the local device needs in `class` are listed in `need` (in scan mode,
    /// changes are not).
    fn listed(&self, class: u8) -> bool {
        !(self.scan_changes && class == NEED_CHANGE)
    }

    fn delta(&mut self, kind: u8, dev: u32) -> &mut Delta {
        self.deltas.entry((kind, dev)).or_default()
    }

    /// Changes the records of one name with `change`, keeping the global, the local need set,
    /// every folder device's need counts and the have/global counts in step. `old_rule` and
    /// `new_rule` differ only when the delete rule changes. `change` returns its result and
    /// whether it changed the entry's records (only then is the entry rewritten).
    fn update_name<R>(
        &mut self,
        t: &mut Tables<'_>,
        name: &RelPath,
        old_rule: DeleteRule,
        new_rule: DeleteRule,
        change: impl FnOnce(&mut Entry) -> (R, bool),
    ) -> Result<R, IndexError> {
        let key = file_key(self.fidx, name.as_str().as_bytes());
        let mut entry = match t.files.get(key.as_slice())? {
            Some(g) => Entry::decode(name, g.value())?,
            None => Entry::default(),
        };
        let old_need = self.account(&entry, old_rule, false)?;
        let (r, changed) = change(&mut entry);
        let new_need = self.account(&entry, new_rule, true)?;
        if old_need != new_need {
            if let Some(c) = old_need.filter(|c| self.listed(*c)) {
                t.need
                    .remove(need_key(self.fidx, c, name.as_str().as_bytes()).as_slice())?;
            }
            if let Some(c) = new_need.filter(|c| self.listed(*c)) {
                t.need.insert(
                    need_key(self.fidx, c, name.as_str().as_bytes()).as_slice(),
                    (),
                )?;
            }
        }
        if changed {
            if entry.records.is_empty() {
                t.files.remove(key.as_slice())?;
            } else {
                t.files.insert(key.as_slice(), entry.encode().as_slice())?;
            }
        }
        Ok(r)
    }

    /// Sets `dev`'s record for `rec.name` to `rec`, keeping the global, the need set and the
    /// counts in step as [`State::update_name`] does; returns the record it replaced.
    ///
    /// It writes first and takes the previous entry from what the insert returns, so a name
    /// new to the index (every name of an initial sync) costs one B-tree descent instead of
    /// a lookup plus an insert; a name already held is then written a second time, merged,
    /// onto the page the first write made dirty.
    fn set_record(
        &mut self,
        t: &mut Tables<'_>,
        dev: u32,
        rec: FileRecord,
    ) -> Result<Option<FileRecord>, IndexError> {
        let rule = self.rule;
        self.key.clear();
        self.key.extend_from_slice(&self.fidx.to_be_bytes());
        self.key.extend_from_slice(rec.name.as_str().as_bytes());
        let mut entry = Entry {
            records: vec![(dev, rec)],
        };
        entry.encode_to(&mut self.value, &mut self.body);
        let previous = match t.files.insert(self.key.as_slice(), self.value.as_slice())? {
            Some(g) => {
                let name = entry.records.first().map(|(_, r)| r.name.clone());
                match name {
                    Some(name) => Some(Entry::decode_owned(name, g.value())?),
                    None => None,
                }
            }
            None => None,
        };
        let Some(mut merged) = previous else {
            let need = self.account(&entry, rule, true)?;
            self.set_need(t, None, need, &entry)?;
            return Ok(None);
        };
        let old_need = self.account(&merged, rule, false)?;
        let old = merged.set(dev, entry.records.pop().map(|(_, r)| r));
        if merged.records.len() > 1 {
            // The table holds `dev`'s record alone: store the merged entry.
            merged.encode_to(&mut self.value, &mut self.body);
            t.files.insert(self.key.as_slice(), self.value.as_slice())?;
        }
        let new_need = self.account(&merged, rule, true)?;
        self.set_need(t, old_need, new_need, &merged)?;
        Ok(old)
    }

    /// Moves the name of `entry` between need classes (or in or out of the need set).
    fn set_need(
        &mut self,
        t: &mut Tables<'_>,
        old: Option<u8>,
        new: Option<u8>,
        entry: &Entry,
    ) -> Result<(), IndexError> {
        if old == new {
            return Ok(());
        }
        let Some((_, r)) = entry.records.first() else {
            return Ok(());
        };
        let name = r.name.as_str().as_bytes();
        for (class, insert) in [(old, false), (new, true)] {
            let Some(class) = class.filter(|c| self.listed(*c)) else {
                continue;
            };
            self.need_key.clear();
            self.need_key.extend_from_slice(&self.fidx.to_be_bytes());
            self.need_key.push(class);
            self.need_key.extend_from_slice(name);
            if insert {
                t.need.insert(self.need_key.as_slice(), ())?;
            } else {
                t.need.remove(self.need_key.as_slice())?;
            }
        }
        Ok(())
    }

    /// Adds (`add`) or removes the contributions of `entry` to the counts; returns the local
    /// need class of the name, if the local device needs it.
    fn account(
        &mut self,
        entry: &Entry,
        rule: DeleteRule,
        add: bool,
    ) -> Result<Option<u8>, IndexError> {
        if entry.records.is_empty() {
            return Ok(None);
        }
        let eval = evaluate(entry, &self.devices, rule)?;
        let deltas = &mut self.deltas;
        let mut count = |kind: u8, dev: u32, c: &Counts| {
            let d = deltas.entry((kind, dev)).or_default();
            if add { d.add(c) } else { d.sub(c) }
        };
        for (d, r) in &entry.records {
            if let Some(s) = self.states.get_mut(d) {
                s.records = if add {
                    s.records + 1
                } else {
                    s.records.saturating_sub(1)
                };
            }
            if !r.invalid {
                count(COUNT_HAVE, *d, &Counts::of(r));
            }
            if r.receive_only {
                count(COUNT_RECEIVE_ONLY, *d, &Counts::of(r));
            }
        }
        if let Some(c) = global_counts(entry, &eval) {
            count(COUNT_GLOBAL, LOCAL, &c);
        }
        let mut local_need = None;
        if let Some((gd, g)) = eval.global.and_then(|i| entry.records.get(i)) {
            let gid = self
                .devices
                .get(*gd as usize)
                .copied()
                .unwrap_or(DeviceId::EMPTY);
            let gc = Counts::of(g);
            for dev in self.states.keys() {
                if device_needs(*dev, entry.get(*dev), g, gid, &self.devices) {
                    count(COUNT_NEED, *dev, &gc);
                    if *dev == LOCAL {
                        local_need = Some(if g.deleted { NEED_DELETE } else { NEED_CHANGE });
                    }
                }
            }
        }
        Ok(local_need)
    }
}

/// A folder lists its needed changes in `need` until they are more than 1 in `SCAN_ABOVE` of its
/// names; from then on readers find them by scanning `files` (most of which they would read
/// anyway) and writers save one scattered `need` insert per name.
const SCAN_ABOVE: u64 = 4;

/// A folder in scan mode goes back to listing its needed changes once they are fewer than 1 in
/// `LIST_BELOW` of its names (the gap between the two thresholds keeps a folder from
/// switching back and forth: each switch costs a pass over the folder).
const LIST_BELOW: u64 = 16;

/// Switches the folder's need mode: to scan mode by removing its listed changes, back to
/// listing by one pass over `files` adding every needed change. Deletions stay listed either
/// way. Runs at commit, after every count is final.
fn set_need_mode(txn: &WriteTransaction, st: &State, scan: bool) -> Result<(), IndexError> {
    let mut need = txn.open_table(NEED)?;
    if scan {
        let (start, end) = need_range(st.fidx, NEED_CHANGE);
        need.retain_in::<&[u8], _>(start.as_slice()..end.as_slice(), |_, _| false)?;
        return Ok(());
    }
    for_each_entry(txn, st.fidx, |entry| {
        if let Some((_, NEED_CHANGE)) = local_need(entry, &st.devices, st.rule)?
            && let Some((_, r)) = entry.records.first()
        {
            need.insert(
                need_key(st.fidx, NEED_CHANGE, r.name.as_str().as_bytes()).as_slice(),
                (),
            )?;
        }
        Ok(())
    })
}

/// `records` in name (hence key) order; stable, so equal names keep their input order.
fn sorted_by_name(records: impl IntoIterator<Item = FileRecord>) -> Vec<FileRecord> {
    let mut v: Vec<FileRecord> = records.into_iter().collect();
    v.sort_by(|a, b| a.name.as_str().as_bytes().cmp(b.name.as_str().as_bytes()));
    v
}

/// The block-map keys of a local record: its blocks and chunks, for live regular files only.
fn block_keys(fidx: u32, rec: &FileRecord) -> Vec<(Vec<u8>, u32)> {
    if rec.deleted || rec.invalid || !rec.kind.is_file() {
        return Vec::new();
    }
    rec.blocks
        .iter()
        .chain(rec.chunks.iter())
        .map(|b| {
            (
                block_key(&b.hash, fidx, b.offset, rec.name.as_str().as_bytes()),
                b.size,
            )
        })
        .collect()
}

pub(crate) fn name_of(key: &[u8]) -> Result<RelPath, IndexError> {
    let name = key.get(4..).ok_or(DecodeError::Truncated {
        what: "file key",
        offset: 4,
    })?;
    Ok(RelPath::from_bytes(name).map_err(DecodeError::from)?)
}

/// A random nonzero 64-bit index ID. `RandomState` is seeded from the OS's randomness; the
/// clock and a counter are mixed in so two IDs made in one process differ too.
fn random_index_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(d.as_nanos());
        }
        h.write_u32(std::process::id());
        let v = h.finish();
        if v != 0 {
            return v;
        }
    }
}

//! [`NeedIter`]: the need set streamed from disk.
//!
//! The walk has two halves. [`RowSource`] moves redb cursors and copies the raw rows (name and
//! stored entry) it finds into a [`Batch`]; the iterator decodes each row, judges it with
//! `syncd-conflict`'s rules and yields what the local device needs. Small need sets (the usual
//! case once a folder is in sync) are walked on the caller's thread. A long walk (an initial
//! sync's need set) hands the redb half to a reading thread after [`THREAD_AFTER`] rows, so
//! page reads and decoding run on two cores; the batches between them are bounded
//! ([`THREAD_BATCH`] rows, [`CHANNEL_BATCHES`] in flight), so memory stays at a few hundred
//! kilobytes whatever the folder's size. Dropping the iterator stops and joins the thread, so
//! the read snapshot is released when the iterator is.

use std::cmp::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use redb::{AccessGuard, ReadOnlyTable};
use syncd_conflict::{DeleteRule, VersionOrdering};
use syncd_types::{DeviceId, RelPath};

use crate::error::{DecodeError, IndexError};
use crate::keys::{LOCAL, NEED_CHANGE, folder_range};
use crate::read::Needed;
use crate::record::Entry;
use crate::store::{evaluate, local_need};

/// Rows walked on the caller's thread before the redb half moves to a reading thread.
const THREAD_AFTER: usize = 2048;
/// Rows per batch while walking on the caller's thread.
const INLINE_BATCH: usize = 64;
/// Rows per batch sent by the reading thread.
const THREAD_BATCH: usize = 256;
/// Filled batches that may wait for the decoding side.
const CHANNEL_BATCHES: usize = 2;

/// One `files` table row as a range yields it.
type FileRow = (
    AccessGuard<'static, &'static [u8]>,
    AccessGuard<'static, &'static [u8]>,
);

/// How many `files` rows the need walk steps over before it seeks the next needed name
/// directly (when the need set is sparse, stepping would cost more than a lookup).
const MAX_STEPS: usize = 16;

/// Outcome of moving a `files` cursor to a key.
enum Step {
    /// The cursor's current row has the key.
    Found,
    /// The key is not in the table (the cursor passed it or ran out).
    Missing,
    /// Not reached within [`MAX_STEPS`]: seek instead.
    Seek,
}

/// Advances `rows` (a cursor over `files` in ascending order if `ascending`, else descending)
/// until `current` holds `target` or has passed it, stepping at most [`MAX_STEPS`] rows.
fn step_to(
    rows: &mut impl Iterator<Item = Result<FileRow, redb::StorageError>>,
    current: &mut Option<FileRow>,
    target: &[u8],
    ascending: bool,
) -> Result<Step, IndexError> {
    for _ in 0..MAX_STEPS {
        if let Some((k, _)) = current {
            let ord = k.value().cmp(target);
            match if ascending { ord } else { ord.reverse() } {
                Ordering::Equal => return Ok(Step::Found),
                Ordering::Greater => return Ok(Step::Missing),
                Ordering::Less => {}
            }
        }
        match rows.next() {
            Some(row) => *current = Some(row?),
            None => {
                *current = None;
                return Ok(Step::Missing);
            }
        }
    }
    Ok(Step::Seek)
}

/// How a raw row was found, which decides how it is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    /// A `files` row read in scan mode: needed only if the rules say so.
    Scanned,
    /// The entry of a listed needed change.
    Change,
    /// The entry of a listed needed deletion.
    Delete,
}

/// Where one raw row lies in its batch's bytes: the name, then the stored entry.
#[derive(Debug, Clone, Copy)]
struct RawRow {
    start: usize,
    name_len: usize,
    value_len: usize,
    kind: RowKind,
}

/// Raw rows copied out of redb pages, in need order.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    rows: Vec<RawRow>,
    /// The next row to hand out.
    next: usize,
}

impl Batch {
    fn clear(&mut self) {
        self.bytes.clear();
        self.rows.clear();
        self.next = 0;
    }

    fn push(&mut self, name: &[u8], value: &[u8], kind: RowKind) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.rows.push(RawRow {
            start,
            name_len: name.len(),
            value_len: value.len(),
            kind,
        });
    }

    /// The next row's name, stored entry and kind.
    fn pop(&mut self) -> Option<(&[u8], &[u8], RowKind)> {
        let row = *self.rows.get(self.next)?;
        self.next += 1;
        let name_end = row.start + row.name_len;
        let name = self.bytes.get(row.start..name_end)?;
        let value = self.bytes.get(name_end..name_end + row.value_len)?;
        Some((name, value, row.kind))
    }
}

/// The redb half of the need walk: the listed changes (or, in scan mode, the folder's `files`
/// rows) in name order, then the listed deletions in reverse name order, each with its stored
/// entry.
///
/// Need keys and `files` keys sort the same way (by name), so a listed name's entry is read by
/// walking a `files` cursor alongside the need keys (forwards for changes, backwards for
/// deletions) rather than by one lookup per needed name.
pub(crate) struct RowSource {
    files: ReadOnlyTable<&'static [u8], &'static [u8]>,
    changes: Option<redb::Range<'static, &'static [u8], ()>>,
    /// In scan mode, the folder's `files` rows in name order, read in place of `changes`.
    scan: Option<redb::Range<'static, &'static [u8], &'static [u8]>>,
    deletes: Option<std::iter::Rev<redb::Range<'static, &'static [u8], ()>>>,
    /// `files` cursor for the changes (ascending); `None` until first used or after a seek.
    forward: Option<redb::Range<'static, &'static [u8], &'static [u8]>>,
    /// `files` cursor for the deletions (descending).
    backward: Option<std::iter::Rev<redb::Range<'static, &'static [u8], &'static [u8]>>>,
    /// The row the active cursor is on.
    current: Option<FileRow>,
    /// Scratch buffer for `files` keys.
    key: Vec<u8>,
    fidx: u32,
}

impl RowSource {
    pub(crate) fn new(
        files: ReadOnlyTable<&'static [u8], &'static [u8]>,
        changes: Option<redb::Range<'static, &'static [u8], ()>>,
        scan: Option<redb::Range<'static, &'static [u8], &'static [u8]>>,
        deletes: Option<std::iter::Rev<redb::Range<'static, &'static [u8], ()>>>,
        fidx: u32,
    ) -> RowSource {
        RowSource {
            files,
            changes,
            scan,
            deletes,
            forward: None,
            backward: None,
            current: None,
            key: Vec::new(),
            fidx,
        }
    }

    /// Appends up to `max` rows to `batch`; `false` once every row has been read.
    fn fill(&mut self, batch: &mut Batch, max: usize) -> Result<bool, IndexError> {
        for _ in 0..max {
            if !self.next_row(batch)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Appends the next row to `batch`; `false` if there is none.
    fn next_row(&mut self, batch: &mut Batch) -> Result<bool, IndexError> {
        if let Some(scan) = self.scan.as_mut() {
            if let Some(row) = scan.next() {
                let (k, v) = row?;
                let name = k.value().get(4..).ok_or(DecodeError::Truncated {
                    what: "file key",
                    offset: 4,
                })?;
                batch.push(name, v.value(), RowKind::Scanned);
                return Ok(true);
            }
            self.scan = None;
        }
        let (item, ascending) = match self.changes.as_mut().and_then(|r| r.next()) {
            Some(i) => (i, true),
            None => {
                if self.changes.take().is_some() {
                    self.forward = None;
                    self.current = None;
                }
                match self.deletes.as_mut().and_then(|r| r.next()) {
                    Some(i) => (i, false),
                    None => return Ok(false),
                }
            }
        };
        let (need_key, _) = item?;
        let name = need_key.value().get(5..).ok_or(DecodeError::Truncated {
            what: "need key",
            offset: 5,
        })?;
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.extend_from_slice(&self.fidx.to_be_bytes());
        key.extend_from_slice(name);
        let found = self.seek_file(&key, ascending);
        self.key = key;
        match (&self.current, found?) {
            (Some((_, v)), true) => {
                let kind = if ascending {
                    RowKind::Change
                } else {
                    RowKind::Delete
                };
                batch.push(name, v.value(), kind);
                Ok(true)
            }
            _ => Err(DecodeError::OutOfRange {
                what: "need index",
                field: "missing entry",
                value: 0,
            }
            .into()),
        }
    }

    /// Moves the `files` cursor of the current direction to `key`; `true` if found.
    fn seek_file(&mut self, key: &[u8], ascending: bool) -> Result<bool, IndexError> {
        for attempt in 0..2 {
            let step = if ascending {
                if self.forward.is_none() || attempt == 1 {
                    self.current = None;
                    let (_, end) = folder_range(self.fidx);
                    self.forward = Some(self.files.range::<&[u8]>(key..end.as_slice())?);
                }
                match self.forward.as_mut() {
                    Some(rows) => step_to(rows, &mut self.current, key, true)?,
                    None => Step::Missing,
                }
            } else {
                if self.backward.is_none() || attempt == 1 {
                    self.current = None;
                    let (start, _) = folder_range(self.fidx);
                    self.backward = Some(self.files.range::<&[u8]>(start.as_slice()..=key)?.rev());
                }
                match self.backward.as_mut() {
                    Some(rows) => step_to(rows, &mut self.current, key, false)?,
                    None => Step::Missing,
                }
            };
            match step {
                Step::Found => return Ok(true),
                Step::Missing => return Ok(false),
                Step::Seek => {}
            }
        }
        Ok(false)
    }
}

/// Reads rows on its own thread until they run out or the iterator is dropped.
fn read_rows(
    mut rows: RowSource,
    out: SyncSender<Result<Batch, IndexError>>,
    recycled: Receiver<Batch>,
) {
    loop {
        let mut batch = recycled.try_recv().unwrap_or_default();
        batch.clear();
        match rows.fill(&mut batch, THREAD_BATCH) {
            Ok(more) => {
                if !batch.rows.is_empty() && out.send(Ok(batch)).is_err() {
                    return; // the iterator was dropped
                }
                if !more {
                    return;
                }
            }
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        }
    }
}

/// The reading thread and the channels to it.
struct Reader {
    /// Filled batches; `None` once dropped (which stops the thread).
    filled: Option<Receiver<Result<Batch, IndexError>>>,
    /// Used batches going back to be refilled.
    recycle: SyncSender<Batch>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Closing the channel fails the thread's next send; it then returns, releasing its
        // tables (and with them the read snapshot) before the iterator's drop completes.
        self.filled = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Where the iterator's rows come from.
enum Feed {
    /// Read on the caller's thread.
    Inline(Box<RowSource>),
    /// Read by a thread of their own.
    Thread(Reader),
    /// Every row has been handed out (or an error ended the walk).
    Done,
}

/// The need set, from [`FolderReader::need`](crate::FolderReader::need): every needed change
/// in name order (directories before their contents), then every needed deletion in reverse
/// name order (contents before their directory). An error ends the walk.
pub struct NeedIter {
    feed: Feed,
    batch: Batch,
    /// Rows read so far on the caller's thread.
    inline_rows: usize,
    /// Rows after which the redb half moves to a thread ([`THREAD_AFTER`]; tests vary it).
    thread_after: usize,
    rule: DeleteRule,
    devices: Vec<DeviceId>,
}

impl std::fmt::Debug for NeedIter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NeedIter")
            .field("threaded", &matches!(self.feed, Feed::Thread(_)))
            .finish_non_exhaustive()
    }
}

impl NeedIter {
    pub(crate) fn new(rows: RowSource, rule: DeleteRule, devices: Vec<DeviceId>) -> NeedIter {
        NeedIter {
            feed: Feed::Inline(Box::new(rows)),
            batch: Batch::default(),
            inline_rows: 0,
            thread_after: THREAD_AFTER,
            rule,
            devices,
        }
    }

    /// Replaces the used batch with the next one; `false` when there are no more rows.
    fn refill(&mut self) -> Result<bool, IndexError> {
        match &mut self.feed {
            Feed::Done => Ok(false),
            Feed::Inline(rows) => {
                self.batch.clear();
                let more = rows.fill(&mut self.batch, INLINE_BATCH)?;
                self.inline_rows += self.batch.rows.len();
                if !more {
                    self.feed = Feed::Done;
                } else if self.inline_rows >= self.thread_after {
                    self.start_thread();
                }
                Ok(!self.batch.rows.is_empty())
            }
            Feed::Thread(reader) => {
                let used = std::mem::take(&mut self.batch);
                let _ = reader.recycle.try_send(used);
                let next = match reader.filled.as_ref() {
                    Some(rx) => rx.recv(),
                    None => return Ok(false),
                };
                match next {
                    Ok(Ok(batch)) => {
                        self.batch = batch;
                        Ok(true)
                    }
                    Ok(Err(e)) => Err(e),
                    // The thread has read every row and gone.
                    Err(_) => {
                        self.feed = Feed::Done;
                        Ok(false)
                    }
                }
            }
        }
    }

    /// Moves the redb half to a reading thread. If no thread can be started the walk simply
    /// stays on the caller's thread.
    fn start_thread(&mut self) {
        let Feed::Inline(rows) = std::mem::replace(&mut self.feed, Feed::Done) else {
            return;
        };
        let (give_tx, give_rx) = sync_channel::<Box<RowSource>>(1);
        let (filled_tx, filled_rx) = sync_channel(CHANNEL_BATCHES);
        let (recycle_tx, recycle_rx) = sync_channel(CHANNEL_BATCHES + 1);
        let spawned = std::thread::Builder::new()
            .name("syncd-index-need".into())
            .spawn(move || {
                if let Ok(rows) = give_rx.recv() {
                    read_rows(*rows, filled_tx, recycle_rx);
                }
            });
        self.feed = match spawned {
            Ok(thread) => match give_tx.send(rows) {
                Ok(()) => Feed::Thread(Reader {
                    filled: Some(filled_rx),
                    recycle: recycle_tx,
                    thread: Some(thread),
                }),
                Err(back) => {
                    let _ = thread.join();
                    Feed::Inline(back.0)
                }
            },
            Err(_) => {
                // The closure (and the channel's receiving end) went with the failed spawn;
                // the rows are still ours.
                Feed::Inline(rows)
            }
        };
    }
}

/// Decodes one raw row and decides what the local device needs of it.
fn judge(
    devices: &[DeviceId],
    rule: DeleteRule,
    name: &[u8],
    value: &[u8],
    kind: RowKind,
) -> Result<Option<Needed>, IndexError> {
    let name = RelPath::from_bytes(name).map_err(DecodeError::from)?;
    let entry = Entry::decode_owned(name, value)?;
    if kind == RowKind::Scanned {
        return match local_need(&entry, devices, rule)? {
            Some((gi, NEED_CHANGE)) => needed(devices, entry, gi).map(Some),
            _ => Ok(None),
        };
    }
    let eval = evaluate(&entry, devices, rule)?;
    let gi = eval
        .global
        .filter(|i| *i < entry.records.len())
        .ok_or(DecodeError::OutOfRange {
            what: "need index",
            field: "no global",
            value: 0,
        })?;
    needed(devices, entry, gi).map(Some)
}

/// The need entry of `entry`, whose global record is at `gi`.
fn needed(devices: &[DeviceId], mut entry: Entry, gi: usize) -> Result<Needed, IndexError> {
    let gd = entry.records.get(gi).map_or(0, |(d, _)| *d);
    let mut available = Vec::with_capacity(entry.records.len());
    if let Some((_, g)) = entry.records.get(gi) {
        for (i, (d, r)) in entry.records.iter().enumerate() {
            if *d != LOCAL
                && !r.invalid
                && (i == gi || r.version.compare(&g.version) == VersionOrdering::Equal)
                && let Some(id) = devices.get(*d as usize)
            {
                available.push(*id);
            }
        }
    }
    let global = entry.set(gd, None);
    let local = if gd == LOCAL {
        None
    } else {
        entry.set(LOCAL, None)
    };
    let global = global.ok_or(DecodeError::OutOfRange {
        what: "need index",
        field: "no global",
        value: 0,
    })?;
    Ok(Needed {
        global,
        local,
        available,
    })
}

impl Iterator for NeedIter {
    type Item = Result<Needed, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((name, value, kind)) = self.batch.pop() {
                match judge(&self.devices, self.rule, name, value, kind) {
                    Ok(Some(n)) => return Some(Ok(n)),
                    Ok(None) => continue,
                    Err(e) => {
                        self.feed = Feed::Done;
                        self.batch.clear();
                        return Some(Err(e));
                    }
                }
            }
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.feed = Feed::Done;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{NEED, need_key};
    use crate::{FileRecord, Index, RemoteBatch};
    use syncd_conflict::VersionVector;
    use syncd_types::{FileKind, FolderId};

    const ME: DeviceId = DeviceId::from_bytes([1; 32]);
    const PEER: DeviceId = DeviceId::from_bytes([2; 32]);
    /// More rows than a walk reads on the caller's thread before it starts one.
    const NAMES: usize = 3 * THREAD_AFTER / 2;

    fn record(name: &str, version: u64) -> FileRecord {
        let mut f = FileRecord::new(RelPath::new(name).unwrap(), FileKind::File);
        f.size = 10;
        f.sequence = version;
        f.version = VersionVector::new().updated(PEER.short(), version);
        f
    }

    fn name(i: usize) -> String {
        format!("d{:02}/f{i:05}", i % 37)
    }

    /// A folder whose peer has `NAMES` files; the local device already has those with
    /// `i % have_every == 0`, and the peer deleted every seventh of those.
    fn index_with_needs(have_every: usize) -> (tempfile::TempDir, Index, FolderId) {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(dir.path().join("i.redb"), ME).unwrap();
        let folder = FolderId::new("f").unwrap();
        let mut w = index.write(&folder).unwrap();
        w.apply_local((0..NAMES).step_by(have_every).map(|i| record(&name(i), 1)))
            .unwrap();
        let remote = (0..NAMES).map(|i| {
            let mut r = record(&name(i), 1);
            if i % have_every == 0 && i % 7 == 0 {
                r.deleted = true;
                r.size = 0;
                r.version = r.version.updated(PEER.short(), 2);
            }
            r
        });
        w.apply_remote(PEER, RemoteBatch::Full, remote).unwrap();
        w.commit().unwrap();
        (dir, index, folder)
    }

    /// The need set's names and whether each is a deletion, walked with the reading thread
    /// starting after `thread_after` rows; and whether it started.
    fn walk(index: &Index, folder: &FolderId, thread_after: usize) -> (Vec<(String, bool)>, bool) {
        let r = index.read(folder).unwrap();
        let mut it = r.need().unwrap();
        it.thread_after = thread_after;
        let mut out = Vec::new();
        let mut threaded = false;
        while let Some(n) = it.next() {
            let n = n.unwrap();
            threaded |= matches!(it.feed, Feed::Thread(_));
            out.push((n.global.name.as_str().to_owned(), n.global.deleted));
        }
        (out, threaded)
    }

    #[test]
    fn a_walk_read_on_a_thread_yields_the_same_need_set_as_one_on_the_callers_thread() {
        // have_every 1: everything is had, only deletions are needed (listed need rows);
        // 3: two thirds needed (scan mode); 50: almost everything needed.
        for have_every in [1, 3, 50] {
            let (_dir, index, folder) = index_with_needs(have_every);
            let (inline, threaded_inline) = walk(&index, &folder, usize::MAX);
            let (threaded, was_threaded) = walk(&index, &folder, 1);
            assert!(!threaded_inline && was_threaded, "have_every {have_every}");
            assert_eq!(inline, threaded, "have_every {have_every}");
            let deletions = (0..NAMES)
                .filter(|i| i % have_every == 0 && i % 7 == 0)
                .count();
            let changes = NAMES - NAMES.div_ceil(have_every);
            assert_eq!(inline.len(), changes + deletions, "have_every {have_every}");
            // Changes in name order, then deletions in reverse name order.
            let (ch, del): (Vec<_>, Vec<_>) = inline.iter().partition(|(_, d)| !d);
            assert!(inline[..ch.len()].iter().all(|(_, d)| !d));
            assert!(ch.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(del.windows(2).all(|w| w[0].0 > w[1].0));
        }
    }

    #[test]
    fn dropping_a_walk_part_way_stops_its_thread_and_releases_the_snapshot() {
        let (_dir, mut index, folder) = index_with_needs(50);
        let r = index.read(&folder).unwrap();
        let mut it = r.need().unwrap();
        it.thread_after = 1;
        for _ in 0..10 {
            it.next().unwrap().unwrap();
        }
        assert!(matches!(it.feed, Feed::Thread(_)));
        drop(r);
        // The thread still holds the snapshot: compaction must wait for it.
        assert!(index.compact().is_err());
        drop(it);
        assert!(index.compact().is_ok());
    }

    #[test]
    fn a_need_row_without_an_entry_ends_a_threaded_walk_with_an_error() {
        let (_dir, index, folder) = index_with_needs(1);
        // A listed deletion whose `files` row is missing: a corrupt index.
        let txn = index.db.begin_write().unwrap();
        {
            use redb::{ReadableTable, ReadableTableMetadata};
            let folders = txn.open_table(crate::keys::FOLDERS).unwrap();
            let row = folders.get(folder.as_str()).unwrap().unwrap();
            let (fidx, _, _) = crate::store::decode_folder(row.value()).unwrap();
            let mut need = txn.open_table(NEED).unwrap();
            assert!(
                need.len().unwrap() > 100,
                "the folder must list its deletions"
            );
            let key = need_key(fidx, crate::keys::NEED_DELETE, b"d00/f00000zz");
            need.insert(key.as_slice(), ()).unwrap();
        }
        txn.commit().unwrap();
        let r = index.read(&folder).unwrap();
        let mut it = r.need().unwrap();
        it.thread_after = 1;
        let mut results = Vec::new();
        let mut read_by_thread = false;
        loop {
            let threaded = matches!(it.feed, Feed::Thread(_));
            match it.next() {
                None => break,
                Some(n) => {
                    read_by_thread |= n.is_err() && threaded;
                    results.push(n);
                }
            }
        }
        assert!(
            read_by_thread,
            "the broken row came from the reading thread"
        );
        assert!(matches!(it.feed, Feed::Done));
        let first_err = results.iter().position(|n| n.is_err());
        assert_eq!(
            first_err,
            Some(results.len() - 1),
            "one error, and it is last"
        );
        assert!(results.len() > 1, "rows before the broken one were yielded");
    }
}

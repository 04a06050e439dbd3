//! Serving a peer's Request: only folders shared with it, only files the index says we have,
//! read inside the root and never through a symlink, hash re-verified unless the file is still
//! as scanned (see [`ScannedStat`]), answered on at most [`SERVE_THREADS`] threads per peer.
//!
//! A Request that breaks the protocol (a non-canonical name, a size outside 0..=32 MiB, a
//! negative offset, no hash: spec bep-wire §7.8) closes the connection. A well-formed Request
//! we will not serve (a folder not shared with the peer, an ignored or internal file) gets an
//! error code and a log line naming the device; the connection stays.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use syncd_proto::{Message, bep};
use syncd_types::{FolderId, RelPath};
use tokio::sync::OwnedSemaphorePermit;

use crate::engine::{Shared, lock};
use crate::fsutil;
use crate::peer::Peer;

/// A Request we answer with an error code; `why` is logged when the peer asked for something
/// it must not have (not for a file that is merely missing).
struct Refusal {
    code: bep::ErrorCode,
    why: Option<&'static str>,
}

impl From<bep::ErrorCode> for Refusal {
    fn from(code: bep::ErrorCode) -> Self {
        Refusal { code, why: None }
    }
}

fn refuse(code: bep::ErrorCode, why: &'static str) -> Refusal {
    Refusal {
        code,
        why: Some(why),
    }
}

/// Serving threads per peer at most. Requests are answered on these blocking threads, each
/// taking request after request from the peer's queue: a run of small-file requests costs no
/// task, thread hand-off or index snapshot per request. Each thread reads one request's data
/// at a time, which bounds the data being read for a peer to this many requests' worth.
const SERVE_THREADS: usize = 2;
/// A serving thread takes a fresh index snapshot when its snapshot is this old.
const SNAPSHOT_AGE: std::time::Duration = std::time::Duration::from_millis(20);

/// The Requests of one peer waiting for a serving thread.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    inner: std::sync::Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    waiting: VecDeque<(bep::Request, OwnedSemaphorePermit)>,
    threads: usize,
    stopped: bool,
}

impl Queue {
    /// Drops the waiting requests (the connection is gone); the threads end after the request
    /// each is answering.
    pub(crate) fn stop(&self) {
        let mut q = lock(&self.inner);
        q.stopped = true;
        q.waiting.clear();
    }
}

/// Takes one Request of `peer` for answering (always with a Response; errors are codes, never
/// panics), or closes the connection when the Request breaks the protocol. `slot` is held
/// until the Response is queued.
pub(crate) fn admit(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    req: bep::Request,
    slot: OwnedSemaphorePermit,
) {
    if let Err(e) = syncd_proto::validate_request(&req) {
        tracing::warn!(device = %peer.device, folder = ?req.folder, error = %e,
            "peer protocol violation: invalid request; closing");
        peer.sender.close(&format!("invalid request: {e}"));
        return;
    }
    let mut q = lock(&peer.serve_queue.inner);
    if q.stopped {
        return;
    }
    q.waiting.push_back((req, slot));
    // One thread drains a stream of requests; a second joins when they pile up.
    let wanted = q.threads == 0 || (q.threads < SERVE_THREADS && q.waiting.len() > 4 * q.threads);
    if wanted {
        q.threads += 1;
        drop(q);
        let (shared, peer) = (shared.clone(), peer.clone());
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || work(&shared, &peer, &handle));
    }
}

/// A serving thread: answers the peer's waiting requests until none is left.
fn work(shared: &Arc<Shared>, peer: &Arc<Peer>, handle: &tokio::runtime::Handle) {
    let mut snapshot: Option<Snapshot> = None;
    let mut counted = Counted {
        queue: &peer.serve_queue,
        left: false,
    };
    loop {
        let (req, slot) = {
            let mut q = lock(&peer.serve_queue.inner);
            match q.waiting.pop_front() {
                Some(next) => next,
                None => {
                    // Under the lock that saw the queue empty, so a request admitted after
                    // this starts a thread of its own.
                    q.threads -= 1;
                    counted.left = true;
                    return;
                }
            }
        };
        let (data, code) = match answer(shared, peer, &req, &mut snapshot) {
            Ok(data) => (data, bep::ErrorCode::NoError),
            Err(r) => {
                if let Some(why) = r.why {
                    tracing::warn!(device = %peer.device, folder = ?req.folder, name = ?req.name,
                        "refused request: {why}");
                }
                (Vec::new(), r.code)
            }
        };
        let response = Message::Response(bep::Response {
            id: req.id,
            data,
            code: code as i32,
        });
        // Waits while the outgoing queue is full; fails once the connection has ended.
        let _ = handle.block_on(peer.sender.send(response));
        drop(slot);
    }
}

/// A serving thread's place in [`QueueState::threads`], given back if the thread ends other
/// than by finding the queue empty (a panic), so that serving never stops for good.
struct Counted<'a> {
    queue: &'a Queue,
    left: bool,
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        if !self.left {
            let mut q = lock(&self.queue.inner);
            q.threads = q.threads.saturating_sub(1);
        }
    }
}

/// A serving thread's read snapshot of one folder, reused for the requests of the next
/// [`SNAPSHOT_AGE`].
struct Snapshot {
    folder: FolderId,
    reader: syncd_index::FolderReader,
    taken: std::time::Instant,
    /// Parent directories checked while this snapshot is used (at most SNAPSHOT_AGE), so
    /// that requests for files of one directory check its parents once.
    dirs: fsutil::VerifiedDirs,
}

fn answer(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    req: &bep::Request,
    snapshot: &mut Option<Snapshot>,
) -> Result<Vec<u8>, Refusal> {
    use bep::ErrorCode::{Generic, InvalidFile, NoSuchFile};
    let unshared = || refuse(Generic, "folder not shared with the device");
    let folder = FolderId::new(req.folder.clone()).map_err(|_| unshared())?;
    let ctx = shared
        .folder_ctx(&folder)
        .filter(|c| c.shared_with(peer.device))
        .ok_or_else(unshared)?;
    let cfg = ctx.config();
    if cfg.paused {
        return Err(Generic.into());
    }
    let name = RelPath::from_wire(&req.name).map_err(|_| refuse(InvalidFile, "invalid name"))?;
    if syncd_types::names::is_internal(&name) {
        return Err(refuse(InvalidFile, "internal file"));
    }
    if ctx
        .ignores()
        .is_some_and(|i| i.matched(name.as_str(), false).is_ignored())
    {
        return Err(refuse(InvalidFile, "ignored file"));
    }
    let size = usize::try_from(req.size).map_err(|_| Generic)?;
    let offset = u64::try_from(req.offset).map_err(|_| Generic)?;
    // A snapshot kept from an earlier request may predate the record asked for (the scan
    // committed it, the index sender announced it and the peer asked, all within
    // SNAPSHOT_AGE): a name such a snapshot does not show as a file of ours is looked up
    // again in a fresh one.
    let mut reuse = snapshot
        .as_ref()
        .is_some_and(|s| s.folder == folder && s.taken.elapsed() < SNAPSHOT_AGE);
    let scanned = loop {
        if !reuse {
            *snapshot = None;
            let reader = shared.index.read(&folder).map_err(|_| Generic)?;
            *snapshot = Some(Snapshot {
                folder: folder.clone(),
                reader,
                taken: std::time::Instant::now(),
                dirs: fsutil::VerifiedDirs::default(),
            });
        }
        let reader = &snapshot.as_ref().ok_or(Generic)?.reader;
        match servable_stat(shared, peer, reader, &folder, &name) {
            Err(NoSuchFile | InvalidFile) if reuse => reuse = false,
            found => break found?,
        }
    };
    let dirs = &snapshot.as_ref().ok_or(Generic)?.dirs;
    let (path, _) = fsutil::safe_path_in(&cfg.path, &name, dirs).map_err(|_| NoSuchFile)?;
    let (data, meta) =
        fsutil::read_at_nofollow_meta(&path, offset, size).map_err(|_| NoSuchFile)?;
    // The file as the scan hashed it (same size, mtime to the nanosecond and inode, the
    // scanner's own "unchanged" test, looked at after the read) holds the hashed bytes; only a
    // file changed since is hashed again here. The requester verifies every piece in any case.
    // A snapshot up to SNAPSHOT_AGE old changes nothing here: a file changed since it was
    // taken no longer shows the recorded stat.
    // A file the last block verification found damaged looks unchanged but is not: its
    // blocks are always hashed, and a damaged one is refused (and counted), never sent.
    let damaged = crate::engine::lock(&ctx.damaged).contains_key(&name);
    if (damaged || !scanned.matches(&meta))
        && Sha256::digest(&data).as_slice() != req.hash.as_slice()
    {
        if damaged {
            ctx.damaged_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        return Err(NoSuchFile.into());
    }
    Ok(data)
}

/// The recorded stat of `name` if `reader` shows it as a live, valid regular file of ours
/// (remembered in the peer's [`Servable`] set).
fn servable_stat(
    shared: &Shared,
    peer: &Peer,
    reader: &syncd_index::FolderReader,
    folder: &FolderId,
    name: &RelPath,
) -> Result<ScannedStat, bep::ErrorCode> {
    use bep::ErrorCode::{Generic, InvalidFile, NoSuchFile};
    let stamp = (reader.local_index_id(), reader.local_sequence());
    if let Some(s) = lock(&peer.servable).get(folder, stamp, name) {
        return Ok(s);
    }
    let rec = reader
        .get(shared.device_id, name)
        .map_err(|_| Generic)?
        .ok_or(NoSuchFile)?;
    if rec.invalid {
        return Err(InvalidFile);
    }
    if rec.deleted || !rec.kind.is_file() {
        return Err(NoSuchFile);
    }
    let s = ScannedStat::of(&rec);
    lock(&peer.servable).insert(folder, stamp, name.clone(), s);
    Ok(s)
}

/// What the index recorded of a file when the scanner hashed it: if the file on disk still
/// shows these, its bytes are the hashed ones (the scanner skips such a file as unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScannedStat {
    size: u64,
    modified_s: i64,
    modified_ns: i32,
    /// 0 when unknown (a record from an older index): then the bytes are always re-hashed.
    inode: u64,
}

impl ScannedStat {
    fn of(r: &syncd_index::FileRecord) -> ScannedStat {
        ScannedStat {
            size: r.size,
            modified_s: r.modified_s,
            modified_ns: r.modified_ns,
            inode: r.inode,
        }
    }

    fn matches(&self, m: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.inode != 0
            && m.ino() == self.inode
            && fsutil::same_size_and_mtime(m, self.size, self.modified_s, self.modified_ns)
    }
}

/// Names the index recently showed as live, valid regular files of ours, for one peer: a
/// large file is requested piece by piece, and decoding its record (block and chunk lists)
/// for every piece cost more than reading the piece. An entry holds only while the folder's
/// local index ID and sequence are what they were when it was checked: any change to a local
/// record (a scan, a pull, a deletion) bumps the sequence and empties the set. Each name keeps
/// the stat its record was hashed with; the data is checked against the requested hash on
/// every Request unless the file still shows that stat after the read.
#[derive(Debug, Default)]
pub(crate) struct Servable {
    folder: Option<FolderId>,
    /// (local index ID, local sequence) the names were checked at.
    stamp: (u64, u64),
    names: HashMap<RelPath, ScannedStat>,
}

/// Names remembered at most; past this the set starts over.
const SERVABLE_MAX: usize = 4096;

impl Servable {
    /// The recorded stat of `name` if it was checked at this folder and stamp.
    fn get(&self, folder: &FolderId, stamp: (u64, u64), name: &RelPath) -> Option<ScannedStat> {
        if self.folder.as_ref() == Some(folder) && self.stamp == stamp {
            self.names.get(name).copied()
        } else {
            None
        }
    }

    fn insert(&mut self, folder: &FolderId, stamp: (u64, u64), name: RelPath, s: ScannedStat) {
        // A serving thread with an older snapshot than the set's does not start it over (two
        // threads would take turns emptying it).
        if self.folder.as_ref() == Some(folder) && self.stamp.0 == stamp.0 && stamp.1 < self.stamp.1
        {
            return;
        }
        if self.folder.as_ref() != Some(folder)
            || self.stamp != stamp
            || self.names.len() >= SERVABLE_MAX
        {
            self.folder = Some(folder.clone());
            self.stamp = stamp;
            self.names.clear();
        }
        self.names.insert(name, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str) -> FolderId {
        FolderId::new(id.to_owned()).unwrap()
    }

    fn name(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    const STAT: ScannedStat = ScannedStat {
        size: 1,
        modified_s: 2,
        modified_ns: 3,
        inode: 4,
    };

    #[test]
    fn a_servable_name_holds_only_for_its_folder_and_local_stamp() {
        let mut s = Servable::default();
        s.insert(&folder("f"), (7, 100), name("a/b"), STAT);
        // (folder, stamp, name, still servable without a new index check)
        let cases = [
            ("f", (7, 100), "a/b", true),
            ("f", (7, 101), "a/b", false), // a local change bumped the sequence
            ("f", (8, 100), "a/b", false), // a new local index ID
            ("g", (7, 100), "a/b", false), // another folder
            ("f", (7, 100), "a/c", false), // never checked
        ];
        for (f, stamp, n, want) in cases {
            assert_eq!(
                s.get(&folder(f), stamp, &name(n)).is_some(),
                want,
                "{f} {stamp:?} {n}"
            );
        }
    }

    #[test]
    fn a_name_checked_at_a_newer_stamp_forgets_the_older_names() {
        let mut s = Servable::default();
        s.insert(&folder("f"), (7, 100), name("old"), STAT);
        s.insert(&folder("f"), (7, 101), name("new"), STAT);
        assert_eq!(s.get(&folder("f"), (7, 101), &name("new")), Some(STAT));
        assert_eq!(s.get(&folder("f"), (7, 101), &name("old")), None);
    }

    #[test]
    fn a_name_checked_at_an_older_stamp_leaves_the_newer_set_alone() {
        let mut s = Servable::default();
        s.insert(&folder("f"), (7, 101), name("new"), STAT);
        // A serving thread whose snapshot predates the set's.
        s.insert(&folder("f"), (7, 100), name("old"), STAT);
        assert_eq!(s.get(&folder("f"), (7, 101), &name("new")), Some(STAT));
        assert_eq!(s.get(&folder("f"), (7, 100), &name("old")), None);
        assert_eq!(s.get(&folder("f"), (7, 101), &name("old")), None);
    }

    #[test]
    fn the_servable_set_starts_over_when_full() {
        let mut s = Servable::default();
        for i in 0..SERVABLE_MAX {
            s.insert(&folder("f"), (1, 1), name(&format!("n{i}")), STAT);
        }
        s.insert(&folder("f"), (1, 1), name("one-more"), STAT);
        assert_eq!(s.names.len(), 1);
        assert!(s.get(&folder("f"), (1, 1), &name("one-more")).is_some());
    }

    fn stat_of(m: &std::fs::Metadata) -> ScannedStat {
        use std::os::unix::fs::MetadataExt;
        ScannedStat {
            size: m.size(),
            modified_s: m.mtime(),
            modified_ns: i32::try_from(m.mtime_nsec()).unwrap(),
            inode: m.ino(),
        }
    }

    /// A served file is re-hashed unless it still shows what the scan recorded: any change of
    /// size, mtime (to the nanosecond) or inode, or an unknown inode, means hash it again.
    #[test]
    fn only_a_file_with_its_scanned_stat_skips_the_serving_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        let (data, meta) = fsutil::read_at_nofollow_meta(&p, 2, 5).unwrap();
        assert_eq!(data, b"23456");
        let scanned = stat_of(&meta);
        assert!(scanned.matches(&meta));

        let other_mtime = ScannedStat {
            modified_ns: (scanned.modified_ns + 1) % 1_000_000_000,
            ..scanned
        };
        let unknown_inode = ScannedStat {
            inode: 0,
            ..scanned
        };
        let other_size = ScannedStat {
            size: scanned.size + 1,
            ..scanned
        };
        for (what, s) in [
            ("mtime", other_mtime),
            ("unknown inode", unknown_inode),
            ("size", other_size),
        ] {
            assert!(!s.matches(&meta), "{what}");
        }

        // Replaced by a rename: same size, same mtime, another inode.
        let q = dir.path().join("g");
        std::fs::write(&q, b"abcdefghij").unwrap();
        let f = std::fs::File::open(&q).unwrap();
        f.set_modified(meta.modified().unwrap()).unwrap();
        drop(f);
        std::fs::rename(&q, &p).unwrap();
        let (_, now) = fsutil::read_at_nofollow_meta(&p, 0, 10).unwrap();
        assert_eq!(
            (now.len(), now.modified().unwrap()),
            (10, meta.modified().unwrap())
        );
        assert!(!scanned.matches(&now));
    }
}

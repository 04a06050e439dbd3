//! The scanner: walk (or re-check given paths), compare with the local index records, hash what
//! changed on the rayon pool, and commit one batch per scan.
//!
//! A long full scan (a first scan of a large tree) does not hold everything back until its
//! end: while it walks and hashes it commits what is ready in chunks of [`CHUNK_RECORDS`]
//! records, or every [`CHUNK_WAIT`], so the folder can announce them and a peer can start
//! pulling while the scan goes on (as Syncthing does). A chunk holds new and changed
//! directories, symlinks and hashed files in walk order, so a directory's record is never
//! committed after a file below it; everything else (deletions, entries below an ignored
//! directory that is walked for un-ignored children, files that changed while hashed, what
//! was not ready in time) goes into the final batch as before, so deletions still get the
//! highest sequence numbers.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rayon::prelude::*;
use syncd_conflict::VersionVector;
use syncd_ignore::IgnoreSet;
use syncd_index::{FileRecord, Index, IndexError};
use syncd_types::{DeviceId, FileKind, FolderId, PathError, RelPath, ShortId, names};

use crate::hash::{self, HashError, Hashed};
use crate::stat::Stat;

/// Scanner settings.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Hashing threads (0 = [`default_hashers`]).
    pub hashers: usize,
    /// Ignore permission changes (`ignorePerms`): records carry `no_permissions`.
    pub ignore_perms: bool,
    /// Rename a name not spelt in NFC on disk to its NFC spelling (Syncthing's
    /// `autoNormalize`, default true). Names are recorded and sent in NFC; outside macOS the
    /// filesystem only finds a file under the spelling it was created with. Off, such a name is
    /// reported ([`EntryError::NotNormalized`]) and not synced.
    pub auto_normalize: bool,
    /// A receive-only folder: every local change (one not equivalent to the global version)
    /// is recorded as a receive-only change ([`FileRecord::receive_only`], and invalid), so it
    /// stays local.
    pub receive_only: bool,
    /// Names differing only in case are different files (Syncthing's `caseSensitiveFS`,
    /// default false). Off, a path given to [`Scanner::scan_paths`] that exists on disk only
    /// under another case (a case-insensitive filesystem finds it) is taken as missing: what
    /// is recorded is always the spelling the directory lists.
    pub case_sensitive_fs: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            hashers: 0,
            ignore_perms: false,
            auto_normalize: true,
            receive_only: false,
            case_sensitive_fs: false,
        }
    }
}

/// Hashing threads when [`ScanConfig::hashers`] is 0: twice the CPUs. The hashing threads
/// also read the files, and a cold read of a small file blocks its thread on the disk; with
/// one thread per CPU the CPUs sat idle for those waits (a cold first scan of 1 GB in
/// 20,000 files took 2.45 s with 2 threads and 1.8 s with 4 on 2 cores, CPU time unchanged).
pub fn default_hashers() -> usize {
    2 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Monotonic counters, readable at any time (progress bars, REST, tests).
#[derive(Debug, Default)]
pub struct Counters {
    dirs_opened: AtomicU64,
    files_read: AtomicU64,
    bytes_hashed: AtomicU64,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    scans: AtomicU64,
    batches: AtomicU64,
}

/// A copy of [`Counters`] at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Directories opened for listing.
    pub dirs_opened: u64,
    /// Files opened for hashing.
    pub files_read: u64,
    /// Bytes read and hashed.
    pub bytes_hashed: u64,
    /// Files queued for hashing, over all scans (progress denominator).
    pub files_total: u64,
    /// Bytes queued for hashing, over all scans (progress denominator).
    pub bytes_total: u64,
    /// Files whose hashing finished (successfully or not).
    pub files_done: u64,
    /// Bytes of queued files consumed so far.
    pub bytes_done: u64,
    /// Scans run.
    pub scans: u64,
    /// Non-empty batches committed to the index.
    pub batches: u64,
}

impl Counters {
    /// The current values.
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            dirs_opened: g(&self.dirs_opened),
            files_read: g(&self.files_read),
            bytes_hashed: g(&self.bytes_hashed),
            files_total: g(&self.files_total),
            bytes_total: g(&self.bytes_total),
            files_done: g(&self.files_done),
            bytes_done: g(&self.bytes_done),
            scans: g(&self.scans),
            batches: g(&self.batches),
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// Why one entry was not recorded; the scan goes on without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The name cannot be synced (invalid UTF-8, a name the wire rejects): never recorded,
    /// since peers disconnect on such names.
    #[error("{path}: name cannot be synced: {reason}")]
    UnsyncableName {
        /// The path as found on disk (lossy UTF-8).
        path: String,
        /// Why.
        reason: PathError,
    },
    /// The name on disk is not spelt in NFC and `auto_normalize` is off: not synced (the
    /// name is shown in NFC).
    #[error("{path}: the name on disk is not in Unicode NFC; turn autoNormalize on or rename it")]
    NotNormalized {
        /// The folder-relative path (NFC).
        path: String,
    },
    /// The name on disk is not spelt in NFC and another file has the NFC spelling: the two
    /// are one name on the wire, so this one is not synced until one of them is renamed.
    #[error(
        "{path}: two files on disk have this name in different Unicode normalisations; rename one"
    )]
    NormalizationConflict {
        /// The folder-relative path (NFC).
        path: String,
    },
    /// Listing, stat-ing or reading failed.
    #[error("{path}: {message}")]
    Io {
        /// The folder-relative path (lossy).
        path: String,
        /// The OS error text.
        message: String,
    },
}

impl EntryError {
    /// The folder-relative path of the entry.
    pub fn path(&self) -> &str {
        match self {
            EntryError::UnsyncableName { path, .. }
            | EntryError::NotNormalized { path }
            | EntryError::NormalizationConflict { path }
            | EntryError::Io { path, .. } => path,
        }
    }
}

/// Why a whole scan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The folder root is missing or not a directory.
    #[error("folder root {path} is missing or not a directory")]
    RootMissing {
        /// The root.
        path: PathBuf,
    },
    /// `.stignore` has errors: the folder must not be scanned with half its rules.
    #[error("ignore patterns have errors: {0}")]
    Ignore(#[from] syncd_ignore::ParseErrors),
    /// Reading `.stignore` failed.
    #[error("reading .stignore: {0}")]
    IgnoreIo(std::io::Error),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The hashing pool could not be built.
    #[error("building the hashing pool: {0}")]
    Pool(String),
}

/// What one scan did.
#[derive(Debug, Default, Clone)]
pub struct ScanReport {
    /// Records committed (new, changed, deleted, newly ignored).
    pub committed: usize,
    /// Entries skipped with an error (also kept in [`Scanner::errors`]).
    pub errors: Vec<EntryError>,
    /// Files that changed while being hashed: not announced, to be rescanned later.
    pub retry: Vec<RelPath>,
}

/// One entry found on disk.
#[derive(Clone)]
struct Found {
    path: RelPath,
    stat: Stat,
    kind: FileKind,
    target: Vec<u8>,
}

/// The fields of a live local record that decide whether an entry on disk is unchanged.
struct Known {
    kind: FileKind,
    size: u64,
    modified_s: i64,
    modified_ns: i32,
    permissions: u32,
    symlink_target: Vec<u8>,
    inode: u64,
    /// The record's block size when it has several blocks (the block size hysteresis).
    block_size: Option<u32>,
}

impl Known {
    fn of(r: &FileRecord) -> Known {
        Known {
            kind: r.kind,
            size: r.size,
            modified_s: r.modified_s,
            modified_ns: r.modified_ns,
            permissions: r.permissions,
            symlink_target: r.symlink_target.clone(),
            inode: r.inode,
            block_size: old_block_size(r),
        }
    }
}

/// What a walk hands each entry it finds: the entry, and whether it may be committed before
/// the scan ends.
type Sink<'s> = dyn FnMut(&Found, bool) + 's;

#[derive(Default)]
struct Walk<'s> {
    found: Vec<Found>,
    errors: Vec<EntryError>,
    /// Directories that could not be listed: records below them are not deleted.
    failed: Vec<RelPath>,
    /// Sees every entry as it is found (a full scan starts hashing a file at once), with
    /// whether it may be committed before the scan ends (not below an ignored directory).
    sink: Option<&'s mut Sink<'s>>,
    /// How many ignored directories (walked for un-ignored children) the walk is inside.
    under_ignored: u32,
    /// Records a full scan committed in chunks while it walked and hashed.
    chunked: usize,
}

/// A full scan hands files to the pool in batches of this many files or bytes.
const BATCH_FILES: usize = 32;
const BATCH_BYTES: u64 = 4 << 20;

/// A hash started while walking: the file's result, by path.
type Early = HashMap<RelPath, Result<Hashed, HashError>>;

/// Files one hash result into the scan's hashed records, its retry list or its errors.
fn take_hashed(
    h: Result<FileRecord, (RelPath, HashError)>,
    files: &mut Vec<FileRecord>,
    report: &mut ScanReport,
    errors: &mut Vec<EntryError>,
) {
    match h {
        Ok(r) => files.push(r),
        Err((path, HashError::ChangedWhileHashing { .. })) => report.retry.push(path),
        Err((path, HashError::NotAFile { .. })) => report.retry.push(path),
        Err((path, e)) => errors.push(EntryError::Io {
            path: path.to_string(),
            message: e.to_string(),
        }),
    }
}

/// A long full scan commits a chunk once this many records are ready...
pub(crate) const CHUNK_RECORDS: usize = 1000;
/// ...or once this long has passed since the last commit and some are ready.
pub(crate) const CHUNK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// An entry ready for a chunk commit: found on disk (and hashed, for a file).
type Ready = (Found, Option<Hashed>);

/// A hashing result sent back to the walking thread: the file, its result, and whether it
/// may go into a chunk.
type HashDone = (Found, Result<Hashed, HashError>, bool);

/// The chunk commits of one full scan.
struct Chunks {
    ready: Vec<Ready>,
    last: std::time::Instant,
    /// A chunk commit failed: the rest of the scan commits once, at its end.
    off: bool,
    /// Records committed in chunks so far.
    committed: usize,
}

/// Scans one folder into the local records of an index.
pub struct Scanner {
    root: PathBuf,
    folder: FolderId,
    index: Arc<Index>,
    local: DeviceId,
    me: ShortId,
    config: ScanConfig,
    ignore: RwLock<Arc<IgnoreSet>>,
    counters: Counters,
    pool: rayon::ThreadPool,
    errors: Mutex<Vec<EntryError>>,
    logged: Mutex<HashSet<String>>,
    /// Serialises scans of this folder (the watcher and an API call may race).
    running: Mutex<()>,
    /// Called after each batch committed to the index (see [`Scanner::set_commit_hook`]).
    on_commit: Mutex<Option<CommitHook>>,
}

/// A function the scanner calls, on the committing thread, after each batch it committed to
/// the index: how an owner learns of the watcher's commits without polling. It must be
/// quick and must not call back into the scanner.
pub type CommitHook = Arc<dyn Fn() + Send + Sync>;

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("root", &self.root)
            .field("folder", &self.folder)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Scanner {
    /// A scanner for the folder `folder` rooted at `root`, recording into `index` as the
    /// index's local device. Loads `.stignore` (see [`Scanner::reload_ignores`]).
    pub fn new(
        root: impl Into<PathBuf>,
        folder: FolderId,
        index: Arc<Index>,
        config: ScanConfig,
    ) -> Result<Scanner, ScanError> {
        let threads = if config.hashers == 0 {
            default_hashers()
        } else {
            config.hashers
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("syncd-hash-{i}"))
            .build()
            .map_err(|e| ScanError::Pool(e.to_string()))?;
        let local = index.local_device();
        let s = Scanner {
            root: root.into(),
            folder,
            index,
            local,
            me: local.short(),
            config,
            ignore: RwLock::new(Arc::new(IgnoreSet::empty())),
            counters: Counters::default(),
            pool,
            errors: Mutex::new(Vec::new()),
            logged: Mutex::new(HashSet::new()),
            running: Mutex::new(()),
            on_commit: Mutex::new(None),
        };
        s.reload_ignores()?;
        Ok(s)
    }

    /// Sets the function called after each committed batch (replacing any earlier one).
    pub fn set_commit_hook(&self, hook: CommitHook) {
        *self.on_commit.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// Counts a committed batch and tells the commit hook.
    fn committed(&self) {
        bump(&self.counters.batches, 1);
        let hook = self
            .on_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// The folder root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder ID.
    pub fn folder(&self) -> &FolderId {
        &self.folder
    }

    /// The counters.
    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    /// The current ignore set.
    pub fn ignores(&self) -> Arc<IgnoreSet> {
        match self.ignore.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The entry errors of the latest scan that found any (the folder's error list).
    pub fn errors(&self) -> Vec<EntryError> {
        match self.errors.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-reads `<root>/.stignore` (and its includes). Returns true when the rules changed.
    pub fn reload_ignores(&self) -> Result<bool, ScanError> {
        let root = self.root.clone();
        let text = match std::fs::read_to_string(root.join(names::IGNORE_FILE)) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(ScanError::IgnoreIo(e)),
        };
        let loader = move |p: &str| std::fs::read_to_string(root.join(p));
        let set = IgnoreSet::parse(&text, &loader, syncd_ignore::Options::for_this_platform())?;
        let mut g = match self.ignore.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let changed = g.hash() != set.hash();
        *g = Arc::new(set);
        Ok(changed)
    }

    /// Scans the whole folder.
    pub fn scan(&self) -> Result<ScanReport, ScanError> {
        self.scan_paths(&[])
    }

    /// Scans the given paths (each with everything below it); an empty slice scans the whole
    /// folder. Commits at most one batch.
    pub fn scan_paths(&self, paths: &[RelPath]) -> Result<ScanReport, ScanError> {
        let _one_at_a_time = match self.running.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        bump(&self.counters.scans, 1);
        match std::fs::symlink_metadata(&self.root) {
            Ok(m) if m.is_dir() => {}
            _ => {
                return Err(ScanError::RootMissing {
                    path: self.root.clone(),
                });
            }
        }
        let ignore = self.ignores();
        let targets = self.normalise_targets(paths);
        let mut walk = Walk::default();
        // A full scan hashes changed files while it is still walking (both cores busy from
        // the first changed file on), against the live local records read before the walk.
        let mut early: Early = HashMap::new();
        let mut known: HashMap<RelPath, Known> = HashMap::new();
        let full = targets.iter().any(Option::is_none);
        if full {
            known = self.live_known(&[None])?;
            walk = self.walk_and_hash(&ignore, &known, &mut early);
        }
        // Targets whose missing records may lie anywhere below them (one pass over the local
        // records), and targets that are single names (one lookup each).
        let mut prefixes: Vec<Option<RelPath>> = Vec::new();
        let mut singles: Vec<RelPath> = Vec::new();
        let case = (!self.config.case_sensitive_fs)
            .then(|| crate::case::CaseResolver::new(self.root.clone()));
        for t in &targets {
            match t {
                // Walked above.
                None => prefixes.push(None),
                // Found only under another case: that spelling is recorded when it is
                // scanned, this one is gone.
                Some(rel) if other_case_only(case.as_ref(), rel) => singles.push(rel.clone()),
                Some(rel) => match self.walk_target(&ignore, &mut walk, rel) {
                    Some(FileKind::Directory) => prefixes.push(Some(rel.clone())),
                    Some(_) => {}
                    None => singles.push(rel.clone()),
                },
            }
        }

        let reader = self.index.read(&self.folder)?;
        let mut batch = Vec::new();
        let mut to_hash = Vec::new();

        // A missing single name that the index knows as a live directory: everything below
        // it may be gone too.
        let mut gone_singles = Vec::new();
        for rel in singles {
            match reader.get(self.local, &rel)? {
                Some(rec) if rec.kind.is_dir() && !rec.deleted => prefixes.push(Some(rel)),
                Some(rec) if rec.is_live_local() => gone_singles.push(rec),
                _ => {}
            }
        }

        // The live local records under the directory targets, read in one pass over the
        // local records (not one lookup per entry found), kept as the few fields the
        // equivalence shortcut needs. What is left after matching the walk is gone.
        if !full && !prefixes.is_empty() {
            known = self.live_known_in(&reader, &prefixes)?;
        }

        // Hashed files go straight into `files` and the rest into `batch`, joined (entries
        // other than files first, as always) without a second copy of every record: on a
        // 100,000-file first scan such a copy is tens of MB at the scan's peak.
        let mut report = ScanReport::default();
        let mut files = Vec::new();
        for f in walk.found {
            // A live record that is unchanged is skipped without reading the full record.
            if let Some(k) = known.remove(&f.path)
                && self.unchanged(&k, &f)
            {
                continue;
            }
            let old = reader.get(self.local, &f.path)?;
            if self.still_current(old.as_ref(), &f) {
                continue;
            }
            if let Some(r) = early.remove(&f.path) {
                let h = match r {
                    Ok(h) => Ok(self.record(&f, old.as_ref(), Some(h))),
                    Err(e) => Err((f.path, e)),
                };
                take_hashed(h, &mut files, &mut report, &mut walk.errors);
                continue;
            }
            if f.kind.is_file() {
                to_hash.push((f, old));
            } else {
                batch.push(self.record(&f, old.as_ref(), None));
            }
        }

        // Every walked entry has taken its early hash; what is left (if anything) is unused.
        drop(early);

        // Deletions and newly ignored entries: live local records under a target not seen
        // on disk, unless below a directory that could not be listed. They go last in the
        // batch (so get the highest sequence numbers), as in Syncthing: a peer that applies
        // our index in several messages sees a moved file's new name before the old one's
        // deletion, so it can copy the data it already has instead of fetching it again.
        let mut gone = Vec::new();
        for rec in gone_singles {
            gone.push(self.gone(&ignore, rec));
        }
        let mut missing: Vec<RelPath> = known
            .into_keys()
            .filter(|name| !walk.failed.iter().any(|d| name.starts_with(d)))
            .collect();
        missing.sort();
        for name in missing {
            // Still live now (a full scan's `known` predates the walk: the puller may have
            // recorded a deletion meanwhile, which needs no second one).
            if let Some(rec) = reader.get(self.local, &name)?
                && rec.is_live_local()
            {
                gone.push(self.gone(&ignore, rec));
            }
        }
        drop(reader);

        for h in self.hash_all(to_hash) {
            take_hashed(h, &mut files, &mut report, &mut walk.errors);
        }
        files.splice(0..0, std::mem::take(&mut batch));
        let mut batch = files;
        batch.append(&mut gone);

        crate::adopt::adopt_global(&self.index, &self.folder, &mut batch, &self.config)?;
        if !batch.is_empty() {
            let mut w = self.index.write(&self.folder)?;
            // Deletions were decided on a snapshot taken before the walk ended: the puller
            // may have recorded some since (it removed the files this scan found missing).
            // Writers take turns, so what a reader sees now stays true until this commit.
            batch = crate::adopt::drop_recorded(&self.index, &self.folder, self.local, batch)?;
            report.committed = batch.len();
            if !batch.is_empty() {
                w.apply_local(batch)?;
                w.commit()?;
                self.committed();
            }
        }
        report.committed += walk.chunked;
        self.note_errors(&walk.errors);
        report.errors = walk.errors;
        Ok(report)
    }

    fn note_errors(&self, errors: &[EntryError]) {
        if let Ok(mut logged) = self.logged.lock() {
            for e in errors {
                if logged.insert(e.to_string()) {
                    tracing::warn!(folder = %self.folder, error = %e, "scan error");
                }
            }
        }
        if let Ok(mut g) = self.errors.lock() {
            g.clear();
            g.extend(errors.iter().cloned());
        }
    }

    /// The live local records below `prefixes` (`None`: all), from a fresh snapshot.
    fn live_known(
        &self,
        prefixes: &[Option<RelPath>],
    ) -> Result<HashMap<RelPath, Known>, ScanError> {
        let reader = self.index.read(&self.folder)?;
        self.live_known_in(&reader, prefixes)
    }

    fn live_known_in(
        &self,
        reader: &syncd_index::FolderReader,
        prefixes: &[Option<RelPath>],
    ) -> Result<HashMap<RelPath, Known>, ScanError> {
        let mut known = HashMap::new();
        let mut keep = |rec: syncd_index::FileRecord| {
            if rec.is_live_local() {
                let k = Known::of(&rec);
                known.insert(rec.name, k);
            }
        };
        if prefixes.iter().any(Option::is_none) {
            for rec in reader.local_since(0)? {
                keep(rec?);
            }
        } else {
            // One range of names per directory (a directory below another one listed is
            // read twice; the map keeps one copy).
            for dir in prefixes.iter().flatten() {
                for rec in reader.local_under(dir)? {
                    keep(rec?);
                }
            }
        }
        Ok(known)
    }

    /// Walks the whole folder on this thread while the pool hashes every file that differs
    /// from `known` as soon as it is found; commits what is ready in chunks (see the module
    /// doc) while the walk and the hashing go on. The results not committed land in `early`.
    fn walk_and_hash(
        &self,
        ignore: &IgnoreSet,
        known: &HashMap<RelPath, Known>,
        early: &mut Early,
    ) -> Walk<'static> {
        let (tx, rx) = std::sync::mpsc::channel::<HashDone>();
        let mut chunks = Chunks {
            ready: Vec::new(),
            last: std::time::Instant::now(),
            off: false,
            committed: 0,
        };
        let (found, errors, failed) = self.pool.in_place_scope(|scope| {
            // Files go to the pool in batches (one job per batch, not per file: fewer
            // wake-ups of idle workers), the first ones early so hashing starts at once.
            let spawn = |batch: Vec<(Found, u32, bool)>| {
                let tx = tx.clone();
                scope.spawn(move |_| {
                    for (f, bs, chunkable) in batch {
                        let r = self.hash_one(&f, bs);
                        let _ = tx.send((f, r, chunkable));
                    }
                });
            };
            let mut pending: Vec<(Found, u32, bool)> = Vec::new();
            let mut pending_bytes = 0u64;
            let mut sink = |f: &Found, chunkable: bool| {
                let k = known.get(&f.path);
                if k.is_some_and(|k| self.unchanged(k, f)) {
                    return;
                }
                if f.kind.is_file() {
                    // Not live in the index (new, deleted or invalid): the table's block size.
                    let bs = Self::block_size_for(f.stat.size, k.and_then(|k| k.block_size));
                    bump(&self.counters.files_total, 1);
                    bump(&self.counters.bytes_total, f.stat.size);
                    pending_bytes += f.stat.size;
                    pending.push((f.clone(), bs, chunkable));
                    if pending.len() >= BATCH_FILES || pending_bytes >= BATCH_BYTES {
                        spawn(std::mem::take(&mut pending));
                        pending_bytes = 0;
                    }
                } else if chunkable && !chunks.off {
                    chunks.ready.push((f.clone(), None));
                }
                while let Ok(done) = rx.try_recv() {
                    self.file_hashed(done, &mut chunks, early);
                }
                self.maybe_commit_chunk(&mut chunks);
            };
            let mut walk = Walk {
                sink: Some(&mut sink),
                ..Walk::default()
            };
            self.walk_dir(ignore, &mut walk, &self.root, None);
            let out = (walk.found, walk.errors, walk.failed);
            if !pending.is_empty() {
                spawn(pending);
            }
            // The walk is over; the pool may still be hashing. Keep committing chunks until
            // every job has reported (each holds a sender; ours goes now).
            drop(tx);
            loop {
                let wait = CHUNK_WAIT.saturating_sub(chunks.last.elapsed());
                match rx.recv_timeout(wait.max(std::time::Duration::from_millis(10))) {
                    Ok(done) => self.file_hashed(done, &mut chunks, early),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                }
                self.maybe_commit_chunk(&mut chunks);
            }
            out
        });
        // What is still waiting goes into the scan's final batch.
        for (f, h) in chunks.ready {
            if let Some(h) = h {
                early.insert(f.path, Ok(h));
            }
        }
        Walk {
            found,
            errors,
            failed,
            sink: None,
            under_ignored: 0,
            chunked: chunks.committed,
        }
    }

    /// Files one hashing result: into the next chunk, or (an error, or not chunkable, or
    /// chunks off) into `early` for the final batch.
    fn file_hashed(&self, (f, r, chunkable): HashDone, chunks: &mut Chunks, early: &mut Early) {
        match r {
            Ok(h) if chunkable && !chunks.off => chunks.ready.push((f, Some(h))),
            r => {
                early.insert(f.path, r);
            }
        }
    }

    /// Commits the ready entries when there are [`CHUNK_RECORDS`] of them or [`CHUNK_WAIT`]
    /// has passed since the last commit. Each is compared with its local record read now
    /// (as the final batch does): an entry that became equal to it is left out. A failed
    /// commit turns chunking off for the rest of the scan; the entries it held are not in
    /// `early`, so the final batch hashes them again.
    fn maybe_commit_chunk(&self, chunks: &mut Chunks) {
        if chunks.off || chunks.ready.is_empty() {
            return;
        }
        if chunks.ready.len() < CHUNK_RECORDS && chunks.last.elapsed() < CHUNK_WAIT {
            return;
        }
        let ready = std::mem::take(&mut chunks.ready);
        chunks.last = std::time::Instant::now();
        match self.commit_chunk(ready) {
            Ok(n) => chunks.committed += n,
            Err(e) => {
                tracing::warn!(folder = %self.folder, error = %e,
                "committing part of a scan failed; the rest commits at its end");
                chunks.off = true;
            }
        }
    }

    fn commit_chunk(&self, ready: Vec<Ready>) -> Result<usize, ScanError> {
        let reader = self.index.read(&self.folder)?;
        let mut batch = Vec::with_capacity(ready.len());
        for (f, h) in ready {
            let old = reader.get(self.local, &f.path)?;
            if self.still_current(old.as_ref(), &f) {
                continue;
            }
            batch.push(self.record(&f, old.as_ref(), h));
        }
        drop(reader);
        crate::adopt::adopt_global(&self.index, &self.folder, &mut batch, &self.config)?;
        if batch.is_empty() {
            return Ok(0);
        }
        let mut w = self.index.write(&self.folder)?;
        let batch = crate::adopt::drop_recorded(&self.index, &self.folder, self.local, batch)?;
        let n = batch.len();
        if n > 0 {
            w.apply_local(batch)?;
            w.commit()?;
            self.committed();
        }
        Ok(n)
    }

    /// Sorted, de-duplicated, children of listed paths dropped; each widened to its highest
    /// ancestor that is not a real directory (so a symlinked parent is never traversed).
    /// `None` stands for the whole folder.
    fn normalise_targets(&self, paths: &[RelPath]) -> Vec<Option<RelPath>> {
        if paths.is_empty() {
            return vec![None];
        }
        // Whether each ancestor is a real directory, looked up once per call: the paths of
        // one rescan (a watcher batch) mostly share their parents.
        let mut dirs: HashMap<PathBuf, bool> = HashMap::new();
        let mut widened: Vec<RelPath> = paths.iter().map(|p| self.widen(p, &mut dirs)).collect();
        widened.sort();
        widened.dedup();
        let mut out: Vec<RelPath> = Vec::new();
        for p in widened {
            if out.last().is_some_and(|l| p.starts_with(l)) {
                continue;
            }
            out.push(p);
        }
        out.into_iter().map(Some).collect()
    }

    fn widen(&self, p: &RelPath, dirs: &mut HashMap<PathBuf, bool>) -> RelPath {
        let mut cur: Option<RelPath> = None;
        let mut abs = self.root.clone();
        let depth = p.depth();
        // The components as local names spell them (NFD where they are).
        let local = p.to_path_under(Path::new(""));
        for (i, (c, on_disk)) in p.components().zip(local.components()).enumerate() {
            abs.push(on_disk);
            let next = match &cur {
                None => RelPath::new(c),
                Some(d) => d.join(c),
            };
            let Ok(next) = next else { return p.clone() };
            if i + 1 < depth {
                let is_dir = match dirs.get(&abs) {
                    Some(&d) => d,
                    None => {
                        let d = std::fs::symlink_metadata(&abs).is_ok_and(|m| m.is_dir());
                        dirs.insert(abs.clone(), d);
                        d
                    }
                };
                if !is_dir {
                    return next;
                }
            }
            cur = Some(next);
        }
        cur.unwrap_or_else(|| p.clone())
    }

    fn is_ignored(&self, ignore: &IgnoreSet, p: &RelPath, is_dir: bool) -> bool {
        names::is_internal(p) || ignore.matched(p.as_str(), is_dir).is_ignored()
    }

    /// Records `rel` (and everything below it). Returns its kind, or `None` when it is
    /// missing, special or ignored.
    fn walk_target(
        &self,
        ignore: &IgnoreSet,
        walk: &mut Walk<'_>,
        rel: &RelPath,
    ) -> Option<FileKind> {
        let abs = rel.to_path_under(&self.root);
        let stat = Stat::lstat(&abs).ok()?;
        let kind = stat.kind?;
        if self.is_ignored(ignore, rel, kind.is_dir()) {
            return None;
        }
        let target = if kind.is_symlink() {
            match std::fs::read_link(&abs) {
                Ok(t) => t.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    walk.errors.push(io_error(rel.as_str(), &e));
                    walk.failed.push(rel.clone());
                    return Some(kind);
                }
            }
        } else {
            Vec::new()
        };
        walk.found.push(Found {
            path: rel.clone(),
            stat,
            kind,
            target,
        });
        if kind.is_dir() {
            self.walk_dir(ignore, walk, &abs, Some(rel));
        }
        Some(kind)
    }

    /// Renames `abs`, whose name is not spelt as local names are (NFC; NFD where
    /// [`syncd_types::local_names_nfd`]), to that spelling of `path` (see
    /// [`ScanConfig::auto_normalize`]); the new absolute path, or why the entry is skipped.
    /// Another file under the right spelling is a conflict: neither is touched.
    fn normalize_on_disk(&self, abs: &Path, path: &RelPath) -> Result<PathBuf, EntryError> {
        if !self.config.auto_normalize {
            return Err(EntryError::NotNormalized {
                path: path.to_string(),
            });
        }
        let to = path.to_path_under(&self.root);
        if std::fs::symlink_metadata(&to).is_ok() && !same_file(abs, &to) {
            return Err(EntryError::NormalizationConflict {
                path: path.to_string(),
            });
        }
        let is_dir = std::fs::symlink_metadata(abs).is_ok_and(|m| m.is_dir());
        if is_dir {
            // A directory cannot be hard-linked; rename refuses a non-empty target.
            std::fs::rename(abs, &to).map_err(|e| io_error(path.as_str(), &e))?;
        } else {
            // A link fails if the NFC name appeared meanwhile, where a rename would replace it.
            match std::fs::hard_link(abs, &to) {
                Ok(()) => {
                    std::fs::remove_file(abs).map_err(|e| io_error(path.as_str(), &e))?;
                }
                // A filesystem that finds either spelling (APFS, ZFS with normalisation)
                // says the other spelling exists when it is the same file: it is renamed
                // through a temporary name.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && same_file(abs, &to) => {
                    let temp = abs.with_file_name(syncd_types::names::temp_name(path.file_name()));
                    std::fs::rename(abs, &temp)
                        .and_then(|()| std::fs::rename(&temp, &to))
                        .map_err(|e| io_error(path.as_str(), &e))?;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(EntryError::NormalizationConflict {
                        path: path.to_string(),
                    });
                }
                Err(e) => return Err(io_error(path.as_str(), &e)),
            }
        }
        tracing::info!(
            folder = %self.folder,
            path = %path,
            "renamed a name not spelt in Unicode NFC on disk to its NFC spelling (autoNormalize)"
        );
        Ok(to)
    }

    /// Lists one directory and descends. Returns whether anything below was recorded.
    fn walk_dir(
        &self,
        ignore: &IgnoreSet,
        walk: &mut Walk<'_>,
        abs: &Path,
        rel: Option<&RelPath>,
    ) -> bool {
        let rd = match std::fs::read_dir(abs) {
            Ok(rd) => rd,
            Err(e) => {
                let p = rel.map_or(String::new(), |r| r.to_string());
                walk.errors.push(io_error(&p, &e));
                if let Some(r) = rel {
                    walk.failed.push(r.clone());
                }
                return false;
            }
        };
        bump(&self.counters.dirs_opened, 1);
        let mut any = false;
        for entry in rd {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    walk.errors
                        .push(io_error(&rel.map_or(String::new(), |r| r.to_string()), &e));
                    if let Some(r) = rel {
                        walk.failed.push(r.clone());
                    }
                    continue;
                }
            };
            let name = entry.file_name();
            let mut bytes = Vec::new();
            if let Some(r) = rel {
                bytes.extend_from_slice(r.as_str().as_bytes());
                bytes.push(b'/');
            }
            bytes.extend_from_slice(name.as_bytes());
            let path = match RelPath::from_bytes(&bytes) {
                Ok(p) => p,
                Err(reason) => {
                    walk.errors.push(EntryError::UnsyncableName {
                        path: String::from_utf8_lossy(&bytes).into_owned(),
                        reason,
                    });
                    continue;
                }
            };
            if names::is_internal(&path) {
                continue;
            }
            let mut child_abs = entry.path();
            let mut renamed = false;
            let spelt_locally =
                std::str::from_utf8(name.as_bytes()).is_ok_and(syncd_types::is_local_spelling);
            if !spelt_locally {
                match self.normalize_on_disk(&child_abs, &path) {
                    Ok(to) => {
                        child_abs = to;
                        renamed = true;
                    }
                    Err(e) => {
                        walk.errors.push(e);
                        continue;
                    }
                }
            }
            let meta = if renamed {
                std::fs::symlink_metadata(&child_abs)
            } else {
                entry.metadata()
            };
            let stat = match meta {
                Ok(m) => Stat::from_metadata(&m),
                Err(e) => {
                    walk.errors.push(io_error(path.as_str(), &e));
                    walk.failed.push(path);
                    continue;
                }
            };
            let Some(kind) = stat.kind else { continue };
            let m = ignore.matched(path.as_str(), kind.is_dir());
            if m.is_ignored() {
                if kind.is_dir() && !m.can_skip_dir() {
                    let idx = walk.found.len();
                    walk.under_ignored += 1;
                    let kept = self.walk_dir(ignore, walk, &child_abs, Some(&path));
                    walk.under_ignored -= 1;
                    if kept {
                        // An un-ignored child keeps its ignored parent directory.
                        walk.found.insert(
                            idx,
                            Found {
                                path,
                                stat,
                                kind,
                                target: Vec::new(),
                            },
                        );
                        any = true;
                    }
                }
                continue;
            }
            let target = if kind.is_symlink() {
                match std::fs::read_link(&child_abs) {
                    Ok(t) => t.as_os_str().as_bytes().to_vec(),
                    Err(e) => {
                        walk.errors.push(io_error(path.as_str(), &e));
                        walk.failed.push(path);
                        continue;
                    }
                }
            } else {
                Vec::new()
            };
            any = true;
            let is_dir = kind.is_dir();
            let p = path.clone();
            walk.found.push(Found {
                path,
                stat,
                kind,
                target,
            });
            let chunkable = walk.under_ignored == 0;
            if let (Some(sink), Some(f)) = (walk.sink.as_deref_mut(), walk.found.last()) {
                sink(f, chunkable);
            }
            if is_dir {
                self.walk_dir(ignore, walk, &child_abs, Some(&p));
            }
        }
        any
    }

    /// The local record is live (not deleted, not invalid) and matches what the walk found:
    /// nothing to record for this entry.
    fn still_current(&self, old: Option<&FileRecord>, f: &Found) -> bool {
        old.is_some_and(|o| o.is_live_local() && self.unchanged(&Known::of(o), f))
    }

    /// Syncthing's equivalence shortcut (spec §4.2), for a live (not deleted, not invalid)
    /// record: same kind, size, mtime (ns), permissions and symlink target, and for a file
    /// the same inode (a file replaced by another of equal size and mtime, e.g. by a rename,
    /// is changed). An inode of 0 on either side is unknown (a record from an older index),
    /// never a change, so upgrading does not rehash every file.
    fn unchanged(&self, old: &Known, f: &Found) -> bool {
        if old.kind != f.kind {
            return false;
        }
        let perms_same = self.config.ignore_perms || old.permissions == f.stat.permissions;
        match f.kind {
            FileKind::File => {
                old.size == f.stat.size
                    && old.modified_s == f.stat.mtime_s
                    && old.modified_ns == f.stat.mtime_ns
                    && perms_same
                    && (old.inode == 0 || f.stat.inode == 0 || old.inode == f.stat.inode)
            }
            FileKind::Directory => perms_same,
            FileKind::Symlink => old.symlink_target == f.target,
        }
    }

    fn version(&self, old: Option<&FileRecord>) -> VersionVector {
        let base = old.map_or_else(VersionVector::new, |o| o.version.clone());
        base.updated(self.me, now_secs())
    }

    fn record(&self, f: &Found, old: Option<&FileRecord>, hashed: Option<Hashed>) -> FileRecord {
        let mut r = FileRecord::new(f.path.clone(), f.kind);
        r.version = self.version(old);
        r.modified_by = self.me;
        r.previous_blocks_hash = old.map(|o| o.blocks_hash.clone()).unwrap_or_default();
        match f.kind {
            FileKind::Symlink => {
                r.no_permissions = true;
                r.symlink_target = f.target.clone();
            }
            FileKind::Directory | FileKind::File => {
                r.modified_s = f.stat.mtime_s;
                r.modified_ns = f.stat.mtime_ns;
                r.permissions = f.stat.permissions;
                r.no_permissions = self.config.ignore_perms;
            }
        }
        if let Some(h) = hashed {
            r.inode = h.stat.inode;
            r.size = h.stat.size;
            r.blocks = h.blocks.iter().map(to_index_block).collect();
            r.chunks = h
                .chunks
                .iter()
                .map(|c| syncd_index::Block {
                    offset: c.offset,
                    size: c.size,
                    hash: c.hash,
                })
                .collect();
            r.blocks_hash = h.blocks_hash.to_vec();
        }
        r
    }

    /// The record for a local entry no longer on disk: invalid when it is now ignored, else
    /// a deletion.
    fn gone(&self, ignore: &IgnoreSet, rec: FileRecord) -> FileRecord {
        if self.is_ignored(ignore, &rec.name, rec.kind.is_dir()) {
            let mut r = rec;
            r.invalid = true;
            r.receive_only = false;
            r
        } else {
            self.deletion(rec)
        }
    }

    fn deletion(&self, old: FileRecord) -> FileRecord {
        let mut r = FileRecord::new(old.name.clone(), old.kind);
        r.version = self.version(Some(&old));
        r.modified_by = self.me;
        r.deleted = true;
        r.modified_s = i64::try_from(now_secs()).unwrap_or(i64::MAX);
        r.previous_blocks_hash = old.blocks_hash;
        r
    }

    /// The block size for a file: the table's, unless the old record's size is within a
    /// factor of two of it (Syncthing's hysteresis, spec §4.2).
    fn block_size_for(size: u64, old_bs: Option<u32>) -> u32 {
        let want = crate::params::block_size(size);
        match old_bs {
            Some(bs) if bs.is_power_of_two() && bs >= want / 2 && bs <= want.saturating_mul(2) => {
                bs
            }
            _ => want,
        }
    }

    /// Hashes one found file with block size `bs`, counting it.
    fn hash_one(&self, f: &Found, bs: u32) -> Result<Hashed, HashError> {
        let abs = f.path.to_path_under(&self.root);
        bump(&self.counters.files_read, 1);
        let r = hash::hash_file(&abs, &f.stat, bs, &mut |n| {
            bump(&self.counters.bytes_hashed, n);
            bump(&self.counters.bytes_done, n);
        });
        bump(&self.counters.files_done, 1);
        r
    }

    fn hash_all(
        &self,
        items: Vec<(Found, Option<FileRecord>)>,
    ) -> Vec<Result<FileRecord, (RelPath, HashError)>> {
        if items.is_empty() {
            return Vec::new();
        }
        bump(&self.counters.files_total, items.len() as u64);
        bump(
            &self.counters.bytes_total,
            items.iter().map(|(f, _)| f.stat.size).sum(),
        );
        self.pool.install(|| {
            items
                .into_par_iter()
                .map(|(f, old)| {
                    let bs =
                        Self::block_size_for(f.stat.size, old.as_ref().and_then(old_block_size));
                    match self.hash_one(&f, bs) {
                        Ok(h) => Ok(self.record(&f, old.as_ref(), Some(h))),
                        Err(e) => Err((f.path, e)),
                    }
                })
                .collect()
        })
    }
}

/// A file record's block size when it has several blocks (one block says nothing).
/// Whether `a` and `b` name the same file (one inode on one device).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Whether `rel` exists on disk only under another case (never when `case` is `None`: a
/// case-sensitive folder). An error reading the disk is left to the walk to report.
fn other_case_only(case: Option<&crate::case::CaseResolver>, rel: &RelPath) -> bool {
    case.is_some_and(|c| matches!(c.check(rel), Ok(crate::case::OnDisk::Conflict(_))))
}

fn old_block_size(r: &FileRecord) -> Option<u32> {
    if r.kind.is_file() && r.blocks.len() > 1 {
        r.blocks.first().map(|b| b.size)
    } else {
        None
    }
}

fn to_index_block(b: &hash::Block) -> syncd_index::Block {
    syncd_index::Block {
        offset: b.offset,
        size: b.size,
        hash: b.hash,
    }
}

fn io_error(path: &str, e: &std::io::Error) -> EntryError {
    EntryError::Io {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

//! The puller: brings the local folder to the global state, one pass over the need set.
//!
//! The pass is plan → schedule → fetch/install. [`plan`] decides, without I/O, what happens to
//! each needed item and in which order: directories and symlinks as the need set streams them
//! (parents before children), files concurrently, deletions last in the index's deepest-first
//! order. Every block comes from local data first (the old version of the same file, then any
//! file via the block map), then from the peers that hold the global version (both behind
//! [`source`]), with a bound on bytes in flight; every block is SHA-256-verified before it is
//! written. A file is written to `.syncthing.<name>.tmp` beside its target (reusing the
//! verified pieces a failed attempt or a killed process left there, see [`resume`]) and given
//! permissions and mtime (small files in groups, a few blocking calls per group, see
//! [`small`]); every filesystem call runs on a blocking thread. Finished files are then made
//! durable, renamed into place, their directories synced and their records
//! committed in batches (see [`batch`]). A new directory is made under a temp name with its
//! final permissions and renamed into place, so no scan ever sees it with umask permissions.
//! Before replacing or deleting a local item the puller checks it against the index: a changed
//! item is rescanned, never overwritten. Conflict copies carry the local time and are pruned
//! to the folder's `maxConflicts` (see [`conflicts`]).
//!
//! Who does what: [`plan`] (pure) sorts the need set into phases and takes the conflict
//! decisions; this module reads the need set, runs the phases and drives the files: which
//! starts next is [`schedule`]'s (pure), this loop adds the large files announced mid-pass
//! and the durability batches; [`install`] makes the changes that are not file data
//! (directories, symlinks, deletions, conflict copies); [`local`] and [`resume`] prepare a
//! file's temp file from local data, [`fetch`] fills in the rest from [`source::Remote`] and
//! [`batch`] makes finished files durable, puts them in place and commits them.

mod batch;
mod case;
pub(crate) mod conflicts;
mod direct;
mod fetch;
mod install;
mod local;
mod plan;
mod resume;
mod schedule;
mod small;
pub(crate) mod source;
mod stale;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use syncd_conflict::{LocalFate, MaxConflicts, Resolution};
use syncd_index::{FileRecord, Needed};
use syncd_types::{DeviceId, FileKind, FolderId, RelPath};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::engine::Shared;
use crate::event::{Event, ItemAction};
use crate::folder::FolderCtx;
use crate::fsutil;
use crate::status::FileError;

/// Need-set items handled per pass (the rest come in the next pass). Each item is ~0.5 kB
/// and a pass holds all of its items at once (one Vec, sized once: 8,001 slots, ~3.9 MB),
/// a large part of the receiver's peak RSS in a 100,000-file initial sync (issue 12).
/// Smaller costs CPU: while most of a folder is needed the need set is found by walking the
/// folder's records from the start, so every pass re-reads the names earlier passes brought
/// in sync (4,000 measured slower than 10,000).
const MAX_ITEMS_PER_PASS: usize = 8_000;
/// A durability batch is flushed once it holds this many files (see [`batch_files`])...
const BATCH_FILES: usize = 512;
/// ...or this many bytes of new data...
const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// ...or its first file has waited this long, or no other file is being pulled.
const BATCH_WAIT: Duration = Duration::from_millis(100);

/// Files per durability batch: [`BATCH_FILES`], fewer when the open-file limit is low. Each
/// staged file stays open until its batch is flushed, and a full batch may wait while the
/// previous one flushes, so up to two batches of files are open at once; they may use at
/// most half of the soft `RLIMIT_NOFILE`. Fewer, larger batches mean fewer index commits
/// (a 100,000-file initial sync: 128 files per batch measured ~10 % more CPU than 512).
fn batch_files() -> usize {
    static FILES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *FILES.get_or_init(|| {
        let soft = usize::try_from(crate::limits::open_files_soft()).unwrap_or(usize::MAX);
        (soft / 4).clamp(16, BATCH_FILES)
    })
}

/// What one pull pass did.
#[derive(Debug, Default)]
pub(crate) struct PullOutcome {
    /// Items brought to their global version.
    pub(crate) changed: usize,
    /// Per-item failures.
    pub(crate) errors: Vec<FileError>,
    /// Paths to rescan (changed locally, conflict copies made).
    pub(crate) rescan: Vec<RelPath>,
    /// The need set had more items than one pass handles.
    pub(crate) more: bool,
    /// A write failed because the filesystem is full (ENOSPC): the folder goes to `error`
    /// and the pull is retried until a write succeeds.
    pub(crate) no_space: bool,
}

impl PullOutcome {
    /// Adds what a part of the pass did.
    fn absorb(&mut self, part: PullOutcome) {
        self.changed += part.changed;
        self.errors.extend(part.errors);
        self.rescan.extend(part.rescan);
        self.more |= part.more;
        self.no_space |= part.no_space;
    }
}

/// Whether `e` is "no space left on device" (ENOSPC, or a quota exhausted: EDQUOT).
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
}

/// Why one item could not be pulled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PullError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("file modified but not rescanned; will try again later")]
    Modified,
    #[error("no connected device has the required version of this file")]
    NoSource,
    #[error("block at offset {offset} failed hash verification from every source")]
    BlockUnavailable { offset: u64 },
    #[error("directory is not empty")]
    DirNotEmpty,
    /// The file could not be versioned before it was deleted or replaced (it stays).
    #[error("versioning: {0}")]
    Versioning(String),
    /// The name exists on disk under another case (folders that are not case-sensitive).
    #[error("{0}")]
    CaseConflict(#[from] syncd_scan::case::CaseConflict),
    /// The conflict rules keep the local version: nothing to do, not an error.
    #[error("local version kept")]
    NotNeeded,
}

struct Ctx {
    shared: Arc<Shared>,
    folder: FolderId,
    root: PathBuf,
    ignore_perms: bool,
    max_conflicts: MaxConflicts,
    me: DeviceId,
    bytes_in_flight: Arc<Semaphore>,
    /// The devices pieces are asked of.
    peers: Box<dyn source::Remote>,
    /// Parent directories checked during the files phase (see [`fsutil::VerifiedDirs`]).
    dirs: fsutil::VerifiedDirs,
    /// The folder's versioner for this pass (its settings as the pass started); an error
    /// (a bad setting) fails every delete or replace, so nothing is lost unversioned.
    versioner: Result<Option<crate::versioner::Versioner>, String>,
    /// The on-disk case of names, unless the folder is case-sensitive (see [`case`]).
    case: Option<syncd_scan::case::CaseResolver>,
    /// The temp files of this pass by directory and folded name, with the item each is
    /// for: on a case-insensitive filesystem `.syncthing.A.tmp` and `.syncthing.a.tmp` are
    /// one file, so two names differing only in case never share one (see [`case`]).
    temps: std::sync::Mutex<HashMap<(PathBuf, String), RelPath>>,
}

/// [`install::safe_target`] for the files phase, with the directories checked so far in the pass
/// ([`Ctx::dirs`]); also tells whether the parent directory exists.
fn safe_file_target(ctx: &Ctx, n: &Needed) -> std::io::Result<(PathBuf, bool)> {
    fsutil::safe_path_in(&ctx.root, &n.global.name, &ctx.dirs).inspect_err(|e| refused(ctx, n, e))
}

fn refused(ctx: &Ctx, n: &Needed, e: &std::io::Error) {
    let devices: Vec<String> = n.available.iter().map(ToString::to_string).collect();
    tracing::warn!(folder = %ctx.folder, name = n.global.name.as_str(), devices = %devices.join(","),
        error = %e, "refusing a path announced by a peer: it leads through a symlink or a file");
}

/// One pull pass over the need set.
pub(crate) async fn pull(shared: Arc<Shared>, fctx: Arc<FolderCtx>) -> PullOutcome {
    let cfg = fctx.config();
    let ctx = Arc::new(Ctx {
        me: shared.device_id,
        bytes_in_flight: shared.pull_budget.clone(),
        shared: shared.clone(),
        folder: cfg.id.clone(),
        root: cfg.path.clone(),
        ignore_perms: cfg.ignore_perms,
        max_conflicts: MaxConflicts::from_config(i64::from(cfg.max_conflicts)),
        dirs: fsutil::VerifiedDirs::default(),
        peers: Box::new(crate::peer_blocks::ConnectedPeers::new(shared.clone())),
        versioner: crate::versioner::Versioner::new(&cfg.path, &cfg.versioning)
            .map_err(|e| e.to_string()),
        case: (!cfg.case_sensitive_fs).then(|| syncd_scan::case::CaseResolver::new(&cfg.path)),
        temps: std::sync::Mutex::default(),
    });
    let mut out = PullOutcome::default();
    // Large files announced from here on are started by this pass (see [`Refill`]).
    let large_seen = fctx.large_announced.load(Ordering::SeqCst);
    let (index, fid) = (shared.index.clone(), cfg.id.clone());
    let needed = tokio::task::spawn_blocking(move || read_need(&index, &fid, None)).await;
    let mut needed = match needed {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            out.errors.push(FileError {
                path: String::new(),
                error: format!("reading need set: {e}"),
            });
            return out;
        }
        Err(e) => {
            out.errors.push(FileError {
                path: String::new(),
                error: format!("reading need set: {e}"),
            });
            return out;
        }
    };
    if needed.len() > MAX_ITEMS_PER_PASS {
        needed.truncate(MAX_ITEMS_PER_PASS);
        out.more = true;
    }
    let plan::Plan {
        first,
        files,
        deletes,
    } = plan::plan(needed, fctx.ignores().as_deref());
    // The directories, symlinks and deletions touch the disk item by item: each phase runs on
    // a blocking thread, never on a runtime worker (and an empty one costs no hand-off).
    if !first.is_empty() {
        let mut phase = install::on_blocking_thread(&ctx, "directories and symlinks", move |ctx| {
            install::install_first(ctx, first)
        })
        .await;
        out.absorb(phase.outcome);
        commit(&ctx, &mut phase.done, &mut phase.dirs, &mut out).await;
    }

    let refill = Refill::new(&fctx, large_seen, &files);
    pull_files(&ctx, files, refill, &mut out).await;

    if !deletes.is_empty() {
        let mut phase = install::on_blocking_thread(&ctx, "deletions", move |ctx| {
            install::delete_all(ctx, deletes)
        })
        .await;
        out.absorb(phase.outcome);
        commit(&ctx, &mut phase.done, &mut phase.dirs, &mut out).await;
    }
    if !out.more {
        // A complete pass: temp files no failed item will reuse are removed (see [`stale`]).
        let failed: Vec<RelPath> = out
            .errors
            .iter()
            .filter_map(|e| RelPath::new(&e.path).ok())
            .collect();
        let root = ctx.root.clone();
        let _ = tokio::task::spawn_blocking(move || stale::sweep(&root, &failed)).await;
    }
    out
}

/// The first [`MAX_ITEMS_PER_PASS`] + 1 items of the need set (one more than a pass takes, to
/// tell whether more remain), or of those `only` accepts (the others are dropped as they are
/// read). A whole pass's list is sized once: growing it by doubling would peak at twice that.
fn read_need(
    index: &syncd_index::Index,
    folder: &FolderId,
    only: Option<fn(&Needed) -> bool>,
) -> Result<Vec<Needed>, String> {
    let r = index.read(folder).map_err(|e| e.to_string())?;
    let mut v = Vec::with_capacity(if only.is_none() {
        MAX_ITEMS_PER_PASS + 1
    } else {
        0
    });
    for n in r.need().map_err(|e| e.to_string())? {
        let n = n.map_err(|e| e.to_string())?;
        if only.is_none_or(|keep| keep(&n)) {
            v.push(n);
        }
        if v.len() > MAX_ITEMS_PER_PASS {
            break;
        }
    }
    Ok(v)
}

/// Files of at least this size announced during a pass join it (see [`Refill`]). Starting
/// such a file a few seconds early is worth a read of the need set; a smaller one waits.
const JOINS_PASS: u64 = 4 * 1024 * 1024;

/// Whether a remote record announces a file that [`Refill`] starts in the pass in progress.
pub(crate) fn announces_large(r: &FileRecord) -> bool {
    r.kind == FileKind::File && !r.deleted && !r.invalid && r.size >= JOINS_PASS
}

/// Large files announced while a pass runs join that pass. A pass works on the need set as it
/// was when the pass began; during an initial sync the peer announces the rest while it scans,
/// and a large file announced a moment after a pass of thousands of small files began waited
/// for all of them, then was pulled alone (both binaries of the benchmark's workspace, on one
/// core, at the end). When a remote index update announced a large file (see
/// [`announces_large`]), the pass reads the need set again and queues the large files it
/// did not know, as if they had been in it from the start (so at most
/// [`schedule::Limits::large`] at once); the rest waits for the next pass.
struct Refill {
    folder: Arc<FolderCtx>,
    /// `FolderCtx::large_announced` when the need set was last read.
    seen: u64,
    /// Large files this pass has queued.
    known: HashSet<RelPath>,
}

impl Refill {
    fn new(folder: &Arc<FolderCtx>, seen: u64, files: &[Needed]) -> Refill {
        Refill {
            folder: folder.clone(),
            seen,
            known: files
                .iter()
                .filter(|n| announces_large(&n.global))
                .map(|n| n.global.name.clone())
                .collect(),
        }
    }

    /// Whether a large file was announced since the need set was last read (and notes that it
    /// will be read now).
    fn due(&mut self) -> bool {
        let now = self.folder.large_announced.load(Ordering::SeqCst);
        let due = now != self.seen;
        self.seen = now;
        due
    }

    /// The large regular files of `needed` this pass does not know yet.
    fn take_new(&mut self, needed: Vec<Needed>) -> Vec<Needed> {
        let ignores = self.folder.ignores();
        needed
            .into_iter()
            .filter(|n| {
                announces_large(&n.global)
                    && !plan::is_ignored(ignores.as_deref(), n)
                    && self.known.insert(n.global.name.clone())
            })
            .collect()
    }
}

fn emit_started(ctx: &Ctx, name: &RelPath, kind: FileKind, action: ItemAction) {
    ctx.shared.events.emit(Event::ItemStarted {
        folder: ctx.folder.clone(),
        item: name.as_str().to_owned(),
        kind,
        action,
    });
}

/// Records an item's outcome (errors, rescans) and emits `ItemFinished`.
fn report(
    ctx: &Ctx,
    out: &mut PullOutcome,
    name: &RelPath,
    kind: FileKind,
    action: ItemAction,
    res: Result<(), PullError>,
) {
    let error = match res {
        Ok(()) | Err(PullError::NotNeeded) => None,
        Err(e) => {
            if matches!(e, PullError::Modified) {
                out.rescan.push(name.clone());
            }
            if matches!(&e, PullError::Io(io) if is_no_space(io)) {
                out.no_space = true;
            }
            out.errors.push(FileError {
                path: name.as_str().to_owned(),
                error: e.to_string(),
            });
            Some(e.to_string())
        }
    };
    ctx.shared.events.emit(Event::ItemFinished {
        folder: ctx.folder.clone(),
        item: name.as_str().to_owned(),
        kind,
        action,
        error,
    });
}

/// Pulls the regular files as [`schedule`] starts them, and flushes the finished ones in
/// durability batches (one batch flushing while the next fills).
async fn pull_files(ctx: &Arc<Ctx>, files: Vec<Needed>, refill: Refill, out: &mut PullOutcome) {
    ctx.dirs.clear();
    pull_files_checked(ctx, files, refill, out).await;
    ctx.dirs.clear();
}

async fn pull_files_checked(
    ctx: &Arc<Ctx>,
    files: Vec<Needed>,
    mut refill: Refill,
    out: &mut PullOutcome,
) {
    let mut reading: Option<tokio::task::JoinHandle<Result<Vec<Needed>, String>>> = None;
    let mut set: JoinSet<small::GroupResults> = JoinSet::new();
    // The job of each task in flight (a task pulls one file or a group of small ones).
    let mut in_flight: HashMap<tokio::task::Id, (usize, bool)> = HashMap::new();
    let mut schedule = schedule::Schedule::new(files, schedule::Limits::PASS);
    let mut pending: Vec<batch::Item> = Vec::new();
    let mut pending_bytes = 0u64;
    let mut pending_since: Option<tokio::time::Instant> = None;
    let mut flushing: Option<tokio::task::JoinHandle<batch::Flushed>> = None;
    let mut flushing_names: Vec<RelPath> = Vec::new();
    loop {
        if reading.is_none() && refill.due() {
            let (index, fid) = (ctx.shared.index.clone(), ctx.folder.clone());
            // Only the large files are kept: the pass already holds the rest it will take.
            reading = Some(tokio::task::spawn_blocking(move || {
                read_need(&index, &fid, Some(|n| announces_large(&n.global)))
            }));
        }
        // Back-pressure: while a full batch waits for the flush in progress, start no more
        // files (each staged file holds an open descriptor).
        while pending.len() < batch_files()
            && let Some(job) = schedule.next()
        {
            for n in job.files() {
                emit_started(ctx, &n.global.name, FileKind::File, ItemAction::Update);
            }
            let weight = job.weight();
            let ctx2 = ctx.clone();
            let task = match job {
                schedule::Job::Small(group) => set.spawn(small::pull_group(ctx2, group)),
                schedule::Job::Large(n) => set.spawn(async move {
                    let name = n.global.name.clone();
                    vec![(name, pull_file(ctx2, *n).await)]
                }),
            };
            in_flight.insert(task.id(), weight);
        }
        let due = pending.len() >= batch_files()
            || pending_bytes >= BATCH_BYTES
            || set.is_empty()
            || pending_since.is_some_and(|t| t.elapsed() >= BATCH_WAIT);
        if flushing.is_none() && !pending.is_empty() && due {
            let items = std::mem::take(&mut pending);
            flushing_names = items.iter().map(|i| i.record.name.clone()).collect();
            (pending_bytes, pending_since) = (0, None);
            let ctx2 = ctx.clone();
            flushing = Some(tokio::task::spawn_blocking(move || {
                batch::flush(&ctx2, items)
            }));
        }
        if set.is_empty() && flushing.is_none() && pending.is_empty() && !schedule.has_deferred() {
            break;
        }
        let deadline = pending_since.map_or_else(tokio::time::Instant::now, |t| t + BATCH_WAIT);
        tokio::select! {
            joined = set.join_next_with_id(), if !set.is_empty() => match joined {
                Some(Ok((id, results))) => {
                    let (files, large) = in_flight.remove(&id).unwrap_or((0, false));
                    schedule.finished(files, large);
                    for (name, res) in results {
                        match res {
                            Ok(item) => {
                                if item.staged.is_some() {
                                    pending_bytes += item.record.size;
                                }
                                pending_since.get_or_insert_with(tokio::time::Instant::now);
                                pending.push(item);
                            }
                            Err(e) => {
                                report(ctx, out, &name, FileKind::File, ItemAction::Update, Err(e));
                            }
                        }
                    }
                }
                Some(Err(e)) => {
                    let (files, large) = in_flight.remove(&e.id()).unwrap_or((0, false));
                    schedule.finished(files, large);
                }
                None => {}
            },
            flushed = wait_task(&mut flushing), if flushing.is_some() => {
                flushing = None;
                let names = std::mem::take(&mut flushing_names);
                match flushed {
                    Ok(f) => {
                        out.changed += f.committed;
                        for (name, res) in f.results {
                            report(ctx, out, &name, FileKind::File, ItemAction::Update, res);
                        }
                    }
                    Err(e) => {
                        for name in names {
                            let err = PullError::Io(std::io::Error::other(e.to_string()));
                            report(ctx, out, &name, FileKind::File, ItemAction::Update, Err(err));
                        }
                    }
                }
            },
            read = wait_task(&mut reading), if reading.is_some() => {
                reading = None;
                match read {
                    Ok(Ok(needed)) => {
                        let new = refill.take_new(needed);
                        if !new.is_empty() {
                            tracing::debug!(folder = %ctx.folder, files = new.len(),
                                "large files announced during the pass join it");
                            // The next pass looks again for what this one did not take.
                            out.more = true;
                        }
                        schedule.join(new);
                    }
                    // The next pass reads the need set again and reports what fails there.
                    Ok(Err(e)) => tracing::debug!(folder = %ctx.folder, error = %e,
                        "reading the need set during a pass"),
                    Err(e) => tracing::debug!(folder = %ctx.folder, error = %e,
                        "reading the need set during a pass"),
                }
            },
            () = tokio::time::sleep_until(deadline), if pending_since.is_some() && flushing.is_none() => {}
        }
    }
}

/// The result of the task in `h`; never ready when there is none.
async fn wait_task<T>(
    h: &mut Option<tokio::task::JoinHandle<T>>,
) -> Result<T, tokio::task::JoinError> {
    match h {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Syncs the directories renamed into, then commits the records as local records.
async fn commit(
    ctx: &Arc<Ctx>,
    done: &mut Vec<FileRecord>,
    dirs: &mut BTreeSet<PathBuf>,
    out: &mut PullOutcome,
) {
    if done.is_empty() {
        return;
    }
    let records = std::mem::take(done);
    let dirs = std::mem::take(dirs);
    let index = ctx.shared.index.clone();
    let fid = ctx.folder.clone();
    let root = ctx.root.clone();
    let ignore_perms = ctx.ignore_perms;
    let res = tokio::task::spawn_blocking(move || -> Result<(usize, Vec<RelPath>), String> {
        for d in &dirs {
            match fsutil::sync_dir(d) {
                // A parent removed later in the same pass (deleted directories) needs no sync.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other.map_err(|e| format!("sync {}: {e}", d.display()))?,
            }
        }
        let mut w = index.write(&fid).map_err(|e| e.to_string())?;
        // Checked with the write transaction open: what changed on disk since it was put in
        // place (and may already be recorded by a scan) is rescanned, not overwritten.
        let (mut records, changed) = fsutil::still_installed(&root, records, ignore_perms);
        // What the scanner already recorded with the same version (it saw the file arrive
        // or go and adopted the global record) is not recorded twice: the second record
        // would announce it again (a large file's whole block list) and, for a deletion,
        // lose what the first remembers of the replaced file.
        {
            let now = index.read(&fid).map_err(|e| e.to_string())?;
            let me = index.local_device();
            let mut keep = Vec::with_capacity(records.len());
            for r in records {
                let recorded = now
                    .get(me, &r.name)
                    .map_err(|e| e.to_string())?
                    .is_some_and(|cur| {
                        !cur.invalid
                            && cur.deleted == r.deleted
                            && cur.kind == r.kind
                            && cur.version == r.version
                            && (r.deleted || cur.blocks_hash == r.blocks_hash)
                    });
                if !recorded {
                    keep.push(r);
                }
            }
            records = keep;
        }
        let n = records.len();
        if n > 0 {
            w.apply_local(records).map_err(|e| e.to_string())?;
            w.commit().map_err(|e| e.to_string())?;
        }
        Ok((n, changed))
    })
    .await;
    match res {
        Ok(Ok((n, changed))) => {
            out.changed += n;
            out.rescan.extend(changed);
        }
        Ok(Err(e)) => out.errors.push(FileError {
            path: String::new(),
            error: format!("committing: {e}"),
        }),
        Err(e) => out.errors.push(FileError {
            path: String::new(),
            error: format!("committing: {e}"),
        }),
    }
}

/// The conflict decision for one needed item, taken now (see [`plan::decide`]).
fn decide(ctx: &Ctx, n: &Needed) -> Resolution {
    let here = plan::Here {
        me: ctx.me,
        max_conflicts: ctx.max_conflicts,
    };
    plan::decide(n, here, SystemTime::now())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Pulls one regular file into its temp file (reusing what a previous attempt left there) and
/// stages it for the next durability batch; a metadata-only change is applied at once.
async fn pull_file(ctx: Arc<Ctx>, n: Needed) -> Result<batch::Item, PullError> {
    let c = ctx.clone();
    let prepared = tokio::task::spawn_blocking(move || prepare_file(&c, n, &mut None))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let o = match prepared {
        Prepared::Done(item) => return Ok(item),
        Prepared::Open(o) => o,
    };
    let batch::Staged {
        file,
        temp,
        target,
        local,
        fate,
    } = o.staged;
    let file = fetch::fetch_missing(&ctx, &o.record, &o.available, file, o.missing, o.meta).await?;
    Ok(batch::Item {
        record: o.record,
        dir: o.dir,
        meta_changed: None,
        staged: Some(batch::Staged {
            file,
            temp,
            target,
            local,
            fate,
        }),
    })
}

/// A file after [`prepare_file`]: its temp file open, the pieces local data did not hold.
struct Open {
    record: FileRecord,
    dir: PathBuf,
    staged: batch::Staged,
    /// Pieces to fetch from peers.
    missing: Vec<syncd_index::Block>,
    meta: local::Meta,
    available: Vec<DeviceId>,
}

/// What [`prepare_file`] made of a file.
enum Prepared {
    /// Nothing to fetch: complete from local data, or a metadata-only change applied.
    Done(batch::Item),
    Open(Open),
}

/// The blocking first step of pulling a file: the conflict decision, the path and "changed on
/// disk" checks, then either the metadata-only change applied, or the temp file opened
/// (reusing what a failed attempt left, see [`resume`]) with the pieces local data holds
/// copied in (permissions and mtime go on the temp file once it is complete, so the file is
/// complete when it appears).
fn prepare_file(
    ctx: &Ctx,
    n: Needed,
    snapshot: &mut source::Snapshot,
) -> Result<Prepared, PullError> {
    let Resolution::TakeRemote {
        adopt_version,
        fate,
    } = decide(ctx, &n)
    else {
        return Err(PullError::NotNeeded);
    };
    let case_only_rename = case::check_create(ctx, &n.global.name)?;
    let (path, parent_exists) = safe_file_target(ctx, &n)?;
    if !case_only_rename && !fsutil::matches_index(&path, n.local.as_ref(), ctx.ignore_perms)? {
        return Err(PullError::Modified);
    }
    let dir = parent_of(&path);
    let record = plan::installed(&n.global, adopt_version);
    if matches!(fate, LocalFate::MetadataOnly) && !case_only_rename && path.exists() {
        let file = set_meta(&path, &n.global, ctx.ignore_perms)?;
        return Ok(Prepared::Done(batch::Item {
            record,
            dir,
            staged: None,
            meta_changed: Some(file),
        }));
    }
    if !parent_exists {
        std::fs::create_dir_all(&dir)?;
    }
    let temp = dir.join(syncd_types::names::temp_name(n.global.name.file_name()));
    case::claim_temp(ctx, &n.global.name, &temp)?;
    let meta = local::Meta::of(&n.global, ctx.ignore_perms);
    let src = sources(ctx, &n, &path);
    let prepared = local::prepare(
        &temp,
        &pieces_of(&n.global),
        n.global.size,
        &src,
        meta,
        snapshot,
    )?;
    if prepared.reused_bytes > 0 {
        tracing::debug!(
            folder = %ctx.folder,
            path = %n.global.name.as_str(),
            bytes = prepared.reused_bytes,
            "reusing verified data of an existing temp file"
        );
    }
    let staged = batch::Staged {
        file: prepared.file,
        temp,
        target: path,
        local: n.local,
        fate,
    };
    if prepared.complete {
        return Ok(Prepared::Done(batch::Item {
            record,
            dir,
            staged: Some(staged),
            meta_changed: None,
        }));
    }
    Ok(Prepared::Open(Open {
        record,
        dir,
        staged,
        missing: prepared.missing,
        meta: prepared.meta,
        available: n.available,
    }))
}

/// Where [`local::prepare`] may find pieces of `n` (to be written at `path`) on this device.
fn sources(ctx: &Ctx, n: &Needed, path: &Path) -> source::Local {
    source::Local {
        index: ctx.shared.index.clone(),
        folder: ctx.folder.clone(),
        root: ctx.root.clone(),
        old: n.local.clone(),
        old_path: path.to_path_buf(),
    }
}

/// The pieces a file is fetched in. Between syncd peers the content-defined chunk list is
/// used: an insertion in a large file then shifts no chunk boundaries after it, so only the
/// changed chunks are fetched. Each chunk is verified like a block (the list covers the file
/// exactly; see `syncd_proto::cdc::usable_chunks`), and requests name the chunk's range and
/// hash.
fn pieces_of(global: &FileRecord) -> Vec<syncd_index::Block> {
    if global.chunks.is_empty() {
        global.blocks.clone()
    } else {
        global.chunks.clone()
    }
}

/// Gives the file in place the record's permissions and mtime; returns it open (read-only is
/// enough for futimens and fsync as the owner, and works on a 0444 file) for the batch fsync.
fn set_meta(path: &Path, g: &FileRecord, ignore_perms: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if !ignore_perms && !g.no_permissions {
        f.set_permissions(std::fs::Permissions::from_mode(g.permissions & 0o777))?;
    }
    f.set_modified(fsutil::mtime_of(g))?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needed(name: &str, size: u64, kind: FileKind, deleted: bool) -> Needed {
        let mut global = FileRecord::new(RelPath::new(name).unwrap(), kind);
        global.size = size;
        global.deleted = deleted;
        Needed {
            global,
            local: None,
            available: Vec::new(),
        }
    }

    /// A pass takes the large files announced while it runs, each once, and nothing else
    /// (small files, deletions and directories wait for the next pass).
    #[test]
    fn large_files_announced_during_a_pass_join_it_once() {
        let d = tempfile::tempdir().unwrap();
        let cfg = crate::config::FolderConfig::new(FolderId::new("f").unwrap(), d.path());
        let cell = crate::config::ConfigCell::new(crate::config::EngineConfig {
            folders: vec![cfg.clone()],
            ..Default::default()
        });
        let (fctx, _rx) = FolderCtx::new(&cfg, Arc::new(cell));
        let big = JOINS_PASS;
        let pass = vec![
            needed("a/small", 10, FileKind::File, false),
            needed("b/big", big, FileKind::File, false),
        ];
        let mut refill = Refill::new(&fctx, fctx.large_announced.load(Ordering::SeqCst), &pass);
        assert!(!refill.due(), "nothing announced yet");
        fctx.large_announced.fetch_add(1, Ordering::SeqCst);
        assert!(refill.due());
        assert!(!refill.due(), "one announcement, one read of the need set");
        let now = vec![
            needed("a/small", 10, FileKind::File, false),
            needed("b/big", big, FileKind::File, false),
            needed("c/new-big", big, FileKind::File, false),
            needed("d/new-smaller", big - 1, FileKind::File, false),
            needed("e/deleted-big", big, FileKind::File, true),
            needed("f/dir", big, FileKind::Directory, false),
        ];
        let joined: Vec<String> = refill
            .take_new(now.clone())
            .iter()
            .map(|n| n.global.name.as_str().to_owned())
            .collect();
        assert_eq!(joined, ["c/new-big"]);
        assert!(refill.take_new(now).is_empty(), "a file joins once");
    }
}

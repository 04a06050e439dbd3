//! The watcher: filesystem events → debounced, coalesced rescans of just the touched paths.
//!
//! Two ways to hold the OS watches ([`WatchBackend`]), behind one event path:
//!
//! - **per directory** (Linux, the default there): one inotify watch on each non-ignored
//!   directory, so an ignored `node_modules` or `.git` costs no watch and sends no event, and
//!   a watch limit is met by falling back to periodic scans of what is left unwatched;
//! - **recursive** (every other platform, and selectable on Linux so that CI runs it): one
//!   recursive watch on the folder root through notify's recommended watcher (FSEvents on
//!   macOS). Events under ignored directories arrive too and are dropped by the scanner's
//!   ignore check; new directories need no watch of their own.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, EventKind, EventKindMask, Flag, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use syncd_types::{RelPath, names};

use crate::scan::{ScanError, Scanner};

/// How the watcher holds the OS watches (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WatchBackend {
    /// The platform's best: one inotify watch per non-ignored directory on Linux, one
    /// recursive watch on the root elsewhere (FSEvents on macOS).
    #[default]
    Auto,
    /// One recursive watch on the root through notify's recommended watcher: what macOS and
    /// other non-Linux systems run.
    Recursive,
}

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// How the OS watches are held (default: the platform's best).
    pub backend: WatchBackend,
    /// How long the folder must be quiet after an event before the touched paths are
    /// rescanned (default 50 ms); a continuous stream of events defers the rescan by at
    /// most 20 such delays after its first event.
    pub delay: Duration,
    /// Most inotify watches this folder may hold (`None`: until the kernel limit).
    pub max_watches: Option<usize>,
    /// Periodic full rescan interval, randomised ±25% (default 1 h; `None` disables).
    pub rescan_interval: Option<Duration>,
    /// How often directories left unwatched (watch limit reached) are rescanned.
    pub fallback_interval: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            backend: WatchBackend::Auto,
            delay: Duration::from_millis(50),
            max_watches: None,
            rescan_interval: Some(Duration::from_secs(3600)),
            fallback_interval: Duration::from_secs(60),
        }
    }
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// inotify could not be initialised.
    #[error("starting the filesystem watcher: {0}")]
    Notify(#[from] notify::Error),
    /// The initial scan failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// The watcher thread could not be spawned.
    #[error("spawning the watcher thread: {0}")]
    Thread(std::io::Error),
}

/// Live figures of a running watcher.
#[derive(Debug, Default)]
pub struct WatchStats {
    /// inotify watches currently held.
    pub watches: AtomicU64,
    /// Rescans triggered by events (each commits at most one batch).
    pub event_scans: AtomicU64,
    /// Full rescans (overflow, periodic, fallback, API).
    pub full_scans: AtomicU64,
    /// Whether the watch limit was hit (some directories are covered by periodic scans).
    pub limited: AtomicBool,
    /// Events dropped on arrival because they only name temp files
    /// ([`names::is_temp_name`]): never queued, debounced or rescanned.
    pub temp_events_dropped: AtomicU64,
    /// Events dropped on arrival because they only report an open or a read-only close.
    /// The inotify watches do not ask for those (`WATCHED_KINDS`), so this stays 0 there;
    /// it counts what a backend that reports them anyway delivers.
    pub access_events_dropped: AtomicU64,
    /// Every event (or backend error) the OS backend delivered, before any is dropped.
    pub events_received: AtomicU64,
}

/// The event kinds the watches ask the OS for: every change (create, remove, data, metadata,
/// renames, the root's own deletion or move) and a close after writing, but no open and no
/// close after reading. Those would come for every file our own scanner hashes, the sender
/// serves blocks from and the puller writes, each a kernel event, a wake-up of the
/// backend's thread and a drop here; inotify then leaves `IN_OPEN` and `IN_CLOSE_NOWRITE`
/// out of every watch's mask, so a read costs the watcher nothing at all.
const WATCHED_KINDS: EventKindMask = EventKindMask::CORE.union(EventKindMask::ACCESS_CLOSE);

/// Whether `ev` only reports an access that changes nothing (an open, a read, a close after
/// reading); a close after writing is not one.
fn is_read_access(ev: &notify::Event) -> bool {
    matches!(ev.kind, EventKind::Access(a)
        if a != AccessKind::Close(notify::event::AccessMode::Write))
}

/// Whether every path of `ev` (at least one) is a temp file's: such an event never leads to
/// a rescan (temp files are internal, see [`names::is_internal`]). An event without paths
/// (an overflow asking for a full rescan) is not one.
fn only_temp_paths(ev: &notify::Event) -> bool {
    !ev.paths.is_empty()
        && ev.paths.iter().all(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(names::is_temp_name)
        })
}

enum Input {
    Fs(notify::Result<notify::Event>),
    Scan(Vec<RelPath>),
    Stop,
}

/// A running watcher for one folder: owns a thread that holds the inotify watches and drives
/// the [`Scanner`].
#[derive(Debug)]
pub struct FolderWatcher {
    tx: Sender<Input>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<WatchStats>,
}

impl FolderWatcher {
    /// Puts watches on every non-ignored directory, runs the initial full scan, then starts
    /// watching. Returns once the initial scan is committed.
    pub fn start(scanner: Arc<Scanner>, config: WatchConfig) -> Result<FolderWatcher, WatchError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let ev_tx = Mutex::new(tx.clone());
        let stats = Arc::new(WatchStats::default());
        let handler_stats = stats.clone();
        let handler = move |res: notify::Result<notify::Event>| {
            handler_stats
                .events_received
                .fetch_add(1, Ordering::Relaxed);
            // The puller's temp files (and a peer's, in a shared directory) are never
            // scanned: their events are dropped here, on notify's thread, before they cost
            // a channel hop, a wake-up of the watcher thread and a debounce.
            if res.as_ref().is_ok_and(only_temp_paths) {
                handler_stats
                    .temp_events_dropped
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            // Opens and read-only closes are noise (our own hashing and serving of blocks
            // would cause them for every file read): the watches do not ask for them
            // (WATCHED_KINDS), and should a backend deliver some anyway, they end here too.
            if res.as_ref().is_ok_and(is_read_access) {
                handler_stats
                    .access_events_dropped
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            if let Ok(t) = ev_tx.lock() {
                let _ = t.send(Input::Fs(res));
            }
        };
        let notify_config = notify::Config::default().with_event_kinds(WATCHED_KINDS);
        // The only platform-specific choice: inotify per directory on Linux, the platform's
        // recommended watcher (FSEvents on macOS) on the root elsewhere.
        let (mode, watcher): (Mode, Box<dyn Watcher + Send>) = match config.backend {
            #[cfg(target_os = "linux")]
            WatchBackend::Auto => (
                Mode::PerDirectory,
                Box::new(notify::INotifyWatcher::new(handler, notify_config)?),
            ),
            #[cfg(not(target_os = "linux"))]
            WatchBackend::Auto => (
                Mode::Recursive,
                Box::new(notify::RecommendedWatcher::new(handler, notify_config)?),
            ),
            WatchBackend::Recursive => (
                Mode::Recursive,
                Box::new(notify::RecommendedWatcher::new(handler, notify_config)?),
            ),
        };
        let root = scanner.root().to_path_buf();
        // Some backends report paths with symlinks in the root resolved (FSEvents: a folder
        // under /var is reported under /private/var).
        let real_root = std::fs::canonicalize(&root).ok().filter(|r| *r != root);
        let mut state = State {
            root,
            real_root,
            scanner,
            config,
            mode,
            watcher,
            watched: BTreeSet::new(),
            unwatched: BTreeSet::new(),
            warned: false,
            stats: stats.clone(),
        };
        state.watch_tree(None);
        state.scanner.scan()?;
        let thread = std::thread::Builder::new()
            .name("syncd-watch".into())
            .spawn(move || state.run(rx))
            .map_err(WatchError::Thread)?;
        Ok(FolderWatcher {
            tx,
            thread: Some(thread),
            stats,
        })
    }

    /// Asks for a rescan now: of the given paths, or of the whole folder when empty.
    pub fn scan_now(&self, paths: Vec<RelPath>) {
        let _ = self.tx.send(Input::Scan(paths));
    }

    /// Hands `event` to the watcher through the channel and handling the OS backend's events
    /// take. notify reports a kernel queue overflow (inotify's `IN_Q_OVERFLOW`: events were
    /// dropped) as `Event::new(EventKind::Other).set_flag(Flag::Rescan)`; that event, or a
    /// backend error, makes the next rescan a full one. For events from another source (a
    /// second backend) and for tests, since an overflow cannot be provoked on purpose
    /// without changing the system-wide `fs.inotify.max_queued_events`.
    pub fn deliver(&self, event: notify::Result<notify::Event>) {
        let _ = self.tx.send(Input::Fs(event));
    }

    /// The live figures.
    pub fn stats(&self) -> &WatchStats {
        &self.stats
    }

    /// Stops the thread (after the scan in progress, if any) and releases the watches.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.tx.send(Input::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FolderWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How the watches are laid out (see [`WatchBackend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One non-recursive watch per non-ignored directory.
    PerDirectory,
    /// One recursive watch on the root.
    Recursive,
}

struct State {
    root: PathBuf,
    /// The root with its symlinks resolved, when that differs from `root`.
    real_root: Option<PathBuf>,
    scanner: Arc<Scanner>,
    config: WatchConfig,
    mode: Mode,
    watcher: Box<dyn Watcher + Send>,
    watched: BTreeSet<RelPath>,
    /// Directories not watched because of the limit (`None`-like root never lands here).
    unwatched: BTreeSet<RelPath>,
    warned: bool,
    stats: Arc<WatchStats>,
}

/// A pseudo-random factor in [0.75, 1.25], from the clock (no RNG dependency needed).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let f = 0.75 + f64::from(nanos % 1_000_001) / 2_000_002.0;
    d.mul_f64(f)
}

/// How many debounce delays a continuous stream of events may hold back a rescan.
const MAX_DEFER_DELAYS: u32 = 20;

impl State {
    /// When the pending paths are due: `delay` after the latest event (a burst becomes one
    /// rescan), but no later than [`MAX_DEFER_DELAYS`] delays after the first, so a
    /// never-ending stream of writes is still picked up.
    fn due(&self, first: Option<Instant>, last: Option<Instant>) -> Option<Instant> {
        let first = first?;
        let quiet = last.unwrap_or(first).max(first) + self.config.delay;
        Some(quiet.min(first + self.config.delay * MAX_DEFER_DELAYS))
    }

    fn run(mut self, rx: Receiver<Input>) {
        let mut pending: BTreeSet<RelPath> = BTreeSet::new();
        let mut full = false;
        let mut first_event: Option<Instant> = None;
        let mut last_event: Option<Instant> = None;
        let mut next_full = self
            .config
            .rescan_interval
            .map(|i| Instant::now() + jitter(i));
        let mut next_fallback: Option<Instant> = None;
        loop {
            if self.stats.limited.load(Ordering::Relaxed) && next_fallback.is_none() {
                next_fallback = Some(Instant::now() + self.config.fallback_interval);
            }
            let deadline = [self.due(first_event, last_event), next_full, next_fallback]
                .into_iter()
                .flatten()
                .min();
            let input = match deadline {
                Some(d) => rx.recv_timeout(d.saturating_duration_since(Instant::now())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match input {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Input::Scan(paths)) => {
                    if paths.is_empty() {
                        full = true;
                    }
                    pending.extend(paths);
                    first_event.get_or_insert_with(Instant::now);
                    last_event = Some(Instant::now());
                }
                Ok(Input::Fs(ev)) => {
                    if self.handle_event(ev, &mut pending, &mut full) {
                        first_event.get_or_insert_with(Instant::now);
                        last_event = Some(Instant::now());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if next_full.is_some_and(|t| now >= t) {
                full = true;
                first_event = Some(now.checked_sub(self.config.delay).unwrap_or(now));
                last_event = first_event;
                next_full = self.config.rescan_interval.map(|i| now + jitter(i));
            }
            if next_fallback.is_some_and(|t| now >= t) {
                pending.extend(self.unwatched.iter().cloned());
                let due = now.checked_sub(self.config.delay).unwrap_or(now);
                first_event.get_or_insert(due);
                last_event = Some(due);
                next_fallback = None;
            }
            if self.due(first_event, last_event).is_some_and(|t| now >= t) {
                first_event = None;
                last_event = None;
                let paths: Vec<RelPath> = if full {
                    Vec::new()
                } else {
                    pending.iter().cloned().collect()
                };
                pending.clear();
                if full {
                    full = false;
                    self.stats.full_scans.fetch_add(1, Ordering::Relaxed);
                    let _ = self.scanner.reload_ignores();
                } else {
                    self.stats.event_scans.fetch_add(1, Ordering::Relaxed);
                }
                match self.scanner.scan_paths(&paths) {
                    Ok(report) if !report.retry.is_empty() => {
                        // Changed while hashed: look again after another delay.
                        pending.extend(report.retry);
                        first_event = Some(Instant::now());
                        last_event = first_event;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(folder = %self.scanner.folder(), error = %e, "scan failed")
                    }
                }
            }
        }
    }

    fn rel(&self, p: &Path) -> Option<Option<RelPath>> {
        let r = p
            .strip_prefix(&self.root)
            .ok()
            .or_else(|| p.strip_prefix(self.real_root.as_ref()?).ok())?;
        if r.as_os_str().is_empty() {
            return Some(None);
        }
        let s = r.to_str()?;
        let rel = RelPath::new(s).ok()?;
        // A name not spelt in NFC on disk is recorded under its NFC spelling, which a Linux
        // filesystem does not find: rescan its directory instead, where the scanner sees the
        // name as it is (and normalises it on disk). macOS filesystems find either spelling.
        if cfg!(not(target_os = "macos")) && rel.as_str() != s {
            return Some(rel.parent());
        }
        Some(Some(rel))
    }

    /// Returns true when the event asks for a rescan.
    fn handle_event(
        &mut self,
        ev: notify::Result<notify::Event>,
        pending: &mut BTreeSet<RelPath>,
        full: &mut bool,
    ) -> bool {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                    self.limit_hit();
                }
                tracing::warn!(folder = %self.scanner.folder(), error = %e, "watch error; rescanning");
                *full = true;
                return true;
            }
        };
        if ev.flag() == Some(Flag::Rescan) {
            *full = true;
            return true;
        }
        match ev.kind {
            // Opens and read-only closes are noise (see WATCHED_KINDS).
            EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => {}
            EventKind::Access(_) => return false,
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return false,
            _ => {}
        }
        let is_dir_create = matches!(
            ev.kind,
            EventKind::Create(notify::event::CreateKind::Folder)
                | EventKind::Modify(ModifyKind::Name(RenameMode::To))
        );
        let is_gone = matches!(
            ev.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        );
        let mut any = false;
        for p in &ev.paths {
            match self.rel(p) {
                Some(Some(rel)) => {
                    if rel.as_str() == names::IGNORE_FILE {
                        *full = true;
                        any = true;
                        continue;
                    }
                    if names::is_internal(&rel) {
                        continue;
                    }
                    if is_gone {
                        self.forget_tree(&rel);
                    } else if is_dir_create && p.is_dir() {
                        self.watch_tree(Some(&rel));
                    }
                    pending.insert(rel);
                    any = true;
                }
                Some(None) => {
                    *full = true;
                    any = true;
                }
                None => {
                    // A name that is not a RelPath (e.g. invalid UTF-8): rescan its directory,
                    // where the scanner reports it as an error.
                    match p.parent().and_then(|d| self.rel(d)) {
                        Some(Some(parent)) => {
                            pending.insert(parent);
                        }
                        _ => *full = true,
                    }
                    any = true;
                }
            }
        }
        any
    }

    fn limit_hit(&mut self) {
        self.stats.limited.store(true, Ordering::Relaxed);
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                folder = %self.scanner.folder(),
                watches = self.watched.len(),
                fallback_s = self.config.fallback_interval.as_secs(),
                "filesystem watch limit reached: directories beyond it are rescanned periodically \
                 instead of watched (raise fs.inotify.max_user_watches or the folder's watch cap)"
            );
        }
    }

    fn forget_tree(&mut self, rel: &RelPath) {
        if self.mode == Mode::Recursive {
            return;
        }
        let gone: Vec<RelPath> = self
            .watched
            .iter()
            .filter(|w| w.starts_with(rel))
            .cloned()
            .collect();
        for g in gone {
            let _ = self.watcher.unwatch(&g.to_path_under(&self.root));
            self.watched.remove(&g);
        }
        self.unwatched.retain(|u| !u.starts_with(rel));
        self.stats
            .watches
            .store(self.watched.len() as u64 + 1, Ordering::Relaxed);
    }

    /// Watches `rel` (None = the root) and every non-ignored directory below it; in
    /// recursive mode, the root's one watch covers everything.
    fn watch_tree(&mut self, rel: Option<&RelPath>) {
        if self.mode == Mode::Recursive {
            if rel.is_none() {
                if let Err(e) = self.watcher.watch(&self.root, RecursiveMode::Recursive) {
                    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
                        // notify's recursive inotify ran out of watches part-way: what it
                        // could not watch is found by the periodic full rescans.
                        self.limit_hit();
                    } else {
                        tracing::warn!(folder = %self.scanner.folder(), error = %e,
                            "cannot watch the folder; changes are found by rescans only");
                    }
                }
                self.stats.watches.store(1, Ordering::Relaxed);
            }
            return;
        }
        let ignore = self.scanner.ignores();
        let mut stack: Vec<Option<RelPath>> = vec![rel.cloned()];
        while let Some(dir) = stack.pop() {
            let abs = dir
                .as_ref()
                .map_or_else(|| self.root.clone(), |d| d.to_path_under(&self.root));
            if let Some(d) = &dir {
                if self.watched.contains(d) {
                    continue;
                }
                let m = ignore.matched(d.as_str(), true);
                if names::is_internal(d) || (m.is_ignored() && m.can_skip_dir()) {
                    continue;
                }
            }
            if !self.add_watch(&abs, dir.as_ref()) {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&abs) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = e.file_name();
                    let Some(name) = name.to_str() else { continue };
                    let child = match &dir {
                        None => RelPath::new(name),
                        Some(d) => d.join(name),
                    };
                    if let Ok(c) = child {
                        stack.push(Some(c));
                    }
                }
            }
        }
        self.stats
            .watches
            .store(self.watched.len() as u64 + 1, Ordering::Relaxed);
    }

    /// Adds one watch; false when the limit stops it (the directory joins the fallback set).
    fn add_watch(&mut self, abs: &Path, rel: Option<&RelPath>) -> bool {
        let held = self.watched.len() + 1; // + the root
        let capped = rel.is_some() && self.config.max_watches.is_some_and(|m| held >= m);
        if capped {
            self.limit_hit();
            if let Some(r) = rel {
                self.unwatched.insert(r.clone());
            }
            return false;
        }
        match self.watcher.watch(abs, RecursiveMode::NonRecursive) {
            Ok(()) => {
                if let Some(r) = rel {
                    self.watched.insert(r.clone());
                }
                true
            }
            Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                self.limit_hit();
                if let Some(r) = rel {
                    self.unwatched.insert(r.clone());
                }
                false
            }
            Err(_) => false,
        }
    }
}

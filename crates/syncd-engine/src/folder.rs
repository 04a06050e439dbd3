//! Per-folder runtime state, and the folder actor: the driver of the folder's state machine
//! ([`machine`]).

mod machine;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use syncd_ignore::IgnoreSet;
use syncd_scan::{FolderWatcher, ScanConfig, Scanner, WatchConfig};
use syncd_types::{DeviceId, FolderId, RelPath};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::config::{ConfigCell, FolderConfig, FolderType};
use crate::engine::{Shared, lock};
use crate::error::EngineError;
use crate::event::{Event, EventBus};
use crate::folder_types;
use crate::health;
use crate::puller::{self, PullOutcome};

use crate::status::{FileError, FolderState};
use machine::{Action, Input, Machine, PullSummary, View};

/// The mutable runtime status of one folder, behind a std mutex (never held across `.await`).
#[derive(Debug, Clone)]
pub(crate) struct FolderRuntime {
    pub(crate) state: FolderState,
    pub(crate) state_changed: SystemTime,
    pub(crate) error: Option<String>,
    pub(crate) errors: Vec<FileError>,
    pub(crate) watch_error: Option<String>,
}

impl FolderRuntime {
    pub(crate) fn new(paused: bool) -> Self {
        FolderRuntime {
            state: if paused {
                FolderState::Paused
            } else {
                FolderState::Idle
            },
            state_changed: SystemTime::now(),
            error: None,
            errors: Vec::new(),
            watch_error: None,
        }
    }

    /// Moves to `to` (with `error` when `to` is `Error`), emitting `StateChanged` when the
    /// state or the error actually changes.
    pub(crate) fn set_state(
        &mut self,
        folder: &FolderId,
        to: FolderState,
        error: Option<String>,
        bus: &EventBus,
    ) {
        let error = if to == FolderState::Error {
            error
        } else {
            None
        };
        if self.state == to && self.error == error {
            return;
        }
        let from = self.state;
        self.state = to;
        self.error = error.clone();
        self.state_changed = SystemTime::now();
        bus.emit(Event::StateChanged {
            folder: folder.clone(),
            from,
            to,
            error,
        });
    }
}

/// Everything the folder actor reacts to (one closed enum, one loop).
#[derive(Debug)]
pub(crate) enum FolderInput {
    /// Scan (all, or `sub`); reply when committed.
    Scan {
        sub: Option<String>,
        reply: Option<oneshot::Sender<Result<(), EngineError>>>,
    },
    /// Rescan these paths (the puller found them changed, or made conflict copies).
    Rescan(Vec<RelPath>),
    /// The scanner committed local changes (a watcher or chunk commit): announce the new
    /// sequence. Sent by the scanner's commit hook, at most one waiting at a time.
    Committed,
    /// A peer's index for this folder changed.
    RemoteIndex,
    /// A peer connected, disconnected or changed its cluster config.
    PeerChanged,
    /// The pull task finished.
    PullDone(PullOutcome),
    /// Pause / resume the folder.
    Pause,
    /// Resume after a pause.
    Resume,
    /// The folder's configuration was replaced at run time (its new value is already in the
    /// context); `old` is the one it replaced. The actor applies the difference in place:
    /// pause or resume, or a restart of its scanner and watcher when a setting they were
    /// built with changed. The folder's context, index senders and peers are untouched.
    Reconfigured {
        old: Box<FolderConfig>,
        reply: oneshot::Sender<()>,
    },
    /// Send-only: make our versions win everywhere (after the pull in progress); reply
    /// with how many records changed.
    Override(oneshot::Sender<Result<usize, EngineError>>),
    /// Receive-only: drop our local changes (after the pull in progress), then pull the
    /// global versions back; reply with how many records changed.
    Revert(oneshot::Sender<Result<usize, EngineError>>),
    /// Stop the actor (after the pull in progress).
    Stop,
}

/// One folder: its runtime status and the actor's inbox, shared with peers and the handle.
/// Its configuration is read from the engine's one copy ([`ConfigCell`]).
pub(crate) struct FolderCtx {
    pub(crate) id: FolderId,
    config: Arc<ConfigCell>,
    /// The folder's last configuration, kept once it was removed from the engine's (its
    /// actor may still finish a pull after that).
    removed: Mutex<Option<FolderConfig>>,
    pub(crate) runtime: Mutex<FolderRuntime>,
    pub(crate) tx: mpsc::UnboundedSender<FolderInput>,
    /// Our local sequence for this folder; index senders wait on it.
    pub(crate) local_seq: watch::Sender<u64>,
    pub(crate) scanner: Mutex<Option<Arc<Scanner>>>,
    watcher: Mutex<Option<FolderWatcher>>,
    /// True once a full scan has committed since start; no pull happens before.
    pub(crate) scanned_once: AtomicBool,
    /// True while a pull pass runs.
    pub(crate) pulling: AtomicBool,
    /// Rescans queued and not yet done (conflict copies, changed files): the folder is not
    /// in sync until they have committed.
    pub(crate) pending_rescans: AtomicUsize,
    /// Remote index updates applied that announced a large file (see
    /// `puller::announces_large`): a pull pass in progress looks at it to start such a file at
    /// once instead of in the next pass.
    pub(crate) large_announced: AtomicU64,
    /// A [`FolderInput::Committed`] is waiting in the inbox (the hook sends no second one).
    commit_signalled: Arc<AtomicBool>,
    /// Files the last block verification found damaged (name -> indices of the blocks that
    /// differ from the index): the serving path hashes every block of these before sending.
    pub(crate) damaged: Mutex<std::collections::BTreeMap<RelPath, Vec<u32>>>,
    /// Requests for blocks of damaged files refused because the bytes on disk did not match.
    pub(crate) damaged_refused: AtomicU64,
}

impl std::fmt::Debug for FolderCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FolderCtx")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FolderCtx {
    pub(crate) fn new(
        cfg: &FolderConfig,
        config: Arc<ConfigCell>,
    ) -> (Arc<FolderCtx>, mpsc::UnboundedReceiver<FolderInput>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let ctx = Arc::new(FolderCtx {
            id: cfg.id.clone(),
            runtime: Mutex::new(FolderRuntime::new(cfg.paused)),
            config,
            removed: Mutex::new(None),
            tx,
            local_seq: watch::channel(0).0,
            scanner: Mutex::new(None),
            watcher: Mutex::new(None),
            scanned_once: AtomicBool::new(false),
            pulling: AtomicBool::new(false),
            pending_rescans: AtomicUsize::new(0),
            large_announced: AtomicU64::new(0),
            commit_signalled: Arc::new(AtomicBool::new(false)),
            damaged: Mutex::new(std::collections::BTreeMap::new()),
            damaged_refused: AtomicU64::new(0),
        });
        (ctx, rx)
    }

    /// The folder's current configuration (from the engine's; after the folder was removed,
    /// the last one it had).
    pub(crate) fn config(&self) -> FolderConfig {
        if let Some(c) = self.config.folder(&self.id) {
            return c;
        }
        lock(&self.removed).clone().unwrap_or_else(|| {
            // Not reachable: a folder is removed from the configuration only after
            // `keep_removed`. Paused, so that nothing acts on it.
            let mut c = FolderConfig::new(self.id.clone(), PathBuf::new());
            c.paused = true;
            c
        })
    }

    /// Keeps the folder's configuration for its actor's last steps, before it is removed from
    /// the engine's.
    pub(crate) fn keep_removed(&self) {
        let current = self.config.folder(&self.id);
        *lock(&self.removed) = current;
    }

    /// Whether this folder is shared with `device` (no copy of the configuration: this runs
    /// for every request and index message of a peer).
    pub(crate) fn shared_with(&self, device: DeviceId) -> bool {
        match self
            .config
            .with_folder(&self.id, |c| c.devices.contains(&device))
        {
            Some(shared) => shared,
            None => lock(&self.removed)
                .as_ref()
                .is_some_and(|c| c.devices.contains(&device)),
        }
    }

    /// The folder's current ignore patterns (once the scanner exists).
    pub(crate) fn ignores(&self) -> Option<Arc<IgnoreSet>> {
        lock(&self.scanner).as_ref().map(|s| s.ignores())
    }

    /// The entries the last scan skipped with an error (a name two files share in different
    /// Unicode normalisations, an unreadable file...), as Syncthing lists its scan errors
    /// among the folder's errors.
    pub(crate) fn scan_errors(&self) -> Vec<FileError> {
        lock(&self.scanner).as_ref().map_or_else(Vec::new, |s| {
            s.errors()
                .iter()
                .map(|e| FileError {
                    path: e.path().to_owned(),
                    error: e.to_string(),
                })
                .collect()
        })
    }

    /// The scanner's commit hook: wakes the actor with [`FolderInput::Committed`] unless one
    /// is already waiting.
    fn commit_hook(&self) -> syncd_scan::CommitHook {
        let (tx, flag) = (self.tx.clone(), self.commit_signalled.clone());
        Arc::new(move || {
            if !flag.swap(true, Ordering::SeqCst) {
                let _ = tx.send(FolderInput::Committed);
            }
        })
    }

    /// Queues a rescan of `paths` on the actor.
    pub(crate) fn queue_rescan(&self, paths: Vec<RelPath>) {
        self.pending_rescans.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(FolderInput::Rescan(paths)).is_err() {
            self.pending_rescans.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn set_state(&self, shared: &Shared, to: FolderState, error: Option<String>) {
        lock(&self.runtime).set_state(&self.id, to, error, &shared.events);
    }

    fn state(&self) -> FolderState {
        lock(&self.runtime).state
    }
}

/// The folder actor: the driver of [`machine::Machine`]. It turns messages into the
/// machine's inputs, runs the actions the machine returns (the only place with I/O) and feeds
/// their results back, and sleeps until the next message or the machine's next deadline.
pub(crate) async fn run(
    shared: Arc<Shared>,
    ctx: Arc<FolderCtx>,
    mut rx: mpsc::UnboundedReceiver<FolderInput>,
) {
    let local_seq = *ctx.local_seq.borrow();
    let mut d = Driver {
        m: Machine::new(Instant::now(), local_seq),
        shared,
        ctx,
        pull_task: None,
        reply: None,
    };
    d.drive(Input::Begin).await;
    loop {
        let wake = d.m.next_wake();
        let message = tokio::select! {
            message = rx.recv() => match message {
                Some(message) => Some(message),
                None => break,
            },
            () = tokio::time::sleep_until(wake) => None,
        };
        if let Some(message) = message {
            let Some(input) = d.message(message).await else {
                break;
            };
            if let Some(input) = input {
                d.drive(input).await;
            }
            // Every change is answered, whatever the machine did with it.
            if let Some(reply) = d.reply.take() {
                let _ = reply.send(());
            }
        }
        d.drive(Input::Tick).await;
        d.drive(Input::Settle).await;
    }
    // Shutdown: let the pull in progress finish its writes, then stop watching.
    if let Some(t) = d.pull_task.take() {
        let _ = t.await;
    }
    stop_watcher(&d.ctx).await;
}

/// The folder actor's I/O half (see [`run`]).
struct Driver {
    m: Machine,
    shared: Arc<Shared>,
    ctx: Arc<FolderCtx>,
    pull_task: Option<tokio::task::JoinHandle<()>>,
    /// The answer to a configuration change, sent by [`Action::Reply`].
    reply: Option<oneshot::Sender<()>>,
}

impl Driver {
    fn view(&self) -> View {
        let cfg = self.ctx.config();
        View {
            state: self.ctx.state(),
            paused: cfg.paused,
            scanned: self.ctx.scanned_once.load(Ordering::SeqCst),
            watching: lock(&self.ctx.watcher).is_some(),
            local_seq: *self.ctx.local_seq.borrow(),
            rescan_interval: (cfg.rescan_interval_s > 0)
                .then(|| Duration::from_secs(u64::from(cfg.rescan_interval_s))),
        }
    }

    /// Handles `input` and every input its actions answer with.
    async fn drive(&mut self, input: Input) {
        let mut queue = std::collections::VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            let view = self.view();
            for action in self.m.handle(input, Instant::now(), view) {
                if let Some(next) = self.act(action).await {
                    queue.push_back(next);
                }
            }
        }
    }

    /// Does the message's own work; returns the machine's input (`None` outside: stop).
    async fn message(&mut self, message: FolderInput) -> Option<Option<Input>> {
        let (shared, ctx) = (&self.shared, &self.ctx);
        Some(match message {
            FolderInput::Stop => return None,
            FolderInput::Committed => {
                // Cleared first: a commit after the read below sends a new wake-up.
                ctx.commit_signalled.store(false, Ordering::SeqCst);
                publish_sequence(shared, ctx).await;
                None
            }
            FolderInput::Scan { sub, reply } => {
                let r = scan(shared, ctx, sub).await;
                let ok = r.is_ok();
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
                Some(Input::ScanFinished { ok })
            }
            FolderInput::Rescan(paths) => {
                let scanner = lock(&ctx.scanner).clone();
                if let Some(s) = scanner {
                    let _ = tokio::task::spawn_blocking(move || s.scan_paths(&paths)).await;
                }
                publish_sequence(shared, ctx).await;
                ctx.pending_rescans.fetch_sub(1, Ordering::SeqCst);
                Some(Input::Rescanned)
            }
            FolderInput::RemoteIndex | FolderInput::PeerChanged => Some(Input::RemoteChanged),
            FolderInput::PullDone(outcome) => {
                self.pull_task = None;
                ctx.pulling.store(false, Ordering::SeqCst);
                let summary = PullSummary {
                    changed: outcome.changed > 0,
                    more: outcome.more,
                    failed: !outcome.errors.is_empty(),
                    no_space: outcome.no_space,
                };
                if summary.changed {
                    publish_sequence(shared, ctx).await;
                }
                if !outcome.rescan.is_empty() {
                    ctx.queue_rescan(outcome.rescan);
                }
                lock(&ctx.runtime).errors = outcome.errors.clone();
                if summary.failed {
                    shared.events.emit(Event::FolderErrors {
                        folder: ctx.id.clone(),
                        errors: outcome.errors,
                    });
                }
                Some(Input::PullDone(summary))
            }
            FolderInput::Override(reply) => self.type_op(folder_types::Op::Override, reply).await,
            FolderInput::Revert(reply) => self.type_op(folder_types::Op::Revert, reply).await,
            FolderInput::Pause => Some(Input::Pause),
            FolderInput::Resume => Some(Input::Resume),
            FolderInput::Reconfigured { old, reply } => {
                tracing::info!(folder = %ctx.id, "folder configuration changed; applying it");
                self.reply = Some(reply);
                let new = ctx.config();
                if old.folder_type == FolderType::ReceiveOnly
                    && new.folder_type != FolderType::ReceiveOnly
                {
                    let op = folder_types::Op::ClearReceiveOnly;
                    if folder_types::run_blocking(shared, ctx, op)
                        .await
                        .is_ok_and(|n| n > 0)
                    {
                        publish_sequence(shared, ctx).await;
                    }
                }
                Some(Input::Reconfigured {
                    was_paused: old.paused,
                    restart: needs_restart(&old, &new),
                })
            }
        })
    }

    /// Override or revert (see [`folder_types`]), never beside a pull: the pass in progress
    /// finishes first (its PullDone follows in the inbox). A paused folder changes nothing.
    async fn type_op(
        &mut self,
        op: folder_types::Op,
        reply: oneshot::Sender<Result<usize, EngineError>>,
    ) -> Option<Input> {
        if self.ctx.config().paused {
            let _ = reply.send(Ok(0));
            return None;
        }
        if let Some(t) = self.pull_task.take() {
            let _ = t.await;
        }
        let r = folder_types::run_blocking(&self.shared, &self.ctx, op).await;
        publish_sequence(&self.shared, &self.ctx).await;
        let _ = reply.send(r);
        Some(Input::RemoteChanged)
    }

    /// Runs one action; returns the input that answers it, if any.
    async fn act(&mut self, action: Action) -> Option<Input> {
        let (shared, ctx) = (&self.shared, &self.ctx);
        match action {
            Action::Start => start(shared, ctx).await,
            Action::CountRestart => {
                ctx.pending_rescans.fetch_add(1, Ordering::SeqCst);
            }
            Action::Restart => restart(shared, ctx).await,
            Action::CancelRestart => {
                ctx.pending_rescans.fetch_sub(1, Ordering::SeqCst);
            }
            Action::Reply => {
                if let Some(reply) = self.reply.take() {
                    let _ = reply.send(());
                }
            }
            Action::StopWatcher => stop_watcher(ctx).await,
            Action::SetState(to) => ctx.set_state(shared, to, None),
            Action::IdleIf(from) => {
                if ctx.state() == from {
                    ctx.set_state(shared, FolderState::Idle, None);
                }
            }
            Action::DiskFull => {
                let msg = format!(
                    "no space left on device under {}: free space; syncd retries by itself",
                    ctx.config().path.display()
                );
                tracing::warn!(folder = %ctx.id, "{msg}");
                ctx.set_state(shared, FolderState::Error, Some(msg));
            }
            Action::CheckHealth => {
                if let Err(e) = check_health(ctx).await {
                    stop_watcher(ctx).await;
                    *lock(&ctx.scanner) = None;
                    ctx.set_state(shared, FolderState::Error, Some(e));
                    return Some(Input::HealthFailed);
                }
            }
            Action::CheckNeed => {
                let (index, id) = (shared.index.clone(), ctx.id.clone());
                let need = tokio::task::spawn_blocking(move || {
                    index
                        .read(&id)
                        .and_then(|r| r.counts())
                        .map(|c| c.need.entries())
                })
                .await;
                return Some(Input::NeedFound {
                    need: match need {
                        Ok(Ok(n)) => n,
                        _ => 0,
                    },
                });
            }
            Action::FullScan => {
                let _ = scan(shared, ctx, None).await;
            }
            Action::StartPull if ctx.config().folder_type == FolderType::SendOnly => {
                // A send-only folder never pulls: what it needs stays needed (out of sync),
                // apart from what it already has (see `folder_types::settle_send_only`).
                let r =
                    folder_types::run_blocking(shared, ctx, folder_types::Op::SettleSendOnly).await;
                if r.as_ref().is_ok_and(|n| *n > 0) {
                    publish_sequence(shared, ctx).await;
                }
                return Some(Input::PullDone(PullSummary {
                    changed: false,
                    more: false,
                    failed: r.is_err(),
                    no_space: false,
                }));
            }
            Action::StartPull => {
                if let Err(e) = check_health(ctx).await {
                    ctx.set_state(shared, FolderState::Error, Some(e));
                    return Some(Input::PullRefused);
                }
                ctx.pulling.store(true, Ordering::SeqCst);
                if ctx.state() != FolderState::Error {
                    ctx.set_state(shared, FolderState::Syncing, None);
                }
                let (s2, c2) = (shared.clone(), ctx.clone());
                self.pull_task = Some(tokio::spawn(async move {
                    let outcome = puller::pull(s2, c2.clone()).await;
                    let _ = c2.tx.send(FolderInput::PullDone(outcome));
                }));
            }
        }
        None
    }
}

/// The root's health check ([`health::check`]), on a blocking thread.
async fn check_health(ctx: &FolderCtx) -> Result<(), String> {
    let path = ctx.config().path;
    match tokio::task::spawn_blocking(move || health::check(&path)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(format!("health check: {e}")),
    }
}

/// Whether a configuration change touches what the scanner and the watcher were built with
/// (then they are stopped and started again with a full scan).
pub(crate) fn needs_restart(old: &FolderConfig, new: &FolderConfig) -> bool {
    old.path != new.path
        || old.ignore_perms != new.ignore_perms
        || old.auto_normalize != new.auto_normalize
        || old.case_sensitive_fs != new.case_sensitive_fs
        || old.watcher_enabled != new.watcher_enabled
        || old.watcher_delay_ms != new.watcher_delay_ms
        || old.rescan_interval_s != new.rescan_interval_s
        || old.folder_type != new.folder_type
}

/// Stops the watcher, drops the scanner and starts both again from the current
/// configuration (with the full scan that [`start`] does). The caller counted it as a pending
/// rescan (so the folder is not reported in sync until it has committed); this ends it.
async fn restart(shared: &Arc<Shared>, ctx: &Arc<FolderCtx>) {
    stop_watcher(ctx).await;
    *lock(&ctx.scanner) = None;
    start(shared, ctx).await;
    ctx.pending_rescans.fetch_sub(1, Ordering::SeqCst);
}

async fn stop_watcher(ctx: &FolderCtx) {
    let w = lock(&ctx.watcher).take();
    if let Some(w) = w {
        let _ = tokio::task::spawn_blocking(move || w.stop()).await;
    }
}

/// A started folder: its watcher (if running) and why the watcher is not.
type Started = (Option<FolderWatcher>, Option<String>);

/// How often [`start`] looks whether the initial scan has committed a chunk to announce.
const START_COMMIT_POLL: Duration = Duration::from_millis(100);

/// Health check, scanner creation and the initial full scan (through the watcher when it is
/// enabled: it scans before it starts watching). A long scan commits in chunks (see
/// `syncd_scan`'s scanner): each is announced to the peers while the scan goes on, so they
/// start pulling before it ends.
async fn start(shared: &Arc<Shared>, ctx: &Arc<FolderCtx>) {
    let cfg = ctx.config();
    if let Err(e) = health::check(&cfg.path) {
        ctx.set_state(shared, FolderState::Error, Some(e.to_string()));
        return;
    }
    ctx.set_state(shared, FolderState::Scanning, None);
    let index = shared.index.clone();
    let scan_cfg = ScanConfig {
        ignore_perms: cfg.ignore_perms,
        auto_normalize: cfg.auto_normalize,
        receive_only: cfg.folder_type == crate::config::FolderType::ReceiveOnly,
        case_sensitive_fs: cfg.case_sensitive_fs,
        ..ScanConfig::default()
    };
    let watch_cfg = WatchConfig {
        delay: Duration::from_millis(u64::from(cfg.watcher_delay_ms.max(1))),
        rescan_interval: (cfg.rescan_interval_s > 0)
            .then(|| Duration::from_secs(u64::from(cfg.rescan_interval_s))),
        ..WatchConfig::default()
    };
    let enabled = cfg.watcher_enabled;
    let progress_ms = cfg.scan_progress_interval_ms;
    let made = tokio::task::spawn_blocking(move || {
        Scanner::new(&cfg.path, cfg.id.clone(), index, scan_cfg).map(Arc::new)
    })
    .await;
    let scanner = match made {
        Ok(Ok(s)) => {
            s.set_commit_hook(ctx.commit_hook());
            s
        }
        Ok(Err(e)) => {
            ctx.set_state(shared, FolderState::Error, Some(format!("scanning: {e}")));
            return;
        }
        Err(e) => {
            ctx.set_state(shared, FolderState::Error, Some(format!("scanning: {e}")));
            return;
        }
    };
    let s2 = scanner.clone();
    let mut job = tokio::task::spawn_blocking(move || -> Result<Started, String> {
        if enabled {
            match FolderWatcher::start(s2.clone(), watch_cfg) {
                Ok(w) => return Ok((Some(w), None)),
                Err(e) => {
                    s2.scan().map_err(|e| e.to_string())?;
                    return Ok((None, Some(e.to_string())));
                }
            }
        }
        s2.scan().map_err(|e| e.to_string())?;
        Ok((None, None))
    });
    let mut poll = tokio::time::interval(START_COMMIT_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = scanner.counters().batches;
    let mut progress = ScanProgress::new(&scanner, progress_ms);
    let res = loop {
        tokio::select! {
            res = &mut job => break res,
            _ = poll.tick() => {
                progress.poll(shared, &ctx.id);
                let batches = scanner.counters().batches;
                if batches != seen {
                    seen = batches;
                    publish_sequence(shared, ctx).await;
                }
            }
        }
    };
    match res {
        Ok(Ok((watcher, watch_error))) => {
            *lock(&ctx.scanner) = Some(scanner);
            *lock(&ctx.watcher) = watcher;
            lock(&ctx.runtime).watch_error = watch_error;
            ctx.scanned_once.store(true, Ordering::SeqCst);
            ctx.set_state(shared, FolderState::Idle, None);
            shared.events.emit(Event::ScanFinished {
                folder: ctx.id.clone(),
            });
            publish_sequence(shared, ctx).await;
        }
        Ok(Err(e)) => ctx.set_state(shared, FolderState::Error, Some(format!("scanning: {e}"))),
        Err(e) => ctx.set_state(shared, FolderState::Error, Some(format!("scanning: {e}"))),
    }
}

/// `FolderScanProgress` events for one scan: the scanner's counters are cumulative over every
/// scan, so this scan's figures are their growth since it started.
struct ScanProgress {
    scanner: Arc<Scanner>,
    start: syncd_scan::CounterSnapshot,
    started: Instant,
    every: Option<Duration>,
    /// When [`ScanProgress::poll`] next emits.
    next: Instant,
}

impl ScanProgress {
    fn new(scanner: &Arc<Scanner>, interval_ms: u32) -> ScanProgress {
        let every = (interval_ms > 0).then(|| Duration::from_millis(u64::from(interval_ms)));
        let started = Instant::now();
        ScanProgress {
            scanner: Arc::clone(scanner),
            start: scanner.counters(),
            started,
            every,
            next: started + every.unwrap_or_default(),
        }
    }

    /// Emits an event if the interval has passed since the last one (for callers that wake
    /// up often for other reasons).
    fn poll(&mut self, shared: &Arc<Shared>, folder: &FolderId) {
        if let Some(every) = self.every
            && Instant::now() >= self.next
        {
            self.emit(shared, folder);
            self.next = Instant::now() + every;
        }
    }

    /// Awaits `job`, emitting an event every interval while the scan has bytes to hash.
    async fn report_until<T>(
        self,
        job: tokio::task::JoinHandle<T>,
        shared: &Arc<Shared>,
        folder: &FolderId,
    ) -> Result<T, tokio::task::JoinError> {
        let Some(every) = self.every else {
            return job.await;
        };
        tokio::pin!(job);
        let mut tick = tokio::time::interval_at(self.started + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                res = &mut job => return res,
                _ = tick.tick() => self.emit(shared, folder),
            }
        }
    }

    fn emit(&self, shared: &Arc<Shared>, folder: &FolderId) {
        let now = self.scanner.counters();
        let total = now.bytes_total.saturating_sub(self.start.bytes_total);
        if total == 0 {
            return;
        }
        let current = now
            .bytes_done
            .saturating_sub(self.start.bytes_done)
            .min(total);
        let secs = self.started.elapsed().as_secs_f64();
        let hashed = now.bytes_hashed.saturating_sub(self.start.bytes_hashed);
        shared.events.emit(Event::FolderScanProgress {
            folder: folder.clone(),
            current,
            total,
            rate: if secs > 0.0 {
                hashed as f64 / secs
            } else {
                0.0
            },
        });
    }
}

/// A user-requested scan of the whole folder or of `sub`.
async fn scan(
    shared: &Arc<Shared>,
    ctx: &Arc<FolderCtx>,
    sub: Option<String>,
) -> Result<(), EngineError> {
    let cfg = ctx.config();
    if cfg.paused {
        return Err(EngineError::FolderPaused(ctx.id.clone()));
    }
    if let Err(e) = health::check(&cfg.path) {
        ctx.set_state(shared, FolderState::Error, Some(e.to_string()));
        return Err(EngineError::FolderError {
            folder: ctx.id.clone(),
            message: e.to_string(),
        });
    }
    let scanner = lock(&ctx.scanner).clone();
    let Some(scanner) = scanner else {
        start(shared, ctx).await;
        return match lock(&ctx.runtime).error.clone() {
            Some(message) => Err(EngineError::FolderError {
                folder: ctx.id.clone(),
                message,
            }),
            None => Ok(()),
        };
    };
    let paths = match sub.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => vec![RelPath::new(s).map_err(|e| EngineError::Scan {
            folder: ctx.id.clone(),
            message: e.to_string(),
        })?],
        None => Vec::new(),
    };
    let prev = ctx.state();
    ctx.set_state(shared, FolderState::Scanning, None);
    let progress = ScanProgress::new(&scanner, cfg.scan_progress_interval_ms);
    let job = tokio::task::spawn_blocking(move || {
        let _ = scanner.reload_ignores();
        if paths.is_empty() {
            scanner.scan()
        } else {
            scanner.scan_paths(&paths)
        }
    });
    let res = progress.report_until(job, shared, &ctx.id).await;
    ctx.set_state(
        shared,
        if prev == FolderState::Syncing {
            prev
        } else {
            FolderState::Idle
        },
        None,
    );
    shared.events.emit(Event::ScanFinished {
        folder: ctx.id.clone(),
    });
    publish_sequence(shared, ctx).await;
    match res {
        Ok(Ok(_)) => {
            ctx.scanned_once.store(true, Ordering::SeqCst);
            Ok(())
        }
        Ok(Err(e)) => Err(EngineError::Scan {
            folder: ctx.id.clone(),
            message: e.to_string(),
        }),
        Err(e) => Err(EngineError::Scan {
            folder: ctx.id.clone(),
            message: e.to_string(),
        }),
    }
}

/// Reads our local sequence and, when it moved, wakes the index senders.
async fn publish_sequence(shared: &Arc<Shared>, ctx: &Arc<FolderCtx>) {
    let (index, id) = (shared.index.clone(), ctx.id.clone());
    let seq = tokio::task::spawn_blocking(move || index.read(&id).map(|r| r.local_sequence()))
        .await
        .ok()
        .and_then(Result::ok);
    if let Some(seq) = seq {
        let old = *ctx.local_seq.borrow();
        if seq != old {
            ctx.local_seq.send_replace(seq);
            shared.events.emit(Event::LocalIndexUpdated {
                folder: ctx.id.clone(),
                items: seq.saturating_sub(old),
                sequence: seq,
                filenames: Vec::new(),
            });
            if seq > old
                && shared.disk_events.load(Ordering::Relaxed)
                && shared.events.has_subscribers()
            {
                disk_events(shared, ctx, old).await;
            }
        }
    }
}

/// Emits [`Event::DiskChanged`] for our records after sequence `after` (at most
/// [`crate::DISK_EVENTS_PER_UPDATE`]).
async fn disk_events(shared: &Arc<Shared>, ctx: &Arc<FolderCtx>, after: u64) {
    let (index, id) = (shared.index.clone(), ctx.id.clone());
    let records = tokio::task::spawn_blocking(move || {
        index
            .read(&id)
            .and_then(|r| r.local_batch(after, crate::DISK_EVENTS_PER_UPDATE))
    })
    .await
    .ok()
    .and_then(Result::ok)
    .unwrap_or_default();
    let me = shared.device_id.short();
    let label = ctx.config().label;
    for r in records.into_iter().filter(|r| !r.invalid) {
        shared.events.emit(Event::DiskChanged {
            folder: ctx.id.clone(),
            label: label.clone(),
            path: r.name.as_str().to_owned(),
            kind: r.kind,
            deleted: r.deleted,
            modified_by: r.modified_by,
            local: r.modified_by == me,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fid() -> FolderId {
        FolderId::new("f").unwrap()
    }

    #[test]
    fn state_change_emits_one_event_with_from_and_to() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut rt = FolderRuntime::new(false);
        rt.set_state(&fid(), FolderState::Scanning, None, &bus);
        match rx.try_recv().unwrap() {
            Event::StateChanged { from, to, .. } => {
                assert_eq!((from, to), (FolderState::Idle, FolderState::Scanning))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn same_state_is_not_an_event() {
        let bus = EventBus::new();
        let mut rx = bus.subscribe();
        let mut rt = FolderRuntime::new(false);
        rt.set_state(&fid(), FolderState::Idle, None, &bus);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn error_is_kept_only_in_error_state() {
        let bus = EventBus::new();
        let mut rt = FolderRuntime::new(false);
        rt.set_state(
            &fid(),
            FolderState::Error,
            Some("folder path missing".into()),
            &bus,
        );
        assert_eq!(rt.error.as_deref(), Some("folder path missing"));
        rt.set_state(&fid(), FolderState::Idle, Some("ignored".into()), &bus);
        assert_eq!(rt.error, None);
    }

    #[test]
    fn paused_folder_starts_paused() {
        assert_eq!(FolderRuntime::new(true).state, FolderState::Paused);
    }
}

//! Progress of first scans and of pulls for the operator: indicatif bars when stderr is a
//! terminal, plain log lines with counts otherwise.
//!
//! Without a terminal, a folder's first scan logs `scanning` when it starts, a line with the
//! files and bytes found so far every few seconds, and `scan finished` with the totals; a pull
//! logs `syncing` with what is needed, a line with the bytes done every few seconds, and
//! `sync finished` with what it moved. Later scans (watcher, interval) stay quiet.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use syncd_engine::{EngineHandle, Event, FolderId, FolderState};
use tokio::sync::broadcast::error::RecvError;

const LOG_EVERY: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(500);

struct Task {
    bar: Option<ProgressBar>,
    /// Bytes to pull (the largest need seen during the pull).
    total_bytes: u64,
    /// Files to pull (the largest need seen during the pull).
    total_files: u64,
    started: Instant,
    last_log: Instant,
}

impl Task {
    fn new(bar: Option<ProgressBar>, total_bytes: u64, total_files: u64) -> Self {
        let now = Instant::now();
        Task {
            bar,
            total_bytes,
            total_files,
            started: now,
            last_log: now,
        }
    }

    fn log_due(&mut self) -> bool {
        if self.last_log.elapsed() >= LOG_EVERY {
            self.last_log = Instant::now();
            return true;
        }
        false
    }

    fn finish(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Watches the engine's events and shows progress until the engine stops.
pub fn spawn(engine: EngineHandle) -> tokio::task::JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    // Subscribe now, not when the task first runs: a first scan may already be under way.
    let rx = engine.subscribe();
    tokio::spawn(async move { Progress::new(engine, terminal).run(rx).await })
}

struct Progress {
    engine: EngineHandle,
    terminal: bool,
    multi: MultiProgress,
    scans: HashMap<FolderId, Task>,
    pulls: HashMap<FolderId, Task>,
    scanned: HashSet<FolderId>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Progress {
    fn new(engine: EngineHandle, terminal: bool) -> Self {
        let multi = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Progress {
            engine,
            terminal,
            multi,
            scans: HashMap::new(),
            pulls: HashMap::new(),
            scanned: HashSet::new(),
        }
    }

    async fn run(mut self, mut rx: tokio::sync::broadcast::Receiver<Event>) {
        // A folder may have started its first scan before we subscribed.
        for folder in self.engine.folder_ids() {
            let state = self.engine.folder_status(&folder).map(|s| s.state);
            if state == Some(FolderState::Scanning) {
                self.scan_started(&folder);
            }
        }
        let mut tick = tokio::time::interval(POLL_EVERY);
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(Event::StateChanged { folder, to, .. }) => self.state_changed(&folder, to),
                    Ok(Event::FolderScanProgress { folder, current, total, .. }) => {
                        if let Some(b) = self.scans.get(&folder).and_then(|t| t.bar.as_ref()) {
                            b.set_length(total);
                            b.set_position(current);
                        }
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => self.tick(),
            }
        }
    }

    fn state_changed(&mut self, folder: &FolderId, to: FolderState) {
        if to == FolderState::Scanning {
            self.scan_started(folder);
        } else if let Some(t) = self.scans.remove(folder) {
            self.scanned.insert(folder.clone());
            let local = self.engine.folder_status(folder).map(|s| s.local);
            let (files, dirs, bytes) =
                local.map_or((0, 0, 0), |c| (c.files, c.directories, c.bytes));
            if !self.terminal {
                tracing::info!(folder = %folder, files, directories = dirs, bytes,
                    seconds = t.started.elapsed().as_secs(), "scan finished");
            }
            t.finish();
        }
        let need = self.engine.folder_status(folder).map(|s| s.need);
        let (files, bytes) = need.map_or((0, 0), |n| (n.files, n.bytes));
        // A pull with no file data to move (deletions, directories only) shows nothing.
        if to == FolderState::Syncing
            && !self.pulls.contains_key(folder)
            && (files > 0 || bytes > 0)
        {
            let bar = self.terminal.then(|| {
                let b = self.multi.add(ProgressBar::new(bytes));
                b.set_style(style("{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {eta}"));
                b.set_prefix(format!("syncing {folder}"));
                b
            });
            if !self.terminal {
                tracing::info!(folder = %folder, need_files = files, need_bytes = bytes, "syncing");
            }
            self.pulls
                .insert(folder.clone(), Task::new(bar, bytes, files));
        } else if matches!(
            to,
            FolderState::Idle | FolderState::Error | FolderState::Paused
        ) && let Some(t) = self.pulls.remove(folder)
        {
            if !self.terminal {
                tracing::info!(folder = %folder,
                    files = t.total_files.saturating_sub(files),
                    bytes = t.total_bytes.saturating_sub(bytes),
                    need_bytes = bytes,
                    seconds = t.started.elapsed().as_secs(), "sync finished");
            }
            t.finish();
        }
    }

    /// Only a folder's first scan is shown; watcher and interval rescans stay quiet.
    fn scan_started(&mut self, folder: &FolderId) {
        if self.scanned.contains(folder) || self.scans.contains_key(folder) {
            return;
        }
        let bar = self.terminal.then(|| {
            let b = self.multi.add(ProgressBar::new_spinner());
            b.set_style(style("{prefix:>24} {spinner} {msg}"));
            b.set_prefix(format!("scanning {folder}"));
            b.enable_steady_tick(Duration::from_millis(200));
            b.tick();
            b
        });
        if !self.terminal {
            tracing::info!(folder = %folder, "scanning");
        }
        self.scans.insert(folder.clone(), Task::new(bar, 0, 0));
    }

    fn tick(&mut self) {
        for (folder, t) in self.scans.iter_mut() {
            let local = self.engine.folder_status(folder).map(|s| s.local);
            let (files, bytes) = local.map_or((0, 0), |c| (c.files, c.bytes));
            if let Some(b) = &t.bar {
                b.set_message(format!("{files} files, {}", indicatif::HumanBytes(bytes)));
            } else if t.log_due() {
                tracing::info!(folder = %folder, files, bytes, "scanning");
            }
        }
        for (folder, t) in self.pulls.iter_mut() {
            let need = self.engine.folder_status(folder).map(|s| s.need);
            let (need_files, need_bytes) = need.map_or((0, 0), |n| (n.files, n.bytes));
            t.total_bytes = t.total_bytes.max(need_bytes);
            t.total_files = t.total_files.max(need_files);
            let done = t.total_bytes - need_bytes.min(t.total_bytes);
            if let Some(b) = &t.bar {
                b.set_length(t.total_bytes);
                b.set_position(done);
            } else if t.log_due() {
                tracing::info!(folder = %folder, done_bytes = done, total_bytes = t.total_bytes,
                    need_files, "syncing");
            }
        }
    }
}

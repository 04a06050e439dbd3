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
use syncd_engine::{EngineHandle, Event, FolderId, FolderState, ItemAction};
use syncd_types::FileKind;
use tokio::sync::broadcast::error::RecvError;

const LOG_EVERY: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(500);

struct Task {
    bar: Option<ProgressBar>,
    /// Bytes to pull (the largest need seen during the pull).
    total_bytes: u64,
    /// Files to pull (the largest need seen during the pull).
    total_files: u64,
    /// Files the pull reported finished without error (`ItemFinished`).
    files_done: u64,
    /// The folder's local bytes when the pull started.
    local_bytes_at_start: u64,
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
            files_done: 0,
            local_bytes_at_start: 0,
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

    /// Files and bytes done so far. While a peer is still announcing its files (an initial
    /// sync from a peer that is scanning) the need grows during the pull, so need left is no
    /// measure of work done: the files reported finished and the growth of the local bytes
    /// count too, whichever is larger.
    fn done(&self, need_files: u64, need_bytes: u64, local_bytes: u64) -> (u64, u64) {
        let files = self.total_files.saturating_sub(need_files);
        let bytes = self.total_bytes.saturating_sub(need_bytes);
        let grown = local_bytes.saturating_sub(self.local_bytes_at_start);
        (files.max(self.files_done), bytes.max(grown))
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
        if terminal {
            crate::logbuf::set_bars(multi.clone());
        }
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
                    Ok(Event::ItemFinished { folder, kind: FileKind::File, action: ItemAction::Update, error: None, .. }) => {
                        if let Some(t) = self.pulls.get_mut(&folder) {
                            t.files_done += 1;
                        }
                    }
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
            let mut task = Task::new(bar, bytes, files);
            task.local_bytes_at_start = self.local_bytes(folder);
            self.pulls.insert(folder.clone(), task);
        } else if matches!(
            to,
            FolderState::Idle | FolderState::Error | FolderState::Paused
        ) && let Some(t) = self.pulls.remove(folder)
        {
            if !self.terminal {
                let (done_files, done_bytes) = t.done(files, bytes, self.local_bytes(folder));
                tracing::info!(folder = %folder,
                    files = done_files,
                    bytes = done_bytes,
                    need_bytes = bytes,
                    seconds = t.started.elapsed().as_secs(), "sync finished");
            }
            t.finish();
        }
    }

    fn local_bytes(&self, folder: &FolderId) -> u64 {
        self.engine
            .folder_status(folder)
            .map_or(0, |s| s.local.bytes)
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
            let status = self.engine.folder_status(folder);
            let (need_files, need_bytes) = status
                .as_ref()
                .map_or((0, 0), |s| (s.need.files, s.need.bytes));
            let local_bytes = status.as_ref().map_or(0, |s| s.local.bytes);
            t.total_bytes = t.total_bytes.max(need_bytes);
            t.total_files = t.total_files.max(need_files);
            let (_, done) = t.done(need_files, need_bytes, local_bytes);
            // What is done and what is still needed: the need grows while a peer announces.
            t.total_bytes = t.total_bytes.max(done.saturating_add(need_bytes));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Work done by a pull, from the need it started with, the files reported finished and
    /// the local bytes' growth, when the need shrinks as usual and when it grows because the
    /// peer is still announcing files.
    #[test]
    fn a_pull_counts_what_it_did_even_while_the_need_grows() {
        // (need at start: files, bytes; files finished; local bytes at start;
        //  need now: files, bytes; local bytes now) -> (files done, bytes done)
        type Case = ((u64, u64), u64, u64, (u64, u64), u64, (u64, u64));
        let cases: [Case; 4] = [
            // Need shrinks to nothing: new files.
            ((2, 300), 2, 0, (0, 0), 300, (2, 300)),
            // A file replaced by one of the same size: the need says 200 bytes moved.
            ((1, 200), 1, 200, (0, 0), 200, (1, 200)),
            // The need grew from 1,000 to 5,000 files while 900 were pulled.
            (
                (1_000, 10_000),
                900,
                0,
                (5_000, 50_000),
                9_000,
                (900, 9_000),
            ),
            // Nothing done yet.
            ((10, 100), 0, 50, (10, 100), 50, (0, 0)),
        ];
        for ((tf, tb), finished, start, (nf, nb), now, want) in cases {
            let mut t = Task::new(None, tb, tf);
            t.files_done = finished;
            t.local_bytes_at_start = start;
            assert_eq!(
                t.done(nf, nb, now),
                want,
                "case {tf} {tb} {finished} {nf} {nb} {now}"
            );
        }
    }
}

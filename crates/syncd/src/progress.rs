//! Progress of scans and pulls for the operator: indicatif bars when stderr is a terminal,
//! plain log lines (at most one per folder every few seconds) otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use syncd_engine::{EngineHandle, Event, FolderId, FolderState};
use tokio::sync::broadcast::error::RecvError;

const LOG_EVERY: Duration = Duration::from_secs(5);
const POLL_EVERY: Duration = Duration::from_millis(500);

struct Task {
    bar: Option<ProgressBar>,
    total: u64,
    last_log: Instant,
}

/// Watches the engine's events and shows progress until the engine stops.
pub fn spawn(engine: EngineHandle) -> tokio::task::JoinHandle<()> {
    let terminal = std::io::stderr().is_terminal();
    tokio::spawn(async move { run(engine, terminal).await })
}

fn bar(multi: &MultiProgress, label: String, total: u64) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let b = multi.add(ProgressBar::new(total));
    b.set_style(style);
    b.set_prefix(label);
    b
}

async fn run(engine: EngineHandle, terminal: bool) {
    let mut rx = engine.subscribe();
    let multi = MultiProgress::with_draw_target(if terminal {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut scans: HashMap<FolderId, Task> = HashMap::new();
    let mut pulls: HashMap<FolderId, Task> = HashMap::new();
    let mut tick = tokio::time::interval(POLL_EVERY);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(Event::FolderScanProgress { folder, current, total }) => {
                    let t = scans.entry(folder.clone()).or_insert_with(|| Task {
                        bar: terminal.then(|| bar(&multi, format!("scanning {folder}"), total)),
                        total,
                        last_log: Instant::now(),
                    });
                    if let Some(b) = &t.bar {
                        b.set_length(total);
                        b.set_position(current);
                    } else if t.last_log.elapsed() >= LOG_EVERY {
                        t.last_log = Instant::now();
                        tracing::info!(folder = %folder, hashed = current, total, "scanning");
                    }
                }
                Ok(Event::StateChanged { folder, to, .. }) => {
                    if to != FolderState::Scanning
                        && let Some(b) = scans.remove(&folder).and_then(|t| t.bar) {
                            b.finish_and_clear();
                        }
                    if to == FolderState::Syncing && !pulls.contains_key(&folder) {
                        let total = engine.folder_status(&folder).map_or(0, |s| s.need.bytes);
                        pulls.insert(folder.clone(), Task {
                            bar: terminal.then(|| bar(&multi, format!("syncing {folder}"), total)),
                            total,
                            last_log: Instant::now(),
                        });
                        if !terminal {
                            tracing::info!(folder = %folder, need_bytes = total, "syncing");
                        }
                    } else if to != FolderState::Syncing
                        && let Some(t) = pulls.remove(&folder)
                            && let Some(b) = t.bar {
                                b.finish_and_clear();
                            }
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            },
            _ = tick.tick() => {
                for (folder, t) in pulls.iter_mut() {
                    let need = engine.folder_status(folder).map_or(0, |s| s.need.bytes);
                    if need > t.total {
                        t.total = need;
                    }
                    let done = t.total - need.min(t.total);
                    if let Some(b) = &t.bar {
                        b.set_length(t.total);
                        b.set_position(done);
                    } else if t.last_log.elapsed() >= LOG_EVERY {
                        t.last_log = Instant::now();
                        tracing::info!(folder = %folder, done_bytes = done, total_bytes = t.total, "syncing");
                    }
                }
            }
        }
    }
}

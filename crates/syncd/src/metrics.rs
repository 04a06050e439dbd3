//! `/metrics`: the daemon's state in the Prometheus text exposition format (version 0.0.4),
//! behind the same authentication as the REST API.
//!
//! Gauges read at request time from the engine (folder state and counts, what is needed,
//! connections and their byte counters) and counters kept from the engine's events (time
//! spent scanning and pulling, per folder, counted from the first state change the daemon
//! sees: a first scan already running when it starts listening is not counted). Label values are escaped as the format says, so a
//! folder ID or device name can never break a line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use syncd_engine::{EngineHandle, Event, FolderId, FolderState};
use tokio::sync::broadcast;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Time spent in one kind of work, and how many times it ended.
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    seconds: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct FolderTimes {
    /// When the current state began.
    since: Option<(FolderState, Instant)>,
    scan: Spent,
    pull: Spent,
}

/// Scan and pull durations per folder, from `StateChanged` events.
#[derive(Debug, Default)]
pub struct Durations {
    folders: Mutex<BTreeMap<FolderId, FolderTimes>>,
}

impl Durations {
    /// Applies the events of `rx` until the engine closes the stream.
    pub async fn feed(&self, mut rx: broadcast::Receiver<Event>) {
        loop {
            match rx.recv().await {
                Ok(e) => self.apply(&e, Instant::now()),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Takes one event into account at monotonic time `at`.
    pub fn apply(&self, e: &Event, at: Instant) {
        let Event::StateChanged {
            folder, from, to, ..
        } = e
        else {
            return;
        };
        let Ok(mut all) = self.folders.lock() else {
            return;
        };
        let f = all.entry(folder.clone()).or_default();
        if let Some((state, since)) = f.since
            && state == *from
        {
            let took = at.saturating_duration_since(since).as_secs_f64();
            let slot = match from {
                FolderState::Scanning => Some(&mut f.scan),
                FolderState::Syncing => Some(&mut f.pull),
                _ => None,
            };
            if let Some(s) = slot {
                s.seconds += took;
                s.count += 1;
            }
        }
        f.since = Some((*to, at));
    }

    fn snapshot(&self) -> BTreeMap<FolderId, (Spent, Spent)> {
        self.folders
            .lock()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), (v.scan, v.pull)))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A label value escaped for the text format (backslash, double quote, newline).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Writer(String);

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.0.push(',');
                }
                let _ = write!(self.0, "{k}=\"{}\"", label(v));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {value}");
    }
}

const STATES: &[FolderState] = &[
    FolderState::Idle,
    FolderState::Scanning,
    FolderState::ScanWaiting,
    FolderState::SyncWaiting,
    FolderState::SyncPreparing,
    FolderState::Syncing,
    FolderState::Error,
    FolderState::Paused,
];

/// The exposition text of `engine`'s current state and `durations`.
pub fn render(engine: &EngineHandle, durations: &Durations) -> String {
    let mut w = Writer(String::with_capacity(4096));
    let folders: Vec<_> = engine
        .folder_ids()
        .into_iter()
        .filter_map(|f| Some((f.clone(), engine.folder_status(&f)?)))
        .collect();

    w.family(
        "syncd_folder_state",
        "gauge",
        "1 for the state each folder is in, 0 for the others.",
    );
    for (id, s) in &folders {
        for st in STATES {
            w.sample(
                "syncd_folder_state",
                &[("folder", id.as_str()), ("state", st.as_str())],
                f64::from(u8::from(s.state == *st)),
            );
        }
    }
    for (name, help, pick) in [
        (
            "syncd_folder_global_files",
            "Files in the cluster's global state of the folder.",
            (|s: &syncd_engine::FolderStatus| s.global.files)
                as fn(&syncd_engine::FolderStatus) -> u64,
        ),
        (
            "syncd_folder_global_bytes",
            "Bytes in the cluster's global state of the folder.",
            |s| s.global.bytes,
        ),
        (
            "syncd_folder_local_files",
            "Files this device holds in the folder.",
            |s| s.local.files,
        ),
        (
            "syncd_folder_local_bytes",
            "Bytes this device holds in the folder.",
            |s| s.local.bytes,
        ),
        (
            "syncd_folder_need_items",
            "Files, directories, symlinks and deletions this device still needs.",
            |s| s.need.files + s.need.directories + s.need.symlinks + s.need.deleted,
        ),
        (
            "syncd_folder_need_bytes",
            "Bytes this device still needs.",
            |s| s.need.bytes,
        ),
        (
            "syncd_folder_errors",
            "Items that failed in the last pull or scan.",
            |s| s.errors.len() as u64,
        ),
    ] {
        w.family(name, "gauge", help);
        for (id, s) in &folders {
            w.sample(name, &[("folder", id.as_str())], pick(s) as f64);
        }
    }

    let times = durations.snapshot();
    for (name, kind, help, pick) in [
        (
            "syncd_folder_scan_seconds_total",
            "counter",
            "Time spent scanning the folder since start.",
            (|t: &(Spent, Spent)| t.0.seconds) as fn(&(Spent, Spent)) -> f64,
        ),
        (
            "syncd_folder_scans_total",
            "counter",
            "Scans of the folder that ended since start.",
            |t| t.0.count as f64,
        ),
        (
            "syncd_folder_pull_seconds_total",
            "counter",
            "Time spent pulling changes into the folder since start.",
            |t| t.1.seconds,
        ),
        (
            "syncd_folder_pulls_total",
            "counter",
            "Pulls into the folder that ended since start.",
            |t| t.1.count as f64,
        ),
    ] {
        w.family(name, kind, help);
        for (id, t) in &times {
            w.sample(name, &[("folder", id.as_str())], pick(t));
        }
    }

    let conns = engine.connections();
    w.family(
        "syncd_devices",
        "gauge",
        "Configured remote devices, by connection state.",
    );
    for (state, n) in [
        ("connected", conns.iter().filter(|c| c.connected).count()),
        (
            "disconnected",
            conns.iter().filter(|c| !c.connected && !c.paused).count(),
        ),
        ("paused", conns.iter().filter(|c| c.paused).count()),
    ] {
        w.sample("syncd_devices", &[("state", state)], n as f64);
    }
    for (name, help, out) in [
        (
            "syncd_device_received_bytes_total",
            "Bytes received from the device over its current connection (TLS included).",
            false,
        ),
        (
            "syncd_device_sent_bytes_total",
            "Bytes sent to the device over its current connection (TLS included).",
            true,
        ),
    ] {
        w.family(name, "counter", help);
        for c in conns.iter().filter(|c| c.connected) {
            let id = c.device.to_string();
            let v = if out {
                c.out_bytes_total
            } else {
                c.in_bytes_total
            };
            w.sample(name, &[("device", &id), ("name", &c.name)], v as f64);
        }
    }
    w.family(
        "syncd_pending_devices",
        "gauge",
        "Unknown devices that asked to connect and are waiting for a decision.",
    );
    w.sample(
        "syncd_pending_devices",
        &[],
        engine.pending_devices().len() as f64,
    );
    w.family(
        "syncd_pending_folders",
        "gauge",
        "Folders offered by devices and not shared with them yet.",
    );
    w.sample(
        "syncd_pending_folders",
        &[],
        engine.pending_folders(None).len() as f64,
    );
    w.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn time_in_scanning_and_syncing_is_counted() {
        let d = Durations::default();
        let f = FolderId::new("f").unwrap_or_else(|_| unreachable!());
        let t0 = Instant::now();
        let ev = |from, to| Event::StateChanged {
            folder: f.clone(),
            from,
            to,
            error: None,
        };
        d.apply(&ev(FolderState::Idle, FolderState::Scanning), t0);
        d.apply(
            &ev(FolderState::Scanning, FolderState::Idle),
            t0 + std::time::Duration::from_millis(1500),
        );
        d.apply(
            &ev(FolderState::Idle, FolderState::Syncing),
            t0 + std::time::Duration::from_secs(2),
        );
        d.apply(
            &ev(FolderState::Syncing, FolderState::Idle),
            t0 + std::time::Duration::from_secs(5),
        );
        let s = d.snapshot();
        let (scan, pull) = s[&f];
        assert_eq!((scan.count, pull.count), (1, 1));
        assert!((scan.seconds - 1.5).abs() < 1e-9 && (pull.seconds - 3.0).abs() < 1e-9);
    }
}

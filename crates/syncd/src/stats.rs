//! `/rest/stats/device` and `/rest/stats/folder`: when each device was last seen and how long
//! its last connection lasted; each folder's last scan and last received file. Fed from the
//! engine's events. Kept in memory only (Syncthing keeps them in its database): after a
//! restart a device reads "never seen" until it connects again.
//!
//! Memory is bounded by the number of devices and folders that produced events (one small
//! entry each); a removed device or folder leaves its entry, which costs a few dozen bytes.
//!
//! Also the GUI's error list (`/rest/system/error`): a folder that stops with an error, and
//! anything a client posts, newest last, at most [`MAX_ERRORS`].

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use syncd_engine::{DeviceId, Event, FolderId, FolderState, ItemAction};
use tokio::sync::broadcast;

use crate::timefmt::{ZERO_TIME, rfc3339, rfc3339_or_zero};

#[derive(Debug, Default, Clone)]
struct DeviceStat {
    last_seen: Option<SystemTime>,
    connected_at: Option<Instant>,
    last_duration_s: f64,
}

#[derive(Debug, Default, Clone)]
struct FolderStat {
    last_scan: Option<SystemTime>,
    last_file: Option<(SystemTime, String, bool)>,
}

/// How many errors `/rest/system/error` keeps.
pub const MAX_ERRORS: usize = 100;

/// Syncthing's log level of the errors it shows in the GUI (warning).
const LEVEL_WARN: u8 = 3;

/// The statistics, updated by [`Stats::apply`].
#[derive(Debug, Default)]
pub struct Stats {
    devices: Mutex<HashMap<DeviceId, DeviceStat>>,
    folders: Mutex<HashMap<FolderId, FolderStat>>,
    errors: Mutex<VecDeque<(SystemTime, String)>>,
}

impl Stats {
    /// Applies the events of `rx` until the engine closes the stream.
    pub async fn feed(&self, mut rx: broadcast::Receiver<Event>) {
        loop {
            match rx.recv().await {
                Ok(e) => self.apply(&e, SystemTime::now(), Instant::now()),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Adds an error for the GUI.
    pub fn push_error(&self, now: SystemTime, message: String) {
        if let Ok(mut e) = self.errors.lock() {
            e.push_back((now, message));
            while e.len() > MAX_ERRORS {
                e.pop_front();
            }
        }
    }

    /// Forgets every error.
    pub fn clear_errors(&self) {
        if let Ok(mut e) = self.errors.lock() {
            e.clear();
        }
    }

    /// `/rest/system/error`: `{"errors": [{"when", "message", "level"}]}`, or `null` for none,
    /// as Syncthing 1.19.
    pub fn errors_json(&self) -> Value {
        let list: Vec<Value> = self
            .errors
            .lock()
            .map(|e| {
                e.iter()
                    .map(|(t, m)| json!({"when": rfc3339(*t), "message": m, "level": LEVEL_WARN}))
                    .collect()
            })
            .unwrap_or_default();
        if list.is_empty() {
            json!({ "errors": null })
        } else {
            json!({ "errors": list })
        }
    }

    /// Takes one event into account, at wall time `now` and monotonic time `at`.
    pub fn apply(&self, e: &Event, now: SystemTime, at: Instant) {
        match e {
            Event::StateChanged {
                folder,
                to: FolderState::Error,
                error,
                ..
            } => {
                let why = error.as_deref().unwrap_or("unknown error");
                self.push_error(now, format!("Error on folder \"{folder}\": {why}"));
            }
            Event::DeviceConnected { device, .. } => {
                if let Ok(mut d) = self.devices.lock() {
                    let s = d.entry(*device).or_default();
                    s.last_seen = Some(now);
                    s.connected_at = Some(at);
                }
            }
            Event::DeviceDisconnected { device, .. } => {
                if let Ok(mut d) = self.devices.lock() {
                    let s = d.entry(*device).or_default();
                    s.last_seen = Some(now);
                    if let Some(since) = s.connected_at.take() {
                        s.last_duration_s = at.saturating_duration_since(since).as_secs_f64();
                    }
                }
            }
            Event::StateChanged {
                folder, from, to, ..
            } if *from == FolderState::Scanning && *to != FolderState::Scanning => {
                if let Ok(mut f) = self.folders.lock() {
                    f.entry(folder.clone()).or_default().last_scan = Some(now);
                }
            }
            Event::ItemFinished {
                folder,
                item,
                action,
                error: None,
                ..
            } => {
                if let Ok(mut f) = self.folders.lock() {
                    f.entry(folder.clone()).or_default().last_file =
                        Some((now, item.clone(), *action == ItemAction::Delete));
                }
            }
            _ => {}
        }
    }

    /// `/rest/stats/device` for `devices` (every configured one, ours included). A connected
    /// device was seen now; one never seen reads the Unix epoch, as Syncthing.
    pub fn devices_json(&self, devices: &[DeviceId], now: SystemTime, at: Instant) -> Value {
        let map = self.devices.lock().map(|d| d.clone()).unwrap_or_default();
        let mut out = Map::new();
        for id in devices {
            let s = map.get(id).cloned().unwrap_or_default();
            let (seen, duration) = match s.connected_at {
                Some(since) => (Some(now), at.saturating_duration_since(since).as_secs_f64()),
                None => (s.last_seen, s.last_duration_s),
            };
            out.insert(
                id.to_string(),
                json!({
                    "lastSeen": rfc3339(seen.unwrap_or(UNIX_EPOCH)),
                    "lastConnectionDurationS": duration,
                }),
            );
        }
        Value::Object(out)
    }

    /// `/rest/stats/folder` for `folders`; "never" is Go's zero time.
    pub fn folders_json(&self, folders: &[FolderId]) -> Value {
        let map = self.folders.lock().map(|f| f.clone()).unwrap_or_default();
        let mut out = Map::new();
        for id in folders {
            let s = map.get(id).cloned().unwrap_or_default();
            let last_file = match &s.last_file {
                Some((t, name, deleted)) => {
                    json!({"at": rfc3339(*t), "filename": name, "deleted": deleted})
                }
                None => json!({"at": ZERO_TIME, "filename": "", "deleted": false}),
            };
            out.insert(
                id.as_str().to_owned(),
                json!({"lastFile": last_file, "lastScan": rfc3339_or_zero(s.last_scan)}),
            );
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

    #[test]
    fn a_device_is_seen_while_connected_and_keeps_its_last_duration() {
        let stats = Stats::default();
        let id: DeviceId = PEER.parse().unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let i0 = Instant::now();
        let never = stats.devices_json(&[id], t0, i0);
        assert_eq!(never[PEER]["lastSeen"], "1970-01-01T00:00:00Z");
        assert_eq!(never[PEER]["lastConnectionDurationS"], 0.0);
        stats.apply(
            &Event::DeviceConnected {
                device: id,
                device_name: String::new(),
                client_name: "syncd".into(),
                client_version: "v0".into(),
                addr: "127.0.0.1:1".parse().unwrap(),
                conn_type: "tcp-client",
            },
            t0,
            i0,
        );
        let later = t0 + Duration::from_secs(30);
        let now = stats.devices_json(&[id], later, i0 + Duration::from_secs(30));
        assert_eq!(now[PEER]["lastSeen"], rfc3339(later));
        assert_eq!(now[PEER]["lastConnectionDurationS"], 30.0);
        stats.apply(
            &Event::DeviceDisconnected {
                device: id,
                error: "gone".into(),
            },
            t0 + Duration::from_secs(40),
            i0 + Duration::from_secs(40),
        );
        let after = stats.devices_json(
            &[id],
            t0 + Duration::from_secs(100),
            i0 + Duration::from_secs(100),
        );
        assert_eq!(
            after[PEER]["lastSeen"],
            rfc3339(t0 + Duration::from_secs(40))
        );
        assert_eq!(after[PEER]["lastConnectionDurationS"], 40.0);
    }

    #[test]
    fn errors_are_listed_newest_last_bounded_and_cleared() {
        let stats = Stats::default();
        assert_eq!(stats.errors_json(), json!({"errors": null}));
        stats.apply(
            &Event::StateChanged {
                folder: FolderId::new("f").unwrap(),
                from: FolderState::Idle,
                to: FolderState::Error,
                error: Some("folder marker missing".into()),
            },
            UNIX_EPOCH,
            Instant::now(),
        );
        let got = stats.errors_json();
        assert_eq!(
            got["errors"][0],
            json!({"when": "1970-01-01T00:00:00Z", "message": "Error on folder \"f\": folder marker missing", "level": 3})
        );
        for i in 0..MAX_ERRORS {
            stats.push_error(UNIX_EPOCH, format!("e{i}"));
        }
        let got = stats.errors_json();
        assert_eq!(got["errors"].as_array().unwrap().len(), MAX_ERRORS);
        assert_eq!(
            got["errors"][MAX_ERRORS - 1]["message"],
            format!("e{}", MAX_ERRORS - 1)
        );
        stats.clear_errors();
        assert_eq!(stats.errors_json(), json!({"errors": null}));
    }

    #[test]
    fn a_folder_records_its_last_scan_and_last_received_file() {
        let stats = Stats::default();
        let f = FolderId::new("f").unwrap();
        let empty = stats.folders_json(std::slice::from_ref(&f));
        assert_eq!(
            empty,
            json!({"f": {"lastFile": {"at": ZERO_TIME, "filename": "", "deleted": false}, "lastScan": ZERO_TIME}})
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        stats.apply(
            &Event::StateChanged {
                folder: f.clone(),
                from: FolderState::Scanning,
                to: FolderState::Idle,
                error: None,
            },
            t,
            Instant::now(),
        );
        stats.apply(
            &Event::ItemFinished {
                folder: f.clone(),
                item: "a/b.txt".into(),
                kind: syncd_types::FileKind::File,
                action: ItemAction::Delete,
                error: None,
            },
            t,
            Instant::now(),
        );
        let got = stats.folders_json(std::slice::from_ref(&f));
        assert_eq!(got["f"]["lastScan"], rfc3339(t));
        assert_eq!(
            got["f"]["lastFile"],
            json!({"at": rfc3339(t), "filename": "a/b.txt", "deleted": true})
        );
    }
}

//! The event log behind `/rest/events`: a bounded buffer of Syncthing-shaped events with
//! increasing IDs, fed from the engine's broadcast channel, read by long polls.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use syncd_engine::Event;
use tokio::sync::{broadcast, watch};

use crate::timefmt::rfc3339_nano;

/// How many events the log keeps (Syncthing buffers 1000 per subscription).
pub const LOG_CAPACITY: usize = 1000;
/// Disk events kept (Syncthing's `events/disk` subscription), apart from the rest: a large
/// scan or pull logs many, and they must not push the other events out.
pub const DISK_LOG_CAPACITY: usize = 1000;

/// Event types left out unless asked for (Syncthing's default mask).
const HIDDEN_BY_DEFAULT: &[&str] = &["LocalChangeDetected", "RemoteChangeDetected"];

#[derive(Debug, Clone)]
struct Logged {
    id: u64,
    kind: &'static str,
    time: SystemTime,
    body: Body,
}

/// An event's `data`: the engine's events are kept as they came and turned into JSON only
/// when a poll reads them. An initial sync logs several events per file; most leave the
/// bounded log unread, and building (then dropping) their JSON was a measurable share of a
/// receiving daemon's CPU.
#[derive(Debug, Clone)]
enum Body {
    Data(Value),
    Engine(Event, f64),
}

impl Logged {
    fn json(&self) -> Value {
        let data = match &self.body {
            Body::Data(v) => v.clone(),
            Body::Engine(e, seconds) => {
                crate::json::event(e, *seconds).map_or(Value::Null, |(_, d)| d)
            }
        };
        json!({
            "id": self.id,
            "globalID": self.id,
            "time": rfc3339_nano(self.time),
            "type": self.kind,
            "data": data,
        })
    }
}

/// The event log. IDs start at 1 and increase by one per event.
#[derive(Debug)]
pub struct EventLog {
    inner: Mutex<Queues>,
    last_id: watch::Sender<u64>,
}

/// The events, and apart from them the disk events (see [`DISK_LOG_CAPACITY`]).
#[derive(Debug, Default)]
struct Queues {
    main: VecDeque<Logged>,
    disk: VecDeque<Logged>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            inner: Mutex::new(Queues::default()),
            last_id: watch::channel(0).0,
        }
    }
}

impl EventLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends an event of Syncthing type `kind` with `data`; returns its ID.
    pub fn push(&self, kind: &'static str, data: Value) -> u64 {
        self.append(kind, Body::Data(data))
    }

    fn append(&self, kind: &'static str, body: Body) -> u64 {
        let time = SystemTime::now();
        let mut qs = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let id = *self.last_id.borrow() + 1;
        let (q, cap) = if HIDDEN_BY_DEFAULT.contains(&kind) {
            (&mut qs.disk, DISK_LOG_CAPACITY)
        } else {
            (&mut qs.main, LOG_CAPACITY)
        };
        q.push_back(Logged {
            id,
            kind,
            time,
            body,
        });
        while q.len() > cap {
            q.pop_front();
        }
        // Under the lock: IDs stay unique and in order.
        self.last_id.send_replace(id);
        drop(qs);
        id
    }

    fn collect(&self, since: u64, mask: Option<&[String]>, limit: Option<usize>) -> Vec<Value> {
        let qs = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let wanted = |kind: &str| match mask {
            Some(m) => m.iter().any(|k| k == kind),
            None => !HIDDEN_BY_DEFAULT.contains(&kind),
        };
        let mut picked: Vec<&Logged> = qs
            .main
            .iter()
            .chain(qs.disk.iter())
            .filter(|e| e.id > since && wanted(e.kind))
            .collect();
        picked.sort_by_key(|e| e.id);
        if let Some(limit) = limit.filter(|&l| l > 0 && l < picked.len()) {
            picked.drain(..picked.len() - limit);
        }
        // The JSON is built under the lock, once per event returned.
        picked.into_iter().map(Logged::json).collect()
    }

    /// Long poll: events with ID > `since` (of the types in `mask`, else the default set),
    /// waiting up to `timeout` for at least one; `limit` keeps only the newest N.
    pub async fn poll(
        &self,
        since: u64,
        mask: Option<Vec<String>>,
        limit: Option<usize>,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut rx = self.last_id.subscribe();
        loop {
            rx.borrow_and_update();
            let found = self.collect(since, mask.as_deref(), limit);
            if !found.is_empty() {
                return found;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Vec::new(),
            }
        }
    }

    /// Feeds the log from the engine's event stream until the stream closes. Tracks each
    /// folder's last state change for `StateChanged.duration`.
    pub async fn feed(&self, mut rx: broadcast::Receiver<Event>) {
        let mut since: HashMap<String, Instant> = HashMap::new();
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        dropped = n,
                        "event log fell behind the engine; events dropped"
                    );
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let mut seconds = 0.0;
            if let Event::StateChanged { folder, .. } = &event {
                let now = Instant::now();
                if let Some(prev) = since.insert(folder.as_str().to_owned(), now) {
                    seconds = now.duration_since(prev).as_secs_f64();
                }
            }
            log_event(&event);
            if let Some(kind) = crate::json::event_kind(&event) {
                self.append(kind, Body::Engine(event, seconds));
            }
        }
    }
}

/// Plain log lines for the operator (the REST log is for programs).
fn log_event(e: &Event) {
    match e {
        Event::StateChanged {
            folder,
            from,
            to,
            error,
        } => {
            tracing::info!(folder = %folder, from = from.as_str(), to = to.as_str(), error = error.as_deref().unwrap_or(""), "folder state changed")
        }
        Event::DeviceConnected {
            device,
            addr,
            client_name,
            client_version,
            ..
        } => {
            tracing::info!(device = %device, %addr, client = %client_name, version = %client_version, "device connected")
        }
        Event::DeviceDisconnected { device, error } => {
            tracing::info!(device = %device, error = %error, "device disconnected")
        }
        Event::DeviceRejected {
            device, address, ..
        } => {
            tracing::warn!(device = %device, %address, "rejected connection from unknown device (accept it with `syncd device accept {device}`, or ignore it with `syncd device ignore {device}`)")
        }
        Event::FolderRejected {
            folder,
            label,
            device,
        } => {
            tracing::warn!(%folder, %label, device = %device, "a device offers a folder we do not share with it (accept it with `syncd folder accept {folder} --from {device}`)")
        }
        Event::ConfigChanged { why } => {
            tracing::info!(change = %why, "configuration changed")
        }
        Event::ConflictCreated {
            folder,
            path,
            conflict_copy,
        } => {
            tracing::warn!(folder = %folder, path = %path, copy = %conflict_copy, "conflict: kept the losing version as a copy")
        }
        Event::ItemFinished {
            folder,
            item,
            error: Some(err),
            ..
        } => {
            tracing::warn!(folder = %folder, item = %item, error = %err, "pull failed")
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn poll_returns_events_after_since() {
        let log = EventLog::new();
        log.push("Starting", json!({}));
        log.push("StateChanged", json!({"to": "idle"}));
        let got = log.poll(1, None, None, Duration::ZERO).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["id"], 2);
        assert_eq!(got[0]["type"], "StateChanged");
    }

    #[tokio::test]
    async fn poll_times_out_empty() {
        let log = EventLog::new();
        log.push("Starting", json!({}));
        assert!(
            log.poll(1, None, None, Duration::from_millis(20))
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn poll_wakes_on_a_new_event() {
        let log = std::sync::Arc::new(EventLog::new());
        let writer = log.clone();
        let waiter =
            tokio::spawn(async move { log.poll(0, None, None, Duration::from_secs(60)).await });
        tokio::task::yield_now().await;
        writer.push("DeviceConnected", json!({"id": "x"}));
        let got = waiter.await.unwrap();
        assert_eq!(got[0]["type"], "DeviceConnected");
    }

    #[tokio::test]
    async fn limit_keeps_the_newest() {
        let log = EventLog::new();
        for _ in 0..5 {
            log.push("Ping", json!({}));
        }
        let got = log.poll(0, None, Some(1), Duration::ZERO).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["id"], 5);
    }

    #[tokio::test]
    async fn mask_selects_types_and_default_hides_change_detected() {
        let log = EventLog::new();
        log.push("LocalChangeDetected", json!({}));
        log.push("StateChanged", json!({}));
        log.push("ItemFinished", json!({}));
        let default = log.poll(0, None, None, Duration::ZERO).await;
        assert_eq!(default.len(), 2);
        let masked = log
            .poll(0, Some(vec!["ItemFinished".into()]), None, Duration::ZERO)
            .await;
        assert_eq!(masked.len(), 1);
        assert_eq!(masked[0]["type"], "ItemFinished");
    }

    #[tokio::test]
    async fn log_keeps_only_the_newest_events() {
        let log = EventLog::new();
        for _ in 0..LOG_CAPACITY + 10 {
            log.push("Ping", json!({}));
        }
        let got = log.poll(0, None, None, Duration::ZERO).await;
        assert_eq!(got.len(), LOG_CAPACITY);
        assert_eq!(got[0]["id"], 11);
    }

    #[tokio::test]
    async fn disk_events_never_push_other_events_out() {
        let log = EventLog::new();
        log.push("StateChanged", json!({}));
        for _ in 0..DISK_LOG_CAPACITY + 5 {
            log.push("RemoteChangeDetected", json!({}));
        }
        log.push("ItemFinished", json!({}));
        let default = log.poll(0, None, None, Duration::ZERO).await;
        let kinds: Vec<&str> = default
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["StateChanged", "ItemFinished"]);
        assert_eq!(default[1]["id"], DISK_LOG_CAPACITY as u64 + 7);
        let disk = log
            .poll(
                0,
                Some(vec!["RemoteChangeDetected".into()]),
                None,
                Duration::ZERO,
            )
            .await;
        assert_eq!(disk.len(), DISK_LOG_CAPACITY);
        assert!(
            disk.windows(2)
                .all(|w| w[0]["id"].as_u64() < w[1]["id"].as_u64())
        );
    }
}

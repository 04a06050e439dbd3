//! The typed event stream (a tokio broadcast channel) that the REST layer maps to Syncthing's
//! event JSON.

use std::net::SocketAddr;

use syncd_types::{DeviceId, FileKind, FolderId};
use tokio::sync::broadcast;

use crate::status::{Completion, FileError, FolderState};

/// Capacity of the broadcast channel; a subscriber that falls further behind gets
/// `RecvError::Lagged` and skips ahead (the engine never blocks on a slow subscriber).
pub const EVENT_CAPACITY: usize = 4096;

/// [`Event::DiskChanged`] events emitted per index update at most.
pub const DISK_EVENTS_PER_UPDATE: usize = 256;

/// What the puller did to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Later engines may add states/actions; matches outside this crate need a wildcard arm.
#[non_exhaustive]
pub enum ItemAction {
    /// Content (or a new item) written.
    Update,
    /// Only metadata (mtime, permissions) changed.
    Metadata,
    /// The item was deleted.
    Delete,
}

impl ItemAction {
    /// Syncthing's string: `update`, `metadata` or `delete`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ItemAction::Update => "update",
            ItemAction::Metadata => "metadata",
            ItemAction::Delete => "delete",
        }
    }
}

/// One engine event.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A folder changed state.
    StateChanged {
        /// The folder.
        folder: FolderId,
        /// The previous state.
        from: FolderState,
        /// The new state.
        to: FolderState,
        /// The error, when `to` is `Error`.
        error: Option<String>,
    },
    /// A scan (full or partial) finished.
    ScanFinished {
        /// The folder.
        folder: FolderId,
    },
    /// Our own records changed (scan or pull).
    LocalIndexUpdated {
        /// The folder.
        folder: FolderId,
        /// How many records changed.
        items: u64,
        /// Our sequence after the change.
        sequence: u64,
        /// The changed paths.
        filenames: Vec<String>,
    },
    /// A peer's records for a folder changed.
    RemoteIndexUpdated {
        /// The peer.
        device: DeviceId,
        /// The folder.
        folder: FolderId,
        /// How many records arrived.
        items: u64,
        /// The peer's highest sequence now known.
        sequence: u64,
    },
    /// The puller started working on an item.
    ItemStarted {
        /// The folder.
        folder: FolderId,
        /// The path.
        item: String,
        /// What the item is.
        kind: FileKind,
        /// What is done to it.
        action: ItemAction,
    },
    /// The puller finished an item (successfully or not).
    ItemFinished {
        /// The folder.
        folder: FolderId,
        /// The path.
        item: String,
        /// What the item is.
        kind: FileKind,
        /// What was done to it.
        action: ItemAction,
        /// The failure, if any.
        error: Option<String>,
    },
    /// A conflict copy was made of a local file that lost.
    ConflictCreated {
        /// The folder.
        folder: FolderId,
        /// The contested path.
        path: String,
        /// Where the losing content went.
        conflict_copy: String,
    },
    /// A peer connected.
    DeviceConnected {
        /// The peer.
        device: DeviceId,
        /// Its announced name.
        device_name: String,
        /// Its client name.
        client_name: String,
        /// Its client version.
        client_version: String,
        /// Its address.
        addr: SocketAddr,
        /// `tcp-client` or `tcp-server`.
        conn_type: &'static str,
    },
    /// A peer disconnected.
    DeviceDisconnected {
        /// The peer.
        device: DeviceId,
        /// Why.
        error: String,
    },
    /// Local discovery heard from a device for the first time (or again after its entry
    /// expired or it restarted). Syncthing's `DeviceDiscovered`.
    DeviceDiscovered {
        /// The device.
        device: DeviceId,
        /// Its announced addresses, unspecified hosts replaced by the sender's address.
        addrs: Vec<String>,
    },
    /// An unknown device tried to connect.
    DeviceRejected {
        /// The device.
        device: DeviceId,
        /// The name it announced.
        name: String,
        /// Where it came from.
        address: SocketAddr,
    },
    /// Devices were recorded as pending (an unknown device connected) or their entries
    /// were removed (dismissed, the device was added or ignored, or evicted).
    PendingDevicesChanged {
        /// Entries added or refreshed.
        added: Vec<crate::pending::PendingDevice>,
        /// Devices whose entry is gone.
        removed: Vec<DeviceId>,
    },
    /// A known device offered a folder we do not share with it.
    FolderRejected {
        /// The folder ID it offered.
        folder: FolderId,
        /// The label it gave the folder.
        label: String,
        /// The device.
        device: DeviceId,
    },
    /// Folders offered by devices were recorded as pending, or entries were removed (no
    /// longer offered, dismissed, shared, ignored).
    PendingFoldersChanged {
        /// Entries added or refreshed.
        added: Vec<crate::pending::PendingFolder>,
        /// Entries gone: the folder, and the device (`None`: for every device).
        removed: Vec<(FolderId, Option<DeviceId>)>,
    },
    /// The engine changed its own configuration: a folder accepted automatically, a
    /// device introduced or removed by an introducer. [`crate::EngineHandle::config`]
    /// has the new configuration (a daemon saves it).
    ConfigChanged {
        /// What happened, for the log.
        why: String,
    },
    /// A device was paused.
    DevicePaused {
        /// The device.
        device: DeviceId,
    },
    /// A device was resumed.
    DeviceResumed {
        /// The device.
        device: DeviceId,
    },
    /// A folder was paused.
    FolderPaused {
        /// The folder.
        folder: FolderId,
    },
    /// A folder was resumed.
    FolderResumed {
        /// The folder.
        folder: FolderId,
    },
    /// The set of per-file errors of a folder changed.
    FolderErrors {
        /// The folder.
        folder: FolderId,
        /// The current errors.
        errors: Vec<FileError>,
    },
    /// A peer's completion of a folder changed.
    FolderCompletion {
        /// The folder.
        folder: FolderId,
        /// The peer.
        device: DeviceId,
        /// Its completion.
        completion: Completion,
    },
    /// A change on disk as the index recorded it: found by this device's scan (`local`:
    /// made by this device) or put there by the puller from a peer's version. At most
    /// [`DISK_EVENTS_PER_UPDATE`](crate::DISK_EVENTS_PER_UPDATE) per index update (a large
    /// scan reports its first ones). Off until
    /// [`EngineHandle::enable_disk_events`](crate::EngineHandle::enable_disk_events).
    DiskChanged {
        /// The folder.
        folder: FolderId,
        /// The folder's label.
        label: String,
        /// The path.
        path: String,
        /// What the entry is.
        kind: FileKind,
        /// Whether it was deleted.
        deleted: bool,
        /// The device that made the change.
        modified_by: syncd_types::ShortId,
        /// Made by this device (found by a scan), not by a peer.
        local: bool,
    },
    /// Scan progress (bytes hashed of bytes to hash), every
    /// [`FolderConfig::scan_progress_interval_ms`](crate::FolderConfig::scan_progress_interval_ms)
    /// while a scan has files to hash.
    FolderScanProgress {
        /// The folder.
        folder: FolderId,
        /// Bytes of this scan's queued files hashed so far.
        current: u64,
        /// Bytes this scan has queued for hashing so far (it grows while the walk goes on).
        total: u64,
        /// Bytes hashed per second since the scan started.
        rate: f64,
    },
}

/// The sending side of the event stream, shared by every actor.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus::new()
    }
}

impl EventBus {
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(EVENT_CAPACITY);
        EventBus { tx }
    }

    /// Publishes an event; having no subscriber is not an error.
    pub(crate) fn emit(&self, event: Event) {
        let _ = self.tx.send(event);
    }

    /// Whether anyone listens (events that cost an index read are skipped otherwise).
    pub(crate) fn has_subscribers(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

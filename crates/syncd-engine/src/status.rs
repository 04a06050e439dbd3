//! Status values the handle reports: folder states, counts, completion, connections.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use syncd_types::{DeviceId, ShortId};

/// A folder's state, as Syncthing reports it in `/rest/db/status` and `StateChanged` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
// Later engines may add states/actions; matches outside this crate need a wildcard arm.
#[non_exhaustive]
pub enum FolderState {
    /// Nothing to do.
    Idle,
    /// A scan is running.
    Scanning,
    /// A scan is queued behind another folder's work.
    ScanWaiting,
    /// Something is needed; waiting to start pulling.
    SyncWaiting,
    /// Working out what to pull.
    SyncPreparing,
    /// Pulling.
    Syncing,
    /// The folder is unusable (missing root or marker, bad ignores, ...): no scan, no pull.
    Error,
    /// Paused by the user.
    Paused,
}

impl FolderState {
    /// Syncthing's string for this state (`""` for paused, as Syncthing reports it).
    pub fn as_str(&self) -> &'static str {
        match self {
            FolderState::Idle => "idle",
            FolderState::Scanning => "scanning",
            FolderState::ScanWaiting => "scan-waiting",
            FolderState::SyncWaiting => "sync-waiting",
            FolderState::SyncPreparing => "sync-preparing",
            FolderState::Syncing => "syncing",
            FolderState::Error => "error",
            FolderState::Paused => "",
        }
    }
}

impl std::fmt::Display for FolderState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Item counts and total bytes of a set of records (global, local or need).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Regular files (not deleted).
    pub files: u64,
    /// Directories (not deleted).
    pub directories: u64,
    /// Symlinks (not deleted).
    pub symlinks: u64,
    /// Deleted entries.
    pub deleted: u64,
    /// Sum of file sizes.
    pub bytes: u64,
}

impl Counts {
    /// Files + directories + symlinks (deleted entries excluded).
    pub fn items(&self) -> u64 {
        self.files + self.directories + self.symlinks
    }
}

/// One per-file error from a pull or a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    /// The folder-relative path.
    pub path: String,
    /// What went wrong, for humans.
    pub error: String,
}

/// A folder's status (what `/rest/db/status` serves).
#[derive(Debug, Clone)]
pub struct FolderStatus {
    /// Current state.
    pub state: FolderState,
    /// When the state last changed.
    pub state_changed: SystemTime,
    /// Why the folder is in `error`, if it is.
    pub error: Option<String>,
    /// The global (cluster-wide winning) records.
    pub global: Counts,
    /// Our own records.
    pub local: Counts,
    /// What we need to reach the global state.
    pub need: Counts,
    /// Global files we have in their global version.
    pub in_sync_files: u64,
    /// Bytes of those files.
    pub in_sync_bytes: u64,
    /// Our local sequence number for this folder.
    pub sequence: u64,
    /// Current per-file errors: the entries the last scan skipped, then the last pull's.
    pub errors: Vec<FileError>,
    /// How many of [`FolderStatus::errors`] are the last pull's (Syncthing's `pullErrors`).
    pub pull_errors: usize,
    /// Highest sequence received from each peer for this folder.
    pub remote_sequence: BTreeMap<DeviceId, u64>,
    /// Why the watcher is not running, if it failed.
    pub watch_error: Option<String>,
    /// Block requests refused because the file is damaged on disk (see
    /// [`EngineHandle::verify`](crate::EngineHandle::verify)).
    pub damaged_blocks_refused: u64,
    /// A receive-only folder's local changes (kept local, undone by a revert); `None` for
    /// the other types (Syncthing reports `receiveOnlyChanged*` only for receive-only).
    pub receive_only_changed: Option<Counts>,
}

/// What a block verification of a folder found ([`EngineHandle::verify`](crate::EngineHandle::verify)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files read and checked block by block.
    pub files: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Files left to the next scan: not the recorded file any more (changed, gone).
    pub changed: u64,
    /// Files that could not be read, with why.
    pub unreadable: Vec<FileError>,
    /// Files whose bytes differ from the index although their size and modification time
    /// did not change.
    pub damaged: Vec<DamagedFile>,
}

/// One damaged file of a [`VerifyReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DamagedFile {
    /// The folder-relative path.
    pub path: String,
    /// Indices (in the index's block list) of the blocks that differ.
    pub blocks: Vec<u32>,
    /// Bytes in the file.
    pub size: u64,
}

/// One configured peer and its connection, connected or not.
#[derive(Debug, Clone)]
pub struct ConnectionStatus {
    /// The peer.
    pub device: DeviceId,
    /// Its configured name.
    pub name: String,
    /// Whether a connection is up.
    pub connected: bool,
    /// Whether the device is paused.
    pub paused: bool,
    /// The peer's address, when connected.
    pub address: Option<SocketAddr>,
    /// The client name from its Hello (`syncthing`, `syncd`).
    pub client_name: String,
    /// The client version from its Hello.
    pub client_version: String,
    /// `tcp-client` (we dialled), `tcp-server` (it dialled), or `""`.
    pub conn_type: &'static str,
    /// Negotiated TLS description, e.g. `TLS1.3-TLS_AES_128_GCM_SHA256`.
    pub crypto: String,
    /// When the current connection started.
    pub started_at: Option<SystemTime>,
    /// Bytes received over the current connection.
    pub in_bytes_total: u64,
    /// Bytes sent over the current connection.
    pub out_bytes_total: u64,
    /// Index records received over the current connection as syncd derived records (moves
    /// and deletions rebuilt from what we held, see `docs/protocol.md`).
    pub derived_records_in: u64,
    /// Index records sent over the current connection as derived records.
    pub derived_records_out: u64,
}

/// How complete a device's copy of a folder is (Syncthing's `/rest/db/completion`).
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Percentage 0..=100.
    pub completion: f64,
    /// Bytes of the global state.
    pub global_bytes: u64,
    /// Bytes the device still needs.
    pub need_bytes: u64,
    /// Items of the global state.
    pub global_items: u64,
    /// Items the device still needs.
    pub need_items: u64,
    /// Deletes the device still needs.
    pub need_deletes: u64,
    /// `unknown`, `notSharing`, `paused` or `valid`.
    pub remote_state: &'static str,
    /// The device's sequence for this folder.
    pub sequence: u64,
}

impl Completion {
    /// Syncthing's formula: 100 × (1 − need_bytes / global_bytes), exactly 100 when nothing is
    /// needed, and 95 (not 100) when only deletes remain.
    pub fn compute(global_bytes: u64, need_bytes: u64, need_items: u64, need_deletes: u64) -> f64 {
        if need_bytes == 0 && need_items == 0 && need_deletes == 0 {
            return 100.0;
        }
        let mut pct = if global_bytes == 0 {
            100.0
        } else {
            100.0 * (1.0 - need_bytes as f64 / global_bytes as f64)
        };
        if need_bytes == 0 && need_deletes > 0 {
            pct = 95.0;
        }
        pct.clamp(0.0, 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_state_strings_are_syncthings() {
        let table = [
            (FolderState::Idle, "idle"),
            (FolderState::Scanning, "scanning"),
            (FolderState::ScanWaiting, "scan-waiting"),
            (FolderState::SyncWaiting, "sync-waiting"),
            (FolderState::SyncPreparing, "sync-preparing"),
            (FolderState::Syncing, "syncing"),
            (FolderState::Error, "error"),
            (FolderState::Paused, ""),
        ];
        for (state, s) in table {
            assert_eq!(state.as_str(), s, "{state:?}");
        }
    }

    #[test]
    fn completion_is_100_when_nothing_is_needed() {
        assert_eq!(Completion::compute(0, 0, 0, 0), 100.0);
        assert_eq!(Completion::compute(1000, 0, 0, 0), 100.0);
    }

    #[test]
    fn completion_is_the_fraction_of_bytes_present() {
        assert_eq!(Completion::compute(1000, 250, 1, 0), 75.0);
    }

    #[test]
    fn completion_with_only_deletes_left_is_95() {
        assert_eq!(Completion::compute(1000, 0, 1, 1), 95.0);
    }
}

/// One file's record as a listing shows it (the REST API's `db/need`, `db/file`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    /// Relative name, `/`-separated.
    pub name: String,
    /// File, directory or symlink.
    pub kind: syncd_types::FileKind,
    /// Size in bytes (files).
    pub size: u64,
    /// Modification time: seconds since the epoch.
    pub modified_s: i64,
    /// Modification time: nanoseconds within the second.
    pub modified_ns: i32,
    /// The device that made the change.
    pub modified_by: ShortId,
    /// Unix permission bits.
    pub permissions: u32,
    /// Permissions are not tracked for this entry.
    pub no_permissions: bool,
    /// A deletion record.
    pub deleted: bool,
    /// Not valid for syncing (ignored on the device that announced it).
    pub invalid: bool,
    /// The version vector: each device's counter.
    pub version: Vec<(ShortId, u64)>,
    /// The sequence of the record on the device it came from.
    pub sequence: u64,
    /// Blocks in the block list.
    pub num_blocks: usize,
}

impl FileSummary {
    /// A record with nothing in it (what Syncthing shows for a name a device has no record
    /// of).
    pub fn empty() -> FileSummary {
        FileSummary {
            name: String::new(),
            kind: syncd_types::FileKind::File,
            size: 0,
            modified_s: 0,
            modified_ns: 0,
            modified_by: ShortId::from(0),
            permissions: 0,
            no_permissions: false,
            deleted: false,
            invalid: false,
            version: Vec::new(),
            sequence: 0,
            num_blocks: 0,
        }
    }

    pub(crate) fn of(r: &syncd_index::FileRecord) -> FileSummary {
        FileSummary {
            name: r.name.as_str().to_owned(),
            kind: r.kind,
            size: r.size,
            modified_s: r.modified_s,
            modified_ns: r.modified_ns,
            modified_by: r.modified_by,
            permissions: r.permissions,
            no_permissions: r.no_permissions,
            deleted: r.deleted,
            invalid: r.invalid,
            version: r
                .version
                .counters()
                .iter()
                .map(|c| (c.id, c.value))
                .collect(),
            sequence: r.sequence,
            num_blocks: r.blocks.len(),
        }
    }
}

/// What the index holds of one name (the REST API's `db/file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDetails {
    /// The winning version across the cluster.
    pub global: FileSummary,
    /// This device's record, if it has one.
    pub local: Option<FileSummary>,
    /// Devices announcing exactly the global version (where its data can come from).
    pub availability: Vec<DeviceId>,
}

/// One page of a listing, and how many entries the whole listing has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilePage {
    /// The entries of the page.
    pub files: Vec<FileSummary>,
    /// Entries in the whole listing.
    pub total: u64,
}

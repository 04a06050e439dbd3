//! Engine, device and folder configuration values with Syncthing's defaults.

use std::path::PathBuf;

use syncd_types::{DeviceId, FolderId};

use crate::CompressionPolicy;
pub use syncd_transport::discovery::DiscoveryConfig;

/// Default redb page cache: 16 MiB (redb's own default, 1 GiB, is half the reference VPS).
pub const DEFAULT_INDEX_CACHE_BYTES: usize = 16 * 1024 * 1024;
/// Default periodic full rescan interval in seconds.
pub const DEFAULT_RESCAN_INTERVAL_S: u32 = 3600;
/// Default watcher debounce in milliseconds.
pub const DEFAULT_WATCHER_DELAY_MS: u32 = 50;
/// Default interval between `FolderScanProgress` events while a folder scans (Syncthing's
/// `scanProgressIntervalS` default, 2 s).
pub const DEFAULT_SCAN_PROGRESS_INTERVAL_MS: u32 = 2000;
/// Default number of conflict copies kept per file (`-1` = unlimited, `0` = none).
pub const DEFAULT_MAX_CONFLICTS: i32 = 10;

/// Everything [`crate::Engine::start`] needs. Cheap to clone; the engine keeps its own copy and
/// updates it on runtime changes (see [`crate::EngineHandle::config`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Home directory: `cert.pem`/`key.pem` (created on first start) and `index-v1.redb`.
    pub home: PathBuf,
    /// The name we announce to peers in Hello and ClusterConfig.
    pub device_name: String,
    /// Listen addresses such as `tcp://0.0.0.0:22000`; port 0 picks a free port
    /// ([`crate::EngineHandle::listen_addrs`] tells which). Empty: no listener, peers are only
    /// dialled. Default: [`DEFAULT_LISTEN`], loopback on a free port, so an embedding is not
    /// reachable from the network until it asks to be; Syncthing's `tcp://0.0.0.0:22000` is
    /// what the `syncd` daemon's config sets.
    pub listen: Vec<String>,
    /// Peers. Our own device may be listed; the engine skips it.
    pub devices: Vec<DeviceConfig>,
    /// Shared folders.
    pub folders: Vec<FolderConfig>,
    /// redb page cache size in bytes.
    pub index_cache_bytes: usize,
    /// Devices the user chose to ignore (Syncthing's `remoteIgnoredDevices`): refused without
    /// being recorded as pending.
    pub ignored_devices: Vec<DeviceId>,
    /// What a folder accepted automatically (a device's `auto_accept_folders`) starts from:
    /// its settings, and its `path` as the directory the new folder is created in (named
    /// after the folder's label, or its ID when that exists already).
    pub folder_defaults: FolderConfig,
    /// Global and local discovery, which resolve `dynamic` device addresses. Default: all
    /// off (an embedding sends nothing anywhere until it asks to); the `syncd` daemon's
    /// config turns both on, as Syncthing does.
    pub discovery: DiscoveryConfig,
}

/// [`EngineConfig::listen`]'s default: loopback only, a free port.
pub const DEFAULT_LISTEN: &str = "tcp://127.0.0.1:0";

/// Home `.`, device name `syncd`, listening on [`DEFAULT_LISTEN`] (loopback, a free port),
/// no devices, no folders.
impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            home: PathBuf::from("."),
            device_name: String::from("syncd"),
            listen: vec![String::from(DEFAULT_LISTEN)],
            devices: Vec::new(),
            folders: Vec::new(),
            index_cache_bytes: DEFAULT_INDEX_CACHE_BYTES,
            ignored_devices: Vec::new(),
            folder_defaults: FolderConfig::new(default_folder_id(), "."),
            discovery: DiscoveryConfig::disabled(),
        }
    }
}

/// One peer device.
#[derive(Debug, Clone)]
pub struct DeviceConfig {
    /// The peer's device ID (SHA-256 of its certificate).
    pub id: DeviceId,
    /// A human name for logs and status.
    pub name: String,
    /// `tcp://host:port` addresses to dial, or `dynamic` (resolved by discovery when
    /// [`EngineConfig::discovery`] enables a finder; otherwise only accepted).
    pub addresses: Vec<String>,
    /// When to compress messages sent to this peer.
    pub compression: CompressionPolicy,
    /// A paused device is neither dialled nor accepted.
    pub paused: bool,
    /// An introducer: the devices it shares our folders with are added here and share them
    /// too (and are removed again when it stops, unless `skip_introduction_removals`).
    pub introducer: bool,
    /// Keep what this introducer introduced when it no longer lists it.
    pub skip_introduction_removals: bool,
    /// The introducer that added this device, if one did.
    pub introduced_by: Option<DeviceId>,
    /// Accept a folder this device offers without asking: a new folder is created under
    /// [`EngineConfig::folder_defaults`], an existing one is shared with it.
    pub auto_accept_folders: bool,
    /// Folders this device offers that the user chose to ignore: not recorded as pending.
    pub ignored_folders: Vec<FolderId>,
}

impl DeviceConfig {
    /// A device with the given ID, no addresses (`dynamic`), default compression, not paused.
    pub fn new(id: DeviceId) -> Self {
        DeviceConfig {
            id,
            name: String::new(),
            addresses: vec![String::from("dynamic")],
            compression: CompressionPolicy::default(),
            paused: false,
            introducer: false,
            skip_introduction_removals: false,
            introduced_by: None,
            auto_accept_folders: false,
            ignored_folders: Vec::new(),
        }
    }
}

/// One folder shared with some devices.
#[derive(Debug, Clone)]
pub struct FolderConfig {
    /// The cluster-wide folder ID.
    pub id: FolderId,
    /// A human label.
    pub label: String,
    /// The folder root on disk. It must exist and contain `.stfolder`, else the folder is in
    /// `error` and neither scans nor pulls.
    pub path: PathBuf,
    /// The peers sharing this folder.
    pub devices: Vec<DeviceId>,
    /// Of those, the ones an introducer added to this folder: device → its introducer.
    pub introduced_by: std::collections::BTreeMap<DeviceId, DeviceId>,
    /// Periodic full rescan interval in seconds; 0 disables it.
    pub rescan_interval_s: u32,
    /// Watcher debounce in milliseconds.
    pub watcher_delay_ms: u32,
    /// Whether the filesystem watcher runs.
    pub watcher_enabled: bool,
    /// Do not sync permission bits.
    pub ignore_perms: bool,
    /// Rename names not spelt in Unicode NFC on disk to NFC (Syncthing's `autoNormalize`,
    /// default true); off, such names are reported and not synced.
    pub auto_normalize: bool,
    /// Names differing only in case are different files (Syncthing's `caseSensitiveFS`,
    /// default false): off, the puller checks each name's case on disk before it creates,
    /// renames into or deletes it, and a remote name that differs only in case from another
    /// local entry is a case-conflict error (see [`syncd_scan::case`]).
    pub case_sensitive_fs: bool,
    /// Conflict copies kept per file: `-1` unlimited, `0` none (the losing file is deleted).
    pub max_conflicts: i32,
    /// A paused folder neither scans, pulls nor exchanges indexes.
    pub paused: bool,
    /// While a scan hashes, a `FolderScanProgress` event this often (milliseconds); 0 never.
    pub scan_progress_interval_ms: u32,
    /// What happens to a file the puller deletes or replaces (off by default); see
    /// [`crate::versioner`].
    pub versioning: crate::versioner::VersioningConfig,
    /// Which way changes flow (Syncthing's folder `type`).
    pub folder_type: FolderType,
}

/// A folder's type: which way changes flow (Syncthing 1.19.2's `sendreceive`, `sendonly`,
/// `receiveonly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FolderType {
    /// Local changes are announced and remote changes applied.
    #[default]
    SendReceive,
    /// Local changes are announced; remote changes are never applied (they stay needed, the
    /// folder out of sync) until [`crate::EngineHandle::override_changes`] makes ours win.
    /// Announced to peers as read-only in ClusterConfig.
    SendOnly,
    /// Remote changes are applied; local changes stay local: recorded as receive-only changes
    /// and announced as invalid records with an empty version, until
    /// [`crate::EngineHandle::revert_changes`] brings the global version back.
    ReceiveOnly,
}

impl FolderType {
    /// Syncthing's name: `sendreceive`, `sendonly` or `receiveonly`.
    pub fn as_str(self) -> &'static str {
        match self {
            FolderType::SendReceive => "sendreceive",
            FolderType::SendOnly => "sendonly",
            FolderType::ReceiveOnly => "receiveonly",
        }
    }
}

impl std::str::FromStr for FolderType {
    type Err = UnknownFolderType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sendreceive" => Ok(FolderType::SendReceive),
            "sendonly" => Ok(FolderType::SendOnly),
            "receiveonly" => Ok(FolderType::ReceiveOnly),
            other => Err(UnknownFolderType(other.to_owned())),
        }
    }
}

/// A folder type name that is not `sendreceive`, `sendonly` or `receiveonly` (Syncthing's
/// `receiveencrypted` included: syncd has no untrusted devices).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown folder type {0:?} (sendreceive, sendonly or receiveonly)")]
pub struct UnknownFolderType(pub String);

impl FolderConfig {
    /// A folder with the given ID and root, shared with nobody yet, every option at its default.
    pub fn new(id: FolderId, path: impl Into<PathBuf>) -> Self {
        FolderConfig {
            label: id.as_str().to_owned(),
            id,
            path: path.into(),
            devices: Vec::new(),
            introduced_by: std::collections::BTreeMap::new(),
            rescan_interval_s: DEFAULT_RESCAN_INTERVAL_S,
            watcher_delay_ms: DEFAULT_WATCHER_DELAY_MS,
            watcher_enabled: true,
            ignore_perms: false,
            auto_normalize: true,
            case_sensitive_fs: false,
            max_conflicts: DEFAULT_MAX_CONFLICTS,
            paused: false,
            scan_progress_interval_ms: DEFAULT_SCAN_PROGRESS_INTERVAL_MS,
            versioning: crate::versioner::VersioningConfig::default(),
            folder_type: FolderType::SendReceive,
        }
    }
}

impl Default for FolderConfig {
    /// The folder `default` rooted at `./Sync`, as Syncthing names its default folder.
    fn default() -> Self {
        FolderConfig::new(default_folder_id(), "Sync")
    }
}

fn default_folder_id() -> FolderId {
    match FolderId::new("default") {
        Ok(id) => id,
        // "default" is non-empty, short and has no control characters.
        Err(_) => unreachable!("\"default\" is a valid folder ID"),
    }
}

/// The engine's one copy of its configuration. Readers take an immutable snapshot (an
/// `Arc`, cheap to clone, never changing under them); the engine's handle replaces it, one
/// change at a time (see `Shared::ops`). Folders, peers and the status read it from here:
/// there is no second copy to keep in step.
#[derive(Debug)]
pub(crate) struct ConfigCell(std::sync::RwLock<std::sync::Arc<EngineConfig>>);

impl ConfigCell {
    pub(crate) fn new(config: EngineConfig) -> ConfigCell {
        ConfigCell(std::sync::RwLock::new(std::sync::Arc::new(config)))
    }

    /// The current configuration.
    pub(crate) fn snapshot(&self) -> std::sync::Arc<EngineConfig> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the configuration with `f` applied to a copy of it; returns what `f` returns.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut EngineConfig) -> R) -> R {
        let mut g = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = EngineConfig::clone(&g);
        let r = f(&mut next);
        *g = std::sync::Arc::new(next);
        r
    }

    /// A folder's current configuration.
    pub(crate) fn folder(&self, id: &FolderId) -> Option<FolderConfig> {
        self.with_folder(id, FolderConfig::clone)
    }

    /// `f` applied to a folder's current configuration, without copying it (for checks on
    /// hot paths, such as every block request).
    pub(crate) fn with_folder<R>(
        &self,
        id: &FolderId,
        f: impl FnOnce(&FolderConfig) -> R,
    ) -> Option<R> {
        let g = match self.0.read() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        g.folders.iter().find(|c| &c.id == id).map(f)
    }

    /// A device's current configuration.
    pub(crate) fn device(&self, id: DeviceId) -> Option<DeviceConfig> {
        self.snapshot().devices.iter().find(|d| d.id == id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_library_default_listens_on_loopback_on_a_free_port() {
        assert_eq!(EngineConfig::default().listen, ["tcp://127.0.0.1:0"]);
    }

    #[test]
    fn folder_defaults_match_the_agreed_values() {
        let f = FolderConfig::default();
        assert_eq!(f.id.as_str(), "default");
        assert_eq!(f.rescan_interval_s, 3600);
        assert_eq!(f.watcher_delay_ms, 50);
        assert!(f.watcher_enabled);
        assert_eq!(f.max_conflicts, 10);
        assert!(!f.paused && !f.ignore_perms);
    }

    #[test]
    fn engine_default_sets_an_explicit_index_cache() {
        assert_eq!(EngineConfig::default().index_cache_bytes, 16 * 1024 * 1024);
    }
}

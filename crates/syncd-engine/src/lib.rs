//! `syncd-engine`: the embeddable sync daemon. It keeps folders identical on several devices:
//! it scans and watches local folders into the index, exchanges indexes with peers over BEP,
//! pulls what the local device needs and serves what peers request.
//!
//! Key types: [`Engine::start`] takes an [`EngineConfig`] (home, devices, folders) and returns
//! an [`EngineHandle`]: folder and connection status ([`FolderStatus`], [`ConnectionStatus`],
//! [`Completion`]), a typed [`Event`] stream, commands (`scan`, pause/resume, add/remove at
//! runtime, `shutdown`) and [`EngineHandle::wait_until_synced`]. Peers connect over TCP by
//! default; [`EngineHandle::attach_stream`] connects one over any byte stream the embedder
//! brings (same TLS authentication).
//!
//! Invariants:
//! - A folder whose root is missing or lacks `.stfolder` is in [`FolderState::Error`] and
//!   neither scans nor pulls; no pull happens before a folder's first full scan.
//! - Every pulled block is verified against its hash; files appear under their final name only
//!   after being written in full to a temp file and made durable; the index is updated after.
//! - Nothing a peer sends can panic the engine: peer faults drop that connection only.
//!
//! It does NOT own the wire format (`syncd-proto`), the on-disk index (`syncd-index`), version
//! ordering or conflict names (`syncd-conflict`), scanning (`syncd-scan`), ignore matching
//! (`syncd-ignore`) or TLS (`syncd-transport`); it composes them. It has no CLI, config file or
//! REST server (the `syncd` binary does).
//!
//! ```no_run
//! use syncd_engine::{DeviceConfig, DeviceId, Engine, EngineConfig, FolderConfig, FolderId};
//! # async fn run(peer: DeviceId) -> Result<(), Box<dyn std::error::Error>> {
//! let folder = FolderId::new("work")?;
//! // A folder root must exist and hold the `.stfolder` marker, or the folder stays in
//! // `FolderState::Error` (the marker tells an empty folder from an unmounted disk).
//! let root = std::path::Path::new("/srv/work");
//! std::fs::create_dir_all(root)?;
//! syncd_engine::health::create_marker(root)?;
//! let mut f = FolderConfig::new(folder.clone(), root);
//! f.devices.push(peer);
//! let mut peer_cfg = DeviceConfig::new(peer);
//! peer_cfg.addresses = vec!["tcp://127.0.0.1:22000".into()];
//! let engine = Engine::start(EngineConfig {
//!     home: "/var/lib/syncd".into(),
//!     devices: vec![peer_cfg],
//!     folders: vec![f],
//!     ..EngineConfig::default()
//! })
//! .await?;
//! engine.wait_until_synced(&folder, std::time::Duration::from_secs(60)).await?;
//! engine.shutdown().await;
//! # Ok(()) }
//! ```

mod config;
mod convert;
mod derive;
mod engine;
mod error;
mod event;
mod folder;
mod folder_types;
mod fsutil;
pub mod health;
mod join;
mod limits;
mod peer;
mod peer_blocks;
mod pending;
mod puller;
mod registry;
mod serve;
mod status;
pub mod versioner;

pub use config::{
    DEFAULT_INDEX_CACHE_BYTES, DEFAULT_LISTEN, DEFAULT_MAX_CONFLICTS, DEFAULT_RESCAN_INTERVAL_S,
    DEFAULT_SCAN_PROGRESS_INTERVAL_MS, DEFAULT_WATCHER_DELAY_MS, DeviceConfig, EngineConfig,
    FolderConfig, FolderType, UnknownFolderType,
};
pub use engine::{Engine, EngineHandle, INDEX_FILE, device_id_for_home};
pub use error::{EngineError, PeerError, WaitError};
pub use event::{DISK_EVENTS_PER_UPDATE, EVENT_CAPACITY, Event, ItemAction};
pub use fsutil::safe_path;
pub use join::folder_dir_name;
pub use limits::raise_open_files;
pub use pending::{
    MAX_NAME_BYTES, MAX_PENDING_DEVICES, MAX_PENDING_FOLDERS_PER_DEVICE, PendingDevice,
    PendingFolder,
};
pub use status::{
    Completion, ConnectionStatus, Counts, DamagedFile, FileDetails, FileError, FilePage,
    FileSummary, FolderState, FolderStatus, VerifyReport,
};
pub use syncd_proto::CompressionPolicy;
pub use syncd_transport::discovery::{self, Discovery, DiscoveryConfig};
pub use syncd_transport::{ConnectError, Direction};
pub use syncd_types::{DeviceId, FolderId, RelPath, ShortId};

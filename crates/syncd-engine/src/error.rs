//! Engine errors: one enum for handle operations, one for `wait_until_synced`, one for the
//! peer protocol (peer faults), and, for handling a peer's message, local faults kept apart
//! from peer faults (a local fault is never reported to the peer as its violation).

use std::path::PathBuf;

use syncd_types::{DeviceId, FolderId};

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// No folder with that ID is configured.
    #[error("unknown folder {0}")]
    UnknownFolder(FolderId),
    /// No device with that ID is configured.
    #[error("unknown device {0}")]
    UnknownDevice(DeviceId),
    /// The TLS identity could not be loaded or created.
    #[error("identity in {home}: {message}")]
    Identity {
        /// The home directory.
        home: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The index database failed.
    #[error("index: {0}")]
    Index(String),
    /// A local IO operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("config: {0}")]
    Config(String),
    /// A listen address could not be bound.
    #[error("listen on {address}: {message}")]
    Listen {
        /// The configured address.
        address: String,
        /// What went wrong.
        message: String,
    },
    /// The folder is in `error` (missing root or marker, ...) and cannot do the operation.
    #[error("folder {folder} is in error: {message}")]
    FolderError {
        /// The folder.
        folder: FolderId,
        /// The folder's error.
        message: String,
    },
    /// The folder is paused.
    #[error("folder {0} is paused")]
    FolderPaused(FolderId),
    /// The scan failed.
    #[error("scan of {folder}: {message}")]
    Scan {
        /// The folder.
        folder: FolderId,
        /// What went wrong.
        message: String,
    },
    /// The engine is shutting down or has stopped.
    #[error("the engine has stopped")]
    Stopped,
}

/// Why `wait_until_synced` returned without the folder being in sync.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The timeout passed first; `missing` says what was still outstanding.
    #[error("not in sync after {waited:?}: {}", .missing.join("; "))]
    Timeout {
        /// The folder.
        folder: FolderId,
        /// How long we waited.
        waited: std::time::Duration,
        /// Human-readable reasons, e.g. `device XXXXXXX not connected since start`,
        /// `local need: 3 items, 1200 bytes`.
        missing: Vec<String>,
    },
    /// No folder with that ID is configured.
    #[error("unknown folder {0}")]
    UnknownFolder(FolderId),
    /// The folder is in `error` and will not sync until fixed.
    #[error("folder {folder} is in error: {message}")]
    FolderError {
        /// The folder.
        folder: FolderId,
        /// The folder's error.
        message: String,
    },
    /// The engine stopped while waiting.
    #[error("the engine has stopped")]
    Stopped,
}

/// A peer broke the protocol; the connection is dropped, folders are unaffected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// The first message after Hello was not a ClusterConfig.
    #[error("first message was not ClusterConfig")]
    ClusterConfigNotFirst,
    /// An Index or IndexUpdate arrived for a folder we do not share with that peer.
    #[error("index for folder {folder:?} not shared with the peer")]
    UnsharedFolder {
        /// The folder ID as received.
        folder: String,
    },
    /// A FileInfo failed validation.
    #[error("invalid file {name:?}: {reason}")]
    InvalidFile {
        /// The name as received.
        name: String,
        /// The validation failure.
        reason: String,
    },
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Connection(String),
    /// The peer sent Close.
    #[error("peer closed the connection: {0}")]
    Closed(String),
    /// Derived records (syncd's extension) that could not be rebuilt or did not match the
    /// peer's digest; nothing of the message was applied.
    #[error("derived records: {0}")]
    Derived(String),
}

/// A local fault met while handling a peer's message (the index, the disk, a worker that
/// died). It is not the peer's doing: it is never reported to the peer as a protocol
/// violation.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LocalError {
    /// The index could not be read or written.
    #[error("index of folder {folder}: {source}")]
    Index {
        /// The folder whose records were read or written.
        folder: FolderId,
        /// What the index reported.
        #[source]
        source: syncd_index::IndexError,
    },
    /// A blocking task ended without its result (it panicked, or the runtime is stopping).
    #[error("worker for folder {folder} ended: {message}")]
    Worker {
        /// The folder it worked on.
        folder: FolderId,
        /// The join error.
        message: String,
    },
}

/// Why a message from a peer could not be handled: the peer's fault or ours.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandleError {
    /// The peer broke the protocol.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// A local fault; the peer did nothing wrong.
    #[error(transparent)]
    Local(#[from] LocalError),
}

//! The engine's running parts, in one place: folders and their tasks, connected peers, each
//! device's connection status and what the engine learnt of it since start.
//!
//! One owner: the [`Registry`] sits behind one lock in [`crate::engine::Shared`], reached
//! only through `Shared::state(|r| …)`. That takes a plain closure, so the lock can never be
//! held across an `.await` (`cargo xtask tidy` checks that nothing else locks it). Readers
//! take what they need out of it (an `Arc` of a folder or peer, a copy of a status) and work
//! on that. The configuration itself is not here: its one copy is the
//! [`ConfigCell`](crate::config::ConfigCell), changed only by the engine's handle under its
//! `ops` lock, one change at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use syncd_types::{DeviceId, FolderId};
use tokio::task::JoinHandle;

use crate::folder::FolderCtx;
use crate::peer::Peer;
use crate::status::ConnectionStatus;

/// A running folder: its context and its actor task.
pub(crate) type FolderSlot = (Arc<FolderCtx>, JoinHandle<()>);

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Running folders.
    pub(crate) folders: BTreeMap<FolderId, FolderSlot>,
    /// The live connection of each connected peer.
    pub(crate) peers: BTreeMap<DeviceId, Arc<Peer>>,
    /// Each configured peer's connection status.
    pub(crate) devices: BTreeMap<DeviceId, ConnectionStatus>,
    /// Devices that connected at least once since start.
    pub(crate) connected_since_start: BTreeSet<DeviceId>,
    /// Whether each device that connected since start announced Syncthing 1.x in its Hello
    /// (decides the folders' delete rule).
    pub(crate) peer_is_v1: BTreeMap<DeviceId, bool>,
    /// Peers whose derived records failed to rebuild: not asked for them on the next
    /// connection.
    pub(crate) derived_refused: BTreeSet<DeviceId>,
    /// Devices and folders that asked to join (see [`crate::pending`]).
    pub(crate) pending: crate::pending::Pending,
    /// The engine's own tasks (the connection acceptor).
    pub(crate) tasks: Vec<JoinHandle<()>>,
    /// One task per connection.
    pub(crate) peer_tasks: Vec<JoinHandle<()>>,
}

impl Registry {
    pub(crate) fn new(
        devices: BTreeMap<DeviceId, ConnectionStatus>,
        pending: crate::pending::Pending,
    ) -> Registry {
        Registry {
            devices,
            pending,
            ..Registry::default()
        }
    }

    /// The peer's live connection, if it has one.
    pub(crate) fn peer(&self, device: DeviceId) -> Option<Arc<Peer>> {
        self.peers
            .get(&device)
            .filter(|p| !p.sender.is_closed())
            .cloned()
    }
}

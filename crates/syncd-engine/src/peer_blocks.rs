//! The engine's connections as the puller's remote source of pieces
//! ([`crate::puller::source::Remote`]): the puller asks for pieces without knowing peers.

use std::sync::Arc;

use syncd_index::Block;
use syncd_types::{DeviceId, FolderId, RelPath};

use crate::engine::Shared;
use crate::puller::source::{Piece, Refused, Remote};

/// The engine's connected peers. A piece is asked with [`crate::peer::Peer::request`], which
/// checks the data against the piece's SHA-256 (a mismatch is the peer's protocol violation).
pub(crate) struct ConnectedPeers {
    shared: Arc<Shared>,
}

impl ConnectedPeers {
    pub(crate) fn new(shared: Arc<Shared>) -> ConnectedPeers {
        ConnectedPeers { shared }
    }
}

impl Remote for ConnectedPeers {
    fn request<'a>(
        &'a self,
        device: DeviceId,
        folder: &'a FolderId,
        name: &'a RelPath,
        b: Block,
    ) -> Piece<'a> {
        Box::pin(async move {
            let Some(peer) = self.shared.peer(device) else {
                return Err(Refused::NotConnected);
            };
            peer.request(folder, name.as_str(), b.offset, b.size, &b.hash)
                .await
                .map_err(|_| Refused::Failed)
        })
    }
}

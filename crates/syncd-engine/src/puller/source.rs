//! Where the pieces of a file come from: this device's own data ([`Local`]) or the devices
//! announcing the global version ([`Remote`]).
//!
//! Every piece is looked for locally first, on the blocking thread that prepares the file (see
//! [`super::local`]): the old version of the same file, then any file the block map names.
//! What this device does not hold is asked of the peers, in turn, within a bytes-in-flight
//! budget. Both sources hand out only data that matches the piece's SHA-256.
//!
//! The puller knows peers only through [`Remote`]; the engine's connections implement it in
//! `crate::peer_blocks`.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use syncd_index::{Block, FileRecord, Index};
use syncd_types::{DeviceId, FolderId, RelPath};

use crate::fsutil;

/// Why a device did not deliver a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The device is not connected: it was not asked.
    NotConnected,
    /// It was asked and did not deliver verified data (an error code, a hash mismatch, the
    /// connection closed meanwhile).
    Failed,
}

/// A future delivering one piece from a [`Remote`] source.
pub(crate) type Piece<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, Refused>> + Send + 'a>>;

/// Devices that can be asked for pieces of files.
pub(crate) trait Remote: Send + Sync {
    /// Piece `b` of `name` in `folder` from `device`. The data delivered matches `b.hash`.
    fn request<'a>(
        &'a self,
        device: DeviceId,
        folder: &'a FolderId,
        name: &'a RelPath,
        b: Block,
    ) -> Piece<'a>;
}

/// This device's data as a source of pieces: the current local version of the file, then the
/// files the block map names. Blocking.
pub(crate) struct Local {
    pub(crate) index: Arc<Index>,
    pub(crate) folder: FolderId,
    pub(crate) root: PathBuf,
    /// The current local version of the file (a live regular file, or nothing).
    pub(crate) old: Option<FileRecord>,
    /// Where that version is on disk.
    pub(crate) old_path: PathBuf,
}

/// The index snapshot the block map is read from, taken at the first lookup (`Some(None)`:
/// the index could not be read). The files of a small-file group share one: a snapshot per
/// file was a measurable share of an initial sync's CPU. Whatever a snapshot names is read and
/// verified against the piece's hash before use, so an older one costs at most a fetch.
pub(crate) type Snapshot = Option<Option<syncd_index::FolderReader>>;

impl Local {
    /// The verified bytes of `b` from local data: the old version of the same file first,
    /// then the files the block map names (the index snapshot is taken at the first lookup).
    pub(crate) fn read(&self, snapshot: &mut Snapshot, b: &Block) -> Option<Vec<u8>> {
        let size = usize::try_from(b.size).ok()?;
        let verified = |d: &[u8]| Sha256::digest(d).as_slice() == b.hash;
        if let Some(old) = self.old.as_ref().filter(|l| !l.deleted && l.kind.is_file())
            && let Some(ob) = old
                .chunks
                .iter()
                .chain(old.blocks.iter())
                .find(|x| x.hash == b.hash && x.size == b.size)
            && let Ok(d) = fsutil::read_at_nofollow(&self.old_path, ob.offset, size)
            && verified(&d)
        {
            return Some(d);
        }
        let reader = snapshot
            .get_or_insert_with(|| self.index.read(&self.folder).ok())
            .as_ref()?;
        for loc in reader.find_block(&b.hash, 4).ok()? {
            let Ok(p) = fsutil::safe_path(&self.root, &loc.name) else {
                continue;
            };
            let Ok(n) = usize::try_from(loc.size) else {
                continue;
            };
            if let Ok(d) = fsutil::read_at_nofollow(&p, loc.offset, n)
                && verified(&d)
            {
                return Some(d);
            }
        }
        None
    }
}

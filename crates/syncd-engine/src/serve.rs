//! Serving a peer's Request: only folders shared with it, only files the index says we have,
//! read inside the root and never through a symlink, hash re-verified, bounded concurrent bytes.

use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use syncd_proto::{Message, bep};
use syncd_types::{FolderId, RelPath};

use crate::engine::Shared;
use crate::fsutil;
use crate::peer::{Peer, serve_budget};

/// Answers one Request (always with a Response; errors are codes, never panics).
pub(crate) async fn serve(shared: Arc<Shared>, peer: Arc<Peer>, req: bep::Request) {
    let id = req.id;
    let (data, code) = match answer(&shared, &peer, req).await {
        Ok(data) => (data, bep::ErrorCode::NoError),
        Err(code) => (Vec::new(), code),
    };
    let _ = peer
        .sender
        .send(Message::Response(bep::Response {
            id,
            data,
            code: code as i32,
        }))
        .await;
}

async fn answer(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    req: bep::Request,
) -> Result<Vec<u8>, bep::ErrorCode> {
    syncd_proto::validate_request(&req).map_err(|_| bep::ErrorCode::Generic)?;
    let folder = FolderId::new(req.folder.clone()).map_err(|_| bep::ErrorCode::Generic)?;
    let ctx = shared
        .folder_ctx(&folder)
        .filter(|c| c.shared_with(peer.device))
        .ok_or(bep::ErrorCode::Generic)?;
    let cfg = ctx.config();
    if cfg.paused {
        return Err(bep::ErrorCode::Generic);
    }
    let name = RelPath::from_wire(&req.name).map_err(|_| bep::ErrorCode::InvalidFile)?;
    if syncd_types::names::is_internal(&name) {
        return Err(bep::ErrorCode::InvalidFile);
    }
    let size = usize::try_from(req.size).map_err(|_| bep::ErrorCode::Generic)?;
    let offset = u64::try_from(req.offset).map_err(|_| bep::ErrorCode::Generic)?;
    let permits = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
    let _permit = serve_budget(peer)
        .acquire_many_owned(permits)
        .await
        .map_err(|_| bep::ErrorCode::Generic)?;
    let index = shared.index.clone();
    let me = shared.device_id;
    let root = cfg.path.clone();
    let hash = req.hash.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, bep::ErrorCode> {
        let reader = index.read(&folder).map_err(|_| bep::ErrorCode::Generic)?;
        let rec = reader
            .get(me, &name)
            .map_err(|_| bep::ErrorCode::Generic)?
            .ok_or(bep::ErrorCode::NoSuchFile)?;
        if rec.invalid {
            return Err(bep::ErrorCode::InvalidFile);
        }
        if rec.deleted || !rec.kind.is_file() {
            return Err(bep::ErrorCode::NoSuchFile);
        }
        let path = fsutil::safe_path(&root, &name).map_err(|_| bep::ErrorCode::NoSuchFile)?;
        let data = read_at_nofollow(&path, offset, size).map_err(|_| bep::ErrorCode::NoSuchFile)?;
        if !hash.is_empty() && Sha256::digest(&data).as_slice() != hash.as_slice() {
            return Err(bep::ErrorCode::NoSuchFile);
        }
        Ok(data)
    })
    .await
    .map_err(|_| bep::ErrorCode::Generic)?
}

/// Reads exactly `size` bytes at `offset` from a regular file, refusing a symlink at `path`.
pub(crate) fn read_at_nofollow(
    path: &std::path::Path,
    offset: u64,
    size: usize,
) -> std::io::Result<Vec<u8>> {
    use std::io::Seek;
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut f = std::fs::File::open(path)?;
    // Re-check after open: the opened handle must still be a regular file (a swap to a
    // symlink between lstat and open would yield a different inode).
    let opened = f.metadata()?;
    {
        use std::os::unix::fs::MetadataExt;
        if opened.ino() != meta.ino() || opened.dev() != meta.dev() {
            return Err(std::io::Error::other("file replaced while opening"));
        }
    }
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; size];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

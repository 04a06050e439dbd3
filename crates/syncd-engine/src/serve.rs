//! Serving a peer's Request: only folders shared with it, only files the index says we have,
//! read inside the root and never through a symlink, hash re-verified, bounded concurrent bytes.
//!
//! A Request that breaks the protocol (a non-canonical name, a size outside 0..=32 MiB, a
//! negative offset, no hash: spec bep-wire §7.8) closes the connection. A well-formed Request
//! we will not serve (a folder not shared with the peer, an ignored or internal file) gets an
//! error code and a log line naming the device; the connection stays.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use syncd_proto::{Message, bep};
use syncd_types::{FolderId, RelPath};

use crate::engine::{Shared, lock};
use crate::fsutil;
use crate::peer::{Peer, serve_budget};

/// A Request we answer with an error code; `why` is logged when the peer asked for something
/// it must not have (not for a file that is merely missing).
struct Refusal {
    code: bep::ErrorCode,
    why: Option<&'static str>,
}

impl From<bep::ErrorCode> for Refusal {
    fn from(code: bep::ErrorCode) -> Self {
        Refusal { code, why: None }
    }
}

fn refuse(code: bep::ErrorCode, why: &'static str) -> Refusal {
    Refusal {
        code,
        why: Some(why),
    }
}

/// Answers one Request (always with a Response; errors are codes, never panics), or closes
/// the connection when the Request breaks the protocol.
pub(crate) async fn serve(shared: Arc<Shared>, peer: Arc<Peer>, req: bep::Request) {
    if let Err(e) = syncd_proto::validate_request(&req) {
        tracing::warn!(device = %peer.device, folder = ?req.folder, error = %e,
            "peer protocol violation: invalid request; closing");
        peer.sender.close(&format!("invalid request: {e}"));
        return;
    }
    let id = req.id;
    let (folder, name) = (req.folder.clone(), req.name.clone());
    let (data, code) = match answer(&shared, &peer, req).await {
        Ok(data) => (data, bep::ErrorCode::NoError),
        Err(r) => {
            if let Some(why) = r.why {
                tracing::warn!(device = %peer.device, folder = ?folder, name = ?name,
                    "refused request: {why}");
            }
            (Vec::new(), r.code)
        }
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
) -> Result<Vec<u8>, Refusal> {
    use bep::ErrorCode::{Generic, InvalidFile};
    let unshared = || refuse(Generic, "folder not shared with the device");
    let folder = FolderId::new(req.folder.clone()).map_err(|_| unshared())?;
    let ctx = shared
        .folder_ctx(&folder)
        .filter(|c| c.shared_with(peer.device))
        .ok_or_else(unshared)?;
    let cfg = ctx.config();
    if cfg.paused {
        return Err(Generic.into());
    }
    let name = RelPath::from_wire(&req.name).map_err(|_| refuse(InvalidFile, "invalid name"))?;
    if syncd_types::names::is_internal(&name) {
        return Err(refuse(InvalidFile, "internal file"));
    }
    if ctx
        .ignores()
        .is_some_and(|i| i.matched(name.as_str(), false).is_ignored())
    {
        return Err(refuse(InvalidFile, "ignored file"));
    }
    let size = usize::try_from(req.size).map_err(|_| Generic)?;
    let offset = u64::try_from(req.offset).map_err(|_| Generic)?;
    let permits = u32::try_from(size.max(1)).unwrap_or(u32::MAX);
    let _permit = serve_budget(peer)
        .acquire_many_owned(permits)
        .await
        .map_err(|_| Generic)?;
    let index = shared.index.clone();
    let me = shared.device_id;
    let root = cfg.path.clone();
    let hash = req.hash.clone();
    let peer = peer.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<u8>, bep::ErrorCode> {
        let reader = index.read(&folder).map_err(|_| bep::ErrorCode::Generic)?;
        let stamp = (reader.local_index_id(), reader.local_sequence());
        if !lock(&peer.servable).contains(&folder, stamp, &name) {
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
            lock(&peer.servable).insert(&folder, stamp, name.clone());
        }
        drop(reader);
        let path = fsutil::safe_path(&root, &name).map_err(|_| bep::ErrorCode::NoSuchFile)?;
        let data = read_at_nofollow(&path, offset, size).map_err(|_| bep::ErrorCode::NoSuchFile)?;
        if !hash.is_empty() && Sha256::digest(&data).as_slice() != hash.as_slice() {
            return Err(bep::ErrorCode::NoSuchFile);
        }
        Ok(data)
    })
    .await
    .map_err(|_| Generic)?
    .map_err(Refusal::from)
}

/// Names the index recently showed as live, valid regular files of ours, for one peer: a
/// large file is requested piece by piece, and decoding its record (block and chunk lists)
/// for every piece cost more than reading the piece. An entry holds only while the folder's
/// local index ID and sequence are what they were when it was checked: any change to a local
/// record (a scan, a pull, a deletion) bumps the sequence and empties the set. The data
/// itself is still checked against the requested hash on every Request.
#[derive(Debug, Default)]
pub(crate) struct Servable {
    folder: Option<FolderId>,
    /// (local index ID, local sequence) the names were checked at.
    stamp: (u64, u64),
    names: HashSet<RelPath>,
}

/// Names remembered at most; past this the set starts over.
const SERVABLE_MAX: usize = 4096;

impl Servable {
    fn contains(&self, folder: &FolderId, stamp: (u64, u64), name: &RelPath) -> bool {
        self.folder.as_ref() == Some(folder) && self.stamp == stamp && self.names.contains(name)
    }

    fn insert(&mut self, folder: &FolderId, stamp: (u64, u64), name: RelPath) {
        if self.folder.as_ref() != Some(folder)
            || self.stamp != stamp
            || self.names.len() >= SERVABLE_MAX
        {
            self.folder = Some(folder.clone());
            self.stamp = stamp;
            self.names.clear();
        }
        self.names.insert(name);
    }
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
    // Read into spare capacity: no zero-fill of a buffer about to be overwritten.
    let mut buf = Vec::with_capacity(size);
    f.take(u64::try_from(size).unwrap_or(u64::MAX))
        .read_to_end(&mut buf)?;
    if buf.len() != size {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(id: &str) -> FolderId {
        FolderId::new(id.to_owned()).unwrap()
    }

    fn name(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn a_servable_name_holds_only_for_its_folder_and_local_stamp() {
        let mut s = Servable::default();
        s.insert(&folder("f"), (7, 100), name("a/b"));
        // (folder, stamp, name, still servable without a new index check)
        let cases = [
            ("f", (7, 100), "a/b", true),
            ("f", (7, 101), "a/b", false), // a local change bumped the sequence
            ("f", (8, 100), "a/b", false), // a new local index ID
            ("g", (7, 100), "a/b", false), // another folder
            ("f", (7, 100), "a/c", false), // never checked
        ];
        for (f, stamp, n, want) in cases {
            assert_eq!(
                s.contains(&folder(f), stamp, &name(n)),
                want,
                "{f} {stamp:?} {n}"
            );
        }
    }

    #[test]
    fn a_name_checked_at_a_newer_stamp_forgets_the_older_names() {
        let mut s = Servable::default();
        s.insert(&folder("f"), (7, 100), name("old"));
        s.insert(&folder("f"), (7, 101), name("new"));
        assert!(s.contains(&folder("f"), (7, 101), &name("new")));
        assert!(!s.contains(&folder("f"), (7, 101), &name("old")));
    }

    #[test]
    fn the_servable_set_starts_over_when_full() {
        let mut s = Servable::default();
        for i in 0..SERVABLE_MAX {
            s.insert(&folder("f"), (1, 1), name(&format!("n{i}")));
        }
        s.insert(&folder("f"), (1, 1), name("one-more"));
        assert_eq!(s.names.len(), 1);
        assert!(s.contains(&folder("f"), (1, 1), &name("one-more")));
    }
}

//! The blocking half of pulling a file's data: everything one blocking thread does before and
//! after the network.
//!
//! [`prepare`] runs once per file, on one blocking thread: it opens the temp file (reusing the
//! verified pieces a failed attempt left, see [`super::resume`]), then copies every other
//! piece that local data already holds ([`super::source::Local`]: the old version of the same
//! file, then any file the block map names), each SHA-256-verified before it is written, all
//! under one index snapshot.
//! What is left is fetched from peers; [`write_pieces`] writes the verified pieces that arrived
//! meanwhile in one go, and the last such write also gives the file its permissions and
//! mtime. So a file costs a couple of hand-offs to blocking threads, not several per piece.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::SystemTime;

use syncd_index::{Block, FileRecord};

use super::resume;
use super::source::{Local, Snapshot};
use crate::fsutil;

/// Permissions and mtime the finished temp file gets before it is staged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    /// Permission bits to set (`None`: permissions are ignored, the umask's stay).
    pub(crate) mode: Option<u32>,
    pub(crate) mtime: SystemTime,
}

impl Meta {
    /// The metadata `g` asks for, under the folder's `ignore_perms`.
    pub(crate) fn of(g: &FileRecord, ignore_perms: bool) -> Meta {
        Meta {
            mode: (!ignore_perms && !g.no_permissions).then_some(g.permissions & 0o777),
            mtime: fsutil::mtime_of(g),
        }
    }

    pub(crate) fn apply(&self, f: &File) -> io::Result<()> {
        if let Some(mode) = self.mode {
            f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        f.set_modified(self.mtime)
    }
}

/// A temp file with every piece local data could provide, and what is left to fetch.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) file: File,
    /// Pieces still to fetch from peers, in file order.
    pub(crate) missing: Vec<Block>,
    /// Bytes reused from an existing temp file.
    pub(crate) reused_bytes: u64,
    /// True when nothing is missing and [`Meta`] has been applied.
    pub(crate) complete: bool,
    /// What is left to apply once the file is complete: the `meta` given, without the
    /// permissions when the new temp file was created with them.
    pub(crate) meta: Meta,
}

/// Opens the temp file at `temp` for `pieces` (a file of `size` bytes), fills what local
/// data holds and, when that completes the file, applies `meta` (see the module docs).
pub(crate) fn prepare(
    temp: &Path,
    pieces: &[Block],
    size: u64,
    src: &Local,
    meta: Meta,
    snapshot: &mut Snapshot,
) -> io::Result<Prepared> {
    let mut meta = meta;
    let tf = resume::open_temp(temp, pieces, size, meta.mode)?;
    if tf.created_mode.is_some() && tf.created_mode == meta.mode {
        // Created with the permissions the target needs: no chmod (nor the watcher's event).
        meta.mode = None;
    }
    let mut missing = Vec::new();
    for (b, _) in pieces
        .iter()
        .zip(&tf.reused)
        .filter(|(b, reused)| b.size > 0 && !**reused)
    {
        match src.read(snapshot, b) {
            Some(data) => tf.file.write_all_at(&data, b.offset)?,
            None => missing.push(*b),
        }
    }
    let complete = missing.is_empty();
    if complete {
        meta.apply(&tf.file)?;
    }
    Ok(Prepared {
        file: tf.file,
        missing,
        reused_bytes: tf.reused_bytes,
        complete,
        meta,
    })
}

/// Writes verified pieces (offset, data) into the temp file; with `meta`, the file is then
/// complete and gets its permissions and mtime.
pub(crate) fn write_pieces(
    file: &File,
    pieces: &[(u64, Vec<u8>)],
    meta: Option<Meta>,
) -> io::Result<()> {
    for (offset, data) in pieces {
        file.write_all_at(data, *offset)?;
    }
    match meta {
        Some(m) => m.apply(file),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::puller::resume::tests::piece;
    use std::sync::Arc;
    use syncd_index::Index;
    use syncd_types::{DeviceId, FileKind, FolderId, RelPath};

    fn sources(dir: &Path, old: Option<FileRecord>) -> Local {
        let index = Index::open(dir.join("index.redb"), DeviceId::from_bytes([1; 32])).unwrap();
        Local {
            index: Arc::new(index),
            folder: FolderId::new("f".to_owned()).unwrap(),
            root: dir.join("root"),
            old,
            old_path: dir.join("root/file"),
        }
    }

    fn meta() -> Meta {
        Meta {
            mode: Some(0o640),
            mtime: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000),
        }
    }

    #[test]
    fn pieces_of_the_old_version_are_copied_and_the_rest_is_left_to_fetch() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("root")).unwrap();
        let old_data = vec![7u8; 300];
        std::fs::write(d.path().join("root/file"), &old_data).unwrap();
        let mut old = FileRecord::new(RelPath::new("file").unwrap(), FileKind::File);
        old.size = 300;
        old.blocks = vec![piece(&old_data, 0, 100)];
        // The new version: its first piece is the old first piece, its second is new.
        let mut new_data = old_data[..100].to_vec();
        new_data.extend_from_slice(&[9u8; 100]);
        let pieces = vec![piece(&new_data, 0, 100), piece(&new_data, 100, 100)];
        let src = sources(d.path(), Some(old));
        let temp = d.path().join("root/.syncthing.file.tmp");
        let p = prepare(&temp, &pieces, 200, &src, meta(), &mut None).unwrap();
        assert_eq!(p.missing, vec![pieces[1]]);
        assert!(!p.complete);
        let mut head = vec![0u8; 100];
        p.file.read_exact_at(&mut head, 0).unwrap();
        assert_eq!(head, new_data[..100]);
    }

    #[test]
    fn a_file_that_local_data_completes_gets_its_permissions_and_mtime_at_once() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("root")).unwrap();
        let data = vec![3u8; 100];
        std::fs::write(d.path().join("root/file"), &data).unwrap();
        let mut old = FileRecord::new(RelPath::new("file").unwrap(), FileKind::File);
        old.size = 100;
        old.blocks = vec![piece(&data, 0, 100)];
        let src = sources(d.path(), Some(old));
        let temp = d.path().join("root/.syncthing.file.tmp");
        let p = prepare(&temp, &[piece(&data, 0, 100)], 100, &src, meta(), &mut None).unwrap();
        assert!(p.complete && p.missing.is_empty());
        let m = std::fs::metadata(&temp).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o640);
        assert_eq!(m.modified().unwrap(), meta().mtime);
        assert_eq!(std::fs::read(&temp).unwrap(), data);
    }

    #[test]
    fn written_pieces_land_at_their_offsets_and_the_last_write_sets_the_metadata() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t");
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.set_len(6).unwrap();
        write_pieces(&f, &[(3, b"def".to_vec())], None).unwrap();
        write_pieces(&f, &[(0, b"abc".to_vec())], Some(meta())).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"abcdef");
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o640);
        assert_eq!(m.modified().unwrap(), meta().mtime);
    }
}

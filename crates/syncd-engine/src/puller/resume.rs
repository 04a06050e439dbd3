//! Temp files that survive a failure or a restart: their verified pieces are reused.
//!
//! A pull writes into `.syncthing.<name>.tmp` beside the target and leaves it in place when it
//! fails (or the process dies). The next attempt opens the same temp file, hashes it piece by
//! piece against the pieces it needs (offset, size and SHA-256 of the global version's chunk or
//! block list) and fetches only the pieces that do not verify. A torn or stale piece simply
//! fails its hash; nothing in a temp file is trusted without one.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use syncd_index::Block;

/// An open temp file, sized to the target, and which of the needed pieces it already holds.
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) file: File,
    /// `reused[i]` is true when piece `i` of the list passed to [`open_temp`] verified.
    pub(crate) reused: Vec<bool>,
    /// Bytes of verified pieces.
    pub(crate) reused_bytes: u64,
    /// The permission bits a new temp file created with a mode got (that mode under the umask
    /// or a default ACL), read back from the open file; `None` for a reused temp file or one
    /// created without a mode (permissions ignored: nothing to compare, no `fstat`).
    pub(crate) created_mode: Option<u32>,
}

/// A new temp file up to this size is not sized up front: writing its pieces (the list
/// covers the file exactly) gives it its size, so the `ftruncate` (and the watcher's event for
/// it) is saved on every small file. A larger one is sized at once, for its direct writes.
const PRESIZE_ABOVE: u64 = 1 << 20;

/// Opens (or creates) the temp file at `temp` for a target of `size` bytes made of `pieces`.
///
/// An existing regular temp file is made writable if a crash left it read-only, and each piece
/// that lies inside it is read and verified; when none verifies it is emptied. A directory or
/// symlink under the temp name is removed first (an empty directory only). The file is never
/// opened through a symlink. On return the file is `size` bytes long, or (a new file of at
/// most [`PRESIZE_ABOVE`] bytes) empty. A new file is created with `mode` (plus owner read and
/// write; 0600 without one) under the umask, so the permissions the target needs are often
/// there already.
pub(crate) fn open_temp(
    temp: &Path,
    pieces: &[Block],
    size: u64,
    mode: Option<u32>,
) -> io::Result<TempFile> {
    // The usual case, no temp file yet: one exclusive create (no lstat first). Whatever is
    // already there under the name (EEXIST) takes the path below.
    match create_temp(temp, pieces.len(), size, mode) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        other => return other,
    }
    match std::fs::symlink_metadata(temp) {
        Ok(m) if m.is_file() => {
            if m.permissions().mode() & 0o600 != 0o600 {
                std::fs::set_permissions(
                    temp,
                    std::fs::Permissions::from_mode(m.permissions().mode() | 0o600),
                )?;
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(temp)?;
            let len = file.metadata()?.len();
            let (reused, reused_bytes) = verify_pieces(&file, len, pieces);
            if reused_bytes == 0 {
                file.set_len(0)?;
            }
            file.set_len(size)?;
            return Ok(TempFile {
                file,
                reused,
                reused_bytes,
                created_mode: None,
            });
        }
        Ok(m) if m.is_dir() => std::fs::remove_dir(temp)?,
        Ok(_) => std::fs::remove_file(temp)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    create_temp(temp, pieces.len(), size, mode)
}

/// Creates the temp file (never through a symlink, failing if anything has the name) sized
/// to `size`, with none of its `pieces` pieces reused.
fn create_temp(temp: &Path, pieces: usize, size: u64, mode: Option<u32>) -> io::Result<TempFile> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode.map_or(0o600, |m| (m & 0o777) | 0o600))
        .custom_flags(libc::O_NOFOLLOW)
        .open(temp)?;
    if size > PRESIZE_ABOVE {
        file.set_len(size)?;
    }
    // An fstat costs less than the chmod it may save (no inode write, no watcher event).
    let created_mode = match mode {
        Some(_) => Some(file.metadata()?.permissions().mode() & 0o777),
        None => None,
    };
    Ok(TempFile {
        file,
        reused: vec![false; pieces],
        reused_bytes: 0,
        created_mode,
    })
}

/// Which pieces the first `len` bytes of `file` hold, and their total size.
fn verify_pieces(file: &File, len: u64, pieces: &[Block]) -> (Vec<bool>, u64) {
    let mut buf = Vec::new();
    let mut total = 0u64;
    let reused = pieces
        .iter()
        .map(|p| {
            if p.size == 0 || p.offset.saturating_add(u64::from(p.size)) > len {
                return false;
            }
            let Ok(n) = usize::try_from(p.size) else {
                return false;
            };
            buf.resize(n, 0);
            let ok = file.read_exact_at(&mut buf, p.offset).is_ok()
                && Sha256::digest(&buf).as_slice() == p.hash;
            if ok {
                total += u64::from(p.size);
            }
            ok
        })
        .collect();
    (reused, total)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The block of `data` at `offset`, `size` bytes long, with its SHA-256 (shared with the
    /// other puller modules' tests).
    pub(in crate::puller) fn piece(data: &[u8], offset: usize, size: usize) -> Block {
        Block {
            offset: offset as u64,
            size: size as u32,
            hash: Sha256::digest(&data[offset..offset + size]).into(),
        }
    }

    fn pieces(data: &[u8], size: usize) -> Vec<Block> {
        (0..data.len())
            .step_by(size)
            .map(|o| piece(data, o, size.min(data.len() - o)))
            .collect()
    }

    #[test]
    fn a_new_temp_file_has_the_target_mode_and_is_sized_only_when_large() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join(".syncthing.f.tmp");
        let data = vec![5u8; 1000];
        let tf = open_temp(&t, &pieces(&data, 100), 1000, Some(0o644)).unwrap();
        assert_eq!(tf.reused, vec![false; 10]);
        assert_eq!(tf.reused_bytes, 0);
        // Small: not sized up front; its pieces give it its size.
        assert_eq!(std::fs::metadata(&t).unwrap().len(), 0);
        let m = std::fs::metadata(&t).unwrap().permissions().mode() & 0o777;
        assert_eq!(tf.created_mode, Some(m));
        assert_eq!(m & 0o600, 0o600);
        let big = d.path().join(".syncthing.g.tmp");
        let size = PRESIZE_ABOVE + 1;
        let tf = open_temp(&big, &[], size, Some(0o400)).unwrap();
        assert_eq!(std::fs::metadata(&big).unwrap().len(), size);
        let m = std::fs::metadata(&big).unwrap().permissions().mode() & 0o777;
        assert_eq!(tf.created_mode, Some(m));
        // Permissions ignored: owner-only, nothing read back.
        let plain = d.path().join(".syncthing.h.tmp");
        let tf = open_temp(&plain, &[], 10, None).unwrap();
        assert_eq!(tf.created_mode, None);
        let m = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
        assert_eq!(m & 0o077, 0, "mode {m:o}");
    }

    #[test]
    fn verified_pieces_of_an_existing_temp_file_are_reused_and_torn_ones_are_not() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join(".syncthing.f.tmp");
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        // Pieces 0 and 1 written, piece 2 torn (half written), the rest never written.
        let mut on_disk = vec![0u8; 1000];
        on_disk[..250].copy_from_slice(&data[..250]);
        std::fs::write(&t, &on_disk).unwrap();
        let tf = open_temp(&t, &pieces(&data, 100), 1000, Some(0o644)).unwrap();
        let mut want = vec![false; 10];
        want[0] = true;
        want[1] = true;
        assert_eq!(tf.reused, want);
        assert_eq!(tf.reused_bytes, 200);
        let mut back = vec![0u8; 200];
        tf.file.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, data[..200]);
    }

    #[test]
    fn a_longer_temp_file_is_cut_to_the_target_size_keeping_its_verified_pieces() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join(".syncthing.f.tmp");
        let data: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut on_disk = data.clone();
        on_disk.extend_from_slice(&[9u8; 700]);
        std::fs::write(&t, &on_disk).unwrap();
        let tf = open_temp(&t, &pieces(&data, 100), 300, Some(0o644)).unwrap();
        assert_eq!(tf.reused, vec![true; 3]);
        assert_eq!(std::fs::read(&t).unwrap(), data);
    }

    #[test]
    fn a_temp_file_with_no_matching_piece_is_emptied() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join(".syncthing.f.tmp");
        std::fs::write(&t, vec![1u8; 500]).unwrap();
        let data = vec![2u8; 500];
        let tf = open_temp(&t, &pieces(&data, 100), 500, Some(0o644)).unwrap();
        assert_eq!(tf.reused_bytes, 0);
        assert_eq!(std::fs::read(&t).unwrap(), vec![0u8; 500]);
    }

    #[test]
    fn a_read_only_temp_file_left_by_a_crash_is_made_writable() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join(".syncthing.f.tmp");
        let data = vec![3u8; 200];
        std::fs::write(&t, &data).unwrap();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o444)).unwrap();
        let tf = open_temp(&t, &pieces(&data, 100), 200, Some(0o644)).unwrap();
        assert_eq!(tf.reused_bytes, 200);
        tf.file.write_all_at(b"x", 0).unwrap();
    }

    #[test]
    fn a_symlink_under_the_temp_name_is_replaced_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let t = d.path().join(".syncthing.f.tmp");
        std::os::unix::fs::symlink(&victim, &t).unwrap();
        let data = vec![4u8; 100];
        open_temp(&t, &pieces(&data, 100), 100, Some(0o644)).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        assert!(std::fs::symlink_metadata(&t).unwrap().is_file());
    }
}

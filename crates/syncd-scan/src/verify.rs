//! Block verification: reads a file that the index says is unchanged (same size,
//! modification time to the nanosecond and inode as when it was hashed, the scanner's own
//! "unchanged" test) and checks every block against the hash the index recorded. A file
//! whose blocks differ although its size and modification time did not change was damaged
//! behind the scanner's back (a failing disk, a tool writing in place and restoring the
//! time): a scan would never look at it again, and its bytes must not be served as the
//! recorded version.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use syncd_index::FileRecord;

use crate::stat::Stat;

/// What [`check_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Check {
    /// Every block matches; `bytes` were read.
    Good {
        /// Bytes read and hashed.
        bytes: u64,
    },
    /// The file is not the one recorded (another size, time or inode, not a regular file, or
    /// it changed during the read): the next scan looks at it, verification does not.
    Changed,
    /// The file looks unchanged but these blocks (indices into the record's block list) do
    /// not hold the recorded bytes.
    Damaged {
        /// Indices of the blocks that differ.
        blocks: Vec<u32>,
        /// Bytes read and hashed.
        bytes: u64,
    },
}

/// Whether the stat on disk is the recorded one (size, modification time to the
/// nanosecond, inode unless either is unknown as 0).
fn is_recorded(s: &Stat, rec: &FileRecord) -> bool {
    s.size == rec.size
        && s.mtime_s == rec.modified_s
        && s.mtime_ns == rec.modified_ns
        && (rec.inode == 0 || s.inode == 0 || s.inode == rec.inode)
}

/// Checks `path` (the file of the live local record `rec`) block by block. Opens without
/// following a symlink; a file that is not the recorded one is [`Check::Changed`].
pub fn check_file(path: &Path, rec: &FileRecord) -> io::Result<Check> {
    let file = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ELOOP) => {
            return Ok(Check::Changed);
        }
        Err(e) => return Err(e),
    };
    let before = file.metadata()?;
    if !before.file_type().is_file() || !is_recorded(&Stat::from_metadata(&before), rec) {
        return Ok(Check::Changed);
    }
    let mut damaged = Vec::new();
    let mut bytes = 0u64;
    let mut buf = Vec::new();
    for (i, b) in rec.blocks.iter().enumerate() {
        buf.resize(b.size as usize, 0);
        match file.read_exact_at(&mut buf, b.offset) {
            Ok(()) => {}
            // Shorter than recorded: it changed while we read (the stat check below says so).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Check::Changed),
            Err(e) => return Err(e),
        }
        bytes += u64::from(b.size);
        if Sha256::digest(&buf).as_slice() != b.hash.as_slice() {
            damaged.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
    let after = Stat::from_metadata(&file.metadata()?);
    if after.fingerprint() != Stat::from_metadata(&before).fingerprint() {
        return Ok(Check::Changed);
    }
    Ok(if damaged.is_empty() {
        Check::Good { bytes }
    } else {
        Check::Damaged {
            blocks: damaged,
            bytes,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_file;
    use std::fs::FileTimes;

    fn record_of(path: &Path) -> FileRecord {
        let st = Stat::lstat(path).unwrap();
        let h = hash_file(path, &st, 128 * 1024, &mut |_| {}).unwrap();
        let mut r = FileRecord::new(
            syncd_types::RelPath::new("f").unwrap(),
            syncd_types::FileKind::File,
        );
        r.size = st.size;
        r.modified_s = st.mtime_s;
        r.modified_ns = st.mtime_ns;
        r.inode = st.inode;
        r.blocks = h
            .blocks
            .iter()
            .map(|b| syncd_index::Block {
                offset: b.offset,
                size: b.size,
                hash: b.hash,
            })
            .collect();
        r
    }

    #[test]
    fn a_block_changed_in_place_with_the_time_restored_is_found() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let data: Vec<u8> = (0..(512 * 1024u32)).map(|i| (i % 251) as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let rec = record_of(&p);
        assert_eq!(rec.blocks.len(), 4);
        assert_eq!(
            check_file(&p, &rec).unwrap(),
            Check::Good { bytes: 512 * 1024 }
        );

        // One byte of the third block flipped in place, the modification time put back.
        let mtime = std::fs::metadata(&p).unwrap().modified().unwrap();
        let f = File::options().write(true).open(&p).unwrap();
        f.write_all_at(&[0xFF], 2 * 128 * 1024 + 77).unwrap();
        f.set_times(FileTimes::new().set_modified(mtime)).unwrap();
        drop(f);
        assert_eq!(
            check_file(&p, &rec).unwrap(),
            Check::Damaged {
                blocks: vec![2],
                bytes: 512 * 1024
            }
        );

        // A real edit (a new modification time) is the scanner's business, not damage.
        let f = File::options().write(true).open(&p).unwrap();
        f.set_times(FileTimes::new().set_modified(mtime + std::time::Duration::from_secs(5)))
            .unwrap();
        assert_eq!(check_file(&p, &rec).unwrap(), Check::Changed);
    }

    #[test]
    fn a_missing_file_or_a_symlink_is_changed_not_an_error() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, b"hello").unwrap();
        let rec = record_of(&p);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(check_file(&p, &rec).unwrap(), Check::Changed);
        std::os::unix::fs::symlink("/etc/hostname", &p).unwrap();
        assert_eq!(check_file(&p, &rec).unwrap(), Check::Changed);
    }
}

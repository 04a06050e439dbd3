//! What the scanner learns from one `lstat`.

use std::os::unix::fs::MetadataExt;

use syncd_types::FileKind;

/// The metadata of one directory entry, from `lstat` (symlinks are never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// File, directory or symlink (`None` for fifos, sockets and devices, which are skipped).
    pub kind: Option<FileKind>,
    /// Size in bytes (meaningful for files only).
    pub size: u64,
    /// Modification time, whole seconds since the Unix epoch.
    pub mtime_s: i64,
    /// Modification time, nanoseconds part (0..1e9).
    pub mtime_ns: i32,
    /// Permission bits, `mode & 0o777`.
    pub permissions: u32,
    /// Inode number.
    pub inode: u64,
    /// Device number of the filesystem holding the entry.
    pub dev: u64,
    /// Status change time (seconds), which moves on every write, chmod or rename.
    pub ctime_s: i64,
    /// Status change time, nanoseconds part.
    pub ctime_ns: i64,
}

impl Stat {
    /// Builds a `Stat` from `std` metadata taken without following symlinks.
    pub fn from_metadata(m: &std::fs::Metadata) -> Stat {
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            Some(FileKind::Symlink)
        } else if ft.is_dir() {
            Some(FileKind::Directory)
        } else if ft.is_file() {
            Some(FileKind::File)
        } else {
            None
        };
        Stat {
            kind,
            size: m.size(),
            mtime_s: m.mtime(),
            mtime_ns: i32::try_from(m.mtime_nsec()).unwrap_or(0),
            permissions: m.mode() & 0o777,
            inode: m.ino(),
            dev: m.dev(),
            ctime_s: m.ctime(),
            ctime_ns: m.ctime_nsec(),
        }
    }

    /// `lstat` of a path.
    pub fn lstat(path: &std::path::Path) -> std::io::Result<Stat> {
        std::fs::symlink_metadata(path).map(|m| Stat::from_metadata(&m))
    }

    /// What must stay identical across a read for its hash to be trusted.
    pub(crate) fn fingerprint(&self) -> (u64, u64, u64, i64, i32, i64, i64) {
        (
            self.dev,
            self.inode,
            self.size,
            self.mtime_s,
            self.mtime_ns,
            self.ctime_s,
            self.ctime_ns,
        )
    }
}

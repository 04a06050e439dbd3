/// What a directory entry is. Syncthing's deprecated `SYMLINK_FILE`/`SYMLINK_DIRECTORY` wire
/// values map to [`FileKind::Symlink`] in `syncd-proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link (recorded as a link, never followed).
    Symlink,
}

impl FileKind {
    /// True for [`FileKind::File`].
    pub fn is_file(self) -> bool {
        self == FileKind::File
    }
    /// True for [`FileKind::Directory`].
    pub fn is_dir(self) -> bool {
        self == FileKind::Directory
    }
    /// True for [`FileKind::Symlink`].
    pub fn is_symlink(self) -> bool {
        self == FileKind::Symlink
    }
}

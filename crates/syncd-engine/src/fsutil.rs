//! Filesystem helpers of the puller and the request server: safe path resolution (never
//! through a symlink), mtimes, permissions.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syncd_index::FileRecord;
use syncd_types::{FileKind, RelPath};

/// Resolves `rel` under `root`, refusing any path whose parent directories include a symlink
/// or a non-directory (so nothing is ever read or written through a link). Missing parents
/// are allowed (the caller creates them).
pub fn safe_path(root: &Path, rel: &RelPath) -> io::Result<PathBuf> {
    check_parents(root, rel)?;
    Ok(rel.to_path_under(root))
}

/// The check of [`safe_path`]: `Ok(true)` when every parent of `rel` exists as a directory,
/// `Ok(false)` when one is missing (none of them a symlink or a file).
fn check_parents(root: &Path, rel: &RelPath) -> io::Result<bool> {
    let mut cur = root.to_path_buf();
    // Spelt as local names are (NFD where they are, see `syncd_types::local_names_nfd`), so
    // each parent checked is the one the final path goes through.
    let local = rel.to_path_under(Path::new(""));
    let comps: Vec<_> = local.components().collect();
    let parents = comps.len().saturating_sub(1);
    for c in comps.iter().take(parents) {
        cur.push(c);
        match std::fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(io::Error::other(format!(
                    "parent {} is a symlink; refusing to follow it",
                    cur.display()
                )));
            }
            Ok(m) if !m.is_dir() => {
                return Err(io::Error::other(format!(
                    "parent {} is not a directory",
                    cur.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// At most this many directories are remembered by [`VerifiedDirs`] (then it starts over).
const VERIFIED_DIRS_MAX: usize = 4096;

/// Directories that [`safe_path_in`] found to be real directories all the way from the root,
/// remembered while the puller pulls the regular files of one pass: the files of a directory
/// then cost one check of its parents instead of one `lstat` per parent per file (on a tree of
/// small files that walk was the largest part of the receiver's system time). Only for that
/// phase, in which the puller itself creates no symlink and removes or replaces no directory
/// (directories and symlinks come before it, deletions after it); cleared around it. The
/// request server keeps one per read snapshot (at most 20 ms). A directory replaced by a
/// symlink from outside syncd within such a span is not seen, as it would not be between any
/// check and the open that follows it; the last component is never followed in any case.
#[derive(Default)]
pub(crate) struct VerifiedDirs(std::sync::Mutex<std::collections::HashSet<PathBuf>>);

impl VerifiedDirs {
    /// Forgets every directory.
    pub(crate) fn clear(&self) {
        self.with(std::collections::HashSet::clear);
    }

    fn contains(&self, dir: &Path) -> bool {
        self.with(|s| s.contains(dir))
    }

    fn insert(&self, dir: &Path) {
        self.with(|s| {
            if s.len() >= VERIFIED_DIRS_MAX {
                s.clear();
            }
            s.insert(dir.to_path_buf());
        });
    }

    fn with<R>(&self, f: impl FnOnce(&mut std::collections::HashSet<PathBuf>) -> R) -> R {
        match self.0.lock() {
            Ok(mut g) => f(&mut g),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// [`safe_path`] remembering checked directories in `known`; also tells whether the parent
/// directory exists (so the caller need not create it).
pub(crate) fn safe_path_in(
    root: &Path,
    rel: &RelPath,
    known: &VerifiedDirs,
) -> io::Result<(PathBuf, bool)> {
    let path = rel.to_path_under(root);
    let parent = match path.parent() {
        Some(p) if rel.components().nth(1).is_some() => p,
        // A name directly under the root: nothing to check.
        _ => return Ok((path, true)),
    };
    if known.contains(parent) {
        return Ok((path, true));
    }
    let present = check_parents(root, rel)?;
    if present {
        known.insert(parent);
    }
    Ok((path, present))
}

/// A record's mtime as a `SystemTime`.
pub(crate) fn mtime_of(r: &FileRecord) -> SystemTime {
    let ns = u32::try_from(r.modified_ns).unwrap_or(0).min(999_999_999);
    if r.modified_s >= 0 {
        UNIX_EPOCH + Duration::new(r.modified_s.unsigned_abs(), ns)
    } else {
        UNIX_EPOCH - Duration::from_secs(r.modified_s.unsigned_abs())
            + Duration::from_nanos(u64::from(ns))
    }
}

/// `(seconds, nanoseconds)` of a `SystemTime`, as records hold them.
pub(crate) fn split_time(t: SystemTime) -> (i64, i32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            i32::try_from(d.subsec_nanos()).unwrap_or(0),
        ),
        Err(e) => {
            let d = e.duration();
            let mut s = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            let mut ns = d.subsec_nanos();
            if ns > 0 {
                s -= 1;
                ns = 1_000_000_000 - ns;
            }
            (s, i32::try_from(ns).unwrap_or(0))
        }
    }
}

/// Whether a file's metadata shows the size and mtime (to the nanosecond, as records split
/// it: see [`split_time`]) a record holds. An mtime the platform cannot give is a mismatch.
pub(crate) fn same_size_and_mtime(meta: &std::fs::Metadata, size: u64, s: i64, ns: i32) -> bool {
    meta.len() == size && meta.modified().is_ok_and(|t| split_time(t) == (s, ns))
}

/// Whether the item on disk at `path` still matches what the index says we have (`local`);
/// `None`/deleted means nothing should be there. A mismatch means the user changed it since
/// the last scan: the puller must rescan instead of overwriting (spec sync-semantics §3.6).
pub(crate) fn matches_index(
    path: &Path,
    local: Option<&FileRecord>,
    ignore_perms: bool,
) -> io::Result<bool> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    meta_matches(path, &meta, local, ignore_perms)
}

/// [`matches_index`] for an item whose metadata (`lstat`) has been read.
fn meta_matches(
    path: &Path,
    meta: &std::fs::Metadata,
    local: Option<&FileRecord>,
    ignore_perms: bool,
) -> io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let Some(local) = local.filter(|l| l.is_live_local()) else {
        return Ok(false);
    };
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        FileKind::Symlink
    } else if ft.is_dir() {
        FileKind::Directory
    } else {
        FileKind::File
    };
    if kind != local.kind {
        return Ok(false);
    }
    let perms_same = ignore_perms
        || local.no_permissions
        || meta.permissions().mode() & 0o777 == local.permissions & 0o777;
    Ok(match kind {
        FileKind::File => {
            same_size_and_mtime(meta, local.size, local.modified_s, local.modified_ns) && perms_same
        }
        FileKind::Directory => true,
        FileKind::Symlink => {
            use std::os::unix::ffi::OsStrExt;
            std::fs::read_link(path)?.as_os_str().as_bytes() == local.symlink_target.as_slice()
        }
    })
}

/// Splits the records a pull is about to commit into those whose item on disk (under `root`)
/// still is what the record says — a live record's entry present and matching, a deletion's
/// name absent — and the names that changed since the puller put them in place. The second
/// must not be committed but rescanned: between the rename and the (batched) commit the user
/// may have replaced or deleted the item and the watcher may already have recorded that, and
/// committing the stale record over it would lose the change for good (the scanner sees no
/// further event; found by the torture run: a file deleted right after a pull placed it stayed
/// listed). Called with the index write transaction open, so no scan commits in between.
/// Invalid records make no claim about the disk and are kept.
pub(crate) fn still_installed(
    root: &Path,
    records: Vec<FileRecord>,
    ignore_perms: bool,
) -> (Vec<FileRecord>, Vec<RelPath>) {
    let mut keep = Vec::with_capacity(records.len());
    let mut changed = Vec::new();
    for r in records {
        let path = r.name.to_path_under(root);
        let same = match std::fs::symlink_metadata(&path) {
            _ if r.invalid => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => r.deleted,
            Err(_) => false,
            Ok(_) if r.deleted => false,
            Ok(meta) => meta_matches(&path, &meta, Some(&r), ignore_perms).unwrap_or(false),
        };
        if same {
            keep.push(r);
        } else {
            changed.push(r.name);
        }
    }
    (keep, changed)
}

/// Fsyncs a directory (after renames into it), so the new names are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Reads exactly `size` bytes at `offset` from a regular file, refusing a symlink at `path`.
pub(crate) fn read_at_nofollow(path: &Path, offset: u64, size: usize) -> std::io::Result<Vec<u8>> {
    read_open(path, offset, size).map(|(d, _)| d)
}

/// [`read_at_nofollow`], with the file's metadata taken after the read: a write that began
/// before the read ended has changed its mtime by then.
pub(crate) fn read_at_nofollow_meta(
    path: &Path,
    offset: u64,
    size: usize,
) -> std::io::Result<(Vec<u8>, std::fs::Metadata)> {
    let (data, f) = read_open(path, offset, size)?;
    Ok((data, f.metadata()?))
}

/// One open that refuses a symlink as the last component (`O_NOFOLLOW`) and does not block
/// on a FIFO (`O_NONBLOCK`), `fstat` of that very handle (a regular file, or an error: no
/// window between a check and the open), then the read from `offset`.
fn read_open(path: &Path, offset: u64, size: usize) -> std::io::Result<(Vec<u8>, std::fs::File)> {
    use std::io::{Read, Seek};
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    f.seek(std::io::SeekFrom::Start(offset))?;
    // Read into spare capacity: no zero-fill of a buffer about to be overwritten.
    let mut buf = Vec::with_capacity(size);
    (&mut f)
        .take(u64::try_from(size).unwrap_or(u64::MAX))
        .read_to_end(&mut buf)?;
    if buf.len() != size {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok((buf, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_record(root: &Path, name: &str) -> FileRecord {
        let meta = std::fs::symlink_metadata(root.join(name)).unwrap();
        let mut r = FileRecord::new(RelPath::new(name).unwrap(), FileKind::File);
        r.size = meta.len();
        (r.modified_s, r.modified_ns) = split_time(meta.modified().unwrap());
        r.no_permissions = true;
        r
    }

    #[test]
    fn a_pulled_file_deleted_or_replaced_before_the_commit_is_rescanned_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for n in ["kept", "deleted", "replaced"] {
            std::fs::write(root.join(n), b"pulled").unwrap();
        }
        let records: Vec<FileRecord> = ["kept", "deleted", "replaced"]
            .iter()
            .map(|n| file_record(root, n))
            .collect();
        // The user, after the puller's rename and before its commit.
        std::fs::remove_file(root.join("deleted")).unwrap();
        std::fs::write(root.join("replaced"), b"the user's longer content").unwrap();
        let (keep, changed) = still_installed(root, records, false);
        let kept: Vec<&str> = keep.iter().map(|r| r.name.as_str()).collect();
        let changed: Vec<&str> = changed.iter().map(RelPath::as_str).collect();
        assert_eq!(kept, ["kept"]);
        assert_eq!(changed, ["deleted", "replaced"]);
    }

    #[test]
    fn a_pulled_deletion_is_committed_only_while_the_name_stays_absent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("recreated"), b"new").unwrap();
        let deletion = |n: &str| {
            let mut r = FileRecord::new(RelPath::new(n).unwrap(), FileKind::File);
            r.deleted = true;
            r
        };
        let (keep, changed) =
            still_installed(root, vec![deletion("gone"), deletion("recreated")], false);
        assert_eq!(keep.len(), 1);
        assert_eq!(keep[0].name.as_str(), "gone");
        assert_eq!(changed, [RelPath::new("recreated").unwrap()]);
    }

    #[test]
    fn split_time_round_trips_through_mtime_of() {
        for (s, ns) in [
            (0i64, 0i32),
            (1_700_000_000, 123_456_789),
            (-5, 250_000_000),
        ] {
            let mut r = FileRecord::new(RelPath::new("a").unwrap(), FileKind::File);
            r.modified_s = s;
            r.modified_ns = ns;
            assert_eq!(split_time(mtime_of(&r)), (s, ns));
        }
    }

    #[test]
    fn safe_path_refuses_a_symlinked_parent() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("real")).unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        assert!(safe_path(d.path(), &RelPath::new("link/f").unwrap()).is_err());
        assert!(safe_path(d.path(), &RelPath::new("real/f").unwrap()).is_ok());
        assert!(safe_path(d.path(), &RelPath::new("missing/f").unwrap()).is_ok());
    }

    #[test]
    fn safe_path_in_remembers_checked_directories_and_still_refuses_links() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("real/sub")).unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("link")).unwrap();
        let known = VerifiedDirs::default();
        let rel = |s: &str| RelPath::new(s).unwrap();
        let (p, present) = safe_path_in(d.path(), &rel("real/sub/f"), &known).unwrap();
        assert_eq!(p, d.path().join("real/sub/f"));
        assert!(present);
        assert!(known.contains(&d.path().join("real/sub")));
        assert!(!known.contains(&d.path().join("real")));
        assert!(
            safe_path_in(d.path(), &rel("real/sub/g"), &known)
                .unwrap()
                .1
        );
        assert!(safe_path_in(d.path(), &rel("link/f"), &known).is_err());
        assert!(safe_path_in(d.path(), &rel("link/sub/f"), &known).is_err());
        assert!(!known.contains(&d.path().join("link/sub")));
        let (_, present) = safe_path_in(d.path(), &rel("missing/f"), &known).unwrap();
        assert!(!present);
        assert!(!known.contains(&d.path().join("missing")));
        assert!(safe_path_in(d.path(), &rel("top"), &known).unwrap().1);
        known.clear();
        assert!(!known.contains(&d.path().join("real/sub")));
    }

    #[test]
    fn an_item_that_appeared_without_a_record_does_not_match() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("f"), b"x").unwrap();
        assert!(!matches_index(&d.path().join("f"), None, false).unwrap());
        assert!(matches_index(&d.path().join("nothing"), None, false).unwrap());
    }

    /// Reads for serving and for local copies refuse a symlink, a directory and a FIFO (without blocking on it), and a
    /// range past the end.
    #[test]
    fn nofollow_reads_only_whole_ranges_of_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"hello").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo");
        assert_eq!(read_at_nofollow(&file, 1, 4).unwrap(), b"ello");
        for (what, p, off, n) in [
            ("symlink", &link, 0, 5),
            ("directory", &dir.path().to_path_buf(), 0, 1),
            ("fifo", &fifo, 0, 1),
            ("past the end", &file, 2, 4),
        ] {
            assert!(read_at_nofollow(p, off, n).is_err(), "{what}");
        }
    }
}

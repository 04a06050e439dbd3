//! A case-insensitive, case-preserving view of a directory, mounted through FUSE: what the
//! case tests run syncd on, since this machine's kernel has neither a case-folding ext4 nor
//! vfat. Like APFS (its default, case-insensitive flavour): a name finds the entry that
//! differs from it only in case, a new name keeps the case it was created with, creating a
//! name that exists under another case fails with `EEXIST`, and a rename to another case of
//! the same entry changes its case.
//!
//! A passthrough: every operation is done on the backing directory (a normal ext4 directory)
//! by path. Entries and attributes are never cached by the kernel (TTL 0), so every lookup
//! comes here and folds case. [`CaseFoldMount`] unmounts when dropped (also when the test
//! panics), after which the backing directory holds exactly what was written.
//!
//! [`CaseFoldMount::mount_or_skip`] says why it cannot run (not root, no `/dev/fuse`) and
//! then returns `None`, or panics when `SYNCD_REQUIRE_SYNCTHING=1` (CI) asks for every
//! interop test to run.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Nothing is cached by the kernel: every lookup folds case here.
const TTL: Duration = Duration::ZERO;

/// A mounted case-folding view; unmounted when dropped.
pub struct CaseFoldMount {
    session: Option<fuser::BackgroundSession>,
    mountpoint: PathBuf,
}

impl CaseFoldMount {
    /// Mounts a case-insensitive view of `backing` at `mountpoint` (both existing
    /// directories). Fails when FUSE cannot be used here (not root, no `/dev/fuse`).
    pub fn mount(backing: &Path, mountpoint: &Path) -> std::io::Result<CaseFoldMount> {
        let fs = CaseFold::new(backing.canonicalize()?)?;
        let mut config = fuser::Config::default();
        config.mount_options = vec![
            MountOption::FSName("syncd-casefold".into()),
            MountOption::Subtype("casefold".into()),
            MountOption::RW,
            MountOption::NoAtime,
        ];
        // Several threads: a slow fsync of one file must not stall every other call.
        config.n_threads = Some(4);
        let session = fuser::spawn_mount(fs, mountpoint, &config)?;
        Ok(CaseFoldMount {
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        })
    }

    /// [`CaseFoldMount::mount`], or `None` with the reason on stderr when this machine cannot
    /// (not root, no `/dev/fuse`, the mount failed); a panic instead when
    /// `SYNCD_REQUIRE_SYNCTHING=1` (CI): there the case tests must run.
    pub fn mount_or_skip(backing: &Path, mountpoint: &Path) -> Option<CaseFoldMount> {
        let why = if unsafe_free_geteuid() != 0 {
            "not root (mounting FUSE needs root here)".to_owned()
        } else if !Path::new("/dev/fuse").exists() {
            "no /dev/fuse".to_owned()
        } else {
            match CaseFoldMount::mount(backing, mountpoint) {
                Ok(m) => return Some(m),
                Err(e) => format!("mounting the case-folding FUSE view failed: {e}"),
            }
        };
        if std::env::var_os("SYNCD_REQUIRE_SYNCTHING").is_some_and(|v| v == "1") {
            panic!(
                "SYNCD_REQUIRE_SYNCTHING=1 but the case-insensitive filesystem cannot run: {why}"
            );
        }
        eprintln!("SKIPPED: no case-insensitive filesystem: {why}");
        None
    }

    /// Where the view is mounted.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for CaseFoldMount {
    fn drop(&mut self) {
        let Some(s) = self.session.take() else {
            return;
        };
        if let Err(e) = s.umount_and_join() {
            // Still busy (a process kept a file open): detached, so no mount is left behind.
            eprintln!(
                "unmounting {}: {e}; detaching it",
                self.mountpoint.display()
            );
            let _ = nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// The effective user id, read from `/proc/self/status` (no `unsafe` for `geteuid`).
fn unsafe_free_geteuid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|u| u.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

/// The filesystem: backing paths by inode number (the backing inode; the root is 1).
struct CaseFold {
    root: PathBuf,
    root_ino: u64,
    paths: Mutex<HashMap<u64, PathBuf>>,
    files: Mutex<HashMap<u64, File>>,
    next_fh: Mutex<u64>,
}

fn fold(name: &OsStr) -> String {
    String::from_utf8_lossy(name.as_bytes())
        .chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

fn errno(e: &std::io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

fn system_time(secs: i64, nsecs: i64) -> SystemTime {
    let ns = u32::try_from(nsecs).unwrap_or(0);
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), ns)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(u64::from(ns))
    }
}

impl CaseFold {
    fn new(root: PathBuf) -> std::io::Result<CaseFold> {
        let root_ino = std::fs::symlink_metadata(&root)?.ino();
        Ok(CaseFold {
            root,
            root_ino,
            paths: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            next_fh: Mutex::new(1),
        })
    }

    fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn path_of(&self, ino: INodeNo) -> Result<PathBuf, Errno> {
        if ino == INodeNo::ROOT {
            return Ok(self.root.clone());
        }
        Self::lock(&self.paths)
            .get(&ino.0)
            .cloned()
            .ok_or(Errno::ENOENT)
    }

    /// The entry of directory `dir` that `name` finds: the exact name if listed, else one
    /// that differs only in case.
    fn find(dir: &Path, name: &OsStr) -> Result<Option<OsString>, Errno> {
        if std::fs::symlink_metadata(dir.join(name)).is_ok() {
            return Ok(Some(name.to_owned()));
        }
        let key = fold(name);
        let rd = std::fs::read_dir(dir).map_err(|e| errno(&e))?;
        for e in rd.flatten() {
            if fold(&e.file_name()) == key {
                return Ok(Some(e.file_name()));
            }
        }
        Ok(None)
    }

    fn attr(&self, path: &Path) -> Result<FileAttr, Errno> {
        let m = std::fs::symlink_metadata(path).map_err(|e| errno(&e))?;
        let ino = if m.ino() == self.root_ino && path == self.root {
            INodeNo::ROOT
        } else {
            Self::lock(&self.paths).insert(m.ino(), path.to_path_buf());
            INodeNo(m.ino())
        };
        let kind = FileType::from_std(m.file_type()).unwrap_or(FileType::RegularFile);
        Ok(FileAttr {
            ino,
            size: m.size(),
            blocks: m.blocks(),
            atime: system_time(m.atime(), m.atime_nsec()),
            mtime: system_time(m.mtime(), m.mtime_nsec()),
            ctime: system_time(m.ctime(), m.ctime_nsec()),
            crtime: system_time(m.ctime(), m.ctime_nsec()),
            kind,
            perm: u16::try_from(m.mode() & 0o7777).unwrap_or(0),
            nlink: u32::try_from(m.nlink()).unwrap_or(u32::MAX),
            uid: m.uid(),
            gid: m.gid(),
            rdev: u32::try_from(m.rdev()).unwrap_or(0),
            blksize: u32::try_from(m.blksize()).unwrap_or(4096),
            flags: 0,
        })
    }

    /// `parent`'s backing path joined with the entry `name` finds there (or `name` itself
    /// when nothing does).
    fn child(&self, parent: INodeNo, name: &OsStr) -> Result<(PathBuf, bool), Errno> {
        let dir = self.path_of(parent)?;
        match Self::find(&dir, name)? {
            Some(real) => Ok((dir.join(real), true)),
            None => Ok((dir.join(name), false)),
        }
    }

    /// Where a new entry `name` goes: `EEXIST` when any case of it exists.
    fn new_child(&self, parent: INodeNo, name: &OsStr) -> Result<PathBuf, Errno> {
        match self.child(parent, name)? {
            (_, true) => Err(Errno::EEXIST),
            (p, false) => Ok(p),
        }
    }

    /// Removes the entry `name` finds in `parent` with `how` (a file or a directory).
    fn remove(
        &self,
        parent: INodeNo,
        name: &OsStr,
        how: fn(PathBuf) -> std::io::Result<()>,
        reply: ReplyEmpty,
    ) {
        match self
            .child(parent, name)
            .and_then(|(p, _)| how(p).map_err(|e| errno(&e)))
        {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn add_file(&self, f: File) -> FileHandle {
        let mut next = Self::lock(&self.next_fh);
        let fh = *next;
        *next += 1;
        Self::lock(&self.files).insert(fh, f);
        FileHandle(fh)
    }

    fn with_file<R>(
        &self,
        fh: FileHandle,
        f: impl FnOnce(&File) -> std::io::Result<R>,
    ) -> Result<R, Errno> {
        let files = Self::lock(&self.files);
        let file = files.get(&fh.0).ok_or(Errno::EBADF)?;
        f(file).map_err(|e| errno(&e))
    }

    fn open_path(path: &Path, flags: i32, mode: Option<u32>) -> std::io::Result<File> {
        let acc = flags & libc::O_ACCMODE;
        let mut o = std::fs::OpenOptions::new();
        o.read(acc == libc::O_RDONLY || acc == libc::O_RDWR)
            .write(acc == libc::O_WRONLY || acc == libc::O_RDWR)
            .custom_flags(flags & !(libc::O_ACCMODE | libc::O_CREAT | libc::O_EXCL));
        if let Some(mode) = mode {
            o.create_new(true).mode(mode);
        }
        o.open(path)
    }
}

impl Filesystem for CaseFold {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name).and_then(|(p, found)| {
            if found {
                self.attr(&p)
            } else {
                Err(Errno::ENOENT)
            }
        }) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.path_of(ino).and_then(|p| self.attr(&p)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let res = (|| -> Result<FileAttr, Errno> {
            let path = self.path_of(ino)?;
            let io = |e: std::io::Error| errno(&e);
            if let Some(mode) = mode {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(io)?;
            }
            if let Some(size) = size {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(size))
                    .map_err(io)?;
            }
            if atime.is_some() || mtime.is_some() {
                let t = |t: Option<TimeOrNow>| match t {
                    Some(TimeOrNow::SpecificTime(t)) => Some(t),
                    Some(TimeOrNow::Now) => Some(SystemTime::now()),
                    None => None,
                };
                let mut times = std::fs::FileTimes::new();
                if let Some(a) = t(atime) {
                    times = times.set_accessed(a);
                }
                if let Some(m) = t(mtime) {
                    times = times.set_modified(m);
                }
                // Through a descriptor (a directory opens read-only; a symlink's own times are
                // not set, as nothing here needs them).
                File::open(&path)
                    .and_then(|f| f.set_times(times))
                    .map_err(io)?;
            }
            self.attr(&path)
        })();
        match res {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self
            .path_of(ino)
            .and_then(|p| std::fs::read_link(p).map_err(|e| errno(&e)))
        {
            Ok(t) => reply.data(t.as_os_str().as_bytes()),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let res = self.new_child(parent, name).and_then(|p| {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(mode & !umask & 0o7777)
                .create(&p)
                .map_err(|e| errno(&e))?;
            self.attr(&p)
        });
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, std::fs::remove_file, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, std::fs::remove_dir, reply);
    }

    fn symlink(
        &self,
        _req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let res = self.new_child(parent, link_name).and_then(|p| {
            std::os::unix::fs::symlink(target, &p).map_err(|e| errno(&e))?;
            self.attr(&p)
        });
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let res = (|| -> Result<(), Errno> {
            let (from, found) = self.child(parent, name)?;
            if !found {
                return Err(Errno::ENOENT);
            }
            let (existing, exists) = self.child(newparent, newname)?;
            let to = self.path_of(newparent)?.join(newname);
            if exists {
                if flags.contains(RenameFlags::RENAME_NOREPLACE) && existing != from {
                    return Err(Errno::EEXIST);
                }
                if existing != from && existing != to {
                    // Replacing an entry spelt otherwise: it goes, the new name keeps its case.
                    let m = std::fs::symlink_metadata(&existing).map_err(|e| errno(&e))?;
                    if m.is_dir() {
                        std::fs::remove_dir(&existing).map_err(|e| errno(&e))?;
                    } else {
                        std::fs::remove_file(&existing).map_err(|e| errno(&e))?;
                    }
                }
            }
            // A case-only rename of one entry (existing == from) changes its case.
            std::fs::rename(&from, &to).map_err(|e| errno(&e))?;
            if let Ok(m) = std::fs::symlink_metadata(&to) {
                Self::lock(&self.paths).insert(m.ino(), to);
            }
            Ok(())
        })();
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let res = self.path_of(ino).and_then(|from| {
            let to = self.new_child(newparent, newname)?;
            std::fs::hard_link(&from, &to).map_err(|e| errno(&e))?;
            self.attr(&to)
        });
        match res {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let res = self
            .path_of(ino)
            .and_then(|p| Self::open_path(&p, flags.0, None).map_err(|e| errno(&e)));
        match res {
            Ok(f) => reply.opened(self.add_file(f), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let res = self.with_file(fh, |f| {
            let mut buf = vec![0u8; size as usize];
            let mut got = 0;
            while got < buf.len() {
                let n = f.read_at(&mut buf[got..], offset + got as u64)?;
                if n == 0 {
                    break;
                }
                got += n;
            }
            buf.truncate(got);
            Ok(buf)
        });
        match res {
            Ok(b) => reply.data(&b),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with_file(fh, |f| f.write_all_at(data, offset)) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        Self::lock(&self.files).remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        match self.with_file(fh, File::sync_all) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, _ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let dir = match self.path_of(ino) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => return reply.error(errno(&e)),
        };
        let mut entries: Vec<(u64, FileType, OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for e in rd.flatten() {
            let kind = e
                .file_type()
                .ok()
                .and_then(FileType::from_std)
                .unwrap_or(FileType::RegularFile);
            let ino = e.metadata().map(|m| m.ino()).unwrap_or(0);
            entries.push((ino, kind, e.file_name()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::statvfs(&self.root) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                u32::try_from(s.block_size()).unwrap_or(4096),
                255,
                u32::try_from(s.fragment_size()).unwrap_or(4096),
            ),
            Err(e) => reply.error(Errno::from_i32(e as i32)),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let res = (|| -> Result<(FileAttr, File), Errno> {
            let (path, exists) = self.child(parent, name)?;
            let file = if exists {
                if flags & libc::O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                Self::open_path(&path, flags, None)
            } else {
                Self::open_path(&path, flags, Some(mode & !umask & 0o7777))
            }
            .map_err(|e| errno(&e))?;
            Ok((self.attr(&path)?, file))
        })();
        match res {
            Ok((a, f)) => {
                let fh = self.add_file(f);
                reply.created(&TTL, &a, Generation(0), fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }
}

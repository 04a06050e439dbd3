//! File versioning: what happens to a local file the puller is about to delete or replace,
//! and to the loser of a conflict resolved by hand (Syncthing 1.19.2's `lib/versioner`).
//!
//! A [`Versioner`] is built from a folder's [`VersioningConfig`] (`trashcan`, `simple`,
//! `staggered` or `external`). The built-in types move the file into the versions directory
//! (`<root>/.stversions` unless `fsPath` says otherwise), mirroring the folder's structure,
//! under Syncthing's names: `dir/stem~YYYYMMDD-HHMMSS.ext` (local time at archive time;
//! `trashcan` keeps the plain name). On one filesystem that is a rename (or, for a file about
//! to be replaced, a hard link, so the file never disappears from its name); across
//! filesystems it falls back to copy + fsync + rename, and says so in the log.
//!
//! Every operation takes `now` as a parameter: cleanup and thinning are tested with an
//! injected clock. All of it is blocking I/O (callers in async code use `spawn_blocking`).
//!
//! Invariants: nothing is written outside the folder root or the versions directory, never
//! through a symlink below either (paths go through [`crate::safe_path`]); a restored file
//! appears under its final name complete (it is moved in by one rename); restoring over an
//! existing file versions that file first. `external` keeps no listing and restores nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use syncd_conflict::LocalTime;
use syncd_types::RelPath;

use crate::fsutil;
use crate::puller::conflicts::utc_offset_at;

/// Syncthing's default `cleanupIntervalS`.
pub const DEFAULT_CLEANUP_INTERVAL_S: u32 = 3600;
/// `simple`'s default `keep`.
pub const DEFAULT_KEEP: usize = 5;
/// `staggered`'s default `maxAge` in seconds (one year).
pub const DEFAULT_MAX_AGE_S: u64 = 31_536_000;

/// The versioning types Syncthing knows; [`VersioningType::None`] is its `type=""` (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VersioningType {
    /// No versioning: deleted and replaced files are gone.
    #[default]
    None,
    /// One copy per path, plain name, cleaned out after `cleanoutDays`.
    Trashcan,
    /// The `keep` newest tagged copies per file, cleaned out after `cleanoutDays`.
    Simple,
    /// Tagged copies thinned out by age buckets, none older than `maxAge`.
    Staggered,
    /// A user command gets the file (and must remove it).
    External,
}

impl VersioningType {
    /// Syncthing's name: `""`, `trashcan`, `simple`, `staggered`, `external`.
    pub fn as_str(self) -> &'static str {
        match self {
            VersioningType::None => "",
            VersioningType::Trashcan => "trashcan",
            VersioningType::Simple => "simple",
            VersioningType::Staggered => "staggered",
            VersioningType::External => "external",
        }
    }
}

impl std::str::FromStr for VersioningType {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, VersionError> {
        Ok(match s {
            "" | "none" => VersioningType::None,
            "trashcan" => VersioningType::Trashcan,
            "simple" => VersioningType::Simple,
            "staggered" => VersioningType::Staggered,
            "external" => VersioningType::External,
            other => return Err(VersionError::UnknownType(other.to_owned())),
        })
    }
}

/// A folder's versioning settings, shaped like Syncthing's `versioning` object: the params
/// are strings (`keep`, `cleanoutDays`, `maxAge`, `command`), as its GUI writes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersioningConfig {
    /// The type; `None` is off.
    pub kind: VersioningType,
    /// Type-specific parameters.
    pub params: BTreeMap<String, String>,
    /// Seconds between cleanups (cleanout by days, staggered thinning); 0 disables them.
    pub cleanup_interval_s: u32,
    /// Versions directory: empty is `<root>/.stversions`; relative is under the root.
    pub fs_path: String,
    /// Filesystem type of `fs_path`; only `basic` exists here.
    pub fs_type: String,
}

impl Default for VersioningConfig {
    fn default() -> Self {
        VersioningConfig {
            kind: VersioningType::None,
            params: BTreeMap::new(),
            cleanup_interval_s: DEFAULT_CLEANUP_INTERVAL_S,
            fs_path: String::new(),
            fs_type: String::from("basic"),
        }
    }
}

impl VersioningConfig {
    /// Whether versioning is on.
    pub fn enabled(&self) -> bool {
        self.kind != VersioningType::None
    }
}

/// Why versioning could not do what it was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// The configured type is none Syncthing knows.
    #[error("unknown versioning type {0:?}")]
    UnknownType(String),
    /// The configured filesystem type is not `basic`.
    #[error("unsupported versioning filesystem type {0:?} (only \"basic\")")]
    UnsupportedFsType(String),
    /// `external` without a `command`.
    #[error("external versioning needs a command")]
    NoCommand,
    /// The versions directory is unusable (a symlink, or cannot be created).
    #[error("versions directory {path}: {reason}")]
    VersionsDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The external command failed or could not start.
    #[error("external versioning command failed: {0}")]
    External(String),
    /// The external command returned without taking the file away.
    #[error("file was not removed by external script")]
    NotRemoved,
    /// No stored version of the path has the version time asked for.
    #[error("no version of {path} at that time")]
    NoSuchVersion {
        /// The folder-relative path.
        path: String,
    },
    /// A directory is where the restored file would go.
    #[error("cannot restore {path} on top of a directory")]
    RestoreOverDir {
        /// The folder-relative path.
        path: String,
    },
    /// `external` versioning keeps no versions of its own to list or restore.
    #[error("external versioning cannot list or restore versions")]
    NotSupported,
    /// A filesystem operation failed.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// One stored version of a file, as `GET /rest/folder/versions` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileVersion {
    /// When it was archived (its tag; for untagged files, its mtime), whole seconds.
    pub version_time: SystemTime,
    /// Its mtime, whole seconds.
    pub mod_time: SystemTime,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`Versioner::archive`] did with the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archived {
    /// There was no regular file to archive.
    Nothing,
    /// Moved (or hard-linked) on one filesystem: no bytes copied.
    Renamed,
    /// Copied to another filesystem (EXDEV) and fsynced.
    Copied,
    /// Handed to the external command, which removed it.
    External,
}

#[derive(Debug, Clone)]
enum Kind {
    Trashcan { cleanout_days: u32 },
    Simple { keep: usize, cleanout_days: u32 },
    Staggered { max_age_s: u64 },
    External { command: String },
}

/// A folder's versioner (see the module docs).
#[derive(Debug, Clone)]
pub struct Versioner {
    root: PathBuf,
    dir: PathBuf,
    /// The versions directory is `<root>/.stversions` (refused when it is a symlink).
    default_dir: bool,
    kind: Kind,
    /// The local zone's UTC offset at a unix time (injectable for tests).
    offset: fn(i64) -> i32,
}

impl Versioner {
    /// The versioner `cfg` describes for the folder at `root`; `None` when versioning is off.
    pub fn new(root: &Path, cfg: &VersioningConfig) -> Result<Option<Versioner>, VersionError> {
        let days = |k: &str| -> u32 {
            cfg.params
                .get(k)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let kind = match cfg.kind {
            VersioningType::None => return Ok(None),
            VersioningType::Trashcan => Kind::Trashcan {
                cleanout_days: days("cleanoutDays"),
            },
            VersioningType::Simple => Kind::Simple {
                keep: cfg
                    .params
                    .get("keep")
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .filter(|k| *k >= 1)
                    .unwrap_or(DEFAULT_KEEP),
                cleanout_days: days("cleanoutDays"),
            },
            VersioningType::Staggered => Kind::Staggered {
                max_age_s: cfg
                    .params
                    .get("maxAge")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(DEFAULT_MAX_AGE_S),
            },
            VersioningType::External => Kind::External {
                command: cfg
                    .params
                    .get("command")
                    .filter(|c| !c.trim().is_empty())
                    .cloned()
                    .ok_or(VersionError::NoCommand)?,
            },
        };
        if !cfg.fs_type.is_empty() && cfg.fs_type != "basic" {
            return Err(VersionError::UnsupportedFsType(cfg.fs_type.clone()));
        }
        let (dir, default_dir) = versions_dir(root, &cfg.fs_path);
        Ok(Some(Versioner {
            root: root.to_path_buf(),
            dir,
            default_dir,
            kind,
            offset: utc_offset_at,
        }))
    }

    /// The same versioner computing local times with a fixed UTC offset (tests).
    #[doc(hidden)]
    pub fn with_utc_offset(mut self, offset: fn(i64) -> i32) -> Versioner {
        self.offset = offset;
        self
    }

    /// The versions directory.
    pub fn versions_dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this versioner keeps versions it can list and restore (all but `external`).
    pub fn keeps_versions(&self) -> bool {
        !matches!(self.kind, Kind::External { .. })
    }

    /// Moves the regular file `rel` out of the folder into the versions (see the module
    /// docs), then applies the type's per-file limits (`simple`'s keep, `staggered`'s
    /// buckets). A missing file, a directory or a symlink is not archived.
    pub fn archive(&self, rel: &RelPath, now: SystemTime) -> Result<Archived, VersionError> {
        self.archive_as(rel, rel, now, false)
    }

    /// Like [`Versioner::archive`] for the file `rel`, stored as a version of `of` (the
    /// losing conflict copy of `of` is a version of `of`, listed and restored as one).
    pub fn archive_as_version_of(
        &self,
        rel: &RelPath,
        of: &RelPath,
        now: SystemTime,
    ) -> Result<Archived, VersionError> {
        self.archive_as(rel, of, now, false)
    }

    /// Like [`Versioner::archive`], for a file the caller replaces at once by renaming a new
    /// file over it: on one filesystem the version is a hard link, so the name never goes
    /// missing in between (a scan racing the puller sees the old or the new file). The
    /// trash can moves the file (its version's mtime is the deletion time).
    pub fn archive_before_replace(
        &self,
        rel: &RelPath,
        now: SystemTime,
    ) -> Result<Archived, VersionError> {
        self.archive_as(rel, rel, now, true)
    }

    fn archive_as(
        &self,
        rel: &RelPath,
        of: &RelPath,
        now: SystemTime,
        link: bool,
    ) -> Result<Archived, VersionError> {
        let src = fsutil::safe_path(&self.root, rel)?;
        match std::fs::symlink_metadata(&src) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(Archived::Nothing),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Archived::Nothing),
            Err(e) => return Err(e.into()),
        }
        if let Kind::External { command } = &self.kind {
            return self.run_external(command, rel, &src);
        }
        let dest_rel = match self.kind {
            Kind::Trashcan { .. } => of.clone(),
            _ => tagged_rel(of, &self.tag(now))?,
        };
        let dest = self.dest_path(&dest_rel)?;
        // The trash can stamps its copy with the deletion time: a hard link would stamp the
        // live file too (one inode), so it always moves.
        let how = if link && !matches!(self.kind, Kind::Trashcan { .. }) {
            link_or_copy(&src, &dest)?
        } else {
            move_file(&src, &dest)?
        };
        if let Kind::Trashcan { .. } = self.kind {
            // The trash can's clock is the time of deletion (cleanoutDays counts from it).
            File::options().write(true).open(&dest)?.set_modified(now)?;
        }
        self.expire_file(of, now);
        Ok(how)
    }

    /// Where `dest_rel` goes in the versions directory (created, with its parents, 0755).
    fn dest_path(&self, dest_rel: &RelPath) -> Result<PathBuf, VersionError> {
        self.ensure_dir()?;
        let dest = fsutil::safe_path(&self.dir, dest_rel)?;
        if let Some(parent) = dest.parent() {
            create_dirs(parent)?;
        }
        Ok(dest)
    }

    fn ensure_dir(&self) -> Result<(), VersionError> {
        let refuse = |reason: String| VersionError::VersionsDir {
            path: self.dir.clone(),
            reason,
        };
        match std::fs::symlink_metadata(&self.dir) {
            Ok(m) if m.file_type().is_symlink() && self.default_dir => {
                Err(refuse("is a symlink; refusing to follow it".into()))
            }
            Ok(_) => match std::fs::metadata(&self.dir) {
                Ok(m) if m.is_dir() => Ok(()),
                _ => Err(refuse("is not a directory".into())),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_dirs(&self.dir).map_err(|e| refuse(e.to_string()))
            }
            Err(e) => Err(refuse(e.to_string())),
        }
    }

    /// `simple`: the `keep` newest versions of `rel` stay. `staggered`: its buckets. Errors
    /// are logged, never returned: the file is archived already.
    fn expire_file(&self, rel: &RelPath, now: SystemTime) {
        let remove = match self.kind {
            Kind::Simple { keep, .. } => {
                let mut v = self.tagged_versions_of(rel);
                v.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
                v.into_iter().skip(keep).map(|(_, p)| p).collect()
            }
            Kind::Staggered { max_age_s } => {
                staggered_to_remove(self.tagged_versions_of(rel), now, max_age_s)
            }
            _ => Vec::new(),
        };
        for p in remove {
            if let Err(e) = std::fs::remove_file(&p) {
                tracing::warn!(path = %p.display(), error = %e, "removing an old version");
            }
        }
    }

    /// The tagged versions of `rel` beside its mirrored place: (unix seconds of the tag, path).
    fn tagged_versions_of(&self, rel: &RelPath) -> Vec<(i64, PathBuf)> {
        let Ok(base) = fsutil::safe_path(&self.dir, rel) else {
            return Vec::new();
        };
        let Some(dir) = base.parent() else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let want = rel.file_name();
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_owned();
                let (untagged, tag) = untag_name(&name)?;
                (untagged == want).then_some(())?;
                Some((self.parse_tag(&tag)?, e.path()))
            })
            .collect()
    }

    /// Every stored version, by the folder-relative path it was archived from.
    pub fn list(&self) -> Result<BTreeMap<String, Vec<FileVersion>>, VersionError> {
        if !self.keeps_versions() {
            return Err(VersionError::NotSupported);
        }
        let mut out: BTreeMap<String, Vec<FileVersion>> = BTreeMap::new();
        for (rel, _, meta) in self.walk_files() {
            let mod_time = whole_seconds(meta.modified().unwrap_or(UNIX_EPOCH));
            let (name, version_time) = match split_rel(&rel)
                .and_then(|(dir, base)| {
                    let (n, tag) = untag_name(base)?;
                    Some((format!("{dir}{n}"), self.parse_tag(&tag)?))
                })
                .filter(|(n, _)| !n.is_empty() && !n.ends_with('/'))
            {
                Some((n, t)) => (n, unix_to_system(t)),
                None => (rel.clone(), mod_time),
            };
            out.entry(name).or_default().push(FileVersion {
                version_time,
                mod_time,
                size: meta.len(),
            });
        }
        for v in out.values_mut() {
            v.sort_by_key(|f| std::cmp::Reverse(f.version_time));
        }
        Ok(out)
    }

    /// Puts the version of `rel` archived at `version_time` (whole seconds) back in place.
    /// A file in the way is archived first; a directory in the way refuses the restore.
    /// The version is moved to a temp name beside the target, then renamed over it.
    pub fn restore(
        &self,
        rel: &RelPath,
        version_time: SystemTime,
        now: SystemTime,
    ) -> Result<(), VersionError> {
        if !self.keeps_versions() {
            return Err(VersionError::NotSupported);
        }
        let no_such = || VersionError::NoSuchVersion {
            path: rel.as_str().to_owned(),
        };
        let secs = fsutil::split_time(version_time).0;
        let tagged = tagged_rel(rel, &self.tag(unix_to_system(secs)))?;
        let source = [tagged, rel.clone()]
            .into_iter()
            .filter_map(|r| fsutil::safe_path(&self.dir, &r).ok())
            .find(|p| match std::fs::symlink_metadata(p) {
                Ok(m) if m.is_file() => {
                    let is_tagged = p.file_name() != Some(std::ffi::OsStr::new(rel.file_name()));
                    is_tagged || m.modified().is_ok_and(|t| fsutil::split_time(t).0 == secs)
                }
                _ => false,
            })
            .ok_or_else(no_such)?;
        let target = fsutil::safe_path(&self.root, rel)?;
        if let Ok(m) = std::fs::symlink_metadata(&target)
            && m.is_dir()
        {
            return Err(VersionError::RestoreOverDir {
                path: rel.as_str().to_owned(),
            });
        }
        let parent = target
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        create_dirs(&parent)?;
        let temp = parent.join(syncd_types::names::temp_name(rel.file_name()));
        let _ = std::fs::remove_file(&temp);
        move_file(&source, &temp)?;
        let placed = (|| -> Result<(), VersionError> {
            match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_file() => {
                    self.archive_before_replace(rel, now)?;
                }
                Ok(m) if m.file_type().is_symlink() => std::fs::remove_file(&target)?,
                _ => {}
            }
            std::fs::rename(&temp, &target)?;
            fsutil::sync_dir(&parent)?;
            Ok(())
        })();
        if placed.is_err() {
            // Back where it was, so the version is not lost.
            let _ = move_file(&temp, &source);
        }
        placed
    }

    /// The periodic cleanup: `trashcan`/`simple` remove versions whose mtime is older than
    /// `cleanoutDays`, `staggered` thins every file's versions by its buckets; then empty
    /// directories go. Returns how many files were removed.
    pub fn clean(&self, now: SystemTime) -> Result<usize, VersionError> {
        if !self.dir.exists() {
            return Ok(0);
        }
        let mut remove: Vec<PathBuf> = Vec::new();
        match self.kind {
            Kind::Trashcan { cleanout_days } | Kind::Simple { cleanout_days, .. } => {
                if cleanout_days == 0 {
                    return Ok(0);
                }
                let cutoff = now
                    .checked_sub(Duration::from_secs(u64::from(cleanout_days) * 86_400))
                    .unwrap_or(UNIX_EPOCH);
                for (_, path, meta) in self.walk_files() {
                    if meta.modified().is_ok_and(|t| t < cutoff) {
                        remove.push(path);
                    }
                }
            }
            Kind::Staggered { max_age_s } => {
                let mut groups: BTreeMap<String, Vec<(i64, PathBuf)>> = BTreeMap::new();
                for (rel, path, _) in self.walk_files() {
                    let Some((dir, base)) = split_rel(&rel) else {
                        continue;
                    };
                    let Some((n, tag)) = untag_name(base) else {
                        continue;
                    };
                    let Some(t) = self.parse_tag(&tag) else {
                        continue;
                    };
                    groups
                        .entry(format!("{dir}{n}"))
                        .or_default()
                        .push((t, path));
                }
                for versions in groups.into_values() {
                    remove.extend(staggered_to_remove(versions, now, max_age_s));
                }
            }
            Kind::External { .. } => return Ok(0),
        }
        let mut removed = 0;
        for p in remove {
            match std::fs::remove_file(&p) {
                Ok(()) => removed += 1,
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "removing an old version")
                }
            }
        }
        remove_empty_dirs(&self.dir, true);
        Ok(removed)
    }

    /// Every regular file under the versions directory (never through a symlink), as
    /// (`/`-separated relative path, path, metadata); our own temp files are left out.
    fn walk_files(&self) -> Vec<(String, PathBuf, std::fs::Metadata)> {
        let mut out = Vec::new();
        let mut stack = vec![(self.dir.clone(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.filter_map(Result::ok) {
                let Some(name) = e.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                    continue;
                };
                let rel = format!("{prefix}{name}");
                if meta.is_dir() {
                    stack.push((e.path(), format!("{rel}/")));
                } else if meta.is_file() && !syncd_types::names::is_temp_name(&name) {
                    out.push((rel, e.path(), meta));
                }
            }
        }
        out
    }

    fn run_external(
        &self,
        command: &str,
        rel: &RelPath,
        src: &Path,
    ) -> Result<Archived, VersionError> {
        let words = split_command(command).map_err(VersionError::External)?;
        let subst = |w: &str| {
            w.replace("%FOLDER_PATH%", &self.root.to_string_lossy())
                .replace("%FILE_PATH%", rel.as_str())
                .replace("%FOLDER_FILESYSTEM%", "basic")
        };
        let mut words = words.iter().map(|w| subst(w));
        let program = words
            .next()
            .ok_or_else(|| VersionError::External("empty command".into()))?;
        let out = std::process::Command::new(&program)
            .args(words)
            .current_dir(&self.root)
            .env_remove("STGUIAUTH")
            .env_remove("STGUIAPIKEY")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| VersionError::External(format!("{program}: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: String = stderr.chars().take(500).collect();
            return Err(VersionError::External(format!(
                "{program}: {}: {}",
                out.status,
                tail.trim()
            )));
        }
        if std::fs::symlink_metadata(src).is_ok() {
            return Err(VersionError::NotRemoved);
        }
        Ok(Archived::External)
    }

    /// The tag of a version archived at `t`: its local time, `YYYYMMDD-HHMMSS`.
    fn tag(&self, t: SystemTime) -> String {
        let secs = fsutil::split_time(t).0;
        LocalTime::from_unix(secs, (self.offset)(secs)).to_string()
    }

    /// A tag back to unix seconds (local time); `None` when it is no valid tag.
    fn parse_tag(&self, tag: &str) -> Option<i64> {
        let naive = parse_tag_utc(tag)?;
        let guess = naive - i64::from((self.offset)(naive));
        Some(naive - i64::from((self.offset)(guess)))
    }
}

/// `<root>/.stversions`, `<root>/<fs_path>` or `fs_path` itself; true for the default.
fn versions_dir(root: &Path, fs_path: &str) -> (PathBuf, bool) {
    if fs_path.is_empty() {
        (root.join(syncd_types::names::VERSIONS_DIR), true)
    } else {
        let p = Path::new(fs_path);
        if p.is_absolute() {
            (p.to_path_buf(), false)
        } else {
            (root.join(p), false)
        }
    }
}

fn create_dirs(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
}

/// `dir/stem~tag.ext` for `rel` (the tag before the last extension, as Syncthing names it).
fn tagged_rel(rel: &RelPath, tag: &str) -> Result<RelPath, VersionError> {
    let s = tag_name(rel.as_str(), tag);
    RelPath::new(&s).map_err(|e| VersionError::Io(io::Error::other(e.to_string())))
}

/// Syncthing's `TagFilename`: `dir/stem~tag.ext`, the tag before the last extension of the
/// base name (`.bashrc` has the extension `.bashrc`, as Go's `filepath.Ext` says).
///
/// ```
/// use syncd_engine::versioner::tag_name;
/// assert_eq!(tag_name("docs/a.tar.gz", "20260102-150405"), "docs/a.tar~20260102-150405.gz");
/// assert_eq!(tag_name("Makefile", "20260102-150405"), "Makefile~20260102-150405");
/// assert_eq!(tag_name(".bashrc", "20260102-150405"), "~20260102-150405.bashrc");
/// ```
pub fn tag_name(path: &str, tag: &str) -> String {
    let (dir, base) = match path.rsplit_once('/') {
        Some((d, b)) => (format!("{d}/"), b),
        None => (String::new(), path),
    };
    let (stem, ext) = match base.rfind('.') {
        Some(i) => base.split_at(i),
        None => (base, ""),
    };
    format!("{dir}{stem}~{tag}{ext}")
}

/// The base name and tag of a tagged base name (`a~20260102-150405.txt` → `a.txt`), also in
/// the old style with the tag after the extension (`a.txt~20260102-150405`); `None` for a
/// name without a well-formed tag.
///
/// ```
/// use syncd_engine::versioner::untag_name;
/// assert_eq!(untag_name("a~20260102-150405.txt"), Some(("a.txt".into(), "20260102-150405".into())));
/// assert_eq!(untag_name("a.txt~20260102-150405"), Some(("a.txt".into(), "20260102-150405".into())));
/// assert_eq!(untag_name("a.txt"), None);
/// ```
pub fn untag_name(base: &str) -> Option<(String, String)> {
    const TAG_LEN: usize = 15;
    let (stem, ext) = match base.rfind('.') {
        Some(i) => base.split_at(i),
        None => (base, ""),
    };
    let valid = |t: &str| parse_tag_utc(t).is_some();
    if let Some(i) = stem.len().checked_sub(TAG_LEN + 1)
        && stem.is_char_boundary(i)
        && stem[i..].starts_with('~')
        && valid(&stem[i + 1..])
    {
        return Some((format!("{}{ext}", &stem[..i]), stem[i + 1..].to_owned()));
    }
    let i = base.len().checked_sub(TAG_LEN + 1)?;
    if base.is_char_boundary(i) && base[i..].starts_with('~') && valid(&base[i + 1..]) && i > 0 {
        return Some((base[..i].to_owned(), base[i + 1..].to_owned()));
    }
    None
}

/// `YYYYMMDD-HHMMSS` read as if it were UTC, in unix seconds.
fn parse_tag_utc(tag: &str) -> Option<i64> {
    LocalTime::parse_tag(tag).map(|t| t.to_unix_as_utc())
}

fn unix_to_system(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    unix_to_system(fsutil::split_time(t).0)
}

/// `("dir/", "base")` of a `/`-separated relative path.
fn split_rel(rel: &str) -> Option<(&str, &str)> {
    match rel.rfind('/') {
        Some(i) => Some((&rel[..=i], &rel[i + 1..])),
        None => Some(("", rel)),
    }
}

/// Staggered thinning (Syncthing's `toRemove`): from the oldest to the newest version, one
/// closer than its bucket's step to the last one kept goes, as does anything older than
/// `max_age_s` (0: no limit). Buckets: 30 s apart within the first hour, 1 h within a day,
/// 1 day within 30 days, 1 week beyond.
pub(crate) fn staggered_to_remove(
    mut versions: Vec<(i64, PathBuf)>,
    now: SystemTime,
    max_age_s: u64,
) -> Vec<PathBuf> {
    let max_age = i64::try_from(max_age_s).unwrap_or(i64::MAX);
    let buckets: [(i64, i64); 4] = [
        (30, 3600),
        (3600, 86_400),
        (86_400, 30 * 86_400),
        (7 * 86_400, max_age),
    ];
    let now = fsutil::split_time(now).0;
    versions.sort();
    let mut remove = Vec::new();
    let mut prev_age: Option<i64> = None;
    for (t, path) in versions {
        let age = now.saturating_sub(t);
        if max_age > 0 && age > max_age {
            remove.push(path);
            continue;
        }
        let Some(prev) = prev_age else {
            prev_age = Some(age);
            continue;
        };
        let step = buckets
            .iter()
            .find(|(_, end)| age < *end)
            .unwrap_or(&buckets[3])
            .0;
        if prev - age < step {
            remove.push(path);
            continue;
        }
        prev_age = Some(age);
    }
    remove
}

/// Removes the empty directories below `dir` (and `dir` itself unless `keep_top`), deepest
/// first; never follows a symlink. Returns whether `dir` is empty now.
fn remove_empty_dirs(dir: &Path, keep_top: bool) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut empty = true;
    for e in entries.filter_map(Result::ok) {
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        if !(is_dir && remove_empty_dirs(&e.path(), false)) {
            empty = false;
        }
    }
    if empty && !keep_top {
        return std::fs::remove_dir(dir).is_ok();
    }
    empty
}

fn is_exdev(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::CrossesDevices
}

/// Renames `src` to `dst`; across filesystems copies (fsynced, via a temp name) and removes
/// the source, and logs that it did.
fn move_file(src: &Path, dst: &Path) -> io::Result<Archived> {
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(Archived::Renamed),
        Err(e) if is_exdev(&e) => {
            copy_durably(src, dst)?;
            std::fs::remove_file(src)?;
            Ok(Archived::Copied)
        }
        Err(e) => Err(e),
    }
}

/// Hard-links `src` as `dst` (replacing an old `dst`), leaving `src` in place; across
/// filesystems copies instead; where a link cannot be made, renames.
fn link_or_copy(src: &Path, dst: &Path) -> io::Result<Archived> {
    match std::fs::hard_link(src, dst) {
        Ok(()) => Ok(Archived::Renamed),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            std::fs::remove_file(dst)?;
            link_or_copy(src, dst)
        }
        Err(e) if is_exdev(&e) => {
            copy_durably(src, dst)?;
            Ok(Archived::Copied)
        }
        // No hard links here (a filesystem without them, too many links): a rename does it.
        Err(_) => move_file(src, dst),
    }
}

/// Copies `src` to `dst` through a temp name beside `dst`: data and mtime fsynced before the
/// rename, the directory after it.
fn copy_durably(src: &Path, dst: &Path) -> io::Result<()> {
    let parent = dst.parent().unwrap_or(Path::new("."));
    let base = dst
        .file_name()
        .map(|b| b.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = parent.join(syncd_types::names::temp_name(&base));
    tracing::warn!(from = %src.display(), to = %dst.display(),
        "versioning across filesystems (EXDEV): copying the file instead of renaming it");
    let copied = (|| {
        std::fs::copy(src, &temp)?;
        let mtime = std::fs::symlink_metadata(src)?.modified()?;
        let f = File::options().write(true).open(&temp)?;
        f.set_modified(mtime)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&temp, dst)?;
        fsutil::sync_dir(parent)
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    copied
}

/// Splits a command line shell-style: whitespace separates words, single quotes keep
/// everything, double quotes keep all but `\"` and `\\`, a backslash outside quotes escapes
/// the next character.
pub(crate) fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn tags_round_trip_through_local_time() {
        let v = Versioner::new(
            Path::new("/r"),
            &VersioningConfig {
                kind: VersioningType::Simple,
                ..VersioningConfig::default()
            },
        )
        .unwrap()
        .unwrap()
        .with_utc_offset(|_| 7200);
        let t = 1_767_366_245;
        assert_eq!(v.tag(at(t)), "20260102-170405");
        assert_eq!(v.parse_tag("20260102-170405"), Some(t as i64));
        assert_eq!(v.parse_tag("20261302-170405"), None);
        assert_eq!(v.parse_tag("2026010x-170405"), None);
    }

    #[test]
    fn staggered_keeps_one_version_per_bucket_step() {
        let now = 10_000_000i64;
        let p = |s: &str| PathBuf::from(s);
        // Within the first hour, 30 s apart: 10 s and 20 s after a kept one go.
        let v = vec![
            (now - 100, p("a")),
            (now - 90, p("b")),
            (now - 80, p("c")),
            (now - 60, p("d")),
            // Two days old, 2 h apart: one day bucket (1 d step), so the second goes.
            (now - 2 * 86_400, p("e")),
            (now - 2 * 86_400 + 7200, p("f")),
            // Older than maxAge.
            (now - 400 * 86_400, p("g")),
        ];
        let mut gone = staggered_to_remove(v, at(now as u64), DEFAULT_MAX_AGE_S);
        gone.sort();
        assert_eq!(gone, vec![p("b"), p("c"), p("f"), p("g")]);
    }

    #[test]
    fn commands_split_like_a_shell() {
        assert_eq!(
            split_command(r#"/bin/mv "%FOLDER_PATH%/%FILE_PATH%" '/tmp/x y' a\ b"#).unwrap(),
            vec!["/bin/mv", "%FOLDER_PATH%/%FILE_PATH%", "/tmp/x y", "a b"]
        );
        assert!(split_command("'open").is_err());
    }
}

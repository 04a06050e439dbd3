//! Installing what is not a regular file's data: the plan's first phase (ignored items
//! recorded, directories and symlinks put in place) and its last (deletions), each run item
//! by item on one blocking thread, plus moving a losing local file to its conflict copy.
//!
//! Every change is checked against the index first: a local item changed since the need set
//! was read is rescanned, never replaced or removed.

use std::collections::BTreeSet;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use syncd_conflict::{LocalFate, Resolution};
use syncd_index::{FileRecord, Needed};
use syncd_scan::case::OnDisk;
use syncd_types::{FileKind, RelPath};

use super::{
    Ctx, PullError, PullOutcome, case, conflicts, decide, emit_started, parent_of, plan, refused,
    report,
};
use crate::event::{Event, ItemAction};
use crate::fsutil;
use crate::status::FileError;

/// What a phase run on a blocking thread did: the records to commit, the directories renamed
/// into (synced before the commit) and the items' errors and rescans.
#[derive(Default)]
pub(super) struct Phase {
    pub(super) done: Vec<FileRecord>,
    pub(super) dirs: BTreeSet<PathBuf>,
    pub(super) outcome: PullOutcome,
}

/// Runs `f` on a blocking thread; a panic there fails the phase, not the pass.
pub(super) async fn on_blocking_thread(
    ctx: &Arc<Ctx>,
    what: &str,
    f: impl FnOnce(&Ctx) -> Phase + Send + 'static,
) -> Phase {
    let c = ctx.clone();
    match tokio::task::spawn_blocking(move || f(&c)).await {
        Ok(phase) => phase,
        Err(e) => {
            let mut phase = Phase::default();
            phase.outcome.errors.push(FileError {
                path: String::new(),
                error: format!("pulling {what}: {e}"),
            });
            phase
        }
    }
}

/// The first phase of the plan, in order: ignored items recorded, directories and symlinks
/// put in place. Blocking.
pub(super) fn install_first(ctx: &Ctx, first: Vec<plan::First>) -> Phase {
    let mut p = Phase::default();
    for step in first {
        let n = match step {
            plan::First::Ignored(r) => {
                p.done.push(r);
                continue;
            }
            plan::First::Dir(n) | plan::First::Symlink(n) => n,
        };
        let name = n.global.name.clone();
        let kind = n.global.kind;
        emit_started(ctx, &name, kind, ItemAction::Update);
        let res = if kind.is_dir() {
            pull_dir(ctx, &n)
        } else {
            pull_symlink(ctx, &n)
        };
        finish_item(ctx, &mut p, &name, kind, ItemAction::Update, res);
    }
    p
}

/// The last phase of the plan: the deletions, in order. Blocking.
pub(super) fn delete_all(ctx: &Ctx, deletes: Vec<Needed>) -> Phase {
    let mut p = Phase::default();
    for n in deletes {
        let name = n.global.name.clone();
        let kind = plan::deleted_kind(&n);
        emit_started(ctx, &name, kind, ItemAction::Delete);
        let res = delete_item(ctx, &n);
        finish_item(ctx, &mut p, &name, kind, ItemAction::Delete, res);
    }
    p
}

fn finish_item(
    ctx: &Ctx,
    phase: &mut Phase,
    name: &RelPath,
    kind: FileKind,
    action: ItemAction,
    res: Result<(FileRecord, Option<PathBuf>), PullError>,
) {
    let res = res.map(|(rec, changed_dir)| {
        if let Some(d) = changed_dir {
            phase.dirs.insert(d);
        }
        phase.done.push(rec);
    });
    report(ctx, &mut phase.outcome, name, kind, action, res);
}

/// Where `n` goes on disk, refusing a path under a symlink or a non-directory (see
/// [`fsutil::safe_path`]). A refusal is logged with the devices that announced the path: a
/// peer naming a file under a symlink is how an escape from the folder would be attempted.
pub(super) fn safe_target(ctx: &Ctx, n: &Needed) -> std::io::Result<PathBuf> {
    fsutil::safe_path(&ctx.root, &n.global.name).inspect_err(|e| refused(ctx, n, e))
}

fn pull_dir(ctx: &Ctx, n: &Needed) -> Result<(FileRecord, Option<PathBuf>), PullError> {
    let Resolution::TakeRemote { adopt_version, .. } = decide(ctx, n) else {
        return Err(PullError::NotNeeded);
    };
    if let OnDisk::Conflict(c) = case::on_disk(ctx, &n.global.name)? {
        return Err(PullError::CaseConflict(c));
    }
    let path = safe_target(ctx, n)?;
    if !fsutil::matches_index(&path, n.local.as_ref(), ctx.ignore_perms)? {
        return Err(PullError::Modified);
    }
    let mode =
        (!ctx.ignore_perms && !n.global.no_permissions).then_some(n.global.permissions & 0o777);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            if let Some(mode) = mode
                && m.permissions().mode() & 0o777 != mode
            {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            }
        }
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(&path)?;
            create_dir_in_place(&path, n.global.name.file_name(), mode)?;
        }
        Ok(_) => return Err(PullError::Modified),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_dir_in_place(&path, n.global.name.file_name(), mode)?;
        }
        Err(e) => return Err(e.into()),
    }
    case::forget_parent(ctx, &path);
    Ok((
        plan::installed(&n.global, adopt_version),
        Some(parent_of(&path)),
    ))
}

/// Creates the directory `path` (base name `base`) already carrying `mode` (umask applies
/// when `None`): it is made under its temp name, which scans skip, given its permissions and
/// renamed into place, so it is never visible with the umask's permissions and a scan racing
/// the puller sees exactly the global version (which it then adopts instead of bumping).
pub(super) fn create_dir_in_place(
    path: &Path,
    base: &str,
    mode: Option<u32>,
) -> std::io::Result<()> {
    let Some(parent) = path.parent() else {
        return std::fs::create_dir(path);
    };
    std::fs::create_dir_all(parent)?;
    let temp = parent.join(syncd_types::names::temp_name(base));
    match std::fs::symlink_metadata(&temp) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(&temp)?,
        Ok(_) => std::fs::remove_file(&temp)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::DirBuilder::new()
        .mode(mode.unwrap_or(0o777))
        .create(&temp)?;
    let placed = match mode {
        Some(mode) => std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(mode)),
        None => Ok(()),
    }
    .and_then(|()| std::fs::rename(&temp, path));
    if placed.is_err() {
        let _ = std::fs::remove_dir(&temp);
    }
    placed
}

fn pull_symlink(ctx: &Ctx, n: &Needed) -> Result<(FileRecord, Option<PathBuf>), PullError> {
    use std::os::unix::ffi::OsStrExt;
    let Resolution::TakeRemote { adopt_version, .. } = decide(ctx, n) else {
        return Err(PullError::NotNeeded);
    };
    if let OnDisk::Conflict(c) = case::on_disk(ctx, &n.global.name)? {
        return Err(PullError::CaseConflict(c));
    }
    let path = safe_target(ctx, n)?;
    if !fsutil::matches_index(&path, n.local.as_ref(), ctx.ignore_perms)? {
        return Err(PullError::Modified);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(&path).map_err(|_| PullError::DirNotEmpty)?,
        Ok(_) => std::fs::remove_file(&path)?,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&n.global.symlink_target), &path)?;
    case::forget_parent(ctx, &path);
    Ok((
        plan::installed(&n.global, adopt_version),
        Some(parent_of(&path)),
    ))
}

fn delete_item(ctx: &Ctx, n: &Needed) -> Result<(FileRecord, Option<PathBuf>), PullError> {
    let resolution = decide(ctx, n);
    let Resolution::TakeRemote {
        adopt_version,
        fate,
    } = resolution
    else {
        return Err(PullError::NotNeeded);
    };
    let path = safe_target(ctx, n)?;
    if let OnDisk::Conflict(_) = case::on_disk(ctx, &n.global.name)? {
        // Only another spelling is on disk (a case-only rename, or never here): that file is
        // not this name's, and this name is already gone.
        return Ok((plan::installed(&n.global, adopt_version), None));
    }
    if !fsutil::matches_index(&path, n.local.as_ref(), ctx.ignore_perms)? {
        return Err(PullError::Modified);
    }
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_dir() => {
            remove_temps_in(&path);
            match std::fs::remove_dir(&path) {
                Ok(()) => {}
                Err(_) => return Err(PullError::DirNotEmpty),
            }
        }
        Ok(m) if m.is_file() => {
            if let LocalFate::ConflictCopy { winner_modified_by } = fate {
                conflict_move(ctx, &n.global.name, &path, winner_modified_by)?;
            } else if !version(ctx, &n.global.name, false)? {
                std::fs::remove_file(&path)?;
            }
        }
        Ok(_) => std::fs::remove_file(&path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    case::forget_parent(ctx, &path);
    // A temp file a failed pull of this file left behind is no longer of use.
    let temp = parent_of(&path).join(syncd_types::names::temp_name(n.global.name.file_name()));
    if std::fs::symlink_metadata(&temp).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(&temp);
    }
    Ok((
        plan::installed(&n.global, adopt_version),
        Some(parent_of(&path)),
    ))
}

/// Removes the temp files directly inside `dir` (left by failed pulls for reuse; never user
/// data), so they do not keep a directory deleted elsewhere from being deleted here.
fn remove_temps_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let is_temp = e
            .file_name()
            .to_str()
            .is_some_and(syncd_types::names::is_temp_name);
        if is_temp && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// The versioning hook: with versioning on, the regular file at `name` (which the caller
/// is about to delete, or to replace when `replace`) goes to the versions first. Returns
/// whether versioning is on (then a delete needs no `remove_file`: the file was moved).
/// A versioning failure fails the item, so the file is never deleted unversioned.
pub(super) fn version(ctx: &Ctx, name: &RelPath, replace: bool) -> Result<bool, PullError> {
    let v = match &ctx.versioner {
        Ok(Some(v)) => v,
        Ok(None) => return Ok(false),
        Err(e) => return Err(PullError::Versioning(e.clone())),
    };
    let now = SystemTime::now();
    let res = if replace {
        v.archive_before_replace(name, now)
    } else {
        v.archive(name, now)
    };
    res.map_err(|e| PullError::Versioning(e.to_string()))?;
    Ok(true)
}

/// Moves the losing local file aside under its conflict-copy name (stamped with the local
/// time), prunes the oldest copies beyond `maxConflicts` and reports it.
pub(super) fn conflict_move(
    ctx: &Ctx,
    name: &RelPath,
    path: &Path,
    winner: syncd_types::ShortId,
) -> Result<(), PullError> {
    let now = conflicts::local_time(SystemTime::now());
    let Some(copy) = syncd_conflict::conflict_copy_name(name.as_str(), winner, now) else {
        // Already a conflict copy: losing again just removes it (no nesting).
        std::fs::remove_file(path)?;
        return Ok(());
    };
    let copy_rel = RelPath::new(&copy).map_err(|e| std::io::Error::other(e.to_string()))?;
    let copy_path = fsutil::safe_path(&ctx.root, &copy_rel)?;
    std::fs::rename(path, &copy_path)?;
    ctx.shared.events.emit(Event::ConflictCreated {
        folder: ctx.folder.clone(),
        path: name.as_str().to_owned(),
        conflict_copy: copy,
    });
    let mut rescan = vec![copy_rel];
    rescan.extend(conflicts::prune(
        &ctx.root,
        name,
        &parent_of(&copy_path),
        ctx.max_conflicts,
    ));
    ctx.shared.request_rescan(&ctx.folder, rescan);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A directory the puller creates is never visible under its name with any other mode
    /// than its own (a scan seeing the umask's mode would make a new local version).
    #[test]
    fn a_created_directory_is_never_visible_with_umask_permissions() {
        const N: usize = 200;
        let d = tempfile::tempdir().unwrap();
        let root = d.path().to_path_buf();
        let done = Arc::new(AtomicBool::new(false));
        let observer = {
            let (root, done) = (root.clone(), done.clone());
            std::thread::spawn(move || {
                let mut wrong = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    for i in 0..N {
                        if let Ok(m) = std::fs::symlink_metadata(root.join(format!("d{i}")))
                            && m.permissions().mode() & 0o777 != 0o777
                        {
                            wrong.push((i, m.permissions().mode() & 0o777));
                        }
                    }
                }
                wrong
            })
        };
        for i in 0..N {
            let name = format!("d{i}");
            create_dir_in_place(&root.join(&name), &name, Some(0o777)).unwrap();
        }
        done.store(true, Ordering::SeqCst);
        assert_eq!(observer.join().unwrap(), Vec::<(usize, u32)>::new());
        for i in 0..N {
            let m = std::fs::metadata(root.join(format!("d{i}"))).unwrap();
            assert_eq!(m.permissions().mode() & 0o777, 0o777);
        }
        // No temp directory is left behind.
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), N);
    }

    #[test]
    fn a_leftover_temp_directory_does_not_block_creating_the_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join(syncd_types::names::temp_name("x"))).unwrap();
        create_dir_in_place(&d.path().join("x"), "x", Some(0o700)).unwrap();
        let m = std::fs::metadata(d.path().join("x")).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o700);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}

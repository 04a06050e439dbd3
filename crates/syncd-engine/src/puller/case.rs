//! The puller's case checks, for folders that are not case-sensitive (Syncthing's
//! `caseSensitiveFS = false`, the default): before a name is created, renamed into or
//! deleted, its spelling on disk is looked up (see [`syncd_scan::case::CaseResolver`]).
//!
//! - A name that exists on disk only under another case is a case-conflict error (Syncthing's
//!   text); the item is retried on later passes, and neither file is touched.
//! - Except a case-only rename: the name on disk is one the peers deleted and this device
//!   still holds unchanged (its local record matches the disk); the old spelling then makes
//!   way for the new one (versioned as a delete when versioning is on).
//! - Deleting a name that exists on disk only under another case is already done.

use std::path::Path;

use syncd_scan::case::{CaseConflict, OnDisk};
use syncd_types::RelPath;

use super::{Ctx, PullError};
use crate::fsutil;

/// What the disk says of `name`: always [`OnDisk::Exact`]-or-absent for a case-sensitive folder
/// (no check is made).
pub(super) fn on_disk(ctx: &Ctx, name: &RelPath) -> Result<OnDisk, PullError> {
    match &ctx.case {
        None => Ok(OnDisk::Absent),
        Some(r) => Ok(r.check(name)?),
    }
}

/// Fails with the case conflict unless `name` is absent or spelt so on disk, or the name on
/// disk is the old spelling of a case-only rename (see [`renamed_from`]); returns whether it
/// is (then what the filesystem finds under `name` is that old file, already checked against
/// its own record, and [`make_way`] removes it before the new one is put in place).
pub(super) fn check_create(ctx: &Ctx, name: &RelPath) -> Result<bool, PullError> {
    match on_disk(ctx, name)? {
        OnDisk::Absent | OnDisk::Exact => Ok(false),
        OnDisk::Conflict(c) => match renamed_from(ctx, &c)? {
            Some(_) => Ok(true),
            None => Err(PullError::CaseConflict(c)),
        },
    }
}

/// Like [`check_create`] just before a file is renamed into place: the old spelling of a
/// case-only rename is removed first (versioned when versioning is on), so the new one takes
/// its place.
pub(super) fn make_way(ctx: &Ctx, name: &RelPath) -> Result<(), PullError> {
    let c = match on_disk(ctx, name)? {
        OnDisk::Absent | OnDisk::Exact => return Ok(()),
        OnDisk::Conflict(c) => c,
    };
    let Some(old) = renamed_from(ctx, &c)? else {
        return Err(PullError::CaseConflict(c));
    };
    let path = fsutil::safe_path(&ctx.root, &old)?;
    if !super::install::version(ctx, &old, false)? {
        std::fs::remove_file(&path)?;
    }
    forget_parent(ctx, &path);
    tracing::info!(folder = %ctx.folder, from = old.as_str(), to = name.as_str(),
        "case-only rename");
    Ok(())
}

/// The local name `c.real` when it is the old spelling of a case-only rename: only its case
/// differs, it is a regular file, its global version is a deletion, and the file on disk is
/// the one the local record describes. `None` otherwise (then it is a real conflict).
fn renamed_from(ctx: &Ctx, c: &CaseConflict) -> Result<Option<RelPath>, PullError> {
    let Ok(old) = RelPath::new(&c.real) else {
        return Ok(None);
    };
    // Only the last component may differ: a parent spelt otherwise is a conflict of its own.
    let parent = |s: &str| s.rsplit_once('/').map(|(p, _)| p.to_owned());
    if parent(&c.given) != parent(&c.real) {
        return Ok(None);
    }
    old_is_deleted_and_unchanged(ctx, old)
}

fn old_is_deleted_and_unchanged(ctx: &Ctx, old: RelPath) -> Result<Option<RelPath>, PullError> {
    let read = ctx
        .shared
        .index
        .read(&ctx.folder)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let deleted = read
        .global(&old)
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .is_some_and(|g| g.record.deleted);
    let local = read
        .get(ctx.me, &old)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let Some(local) = local.filter(|l| !l.deleted && l.kind == syncd_types::FileKind::File) else {
        return Ok(None);
    };
    if !deleted {
        return Ok(None);
    }
    let path = fsutil::safe_path(&ctx.root, &old)?;
    if !fsutil::matches_index(&path, Some(&local), ctx.ignore_perms)? {
        return Err(PullError::Modified);
    }
    Ok(Some(old))
}

/// Claims the temp file `temp` for `name` in this pass. On a filesystem that is not
/// case-sensitive the temp files of `A` and `a` are one file: the second name to claim it
/// fails with the case conflict (retried in a later pass), and so does a name whose temp file
/// exists on disk under another case, so no two items ever write into one temp file.
pub(super) fn claim_temp(ctx: &Ctx, name: &RelPath, temp: &Path) -> Result<(), PullError> {
    let Some(r) = &ctx.case else {
        return Ok(());
    };
    let (Some(dir), Some(base)) = (temp.parent(), temp.file_name().and_then(|b| b.to_str())) else {
        return Ok(());
    };
    let key = (dir.to_path_buf(), syncd_types::fold_case(base));
    let conflict = |real: &RelPath| {
        PullError::CaseConflict(CaseConflict {
            given: name.as_str().to_owned(),
            real: real.as_str().to_owned(),
        })
    };
    {
        let mut temps = match ctx.temps.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        match temps.get(&key) {
            Some(other) if other != name => return Err(conflict(other)),
            Some(_) => {}
            None => {
                temps.insert(key, name.clone());
            }
        }
    }
    let temp_rel = match name.parent() {
        Some(p) => p.join(base),
        None => RelPath::new(base),
    };
    let Ok(temp_rel) = temp_rel else {
        return Ok(());
    };
    match r.check(&temp_rel)? {
        OnDisk::Absent | OnDisk::Exact => Ok(()),
        // Left by an earlier pass for the other name: that item's (the sweep at the end of
        // a complete pass removes it unless that item failed too).
        OnDisk::Conflict(c) => Err(PullError::CaseConflict(CaseConflict {
            given: name.as_str().to_owned(),
            real: c.real,
        })),
    }
}

/// Forgets the cached listing of `path`'s directory after an entry there changed.
pub(super) fn forget_parent(ctx: &Ctx, path: &Path) {
    if let (Some(r), Some(dir)) = (&ctx.case, path.parent()) {
        r.forget(dir);
    }
}

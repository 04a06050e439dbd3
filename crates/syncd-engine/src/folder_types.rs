//! What send-only and receive-only folders do beyond a send-receive one (Syncthing 1.19.2's
//! `folder_sendonly.go` and `folder_recvonly.go`):
//!
//! - a send-only folder never pulls: [`settle_send_only`] only adopts the global version of
//!   what it already has (and records ignored items), the rest stays needed until
//!   [`override_changes`] makes our versions win everywhere;
//! - a receive-only folder's scanner marks local changes receive-only (see
//!   `syncd_scan::ScanConfig::receive_only`); [`revert_changes`] drops them, so the next
//!   pull brings the global versions back without a conflict copy.
//!
//! Each runs on the folder actor (never beside a pull), in one index write: the writer is
//! opened before the snapshot is read, so no scan commits between what is read and what is
//! written.

use std::sync::Arc;
use std::time::SystemTime;

use syncd_conflict::VersionVector;
use syncd_ignore::IgnoreSet;
use syncd_index::{FileRecord, Index};
use syncd_types::{DeviceId, FileKind};

use crate::config::{FolderConfig, FolderType};
use crate::engine::{Shared, lock};
use crate::error::EngineError;
use crate::folder::FolderCtx;
use crate::fsutil;
use crate::status::{FilePage, FileSummary};

/// The operations of this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// [`settle_send_only`].
    SettleSendOnly,
    /// [`override_changes`].
    Override,
    /// [`revert_changes`].
    Revert,
    /// [`clear_receive_only`].
    ClearReceiveOnly,
}

/// Runs `op` on `ctx`'s folder on a blocking thread; returns how many local records it
/// wrote. An operation that does not fit the folder's type does nothing (Syncthing's
/// `Override`/`Revert` of another type are empty).
pub(crate) async fn run_blocking(
    shared: &Arc<Shared>,
    ctx: &Arc<FolderCtx>,
    op: Op,
) -> Result<usize, EngineError> {
    let cfg = ctx.config();
    let applies = match op {
        Op::SettleSendOnly | Op::Override => cfg.folder_type == FolderType::SendOnly,
        Op::Revert => cfg.folder_type == FolderType::ReceiveOnly,
        Op::ClearReceiveOnly => cfg.folder_type != FolderType::ReceiveOnly,
    };
    if !applies {
        return Ok(0);
    }
    let index = shared.index.clone();
    let ignores = lock(&ctx.scanner).as_ref().map(|s| s.ignores());
    let me = shared.device_id;
    let res = tokio::task::spawn_blocking(move || match op {
        Op::SettleSendOnly => settle_send_only(&index, &cfg, ignores.as_deref()),
        Op::Override => override_changes(&index, &cfg, me, SystemTime::now()),
        Op::Revert => revert_changes(&index, &cfg, me, ignores.as_deref(), SystemTime::now()),
        Op::ClearReceiveOnly => clear_receive_only(&index, &cfg),
    })
    .await
    .map_err(|e| EngineError::Index(e.to_string()))?;
    if let Err(e) = &res {
        tracing::warn!(folder = %ctx.id, error = %e, ?op, "folder type operation failed");
    }
    if op == Op::Revert
        && let Ok(n) = res
    {
        tracing::info!(folder = %ctx.id, records = n, "reverted local changes");
    } else if op == Op::Override
        && let Ok(n) = res
    {
        tracing::info!(folder = %ctx.id, records = n, "overrode remote changes");
    }
    res
}

/// Opens the index writer, then a snapshot (so no other writer commits between what `f`
/// reads and what is written), writes the local records `f` returns; returns how many.
fn rewrite_local(
    index: &Index,
    cfg: &FolderConfig,
    f: impl FnOnce(&syncd_index::FolderReader) -> Result<Vec<FileRecord>, EngineError>,
) -> Result<usize, EngineError> {
    let mut w = index.write(&cfg.id).map_err(index_err)?;
    let out = f(&index.read(&cfg.id).map_err(index_err)?)?;
    let count = out.len();
    if count > 0 {
        w.apply_local(out).map_err(index_err)?;
        w.commit().map_err(index_err)?;
    }
    Ok(count)
}

fn index_err(e: impl std::fmt::Display) -> EngineError {
    EngineError::Index(e.to_string())
}

fn now_secs(now: SystemTime) -> u64 {
    u64::try_from(fsutil::split_time(now).0).unwrap_or(0)
}

/// Send-only "pull": touches no file. A needed item that is ignored here is recorded as
/// ignored; one we hold equivalently (same content, as the scanner's equivalence) takes the
/// global version, so it is no longer needed. Everything else stays needed.
pub(crate) fn settle_send_only(
    index: &Index,
    cfg: &FolderConfig,
    ignores: Option<&IgnoreSet>,
) -> Result<usize, EngineError> {
    rewrite_local(index, cfg, |r| {
        let mut out = Vec::new();
        for n in r.need().map_err(index_err)? {
            let n = n.map_err(index_err)?;
            let ignored = ignores.is_some_and(|i| {
                i.matched(n.global.name.as_str(), n.global.kind.is_dir())
                    .is_ignored()
            });
            if ignored {
                let mut row = n.global;
                row.invalid = true;
                row.blocks.clear();
                row.chunks.clear();
                out.push(row);
                continue;
            }
            let Some(local) = n.local else { continue };
            if local.invalid || !syncd_scan::equivalent(&local, &n.global, cfg.ignore_perms) {
                continue;
            }
            let mut adopted = local;
            adopted.version = n.global.version.clone();
            adopted.modified_by = n.global.modified_by;
            out.push(adopted);
        }
        Ok(out)
    })
}

/// Send-only Override (`POST /rest/db/override`): for every needed item, ours wins. What we
/// have gets a version newer than every copy (ours merged with the global, then our counter
/// bumped); what we lack is announced deleted with the global's version bumped by us.
/// Locally invalid (ignored) items are left alone.
pub(crate) fn override_changes(
    index: &Index,
    cfg: &FolderConfig,
    me: DeviceId,
    now: SystemTime,
) -> Result<usize, EngineError> {
    rewrite_local(index, cfg, |r| {
        let (short, secs) = (me.short(), now_secs(now));
        let mut out = Vec::new();
        for n in r.need().map_err(index_err)? {
            let n = n.map_err(index_err)?;
            match n.local {
                Some(local) if local.invalid => {}
                Some(mut local) => {
                    local.version = local.version.merged(&n.global.version).updated(short, secs);
                    local.modified_by = short;
                    out.push(local);
                }
                None => {
                    let g = n.global;
                    let mut del = FileRecord::new(g.name.clone(), g.kind);
                    del.deleted = true;
                    del.version = g.version.updated(short, secs);
                    del.modified_by = short;
                    del.modified_s = i64::try_from(secs).unwrap_or(i64::MAX);
                    del.previous_blocks_hash = g.blocks_hash;
                    out.push(del);
                }
            }
        }
        Ok(out)
    })
}

/// Receive-only Revert (`POST /rest/db/revert`): every receive-only change is dropped.
/// - A change to something that has a valid global version keeps its content in the index
///   with an empty version (or takes the global record when equivalent), so the global
///   version is needed and pulled over it without a conflict copy.
/// - What exists only here (no valid global version) is deleted from disk — to the versions
///   when versioning is on — files before directories, deepest first; a directory that is not
///   empty, or an item changed on disk since it was scanned, stays (and is rescanned later).
///   Its deletion is recorded with an empty version, as is a receive-only deletion of it.
pub(crate) fn revert_changes(
    index: &Index,
    cfg: &FolderConfig,
    me: DeviceId,
    ignores: Option<&IgnoreSet>,
    now: SystemTime,
) -> Result<usize, EngineError> {
    rewrite_local(index, cfg, |r| {
        let mut out = Vec::new();
        let mut only_here = Vec::new();
        for rec in r.local_since(0).map_err(index_err)? {
            let rec = rec.map_err(index_err)?;
            if !rec.receive_only {
                continue;
            }
            let mut plain = rec;
            plain.invalid = false;
            plain.receive_only = false;
            let global = r.global(&plain.name).map_err(index_err)?;
            match global.map(|g| g.record).filter(|g| !g.invalid) {
                None if plain.deleted => {
                    plain.version = VersionVector::new();
                    out.push(plain);
                }
                None => only_here.push(plain),
                Some(g) if syncd_scan::equivalent(&plain, &g, cfg.ignore_perms) => {
                    let inode = plain.inode;
                    plain = g;
                    plain.inode = inode;
                    plain.invalid = false;
                    plain.receive_only = false;
                    out.push(plain);
                }
                Some(_) => {
                    plain.version = VersionVector::new();
                    out.push(plain);
                }
            }
        }
        out.extend(delete_only_here(cfg, me, ignores, only_here, now));
        Ok(out)
    })
}

/// A folder that stopped being receive-only: its receive-only changes become ordinary local
/// changes (valid, with the version the scan gave them), announced like any other.
pub(crate) fn clear_receive_only(index: &Index, cfg: &FolderConfig) -> Result<usize, EngineError> {
    rewrite_local(index, cfg, |r| {
        let mut out = Vec::new();
        for rec in r.local_since(0).map_err(index_err)? {
            let mut rec = rec.map_err(index_err)?;
            if rec.receive_only {
                rec.invalid = false;
                rec.receive_only = false;
                out.push(rec);
            }
        }
        Ok(out)
    })
}

/// Removes the local-only items of a revert from disk (see [`revert_changes`]); returns the
/// deletion records of those removed.
fn delete_only_here(
    cfg: &FolderConfig,
    me: DeviceId,
    ignores: Option<&IgnoreSet>,
    mut items: Vec<FileRecord>,
    now: SystemTime,
) -> Vec<FileRecord> {
    if items.is_empty() {
        return Vec::new();
    }
    let versioner = match crate::versioner::Versioner::new(&cfg.path, &cfg.versioning) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(folder = %cfg.id, error = %e,
                "versioning is misconfigured; local-only items are not removed");
            return Vec::new();
        }
    };
    // Files and symlinks first, then directories deepest first (a child's name sorts after
    // its parent's, so reverse name order puts it first).
    items.sort_by(|a, b| {
        (a.kind == FileKind::Directory)
            .cmp(&(b.kind == FileKind::Directory))
            .then_with(|| b.name.cmp(&a.name))
    });
    let mut out = Vec::new();
    for item in items {
        if ignores.is_some_and(|i| {
            i.matched(item.name.as_str(), item.kind.is_dir())
                .is_ignored()
        }) {
            continue;
        }
        match remove_one(cfg, &item, versioner.as_ref(), now) {
            Ok(()) => {
                let mut del = FileRecord::new(item.name.clone(), item.kind);
                del.deleted = true;
                del.modified_by = me.short();
                del.modified_s = fsutil::split_time(now).0;
                del.previous_blocks_hash = item.blocks_hash;
                out.push(del);
            }
            Err(e) => tracing::info!(folder = %cfg.id, path = %item.name, error = %e,
                "a local-only item was not removed by the revert"),
        }
    }
    out
}

/// Removes one local-only item if it still is what its record says.
fn remove_one(
    cfg: &FolderConfig,
    item: &FileRecord,
    versioner: Option<&crate::versioner::Versioner>,
    now: SystemTime,
) -> std::io::Result<()> {
    let path = fsutil::safe_path(&cfg.path, &item.name)?;
    if !fsutil::matches_index(&path, Some(item), cfg.ignore_perms)? {
        return Err(std::io::Error::other(
            "changed on disk since it was scanned",
        ));
    }
    match item.kind {
        FileKind::Directory => std::fs::remove_dir(&path),
        FileKind::Symlink => std::fs::remove_file(&path),
        FileKind::File => {
            if let Some(v) = versioner {
                match v.archive(&item.name, now) {
                    Ok(crate::versioner::Archived::Nothing) => {}
                    Ok(_) => return Ok(()),
                    Err(e) => return Err(std::io::Error::other(e.to_string())),
                }
            }
            std::fs::remove_file(&path)
        }
    }
}

/// Page `page` (from 1) of `per_page` receive-only changes, in name order.
pub(crate) fn local_changes(
    r: &syncd_index::FolderReader,
    page: usize,
    per_page: usize,
) -> Result<FilePage, EngineError> {
    let skip = page.saturating_sub(1).saturating_mul(per_page);
    let mut names: Vec<FileRecord> = Vec::new();
    for rec in r.local_since(0).map_err(index_err)? {
        let rec = rec.map_err(index_err)?;
        if rec.receive_only {
            names.push(rec);
        }
    }
    names.sort_by(|a, b| a.name.cmp(&b.name));
    let total = names.len() as u64;
    Ok(FilePage {
        files: names
            .iter()
            .skip(skip)
            .take(per_page)
            .map(FileSummary::of)
            .collect(),
        total,
    })
}

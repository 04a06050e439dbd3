//! Merging a scanned change that is the global version (Syncthing's "merging identical locally
//! changed item with global", spec sync-semantics §4.2).
//!
//! A scan builds a new local record for every entry that differs from its local record, and
//! would bump its version. When the entry on disk is already *equivalent* to the folder's
//! global record — typically a file the puller has just renamed into place and not yet
//! committed, or content that arrived by other means — the device holds the global version:
//! the record then carries the global's version vector (and who modified it) instead of a bump,
//! so nothing becomes needed and nothing new wins anywhere.

use syncd_index::{FileRecord, Index, IndexError};
use syncd_types::{DeviceId, FileKind, FolderId};

use crate::ScanConfig;

/// Gives every record of `batch` that is equivalent to the global record of its name the
/// global's version. The globals are read in one snapshot taken now, after hashing, just
/// before the batch is written: the freshest view (a global that changes after it simply
/// supersedes the adopted version, as it would any local one). Invalid (newly ignored)
/// records are left as they are. In a receive-only folder ([`ScanConfig::receive_only`])
/// every other record is a local change that must stay local: it is marked receive-only
/// (and invalid), as Syncthing's scanner sets `FlagLocalReceiveOnly`.
pub(crate) fn adopt_global(
    index: &Index,
    folder: &FolderId,
    batch: &mut [FileRecord],
    config: &ScanConfig,
) -> Result<(), IndexError> {
    if batch.is_empty() {
        return Ok(());
    }
    let reader = index.read(folder)?;
    let local = index.local_device();
    // Only the local device holds records: the global of a name is our own record.
    let alone = reader.devices().iter().all(|d| *d == local);
    if alone && !config.receive_only {
        return Ok(());
    }
    for rec in batch.iter_mut().filter(|r| !r.invalid) {
        let global = if alone {
            None
        } else {
            reader.global(&rec.name)?
        };
        match global {
            Some(global) if equivalent(rec, &global.record, config.ignore_perms) => {
                let g = &global.record;
                rec.version = g.version.clone();
                rec.modified_by = g.modified_by;
                rec.previous_blocks_hash = g.previous_blocks_hash.clone();
                if rec.deleted {
                    // A tombstone's time is when it was deleted: take the global one's.
                    rec.modified_s = g.modified_s;
                    rec.modified_ns = g.modified_ns;
                }
            }
            Some(ref g) if rec.deleted && config.receive_only && g.record.invalid => {
                // Deleting what only existed here (no valid version anywhere): no change
                // left to keep or revert; recorded, as Syncthing does, with an empty version.
                rec.version = syncd_conflict::VersionVector::new();
            }
            None if rec.deleted && config.receive_only => {
                rec.version = syncd_conflict::VersionVector::new();
            }
            _ if config.receive_only => {
                rec.invalid = true;
                rec.receive_only = true;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Leaves out of `batch` what the index already holds as it is: a deletion of an entry
/// already recorded as deleted (the puller removed the file this scan found missing), and a
/// live record whose version, kind and content are already the local record's (the scan
/// adopted the global version the puller recorded meanwhile). Writing them again would only
/// announce them again: a large file's whole block list for nothing. Call it with the write
/// transaction open: writers take turns, so what it reads stays true until that commit.
/// Only deletions and adopted records (not made by this device) can already be there: a
/// record this scan made carries a version bumped past every one recorded, so those are not
/// looked up (an initial scan reads nothing more).
pub(crate) fn drop_recorded(
    index: &Index,
    folder: &FolderId,
    local: DeviceId,
    batch: Vec<FileRecord>,
) -> Result<Vec<FileRecord>, IndexError> {
    let me = local.short();
    if batch.iter().all(|r| !r.deleted && r.modified_by == me) {
        return Ok(batch);
    }
    let now = index.read(folder)?;
    let mut keep = Vec::with_capacity(batch.len());
    for r in batch {
        if !r.deleted && r.modified_by == me {
            keep.push(r);
            continue;
        }
        let recorded = now.get(local, &r.name)?.is_some_and(|cur| {
            if r.deleted {
                cur.deleted
            } else {
                !r.invalid
                    && !cur.invalid
                    && !cur.deleted
                    && cur.kind == r.kind
                    && cur.version == r.version
                    && cur.blocks_hash == r.blocks_hash
                    && cur.symlink_target == r.symlink_target
            }
        });
        if !recorded {
            keep.push(r);
        }
    }
    Ok(keep)
}

/// Whether the scanned record `ours` describes the same entry as the global record: same
/// kind, deleted flag and validity; for live files the same size, mtime (s and ns) and
/// content (blocks hash, or the block list when either lacks one); for live directories and
/// files the same permission bits unless permissions are ignored on either side; for live
/// symlinks the same target. Deleted entries of the same kind carry no content to compare.
/// Directory and symlink times are not compared, as in the scanner's change shortcut.
pub fn equivalent(ours: &FileRecord, global: &FileRecord, ignore_perms: bool) -> bool {
    if global.invalid || ours.invalid || ours.kind != global.kind || ours.deleted != global.deleted
    {
        return false;
    }
    if ours.deleted {
        return true;
    }
    let perms_same = ignore_perms
        || ours.no_permissions
        || global.no_permissions
        || ours.permissions & 0o777 == global.permissions & 0o777;
    match ours.kind {
        FileKind::File => {
            ours.size == global.size
                && ours.modified_s == global.modified_s
                && ours.modified_ns == global.modified_ns
                && perms_same
                && same_content(ours, global)
        }
        FileKind::Directory => perms_same,
        FileKind::Symlink => ours.symlink_target == global.symlink_target,
    }
}

/// Same file content; both records have the same size.
fn same_content(a: &FileRecord, b: &FileRecord) -> bool {
    if a.size == 0 {
        // Empty: one empty block or none, depending on who listed it.
        return true;
    }
    if !a.blocks_hash.is_empty() && !b.blocks_hash.is_empty() {
        return a.blocks_hash == b.blocks_hash;
    }
    a.blocks.len() == b.blocks.len()
        && a.blocks
            .iter()
            .zip(&b.blocks)
            .all(|(x, y)| x.size == y.size && x.hash == y.hash)
}

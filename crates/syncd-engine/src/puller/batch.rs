//! Batched durability: many finished temp files become durable, visible and committed together.
//!
//! A file whose data is complete in its temp file (permissions and mtime already set on it) is
//! [`Staged`]. A batch of them is flushed on a blocking thread in four steps:
//! 1. every temp file is fsynced, several at once on a few threads (the disk sees one burst,
//!    not one serial fsync per file);
//! 2. each target is re-checked against the index (a local edit since the need set was read
//!    aborts that file and schedules a rescan; the temp file stays for reuse), a conflicting
//!    local file is moved to its conflict copy, and the temp file is renamed over the target;
//! 3. each distinct parent directory is fsynced once, making the renames durable;
//! 4. the records are committed to the index in one transaction.
//!
//! So a crash at any point leaves either the old file or the complete new one under the
//! final name (never a torn file), and the index never claims a file whose data and name are
//! not durable.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;

use syncd_conflict::LocalFate;
use syncd_index::FileRecord;
use syncd_types::RelPath;

use super::install::{conflict_move, version};
use super::{Ctx, PullError};
use crate::fsutil;

/// Threads fsyncing the temp files of one batch. An fsync mostly waits for the device, and
/// the device completes many at once: a 100,000-small-file initial sync took ~18 s with 4,
/// ~16 s with 8 and ~15 s with 16 (issue 12, scenario 5).
const SYNC_THREADS: usize = 16;

/// A file whose data is complete in its temp file: not yet durable, not yet in place.
#[derive(Debug)]
pub(crate) struct Staged {
    pub(crate) file: File,
    pub(crate) temp: PathBuf,
    pub(crate) target: PathBuf,
    /// The local record the need set was computed against (the "changed on disk" check).
    pub(crate) local: Option<FileRecord>,
    pub(crate) fate: LocalFate,
}

/// One item of a batch: the record to commit, its directory and, for files with new data,
/// the staged temp file.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) record: FileRecord,
    pub(crate) dir: PathBuf,
    pub(crate) staged: Option<Staged>,
    /// A file already in place whose metadata changed: fsynced with the batch.
    pub(crate) meta_changed: Option<File>,
}

/// What a flush did, per item in batch order.
#[derive(Debug)]
pub(crate) struct Flushed {
    pub(crate) results: Vec<(RelPath, Result<(), PullError>)>,
    /// Items committed to the index.
    pub(crate) committed: usize,
}

/// Makes `items` durable, puts them in place and commits them (see the module docs).
pub(crate) fn flush(ctx: &Ctx, items: Vec<Item>) -> Flushed {
    let synced = sync_all_parallel(
        &items
            .iter()
            .map(|i| {
                i.staged
                    .as_ref()
                    .map(|s| &s.file)
                    .or(i.meta_changed.as_ref())
            })
            .collect::<Vec<_>>(),
    );
    let mut results: Vec<(RelPath, Result<(), PullError>)> = Vec::with_capacity(items.len());
    let mut records: Vec<(usize, FileRecord, PathBuf)> = Vec::with_capacity(items.len());
    for (item, synced) in items.into_iter().zip(synced) {
        let name = item.record.name.clone();
        let res = synced
            .map_err(PullError::from)
            .and_then(|()| match item.staged {
                Some(s) => install(ctx, &item.record, s),
                None => Ok(()),
            });
        if res.is_ok() {
            records.push((results.len(), item.record, item.dir));
        }
        results.push((name, res));
    }
    // One fsync per distinct directory; a directory that fails to sync fails its items.
    let mut dirs: BTreeMap<PathBuf, Option<String>> = BTreeMap::new();
    for (_, _, d) in &records {
        dirs.entry(d.clone()).or_insert(None);
    }
    for (d, err) in dirs.iter_mut() {
        match fsutil::sync_dir(d) {
            Ok(()) => {}
            // Removed since (a directory deleted later in the same pass): nothing to sync.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => *err = Some(format!("sync {}: {e}", d.display())),
        }
    }
    let mut commit = Vec::with_capacity(records.len());
    let mut committed_slots = Vec::with_capacity(records.len());
    for (slot, rec, d) in records {
        match dirs.get(&d).cloned().flatten() {
            Some(e) => {
                if let Some(r) = results.get_mut(slot) {
                    r.1 = Err(PullError::Io(io::Error::other(e)));
                }
            }
            None => {
                commit.push(rec);
                committed_slots.push(slot);
            }
        }
    }
    let committed = commit.len();
    if committed == 0 {
        return Flushed {
            results,
            committed: 0,
        };
    }
    let res = (|| -> Result<(), String> {
        let mut w = ctx
            .shared
            .index
            .write(&ctx.folder)
            .map_err(|e| e.to_string())?;
        w.apply_local(commit).map_err(|e| e.to_string())?;
        w.commit().map_err(|e| e.to_string())
    })();
    match res {
        Ok(()) => Flushed { results, committed },
        Err(e) => {
            for slot in committed_slots {
                if let Some(r) = results.get_mut(slot) {
                    r.1 = Err(PullError::Io(io::Error::other(format!("committing: {e}"))));
                }
            }
            Flushed {
                results,
                committed: 0,
            }
        }
    }
}

/// Re-checks the target, moves a conflicting local file aside and renames the (durable) temp
/// file over the target.
fn install(ctx: &Ctx, record: &FileRecord, s: Staged) -> Result<(), PullError> {
    drop(s.file);
    super::case::make_way(ctx, &record.name)?;
    if !fsutil::matches_index(&s.target, s.local.as_ref(), ctx.ignore_perms)? {
        return Err(PullError::Modified);
    }
    match std::fs::symlink_metadata(&s.target) {
        Ok(m) if m.is_dir() => {
            std::fs::remove_dir(&s.target).map_err(|_| PullError::DirNotEmpty)?;
        }
        Ok(m) if m.is_file() => {
            if let LocalFate::ConflictCopy { winner_modified_by } = s.fate {
                conflict_move(ctx, &record.name, &s.target, winner_modified_by)?;
            } else {
                version(ctx, &record.name, true)?;
            }
        }
        Ok(_) => std::fs::remove_file(&s.target)?,
        Err(_) => {}
    }
    std::fs::rename(&s.temp, &s.target)?;
    super::case::forget_parent(ctx, &s.target);
    Ok(())
}

/// `sync_all` of every present file, spread over up to [`SYNC_THREADS`] threads; results in
/// input order (`Ok` for absent entries).
fn sync_all_parallel(files: &[Option<&File>]) -> Vec<io::Result<()>> {
    let present = files.iter().filter(|f| f.is_some()).count();
    let workers = present.min(SYNC_THREADS);
    if workers <= 1 {
        return files
            .iter()
            .map(|f| f.map_or(Ok(()), File::sync_all))
            .collect();
    }
    let mut out: Vec<io::Result<()>> = files.iter().map(|_| Ok(())).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                s.spawn(move || {
                    files
                        .iter()
                        .enumerate()
                        .skip(w)
                        .step_by(workers)
                        .filter_map(|(i, f)| f.map(|f| (i, f.sync_all())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for (w, h) in handles.into_iter().enumerate() {
            match h.join() {
                Ok(done) => {
                    for (i, r) in done {
                        if let Some(slot) = out.get_mut(i) {
                            *slot = r;
                        }
                    }
                }
                Err(_) => {
                    for slot in out.iter_mut().skip(w).step_by(workers) {
                        *slot = Err(io::Error::other("fsync thread panicked"));
                    }
                }
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_sync_reports_every_file_in_order() {
        let d = tempfile::tempdir().unwrap();
        let files: Vec<File> = (0..9)
            .map(|i| {
                let p = d.path().join(format!("f{i}"));
                std::fs::write(&p, [i as u8; 10]).unwrap();
                File::open(&p).unwrap()
            })
            .collect();
        let mut refs: Vec<Option<&File>> = files.iter().map(Some).collect();
        refs.insert(3, None);
        let res = sync_all_parallel(&refs);
        assert_eq!(res.len(), 10);
        assert!(res.iter().all(Result::is_ok));
    }
}

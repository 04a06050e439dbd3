//! Small files pulled in groups: a few blocking calls per group instead of a few per file.
//!
//! A file of at most [`SMALL_FILE_MAX`] bytes costs the disk little, so what dominates its
//! pull is the hand-offs between the async workers and blocking threads (each one wakes a
//! blocking thread and then a worker). A group of up to [`GROUP_FILES`] such files is pulled
//! in three steps:
//! 1. one blocking call runs [`super::prepare_file`] for every file (the conflict decision,
//!    the path and "changed on disk" checks, the temp file with what local data holds), which
//!    a large file gets in a blocking call of its own;
//! 2. the remaining pieces of every file are requested from peers concurrently (each verified
//!    by `Peer::request`);
//! 3. one blocking call writes them and gives each temp file its permissions and mtime.
//!
//! The files then go to the durability batch like any other (see [`super::batch`]): the same
//! temp names, the same checks, the same guarantees. A file a piece of which could not be
//! fetched keeps its temp file with every verified piece written, for the next attempt.

use std::sync::Arc;

use syncd_index::Needed;
use syncd_types::RelPath;
use tokio::task::JoinSet;

use super::fetch::fetch_remote;
use super::{Ctx, Prepared, PullError, batch, local, prepare_file};

/// Files of at most this many bytes are pulled in groups.
pub(super) const SMALL_FILE_MAX: u64 = 128 * 1024;
/// Files per group.
pub(super) const GROUP_FILES: usize = 8;

/// Whether `n` is pulled in a group.
pub(super) fn is_small(n: &Needed) -> bool {
    n.global.size <= SMALL_FILE_MAX
}

/// The result of each file of a group, in group order.
pub(super) type GroupResults = Vec<(RelPath, Result<batch::Item, PullError>)>;

/// Pulls a group of small files (see the module docs).
pub(super) async fn pull_group(ctx: Arc<Ctx>, group: Vec<Needed>) -> GroupResults {
    let names: Vec<RelPath> = group.iter().map(|n| n.global.name.clone()).collect();
    let prepared = {
        let ctx = ctx.clone();
        tokio::task::spawn_blocking(move || {
            // One index snapshot for the block lookups of the whole group.
            let mut snapshot = None;
            group
                .into_iter()
                .map(|n| prepare_file(&ctx, n, &mut snapshot))
                .collect::<Vec<_>>()
        })
        .await
    };
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => return fail_all(names, &e),
    };
    // Step 2: every missing piece of every file, concurrently.
    let mut fetches: JoinSet<(usize, u64, Result<Vec<u8>, PullError>)> = JoinSet::new();
    for (i, p) in prepared.iter().enumerate() {
        let Ok(Prepared::Open(o)) = p else { continue };
        for &b in &o.missing {
            let (ctx, name, available) = (ctx.clone(), o.record.name.clone(), o.available.clone());
            fetches.spawn(async move {
                let data = fetch_remote(&ctx, &name, &available, b).await;
                (i, b.offset, data)
            });
        }
    }
    let mut fetched: Vec<Vec<(u64, Vec<u8>)>> = prepared.iter().map(|_| Vec::new()).collect();
    let mut failed: Vec<Option<PullError>> = prepared.iter().map(|_| None).collect();
    while let Some(r) = fetches.join_next().await {
        match r {
            Ok((i, offset, Ok(d))) => {
                if let Some(f) = fetched.get_mut(i) {
                    f.push((offset, d));
                }
            }
            Ok((i, _, Err(e))) => {
                if let Some(slot) = failed.get_mut(i) {
                    slot.get_or_insert(e);
                }
            }
            Err(e) => return fail_all(names, &e),
        }
    }
    // Step 3: write, permissions, mtime.
    let finished = tokio::task::spawn_blocking(move || {
        prepared
            .into_iter()
            .zip(fetched)
            .zip(failed)
            .map(|((p, data), failed)| finish(p, &data, failed))
            .collect::<Vec<_>>()
    })
    .await;
    match finished {
        Ok(results) => names.into_iter().zip(results).collect(),
        Err(e) => fail_all(names, &e),
    }
}

fn fail_all(names: Vec<RelPath>, e: &tokio::task::JoinError) -> GroupResults {
    names
        .into_iter()
        .map(|n| {
            let err = PullError::Io(std::io::Error::other(e.to_string()));
            (n, Err(err))
        })
        .collect()
}

/// Step 3 for one file: the fetched pieces written (also when another piece failed, so the
/// next attempt reuses them), then permissions and mtime on the complete temp file.
fn finish(
    prepared: Result<Prepared, PullError>,
    data: &[(u64, Vec<u8>)],
    failed: Option<PullError>,
) -> Result<batch::Item, PullError> {
    let o = match prepared? {
        Prepared::Done(item) => return Ok(item),
        Prepared::Open(o) => o,
    };
    if let Some(e) = failed {
        local::write_pieces(&o.staged.file, data, None)?;
        return Err(e);
    }
    local::write_pieces(&o.staged.file, data, Some(o.meta))?;
    Ok(batch::Item {
        record: o.record,
        dir: o.dir,
        meta_changed: None,
        staged: Some(o.staged),
    })
}

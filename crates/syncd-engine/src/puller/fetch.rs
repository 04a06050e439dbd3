//! Fetching the pieces local data did not hold from the peers (through
//! [`super::source::Remote`]), within the engine's bytes-in-flight budgets, and writing them
//! into the temp file on blocking threads as they arrive.

use std::sync::Arc;

use syncd_index::FileRecord;
use syncd_types::{DeviceId, RelPath};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{Ctx, PullError, direct, local, source, wait_task};

/// Bytes of one file's pieces requested and not yet written. A file asks for its pieces this
/// many bytes at a time: requests wait for the engine's bytes-in-flight budget in turn, so a
/// 300 MB file that asked for all its pieces at once held back every file started after it
/// until its last piece was granted.
const FILE_WINDOW: u64 = 16 * 1024 * 1024;

/// Fetches `missing` from peers (each piece verified against its SHA-256 by
/// [`source::Remote::request`]) and writes them into `file`, the temp file of `record`:
/// pieces are requested [`FILE_WINDOW`] bytes ahead of the writer, the pieces that arrived
/// while a write was running are written together by the next one, and the last write
/// applies `meta`. On failure the temp file keeps its verified pieces for the next attempt.
pub(super) async fn fetch_missing(
    ctx: &Arc<Ctx>,
    record: &FileRecord,
    available: &[DeviceId],
    file: std::fs::File,
    missing: Vec<syncd_index::Block>,
    meta: local::Meta,
) -> Result<std::fs::File, PullError> {
    type Written = (std::fs::File, Option<direct::Direct>, std::io::Result<()>);
    type Piece = (u64, Vec<u8>, tokio::sync::OwnedSemaphorePermit);
    let mut fetches: JoinSet<Result<Piece, PullError>> = JoinSet::new();
    // Pieces not requested yet, and the bytes requested and not yet written (see [`FILE_WINDOW`]).
    let mut todo = missing.into_iter();
    let mut requested = 0u64;
    let mut writing_bytes = 0u64;
    // Large files go to the disk directly (see [`direct`]): the first write opens the
    // descriptor (on its blocking thread), which then travels with the file.
    let mut direct: Option<direct::Direct> = None;
    let mut open_direct = record.size >= direct::MIN_FILE;
    let mut file = Some(file);
    // Fetched pieces waiting for the writer, and their budget (released once written).
    let mut ready: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut held: Vec<tokio::sync::OwnedSemaphorePermit> = Vec::new();
    let mut writing: Option<tokio::task::JoinHandle<Written>> = None;
    let mut first_err: Option<PullError> = None;
    let mut finished = false;
    loop {
        while first_err.is_none() && requested < FILE_WINDOW {
            let Some(b) = todo.next() else { break };
            requested += u64::from(b.size);
            let (ctx2, name2, avail2) = (ctx.clone(), record.name.clone(), available.to_vec());
            fetches.spawn(async move {
                let budget = &ctx2.bytes_in_flight;
                let (data, permit) = fetch_remote_held(&ctx2, budget, &name2, &avail2, b).await?;
                Ok((b.offset, data, permit))
            });
        }
        let all_fetched = fetches.is_empty() && todo.as_slice().is_empty();
        if writing.is_none() && fetches.is_empty() {
            match (first_err.take(), file.take()) {
                (Some(e), _) => return Err(e),
                (None, Some(f)) if finished => return Ok(f),
                (None, None) => {
                    return Err(PullError::Io(std::io::Error::other("temp file lost")));
                }
                (None, Some(f)) => file = Some(f),
            }
        }
        if writing.is_none()
            && first_err.is_none()
            && (!ready.is_empty() || all_fetched)
            && let Some(f) = file.take()
        {
            let mut pieces = std::mem::take(&mut ready);
            writing_bytes = pieces.iter().map(|(_, d)| d.len() as u64).sum();
            let budget = std::mem::take(&mut held);
            let last = all_fetched;
            let mut d = direct.take();
            let open = std::mem::take(&mut open_direct);
            writing = Some(tokio::task::spawn_blocking(move || {
                if open {
                    d = direct::Direct::open(&f);
                }
                let r = match d.as_mut() {
                    Some(d) => d
                        .write(&f, &mut pieces)
                        .and_then(|()| if last { meta.apply(&f) } else { Ok(()) }),
                    None => local::write_pieces(&f, &pieces, last.then_some(meta)),
                };
                drop((pieces, budget));
                (f, d, r)
            }));
            finished = last;
        }
        tokio::select! {
            joined = fetches.join_next(), if !fetches.is_empty() => match joined {
                Some(Ok(Ok((offset, data, permit)))) => {
                    ready.push((offset, data));
                    held.push(permit);
                }
                Some(Ok(Err(e))) => {
                    first_err.get_or_insert(e);
                    fetches.abort_all();
                }
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => {
                    first_err.get_or_insert(PullError::Io(std::io::Error::other(e.to_string())));
                    fetches.abort_all();
                }
                None => {}
            },
            written = wait_task(&mut writing), if writing.is_some() => {
                writing = None;
                requested = requested.saturating_sub(std::mem::take(&mut writing_bytes));
                match written {
                    Ok((f, d, Ok(()))) => {
                        file = Some(f);
                        direct = d;
                    }
                    Ok((f, _, Err(e))) => {
                        file = Some(f);
                        finished = false;
                        first_err.get_or_insert(PullError::Io(e));
                        fetches.abort_all();
                    }
                    Err(e) => {
                        finished = false;
                        first_err.get_or_insert(PullError::Io(std::io::Error::other(e.to_string())));
                        fetches.abort_all();
                    }
                }
            },
        }
    }
}

/// One piece of a small file from the network: the connected peers announcing the global
/// version, in turn, within the small files' bytes-in-flight budget. The data returned
/// matches the piece's SHA-256 (checked once, by [`source::Remote::request`]).
pub(super) async fn fetch_remote(
    ctx: &Arc<Ctx>,
    name: &RelPath,
    available: &[DeviceId],
    b: syncd_index::Block,
) -> Result<Vec<u8>, PullError> {
    fetch_remote_held(ctx, &ctx.shared.small_pull_budget, name, available, b)
        .await
        .map(|(d, _)| d)
}

/// One piece within `budget`, with the piece's share of it still held: the caller lets it go
/// once the piece is written, so pieces that arrive faster than the disk takes them count
/// against the budget instead of piling up in memory.
async fn fetch_remote_held(
    ctx: &Arc<Ctx>,
    budget: &Arc<Semaphore>,
    name: &RelPath,
    available: &[DeviceId],
    b: syncd_index::Block,
) -> Result<(Vec<u8>, tokio::sync::OwnedSemaphorePermit), PullError> {
    let permits = b.size.max(1);
    let permit = budget
        .clone()
        .acquire_many_owned(permits)
        .await
        .map_err(|_| PullError::NoSource)?;
    let mut tried = false;
    for dev in available {
        match ctx.peers.request(*dev, &ctx.folder, name, b).await {
            Ok(d) => return Ok((d, permit)),
            Err(source::Refused::NotConnected) => {}
            Err(source::Refused::Failed) => tried = true,
        }
    }
    if tried {
        Err(PullError::BlockUnavailable { offset: b.offset })
    } else {
        Err(PullError::NoSource)
    }
}

//! The peer actor: one loop per connection over the messages the peer sends. It sends our
//! ClusterConfig first, applies the peer's Index/IndexUpdate batches to the index, routes
//! Responses to waiting pullers, serves Requests, and runs one index sender per shared folder
//! (full Index, then IndexUpdates in sequence order; delta index via index ID + max sequence).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use syncd_index::{FileRecord, RemoteBatch};
use syncd_proto::{Message, bep};
use syncd_transport::{Connection, ConnectionInfo, Direction, MessageSender};
use syncd_types::{DeviceId, FolderId};
use tokio::sync::{Semaphore, oneshot};
use tokio::task::JoinHandle;

use crate::convert;
use crate::derive;
use crate::engine::{Shared, lock};
use crate::error::{HandleError, LocalError, PeerError};
use crate::event::Event;
use crate::folder::FolderInput;

/// Records per Index/IndexUpdate message.
const INDEX_BATCH: usize = 1000;
/// Records read at once for a syncd peer that takes derived records, when a window of
/// [`INDEX_BATCH`] with local changes is full: a directory of up to ~4,000 entries moves in
/// one message.
const MOVE_WINDOW: usize = 8192;
/// Requests of one peer waiting or being served; past this, its messages are not read until
/// one is answered (a request flood costs bounded memory, and TCP pushes back on the peer).
/// The data read at once is bounded by the serving threads (see [`crate::serve::Queue`]).
const MAX_SERVING_PER_PEER: usize = 1024;

/// A connected peer, shared with pullers (which send Requests through it).
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) device: DeviceId,
    pub(crate) info: ConnectionInfo,
    pub(crate) sender: MessageSender,
    next_id: AtomicI32,
    pending: Mutex<HashMap<i32, oneshot::Sender<bep::Response>>>,
    /// The peer's latest ClusterConfig.
    pub(crate) remote_cc: Mutex<Option<bep::ClusterConfig>>,
    /// Requests admitted and not yet answered (at most [`MAX_SERVING_PER_PEER`]).
    serve_slots: Arc<Semaphore>,
    /// Requests waiting for a serving thread.
    pub(crate) serve_queue: crate::serve::Queue,
    /// Files recently found servable to this peer (see [`crate::serve::Servable`]).
    pub(crate) servable: Mutex<crate::serve::Servable>,
    senders: Mutex<BTreeMap<FolderId, JoinHandle<()>>>,
    /// Held while a local change is announced to this peer: one at a time, in order.
    announce: tokio::sync::Mutex<()>,
    /// The folders our last ClusterConfig to this peer listed. An index sender starts only
    /// for one of them: its messages must follow the ClusterConfig that announces the
    /// folder, or the peer applies them before it learns our index ID, and drops them then.
    announced: Mutex<std::collections::BTreeSet<FolderId>>,
    /// Held while the folders of a ClusterConfig are handled (auto-accept, pending,
    /// introductions; see [`crate::join`]), one at a time; `offers_gen` numbers them so
    /// that only the latest is handled.
    offers: tokio::sync::Mutex<()>,
    offers_gen: AtomicU64,
    /// Records this connection carried as derived records (see [`derive`]), received / sent.
    pub(crate) derived_in: AtomicU64,
    pub(crate) derived_out: AtomicU64,
}

/// Why a block request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("connection closed")]
    Closed,
    #[error("peer answered with error code {0}")]
    Code(i32),
    #[error("peer sent data that does not match the requested hash")]
    HashMismatch,
}

impl Peer {
    /// Sends a Request and waits for its Response data.
    pub(crate) async fn request(
        &self,
        folder: &FolderId,
        name: &str,
        offset: u64,
        size: u32,
        hash: &[u8; 32],
    ) -> Result<Vec<u8>, RequestError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        let req = bep::Request {
            id,
            folder: folder.as_str().to_owned(),
            name: name.to_owned(),
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            size: i32::try_from(size).unwrap_or(i32::MAX),
            hash: hash.to_vec(),
            ..Default::default()
        };
        if self.sender.send(Message::Request(req)).await.is_err() {
            lock(&self.pending).remove(&id);
            return Err(RequestError::Closed);
        }
        let resp = rx.await.map_err(|_| RequestError::Closed)?;
        if resp.code != 0 {
            return Err(RequestError::Code(resp.code));
        }
        if Sha256::digest(&resp.data).as_slice() != hash.as_slice() {
            tracing::warn!(device = %self.device, folder = folder.as_str(), name, offset,
                "peer protocol violation: block data does not match its hash");
            return Err(RequestError::HashMismatch);
        }
        Ok(resp.data)
    }

    /// The max sequence the peer announced for its own index of `folder`, if it shares it.
    pub(crate) fn announced_max_sequence(&self, folder: &FolderId) -> Option<u64> {
        let cc = lock(&self.remote_cc);
        let f = cc
            .as_ref()?
            .folders
            .iter()
            .find(|f| f.id == folder.as_str())?;
        if f.paused {
            return None;
        }
        let d = f.devices.iter().find(|d| d.id == self.device.as_bytes())?;
        Some(u64::try_from(d.max_sequence).unwrap_or(0))
    }

    /// Whether the peer's ClusterConfig says it shares `folder` (and has not paused it).
    pub(crate) fn shares(&self, folder: &FolderId) -> bool {
        lock(&self.remote_cc).as_ref().is_some_and(|cc| {
            cc.folders
                .iter()
                .any(|f| f.id == folder.as_str() && !f.paused)
        })
    }

    /// Stops the index senders and waits until they are gone (they hold the index).
    async fn stop(&self) {
        let senders = std::mem::take(&mut *lock(&self.senders));
        for h in senders.values() {
            h.abort();
        }
        for (_, h) in senders {
            let _ = h.await;
        }
        lock(&self.pending).clear();
    }
}

/// Runs one connection until it ends.
pub(crate) async fn run(shared: Arc<Shared>, conn: Connection) {
    let Connection {
        info,
        sender,
        mut receiver,
    } = conn;
    let device = info.device;
    let peer = Arc::new(Peer {
        device,
        info: info.clone(),
        sender: sender.clone(),
        next_id: AtomicI32::new(1),
        pending: Mutex::new(HashMap::new()),
        remote_cc: Mutex::new(None),
        serve_slots: Arc::new(Semaphore::new(MAX_SERVING_PER_PEER)),
        serve_queue: crate::serve::Queue::default(),
        servable: Mutex::new(crate::serve::Servable::default()),
        senders: Mutex::new(BTreeMap::new()),
        announce: tokio::sync::Mutex::new(()),
        announced: Mutex::new(std::collections::BTreeSet::new()),
        offers: tokio::sync::Mutex::new(()),
        offers_gen: AtomicU64::new(0),
        derived_in: AtomicU64::new(0),
        derived_out: AtomicU64::new(0),
    });
    if send_cluster_config(&shared, &peer).await.is_err() {
        return;
    }
    // A refusal of derived records lasts one connection: this one gets full records.
    shared.set_derived_refused(device, false);
    shared.peer_connected(&peer);
    let mut first = true;
    let reason = loop {
        let msg = match receiver.recv().await {
            Ok(m) => m,
            Err(e) => break e.to_string(),
        };
        let result = match msg {
            Message::ClusterConfig(cc) => handle_cluster_config(&shared, &peer, cc)
                .await
                .map_err(HandleError::from),
            _ if first => Err(PeerError::ClusterConfigNotFirst.into()),
            Message::Index(idx) => {
                handle_index(
                    &shared,
                    &peer,
                    idx.folder,
                    idx.files,
                    RemoteBatch::Full,
                    None,
                )
                .await
            }
            Message::IndexUpdate(idx) if !idx.syncd_derived.is_empty() => {
                let derived = Some((idx.syncd_derived, idx.syncd_digest));
                let r = handle_index(
                    &shared,
                    &peer,
                    idx.folder,
                    idx.files,
                    RemoteBatch::Update,
                    derived,
                )
                .await;
                if let Err(HandleError::Peer(e @ PeerError::Derived(_))) = &r {
                    // Do not ask for derived records on the next connection: it gets the
                    // same records in full.
                    tracing::warn!(device = %device, error = %e,
                        "derived records rejected; asking for full records on the next connection");
                    shared.set_derived_refused(device, true);
                }
                r
            }
            Message::IndexUpdate(idx) => {
                handle_index(
                    &shared,
                    &peer,
                    idx.folder,
                    idx.files,
                    RemoteBatch::Update,
                    None,
                )
                .await
            }
            Message::Request(req) => match peer.serve_slots.clone().acquire_owned().await {
                Ok(slot) => {
                    crate::serve::admit(&shared, &peer, req, slot);
                    Ok(())
                }
                Err(_) => break "serving stopped".to_string(),
            },
            Message::Response(resp) => {
                if let Some(tx) = lock(&peer.pending).remove(&resp.id) {
                    let _ = tx.send(resp);
                }
                Ok(())
            }
            _ => Ok(()),
        };
        first = false;
        match result {
            Ok(()) => {}
            Err(HandleError::Peer(e)) => {
                tracing::warn!(device = %device, error = %e, "peer protocol violation; closing");
                sender.close(&e.to_string());
                break e.to_string();
            }
            Err(HandleError::Local(e)) => {
                // Not the peer's fault, but its index message was not applied. Staying
                // connected would let its next updates carry our record of its sequence past
                // the records lost; the next connection resends from what the index holds.
                tracing::error!(device = %device, error = %e,
                    "local error while applying the peer's index; closing to resync");
                let reason = format!("local error, not a protocol violation: {e}");
                sender.close(&reason);
                break reason;
            }
        }
    };
    peer.serve_queue.stop();
    peer.stop().await;
    shared.peer_disconnected(&peer, reason);
}

/// Sends our current ClusterConfig to the peer and records which folders it lists.
async fn send_cluster_config(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
) -> Result<(), syncd_transport::ConnectionError> {
    let cc = our_cluster_config(shared, peer.device, peer.info.peer_is_syncd()).await;
    let listed = cc
        .folders
        .iter()
        .filter_map(|f| FolderId::new(f.id.clone()).ok())
        .collect();
    peer.sender.send(Message::ClusterConfig(cc)).await?;
    // Queued: an index sender started from now on queues its messages after it.
    *lock(&peer.announced) = listed;
    Ok(())
}

/// Our ClusterConfig for `device`: every folder we share with it, listing both devices, with
/// our index ID and max sequence and what we hold of theirs.
///
/// A syncd peer (`syncd`) is told which of syncd's extensions we accept from it.
pub(crate) async fn our_cluster_config(
    shared: &Arc<Shared>,
    device: DeviceId,
    syncd: bool,
) -> bep::ClusterConfig {
    let folders: Vec<_> = shared
        .folder_ctxs()
        .into_iter()
        .filter(|f| f.shared_with(device))
        .collect();
    let mut out = Vec::new();
    for f in folders {
        let cfg = f.config();
        let index = shared.index.clone();
        let id = cfg.id.clone();
        let me = shared.device_id;
        // Every device sharing the folder is listed (an introducer's peers learn of them),
        // with what we hold of it; us and the peer first.
        let mut listed = vec![me, device];
        listed.extend(
            cfg.devices
                .iter()
                .filter(|d| **d != me && **d != device)
                .copied(),
        );
        let ids = listed.clone();
        let held: Vec<(u64, u64)> = tokio::task::spawn_blocking(move || {
            let mut r = index.read(&id).ok()?;
            if r.local_index_id() == 0 {
                // A folder never written yet (not scanned so far): create it, so that we
                // announce our real index ID. An ID of 0 tells the peer to drop what it
                // holds of us whenever it applies this ClusterConfig again.
                index.write(&id).and_then(|w| w.commit()).ok()?;
                r = index.read(&id).ok()?;
            }
            let mut out = vec![(r.local_index_id(), r.local_sequence())];
            for d in &ids[1..] {
                out.push(
                    r.device(*d)
                        .ok()
                        .flatten()
                        .map_or((0, 0), |s| (s.index_id, s.max_sequence)),
                );
            }
            Some(out)
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        let config = shared.config.snapshot();
        let devices = listed
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let (index_id, max_seq) = held.get(i).copied().unwrap_or((0, 0));
                let dc = config.devices.iter().find(|d| d.id == *id);
                let name = if *id == me {
                    config.device_name.clone()
                } else {
                    dc.map(|d| d.name.clone()).unwrap_or_default()
                };
                let addresses = match dc {
                    Some(d) if *id != me && *id != device => d.addresses.clone(),
                    _ => vec![String::from("dynamic")],
                };
                bep::Device {
                    id: id.as_bytes().to_vec(),
                    name,
                    addresses,
                    max_sequence: i64::try_from(max_seq).unwrap_or(i64::MAX),
                    index_id,
                    introducer: dc.is_some_and(|d| d.introducer),
                    skip_introduction_removals: dc.is_some_and(|d| d.skip_introduction_removals),
                    ..Default::default()
                }
            })
            .collect();
        out.push(bep::Folder {
            id: cfg.id.as_str().to_owned(),
            label: cfg.label.clone(),
            ignore_permissions: cfg.ignore_perms,
            paused: cfg.paused,
            // Only send-only is flagged; receive-only has no flag (Syncthing 1.19.2).
            read_only: cfg.folder_type == crate::config::FolderType::SendOnly,
            devices,
            ..Default::default()
        });
    }
    let refused = shared.derived_refused(device);
    bep::ClusterConfig {
        folders: out,
        secondary: false,
        syncd_features: if syncd && !refused {
            derive::FEATURE_DERIVED
        } else {
            0
        },
    }
}

async fn handle_cluster_config(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    cc: bep::ClusterConfig,
) -> Result<(), PeerError> {
    *lock(&peer.remote_cc) = Some(cc.clone());
    apply_cluster_config(shared, peer, &cc, true).await;
    schedule_offers(shared, peer, &cc);
    Ok(())
}

/// Handles the folders of the peer's last ClusterConfig again (its device settings that
/// decide about offers changed: introducer, auto-accept, ignored folders).
pub(crate) fn reconsider_offers(shared: &Arc<Shared>, peer: &Arc<Peer>) {
    let cc = lock(&peer.remote_cc).clone();
    if let Some(cc) = cc {
        schedule_offers(shared, peer, &cc);
    }
}

/// Handles the folders the peer's ClusterConfig offers (see [`crate::join`]): when it
/// arrives, and again after each local change (a folder added here may now take an
/// introduction, one removed here is offered again). They change the configuration, which
/// waits for other changes: handled beside the receive loop, the latest call only.
fn schedule_offers(shared: &Arc<Shared>, peer: &Arc<Peer>, cc: &bep::ClusterConfig) {
    let offers = crate::join::offers(shared.device_id, peer.device, cc);
    let generation = peer.offers_gen.fetch_add(1, Ordering::SeqCst) + 1;
    let (shared, peer) = (shared.clone(), peer.clone());
    tokio::spawn(async move {
        let _one_at_a_time = peer.offers.lock().await;
        if peer.offers_gen.load(Ordering::SeqCst) == generation && !peer.sender.is_closed() {
            crate::join::handle_offers(shared, peer.device, offers).await;
        }
    });
}

/// Starts and stops the index senders to match `cc` and our folders. `from_peer`: `cc` was
/// just received, so a changed index ID of the peer's own records resets what we hold of
/// them; otherwise (our configuration changed) [`announce_local_change`] has recorded the
/// IDs of folders whose exchange starts now, before our ClusterConfig went out: an index ID
/// the peer announced earlier is not news, and resetting on it here would drop records the
/// peer may already have sent, which it never sends again.
async fn apply_cluster_config(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    cc: &bep::ClusterConfig,
    from_peer: bool,
) {
    let me = shared.device_id;
    // Each ClusterConfig replaces the peer's view of folders: stop sending the index of a
    // folder it no longer lists (it would take an Index for it as a protocol violation).
    lock(&peer.senders).retain(|folder, h| {
        let listed = cc.folders.iter().any(|f| f.id == folder.as_str());
        if !listed {
            h.abort();
        }
        listed
    });
    for f in &cc.folders {
        let Ok(folder) = FolderId::new(f.id.clone()) else {
            continue;
        };
        let ctx = shared.folder_ctx(&folder);
        let Some(ctx) = ctx.filter(|c| c.shared_with(peer.device)) else {
            if let Some(h) = lock(&peer.senders).remove(&folder) {
                h.abort();
            }
            continue;
        };
        if f.paused || ctx.config().paused {
            if let Some(h) = lock(&peer.senders).remove(&folder) {
                h.abort();
            }
            continue;
        }
        let running = lock(&peer.senders)
            .get(&folder)
            .is_some_and(|h| !h.is_finished());
        // Their index ID for their own records: a change (or 0) resets what we hold of them.
        // After a local change this was done before our ClusterConfig went out (see
        // [`announce_local_change`]).
        if from_peer {
            record_index_id(shared, peer, &folder, f).await;
        }
        if running {
            continue;
        }
        if !lock(&peer.announced).contains(&folder) {
            // Our ClusterConfig listing it is not sent yet: the local change that adds it
            // sends it, then starts this sender (see [`announce_local_change`]).
            continue;
        }
        // Where to start sending ours: their view of our index (delta index).
        let start = f
            .devices
            .iter()
            .find(|d| d.id == me.as_bytes())
            .map(|d| (d.index_id, u64::try_from(d.max_sequence).unwrap_or(0)))
            .unwrap_or((0, 0));
        let mut senders = lock(&peer.senders);
        if senders.get(&folder).is_some_and(|h| !h.is_finished()) {
            continue;
        }
        let task = tokio::spawn(index_sender(
            shared.clone(),
            peer.clone(),
            ctx.id.clone(),
            start,
        ));
        senders.insert(folder.clone(), task);
        let _ = ctx.tx.send(FolderInput::PeerChanged);
    }
}

/// Records the index ID the peer announces for its own records of `folder` (entry `f` of
/// its ClusterConfig): a change, or 0, drops what we hold of them.
async fn record_index_id(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    folder: &FolderId,
    f: &bep::Folder,
) {
    let Some(theirs) = f.devices.iter().find(|d| d.id == peer.device.as_bytes()) else {
        return;
    };
    let index = shared.index.clone();
    let (fid, dev, index_id) = (folder.clone(), peer.device, theirs.index_id);
    let res = tokio::task::spawn_blocking(move || -> Result<bool, syncd_index::IndexError> {
        let mut w = index.write(&fid)?;
        let dropped = w.set_remote_index_id(dev, index_id)?;
        w.commit()?;
        Ok(dropped)
    })
    .await;
    // A local fault: the peer's index may then be applied over stale records of an older
    // index ID; say so (the next ClusterConfig tries again).
    match res {
        Ok(Ok(dropped)) => {
            if dropped {
                tracing::debug!(device = %peer.device, %folder, index_id,
                    "new index ID of the peer: what we held of it is dropped");
            }
        }
        Ok(Err(e)) => tracing::error!(device = %peer.device, %folder, error = %e,
            "local index error: cannot record the peer's index ID"),
        Err(e) => tracing::error!(device = %peer.device, %folder, error = %e,
            "cannot record the peer's index ID"),
    }
}

/// Tells the peer about a local folder change (added, removed, paused, resumed, shared with
/// other devices) and applies its last ClusterConfig again, so that index senders start or
/// stop to match. In this order:
///
/// 1. for each folder whose exchange starts now, the index ID the peer announced earlier is
///    recorded (dropping stale records of an older ID);
/// 2. our new ClusterConfig is queued: the peer starts sending its index only after it;
/// 3. our index senders start (their messages follow our ClusterConfig on the wire).
///
/// Recording the ID after step 2 would race with the peer's answer: its first Index could
/// be applied under the old ID and then dropped, and the peer never sends it again.
pub(crate) async fn announce_local_change(shared: &Arc<Shared>, peer: &Arc<Peer>) {
    let _in_order = peer.announce.lock().await;
    let cc = lock(&peer.remote_cc).clone();
    if let Some(cc) = &cc {
        for f in &cc.folders {
            let Ok(folder) = FolderId::new(f.id.clone()) else {
                continue;
            };
            let shared_now = shared
                .folder_ctx(&folder)
                .is_some_and(|c| c.shared_with(peer.device) && !c.config().paused);
            let running = lock(&peer.senders)
                .get(&folder)
                .is_some_and(|h| !h.is_finished());
            let starts = shared_now && !f.paused && !running;
            if starts {
                record_index_id(shared, peer, &folder, f).await;
            }
        }
    }
    if send_cluster_config(shared, peer).await.is_err() {
        return;
    }
    // The peer's latest ClusterConfig: one that arrived while ours was queued was applied
    // by the receive loop before our folder was announced, so that loop started no sender
    // for the folder; this starts it (and the older one above would not list the folder).
    let cc = lock(&peer.remote_cc).clone();
    if let Some(cc) = cc {
        apply_cluster_config(shared, peer, &cc, false).await;
        schedule_offers(shared, peer, &cc);
    }
}

/// Applies an Index or IndexUpdate: its FileInfos, validated, and the records derived from
/// what we hold of the peer (syncd's extension, see [`derive`]), rebuilt just before they are
/// applied (only this connection writes the peer's records).
async fn handle_index(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    folder: String,
    files: Vec<bep::FileInfo>,
    batch: RemoteBatch,
    derived: Option<(Vec<bep::SyncdDerived>, u64)>,
) -> Result<(), HandleError> {
    let Some(ctx) = shared_folder(shared, peer, folder)? else {
        return Ok(());
    };
    let mut records = Vec::with_capacity(files.len());
    for f in files {
        records.push(convert::wire_to_record(f)?);
    }
    apply_remote_records(shared, peer, &ctx, records, batch, derived).await
}

/// The folder an Index names, if shared with the peer and not paused (`None`: ignore it).
fn shared_folder(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    folder: String,
) -> Result<Option<Arc<crate::folder::FolderCtx>>, PeerError> {
    let fid = FolderId::new(folder.clone()).map_err(|_| PeerError::UnsharedFolder {
        folder: folder.clone(),
    })?;
    let ctx = shared
        .folder_ctx(&fid)
        .filter(|c| c.shared_with(peer.device))
        .ok_or(PeerError::UnsharedFolder { folder })?;
    Ok((!ctx.config().paused).then_some(ctx))
}

async fn apply_remote_records(
    shared: &Arc<Shared>,
    peer: &Arc<Peer>,
    ctx: &Arc<crate::folder::FolderCtx>,
    mut records: Vec<FileRecord>,
    batch: RemoteBatch,
    derived: Option<(Vec<bep::SyncdDerived>, u64)>,
) -> Result<(), HandleError> {
    let index = shared.index.clone();
    let dev = peer.device;
    let fid = ctx.id.clone();
    let outcome =
        tokio::task::spawn_blocking(move || -> Result<(bool, usize, usize, u64), HandleError> {
            let index_err = |e: syncd_index::IndexError| {
                HandleError::Local(LocalError::Index {
                    folder: fid.clone(),
                    source: e,
                })
            };
            let mut n_derived = 0;
            if let Some((groups, digest)) = derived {
                let r = index.read(&fid).map_err(index_err)?;
                let mut built = derive::expand(&groups, digest, &r, dev).map_err(|e| match e {
                    derive::DeriveError::Index(e) => index_err(e),
                    e => PeerError::Derived(e.to_string()).into(),
                })?;
                n_derived = built.len();
                records.append(&mut built);
            }
            let large = records.iter().any(crate::puller::announces_large);
            let items = records.len();
            let mut w = index.write(&fid).map_err(index_err)?;
            w.apply_remote(dev, batch, records).map_err(index_err)?;
            w.commit().map_err(index_err)?;
            let r = index.read(&fid).map_err(index_err)?;
            let seq = r
                .device(dev)
                .map_err(index_err)?
                .map_or(0, |s| s.max_sequence);
            Ok((large, items, n_derived, seq))
        })
        .await
        .map_err(|e| LocalError::Worker {
            folder: ctx.id.clone(),
            message: e.to_string(),
        })??;
    let (large, items, n_derived, seq) = outcome;
    tracing::debug!(device = %peer.device, folder = %ctx.id, items, derived = n_derived,
        sequence = seq, "index message applied");
    peer.derived_in
        .fetch_add(n_derived as u64, Ordering::Relaxed);
    if large {
        ctx.large_announced.fetch_add(1, Ordering::SeqCst);
    }
    shared.events.emit(Event::RemoteIndexUpdated {
        device: peer.device,
        folder: ctx.id.clone(),
        items: items as u64,
        sequence: seq,
    });
    let _ = ctx.tx.send(FolderInput::RemoteIndex);
    Ok(())
}

/// Sends our records of `folder` to `peer`: a full Index first (unless the peer already holds
/// our index up to some sequence: delta), then IndexUpdates as our sequence grows.
async fn index_sender(shared: Arc<Shared>, peer: Arc<Peer>, folder: FolderId, start: (u64, u64)) {
    let Some(ctx) = shared.folder_ctx(&folder) else {
        return;
    };
    let mut seq_rx = ctx.local_seq.subscribe();
    let index = shared.index.clone();
    let f2 = folder.clone();
    let our_index_id =
        tokio::task::spawn_blocking(move || index.read(&f2).map(|r| r.local_index_id()))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
    let (mut sent, mut full) = if start.0 == our_index_id && our_index_id != 0 {
        (start.1, false)
    } else {
        (0, true)
    };
    tracing::debug!(device = %peer.device, %folder, our_index_id, their_view = ?start, full, from = sent,
        "index sender starts");
    let with_chunks = peer.info.peer_is_syncd();
    let derived_ok = with_chunks
        && lock(&peer.remote_cc)
            .as_ref()
            .is_some_and(|cc| cc.syncd_features & derive::FEATURE_DERIVED != 0);
    let local = shared.device_id;
    loop {
        seq_rx.borrow_and_update();
        let index = shared.index.clone();
        let f2 = folder.clone();
        let derive = derived_ok && !full;
        let window = tokio::task::spawn_blocking(move || {
            let r = index.read(&f2)?;
            let mut batch = r.local_batch(sent, INDEX_BATCH)?;
            if !derive {
                return Ok(derive::Encoded::plain(batch));
            }
            // A directory moved here is its new names, then its deletions: read far enough
            // to have both in one window. Only for a window with our own changes or
            // deletions: one that mirrors a peer's new files (an initial sync) cannot be a
            // move of ours, and stays small.
            let me = local.short();
            if batch.len() == INDEX_BATCH && batch.iter().any(|r| r.deleted || r.modified_by == me)
            {
                let last = batch.last().map_or(sent, |r| r.sequence);
                batch.extend(r.local_batch(last, MOVE_WINDOW - INDEX_BATCH)?);
            }
            derive::encode(batch, sent, &r, local)
        })
        .await;
        let window = match window {
            Ok(Ok(b)) => b,
            other => {
                tracing::warn!(device = %peer.device, %folder, error = ?other.err(),
                    "index sender stops: cannot read the index");
                return;
            }
        };
        if window.plain.is_empty() && window.groups.is_empty() && !full {
            if seq_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let derive::Encoded {
            plain,
            groups,
            digest,
            derived,
            last,
        } = window;
        if !groups.is_empty() {
            // One message: its records' sequences interleave, and the peer's max sequence
            // must never pass a record it has not received.
            let prev = sent;
            let n_plain = plain.len();
            sent = last.max(sent);
            let files = plain
                .iter()
                .map(|r| convert::record_to_wire(r, with_chunks))
                .collect();
            let msg = Message::IndexUpdate(bep::IndexUpdate {
                folder: folder.as_str().to_owned(),
                files,
                last_sequence: i64::try_from(sent).unwrap_or(i64::MAX),
                prev_sequence: i64::try_from(prev).unwrap_or(i64::MAX),
                syncd_derived: groups,
                syncd_digest: digest,
            });
            tracing::debug!(device = %peer.device, folder = %folder, derived, plain = n_plain,
                sequence = sent, "index update with derived records");
            peer.derived_out
                .fetch_add(derived as u64, Ordering::Relaxed);
            if peer.sender.send(msg).await.is_err() {
                return;
            }
            continue;
        }
        for chunk in plain.chunks(INDEX_BATCH) {
            let prev = sent;
            if let Some(last) = chunk.last() {
                sent = last.sequence;
            }
            let files: Vec<bep::FileInfo> = chunk
                .iter()
                .map(|r| convert::record_to_wire(r, with_chunks))
                .collect();
            let last_sequence = i64::try_from(sent).unwrap_or(i64::MAX);
            tracing::debug!(device = %peer.device, folder = %folder, records = chunk.len(),
                deletions = chunk.iter().filter(|r| r.deleted).count(), full, sequence = sent,
                first = chunk.first().map(|r| format!("{} {:?} by {:?}", r.name, r.version, r.modified_by)),
                "index message");
            let msg = if full {
                Message::Index(bep::Index {
                    folder: folder.as_str().to_owned(),
                    files,
                    last_sequence,
                })
            } else {
                Message::IndexUpdate(bep::IndexUpdate {
                    folder: folder.as_str().to_owned(),
                    files,
                    last_sequence,
                    prev_sequence: i64::try_from(prev).unwrap_or(i64::MAX),
                    ..Default::default()
                })
            };
            full = false;
            if peer.sender.send(msg).await.is_err() {
                return;
            }
        }
        if full {
            // An empty folder still gets its (empty) full Index.
            full = false;
            let msg = Message::Index(bep::Index {
                folder: folder.as_str().to_owned(),
                files: Vec::new(),
                last_sequence: i64::try_from(sent).unwrap_or(i64::MAX),
            });
            if peer.sender.send(msg).await.is_err() {
                return;
            }
        }
    }
}

/// `tcp-client` when we dialled, `tcp-server` when the peer did.
pub(crate) fn conn_type(info: &ConnectionInfo) -> &'static str {
    match info.direction {
        Direction::Outbound => "tcp-client",
        _ => "tcp-server",
    }
}

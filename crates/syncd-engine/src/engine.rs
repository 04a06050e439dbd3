//! `Engine::start` and the cloneable `EngineHandle`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use syncd_index::{Index, IndexOptions};
use syncd_transport::{ConnectError, Direction, Endpoint, EndpointConfig, Identity, PeerAddress};
use syncd_types::{DeviceId, FolderId, RelPath};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, broadcast, oneshot};

use crate::config::{ConfigCell, DeviceConfig, EngineConfig, FolderConfig};
use crate::error::{EngineError, WaitError};
use crate::event::{Event, EventBus};
use crate::folder::{self, FolderCtx, FolderInput};
use crate::fsutil;
use crate::peer::{self, Peer};
use crate::registry::{FolderSlot, Registry};
use crate::status::{
    Completion, ConnectionStatus, Counts, FileDetails, FilePage, FileSummary, FolderState,
    FolderStatus, VerifyReport,
};

/// The index file inside the home directory.
pub const INDEX_FILE: &str = "index-v1.redb";
/// Bytes of block data requested from peers and not yet received, or (for a large file)
/// received and not yet written, per engine.
const PULL_BYTES_IN_FLIGHT: usize = 32 * 1024 * 1024;
/// The same for the pieces of small files, a budget of their own: they never wait behind the
/// requests of a large file, so small files are pulled beside large ones (see the puller).
const SMALL_PULL_BYTES_IN_FLIGHT: usize = 8 * 1024 * 1024;

/// How long a folder change waits for the folder's actor to take it (see
/// [`EngineHandle::add_folder`]).
const RECONFIGURE_ANSWER: Duration = Duration::from_millis(500);
/// How long a folder change waits for the peers to be told (see
/// [`Shared::announce_folder_change`]).
const ANNOUNCE_WAIT: Duration = Duration::from_secs(2);

/// The engine's entry point.
#[derive(Debug)]
pub struct Engine;

/// Loads the TLS identity in `home` (creating `cert.pem`/`key.pem` on first use) and returns
/// its device ID, without starting anything: what `syncd --device-id` prints, and how a
/// program learns the ID of an engine before starting it.
pub fn device_id_for_home(home: &Path) -> Result<DeviceId, EngineError> {
    std::fs::create_dir_all(home).map_err(|source| EngineError::Io {
        context: format!("create home {}", home.display()),
        source,
    })?;
    Identity::load_or_generate(home)
        .map(|i| i.device_id())
        .map_err(|e| EngineError::Identity {
            home: home.to_path_buf(),
            message: e.to_string(),
        })
}

/// A listen address: `tcp://<ip>:<port>`, or `tcp://<host name>:<port>` (resolved; the
/// name is what discovery announces). Returns the socket address and the host as written.
fn parse_listen(s: &str) -> Result<(SocketAddr, String), EngineError> {
    let bad = |m: &str| EngineError::Listen {
        address: s.to_owned(),
        message: m.to_owned(),
    };
    let rest = s
        .strip_prefix("tcp://")
        .or_else(|| s.strip_prefix("tcp4://"))
        .or_else(|| s.strip_prefix("tcp6://"))
        .unwrap_or(s);
    if let Ok(addr) = rest.parse::<SocketAddr>() {
        return Ok((addr, addr.ip().to_string()));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .filter(|(h, _)| !h.is_empty() && !h.contains(':'))
        .ok_or_else(|| bad("expected tcp://<host>:<port>"))?;
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| bad("host name does not resolve"))?;
    Ok((addr, host.to_owned()))
}

impl Engine {
    /// Loads or creates the identity in `config.home`, opens the index, starts listeners,
    /// dialers and folders on the caller's tokio runtime.
    pub async fn start(config: EngineConfig) -> Result<EngineHandle, EngineError> {
        std::fs::create_dir_all(&config.home).map_err(|source| EngineError::Io {
            context: format!("create home {}", config.home.display()),
            source,
        })?;
        let identity =
            Identity::load_or_generate(&config.home).map_err(|e| EngineError::Identity {
                home: config.home.clone(),
                message: e.to_string(),
            })?;
        let device_id = identity.device_id();
        let index = open_index(&config.home, device_id, config.index_cache_bytes)?;
        let mut ep = EndpointConfig::new(identity, config.device_name.clone());
        if let Some(l) = config.listen.first() {
            let (addr, host) = parse_listen(l)?;
            ep.listen = Some(addr);
            ep.listen_host = Some(host);
        } else {
            ep.listen = None;
        }
        ep.discovery = config.discovery.clone();
        ep.devices = endpoint_devices(device_id, config.devices.iter());
        let (endpoint, mut ep_events) =
            Endpoint::start(ep).await.map_err(|e| EngineError::Listen {
                address: config.listen.join(","),
                message: e.to_string(),
            })?;
        let listen_addrs = endpoint.local_addr().into_iter().collect();
        let pending = crate::pending::Pending::load(&index);
        let devices = config
            .devices
            .iter()
            .filter(|d| d.id != device_id)
            .map(|d| (d.id, disconnected_status(d)))
            .collect();
        let shared = Arc::new(Shared {
            device_id,
            config: Arc::new(ConfigCell::new(config.clone())),
            ops: tokio::sync::Mutex::new(()),
            events: EventBus::new(),
            listen_addrs,
            index: Arc::new(index),
            endpoint,
            state: Mutex::new(Registry::new(devices, pending)),
            pending_changed: tokio::sync::Notify::new(),
            pull_budget: Arc::new(Semaphore::new(PULL_BYTES_IN_FLIGHT)),
            small_pull_budget: Arc::new(Semaphore::new(SMALL_PULL_BYTES_IN_FLIGHT)),
            disk_events: std::sync::atomic::AtomicBool::new(false),
        });
        for f in config.folders {
            shared.spawn_folder(f);
        }
        let s2 = shared.clone();
        let conn_task = tokio::spawn(async move {
            while let Some(ev) = ep_events.recv().await {
                match ev {
                    syncd_transport::Event::Connected(conn) => {
                        let paused = s2.config.device(conn.info.device).is_none_or(|d| d.paused);
                        if paused {
                            conn.sender.close("device paused");
                            continue;
                        }
                        let task = tokio::spawn(peer::run(s2.clone(), conn));
                        s2.state(|r| {
                            r.peer_tasks.retain(|t| !t.is_finished());
                            r.peer_tasks.push(task);
                        });
                    }
                    // A configured but paused device is refused by the endpoint too; it is
                    // not a new device to offer the user.
                    syncd_transport::Event::UnknownDevice(u) => s2.unknown_device(u),
                    syncd_transport::Event::DeviceDiscovered { device, addresses } => {
                        s2.events.emit(Event::DeviceDiscovered {
                            device,
                            addrs: addresses,
                        });
                    }
                    _ => {}
                }
            }
        });
        shared.state(|r| r.tasks.push(conn_task));
        let s3 = shared.clone();
        let flusher = tokio::spawn(async move {
            loop {
                s3.pending_changed.notified().await;
                tokio::time::sleep(crate::pending::FLUSH_DELAY).await;
                s3.flush_pending().await;
            }
        });
        shared.state(|r| r.tasks.push(flusher));
        let cleaner = tokio::spawn(clean_versions(shared.clone()));
        shared.state(|r| r.tasks.push(cleaner));
        Ok(EngineHandle { shared })
    }
}

/// How often the versions cleaner looks whether a folder's `cleanupIntervalS` has passed
/// (a look is a read of the configuration snapshot: nothing touches the disk until then).
const VERSIONS_CLEAN_TICK: Duration = Duration::from_secs(1);

/// Runs each versioned folder's cleanup (cleanout by days, staggered thinning) every
/// `cleanupIntervalS` (0: never), the first one an interval after the folder was seen, as
/// Syncthing does. Reads the configuration on every tick, so runtime changes apply.
async fn clean_versions(shared: Arc<Shared>) {
    let mut last: std::collections::HashMap<FolderId, tokio::time::Instant> =
        std::collections::HashMap::new();
    loop {
        tokio::time::sleep(VERSIONS_CLEAN_TICK).await;
        let now = tokio::time::Instant::now();
        let cfg = shared.config.snapshot();
        last.retain(|id, _| cfg.folders.iter().any(|f| &f.id == id));
        for f in cfg
            .folders
            .iter()
            .filter(|f| f.versioning.enabled() && !f.paused)
        {
            let every = Duration::from_secs(u64::from(f.versioning.cleanup_interval_s));
            let since = *last.entry(f.id.clone()).or_insert(now);
            if every.is_zero() || now.duration_since(since) < every {
                continue;
            }
            last.insert(f.id.clone(), now);
            let (root, v, id) = (f.path.clone(), f.versioning.clone(), f.id.clone());
            let res = tokio::task::spawn_blocking(move || {
                match crate::versioner::Versioner::new(&root, &v) {
                    Ok(Some(v)) => v
                        .clean(std::time::SystemTime::now())
                        .map_err(|e| e.to_string()),
                    Ok(None) => Ok(0),
                    Err(e) => Err(e.to_string()),
                }
            })
            .await;
            match res {
                Ok(Ok(0)) => {}
                Ok(Ok(n)) => tracing::info!(folder = %id, removed = n, "cleaned up old versions"),
                Ok(Err(e)) => tracing::warn!(folder = %id, error = %e, "cleaning up versions"),
                Err(e) => tracing::warn!(folder = %id, error = %e, "cleaning up versions"),
            }
        }
    }
}

/// The transport's view of our devices: every configured peer that is not paused (a paused
/// device is neither dialed nor accepted), with its parsed addresses.
fn endpoint_devices<'a>(
    me: DeviceId,
    devices: impl Iterator<Item = &'a DeviceConfig>,
) -> Vec<syncd_transport::DeviceConfig> {
    devices
        .filter(|d| d.id != me && !d.paused)
        .map(|d| syncd_transport::DeviceConfig {
            id: d.id,
            addresses: d
                .addresses
                .iter()
                .filter_map(|a| PeerAddress::parse(a).ok())
                .collect(),
            compression: d.compression,
        })
        .collect()
}

/// Locks a std mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// State shared by the handle and every actor.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) device_id: DeviceId,
    /// The one copy of the configuration (see [`ConfigCell`]).
    pub(crate) config: Arc<ConfigCell>,
    /// Held by each [`EngineHandle`] method that changes the configuration, for its whole
    /// run: changes apply one at a time, each to the result of the one before.
    ops: tokio::sync::Mutex<()>,
    pub(crate) events: EventBus,
    pub(crate) listen_addrs: Vec<SocketAddr>,
    pub(crate) index: Arc<Index>,
    pub(crate) endpoint: Endpoint,
    /// The running parts (see [`Registry`]): only through [`Shared::state`].
    state: Mutex<Registry>,
    pub(crate) pull_budget: Arc<Semaphore>,
    pub(crate) small_pull_budget: Arc<Semaphore>,
    /// Whether [`Event::DiskChanged`] is emitted (see [`EngineHandle::enable_disk_events`]).
    pub(crate) disk_events: std::sync::atomic::AtomicBool,
    /// Woken when a pending entry changed: the flusher writes them to the index.
    pub(crate) pending_changed: tokio::sync::Notify,
}

impl Shared {
    /// Runs `f` on the engine's running parts. The closure cannot await: the lock is never
    /// held across an `.await`, and every such section is short.
    pub(crate) fn state<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        f(&mut lock(&self.state))
    }

    fn spawn_folder(self: &Arc<Self>, f: FolderConfig) {
        let (ctx, rx) = FolderCtx::new(&f, self.config.clone());
        let task = tokio::spawn(folder::run(self.clone(), ctx.clone(), rx));
        let old = self.state(|r| r.folders.insert(ctx.id.clone(), (ctx, task)));
        if let Some((old, _)) = old {
            let _ = old.tx.send(FolderInput::Stop);
        }
    }

    pub(crate) fn folder_ctx(&self, id: &FolderId) -> Option<Arc<FolderCtx>> {
        self.state(|r| r.folders.get(id).map(|(c, _)| c.clone()))
    }

    pub(crate) fn folder_ctxs(&self) -> Vec<Arc<FolderCtx>> {
        self.state(|r| r.folders.values().map(|(c, _)| c.clone()).collect())
    }

    pub(crate) fn peer(&self, device: DeviceId) -> Option<Arc<Peer>> {
        self.state(|r| r.peer(device))
    }

    /// Whether a derived-records refusal of `device` stands (see [`Registry::derived_refused`]).
    pub(crate) fn derived_refused(&self, device: DeviceId) -> bool {
        self.state(|r| r.derived_refused.contains(&device))
    }

    /// Records (`true`) or lifts a derived-records refusal of `device`.
    pub(crate) fn set_derived_refused(&self, device: DeviceId, refused: bool) {
        self.state(|r| {
            if refused {
                r.derived_refused.insert(device);
            } else {
                r.derived_refused.remove(&device);
            }
        });
    }

    pub(crate) fn request_rescan(&self, folder: &FolderId, paths: Vec<RelPath>) {
        if let Some(c) = self.folder_ctx(folder) {
            c.queue_rescan(paths);
        }
    }

    pub(crate) fn peer_connected(self: &Arc<Self>, peer: &Arc<Peer>) {
        let info = &peer.info;
        // Syncthing 1.x peers resolve delete-vs-edit with the 1.x rule; so must we, for every
        // folder shared with one (spec: the rule is 1.x while any sharing device runs 1.x,
        // else 2.x).
        let v1 =
            info.hello.client_name == "syncthing" && info.hello.client_version.starts_with("v1.");
        self.state(|r| {
            r.peers.insert(peer.device, peer.clone());
            r.connected_since_start.insert(peer.device);
            r.peer_is_v1.insert(peer.device, v1);
            if let Some(st) = r.devices.get_mut(&peer.device) {
                st.connected = true;
                st.address = Some(info.remote_addr);
                st.client_name = info.hello.client_name.clone();
                st.client_version = info.hello.client_version.clone();
                st.conn_type = peer::conn_type(info);
                st.crypto = String::from("TLS1.3");
                st.started_at = Some(info.started_at);
            }
        });
        self.events.emit(Event::DeviceConnected {
            device: peer.device,
            device_name: info.hello.device_name.clone(),
            client_name: info.hello.client_name.clone(),
            client_version: info.hello.client_version.clone(),
            addr: info.remote_addr,
            conn_type: peer::conn_type(info),
        });
        for ctx in self
            .folder_ctxs()
            .into_iter()
            .filter(|c| c.shared_with(peer.device))
        {
            self.update_delete_rule(&ctx);
        }
    }

    /// Sets `ctx`'s delete rule from what the devices sharing it announced: 1.x as soon as one
    /// of them runs Syncthing 1.x; 2.x once every one has connected since start and none does.
    /// While some device has not been heard from, the folder keeps its rule (the index's
    /// default for a new folder is 1.x), so a cluster never flips to 2.x behind the back of a
    /// 1.x device that is offline.
    fn update_delete_rule(&self, ctx: &Arc<FolderCtx>) {
        let devices: Vec<DeviceId> = ctx
            .config()
            .devices
            .into_iter()
            .filter(|d| *d != self.device_id)
            .collect();
        let rule = self.state(|r| {
            let seen = &r.peer_is_v1;
            if devices.iter().any(|d| seen.get(d) == Some(&true)) {
                Some(syncd_conflict::DeleteRule::V1)
            } else if !devices.is_empty() && devices.iter().all(|d| seen.contains_key(d)) {
                Some(syncd_conflict::DeleteRule::V2)
            } else {
                None
            }
        });
        let Some(rule) = rule else { return };
        let (index, id, tx) = (self.index.clone(), ctx.id.clone(), ctx.tx.clone());
        tokio::task::spawn_blocking(move || {
            if index.read(&id).is_ok_and(|r| r.delete_rule() == rule) {
                return;
            }
            let res = index.write(&id).and_then(|mut w| {
                w.set_delete_rule(rule)?;
                w.commit()
            });
            match res {
                // The need set may have changed under the new rule.
                Ok(()) => {
                    let _ = tx.send(FolderInput::RemoteIndex);
                }
                Err(e) => tracing::warn!(folder = %id, error = %e, "cannot set the delete rule"),
            }
        });
    }

    /// Tells the transport which devices to accept and dial (after device changes).
    fn sync_endpoint_devices(&self) {
        let config = self.config.snapshot();
        self.endpoint
            .set_devices(endpoint_devices(self.device_id, config.devices.iter()));
    }

    /// Tells every connected peer about a local folder change (added, removed, paused,
    /// resumed, shared differently) and applies its last ClusterConfig again: index senders
    /// start or stop to match. Each peer gets its own task, in order per peer (see
    /// [`peer::announce_local_change`]); a stalled peer does not hold up the change.
    async fn announce_folder_change(self: &Arc<Self>) {
        let peers: Vec<Arc<Peer>> = self.state(|r| r.peers.values().cloned().collect());
        let mut tasks = Vec::with_capacity(peers.len());
        for p in peers {
            let s = self.clone();
            tasks.push(tokio::spawn(async move {
                peer::announce_local_change(&s, &p).await;
            }));
        }
        // Normally quick (index IDs recorded, our ClusterConfig queued, senders started);
        // a peer whose send queue is full is left to finish in the background.
        for t in tasks {
            let _ = tokio::time::timeout(ANNOUNCE_WAIT, t).await;
        }
    }

    pub(crate) fn peer_disconnected(&self, peer: &Arc<Peer>, reason: String) {
        let cfg = self.config.device(peer.device);
        let totals = peer.info.counters.totals();
        let current = self.state(|r| {
            // A newer connection of the same device may have replaced this one.
            let this_one = r
                .peers
                .get(&peer.device)
                .is_some_and(|p| p.info.id == peer.info.id);
            if !this_one {
                return false;
            }
            r.peers.remove(&peer.device);
            if let Some(cfg) = &cfg
                && let Some(st) = r.devices.get_mut(&peer.device)
            {
                *st = ConnectionStatus {
                    in_bytes_total: totals.in_bytes,
                    out_bytes_total: totals.out_bytes,
                    derived_records_in: 0,
                    derived_records_out: 0,
                    ..disconnected_status(cfg)
                };
            }
            true
        });
        if !current {
            return;
        }
        self.events.emit(Event::DeviceDisconnected {
            device: peer.device,
            error: reason,
        });
        for ctx in self.folder_ctxs() {
            if ctx.shared_with(peer.device) {
                let _ = ctx.tx.send(FolderInput::PeerChanged);
            }
        }
    }
}

/// A cloneable handle on a running engine: status, events, commands.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub(crate) shared: Arc<Shared>,
}

fn counts(c: &syncd_index::Counts) -> Counts {
    Counts {
        files: c.files,
        directories: c.directories,
        symlinks: c.symlinks,
        deleted: c.deleted,
        bytes: c.bytes,
    }
}

impl EngineHandle {
    /// Our device ID.
    pub fn device_id(&self) -> DeviceId {
        self.shared.device_id
    }

    /// The bound listen addresses (port 0 resolved).
    pub fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.shared.listen_addrs.clone()
    }

    /// The running discovery (`None` when every finder is off): its status per finder,
    /// its cache, what we announce, and lookups.
    pub fn discovery(&self) -> Option<syncd_transport::Discovery> {
        self.shared.endpoint.discovery().cloned()
    }

    /// Connects a configured device over a byte stream the embedder brings (a relay, a tunnel,
    /// an in-memory pipe): TLS with the same device-ID authentication as over TCP, Hello, then
    /// the connection is the device's like a dialed or accepted one. `direction` is our TLS
    /// role — the two ends of one stream take opposite ones; `expected` is the device meant to
    /// answer, if known. Returns once the connection is handed to the engine, or why it was not
    /// established (an unknown or paused device is refused). When the stream ends, nothing
    /// reconnects it: the engine's dialers only know TCP addresses.
    pub async fn attach_stream<S>(
        &self,
        io: S,
        direction: Direction,
        expected: Option<DeviceId>,
    ) -> Result<(), ConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let remote = SocketAddr::from(([0, 0, 0, 0], 0));
        self.shared
            .endpoint
            .connect_stream(io, direction, expected, remote)
            .await
            .map(|_| ())
    }

    /// The current configuration, including runtime changes.
    pub fn config(&self) -> EngineConfig {
        EngineConfig::clone(&self.shared.config.snapshot())
    }

    /// IDs of every configured folder.
    pub fn folder_ids(&self) -> Vec<FolderId> {
        self.shared.state(|r| r.folders.keys().cloned().collect())
    }

    /// A folder's status, or `None` if it is not configured. Reads the index (a short
    /// blocking read).
    pub fn folder_status(&self, folder: &FolderId) -> Option<FolderStatus> {
        let ctx = self.shared.folder_ctx(folder)?;
        let rt = lock(&ctx.runtime).clone();
        let mut st = FolderStatus {
            state: rt.state,
            state_changed: rt.state_changed,
            error: rt.error,
            global: Counts::default(),
            local: Counts::default(),
            need: Counts::default(),
            in_sync_files: 0,
            in_sync_bytes: 0,
            sequence: 0,
            pull_errors: rt.errors.len(),
            errors: ctx.scan_errors().into_iter().chain(rt.errors).collect(),
            remote_sequence: BTreeMap::new(),
            watch_error: rt.watch_error,
            damaged_blocks_refused: ctx.damaged_refused.load(Ordering::Relaxed),
            receive_only_changed: None,
        };
        for (name, blocks) in lock(&ctx.damaged).iter() {
            st.errors.push(crate::status::FileError {
                path: name.as_str().to_owned(),
                error: damaged_message(blocks),
            });
        }
        let receive_only = ctx.config().folder_type == crate::config::FolderType::ReceiveOnly;
        if let Ok(r) = self.shared.index.read(folder) {
            if receive_only {
                st.receive_only_changed = Some(Counts::default());
            }
            if let Ok(c) = r.counts() {
                if receive_only {
                    st.receive_only_changed = Some(counts(&c.receive_only));
                }
                st.global = counts(&c.global);
                st.local = counts(&c.local);
                st.need = counts(&c.need);
                st.in_sync_files = c.global.files.saturating_sub(c.need.files);
                st.in_sync_bytes = c.global.bytes.saturating_sub(c.need.bytes);
            }
            st.sequence = r.local_sequence();
            for d in r.devices() {
                if d == self.shared.device_id {
                    continue;
                }
                if let Ok(Some(s)) = r.device(d) {
                    st.remote_sequence.insert(d, s.max_sequence);
                }
            }
        }
        Some(st)
    }

    /// Every configured peer, connected or not.
    pub fn connections(&self) -> Vec<ConnectionStatus> {
        let (peers, devices) = self.shared.state(|r| (r.peers.clone(), r.devices.clone()));
        devices
            .values()
            .map(|d| {
                let mut s = d.clone();
                if let Some(p) = peers.get(&d.device) {
                    let t = p.info.counters.totals();
                    s.in_bytes_total = t.in_bytes;
                    s.out_bytes_total = t.out_bytes;
                    s.derived_records_in = p.derived_in.load(Ordering::Relaxed);
                    s.derived_records_out = p.derived_out.load(Ordering::Relaxed);
                }
                s
            })
            .collect()
    }

    /// Completion of `folder` on `device` (`None` = the local device).
    pub fn completion(&self, folder: &FolderId, device: Option<DeviceId>) -> Option<Completion> {
        let ctx = self.shared.folder_ctx(folder)?;
        let r = self.shared.index.read(folder).ok()?;
        let c = r.counts().ok()?;
        let (need, sequence, remote_state) = match device {
            None => (c.need, r.local_sequence(), "valid"),
            Some(d) if !ctx.shared_with(d) => (syncd_index::Counts::default(), 0, "notSharing"),
            Some(d) => {
                let st = r.device(d).ok().flatten();
                let state = match self.shared.peer(d) {
                    Some(p) if p.shares(folder) => "valid",
                    Some(_) => "paused",
                    None => "unknown",
                };
                match st {
                    Some(s) => (s.need, s.max_sequence, state),
                    None => (c.global, 0, state),
                }
            }
        };
        let global_items = c.global.files + c.global.directories + c.global.symlinks;
        let need_items = need.files + need.directories + need.symlinks;
        Some(Completion {
            completion: Completion::compute(c.global.bytes, need.bytes, need_items, need.deleted),
            global_bytes: c.global.bytes,
            need_bytes: need.bytes,
            global_items,
            need_items,
            need_deletes: need.deleted,
            remote_state,
            sequence,
        })
    }

    /// The names `device` (`None`: this device) needs in `folder`, in name order: page
    /// `page` (from 1) of `per_page` entries, with their global records, and how many there
    /// are in all. Reads the index on a blocking thread, streaming (one page in memory).
    pub async fn needed_files(
        &self,
        folder: &FolderId,
        device: Option<DeviceId>,
        page: usize,
        per_page: usize,
    ) -> Result<FilePage, EngineError> {
        self.listing(folder, None, Some(device), |_| true, page, per_page)
            .await
    }

    /// A receive-only folder's local changes (what a revert would undo), in name order: page
    /// `page` (from 1) of `per_page` entries, and how many there are in all. Empty for the
    /// other types.
    pub async fn local_changes(
        &self,
        folder: &FolderId,
        page: usize,
        per_page: usize,
    ) -> Result<FilePage, EngineError> {
        if self.shared.folder_ctx(folder).is_none() {
            return Err(EngineError::UnknownFolder(folder.clone()));
        }
        let (index, fid) = (self.shared.index.clone(), folder.clone());
        tokio::task::spawn_blocking(move || {
            let r = index
                .read(&fid)
                .map_err(|e| EngineError::Index(e.to_string()))?;
            crate::folder_types::local_changes(&r, page, per_page)
        })
        .await
        .map_err(|e| EngineError::Index(e.to_string()))?
    }

    /// Send-only folders: makes our versions of everything the folder needs win on every
    /// device (Syncthing's "Override Changes"); what we lack is announced deleted. Returns
    /// how many records changed; another type, or a paused folder, changes nothing.
    pub async fn override_changes(&self, folder: &FolderId) -> Result<usize, EngineError> {
        self.folder_op(folder, FolderInput::Override).await
    }

    /// Receive-only folders: drops the local changes (Syncthing's "Revert Local Changes"):
    /// the global versions are pulled back without conflict copies, and what exists only
    /// here is removed (to the versions when versioning is on). Returns how many records
    /// changed (the pull follows); another type, or a paused folder, changes nothing.
    pub async fn revert_changes(&self, folder: &FolderId) -> Result<usize, EngineError> {
        self.folder_op(folder, FolderInput::Revert).await
    }

    async fn folder_op(
        &self,
        folder: &FolderId,
        input: fn(oneshot::Sender<Result<usize, EngineError>>) -> FolderInput,
    ) -> Result<usize, EngineError> {
        let ctx = self
            .shared
            .folder_ctx(folder)
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
        let (tx, rx) = oneshot::channel();
        ctx.tx.send(input(tx)).map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// The global records of `folder` below `dir` (the whole folder when `None`; `dir`
    /// itself excluded) that are live and valid, in name order, at most `depth` levels
    /// below `dir` (1: its direct entries).
    pub async fn global_tree(
        &self,
        folder: &FolderId,
        dir: Option<&str>,
        depth: usize,
    ) -> Result<Vec<FileSummary>, EngineError> {
        let dir = match dir.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => Some(
                syncd_types::RelPath::new(d.trim_end_matches('/'))
                    .map_err(|e| EngineError::Index(format!("{d}: {e}")))?,
            ),
            None => None,
        };
        let base = dir.as_ref().map_or(0, |d| d.as_str().split('/').count());
        let own = dir.clone();
        let keep = move |r: &syncd_index::FileRecord| {
            !r.deleted
                && !r.invalid
                && Some(&r.name) != own.as_ref()
                && r.name.as_str().split('/').count().saturating_sub(base) <= depth
        };
        let page = self.listing(folder, dir, None, keep, 1, usize::MAX).await?;
        Ok(page.files)
    }

    /// Runs a listing over `folder`'s global records (below `dir`) that `keep` accepts:
    /// with `needed_by`, only those that device (`None`: this one) needs.
    async fn listing(
        &self,
        folder: &FolderId,
        dir: Option<syncd_types::RelPath>,
        needed_by: Option<Option<DeviceId>>,
        keep: impl Fn(&syncd_index::FileRecord) -> bool + Send + 'static,
        page: usize,
        per_page: usize,
    ) -> Result<FilePage, EngineError> {
        if self.shared.folder_ctx(folder).is_none() {
            return Err(EngineError::UnknownFolder(folder.clone()));
        }
        let index = self.shared.index.clone();
        let fid = folder.clone();
        let need_mode = needed_by.is_some();
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        tokio::task::spawn_blocking(move || {
            let r = index
                .read(&fid)
                .map_err(|e| EngineError::Index(e.to_string()))?;
            let mut out = FilePage::default();
            r.visit_globals(
                dir.as_ref(),
                needed_by.flatten(),
                |global, _local, needed| {
                    if (need_mode && !needed) || !keep(global) {
                        return std::ops::ControlFlow::Continue(());
                    }
                    let n = usize::try_from(out.total).unwrap_or(usize::MAX);
                    if n >= skip && out.files.len() < per_page {
                        out.files.push(FileSummary::of(global));
                    }
                    out.total += 1;
                    std::ops::ControlFlow::Continue(())
                },
            )
            .map_err(|e| EngineError::Index(e.to_string()))?;
            Ok(out)
        })
        .await
        .map_err(|e| EngineError::Index(e.to_string()))?
    }

    /// What the index holds of `name` in `folder`: its global record, ours, and which
    /// devices have the global version. `None` when no device has a record of it.
    pub async fn file_details(
        &self,
        folder: &FolderId,
        name: &str,
    ) -> Result<Option<FileDetails>, EngineError> {
        if self.shared.folder_ctx(folder).is_none() {
            return Err(EngineError::UnknownFolder(folder.clone()));
        }
        let Ok(name) = syncd_types::RelPath::new(name) else {
            return Ok(None);
        };
        let index = self.shared.index.clone();
        let (fid, me) = (folder.clone(), self.shared.device_id);
        tokio::task::spawn_blocking(move || {
            let r = index
                .read(&fid)
                .map_err(|e| EngineError::Index(e.to_string()))?;
            let Some(global) = r
                .global(&name)
                .map_err(|e| EngineError::Index(e.to_string()))?
            else {
                return Ok(None);
            };
            let all = r
                .all_records(&name)
                .map_err(|e| EngineError::Index(e.to_string()))?;
            let g = global.record;
            let local = all
                .iter()
                .find(|(d, _)| *d == me)
                .map(|(_, rec)| FileSummary::of(rec));
            let availability = all
                .iter()
                .filter(|(d, rec)| *d != me && !rec.invalid && rec.version == g.version)
                .map(|(d, _)| *d)
                .collect();
            Ok(Some(FileDetails {
                global: FileSummary::of(&g),
                local,
                availability,
            }))
        })
        .await
        .map_err(|e| EngineError::Index(e.to_string()))?
    }

    /// Turns on [`Event::DiskChanged`] ("recent changes"), from now on. They cost an index
    /// read per index update, so they are off until someone wants them (the REST API turns
    /// them on at the first `/rest/events/disk` request).
    pub fn enable_disk_events(&self) {
        self.shared.disk_events.store(true, Ordering::Relaxed);
    }

    /// Subscribes to the event stream.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.shared.events.subscribe()
    }

    /// Scans `folder` (or only `sub` inside it); completes when the scan has committed.
    pub async fn scan(&self, folder: &FolderId, sub: Option<&str>) -> Result<(), EngineError> {
        let ctx = self
            .shared
            .folder_ctx(folder)
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
        let (tx, rx) = oneshot::channel();
        ctx.tx
            .send(FolderInput::Scan {
                sub: sub.map(str::to_owned),
                reply: Some(tx),
            })
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Verifies `folder`'s files block by block against the index: every file the index
    /// says is unchanged (same size, modification time and inode as when it was hashed) is
    /// read and each block's SHA-256 compared with the recorded one. A file whose bytes
    /// differ was damaged behind the scanner's back (a change that keeps the modification
    /// time is not an edit a scan would see): it is reported in the folder's errors and the
    /// log, and its blocks are hashed before every send, so a damaged block is refused to
    /// peers instead of served as the recorded version. The damaged set is replaced by each
    /// verification. Files that changed are left to the next scan. Reads the whole folder:
    /// runs on a blocking thread, logs progress every 10 s.
    pub async fn verify(&self, folder: &FolderId) -> Result<VerifyReport, EngineError> {
        let ctx = self
            .shared
            .folder_ctx(folder)
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
        let cfg = ctx.config();
        let index = self.shared.index.clone();
        let id = folder.clone();
        let (report, damaged) =
            tokio::task::spawn_blocking(move || verify_folder(&index, &id, &cfg.path))
                .await
                .map_err(|e| EngineError::Config(format!("verification stopped: {e}")))??;
        for d in &report.damaged {
            tracing::warn!(
                folder = %folder,
                path = %d.path,
                blocks = ?d.blocks,
                "{}",
                damaged_message(&d.blocks)
            );
        }
        tracing::info!(
            folder = %folder,
            files = report.files,
            bytes = report.bytes,
            changed = report.changed,
            damaged = report.damaged.len(),
            unreadable = report.unreadable.len(),
            "block verification done"
        );
        *lock(&ctx.damaged) = damaged;
        Ok(report)
    }

    /// Pauses a device: disconnects it and refuses it until resumed.
    pub async fn pause_device(&self, id: DeviceId) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        if self.shared.config.device(id).is_none() {
            return Err(EngineError::UnknownDevice(id));
        }
        if let Some(p) = self.shared.peer(id) {
            p.sender.close("device paused");
        }
        self.set_device_paused(id, true)?;
        self.shared.sync_endpoint_devices();
        Ok(())
    }

    /// Resumes a paused device: it is accepted and dialed again.
    pub async fn resume_device(&self, id: DeviceId) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        self.set_device_paused(id, false)?;
        self.shared.sync_endpoint_devices();
        Ok(())
    }

    /// Pauses a folder: no scan, no pull, no index exchange.
    pub async fn pause_folder(&self, folder: &FolderId) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        self.set_folder_paused(folder, true)?;
        self.shared.announce_folder_change().await;
        Ok(())
    }

    /// Resumes a paused folder.
    pub async fn resume_folder(&self, folder: &FolderId) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        self.set_folder_paused(folder, false)?;
        self.shared.announce_folder_change().await;
        Ok(())
    }

    /// Adds a device, or changes the existing one with the same ID in place: from now on it
    /// is accepted, and dialed at its addresses. A changed address or name applies at once,
    /// pausing closes its connection and resuming lets it connect again, a changed
    /// compression applies from the next connection; a live connection is otherwise kept.
    /// Sharing a folder with it is a folder change ([`EngineHandle::add_folder`] with the
    /// device listed).
    pub async fn add_device(&self, d: DeviceConfig) -> Result<(), EngineError> {
        if d.id == self.shared.device_id {
            return Ok(());
        }
        let _one_change = self.shared.ops.lock().await;
        let old =
            self.shared
                .config
                .update(|cfg| match cfg.devices.iter_mut().find(|x| x.id == d.id) {
                    Some(slot) => Some(std::mem::replace(slot, d.clone())),
                    None => {
                        cfg.devices.push(d.clone());
                        None
                    }
                });
        self.shared.state(|r| {
            let st = r
                .devices
                .entry(d.id)
                .or_insert_with(|| disconnected_status(&d));
            st.name = d.name.clone();
            st.paused = d.paused;
        });
        let (id, paused) = (d.id, d.paused);
        if old.as_ref().is_some_and(|old| old.paused != paused) {
            if paused && let Some(p) = self.shared.peer(id) {
                p.sender.close("device paused");
            }
            self.shared.events.emit(if paused {
                Event::DevicePaused { device: id }
            } else {
                Event::DeviceResumed { device: id }
            });
        }
        self.shared.sync_endpoint_devices();
        self.shared.clean_pending();
        if old.as_ref().is_some_and(|old| {
            old.introducer != d.introducer
                || old.auto_accept_folders != d.auto_accept_folders
                || old.ignored_folders != d.ignored_folders
        }) && let Some(p) = self.shared.peer(id)
        {
            crate::peer::reconsider_offers(&self.shared, &p);
        }
        Ok(())
    }

    /// Removes a device: its connection is closed, it is refused from now on (reported as
    /// [`Event::DeviceRejected`] if it connects again) and it no longer shares any folder.
    pub async fn remove_device(&self, id: DeviceId) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        let known = self.shared.config.update(|cfg| {
            let before = cfg.devices.len();
            cfg.devices.retain(|d| d.id != id);
            for f in &mut cfg.folders {
                f.devices.retain(|d| *d != id);
            }
            cfg.devices.len() != before
        });
        if !known {
            return Err(EngineError::UnknownDevice(id));
        }
        self.shared.state(|r| {
            r.devices.remove(&id);
            r.peer_is_v1.remove(&id);
        });
        if let Some(p) = self.shared.peer(id) {
            p.sender.close("device removed");
        }
        self.shared.sync_endpoint_devices();
        self.shared.clean_pending();
        Ok(())
    }

    /// Adds a folder, or changes the existing one with the same ID in place: the running
    /// folder keeps its state, its peers' index exchange and its connections; a changed
    /// setting that the scanner or the watcher was built with (path, permissions, watcher,
    /// rescan interval) restarts those two, after the pull in progress. Returns once the
    /// folder has taken the change (not after the rescan a restart does).
    pub async fn add_folder(&self, f: FolderConfig) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        let old =
            self.shared
                .config
                .update(|cfg| match cfg.folders.iter_mut().find(|x| x.id == f.id) {
                    Some(slot) => Some(std::mem::replace(slot, f.clone())),
                    None => {
                        cfg.folders.push(f.clone());
                        None
                    }
                });
        let id = f.id.clone();
        let (Some(old), Some(ctx)) = (old, self.shared.folder_ctx(&id)) else {
            self.shared.spawn_folder(f);
            self.shared.announce_folder_change().await;
            if let Some(ctx) = self.shared.folder_ctx(&id) {
                self.shared.update_delete_rule(&ctx);
            }
            self.shared.clean_pending();
            return Ok(());
        };
        let new = f;
        let (reply, done) = oneshot::channel();
        ctx.tx
            .send(FolderInput::Reconfigured {
                old: Box::new(old.clone()),
                reply,
            })
            .map_err(|_| EngineError::Stopped)?;
        // The actor answers at once unless it is busy starting (a long first scan): then the
        // change is in the configuration and applies when that scan ends; the caller (a
        // GUI's request) does not wait for it.
        match tokio::time::timeout(RECONFIGURE_ANSWER, done).await {
            Ok(answer) => answer.map_err(|_| EngineError::Stopped)?,
            Err(_) => tracing::info!(folder = %id,
                "the folder is busy scanning; its new settings apply when the scan ends"),
        }
        if old.paused != new.paused {
            self.shared.events.emit(if new.paused {
                Event::FolderPaused { folder: id.clone() }
            } else {
                Event::FolderResumed { folder: id.clone() }
            });
        }
        // What the peers see of the folder (its ClusterConfig entry) or which peers share it.
        if old.devices != new.devices
            || old.label != new.label
            || old.paused != new.paused
            || old.ignore_perms != new.ignore_perms
            || old.folder_type != new.folder_type
        {
            self.shared.announce_folder_change().await;
        }
        if old.devices != new.devices {
            self.shared.update_delete_rule(&ctx);
            self.shared.clean_pending();
        }
        Ok(())
    }

    /// Renames this device: the name our Hello (from the next connection on) and our
    /// ClusterConfig (from the next one sent) announce.
    pub async fn set_device_name(&self, name: String) {
        let _one_change = self.shared.ops.lock().await;
        self.shared.endpoint.set_device_name(name.clone());
        self.shared.config.update(|c| c.device_name = name);
    }

    /// Replaces the devices that are ignored (refused without being recorded as pending);
    /// their pending entries go.
    pub async fn set_ignored_devices(&self, devices: Vec<DeviceId>) {
        let _one_change = self.shared.ops.lock().await;
        self.shared.config.update(|c| c.ignored_devices = devices);
        self.shared.clean_pending();
    }

    /// Replaces what automatically accepted folders start from (see
    /// [`EngineConfig::folder_defaults`]).
    pub async fn set_folder_defaults(&self, defaults: FolderConfig) {
        let _one_change = self.shared.ops.lock().await;
        self.shared.config.update(|c| c.folder_defaults = defaults);
    }

    /// Removes a folder (its files on disk are left alone).
    pub async fn remove_folder(&self, folder: &FolderId) -> Result<(), EngineError> {
        let _one_change = self.shared.ops.lock().await;
        let Some((ctx, task)) = self.shared.state(|r| r.folders.remove(folder)) else {
            return Err(EngineError::UnknownFolder(folder.clone()));
        };
        ctx.keep_removed();
        self.shared
            .config
            .update(|cfg| cfg.folders.retain(|f| &f.id != folder));
        let _ = ctx.tx.send(FolderInput::Stop);
        let _ = task.await;
        self.shared.announce_folder_change().await;
        Ok(())
    }

    /// Waits until every device sharing `folder` has connected since start and sent its index
    /// up to the sequence it announced, we need nothing, and every such peer has 100% of our
    /// current state. Times out otherwise, saying what is still missing.
    pub async fn wait_until_synced(
        &self,
        folder: &FolderId,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = self.subscribe();
        loop {
            let missing = self.not_synced(folder)?;
            if missing.is_empty() {
                return Ok(());
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(WaitError::Timeout {
                    folder: folder.clone(),
                    waited: timeout,
                    missing,
                });
            }
            let nap = (deadline - now).min(Duration::from_millis(100));
            let _ = tokio::time::timeout(nap, events.recv()).await;
        }
    }

    /// What keeps `folder` from being in sync (empty = in sync).
    fn not_synced(&self, folder: &FolderId) -> Result<Vec<String>, WaitError> {
        let ctx = self
            .shared
            .folder_ctx(folder)
            .ok_or_else(|| WaitError::UnknownFolder(folder.clone()))?;
        let rt = lock(&ctx.runtime).clone();
        if rt.state == FolderState::Error {
            return Err(WaitError::FolderError {
                folder: folder.clone(),
                message: rt.error.unwrap_or_default(),
            });
        }
        let mut missing = Vec::new();
        if !ctx.scanned_once.load(Ordering::SeqCst) {
            missing.push(String::from("initial scan not finished"));
        }
        if ctx.pulling.load(Ordering::SeqCst) {
            missing.push(String::from("pull in progress"));
        }
        if ctx.pending_rescans.load(Ordering::SeqCst) > 0 {
            missing.push(String::from("rescan pending"));
        }
        let Ok(r) = self.shared.index.read(folder) else {
            missing.push(String::from("index unreadable"));
            return Ok(missing);
        };
        if let Ok(c) = r.counts()
            && c.need.entries() > 0
        {
            missing.push(format!(
                "local need: {} items, {} bytes",
                c.need.entries(),
                c.need.bytes
            ));
        }
        let since = self.shared.state(|r| r.connected_since_start.clone());
        for d in ctx.config().devices {
            if d == self.shared.device_id {
                continue;
            }
            let short = d.short();
            if !since.contains(&d) {
                missing.push(format!("device {short} not connected since start"));
                continue;
            }
            let Some(p) = self.shared.peer(d) else {
                missing.push(format!("device {short} not connected"));
                continue;
            };
            let Some(announced) = p.announced_max_sequence(folder) else {
                missing.push(format!("device {short} has not announced the folder"));
                continue;
            };
            let st = r.device(d).ok().flatten();
            if st.is_none() {
                // No index from this peer is in our store yet (not even an empty one): we
                // cannot know what it still needs, so it is not in sync.
                missing.push(format!("device {short}: no index received yet"));
                continue;
            }
            let have = st.as_ref().map_or(0, |s| s.max_sequence);
            if have < announced {
                missing.push(format!(
                    "device {short}: index received up to {have} of {announced}"
                ));
            }
            if let Some(s) = st
                && s.need.entries() > 0
            {
                missing.push(format!(
                    "device {short} needs {} items, {} bytes",
                    s.need.entries(),
                    s.need.bytes
                ));
            }
        }
        Ok(missing)
    }

    /// Every stored version of `folder`'s files (`GET /rest/folder/versions`): path → its
    /// versions, newest first. Empty when versioning is off; an error for `external`, which
    /// keeps none of its own.
    pub async fn versions(
        &self,
        folder: &FolderId,
    ) -> Result<BTreeMap<String, Vec<crate::versioner::FileVersion>>, EngineError> {
        let cfg = self
            .shared
            .config
            .folder(folder)
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
        tokio::task::spawn_blocking(move || {
            match crate::versioner::Versioner::new(&cfg.path, &cfg.versioning) {
                Ok(None) => Ok(BTreeMap::new()),
                Ok(Some(v)) => v.list(),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| EngineError::Config(e.to_string()))?
        .map_err(|e| EngineError::Config(e.to_string()))
    }

    /// Restores versions of `folder`'s files (`POST /rest/folder/versions`): each path gets
    /// its version of that version time back (a file in its way is versioned first), and is
    /// rescanned so peers learn of it. Returns the paths that failed, with why (Syncthing's
    /// reply shape).
    pub async fn restore_versions(
        &self,
        folder: &FolderId,
        items: Vec<(String, std::time::SystemTime)>,
    ) -> Result<BTreeMap<String, String>, EngineError> {
        let cfg = self
            .shared
            .config
            .folder(folder)
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
        let (errors, restored) = tokio::task::spawn_blocking(move || {
            let mut errors = BTreeMap::new();
            let mut restored = Vec::new();
            let v = match crate::versioner::Versioner::new(&cfg.path, &cfg.versioning) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    for (path, _) in items {
                        errors.insert(path, "versioning is off for this folder".to_owned());
                    }
                    return (errors, restored);
                }
                Err(e) => {
                    for (path, _) in items {
                        errors.insert(path, e.to_string());
                    }
                    return (errors, restored);
                }
            };
            let now = std::time::SystemTime::now();
            for (path, time) in items {
                let res = RelPath::new(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|rel| {
                        v.restore(&rel, time, now)
                            .map(|()| rel)
                            .map_err(|e| e.to_string())
                    });
                match res {
                    Ok(rel) => restored.push(rel),
                    Err(e) => {
                        errors.insert(path, e);
                    }
                }
            }
            (errors, restored)
        })
        .await
        .map_err(|e| EngineError::Config(e.to_string()))?;
        if !restored.is_empty() {
            self.shared.request_rescan(folder, restored);
        }
        Ok(errors)
    }

    /// Stops the engine: folders finish the pull in progress (in-flight writes), connections
    /// close, the listener stops. The index file is released when the last handle clone is
    /// dropped (then the same home can be started again in this process).
    pub async fn shutdown(&self) {
        let folders: Vec<FolderSlot> = self
            .shared
            .state(|r| std::mem::take(&mut r.folders))
            .into_values()
            .collect();
        for (ctx, _) in &folders {
            let _ = ctx.tx.send(FolderInput::Stop);
        }
        for (_, task) in folders {
            let _ = task.await;
        }
        self.shared.endpoint.shutdown().await;
        let tasks = self.shared.state(|r| std::mem::take(&mut r.tasks));
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        self.shared.flush_pending().await;
        // Peer actors end once their connection is closed; wait for them so that, once the
        // last handle is dropped, nothing holds the index open.
        let peer_tasks = self.shared.state(|r| std::mem::take(&mut r.peer_tasks));
        for t in peer_tasks {
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                tracing::warn!("a peer task did not stop within 5 s of shutdown");
            }
        }
    }

    fn set_device_paused(&self, id: DeviceId, paused: bool) -> Result<(), EngineError> {
        let changed = self.shared.config.update(|cfg| {
            let d = cfg.devices.iter_mut().find(|d| d.id == id)?;
            let changed = d.paused != paused;
            d.paused = paused;
            Some(changed)
        });
        match changed {
            None => return Err(EngineError::UnknownDevice(id)),
            Some(false) => return Ok(()),
            Some(true) => {}
        }
        self.shared.state(|r| {
            if let Some(st) = r.devices.get_mut(&id) {
                st.paused = paused;
            }
        });
        self.shared.events.emit(if paused {
            Event::DevicePaused { device: id }
        } else {
            Event::DeviceResumed { device: id }
        });
        Ok(())
    }

    fn set_folder_paused(&self, folder: &FolderId, paused: bool) -> Result<(), EngineError> {
        let ctx = self
            .shared
            .folder_ctx(folder)
            .ok_or_else(|| EngineError::UnknownFolder(folder.clone()))?;
        if ctx.config().paused == paused {
            return Ok(());
        }
        self.shared.config.update(|cfg| {
            for f in cfg.folders.iter_mut().filter(|f| &f.id == folder) {
                f.paused = paused;
            }
        });
        let _ = ctx.tx.send(if paused {
            FolderInput::Pause
        } else {
            FolderInput::Resume
        });
        self.shared.events.emit(if paused {
            Event::FolderPaused {
                folder: folder.clone(),
            }
        } else {
            Event::FolderResumed {
                folder: folder.clone(),
            }
        });
        Ok(())
    }
}

pub(crate) fn disconnected_status(d: &DeviceConfig) -> ConnectionStatus {
    ConnectionStatus {
        device: d.id,
        name: d.name.clone(),
        connected: false,
        paused: d.paused,
        address: None,
        client_name: String::new(),
        client_version: String::new(),
        conn_type: "",
        crypto: String::new(),
        started_at: None,
        in_bytes_total: 0,
        out_bytes_total: 0,
        derived_records_in: 0,
        derived_records_out: 0,
    }
}

/// Opens the index in `home`. A damaged one (truncated, pages overwritten, not a database, or
/// redb failing on it) is moved aside as `index-v1.redb.damaged-<unix time>` and a new one is
/// made: the folders' first scans and the peers' indexes rebuild it. A file changed on disk
/// meanwhile then carries a new local version, concurrent with the peers' ones, so it is never
/// silently replaced by an older remote version (the conflict rules keep both).
fn open_index(
    home: &std::path::Path,
    device_id: DeviceId,
    cache_size: usize,
) -> Result<Index, EngineError> {
    let path = home.join(INDEX_FILE);
    let open = || {
        // redb asserts on some inconsistencies in debug builds: a damaged file must not take
        // the process down, so a panic while opening counts as damage too.
        std::panic::catch_unwind(|| Index::open_with(&path, device_id, IndexOptions { cache_size }))
    };
    let damage = match open() {
        Ok(Ok(index)) => return Ok(index),
        Ok(Err(e)) if e.is_damage() => e.to_string(),
        Ok(Err(e)) => return Err(EngineError::Index(e.to_string())),
        Err(panic) => format!(
            "the database library failed on it: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("panic")
        ),
    };
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let aside = home.join(format!("{INDEX_FILE}.damaged-{stamp}"));
    std::fs::rename(&path, &aside).map_err(|source| EngineError::Io {
        context: format!(
            "moving the damaged index {} aside to {}",
            path.display(),
            aside.display()
        ),
        source,
    })?;
    tracing::error!(
        index = %path.display(),
        kept_as = %aside.display(),
        damage = %damage,
        "the index is damaged: it was moved aside and a new one is built from the files on disk \
         and from the peers; files changed here meanwhile are kept (they win over the peers' \
         older versions, or both are kept as a conflict copy)"
    );
    match open() {
        Ok(Ok(index)) => Ok(index),
        Ok(Err(e)) => Err(EngineError::Index(e.to_string())),
        Err(_) => Err(EngineError::Index(format!(
            "a new index at {} could not be created",
            path.display()
        ))),
    }
}

/// What the folder's error list and the log say of a damaged file.
fn damaged_message(blocks: &[u32]) -> String {
    format!(
        "damaged on disk: {} block(s) (index {}) differ from what was scanned although the \
         size and modification time are unchanged; syncd refuses to send them to peers. The \
         peers still hold the good version: copy the file back from one of them (or restore \
         it from .stversions); do not just touch the file, that would send the damaged bytes \
         as a new version",
        blocks.len(),
        blocks
            .iter()
            .take(8)
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The blocking half of [`EngineHandle::verify`]: walks the local records of `folder` in
/// `root` and checks each live regular file.
fn verify_folder(
    index: &Index,
    folder: &FolderId,
    root: &std::path::Path,
) -> Result<(VerifyReport, BTreeMap<RelPath, Vec<u32>>), EngineError> {
    use syncd_scan::verify::{Check, check_file};
    let ie = |e: syncd_index::IndexError| EngineError::Index(e.to_string());
    let reader = index.read(folder).map_err(ie)?;
    let dirs = fsutil::VerifiedDirs::default();
    let mut report = VerifyReport::default();
    let mut damaged = BTreeMap::new();
    let mut last_log = std::time::Instant::now();
    tracing::info!(folder = %folder, "block verification started");
    for rec in reader.local_since(0).map_err(ie)? {
        let rec = rec.map_err(ie)?;
        if rec.deleted || rec.invalid || !rec.kind.is_file() {
            continue;
        }
        if last_log.elapsed() >= Duration::from_secs(10) {
            last_log = std::time::Instant::now();
            tracing::info!(
                folder = %folder,
                files = report.files,
                mb = report.bytes / 1_000_000,
                "block verification in progress"
            );
        }
        let path = match fsutil::safe_path_in(root, &rec.name, &dirs) {
            Ok((p, _)) => p,
            // A parent that is no longer a plain directory: the file is not the recorded one.
            Err(_) => {
                report.changed += 1;
                continue;
            }
        };
        match check_file(&path, &rec) {
            Ok(Check::Good { bytes }) => {
                report.files += 1;
                report.bytes += bytes;
            }
            Ok(Check::Damaged { blocks, bytes }) => {
                report.files += 1;
                report.bytes += bytes;
                report.damaged.push(crate::status::DamagedFile {
                    path: rec.name.as_str().to_owned(),
                    blocks: blocks.clone(),
                    size: rec.size,
                });
                damaged.insert(rec.name, blocks);
            }
            Ok(_) => report.changed += 1,
            Err(e) => report.unreadable.push(crate::status::FileError {
                path: rec.name.as_str().to_owned(),
                error: e.to_string(),
            }),
        }
    }
    Ok((report, damaged))
}

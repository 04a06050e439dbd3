//! The endpoint: listens, dials configured devices with backoff, authenticates, exchanges Hello,
//! keeps one live connection per device, and hands connections to the engine as [`Event`]s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use syncd_proto::{CompressionPolicy, bep};
use syncd_types::DeviceId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::{TlsAcceptor, TlsConnector, TlsStream};

use crate::address::PeerAddress;
use crate::backoff::Backoff;
use crate::connection::{
    self, CloseHow, Connection, ConnectionError, ConnectionId, ConnectionInfo, Direction,
    Keepalive, REASON_REPLACING, REASON_SHUTDOWN, Shared,
};
use crate::counters::{ByteCounters, ByteTotals, Counted};
use crate::discovery::{Discovery, DiscoveryConfig};
use crate::hello::{self, HelloExchangeError};
use crate::identity::Identity;
use crate::policy::{self, Decision, Side};
use crate::tls::{self, TlsConfigError};

/// A device we are willing to talk to.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    /// Its ID.
    pub id: DeviceId,
    /// Addresses to dial; empty or only `dynamic` means "accept incoming only".
    pub addresses: Vec<PeerAddress>,
    /// Our compression setting towards it.
    pub compression: CompressionPolicy,
}

impl DeviceConfig {
    /// A device reachable only when it dials us, with the default compression.
    pub fn new(id: DeviceId) -> Self {
        Self {
            id,
            addresses: Vec::new(),
            compression: CompressionPolicy::default(),
        }
    }

    /// Adds an address to dial.
    pub fn with_address(mut self, address: PeerAddress) -> Self {
        self.addresses.push(address);
        self
    }
}

/// Deadlines of connection setup (spec §1, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect.
    pub dial: Duration,
    /// TLS handshake (Syncthing: 10 s).
    pub tls_handshake: Duration,
    /// Hello exchange (Syncthing: 20 s).
    pub hello: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            dial: Duration::from_secs(10),
            tls_handshake: Duration::from_secs(10),
            hello: Duration::from_secs(20),
        }
    }
}

/// Everything an [`Endpoint`] needs.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Our certificate and key.
    pub identity: Identity,
    /// Our device name, sent in Hello to known devices.
    pub device_name: String,
    /// Our version, sent in Hello (`v0.1.0` style).
    pub client_version: String,
    /// Where to listen (`0.0.0.0:22000` by default; port 0 picks a free port). `None`: dial only.
    pub listen: Option<SocketAddr>,
    /// The devices we accept and dial.
    pub devices: Vec<DeviceConfig>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Ping / receive timeout / close timeout.
    pub keepalive: Keepalive,
    /// Setup deadlines.
    pub timeouts: Timeouts,
    /// Messages buffered per direction per connection before senders/readers wait.
    pub queue_depth: usize,
    /// The listen host as configured (`localhost`, `0.0.0.0`): a host name is announced as
    /// written, an IP literal as bound.
    pub listen_host: Option<String>,
    /// Global and local discovery (all off by default); they resolve `dynamic` addresses.
    pub discovery: DiscoveryConfig,
}

impl EndpointConfig {
    /// Defaults: listen on `0.0.0.0:22000`, no devices, `client_version` = this crate's version.
    pub fn new(identity: Identity, device_name: impl Into<String>) -> Self {
        Self {
            identity,
            device_name: device_name.into(),
            client_version: concat!("v", env!("CARGO_PKG_VERSION")).to_string(),
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 22000))),
            devices: Vec::new(),
            backoff: Backoff::default(),
            keepalive: Keepalive::default(),
            timeouts: Timeouts::default(),
            queue_depth: 64,
            listen_host: None,
            discovery: DiscoveryConfig::disabled(),
        }
    }
}

/// A device that connected but is not configured: reported so the operator can add it.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownDevice {
    /// Its ID.
    pub device: DeviceId,
    /// The name from its Hello (often empty: Go fills it only for known devices).
    pub name: String,
    /// Its `client_name client_version`.
    pub client: String,
    /// Where it came from.
    pub address: SocketAddr,
}

/// What the endpoint tells the engine.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A new authenticated connection. Send ClusterConfig first.
    Connected(Connection),
    /// A connection ended (its receiver also reports why).
    Disconnected {
        /// Which connection.
        id: ConnectionId,
        /// Its device.
        device: DeviceId,
        /// Why.
        error: ConnectionError,
    },
    /// An unconfigured device connected and was refused after Hello.
    UnknownDevice(UnknownDevice),
    /// Local discovery heard from a device for the first time (or again after its entry
    /// expired or it restarted).
    DeviceDiscovered {
        /// Its ID.
        device: DeviceId,
        /// Its addresses, fixed up with the sender's address.
        addresses: Vec<String>,
    },
}

/// Errors starting an endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// Binding the listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

/// Why one connection attempt (dialed or accepted) did not produce a connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The address is `dynamic` (needs discovery).
    #[error("address is dynamic; nothing to dial")]
    Dynamic,
    /// TCP connect failed.
    #[error("connect to {address}: {source}")]
    Connect {
        /// The address dialed.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A setup stage took too long.
    #[error("{stage} timed out")]
    Timeout {
        /// `"connect"`, `"TLS handshake"` or `"Hello"`.
        stage: &'static str,
    },
    /// The TLS handshake failed (including a bad handshake signature).
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// The peer presented no certificate or more than one.
    #[error("peer did not present exactly one certificate")]
    BadCertificateCount,
    /// We connected to ourselves.
    #[error("connected to our own device ID")]
    SelfConnection,
    /// The Hello exchange failed.
    #[error(transparent)]
    Hello(#[from] HelloExchangeError),
    /// The peer is not a configured device (reported as [`Event::UnknownDevice`]).
    #[error("unknown device {device}")]
    UnknownDevice {
        /// Its ID.
        device: DeviceId,
    },
    /// We dialed one device and another answered.
    #[error("expected device {expected}, got {got}")]
    UnexpectedDevice {
        /// The device we dialed.
        expected: DeviceId,
        /// The device that answered.
        got: DeviceId,
    },
    /// The device already has a live connection that wins (spec §0.11).
    #[error("already connected to {device}")]
    AlreadyConnected {
        /// The device.
        device: DeviceId,
    },
    /// The endpoint is shutting down.
    #[error("endpoint is shutting down")]
    ShuttingDown,
    /// A socket error after connecting.
    #[error("socket: {0}")]
    Io(std::io::Error),
}

struct Live {
    id: ConnectionId,
    since: Instant,
    side: Side,
    shared: Arc<Shared>,
}

/// The dial loop of one device: its addresses, a wake-up for when its connection ends, and a
/// stop signal (set when the device is removed or its addresses change).
struct Dialer {
    addresses: Vec<PeerAddress>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
}

/// The close reason sent to a device removed with [`Endpoint::set_devices`].
pub const REASON_DEVICE_REMOVED: &str = "device removed";

struct Inner {
    identity: Identity,
    /// The name our Hello announces to configured devices; replaced by
    /// [`Endpoint::set_device_name`].
    device_name: Mutex<String>,
    client_version: String,
    /// The devices we accept and dial; replaced by [`Endpoint::set_devices`].
    devices: Mutex<HashMap<DeviceId, DeviceConfig>>,
    backoff: Backoff,
    keepalive: Keepalive,
    timeouts: Timeouts,
    queue_depth: usize,
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    local_addr: Option<SocketAddr>,
    live: Mutex<HashMap<DeviceId, Live>>,
    dialers: Mutex<HashMap<DeviceId, Dialer>>,
    events: mpsc::Sender<Event>,
    totals: Arc<ByteCounters>,
    next_id: AtomicU64,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Set at start when a finder is enabled.
    discovery: OnceLock<Discovery>,
}

/// A BEP endpoint. Cheap to clone; all clones share the same listener and connections.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("device_id", &self.inner.identity.device_id().to_string())
            .field("local_addr", &self.inner.local_addr)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Binds the listener (if any), starts dialing every device with a static address, and
    /// returns the endpoint with the stream of [`Event`]s. Must run inside a tokio runtime.
    pub async fn start(
        config: EndpointConfig,
    ) -> Result<(Endpoint, mpsc::Receiver<Event>), EndpointError> {
        let client = tls::client_config(&config.identity)?;
        let server = tls::server_config(&config.identity)?;
        let listener = match config.listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| EndpointError::Bind { addr, source })?,
            ),
            None => None,
        };
        let local_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        let (events_tx, events_rx) = mpsc::channel(256);
        let (shutdown, _) = watch::channel(false);
        let devices: HashMap<DeviceId, DeviceConfig> =
            config.devices.into_iter().map(|d| (d.id, d)).collect();
        let inner = Arc::new(Inner {
            identity: config.identity,
            device_name: Mutex::new(config.device_name),
            client_version: config.client_version,
            devices: Mutex::new(devices),
            backoff: config.backoff,
            keepalive: config.keepalive,
            timeouts: config.timeouts,
            queue_depth: config.queue_depth,
            connector: TlsConnector::from(client),
            acceptor: TlsAcceptor::from(server),
            local_addr,
            live: Mutex::new(HashMap::new()),
            dialers: Mutex::new(HashMap::new()),
            events: events_tx,
            totals: Arc::new(ByteCounters::default()),
            next_id: AtomicU64::new(1),
            shutdown,
            tasks: Mutex::new(Vec::new()),
            discovery: OnceLock::new(),
        });
        if config.discovery.any_enabled() {
            let announce = match local_addr {
                Some(bound) => crate::discovery::our_addresses(
                    config.listen_host.as_deref(),
                    bound,
                    config.discovery.announce_lan_addresses,
                ),
                None => Vec::new(),
            };
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            let on_discovered = Arc::new(move |device: DeviceId, addresses: Vec<String>| {
                if let Some(inner) = weak.upgrade() {
                    inner.discovered(device, addresses);
                }
            });
            let (discovery, tasks) = Discovery::start(
                config.discovery,
                &inner.identity,
                announce,
                on_discovered,
                &inner.shutdown,
            );
            tracing::info!(announce = ?discovery.announced(), "discovery started");
            for t in tasks {
                inner.track(t);
            }
            let _ = inner.discovery.set(discovery);
        }
        if let Some(listener) = listener {
            let task = tokio::spawn(accept_loop(Arc::clone(&inner), listener));
            inner.track(task);
        }
        inner.sync_dialers();
        tracing::info!(device = %inner.identity.device_id(), listen = ?local_addr, "endpoint started");
        Ok((Endpoint { inner }, events_rx))
    }

    /// The running discovery, when a finder is enabled.
    pub fn discovery(&self) -> Option<&Discovery> {
        self.inner.discovery.get()
    }

    /// Our device ID.
    pub fn device_id(&self) -> DeviceId {
        self.inner.identity.device_id()
    }

    /// The bound listen address (with the real port when configured with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.local_addr
    }

    /// Bytes in and out over all connections since start (TLS overhead included).
    pub fn totals(&self) -> ByteTotals {
        self.inner.totals.totals()
    }

    /// Replaces the name our Hello announces (from the next connection on).
    pub fn set_device_name(&self, name: impl Into<String>) {
        *self
            .inner
            .device_name
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = name.into();
    }

    /// Replaces the set of devices we accept and dial, at runtime. A device that is new (or
    /// whose addresses changed) is dialed from now on; a device no longer listed is refused
    /// after Hello like any unknown device (reported as [`Event::UnknownDevice`] if it
    /// connects), its dialer stops, and its live connection is closed with
    /// `Close{"device removed"}` ([`REASON_DEVICE_REMOVED`]). A changed compression setting
    /// applies to the next connection. Our own device ID is ignored if listed.
    pub fn set_devices(&self, devices: Vec<DeviceConfig>) {
        let me = self.inner.identity.device_id();
        let removed: Vec<DeviceId> = {
            let mut map = self.inner.lock_devices();
            let new: HashMap<DeviceId, DeviceConfig> = devices
                .into_iter()
                .filter(|d| d.id != me)
                .map(|d| (d.id, d))
                .collect();
            let removed = map
                .keys()
                .filter(|k| !new.contains_key(k))
                .copied()
                .collect();
            *map = new;
            removed
        };
        // `register` checks the device set under the live lock, so a connection being set up
        // concurrently is either refused there or already live here (and closed).
        {
            let live = self.inner.lock_live();
            for device in &removed {
                if let Some(l) = live.get(device) {
                    tracing::info!(%device, conn = l.id.0, "device removed; closing its connection");
                    l.shared.fail(
                        ConnectionError::ClosedLocally {
                            reason: REASON_DEVICE_REMOVED.into(),
                        },
                        CloseHow::Graceful(REASON_DEVICE_REMOVED.into()),
                    );
                }
            }
        }
        self.inner.sync_dialers();
    }

    /// The devices we currently accept and dial.
    pub fn devices(&self) -> Vec<DeviceConfig> {
        self.inner.lock_devices().values().cloned().collect()
    }

    /// The devices with a live connection right now.
    pub fn connected_devices(&self) -> Vec<DeviceId> {
        self.inner.lock_live().keys().copied().collect()
    }

    /// Dials `device` at `address` once (outside the automatic dialers). Returns when the
    /// connection is established and announced as [`Event::Connected`], or why it was not.
    pub async fn dial(
        &self,
        device: DeviceId,
        address: &PeerAddress,
    ) -> Result<ConnectionId, ConnectError> {
        dial_once(&self.inner, device, address).await
    }

    /// Runs the connection setup over a byte stream the caller already has — TLS (with the
    /// same device-ID authentication as over TCP), the Hello exchange and registration, exactly
    /// as for a dialed or accepted TCP connection — so an embedder can bring its own transport
    /// (a relay, a tunnel, an in-memory pipe in tests). `direction` says which TLS role we take:
    /// [`Direction::Outbound`] is the client (the side that "dialed"), [`Direction::Inbound`]
    /// the server; the two ends of one stream must take opposite roles. `expected`, if given,
    /// is the device we meant to reach (another answering is [`ConnectError::UnexpectedDevice`]).
    /// `remote` is what [`ConnectionInfo::remote_addr`] reports (a placeholder such as
    /// `0.0.0.0:0` for transports without one). Returns once the connection is announced as
    /// [`Event::Connected`], or why it was not established; the usual rules apply (unknown
    /// devices are refused, one live connection per device). The endpoint's dialers know
    /// nothing of such a stream: when it ends, bringing a new one is up to the caller.
    pub async fn connect_stream<S>(
        &self,
        io: S,
        direction: Direction,
        expected: Option<DeviceId>,
        remote: SocketAddr,
    ) -> Result<ConnectionId, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let local = SocketAddr::from(([0, 0, 0, 0], 0));
        self.inner
            .establish(io, (remote, local), direction, expected)
            .await
    }

    /// Stops listening and dialing, sends `Close{"shutting down"}` on every connection and waits
    /// (bounded by the close timeout) for them to finish.
    pub async fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
        let live: Vec<Arc<Shared>> = self
            .inner
            .lock_live()
            .values()
            .map(|l| Arc::clone(&l.shared))
            .collect();
        for shared in live {
            shared.fail(
                ConnectionError::ClosedLocally {
                    reason: REASON_SHUTDOWN.into(),
                },
                CloseHow::Graceful(REASON_SHUTDOWN.into()),
            );
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(
            &mut *self
                .inner
                .tasks
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let wait = self.inner.keepalive.close_timeout + Duration::from_secs(1);
        let _ = tokio::time::timeout(wait, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
    }
}

impl Inner {
    fn lock_live(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Live>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_devices(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, DeviceConfig>> {
        self.devices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_dialers(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, Dialer>> {
        self.dialers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Local discovery found `device`: report it and wake its dialer.
    fn discovered(&self, device: DeviceId, addresses: Vec<String>) {
        let _ = self
            .events
            .try_send(Event::DeviceDiscovered { device, addresses });
        if let Some(d) = self.lock_dialers().get(&device) {
            d.wake.notify_one();
        }
    }

    /// Makes the running dial loops match the device set: one per device with a static
    /// address (or a `dynamic` one while discovery runs); a loop whose device is gone or whose addresses changed is stopped (and a new
    /// one started for the new addresses).
    fn sync_dialers(self: &Arc<Self>) {
        if self.is_shutting_down() {
            return;
        }
        let wanted: HashMap<DeviceId, Vec<PeerAddress>> = self
            .lock_devices()
            .values()
            .filter(|d| {
                d.addresses
                    .iter()
                    .any(|a| *a != PeerAddress::Dynamic || self.discovery.get().is_some())
            })
            .map(|d| (d.id, d.addresses.clone()))
            .collect();
        let mut dialers = self.lock_dialers();
        dialers.retain(|device, d| {
            let keep = wanted.get(device) == Some(&d.addresses);
            if !keep {
                d.stop.send_replace(true);
            }
            keep
        });
        for (device, addresses) in wanted {
            if dialers.contains_key(&device) {
                continue;
            }
            let wake = Arc::new(Notify::new());
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(dial_loop(
                Arc::clone(self),
                device,
                addresses.clone(),
                Arc::clone(&wake),
                stop_rx,
            ));
            self.track(task);
            dialers.insert(
                device,
                Dialer {
                    addresses,
                    wake,
                    stop,
                },
            );
        }
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// A TCP connection (either direction): its addresses, then [`Inner::establish`].
    async fn establish_tcp(
        self: &Arc<Self>,
        tcp: TcpStream,
        remote: SocketAddr,
        direction: Direction,
        expected: Option<DeviceId>,
    ) -> Result<ConnectionId, ConnectError> {
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().map_err(ConnectError::Io)?;
        self.establish(tcp, (remote, local), direction, expected)
            .await
    }

    /// TLS, device check, Hello, registration, task start over any byte stream.
    async fn establish<S>(
        self: &Arc<Self>,
        io: S,
        (remote, local): (SocketAddr, SocketAddr),
        direction: Direction,
        expected: Option<DeviceId>,
    ) -> Result<ConnectionId, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if self.is_shutting_down() {
            return Err(ConnectError::ShuttingDown);
        }
        let conn_counters = Arc::new(ByteCounters::default());
        let counted = Counted::new(io, Arc::clone(&conn_counters), Arc::clone(&self.totals));
        let hs = self.timeouts.tls_handshake;
        let mut stream: TlsStream<Counted<S>> = match direction {
            Direction::Outbound => {
                let name = tls::dial_server_name(remote.ip());
                let s = tokio::time::timeout(hs, self.connector.connect(name, counted))
                    .await
                    .map_err(|_| ConnectError::Timeout {
                        stage: "TLS handshake",
                    })?
                    .map_err(ConnectError::Tls)?;
                TlsStream::from(s)
            }
            Direction::Inbound => {
                let s = tokio::time::timeout(hs, self.acceptor.accept(counted))
                    .await
                    .map_err(|_| ConnectError::Timeout {
                        stage: "TLS handshake",
                    })?
                    .map_err(ConnectError::Tls)?;
                TlsStream::from(s)
            }
        };
        let device =
            tls::peer_device_id(stream.get_ref().1).ok_or(ConnectError::BadCertificateCount)?;
        if device == self.identity.device_id() {
            return Err(ConnectError::SelfConnection);
        }
        let known = self.lock_devices().get(&device).cloned();
        let name = if known.is_some() {
            self.device_name
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        } else {
            String::new()
        };
        let ours = hello::our_hello(&name, &self.client_version);
        let (peer_hello, leftover) =
            tokio::time::timeout(self.timeouts.hello, hello::exchange(&mut stream, &ours))
                .await
                .map_err(|_| ConnectError::Timeout { stage: "Hello" })??;
        if let Some(expected) = expected
            && expected != device
        {
            tracing::warn!(%expected, got = %device, %remote, "dialed device answered with another ID");
            return Err(ConnectError::UnexpectedDevice {
                expected,
                got: device,
            });
        }
        let Some(cfg) = known else {
            tracing::info!(%device, name = %peer_hello.device_name, %remote, "refusing connection from unknown device");
            let _ = self
                .events
                .send(Event::UnknownDevice(UnknownDevice {
                    device,
                    name: peer_hello.device_name.clone(),
                    client: format!("{} {}", peer_hello.client_name, peer_hello.client_version),
                    address: remote,
                }))
                .await;
            return Err(ConnectError::UnknownDevice { device });
        };
        let compression = cfg.compression;
        self.register(
            stream,
            device,
            peer_hello,
            (remote, local),
            direction,
            compression,
            leftover,
            conn_counters,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn register<S>(
        self: &Arc<Self>,
        stream: TlsStream<Counted<S>>,
        device: DeviceId,
        peer_hello: bep::Hello,
        (remote, local): (SocketAddr, SocketAddr),
        direction: Direction,
        compression: CompressionPolicy,
        leftover: Vec<u8>,
        counters: Arc<ByteCounters>,
    ) -> Result<ConnectionId, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let id = ConnectionId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let side = Side {
            dialed_by_us: direction == Direction::Outbound,
        };
        let peer_is_syncd = peer_hello.client_name == syncd_proto::SYNCD_CLIENT_NAME;
        let (sender, receiver, shared, done) = {
            let mut live = self.lock_live();
            if self.is_shutting_down() {
                return Err(ConnectError::ShuttingDown);
            }
            // Removed (by `set_devices`) since its Hello was checked: refuse it here, under
            // the live lock, so that it cannot slip in after the removal closed connections.
            if !self.lock_devices().contains_key(&device) {
                return Err(ConnectError::UnknownDevice { device });
            }
            if let Some(existing) = live.get(&device) {
                let age = Instant::now().saturating_duration_since(existing.since);
                match policy::decide(
                    self.identity.device_id(),
                    device,
                    peer_is_syncd,
                    existing.side,
                    age,
                    side,
                ) {
                    Decision::KeepExisting => {
                        tracing::info!(%device, %remote, "already connected; dropping the new connection");
                        return Err(ConnectError::AlreadyConnected { device });
                    }
                    Decision::ReplaceExisting => {
                        tracing::info!(%device, %remote, old = existing.id.0, "replacing connection");
                        existing.shared.fail(
                            ConnectionError::Replaced,
                            CloseHow::Graceful(REASON_REPLACING.into()),
                        );
                    }
                }
            }
            let spawned = connection::spawn(
                stream,
                connection::Spawn {
                    id,
                    device,
                    compression,
                    keepalive: self.keepalive,
                    queue_depth: self.queue_depth,
                    leftover,
                },
            );
            live.insert(
                device,
                Live {
                    id,
                    since: Instant::now(),
                    side,
                    shared: Arc::clone(&spawned.2),
                },
            );
            spawned
        };
        tracing::info!(%device, %remote, conn = id.0, ?direction, client = %peer_hello.client_name,
            version = %peer_hello.client_version, "connection established");
        let info = ConnectionInfo {
            id,
            device,
            hello: peer_hello,
            remote_addr: remote,
            local_addr: local,
            direction,
            started_at: SystemTime::now(),
            counters,
        };
        let _ = self
            .events
            .send(Event::Connected(Connection {
                info,
                sender,
                receiver,
            }))
            .await;
        let me = Arc::clone(self);
        let supervisor = tokio::spawn(async move {
            let _ = done.await;
            {
                let mut live = me.lock_live();
                if live.get(&device).is_some_and(|l| l.id == id) {
                    live.remove(&device);
                }
            }
            let wake = me.lock_dialers().get(&device).map(|d| Arc::clone(&d.wake));
            if let Some(w) = wake {
                w.notify_one();
            }
            let _ = me
                .events
                .send(Event::Disconnected {
                    id,
                    device,
                    error: shared.error(),
                })
                .await;
        });
        self.track(supervisor);
        Ok(id)
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut shutdown = inner.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, remote)) => {
                let me = Arc::clone(&inner);
                tokio::spawn(async move {
                    if let Err(e) = me
                        .establish_tcp(tcp, remote, Direction::Inbound, None)
                        .await
                    {
                        tracing::debug!(%remote, error = %e, "incoming connection not established");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                // Typically out of file descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn dial_once(
    inner: &Arc<Inner>,
    device: DeviceId,
    address: &PeerAddress,
) -> Result<ConnectionId, ConnectError> {
    let PeerAddress::Tcp { host, port } = address else {
        return Err(ConnectError::Dynamic);
    };
    let tcp = tokio::time::timeout(
        inner.timeouts.dial,
        TcpStream::connect((host.as_str(), *port)),
    )
    .await
    .map_err(|_| ConnectError::Timeout { stage: "connect" })?
    .map_err(|source| ConnectError::Connect {
        address: address.to_string(),
        source,
    })?;
    let remote = tcp.peer_addr().map_err(|source| ConnectError::Connect {
        address: address.to_string(),
        source,
    })?;
    inner
        .establish_tcp(tcp, remote, Direction::Outbound, Some(device))
        .await
}

/// Keeps one device connected: dials its addresses in turn, backing off after failures.
/// Ends when the endpoint shuts down or `stop` is set (device removed or re-addressed).
async fn dial_loop(
    inner: Arc<Inner>,
    device: DeviceId,
    addresses: Vec<PeerAddress>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut shutdown = inner.shutdown.subscribe();
    let mut failures: u32 = 0;
    loop {
        if inner.is_shutting_down() || *stop.borrow() {
            return;
        }
        if inner.lock_live().contains_key(&device) {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = stop.wait_for(|s| *s) => return,
                _ = wake.notified() => {}
            }
            // Give a peer that just dropped us a moment, and never spin on a flapping peer.
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => return,
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(inner.backoff.delay(0)) => {}
            }
            continue;
        }
        let mut connected = false;
        for address in dial_targets(&inner, device, &addresses).await.iter() {
            if *stop.borrow() {
                return;
            }
            match dial_once(&inner, device, address).await {
                Ok(_) => {
                    connected = true;
                    break;
                }
                Err(ConnectError::AlreadyConnected { .. }) => {
                    connected = true;
                    break;
                }
                Err(e) => {
                    tracing::debug!(%device, %address, error = %e, "dial failed");
                }
            }
        }
        let delay = if connected {
            failures = 0;
            continue;
        } else {
            let d = inner.backoff.delay(failures);
            failures = failures.saturating_add(1);
            d
        };
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = stop.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(delay) => {}
            // Discovery found the device (or its connection ended): try again now.
            _ = wake.notified() => {}
        }
    }
}

/// What to dial this round: the static addresses, then (for `dynamic`) what discovery
/// knows, LAN addresses first; duplicates and addresses we cannot dial left out.
async fn dial_targets(
    inner: &Arc<Inner>,
    device: DeviceId,
    configured: &[PeerAddress],
) -> Vec<PeerAddress> {
    let mut out: Vec<PeerAddress> = configured
        .iter()
        .filter(|a| **a != PeerAddress::Dynamic)
        .cloned()
        .collect();
    if configured.contains(&PeerAddress::Dynamic)
        && let Some(discovery) = inner.discovery.get()
    {
        let mut found: Vec<PeerAddress> = discovery
            .lookup(device)
            .await
            .iter()
            .filter_map(|a| PeerAddress::parse(a).ok())
            .filter(|a| *a != PeerAddress::Dynamic && !a.is_unspecified())
            .collect();
        found.sort_by_key(|a| !a.is_lan());
        for a in found {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

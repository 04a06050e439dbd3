//! One established BEP connection: a writer task and a reader task around syncd-proto's codec,
//! exposed to the engine as a [`MessageSender`] / [`MessageReceiver`] pair.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use syncd_proto::{CompressionPolicy, Decoder, Message, bep};
use syncd_types::DeviceId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::counters::ByteCounters;

/// The reason sent to a connection that a newer one replaces (Syncthing's exact text).
pub const REASON_REPLACING: &str = "replacing connection";
/// The reason sent on local shutdown.
pub const REASON_SHUTDOWN: &str = "shutting down";

/// Identifies one connection for the lifetime of an endpoint (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Who opened the TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// We dialed the peer.
    Outbound,
    /// The peer dialed us.
    Inbound,
}

/// Peer faults found in decoded messages. Each closes the connection with `Close{reason}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Only ClusterConfig or Close may come first (spec §7.1).
    #[error("protocol error: {message_type} before ClusterConfig")]
    MessageBeforeClusterConfig {
        /// The offending message type.
        message_type: &'static str,
    },
    /// A successful Response whose data length differs from the requested size (spec §0.3).
    #[error("protocol error: response {id} has {received} bytes, requested {requested}")]
    ResponseLength {
        /// The Request/Response id.
        id: i32,
        /// The size we asked for.
        requested: i32,
        /// The bytes the peer sent.
        received: usize,
    },
}

/// Why a connection ended (or cannot be used). Returned by every later call on its halves.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The peer sent `Close{reason}`.
    #[error("closed by peer: {reason}")]
    ClosedByPeer {
        /// The peer's reason.
        reason: String,
    },
    /// A newer connection to the same device replaced this one.
    #[error("replaced by a newer connection")]
    Replaced,
    /// We closed it (`MessageSender::close`, endpoint shutdown, or both halves dropped).
    #[error("closed locally: {reason}")]
    ClosedLocally {
        /// The reason sent to the peer.
        reason: String,
    },
    /// Nothing was received for longer than the receive timeout (spec §7.4).
    #[error("no data received for {silent_for:?}")]
    Timeout {
        /// The receive timeout that expired.
        silent_for: Duration,
    },
    /// The peer broke a protocol rule after a message decoded; we sent `Close`.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The byte stream could not be decoded; dropped without `Close` (spec §0.5).
    #[error("framing error: {0}")]
    Framing(Arc<syncd_proto::DecodeError>),
    /// A message could not be encoded (a local bug or an oversized message).
    #[error("encoding error: {0}")]
    Encode(Arc<syncd_proto::EncodeError>),
    /// The peer closed the TCP/TLS stream without `Close`.
    #[error("connection closed by peer without Close")]
    Eof,
    /// A socket or TLS error.
    #[error("I/O error: {0}")]
    Io(Arc<std::io::Error>),
}

impl ConnectionError {
    /// True when the other side broke the protocol (as opposed to a local close or network loss).
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, Self::Protocol(_) | Self::Framing(_))
    }
}

/// What the writer does when the connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CloseCmd {
    Open,
    /// Write `Close{reason}` (bounded by the close timeout), then shut the stream down.
    Graceful(String),
    /// Drop the stream at once, no `Close`.
    Abort,
}

/// Timing knobs of a connection (spec §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Send a Ping after this long without writing anything.
    pub ping_after: Duration,
    /// Close after this long without receiving anything.
    pub receive_timeout: Duration,
    /// How long a final `Close` may take to write.
    pub close_timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            ping_after: Duration::from_secs(90),
            receive_timeout: Duration::from_secs(300),
            close_timeout: Duration::from_secs(10),
        }
    }
}

/// State shared by the two halves and the tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: ConnectionId,
    pub(crate) device: DeviceId,
    error: Mutex<Option<ConnectionError>>,
    close: watch::Sender<CloseCmd>,
    /// Outstanding requests we sent: id → requested size.
    outstanding: Mutex<HashMap<i32, i32>>,
    cluster_config_sent: AtomicBool,
}

impl Shared {
    /// Records the first terminal error and tells the tasks how to end. Later calls are no-ops.
    pub(crate) fn fail(&self, err: ConnectionError, how: CloseHow) {
        {
            let mut slot = self.error.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_some() {
                return;
            }
            match &err {
                ConnectionError::Protocol(_) | ConnectionError::Framing(_) => {
                    tracing::warn!(device = %self.device, conn = self.id.0, error = %err, "closing connection: peer fault");
                }
                _ => {
                    tracing::debug!(device = %self.device, conn = self.id.0, error = %err, "connection ending");
                }
            }
            *slot = Some(err);
        }
        let cmd = match how {
            CloseHow::Graceful(reason) => CloseCmd::Graceful(reason),
            CloseHow::Abort => CloseCmd::Abort,
        };
        self.close.send_if_modified(|c| {
            if *c == CloseCmd::Open {
                *c = cmd;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn error(&self) -> ConnectionError {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or(ConnectionError::Eof)
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.close.borrow() != CloseCmd::Open
    }
}

/// How [`Shared::fail`] ends the connection.
#[derive(Debug, Clone)]
pub(crate) enum CloseHow {
    Graceful(String),
    Abort,
}

/// Everything known about an established connection. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// This connection's id.
    pub id: ConnectionId,
    /// The authenticated peer (SHA-256 of its certificate).
    pub device: DeviceId,
    /// The peer's Hello (`client_name`, `client_version`, `device_name`).
    pub hello: bep::Hello,
    /// The peer's address.
    pub remote_addr: SocketAddr,
    /// Our end of the TCP connection.
    pub local_addr: SocketAddr,
    /// Who dialed.
    pub direction: Direction,
    /// When the connection was established (wall clock, for REST `startedAt`).
    pub started_at: SystemTime,
    /// Bytes moved on this connection (TLS records included).
    pub counters: Arc<ByteCounters>,
}

impl ConnectionInfo {
    /// `"<client_name> <client_version>"`, as Syncthing's REST shows non-Syncthing clients.
    pub fn client_version_string(&self) -> String {
        format!("{} {}", self.hello.client_name, self.hello.client_version)
    }

    /// True when the peer says it is syncd (send it syncd extensions).
    pub fn peer_is_syncd(&self) -> bool {
        self.hello.client_name == syncd_proto::SYNCD_CLIENT_NAME
    }
}

/// An established, authenticated connection handed to the engine.
#[derive(Debug)]
pub struct Connection {
    /// Who and where.
    pub info: ConnectionInfo,
    /// Sends messages (clone it freely).
    pub sender: MessageSender,
    /// Receives messages (one consumer).
    pub receiver: MessageReceiver,
}

/// The sending half. Cloneable; `send` waits while the outgoing queue is full (back-pressure).
/// When every clone and the receiver are dropped, the connection closes.
#[derive(Debug, Clone)]
pub struct MessageSender {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

impl MessageSender {
    /// Queues `msg`. The first message must be a ClusterConfig (no Ping is sent before it).
    /// Returns the connection's terminal error once it has ended.
    pub async fn send(&self, msg: Message) -> Result<(), ConnectionError> {
        if self.shared.is_closed() {
            return Err(self.shared.error());
        }
        self.tx.send(msg).await.map_err(|_| self.shared.error())
    }

    /// Ends the connection: messages already queued are written, then `Close{reason}` (all within
    /// the close timeout); later sends fail.
    pub fn close(&self, reason: &str) {
        self.shared.fail(
            ConnectionError::ClosedLocally {
                reason: reason.to_string(),
            },
            CloseHow::Graceful(reason.to_string()),
        );
    }

    /// The peer this sender talks to.
    pub fn device(&self) -> DeviceId {
        self.shared.device
    }

    /// True once the connection has ended (sends will fail).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

/// The receiving half. Ping is handled internally and never delivered; a peer's Close ends the
/// stream with [`ConnectionError::ClosedByPeer`]. While the engine does not call `recv`, the
/// connection stops reading from the socket (back-pressure).
#[derive(Debug)]
pub struct MessageReceiver {
    rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
}

impl MessageReceiver {
    /// The next message, or the reason the connection ended (after every delivered message).
    pub async fn recv(&mut self) -> Result<Message, ConnectionError> {
        match self.rx.recv().await {
            Some(m) => Ok(m),
            None => Err(self.shared.error()),
        }
    }

    /// The peer this receiver listens to.
    pub fn device(&self) -> DeviceId {
        self.shared.device
    }
}

/// Parameters for [`spawn`].
pub(crate) struct Spawn {
    pub id: ConnectionId,
    pub device: DeviceId,
    pub compression: CompressionPolicy,
    pub keepalive: Keepalive,
    pub queue_depth: usize,
    /// Bytes that arrived with the peer's Hello and belong to the message stream.
    pub leftover: Vec<u8>,
}

/// Starts the reader and writer tasks on `stream`. Returns the halves, the shared state (for
/// closing from the endpoint) and a handle that completes when both tasks have finished.
pub(crate) fn spawn<S>(
    stream: S,
    p: Spawn,
) -> (
    MessageSender,
    MessageReceiver,
    Arc<Shared>,
    tokio::task::JoinHandle<()>,
)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (close_tx, close_rx) = watch::channel(CloseCmd::Open);
    let shared = Arc::new(Shared {
        id: p.id,
        device: p.device,
        error: Mutex::new(None),
        close: close_tx,
        outstanding: Mutex::new(HashMap::new()),
        cluster_config_sent: AtomicBool::new(false),
    });
    let depth = p.queue_depth.max(1);
    let (out_tx, out_rx) = mpsc::channel(depth);
    let (in_tx, in_rx) = mpsc::channel(depth);
    let (rd, wr) = tokio::io::split(stream);
    let reader = tokio::spawn(read_loop(
        rd,
        p.leftover,
        in_tx,
        Arc::clone(&shared),
        p.keepalive,
        close_rx.clone(),
    ));
    let writer = tokio::spawn(write_loop(
        wr,
        out_rx,
        Arc::clone(&shared),
        p.compression,
        p.keepalive,
        close_rx,
    ));
    let done = tokio::spawn(async move {
        let _ = reader.await;
        let _ = writer.await;
    });
    (
        MessageSender {
            tx: out_tx,
            shared: Arc::clone(&shared),
        },
        MessageReceiver {
            rx: in_rx,
            shared: Arc::clone(&shared),
        },
        shared,
        done,
    )
}

/// Largest batch of queued messages coalesced into one write.
const WRITE_BATCH: usize = 256 * 1024;

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    policy: CompressionPolicy,
    ka: Keepalive,
    mut close_rx: watch::Receiver<CloseCmd>,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BATCH);
    let mut last_write = Instant::now();
    // Whether the byte stream is at a message boundary (a Close may still be written).
    let mut clean = true;
    loop {
        let cc_sent = shared.cluster_config_sent.load(Ordering::Relaxed);
        buf.clear();
        tokio::select! {
            biased;
            _ = close_rx.changed() => break,
            m = rx.recv() => {
                let Some(first) = m else {
                    shared.fail(
                        ConnectionError::ClosedLocally { reason: "bye".into() },
                        CloseHow::Graceful("bye".into()),
                    );
                    break;
                };
                let mut next = Some(first);
                while let Some(msg) = next.take() {
                    note_outgoing(&shared, &msg);
                    if let Err(e) = syncd_proto::encode_message(&msg, policy, &mut buf) {
                        shared.fail(ConnectionError::Encode(Arc::new(e)), CloseHow::Abort);
                        return;
                    }
                    if buf.len() < WRITE_BATCH {
                        next = rx.try_recv().ok();
                    }
                }
            }
            _ = tokio::time::sleep_until(last_write + ka.ping_after), if cc_sent => {
                if let Err(e) = syncd_proto::encode_message(&Message::Ping(bep::Ping {}), policy, &mut buf) {
                    shared.fail(ConnectionError::Encode(Arc::new(e)), CloseHow::Abort);
                    return;
                }
            }
        }
        clean = false;
        let write = async {
            w.write_all(&buf).await?;
            w.flush().await
        };
        tokio::select! {
            biased;
            _ = close_rx.changed() => break,
            r = write => match r {
                Ok(()) => { clean = true; last_write = Instant::now(); }
                Err(e) => {
                    shared.fail(ConnectionError::Io(Arc::new(e)), CloseHow::Abort);
                    break;
                }
            }
        }
    }
    let cmd = close_rx.borrow().clone();
    if let CloseCmd::Graceful(reason) = cmd
        && clean
    {
        buf.clear();
        // Messages already queued go out first (bounded by the close timeout below).
        while let Ok(msg) = rx.try_recv() {
            note_outgoing(&shared, &msg);
            if syncd_proto::encode_message(&msg, policy, &mut buf).is_err() {
                break;
            }
        }
        let close = Message::Close(bep::Close { reason });
        if syncd_proto::encode_message(&close, policy, &mut buf).is_ok() {
            let _ = tokio::time::timeout(ka.close_timeout, async {
                w.write_all(&buf).await?;
                w.flush().await?;
                w.shutdown().await
            })
            .await;
        }
    }
}

/// Bookkeeping for messages on their way out.
fn note_outgoing(shared: &Shared, msg: &Message) {
    match msg {
        Message::ClusterConfig(_) => shared.cluster_config_sent.store(true, Ordering::Relaxed),
        Message::Request(r) => {
            shared
                .outstanding
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(r.id, r.size);
        }
        _ => {}
    }
}

/// What to do with one decoded message.
enum Verdict {
    Deliver(Message),
    Skip,
    End(ConnectionError, CloseHow),
}

fn message_type(m: &Message) -> &'static str {
    match m {
        Message::ClusterConfig(_) => "ClusterConfig",
        Message::Index(_) => "Index",
        Message::IndexUpdate(_) => "IndexUpdate",
        Message::Request(_) => "Request",
        Message::Response(_) => "Response",
        Message::DownloadProgress(_) => "DownloadProgress",
        Message::Ping(_) => "Ping",
        Message::Close(_) => "Close",
    }
}

fn judge(shared: &Shared, got_cc: &mut bool, msg: Message) -> Verdict {
    let protocol = |e: ProtocolError| {
        let reason = e.to_string();
        Verdict::End(ConnectionError::Protocol(e), CloseHow::Graceful(reason))
    };
    match msg {
        Message::Close(c) => Verdict::End(
            ConnectionError::ClosedByPeer { reason: c.reason },
            CloseHow::Abort,
        ),
        Message::ClusterConfig(cc) => {
            *got_cc = true;
            if cc.secondary {
                // A 2.x peer's extra connection; its empty folder list does not mean "unshared".
                tracing::debug!(device = %shared.device, "ignoring secondary ClusterConfig");
                Verdict::Skip
            } else {
                Verdict::Deliver(Message::ClusterConfig(cc))
            }
        }
        m if !*got_cc => protocol(ProtocolError::MessageBeforeClusterConfig {
            message_type: message_type(&m),
        }),
        Message::Ping(_) => Verdict::Skip,
        Message::Response(r) => {
            let requested = shared
                .outstanding
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&r.id);
            match requested {
                None => {
                    // Go ignores responses to unknown ids; so do we.
                    tracing::debug!(device = %shared.device, id = r.id, "response to unknown request id");
                    Verdict::Skip
                }
                Some(size)
                    if r.code == bep::ErrorCode::NoError as i32
                        && usize::try_from(size).ok() != Some(r.data.len()) =>
                {
                    protocol(ProtocolError::ResponseLength {
                        id: r.id,
                        requested: size,
                        received: r.data.len(),
                    })
                }
                Some(_) => Verdict::Deliver(Message::Response(r)),
            }
        }
        m => Verdict::Deliver(m),
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut r: R,
    leftover: Vec<u8>,
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
    ka: Keepalive,
    mut close_rx: watch::Receiver<CloseCmd>,
) {
    let mut dec = Decoder::new();
    dec.feed(&leftover);
    let mut buf = vec![0u8; 64 * 1024];
    let mut got_cc = false;
    let mut deadline = Instant::now() + ka.receive_timeout;
    loop {
        loop {
            let msg = match dec.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    shared.fail(ConnectionError::Framing(Arc::new(e)), CloseHow::Abort);
                    return;
                }
            };
            match judge(&shared, &mut got_cc, msg) {
                Verdict::Skip => {}
                Verdict::End(err, how) => {
                    shared.fail(err, how);
                    return;
                }
                Verdict::Deliver(m) => {
                    tokio::select! {
                        biased;
                        _ = close_rx.changed() => return,
                        sent = tx.send(m) => if sent.is_err() {
                            // The engine dropped the receiver: nobody listens any more.
                            shared.fail(
                                ConnectionError::ClosedLocally { reason: "bye".into() },
                                CloseHow::Graceful("bye".into()),
                            );
                            return;
                        }
                    }
                }
            }
        }
        tokio::select! {
            biased;
            _ = close_rx.changed() => return,
            res = tokio::time::timeout_at(deadline, r.read(&mut buf)) => match res {
                Err(_) => {
                    shared.fail(ConnectionError::Timeout { silent_for: ka.receive_timeout }, CloseHow::Abort);
                    return;
                }
                Ok(Ok(0)) => {
                    shared.fail(ConnectionError::Eof, CloseHow::Abort);
                    return;
                }
                Ok(Ok(n)) => {
                    deadline = Instant::now() + ka.receive_timeout;
                    dec.feed(buf.get(..n).unwrap_or_default());
                }
                Ok(Err(e)) => {
                    shared.fail(ConnectionError::Io(Arc::new(e)), CloseHow::Abort);
                    return;
                }
            }
        }
    }
}

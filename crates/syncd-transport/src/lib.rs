//! `syncd-transport`: authenticated TLS 1.3 connections between devices, speaking BEP's Hello and
//! framed message stream (via `syncd-proto`) so that a stock Syncthing peer accepts us.
//!
//! # Key types
//!
//! - [`Identity`]: our self-signed certificate and key (`cert.pem` / `key.pem`, CN and SAN
//!   `syncthing`, ECDSA P-384). Loads pairs Syncthing made (PKCS#8, SEC1, PKCS#1 keys), so a
//!   machine moving from Syncthing keeps its device ID.
//! - [`tls`]: rustls configs with the `ring` provider: TLS 1.3 only, ALPN `bep/1.0`, one
//!   certificate each way, client certificates required, no resumption. The verifiers accept any
//!   self-signed peer certificate but **still verify the handshake signature** with its key.
//! - [`Endpoint`]: listens (port 0 allowed, [`Endpoint::local_addr`] reports the real one), dials
//!   configured [`PeerAddress`]es with exponential [`Backoff`] and jitter, authenticates the peer's
//!   device ID against the configured devices, exchanges Hello (`client_name = "syncd"`), and
//!   emits [`Event`]s: [`Event::Connected`] with a [`Connection`], [`Event::Disconnected`], and
//!   [`Event::UnknownDevice`] for refused strangers. [`Endpoint::set_devices`] changes the
//!   device set at runtime: new devices are accepted and dialed, removed ones are refused and
//!   their live connection closed.
//! - [`Connection`]: [`ConnectionInfo`] (device, peer Hello, addresses, byte counters) plus a
//!   cloneable [`MessageSender`] and a [`MessageReceiver`] of `syncd_proto::Message`s, usable from
//!   different tasks, with bounded queues (back-pressure) both ways.
//!
//! # Invariants
//!
//! - At most one live connection per device. A second one within 10 s of the first is dropped
//!   after Hello; an older one is replaced and receives `Close{"replacing connection"}`. Between
//!   two syncd peers dialing each other at once, both ends keep the connection dialed by the
//!   smaller device ID (same choice on both ends).
//! - No Ping before our first ClusterConfig; a Ping after 90 s without writing; the connection
//!   ends after 300 s without receiving anything.
//! - Peer faults end the connection with a typed [`ConnectionError`] and a `tracing` line naming
//!   the device: a protocol violation after decoding (message before ClusterConfig, a Response of
//!   the wrong length) sends `Close{reason}`; a framing/decoding error drops the stream without
//!   Close, as Syncthing does.
//! - Responses to unknown request ids are dropped (as Go does); a `ClusterConfig{secondary}` from a
//!   2.x peer is not delivered (it does not mean "stopped sharing").
//!
//! # What it does not do
//!
//! No relays or QUIC; discovery ([`discovery`]) only when the config enables it (without it,
//! `dynamic` addresses mean "accept incoming only"); no folder or
//! index logic (the engine sends ClusterConfig first and interprets every message); no checking
//! of FileInfo/Request contents beyond response lengths (the engine validates those); no CN check
//! of peer certificates (device IDs are what we trust).
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use syncd_transport::{DeviceConfig, Endpoint, EndpointConfig, Event, Identity, PeerAddress};
//!
//! let identity = Identity::load_or_generate(std::path::Path::new("/var/lib/syncd"))?;
//! let peer = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2".parse()?;
//! let mut config = EndpointConfig::new(identity, "laptop");
//! config.devices = vec![DeviceConfig::new(peer).with_address(PeerAddress::parse("tcp://10.0.0.2:22000")?)];
//! let (endpoint, mut events) = Endpoint::start(config).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Connected(conn) = event {
//!         // Send ClusterConfig first, then read with conn.receiver.recv().await.
//!         println!("{} connected as {}", conn.info.device, conn.info.client_version_string());
//!     }
//! }
//! endpoint.shutdown().await;
//! # Ok(()) }
//! ```

pub mod address;
pub mod backoff;
mod connection;
pub mod counters;
pub mod discovery;
mod endpoint;
pub mod hello;
pub mod identity;
mod policy;
pub mod tls;

pub use address::{AddressError, PeerAddress};
pub use backoff::Backoff;
pub use connection::{
    Connection, ConnectionError, ConnectionId, ConnectionInfo, Direction, Keepalive,
    MessageReceiver, MessageSender, ProtocolError, REASON_REPLACING, REASON_SHUTDOWN,
};
pub use counters::{ByteCounters, ByteTotals};
pub use discovery::{Discovery, DiscoveryConfig};
pub use endpoint::{
    ConnectError, DeviceConfig, Endpoint, EndpointConfig, EndpointError, Event,
    REASON_DEVICE_REMOVED, Timeouts, UnknownDevice,
};
pub use identity::{Identity, IdentityError};
pub use policy::REPLACE_AFTER;

//! Two endpoints (or an endpoint and a hand-driven peer) on loopback over real TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/raw.rs"]
mod raw;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use raw::{Next, RawPeer};
use syncd_proto::{Message, bep};
use syncd_transport::{
    Backoff, ConnectError, Connection, ConnectionError, DeviceConfig, Endpoint, EndpointConfig,
    Event, Identity, PeerAddress, ProtocolError, tls,
};
use tokio::sync::mpsc;

/// Upper bound for waiting on an event; a failure bound, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(30);

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.2,
    }
}

async fn start(
    identity: &Identity,
    name: &str,
    devices: Vec<DeviceConfig>,
) -> (Endpoint, mpsc::Receiver<Event>) {
    let mut cfg = EndpointConfig::new(identity.clone(), name);
    cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.devices = devices;
    cfg.backoff = fast_backoff();
    Endpoint::start(cfg).await.unwrap()
}

fn addr_of(ep: &Endpoint) -> PeerAddress {
    PeerAddress::parse(&format!("tcp://{}", ep.local_addr().unwrap())).unwrap()
}

async fn next_event(events: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("no event in time")
        .expect("event stream ended")
}

async fn next_connected(events: &mut mpsc::Receiver<Event>) -> Connection {
    loop {
        if let Event::Connected(c) = next_event(events).await {
            return c;
        }
    }
}

async fn next_disconnected(events: &mut mpsc::Receiver<Event>) -> ConnectionError {
    loop {
        if let Event::Disconnected { error, .. } = next_event(events).await {
            return error;
        }
    }
}

async fn recv(c: &mut Connection) -> Result<Message, ConnectionError> {
    tokio::time::timeout(PATIENCE, c.receiver.recv())
        .await
        .expect("no message in time")
}

fn index(folder: &str) -> Message {
    Message::Index(bep::Index {
        folder: folder.into(),
        ..Default::default()
    })
}

/// A listens (accept-only for B); B dials A.
async fn connected_pair() -> (
    (Endpoint, mpsc::Receiver<Event>, Identity),
    (Endpoint, mpsc::Receiver<Event>, Identity),
) {
    let ia = Identity::generate().unwrap();
    let ib = Identity::generate().unwrap();
    let (a, ea) = start(&ia, "alpha", vec![DeviceConfig::new(ib.device_id())]).await;
    let (b, eb) = start(
        &ib,
        "beta",
        vec![DeviceConfig::new(ia.device_id()).with_address(addr_of(&a))],
    )
    .await;
    ((a, ea, ia), (b, eb, ib))
}

#[tokio::test]
async fn two_endpoints_authenticate_and_exchange_messages_both_ways() {
    let ((a, mut ea, ia), (b, mut eb, ib)) = connected_pair().await;
    let mut ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    assert_eq!(ca.info.device, ib.device_id());
    assert_eq!(cb.info.device, ia.device_id());
    assert_eq!(ca.info.hello.device_name, "beta");
    assert_eq!(cb.info.hello.device_name, "alpha");
    assert_eq!(ca.info.client_version_string(), "syncd v0.1.0");
    assert!(ca.info.peer_is_syncd());

    ca.sender.send(raw::cluster_config()).await.unwrap();
    cb.sender.send(raw::cluster_config()).await.unwrap();
    ca.sender.send(index("from-a")).await.unwrap();
    cb.sender.send(index("from-b")).await.unwrap();
    assert!(matches!(
        recv(&mut ca).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    assert!(matches!(
        recv(&mut cb).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    assert_eq!(recv(&mut ca).await.unwrap(), index("from-b"));
    assert_eq!(recv(&mut cb).await.unwrap(), index("from-a"));

    let (ta, tb) = (a.totals(), b.totals());
    assert!(ta.in_bytes > 0 && ta.out_bytes > 0);
    assert!(tb.in_bytes > 0 && tb.out_bytes > 0);
    assert!(ca.info.counters.totals().in_bytes > 0);
}

#[tokio::test]
async fn close_reason_reaches_the_peer() {
    let ((_a, mut ea, _), (_b, mut eb, _)) = connected_pair().await;
    let ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    ca.sender.send(raw::cluster_config()).await.unwrap();
    ca.sender.close("bye");
    assert!(matches!(
        recv(&mut cb).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    match recv(&mut cb).await {
        Err(ConnectionError::ClosedByPeer { reason }) => assert_eq!(reason, "bye"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn shutdown_sends_close_to_every_peer() {
    let ((a, mut ea, _), (_b, mut eb, _)) = connected_pair().await;
    let ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    ca.sender.send(raw::cluster_config()).await.unwrap();
    a.shutdown().await;
    assert!(matches!(
        recv(&mut cb).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    match recv(&mut cb).await {
        Err(ConnectionError::ClosedByPeer { reason }) => assert_eq!(reason, "shutting down"),
        other => panic!("{other:?}"),
    }
    assert!(ca.sender.send(raw::cluster_config()).await.is_err());
}

/// A TCP forwarder whose live connections the test can cut.
async fn cuttable_proxy(target: SocketAddr) -> (SocketAddr, tokio::sync::watch::Sender<u32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (cut_tx, cut_rx) = tokio::sync::watch::channel(0u32);
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let mut cut = cut_rx.clone();
            cut.borrow_and_update();
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                    _ = cut.changed() => {}
                }
            });
        }
    });
    (addr, cut_tx)
}

#[tokio::test]
async fn dropped_tcp_connection_is_redialed_and_works_again() {
    let ia = Identity::generate().unwrap();
    let ib = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ib.device_id())]).await;
    let (proxy, cut) = cuttable_proxy(a.local_addr().unwrap()).await;
    let via_proxy = PeerAddress::parse(&format!("tcp://{proxy}")).unwrap();
    let (_b, mut eb) = start(
        &ib,
        "beta",
        vec![DeviceConfig::new(ia.device_id()).with_address(via_proxy)],
    )
    .await;
    let first_a = next_connected(&mut ea).await;
    let first_b = next_connected(&mut eb).await;

    cut.send_modify(|n| *n += 1);
    next_disconnected(&mut ea).await;
    next_disconnected(&mut eb).await;

    let mut second_a = next_connected(&mut ea).await;
    let second_b = next_connected(&mut eb).await;
    assert_ne!(second_a.info.id, first_a.info.id);
    assert_ne!(second_b.info.id, first_b.info.id);
    second_b.sender.send(raw::cluster_config()).await.unwrap();
    assert!(matches!(
        recv(&mut second_a).await.unwrap(),
        Message::ClusterConfig(_)
    ));
}

#[tokio::test]
async fn unknown_device_is_refused_after_hello_and_reported() {
    let ia = Identity::generate().unwrap();
    let ib = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![]).await;
    let (b, _eb) = start(&ib, "beta", vec![]).await;
    b.dial(ia.device_id(), &addr_of(&a)).await.ok();
    match next_event(&mut ea).await {
        Event::UnknownDevice(u) => {
            assert_eq!(u.device, ib.device_id());
            assert_eq!(u.client, "syncd v0.1.0");
            assert!(u.address.ip().is_loopback());
        }
        other => panic!("expected UnknownDevice, got {other:?}"),
    }
    assert!(a.connected_devices().is_empty());
}

#[tokio::test]
async fn unknown_device_report_carries_its_hello_name() {
    let ia = Identity::generate().unwrap();
    let ib = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![]).await;
    // B knows A, so B's Hello to A carries B's name (as Go's does).
    let (b, _eb) = start(&ib, "beta", vec![DeviceConfig::new(ia.device_id())]).await;
    b.dial(ia.device_id(), &addr_of(&a)).await.ok();
    match next_event(&mut ea).await {
        Event::UnknownDevice(u) => assert_eq!(u.name, "beta"),
        other => panic!("expected UnknownDevice, got {other:?}"),
    }
}

/// A certified key pairing `cert_of`'s certificate with `key_of`'s private key.
fn forged_key(cert_of: &Identity, key_of_dir: &std::path::Path) -> Arc<rustls::sign::CertifiedKey> {
    use rustls_pki_types::pem::PemObject;
    let key_pem = std::fs::read(key_of_dir.join("key.pem")).unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let signer = tls::provider().key_provider.load_private_key(key).unwrap();
    Arc::new(rustls::sign::CertifiedKey::new(
        vec![cert_of.cert_der().clone()],
        signer,
    ))
}

#[tokio::test]
async fn peer_with_a_configured_certificate_but_another_key_is_refused_inbound() {
    let ia = Identity::generate().unwrap();
    let victim = Identity::generate().unwrap();
    let attacker_dir = tempfile::tempdir().unwrap();
    Identity::load_or_generate(attacker_dir.path()).unwrap();
    let witness = Identity::generate().unwrap();
    let (a, mut ea) = start(
        &ia,
        "alpha",
        vec![
            DeviceConfig::new(victim.device_id()),
            DeviceConfig::new(witness.device_id()),
        ],
    )
    .await;
    let addr = a.local_addr().unwrap();

    let forged = tls::client_config_for_key(forged_key(&victim, attacker_dir.path())).unwrap();
    let got = RawPeer::connect_with(addr, forged, "syncthing").await;
    assert!(got.is_none(), "forged handshake must not reach Hello");

    // The next event A emits is the witness's connection: the forger never got one.
    let _w = RawPeer::connect(addr, &witness, "syncthing").await;
    match next_event(&mut ea).await {
        Event::Connected(c) => assert_eq!(c.info.device, witness.device_id()),
        other => panic!("expected the witness's connection, got {other:?}"),
    }
}

#[tokio::test]
async fn peer_with_the_genuine_key_for_that_certificate_is_accepted() {
    // Control for the forgery test: the same path with the matching key reaches Hello.
    let ia = Identity::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let victim = Identity::load_or_generate(dir.path()).unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(victim.device_id())]).await;
    let genuine = tls::client_config_for_key(forged_key(&victim, dir.path())).unwrap();
    let peer = RawPeer::connect_with(a.local_addr().unwrap(), genuine, "syncthing").await;
    assert!(peer.is_some());
    assert_eq!(
        next_connected(&mut ea).await.info.device,
        victim.device_id()
    );
}

#[tokio::test]
async fn server_with_a_configured_certificate_but_another_key_is_refused_outbound() {
    let ia = Identity::generate().unwrap();
    let victim = Identity::generate().unwrap();
    let attacker_dir = tempfile::tempdir().unwrap();
    Identity::load_or_generate(attacker_dir.path()).unwrap();
    let forged = tls::server_config_for_key(forged_key(&victim, attacker_dir.path())).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(&forged));
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    let mut out = Vec::new();
                    syncd_proto::encode_hello(&bep::Hello::default(), &mut out);
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut s, &out).await;
                }
            });
        }
    });
    let (a, _ea) = start(&ia, "alpha", vec![DeviceConfig::new(victim.device_id())]).await;
    let target = PeerAddress::parse(&format!("tcp://{addr}")).unwrap();
    let err = a.dial(victim.device_id(), &target).await.unwrap_err();
    assert!(matches!(err, ConnectError::Tls(_)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn silent_peer_gets_pings_then_times_out() {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ip.device_id())]).await;
    let mut peer = RawPeer::connect(a.local_addr().unwrap(), &ip, "syncthing").await;
    let mut conn = next_connected(&mut ea).await;
    conn.sender.send(raw::cluster_config()).await.unwrap();
    peer.send(&raw::cluster_config()).await;
    assert!(matches!(
        recv(&mut conn).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    // From here the peer says nothing. Time is paused: the runtime jumps to each timer.
    let seen = peer.drain().await;
    assert!(matches!(seen.first(), Some(Message::ClusterConfig(_))));
    let pings = seen
        .iter()
        .filter(|m| matches!(m, Message::Ping(_)))
        .count();
    assert!(
        pings >= 3,
        "expected a Ping every 90 s before the 300 s timeout, got {seen:?}"
    );
    match conn.receiver.recv().await {
        Err(ConnectionError::Timeout { silent_for }) => {
            assert_eq!(silent_for, Duration::from_secs(300))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_ping_is_sent_before_our_cluster_config() {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let mut cfg = EndpointConfig::new(ia.clone(), "alpha");
    cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.devices = vec![DeviceConfig::new(ip.device_id())];
    cfg.keepalive.ping_after = Duration::from_millis(10);
    let (a, mut ea) = Endpoint::start(cfg).await.unwrap();
    let mut peer = RawPeer::connect(a.local_addr().unwrap(), &ip, "syncthing").await;
    let conn = next_connected(&mut ea).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.sender.send(raw::cluster_config()).await.unwrap();
    // The first thing on the wire is the ClusterConfig, pings only after it.
    assert!(matches!(
        peer.next().await,
        Next::Msg(Message::ClusterConfig(_))
    ));
    assert!(matches!(peer.next().await, Next::Msg(Message::Ping(_))));
}

#[tokio::test]
async fn simultaneous_dials_between_syncd_peers_leave_exactly_one_connection() {
    for _round in 0..3 {
        let ia = Identity::generate().unwrap();
        let ib = Identity::generate().unwrap();
        let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ib.device_id())]).await;
        let (b, mut eb) = start(&ib, "beta", vec![DeviceConfig::new(ia.device_id())]).await;
        let (addr_a, addr_b) = (addr_of(&a), addr_of(&b));
        let (ra, rb) = tokio::join!(
            a.dial(ib.device_id(), &addr_b),
            b.dial(ia.device_id(), &addr_a)
        );
        assert!(ra.is_ok() || rb.is_ok(), "{ra:?} {rb:?}");
        // Follow both event streams until each side has one live connection and they are the
        // same TCP connection.
        let mut live_a: Vec<Connection> = Vec::new();
        let mut live_b: Vec<Connection> = Vec::new();
        let settled = |la: &Vec<Connection>, lb: &Vec<Connection>| {
            la.len() == 1
                && lb.len() == 1
                && la[0].info.remote_addr == lb[0].info.local_addr
                && lb[0].info.remote_addr == la[0].info.local_addr
        };
        while !settled(&live_a, &live_b) {
            tokio::select! {
                e = next_event(&mut ea) => apply(&mut live_a, e),
                e = next_event(&mut eb) => apply(&mut live_b, e),
            }
        }
        let mut ca = live_a.pop().unwrap();
        let mut cb = live_b.pop().unwrap();
        ca.sender.send(raw::cluster_config()).await.unwrap();
        cb.sender.send(raw::cluster_config()).await.unwrap();
        assert!(matches!(
            recv(&mut ca).await.unwrap(),
            Message::ClusterConfig(_)
        ));
        assert!(matches!(
            recv(&mut cb).await.unwrap(),
            Message::ClusterConfig(_)
        ));
        assert_eq!(a.connected_devices(), vec![ib.device_id()]);
        assert_eq!(b.connected_devices(), vec![ia.device_id()]);
    }
}

fn apply(live: &mut Vec<Connection>, e: Event) {
    match e {
        Event::Connected(c) => live.push(c),
        Event::Disconnected { id, .. } => live.retain(|c| c.info.id != id),
        _ => {}
    }
}

#[tokio::test(start_paused = true)]
async fn second_connection_within_ten_seconds_is_dropped_without_close() {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ip.device_id())]).await;
    let addr = a.local_addr().unwrap();
    let _first = RawPeer::connect(addr, &ip, "syncthing").await;
    let first_conn = next_connected(&mut ea).await;
    tokio::time::advance(Duration::from_secs(2)).await;
    let mut second = RawPeer::connect(addr, &ip, "syncthing").await;
    // Hello was exchanged, then the new connection is dropped with no Close.
    let seen = second.drain().await;
    assert_eq!(raw::close_reason(&seen), None, "{seen:?}");
    assert!(!first_conn.sender.is_closed());
    assert_eq!(a.connected_devices(), vec![ip.device_id()]);
}

#[tokio::test(start_paused = true)]
async fn connection_older_than_ten_seconds_is_replaced_with_close_replacing_connection() {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ip.device_id())]).await;
    let addr = a.local_addr().unwrap();
    let mut first = RawPeer::connect(addr, &ip, "syncthing").await;
    let mut first_conn = next_connected(&mut ea).await;
    first_conn.sender.send(raw::cluster_config()).await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    let _second = RawPeer::connect(addr, &ip, "syncthing").await;
    let second_conn = next_connected(&mut ea).await;
    assert_ne!(second_conn.info.id, first_conn.info.id);
    let seen = first.drain().await;
    assert_eq!(
        raw::close_reason(&seen),
        Some("replacing connection"),
        "{seen:?}"
    );
    assert!(matches!(
        first_conn.receiver.recv().await,
        Err(ConnectionError::Replaced)
    ));
}

#[tokio::test]
async fn framing_error_drops_the_stream_without_close() {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ip.device_id())]).await;
    let mut peer = RawPeer::connect(a.local_addr().unwrap(), &ip, "syncthing").await;
    let mut conn = next_connected(&mut ea).await;
    conn.sender.send(raw::cluster_config()).await.unwrap();
    peer.send(&raw::cluster_config()).await;
    // Header {type: Index}, then a message length of 0x7fffffff (> 500 MB): a framing error.
    peer.send_raw(&[0x00, 0x02, 0x08, 0x01, 0x7f, 0xff, 0xff, 0xff])
        .await;
    assert!(matches!(
        recv(&mut conn).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    let err = recv(&mut conn).await.unwrap_err();
    assert!(matches!(err, ConnectionError::Framing(_)), "{err}");
    assert!(err.is_peer_fault());
    let seen = peer.drain().await;
    assert_eq!(raw::close_reason(&seen), None, "{seen:?}");
}

#[tokio::test]
async fn message_before_cluster_config_is_closed_with_a_reason() {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ip.device_id())]).await;
    let mut peer = RawPeer::connect(a.local_addr().unwrap(), &ip, "syncthing").await;
    let mut conn = next_connected(&mut ea).await;
    peer.send(&index("early")).await;
    let err = recv(&mut conn).await.unwrap_err();
    assert!(
        matches!(
            err,
            ConnectionError::Protocol(ProtocolError::MessageBeforeClusterConfig { .. })
        ),
        "{err}"
    );
    let seen = peer.drain().await;
    assert!(raw::close_reason(&seen).is_some(), "{seen:?}");
}

/// Sends Request{id 7, size 10} from the endpoint and answers it from the raw peer with `len`
/// bytes; returns what the endpoint's receiver yields and what the peer saw afterwards.
async fn answer_request_with(len: usize) -> (Result<Message, ConnectionError>, Vec<Message>) {
    let ia = Identity::generate().unwrap();
    let ip = Identity::generate().unwrap();
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ip.device_id())]).await;
    let mut peer = RawPeer::connect(a.local_addr().unwrap(), &ip, "syncthing").await;
    let mut conn = next_connected(&mut ea).await;
    conn.sender.send(raw::cluster_config()).await.unwrap();
    let request = bep::Request {
        id: 7,
        folder: "f".into(),
        name: "file".into(),
        size: 10,
        hash: vec![0; 32],
        ..Default::default()
    };
    conn.sender.send(Message::Request(request)).await.unwrap();
    peer.send(&raw::cluster_config()).await;
    assert!(matches!(
        recv(&mut conn).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    assert!(matches!(
        peer.next().await,
        Next::Msg(Message::ClusterConfig(_))
    ));
    assert!(matches!(peer.next().await, Next::Msg(Message::Request(_))));
    peer.send(&Message::Response(bep::Response {
        id: 7,
        data: vec![1; len],
        code: 0,
    }))
    .await;
    let got = recv(&mut conn).await;
    drop(conn);
    let seen = peer.drain().await;
    (got, seen)
}

#[tokio::test]
async fn response_of_the_requested_length_is_delivered() {
    let (got, _) = answer_request_with(10).await;
    assert!(matches!(got, Ok(Message::Response(r)) if r.data.len() == 10));
}

#[tokio::test]
async fn response_shorter_or_longer_than_requested_is_a_peer_fault() {
    for len in [5, 11] {
        let (got, seen) = answer_request_with(len).await;
        match got {
            Err(ConnectionError::Protocol(ProtocolError::ResponseLength {
                id: 7,
                requested: 10,
                received,
            })) => assert_eq!(received, len),
            other => panic!("len {len}: {other:?}"),
        }
        assert!(raw::close_reason(&seen).is_some(), "len {len}: {seen:?}");
    }
}

/// `connect_stream` runs the same setup over a caller's byte stream (here an in-memory pipe):
/// both ends authenticate each other's device ID, exchange Hello and messages, and a stream
/// from a device that is not configured is refused after the handshake.
#[tokio::test]
async fn endpoints_connect_over_a_caller_supplied_stream() {
    let (ia, ib, ic) = (
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
        Identity::generate().unwrap(),
    );
    let start_unlistening = |me: &Identity, name: &str, peers: Vec<DeviceConfig>| {
        let mut cfg = EndpointConfig::new(me.clone(), name);
        cfg.listen = None;
        cfg.devices = peers;
        Endpoint::start(cfg)
    };
    let (a, mut ea) = start_unlistening(&ia, "alpha", vec![DeviceConfig::new(ib.device_id())])
        .await
        .unwrap();
    let (b, mut eb) = start_unlistening(&ib, "beta", vec![DeviceConfig::new(ia.device_id())])
        .await
        .unwrap();
    let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let (sa, sb) = tokio::io::duplex(64 * 1024);
    let (ra, rb) = tokio::join!(
        a.connect_stream(
            sa,
            syncd_transport::Direction::Outbound,
            Some(ib.device_id()),
            nowhere
        ),
        b.connect_stream(sb, syncd_transport::Direction::Inbound, None, nowhere),
    );
    ra.unwrap();
    rb.unwrap();
    let ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    assert_eq!(ca.info.device, ib.device_id());
    assert_eq!(cb.info.device, ia.device_id());
    assert_eq!(cb.info.hello.device_name, "alpha");
    ca.sender.send(raw::cluster_config()).await.unwrap();
    cb.sender.send(raw::cluster_config()).await.unwrap();
    ca.sender.send(index("over-a-pipe")).await.unwrap();
    assert!(matches!(
        recv(&mut cb).await.unwrap(),
        Message::ClusterConfig(_)
    ));
    assert_eq!(recv(&mut cb).await.unwrap(), index("over-a-pipe"));

    // c is known to nobody: a refuses it once the handshake shows who it is.
    let (c, _ec) = start_unlistening(&ic, "gamma", vec![DeviceConfig::new(ia.device_id())])
        .await
        .unwrap();
    let (sa, sc) = tokio::io::duplex(64 * 1024);
    let (ra, _rc) = tokio::join!(
        a.connect_stream(sa, syncd_transport::Direction::Inbound, None, nowhere),
        c.connect_stream(
            sc,
            syncd_transport::Direction::Outbound,
            Some(ia.device_id()),
            nowhere
        ),
    );
    match ra {
        Err(ConnectError::UnknownDevice { device }) => assert_eq!(device, ic.device_id()),
        other => panic!("expected the unknown device to be refused: {other:?}"),
    }
}

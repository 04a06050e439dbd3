//! `Endpoint::set_devices`: the device set changes at runtime, on loopback over real TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use syncd_proto::{Message, bep};
use syncd_transport::{
    Backoff, Connection, ConnectionError, DeviceConfig, Endpoint, EndpointConfig, Event, Identity,
    PeerAddress, REASON_DEVICE_REMOVED,
};
use tokio::sync::mpsc;

/// Upper bound for waiting on an event; a failure bound, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(60);

async fn start(
    identity: &Identity,
    name: &str,
    devices: Vec<DeviceConfig>,
) -> (Endpoint, mpsc::Receiver<Event>) {
    let mut cfg = EndpointConfig::new(identity.clone(), name);
    cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.devices = devices;
    cfg.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.2,
    };
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

async fn next_unknown(events: &mut mpsc::Receiver<Event>) -> syncd_transport::UnknownDevice {
    loop {
        if let Event::UnknownDevice(u) = next_event(events).await {
            return u;
        }
    }
}

#[tokio::test]
async fn device_added_after_start_is_accepted() {
    let (ia, ib) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (a, mut ea) = start(&ia, "alpha", vec![]).await;
    let (_b, mut eb) = start(
        &ib,
        "beta",
        vec![DeviceConfig::new(ia.device_id()).with_address(addr_of(&a))],
    )
    .await;
    // Unknown to `a` at first: refused after Hello and reported.
    assert_eq!(next_unknown(&mut ea).await.device, ib.device_id());
    a.set_devices(vec![DeviceConfig::new(ib.device_id())]);
    // `b` keeps redialing; now `a` accepts it.
    let ca = next_connected(&mut ea).await;
    assert_eq!(ca.info.device, ib.device_id());
    assert_eq!(next_connected(&mut eb).await.info.device, ia.device_id());
    assert_eq!(a.connected_devices(), vec![ib.device_id()]);
}

#[tokio::test]
async fn device_added_after_start_with_an_address_is_dialed() {
    let (ia, ib) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    // `b` accepts `a` but never dials it; `a` starts knowing nobody.
    let (b, mut eb) = start(&ib, "beta", vec![DeviceConfig::new(ia.device_id())]).await;
    let (a, mut ea) = start(&ia, "alpha", vec![]).await;
    a.set_devices(vec![
        DeviceConfig::new(ib.device_id()).with_address(addr_of(&b)),
    ]);
    assert_eq!(next_connected(&mut ea).await.info.device, ib.device_id());
    assert_eq!(next_connected(&mut eb).await.info.device, ia.device_id());
}

#[tokio::test]
async fn removed_device_is_disconnected_with_a_reason_and_refused_afterwards() {
    let (ia, ib) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (a, mut ea) = start(&ia, "alpha", vec![DeviceConfig::new(ib.device_id())]).await;
    let (_b, mut eb) = start(
        &ib,
        "beta",
        vec![DeviceConfig::new(ia.device_id()).with_address(addr_of(&a))],
    )
    .await;
    let mut ca = next_connected(&mut ea).await;
    let mut cb = next_connected(&mut eb).await;
    // Close is only sent after a ClusterConfig (no message may precede it).
    ca.sender
        .send(Message::ClusterConfig(bep::ClusterConfig::default()))
        .await
        .unwrap();
    assert!(matches!(
        tokio::time::timeout(PATIENCE, cb.receiver.recv())
            .await
            .unwrap()
            .unwrap(),
        Message::ClusterConfig(_)
    ));

    a.set_devices(vec![]);

    let local = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Err(e) = ca.receiver.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("a's connection must end");
    assert!(
        matches!(&local, ConnectionError::ClosedLocally { reason } if reason == REASON_DEVICE_REMOVED),
        "{local:?}"
    );
    let remote = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Err(e) = cb.receiver.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("b's connection must end");
    assert!(
        matches!(&remote, ConnectionError::ClosedByPeer { reason } if reason == REASON_DEVICE_REMOVED),
        "{remote:?}"
    );
    // `b` still knows `a` and redials: now refused as an unknown device.
    assert_eq!(next_unknown(&mut ea).await.device, ib.device_id());
    assert!(a.connected_devices().is_empty());
    assert!(a.devices().is_empty());
}

#[tokio::test]
async fn removed_device_is_no_longer_dialed() {
    let (ia, ib) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (b, mut eb) = start(&ib, "beta", vec![DeviceConfig::new(ia.device_id())]).await;
    let (a, mut ea) = start(
        &ia,
        "alpha",
        vec![DeviceConfig::new(ib.device_id()).with_address(addr_of(&b))],
    )
    .await;
    next_connected(&mut ea).await;
    next_connected(&mut eb).await;
    a.set_devices(vec![]);
    // The connection ends on `b`'s side too...
    loop {
        if let Event::Disconnected { device, .. } = next_event(&mut eb).await {
            assert_eq!(device, ia.device_id());
            break;
        }
    }
    // ...and `a` stops dialing: `b` sees no new connection while `a`'s backoff (≤ 200 ms)
    // would have redialed many times. (A failure bound, not a timing claim: a redial would
    // show up as an event.)
    let quiet = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eb.recv().await {
                Some(Event::Connected(c)) => return Some(c.info.device),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await;
    assert!(
        !matches!(quiet, Ok(Some(_))),
        "a removed device was dialed again"
    );
}

//! Interop with a real, stock Syncthing 1.19.2 on loopback. Skips when `syncthing` is absent,
//! fails instead when SYNCD_REQUIRE_SYNCTHING=1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use syncd_proto::{Message, bep};
use syncd_testkit::{Rest, Syncthing, SyncthingConfig, free_port};
use syncd_transport::{
    Backoff, Connection, DeviceConfig, Direction, Endpoint, EndpointConfig, Event, Identity,
    PeerAddress,
};
use syncd_types::DeviceId;

const API_KEY: &str = "syncd-interop-test-key";
const FOLDER: &str = "workspaces";
/// Failure bound while Syncthing starts and connects; not a timing claim.
const PATIENCE: Duration = Duration::from_secs(90);

struct Setup {
    _home: tempfile::TempDir,
    _folder: tempfile::TempDir,
    st: Syncthing,
    st_id: DeviceId,
    gui_port: u16,
}

struct Prepared {
    home: tempfile::TempDir,
    folder: tempfile::TempDir,
    st_id: DeviceId,
    gui_port: u16,
}

/// Generates Syncthing's keys and writes its config: it listens on `st_port`, knows our device
/// at `peer_addr` and shares FOLDER with it.
fn prepare(st_bin: &std::path::Path, our_id: DeviceId, st_port: u16, peer_addr: &str) -> Prepared {
    let home = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir(folder.path().join(".stfolder")).unwrap();
    let st_id_text = syncd_testkit::generate(st_bin, home.path()).unwrap();
    let gui_port = free_port().unwrap();
    SyncthingConfig::new(&st_id_text, &our_id.to_string(), FOLDER, folder.path())
        .ports(st_port, gui_port)
        .api_key(API_KEY)
        .peer_address(peer_addr)
        .reconnection_interval_s(1)
        .write(home.path())
        .unwrap();
    Prepared {
        home,
        folder,
        st_id: st_id_text.parse().unwrap(),
        gui_port,
    }
}

impl Prepared {
    fn start(self, st_bin: &std::path::Path) -> Setup {
        let home = self.home.path();
        let st = Syncthing::start(st_bin, home, &home.join("syncthing.log")).unwrap();
        Setup {
            _home: self.home,
            _folder: self.folder,
            st,
            st_id: self.st_id,
            gui_port: self.gui_port,
        }
    }
}

fn cluster_config(us: DeviceId, them: DeviceId) -> Message {
    let device = |id: DeviceId, name: &str| bep::Device {
        id: id.as_bytes().to_vec(),
        name: name.into(),
        ..Default::default()
    };
    Message::ClusterConfig(bep::ClusterConfig {
        folders: vec![bep::Folder {
            id: FOLDER.into(),
            label: FOLDER.into(),
            devices: vec![device(us, "syncd-test"), device(them, "st-test")],
            ..Default::default()
        }],
        ..Default::default()
    })
}

async fn wait_connected(
    events: &mut tokio::sync::mpsc::Receiver<Event>,
    st: &Syncthing,
) -> Connection {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(Event::Connected(c))) => return c,
            Ok(Some(other)) => eprintln!("event: {other:?}"),
            Ok(None) | Err(_) => panic!("no connection to Syncthing; its log:\n{}", st.log_text()),
        }
    }
}

/// After ClusterConfigs are exchanged, Syncthing's REST shows us connected with our client string.
async fn assert_syncthing_sees_us(setup: &Setup, mut conn: Connection, our_id: DeviceId) {
    conn.sender
        .send(cluster_config(our_id, setup.st_id))
        .await
        .unwrap();
    let first = tokio::time::timeout(PATIENCE, conn.receiver.recv())
        .await
        .expect("no ClusterConfig from Syncthing")
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", setup.st.log_text()));
    let Message::ClusterConfig(cc) = first else {
        panic!("first message was not ClusterConfig: {first:?}");
    };
    let folder = cc
        .folders
        .iter()
        .find(|f| f.id == FOLDER)
        .expect("shared folder");
    assert!(
        folder
            .devices
            .iter()
            .any(|d| d.id == our_id.as_bytes().to_vec())
    );
    // Keep reading so Syncthing's Index and Pings are consumed.
    let mut receiver = conn.receiver;
    let reader = tokio::spawn(async move { while receiver.recv().await.is_ok() {} });

    let port = setup.gui_port;
    let ours = our_id.to_string();
    let started = Instant::now();
    let entry = loop {
        let r = tokio::task::spawn_blocking(move || {
            Rest::loopback(port, API_KEY)
                .request("GET", "/rest/system/connections", Duration::from_secs(5))
                .ok()
        })
        .await
        .unwrap();
        if let Some((200, body)) = r {
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            let entry = json["connections"][&ours].clone();
            if entry["connected"] == serde_json::Value::Bool(true) {
                break entry;
            }
        }
        assert!(
            started.elapsed() < PATIENCE,
            "Syncthing never reported us connected; log:\n{}",
            setup.st.log_text()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(entry["clientVersion"], "syncd v0.1.0", "{entry}");
    assert!(!conn.sender.is_closed());
    conn.sender.close("test done");
    reader.abort();
}

fn config(identity: &Identity, devices: Vec<DeviceConfig>) -> EndpointConfig {
    let mut cfg = EndpointConfig::new(identity.clone(), "syncd-test");
    cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    cfg.devices = devices;
    cfg.backoff = Backoff {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(2),
        jitter: 0.2,
    };
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_dial_stock_syncthing_and_it_reports_us_connected() {
    let Some(st_bin) = syncd_testkit::syncthing_or_skip() else {
        return;
    };
    let ours = Identity::generate().unwrap();
    let st_port = free_port().unwrap();
    // `dynamic`: Syncthing never dials us, so only our dial is in play.
    let setup = prepare(&st_bin, ours.device_id(), st_port, "dynamic").start(&st_bin);
    let st_addr = PeerAddress::parse(&format!("tcp://127.0.0.1:{st_port}")).unwrap();
    let (ep, mut events) = Endpoint::start(config(
        &ours,
        vec![DeviceConfig::new(setup.st_id).with_address(st_addr)],
    ))
    .await
    .unwrap();
    let conn = wait_connected(&mut events, &setup.st).await;
    assert_eq!(conn.info.device, setup.st_id);
    assert_eq!(conn.info.direction, Direction::Outbound);
    assert_eq!(conn.info.hello.client_name, "syncthing");
    assert_syncthing_sees_us(&setup, conn, ours.device_id()).await;
    ep.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_syncthing_dials_us_and_reports_us_connected() {
    let Some(st_bin) = syncd_testkit::syncthing_or_skip() else {
        return;
    };
    let ours = Identity::generate().unwrap();
    let our_port = free_port().unwrap();
    let prepared = prepare(
        &st_bin,
        ours.device_id(),
        free_port().unwrap(),
        &format!("tcp://127.0.0.1:{our_port}"),
    );
    // Accept-only towards Syncthing: it does the dialing.
    let mut cfg = config(&ours, vec![DeviceConfig::new(prepared.st_id)]);
    cfg.listen = Some(SocketAddr::from(([127, 0, 0, 1], our_port)));
    let (ep, mut events) = Endpoint::start(cfg).await.unwrap();
    let setup = prepared.start(&st_bin);
    let conn = wait_connected(&mut events, &setup.st).await;
    assert_eq!(conn.info.device, setup.st_id);
    assert_eq!(conn.info.direction, Direction::Inbound);
    assert_syncthing_sees_us(&setup, conn, ours.device_id()).await;
    ep.shutdown().await;
}

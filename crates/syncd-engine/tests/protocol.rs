//! The engine against a raw BEP peer (our transport, driven by hand): protocol rules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Dir;
use syncd_engine::{DeviceConfig, Engine, EngineConfig, FolderConfig, FolderId};
use syncd_proto::{Message, bep};
use syncd_transport::{Endpoint, EndpointConfig, Event, Identity, PeerAddress};

struct Setup {
    _tmp: tempfile::TempDir,
    engine: syncd_engine::EngineHandle,
    raw_id: syncd_engine::DeviceId,
    conn: syncd_transport::Connection,
    _ep: Endpoint,
}

async fn engine_and_raw_peer() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let raw = Identity::generate().unwrap();
    let raw_id = raw.device_id();
    let dir = Dir::new(tmp.path().join("f"));
    dir.write("secret-not-shared.txt", "x");
    let mut f = FolderConfig::new(FolderId::new("f").unwrap(), &dir.root);
    f.devices = vec![raw_id];
    let engine = Engine::start(EngineConfig {
        home: tmp.path().join("home"),
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![DeviceConfig::new(raw_id)],
        folders: vec![f],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    let addr = engine.listen_addrs()[0];
    let mut cfg = EndpointConfig::new(raw, "raw");
    cfg.listen = None;
    cfg.devices = vec![
        syncd_transport::DeviceConfig::new(engine.device_id())
            .with_address(PeerAddress::parse(&format!("tcp://{addr}")).unwrap()),
    ];
    let (ep, mut events) = Endpoint::start(cfg).await.unwrap();
    let conn = loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Connected(c) => break c,
            _ => continue,
        }
    };
    Setup {
        _tmp: tmp,
        engine,
        raw_id,
        conn,
        _ep: ep,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_config_comes_first_and_lists_both_devices() {
    let Setup {
        engine,
        raw_id,
        mut conn,
        ..
    } = engine_and_raw_peer().await;
    let first = tokio::time::timeout(Duration::from_secs(30), conn.receiver.recv())
        .await
        .unwrap()
        .unwrap();
    let Message::ClusterConfig(cc) = first else {
        panic!("first message was {first:?}")
    };
    let f = cc
        .folders
        .iter()
        .find(|f| f.id == "f")
        .expect("folder f listed");
    let ids: Vec<&[u8]> = f.devices.iter().map(|d| d.id.as_slice()).collect();
    assert!(ids.contains(&engine.device_id().as_bytes().as_slice()));
    assert!(ids.contains(&raw_id.as_bytes().as_slice()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_for_an_unshared_folder_closes_the_connection() {
    let Setup { mut conn, .. } = engine_and_raw_peer().await;
    conn.sender
        .send(Message::ClusterConfig(bep::ClusterConfig::default()))
        .await
        .unwrap();
    conn.sender
        .send(Message::Index(bep::Index {
            folder: "not-shared".into(),
            files: vec![],
            last_sequence: 0,
        }))
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Err(e) = conn.receiver.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("the engine must close the connection");
    assert!(
        ended.to_string().contains("not-shared") || ended.to_string().contains("closed"),
        "{ended}"
    );
}

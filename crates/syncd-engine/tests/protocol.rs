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
    events: tokio::sync::mpsc::Receiver<Event>,
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
    let conn = next_connection(&mut events).await;
    Setup {
        _tmp: tmp,
        engine,
        raw_id,
        conn,
        events,
        _ep: ep,
    }
}

/// The raw endpoint's next connection (it dials the engine).
async fn next_connection(
    events: &mut tokio::sync::mpsc::Receiver<Event>,
) -> syncd_transport::Connection {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Connected(c) => return c,
            _ => continue,
        }
    }
}

/// Reads until the engine closes the connection; the error it ended with.
async fn connection_end(
    conn: &mut syncd_transport::Connection,
) -> syncd_transport::ConnectionError {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Err(e) = conn.receiver.recv().await {
                return e;
            }
        }
    })
    .await
    .expect("the engine must close the connection")
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

/// ClusterConfig's `read_only` is set for a send-only folder only (Syncthing 1.19.2 flags
/// receive-only nowhere), and a type change is announced at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_config_flags_only_a_send_only_folder_read_only() {
    let Setup {
        engine,
        raw_id,
        mut conn,
        ..
    } = engine_and_raw_peer().await;
    let read_only =
        |cc: &bep::ClusterConfig| cc.folders.iter().find(|f| f.id == "f").unwrap().read_only;
    assert!(!read_only(&next_cluster_config(&mut conn).await));
    send_index(&conn, raw_id, engine.device_id()).await;
    for (t, want) in [
        (syncd_engine::FolderType::SendOnly, true),
        (syncd_engine::FolderType::ReceiveOnly, false),
    ] {
        let mut f = engine.config().folders[0].clone();
        f.folder_type = t;
        engine.add_folder(f).await.unwrap();
        assert_eq!(
            read_only(&next_cluster_config(&mut conn).await),
            want,
            "{t:?}"
        );
    }
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
    let ended = connection_end(&mut conn).await;
    assert!(
        ended.to_string().contains("not-shared") || ended.to_string().contains("closed"),
        "{ended}"
    );
}

/// The raw peer's file `name` ("hello"), as it announces it.
fn hello_file(raw: syncd_engine::DeviceId, name: &str, sequence: i64) -> bep::FileInfo {
    use sha2::Digest as _;
    bep::FileInfo {
        name: name.into(),
        size: 5,
        permissions: 0o644,
        modified_s: 1_700_000_000,
        version: Some(bep::Vector {
            counters: vec![bep::Counter {
                id: raw.short().get(),
                value: 1,
            }],
        }),
        sequence,
        modified_by: raw.short().get(),
        block_size: 128 * 1024,
        blocks: vec![bep::BlockInfo {
            offset: 0,
            size: 5,
            hash: sha2::Sha256::digest(b"hello").to_vec(),
            weak_hash: 0,
        }],
        ..Default::default()
    }
}

/// The digest field for derived records, as docs/protocol.md defines it: the first 8 bytes
/// (little-endian) of SHA-256 over each rebuilt FileInfo's length (u64 LE) and encoding.
fn digest_of(records: &[bep::FileInfo]) -> u64 {
    use prost::Message as _;
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for r in records {
        let b = r.encode_to_vec();
        h.update((b.len() as u64).to_le_bytes());
        h.update(&b);
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().unwrap())
}

async fn next_cluster_config(conn: &mut syncd_transport::Connection) -> bep::ClusterConfig {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(30), conn.receiver.recv())
            .await
            .expect("a message within 30 s")
            .expect("the connection stays up");
        if let Message::ClusterConfig(cc) = m {
            return cc;
        }
    }
}

async fn send_index(
    conn: &syncd_transport::Connection,
    raw: syncd_engine::DeviceId,
    me: syncd_engine::DeviceId,
) {
    let dev = |id: syncd_engine::DeviceId, index_id: u64| bep::Device {
        id: id.as_bytes().to_vec(),
        index_id,
        ..Default::default()
    };
    let cc = bep::ClusterConfig {
        folders: vec![bep::Folder {
            id: "f".into(),
            devices: vec![dev(raw, 0x5eed), dev(me, 0)],
            ..Default::default()
        }],
        ..Default::default()
    };
    conn.sender.send(Message::ClusterConfig(cc)).await.unwrap();
}

/// A syncd peer is asked for derived records; a deletion sent as one (a name, no FileInfo)
/// is rebuilt and applied; one whose digest does not match closes the connection, and the
/// next connection no longer asks for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_records_apply_when_they_match_and_are_refused_after_a_mismatch() {
    let Setup {
        engine,
        raw_id,
        mut conn,
        mut events,
        ..
    } = engine_and_raw_peer().await;
    let me = engine.device_id();
    let cc = next_cluster_config(&mut conn).await;
    assert_eq!(
        cc.syncd_features, 1,
        "a syncd peer is asked for derived records"
    );
    send_index(&conn, raw_id, me).await;
    conn.sender
        .send(Message::Index(bep::Index {
            folder: "f".into(),
            files: vec![
                hello_file(raw_id, "a.txt", 1),
                hello_file(raw_id, "b.txt", 2),
            ],
            last_sequence: 2,
        }))
        .await
        .unwrap();

    // The deletion of a.txt as a derived record: the name and its sequence, nothing else.
    let short = raw_id.short().get();
    let base = hello_file(raw_id, "a.txt", 1);
    let version = bep::Vector {
        counters: vec![bep::Counter {
            id: short,
            value: 2,
        }],
    };
    let deletion = bep::FileInfo {
        name: "a.txt".into(),
        deleted: true,
        modified_s: 1_700_000_100,
        version: Some(version.clone()),
        sequence: 3,
        modified_by: short,
        previous_blocks_hash: syncd_proto::blocks_hash(&base.blocks).to_vec(),
        ..Default::default()
    };
    let group = bep::SyncdDerived {
        delete_version: Some(version),
        delete_modified_s: 1_700_000_100,
        delete_modified_by: short,
        ..Default::default()
    };
    let update = |digest: u64, name: &str, seq: i64| {
        let mut g = group.clone();
        // One front-coded name: nothing shared with a previous one, then its bytes.
        g.names = vec![0, name.len() as u8];
        g.names.extend_from_slice(name.as_bytes());
        g.delete_sequences = vec![seq];
        Message::IndexUpdate(bep::IndexUpdate {
            folder: "f".into(),
            last_sequence: seq,
            prev_sequence: seq - 1,
            syncd_derived: vec![g],
            syncd_digest: digest,
            ..Default::default()
        })
    };
    conn.sender
        .send(update(
            digest_of(std::slice::from_ref(&deletion)),
            "a.txt",
            3,
        ))
        .await
        .unwrap();
    let applied = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let rebuilt = engine
                .connections()
                .iter()
                .find(|c| c.device == raw_id)
                .map_or(0, |c| c.derived_records_in);
            if rebuilt == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        applied.is_ok(),
        "the matching derived deletion was not applied"
    );

    // The deletion of b.txt with a digest that does not match what the engine rebuilds (the
    // digest of a.txt's deletion): nothing is applied and the connection is closed.
    conn.sender
        .send(update(digest_of(&[deletion]), "b.txt", 4))
        .await
        .unwrap();
    let ended = connection_end(&mut conn).await;
    assert!(ended.to_string().contains("derived"), "{ended}");

    // The raw endpoint redials; the engine no longer asks it for derived records.
    let mut conn = next_connection(&mut events).await;
    let cc = next_cluster_config(&mut conn).await;
    assert_eq!(
        cc.syncd_features, 0,
        "derived records are not asked for again"
    );
}

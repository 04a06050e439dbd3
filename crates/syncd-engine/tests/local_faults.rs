//! A local fault while applying a peer's index is not the peer's protocol violation.
//!
//! The fault is real: the process's file-size limit (`RLIMIT_FSIZE`) is lowered to 0, so the
//! kernel refuses every write to a regular file (EFBIG), as a full disk refuses them with
//! ENOSPC; the engine's redb index can no longer commit. The limit holds for the whole
//! process, so this file holds one test (its own test binary), and sets it only after the
//! engine has started and applied a first index.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Dir;
use syncd_engine::{DeviceConfig, DeviceId, Engine, EngineConfig, FolderConfig, FolderId};
use syncd_proto::{Message, bep};
use syncd_transport::{Endpoint, EndpointConfig, Event, Identity, PeerAddress};

/// From now on, every write to a regular file by this process fails with EFBIG.
fn refuse_file_writes(probe: &std::path::Path) {
    #[allow(unsafe_code)]
    // SAFETY: plain libc calls with valid arguments. Ignoring SIGXFSZ turns a write past the
    // limit into an EFBIG error instead of killing the process; only the soft limit changes.
    unsafe {
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim), 0);
        lim.rlim_cur = 0;
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
    let refused = std::fs::write(probe, b"x").unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EFBIG), "{refused}");
}

/// A directory the raw peer announces (nothing to pull, nothing written in the folder).
fn dir_record(raw: DeviceId, name: &str, sequence: i64) -> bep::FileInfo {
    bep::FileInfo {
        name: name.into(),
        r#type: bep::FileInfoType::Directory as i32,
        permissions: 0o755,
        modified_s: 1_700_000_000,
        version: Some(bep::Vector {
            counters: vec![bep::Counter {
                id: raw.short().get(),
                value: 1,
            }],
        }),
        sequence,
        modified_by: raw.short().get(),
        ..Default::default()
    }
}

async fn next_message(conn: &mut syncd_transport::Connection) -> Message {
    tokio::time::timeout(Duration::from_secs(30), conn.receiver.recv())
        .await
        .expect("a message within 30 s")
        .expect("the connection stays up")
}

/// An index message the engine's disk cannot store closes the connection with a reason that
/// names the local fault and does not blame the peer; before the fault, the same kind of
/// message was applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_the_disk_cannot_store_closes_without_blaming_the_peer() {
    // The limit refuses this process's writes to every regular file, its own stdout and
    // stderr included when they were redirected to one (`cargo test > log`): the harness
    // could then not report. nextest and terminals give it pipes and ttys.
    let to_file =
        |fd: u8| std::fs::metadata(format!("/proc/self/fd/{fd}")).is_ok_and(|m| m.is_file());
    if to_file(1) || to_file(2) {
        println!(
            "SKIPPED: stdout or stderr is a regular file, which RLIMIT_FSIZE=0 would refuse; \
             run this test with its output on a pipe or terminal (as cargo nextest does)"
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let raw = Identity::generate().unwrap();
    let raw_id = raw.device_id();
    let dir = Dir::new(tmp.path().join("f"));
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
    let mut engine_events = engine.subscribe();
    let addr = engine.listen_addrs()[0];
    let mut cfg = EndpointConfig::new(raw, "raw");
    cfg.listen = None;
    cfg.devices = vec![
        syncd_transport::DeviceConfig::new(engine.device_id())
            .with_address(PeerAddress::parse(&format!("tcp://{addr}")).unwrap()),
    ];
    let (_ep, mut events) = Endpoint::start(cfg).await.unwrap();
    let mut conn = loop {
        match tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Connected(c) => break c,
            _ => continue,
        }
    };
    while !matches!(next_message(&mut conn).await, Message::ClusterConfig(_)) {}
    let device = |id: DeviceId, index_id: u64| bep::Device {
        id: id.as_bytes().to_vec(),
        index_id,
        ..Default::default()
    };
    let cc = bep::ClusterConfig {
        folders: vec![bep::Folder {
            id: "f".into(),
            devices: vec![device(raw_id, 0x5eed), device(engine.device_id(), 0)],
            ..Default::default()
        }],
        ..Default::default()
    };
    conn.sender.send(Message::ClusterConfig(cc)).await.unwrap();
    conn.sender
        .send(Message::Index(bep::Index {
            folder: "f".into(),
            files: vec![dir_record(raw_id, "d1", 1)],
            last_sequence: 1,
        }))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let syncd_engine::Event::RemoteIndexUpdated {
                device, sequence, ..
            } = engine_events.recv().await.unwrap()
                && device == raw_id
                && sequence == 1
            {
                return;
            }
        }
    })
    .await
    .expect("the first index is applied");

    refuse_file_writes(&tmp.path().join("probe"));
    conn.sender
        .send(Message::IndexUpdate(bep::IndexUpdate {
            folder: "f".into(),
            files: vec![dir_record(raw_id, "d2", 2)],
            last_sequence: 2,
            prev_sequence: 1,
            ..Default::default()
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
    .expect("the engine closes the connection");
    let reason = ended.to_string();
    assert!(
        reason.contains("local error, not a protocol violation")
            && reason.contains("index of folder f"),
        "the close names the local fault: {reason}"
    );
    let disconnected = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let syncd_engine::Event::DeviceDisconnected { device, error } =
                engine_events.recv().await.unwrap()
                && device == raw_id
            {
                return error;
            }
        }
    })
    .await
    .expect("the engine reports the disconnection");
    assert!(
        disconnected.starts_with("local error, not a protocol violation"),
        "{disconnected}"
    );
}

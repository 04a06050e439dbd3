//! Devices and folders that ask to join, on real engines over loopback TLS with real redb
//! indexes: pending devices (recorded with their Hello name and address, kept across a
//! restart, dismissed, ignored, cleared when added), pending folders (recorded, expiring when
//! no longer offered, cleared when shared), auto-accept, and introducers with their removals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Dir, connected, until};
use syncd_engine::{
    DeviceConfig, DeviceId, Engine, EngineConfig, EngineHandle, Event, FolderConfig, FolderId,
};

fn config(tmp: &Path, name: &str) -> EngineConfig {
    EngineConfig {
        home: tmp.join(format!("{name}-home")),
        device_name: name.into(),
        listen: vec!["tcp://127.0.0.1:0".into()],
        ..EngineConfig::default()
    }
}

async fn start(tmp: &Path, name: &str) -> EngineHandle {
    Engine::start(config(tmp, name)).await.unwrap()
}

fn device_at(e: &EngineHandle) -> DeviceConfig {
    let mut d = DeviceConfig::new(e.device_id());
    d.addresses = vec![format!("tcp://{}", e.listen_addrs()[0])];
    d
}

fn folder(id: &str, dir: &Dir, peers: &[DeviceId]) -> FolderConfig {
    let mut f = FolderConfig::new(FolderId::new(id).unwrap(), &dir.root);
    f.devices = peers.to_vec();
    f
}

fn has_pending_device(e: &EngineHandle, d: DeviceId) -> bool {
    e.pending_devices().iter().any(|p| p.device == d)
}

fn offered(e: &EngineHandle, by: DeviceId) -> Vec<String> {
    e.pending_folders(Some(by))
        .iter()
        .map(|f| f.folder.as_str().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_is_pending_until_added_and_an_ignored_one_never_again() {
    common::init_test_log();
    let tmp = tempfile::tempdir().unwrap();
    let a = start(tmp.path(), "alice").await;
    let b = start(tmp.path(), "bob").await;
    let mut events = b.subscribe();
    // `alice` knows `bob` and dials it; `bob` knows nobody.
    a.add_device(device_at(&b)).await.unwrap();
    until("alice pending on bob", || {
        has_pending_device(&b, a.device_id())
    })
    .await;
    let p = b.pending_devices();
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "alice", "the name from alice's Hello");
    assert!(p[0].address.starts_with("127.0.0.1:"), "{}", p[0].address);
    let (mut added, mut rejected) = (false, false);
    while let Ok(ev) = events.try_recv() {
        match ev {
            Event::PendingDevicesChanged { added: a2, .. } => {
                added |= a2.iter().any(|d| d.device == a.device_id())
            }
            Event::DeviceRejected { device, .. } => rejected |= device == a.device_id(),
            _ => {}
        }
    }
    assert!(
        added && rejected,
        "PendingDevicesChanged and DeviceRejected"
    );

    // Kept across a restart (the redb index holds it). Same port: alice keeps dialing it.
    let mut b_cfg = b.config();
    b_cfg.listen = vec![format!("tcp://{}", b.listen_addrs()[0])];
    b.shutdown().await;
    drop(b);
    let b = Engine::start(b_cfg.clone()).await.unwrap();
    assert!(
        has_pending_device(&b, a.device_id()),
        "pending device kept across a restart: {:?}",
        b.pending_devices()
    );

    // Dismissed: gone, and back when alice tries again, under the name she has taken since
    // (a rename applies to the next connection's Hello).
    a.set_device_name("alice renamed".into()).await;
    assert!(b.dismiss_pending_device(a.device_id()));
    assert!(!has_pending_device(&b, a.device_id()));
    until("alice pending again after her next attempt", || {
        has_pending_device(&b, a.device_id())
    })
    .await;
    assert_eq!(b.pending_devices()[0].name, "alice renamed");
    assert_eq!(a.config().device_name, "alice renamed");

    // Ignored: gone and never recorded again, even across a restart.
    b.set_ignored_devices(vec![a.device_id()]).await;
    assert!(!has_pending_device(&b, a.device_id()));
    let mut events = b.subscribe();
    // Alice's dialer keeps trying (backoff 0.5 s, 1 s, 2 s, ...): several refusals.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!has_pending_device(&b, a.device_id()));
    while let Ok(ev) = events.try_recv() {
        assert!(
            !matches!(
                ev,
                Event::DeviceRejected { .. } | Event::PendingDevicesChanged { .. }
            ),
            "an ignored device is not offered again: {ev:?}"
        );
    }

    // Accepting = adding it: the pending entry goes (already gone here, so add it back
    // first by lifting the ignore) and the two connect.
    b.set_ignored_devices(Vec::new()).await;
    until("alice pending once more", || {
        has_pending_device(&b, a.device_id())
    })
    .await;
    let mut events = b.subscribe();
    b.add_device(DeviceConfig::new(a.device_id()))
        .await
        .unwrap();
    assert!(!has_pending_device(&b, a.device_id()));
    let mut removed = false;
    while let Ok(ev) = events.try_recv() {
        if let Event::PendingDevicesChanged { removed: r, .. } = ev {
            removed |= r.contains(&a.device_id());
        }
    }
    assert!(
        removed,
        "adding the device emits PendingDevicesChanged removed"
    );
    until("connected", || connected(&b, a.device_id())).await;
    b.shutdown().await;
    drop(b);
    let b = Engine::start(b_cfg).await.unwrap();
    assert!(
        b.pending_devices().is_empty(),
        "the cleared entry stays cleared on disk"
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offered_folder_is_pending_until_shared_and_expires_when_withdrawn() {
    common::init_test_log();
    let tmp = tempfile::tempdir().unwrap();
    let a = start(tmp.path(), "a").await;
    let b = start(tmp.path(), "b").await;
    a.add_device(device_at(&b)).await.unwrap();
    b.add_device(DeviceConfig::new(a.device_id()))
        .await
        .unwrap();
    until("connected", || connected(&a, b.device_id())).await;
    let da = Dir::new(tmp.path().join("a-proj"));
    let da2 = Dir::new(tmp.path().join("a-other"));
    da.write("hello.txt", "from a");
    let mut f = folder("proj", &da, &[b.device_id()]);
    f.label = "Project <X>".into();
    a.add_folder(f).await.unwrap();
    a.add_folder(folder("other", &da2, &[b.device_id()]))
        .await
        .unwrap();
    until("both offers pending on b", || {
        offered(&b, a.device_id()).len() == 2
    })
    .await;
    let p = b
        .pending_folders(None)
        .into_iter()
        .find(|f| f.folder.as_str() == "proj")
        .unwrap();
    assert_eq!(p.label, "Project <X>", "the offered label, as text");
    assert!(!p.receive_encrypted && !p.remote_encrypted);

    // Withdrawn: `a` stops sharing `other` → its entry expires.
    a.remove_folder(&FolderId::new("other").unwrap())
        .await
        .unwrap();
    until("withdrawn offer expired", || {
        offered(&b, a.device_id()) == vec!["proj".to_owned()]
    })
    .await;

    // Ignored by the device entry: gone.
    let mut dev = b
        .config()
        .devices
        .into_iter()
        .find(|d| d.id == a.device_id())
        .unwrap();
    dev.ignored_folders = vec![FolderId::new("proj").unwrap()];
    b.add_device(dev.clone()).await.unwrap();
    assert!(offered(&b, a.device_id()).is_empty());
    dev.ignored_folders.clear();
    b.add_device(dev).await.unwrap();

    // Accepted: shared back → the entry goes and the folder syncs.
    let db = Dir::new(tmp.path().join("b-proj"));
    b.add_folder(folder("proj", &db, &[a.device_id()]))
        .await
        .unwrap();
    assert!(offered(&b, a.device_id()).is_empty());
    // In sync "with what the peers announced" can hold before `a`'s first scan is
    // announced: wait for the file itself.
    until("hello.txt on b", || {
        std::fs::read(db.path("hello.txt")).is_ok_and(|c| c == b"from a")
    })
    .await;
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_accept_creates_the_folder_under_the_default_path_and_syncs() {
    common::init_test_log();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("accepted");
    std::fs::create_dir_all(root.join("Project X")).unwrap(); // label taken → the ID is used
    let a = start(tmp.path(), "a").await;
    let mut bc = config(tmp.path(), "b");
    bc.folder_defaults.path = root.clone();
    bc.folder_defaults.rescan_interval_s = 77;
    let b = Engine::start(bc).await.unwrap();
    let mut events = b.subscribe();
    a.add_device(device_at(&b)).await.unwrap();
    let mut trusting = DeviceConfig::new(a.device_id());
    trusting.auto_accept_folders = true;
    b.add_device(trusting).await.unwrap();
    let da = Dir::new(tmp.path().join("a-proj"));
    da.write("src/main.rs", "fn main() {}");
    let mut f = folder("proj-y", &da, &[b.device_id()]);
    f.label = "Project X".into();
    a.add_folder(f).await.unwrap();
    let id = FolderId::new("proj-y").unwrap();
    until("folder accepted on b", || b.folder_ids().contains(&id)).await;
    let accepted = b.config().folders.into_iter().find(|f| f.id == id).unwrap();
    assert_eq!(
        accepted.path,
        root.join("proj-y"),
        "label path existed: the ID"
    );
    assert_eq!(accepted.label, "Project X");
    assert_eq!(accepted.devices, vec![a.device_id()]);
    assert_eq!(accepted.rescan_interval_s, 77, "from the folder defaults");
    assert!(root.join("proj-y/.stfolder").is_dir());
    until("a's file in the accepted folder", || {
        std::fs::read(root.join("proj-y/src/main.rs")).is_ok_and(|c| c == b"fn main() {}")
    })
    .await;
    assert!(b.pending_folders(None).is_empty(), "accepted, not pending");
    let mut said = false;
    while let Ok(ev) = events.try_recv() {
        said |= matches!(ev, Event::ConfigChanged { .. });
    }
    assert!(said, "ConfigChanged tells the daemon to save");
    b.shutdown().await;
    a.shutdown().await;
}

/// `hub` shares `team` with `x` and `y`; `x` and `y` know only `hub` (their introducer).
/// Each learns the other from `hub`, they connect and sync directly; when `hub` stops
/// sharing with `y`, `x` drops `y` again — unless `x` skips introduction removals.
async fn introducer_case(skip_removals: bool) {
    common::init_test_log();
    let tmp = tempfile::tempdir().unwrap();
    let hub = start(tmp.path(), "hub").await;
    let x = start(tmp.path(), "x").await;
    let y = start(tmp.path(), "y").await;
    let (dh, dx, dy) = (
        Dir::new(tmp.path().join("hub-team")),
        Dir::new(tmp.path().join("x-team")),
        Dir::new(tmp.path().join("y-team")),
    );
    dx.write("from-x.txt", "x");
    hub.add_device(device_at(&x)).await.unwrap();
    hub.add_device(device_at(&y)).await.unwrap();
    for (e, skip) in [(&x, skip_removals), (&y, false)] {
        let mut h = device_at(&hub);
        h.introducer = true;
        h.skip_introduction_removals = skip;
        e.add_device(h).await.unwrap();
    }
    hub.add_folder(folder("team", &dh, &[x.device_id(), y.device_id()]))
        .await
        .unwrap();
    x.add_folder(folder("team", &dx, &[hub.device_id()]))
        .await
        .unwrap();
    y.add_folder(folder("team", &dy, &[hub.device_id()]))
        .await
        .unwrap();
    let team = FolderId::new("team").unwrap();
    until("x introduced to y and y to x", || {
        let cx = x.config();
        let cy = y.config();
        cx.devices
            .iter()
            .any(|d| d.id == y.device_id() && d.introduced_by == Some(hub.device_id()))
            && cy
                .devices
                .iter()
                .any(|d| d.id == x.device_id() && d.introduced_by == Some(hub.device_id()))
    })
    .await;
    let fx = x
        .config()
        .folders
        .into_iter()
        .find(|f| f.id == team)
        .unwrap();
    assert!(fx.devices.contains(&y.device_id()), "y shares team on x");
    assert_eq!(fx.introduced_by.get(&y.device_id()), Some(&hub.device_id()));
    let yd = x
        .config()
        .devices
        .into_iter()
        .find(|d| d.id == y.device_id())
        .unwrap();
    assert!(yd.addresses.contains(&"dynamic".to_owned()));
    assert!(
        yd.addresses.len() > 1,
        "the address hub advertised: {:?}",
        yd.addresses
    );
    until("x and y connected directly", || {
        connected(&x, y.device_id())
    })
    .await;
    until("x's file on y", || {
        std::fs::read(dy.path("from-x.txt")).is_ok_and(|c| c == b"x")
    })
    .await;

    // The introducer stops sharing `team` with y.
    hub.add_folder(folder("team", &dh, &[x.device_id()]))
        .await
        .unwrap();
    if skip_removals {
        // Nothing to wait for but a ClusterConfig that is handled: the hub's next one
        // (sent for this change) must leave y in place. Give it the time to arrive.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            x.config().devices.iter().any(|d| d.id == y.device_id()),
            "skipIntroductionRemovals keeps y"
        );
    } else {
        until("y removed from x", || {
            !x.config().devices.iter().any(|d| d.id == y.device_id())
        })
        .await;
        let fx = x
            .config()
            .folders
            .into_iter()
            .find(|f| f.id == team)
            .unwrap();
        assert_eq!(fx.devices, vec![hub.device_id()]);
        assert!(fx.introduced_by.is_empty());
    }
    for e in [x, y, hub] {
        e.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_introducer_adds_its_devices_and_removes_them_when_it_stops_sharing() {
    introducer_case(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skip_introduction_removals_keeps_introduced_devices() {
    introducer_case(true).await;
}

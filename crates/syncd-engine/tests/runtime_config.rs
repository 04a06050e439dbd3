//! Runtime configuration changes on real engines over loopback TLS: devices and folders added
//! and removed, devices and folders paused and resumed, while the engines run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Dir, WAIT, assert_same, connected, pair_with, until};
use syncd_engine::{
    DeviceConfig, DeviceId, Engine, EngineConfig, EngineHandle, Event, FolderConfig, FolderId,
    FolderState, WaitError, device_id_for_home,
};

async fn synced(e: &EngineHandle, folder: &FolderId, name: &str) {
    if let Err(err) = e.wait_until_synced(folder, WAIT).await {
        panic!(
            "{name} not in sync: {err:?}\nstatus: {:#?}",
            e.folder_status(folder)
        );
    }
}

/// Two engines that know nothing of each other: no devices, no folders.
struct Strangers {
    _tmp: tempfile::TempDir,
    a: EngineHandle,
    b: EngineHandle,
    da: Dir,
    db: Dir,
}

async fn strangers() -> Strangers {
    common::init_test_log();
    let tmp = tempfile::tempdir().unwrap();
    // The default listen address (loopback, a free port) is all two local engines need.
    let start = |name: &str| EngineConfig {
        home: tmp.path().join(format!("{name}-home")),
        device_name: name.into(),
        ..EngineConfig::default()
    };
    let a = Engine::start(start("a")).await.unwrap();
    let b = Engine::start(start("b")).await.unwrap();
    Strangers {
        da: Dir::new(tmp.path().join("a")),
        db: Dir::new(tmp.path().join("b")),
        _tmp: tmp,
        a,
        b,
    }
}

fn device_at(e: &EngineHandle) -> DeviceConfig {
    let mut d = DeviceConfig::new(e.device_id());
    d.addresses = vec![format!("tcp://{}", e.listen_addrs()[0])];
    d
}

fn shared_folder(id: &FolderId, dir: &Dir, peer: DeviceId) -> FolderConfig {
    let mut f = FolderConfig::new(id.clone(), &dir.root);
    f.devices = vec![peer];
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_config_listens_on_loopback_only_on_a_free_port() {
    let s = strangers().await;
    for e in [&s.a, &s.b] {
        let addrs = e.listen_addrs();
        assert_eq!(addrs.len(), 1, "{addrs:?}");
        assert!(addrs[0].ip().is_loopback(), "{addrs:?}");
        assert_ne!(addrs[0].port(), 0);
        assert_ne!(addrs[0].port(), 22000);
    }
    assert_ne!(s.a.listen_addrs(), s.b.listen_addrs());
    s.a.shutdown().await;
    s.b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_that_add_each_other_at_runtime_connect_and_sync() {
    let s = strangers().await;
    let folder = FolderId::new("late").unwrap();
    s.da.write("from-a/one.txt", "made on a");
    s.db.write("from-b.txt", "made on b");
    // `a` dials `b`; `b` only accepts `a`.
    s.a.add_device(device_at(&s.b)).await.unwrap();
    s.b.add_device(DeviceConfig::new(s.a.device_id()))
        .await
        .unwrap();
    until("a and b connected", || {
        connected(&s.a, s.b.device_id()) && connected(&s.b, s.a.device_id())
    })
    .await;
    s.a.add_folder(shared_folder(&folder, &s.da, s.b.device_id()))
        .await
        .unwrap();
    s.b.add_folder(shared_folder(&folder, &s.db, s.a.device_id()))
        .await
        .unwrap();
    for _ in 0..2 {
        synced(&s.a, &folder, "a").await;
        synced(&s.b, &folder, "b").await;
    }
    assert_same(&s.da, &s.db);
    assert_eq!(s.db.read("from-a/one.txt"), b"made on a");
    assert_eq!(s.da.read("from-b.txt"), b"made on b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_device_is_disconnected_and_refused_when_it_comes_back() {
    let s = strangers().await;
    // Both dial each other, so `b` keeps trying after `a` removes it.
    s.a.add_device(device_at(&s.b)).await.unwrap();
    s.b.add_device(device_at(&s.a)).await.unwrap();
    until("a and b connected", || {
        connected(&s.a, s.b.device_id()) && connected(&s.b, s.a.device_id())
    })
    .await;
    let mut events = s.a.subscribe();
    s.a.remove_device(s.b.device_id()).await.unwrap();
    assert!(
        s.a.connections()
            .iter()
            .all(|c| c.device != s.b.device_id())
    );
    until("b sees the connection gone", || {
        !connected(&s.b, s.a.device_id())
    })
    .await;
    // `b` redials; `a` refuses it after Hello and reports it as an unknown device.
    let rejected = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(Event::DeviceRejected { device, .. }) => return device,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("a must report b's new attempt as rejected");
    assert_eq!(rejected, s.b.device_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_device_stops_sharing_folders_with_it() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("x.txt", "x")).await;
    p.synced().await;
    let b_id = p.b.device_id();
    p.a.remove_device(b_id).await.unwrap();
    let f =
        p.a.config()
            .folders
            .into_iter()
            .find(|f| f.id == p.folder)
            .unwrap();
    assert!(!f.devices.contains(&b_id));
    // With nobody left to share with, `a` alone is in sync.
    p.a.wait_until_synced(&p.folder, WAIT).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_device_is_disconnected_and_resumed_device_catches_up() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("before.txt", "1")).await;
    p.synced().await;
    let (a_id, b_id) = (p.a.device_id(), p.b.device_id());
    p.a.pause_device(b_id).await.unwrap();
    until("disconnected on both sides", || {
        !connected(&p.a, b_id) && !connected(&p.b, a_id)
    })
    .await;
    assert!(
        p.a.connections()
            .iter()
            .any(|c| c.device == b_id && c.paused)
    );
    p.db.write("while-paused.txt", "made while paused");
    p.b.scan(&p.folder, None).await.unwrap();
    let err =
        p.a.wait_until_synced(&p.folder, Duration::from_millis(500))
            .await
            .unwrap_err();
    assert!(matches!(err, WaitError::Timeout { .. }), "{err:?}");
    assert!(!p.da.exists("while-paused.txt"));
    p.a.resume_device(b_id).await.unwrap();
    p.synced().await;
    assert_eq!(p.da.read("while-paused.txt"), b"made while paused");
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_folder_neither_pulls_nor_scans_until_resumed() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("before.txt", "1")).await;
    p.synced().await;
    p.a.pause_folder(&p.folder).await.unwrap();
    until("a's folder reports paused", || {
        p.a.folder_status(&p.folder)
            .is_some_and(|s| s.state == FolderState::Paused)
    })
    .await;
    assert!(p.a.scan(&p.folder, None).await.is_err());
    p.db.write("while-paused.txt", "made while a's folder was paused");
    p.b.scan(&p.folder, None).await.unwrap();
    // `b` cannot be in sync: `a` has paused the folder and does not take the change.
    let err =
        p.b.wait_until_synced(&p.folder, Duration::from_millis(500))
            .await
            .unwrap_err();
    assert!(matches!(err, WaitError::Timeout { .. }), "{err:?}");
    assert!(!p.da.exists("while-paused.txt"));
    p.a.resume_folder(&p.folder).await.unwrap();
    p.synced().await;
    assert_eq!(
        p.da.read("while-paused.txt"),
        b"made while a's folder was paused"
    );
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_added_at_runtime_between_connected_engines_syncs() {
    let p = pair_with(|_: &Dir, _: &Dir| {}).await;
    p.synced().await;
    let second = FolderId::new("second").unwrap();
    let tmp = p.da.root.parent().unwrap().to_path_buf();
    let (d2a, d2b) = (Dir::new(tmp.join("a2")), Dir::new(tmp.join("b2")));
    d2a.write("docs/a.txt", "a's second folder");
    d2b.write("b.txt", "b's second folder");
    // `b` adds it first: `a`'s ClusterConfig listing it arrives after, and vice versa.
    p.b.add_folder(shared_folder(&second, &d2b, p.a.device_id()))
        .await
        .unwrap();
    p.a.add_folder(shared_folder(&second, &d2a, p.b.device_id()))
        .await
        .unwrap();
    for _ in 0..2 {
        synced(&p.a, &second, "a").await;
        synced(&p.b, &second, "b").await;
    }
    assert_same(&d2a, &d2b);
    assert!(d2a.exists("b.txt") && d2b.exists("docs/a.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_folder_keeps_its_files_and_stops_syncing() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("kept.txt", "stays on disk")).await;
    p.synced().await;
    p.a.remove_folder(&p.folder).await.unwrap();
    assert!(!p.a.folder_ids().contains(&p.folder));
    assert!(p.a.folder_status(&p.folder).is_none());
    assert_eq!(p.da.read("kept.txt"), b"stays on disk");
    // `a`'s new ClusterConfig (without the folder) reaches `b`, which then stops sending
    // its index for it.
    let a_id = p.a.device_id();
    until("b sees a no longer sharing the folder", || {
        p.b.completion(&p.folder, Some(a_id))
            .is_some_and(|c| c.remote_state != "valid")
    })
    .await;
    p.db.write("after-removal.txt", "not for a");
    p.b.scan(&p.folder, None).await.unwrap();
    // `b` still shares the folder with `a`, which no longer announces it.
    let err =
        p.b.wait_until_synced(&p.folder, Duration::from_millis(500))
            .await
            .unwrap_err();
    assert!(matches!(err, WaitError::Timeout { .. }), "{err:?}");
    assert!(!p.da.exists("after-removal.txt"));
    // The connection survives a folder removal.
    assert!(connected(&p.a, p.b.device_id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_paused_at_start_connects_once_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let (ha, hb) = (tmp.path().join("a-home"), tmp.path().join("b-home"));
    let (ida, idb) = (
        device_id_for_home(&ha).unwrap(),
        device_id_for_home(&hb).unwrap(),
    );
    let b = Engine::start(EngineConfig {
        home: hb,
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![DeviceConfig::new(ida)],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    let mut b_dev = device_at(&b);
    b_dev.paused = true;
    let a = Engine::start(EngineConfig {
        home: ha,
        listen: vec!["tcp://127.0.0.1:0".into()],
        devices: vec![b_dev],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    assert!(!connected(&a, idb));
    a.resume_device(idb).await.unwrap();
    until("a and b connected after resume", || {
        connected(&a, idb) && connected(&b, ida)
    })
    .await;
}

/// `FolderScanProgress` events of `folder` until its next `ScanFinished`: (current, total).
async fn scan_progress_until_finished(
    mut events: tokio::sync::broadcast::Receiver<Event>,
    folder: &FolderId,
) -> Vec<(u64, u64)> {
    let mut seen = Vec::new();
    let collect = async {
        loop {
            match events.recv().await {
                Ok(Event::FolderScanProgress {
                    folder: f,
                    current,
                    total,
                    ..
                }) if &f == folder => seen.push((current, total)),
                Ok(Event::ScanFinished { folder: f }) if &f == folder => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, collect)
        .await
        .expect("no ScanFinished");
    seen
}

fn assert_progress(seen: &[(u64, u64)], size: u64, what: &str) {
    assert!(seen.len() >= 2, "{what}: {seen:?}");
    assert!(
        seen.iter().all(|&(c, t)| t == size && c <= t),
        "{what}: {seen:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 <= w[1].0),
        "{what}: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_report_hashing_progress_at_the_folder_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::new(tmp.path().join("f"));
    // Sparse: created at once, yet hashing its 256 MiB of zeros takes a while (seconds in a
    // debug build; a 20 ms interval gives many events either way).
    const BIG: u64 = 256 << 20;
    let big = std::fs::File::create(dir.path("big")).unwrap();
    big.set_len(BIG).unwrap();
    let folder = FolderId::new("f").unwrap();
    let mut f = FolderConfig::new(folder.clone(), &dir.root);
    f.scan_progress_interval_ms = 20;
    f.watcher_enabled = false; // the requested scan below must be the one that sees the change
    let e = Engine::start(EngineConfig {
        home: tmp.path().join("home"),
        listen: vec!["tcp://127.0.0.1:0".into()],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    // The first scan, started when the folder is added: subscribed before, so none of its
    // events can be missed (a folder configured at start may be half hashed by then).
    let events = e.subscribe();
    e.add_folder(f).await.unwrap();
    let seen = scan_progress_until_finished(events, &folder).await;
    assert_progress(&seen, BIG, "first scan");

    // A requested rescan after the file grew by one byte.
    big.set_len(BIG + 1).unwrap();
    let events = e.subscribe();
    let collector = {
        let folder = folder.clone();
        tokio::spawn(async move { scan_progress_until_finished(events, &folder).await })
    };
    e.scan(&folder, None).await.unwrap();
    let seen = collector.await.unwrap();
    assert_progress(&seen, BIG + 1, "requested scan");
}

/// Waits until `dir` holds `rel` with `content`.
async fn arrives(dir: &Dir, rel: &str, content: &str, what: &str) {
    until(what, || {
        std::fs::read(dir.path(rel)).is_ok_and(|b| b == content.as_bytes())
    })
    .await;
}

/// After a change: both sides in sync, `b` complete as `a` sees it, and an edit made on each
/// side afterwards reaches the other.
async fn still_syncs(p: &common::Pair, step: &str, watcher: bool) {
    p.synced().await;
    let c = p.a.completion(&p.folder, Some(p.b.device_id())).unwrap();
    assert_eq!(
        (c.completion, c.need_items, c.remote_state),
        (100.0, 0, "valid"),
        "{step}: b's completion as a sees it: {c:?}"
    );
    let name = step.replace(' ', "-");
    p.da.write(&format!("{name}-a.txt"), step);
    p.db.write(&format!("{name}-b.txt"), step);
    if !watcher {
        p.a.scan(&p.folder, None).await.unwrap();
        p.b.scan(&p.folder, None).await.unwrap();
    }
    arrives(
        &p.db,
        &format!("{name}-a.txt"),
        step,
        &format!("{step}: a's edit on b"),
    )
    .await;
    arrives(
        &p.da,
        &format!("{name}-b.txt"),
        step,
        &format!("{step}: b's edit on a"),
    )
    .await;
}

/// A named change of a folder's settings, and whether the folder's watcher runs after it.
type FolderStep = (&'static str, fn(&mut FolderConfig), bool);
/// A named change of a device's settings.
type DeviceStep = (&'static str, fn(&mut DeviceConfig));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_folder_setting_changed_at_runtime_keeps_the_folder_syncing() {
    let p = common::pair_with(|da, _| da.write("start.txt", "x")).await;
    still_syncs(&p, "at start", true).await;
    let mut cfg = p.a_cfg.folders[0].clone();
    let steps: [FolderStep; 11] = [
        ("watcher delay", |f| f.watcher_delay_ms = 2000, true),
        ("rescan interval", |f| f.rescan_interval_s = 7, true),
        ("ignore perms", |f| f.ignore_perms = true, true),
        ("max conflicts", |f| f.max_conflicts = 3, true),
        ("label", |f| f.label = "Workspaces".into(), true),
        ("progress", |f| f.scan_progress_interval_ms = 500, true),
        ("watcher off", |f| f.watcher_enabled = false, false),
        ("watcher on", |f| f.watcher_enabled = true, true),
        ("paused", |f| f.paused = true, true),
        ("resumed", |f| f.paused = false, true),
        ("same again", |_| {}, true),
    ];
    for (step, change, watcher) in steps {
        change(&mut cfg);
        p.a.add_folder(cfg.clone()).await.unwrap();
        if cfg.paused {
            // Paused: the peer sees it paused and nothing moves; resumed in the next step.
            until("b sees a's folder paused", || {
                p.b.completion(&p.folder, Some(p.a.device_id()))
                    .is_some_and(|c| c.remote_state == "paused")
            })
            .await;
            continue;
        }
        still_syncs(&p, step, watcher).await;
    }
    assert_eq!(p.a.config().folders[0].label, "Workspaces");
    // Same names and contents (modes differ where a side ignored permissions).
    assert_eq!(p.da.entries(), p.db.entries());
    for name in p.da.entries() {
        if p.da.path(&name).is_file() {
            assert_eq!(p.da.read(&name), p.db.read(&name), "{name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_setting_changed_at_runtime_keeps_the_folder_syncing() {
    let p = common::pair_with(|da, _| da.write("start.txt", "x")).await;
    still_syncs(&p, "at start", true).await;
    let mut dev = p.a_cfg.devices[0].clone();
    let steps: [DeviceStep; 5] = [
        ("name", |d| d.name = "the vps".into()),
        ("addresses", |d| {
            d.addresses.push("tcp://127.0.0.1:9".into())
        }),
        ("compression", |d| {
            d.compression = syncd_engine::CompressionPolicy::Always
        }),
        ("paused", |d| d.paused = true),
        ("resumed", |d| d.paused = false),
    ];
    for (step, change) in steps {
        change(&mut dev);
        p.a.add_device(dev.clone()).await.unwrap();
        if dev.paused {
            until("b disconnected", || !connected(&p.a, p.b.device_id())).await;
            continue;
        }
        still_syncs(&p, step, true).await;
    }
    let st = p.a.connections();
    assert_eq!(st[0].name, "the vps");
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_changed_during_a_long_first_scan_answers_before_the_scan_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::new(tmp.path().join("f"));
    // Sparse: created at once, hashing its 1 GiB of zeros takes seconds.
    let big = std::fs::File::create(dir.path("big")).unwrap();
    big.set_len(1 << 30).unwrap();
    let folder = FolderId::new("f").unwrap();
    let f = FolderConfig::new(folder.clone(), &dir.root);
    let e = Engine::start(EngineConfig {
        home: tmp.path().join("home"),
        listen: vec!["tcp://127.0.0.1:0".into()],
        folders: vec![f.clone()],
        ..EngineConfig::default()
    })
    .await
    .unwrap();
    until("the first scan hashes", || {
        e.folder_status(&folder)
            .is_some_and(|s| s.state == FolderState::Scanning)
    })
    .await;
    let mut changed = f.clone();
    changed.label = "Renamed".into();
    e.add_folder(changed).await.unwrap();
    // Answered while the scan still runs; the change is already the configuration.
    assert_eq!(
        e.folder_status(&folder).unwrap().state,
        FolderState::Scanning
    );
    assert_eq!(e.config().folders[0].label, "Renamed");
    e.shutdown().await;
}

//! Send-only and receive-only folders on two real engines over loopback TLS, with real files
//! and real indexes: a receive-only side keeps its local changes local (announced invalid with
//! an empty version, counted, listed) until a revert brings the global versions back without
//! conflict copies; a send-only side never applies remote changes, and its override makes its
//! versions win on the peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Pair, pair, until};
use syncd_engine::versioner::{VersioningConfig, VersioningType};
use syncd_engine::{EngineHandle, FolderType};

/// Sets `e`'s folder type (and versioning) at run time.
async fn set_type(p: &Pair, e: &EngineHandle, t: FolderType, versioning: Option<VersioningType>) {
    let mut cfg = e.config().folders[0].clone();
    cfg.folder_type = t;
    if let Some(kind) = versioning {
        cfg.versioning = VersioningConfig {
            kind,
            ..VersioningConfig::default()
        };
    }
    e.add_folder(cfg).await.unwrap();
    e.scan(&p.folder, None).await.unwrap();
}

fn receive_only_items(e: &EngineHandle, p: &Pair) -> u64 {
    let st = e.folder_status(&p.folder).unwrap();
    st.receive_only_changed
        .map(|c| c.items() + c.deleted)
        .expect("a receive-only folder reports its local changes")
}

fn has_conflict_copy(names: &[String]) -> bool {
    names.iter().any(|n| n.contains(".sync-conflict-"))
}

/// Whether `e` has received `from`'s index up to `from`'s current sequence.
fn caught_up(e: &EngineHandle, from: &EngineHandle, p: &Pair) -> bool {
    let want = from.folder_status(&p.folder).unwrap().sequence;
    e.folder_status(&p.folder)
        .unwrap()
        .remote_sequence
        .get(&from.device_id())
        .is_some_and(|s| *s >= want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_only_changes_stay_local_until_a_revert_brings_the_global_versions_back() {
    let p = pair().await;
    set_type(
        &p,
        &p.b,
        FolderType::ReceiveOnly,
        Some(VersioningType::Trashcan),
    )
    .await;
    p.da.write("edit.txt", "global");
    p.da.write("gone.txt", "global, deleted on b");
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    assert_eq!(p.db.read("edit.txt"), b"global");
    assert_eq!(receive_only_items(&p.b, &p), 0);

    // Local changes on the receive-only side: a modification, an addition, a deletion.
    p.db.write("edit.txt", "changed on b");
    p.db.write("only-b.txt", "made on b");
    p.db.write("b-dir/inner.txt", "in a directory made on b");
    std::fs::remove_file(p.db.path("gone.txt")).unwrap();
    p.b.scan(&p.folder, None).await.unwrap();
    let st = p.b.folder_status(&p.folder).unwrap();
    let ro = st.receive_only_changed.unwrap();
    assert_eq!((ro.files, ro.directories, ro.deleted), (3, 1, 1), "{ro:?}");
    assert_eq!(
        ro.bytes,
        ["changed on b", "made on b", "in a directory made on b"]
            .iter()
            .map(|s| s.len() as u64)
            .sum::<u64>()
    );
    let listed = p.b.local_changes(&p.folder, 1, 100).await.unwrap();
    let names: Vec<&str> = listed.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "b-dir",
            "b-dir/inner.txt",
            "edit.txt",
            "gone.txt",
            "only-b.txt"
        ]
    );
    assert_eq!(listed.total, 5);
    let page3 = p.b.local_changes(&p.folder, 3, 2).await.unwrap();
    assert_eq!(page3.files.len(), 1);
    assert_eq!(page3.files[0].name, "only-b.txt");

    // They stay local: `a` sees them as invalid records with an empty version, its files and
    // its global versions are untouched, and neither side needs anything.
    until("a has b's index", || caught_up(&p.a, &p.b, &p)).await;
    for name in ["edit.txt", "only-b.txt", "gone.txt"] {
        let d = p.a.file_details(&p.folder, name).await.unwrap().unwrap();
        if name == "only-b.txt" {
            assert!(d.global.invalid && d.global.version.is_empty(), "{d:?}");
        } else {
            assert!(!d.global.invalid, "{name}: {d:?}");
            assert!(!d.availability.contains(&p.b.device_id()), "{name}: {d:?}");
        }
    }
    assert_eq!(p.da.read("edit.txt"), b"global");
    assert_eq!(p.da.read("gone.txt"), b"global, deleted on b");
    assert!(!p.da.exists("only-b.txt") && !p.da.exists("b-dir"));
    // b needs nothing; a sees b as needing what b changed (its versions are empty), as
    // Syncthing shows a receive-only device with local changes.
    let st = p.b.folder_status(&p.folder).unwrap();
    assert_eq!((st.need.items(), st.need.deleted), (0, 0), "{st:?}");

    // Revert: the global versions come back without conflict copies; what existed only on b
    // goes to its versions (trash can on).
    p.b.revert_changes(&p.folder).await.unwrap();
    until("b reverted", || {
        p.db.exists("edit.txt")
            && p.db.read("edit.txt") == b"global"
            && p.db.exists("gone.txt")
            && !p.db.exists("only-b.txt")
            && !p.db.exists("b-dir")
    })
    .await;
    p.synced().await;
    assert_eq!(p.db.read("gone.txt"), b"global, deleted on b");
    assert_eq!(
        std::fs::read(p.db.path(".stversions/only-b.txt")).unwrap(),
        b"made on b"
    );
    assert_eq!(
        std::fs::read(p.db.path(".stversions/b-dir/inner.txt")).unwrap(),
        b"in a directory made on b"
    );
    assert!(!has_conflict_copy(&p.db.entries()), "{:?}", p.db.entries());
    assert_eq!(receive_only_items(&p.b, &p), 0);
    assert!(!p.da.exists("only-b.txt"));
    assert_eq!(p.da.read("edit.txt"), b"global");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_over_a_receive_only_change_keeps_it_as_a_local_conflict_copy() {
    let p = pair().await;
    set_type(&p, &p.b, FolderType::ReceiveOnly, None).await;
    p.da.write("f.txt", "v1");
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    p.db.write("f.txt", "b's local edit");
    p.b.scan(&p.folder, None).await.unwrap();
    until("a has b's index", || caught_up(&p.a, &p.b, &p)).await;
    p.da.write("f.txt", "v2 from a");
    p.a.scan(&p.folder, None).await.unwrap();
    until("b took a's v2", || p.db.read("f.txt") == b"v2 from a").await;
    p.synced().await;
    let copies: Vec<String> =
        p.db.entries()
            .into_iter()
            .filter(|n| n.contains(".sync-conflict-"))
            .collect();
    assert_eq!(copies.len(), 1, "{:?}", p.db.entries());
    assert_eq!(p.db.read(&copies[0]), b"b's local edit");
    // The copy is a receive-only change: counted on b, never on a.
    until("b counted its copy", || receive_only_items(&p.b, &p) == 1).await;
    until("a has b's index", || caught_up(&p.a, &p.b, &p)).await;
    assert!(!has_conflict_copy(&p.da.entries()), "{:?}", p.da.entries());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_only_never_applies_remote_changes_until_override_makes_ours_win() {
    let p = pair().await;
    set_type(&p, &p.a, FolderType::SendOnly, None).await;
    p.da.write("x.txt", "a's version");
    p.da.write("same.txt", "identical");
    p.a.scan(&p.folder, None).await.unwrap();
    until("b has a's files", || {
        p.db.exists("x.txt") && p.db.read("x.txt") == b"a's version" && p.db.exists("same.txt")
    })
    .await;
    p.synced().await;

    // b changes and adds; a applies nothing and needs both.
    p.db.write("x.txt", "b's edit");
    p.db.write("b-new.txt", "from b");
    p.b.scan(&p.folder, None).await.unwrap();
    until("a needs b's changes", || {
        let st = p.a.folder_status(&p.folder).unwrap();
        st.need.files == 2
    })
    .await;
    assert_eq!(p.da.read("x.txt"), b"a's version");
    assert!(!p.da.exists("b-new.txt"));
    assert!(!has_conflict_copy(&p.da.entries()));
    let need = p.a.needed_files(&p.folder, None, 1, 10).await.unwrap();
    let names: Vec<&str> = need.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["b-new.txt", "x.txt"]);

    // Override: a's versions win on b (b's addition is deleted), with no conflict copy.
    assert_eq!(p.a.override_changes(&p.folder).await.unwrap(), 2);
    until("b took a's versions", || {
        p.db.read("x.txt") == b"a's version" && !p.db.exists("b-new.txt")
    })
    .await;
    p.synced().await;
    assert_eq!(p.a.folder_status(&p.folder).unwrap().need.items(), 0);
    assert!(!has_conflict_copy(&p.db.entries()), "{:?}", p.db.entries());
    assert_eq!(p.da.read("same.txt"), b"identical");
    // Override and revert do nothing on folders of another type.
    assert_eq!(p.b.override_changes(&p.folder).await.unwrap(), 0);
    assert_eq!(p.a.revert_changes(&p.folder).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_only_adopts_the_global_version_of_what_it_already_has() {
    let p = pair().await;
    set_type(&p, &p.a, FolderType::SendOnly, None).await;
    // The same content written on both sides independently: a needs nothing afterwards.
    p.da.write("twin.txt", "same bytes");
    p.db.write("twin.txt", "same bytes");
    let mtime = std::fs::metadata(p.da.path("twin.txt"))
        .unwrap()
        .modified()
        .unwrap();
    std::fs::File::options()
        .write(true)
        .open(p.db.path("twin.txt"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    p.b.scan(&p.folder, None).await.unwrap();
    p.a.scan(&p.folder, None).await.unwrap();
    until("a and b agree", || {
        caught_up(&p.a, &p.b, &p)
            && caught_up(&p.b, &p.a, &p)
            && p.a.folder_status(&p.folder).unwrap().need.items() == 0
            && p.b.folder_status(&p.folder).unwrap().need.items() == 0
    })
    .await;
    assert!(!has_conflict_copy(&p.da.entries()));
    assert!(!has_conflict_copy(&p.db.entries()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receive_only_folder_made_send_receive_sends_its_local_changes() {
    let p = pair().await;
    set_type(&p, &p.b, FolderType::ReceiveOnly, None).await;
    p.db.write("mine.txt", "made on b");
    p.b.scan(&p.folder, None).await.unwrap();
    assert_eq!(receive_only_items(&p.b, &p), 1);
    set_type(&p, &p.b, FolderType::SendReceive, None).await;
    until("a has b's file", || {
        p.da.exists("mine.txt") && p.da.read("mine.txt") == b"made on b"
    })
    .await;
    p.synced().await;
    assert!(
        p.b.folder_status(&p.folder)
            .unwrap()
            .receive_only_changed
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_only_folder_made_send_receive_pulls_what_it_needed() {
    let p = pair().await;
    set_type(&p, &p.a, FolderType::SendOnly, None).await;
    p.db.write("from-b.txt", "b's file");
    p.b.scan(&p.folder, None).await.unwrap();
    until("a needs b's file", || {
        p.a.folder_status(&p.folder).unwrap().need.files == 1
    })
    .await;
    assert!(!p.da.exists("from-b.txt"));
    set_type(&p, &p.a, FolderType::SendReceive, None).await;
    until("a pulled b's file", || p.da.exists("from-b.txt")).await;
    p.synced().await;
    assert_eq!(p.da.read("from-b.txt"), b"b's file");
}

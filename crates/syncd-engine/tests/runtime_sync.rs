//! Acceptance cases on two real engines over loopback TLS: a 10,000-file tree, delete-vs-edit
//! under the delete rule two syncd engines use (Syncthing 2.x's), and symlinks recorded as
//! links and never followed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{Dir, Pair, assert_same, pair_with};

/// Generous: these trees are large and the test machine is shared.
const LONG_WAIT: Duration = Duration::from_secs(300);

async fn synced_within(p: &Pair, wait: Duration) {
    for (name, e) in [("a", &p.a), ("b", &p.b), ("a", &p.a)] {
        if let Err(err) = e.wait_until_synced(&p.folder, wait).await {
            panic!(
                "{name} not in sync: {err:?}\nstatus: {:#?}",
                e.folder_status(&p.folder)
            );
        }
    }
}

fn conflict_copies(d: &Dir) -> Vec<String> {
    d.entries()
        .into_iter()
        .filter(|e| e.contains(".sync-conflict-"))
        .collect()
}

fn set_mtime(d: &Dir, rel: &str, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(d.path(rel))
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_thousand_file_tree_syncs() {
    const FILES: usize = 10_000;
    let p = pair_with(|a: &Dir, _: &Dir| {
        for i in 0..FILES {
            a.write(
                &format!("t/{:02}/{:02}/f{i}.txt", i % 100, (i / 100) % 10),
                format!("file {i}\n"),
            );
        }
    })
    .await;
    synced_within(&p, LONG_WAIT).await;
    let st = p.b.folder_status(&p.folder).unwrap();
    assert_eq!(st.local.files, FILES as u64, "{st:#?}");
    assert_same(&p.da, &p.db);
}

/// Both sides hold `notes.txt`; while disconnected `a` deletes it and `b` edits it with the
/// given modification time; then they reconnect and must converge.
async fn delete_vs_edit(edit_mtime: SystemTime) -> Pair {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("notes.txt", "original")).await;
    p.synced().await;
    let b_id = p.b.device_id();
    p.a.pause_device(b_id).await.unwrap();
    p.db.write("notes.txt", "edited on b");
    set_mtime(&p.db, "notes.txt", edit_mtime);
    p.b.scan(&p.folder, None).await.unwrap();
    std::fs::remove_file(p.da.path("notes.txt")).unwrap();
    p.a.scan(&p.folder, None).await.unwrap();
    p.a.resume_device(b_id).await.unwrap();
    p.synced().await;
    p
}

// Between two syncd engines nobody announced Syncthing 1.x in Hello, so the folder uses the
// 2.x rule: a delete is a version dated when it was detected, and the newer change wins.
// (The 1.x rule, where the edit always survives, applies once a Syncthing 1.x device
// connects: see tests/interop `delete_vs_edit` against Syncthing 1.19.2, and the rule table
// in syncd-conflict.)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_syncd_engines_a_newer_delete_wins_and_the_older_edit_becomes_a_conflict_copy() {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let p = delete_vs_edit(an_hour_ago).await;
    assert!(!p.da.exists("notes.txt"), "a: {:?}", p.da.entries());
    assert!(!p.db.exists("notes.txt"), "b: {:?}", p.db.entries());
    // The edit is not lost: it lives on as one conflict copy, on both sides.
    let copies = conflict_copies(&p.db);
    assert_eq!(copies.len(), 1, "b: {:?}", p.db.entries());
    assert_eq!(conflict_copies(&p.da), copies);
    assert_eq!(p.da.read(&copies[0]), b"edited on b");
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_syncd_engines_a_newer_edit_wins_over_an_older_delete() {
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let p = delete_vs_edit(in_an_hour).await;
    assert_eq!(p.da.read("notes.txt"), b"edited on b");
    assert!(conflict_copies(&p.da).is_empty(), "{:?}", p.da.entries());
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symlinks_sync_as_links_and_are_never_followed() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside the folder").unwrap();
    let outside_path = outside.path().to_str().unwrap().to_owned();
    let p = pair_with(|a: &Dir, _: &Dir| {
        a.write("real/file.txt", "inside");
        a.symlink("to-outside", &outside_path);
        a.symlink("to-dir", "real");
        a.symlink("dangling", "does/not/exist");
    })
    .await;
    p.synced().await;
    for rel in ["to-outside", "to-dir", "dangling"] {
        let m = std::fs::symlink_metadata(p.db.path(rel)).unwrap();
        assert!(m.file_type().is_symlink(), "{rel} is not a symlink on b");
    }
    assert_eq!(
        std::fs::read_link(p.db.path("to-outside")).unwrap(),
        outside.path()
    );
    // Nothing behind a link was scanned or sent: the global state holds one file and three
    // links, not the linked directories' contents.
    let st = p.b.folder_status(&p.folder).unwrap();
    assert_eq!((st.global.files, st.global.symlinks), (1, 3), "{st:#?}");
    assert_same(&p.da, &p.db);

    // Retargeting a link and replacing a link by a file both reach the peer.
    std::fs::remove_file(p.da.path("to-dir")).unwrap();
    p.da.symlink("to-dir", "real/file.txt");
    std::fs::remove_file(p.da.path("dangling")).unwrap();
    p.da.write("dangling", "now a file");
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    assert_eq!(
        std::fs::read_link(p.db.path("to-dir")).unwrap(),
        std::path::Path::new("real/file.txt")
    );
    assert_eq!(p.db.read("dangling"), b"now a file");
    assert_same(&p.da, &p.db);
}

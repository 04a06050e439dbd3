//! The puller racing the user and the scanner: a local edit made during a pull is never lost;
//! directories the puller creates never show umask permissions to a scan (which would make a
//! new local version of them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::{Dir, pair_configured, pair_with, random_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_edit_made_while_the_peer_version_is_being_pulled_is_never_lost() {
    let p = pair_with(|a: &Dir, b: &Dir| {
        a.write("doc.bin", "first version");
        b.write("unrelated.txt", "b");
    })
    .await;
    p.synced().await;
    let big = random_bytes(48 * 1024 * 1024, 0x5eed);
    let edit = b"edited on b while a's version was arriving".to_vec();
    // As soon as b has started pulling the new version (its temp file exists, so the puller
    // has checked the old file), edit b's file. The watcher is polled from its own thread,
    // started before the new version exists, so the pull cannot slip past it.
    let (target, temp) = (
        p.db.path("doc.bin"),
        p.db.path(&syncd_types::names::temp_name("doc.bin")),
    );
    let edit2 = edit.clone();
    let editor = std::thread::spawn(move || {
        let start = Instant::now();
        while !temp.exists() {
            assert!(start.elapsed() < common::WAIT, "b never started pulling");
            std::thread::sleep(Duration::from_millis(1));
        }
        let during_pull = std::fs::read(&target).unwrap() == b"first version";
        std::fs::write(&target, &edit2).unwrap();
        during_pull
    });
    // Written beside the folder and renamed in, so a's watcher never sees a partial file.
    let staging = p._tmp.path().join("doc.bin.staging");
    std::fs::write(&staging, &big).unwrap();
    std::fs::rename(&staging, p.da.path("doc.bin")).unwrap();
    p.a.scan(&p.folder, None).await.unwrap();
    let during_pull = tokio::task::spawn_blocking(move || editor.join().unwrap())
        .await
        .unwrap();
    assert!(
        during_pull,
        "b's pull finished before the edit: the race was not exercised"
    );
    p.synced().await;
    // The edit survives on both sides: as the file itself or as its conflict copy.
    for d in [&p.da, &p.db] {
        let holders: Vec<String> = d
            .entries()
            .into_iter()
            .filter(|e| e == "doc.bin" || e.starts_with("doc.sync-conflict-"))
            .filter(|e| d.read(e) == edit)
            .collect();
        assert_eq!(holders.len(), 1, "edit lost: {:?}", d.entries());
    }
    common::assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_created_by_the_puller_have_their_mode_and_make_no_new_version() {
    const DIRS: usize = 60;
    let modes = [0o777, 0o700, 0o750, 0o775];
    let p = pair_configured(
        |a: &Dir, _: &Dir| {
            for i in 0..DIRS {
                let d = format!("dirs/d{i:03}");
                a.mkdir(&d);
                a.write(&format!("{d}/f"), "x");
                a.chmod(&d, modes[i % modes.len()]);
            }
        },
        // Scan on every event as fast as possible: the scanner races the puller.
        |f| f.watcher_delay_ms = 1,
    )
    .await;
    p.synced().await;
    for i in 0..DIRS {
        let mode = std::fs::metadata(p.db.path(&format!("dirs/d{i:03}")))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, modes[i % modes.len()], "d{i:03}");
    }
    // Had b recorded any of them with a new version, a would have pulled that version and
    // given its own record a new sequence: a's sequence would exceed its items.
    let st = p.a.folder_status(&p.folder).unwrap();
    assert_eq!(
        st.sequence,
        st.local.items(),
        "a pulled new versions of its own items from b: {st:#?}"
    );
    common::assert_same(&p.da, &p.db);
}

//! Two real engines on loopback TLS with real temp folders: the folder converges.

mod common;

use std::time::Duration;

use common::{Dir, assert_same, pair, pair_with, random_bytes};
use syncd_engine::{Event, FolderState, WaitError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_trees_merge_both_ways() {
    let p = pair_with(|a: &Dir, b: &Dir| {
        a.write("docs/readme.txt", "from a\n");
        a.mkdir("empty-dir");
        a.symlink("link", "docs/readme.txt");
        b.write("src/main.rs", "fn main() {}\n");
        b.write("src/lib/deep/x.bin", vec![7u8; 300_000]);
        b.chmod("src/main.rs", 0o755);
    })
    .await;
    p.synced().await;
    assert_same(&p.da, &p.db);
    assert!(p.da.exists("src/lib/deep/x.bin") && p.db.exists("docs/readme.txt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modified_file_reaches_the_peer() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("f.txt", "one")).await;
    p.synced().await;
    p.da.write("f.txt", "two, longer");
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    assert_eq!(p.db.read("f.txt"), b"two, longer");
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_file_and_directory_are_deleted_on_the_peer() {
    let p = pair_with(|a: &Dir, _: &Dir| {
        a.write("keep.txt", "k");
        a.write("gone/inner/file.txt", "x");
    })
    .await;
    p.synced().await;
    assert!(p.db.exists("gone/inner/file.txt"));
    std::fs::remove_dir_all(p.da.path("gone")).unwrap();
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    assert!(!p.db.exists("gone"));
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_file_arrives_under_its_new_name() {
    let p = pair_with(|_: &Dir, b: &Dir| b.write("old/name.txt", "content")).await;
    p.synced().await;
    std::fs::create_dir(p.db.path("new")).unwrap();
    std::fs::rename(p.db.path("old/name.txt"), p.db.path("new/name.txt")).unwrap();
    p.b.scan(&p.folder, None).await.unwrap();
    p.b.wait_until_synced(&p.folder, common::WAIT)
        .await
        .unwrap();
    p.synced().await;
    assert!(!p.da.exists("old/name.txt"));
    assert_eq!(p.da.read("new/name.txt"), b"content");
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_and_larger_than_16_mib_files_sync() {
    let big: Vec<u8> = (0..17 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let p = pair_with(|a: &Dir, _: &Dir| {
        a.write("empty", "");
        a.write("big.bin", &big);
    })
    .await;
    p.synced().await;
    assert_eq!(p.db.read("empty"), b"");
    assert!(p.db.read("big.bin") == big, "big file content differs");
    assert_same(&p.da, &p.db);
}

/// More large files than the puller pulls at once (the rest wait their turn while small files
/// go on beside them), in the same pass as many small files: all arrive whole, with their
/// modes (whether or not the temp file was created with them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_large_files_among_small_ones_all_sync() {
    let body = |i: u32, len: u32| -> Vec<u8> {
        (0..len)
            .map(|j| (j.wrapping_add(i).wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect()
    };
    let p = pair_with(|a: &Dir, _: &Dir| {
        for i in 0..40u32 {
            a.write(&format!("assets/a{i:02}.bin"), body(i, 200_000 + i * 1000));
        }
        for i in 0..300u32 {
            a.write(&format!("src/s{i:03}.txt"), body(i, 100 + i));
        }
        // Modes a new temp file gets by itself (under the umask) and ones only a chmod gives.
        for (name, mode) in [
            ("src/s000.txt", 0o444),
            ("src/s001.txt", 0o755),
            ("src/s002.txt", 0o640),
            ("src/s003.txt", 0o600),
            ("assets/a00.bin", 0o400),
            ("assets/a01.bin", 0o775),
        ] {
            a.chmod(name, mode);
        }
    })
    .await;
    p.synced().await;
    for i in 0..40u32 {
        assert!(p.db.read(&format!("assets/a{i:02}.bin")) == body(i, 200_000 + i * 1000));
    }
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stignore_patterns_are_not_sent() {
    let p = pair_with(|a: &Dir, b: &Dir| {
        a.write(".stignore", "*.log\nbuild\n");
        a.write("app.log", "noise");
        a.write("build/out.o", "obj");
        a.write("src.c", "int x;");
        b.write(".stignore", "*.log\nbuild\n");
    })
    .await;
    p.synced().await;
    assert!(p.db.exists("src.c"));
    assert!(!p.db.exists("app.log"));
    assert!(!p.db.exists("build"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_leave_one_conflict_copy_on_both_sides() {
    let p = pair_with(|a: &Dir, b: &Dir| {
        a.write("notes.txt", "edit from a");
        b.write("notes.txt", "edit from b, different");
    })
    .await;
    let mut events = p.a.subscribe();
    p.synced().await;
    let _ = &mut events;
    let conflicts = |d: &Dir| -> Vec<String> {
        d.entries()
            .into_iter()
            .filter(|e| e.contains(".sync-conflict-"))
            .collect()
    };
    assert_eq!(conflicts(&p.da).len(), 1, "a: {:?}", p.da.entries());
    assert_eq!(conflicts(&p.db), conflicts(&p.da));
    // Neither edit is lost: one is under the original name, the other in the copy.
    let mut contents = vec![p.da.read("notes.txt"), p.da.read(&conflicts(&p.da)[0])];
    contents.sort();
    assert_eq!(
        contents,
        vec![b"edit from a".to_vec(), b"edit from b, different".to_vec()]
    );
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_synced_times_out_while_the_peer_is_offline() {
    let p = pair().await;
    p.synced().await;
    p.b.shutdown().await;
    p.da.write("new.txt", "peer is away");
    p.a.scan(&p.folder, None).await.unwrap();
    let err =
        p.a.wait_until_synced(&p.folder, Duration::from_millis(500))
            .await
            .unwrap_err();
    assert!(matches!(err, WaitError::Timeout { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folder_without_marker_is_in_error_and_the_peer_loses_nothing() {
    let p = pair_with(|a: &Dir, b: &Dir| {
        a.write("precious.txt", "keep me");
        std::fs::remove_dir(b.path(".stfolder")).unwrap();
    })
    .await;
    p.a.wait_until_synced(&p.folder, Duration::from_millis(300))
        .await
        .unwrap_err();
    let st = p.b.folder_status(&p.folder).unwrap();
    assert_eq!(st.state, FolderState::Error);
    assert!(st.error.unwrap().contains("marker"));
    // A rescan on `a` still sees its file; nothing was deleted there.
    p.a.scan(&p.folder, None).await.unwrap();
    assert_eq!(p.da.read("precious.txt"), b"keep me");
    assert!(!p.db.exists("precious.txt"));
    let _ = Event::ScanFinished {
        folder: p.folder.clone(),
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_day_identical_files_move_no_data_and_one_conflict_copy_appears() {
    const FILES: usize = 40;
    const SIZE: usize = 256 * 1024;
    let content =
        |i: usize| -> Vec<u8> { (0..SIZE).map(|j| ((i * 31 + j * 7) % 251) as u8).collect() };
    let p = pair_with(|a: &Dir, b: &Dir| {
        for i in 0..FILES {
            a.write(&format!("tree/{}/file{i}.bin", i % 5), content(i));
            b.write(&format!("tree/{}/file{i}.bin", i % 5), content(i));
        }
        a.write("only-on-a.txt", "a");
        b.write("only-on-b.txt", "b");
        a.write("differs.txt", "version a");
        b.write("differs.txt", "version b!");
    })
    .await;
    p.synced().await;
    assert_same(&p.da, &p.db);
    assert!(p.da.exists("only-on-b.txt") && p.db.exists("only-on-a.txt"));
    let conflicts: Vec<String> =
        p.da.entries()
            .into_iter()
            .filter(|e| e.contains(".sync-conflict-"))
            .collect();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    // The identical tree is 10 MiB; what crossed the wire (TLS records, both ways) is only
    // indexes and the few small differing files.
    let identical = (FILES * SIZE) as u64;
    for side in [&p.a, &p.b] {
        let c = side.connections();
        let moved: u64 = c.iter().map(|c| c.in_bytes_total).sum();
        assert!(
            moved < identical / 10,
            "received {moved} bytes of a {identical}-byte identical tree"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_engine_catches_up_with_changes_made_while_it_was_down() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("first.txt", "1")).await;
    p.synced().await;
    let a = p.a;
    a.shutdown().await;
    drop(a);
    p.db.write("while-down.txt", "made while a was stopped");
    p.db.write("first.txt", "changed while a was stopped");
    p.b.scan(&p.folder, None).await.unwrap();
    let a2 = syncd_engine::Engine::start(p.a_cfg.clone()).await.unwrap();
    a2.wait_until_synced(&p.folder, common::WAIT).await.unwrap();
    p.b.wait_until_synced(&p.folder, common::WAIT)
        .await
        .unwrap();
    assert_eq!(p.da.read("while-down.txt"), b"made while a was stopped");
    assert_eq!(p.da.read("first.txt"), b"changed while a was stopped");
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executable_bit_change_reaches_the_peer_without_data() {
    let p = pair_with(|a: &Dir, _: &Dir| a.write("run.sh", "#!/bin/sh\necho hi\n")).await;
    p.synced().await;
    p.da.chmod("run.sh", 0o755);
    p.a.scan(&p.folder, None).await.unwrap();
    p.synced().await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p.db.path("run.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserting_one_byte_at_the_start_of_a_large_file_transfers_only_changed_chunks() {
    let mut data = random_bytes(LARGE, 0x9E37_79B9_7F4A_7C15);
    let p = pair_with(|a: &Dir, _: &Dir| a.write("big.bin", &data)).await;
    synced_within(&p, LARGE_WAIT).await;
    let received = |e: &syncd_engine::EngineHandle| {
        e.connections()
            .iter()
            .map(|c| c.in_bytes_total)
            .sum::<u64>()
    };
    let before = received(&p.b);
    data.insert(0, b'!');
    p.da.write("big.bin", &data);
    p.a.scan(&p.folder, None).await.unwrap();
    synced_within(&p, LARGE_WAIT).await;
    assert!(
        p.db.read("big.bin") == data,
        "content differs after the insert"
    );
    let moved = received(&p.b) - before;
    assert!(
        moved < 1024 * 1024,
        "b received {moved} bytes for a 1-byte insert into a 200 MB file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renaming_a_large_file_transfers_no_file_data() {
    let data = random_bytes(LARGE, 2_246_822_519);
    let p = pair_with(|a: &Dir, _: &Dir| a.write("old.bin", &data)).await;
    synced_within(&p, LARGE_WAIT).await;
    let received = |e: &syncd_engine::EngineHandle| {
        e.connections()
            .iter()
            .map(|c| c.in_bytes_total)
            .sum::<u64>()
    };
    let before = received(&p.b);
    std::fs::rename(p.da.path("old.bin"), p.da.path("new.bin")).unwrap();
    p.a.scan(&p.folder, None).await.unwrap();
    synced_within(&p, LARGE_WAIT).await;
    assert!(!p.db.exists("old.bin"));
    assert!(p.db.read("new.bin") == data, "renamed content differs");
    let moved = received(&p.b) - before;
    assert!(
        moved < 256 * 1024,
        "b received {moved} bytes for renaming a 200 MB file"
    );
}

/// The size of the "large file" the engine issue names for its delta tests (200 MB).
const LARGE: usize = 200 * 1000 * 1000;
/// Syncing and re-hashing 200 MB in a debug build on a loaded 2-core box takes a while.
const LARGE_WAIT: Duration = Duration::from_secs(300);

/// Like `Pair::synced`, with a longer limit for the 200 MB tests.
async fn synced_within(p: &common::Pair, limit: Duration) {
    for (name, e) in [("a", &p.a), ("b", &p.b), ("a", &p.a)] {
        if let Err(err) = e.wait_until_synced(&p.folder, limit).await {
            let st = e.folder_status(&p.folder);
            panic!("{name} not in sync: {err:?}\nstatus: {st:#?}");
        }
    }
}

/// A long first scan announces what it has committed while it still runs (chunk commits of
/// the scanner, published by the folder): the peer holds records of the folder before the
/// scanning side has finished. A large sparse file keeps the scanning side hashing after its
/// small files are committed; the peer ignores it, so it never pulls it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_first_scan_is_announced_while_it_runs() {
    const FILES: usize = 3000;
    let p = pair_with(|a: &Dir, b: &Dir| {
        for i in 0..FILES {
            a.write(&format!("d{}/f{i}", i / 100), format!("{i}"));
        }
        let big = std::fs::File::create(a.path("big")).unwrap();
        big.set_len(1 << 30).unwrap();
        b.write(".stignore", "/big\n");
    })
    .await;
    let a_id = p.a.device_id();
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let mut was_scanning = false;
    loop {
        let before = p.a.folder_status(&p.folder).unwrap().state;
        let seen =
            p.b.folder_status(&p.folder)
                .unwrap()
                .remote_sequence
                .get(&a_id)
                .copied()
                .unwrap_or(0);
        let after = p.a.folder_status(&p.folder).unwrap().state;
        if before == FolderState::Scanning && after == FolderState::Scanning && seen > 0 {
            break;
        }
        was_scanning |= before == FolderState::Scanning;
        assert!(
            !(was_scanning && after != FolderState::Scanning),
            "a finished its first scan before b held any of its records"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "a's scan neither announced anything nor finished"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

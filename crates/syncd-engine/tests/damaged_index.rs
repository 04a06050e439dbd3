//! A damaged index (truncated, a page overwritten with garbage, deleted while stopped) is
//! found when the engine starts: it is moved aside, a fresh one is built from the files on disk
//! and the peer, and nothing is lost — a change made on disk while the index was damaged wins
//! over the peer's older version (the loser is kept as a conflict copy, as on migration day).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use common::*;
use syncd_engine::Engine;

/// How the index file is damaged while the engine is stopped.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncated,
    GarbagePage,
    Deleted,
}

fn damage(index: &Path, how: Damage) {
    match how {
        Damage::Truncated => {
            let len = std::fs::metadata(index).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(index).unwrap();
            f.set_len(len / 2).unwrap();
        }
        Damage::GarbagePage => {
            let len = std::fs::metadata(index).unwrap().len();
            let mut f = std::fs::OpenOptions::new().write(true).open(index).unwrap();
            // Every 4 KiB page after the header gets garbage in its first 512 bytes.
            let garbage = random_bytes(512, 7);
            let mut at = 4096;
            while at + 512 <= len {
                f.seek(SeekFrom::Start(at)).unwrap();
                f.write_all(&garbage).unwrap();
                at += 4096;
            }
            f.sync_all().unwrap();
        }
        Damage::Deleted => std::fs::remove_file(index).unwrap(),
    }
}

async fn damaged_index_is_rebuilt_and_the_local_change_wins(how: Damage) {
    let p = pair_with(|a, _| {
        for i in 0..20 {
            a.write(&format!("dir/f{i}.txt"), format!("version 1 of f{i}"));
        }
    })
    .await;
    until("the tree reached b", || {
        (0..20).all(|i| p.db.exists(&format!("dir/f{i}.txt")))
    })
    .await;
    p.synced().await;
    let Pair {
        a,
        b,
        da,
        db,
        mut b_cfg,
        folder,
        _tmp,
        ..
    } = p;
    // b comes back on the address a dials.
    b_cfg.listen = vec![format!("tcp://{}", b.listen_addrs()[0])];
    b.shutdown().await;
    drop(b);
    let index = b_cfg.home.join(syncd_engine::INDEX_FILE);
    damage(&index, how);
    // While b is stopped with its index damaged, its user edits a file and adds one.
    db.write("dir/f3.txt", "edited on b while its index was damaged");
    db.write("dir/new-on-b.txt", "new on b");

    let b = Engine::start(b_cfg.clone())
        .await
        .unwrap_or_else(|e| panic!("{how:?}: b did not start over a damaged index: {e}"));
    let kept: Vec<_> = std::fs::read_dir(&b_cfg.home)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".damaged-"))
        .collect();
    match how {
        Damage::Deleted => assert!(kept.is_empty(), "{kept:?}"),
        _ => assert_eq!(
            kept.len(),
            1,
            "{how:?}: the damaged index is kept aside: {kept:?}"
        ),
    }
    // Nothing lost: b's edit and its new file are live on both sides, every other file is
    // unchanged, and a's older f3 survives only as a conflict copy.
    for (name, d) in [("a", &da), ("b", &db)] {
        until(&format!("{how:?}: b's new file on {name}"), || {
            d.exists("dir/new-on-b.txt")
        })
        .await;
        until(&format!("{how:?}: b's edit on {name}"), || {
            d.read("dir/f3.txt") == b"edited on b while its index was damaged"
        })
        .await;
    }
    for e in [&a, &b] {
        e.wait_until_synced(&folder, WAIT).await.unwrap();
    }
    for d in [&da, &db] {
        for i in (0..20).filter(|i| *i != 3) {
            assert_eq!(
                d.read(&format!("dir/f{i}.txt")),
                format!("version 1 of f{i}").as_bytes(),
                "{how:?}"
            );
        }
        let copies: Vec<String> = d
            .entries()
            .into_iter()
            .filter(|n| n.contains(".sync-conflict-"))
            .collect();
        assert!(copies.len() <= 1, "{how:?}: {copies:?}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_index_is_rebuilt_without_losing_a_change() {
    damaged_index_is_rebuilt_and_the_local_change_wins(Damage::Truncated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_with_garbage_pages_is_rebuilt_without_losing_a_change() {
    damaged_index_is_rebuilt_and_the_local_change_wins(Damage::GarbagePage).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_index_is_rebuilt_without_losing_a_change() {
    damaged_index_is_rebuilt_and_the_local_change_wins(Damage::Deleted).await;
}

//! Moves between two syncd engines travel as derived records (syncd's extension,
//! `docs/protocol.md`): a few bytes per name, and what each side rebuilds equals the other
//! side's own records, checked in both real index files afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Dir, WAIT, assert_same, pair_with, random_bytes};
use syncd_engine::{DeviceId, INDEX_FILE, device_id_for_home};
use syncd_index::{FileRecord, Index};
use syncd_types::RelPath;

/// More than one ordinary index message (1,000 records) holds, so the window read ahead is
/// needed to carry the move at once.
const FILES: usize = 1200;

fn fill(a: &Dir) -> u64 {
    let mut bytes = 0;
    for i in 0..FILES {
        let data = random_bytes(1000 + i * 7, i as u64 + 1);
        bytes += data.len() as u64;
        a.write(&format!("d/s{:02}/f{i:04}.txt", i / 100), data);
    }
    a.write("d/empty.txt", "");
    a.mkdir("d/empty-dir");
    a.symlink("d/link", "s00/f0000.txt");
    a.chmod("d/s01/f0150.txt", 0o600);
    bytes
}

async fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until each side holds the other's records of everything (its view of the other's
/// completion shows nothing needed): a move made earlier could find the peer still without
/// the old names' latest records, and announce in full what it then cannot derive.
async fn peers_hold_everything(p: &common::Pair) {
    let (ida, idb) = (p.a.device_id(), p.b.device_id());
    wait_for("each side holds the other's index", || {
        [(&p.a, idb), (&p.b, ida)].iter().all(|(e, other)| {
            e.completion(&p.folder, Some(*other))
                .is_some_and(|c| c.need_items == 0 && c.need_deletes == 0)
        })
    })
    .await;
}

fn wire_total(e: &syncd_engine::EngineHandle) -> u64 {
    e.connections()
        .iter()
        .map(|c| c.in_bytes_total + c.out_bytes_total)
        .sum()
}

/// The index file in `home`, once the stopped engine's last tasks have let go of it.
fn open(home: &std::path::Path, me: DeviceId) -> Index {
    for _ in 0..200 {
        match Index::open(home.join(INDEX_FILE), me) {
            Ok(i) => return i,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
    Index::open(home.join(INDEX_FILE), me).unwrap()
}

/// Every record `of` holds locally below `dirs`, from the index file in `home`.
fn local_records(home: &std::path::Path, of: DeviceId, dirs: &[&str]) -> Vec<FileRecord> {
    let index = open(home, of);
    let r = index
        .read(&syncd_engine::FolderId::new("f").unwrap())
        .unwrap();
    let mut out = Vec::new();
    for d in dirs {
        for rec in r.local_under(&RelPath::new(d).unwrap()).unwrap() {
            out.push(rec.unwrap());
        }
    }
    out
}

/// What the index file in `home` holds of `peer`'s records with the given names.
fn copies_of(
    home: &std::path::Path,
    me: DeviceId,
    peer: DeviceId,
    names: &[RelPath],
) -> Vec<FileRecord> {
    let index = open(home, me);
    let r = index
        .read(&syncd_engine::FolderId::new("f").unwrap())
        .unwrap();
    names
        .iter()
        .map(|n| {
            r.get(peer, n)
                .unwrap()
                .unwrap_or_else(|| panic!("no record of {n}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_directory_travels_as_derived_records_and_rebuilds_exactly() {
    let mut moved_bytes = 0;
    let p = pair_with(|a: &Dir, _: &Dir| moved_bytes = fill(a)).await;
    p.synced().await;
    assert_same(&p.da, &p.db);
    peers_hold_everything(&p).await;
    let wire_before = wire_total(&p.a);

    std::fs::create_dir_all(p.da.path("m")).unwrap();
    std::fs::rename(p.da.path("d"), p.da.path("m/d")).unwrap();
    wait_for("the move reaches b", || {
        !p.db.exists("d") && p.db.exists("m/d/s11/f1199.txt") && p.db.exists("m/d/link")
    })
    .await;
    p.synced().await;
    assert_same(&p.da, &p.db);

    // a announced the move as derived records (the files, 12 directories, the empty file,
    // the empty directory and the link, each once as a copy and once as a deletion), and b
    // announced its own copies and deletions back the same way.
    let (ca, cb) = (&p.a.connections()[0], &p.b.connections()[0]);
    let entries = (FILES + 16) as u64;
    assert_eq!(ca.derived_records_out, cb.derived_records_in);
    assert!(
        cb.derived_records_in >= 2 * entries,
        "b rebuilt {} records",
        cb.derived_records_in
    );
    assert!(
        ca.derived_records_in >= entries,
        "a rebuilt {} records of b's",
        ca.derived_records_in
    );
    // Both directions together, TLS included, cost well under 5 % of the data moved
    // (in full, each new record alone carries 100+ bytes of hashes).
    let wire = wire_total(&p.a) - wire_before;
    assert!(
        wire * 20 < moved_bytes,
        "{wire} bytes on the wire for a move of {moved_bytes} bytes"
    );

    eprintln!(
        "move: {wire} bytes on the wire for {moved_bytes} bytes moved; derived a->b {}, b->a {}",
        cb.derived_records_in, ca.derived_records_in
    );
    // What each side rebuilt is exactly the other side's own record.
    let (home_a, home_b) = (p.a_cfg.home.clone(), p.b_cfg.home.clone());
    let (ida, idb) = (
        device_id_for_home(&home_a).unwrap(),
        device_id_for_home(&home_b).unwrap(),
    );
    let common::Pair { a, b, _tmp, .. } = p;
    a.shutdown().await;
    b.shutdown().await;
    drop((a, b));
    for (home, me, other_home, other) in
        [(&home_a, ida, &home_b, idb), (&home_b, idb, &home_a, ida)]
    {
        let mut own = local_records(home, me, &["d", "m"]);
        assert!(own.len() >= 2 * entries as usize, "{} records", own.len());
        let names: Vec<RelPath> = own.iter().map(|r| r.name.clone()).collect();
        let held = copies_of(other_home, other, me, &names);
        for (o, h) in own.iter_mut().zip(held) {
            o.inode = 0;
            o.replaced = None;
            assert_eq!(*o, h, "{}", o.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_large_file_is_announced_without_its_block_list() {
    const SIZE: usize = 20 << 20;
    let p = pair_with(|a: &Dir, _: &Dir| a.write("big.bin", random_bytes(SIZE, 9))).await;
    p.synced().await;
    peers_hold_everything(&p).await;
    let wire_before = wire_total(&p.a);
    std::fs::rename(p.da.path("big.bin"), p.da.path("renamed.bin")).unwrap();
    wait_for("the rename reaches b", || {
        !p.db.exists("big.bin") && p.db.exists("renamed.bin")
    })
    .await;
    p.synced().await;
    assert_same(&p.da, &p.db);
    let cb = &p.b.connections()[0];
    assert!(
        cb.derived_records_in >= 2,
        "b rebuilt {}",
        cb.derived_records_in
    );
    // In full, the new record alone carries 160 block and ~300 chunk hashes (~20 kB).
    let wire = wire_total(&p.a) - wire_before;
    assert!(wire < 10_000, "{wire} bytes on the wire for the rename");
}

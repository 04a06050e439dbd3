//! Moves between two syncd engines travel as derived records (syncd's extension,
//! `docs/protocol.md`): a few bytes per name, and what each side rebuilds equals the other
//! side's own records, checked in both real index files afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::random_bytes;
use syncd_engine::{DeviceId, INDEX_FILE};
use syncd_index::{FileRecord, Index};
use syncd_memnet::{MemNet, Tree};
use syncd_types::RelPath;

/// More than one ordinary index message (1,000 records) holds, so the window read ahead is
/// needed to carry the move at once.
const FILES: usize = 1200;

fn fill(a: &Tree) -> u64 {
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

/// Waits until each side holds the other's records of everything (its view of the other's
/// completion shows nothing needed): a move made earlier could find the peer still without
/// the old names' latest records, and announce in full what it then cannot derive.
async fn peers_hold_everything(net: &MemNet) {
    let (ea, eb) = (net.engine("a"), net.engine("b"));
    let (ida, idb) = (net.id("a"), net.id("b"));
    net.until("each side holds the other's index", || {
        [(ea, idb), (eb, ida)].iter().all(|(e, other)| {
            e.completion(net.folder(), Some(*other))
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

/// The index file in `home`, once the stopped engine's last tasks have let go of it (they
/// finish on the runtime, so the wait is in virtual time).
async fn open(home: &std::path::Path, me: DeviceId) -> Index {
    for _ in 0..200 {
        match Index::open(home.join(INDEX_FILE), me) {
            Ok(i) => return i,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    Index::open(home.join(INDEX_FILE), me).unwrap()
}

/// Every record `of` holds locally below `dirs`, from the index file in `home`.
async fn local_records(home: &std::path::Path, of: DeviceId, dirs: &[&str]) -> Vec<FileRecord> {
    let index = open(home, of).await;
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
async fn copies_of(
    home: &std::path::Path,
    me: DeviceId,
    peer: DeviceId,
    names: &[RelPath],
) -> Vec<FileRecord> {
    let index = open(home, me).await;
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

#[tokio::test(start_paused = true)]
async fn a_moved_directory_travels_as_derived_records_and_rebuilds_exactly() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    let moved_bytes = fill(net.tree("a"));
    net.start().await;
    net.settle().await;
    net.assert_converged();
    peers_hold_everything(&net).await;
    let wire_before = wire_total(net.engine("a"));

    net.tree("a").mkdir("m");
    net.tree("a").rename("d", "m/d");
    net.scan("a").await;
    net.settle().await;
    let b = net.tree("b");
    assert!(!b.exists("d") && b.exists("m/d/s11/f1199.txt") && b.exists("m/d/link"));
    net.assert_converged();

    // a announced the move as derived records (the files, 12 directories, the empty file,
    // the empty directory and the link, each once as a copy and once as a deletion), and b
    // announced its own copies and deletions back the same way.
    let (ca, cb) = (
        &net.engine("a").connections()[0],
        &net.engine("b").connections()[0],
    );
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
    let wire = wire_total(net.engine("a")) - wire_before;
    assert!(
        wire * 20 < moved_bytes,
        "{wire} bytes on the wire for a move of {moved_bytes} bytes"
    );

    eprintln!(
        "move: {wire} bytes on the wire for {moved_bytes} bytes moved; derived a->b {}, b->a {}",
        cb.derived_records_in, ca.derived_records_in
    );
    // What each side rebuilt is exactly the other side's own record.
    let (home_a, home_b) = (net.config("a").home.clone(), net.config("b").home.clone());
    let (ida, idb) = (net.id("a"), net.id("b"));
    net.shutdown().await;
    for (home, me, other_home, other) in
        [(&home_a, ida, &home_b, idb), (&home_b, idb, &home_a, ida)]
    {
        let mut own = local_records(home, me, &["d", "m"]).await;
        assert!(own.len() >= 2 * entries as usize, "{} records", own.len());
        let names: Vec<RelPath> = own.iter().map(|r| r.name.clone()).collect();
        let held = copies_of(other_home, other, me, &names).await;
        for (o, h) in own.iter_mut().zip(held) {
            o.inode = 0;
            o.replaced = None;
            assert_eq!(*o, h, "{}", o.name);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_renamed_large_file_is_announced_without_its_block_list() {
    const SIZE: usize = 20 << 20;
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("big.bin", random_bytes(SIZE, 9));
    net.start().await;
    net.settle().await;
    peers_hold_everything(&net).await;
    let wire_before = wire_total(net.engine("a"));
    net.tree("a").rename("big.bin", "renamed.bin");
    net.scan("a").await;
    net.settle().await;
    assert!(!net.tree("b").exists("big.bin") && net.tree("b").exists("renamed.bin"));
    net.assert_converged();
    let cb = &net.engine("b").connections()[0];
    assert!(
        cb.derived_records_in >= 2,
        "b rebuilt {}",
        cb.derived_records_in
    );
    // In full, the new record alone carries 160 block and ~300 chunk hashes (~20 kB).
    let wire = wire_total(net.engine("a")) - wire_before;
    assert!(wire < 10_000, "{wire} bytes on the wire for the rename");
}

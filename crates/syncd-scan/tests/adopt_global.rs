#![allow(clippy::unwrap_used)]
//! A scanned entry that is equivalent to the folder's global record takes the global's version
//! instead of a bump (spec sync-semantics §4.2, Syncthing's merge of identical local changes):
//! the case of a file the puller renamed into place whose index commit the watcher's rescan
//! overtook. Real temp trees, a real redb index; the global comes from a peer's announced
//! record.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use common::{Fixture, LOCAL};
use sha2::{Digest, Sha256};
use syncd_conflict::VersionVector;
use syncd_index::{Block, FileRecord, RemoteBatch};
use syncd_types::{DeviceId, FileKind, RelPath};

const PEER: DeviceId = DeviceId::from_bytes([9; 32]);
const CONTENT: &[u8] = b"hello, world\n";
const MTIME_S: u64 = 1_700_000_000;
const MTIME_NS: u32 = 123_456_789;
const PERMS: u32 = 0o640;

/// The record a peer announces for `a.txt` holding `CONTENT`: one block, blocks hash over the
/// block hashes (spec §4.2), computed here from the bytes.
fn peer_record() -> FileRecord {
    let block_hash: [u8; 32] = Sha256::digest(CONTENT).into();
    let mut r = FileRecord::new(RelPath::new("a.txt").unwrap(), FileKind::File);
    r.size = CONTENT.len() as u64;
    r.modified_s = MTIME_S as i64;
    r.modified_ns = MTIME_NS as i32;
    r.permissions = PERMS;
    r.version = VersionVector::new().updated(PEER.short(), 1_600_000_000);
    r.modified_by = PEER.short();
    r.sequence = 1;
    r.blocks = vec![Block {
        offset: 0,
        size: CONTENT.len() as u32,
        hash: block_hash,
    }];
    r.blocks_hash = Sha256::digest(block_hash).to_vec();
    r
}

fn announce(f: &Fixture, rec: FileRecord) {
    let mut w = f.index.write(&f.folder).unwrap();
    w.apply_remote(PEER, RemoteBatch::Full, [rec]).unwrap();
    w.commit().unwrap();
}

/// Writes `a.txt` as the puller would leave it: content, mtime, permissions.
fn place(f: &Fixture, data: &[u8], mtime: SystemTime, perms: u32) {
    f.write("a.txt", data);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(f.path("a.txt"))
        .unwrap();
    file.set_modified(mtime).unwrap();
    std::fs::set_permissions(f.path("a.txt"), std::fs::Permissions::from_mode(perms)).unwrap();
}

fn global_mtime() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(MTIME_S, MTIME_NS)
}

fn need_names(f: &Fixture) -> Vec<String> {
    let r = f.index.read(&f.folder).unwrap();
    r.need()
        .unwrap()
        .map(|n| n.unwrap().global.name.to_string())
        .collect()
}

fn local_sequence(f: &Fixture) -> u64 {
    f.index.read(&f.folder).unwrap().local_sequence()
}

#[test]
fn a_file_identical_to_the_global_takes_the_global_version_and_needs_nothing() {
    let f = Fixture::new();
    let global = peer_record();
    announce(&f, global.clone());
    assert_eq!(need_names(&f), ["a.txt"]);
    place(&f, CONTENT, global_mtime(), PERMS);
    let seq_before = local_sequence(&f);

    let report = f.scanner.scan().unwrap();

    assert_eq!(report.committed, 1);
    let local = f.record("a.txt").unwrap();
    assert_eq!(local.version, global.version, "no bump by the local device");
    assert_eq!(local.version.get(LOCAL.short()), 0);
    assert_eq!(local.modified_by, PEER.short());
    assert_eq!(local.blocks_hash, global.blocks_hash);
    assert!(need_names(&f).is_empty());
    let counts = f.index.read(&f.folder).unwrap().counts().unwrap();
    assert_eq!(counts.need.files, 0);
    assert!(
        local_sequence(&f) > seq_before,
        "a local record was written"
    );
}

#[test]
fn a_global_without_blocks_hash_is_compared_by_its_block_list() {
    let f = Fixture::new();
    let mut global = peer_record();
    global.blocks_hash.clear();
    announce(&f, global.clone());
    place(&f, CONTENT, global_mtime(), PERMS);

    f.scanner.scan().unwrap();

    assert_eq!(f.record("a.txt").unwrap().version, global.version);
    assert!(need_names(&f).is_empty());
}

#[test]
fn a_file_differing_from_the_global_gets_a_new_local_version() {
    let other_mtime = global_mtime() + Duration::from_nanos(1);
    // (what differs, content, mtime, permissions)
    let cases: [(&str, &[u8], SystemTime, u32); 4] = [
        (
            "content, same size",
            b"HELLO, world\n",
            global_mtime(),
            PERMS,
        ),
        ("size", b"hello, world!\n", global_mtime(), PERMS),
        ("mtime nanoseconds", CONTENT, other_mtime, PERMS),
        ("permissions", CONTENT, global_mtime(), 0o600),
    ];
    for (what, data, mtime, perms) in cases {
        let f = Fixture::new();
        let global = peer_record();
        announce(&f, global.clone());
        place(&f, data, mtime, perms);

        f.scanner.scan().unwrap();

        let local = f.record("a.txt").unwrap();
        assert_ne!(local.version, global.version, "{what}");
        assert!(local.version.get(LOCAL.short()) > 0, "{what}: bumped by us");
        assert_eq!(local.modified_by, LOCAL.short(), "{what}");
    }
}

#[test]
fn a_deletion_matching_a_deleted_global_takes_the_global_version() {
    let f = Fixture::new();
    f.write("a.txt", CONTENT);
    f.scanner.scan().unwrap();
    let ours = f.record("a.txt").unwrap();
    // The peer deletes our version: its tombstone is the global, which we need.
    let mut tombstone = FileRecord::new(RelPath::new("a.txt").unwrap(), FileKind::File);
    tombstone.deleted = true;
    tombstone.modified_s = 1_650_000_000;
    tombstone.version = ours.version.updated(PEER.short(), 1_650_000_000);
    tombstone.modified_by = PEER.short();
    tombstone.sequence = 1;
    announce(&f, tombstone.clone());
    assert_eq!(need_names(&f), ["a.txt"]);
    // The file is gone (as after the puller's delete, before its commit).
    std::fs::remove_file(f.path("a.txt")).unwrap();
    let seq_before = local_sequence(&f);

    let report = f.scanner.scan().unwrap();

    assert_eq!(report.committed, 1);
    let local = f.record("a.txt").unwrap();
    assert!(local.deleted);
    assert_eq!(local.version, tombstone.version);
    assert_eq!(local.modified_by, PEER.short());
    assert!(need_names(&f).is_empty());
    assert!(local_sequence(&f) > seq_before);
}

#[test]
fn a_deletion_while_the_global_is_live_gets_a_new_local_version() {
    let f = Fixture::new();
    f.write("a.txt", CONTENT);
    f.scanner.scan().unwrap();
    let ours = f.record("a.txt").unwrap();
    std::fs::remove_file(f.path("a.txt")).unwrap();

    f.scanner.scan().unwrap();

    let local = f.record("a.txt").unwrap();
    assert!(local.deleted);
    assert!(local.version.get(LOCAL.short()) > ours.version.get(LOCAL.short()));
    assert_eq!(local.modified_by, LOCAL.short());
}

/// The puller recorded the global version, and a scan that started before that commit (its
/// snapshot has another inode, so the file looks changed) hashes the file and adopts the same
/// version: nothing is written a second time, so nothing is announced again (for a large
/// file, its whole block list).
#[test]
fn a_scan_adopting_the_version_the_puller_already_recorded_writes_nothing() {
    let f = Fixture::new();
    let global = peer_record();
    announce(&f, global.clone());
    place(&f, CONTENT, global_mtime(), PERMS);
    // What the puller records: the global record as the local one, here with an inode that
    // is not the file's (as a scan's older snapshot would see it).
    let mut pulled = global.clone();
    pulled.inode = 1;
    let mut w = f.index.write(&f.folder).unwrap();
    w.apply_local([pulled]).unwrap();
    w.commit().unwrap();
    let seq_before = local_sequence(&f);

    let full = f.scanner.scan().unwrap();
    let paths = f
        .scanner
        .scan_paths(&[RelPath::new("a.txt").unwrap()])
        .unwrap();

    assert_eq!(full.committed, 0, "full scan");
    assert_eq!(paths.committed, 0, "scan of the path");
    assert_eq!(local_sequence(&f), seq_before, "no second record");
    assert_eq!(f.record("a.txt").unwrap().version, global.version);
    assert!(need_names(&f).is_empty());
}

/// In a receive-only folder a scanned change is marked receive-only (and invalid), except
/// what is equivalent to the global version, which takes that version as always; a changed
/// file stays marked when rescanned unchanged, and a deletion of what only existed here is
/// recorded with an empty version and no mark.
#[test]
fn a_receive_only_scanner_marks_local_changes_but_not_the_global_version() {
    let f = Fixture::with_config(
        "",
        syncd_scan::ScanConfig {
            receive_only: true,
            ..syncd_scan::ScanConfig::default()
        },
    );
    announce(&f, peer_record());
    place(&f, CONTENT, global_mtime(), PERMS);
    f.write("mine.txt", b"made here");
    f.scanner.scan().unwrap();
    let same = f.record("a.txt").unwrap();
    assert!(!same.receive_only && !same.invalid);
    assert_eq!(same.version, peer_record().version);
    let mine = f.record("mine.txt").unwrap();
    assert!(mine.receive_only && mine.invalid, "{mine:?}");
    assert!(need_names(&f).is_empty());

    let seq = local_sequence(&f);
    f.scanner.scan().unwrap();
    assert_eq!(
        local_sequence(&f),
        seq,
        "an unchanged receive-only change is not rewritten"
    );

    place(&f, b"changed here", global_mtime(), PERMS);
    f.scanner.scan().unwrap();
    let changed = f.record("a.txt").unwrap();
    assert!(changed.receive_only && changed.invalid);
    assert!(need_names(&f).is_empty(), "a local change needs nothing");

    std::fs::remove_file(f.path("mine.txt")).unwrap();
    f.scanner.scan().unwrap();
    let gone = f.record("mine.txt").unwrap();
    assert!(
        gone.deleted && !gone.receive_only && !gone.invalid,
        "{gone:?}"
    );
    assert!(gone.version.counters().is_empty());
    // The index counts what is left: the changed a.txt.
    let counts = f.index.read(&f.folder).unwrap().counts().unwrap();
    assert_eq!(
        (counts.receive_only.files, counts.receive_only.deleted),
        (1, 0)
    );
    assert_eq!(counts.receive_only.bytes, b"changed here".len() as u64);
}

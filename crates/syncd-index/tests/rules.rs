//! One behaviour per test: the index's rules (sequences, delta-index IDs, full vs update
//! indexes, need order, delete rules, invalid records, block map, counts, reopen).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use syncd_conflict::{Counter, DeleteRule, VersionVector};
use syncd_index::{Block, FileRecord, Index, OpenError, RemoteBatch};
use syncd_types::{DeviceId, FileKind, FolderId, RelPath};

const ME: DeviceId = DeviceId::from_bytes([1; 32]);
const PEER: DeviceId = DeviceId::from_bytes([2; 32]);

fn folder() -> FolderId {
    FolderId::new("f").unwrap()
}

fn open() -> (tempfile::TempDir, Index) {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path().join("i.redb"), ME).unwrap();
    (dir, index)
}

fn vv(counters: &[(DeviceId, u64)]) -> VersionVector {
    VersionVector::from_counters(counters.iter().map(|(d, v)| Counter {
        id: d.short(),
        value: *v,
    }))
}

fn file(name: &str, version: VersionVector) -> FileRecord {
    let mut f = FileRecord::new(RelPath::new(name).unwrap(), FileKind::File);
    f.size = 100;
    f.version = version;
    f
}

fn dir(name: &str, version: VersionVector) -> FileRecord {
    let mut f = FileRecord::new(RelPath::new(name).unwrap(), FileKind::Directory);
    f.version = version;
    f
}

fn deleted(mut f: FileRecord) -> FileRecord {
    f.deleted = true;
    f.size = 0;
    f
}

fn remote(index: &Index, batch: RemoteBatch, recs: Vec<FileRecord>) {
    let mut w = index.write(&folder()).unwrap();
    w.apply_remote(PEER, batch, recs).unwrap();
    w.commit().unwrap();
}

fn local(index: &Index, recs: Vec<FileRecord>) -> u64 {
    let mut w = index.write(&folder()).unwrap();
    let s = w.apply_local(recs).unwrap();
    w.commit().unwrap();
    s
}

fn need_names(index: &Index) -> Vec<String> {
    index
        .read(&folder())
        .unwrap()
        .need()
        .unwrap()
        .map(|n| n.unwrap().global.name.as_str().to_owned())
        .collect()
}

#[test]
fn local_changes_get_consecutive_sequences_and_stream_after_n() {
    let (_d, index) = open();
    assert_eq!(
        local(
            &index,
            vec![file("a", vv(&[(ME, 1)])), file("b", vv(&[(ME, 1)]))]
        ),
        2
    );
    assert_eq!(local(&index, vec![file("a", vv(&[(ME, 2)]))]), 3);
    let r = index.read(&folder()).unwrap();
    let after1: Vec<(String, u64)> = r
        .local_since(1)
        .unwrap()
        .map(|f| f.unwrap())
        .map(|f| (f.name.as_str().to_owned(), f.sequence))
        .collect();
    // "a" was re-sequenced to 3, so only "b"(2) and "a"(3) follow sequence 1.
    assert_eq!(after1, vec![("b".into(), 2), ("a".into(), 3)]);
    assert_eq!(r.local_batch(0, 1).unwrap().len(), 1);
    assert_eq!(r.local_sequence(), 3);
}

#[test]
fn local_under_lists_a_directory_and_what_lies_below_it_and_nothing_else() {
    let (_d, index) = open();
    let v = vv(&[(ME, 1)]);
    local(
        &index,
        vec![
            dir("a", v.clone()),
            dir("a/b", v.clone()),
            file("a/b/c", v.clone()),
            file("a/z", v.clone()),
            // Siblings whose names start like "a" but are not below it.
            file("a.txt", v.clone()),
            file("a0", v.clone()),
            file("ab", v.clone()),
            file("a-b/c", v.clone()),
            file("b", v.clone()),
        ],
    );
    // A name below "a" only a peer announces has no local record: not listed.
    remote(
        &index,
        RemoteBatch::Full,
        vec![file("a/peer-only", vv(&[(PEER, 1)]))],
    );
    let r = index.read(&folder()).unwrap();
    let under = |d: &str| -> Vec<String> {
        r.local_under(&RelPath::new(d).unwrap())
            .unwrap()
            .map(|f| f.unwrap().name.as_str().to_owned())
            .collect()
    };
    assert_eq!(under("a"), vec!["a", "a/b", "a/b/c", "a/z"]);
    assert_eq!(under("a/b"), vec!["a/b", "a/b/c"]);
    assert_eq!(under("a/z"), vec!["a/z"]);
    assert!(under("nothing").is_empty());
    assert!(under("a/peer-only").is_empty());
    // The same records as the filter over every local record.
    let by_filter: Vec<String> = r
        .local_since(0)
        .unwrap()
        .map(|f| f.unwrap().name)
        .filter(|n| n.starts_with(&RelPath::new("a").unwrap()))
        .map(|n| n.as_str().to_owned())
        .collect();
    let mut sorted = by_filter;
    sorted.sort();
    assert_eq!(under("a"), sorted);
}

#[test]
fn local_index_id_is_nonzero_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    let id = {
        let index = Index::open(&path, ME).unwrap();
        local(&index, vec![file("a", vv(&[(ME, 1)]))]);
        index.read(&folder()).unwrap().local_index_id()
    };
    assert_ne!(id, 0);
    let index = Index::open(&path, ME).unwrap();
    assert_eq!(index.read(&folder()).unwrap().local_index_id(), id);
}

#[test]
fn full_index_replaces_everything_held_for_that_device() {
    let (_d, index) = open();
    remote(
        &index,
        RemoteBatch::Full,
        vec![file("a", vv(&[(PEER, 1)])), file("b", vv(&[(PEER, 1)]))],
    );
    remote(&index, RemoteBatch::Full, vec![file("c", vv(&[(PEER, 1)]))]);
    let r = index.read(&folder()).unwrap();
    assert!(r.get(PEER, &RelPath::new("a").unwrap()).unwrap().is_none());
    assert!(r.get(PEER, &RelPath::new("c").unwrap()).unwrap().is_some());
    assert_eq!(r.counts().unwrap().global.files, 1);
}

#[test]
fn index_update_adds_to_what_is_held() {
    let (_d, index) = open();
    remote(&index, RemoteBatch::Full, vec![file("a", vv(&[(PEER, 1)]))]);
    remote(
        &index,
        RemoteBatch::Update,
        vec![file("b", vv(&[(PEER, 1)]))],
    );
    assert_eq!(
        index
            .read(&folder())
            .unwrap()
            .counts()
            .unwrap()
            .global
            .files,
        2
    );
}

#[test]
fn remote_max_sequence_is_the_highest_received() {
    let (_d, index) = open();
    let mut a = file("a", vv(&[(PEER, 1)]));
    a.sequence = 7;
    let mut b = file("b", vv(&[(PEER, 1)]));
    b.sequence = 3;
    remote(&index, RemoteBatch::Update, vec![a, b]);
    let st = index
        .read(&folder())
        .unwrap()
        .device(PEER)
        .unwrap()
        .unwrap();
    assert_eq!(st.max_sequence, 7);
}

#[test]
fn changed_index_id_drops_the_peers_records() {
    let (_d, index) = open();
    let mut w = index.write(&folder()).unwrap();
    assert!(w.set_remote_index_id(PEER, 11).unwrap());
    w.apply_remote(PEER, RemoteBatch::Update, [file("a", vv(&[(PEER, 1)]))])
        .unwrap();
    w.commit().unwrap();
    let mut w = index.write(&folder()).unwrap();
    assert!(
        !w.set_remote_index_id(PEER, 11).unwrap(),
        "same ID keeps the records"
    );
    assert!(
        w.set_remote_index_id(PEER, 12).unwrap(),
        "new ID drops them"
    );
    w.commit().unwrap();
    let r = index.read(&folder()).unwrap();
    assert!(r.get(PEER, &RelPath::new("a").unwrap()).unwrap().is_none());
    let st = r.device(PEER).unwrap().unwrap();
    assert_eq!((st.index_id, st.max_sequence), (12, 0));
}

#[test]
fn need_lists_directories_before_contents_and_deletions_deepest_first() {
    let (_d, index) = open();
    let v1 = vv(&[(ME, 1)]);
    local(
        &index,
        vec![
            dir("old", v1.clone()),
            dir("old/sub", v1.clone()),
            file("old/sub/x", v1.clone()),
        ],
    );
    let v2 = vv(&[(ME, 1), (PEER, 1)]);
    remote(
        &index,
        RemoteBatch::Full,
        vec![
            file("new/sub/y", vv(&[(PEER, 1)])),
            dir("new/sub", vv(&[(PEER, 1)])),
            dir("new", vv(&[(PEER, 1)])),
            deleted(file("old/sub/x", v2.clone())),
            deleted(dir("old", v2.clone())),
            deleted(dir("old/sub", v2)),
        ],
    );
    assert_eq!(
        need_names(&index),
        ["new", "new/sub", "new/sub/y", "old/sub/x", "old/sub", "old"]
    );
}

#[test]
fn deleted_global_is_not_needed_when_we_have_nothing() {
    let (_d, index) = open();
    remote(
        &index,
        RemoteBatch::Full,
        vec![deleted(file("gone", vv(&[(PEER, 2)])))],
    );
    assert!(need_names(&index).is_empty());
    let c = index.read(&folder()).unwrap().counts().unwrap();
    assert_eq!((c.global.deleted, c.need.deleted), (1, 0));
}

#[test]
fn invalid_remote_record_is_neither_global_nor_needed() {
    let (_d, index) = open();
    let mut f = file("ignored-there", vv(&[(PEER, 1)]));
    f.invalid = true;
    remote(&index, RemoteBatch::Full, vec![f]);
    assert!(need_names(&index).is_empty());
    assert_eq!(
        index
            .read(&folder())
            .unwrap()
            .counts()
            .unwrap()
            .global
            .files,
        0
    );
}

#[test]
fn equal_versions_are_not_needed_and_list_the_peer_as_source() {
    let (_d, index) = open();
    remote(&index, RemoteBatch::Full, vec![file("a", vv(&[(PEER, 1)]))]);
    let n: Vec<_> = index
        .read(&folder())
        .unwrap()
        .need()
        .unwrap()
        .map(|n| n.unwrap())
        .collect();
    assert_eq!(n[0].available, vec![PEER]);
    local(&index, vec![file("a", vv(&[(PEER, 1)]))]);
    assert!(need_names(&index).is_empty());
    let st = index
        .read(&folder())
        .unwrap()
        .device(PEER)
        .unwrap()
        .unwrap();
    assert_eq!(st.need.files, 0, "the peer has the global too");
}

#[test]
fn new_peer_needs_every_live_global_file() {
    let (_d, index) = open();
    local(
        &index,
        vec![
            file("a", vv(&[(ME, 1)])),
            file("b", vv(&[(ME, 1)])),
            deleted(file("c", vv(&[(ME, 1)]))),
        ],
    );
    let mut w = index.write(&folder()).unwrap();
    w.add_device(PEER).unwrap();
    w.commit().unwrap();
    let st = index
        .read(&folder())
        .unwrap()
        .device(PEER)
        .unwrap()
        .unwrap();
    assert_eq!((st.need.files, st.need.bytes, st.need.deleted), (2, 200, 0));
}

#[test]
fn delete_rule_decides_concurrent_edit_against_delete() {
    let (_d, index) = open();
    // Concurrent: we edited (older mtime), the peer deleted later.
    let mut edit = file("x", vv(&[(ME, 2), (PEER, 1)]));
    edit.modified_s = 100;
    local(&index, vec![edit]);
    let mut del = deleted(file("x", vv(&[(ME, 1), (PEER, 2)])));
    del.modified_s = 200;
    remote(&index, RemoteBatch::Full, vec![del]);
    let global = |index: &Index| {
        index
            .read(&folder())
            .unwrap()
            .global(&RelPath::new("x").unwrap())
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        global(&index).device,
        ME,
        "1.x: the live edit beats the delete"
    );
    assert!(need_names(&index).is_empty());
    let mut w = index.write(&folder()).unwrap();
    w.set_delete_rule(DeleteRule::V2).unwrap();
    w.commit().unwrap();
    assert_eq!(global(&index).device, PEER, "2.x: the newer delete wins");
    assert_eq!(need_names(&index), ["x"]);
    assert_eq!(
        index
            .read(&folder())
            .unwrap()
            .counts()
            .unwrap()
            .need
            .deleted,
        1
    );
}

#[test]
fn block_map_finds_local_data_and_forgets_replaced_versions() {
    let (_d, index) = open();
    let mut f = file("data.bin", vv(&[(ME, 1)]));
    f.blocks = vec![Block {
        offset: 0,
        size: 10,
        hash: [7; 32],
    }];
    f.chunks = vec![Block {
        offset: 5,
        size: 5,
        hash: [8; 32],
    }];
    local(&index, vec![f.clone()]);
    let r = index.read(&folder()).unwrap();
    let hit = r.find_block(&[8; 32], 10).unwrap();
    assert_eq!(
        (hit[0].name.as_str(), hit[0].offset, hit[0].size),
        ("data.bin", 5, 5)
    );
    assert_eq!(r.find_block(&[7; 32], 10).unwrap().len(), 1);
    drop(r);
    f.blocks = vec![Block {
        offset: 0,
        size: 10,
        hash: [9; 32],
    }];
    f.chunks.clear();
    f.version = vv(&[(ME, 2)]);
    local(&index, vec![f]);
    let r = index.read(&folder()).unwrap();
    assert!(r.find_block(&[7; 32], 10).unwrap().is_empty());
    assert!(r.find_block(&[8; 32], 10).unwrap().is_empty());
    assert_eq!(r.find_block(&[9; 32], 10).unwrap().len(), 1);
}

#[test]
fn remote_blocks_are_not_in_the_block_map() {
    let (_d, index) = open();
    let mut f = file("r.bin", vv(&[(PEER, 1)]));
    f.blocks = vec![Block {
        offset: 0,
        size: 10,
        hash: [3; 32],
    }];
    remote(&index, RemoteBatch::Full, vec![f]);
    assert!(
        index
            .read(&folder())
            .unwrap()
            .find_block(&[3; 32], 1)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn uncommitted_batch_leaves_no_trace() {
    let (_d, index) = open();
    let mut w = index.write(&folder()).unwrap();
    w.apply_local([file("a", vv(&[(ME, 1)]))]).unwrap();
    drop(w);
    let r = index.read(&folder()).unwrap();
    assert_eq!(r.local_sequence(), 0);
    assert_eq!(r.counts().unwrap().local.files, 0);
}

#[test]
fn reopening_as_another_device_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    drop(Index::open(&path, ME).unwrap());
    assert!(matches!(
        Index::open(&path, PEER),
        Err(OpenError::WrongDevice { .. })
    ));
}

#[test]
fn local_device_cannot_be_applied_as_remote() {
    let (_d, index) = open();
    let mut w = index.write(&folder()).unwrap();
    assert!(
        w.apply_remote(ME, RemoteBatch::Update, [file("a", vv(&[(ME, 1)]))])
            .is_err()
    );
}

#[test]
fn unknown_folder_reads_empty() {
    let (_d, index) = open();
    let r = index.read(&FolderId::new("nope").unwrap()).unwrap();
    assert_eq!(r.counts().unwrap(), Default::default());
    assert_eq!(r.need().unwrap().count(), 0);
}

#[test]
fn a_name_given_twice_in_one_batch_keeps_its_last_record() {
    let (_d, index) = open();
    let mut first = file("z", vv(&[(PEER, 1)]));
    first.size = 1;
    let mut second = file("z", vv(&[(PEER, 2)]));
    second.size = 2;
    remote(
        &index,
        RemoteBatch::Full,
        vec![first, file("a", vv(&[(PEER, 1)])), second],
    );
    let r = index.read(&folder()).unwrap();
    let got = r.get(PEER, &RelPath::new("z").unwrap()).unwrap().unwrap();
    assert_eq!(got.size, 2);
    drop(r);

    let mut old = file("y", vv(&[(ME, 1)]));
    old.size = 10;
    let mut new = file("y", vv(&[(ME, 2)]));
    new.size = 20;
    assert_eq!(local(&index, vec![old, file("b", vv(&[(ME, 1)])), new]), 3);
    let r = index.read(&folder()).unwrap();
    let got = r.get(ME, &RelPath::new("y").unwrap()).unwrap().unwrap();
    assert_eq!((got.size, got.sequence), (20, 3));
    let seqs: Vec<(String, u64)> = r
        .local_since(0)
        .unwrap()
        .map(|f| f.map(|f| (f.name.as_str().to_owned(), f.sequence)).unwrap())
        .collect();
    assert_eq!(seqs, [("b".to_owned(), 2), ("y".to_owned(), 3)]);
}

#[test]
fn need_walk_finds_sparse_and_dense_needs_among_many_names() {
    // Runs of consecutive needed names (the walk steps through them) and needed names far
    // apart (the walk seeks), for changes (ascending) and deletions (descending).
    let (_d, index) = open();
    let names: Vec<String> = (0..300).map(|i| format!("d{}/f{i:04}", i % 7)).collect();
    let v1 = vv(&[(ME, 1)]);
    local(&index, names.iter().map(|n| file(n, v1.clone())).collect());
    let v2 = vv(&[(ME, 1), (PEER, 1)]);
    let mut changes = Vec::new();
    let mut deletes = Vec::new();
    let mut peer = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if (10..40).contains(&i) || i % 50 == 3 {
            changes.push(n.clone());
            peer.push(file(n, v2.clone()));
        } else if (200..230).contains(&i) || i % 45 == 7 {
            deletes.push(n.clone());
            peer.push(deleted(file(n, v2.clone())));
        } else {
            peer.push(file(n, v1.clone()));
        }
    }
    remote(&index, RemoteBatch::Full, peer);
    changes.sort();
    deletes.sort();
    deletes.reverse();
    let expected: Vec<String> = changes.into_iter().chain(deletes).collect();

    let r = index.read(&folder()).unwrap();
    let mut got = Vec::new();
    for item in r.need().unwrap() {
        let item = item.unwrap();
        let name = item.global.name.clone();
        let global = r.global(&name).unwrap().unwrap();
        assert_eq!(item.global, global.record, "{name}");
        assert_eq!(item.local, r.get(ME, &name).unwrap(), "{name}");
        assert_eq!(item.available, vec![PEER], "{name}");
        got.push(name.as_str().to_owned());
    }
    assert_eq!(got, expected);
}

#[test]
fn local_inode_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.redb");
    {
        let index = Index::open(&path, ME).unwrap();
        let mut f = file("a", vv(&[(ME, 1)]));
        f.inode = 0xdead_beef_0042;
        local(&index, vec![f]);
    }
    let index = Index::open(&path, ME).unwrap();
    let r = index.read(&folder()).unwrap();
    let got = r.get(ME, &RelPath::new("a").unwrap()).unwrap().unwrap();
    assert_eq!(got.inode, 0xdead_beef_0042);
}

#[test]
fn remote_records_are_stored_without_an_inode() {
    let (_d, index) = open();
    let mut f = file("a", vv(&[(PEER, 1)]));
    f.inode = 77;
    remote(&index, RemoteBatch::Full, vec![f]);
    let r = index.read(&folder()).unwrap();
    let got = r.get(PEER, &RelPath::new("a").unwrap()).unwrap().unwrap();
    assert_eq!(got.inode, 0);
}

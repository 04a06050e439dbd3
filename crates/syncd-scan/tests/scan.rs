//! Scanner behaviour on real temp trees with a real index. Assertions use the scanner's
//! counters: these tests run as root, so permission tricks prove nothing.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::Fixture;
use syncd_scan::EntryError;
use syncd_types::{FileKind, RelPath};

#[test]
fn new_files_directories_and_symlinks_are_recorded() {
    let f = Fixture::new();
    f.write("a.txt", b"hello");
    f.write("dir/b.txt", b"");
    std::os::unix::fs::symlink("a.txt", f.path("link")).unwrap();
    f.scanner.scan().unwrap();
    assert_eq!(f.live_names(), ["a.txt", "dir", "dir/b.txt", "link"]);
    let a = f.record("a.txt").unwrap();
    assert_eq!((a.kind, a.size, a.blocks.len()), (FileKind::File, 5, 1));
    assert_eq!(a.chunks.len(), 1);
    assert_eq!(a.blocks_hash.len(), 32);
    assert!(a.version.get(common::LOCAL.short()) > 0);
    assert_eq!(a.modified_by, common::LOCAL.short());
    assert_eq!(f.record("dir").unwrap().kind, FileKind::Directory);
    let empty = f.record("dir/b.txt").unwrap();
    assert_eq!(empty.blocks.len(), 1, "an empty file has one empty block");
    let l = f.record("link").unwrap();
    assert_eq!(
        (l.kind, l.symlink_target.as_slice(), l.no_permissions),
        (FileKind::Symlink, &b"a.txt"[..], true)
    );
}

#[test]
fn rescan_of_an_unchanged_tree_reads_zero_bytes_and_commits_nothing() {
    let f = Fixture::new();
    for i in 0..20 {
        f.write(&format!("d{}/f{i}", i % 3), &vec![i as u8; 1000 * i]);
    }
    f.scanner.scan().unwrap();
    let before = f.scanner.counters();
    let report = f.scanner.scan().unwrap();
    let after = f.scanner.counters();
    assert_eq!(report.committed, 0);
    assert_eq!(after.files_read - before.files_read, 0);
    assert_eq!(after.bytes_hashed - before.bytes_hashed, 0);
    assert_eq!(after.batches, before.batches);
}

#[test]
fn the_commit_hook_is_called_once_per_committed_batch_and_never_for_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let f = Fixture::new();
    let calls = Arc::new(AtomicU64::new(0));
    let c2 = calls.clone();
    f.scanner.set_commit_hook(Arc::new(move || {
        c2.fetch_add(1, Ordering::SeqCst);
    }));
    f.write("a", b"one");
    f.write("d/b", b"two");
    f.scanner.scan().unwrap();
    let after_scan = calls.load(Ordering::SeqCst);
    assert!(after_scan >= 1);
    assert_eq!(after_scan, f.scanner.counters().batches);
    // Nothing changed: no commit, no call.
    f.scanner.scan().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), after_scan);
    // A targeted rescan that commits calls it once more.
    f.write("a", b"three");
    f.scanner.scan_paths(&[RelPath::new("a").unwrap()]).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), after_scan + 1);
    assert_eq!(calls.load(Ordering::SeqCst), f.scanner.counters().batches);
}

#[test]
fn a_modified_file_gets_a_new_version_and_keeps_its_previous_blocks_hash() {
    let f = Fixture::new();
    f.write("a", b"one");
    f.scanner.scan().unwrap();
    let old = f.record("a").unwrap();
    f.write("a", b"three");
    let before = f.scanner.counters();
    f.scanner.scan().unwrap();
    let new = f.record("a").unwrap();
    assert_eq!(f.scanner.counters().bytes_hashed - before.bytes_hashed, 5);
    assert_eq!(new.size, 5);
    assert_eq!(new.previous_blocks_hash, old.blocks_hash);
    assert_ne!(new.blocks_hash, old.blocks_hash);
    assert_eq!(
        new.version.compare(&old.version),
        syncd_conflict::VersionOrdering::Greater
    );
}

#[test]
fn a_deleted_file_becomes_a_deletion_record() {
    let f = Fixture::new();
    f.write("gone", b"x");
    f.scanner.scan().unwrap();
    let old = f.record("gone").unwrap();
    std::fs::remove_file(f.path("gone")).unwrap();
    f.scanner.scan().unwrap();
    let d = f.record("gone").unwrap();
    assert!(d.deleted);
    assert!(d.blocks.is_empty() && d.size == 0);
    assert_eq!(
        d.version.compare(&old.version),
        syncd_conflict::VersionOrdering::Greater
    );
    assert_eq!(d.previous_blocks_hash, old.blocks_hash);
}

#[test]
fn a_renamed_file_is_a_deletion_plus_a_new_record_with_the_same_blocks() {
    let f = Fixture::new();
    // Several blocks and chunks.
    let data: Vec<u8> = (0..600_000u64).map(|i| (i * i % 251) as u8).collect();
    f.write("old", &data);
    f.scanner.scan().unwrap();
    let before = f.record("old").unwrap();
    assert!(before.blocks.len() > 1);
    std::fs::rename(f.path("old"), f.path("new")).unwrap();
    f.scanner.scan().unwrap();
    let gone = f.record("old").unwrap();
    let new = f.record("new").unwrap();
    assert!(gone.deleted);
    assert!(!new.deleted);
    assert_eq!(new.blocks, before.blocks);
    assert_eq!(new.chunks, before.chunks);
    assert_eq!(new.blocks_hash, before.blocks_hash);
    assert_eq!(gone.previous_blocks_hash, before.blocks_hash);
}

#[test]
fn a_file_replaced_by_another_with_equal_size_and_mtime_is_rehashed() {
    let f = Fixture::new();
    f.write("a", b"first");
    f.scanner.scan().unwrap();
    let old = f.record("a").unwrap();
    assert_eq!(old.inode, std::fs::metadata(f.path("a")).unwrap().ino());
    // Same size, same mtime (to the ns), same permissions; only the inode differs.
    f.write("tmp", b"other");
    let mtime = std::fs::metadata(f.path("a")).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(f.path("tmp"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    std::fs::rename(f.path("tmp"), f.path("a")).unwrap();
    let read_before = f.scanner.counters().bytes_hashed;
    f.scanner.scan().unwrap();
    assert_eq!(f.scanner.counters().bytes_hashed - read_before, 5);
    let new = f.record("a").unwrap();
    assert_eq!(
        (new.size, new.modified_s, new.modified_ns),
        (old.size, old.modified_s, old.modified_ns)
    );
    assert_ne!(new.blocks_hash, old.blocks_hash);
    assert_eq!(new.inode, std::fs::metadata(f.path("a")).unwrap().ino());
    assert_eq!(
        new.version.compare(&old.version),
        syncd_conflict::VersionOrdering::Greater
    );
}

#[test]
fn a_record_with_an_unknown_inode_is_not_rehashed() {
    let f = Fixture::new();
    f.write("a", b"data");
    f.scanner.scan().unwrap();
    // As written by an index from before inodes were recorded.
    let mut rec = f.record("a").unwrap();
    rec.inode = 0;
    let mut w = f.index.write(&f.folder).unwrap();
    w.apply_local([rec]).unwrap();
    w.commit().unwrap();
    let before = f.scanner.counters();
    let report = f.scanner.scan().unwrap();
    assert_eq!(report.committed, 0);
    assert_eq!(f.scanner.counters().bytes_hashed, before.bytes_hashed);
    assert_eq!(f.scanner.counters().files_read, before.files_read);
}

#[test]
fn a_moved_directory_records_the_new_names_before_the_old_ones_deletions() {
    let f = Fixture::new();
    for i in 0..20 {
        f.write(&format!("src/d/f{i:02}"), format!("file {i}").as_bytes());
    }
    f.scanner.scan().unwrap();
    f.mkdir("dst");
    std::fs::rename(f.path("src/d"), f.path("dst/d")).unwrap();
    f.scanner.scan().unwrap();
    let seq = |p: &str| f.record(p).unwrap().sequence;
    let newest_add = (0..20).map(|i| seq(&format!("dst/d/f{i:02}"))).max();
    let oldest_delete = (0..20)
        .map(|i| {
            let p = format!("src/d/f{i:02}");
            assert!(f.record(&p).unwrap().deleted, "{p}");
            seq(&p)
        })
        .chain([seq("src/d")])
        .min();
    assert!(
        newest_add < oldest_delete,
        "additions up to sequence {newest_add:?}, deletions from {oldest_delete:?}"
    );
}

#[test]
fn a_removed_directory_deletes_everything_below_it() {
    let f = Fixture::new();
    f.write("d/e/x", b"1");
    f.write("d/y", b"2");
    f.scanner.scan().unwrap();
    std::fs::remove_dir_all(f.path("d")).unwrap();
    f.scanner.scan().unwrap();
    for p in ["d", "d/e", "d/e/x", "d/y"] {
        assert!(f.record(p).unwrap().deleted, "{p}");
    }
}

#[test]
fn symlinks_are_recorded_never_followed_even_outside_the_root() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"s").unwrap();
    std::fs::create_dir(outside.path().join("sub")).unwrap();
    let f = Fixture::new();
    std::os::unix::fs::symlink(outside.path(), f.path("out")).unwrap();
    f.scanner.scan().unwrap();
    let c = f.scanner.counters();
    assert_eq!(c.dirs_opened, 1, "only the root is listed");
    assert_eq!(c.files_read, 0);
    assert_eq!(f.live_names(), ["out"]);
    assert_eq!(
        f.record("out").unwrap().symlink_target,
        outside.path().as_os_str().as_bytes()
    );
    // A sub-path scan through the symlink does not traverse it either.
    f.scanner
        .scan_paths(&[RelPath::new("out/secret").unwrap()])
        .unwrap();
    assert!(f.record("out/secret").is_none());
    assert_eq!(f.scanner.counters().files_read, 0);
}

#[test]
fn a_permission_change_is_a_new_version() {
    let f = Fixture::new();
    f.write("x", b"data");
    f.scanner.scan().unwrap();
    let old = f.record("x").unwrap();
    std::fs::set_permissions(f.path("x"), std::fs::Permissions::from_mode(0o700)).unwrap();
    f.scanner.scan().unwrap();
    let new = f.record("x").unwrap();
    assert_eq!(new.permissions, 0o700);
    assert_eq!(new.blocks_hash, old.blocks_hash);
    assert_eq!(
        new.version.compare(&old.version),
        syncd_conflict::VersionOrdering::Greater
    );
}

#[test]
fn an_ignored_skippable_directory_is_never_opened() {
    let f = Fixture::with_ignores("node_modules\n");
    f.write("src/main.rs", b"fn main() {}");
    for i in 0..5 {
        f.write(&format!("node_modules/p{i}/index.js"), b"x");
    }
    f.scanner.scan().unwrap();
    assert_eq!(f.scanner.counters().dirs_opened, 2, "root and src only");
    assert_eq!(f.live_names(), ["src", "src/main.rs"]);
}

#[test]
fn a_newly_ignored_file_becomes_invalid_not_deleted() {
    let f = Fixture::new();
    f.write("a.log", b"x");
    f.scanner.scan().unwrap();
    std::fs::write(f.path(".stignore"), "*.log\n").unwrap();
    f.scanner.reload_ignores().unwrap();
    f.scanner.scan().unwrap();
    let r = f.record("a.log").unwrap();
    assert!(r.invalid && !r.deleted);
}

#[test]
fn names_that_cannot_be_synced_are_scan_errors_not_records() {
    let f = Fixture::new();
    std::fs::write(f.root.path().join(OsStr::from_bytes(b"bad\xffname")), b"x").unwrap();
    std::fs::write(f.path("back\\slash"), b"x").unwrap();
    f.write("good", b"x");
    let report = f.scanner.scan().unwrap();
    assert_eq!(f.live_names(), ["good"]);
    assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
    assert!(
        report
            .errors
            .iter()
            .all(|e| matches!(e, EntryError::UnsyncableName { .. }))
    );
    assert_eq!(f.scanner.errors(), report.errors);
}

#[test]
fn internal_names_are_never_recorded() {
    let f = Fixture::new();
    f.mkdir(".stfolder");
    f.write(".stversions/old", b"x");
    f.write("d/.syncthing.x.tmp", b"x");
    f.write(".stignore", b"");
    f.scanner.scan().unwrap();
    assert_eq!(f.live_names(), ["d"]);
}

#[test]
fn a_sub_path_scan_lists_only_that_directory() {
    let f = Fixture::new();
    f.write("a/x", b"1");
    f.write("b/y", b"2");
    f.scanner.scan().unwrap();
    f.write("a/z", b"3");
    std::fs::remove_file(f.path("b/y")).unwrap();
    let before = f.scanner.counters();
    f.scanner.scan_paths(&[RelPath::new("a").unwrap()]).unwrap();
    assert_eq!(f.scanner.counters().dirs_opened - before.dirs_opened, 1);
    assert!(f.record("a/z").is_some());
    assert!(!f.record("b/y").unwrap().deleted, "b was not scanned");
}

#[test]
fn a_file_recreated_after_its_deletion_gets_a_version_newer_than_the_deletion() {
    let f = Fixture::new();
    f.write("again", b"one");
    f.scanner.scan().unwrap();
    std::fs::remove_file(f.path("again")).unwrap();
    f.scanner.scan().unwrap();
    let deletion = f.record("again").unwrap();
    f.write("again", b"two");
    let report = f.scanner.scan().unwrap();
    assert_eq!(report.committed, 1);
    let back = f.record("again").unwrap();
    assert!(!back.deleted);
    assert_eq!(back.size, 3);
    assert_eq!(
        back.version.compare(&deletion.version),
        syncd_conflict::VersionOrdering::Greater
    );
}

#[test]
fn an_unignored_file_becomes_valid_again_without_being_changed() {
    let f = Fixture::new();
    f.write("a.log", b"x");
    f.scanner.scan().unwrap();
    std::fs::write(f.path(".stignore"), "*.log\n").unwrap();
    f.scanner.reload_ignores().unwrap();
    f.scanner.scan().unwrap();
    assert!(f.record("a.log").unwrap().invalid);
    std::fs::write(f.path(".stignore"), "").unwrap();
    f.scanner.reload_ignores().unwrap();
    let report = f.scanner.scan().unwrap();
    assert_eq!(report.committed, 1);
    let r = f.record("a.log").unwrap();
    assert!(!r.invalid && !r.deleted);
}

#[test]
fn a_sub_path_scan_of_a_deleted_file_records_only_that_deletion() {
    let f = Fixture::new();
    f.write("d/x", b"1");
    f.write("d/y", b"2");
    f.scanner.scan().unwrap();
    std::fs::remove_file(f.path("d/x")).unwrap();
    std::fs::remove_file(f.path("d/y")).unwrap();
    let report = f
        .scanner
        .scan_paths(&[RelPath::new("d/x").unwrap()])
        .unwrap();
    assert_eq!(report.committed, 1);
    assert!(f.record("d/x").unwrap().deleted);
    assert!(!f.record("d/y").unwrap().deleted, "d/y was not scanned");
}

#[test]
fn a_sub_path_scan_of_a_removed_directory_deletes_everything_below_it_only() {
    let f = Fixture::new();
    f.write("d/e/x", b"1");
    f.write("d/y", b"2");
    f.write("other/z", b"3");
    f.scanner.scan().unwrap();
    std::fs::remove_dir_all(f.path("d")).unwrap();
    std::fs::remove_file(f.path("other/z")).unwrap();
    f.scanner.scan_paths(&[RelPath::new("d").unwrap()]).unwrap();
    for p in ["d", "d/e", "d/e/x", "d/y"] {
        assert!(f.record(p).unwrap().deleted, "{p}");
    }
    assert!(
        !f.record("other/z").unwrap().deleted,
        "other was not scanned"
    );
}

/// A long full scan commits in chunks of at most `CHUNK_RECORDS` (1,000) ready records while
/// it walks and hashes, so the folder can announce them before the scan ends; a directory's
/// record is committed no later than the files below it.
#[test]
fn a_long_full_scan_commits_in_chunks_directories_first() {
    const DIRS: usize = 30;
    const PER_DIR: usize = 100;
    let f = Fixture::new();
    for d in 0..DIRS {
        for i in 0..PER_DIR {
            f.write(&format!("d{d}/f{i}"), format!("{d}/{i}").as_bytes());
        }
    }
    let before = f.scanner.counters().batches;
    let report = f.scanner.scan().unwrap();
    let batches = f.scanner.counters().batches - before;
    let records = DIRS * (PER_DIR + 1);
    assert_eq!(report.committed, records);
    assert_eq!(f.live_names().len(), records);
    assert!(
        batches >= 3,
        "{records} records committed in {batches} batches, not in chunks"
    );
    for d in 0..DIRS {
        let dir = f.record(&format!("d{d}")).unwrap();
        for i in 0..PER_DIR {
            let file = f.record(&format!("d{d}/f{i}")).unwrap();
            assert!(
                dir.sequence < file.sequence,
                "d{d} (sequence {}) committed after d{d}/f{i} (sequence {})",
                dir.sequence,
                file.sequence
            );
        }
    }
}

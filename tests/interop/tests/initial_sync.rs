//! Initial sync of a whole tree, Syncthing -> syncd and syncd -> Syncthing: small files, an
//! empty file, a file over 16 MiB, nested and empty directories, a symlink, an executable
//! file and a non-ASCII NFC name arrive with equal contents, modes and mtimes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Entry, Node, cluster, write_noise_file};

/// NFC: U+00E9, U+00EF precomposed.
const NFC_NAME: &str = "caf\u{e9}/na\u{ef}ve-\u{65e5}\u{672c}.txt";
const MTIME_S: u64 = 1_600_000_000;
const MTIME_NS: u32 = 123_456_789;

fn populate(n: &Node) {
    n.write("docs/readme.txt", "hello from the sender\n");
    n.write("docs/notes/a.md", "# a\n".repeat(100));
    n.write("src/main.rs", "fn main() {}\n");
    n.write("empty.txt", "");
    n.write("a/b/c/d/deep.txt", "deep");
    n.mkdir("emptydir");
    n.symlink("link-to-readme", "docs/readme.txt");
    n.write("bin/run.sh", "#!/bin/sh\necho hi\n");
    n.chmod("bin/run.sh", 0o755);
    n.write(NFC_NAME, "non-ascii name");
    write_noise_file(&n.path("big/blob.bin"), 20 * 1024 * 1024 + 12_345, 7);
    n.set_mtime("docs/readme.txt", MTIME_S, MTIME_NS);
    n.set_mtime("big/blob.bin", MTIME_S + 60, 0);
}

fn assert_arrived(receiver: &Node) {
    let t = receiver.tree();
    let get = |k: &str| {
        t.0.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} missing on {}", receiver.name()))
    };
    assert_eq!(receiver.read("docs/readme.txt"), b"hello from the sender\n");
    assert_eq!(receiver.read("empty.txt"), b"");
    assert_eq!(receiver.read(NFC_NAME), b"non-ascii name");
    assert!(matches!(get("emptydir"), Entry::Dir { .. }));
    assert_eq!(
        get("link-to-readme"),
        Entry::Symlink {
            target: "docs/readme.txt".into()
        }
    );
    match get("bin/run.sh") {
        Entry::File { mode, .. } => assert_eq!(mode, 0o755),
        other => panic!("bin/run.sh: {other:?}"),
    }
    match get("docs/readme.txt") {
        Entry::File {
            mtime_s, mtime_ns, ..
        } => {
            assert_eq!((mtime_s, mtime_ns), (MTIME_S as i64, i64::from(MTIME_NS)))
        }
        other => panic!("docs/readme.txt: {other:?}"),
    }
    match get("big/blob.bin") {
        Entry::File { size, .. } => assert_eq!(size, 20 * 1024 * 1024 + 12_345),
        other => panic!("big/blob.bin: {other:?}"),
    }
}

#[test]
fn syncthing_tree_arrives_at_syncd_with_contents_modes_and_mtimes() {
    let Some(mut c) = cluster() else { return };
    populate(&c.st);
    c.start();
    c.converge();
    assert_arrived(&c.sd);
    c.assert_clean_logs(&[]);
}

#[test]
fn syncd_tree_arrives_at_syncthing_with_contents_modes_and_mtimes() {
    let Some(mut c) = cluster() else { return };
    populate(&c.sd);
    c.start();
    c.converge();
    assert_arrived(&c.st);
    c.assert_clean_logs(&[]);
}

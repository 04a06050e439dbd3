//! Migration day: both sides start pre-populated with the same tree plus unique files and one
//! differing file. No block data moves for identical files, unique files merge, and the one
//! differing file yields one conflict copy, the same on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Kind, Node, cluster, write_noise_file};

const BIG: u64 = 24 * 1024 * 1024;

fn same_tree(n: &Node) {
    n.write("shared/readme.txt", "identical on both");
    n.write("shared/deep/x/y.txt", "also identical");
    write_noise_file(&n.path("shared/big.bin"), BIG, 42);
    for rel in ["shared/readme.txt", "shared/deep/x/y.txt", "shared/big.bin"] {
        n.set_mtime(rel, 1_650_000_000, 5);
    }
}

#[test]
fn migration_day_merges_without_moving_identical_data_and_one_conflict_copy() {
    let Some(mut c) = cluster() else { return };
    same_tree(&c.st);
    same_tree(&c.sd);
    c.st.write("only-on-syncthing.txt", "st unique");
    c.sd.write("only-on-syncd.txt", "sd unique");
    c.st.write("differs.txt", "Syncthing's version");
    c.st.set_mtime("differs.txt", 1_650_000_100, 0);
    c.sd.write("differs.txt", "syncd's version, newer");
    c.sd.set_mtime("differs.txt", 1_650_000_200, 0);
    c.start();
    c.converge();
    assert_eq!(c.st.read("only-on-syncd.txt"), b"sd unique");
    assert_eq!(c.sd.read("only-on-syncthing.txt"), b"st unique");
    assert_eq!(c.st.read("differs.txt"), b"syncd's version, newer");
    let (on_st, on_sd) = (
        c.st.conflict_copies("differs.txt"),
        c.sd.conflict_copies("differs.txt"),
    );
    assert_eq!(on_st.len(), 1, "{on_st:?}");
    assert_eq!(on_st, on_sd);
    assert!(c.st.conflict_copies("shared/readme.txt").is_empty());
    assert!(c.st.conflict_copies("shared/big.bin").is_empty());
    // Neither side received the big file's blocks (everything else is a few KiB).
    for side in [Kind::Syncthing, Kind::Syncd] {
        let got = c.in_bytes(side);
        assert!(
            got < BIG / 4,
            "{side:?} received {got} bytes: identical data was transferred"
        );
    }
    c.assert_clean_logs(&[]);
}

//! A file over 250 MiB (Syncthing uses 256 KiB blocks at that size) crosses in both
//! directions intact (contents compared byte for byte by `converge`). The slowest tests of the
//! suite (hashing ~0.5 GiB per direction; ~40 s on a shared 2-core machine).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Node, cluster, write_noise_file};

const SIZE: u64 = 260 * 1024 * 1024 + 777;

fn large_file_arrives(from_syncthing: bool) {
    let Some(mut c) = cluster() else { return };
    let sender: &Node = if from_syncthing { &c.st } else { &c.sd };
    write_noise_file(&sender.path("large/disk.img"), SIZE, 99);
    c.start();
    c.converge();
    let receiver = if from_syncthing { &c.sd } else { &c.st };
    assert_eq!(
        receiver.path("large/disk.img").metadata().unwrap().len(),
        SIZE
    );
    c.assert_clean_logs(&[]);
}

#[test]
fn a_260_mib_file_from_syncthing_arrives_at_syncd() {
    large_file_arrives(true);
}

#[test]
fn a_260_mib_file_from_syncd_arrives_at_syncthing() {
    large_file_arrives(false);
}

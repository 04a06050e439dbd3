//! A name spelt in NFD on a Linux disk (copied from a Mac) syncs under its NFC spelling: the
//! scanner renames it on disk (autoNormalize) and the peer gets the same name and bytes.
#![cfg(not(target_os = "macos"))]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_spelt_in_nfd_arrives_in_nfc_and_is_renamed_on_disk() {
    let p = pair_with(|a, _| a.write("cafe\u{301}/notes.txt", "accented")).await;
    until("the file reached b", || p.db.exists("caf\u{e9}/notes.txt")).await;
    p.synced().await;
    for d in [&p.da, &p.db] {
        assert_eq!(d.read("caf\u{e9}/notes.txt"), b"accented");
        assert!(!d.exists("cafe\u{301}/notes.txt"));
    }
    p.a.shutdown().await;
    p.b.shutdown().await;
}

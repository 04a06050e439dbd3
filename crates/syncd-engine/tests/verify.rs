//! Block verification (issue 33): a file changed on disk behind the scanner's back (a block
//! overwritten in place, the modification time put back, as a failing disk or a careless tool
//! leaves it) is found by `EngineHandle::verify`, reported in the folder's errors, and its
//! damaged block is refused to a peer instead of being served as the recorded version; once
//! the good bytes are back, a new verification clears it and the peer gets the file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::{File, FileTimes};
use std::os::unix::fs::FileExt;

use common::*;

const BLOCK: usize = 128 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_damaged_on_disk_is_found_reported_and_never_served() {
    let p = pair().await;
    p.synced().await;
    // b stops pulling for a while; a gets a 1 MiB file (8 blocks) and a small one.
    p.b.pause_folder(&p.folder).await.unwrap();
    let good = random_bytes(8 * BLOCK, 33);
    p.da.write("big.bin", &good);
    p.da.write("small.txt", "small");
    p.a.scan(&p.folder, None).await.unwrap();

    // Nothing is damaged yet.
    let clean = p.a.verify(&p.folder).await.unwrap();
    assert_eq!(
        (clean.files, clean.bytes),
        (2, 8 * BLOCK as u64 + 5),
        "{clean:?}"
    );
    assert!(clean.damaged.is_empty(), "{clean:?}");

    // Block 3 is overwritten in place and the modification time put back: a scan sees
    // nothing (same size, time and inode).
    let path = p.da.path("big.bin");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let f = File::options().write(true).open(&path).unwrap();
    f.write_all_at(&[0u8; 64], 3 * BLOCK as u64 + 1000).unwrap();
    f.set_times(FileTimes::new().set_modified(mtime)).unwrap();
    drop(f);
    p.a.scan(&p.folder, None).await.unwrap();

    let report = p.a.verify(&p.folder).await.unwrap();
    assert_eq!(report.files, 2, "{report:?}");
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].path, "big.bin");
    assert_eq!(report.damaged[0].blocks, vec![3]);
    let st = p.a.folder_status(&p.folder).unwrap();
    assert!(
        st.errors
            .iter()
            .any(|e| e.path == "big.bin" && e.error.contains("damaged on disk")),
        "{:?}",
        st.errors
    );

    // b asks for the file: the damaged block is refused (a's own counter), so b never
    // installs it; the other file arrives.
    p.b.resume_folder(&p.folder).await.unwrap();
    until("b asked for the damaged block and a refused it", || {
        p.a.folder_status(&p.folder).unwrap().damaged_blocks_refused > 0
    })
    .await;
    until("small.txt reached b", || p.db.exists("small.txt")).await;
    until("b reports big.bin as failed", || {
        p.b.folder_status(&p.folder)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.path == "big.bin")
    })
    .await;
    assert!(!p.db.exists("big.bin"), "a damaged file reached b");

    // The good bytes are put back (as a copy from a peer with its time kept would): the next
    // verification finds nothing, a serves the file again, and b gets the recorded version.
    let f = File::options().write(true).open(&path).unwrap();
    f.write_all_at(&good[3 * BLOCK..4 * BLOCK], 3 * BLOCK as u64)
        .unwrap();
    f.set_times(FileTimes::new().set_modified(mtime)).unwrap();
    drop(f);
    let again = p.a.verify(&p.folder).await.unwrap();
    assert!(again.damaged.is_empty(), "{again:?}");
    assert!(
        !p.a.folder_status(&p.folder)
            .unwrap()
            .errors
            .iter()
            .any(|e| e.path == "big.bin"),
        "the damage is no longer reported"
    );
    p.b.scan(&p.folder, None).await.unwrap();
    until("b got big.bin", || {
        p.db.exists("big.bin") && p.db.read("big.bin") == good
    })
    .await;
    p.a.shutdown().await;
    p.b.shutdown().await;
}

//! Temp files a killed or cut pull left behind are removed once no pull will use them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{WAIT, pair_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_temp_file_whose_path_is_no_longer_needed_is_removed_after_a_pull_pass() {
    let temp = format!(
        "d/{}",
        syncd_types::names::temp_name("deleted-before-retry.dat")
    );
    let p = pair_with(|da, db| {
        da.write("d/kept.txt", b"synced");
        // What a process killed mid-pull left: the file it was pulling is gone everywhere.
        db.write(&temp, b"partial data of a file nobody has any more");
        // Older than Syncthing's keepTemporariesH (24 h).
        std::fs::File::options()
            .write(true)
            .open(db.path(&temp))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(25 * 3600))
            .unwrap();
        db.write("d/user.dat", b"user data beside it");
    })
    .await;
    p.synced().await;
    let deadline = Instant::now() + WAIT;
    while p.db.exists(&temp) {
        assert!(
            Instant::now() < deadline,
            "stale temp file {temp} still there"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(p.db.read("d/user.dat"), b"user data beside it");
    assert_eq!(p.db.read("d/kept.txt"), b"synced");
}

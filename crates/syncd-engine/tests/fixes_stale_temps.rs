//! Temp files a killed or cut pull left behind are removed once no pull will use them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use syncd_memnet::MemNet;

#[tokio::test(start_paused = true)]
async fn a_temp_file_whose_path_is_no_longer_needed_is_removed_after_a_pull_pass() {
    let temp = format!(
        "d/{}",
        syncd_types::names::temp_name("deleted-before-retry.dat")
    );
    let mut net = MemNet::builder(&["a", "b"]).build();
    let b = net.tree("b").clone();
    net.tree("a").write("d/kept.txt", b"synced");
    // What a process killed mid-pull left: the file it was pulling is gone everywhere.
    b.write(&temp, b"partial data of a file nobody has any more");
    // Older than Syncthing's keepTemporariesH (24 h).
    std::fs::File::options()
        .write(true)
        .open(b.path(&temp))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(25 * 3600))
        .unwrap();
    b.write("d/user.dat", b"user data beside it");
    net.start().await;
    net.settle().await;
    net.until("the stale temp file is removed", || !b.exists(&temp))
        .await;
    assert_eq!(b.read("d/user.dat"), b"user data beside it");
    assert_eq!(b.read("d/kept.txt"), b"synced");
}

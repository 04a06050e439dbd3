//! A full disk during a pull: the folder goes to `error` with a clear message, nothing on disk
//! is damaged, and sync resumes by itself once space is freed. Needs root (it mounts a small
//! tmpfs as b's folder root); without it the test says so loudly and passes vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{WAIT, pair_with, random_bytes};
use syncd_engine::{FolderState, health};

/// Unmounts the tmpfs when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(at: &Path, size: &str) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(at.to_path_buf()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_puts_the_folder_in_error_and_sync_resumes_once_space_is_freed() {
    let big = random_bytes(12 << 20, 7);
    let mut mount = None;
    let p = pair_with(|da, db| {
        da.write("small.txt", b"synced before the disk filled");
        da.write("big.bin", &big);
        if let Some(m) = mount_tmpfs(&db.root, "8m") {
            health::create_marker(&db.root).unwrap();
            mount = Some(m);
        }
    })
    .await;
    if mount.is_none() {
        eprintln!("SKIPPED: cannot mount a tmpfs (needs root): disk-full behaviour not tested");
        return;
    }
    // b runs out of space pulling big.bin: the folder goes to `error` and says why.
    let deadline = Instant::now() + WAIT;
    let st = loop {
        let st = p.b.folder_status(&p.folder).unwrap();
        if st.state == FolderState::Error {
            break st;
        }
        assert!(Instant::now() < deadline, "b never went to error: {st:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let msg = st.error.unwrap_or_default();
    assert!(msg.contains("no space left on device"), "{msg}");
    assert!(msg.contains(&p.db.root.display().to_string()), "{msg}");
    // Nothing already on disk was damaged.
    if p.db.exists("small.txt") {
        assert_eq!(p.db.read("small.txt"), b"synced before the disk filled");
    }
    // Space is freed: b resumes by itself.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&p.db.root)
        .status()
        .unwrap();
    assert!(grown.success());
    p.synced().await;
    assert_eq!(p.db.read("big.bin"), big);
    assert_eq!(p.db.read("small.txt"), b"synced before the disk filled");
    let st = p.b.folder_status(&p.folder).unwrap();
    assert_ne!(st.state, FolderState::Error, "{st:#?}");
    p.a.shutdown().await;
    p.b.shutdown().await;
    drop(mount);
}

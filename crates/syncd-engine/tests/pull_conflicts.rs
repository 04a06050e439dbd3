//! Conflict copies made by the puller: named with the local wall-clock time, pruned to the
//! folder's `max_conflicts` (spec sync-semantics §2.3–§2.4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use syncd_conflict::LocalTime;
use syncd_memnet::{MemNet, Tree};

/// Older conflict copies of `notes.txt`, made long ago on `a` and synced to `b`.
const OLD_COPIES: [&str; 3] = [
    "notes.sync-conflict-20200101-000000-AAAAAAA.txt",
    "notes.sync-conflict-20200102-000000-AAAAAAA.txt",
    "notes.sync-conflict-20200103-000000-AAAAAAA.txt",
];

/// Both sides hold the old copies; then `notes.txt` is edited differently on both while the
/// devices are apart (a partition), and they meet again: one side makes a new conflict copy.
async fn conflicting_pair(max_conflicts: i32) -> MemNet {
    let mut net = MemNet::builder(&["a", "b"])
        .folder(move |f| f.max_conflicts = max_conflicts)
        .build();
    for c in OLD_COPIES {
        net.tree("a").write(c, format!("old copy {c}"));
    }
    net.tree("a").write("notes.txt", "base");
    net.start().await;
    net.settle().await;
    net.cut("a", "b").await;
    net.tree("a").write("notes.txt", "edit from a");
    net.tree("b").write("notes.txt", "edit from b, different");
    net.scan_all().await;
    net.heal("a", "b").await;
    net.settle().await;
    net
}

fn new_copies(t: &Tree) -> Vec<String> {
    t.conflict_copies()
        .into_iter()
        .filter(|c| !OLD_COPIES.contains(&c.as_str()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_new_copy_prunes_the_oldest_copies_beyond_max_conflicts() {
    let net = conflicting_pair(2).await;
    let new = new_copies(net.tree("a"));
    assert_eq!(new.len(), 1, "{:?}", net.tree("a").entries());
    let mut want = vec![OLD_COPIES[2].to_owned(), new[0].clone()];
    want.sort();
    // The side that made no copy learns of the pruned ones as ordinary deletions.
    assert_eq!(net.tree("a").conflict_copies(), want);
    assert_eq!(net.tree("b").conflict_copies(), want);
    net.assert_converged();
}

#[tokio::test(start_paused = true)]
async fn unlimited_max_conflicts_keeps_every_copy() {
    let net = conflicting_pair(-1).await;
    assert_eq!(
        new_copies(net.tree("a")).len(),
        1,
        "{:?}",
        net.tree("a").entries()
    );
    assert_eq!(net.tree("a").conflict_copies().len(), OLD_COPIES.len() + 1);
    net.assert_converged();
}

#[tokio::test(start_paused = true)]
async fn zero_max_conflicts_makes_no_copy_and_prunes_nothing() {
    let net = conflicting_pair(0).await;
    assert_eq!(net.tree("a").conflict_copies(), OLD_COPIES.to_vec());
    assert_eq!(net.tree("b").conflict_copies(), OLD_COPIES.to_vec());
    let kept = net.tree("a").read("notes.txt");
    assert!(
        kept == b"edit from a" || kept == b"edit from b, different",
        "{kept:?}"
    );
    net.assert_converged();
}

/// POSIX `XST-05:30` is UTC+05:30 and needs no zone database; `TZ` is read once per process,
/// so the scenario runs in a child process of this test binary.
#[test]
fn a_conflict_copy_is_named_with_the_local_wall_clock_time() {
    const CHILD: &str = "SYNCD_LOCAL_TIME_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let stamp = |t: SystemTime| {
                let s = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
                LocalTime::from_unix(s, 5 * 3600 + 1800).to_string()
            };
            let before = stamp(SystemTime::now());
            let net = conflicting_pair(-1).await;
            let after = stamp(SystemTime::now());
            let new = new_copies(net.tree("a"));
            assert_eq!(new.len(), 1, "{:?}", net.tree("a").entries());
            // notes.sync-conflict-YYYYMMDD-HHMMSS-XXXXXXX.txt
            let t = new[0]
                .strip_prefix("notes.sync-conflict-")
                .and_then(|r| r.get(..15))
                .unwrap();
            assert!(
                before.as_str() <= t && t <= after.as_str(),
                "copy stamped {t}, local time was {before}..{after}"
            );
        });
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_conflict_copy_is_named_with_the_local_wall_clock_time",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("TZ", "XST-05:30")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed: {text}");
    assert!(text.contains("1 passed"), "child ran no test: {text}");
}

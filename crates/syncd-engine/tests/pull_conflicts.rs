//! Conflict copies made by the puller: named with the local wall-clock time, pruned to the
//! folder's `max_conflicts` (spec sync-semantics §2.3–§2.4).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{Dir, Pair, pair_configured};
use syncd_conflict::LocalTime;

/// Older conflict copies of `notes.txt`, made long ago on `a` and synced to `b`.
const OLD_COPIES: [&str; 3] = [
    "notes.sync-conflict-20200101-000000-AAAAAAA.txt",
    "notes.sync-conflict-20200102-000000-AAAAAAA.txt",
    "notes.sync-conflict-20200103-000000-AAAAAAA.txt",
];

/// Both sides hold the old copies; then `notes.txt` is edited differently on both while the
/// devices are apart (`a` pauses `b`), and they meet again: one side makes a new conflict copy.
async fn conflicting_pair(max_conflicts: i32) -> Pair {
    let p = pair_configured(
        |a: &Dir, _: &Dir| {
            for c in OLD_COPIES {
                a.write(c, format!("old copy {c}"));
            }
            a.write("notes.txt", "base");
        },
        |f| f.max_conflicts = max_conflicts,
    )
    .await;
    p.synced().await;
    let b_id = p.b.device_id();
    p.a.pause_device(b_id).await.unwrap();
    let start = Instant::now();
    while p.a.connections().iter().any(|c| c.connected)
        || p.b.connections().iter().any(|c| c.connected)
    {
        assert!(start.elapsed() < common::WAIT, "pausing did not disconnect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.da.write("notes.txt", "edit from a");
    p.db.write("notes.txt", "edit from b, different");
    p.a.scan(&p.folder, None).await.unwrap();
    p.b.scan(&p.folder, None).await.unwrap();
    p.a.resume_device(b_id).await.unwrap();
    p.synced().await;
    p
}

fn copies(d: &Dir) -> Vec<String> {
    d.entries()
        .into_iter()
        .filter(|e| e.contains(".sync-conflict-"))
        .collect()
}

fn new_copies(d: &Dir) -> Vec<String> {
    copies(d)
        .into_iter()
        .filter(|c| !OLD_COPIES.contains(&c.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_copy_prunes_the_oldest_copies_beyond_max_conflicts() {
    let p = conflicting_pair(2).await;
    let new = new_copies(&p.da);
    assert_eq!(new.len(), 1, "{:?}", p.da.entries());
    let mut want = vec![OLD_COPIES[2].to_owned(), new[0].clone()];
    want.sort();
    // The side that made no copy learns of the pruned ones as ordinary deletions, which may
    // still be on their way when both sides first report in sync.
    let start = Instant::now();
    while (copies(&p.da) != want || copies(&p.db) != want) && start.elapsed() < common::WAIT {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(copies(&p.da), want);
    assert_eq!(copies(&p.db), want);
    p.synced().await;
    common::assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_max_conflicts_keeps_every_copy() {
    let p = conflicting_pair(-1).await;
    assert_eq!(new_copies(&p.da).len(), 1, "{:?}", p.da.entries());
    assert_eq!(copies(&p.da).len(), OLD_COPIES.len() + 1);
    common::assert_same(&p.da, &p.db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_max_conflicts_makes_no_copy_and_prunes_nothing() {
    let p = conflicting_pair(0).await;
    assert_eq!(copies(&p.da), OLD_COPIES.to_vec());
    assert_eq!(copies(&p.db), OLD_COPIES.to_vec());
    let kept = p.da.read("notes.txt");
    assert!(
        kept == b"edit from a" || kept == b"edit from b, different",
        "{kept:?}"
    );
    common::assert_same(&p.da, &p.db);
}

/// POSIX `XST-05:30` is UTC+05:30 and needs no zone database; `TZ` is read once per process,
/// so the scenario runs in a child process of this test binary.
#[test]
fn a_conflict_copy_is_named_with_the_local_wall_clock_time() {
    const CHILD: &str = "SYNCD_LOCAL_TIME_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let stamp = |t: SystemTime| {
                let s = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
                LocalTime::from_unix(s, 5 * 3600 + 1800).to_string()
            };
            let before = stamp(SystemTime::now());
            let p = conflicting_pair(-1).await;
            let after = stamp(SystemTime::now());
            let new = new_copies(&p.da);
            assert_eq!(new.len(), 1, "{:?}", p.da.entries());
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

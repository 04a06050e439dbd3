//! Watcher behaviour on real temp trees with real inotify and a real index.

#![allow(clippy::unwrap_used)] // test helpers below are not #[test] functions

mod common;

#[cfg(target_os = "linux")]
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::Fixture;
#[cfg(target_os = "linux")]
use notify::event::{EventKind, Flag};
use syncd_scan::{FolderWatcher, WatchBackend, WatchConfig};

/// The defaults with `backend`.
fn config(backend: WatchBackend) -> WatchConfig {
    WatchConfig {
        backend,
        ..WatchConfig::default()
    }
}

/// Runs a test body once per way of holding the watches: per directory (inotify, Linux's
/// default) and recursive (notify's recommended watcher on the root: the code macOS runs).
macro_rules! with_each_backend {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            #[test]
            fn per_directory() {
                super::$name(syncd_scan::WatchBackend::Auto)
            }
            #[test]
            fn recursive() {
                super::$name(syncd_scan::WatchBackend::Recursive)
            }
        })*
    };
}

with_each_backend!(
    a_write_becomes_an_index_record,
    a_burst_of_1000_writes_becomes_at_most_5_batches,
    renames_and_deletes_of_whole_directories_are_seen,
    temp_file_events_are_dropped_on_arrival,
    a_temp_file_renamed_into_place_is_recorded,
    reads_of_watched_files_cause_no_watcher_events,
);

fn start(f: &Fixture, config: WatchConfig) -> FolderWatcher {
    FolderWatcher::start(f.scanner.clone(), config).unwrap()
}

#[cfg(target_os = "linux")]
/// The number of watches held by the inotify instance of this process that watches `dir`,
/// read from `/proc/self/fdinfo` (lines `inotify wd:N ino:<hex> sdev:...`).
fn inotify_watches_holding(dir: &std::path::Path) -> usize {
    let ino = format!("ino:{:x} ", std::fs::metadata(dir).unwrap().ino());
    for fd in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(target) = std::fs::read_link(fd.path()) else {
            continue;
        };
        if target.to_string_lossy() != "anon_inode:inotify" {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/self/fdinfo/{}",
            fd.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let lines: Vec<&str> = info
            .lines()
            .filter(|l| l.starts_with("inotify wd:"))
            .collect();
        if lines.iter().any(|l| l.contains(&ino)) {
            return lines.len();
        }
    }
    0
}

fn a_write_becomes_an_index_record(backend: WatchBackend) {
    let f = Fixture::new();
    let _w = start(&f, config(backend));
    f.write("hello.txt", b"hi");
    f.eventually("hello.txt recorded", |f| {
        f.record("hello.txt").is_some_and(|r| r.size == 2)
    });
}

/// On a quiet machine 1,000 writes take well under a second with no pause, and must become
/// at most 5 batches. On a loaded one the scheduler may stall this writer longer than the
/// debounce delay, and each such pause legitimately ends a batch (so does each 20 delays of
/// continuous writing): the bound adds the pauses and seconds actually observed, so the test
/// still fails when writes are not coalesced (hundreds of batches) but not because the
/// machine is busy.
fn a_burst_of_1000_writes_becomes_at_most_5_batches(backend: WatchBackend) {
    let f = Fixture::new();
    f.mkdir("burst");
    let config = config(backend);
    let delay = config.delay;
    let w = start(&f, config);
    let before = f.scanner.counters().batches;
    let began = Instant::now();
    let mut last = began;
    let mut pauses = 0u64;
    for i in 0..1000 {
        std::fs::write(f.path(&format!("burst/{i}")), i.to_string()).unwrap();
        let now = Instant::now();
        // Half the delay: the watcher sees events a little later than they are written.
        if now - last >= delay / 2 {
            pauses += 1;
        }
        last = now;
    }
    let took = began.elapsed();
    f.eventually("all 1000 recorded", |f| f.live_names().len() == 1001);
    std::thread::sleep(Duration::from_millis(200));
    let batches = f.scanner.counters().batches - before;
    let capped = (took.as_millis() / (delay * 20).as_millis()) as u64;
    assert!(
        batches <= 5 + pauses + capped,
        "{batches} batches; the writes took {took:?} with {pauses} pauses of {:?} or more",
        delay / 2
    );
    drop(w);
}

fn renames_and_deletes_of_whole_directories_are_seen(backend: WatchBackend) {
    let f = Fixture::new();
    f.write("d/x", b"1");
    f.write("d/sub/y", b"2");
    let _w = start(&f, config(backend));
    std::fs::rename(f.path("d"), f.path("e")).unwrap();
    f.eventually("rename seen", |f| {
        f.record("d/sub/y").is_some_and(|r| r.deleted)
            && f.record("e/sub/y").is_some_and(|r| !r.deleted)
    });
    // The renamed directory is watched under its new name.
    f.write("e/sub/z", b"3");
    f.eventually("write in renamed dir seen", |f| {
        f.record("e/sub/z").is_some()
    });
    std::fs::remove_dir_all(f.path("e")).unwrap();
    f.eventually("delete seen", |f| {
        ["e", "e/x", "e/sub", "e/sub/y", "e/sub/z"]
            .iter()
            .all(|p| f.record(p).is_some_and(|r| r.deleted))
    });
}

// Per-directory watches (inotify) only: Linux.
#[cfg(target_os = "linux")]
#[test]
fn inotify_watches_held_equal_the_non_ignored_directories() {
    let f = Fixture::with_ignores("node_modules\n");
    for d in ["a", "a/b", "c", "node_modules/x", "node_modules/y/z"] {
        f.mkdir(d);
    }
    let _w = start(&f, WatchConfig::default());
    // root, a, a/b, c
    assert_eq!(inotify_watches_holding(f.root.path()), 4);
    f.mkdir("c/new");
    f.write("c/new/file", b"x");
    f.eventually("new directory watched", |f| {
        inotify_watches_holding(f.root.path()) == 5
    });
}

// Per-directory watches (inotify) only: Linux.
#[cfg(target_os = "linux")]
#[test]
fn past_the_watch_cap_changes_are_still_picked_up_by_fallback_scans() {
    let f = Fixture::new();
    for d in ["a", "b", "c", "d"] {
        f.mkdir(d);
    }
    let config = WatchConfig {
        max_watches: Some(2),
        fallback_interval: Duration::from_millis(200),
        ..WatchConfig::default()
    };
    let w = start(&f, config);
    assert!(w.stats().limited.load(Ordering::Relaxed));
    assert_eq!(inotify_watches_holding(f.root.path()), 2);
    for d in ["a", "b", "c", "d"] {
        f.write(&format!("{d}/file"), d.as_bytes());
    }
    f.eventually("every file recorded", |f| {
        ["a", "b", "c", "d"]
            .iter()
            .all(|d| f.record(&format!("{d}/file")).is_some())
    });
}

/// A kernel queue overflow cannot be provoked on purpose without changing the system-wide
/// `fs.inotify.max_queued_events` (notify's reader thread drains the queue as fast as it
/// fills), so the test delivers the very event notify's inotify backend emits for
/// `IN_Q_OVERFLOW` (and, second row, a backend error) through the watcher's event channel.
/// The change it must find was made where no watch sees it, as dropped events are.
// Per-directory watches (inotify) only: Linux.
#[cfg(target_os = "linux")]
#[test]
fn an_event_queue_overflow_or_a_backend_error_triggers_a_full_rescan() {
    let overflow = || Ok(notify::Event::new(EventKind::Other).set_flag(Flag::Rescan));
    let error = || Err(notify::Error::generic("inotify read failed"));
    let cases: [(&str, &dyn Fn() -> notify::Result<notify::Event>); 2] =
        [("queue overflow", &overflow), ("backend error", &error)];
    for (what, event) in cases {
        let f = Fixture::new();
        f.mkdir("a/b");
        // Only the root is watched, and no periodic or fallback scan comes within the test.
        let config = WatchConfig {
            max_watches: Some(1),
            fallback_interval: Duration::from_secs(3600),
            rescan_interval: None,
            ..WatchConfig::default()
        };
        let w = start(&f, config);
        f.write("a/b/unseen", b"x");
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            f.record("a/b/unseen").is_none(),
            "{what}: the change is invisible to the watches"
        );
        let before = f.scanner.counters();
        w.deliver(event());
        f.eventually("the unseen change recorded", |f| {
            f.record("a/b/unseen").is_some()
        });
        assert_eq!(w.stats().full_scans.load(Ordering::Relaxed), 1, "{what}");
        assert_eq!(w.stats().event_scans.load(Ordering::Relaxed), 0, "{what}");
        let after = f.scanner.counters();
        assert_eq!(after.scans - before.scans, 1, "{what}");
        assert_eq!(
            after.dirs_opened - before.dirs_opened,
            3,
            "{what}: the full walk lists the root, a and a/b"
        );
    }
}

/// The puller writes `.syncthing.<name>.tmp` files: their events are dropped as they arrive
/// (counted), never queued for a rescan, and no temp file is ever recorded.
fn temp_file_events_are_dropped_on_arrival(backend: WatchBackend) {
    let f = Fixture::new();
    let w = start(&f, config(backend));
    const N: usize = 20;
    for i in 0..N {
        f.write(&syncd_types::names::temp_name(&format!("f{i}")), b"partial");
    }
    // inotify keeps the order of events: once this file is recorded, every temp file's
    // events have reached the watcher.
    f.write("sentinel", b"s");
    f.eventually("sentinel recorded", |f| f.record("sentinel").is_some());
    let dropped = w.stats().temp_events_dropped.load(Ordering::Relaxed);
    assert!(
        dropped >= N as u64,
        "{dropped} temp events dropped for {N} temp files written"
    );
    assert_eq!(f.live_names(), vec![String::from("sentinel")]);
}

/// A temp file renamed onto its final name (how the puller installs a file) is recorded
/// under the final name: only the temp name's half of the rename is dropped.
fn a_temp_file_renamed_into_place_is_recorded(backend: WatchBackend) {
    let f = Fixture::new();
    let w = start(&f, config(backend));
    let temp = syncd_types::names::temp_name("done.txt");
    f.write(&temp, b"complete");
    std::fs::rename(f.path(&temp), f.path("done.txt")).unwrap();
    f.eventually("done.txt recorded", |f| {
        f.record("done.txt").is_some_and(|r| r.size == 8)
    });
    assert!(w.stats().temp_events_dropped.load(Ordering::Relaxed) > 0);
    assert_eq!(f.live_names(), vec![String::from("done.txt")]);
}

/// Reading files (as hashing and serving blocks do) causes no watcher work at all: the
/// watches do not ask for opens and read-only closes, so the kernel queues no event for a
/// read (not for the initial scan's, not for ten more), while a write is still seen.
fn reads_of_watched_files_cause_no_watcher_events(backend: WatchBackend) {
    let f = Fixture::new();
    f.mkdir("sub");
    f.write("sub/read-me", b"data");
    f.write("read-me", b"data");
    // The initial scan, run with the watches in place, reads both files.
    let w = start(&f, config(backend));
    let before = w.stats().events_received.load(Ordering::Relaxed);
    for _ in 0..10 {
        for name in ["read-me", "sub/read-me"] {
            assert_eq!(std::fs::read(f.path(name)).unwrap(), b"data");
        }
    }
    // inotify keeps the order of events: once this file is recorded, any event the reads
    // caused has reached the watcher.
    f.write("sentinel", b"s");
    f.eventually("sentinel recorded", |f| f.record("sentinel").is_some());
    let received = w.stats().events_received.load(Ordering::Relaxed) - before;
    assert!(
        received <= 3,
        "{received} events for 20 reads and one new file (its create, modify, close-write)"
    );
    assert_eq!(w.stats().access_events_dropped.load(Ordering::Relaxed), 0);
}

/// The recursive watch (what macOS runs): one watch on the root covers new directories
/// without watches of their own, and changes under ignored directories record nothing.
#[test]
fn a_recursive_watch_covers_new_directories_and_ignored_trees_record_nothing() {
    let f = Fixture::with_ignores("node_modules\n");
    f.mkdir("node_modules/x");
    let w = start(&f, config(WatchBackend::Recursive));
    assert_eq!(w.stats().watches.load(Ordering::Relaxed), 1);
    f.mkdir("new/deeper");
    f.write("new/deeper/file", b"x");
    f.write("node_modules/x/dep.js", b"ignored");
    f.eventually("a file in a new directory recorded", |f| {
        f.record("new/deeper/file").is_some()
    });
    assert!(f.record("node_modules/x/dep.js").is_none());
    assert_eq!(
        f.live_names(),
        vec![
            String::from("new"),
            String::from("new/deeper"),
            String::from("new/deeper/file")
        ]
    );
}

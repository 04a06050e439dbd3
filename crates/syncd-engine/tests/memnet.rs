//! Engine scenarios on the in-memory harness ([`syncd_memnet`]): real engines (real
//! redb index files, real folders in temp dirs, real TLS over in-memory streams) under tokio's
//! paused clock, so they need no real sleep and assert after "run until idle"
//! ([`MemNet::settle`]). The TLS-over-loopback tests in the other files stay as the
//! end-to-end tier.
//!
//! Moved onto this harness from the loopback tier (their real sleeps and polling gone): the
//! conflict-pruning tests (`pull_conflicts.rs`), the stale-temp sweep
//! (`fixes_stale_temps.rs`), the derived-records move tests (`moves.rs`, explicit scans instead
//! of the watcher) and the missing-root restart (here, from `sync.rs`).
//!
//! Real sleeps left in `crates/syncd-engine/tests` (8 call sites in 6 files), and why:
//! - `crash_initial_sync.rs` (3): the receiver is a child process killed mid-pull with
//!   SIGKILL; the test polls the real process and disk on the wall clock, and the child idles
//!   in a sleep until it is killed. Another process cannot share a paused clock.
//! - `fixes_disk_full.rs` (1): the full disk is a real tmpfs mount (root only), remounted
//!   larger while the engine runs; the engine's reaction is polled on the real clock.
//! - `pull_races.rs` (1, `std::thread::sleep`): an editor thread races the puller on the
//!   real filesystem, waiting for the puller's temp file; the race is the test.
//! - `sync.rs` (1, `a_long_first_scan_is_announced_while_it_runs`): it observes a first scan
//!   of a 1 GiB sparse file *while it runs*, i.e. real hashing time against the folder state.
//! - `protocol.rs` (1): a hand-written BEP peer talks to an engine over loopback TCP (the
//!   wire-format tier) and polls the engine's counters under a timeout.
//! - `runtime_config.rs` (1, its `until` helper): runtime device and folder changes over
//!   TCP, where what is tested includes the engine's own dialers reconnecting after a change;
//!   on the in-memory link the harness, not the engine, connects devices.
//!
//! `moves.rs` keeps one `sleep(` in its index-reopen retry, on the paused clock (virtual).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use syncd_engine::{ConnectError, Direction, FolderState};
use syncd_memnet::MemNet;

/// Both devices start with files of their own: after the first sync each holds the union,
/// with the same content, mode and mtime.
#[tokio::test(start_paused = true)]
async fn initial_sync_merges_both_trees() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    let (a, b) = (net.tree("a").clone(), net.tree("b").clone());
    a.write("docs/readme.txt", "from a");
    a.write("docs/deep/nested/file.bin", vec![7u8; 300_000]);
    a.write("empty.txt", "");
    a.mkdir("empty-dir");
    b.write("photos/1.jpg", vec![1u8; 70_000]);
    b.write("b-only.txt", "from b");
    net.start().await;
    net.settle().await;
    assert_eq!(net.tree("b").read_string("docs/readme.txt"), "from a");
    assert_eq!(net.tree("a").read_string("b-only.txt"), "from b");
    assert!(net.tree("b").exists("empty-dir"));
    net.assert_converged();
}

/// An edit on either side reaches the other.
#[tokio::test(start_paused = true)]
async fn edits_travel_both_ways() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("notes.txt", "v1");
    net.start().await;
    net.settle().await;
    net.tree("a").write("notes.txt", "version two, from a");
    net.scan("a").await;
    net.settle().await;
    assert_eq!(
        net.tree("b").read_string("notes.txt"),
        "version two, from a"
    );
    net.tree("b")
        .write("notes.txt", "version three, written on b");
    net.scan("b").await;
    net.settle().await;
    assert_eq!(
        net.tree("a").read_string("notes.txt"),
        "version three, written on b"
    );
    net.assert_converged();
}

/// A deleted file and a deleted directory tree disappear on the peer.
#[tokio::test(start_paused = true)]
async fn deletes_propagate() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("keep.txt", "stays");
    net.tree("a").write("gone.txt", "goes");
    net.tree("a")
        .write("dir/sub/x.txt", "goes with its directory");
    net.start().await;
    net.settle().await;
    assert!(net.tree("b").exists("dir/sub/x.txt"));
    net.tree("a").remove("gone.txt");
    net.tree("a").remove("dir");
    net.scan("a").await;
    net.settle().await;
    assert_eq!(net.tree("b").entries(), vec!["keep.txt"]);
    net.assert_converged();
}

/// A renamed file and a renamed directory appear under their new names only.
#[tokio::test(start_paused = true)]
async fn renames_propagate() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("old.txt", vec![3u8; 200_000]);
    net.tree("a").write("olddir/inner.txt", "inside");
    net.start().await;
    net.settle().await;
    net.tree("a").rename("old.txt", "new.txt");
    net.tree("a").rename("olddir", "newdir");
    net.scan("a").await;
    net.settle().await;
    assert_eq!(
        net.tree("b").entries(),
        vec!["new.txt", "newdir", "newdir/inner.txt"]
    );
    assert_eq!(net.tree("b").read("new.txt"), vec![3u8; 200_000]);
    net.assert_converged();
}

/// Edits made on both sides of a partition meet when it heals: one version wins everywhere
/// and the other is kept in exactly one conflict copy, the same on both devices.
#[tokio::test(start_paused = true)]
async fn concurrent_edits_leave_one_conflict_copy() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("doc.txt", "base");
    net.start().await;
    net.settle().await;
    net.cut("a", "b").await;
    net.tree("a").write("doc.txt", "edit made on a");
    net.tree("b").write("doc.txt", "edit made on b, longer");
    net.scan_all().await;
    net.heal("a", "b").await;
    net.settle().await;
    let copies = net.tree("a").conflict_copies();
    assert_eq!(copies.len(), 1, "{:?}", net.tree("a").entries());
    let mut both = vec![
        net.tree("a").read_string("doc.txt"),
        net.tree("a").read_string(&copies[0]),
    ];
    both.sort();
    assert_eq!(both, vec!["edit made on a", "edit made on b, longer"]);
    net.assert_converged();
}

/// A device restarted from its home (same identity, same index file) catches up with what
/// changed while it was down, and its own later edits still travel.
#[tokio::test(start_paused = true)]
async fn a_restarted_device_catches_up() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("one.txt", "1");
    net.start().await;
    net.settle().await;
    net.stop("b").await;
    net.tree("a").write("two.txt", "written while b was down");
    net.tree("a").remove("one.txt");
    net.scan("a").await;
    net.start_device("b").await;
    net.settle().await;
    assert_eq!(net.tree("b").entries(), vec!["two.txt"]);
    net.tree("b").write("three.txt", "after the restart");
    net.scan("b").await;
    net.settle().await;
    assert_eq!(net.tree("a").read_string("three.txt"), "after the restart");
    net.assert_converged();
}

/// A device restarted with its folder root gone (an unmounted disk) reports the folder in
/// error and reconnects, and the other side loses nothing: it neither deletes nor forgets
/// a file, and the missing root is not recreated.
#[tokio::test(start_paused = true)]
async fn a_device_restarted_with_its_root_moved_away_is_in_error_and_the_peer_loses_nothing() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.tree("a").write("precious.txt", "keep me");
    net.tree("a").write("dir/nested.txt", "me too");
    net.start().await;
    net.settle().await;
    assert_eq!(net.tree("b").read_string("precious.txt"), "keep me");
    net.stop("b").await;
    let root = net.tree("b").root().to_owned();
    let moved = root.with_extension("moved-away");
    std::fs::rename(&root, &moved).unwrap();
    net.start_device("b").await;
    let folder = net.folder().clone();
    let b = net.engine("b").clone();
    net.until("b reports its missing root", || {
        b.folder_status(&folder)
            .is_some_and(|st| st.state == FolderState::Error && st.error.is_some())
    })
    .await;
    // Whatever b would announce has been announced.
    net.run_for(Duration::from_secs(2)).await;
    assert!(
        b.connections()
            .iter()
            .any(|c| c.device == net.id("a") && c.connected),
        "b is not connected"
    );
    net.scan("a").await;
    assert_eq!(net.tree("a").read_string("precious.txt"), "keep me");
    assert_eq!(net.tree("a").read_string("dir/nested.txt"), "me too");
    let st = net.engine("a").folder_status(&folder).unwrap();
    assert_eq!(st.global.files, 2, "a's global view lost files: {st:#?}");
    assert!(!root.exists(), "b recreated its missing root");
    assert_eq!(
        std::fs::read(moved.join("precious.txt")).unwrap(),
        b"keep me"
    );
}

/// Three devices: while `c` is cut off from both others, `a`'s edits reach `b` only; when
/// the partition heals, `c` catches up and its own edit made meanwhile reaches everyone.
#[tokio::test(start_paused = true)]
async fn a_partitioned_device_catches_up_when_healed() {
    let mut net = MemNet::builder(&["a", "b", "c"]).build();
    net.tree("a").write("base.txt", "everyone has this");
    net.start().await;
    net.settle().await;
    net.cut("a", "c").await;
    net.cut("b", "c").await;
    net.tree("a")
        .write("during.txt", "made during the partition");
    net.scan("a").await;
    net.tree("c").write("from-c.txt", "made on the other side");
    net.scan("c").await;
    let b = net.tree("b").clone();
    net.until("b has a's edit", || b.exists("during.txt")).await;
    assert!(!net.tree("c").exists("during.txt"));
    assert!(!net.tree("a").exists("from-c.txt"));
    net.heal("a", "c").await;
    net.heal("b", "c").await;
    net.settle().await;
    for n in ["a", "b", "c"] {
        assert_eq!(
            net.tree(n).entries(),
            vec!["base.txt", "during.txt", "from-c.txt"],
            "{n}"
        );
    }
    net.assert_converged();
}

/// Latency on the links changes nothing but time: a bigger tree syncs in full.
#[tokio::test(start_paused = true)]
async fn a_slow_link_still_converges() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    net.set_latency("a", "b", Duration::from_millis(150));
    for i in 0..40 {
        net.tree("a").write(
            &format!("d{}/f{i}.bin", i % 4),
            vec![i as u8; 5_000 + i * 3_000],
        );
    }
    net.start().await;
    net.settle().await;
    assert_eq!(net.tree("b").entries().len(), 44);
    net.assert_converged();
}

/// The injection point authenticates for real: over an in-memory stream, a device that is
/// not configured is refused after the TLS handshake, on both ends.
#[tokio::test(start_paused = true)]
async fn an_unknown_device_is_refused_over_a_stream() {
    let mut net = MemNet::builder(&["a", "b"]).build();
    let mut stranger = MemNet::builder(&["x"]).build();
    net.start().await;
    stranger.start().await;
    let (io_a, io_x) = tokio::io::duplex(64 * 1024);
    let (ra, rx) = tokio::join!(
        net.engine("a")
            .attach_stream(io_a, Direction::Outbound, None),
        stranger
            .engine("x")
            .attach_stream(io_x, Direction::Inbound, None),
    );
    let x_id = stranger.id("x");
    assert!(
        matches!(ra, Err(ConnectError::UnknownDevice { device }) if device == x_id),
        "{ra:?}"
    );
    assert!(rx.is_err(), "{rx:?}");
    assert!(
        net.engine("a")
            .connections()
            .iter()
            .all(|c| c.device != x_id),
        "the stranger is listed as a connection"
    );
    // The configured pair is not disturbed.
    net.tree("a").write("after.txt", "still syncing");
    net.scan("a").await;
    net.settle().await;
    assert_eq!(net.tree("b").read_string("after.txt"), "still syncing");
}

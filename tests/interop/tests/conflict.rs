//! Concurrent edits while disconnected: after reconnecting, both sides hold the same winner
//! content and the same conflict copy (the loser's content), so neither edit is lost. Delete vs.
//! edit while disconnected: the edit survives on both sides (Syncthing 1.x's rule).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Cluster, Node, cluster};

fn connected_with(setup: impl FnOnce(&Cluster)) -> Option<Cluster> {
    let mut c = cluster()?;
    setup(&c);
    c.start();
    c.converge();
    Some(c)
}

/// Edits `rel` on `n` with `content` and an explicit mtime, then scans.
fn edit(n: &Node, rel: &str, content: &str, mtime_s: u64) {
    n.write(rel, content);
    n.set_mtime(rel, mtime_s, 0);
    n.scan();
}

fn assert_one_conflict(c: &Cluster, rel: &str, winner: &str, loser: &str) {
    assert_eq!(c.st.read(rel), winner.as_bytes());
    assert_eq!(c.sd.read(rel), winner.as_bytes());
    let (on_st, on_sd) = (c.st.conflict_copies(rel), c.sd.conflict_copies(rel));
    assert_eq!(on_st.len(), 1, "conflict copies on Syncthing: {on_st:?}");
    assert_eq!(on_st, on_sd, "conflict-copy names differ");
    let copy = std::path::Path::new(rel).with_file_name(&on_st[0]);
    assert_eq!(c.st.read(copy.to_str().unwrap()), loser.as_bytes());
}

fn concurrent_edit(newer_on_syncd: bool) {
    let Some(c) = connected_with(|c| c.st.write("doc/notes.txt", "base")) else {
        return;
    };
    c.disconnect();
    let (st_t, sd_t) = if newer_on_syncd {
        (1_700_000_000, 1_700_000_100)
    } else {
        (1_700_000_100, 1_700_000_000)
    };
    edit(&c.st, "doc/notes.txt", "edited on Syncthing", st_t);
    edit(&c.sd, "doc/notes.txt", "edited on syncd", sd_t);
    c.reconnect();
    c.converge();
    let (winner, loser) = if newer_on_syncd {
        ("edited on syncd", "edited on Syncthing")
    } else {
        ("edited on Syncthing", "edited on syncd")
    };
    assert_one_conflict(&c, "doc/notes.txt", winner, loser);
    c.assert_clean_logs(&[]);
}

#[test]
fn concurrent_edits_newer_on_syncd_win_and_syncthings_edit_is_the_same_conflict_copy_on_both() {
    concurrent_edit(true);
}

#[test]
fn concurrent_edits_newer_on_syncthing_win_and_syncds_edit_is_the_same_conflict_copy_on_both() {
    concurrent_edit(false);
}

fn delete_vs_edit(deleter_is_syncthing: bool, delete_first: bool) {
    let Some(c) = connected_with(|c| c.st.write("contested.txt", "base")) else {
        return;
    };
    c.disconnect();
    let (deleter, editor) = if deleter_is_syncthing {
        (&c.st, &c.sd)
    } else {
        (&c.sd, &c.st)
    };
    let delete = || {
        std::fs::remove_file(deleter.path("contested.txt")).unwrap();
        deleter.scan();
    };
    let edit = || {
        editor.write("contested.txt", "the edit");
        editor.scan();
    };
    if delete_first {
        delete();
        edit();
    } else {
        edit();
        delete();
    }
    c.reconnect();
    c.converge();
    assert_eq!(c.st.read("contested.txt"), b"the edit");
    assert_eq!(c.sd.read("contested.txt"), b"the edit");
    c.assert_clean_logs(&[]);
}

#[test]
fn delete_on_syncthing_first_then_edit_on_syncd_the_edit_survives_on_both() {
    delete_vs_edit(true, true);
}

#[test]
fn edit_on_syncthing_first_then_delete_on_syncd_the_edit_survives_on_both() {
    delete_vs_edit(false, false);
}

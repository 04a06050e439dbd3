//! Folder types against a stock Syncthing 1.19.2, both ways round: a receive-only side keeps
//! its local changes local (counted in `/rest/db/status`, listed by `/rest/db/localchanged`)
//! and a revert brings the global versions back without a conflict copy; a send-only side
//! applies nothing from its peer and an override makes its versions win on the peer.
//! Types are set over each side's REST API (`PATCH /rest/config/folders/ID`) after start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Cluster, FOLDER, Node, cluster, poll};
use serde_json::{Value, json};

fn set_type(n: &Node, t: &str) {
    n.send(
        "PATCH",
        &format!("/rest/config/folders/{FOLDER}"),
        &json!({ "type": t }),
    );
    poll(
        &format!("{} reports the folder as {t}", n.name()),
        || n.log_tail(),
        || (n.get_ok(&format!("/rest/config/folders/{FOLDER}"))["type"] == t).then_some(()),
    );
}

fn status(n: &Node) -> Value {
    n.get_ok(&format!("/rest/db/status?folder={FOLDER}"))
}

/// Polls until `n`'s `/rest/db/status` satisfies `cond`.
fn until_status(c: &Cluster, n: &Node, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    poll(
        what,
        || format!("{}\n{}\n{}", status(n), c.st.log_tail(), c.sd.log_tail()),
        || {
            let s = status(n);
            cond(&s).then_some(s)
        },
    )
}

fn has_conflict_copy(n: &Node) -> bool {
    n.tree().files().any(|f| f.contains(".sync-conflict-"))
}

/// Polls until `n` knows `name` only as an invalid record (what a receive-only peer
/// announces for its local changes).
fn until_known_invalid(c: &Cluster, n: &Node, name: &str) {
    poll(
        &format!("{} knows {name} as invalid", n.name()),
        || format!("{}\n{}", c.st.log_tail(), c.sd.log_tail()),
        || {
            let r = n.get(&format!("/rest/db/file?folder={FOLDER}&file={name}"))?;
            (r.status == 200 && r.body["global"]["invalid"] == true).then_some(())
        },
    );
}

#[test]
fn syncd_receive_only_keeps_local_changes_and_revert_restores_syncthings_versions() {
    let Some(mut c) = cluster() else { return };
    c.start();
    set_type(&c.st, "sendonly");
    set_type(&c.sd, "receiveonly");
    c.st.write("edit.txt", "from syncthing");
    c.st.write("delete-me.txt", "also from syncthing");
    c.converge();

    c.sd.write("edit.txt", "changed on syncd");
    c.sd.write("local-only.txt", "made on syncd");
    std::fs::remove_file(c.sd.path("delete-me.txt")).unwrap();
    c.sd.scan();
    let s = until_status(&c, &c.sd, "syncd counts its local changes", |s| {
        s["receiveOnlyTotalItems"] == 3
    });
    assert_eq!(s["receiveOnlyChangedFiles"], 2, "{s}");
    assert_eq!(s["receiveOnlyChangedDeletes"], 1, "{s}");
    assert_eq!(
        s["receiveOnlyChangedBytes"],
        ("changed on syncd".len() + "made on syncd".len()) as u64,
        "{s}"
    );
    assert_eq!(s["needTotalItems"], 0, "{s}");
    let listed =
        c.sd.get_ok(&format!("/rest/db/localchanged?folder={FOLDER}"));
    let names: Vec<&str> = listed["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["delete-me.txt", "edit.txt", "local-only.txt"]);

    // Syncthing gets them as invalid records and changes nothing.
    until_known_invalid(&c, &c.st, "local-only.txt");
    assert_eq!(c.st.read("edit.txt"), b"from syncthing");
    assert_eq!(c.st.read("delete-me.txt"), b"also from syncthing");
    assert!(!c.st.exists("local-only.txt"));
    assert_eq!(status(&c.st)["needTotalItems"], 0);

    // Revert: Syncthing's versions come back, the local-only file goes, no conflict copy.
    let r =
        c.sd.post(&format!("/rest/db/revert?folder={FOLDER}"))
            .unwrap();
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    c.converge();
    assert_eq!(c.sd.read("edit.txt"), b"from syncthing");
    assert_eq!(c.sd.read("delete-me.txt"), b"also from syncthing");
    assert!(!c.sd.exists("local-only.txt"));
    assert!(!has_conflict_copy(&c.sd), "{:?}", c.sd.tree().0.keys());
    assert_eq!(status(&c.sd)["receiveOnlyTotalItems"], 0);
    c.assert_clean_logs(&[]);
}

#[test]
fn syncd_send_only_applies_nothing_until_override_wins_on_syncthing() {
    let Some(mut c) = cluster() else { return };
    c.start();
    set_type(&c.sd, "sendonly");
    c.sd.write("x.txt", "syncd's version");
    c.converge();
    assert!(status(&c.sd).get("receiveOnlyTotalItems").is_none());

    c.st.write("x.txt", "syncthing's edit");
    c.st.write("st-new.txt", "added on syncthing");
    c.st.scan();
    let s = until_status(&c, &c.sd, "syncd needs Syncthing's changes", |s| {
        s["needFiles"] == 2
    });
    assert_eq!(s["state"], "idle", "{s}");
    assert_eq!(c.sd.read("x.txt"), b"syncd's version");
    assert!(!c.sd.exists("st-new.txt"));

    let r =
        c.sd.post(&format!("/rest/db/override?folder={FOLDER}"))
            .unwrap();
    assert_eq!((r.status, r.text.as_str()), (200, ""));
    c.converge();
    assert_eq!(c.st.read("x.txt"), b"syncd's version");
    assert!(!c.st.exists("st-new.txt"));
    assert!(!has_conflict_copy(&c.st), "{:?}", c.st.tree().0.keys());
    c.assert_clean_logs(&[]);
}

#[test]
fn syncthing_receive_only_keeps_its_changes_from_syncd_until_it_reverts() {
    let Some(mut c) = cluster() else { return };
    c.start();
    set_type(&c.st, "receiveonly");
    c.sd.write("r.txt", "from syncd");
    c.converge();

    c.st.write("r.txt", "changed on syncthing");
    c.st.write("st-only.txt", "made on syncthing");
    c.st.scan();
    until_status(&c, &c.st, "Syncthing counts its local changes", |s| {
        s["receiveOnlyTotalItems"] == 2
    });
    // syncd takes Syncthing's invalid, empty-version records and applies nothing.
    until_known_invalid(&c, &c.sd, "st-only.txt");
    assert_eq!(c.sd.read("r.txt"), b"from syncd");
    assert!(!c.sd.exists("st-only.txt"));
    assert_eq!(status(&c.sd)["needTotalItems"], 0);

    let r =
        c.st.post(&format!("/rest/db/revert?folder={FOLDER}"))
            .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    c.converge();
    assert_eq!(c.st.read("r.txt"), b"from syncd");
    assert!(!c.st.exists("st-only.txt"));
    assert!(!has_conflict_copy(&c.st), "{:?}", c.st.tree().0.keys());
    c.assert_clean_logs(&[]);
}

#[test]
fn syncthing_send_only_override_wins_on_syncd() {
    let Some(mut c) = cluster() else { return };
    c.start();
    set_type(&c.st, "sendonly");
    c.st.write("o.txt", "syncthing's version");
    c.converge();

    c.sd.write("o.txt", "syncd's edit");
    c.sd.write("sd-new.txt", "added on syncd");
    c.sd.scan();
    until_status(&c, &c.st, "Syncthing needs syncd's changes", |s| {
        s["needFiles"] == 2
    });
    assert_eq!(c.st.read("o.txt"), b"syncthing's version");
    assert!(!c.st.exists("sd-new.txt"));

    let r =
        c.st.post(&format!("/rest/db/override?folder={FOLDER}"))
            .unwrap();
    assert_eq!(r.status, 200, "{}", r.text);
    c.converge();
    assert_eq!(c.sd.read("o.txt"), b"syncthing's version");
    assert!(!c.sd.exists("sd-new.txt"));
    assert!(!has_conflict_copy(&c.sd), "{:?}", c.sd.tree().0.keys());
    c.assert_clean_logs(&[]);
}

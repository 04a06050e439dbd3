//! The REST calls of the runbook and of the web GUIs return, from syncd and from Syncthing in
//! the same run, the same keys with the same JSON types (see `endpoints` for the list).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::Value;

use common::{Cluster, cluster};

/// Objects keyed by data (device IDs, addresses) rather than by field names: their entries'
/// shapes are compared, not their keys.
const KEYED_BY_DATA: &[&str] = &[
    "connections",
    "connectionServiceStatus",
    "lastDialStatus",
    "discoveryStatus",
    "discoveryErrors",
    "remoteSequence",
    // `/rest/system/debug`: facility name → description (each program has its own).
    "facilities",
];

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences in shape between Syncthing's `st` and syncd's `sd`: keys Syncthing has that
/// syncd lacks or types differently ("missing"/"type") and keys only syncd has ("extra").
fn shape_diff(path: &str, st: &Value, sd: &Value, out: &mut Vec<String>) {
    match (st, sd) {
        (Value::Object(a), Value::Object(b)) => {
            let last = path.rsplit('.').next().unwrap_or("");
            if KEYED_BY_DATA.contains(&last) {
                if let (Some(x), Some(y)) = (a.values().next(), b.values().next()) {
                    shape_diff(&format!("{path}.<key>"), x, y, out);
                }
                return;
            }
            for (k, x) in a {
                match b.get(k) {
                    None => out.push(format!("missing in syncd: {path}.{k} ({})", type_name(x))),
                    Some(y) => shape_diff(&format!("{path}.{k}"), x, y, out),
                }
            }
            for k in b.keys().filter(|k| !a.contains_key(*k)) {
                out.push(format!("extra in syncd: {path}.{k}"));
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if let (Some(x), Some(y)) = (a.first(), b.first()) {
                shape_diff(&format!("{path}[0]"), x, y, out);
            }
        }
        // Go writes an empty (nil) slice as null: the same list, empty.
        (Value::Array(_), Value::Null) | (Value::Null, Value::Array(_)) => {}
        // An error is null until there is one (Go's nil error).
        (Value::String(_), Value::Null) if path.ends_with(".error") || path.ends_with(".err") => {}
        _ if type_name(st) != type_name(sd) => out.push(format!(
            "type differs: {path}: Syncthing {} ({st}), syncd {} ({sd})",
            type_name(st),
            type_name(sd)
        )),
        _ => {}
    }
}

fn started() -> Option<Cluster> {
    let mut c = cluster()?;
    c.st.write("a.txt", "a");
    c.st.write("d/b.txt", "b");
    c.start();
    c.converge();
    Some(c)
}

/// Every GET the web GUI (ours and Syncthing's) makes, with data behind it: each daemon is
/// asked about the other one and about a file both hold.
fn endpoints(c: &Cluster, peer_of: impl Fn(&str) -> String) -> Vec<(String, String)> {
    let _ = c;
    let fixed = [
        "/rest/system/status",
        "/rest/system/version",
        "/rest/system/connections",
        "/rest/system/discovery",
        "/rest/system/error",
        "/rest/system/log",
        "/rest/system/browse?current=/tmp/",
        "/rest/config",
        "/rest/config/insync",
        "/rest/config/restart-required",
        "/rest/config/defaults/folder",
        "/rest/config/defaults/device",
        "/rest/config/defaults/ignores",
        "/rest/db/status?folder=workspaces",
        "/rest/db/ignores?folder=workspaces",
        "/rest/db/need?folder=workspaces",
        "/rest/db/browse?folder=workspaces",
        "/rest/db/browse?folder=workspaces&levels=0",
        "/rest/db/file?folder=workspaces&file=a.txt",
        "/rest/db/localchanged?folder=workspaces",
        "/rest/stats/device",
        "/rest/stats/folder",
        "/rest/svc/random/string?length=10",
        "/rest/svc/lang",
        "/rest/events/disk?since=0&timeout=1",
        "/rest/system/debug",
    ];
    let mut out: Vec<(String, String)> = fixed
        .iter()
        .map(|p| (p.to_string(), p.to_string()))
        .collect();
    for tmpl in [
        "/rest/db/remoteneed?folder=workspaces&device={peer}",
        "/rest/db/completion?folder=workspaces&device={peer}",
        "/rest/svc/deviceid?id={peer}",
    ] {
        out.push((
            tmpl.replace("{peer}", &peer_of("st")),
            tmpl.replace("{peer}", &peer_of("sd")),
        ));
    }
    out
}

/// Each endpoint's shape differences, from both daemons in the same cluster and run.
fn diffs_of(c: &Cluster) -> Vec<String> {
    let peer_of = |who: &str| {
        if who == "st" {
            c.sd.id.clone()
        } else {
            c.st.id.clone()
        }
    };
    let mut out = Vec::new();
    for (st_path, sd_path) in endpoints(c, peer_of) {
        let st = c.st.get_ok(&st_path);
        let sd = c.sd.get(&sd_path).expect("syncd answers");
        if sd.status != 200 {
            out.push(format!(
                "status differs: {sd_path}: Syncthing 200, syncd {} ({})",
                sd.status,
                sd.text.trim()
            ));
            continue;
        }
        let mut d = Vec::new();
        shape_diff(&st_path, &st, &sd.body, &mut d);
        out.extend(d);
    }
    eprintln!("{} differences: {out:#?}", out.len());
    out
}

#[test]
fn every_syncthing_key_is_in_syncds_reply_with_the_same_json_type() {
    let Some(c) = started() else { return };
    let bad: Vec<String> = diffs_of(&c)
        .into_iter()
        .filter(|d| !d.starts_with("extra"))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    c.assert_clean_logs(&[]);
}

#[test]
fn syncd_replies_have_no_keys_syncthing_1_19_lacks() {
    let Some(c) = started() else { return };
    let extra: Vec<String> = diffs_of(&c)
        .into_iter()
        .filter(|d| d.starts_with("extra"))
        .collect();
    assert!(extra.is_empty(), "{extra:#?}");
}

/// "Recent changes": once a client has asked for them (the GUI does when it opens), a file
/// syncd receives from Syncthing is in its disk events, as a remote change made by
/// Syncthing's device.
#[test]
fn files_received_from_syncthing_are_recent_remote_changes() {
    let Some(c) = started() else { return };
    let first = c.sd.get_ok("/rest/events/disk?since=0&timeout=0");
    let since = first
        .as_array()
        .and_then(|a| a.last())
        .and_then(|e| e["id"].as_u64())
        .unwrap_or(0);
    c.st.write("new.txt", "new");
    c.st.scan();
    c.converge();
    let st_short: String = c.st.id.chars().take(7).collect();
    let mut events = Vec::new();
    let found = (0..20).any(|_| {
        let got =
            c.sd.get_ok(&format!("/rest/events/disk?since={since}&timeout=1"));
        events = got.as_array().cloned().unwrap_or_default();
        events.iter().any(|e| {
            e["type"] == "RemoteChangeDetected"
                && e["data"]["path"] == "new.txt"
                && e["data"]["action"] == "modified"
                && e["data"]["type"] == "file"
                && e["data"]["folder"] == "workspaces"
                && e["data"]["modifiedBy"] == st_short.as_str()
        })
    });
    assert!(found, "no RemoteChangeDetected for new.txt: {events:#?}");
    // The same keys and types as Syncthing's own disk events.
    let st_events = c.st.get_ok("/rest/events/disk?since=0&timeout=1");
    let mut diffs = Vec::new();
    if let (Some(st_e), Some(sd_e)) = (
        st_events.as_array().and_then(|a| a.first()),
        events.iter().find(|e| e["data"]["path"] == "new.txt"),
    ) {
        shape_diff("events/disk[0]", st_e, sd_e, &mut diffs);
    } else {
        diffs.push("Syncthing listed no disk event".into());
    }
    assert!(diffs.is_empty(), "{diffs:#?}");
    // The default event stream leaves them out, as Syncthing's does.
    let all = c.sd.get_ok("/rest/events?since=0&timeout=1");
    assert!(
        all.as_array()
            .expect("an array")
            .iter()
            .all(|e| e["type"] != "RemoteChangeDetected" && e["type"] != "LocalChangeDetected")
    );
}

/// Upgrades and usage reporting, which syncd does not have, answer as Syncthing built
/// without them (Debian's 1.19.2): the same status and text for the upgrade check and
/// upgrade, and a usage-report preview with the same top-level keys and JSON types (with
/// files in the folder and a connection, so the keys Syncthing omits when empty are there).
#[test]
fn upgrade_and_usage_report_answer_as_syncthing_without_those_features() {
    let Some(c) = started() else { return };
    let st = c.st.get("/rest/system/upgrade").expect("Syncthing answers");
    let sd = c.sd.get("/rest/system/upgrade").expect("syncd answers");
    assert_eq!(
        (sd.status, sd.text.trim()),
        (st.status, st.text.trim()),
        "GET /rest/system/upgrade"
    );
    // POST only where the check said there is no upgrader: it must not upgrade anything.
    if st.text.trim() == "upgrade unsupported" {
        let st =
            c.st.post("/rest/system/upgrade")
                .expect("Syncthing answers");
        let sd = c.sd.post("/rest/system/upgrade").expect("syncd answers");
        assert_eq!(
            (sd.status, sd.text.trim()),
            (st.status, st.text.trim()),
            "POST /rest/system/upgrade"
        );
    }
    let st = c.st.get_ok("/rest/svc/report");
    let sd = c.sd.get_ok("/rest/svc/report");
    let shape = |v: &Value| -> Vec<(String, &'static str)> {
        let mut k: Vec<(String, &'static str)> = v
            .as_object()
            .expect("an object")
            .iter()
            .map(|(k, v)| (k.clone(), type_name(v)))
            .collect();
        k.sort();
        k
    };
    // `restartOnWakeup` is there only while it is on (`omitempty`); syncd has no such
    // option, so it is always off.
    let st_shape: Vec<_> = shape(&st)
        .into_iter()
        .filter(|(k, _)| k != "restartOnWakeup")
        .collect();
    assert_eq!(shape(&sd), st_shape);
}

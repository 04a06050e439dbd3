//! Devices and folders that ask to join, between real syncd daemons and a stock Syncthing
//! 1.19.2 on loopback: pending devices and folders shown on each side (with the names from
//! Hello and ClusterConfig), accepted through syncd's CLI or Syncthing's REST API, then
//! synced; auto-accept from each side; an introducer in each role, with its removals.
//!
//! The JSON of the pending lists is compared with what Syncthing answers for the same
//! situation in the same run (keys and types). With `SYNCD_WRITE_FIXTURES=<dir>` the
//! Syncthing replies are written there (how `crates/syncd/tests/fixtures/syncthing-1.19.2/
//! pending_*.json` were captured).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use syncd_testkit::SyncthingConfig;

use common::{Kind, Node, ST_API_KEY, poll, syncd_binary};

/// A temp root for the nodes of one test, and the Syncthing binary.
struct Env {
    root: tempfile::TempDir,
    st_bin: PathBuf,
}

fn env() -> Option<Env> {
    let st_bin = syncd_testkit::syncthing_or_skip()?;
    let root = tempfile::Builder::new()
        .prefix("syncd-pending-")
        .tempdir()
        .unwrap();
    Some(Env { root, st_bin })
}

impl Env {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// A folder root with its marker and one file.
    fn folder_with(&self, rel: &str, file: &str, data: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.join(".stfolder")).unwrap();
        std::fs::write(p.join(file), data).unwrap();
        p
    }

    /// A syncd home made with its CLI, named `name`, knowing nobody.
    fn syncd(&self, name: &str) -> Node {
        let home = self.path(&format!("{name}-home"));
        let mut node = Node::new(
            Kind::Syncd,
            home.clone(),
            self.path(name),
            String::new(),
            syncd_testkit::free_port().unwrap(),
            syncd_testkit::free_port().unwrap(),
            String::new(),
            syncd_binary(),
        );
        cli(&node, &["generate", "--no-default-folder"]);
        node.id = cli(&node, &["device-id"]).trim().to_owned();
        node.api_key = cli(&node, &["api-key"]).trim().to_owned();
        let cfg = home.join("config.toml");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let named: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with("device_name = ") {
                    format!("device_name = \"{name}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect();
        std::fs::write(&cfg, named.join("\n") + "\n").unwrap();
        node
    }

    /// A Syncthing home named `name` whose one peer is `peer` (ID, name, address), sharing
    /// `folder` (at `<root>/<name>-<folder>`, holding `<folder>.txt`) with it.
    fn syncthing(&self, name: &str, peer: (&str, &str, &str), folder: &str) -> Node {
        let home = self.path(&format!("{name}-home"));
        std::fs::create_dir_all(&home).unwrap();
        let id = syncd_testkit::generate(&self.st_bin, &home).unwrap();
        let dir = self.folder_with(
            &format!("{name}-{folder}"),
            &format!("{folder}.txt"),
            &format!("{folder} from {name}"),
        );
        let (listen, gui) = (
            syncd_testkit::free_port().unwrap(),
            syncd_testkit::free_port().unwrap(),
        );
        SyncthingConfig::new(&id, peer.0, folder, &dir)
            .ports(listen, gui)
            .api_key(ST_API_KEY)
            .names(name, peer.1)
            .peer_address(peer.2)
            .reconnection_interval_s(1)
            .write(&home)
            .unwrap();
        Node::new(
            Kind::Syncthing,
            home,
            dir,
            id,
            listen,
            gui,
            ST_API_KEY.to_owned(),
            self.st_bin.clone(),
        )
    }
}

/// Runs the syncd CLI against `node`'s home; panics on failure.
fn cli(node: &Node, args: &[&str]) -> String {
    let out = Command::new(syncd_binary())
        .arg("--home")
        .arg(&node.home)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "syncd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn addr(n: &Node) -> String {
    format!("tcp://127.0.0.1:{}", n.listen_port)
}

fn wait_file(n: &Node, path: &Path, want: &str) {
    poll(
        &format!("{} has {}", n.name(), path.display()),
        || n.log_tail(),
        || (std::fs::read_to_string(path).ok()? == want).then_some(()),
    );
}

fn wait_connected(a: &Node, b: &Node) {
    poll(
        &format!("{} and {} connected", a.name(), b.name()),
        || format!("{}\n{}", a.log_tail(), b.log_tail()),
        || (a.sees_connected(&b.id) && b.sees_connected(&a.id)).then_some(()),
    );
}

fn pending_devices(n: &Node) -> Value {
    n.get_ok("/rest/cluster/pending/devices")
}

fn pending_folders(n: &Node) -> Value {
    n.get_ok("/rest/cluster/pending/folders")
}

/// The JSON type structure of `v`: objects keep their keys, leaves become type names;
/// `dynamic` objects (keyed by IDs) become `{"*": shape of their first value}`.
fn shape(v: &Value, dynamic_depths: &[usize], depth: usize) -> Value {
    match v {
        Value::Object(m) if dynamic_depths.contains(&depth) => match m.values().next() {
            Some(first) => json!({"*": shape(first, dynamic_depths, depth + 1)}),
            None => json!({}),
        },
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), shape(x, dynamic_depths, depth + 1)))
                .collect(),
        ),
        Value::Array(a) => json!([a.first().map(|x| shape(x, dynamic_depths, depth + 1))]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

fn write_fixture(name: &str, v: &Value) {
    if let Some(dir) = std::env::var_os("SYNCD_WRITE_FIXTURES") {
        let p = PathBuf::from(dir).join(name);
        std::fs::write(&p, serde_json::to_string_pretty(v).unwrap() + "\n").unwrap();
    }
}

/// The events of `types` that `n` holds (Syncthing keeps its default event mask from start).
fn events_of(n: &Node, types: &[&str]) -> Vec<Value> {
    n.get_ok("/rest/events?since=0&timeout=1")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().is_some_and(|t| types.contains(&t)))
        .cloned()
        .collect()
}

#[test]
fn syncthing_asks_syncd_accepts_with_the_cli_then_syncd_offers_and_syncthing_accepts() {
    let Some(env) = env() else { return };
    let mut sd = env.syncd("sd-a");
    let mut st = env.syncthing("st-a", (&sd.id, "sd-a", &addr(&sd)), "from-st");
    sd.start();
    st.start();

    // Syncthing dials syncd, which does not know it: pending, with Syncthing's name.
    let p = poll(
        "syncd lists syncthing as pending",
        || sd.log_tail(),
        || {
            let p = pending_devices(&sd);
            p.get(&st.id).is_some().then_some(p)
        },
    );
    assert_eq!(p[&st.id]["name"], "st-a");
    assert!(
        p[&st.id]["address"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{p}"
    );
    let text = cli(&sd, &["pending"]);
    assert!(
        text.contains(&format!("syncd device accept {}", st.id)),
        "{text}"
    );
    let status = cli(&sd, &["status"]);
    assert!(status.contains("syncd device accept"), "{status}");

    // Accepted through the CLI: the running daemon applies it, Syncthing's next dial connects.
    let out = cli(&sd, &["device", "accept", &st.id]);
    assert!(out.contains("applied to the running daemon"), "{out}");
    wait_connected(&sd, &st);
    assert_eq!(pending_devices(&sd), json!({}));
    let dev = sd.get_ok(&format!("/rest/config/devices/{}", st.id));
    assert_eq!(dev["name"], "st-a", "named as it introduced itself");

    // Its folder is offered: pending on syncd, accepted through the CLI, synced.
    let offered = poll(
        "syncd lists the offered folder",
        || sd.log_tail(),
        || {
            let p = pending_folders(&sd);
            p.get("from-st").is_some().then_some(p)
        },
    );
    assert_eq!(offered["from-st"]["offeredBy"][&st.id]["label"], "from-st");
    let json_list: Value = serde_json::from_str(&cli(&sd, &["pending", "--json"])).unwrap();
    assert!(json_list["folders"]["from-st"].is_object(), "{json_list}");
    let target = env.path("sd-from-st");
    cli(
        &sd,
        &[
            "folder",
            "accept",
            "from-st",
            "--from",
            &st.id,
            "--path",
            target.to_str().unwrap(),
        ],
    );
    wait_file(&sd, &target.join("from-st.txt"), "from-st from st-a");
    assert_eq!(pending_folders(&sd), json!({}));

    // syncd offers a folder: Syncthing lists it as pending, with our label.
    let mine = env.folder_with("sd-to-st", "to-st.txt", "made on syncd");
    cli(
        &sd,
        &[
            "folder",
            "add",
            "to-st",
            mine.to_str().unwrap(),
            "--device",
            &st.id,
            "--label",
            "To ST",
        ],
    );
    let theirs = poll(
        "syncthing lists syncd's folder as pending",
        || st.log_tail(),
        || {
            let p = pending_folders(&st);
            p.get("to-st").is_some().then_some(p)
        },
    );
    assert_eq!(theirs["to-st"]["offeredBy"][&sd.id]["label"], "To ST");
    assert_eq!(
        shape(&offered, &[0, 2], 0),
        shape(&theirs, &[0, 2], 0),
        "pending folders: syncd {offered} vs syncthing {theirs}"
    );
    write_fixture("pending_folders.json", &theirs);
    let st_events = events_of(&st, &["PendingFoldersChanged", "FolderRejected"]);
    for kind in ["PendingFoldersChanged", "FolderRejected"] {
        let theirs = st_events.iter().find(|e| e["type"] == kind).unwrap();
        let ours = events_of(&sd, &[kind]);
        let ours = ours
            .iter()
            .find(|e| kind.ends_with("Rejected") || e["data"].get("added").is_some())
            .unwrap_or_else(|| panic!("syncd emitted no {kind}"));
        assert_eq!(
            shape(&ours["data"], &[], 0),
            shape(&theirs["data"], &[], 0),
            "{kind}: syncd {ours} vs syncthing {theirs}"
        );
        write_fixture(&format!("event_{kind}.json"), theirs);
    }

    // Accepted on Syncthing: shared back, synced.
    let st_dir = env.path("st-to-st");
    st.send(
        "POST",
        "/rest/config/folders",
        &json!({"id": "to-st", "label": "To ST", "path": st_dir.to_str().unwrap(),
                "devices": [{"deviceID": sd.id}]}),
    );
    wait_file(&st, &st_dir.join("to-st.txt"), "made on syncd");
    poll(
        "syncthing's pending folder cleared",
        || st.log_tail(),
        || (pending_folders(&st) == json!({})).then_some(()),
    );
    sd.stop();
    st.stop();
}

#[test]
fn syncd_asks_syncthing_accepts_then_each_side_auto_accepts_the_others_folder() {
    let Some(env) = env() else { return };
    let mut sd = env.syncd("sd-b");
    // Syncthing's one peer is someone else: it does not know syncd.
    let stranger = syncd_types::DeviceId::from_slice(&[9; 32])
        .unwrap()
        .to_string();
    let mut st = env.syncthing("st-b", (&stranger, "nobody", "dynamic"), "unused");
    cli(
        &sd,
        &[
            "device",
            "add",
            &st.id,
            "--name",
            "st-b",
            "--address",
            &addr(&st),
        ],
    );
    sd.start();
    st.start();

    // syncd dials: Syncthing lists syncd as pending, with the name from syncd's Hello.
    let theirs = poll(
        "syncthing lists syncd as pending",
        || format!("{}\n{}", st.log_tail(), sd.log_tail()),
        || {
            let p = pending_devices(&st);
            p.get(&sd.id).is_some().then_some(p)
        },
    );
    assert_eq!(theirs[&sd.id]["name"], "sd-b", "{theirs}");
    write_fixture("pending_devices.json", &theirs);
    let st_events = events_of(&st, &["PendingDevicesChanged", "DeviceRejected"]);
    for e in &st_events {
        write_fixture(&format!("event_{}.json", e["type"].as_str().unwrap()), e);
    }
    // The same shapes from syncd, for a device that syncd does not know (a second syncd).
    let mut other = env.syncd("sd-b2");
    cli(
        &other,
        &[
            "device",
            "add",
            &sd.id,
            "--name",
            "sd-b",
            "--address",
            &addr(&sd),
        ],
    );
    other.start();
    let ours = poll(
        "syncd lists the other syncd as pending",
        || sd.log_tail(),
        || {
            let p = pending_devices(&sd);
            p.get(&other.id).is_some().then_some(p)
        },
    );
    assert_eq!(ours[&other.id]["name"], "sd-b2");
    assert_eq!(
        shape(&ours, &[0], 0),
        shape(&theirs, &[0], 0),
        "pending devices: syncd {ours} vs syncthing {theirs}"
    );
    for kind in ["PendingDevicesChanged", "DeviceRejected"] {
        let t = st_events.iter().find(|e| e["type"] == kind).unwrap();
        let o = events_of(&sd, &[kind]);
        let o = o
            .iter()
            .find(|e| kind.ends_with("Rejected") || e["data"].get("added").is_some())
            .unwrap_or_else(|| panic!("syncd emitted no {kind}"));
        assert_eq!(
            shape(&o["data"], &[], 0),
            shape(&t["data"], &[], 0),
            "{kind}: syncd {o} vs syncthing {t}"
        );
    }
    // Ignored through the CLI: gone, and not listed again.
    cli(&sd, &["device", "ignore", &other.id]);
    assert!(pending_devices(&sd).get(&other.id).is_none());
    let cfg = sd.get_ok("/rest/config");
    assert_eq!(
        cfg["remoteIgnoredDevices"][0]["deviceID"],
        other.id.as_str()
    );
    // Never again, across a restart: the other syncd dials afresh and is refused unlisted.
    other.stop();
    sd.stop();
    let other_id = other.id.clone();
    let refusals = |n: &Node| {
        n.log_text()
            .lines()
            .filter(|l| {
                l.contains("refusing connection from unknown device") && l.contains(&other_id)
            })
            .count()
    };
    let before = refusals(&sd);
    sd.start();
    other.start();
    poll(
        "the ignored device dials again and is refused",
        || sd.log_tail(),
        || (refusals(&sd) > before).then_some(()),
    );
    assert!(
        pending_devices(&sd).get(&other.id).is_none(),
        "an ignored device is not pending again"
    );
    let announced = events_of(&sd, &["PendingDevicesChanged", "DeviceRejected"]);
    assert!(announced.is_empty(), "nor announced: {announced:?}");
    other.stop();

    // Syncthing accepts (adds syncd, auto-accepting its folders under its default path).
    let st_auto = env.path("st-auto");
    std::fs::create_dir_all(&st_auto).unwrap();
    st.send(
        "PATCH",
        "/rest/config/defaults/folder",
        &json!({"path": st_auto.to_str().unwrap()}),
    );
    st.send(
        "POST",
        "/rest/config/devices",
        &json!({"deviceID": sd.id, "name": "sd-b", "addresses": ["dynamic"], "autoAcceptFolders": true}),
    );
    wait_connected(&sd, &st);
    poll(
        "syncthing's pending device cleared",
        || st.log_tail(),
        || pending_devices(&st).get(&sd.id).is_none().then_some(()),
    );

    // syncd shares a folder: Syncthing accepts it by itself.
    let mine = env.folder_with("sd-share", "share.txt", "from syncd");
    cli(
        &sd,
        &[
            "folder",
            "add",
            "sd-share",
            mine.to_str().unwrap(),
            "--device",
            &st.id,
            "--label",
            "Shared From syncd",
        ],
    );
    wait_file(
        &st,
        &st_auto.join("Shared From syncd/share.txt"),
        "from syncd",
    );

    // A folder Syncthing offers is ignored through the CLI: gone from the list, kept in the
    // device's ignoredFolders, and never accepted, not even by auto-accept below.
    let ignored_dir = env.folder_with("st-ignored", "no.txt", "not for syncd");
    st.send(
        "POST",
        "/rest/config/folders",
        &json!({"id": "st-ignored", "label": "Not Wanted", "path": ignored_dir.to_str().unwrap(),
                "devices": [{"deviceID": sd.id}]}),
    );
    poll(
        "syncd lists the folder to ignore",
        || sd.log_tail(),
        || pending_folders(&sd).get("st-ignored").map(|_| ()),
    );
    let out = cli(&sd, &["folder", "ignore", "st-ignored", "--from", &st.id]);
    assert!(out.contains("applied to the running daemon"), "{out}");
    assert!(pending_folders(&sd).get("st-ignored").is_none());
    let dev = sd.get_ok(&format!("/rest/config/devices/{}", st.id));
    assert_eq!(dev["ignoredFolders"][0]["id"], "st-ignored", "{dev}");
    assert_eq!(dev["ignoredFolders"][0]["label"], "Not Wanted", "{dev}");

    // syncd auto-accepts Syncthing's folders under its default path.
    let sd_auto = env.path("sd-auto");
    sd.send(
        "PUT",
        "/rest/config/defaults/folder",
        &json!({"path": sd_auto.to_str().unwrap()}),
    );
    sd.send(
        "PATCH",
        &format!("/rest/config/devices/{}", st.id),
        &json!({"autoAcceptFolders": true}),
    );
    assert_eq!(
        sd.get_ok(&format!("/rest/config/devices/{}", st.id))["autoAcceptFolders"],
        true
    );
    let st_dir = env.folder_with("st-share", "made.txt", "made on syncthing");
    st.send(
        "POST",
        "/rest/config/folders",
        &json!({"id": "st-share", "label": "Made On ST", "path": st_dir.to_str().unwrap(),
                "devices": [{"deviceID": sd.id}]}),
    );
    wait_file(
        &sd,
        &sd_auto.join("Made On ST/made.txt"),
        "made on syncthing",
    );
    assert!(
        !sd_auto.join("Not Wanted").exists()
            && sd.get("/rest/config/folders/st-ignored").unwrap().status == 404,
        "an ignored folder is not auto-accepted"
    );
    let saved = std::fs::read_to_string(sd.home.join("config.toml")).unwrap();
    assert!(
        saved.contains("st-share") && saved.contains("Made On ST"),
        "the accepted folder is saved in the config file:\n{saved}"
    );
    sd.stop();
    st.stop();
}

/// Syncthing is the introducer of two syncd daemons: each learns the other, they connect;
/// when Syncthing stops sharing with one, the other drops it.
#[test]
fn syncthing_introduces_two_syncd_daemons_and_takes_one_away() {
    let Some(env) = env() else { return };
    let mut x = env.syncd("sd-x");
    let mut y = env.syncd("sd-y");
    let mut hub = env.syncthing("st-hub", (&x.id, "sd-x", &addr(&x)), "team");
    for n in [&x, &y] {
        let dir = env.folder_with(
            &format!("{}-team", n.home.file_name().unwrap().to_str().unwrap()),
            &format!("{}.txt", n.id[..7].to_lowercase()),
            "hello",
        );
        cli(
            n,
            &[
                "device",
                "add",
                &hub.id,
                "--name",
                "st-hub",
                "--address",
                &addr(&hub),
            ],
        );
        cli(
            n,
            &[
                "folder",
                "add",
                "team",
                dir.to_str().unwrap(),
                "--device",
                &hub.id,
            ],
        );
    }
    x.start();
    y.start();
    for n in [&x, &y] {
        n.send(
            "PATCH",
            &format!("/rest/config/devices/{}", hub.id),
            &json!({"introducer": true}),
        );
    }
    hub.start();
    hub.send(
        "POST",
        "/rest/config/devices",
        &json!({"deviceID": y.id, "name": "sd-y", "addresses": [addr(&y)]}),
    );
    let mut team = hub.get_ok("/rest/config/folders/team");
    team["devices"]
        .as_array_mut()
        .unwrap()
        .push(json!({"deviceID": y.id}));
    hub.send("PUT", "/rest/config/folders/team", &team);

    // x learns y (and y learns x) from the introducer, and they connect directly.
    for (n, other) in [(&x, &y), (&y, &x)] {
        let d = poll(
            &format!("{} introduced to {}", other.id, n.id),
            || n.log_tail(),
            || {
                let r = n.get(&format!("/rest/config/devices/{}", other.id))?;
                (r.status == 200).then_some(r.body)
            },
        );
        assert_eq!(d["introducedBy"], hub.id.as_str(), "{d}");
        let f = n.get_ok("/rest/config/folders/team");
        let share = f["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["deviceID"] == other.id.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("team not shared with the introduced device: {f}"));
        assert_eq!(share["introducedBy"], hub.id.as_str());
    }
    wait_connected(&x, &y);
    let from_x = format!("{}.txt", x.id[..7].to_lowercase());
    wait_file(&y, &env.path(&format!("sd-y-home-team/{from_x}")), "hello");

    // The introducer stops sharing with y: x removes y (share and device).
    let mut team = hub.get_ok("/rest/config/folders/team");
    team["devices"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["deviceID"] != y.id.as_str());
    hub.send("PUT", "/rest/config/folders/team", &team);
    poll(
        "x drops y when the introducer does",
        || x.log_tail(),
        || {
            let r = x.get(&format!("/rest/config/devices/{}", y.id))?;
            (r.status == 404).then_some(())
        },
    );
    let f = x.get_ok("/rest/config/folders/team");
    assert!(
        !f["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["deviceID"] == y.id.as_str()),
        "{f}"
    );
    for mut n in [x, y, hub] {
        n.stop();
    }
}

/// syncd is the introducer: the Syncthing it shares a folder with learns the other syncd
/// (with `introducedBy`), and drops it when syncd stops sharing with it.
#[test]
fn syncd_introduces_a_syncd_to_syncthing_and_takes_it_away() {
    let Some(env) = env() else { return };
    let mut hub = env.syncd("sd-hub");
    let mut x = env.syncd("sd-x2");
    let mut st = env.syncthing("st-in", (&hub.id, "sd-hub", &addr(&hub)), "team");
    let hub_dir = env.folder_with("hub-team", "hub.txt", "from the hub");
    let x_dir = env.folder_with("x-team", "x.txt", "from x");
    cli(
        &hub,
        &[
            "device",
            "add",
            &st.id,
            "--name",
            "st-in",
            "--address",
            &addr(&st),
        ],
    );
    cli(
        &hub,
        &[
            "device",
            "add",
            &x.id,
            "--name",
            "sd-x2",
            "--address",
            &addr(&x),
        ],
    );
    cli(
        &hub,
        &[
            "folder",
            "add",
            "team",
            hub_dir.to_str().unwrap(),
            "--device",
            &st.id,
            "--device",
            &x.id,
        ],
    );
    cli(
        &x,
        &[
            "device",
            "add",
            &hub.id,
            "--name",
            "sd-hub",
            "--address",
            &addr(&hub),
        ],
    );
    cli(
        &x,
        &[
            "folder",
            "add",
            "team",
            x_dir.to_str().unwrap(),
            "--device",
            &hub.id,
        ],
    );
    hub.start();
    x.start();
    x.send(
        "PATCH",
        &format!("/rest/config/devices/{}", hub.id),
        &json!({"introducer": true}),
    );
    // Syncthing applies an introducer's ClusterConfig as it arrives; it takes a changed
    // introducer flag only from the next one, so the flag is in its config from the start.
    let xml = st.home.join("config.xml");
    let text = std::fs::read_to_string(&xml).unwrap();
    let entry = format!(
        "<device id=\"{}\" name=\"sd-hub\" compression=\"metadata\" introducer=\"false\"",
        hub.id
    );
    assert!(text.contains(&entry), "{text}");
    std::fs::write(
        &xml,
        text.replace(
            &entry,
            &entry.replace("introducer=\"false\"", "introducer=\"true\""),
        ),
    )
    .unwrap();
    st.start();
    let d = poll(
        "syncthing learns x from syncd",
        || format!("{}\n{}", st.log_tail(), hub.log_tail()),
        || {
            let r = st.get(&format!("/rest/config/devices/{}", x.id))?;
            (r.status == 200).then_some(r.body)
        },
    );
    assert_eq!(d["introducedBy"], hub.id.as_str(), "{d}");
    assert_eq!(d["name"], "sd-x2", "{d}");
    wait_connected(&st, &x);
    wait_file(&st, &st.folder.join("x.txt"), "from x");

    // syncd stops sharing with x: Syncthing drops x.
    cli(
        &hub,
        &[
            "folder",
            "add",
            "team",
            hub_dir.to_str().unwrap(),
            "--device",
            &st.id,
        ],
    );
    poll(
        "syncthing drops x when syncd does",
        || st.log_tail(),
        || {
            let r = st.get(&format!("/rest/config/devices/{}", x.id))?;
            (r.status == 404).then_some(())
        },
    );
    for mut n in [hub, x, st] {
        n.stop();
    }
}

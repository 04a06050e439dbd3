//! Global discovery end to end: Debian's `stdiscosrv` on 127.0.0.1 (started here, pinned by
//! `?id=`), devices configured only as `dynamic`, and real syncd daemons and a stock
//! Syncthing 1.19.2 that find each other through it and sync a file. Nothing else is
//! contacted: every config names only this server, and local discovery is off.
//!
//! A server remembers "not found" for a minute or more (`Retry-After`), and so do both
//! clients, so each test starts the device to be found first and waits until the server
//! knows it (`syncd lookup`), then starts the one that looks it up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use syncd_testkit::{Discosrv, SyncthingConfig, Versioning};

/// The test's own discovery server, or `None` (skip) when `stdiscosrv` is not installed.
fn discosrv(dir: &Path) -> Option<Discosrv> {
    let Some(bin) = syncd_testkit::discosrv_on_path() else {
        if std::env::var("SYNCD_REQUIRE_SYNCTHING").as_deref() == Ok("1") {
            panic!(
                "SYNCD_REQUIRE_SYNCTHING=1 but no `stdiscosrv` on PATH (apt-get install syncthing-discosrv)"
            );
        }
        eprintln!("SKIPPED: `stdiscosrv` not found (apt-get install -y syncthing-discosrv)");
        return None;
    };
    std::fs::create_dir_all(dir).unwrap();
    Some(Discosrv::start(&bin, dir).unwrap())
}

fn sd(home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(syncd_binary())
        .arg("--home")
        .arg(home)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn sd_ok(home: &Path, args: &[&str]) -> String {
    let (ok, text) = sd(home, args);
    assert!(ok, "syncd {args:?}: {text}");
    text.trim().to_owned()
}

/// A syncd home whose config announces to and looks up at `server` only (local discovery
/// off), with discovery on when started.
fn syncd_node(root: &Path, name: &str, server: &str) -> Node {
    let home = root.join(format!("{name}-home"));
    let folder = root.join(name).join(FOLDER);
    sd_ok(&home, &["generate", "--no-default-folder"]);
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "global_announce_servers = [\"default\"]",
            &format!("global_announce_servers = [\"{server}\"]"),
        )
        .replace(
            "local_announce_enabled = true",
            "local_announce_enabled = false",
        );
    assert!(text.contains(server) && text.contains("local_announce_enabled = false"));
    std::fs::write(&path, text).unwrap();
    let id = sd_ok(&home, &["device-id"]);
    let key = sd_ok(&home, &["api-key"]);
    let port = || syncd_testkit::free_port().unwrap();
    let mut node = Node::new(
        Kind::Syncd,
        home,
        folder,
        id,
        port(),
        port(),
        key,
        syncd_binary(),
    );
    node.discovery = true;
    node
}

/// `a` shares the folder with `b`, which it knows only as `dynamic` (no `--address`).
fn share(a: &Node, b_id: &str) {
    sd_ok(&a.home, &["device", "add", b_id, "--name", "peer"]);
    sd_ok(
        &a.home,
        &[
            "folder",
            "add",
            FOLDER,
            a.folder.to_str().unwrap(),
            "--device",
            b_id,
        ],
    );
    let cfg = std::fs::read_to_string(a.home.join("config.toml")).unwrap();
    assert!(cfg.contains("addresses = [\"dynamic\"]"), "{cfg}");
}

/// Waits until the server knows `id` (asked through `syncd lookup` with `asker`'s config).
fn wait_announced(asker: &Path, id: &str, srv: &Discosrv) {
    poll(
        &format!("the discovery server knows {id}"),
        || srv.log_text(),
        || sd(asker, &["lookup", id]).0.then_some(()),
    );
}

fn wait_file(node: &Node, rel: &str, want: &[u8]) {
    poll(
        &format!("{} has {rel}", node.name()),
        || node.log_tail(),
        || (node.exists(rel) && node.read(rel) == want).then_some(()),
    );
}

fn discovered(node: &Node, id: &str) -> Vec<String> {
    node.get_ok("/rest/system/discovery")[id]["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn two_syncd_daemons_with_dynamic_addresses_find_each_other_and_sync() {
    let root = tempfile::tempdir().unwrap();
    let Some(srv) = discosrv(&root.path().join("disco")) else {
        return;
    };
    let mut a = syncd_node(root.path(), "a", &srv.url());
    let mut b = syncd_node(root.path(), "b", &srv.url());
    share(&a, &b.id);
    share(&b, &a.id);
    a.start();
    wait_announced(&b.home, &a.id, &srv);
    let status = a.get_ok("/rest/system/status");
    let key = format!("global@https://127.0.0.1:{}/v2/", srv.port);
    assert_eq!(status["discoveryEnabled"], true, "{status}");
    assert!(
        status["discoveryStatus"][&key]["error"].is_null(),
        "{status}"
    );
    b.start();
    poll(
        "the two syncd daemons connect",
        || format!("{}\n{}", a.log_tail(), b.log_tail()),
        || (a.sees_connected(&b.id) && b.sees_connected(&a.id)).then_some(()),
    );
    // B dialled what the server told it: A's announced host name and port.
    assert_eq!(
        discovered(&b, &a.id),
        [format!("tcp://localhost:{}", a.listen_port)]
    );
    let (ok, text) = sd(&b.home, &["status"]);
    assert!(
        ok && text.contains("found by global@https://127.0.0.1"),
        "{text}"
    );
    a.write("hello.txt", b"found through stdiscosrv");
    a.scan();
    wait_file(&b, "hello.txt", b"found through stdiscosrv");
}

/// A Syncthing home whose config knows `peer` only as `dynamic` and uses only `server`.
fn syncthing_node(root: &Path, peer: &str, server: &str) -> Option<Node> {
    let bin = syncd_testkit::syncthing_or_skip()?;
    let home = root.join("st-home");
    let folder = root.join("st").join(FOLDER);
    std::fs::create_dir_all(folder.join(syncd_types::names::MARKER)).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let id = syncd_testkit::generate(&bin, &home).unwrap();
    let port = || syncd_testkit::free_port().unwrap();
    let (listen, gui) = (port(), port());
    SyncthingConfig::new(&id, peer, FOLDER, &folder)
        .ports(listen, gui)
        .api_key(ST_API_KEY)
        .global_discovery(server)
        .reconnection_interval_s(2)
        .versioning(Versioning::Empty)
        .write(&home)
        .unwrap();
    Some(Node::new(
        Kind::Syncthing,
        home,
        folder,
        id,
        listen,
        gui,
        ST_API_KEY.to_owned(),
        bin,
    ))
}

#[test]
fn syncthing_finds_syncd_through_the_discovery_server() {
    let root = tempfile::tempdir().unwrap();
    let Some(srv) = discosrv(&root.path().join("disco")) else {
        return;
    };
    let mut d = syncd_node(root.path(), "sd", &srv.url());
    let Some(mut st) = syncthing_node(root.path(), &d.id, &srv.url()) else {
        return;
    };
    share(&d, &st.id);
    d.start();
    wait_announced(&d.home, &d.id, &srv);
    st.start();
    poll(
        "syncthing connects to syncd",
        || format!("{}\n{}", st.log_tail(), d.log_tail()),
        || (st.sees_connected(&d.id) && d.sees_connected(&st.id)).then_some(()),
    );
    assert_eq!(
        discovered(&st, &d.id),
        [format!("tcp://localhost:{}", d.listen_port)]
    );
    // The discovery* keys of /rest/system/status have Syncthing's names and JSON types.
    let shape = |n: &Node| -> Vec<(String, String)> {
        let v = n.get_ok("/rest/system/status");
        let mut keys: Vec<(String, String)> = v
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("discovery"))
            .map(|(k, v)| {
                let t = match v {
                    serde_json::Value::Bool(_) => "bool",
                    serde_json::Value::Number(_) => "number",
                    serde_json::Value::Object(_) => "object",
                    _ => "other",
                };
                (k.clone(), t.to_owned())
            })
            .collect();
        keys.sort();
        keys
    };
    assert_eq!(shape(&d), shape(&st));
    let key = format!("global@https://127.0.0.1:{}/v2/", srv.port);
    let st_status = st.get_ok("/rest/system/status");
    assert!(
        st_status["discoveryStatus"][&key]
            .as_object()
            .is_some_and(|o| o.contains_key("error")),
        "{st_status}"
    );
    d.write("from-syncd.txt", b"syncd was found");
    d.scan();
    wait_file(&st, "from-syncd.txt", b"syncd was found");
}

#[test]
fn syncd_finds_syncthing_through_the_discovery_server() {
    let root = tempfile::tempdir().unwrap();
    let Some(srv) = discosrv(&root.path().join("disco")) else {
        return;
    };
    let mut d = syncd_node(root.path(), "sd", &srv.url());
    let Some(mut st) = syncthing_node(root.path(), &d.id, &srv.url()) else {
        return;
    };
    share(&d, &st.id);
    st.start();
    wait_announced(&d.home, &st.id, &srv);
    d.start();
    poll(
        "syncd connects to syncthing",
        || format!("{}\n{}", st.log_tail(), d.log_tail()),
        || (st.sees_connected(&d.id) && d.sees_connected(&st.id)).then_some(()),
    );
    let found = discovered(&d, &st.id);
    assert!(
        found.contains(&format!("tcp://localhost:{}", st.listen_port)),
        "{found:?}"
    );
    st.write("from-st.txt", b"syncthing was found");
    st.scan();
    wait_file(&d, "from-st.txt", b"syncthing was found");
}

#[test]
fn imported_syncthing_config_with_dynamic_devices_finds_them_through_the_server() {
    let Some(st_bin) = syncd_testkit::syncthing_or_skip() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let Some(srv) = discosrv(&root.path().join("disco")) else {
        return;
    };
    let mut peer = syncd_node(root.path(), "peer", &srv.url());
    // A Syncthing home (never started): the peer as `dynamic`, discovery on with the test's
    // server, as a user's config names its servers.
    let st_home = root.path().join("st-home");
    let folder = root.path().join("imported").join(FOLDER);
    std::fs::create_dir_all(folder.join(syncd_types::names::MARKER)).unwrap();
    std::fs::create_dir_all(&st_home).unwrap();
    let st_id = syncd_testkit::generate(&st_bin, &st_home).unwrap();
    let port = || syncd_testkit::free_port().unwrap();
    let (listen, gui) = (port(), port());
    SyncthingConfig::new(&st_id, &peer.id, FOLDER, &folder)
        .ports(listen, gui)
        .api_key(ST_API_KEY)
        .global_discovery(&srv.url())
        .write(&st_home)
        .unwrap();
    let home = root.path().join("imported-home");
    sd_ok(&home, &["import-syncthing", st_home.to_str().unwrap()]);
    let cfg = std::fs::read_to_string(home.join("config.toml")).unwrap();
    assert!(
        cfg.contains(&format!("global_announce_servers = [\"{}\"]", srv.url()))
            && cfg.contains("global_announce_enabled = true")
            && cfg.contains("addresses = [\"dynamic\"]"),
        "{cfg}"
    );
    let key = sd_ok(&home, &["api-key"]);
    let mut imported = Node::new(
        Kind::Syncd,
        home,
        folder,
        st_id,
        listen,
        gui,
        key,
        syncd_binary(),
    );
    imported.discovery = true;
    share(&peer, &imported.id);
    peer.start();
    wait_announced(&peer.home, &peer.id, &srv);
    imported.start();
    poll(
        "the imported daemon finds its dynamic peer",
        || format!("{}\n{}", imported.log_tail(), peer.log_tail()),
        || (imported.sees_connected(&peer.id) && peer.sees_connected(&imported.id)).then_some(()),
    );
    assert_eq!(
        discovered(&imported, &peer.id),
        [format!("tcp://localhost:{}", peer.listen_port)]
    );
}

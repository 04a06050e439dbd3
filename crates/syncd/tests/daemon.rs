//! End-to-end tests of the real `syncd` binary: first start, CLI, REST API, exit codes,
//! import-syncthing, and two daemons syncing a folder configured only through the CLI.
//!
//! Every daemon binds port 0 on loopback and is stopped by its PID when the test ends.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use syncd::client::Client;

const BIN: &str = env!("CARGO_BIN_EXE_syncd");
const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";

/// A test machine: a user home (`$HOME`) and a syncd home inside it.
struct Machine {
    _dir: tempfile::TempDir,
    user: PathBuf,
    home: PathBuf,
    /// Where a daemon started with [`Machine::start_logged`] writes its stderr.
    log: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        std::fs::create_dir_all(&user).unwrap();
        let home = dir.path().join("syncd-home");
        let log = dir.path().join("daemon.log");
        Machine {
            _dir: dir,
            user,
            home,
            log,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--home")
            .arg(&self.home)
            .env("HOME", &self.user)
            .env_remove("XDG_CONFIG_HOME")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "syncd {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn device_id(&self) -> String {
        self.ok(&["device-id"]).trim().to_owned()
    }

    fn api_key(&self) -> String {
        self.ok(&["api-key"]).trim().to_owned()
    }

    fn start(&self) -> Daemon {
        self.start_with(&[])
    }

    fn start_with(&self, extra: &[&str]) -> Daemon {
        self.spawn(extra, false)
    }

    /// Starts with stderr (not a terminal) written to `self.log`, progress lines included.
    fn start_logged(&self) -> Daemon {
        self.spawn(&[], true)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// `syncd serve` on free loopback ports, without a browser.
    fn serve_cmd(&self, extra: &[&str]) -> Command {
        let mut args = vec![
            "serve",
            "--no-browser",
            "--no-discovery",
            "--gui-address",
            "127.0.0.1:0",
            "--listen",
            "tcp://127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        self.cmd(&args)
    }

    fn spawn(&self, extra: &[&str], logged: bool) -> Daemon {
        let mut cmd = self.serve_cmd(extra);
        if logged {
            cmd.env("RUST_LOG", "warn,syncd::progress=info")
                .stderr(std::fs::File::create(&self.log).unwrap());
        } else {
            cmd.stderr(Stdio::inherit());
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // Keep draining after the receiver is gone: the daemon's stdout stays open.
                let _ = tx.send(line);
            }
        });
        let mut rest = None;
        let mut listen = None;
        let mut lines = Vec::new();
        while rest.is_none() || listen.is_none() {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
                let _ = child.kill();
                panic!("daemon did not print its addresses; got {lines:?}");
            };
            if let Some(a) = line.strip_prefix("REST API: http://") {
                rest = Some(a.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(a) = line.strip_prefix("Listening for devices on: tcp://") {
                listen = Some(
                    a.split(',')
                        .next()
                        .unwrap()
                        .trim()
                        .parse::<SocketAddr>()
                        .unwrap(),
                );
            }
            lines.push(line);
        }
        Daemon {
            child,
            rest: rest.unwrap(),
            listen: listen.unwrap(),
            key: self.api_key(),
            banner: lines,
        }
    }
}

/// A running daemon, killed by PID on drop.
struct Daemon {
    child: Child,
    rest: SocketAddr,
    listen: SocketAddr,
    key: String,
    banner: Vec<String>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn client(&self) -> Client {
        Client::new(self.rest, self.key.clone())
    }
    fn get(&self, path: &str) -> Value {
        self.client().get(path).unwrap()
    }
    fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        // Our own client always sends the key; for auth tests, speak HTTP by hand.
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.rest).unwrap();
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: {}\r\n", self.rest));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }
}

#[test]
fn first_start_creates_home_identity_config_api_key_and_default_folder() {
    let m = Machine::new();
    let d = m.start();
    for f in ["cert.pem", "key.pem", "config.toml"] {
        assert!(m.home.join(f).is_file(), "{f} missing");
    }
    assert!(
        m.user.join("Sync/.stfolder").is_dir(),
        "default folder marker missing"
    );
    let key = &d.key;
    assert_eq!(key.len(), 32);
    assert!(key.chars().all(|c| c.is_ascii_alphanumeric()));
    let folders = d.get("/rest/config/folders");
    assert_eq!(folders[0]["id"], "default");
    assert_eq!(
        folders[0]["path"],
        m.user.join("Sync").to_string_lossy().as_ref()
    );
    assert!(
        d.banner.iter().any(|l| l.starts_with("Device ID: ")),
        "{:?}",
        d.banner
    );
}

#[test]
fn no_default_folder_skips_the_default_folder() {
    let m = Machine::new();
    let d = m.start_with(&["--no-default-folder"]);
    assert_eq!(d.get("/rest/config/folders"), json!([]));
    assert!(!m.user.join("Sync").exists());
}

#[test]
fn device_id_prints_the_id_the_rest_api_reports() {
    let m = Machine::new();
    let d = m.start();
    let status = d.get("/rest/system/status");
    assert_eq!(status["myID"], m.device_id());
    assert_eq!(m.ok(&["--device-id"]).trim(), m.device_id());
    assert!(d.banner.contains(&format!("Device ID: {}", m.device_id())));
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn syncthing_fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/syncthing-1.19.2");
    serde_json::from_str(&std::fs::read_to_string(p.join(name)).unwrap()).unwrap()
}

#[test]
fn system_and_folder_status_have_exactly_syncthing_1_19s_keys() {
    let m = Machine::new();
    let d = m.start();
    for (path, fixture) in [
        ("/rest/system/status", "system_status.json"),
        ("/rest/db/status?folder=default", "db_status.json"),
    ] {
        assert_eq!(
            sorted_keys(&d.get(path)),
            sorted_keys(&syncthing_fixture(fixture)),
            "{path}"
        );
    }
}

#[test]
fn rest_requires_the_api_key() {
    let m = Machine::new();
    let d = m.start();
    let key = d.key.clone();
    assert_eq!(
        d.raw("GET", "/rest/system/status", &[]),
        (403, "CSRF Error\n".to_owned())
    );
    assert_eq!(
        d.raw("GET", "/rest/system/status", &[("X-API-Key", "wrong")])
            .0,
        403
    );
    assert_eq!(
        d.raw("GET", "/rest/system/status", &[("X-API-Key", &key)])
            .0,
        200
    );
    let bearer = format!("Bearer {key}");
    assert_eq!(
        d.raw("GET", "/rest/system/status", &[("Authorization", &bearer)])
            .0,
        200
    );
    assert_eq!(
        d.raw("GET", "/rest/noauth/health", &[]),
        (200, "{\"status\":\"OK\"}".to_owned())
    );
}

#[test]
fn rest_refuses_foreign_host_headers_on_loopback() {
    let m = Machine::new();
    let d = m.start();
    let key = d.key.clone();
    let (status, body) = d.raw(
        "GET",
        "/rest/system/ping",
        &[("X-API-Key", &key), ("Host", "evil.example:8384")],
    );
    assert_eq!((status, body.as_str()), (403, "Host check error\n"));
    assert_eq!(
        d.raw(
            "GET",
            "/rest/system/ping",
            &[("X-API-Key", &key), ("Host", "localhost:8384")]
        )
        .0,
        200
    );
}

#[test]
fn responses_carry_the_device_id_header() {
    let m = Machine::new();
    let d = m.start();
    let resp = d
        .client()
        .request("GET", "/rest/system/ping", None)
        .unwrap();
    assert_eq!(resp.header("x-syncthing-id"), Some(m.device_id().as_str()));
    assert_eq!(resp.text(), "{\"ping\":\"pong\"}");
}

#[test]
fn unknown_folder_is_404_with_a_plain_text_error() {
    let m = Machine::new();
    let d = m.start();
    let key = d.key.clone();
    let (status, body) = d.raw("GET", "/rest/db/status?folder=nope", &[("X-API-Key", &key)]);
    assert_eq!((status, body.as_str()), (404, "no such folder\n"));
    assert_eq!(
        d.raw("GET", "/rest/config/folders/nope", &[("X-API-Key", &key)])
            .0,
        404
    );
}

#[test]
fn events_long_poll_returns_new_events_and_times_out_empty() {
    let m = Machine::new();
    let d = m.start();
    let all = d.get("/rest/events?since=0&timeout=1");
    let first = &all.as_array().unwrap()[0];
    assert_eq!(first["type"], "Starting");
    assert_eq!(first["data"]["myID"], m.device_id());
    let latest = d.get("/rest/events?since=0&limit=1&timeout=1");
    let last_id = latest[0]["id"].as_u64().unwrap();
    // A config change makes a new event; polling after the last ID returns it.
    d.client()
        .json(
            "PUT",
            &format!("/rest/config/devices/{PEER}"),
            Some(&json!({"deviceID": PEER, "name": "p"})),
        )
        .unwrap();
    let newer = d.get(&format!("/rest/events?since={last_id}&timeout=5"));
    assert!(
        newer
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "ConfigSaved"),
        "{newer}"
    );
    let newest = newer.as_array().unwrap().last().unwrap()["id"]
        .as_u64()
        .unwrap();
    assert_eq!(
        d.get(&format!(
            "/rest/events?since={newest}&timeout=1&events=ConfigSaved"
        )),
        json!([])
    );
}

#[test]
fn config_changes_through_rest_take_effect_without_restart() {
    let m = Machine::new();
    let d = m.start_with(&["--no-default-folder"]);
    let c = d.client();
    c.json(
        "POST",
        "/rest/config/devices",
        Some(&json!({"deviceID": PEER, "name": "peer", "addresses": ["tcp://127.0.0.1:1"]})),
    )
    .unwrap();
    let path = m.user.join("work");
    let body = json!({"id": "work", "label": "Work", "path": path, "devices": [{"deviceID": PEER}], "fsWatcherDelayS": 0.2});
    c.json("POST", "/rest/config/folders", Some(&body)).unwrap();
    assert!(
        path.join(".stfolder").is_dir(),
        "folder root and marker are created"
    );
    let st = d.get("/rest/db/status?folder=work");
    assert!(st["state"].is_string(), "{st}");
    let conns = d.get("/rest/system/connections");
    assert!(conns["connections"].get(PEER).is_some(), "{conns}");
    c.json(
        "PATCH",
        "/rest/config/folders/work",
        Some(&json!({"label": "Renamed"})),
    )
    .unwrap();
    assert_eq!(d.get("/rest/config/folders/work")["label"], "Renamed");
    assert_eq!(d.get("/rest/config/folders/work")["fsWatcherDelayS"], 0.2);
    let saved = std::fs::read_to_string(m.home.join("config.toml")).unwrap();
    assert!(
        saved.contains("label = \"Renamed\"") && saved.contains(PEER),
        "{saved}"
    );
    c.json("DELETE", "/rest/config/folders/work", None).unwrap();
    assert_eq!(
        c.request("GET", "/rest/db/status?folder=work", None)
            .unwrap()
            .status,
        404
    );
    c.json("DELETE", &format!("/rest/config/devices/{PEER}"), None)
        .unwrap();
    assert!(
        d.get("/rest/system/connections")["connections"]
            .get(PEER)
            .is_none()
    );
}

#[test]
fn cli_device_and_folder_add_apply_to_a_running_daemon() {
    let m = Machine::new();
    let d = m.start_with(&["--no-default-folder"]);
    let out = m.ok(&[
        "device",
        "add",
        PEER,
        "--name",
        "mac",
        "--address",
        "tcp://127.0.0.1:1",
    ]);
    assert!(out.contains("running daemon"), "{out}");
    let devices = d.get("/rest/config/devices");
    assert!(
        devices
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["deviceID"] == PEER && x["name"] == "mac"),
        "{devices}"
    );
    let dir = m.user.join("docs");
    m.ok(&[
        "folder",
        "add",
        "docs",
        dir.to_str().unwrap(),
        "--device",
        PEER,
    ]);
    assert!(dir.join(".stfolder").is_dir());
    assert_eq!(
        d.get("/rest/config/folders/docs")["devices"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(m.ok(&["folder", "list"]).contains("docs"));
    let listed: Value = serde_json::from_str(&m.ok(&["folder", "list", "--json"])).unwrap();
    assert!(
        listed.as_array().unwrap().iter().any(|f| f["id"] == "docs"),
        "{listed}"
    );
    let devices: Value = serde_json::from_str(&m.ok(&["device", "list", "--json"])).unwrap();
    assert!(devices[0]["deviceID"].is_string(), "{devices}");
    m.ok(&["folder", "remove", "docs"]);
    assert_eq!(
        d.client()
            .request("GET", "/rest/config/folders/docs", None)
            .unwrap()
            .status,
        404
    );
}

#[test]
fn folder_add_refuses_an_unknown_device() {
    let m = Machine::new();
    let out = m.run(&[
        "folder",
        "add",
        "x",
        m.user.join("x").to_str().unwrap(),
        "--device",
        PEER,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("device add"));
}

#[test]
fn status_without_a_daemon_exits_1_and_says_what_to_do() {
    let m = Machine::new();
    m.ok(&["generate"]);
    let out = m.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("syncd serve"));
}

#[test]
fn status_shows_device_peers_and_folders() {
    let m = Machine::new();
    let _d = m.start();
    m.ok(&["device", "add", PEER, "--name", "mac"]);
    let text = m.ok(&["status"]);
    assert!(
        text.contains(&format!("Device ID: {}", m.device_id())),
        "{text}"
    );
    assert!(text.contains("P56IOI7 mac: not connected"), "{text}");
    assert!(text.contains("default: "), "{text}");
    let v: Value =
        serde_json::from_str(&m.ok(&["status", "--json", "--folder", "default"])).unwrap();
    assert_eq!(v["myID"], m.device_id());
    assert!(v["folders"]["default"]["globalFiles"].is_u64(), "{v}");
}

#[test]
fn status_and_wait_on_an_unknown_folder_exit_2() {
    let m = Machine::new();
    let _d = m.start();
    assert_eq!(
        m.run(&["status", "--folder", "nope"]).status.code(),
        Some(2)
    );
    assert_eq!(
        m.run(&["wait", "--folder", "nope", "--timeout", "1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn wait_exits_0_for_an_unshared_folder_once_scanned() {
    let m = Machine::new();
    std::fs::create_dir_all(m.user.join("Sync")).unwrap();
    std::fs::write(m.user.join("Sync/a.txt"), b"hello").unwrap();
    let _d = m.start();
    let out = m.run(&["wait", "--folder", "default", "--timeout", "60"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn wait_exits_3_when_a_sharing_peer_never_connects() {
    let m = Machine::new();
    let d = m.start_with(&["--no-default-folder"]);
    m.ok(&["device", "add", PEER, "--address", "tcp://127.0.0.1:1"]);
    m.ok(&[
        "folder",
        "add",
        "shared",
        m.user.join("shared").to_str().unwrap(),
        "--device",
        PEER,
    ]);
    let out = m.run(&["wait", "--folder", "shared", "--timeout", "1"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(d);
}

#[test]
fn broken_config_names_file_line_field_and_what_to_do() {
    let m = Machine::new();
    m.ok(&["generate", "--no-default-folder"]);
    let path = m.home.join("config.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("\n[[folder]]\nid = \"x\"\npath = \"/tmp/x\"\nrescan_interval_s = \"hourly\"\n");
    std::fs::write(&path, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("rescan_interval_s"))
        .unwrap()
        + 1;
    let out = m.run(&["serve", "--no-discovery", "--gui-address", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:{line}", path.display())), "{err}");
    assert!(err.contains("folder.rescan_interval_s"), "{err}");
    assert!(err.contains("what to do:"), "{err}");
}

fn write_syncthing_config(dir: &Path, own: &str, folder_path: &Path) {
    let xml = format!(
        r#"<configuration version="36">
    <folder id="work" label="Work" path="{}" type="sendreceive" rescanIntervalS="120" fsWatcherEnabled="true" fsWatcherDelayS="3" ignorePerms="true" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="{own}" introducedBy=""></device>
        <device id="{PEER}" introducedBy=""></device>
        <versioning type="simple"><param key="keep" val="5"></param></versioning>
        <maxConflicts>4</maxConflicts>
        <paused>false</paused>
    </folder>
    <device id="{own}" name="old-vps" compression="metadata"><address>dynamic</address></device>
    <device id="{PEER}" name="mac" compression="always"><address>tcp://10.1.2.3:22000</address><paused>false</paused></device>
    <gui enabled="true" tls="false"><address>127.0.0.1:8385</address><apikey>abcdefghijklmnopqrstuvwxyz012345</apikey></gui>
    <options><listenAddress>default</listenAddress><relaysEnabled>true</relaysEnabled></options>
</configuration>"#,
        folder_path.display()
    );
    std::fs::write(dir.join("config.xml"), xml).unwrap();
}

fn check_imported(m: &Machine, st_id: &str, out: &str) {
    assert_eq!(m.device_id(), st_id, "the device ID is kept");
    assert!(
        !out.contains("versioning"),
        "versioning is carried, not listed: {out}"
    );
    assert!(
        out.contains("relaysEnabled"),
        "lists what was not carried: {out}"
    );
    let folders: Value = serde_json::from_str(&m.ok(&["folder", "list", "--json"])).unwrap();
    assert_eq!(folders[0]["versioning"]["type"], "simple", "{folders}");
    assert_eq!(folders[0]["versioning"]["params"]["keep"], "5", "{folders}");
    let text = m.ok(&["folder", "list"]);
    assert!(text.contains("work") && text.contains("P56IOI7"), "{text}");
    let devices = m.ok(&["device", "list"]);
    assert!(
        devices.contains(PEER) && devices.contains("tcp://10.1.2.3:22000"),
        "{devices}"
    );
    assert_eq!(m.api_key(), "abcdefghijklmnopqrstuvwxyz012345");
    let config = std::fs::read_to_string(m.home.join("config.toml")).unwrap();
    for want in [
        "rescan_interval_s = 120",
        "watcher_delay_ms = 3000",
        "ignore_perms = true",
        "max_conflicts = 4",
        "compression = \"always\"",
        "address = \"127.0.0.1:8385\"",
        "device_name = \"old-vps\"",
    ] {
        assert!(config.contains(want), "{want} missing from\n{config}");
    }
}

#[test]
fn import_syncthing_keeps_the_id_of_a_home_made_by_syncthing_generate() {
    let syncthing = Path::new("/usr/bin/syncthing");
    let have = syncthing.exists() || Command::new("syncthing").arg("--version").output().is_ok();
    if !have {
        assert!(
            std::env::var("SYNCD_REQUIRE_SYNCTHING").as_deref() != Ok("1"),
            "syncthing is required but not installed"
        );
        eprintln!("SKIPPED: syncthing is not installed (apt-get install -y syncthing)");
        return;
    }
    let m = Machine::new();
    let st_home = m.user.join("st");
    let out = Command::new("syncthing")
        .args(["generate", "--no-default-folder", "--skip-port-probing"])
        .arg(format!("--home={}", st_home.display()))
        .env("HOME", &m.user)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let st_id = printed
        .split("Device ID: ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let generated = std::fs::read_to_string(st_home.join("config.xml")).unwrap();
    assert!(generated.contains(&st_id));
    write_syncthing_config(&st_home, &st_id, &m.user.join("work"));
    let out = m.ok(&["import-syncthing", st_home.to_str().unwrap()]);
    check_imported(&m, &st_id, &out);
}

#[test]
fn import_syncthing_carries_a_test_written_config_xml() {
    let m = Machine::new();
    // Any valid cert.pem/key.pem pair stands in for Syncthing's.
    let st = Machine::new();
    let st_id = st.device_id();
    write_syncthing_config(&st.home, &st_id, &m.user.join("work"));
    let out = m.ok(&["import-syncthing", st.home.to_str().unwrap()]);
    check_imported(&m, &st_id, &out);
    let again = m.run(&["import-syncthing", st.home.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing config is not overwritten without --force"
    );
}

#[test]
fn runbook_curl_jq_commands_work_against_a_running_daemon() {
    let m = Machine::new();
    let d = m.start();
    m.ok(&[
        "folder",
        "add",
        "workspaces",
        m.user.join("workspaces").to_str().unwrap(),
    ]);
    m.ok(&["device", "add", PEER, "--name", "mac"]);
    let port = d.rest.port();
    let key = &d.key;
    let script = format!(
        "set -euo pipefail\n\
         curl -s -H \"X-API-Key: {key}\" http://localhost:{port}/rest/system/status | jq '.myID, .uptime'\n\
         curl -s -H \"X-API-Key: {key}\" http://localhost:{port}/rest/db/status?folder=workspaces | jq '{{state, needBytes, globalBytes}}'\n\
         curl -s -H \"X-API-Key: {key}\" http://localhost:{port}/rest/system/connections | jq '.connections | to_entries[] | {{device: .key, connected: .value.connected}}'\n"
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next().unwrap(), format!("\"{}\"", m.device_id()));
    assert!(lines.next().unwrap().parse::<u64>().is_ok(), "{stdout}");
    assert!(
        stdout.contains("\"state\": \"")
            && stdout.contains("\"needBytes\": 0")
            && stdout.contains("\"globalBytes\": "),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("\"device\": \"{PEER}\""))
            && stdout.contains("\"connected\": false"),
        "{stdout}"
    );
}

/// Two machines set up only through the CLI: A shares folder `shared` (filled by `fill`, which
/// returns how many files it wrote, before A starts) with B, and B dials A once A's first scan
/// holds them all. Both daemons run; A's and B's stderr go to their `log` files when `logged`.
struct Pair {
    // Daemons first: they are stopped before their machines' directories are removed.
    da: Daemon,
    db: Daemon,
    a: Machine,
    b: Machine,
    a_id: String,
    b_dir: PathBuf,
}

fn cli_pair(fill: impl FnOnce(&Path) -> u64, logged: bool) -> Pair {
    let a = Machine::new();
    let b = Machine::new();
    a.ok(&["generate", "--no-default-folder"]);
    b.ok(&["generate", "--no-default-folder"]);
    let (a_id, b_id) = (a.device_id(), b.device_id());
    let (a_dir, b_dir) = (a.user.join("shared"), b.user.join("shared"));
    a.ok(&["device", "add", &b_id, "--name", "b"]);
    a.ok(&[
        "folder",
        "add",
        "shared",
        a_dir.to_str().unwrap(),
        "--device",
        &b_id,
    ]);
    let files = fill(&a_dir);
    let da = if logged { a.start_logged() } else { a.start() };
    // B's `wait` trusts what A announces: an A still scanning would announce only part of the
    // tree, and B would be in sync with that part.
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let st = da.get("/rest/db/status?folder=shared");
        if st["localFiles"] == files && st["state"] == "idle" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "A's first scan: {st}");
        std::thread::sleep(Duration::from_millis(50));
    }
    b.ok(&[
        "device",
        "add",
        &a_id,
        "--name",
        "a",
        "--address",
        &format!("tcp://{}", da.listen),
    ]);
    b.ok(&[
        "folder",
        "add",
        "shared",
        b_dir.to_str().unwrap(),
        "--device",
        &a_id,
    ]);
    let db = if logged { b.start_logged() } else { b.start() };
    Pair {
        da,
        db,
        a,
        b,
        a_id,
        b_dir,
    }
}

fn small_tree(dir: &Path) -> u64 {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello from a\n").unwrap();
    std::fs::write(dir.join("sub/data.bin"), vec![7u8; 300_000]).unwrap();
    2
}

fn wait_in_sync(m: &Machine) {
    let out = m.run(&["wait", "--folder", "shared", "--timeout", "300"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_daemons_configured_only_through_the_cli_sync_a_folder() {
    let p = cli_pair(small_tree, false);
    let (db, a_id, b_dir) = (&p.db, &p.a_id, &p.b_dir);
    wait_in_sync(&p.b);
    // `wait` returned "in sync": B holds everything and needs nothing now, not eventually.
    let st = db.get("/rest/db/status?folder=shared");
    assert_eq!(
        std::fs::read(b_dir.join("hello.txt")).ok().as_deref(),
        Some(&b"hello from a\n"[..]),
        "{st}"
    );
    assert_eq!(
        std::fs::read(b_dir.join("sub/data.bin")).ok(),
        Some(vec![7u8; 300_000]),
        "{st}"
    );
    assert_eq!(st["globalFiles"], 2, "{st}");
    assert_eq!(st["globalBytes"], 13 + 300_000, "{st}");
    assert_eq!(st["needBytes"], 0, "{st}");
    assert_eq!(st["needFiles"], 0, "{st}");
    let conns = db.get("/rest/system/connections");
    assert_eq!(conns["connections"][a_id]["connected"], true, "{conns}");
    assert!(
        conns["connections"][a_id]["inBytesTotal"].as_u64().unwrap() >= 300_013,
        "{conns}"
    );
    let completion = db.get("/rest/db/completion?folder=shared");
    assert_eq!(completion["completion"], 100.0, "{completion}");
    assert_eq!(completion["needBytes"], 0, "{completion}");
    let events = db.get("/rest/events?since=0&timeout=1&events=StateChanged");
    let saw = |to: &str| {
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["data"]["folder"] == "shared" && e["data"]["to"] == to)
    };
    assert!(saw("syncing") && saw("idle"), "{events}");
}

/// `n` bytes no other call returns (xorshift64*): no block of one file can be found in another.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

#[test]
fn completion_is_below_100_during_the_pull_and_100_after() {
    // 256 MiB of incompressible data in 32 files: the puller commits files (and so lowers the
    // need) one batch at a time, at the latest every 64 MiB, and no batch is the whole pull.
    const FILES: u64 = 32;
    const SIZE: usize = 8 << 20;
    let total = FILES * SIZE as u64;
    let p = cli_pair(
        |dir| {
            std::fs::create_dir_all(dir).unwrap();
            for i in 0..FILES {
                std::fs::write(dir.join(format!("f{i:02}.bin")), random_bytes(i + 1, SIZE))
                    .unwrap();
            }
            FILES
        },
        false,
    );
    // Sample B's own completion as fast as the REST API answers, until B holds everything.
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    let mut partial = Vec::new();
    let last = loop {
        let c = p.db.get("/rest/db/completion?folder=shared");
        let pct = c["completion"].as_f64().unwrap();
        if c["globalBytes"] == total && c["needBytes"] == 0 {
            break c;
        }
        if pct > 0.0 && pct < 100.0 {
            partial.push(pct);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no full pull in 600 s: {c}"
        );
    };
    assert!(
        !partial.is_empty(),
        "no completion strictly between 0 and 100 was seen; last {last}"
    );
    assert_eq!(last["completion"], 100.0, "{last}");
    eprintln!(
        "{} partial completion samples, from {:.1} to {:.1}",
        partial.len(),
        partial.first().unwrap(),
        partial.last().unwrap()
    );
    wait_in_sync(&p.b);
    let c = p.db.get("/rest/db/completion?folder=shared");
    assert_eq!(c["completion"], 100.0, "{c}");
    // A's view of B agrees once A is in sync too (A has B's index update: B holds everything).
    wait_in_sync(&p.a);
    let b_id = p.b.device_id();
    let from_a =
        p.da.get(&format!("/rest/db/completion?folder=shared&device={b_id}"));
    assert_eq!(from_a["completion"], 100.0, "{from_a}");
    let conns = p.db.get("/rest/system/connections");
    assert!(
        conns["connections"][&p.a_id]["inBytesTotal"]
            .as_u64()
            .unwrap()
            >= total,
        "{conns}"
    );
}

/// The `key=value` fields of the first log line with message `msg` that has every field of
/// `want` (tracing's plain format: `... INFO syncd::progress: msg key=value ...`).
fn log_line_with<'a>(log: &'a str, msg: &str, want: &[(&str, &str)]) -> Option<&'a str> {
    log.lines().find(|l| {
        let Some((_, rest)) = l.split_once("syncd::progress: ") else {
            return false;
        };
        let mut words = rest.split_whitespace();
        let msg_words: Vec<&str> = msg.split_whitespace().collect();
        let head: Vec<&str> = words.by_ref().take(msg_words.len()).collect();
        let fields: Vec<&str> = words.collect();
        head == msg_words
            && want
                .iter()
                .all(|(k, v)| fields.contains(&format!("{k}={v}").as_str()))
    })
}

/// Polls `m`'s log until a progress line `msg` with the fields `want` appears; returns the log.
fn wait_for_log_line(m: &Machine, msg: &str, want: &[(&str, &str)]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        let log = m.log_text();
        if log_line_with(&log, msg, want).is_some() {
            assert!(!log.contains('\x1b'), "no terminal escapes: {log:?}");
            return log;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no `{msg}` line with {want:?} in:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_a_terminal_the_first_scan_logs_plain_lines_with_counts() {
    let m = Machine::new();
    // Enough files that the first scan is still running when the daemon starts watching it.
    let dir = m.user.join("Sync");
    for d in 0..20 {
        std::fs::create_dir_all(dir.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("d{d}/f{f}.txt")), [b'x'; 100]).unwrap();
        }
    }
    let _d = m.start_logged();
    let log = wait_for_log_line(
        &m,
        "scan finished",
        &[
            ("folder", "default"),
            ("files", "2000"),
            ("directories", "20"),
            ("bytes", "200000"),
        ],
    );
    assert!(
        log_line_with(&log, "scanning", &[("folder", "default")]).is_some(),
        "{log}"
    );
}

/// The PIDs whose parent is `parent` (from `/proc/*/stat`).
fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may contain spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn on_a_terminal_the_first_scan_shows_a_progress_spinner() {
    // `script` (util-linux, in every Debian base system) gives the daemon a pseudo-terminal
    // and copies what it draws there to its own stdout.
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
        return;
    }
    let m = Machine::new();
    let dir = m.user.join("Sync");
    for d in 0..20 {
        std::fs::create_dir_all(dir.join(format!("d{d}"))).unwrap();
        for f in 0..100 {
            std::fs::write(dir.join(format!("d{d}/f{f}.txt")), [b'x'; 100]).unwrap();
        }
    }
    let serve = format!(
        "exec {BIN} serve --no-browser --no-discovery --gui-address 127.0.0.1:0 --listen tcp://127.0.0.1:0 --home {}",
        m.home.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &serve, "/dev/null"])
        .env("HOME", &m.user)
        .env_remove("XDG_CONFIG_HOME")
        .env("RUST_LOG", "warn")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let shown = loop {
        let text = String::from_utf8_lossy(&screen).into_owned();
        if text.contains("scanning default") || std::time::Instant::now() > deadline {
            break text;
        }
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            screen.extend(chunk);
        }
    };
    // Stop the daemon (script's only child) by its PID; script then exits with it.
    for pid in children_of(child.id()) {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let _ = child.wait();
    assert!(shown.contains("scanning default"), "{shown:?}");
    assert!(
        !shown.contains("scanning folder="),
        "no plain log line on a terminal: {shown:?}"
    );
}

/// What a terminal shows after `bytes` were written to it: the rows of a screen that never
/// scrolls away, with the cursor moves, line clears and colours indicatif and tracing emit
/// (`\r`, `\n`, CSI `A`, `K`, `J`, `G`, `m`) applied.
fn screen_rows(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut r, mut c) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\n' => {
                r += 1;
                if rows.len() <= r {
                    rows.push(Vec::new());
                }
            }
            '\r' => c = 0,
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut param = String::new();
                let mut fin = ' ';
                for x in chars.by_ref() {
                    if x.is_ascii_alphabetic() {
                        fin = x;
                        break;
                    }
                    param.push(x);
                }
                let n: usize = param.parse().unwrap_or(1);
                match fin {
                    'A' => r = r.saturating_sub(n),
                    'G' => c = n.saturating_sub(1),
                    'K' if param == "2" => rows[r].clear(),
                    'K' => rows[r].truncate(c),
                    'J' => {
                        rows[r].truncate(c);
                        rows.truncate(r + 1);
                    }
                    _ => {}
                }
            }
            ch if !ch.is_control() => {
                let row = &mut rows[r];
                while row.len() < c {
                    row.push(' ');
                }
                match row.get_mut(c) {
                    Some(cell) => *cell = ch,
                    None => row.push(ch),
                }
                c += 1;
            }
            _ => {}
        }
    }
    rows.into_iter()
        .map(|row| row.into_iter().collect::<String>().trim_end().to_owned())
        .collect()
}

/// Where a tracing line's level sits after its timestamp (`…Z  INFO target: …`).
const LEVELS: [&str; 5] = ["Z TRACE ", "Z DEBUG ", "Z  INFO ", "Z  WARN ", "Z ERROR "];

#[test]
fn on_a_terminal_log_lines_and_progress_bars_never_share_a_row() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
        return;
    }
    let m = Machine::new();
    // A first scan long enough that the banner and the state-change log lines are written
    // while its progress bar is on the screen.
    let dir = m.user.join("Sync");
    for d in 0..40 {
        std::fs::create_dir_all(dir.join(format!("d{d}"))).unwrap();
        for f in 0..300 {
            std::fs::write(dir.join(format!("d{d}/f{f}.txt")), b"x").unwrap();
        }
    }
    let serve = format!(
        "exec {BIN} serve --no-browser --no-discovery --gui-address 127.0.0.1:0 --listen tcp://127.0.0.1:0 --home {}",
        m.home.display()
    );
    let mut child = Command::new("script")
        .args(["-q", "-e", "-c", &serve, "/dev/null"])
        .env("HOME", &m.user)
        .env_remove("XDG_CONFIG_HOME")
        .env("RUST_LOG", "info")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut raw = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    // Until the scan is over and its bar gone (the folder's state goes back to idle).
    while !screen_rows(&raw).join("\n").contains("to=\"idle\"")
        && std::time::Instant::now() < deadline
    {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
            raw.extend(chunk);
        }
    }
    // Whatever follows right after (the bar's last redraw).
    let settle = std::time::Instant::now() + Duration::from_secs(1);
    while let Some(left) = settle.checked_duration_since(std::time::Instant::now()) {
        if let Ok(chunk) = rx.recv_timeout(left) {
            raw.extend(chunk);
        }
    }
    for pid in children_of(child.id()) {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let _ = child.wait();

    let rows = screen_rows(&raw);
    let shown = rows.join("\n");
    assert!(
        raw.windows(16).any(|w| w == b"scanning default"),
        "no progress bar was drawn: {shown}"
    );
    // Every log line written is on the screen, on a row of its own, from its first column.
    // Every `\r` made a new row: nothing overwritten, so every line written can be counted.
    let unfolded: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'\r' { b'\n' } else { b })
        .collect();
    let plain = screen_rows(&unfolded).join("\n");
    let written: usize = LEVELS.iter().map(|l| plain.matches(l).count()).sum();
    let log_rows: Vec<&String> = rows
        .iter()
        .filter(|row| LEVELS.iter().any(|l| row.contains(l)))
        .collect();
    assert!(written >= 2, "too few log lines to check: {shown}");
    assert_eq!(
        log_rows.len(),
        written,
        "a log line was overwritten: {shown}"
    );
    for row in &log_rows {
        assert!(
            row.starts_with("20") && LEVELS.iter().filter(|l| row.contains(*l)).count() == 1,
            "a log line shares its row: {row:?}\n{shown}"
        );
    }
    // The banner (stdout) too.
    let banner = rows
        .iter()
        .find(|row| row.contains("Device ID: "))
        .unwrap_or_else(|| panic!("no banner: {shown}"));
    assert!(banner.starts_with("Device ID: "), "{banner:?}\n{shown}");
    assert!(
        rows.iter()
            .any(|row| row.starts_with("syncd ") && row.ends_with(" started")),
        "the banner's first line shares its row: {shown}"
    );
}

#[test]
fn with_log_format_json_every_stderr_line_is_a_json_object() {
    let m = Machine::new();
    m.ok(&["generate"]);
    let path = m.home.join("config.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let config = config.replacen("[options]\n", "[options]\nlog_format = \"json\"\n", 1);
    assert!(config.contains("log_format"), "{config}");
    std::fs::write(&path, config).unwrap();
    let _d = m.start_logged();
    // The first scan's progress lines are logged at info for `syncd::progress`.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let log = loop {
        let log = m.log_text();
        if log.contains("scan finished") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.iter().any(|l| l.contains("scan finished")), "{log}");
    for line in &lines {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{log}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["target"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    let finished = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "scan finished")
        .unwrap();
    assert_eq!(finished["level"], "INFO");
    assert_eq!(finished["target"], "syncd::progress");
    assert_eq!(finished["fields"]["folder"], "default");
}

#[test]
fn without_a_terminal_a_pull_logs_plain_lines_with_counts() {
    let p = cli_pair(small_tree, true);
    wait_in_sync(&p.b);
    let log = wait_for_log_line(
        &p.b,
        "sync finished",
        &[
            ("folder", "shared"),
            ("files", "2"),
            ("bytes", "300013"),
            ("need_bytes", "0"),
        ],
    );
    assert!(
        log_line_with(
            &log,
            "syncing",
            &[
                ("folder", "shared"),
                ("need_files", "2"),
                ("need_bytes", "300013")
            ]
        )
        .is_some(),
        "{log}"
    );
}

/// A daemon whose stdout and stderr readers went away (a launcher that exited,
/// `syncd serve 2>&1 | head`) must keep running: `println!` panics on a broken pipe, and so does
/// tracing's report of a failed log write; both took the daemon down (the cause of the hostile
/// suite's "Connection reset by peer" and "could not open a configured connection" flakes: its
/// harness stopped reading stdout once it had the addresses).
#[test]
fn a_command_whose_output_reader_has_gone_exits_quietly() {
    let m = Machine::new();
    m.ok(&["generate"]);
    for args in [
        &["api-key"][..],
        &["device-id"],
        &["generate"],
        &["folder", "list"],
    ] {
        // A pipe whose read end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = m
            .cmd(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "syncd {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "syncd {args:?}: {stderr}");
    }
}

#[test]
fn a_daemon_whose_stdout_and_stderr_are_closed_pipes_keeps_serving() {
    let m = Machine::new();
    m.ok(&["generate"]);
    let mut child = m
        .serve_cmd(&[])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read ends before the daemon prints its banner: every write to either fails.
    drop(child.stdout.take());
    drop(child.stderr.take());
    let addr_file = m.home.join("rest-address");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let rest: SocketAddr = loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file)
            && let Ok(a) = text.trim().parse()
        {
            break a;
        }
        assert!(
            matches!(child.try_wait(), Ok(None)),
            "the daemon exited before serving"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no REST address after 90 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut daemon = Daemon {
        child,
        rest,
        listen: rest,
        key: m.api_key(),
        banner: Vec::new(),
    };
    // The banner and the first scan's log lines follow the address file; give them time to fail.
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let (status, body) = daemon.raw("GET", "/rest/noauth/health", &[]);
        assert_eq!(status, 200, "{body}");
    }
    // The first scan (and its log lines) ends; the daemon is still there to say so.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while daemon.get("/rest/db/status?folder=default")["state"] != "idle" {
        assert!(
            std::time::Instant::now() < deadline,
            "default folder never idle"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        matches!(daemon.child.try_wait(), Ok(None)),
        "the daemon exited after a failed write to stdout or stderr"
    );
}

/// Waits until `path` holds `content` (an edit made on the other daemon arrived).
fn arrives(path: &Path, content: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::fs::read(path).ok().as_deref() != Some(content.as_bytes()) {
        assert!(std::time::Instant::now() < deadline, "{what} never arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// After a settings change on A: A sees B complete, `syncd wait` returns 0 on both, and an
/// edit made on each side afterwards reaches the other.
fn still_syncs(p: &Pair, a_dir: &Path, step: &str) {
    let b_id = p.b.device_id();
    for m in [&p.a, &p.b] {
        wait_in_sync(m);
    }
    let c =
        p.da.get(&format!("/rest/db/completion?folder=shared&device={b_id}"));
    assert_eq!(c["completion"], 100.0, "{step}: B's completion on A: {c}");
    assert_eq!(c["needItems"], 0, "{step}: {c}");
    let name = format!("{}.txt", step.replace(' ', "-"));
    std::fs::write(a_dir.join(format!("a-{name}")), step).unwrap();
    std::fs::write(p.b_dir.join(format!("b-{name}")), step).unwrap();
    if p.da.get("/rest/config/folders/shared")["fsWatcherEnabled"] == false {
        p.da.client()
            .json("POST", "/rest/db/scan?folder=shared", None)
            .unwrap();
    }
    arrives(
        &p.b_dir.join(format!("a-{name}")),
        step,
        &format!("{step}: A's edit on B"),
    );
    arrives(
        &a_dir.join(format!("b-{name}")),
        step,
        &format!("{step}: B's edit on A"),
    );
}

#[test]
fn every_setting_changed_on_a_running_daemon_keeps_the_folder_syncing() {
    let p = cli_pair(small_tree, false);
    let b_id = p.b.device_id();
    let mut a_dir = p.a.user.join("shared");
    still_syncs(&p, &a_dir, "at start");
    let c = p.da.client();
    let patch = |body: Value| {
        c.json("PATCH", "/rest/config/folders/shared", Some(&body))
            .unwrap();
    };
    // Every folder setting the REST API takes, one after another, through PATCH.
    for (step, body) in [
        ("watcher delay", json!({"fsWatcherDelayS": 2})),
        ("rescan interval", json!({"rescanIntervalS": 7})),
        ("ignore perms", json!({"ignorePerms": true})),
        ("max conflicts", json!({"maxConflicts": 3})),
        ("label", json!({"label": "Workspaces"})),
        ("watcher off", json!({"fsWatcherEnabled": false})),
        (
            "watcher on",
            json!({"fsWatcherEnabled": true, "fsWatcherDelayS": 0.1}),
        ),
        ("devices again", json!({"devices": [{"deviceID": b_id}]})),
    ] {
        patch(body);
        still_syncs(&p, &a_dir, step);
    }
    patch(json!({"paused": true}));
    // Syncthing 1.19 reports a paused folder's state as "".
    let st = p.da.get("/rest/db/status?folder=shared");
    assert_eq!(st["state"], "", "{st}");
    assert_eq!(p.da.get("/rest/config/folders/shared")["paused"], true);
    patch(json!({"paused": false}));
    still_syncs(&p, &a_dir, "resumed");
    // The folder moved on disk (a copy that keeps modification times), then its path.
    let moved = p.a.user.join("moved");
    let cp = Command::new("cp")
        .arg("-a")
        .arg(&a_dir)
        .arg(&moved)
        .status()
        .unwrap();
    assert!(cp.success());
    patch(json!({"path": moved}));
    a_dir = moved;
    still_syncs(&p, &a_dir, "path");
    // PUT of the whole folder object, as a GUI saves it.
    let mut whole = p.da.get("/rest/config/folders/shared");
    whole["fsWatcherDelayS"] = json!(0.5);
    c.json("PUT", "/rest/config/folders/shared", Some(&whole))
        .unwrap();
    still_syncs(&p, &a_dir, "put");
    // `syncd folder add` over the existing folder.
    p.a.ok(&[
        "folder",
        "add",
        "shared",
        a_dir.to_str().unwrap(),
        "--device",
        &b_id,
        "--label",
        "Again",
    ]);
    assert_eq!(p.da.get("/rest/config/folders/shared")["label"], "Again");
    still_syncs(&p, &a_dir, "cli folder add");
    // Device settings, through PATCH.
    let dev = format!("/rest/config/devices/{b_id}");
    for (step, body) in [
        ("device name", json!({"name": "vps"})),
        (
            "device addresses",
            json!({"addresses": ["tcp://127.0.0.1:9", "dynamic"]}),
        ),
        ("device compression", json!({"compression": "always"})),
    ] {
        c.json("PATCH", &dev, Some(&body)).unwrap();
        still_syncs(&p, &a_dir, step);
    }
    c.json("PATCH", &dev, Some(&json!({"paused": true})))
        .unwrap();
    let conns = p.da.get("/rest/system/connections");
    assert_eq!(conns["connections"][&b_id]["paused"], true, "{conns}");
    c.json("PATCH", &dev, Some(&json!({"paused": false})))
        .unwrap();
    still_syncs(&p, &a_dir, "device resumed");
    assert_eq!(p.da.get(&dev)["name"], "vps");
}

/// `/metrics` is Prometheus text that a real parser (`prometheus-parse`) reads: folder
/// states and counts, scan durations, devices, pending lists; label values with quotes and
/// backslashes survive; the API key is needed as for the REST API.
#[test]
fn metrics_are_prometheus_text_behind_the_api_key() {
    let m = Machine::new();
    let d = m.start();
    let odd = r#"we"ird\id"#;
    // prometheus-parse keeps label values as written (escaped), so the odd ID is looked up
    // in its escaped form: it parses as one sample, its quote and backslash escaped.
    let odd_escaped = r#"we\"ird\\id"#;
    let odd_dir = m.user.join("odd");
    m.ok(&["folder", "add", odd, odd_dir.to_str().unwrap()]);
    assert_eq!(d.raw("GET", "/metrics", &[]).0, 403, "needs the key");
    let key = d.key.clone();
    let scrape = |d: &Daemon| {
        let (status, body) = d.raw("GET", "/metrics", &[("X-API-Key", &key)]);
        assert_eq!(status, 200, "{body}");
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
    };
    let value = |s: &prometheus_parse::Scrape,
                 name: &str,
                 labels: &[(&str, &str)]|
     -> Option<f64> {
        s.samples
            .iter()
            .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .map(|x| match x.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    // A scan the metrics see from its start (the first one may run before they listen).
    d.client()
        .json("POST", "/rest/db/scan?folder=default", None)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let s = loop {
        let s = scrape(&d);
        let idle = |f| {
            value(
                &s,
                "syncd_folder_state",
                &[("folder", f), ("state", "idle")],
            )
        };
        let scans = value(&s, "syncd_folder_scans_total", &[("folder", "default")]);
        if idle("default") == Some(1.0)
            && idle(odd_escaped) == Some(1.0)
            && scans.is_some_and(|n| n >= 1.0)
        {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "folders never idle");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        value(
            &s,
            "syncd_folder_state",
            &[("folder", odd_escaped), ("state", "scanning")]
        ),
        Some(0.0)
    );
    assert!(value(&s, "syncd_folder_scans_total", &[("folder", "default")]).unwrap() >= 1.0);
    assert!(
        value(
            &s,
            "syncd_folder_scan_seconds_total",
            &[("folder", "default")]
        )
        .unwrap()
            >= 0.0
    );
    assert_eq!(
        value(&s, "syncd_folder_need_items", &[("folder", odd_escaped)]),
        Some(0.0)
    );
    assert_eq!(
        value(&s, "syncd_devices", &[("state", "connected")]),
        Some(0.0)
    );
    assert_eq!(value(&s, "syncd_pending_devices", &[]), Some(0.0));
    assert!(
        s.docs.contains_key("syncd_folder_need_bytes"),
        "every family has its HELP line"
    );
}

/// Polls `cond` every 50 ms for up to 60 s; panics with `what` after that.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Versioning switched on on a running daemon through the CLI: what the peer replaces is
/// kept in B's `.stversions` (never on A, never announced), listed by REST in Syncthing's
/// shape and restored through REST and the CLI; a restore over a file versions that file.
#[test]
fn versioning_set_at_runtime_keeps_what_the_peer_replaces_and_restores_it() {
    let p = cli_pair(small_tree, false);
    let a_dir = p.a.user.join("shared");
    wait_in_sync(&p.b);
    p.b.ok(&[
        "folder",
        "set",
        "shared",
        "--versioning",
        "simple",
        "--keep",
        "2",
    ]);
    let cfg = p.db.get("/rest/config/folders/shared");
    assert_eq!(cfg["versioning"]["type"], "simple", "{cfg}");
    assert_eq!(cfg["versioning"]["params"]["keep"], "2", "{cfg}");
    let b_file = p.b_dir.join("hello.txt");
    let b_has = |want: &[u8]| std::fs::read(&b_file).ok().as_deref() == Some(want);

    std::fs::write(a_dir.join("hello.txt"), b"second\n").unwrap();
    p.da.client()
        .json("POST", "/rest/db/scan?folder=shared", None)
        .unwrap();
    eventually("B has A's second version", || b_has(b"second\n"));
    let v = p.db.get("/rest/folder/versions?folder=shared");
    let list = v["hello.txt"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["size"], 13, "{v}");
    assert!(
        list[0]["versionTime"].as_str().unwrap().ends_with('Z'),
        "{v}"
    );
    assert!(list[0]["modTime"].is_string(), "{v}");
    assert!(!a_dir.join(".stversions").exists());
    wait_in_sync(&p.b);
    assert_eq!(p.db.get("/rest/db/status?folder=shared")["globalFiles"], 2);

    // Restore through REST: the current file is versioned first; A gets the restored file.
    let t = list[0]["versionTime"].clone();
    let errors =
        p.db.client()
            .json(
                "POST",
                "/rest/folder/versions?folder=shared",
                Some(&json!({"hello.txt": t})),
            )
            .unwrap();
    assert_eq!(errors, json!({}));
    assert!(b_has(b"hello from a\n"));
    eventually("A gets the restored version", || {
        std::fs::read(a_dir.join("hello.txt")).ok().as_deref() == Some(&b"hello from a\n"[..])
    });
    let v = p.db.get("/rest/folder/versions?folder=shared");
    assert_eq!(
        v["hello.txt"][0]["size"], 7,
        "the replaced file is a version: {v}"
    );
    let bad =
        p.db.client()
            .json(
                "POST",
                "/rest/folder/versions?folder=shared",
                Some(&json!({"hello.txt": "2001-01-01T00:00:00Z", "../x": "2001-01-01T00:00:00Z"})),
            )
            .unwrap();
    assert!(
        bad["hello.txt"].is_string() && bad["../x"].is_string(),
        "{bad}"
    );

    // Restore through the CLI: the newest version (the "second" file) comes back.
    let listed =
        p.b.ok(&["versions", "list", "shared", "hello.txt", "--json"]);
    assert!(listed.contains("hello.txt"), "{listed}");
    let out = p.b.ok(&["versions", "restore", "shared", "hello.txt"]);
    assert!(out.contains("Restored"), "{out}");
    assert!(b_has(b"second\n"));
    let missing = p.b.run(&["versions", "restore", "shared", "nothing.txt"]);
    assert_eq!(missing.status.code(), Some(2));
}

/// Folder types through the CLI on two running daemons: B made receive-only keeps a file it
/// adds local (counted and listed by REST) until `syncd folder revert` removes it; A made
/// send-only ignores B's edit until `syncd folder override` makes A's version win on B.
/// Each operation refuses a folder of the other type.
#[test]
fn folder_types_override_and_revert_through_the_cli() {
    let p = cli_pair(small_tree, false);
    let (da, db, b_dir) = (&p.da, &p.db, &p.b_dir);
    wait_in_sync(&p.b);
    p.b.ok(&["folder", "set", "shared", "--type", "receiveonly"]);
    p.a.ok(&["folder", "set", "shared", "--type", "sendonly"]);
    assert_eq!(db.get("/rest/config/folders/shared")["type"], "receiveonly");
    assert_eq!(da.get("/rest/config/folders/shared")["type"], "sendonly");
    let list = p.a.ok(&["folder", "list"]);
    assert!(list.contains("(sendonly)"), "{list}");

    // Receive-only: B's addition stays on B, counted and listed, until B reverts.
    std::fs::write(b_dir.join("b-only.txt"), b"b's own").unwrap();
    let c = db.client();
    c.json("POST", "/rest/db/scan?folder=shared", None).unwrap();
    eventually("B counts its local change", || {
        db.get("/rest/db/status?folder=shared")["receiveOnlyTotalItems"] == 1
    });
    let shown = p.b.ok(&["status"]);
    assert!(shown.contains("1 local changes kept here"), "{shown}");
    let listed = db.get("/rest/db/localchanged?folder=shared");
    assert_eq!(listed["files"][0]["name"], "b-only.txt", "{listed}");
    assert!(da.get("/rest/db/status?folder=shared")["needFiles"] == 0);
    let wrong = p.b.run(&["folder", "override", "shared"]);
    assert_eq!(
        wrong.status.code(),
        Some(2),
        "override on a receive-only folder"
    );
    let out = p.b.ok(&["folder", "revert", "shared"]);
    assert!(out.contains("Revert"), "{out}");
    eventually("B's addition is gone", || {
        !b_dir.join("b-only.txt").exists()
    });
    eventually("B has no local change left", || {
        db.get("/rest/db/status?folder=shared")["receiveOnlyTotalItems"] == 0
    });

    // Send-only: A does not take B's edit until A overrides; B gets A's content back.
    p.b.ok(&["folder", "set", "shared", "--type", "sendreceive"]);
    std::fs::write(b_dir.join("hello.txt"), b"edited on b\n").unwrap();
    c.json("POST", "/rest/db/scan?folder=shared", None).unwrap();
    eventually("A needs B's edit", || {
        da.get("/rest/db/status?folder=shared")["needFiles"] == 1
    });
    let a_dir = p.a.user.join("shared");
    assert_eq!(
        std::fs::read(a_dir.join("hello.txt")).unwrap(),
        b"hello from a\n"
    );
    let wrong = p.a.run(&["folder", "revert", "shared"]);
    assert_eq!(wrong.status.code(), Some(2), "revert on a send-only folder");
    p.a.ok(&["folder", "override", "shared"]);
    eventually("B has A's version again", || {
        std::fs::read(b_dir.join("hello.txt")).ok().as_deref() == Some(&b"hello from a\n"[..])
    });
    eventually("A needs nothing", || {
        da.get("/rest/db/status?folder=shared")["needFiles"] == 0
    });
}

/// `syncd folder verify` (issue 33): a block of a synced file overwritten in place with its
/// modification time put back is invisible to scans; verification finds it (exit 1, the
/// path and block in the report and in `/rest/folder/errors`), and a clean folder exits 0.
#[test]
fn folder_verify_finds_a_block_damaged_behind_the_scanners_back() {
    use std::os::unix::fs::FileExt;
    let p = cli_pair(small_tree, false);
    wait_in_sync(&p.b);
    let clean = p.a.ok(&["folder", "verify", "shared"]);
    assert!(clean.contains("0 damaged"), "{clean}");

    let path = p.a.user.join("shared/sub/data.bin");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.write_all_at(&[9u8; 16], 200_000).unwrap();
    f.set_times(std::fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    drop(f);
    let out = p.a.run(&["folder", "verify", "shared", "--json"]);
    assert_eq!(out.status.code(), Some(1), "damage found: exit 1");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["damaged"][0]["path"], "sub/data.bin", "{report}");
    assert_eq!(
        report["damaged"][0]["blocks"],
        serde_json::json!([1]),
        "{report}"
    );
    assert_eq!(report["files"], 2, "{report}");
    let errors = p.da.get("/rest/folder/errors?folder=shared");
    assert!(
        errors["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["path"] == "sub/data.bin"
                && e["error"].as_str().unwrap().contains("damaged on disk")),
        "{errors}"
    );
    let text = p.a.run(&["folder", "verify", "shared"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("DAMAGED sub/data.bin"), "{text}");
}

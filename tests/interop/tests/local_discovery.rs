//! Local discovery v4 end to end, in two network namespaces this test creates and joins with
//! a veth pair (10.231.x.1/24 and .2/24): each side broadcasts on UDP 21027 inside its own
//! namespace, so nothing reaches the host's networks. Devices know each other only as
//! `dynamic`, global discovery is off. Needs root (`ip netns`); without it the test skips,
//! saying so, except under SYNCD_REQUIRE_SYNCTHING=1 (CI), where that is a failure.
//!
//! The daemons' REST APIs listen on 127.0.0.1 inside their namespaces, so the test asks them
//! through `ip netns exec` (`syncd status --json`, curl for Syncthing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::{FOLDER, ST_API_KEY, poll, syncd_binary};
use serde_json::Value;
use syncd_testkit::{SyncthingConfig, Versioning, Watcher};

/// Two namespaces joined by a veth pair; deleted (with the pair) on drop.
struct Netns {
    names: [String; 2],
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl Netns {
    /// `None` (skip) when this is not root or namespaces cannot be made, unless CI asks for
    /// a failure.
    fn create(tag: &str) -> Option<Netns> {
        let required = std::env::var("SYNCD_REQUIRE_SYNCTHING").as_deref() == Ok("1");
        let n = std::process::id();
        let ns = Netns {
            names: [format!("sdld{n}{tag}a"), format!("sdld{n}{tag}b")],
        };
        // The subnet differs per test so that two tests' pairs never mix.
        let net = match tag {
            "s" => 232,
            "u" => 233,
            _ => 231,
        };
        let setup = || -> Result<(), String> {
            let [a, b] = &ns.names;
            ip(&["netns", "add", a])?;
            ip(&["netns", "add", b])?;
            ip(&[
                "link", "add", "vda", "netns", a, "type", "veth", "peer", "name", "vdb", "netns", b,
            ])?;
            for (name, dev, host) in [(a, "vda", 1), (b, "vdb", 2)] {
                ip(&["-n", name, "link", "set", "lo", "up"])?;
                ip(&[
                    "-n",
                    name,
                    "addr",
                    "add",
                    &format!("10.{net}.0.{host}/24"),
                    "dev",
                    dev,
                ])?;
                ip(&["-n", name, "link", "set", dev, "up"])?;
            }
            Ok(())
        };
        match setup() {
            Ok(()) => Some(ns),
            Err(e) if required => {
                panic!("SYNCD_REQUIRE_SYNCTHING=1 but cannot create network namespaces: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: local discovery needs root and `ip netns` ({e})");
                None
            }
        }
    }

    fn exec(&self, i: usize) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.names[i]]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

/// A process started in a namespace (`ip netns exec` execs it: same PID); stopped by PID.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(mut cmd: Command, log: PathBuf) -> Proc {
        let f = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .unwrap();
        Proc { child, log }
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        syncd_testkit::stop_by_pid(&mut self.child, std::time::Duration::from_secs(20));
    }
}

fn sd(home: &Path, args: &[&str]) -> String {
    let out = Command::new(syncd_binary())
        .arg("--home")
        .arg(home)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "syncd {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A syncd home with local discovery only; returns (home, folder, id).
fn syncd_home(root: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let home = root.join(format!("{name}-home"));
    let folder = root.join(name).join(FOLDER);
    sd(&home, &["generate", "--no-default-folder"]);
    let path = home.join("config.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "global_announce_enabled = true",
        "global_announce_enabled = false",
    );
    assert!(text.contains("global_announce_enabled = false"));
    assert!(text.contains("local_announce_enabled = true"));
    std::fs::write(&path, text).unwrap();
    let id = sd(&home, &["device-id"]);
    (home, folder, id)
}

fn share(home: &Path, folder: &Path, peer: &str) {
    sd(home, &["device", "add", peer]);
    sd(
        home,
        &[
            "folder",
            "add",
            FOLDER,
            folder.to_str().unwrap(),
            "--device",
            peer,
        ],
    );
}

fn serve_in(ns: &Netns, i: usize, home: &Path) -> Proc {
    serve_on(ns, i, home, 22000)
}

fn serve_on(ns: &Netns, i: usize, home: &Path, port: u16) -> Proc {
    let mut cmd = ns.exec(i);
    cmd.arg(syncd_binary())
        .arg("--home")
        .arg(home)
        .args([
            "serve",
            "--no-browser",
            "--gui-address",
            "127.0.0.1:0",
            "--listen",
            &format!("tcp://0.0.0.0:{port}"),
        ])
        .env("RUST_LOG", "info");
    Proc::start(cmd, home.join("syncd.log"))
}

/// Whether the syncd in namespace `i` reports `peer` connected (asked in its namespace).
fn syncd_connected(ns: &Netns, i: usize, home: &Path, peer: &str) -> bool {
    let Ok(out) = ns
        .exec(i)
        .arg(syncd_binary())
        .arg("--home")
        .arg(home)
        .args(["status", "--json"])
        .env("RUST_LOG", "error")
        .output()
    else {
        return false;
    };
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    v["connections"][peer]["connected"] == true
}

fn wait_file(path: &Path, want: &[u8], context: impl Fn() -> String) {
    poll(&format!("{} arrives", path.display()), context, || {
        (std::fs::read(path).ok()? == want).then_some(())
    });
}

#[test]
fn two_syncd_daemons_find_each_other_on_the_lan() {
    let Some(ns) = Netns::create("d") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (ha, fa, ida) = syncd_home(root.path(), "a");
    let (hb, fb, idb) = syncd_home(root.path(), "b");
    share(&ha, &fa, &idb);
    share(&hb, &fb, &ida);
    let a = serve_in(&ns, 0, &ha);
    let b = serve_in(&ns, 1, &hb);
    let context = || format!("--- a:\n{}\n--- b:\n{}", a.log(), b.log());
    poll("the daemons connect", context, || {
        (syncd_connected(&ns, 0, &ha, &idb) && syncd_connected(&ns, 1, &hb, &ida)).then_some(())
    });
    let log = std::fs::read_to_string(&a.log).unwrap_or_default();
    assert!(
        log.contains("discovered device") && log.contains("10.231.0.2:22000"),
        "{log}"
    );
    // The DeviceDiscovered event, as Syncthing's: {"device": ID, "addrs": [...]}.
    let key = sd(&ha, &["api-key"]);
    let rest = std::fs::read_to_string(ha.join("rest-address")).unwrap();
    let out = ns
        .exec(0)
        .args([
            "curl",
            "-s",
            "-H",
            &format!("X-API-Key: {key}"),
            &format!(
                "http://{}/rest/events?events=DeviceDiscovered&since=0&timeout=5",
                rest.trim()
            ),
        ])
        .output()
        .unwrap();
    let events: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let found = events.as_array().into_iter().flatten().any(|e| {
        e["type"] == "DeviceDiscovered"
            && e["data"]["device"] == idb.as_str()
            && e["data"]["addrs"][0] == "tcp://10.231.0.2:22000"
    });
    assert!(found, "{events}");
    std::fs::write(fa.join("lan.txt"), b"found on the LAN").unwrap();
    wait_file(&fb.join("lan.txt"), b"found on the LAN", context);
}

#[test]
fn syncd_and_syncthing_find_each_other_on_the_lan() {
    let Some(st_bin) = syncd_testkit::syncthing_or_skip() else {
        return;
    };
    let Some(ns) = Netns::create("s") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (hd, fd, idd) = syncd_home(root.path(), "sd");
    let st_home = root.path().join("st-home");
    let st_folder = root.path().join("st").join(FOLDER);
    std::fs::create_dir_all(st_folder.join(syncd_types::names::MARKER)).unwrap();
    std::fs::create_dir_all(&st_home).unwrap();
    let ids = syncd_testkit::generate(&st_bin, &st_home).unwrap();
    let gui = 8384;
    SyncthingConfig::new(&ids, &idd, FOLDER, &st_folder)
        .ports(22000, gui)
        .api_key(ST_API_KEY)
        .local_discovery_in_private_netns()
        .watcher(Watcher::Delay(1))
        .reconnection_interval_s(2)
        .versioning(Versioning::Empty)
        .write(&st_home)
        .unwrap();
    share(&hd, &fd, &ids);
    let d = serve_in(&ns, 0, &hd);
    let mut cmd = ns.exec(1);
    let serve = syncd_testkit::serve_command(&st_bin, &st_home);
    cmd.arg(serve.get_program()).args(serve.get_args());
    for (k, v) in serve.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let st = Proc::start(cmd, st_home.join("syncthing.log"));
    let context = || format!("--- syncd:\n{}\n--- syncthing:\n{}", d.log(), st.log());
    let st_connected = || -> bool {
        let out = ns
            .exec(1)
            .args([
                "curl",
                "-s",
                "-H",
                &format!("X-API-Key: {ST_API_KEY}"),
                &format!("http://127.0.0.1:{gui}/rest/system/connections"),
            ])
            .output();
        let Ok(out) = out else { return false };
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["connections"][&idd]["connected"] == true
    };
    poll("syncd and syncthing connect", context, || {
        (syncd_connected(&ns, 0, &hd, &ids) && st_connected()).then_some(())
    });
    std::fs::write(fd.join("to-st.txt"), b"syncd on the LAN").unwrap();
    wait_file(&st_folder.join("to-st.txt"), b"syncd on the LAN", context);
    std::fs::write(st_folder.join("to-sd.txt"), b"syncthing on the LAN").unwrap();
    wait_file(&fd.join("to-sd.txt"), b"syncthing on the LAN", context);
}

/// Sends `bytes` (given as a printf format) by UDP from namespace `i` with bash's /dev/udp.
fn send_udp(ns: &Netns, i: usize, to: &str, printf: &str) {
    let status = ns
        .exec(i)
        .args(["bash", "-c", &format!("{printf} > /dev/udp/{to}/21027")])
        .status()
        .unwrap();
    assert!(status.success(), "sending {printf}");
}

#[test]
fn bad_packets_are_ignored_once_per_cause_and_a_taken_port_is_reported_once() {
    let Some(ns) = Netns::create("u") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (hb, fb, idb) = syncd_home(root.path(), "b");
    let (h1, _, _) = syncd_home(root.path(), "a1");
    let (h2, f2, id2) = syncd_home(root.path(), "a2");
    share(&hb, &fb, &id2);
    share(&h2, &f2, &idb);
    let b = serve_in(&ns, 1, &hb);
    // A1 holds 10.233.0.1:21027; A2, on the same "machine", cannot bind it.
    let a1 = serve_on(&ns, 0, &h1, 22001);
    poll(
        "a1 runs",
        || a1.log(),
        || a1.log().contains("discovery started").then_some(()),
    );
    let bad = [
        "printf 'GET / HTTP/1.1\\r\\n'",
        "printf '\\x2e\\xa7\\xd9\\x0b\\xff\\xff\\xff'",
        "printf '\\x7d\\x79\\xbc\\x40hello'",
        "printf '\\x2e\\xa7\\xd9\\x0b\\x0a\\x02\\x01\\x02'",
        "{ printf '\\x2e\\xa7\\xd9\\x0b'; head -c 60000 /dev/zero; }",
    ];
    for _ in 0..2 {
        for p in bad {
            send_udp(&ns, 1, "10.233.0.1", p);
        }
    }
    let a2 = serve_on(&ns, 0, &h2, 22002);
    let context = || {
        format!(
            "--- a1:\n{}\n--- a2:\n{}\n--- b:\n{}",
            a1.log(),
            a2.log(),
            b.log()
        )
    };
    poll("b finds a2 and they connect", context, || {
        (syncd_connected(&ns, 0, &h2, &idb) && syncd_connected(&ns, 1, &hb, &id2)).then_some(())
    });
    let log1 = std::fs::read_to_string(&a1.log).unwrap();
    let ignored = log1.matches("ignoring bad discovery input").count();
    // Five kinds of packet, each sent twice: one line per cause (bash's printf may turn two
    // kinds into the same cause, never one into two lines).
    assert!((4..=5).contains(&ignored), "{log1}");
    let log2 = std::fs::read_to_string(&a2.log).unwrap();
    assert_eq!(
        log2.matches("local discovery cannot receive").count(),
        1,
        "{log2}"
    );
    // A1 still answers after all that.
    let status = ns
        .exec(0)
        .arg(syncd_binary())
        .arg("--home")
        .arg(&h1)
        .arg("status")
        .output()
        .unwrap();
    assert!(status.status.success(), "{status:?}\n{log1}");
}

//! The web GUI in a real headless Chromium, driven over WebDriver (chromedriver) against real
//! `syncd` daemons: two daemons configured only through their GUIs sync a tree; the Show ID
//! QR code decodes (zbarimg) to the device ID; a hostile device name stays text; Recent
//! changes and the out-of-sync / failed-items lists show a hostile file name as text and run
//! no script; the Settings dialog sets a GUI login that is stored hashed.
//!
//! Needs `chromium`, `chromedriver` and `zbarimg` (Debian: `chromium chromium-driver
//! zbar-tools`). Without them the browser tests are skipped with a message, unless
//! `SYNCD_REQUIRE_BROWSER=1` (CI) makes a missing browser a failure. Everything talks to
//! loopback only; every process is stopped by its PID.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_syncd");
const HOSTILE: &str = "<img src=x onerror=alert(1)>";

// ---------- daemons ----------

struct Machine {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("syncd-home");
        std::fs::create_dir_all(dir.path().join("user")).unwrap();
        Machine { dir, home }
    }

    fn user(&self) -> PathBuf {
        self.dir.path().join("user")
    }

    fn start(&self) -> Daemon {
        self.start_logging("warn")
    }

    /// Starts with `RUST_LOG=<filter>`.
    fn start_logging(&self, filter: &str) -> Daemon {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--no-browser",
                "--no-discovery",
                "--no-default-folder",
                "--gui-address",
                "127.0.0.1:0",
                "--listen",
                "tcp://127.0.0.1:0",
                "--home",
            ])
            .arg(&self.home)
            .env("HOME", self.user())
            .env_remove("XDG_CONFIG_HOME")
            .env("RUST_LOG", filter)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let (mut rest, mut listen) = (None, None);
        while rest.is_none() || listen.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("daemon printed its addresses");
            if let Some(a) = line.strip_prefix("REST API: http://") {
                rest = Some(a.trim().parse::<SocketAddr>().unwrap());
            }
            if let Some(a) = line.strip_prefix("Listening for devices on: tcp://") {
                listen = Some(a.split(',').next().unwrap().trim().parse().unwrap());
            }
        }
        Daemon {
            child,
            rest: rest.unwrap(),
            listen: listen.unwrap(),
        }
    }
}

struct Daemon {
    child: Child,
    rest: SocketAddr,
    listen: SocketAddr,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn url(&self) -> String {
        format!("http://{}/", self.rest)
    }
}

// ---------- the browser ----------

fn find_in_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    zbarimg: PathBuf,
}

/// The browser tools, or `None` (test skipped) when one is missing and CI did not ask for
/// them; with `SYNCD_REQUIRE_BROWSER=1` a missing tool fails the test.
fn tools() -> Option<Tools> {
    let env_or = |var: &str, names: &[&str]| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .or_else(|| find_in_path(names))
    };
    let chromium = env_or(
        "SYNCD_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = env_or("SYNCD_CHROMEDRIVER", &["chromedriver"]);
    let zbarimg = find_in_path(&["zbarimg"]);
    match (chromium, chromedriver, zbarimg) {
        (Some(chromium), Some(chromedriver), Some(zbarimg)) => Some(Tools {
            chromium,
            chromedriver,
            zbarimg,
        }),
        missing => {
            let msg = format!(
                "browser test needs chromium, chromedriver and zbarimg (Debian: apt-get install \
                 chromium chromium-driver zbar-tools); found {missing:?}"
            );
            if std::env::var("SYNCD_REQUIRE_BROWSER").as_deref() == Ok("1") {
                panic!("{msg}; SYNCD_REQUIRE_BROWSER=1 makes this a failure");
            }
            eprintln!("SKIPPED: {msg}");
            None
        }
    }
}

/// A WebDriver client: JSON over HTTP/1.1 to chromedriver, which keeps connections open, so
/// the body is read by its Content-Length (not to EOF as `syncd::client` does).
struct Wd {
    addr: SocketAddr,
}

impl Wd {
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut s = TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .map_err(|e| e.to_string())?;
        let mut r = BufReader::new(s);
        let mut status_line = String::new();
        r.read_line(&mut status_line).map_err(|e| e.to_string())?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).map_err(|e| e.to_string())?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().map_err(|_| format!("bad length {v}"))?;
            }
        }
        let mut buf = vec![0; len];
        r.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let v = serde_json::from_slice(&buf).map_err(|e| e.to_string())?;
        Ok((status, v))
    }
}

/// A child process killed (by its PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// chromedriver on a free loopback port, with one headless Chromium session. Field order
/// matters: the session is deleted (Chromium quits) before chromedriver is stopped.
struct Browser {
    client: Wd,
    session: String,
    _driver: Proc,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .client
            .request("DELETE", &format!("/session/{}", self.session), None);
    }
}

impl Browser {
    fn start(tools: &Tools) -> Browser {
        let mut driver = Proc(
            Command::new(&tools.chromedriver)
                .arg("--port=0")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let stdout = driver.0.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let port: u16 = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("chromedriver printed its port");
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim().trim_end_matches('.').parse().unwrap();
            }
        };
        let client = Wd {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {"binary": tools.chromium.to_string_lossy(), "args": args},
        }}});
        let (status, resp) = client.request("POST", "/session", Some(&caps)).unwrap();
        assert_eq!(status, 200, "new session: {resp}");
        let session = resp["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            _driver: driver,
            client,
            session,
            _profile: profile,
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (status, v) = self.client.request(
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )?;
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{status} {path}: {}", v["value"]))
        }
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({"url": url}))).unwrap();
    }

    fn find(&self, css: &str) -> Result<String, String> {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("no element id in {v}"))
    }

    /// Waits until `css` matches a displayed element, then clicks it. The dashboard re-renders
    /// on events, so an element found a moment ago may be gone: then it is looked up again.
    fn click(&self, css: &str) {
        wait(&format!("{css} clicked"), || {
            let id = self.find(css).ok()?;
            let shown = self
                .cmd("GET", &format!("/element/{id}/displayed"), None)
                .ok()?;
            if shown != json!(true) {
                return None;
            }
            match self.cmd("POST", &format!("/element/{id}/click"), Some(json!({}))) {
                Ok(_) => Some(()),
                Err(e) if e.contains("stale element") => None,
                Err(e) => panic!("click {css}: {e}"),
            }
        });
    }

    /// Clears an input and types `text` into it.
    fn type_into(&self, css: &str, text: &str) {
        let id = wait(&format!("{css} present"), || self.find(css).ok());
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})))
            .unwrap();
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .unwrap();
    }

    fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .unwrap()
    }

    fn text(&self, css: &str) -> String {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Saves a PNG of the viewport to `$SYNCD_GUI_SCREENSHOTS/<name>.png` when that variable
    /// is set (how the pictures in `docs/` are made); does nothing otherwise.
    fn screenshot(&self, name: &str) {
        let Some(dir) = std::env::var_os("SYNCD_GUI_SCREENSHOTS") else {
            return;
        };
        // Let the last render and any CSS transition settle.
        std::thread::sleep(Duration::from_millis(300));
        let b64 = self.cmd("GET", "/screenshot", None).unwrap();
        let png = base64_decode(b64.as_str().unwrap());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(Path::new(&dir).join(format!("{name}.png")), png).unwrap();
    }

    /// Whether a JavaScript dialog (alert/confirm/prompt) is open.
    fn alert_open(&self) -> bool {
        self.cmd("GET", "/alert/text", None).is_ok()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(val).collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in group.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..group.len()]);
    }
    out
}

fn wait<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A plain GET over loopback (the QR image needs no auth); returns the body.
fn http_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    raw[split + 4..].to_vec()
}

fn zbar_decode(tools: &Tools, png: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("qr.png");
    std::fs::write(&file, png).unwrap();
    let out = Command::new(&tools.zbarimg)
        .args(["--quiet", "--raw"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zbarimg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

// ---------- GUI steps ----------

/// Opens the GUI and waits for the dashboard's first render.
fn open_gui(b: &Browser, d: &Daemon) {
    b.go(&d.url());
    wait("the dashboard", || {
        (b.text("#this-device [data-field=short-id]").len() == 7).then_some(())
    });
}

/// Actions → Show ID: returns the ID shown, after checking the QR image decodes to it.
fn show_id(b: &Browser, d: &Daemon, tools: &Tools) -> String {
    b.click("#btn-show-id");
    let id = wait("the ID in the dialog", || {
        let t = b.text("#idqr-id");
        (t.len() == 63).then_some(t)
    });
    wait("the QR image to load", || {
        b.js(
            "const i = document.getElementById('idqr-img'); return i.complete && i.naturalWidth > 0;",
            json!([]),
        )
        .as_bool()
        .filter(|ok| *ok)
    });
    let src = b
        .js(
            "return document.getElementById('idqr-img').getAttribute('src');",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_owned();
    let png = http_get(d.rest, &format!("/{src}"));
    assert_eq!(
        zbar_decode(tools, &png),
        id,
        "the QR code decodes to the ID"
    );
    b.screenshot("show-id");
    b.click("#dlg-id .close");
    id
}

fn add_device(b: &Browser, id: &str, name: &str, address: &str, shot: Option<&str>) {
    b.click("#btn-add-device");
    b.type_into("#device-id", id);
    wait("the ID to be validated", || {
        b.text("#device-id-msg")
            .starts_with("Valid device ID")
            .then_some(())
    });
    b.type_into("#device-name", name);
    b.type_into("#device-addresses", address);
    if let Some(shot) = shot {
        b.screenshot(shot);
    }
    b.click("#device-save");
    wait("the device panel", || {
        let error = b.text("#device-error");
        assert!(error.is_empty(), "saving the device failed: {error}");
        b.js(
            "return !document.getElementById('dlg-device').open && \
             !!document.querySelector('#devices [data-device=\"' + arguments[0] + '\"]');",
            json!([id]),
        )
        .as_bool()
        .filter(|ok| *ok)
    });
}

fn add_folder(
    b: &Browser,
    id: &str,
    label: &str,
    path: &Path,
    share_with: &str,
    ignores: &str,
    shot: Option<&str>,
) {
    b.click("#btn-add-folder");
    // The dialog offers a random ID first; wait for it, then use ours.
    wait("a random folder ID", || {
        b.js(
            "return document.getElementById('folder-id').value;",
            json!([]),
        )
        .as_str()
        .filter(|v| v.len() == 11)
        .map(|_| ())
    });
    b.type_into("#folder-label", label);
    b.type_into("#folder-id", id);
    b.type_into("#folder-path", &path.to_string_lossy());
    b.click(&format!("#folder-devices input[value=\"{share_with}\"]"));
    if !ignores.is_empty() {
        b.type_into("#folder-ignores", ignores);
    }
    if let Some(shot) = shot {
        b.screenshot(shot);
    }
    b.click("#folder-save");
    wait("the folder panel", || {
        let error = b.text("#folder-error");
        assert!(error.is_empty(), "saving the folder failed: {error}");
        b.js(
            "return !document.getElementById('dlg-folder').open && \
             !!document.querySelector('#folders [data-folder=\"' + arguments[0] + '\"]');",
            json!([id]),
        )
        .as_bool()
        .filter(|ok| *ok)
    });
}

fn write(root: &Path, rel: &str, content: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

#[test]
fn two_daemons_configured_only_through_the_gui_sync_a_tree() {
    let Some(tools) = tools() else { return };
    let (ma, mb) = (Machine::new(), Machine::new());
    let (a, d_b) = (ma.start(), mb.start());
    let b = Browser::start(&tools);

    // The tree exists before the folder does: the first scan announces it.
    let root_a = ma.user().join("shared");
    let root_b = mb.user().join("shared");
    let tree = [
        ("top.txt", "top level\n"),
        ("src/main.rs", "fn main() {}\n"),
        ("src/deep/er/notes.md", "# notes\n"),
        ("<img src=x onerror=alert(1)>.txt", "a hostile name\n"),
    ];
    for (rel, content) in tree {
        write(&root_a, rel, content);
    }
    write(&root_a, "secret.txt", "stays here\n");

    open_gui(&b, &a);
    let id_a = show_id(&b, &a, &tools);
    open_gui(&b, &d_b);
    let id_b = show_id(&b, &d_b, &tools);
    assert_ne!(id_a, id_b);

    // B: knows A (A dials), shares the folder.
    add_device(&b, &id_a, "laptop", "dynamic", Some("add-device"));
    add_folder(&b, "gui-test", "GUI test", &root_b, &id_a, "", None);

    // A: knows B under a hostile name, dials B's address, shares the folder.
    open_gui(&b, &a);
    add_device(
        &b,
        &id_b,
        HOSTILE,
        &format!("tcp://127.0.0.1:{}", d_b.listen.port()),
        None,
    );
    // The ignore editor of the new folder keeps `secret*` on A.
    add_folder(
        &b,
        "gui-test",
        "GUI test",
        &root_a,
        &id_b,
        "secret*",
        Some("add-folder"),
    );

    wait("the tree to arrive on B", || {
        tree.iter()
            .all(|(rel, content)| {
                std::fs::read_to_string(root_b.join(rel)).is_ok_and(|c| c == *content)
            })
            .then_some(())
    });

    assert!(
        !root_b.join("secret.txt").exists(),
        "an ignored file crossed"
    );
    assert_eq!(
        std::fs::read_to_string(root_a.join(".stignore")).unwrap(),
        "secret*\n"
    );

    // The dashboard follows the events: B shows as connected, the folder up to date, without
    // a reload.
    let selector = format!("#devices [data-device=\"{id_b}\"]");
    wait("B connected in A's dashboard", || {
        (b.text(&format!("{selector} [data-field=connected]")) == "connected").then_some(())
    });
    wait("the folder up to date in A's dashboard", || {
        (b.text("#folders [data-folder=\"gui-test\"] .state") == "Up to date").then_some(())
    });

    // B's folder panel names a file it received (file names are text too).
    open_gui(&b, &d_b);
    b.click("#folders [data-folder=\"gui-test\"] summary");
    wait("B's latest change", || {
        let t = b.text("#folders [data-folder=\"gui-test\"] [data-field=latest-change]");
        tree.iter()
            .any(|(rel, _)| t.starts_with(&format!("Updated {rel}, ")))
            .then_some(())
    });
    assert_eq!(
        b.js(
            "return document.querySelectorAll('img[src=\"x\"]').length;",
            json!([])
        ),
        json!(0)
    );
    assert!(!b.alert_open(), "a script from a file name ran");
    open_gui(&b, &a);

    // The hostile name is text: shown literally, no element made from it, no dialog.
    assert_eq!(b.text(&format!("{selector} .title")), HOSTILE);
    assert_eq!(
        b.js(
            "return document.querySelectorAll('img[src=\"x\"]').length;",
            json!([])
        ),
        json!(0)
    );
    assert!(!b.alert_open(), "a script from the device name ran");
    assert_eq!(
        b.js(
            "return getComputedStyle(document.getElementById('notices')).display;",
            json!([])
        ),
        json!("none"),
        "no errors, no error bar"
    );

    // The picture for docs/: panels open.
    b.click("#folders [data-folder=\"gui-test\"] summary");
    b.click(&format!("{selector} summary"));
    b.screenshot("dashboard");
}

/// Waits until a script returns `true`.
fn wait_js(b: &Browser, what: &str, script: &str, args: Value) {
    wait(what, || {
        b.js(script, args.clone()).as_bool().filter(|ok| *ok)
    });
}

#[test]
fn devices_and_folders_are_edited_and_removed_through_the_gui() {
    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let b = Browser::start(&tools);
    open_gui(&b, &d);

    // This device's name.
    b.click("#edit-this-device");
    b.type_into("#device-name", "workstation");
    b.click("#device-save");
    wait("the new name in the header", || {
        (b.text("#top-name") == "workstation").then_some(())
    });

    // A bad ID is refused while typing; Save stays disabled.
    b.click("#btn-add-device");
    b.type_into("#device-id", "NOT-A-DEVICE-ID");
    wait("the ID to be refused", || {
        b.text("#device-id-msg")
            .starts_with("Invalid device ID")
            .then_some(())
    });
    assert_eq!(
        b.js(
            "return document.getElementById('device-save').disabled;",
            json!([])
        ),
        json!(true)
    );
    b.click("#dlg-device .close");
    add_device(&b, PEER, "peer one", "dynamic", None);

    // Rename it.
    let panel = format!("#devices [data-device=\"{PEER}\"]");
    b.click(&format!("{panel} summary"));
    b.click(&format!("{panel} .edit-device"));
    b.type_into("#device-name", "peer two");
    b.click("#device-save");
    wait("the renamed device", || {
        (b.text(&format!("{panel} .title")) == "peer two").then_some(())
    });

    // A folder shared with it, then its ignore patterns edited.
    let root = m.user().join("edited");
    add_folder(&b, "f1", "Edited", &root, PEER, "", None);
    let fpanel = "#folders [data-folder=\"f1\"]";
    b.click(&format!("{fpanel} summary"));
    b.click(&format!("{fpanel} .edit-folder"));
    wait_js(
        &b,
        "the edit dialog with the device checked",
        "return document.getElementById('dlg-folder').open && \
         document.querySelector('#folder-devices input[value=\"' + arguments[0] + '\"]').checked;",
        json!([PEER]),
    );
    b.type_into("#folder-ignores", "*.log");
    b.click("#folder-save");
    wait("the patterns on disk", || {
        std::fs::read_to_string(root.join(".stignore"))
            .is_ok_and(|t| t == "*.log\n")
            .then_some(())
    });
    let c = rest(&m, &d);
    wait("the folder's ignore flag", || {
        c.get("/rest/db/status?folder=f1").unwrap()["ignorePatterns"]
            .as_bool()
            .filter(|v| *v)
    });

    // Pause and resume both from their panels. The reload after pausing the folder keeps the
    // device's panel (its text did not change) as the same element.
    b.js(
        "document.querySelector(arguments[0]).dataset.mark = 'kept';",
        json!([panel]),
    );
    b.click(&format!("{fpanel} .pause-folder"));
    wait("the folder paused", || {
        (b.text(&format!("{fpanel} .state")) == "Paused").then_some(())
    });
    assert_eq!(
        b.js(
            "return document.querySelector(arguments[0]).dataset.mark || null;",
            json!([panel])
        ),
        json!("kept")
    );
    assert_eq!(c.get("/rest/config/folders/f1").unwrap()["paused"], true);
    b.click(&format!("{fpanel} .pause-folder"));
    wait("the folder resumed", || {
        (b.text(&format!("{fpanel} .pause-folder")) == "Pause").then_some(())
    });
    assert_eq!(c.get("/rest/config/folders/f1").unwrap()["paused"], false);
    b.click(&format!("{panel} .pause-device"));
    wait("the device paused", || {
        (b.text(&format!("{panel} .state")) == "Paused").then_some(())
    });
    let dev = format!("/rest/config/devices/{PEER}");
    assert_eq!(c.get(&dev).unwrap()["paused"], true);
    b.click(&format!("{panel} .pause-device"));
    wait("the device resumed", || {
        (b.text(&format!("{panel} .pause-device")) == "Pause").then_some(())
    });
    assert_eq!(c.get(&dev).unwrap()["paused"], false);

    // Remove the folder (the files stay), then the device.
    b.click(&format!("{fpanel} .edit-folder"));
    b.click("#folder-remove");
    b.click("#confirm-yes");
    wait_js(
        &b,
        "the folder panel to go",
        "return !document.querySelector('#folders [data-folder=\"f1\"]');",
        json!([]),
    );
    assert_eq!(c.get("/rest/config/folders").unwrap(), json!([]));
    assert!(
        root.join(".stignore").is_file(),
        "removing a folder keeps its files"
    );

    b.click(&format!("{panel} .edit-device"));
    b.click("#device-remove");
    b.click("#confirm-yes");
    wait_js(
        &b,
        "the device panel to go",
        "return !document.querySelector(arguments[0]);",
        json!([panel]),
    );
    let devices = c.get("/rest/config/devices").unwrap();
    assert_eq!(
        devices.as_array().unwrap().len(),
        1,
        "only this device: {devices}"
    );
    assert_eq!(devices[0]["name"], "workstation");
    assert!(!b.alert_open());
}

#[test]
fn gui_page_gets_a_csrf_cookie_that_unlocks_rest_and_a_wrong_token_does_not() {
    let m = Machine::new();
    let d = m.start();
    let mut s = TcpStream::connect(d.rest).unwrap();
    write!(
        s,
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        d.rest
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let head = raw.split("\r\n\r\n").next().unwrap().to_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'self'"));
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .unwrap();
    let (name, rest) = cookie.split_once('=').unwrap();
    let token = rest.split(';').next().unwrap();
    assert!(name.starts_with("CSRF-Token-") && name.len() == "CSRF-Token-".len() + 5);

    let get = |headers: &str| {
        let mut s = TcpStream::connect(d.rest).unwrap();
        write!(
            s,
            "GET /rest/system/ping HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}\r\n",
            d.rest
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    assert!(get(&format!("X-{name}: {token}\r\n")).starts_with("HTTP/1.1 200"));
    assert!(get(&format!("X-{name}: wrong\r\n")).starts_with("HTTP/1.1 403"));
    assert!(get("").starts_with("HTTP/1.1 403"));
    // The cookie alone (what a cross-site request would carry) is not enough.
    assert!(get(&format!("Cookie: {name}={token}\r\n")).starts_with("HTTP/1.1 403"));
}

// ---------- the endpoints the GUI added (no browser needed) ----------

/// The API key of a machine's config (the CLI prints it).
fn api_key(m: &Machine) -> String {
    let out = Command::new(BIN)
        .args(["api-key", "--home"])
        .arg(&m.home)
        .env("HOME", m.user())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn rest(m: &Machine, d: &Daemon) -> syncd::client::Client {
    syncd::client::Client::new(d.rest, api_key(m))
}

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/syncthing-1.19.2")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn ignores_endpoint_reads_and_writes_stignore_with_syncthings_shape() {
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let root = m.user().join("f");
    c.json(
        "POST",
        "/rest/config/folders",
        Some(&json!({"id": "f", "path": root.to_string_lossy()})),
    )
    .unwrap();
    // No .stignore: all three null, as Syncthing 1.19.2 answers.
    assert_eq!(
        c.get("/rest/db/ignores?folder=f").unwrap(),
        json!({"ignore": null, "expanded": null, "error": null})
    );
    let set = c
        .json(
            "POST",
            "/rest/db/ignores?folder=f",
            Some(&json!({"ignore": ["// comment", "*.tmp", "!keep.tmp"]})),
        )
        .unwrap();
    assert_eq!(set["ignore"], json!(["// comment", "*.tmp", "!keep.tmp"]));
    assert!(set["expanded"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(set["error"], Value::Null);
    assert_eq!(
        std::fs::read_to_string(root.join(".stignore")).unwrap(),
        "// comment\n*.tmp\n!keep.tmp\n"
    );
    assert_eq!(c.get("/rest/db/ignores?folder=f").unwrap(), set);
    // A bad pattern is saved (the user sees the error and fixes it) and reported.
    let bad = c
        .json(
            "POST",
            "/rest/db/ignores?folder=f",
            Some(&json!({"ignore": ["#include missing-file"]})),
        )
        .unwrap();
    assert!(bad["error"].is_string(), "{bad}");
    // Unknown folder: 500, as Syncthing 1.19.2.
    let r = c
        .request("GET", "/rest/db/ignores?folder=nope", None)
        .unwrap();
    assert_eq!(r.status, 500);
    let r = c
        .request(
            "POST",
            "/rest/db/ignores?folder=f",
            Some(&json!({"ignore": "not a list"})),
        )
        .unwrap();
    assert_eq!(r.status, 400);
}

#[test]
fn random_string_and_config_defaults_have_syncthings_keys() {
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let r = c.get("/rest/svc/random/string?length=10").unwrap();
    assert_eq!(keys(&r), ["random"]);
    let s = r["random"].as_str().unwrap();
    assert_eq!(s.len(), 10);
    assert!(s.chars().all(|ch| ch.is_ascii_alphanumeric()));
    assert_eq!(
        c.get("/rest/svc/random/string").unwrap()["random"]
            .as_str()
            .unwrap()
            .len(),
        32
    );
    let config = fixture("config.json");
    let folder = c.get("/rest/config/defaults/folder").unwrap();
    assert_eq!(keys(&folder), keys(&config["folders"][0]));
    assert_eq!(folder["id"], "");
    let device = c.get("/rest/config/defaults/device").unwrap();
    assert_eq!(keys(&device), keys(&config["devices"][0]));
    assert_eq!(device["deviceID"], "");
}

#[test]
fn stats_endpoints_list_every_configured_device_and_folder() {
    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    c.json(
        "POST",
        "/rest/config/devices",
        Some(&json!({"deviceID": PEER, "name": "p"})),
    )
    .unwrap();
    let root = m.user().join("s");
    c.json(
        "POST",
        "/rest/config/folders",
        Some(&json!({"id": "s", "path": root.to_string_lossy()})),
    )
    .unwrap();
    let me = c.get("/rest/system/status").unwrap()["myID"].clone();
    let devices = c.get("/rest/stats/device").unwrap();
    assert_eq!(keys(&devices).len(), 2);
    for id in [me.as_str().unwrap(), PEER] {
        assert_eq!(keys(&devices[id]), ["lastConnectionDurationS", "lastSeen"]);
        assert!(devices[id]["lastSeen"].is_string());
        assert!(devices[id]["lastConnectionDurationS"].is_number());
    }
    // The first scan of `s` finishes soon after it is added.
    let folder = wait("the first scan in the stats", || {
        let f = c.get("/rest/stats/folder").unwrap();
        (f["s"]["lastScan"] != "0001-01-01T00:00:00Z").then_some(f)
    });
    assert_eq!(keys(&folder["s"]), ["lastFile", "lastScan"]);
    assert_eq!(
        keys(&folder["s"]["lastFile"]),
        ["at", "deleted", "filename"]
    );
}

#[test]
fn qr_endpoint_serves_a_png_without_the_key_and_meta_js_names_the_device() {
    let m = Machine::new();
    let d = m.start();
    let png = http_get(d.rest, "/qr/?text=hello");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let meta = String::from_utf8(http_get(d.rest, "/meta.js")).unwrap();
    let id = rest(&m, &d).get("/rest/system/status").unwrap()["myID"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(meta, format!("var metadata = {{\"deviceID\":\"{id}\"}};\n"));
}

#[test]
fn system_browse_completes_directories_under_the_users_home() {
    let m = Machine::new();
    let d = m.start();
    std::fs::create_dir_all(m.user().join("Projects/a")).unwrap();
    std::fs::create_dir_all(m.user().join("projects-old")).unwrap();
    let c = rest(&m, &d);
    let home = m.user().to_string_lossy().into_owned();
    let got = c.get("/rest/system/browse?current=~/Proj").unwrap();
    // Exact-case matches first, then the others.
    assert_eq!(
        got,
        json!([format!("{home}/Projects/"), format!("{home}/projects-old/")])
    );
    let got = c.get("/rest/system/browse?current=~/proj").unwrap();
    assert_eq!(
        got,
        json!([format!("{home}/projects-old/"), format!("{home}/Projects/")])
    );
    assert_eq!(
        c.get("/rest/system/browse?current=~/Projects/").unwrap(),
        json!([format!("{home}/Projects/a/")])
    );
    assert_eq!(c.get("/rest/system/browse").unwrap(), json!(["/"]));
}

#[test]
fn a_conflict_made_while_paused_is_resolved_from_the_conflicts_view() {
    let Some(tools) = tools() else { return };
    let (ma, mb) = (Machine::new(), Machine::new());
    let (a, d_b) = (ma.start(), mb.start());
    let (ca, cb) = (rest(&ma, &a), rest(&mb, &d_b));
    let id = |c: &syncd::client::Client| {
        c.get("/rest/system/status").unwrap()["myID"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (id_a, id_b) = (id(&ca), id(&cb));
    let (root_a, root_b) = (ma.user().join("c"), mb.user().join("c"));
    write(&root_a, "doc.txt", "line 1\nbase\nline 3\n");
    // Configured through REST here: the GUI-only set-up has its own test.
    let b_addr = format!("tcp://127.0.0.1:{}", d_b.listen.port());
    for (c, peer, addr, root) in [
        (&ca, &id_b, b_addr.as_str(), &root_a),
        (&cb, &id_a, "dynamic", &root_b),
    ] {
        c.json(
            "POST",
            "/rest/config/devices",
            Some(&json!({"deviceID": peer, "addresses": [addr]})),
        )
        .unwrap();
        c.json(
            "POST",
            "/rest/config/folders",
            Some(&json!({"id": "c", "path": root.to_string_lossy(), "devices": [{"deviceID": peer}]})),
        )
        .unwrap();
    }
    wait("doc.txt on B", || {
        std::fs::read_to_string(root_b.join("doc.txt"))
            .is_ok_and(|t| t.contains("base"))
            .then_some(())
    });

    // Both sides edit while paused, then meet again.
    ca.json("POST", &format!("/rest/system/pause?device={id_b}"), None)
        .unwrap();
    cb.json("POST", &format!("/rest/system/pause?device={id_a}"), None)
        .unwrap();
    wait("the peers apart", || {
        let conns = ca.get("/rest/system/connections").unwrap();
        (conns["connections"][&id_b]["connected"] == false).then_some(())
    });
    write(&root_a, "doc.txt", "line 1\nedited on A\nline 3\n");
    std::thread::sleep(Duration::from_millis(1100));
    write(&root_b, "doc.txt", "line 1\nedited on B\nline 3\n");
    for c in [&ca, &cb] {
        c.json("POST", "/rest/db/scan?folder=c", None).unwrap();
    }
    ca.json("POST", &format!("/rest/system/resume?device={id_b}"), None)
        .unwrap();
    cb.json("POST", &format!("/rest/system/resume?device={id_a}"), None)
        .unwrap();
    let copies = |root: &Path| -> Vec<String> {
        std::fs::read_dir(root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".sync-conflict-"))
            .collect()
    };
    let copy = wait("a conflict copy on both sides", || {
        let (x, y) = (copies(&root_a), copies(&root_b));
        (x.len() == 1 && x == y).then(|| x[0].clone())
    });
    let kept = std::fs::read_to_string(root_a.join(&copy)).unwrap();

    // A's conflicts view shows both versions and keeps the copy's.
    let b = Browser::start(&tools);
    open_gui(&b, &a);
    let fpanel = "#folders [data-folder=\"c\"]";
    b.click(&format!("{fpanel} summary"));
    b.click(&format!("{fpanel} .show-conflicts"));
    let item = format!("#conflicts-list [data-conflict=\"{copy}\"]");
    wait("the conflict listed with both texts", || {
        let t = b.text(&item);
        (t.contains("edited on A") && t.contains("edited on B")).then_some(())
    });
    b.screenshot("conflicts");
    b.click(&format!("{item} .keep-conflict"));
    wait("the list emptied", || {
        b.find("#no-conflicts").ok().map(|_| ())
    });
    for root in [&root_a, &root_b] {
        wait("the chosen content everywhere, no copy left", || {
            (std::fs::read_to_string(root.join("doc.txt")).is_ok_and(|t| t == kept)
                && copies(root).is_empty())
            .then_some(())
        });
    }
    assert!(!b.alert_open());
}

#[test]
fn a_dashboard_of_ten_folders_and_ten_devices_renders_them_all() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let ids: Vec<String> = (1..=10u8)
        .map(|i| syncd_engine::DeviceId::from_bytes([i; 32]).to_string())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        c.json(
            "POST",
            "/rest/config/devices",
            Some(&json!({"deviceID": id, "name": format!("device {i}")})),
        )
        .unwrap();
    }
    for i in 0..10 {
        let root = m.user().join(format!("f{i}"));
        write(&root, "file.txt", "x\n");
        let devices: Vec<Value> = ids.iter().map(|id| json!({"deviceID": id})).collect();
        c.json(
            "POST",
            "/rest/config/folders",
            Some(
                &json!({"id": format!("f{i}"), "path": root.to_string_lossy(), "devices": devices}),
            ),
        )
        .unwrap();
    }
    let b = Browser::start(&tools);
    let started = Instant::now();
    open_gui(&b, &d);
    let counts = b.js(
        "return [document.querySelectorAll('#folders details[data-folder]').length, \
                 document.querySelectorAll('#devices details[data-device]').length];",
        json!([]),
    );
    // How long it took is reported, not asserted (timing belongs in benchmarks); issue 26
    // asks for under a second in the test browser.
    eprintln!(
        "dashboard with 10 folders and 10 devices rendered in {:?} (navigation included)",
        started.elapsed()
    );
    assert_eq!(counts, json!([10, 10]));
    b.screenshot("ten-by-ten");
}

#[test]
fn without_its_csrf_cookie_the_page_asks_for_the_api_key_and_works_with_it() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let b = Browser::start(&tools);
    open_gui(&b, &d);
    // What a page served to a non-loopback client has: no token.
    b.cmd("DELETE", "/cookie", None).unwrap();
    b.click("#btn-add-device");
    b.type_into("#device-id", "X");
    wait_js(
        &b,
        "the API key prompt",
        "return !document.getElementById('login').hidden;",
        json!([]),
    );
    b.click("#dlg-device .close");
    b.type_into("#login-key", "wrong-key");
    b.click("#login-form button");
    std::thread::sleep(Duration::from_millis(500));
    wait_js(
        &b,
        "the prompt again after a wrong key",
        "return !document.getElementById('login').hidden;",
        json!([]),
    );
    // Only a successful load can draw this panel again.
    b.js(
        "sessionStorage.clear(); document.getElementById('this-device').replaceChildren();",
        json!([]),
    );
    b.type_into("#login-key", &api_key(&m));
    b.click("#login-form button");
    wait_js(
        &b,
        "the dashboard with the key",
        "return document.getElementById('login').hidden && !document.getElementById('main').hidden \
         && document.querySelector('#this-device [data-field=short-id]') !== null;",
        json!([]),
    );
    assert_eq!(
        b.js("return document.cookie;", json!([])),
        json!(""),
        "no token was used"
    );
    // And the page is live again: a folder added by a script appears by itself.
    let root = m.user().join("later");
    rest(&m, &d)
        .json(
            "POST",
            "/rest/config/folders",
            Some(&json!({"id": "later", "path": root.to_string_lossy()})),
        )
        .unwrap();
    wait_js(
        &b,
        "the new folder without a reload",
        "return !!document.querySelector('#folders details[data-folder=\"later\"]');",
        json!([]),
    );
}

#[test]
fn system_error_lang_and_discovery_answer_as_syncthing_1_19() {
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    assert_eq!(
        c.get("/rest/system/error").unwrap(),
        json!({"errors": null})
    );
    let r = c
        .request(
            "POST",
            "/rest/system/error",
            Some(&json!("disk almost full")),
        )
        .unwrap();
    assert_eq!(r.status, 200);
    let errors = c.get("/rest/system/error").unwrap();
    assert_eq!(errors["errors"][0]["message"], "\"disk almost full\"");
    assert!(errors["errors"][0]["when"].is_string());
    assert!(errors["errors"][0]["level"].is_number());
    c.json("POST", "/rest/system/error/clear", None).unwrap();
    assert_eq!(
        c.get("/rest/system/error").unwrap(),
        json!({"errors": null})
    );
    assert_eq!(c.get("/rest/system/discovery").unwrap(), json!({}));
    assert_eq!(c.get("/rest/svc/lang").unwrap(), json!([""]));
}

#[test]
fn errors_show_as_text_in_the_gui_until_cleared_and_logs_show_too() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start_logging("info");
    let c = rest(&m, &d);
    c.request("POST", "/rest/system/error", Some(&json!(HOSTILE)))
        .unwrap();
    let b = Browser::start(&tools);
    open_gui(&b, &d);
    wait("the error shown", || {
        b.text("#notices-list li")
            .ends_with(&format!("\"{HOSTILE}\""))
            .then_some(())
    });
    assert_eq!(
        b.js(
            "return document.querySelectorAll('img[src=\"x\"]').length;",
            json!([])
        ),
        json!(0)
    );
    b.click("#notices-clear");
    wait_js(
        &b,
        "the errors bar gone from the page",
        "return getComputedStyle(document.getElementById('notices')).display === 'none';",
        json!([]),
    );
    assert_eq!(
        c.get("/rest/system/error").unwrap(),
        json!({"errors": null})
    );

    b.click("#btn-logs");
    wait("the start line in the logs dialog", || {
        b.text("#logs-list").contains("syncd started").then_some(())
    });
    assert!(!b.alert_open());
}

#[test]
fn put_config_adds_changes_and_removes_devices_and_folders_at_run_time() {
    const PEER: &str = "P56IOI7-MZJNU2Y-IQGDREY-DM2MGTI-MGL3BXN-PQ6W5BM-TBBZ4TJ-XZWICQ2";
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let mut config = c.get("/rest/config").unwrap();
    let me = c.get("/rest/system/status").unwrap()["myID"].clone();
    let root = m.user().join("put");
    // As Syncthing's GUI does: take the defaults, fill them in, PUT everything back.
    let mut device = config["defaults"]["device"].clone();
    device["deviceID"] = json!(PEER);
    device["name"] = json!("peer");
    let mut folder = config["defaults"]["folder"].clone();
    folder["id"] = json!("put");
    folder["label"] = json!("Put");
    folder["path"] = json!(root.to_string_lossy());
    folder["devices"] = json!([{"deviceID": me}, {"deviceID": PEER}]);
    config["devices"].as_array_mut().unwrap().push(device);
    config["devices"][0]["name"] = json!("renamed");
    config["folders"].as_array_mut().unwrap().push(folder);
    c.json("PUT", "/rest/config", Some(&config)).unwrap();

    let got = c.get("/rest/config").unwrap();
    assert_eq!(got["devices"][0]["name"], "renamed");
    assert_eq!(got["devices"][1]["deviceID"], PEER);
    assert_eq!(got["folders"][0]["id"], "put");
    assert_eq!(got["folders"][0]["devices"][1]["deviceID"], PEER);
    assert!(root.join(".stfolder").is_dir(), "the folder runs");
    c.get("/rest/db/status?folder=put").unwrap();

    // A folder shared with a device that is not in the body is refused, nothing changes.
    let mut bad = got.clone();
    bad["devices"].as_array_mut().unwrap().truncate(1);
    let r = c.request("PUT", "/rest/config", Some(&bad)).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(c.get("/rest/config").unwrap()["devices"], got["devices"]);

    // Removing both through the whole config.
    let mut less = got.clone();
    less["folders"] = json!([]);
    less["devices"].as_array_mut().unwrap().truncate(1);
    c.json("PUT", "/rest/config", Some(&less)).unwrap();
    let after = c.get("/rest/config").unwrap();
    assert_eq!(after["folders"], json!([]));
    assert_eq!(after["devices"].as_array().unwrap().len(), 1);
    let r = c
        .request("GET", "/rest/db/status?folder=put", None)
        .unwrap();
    assert_eq!(r.status, 404);
}

#[test]
fn system_log_returns_the_daemons_recent_lines_and_defaults_ignores_is_empty() {
    let m = Machine::new();
    let d = m.start_logging("info");
    let c = rest(&m, &d);
    let log = wait("the start line in the log", || {
        let log = c.get("/rest/system/log").unwrap();
        log["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("syncd started"))
            .then_some(log)
    });
    let first = &log["messages"][0];
    assert_eq!(keys(first), ["level", "message", "when"]);
    assert!(first["level"].is_number() && first["when"].is_string());
    assert_eq!(
        c.get("/rest/system/log?since=2999-01-01T00:00:00Z")
            .unwrap(),
        json!({"messages": []})
    );
    assert_eq!(
        c.get("/rest/config/defaults/ignores").unwrap(),
        json!({"lines": []})
    );
}

/// Whether the page ever ran a script planted in data: `alert` is replaced by a recorder
/// before anything is shown (a real alert would also block WebDriver).
fn plant_alert_recorder(b: &Browser) {
    b.js(
        "window.__alerts = 0; window.alert = function () { window.__alerts += 1; };",
        json!([]),
    );
}

fn no_script_ran(b: &Browser, scope: &str) {
    assert!(!b.alert_open());
    assert_eq!(b.js("return window.__alerts;", json!([])), json!(0));
    assert_eq!(
        b.js(
            "return document.querySelectorAll(arguments[0] + ' img').length;",
            json!([scope])
        ),
        json!(0),
        "no markup from data in {scope}"
    );
}

#[test]
fn recent_changes_list_a_hostile_file_name_as_text() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let root = m.user().join("h");
    c.json(
        "POST",
        "/rest/config/folders",
        Some(&json!({"id": "h", "label": HOSTILE, "path": root.to_string_lossy()})),
    )
    .unwrap();
    let b = Browser::start(&tools);
    // Opening the page turns on the daemon's recording of changes on disk.
    open_gui(&b, &d);
    plant_alert_recorder(&b);
    let name = format!("{HOSTILE}.txt");
    write(&root, &name, "x");
    c.json("POST", "/rest/db/scan?folder=h", None).unwrap();
    b.click("#btn-changes");
    let row = wait("the change listed", || {
        let t = b.text("#changes-list tr.change td.path");
        if t.is_empty() {
            b.click("#changes-refresh");
            return None;
        }
        Some(t)
    });
    assert_eq!(row, name, "the file name, literally");
    let cells = b.js(
        "return Array.from(document.querySelectorAll('#changes-list tr.change:first-child td')).map((td) => td.textContent);",
        json!([]),
    );
    assert_eq!(cells[1], "this device");
    // (Syncthing 1.19 says "modified" for a new file too: its version counters are clocks.)
    assert!(cells[2] == "added" || cells[2] == "modified", "{cells}");
    assert_eq!(cells[3], "file");
    assert_eq!(cells[4], HOSTILE, "the folder label, literally");
    b.screenshot("recent-changes");
    no_script_ran(&b, "#dlg-changes");
}

#[test]
fn out_of_sync_items_of_a_device_open_as_a_list_with_names_as_text() {
    let Some(tools) = tools() else { return };
    let (ma, mb) = (Machine::new(), Machine::new());
    let (a, d_b) = (ma.start(), mb.start());
    let (ca, cb) = (rest(&ma, &a), rest(&mb, &d_b));
    let id = |c: &syncd::client::Client| {
        c.get("/rest/system/status").unwrap()["myID"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (id_a, id_b) = (id(&ca), id(&cb));
    let (root_a, root_b) = (ma.user().join("o"), mb.user().join("o"));
    write(&root_a, "first.txt", "1");
    let b_addr = format!("tcp://127.0.0.1:{}", d_b.listen.port());
    for (c, peer, addr, root) in [
        (&ca, &id_b, b_addr.as_str(), &root_a),
        (&cb, &id_a, "dynamic", &root_b),
    ] {
        c.json(
            "POST",
            "/rest/config/devices",
            Some(&json!({"deviceID": peer, "name": HOSTILE, "addresses": [addr]})),
        )
        .unwrap();
        c.json(
            "POST",
            "/rest/config/folders",
            Some(&json!({"id": "o", "path": root.to_string_lossy(), "devices": [{"deviceID": peer}]})),
        )
        .unwrap();
    }
    wait("first.txt on B", || {
        root_b.join("first.txt").exists().then_some(())
    });
    // Apart, A gets a file B has not seen: B needs it, as far as A knows.
    ca.json("POST", &format!("/rest/system/pause?device={id_b}"), None)
        .unwrap();
    wait("the peers apart", || {
        let conns = ca.get("/rest/system/connections").unwrap();
        (conns["connections"][&id_b]["connected"] == false).then_some(())
    });
    let name = format!("{HOSTILE}.txt");
    write(&root_a, &name, "new on A");
    ca.json("POST", "/rest/db/scan?folder=o", None).unwrap();
    wait("B's need on A", || {
        let c = ca
            .get(&format!("/rest/db/completion?folder=o&device={id_b}"))
            .unwrap();
        (c["needItems"] == 1).then_some(())
    });

    let b = Browser::start(&tools);
    open_gui(&b, &a);
    plant_alert_recorder(&b);
    let panel = format!("#devices [data-device=\"{id_b}\"]");
    b.click(&format!("{panel} summary"));
    b.click(&format!("{panel} .show-remote-need"));
    let listed = wait("the list", || {
        let t = b.text("#items-list tr.item td.path");
        (!t.is_empty()).then_some(t)
    });
    assert_eq!(listed, name);
    assert!(
        b.text("#dlg-items-title").contains(HOSTILE),
        "the device name, as text"
    );
    b.screenshot("out-of-sync");
    no_script_ran(&b, "#dlg-items");
    no_script_ran(&b, "#devices");
}

#[test]
fn failed_and_out_of_sync_items_of_a_folder_open_as_lists_with_names_as_text() {
    let Some(tools) = tools() else { return };
    let (ma, mb) = (Machine::new(), Machine::new());
    let (a, d_b) = (ma.start(), mb.start());
    let (ca, cb) = (rest(&ma, &a), rest(&mb, &d_b));
    let id = |c: &syncd::client::Client| {
        c.get("/rest/system/status").unwrap()["myID"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (id_a, id_b) = (id(&ca), id(&cb));
    let (root_a, root_b) = (ma.user().join("o"), mb.user().join("o"));
    write(&root_b, &format!("{HOSTILE}/f.txt"), "f");
    let b_addr = format!("tcp://127.0.0.1:{}", d_b.listen.port());
    for (c, peer, addr, root) in [
        (&ca, &id_b, b_addr.as_str(), &root_a),
        (&cb, &id_a, "dynamic", &root_b),
    ] {
        c.json(
            "POST",
            "/rest/config/devices",
            Some(&json!({"deviceID": peer, "addresses": [addr]})),
        )
        .unwrap();
        c.json(
            "POST",
            "/rest/config/folders",
            Some(&json!({"id": "o", "path": root.to_string_lossy(), "devices": [{"deviceID": peer}]})),
        )
        .unwrap();
    }
    wait("the directory on A", || {
        root_a.join(HOSTILE).join("f.txt").exists().then_some(())
    });
    // A keeps an ignored file in the directory; B deletes the directory: A cannot follow
    // (as Syncthing: a directory holding ignored files is not deleted).
    ca.json(
        "POST",
        "/rest/db/ignores?folder=o",
        Some(&json!({"ignore": ["keep"]})),
    )
    .unwrap();
    write(&root_a, &format!("{HOSTILE}/keep"), "mine");
    ca.json("POST", "/rest/db/scan?folder=o", None).unwrap();
    std::fs::remove_dir_all(root_b.join(HOSTILE)).unwrap();
    cb.json("POST", "/rest/db/scan?folder=o", None).unwrap();
    wait("a failed item on A", || {
        let s = ca.get("/rest/db/status?folder=o").unwrap();
        (s["pullErrors"].as_u64().unwrap_or(0) > 0).then_some(())
    });

    let b = Browser::start(&tools);
    open_gui(&b, &a);
    plant_alert_recorder(&b);
    let panel = "#folders [data-folder=\"o\"]";
    b.click(&format!("{panel} summary"));
    b.click(&format!("{panel} .show-failed"));
    let row = wait("the failed item", || {
        let cells = b.js(
            "return Array.from(document.querySelectorAll('#items-list tr.item td')).map((td) => td.textContent);",
            json!([]),
        );
        cells.as_array().filter(|c| !c.is_empty()).map(|c| {
            c.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        })
    });
    assert_eq!(row[0], HOSTILE, "the path, literally: {row:?}");
    assert!(!row[1].is_empty(), "with its reason: {row:?}");
    no_script_ran(&b, "#dlg-items");
    b.click("#dlg-items .close");
    b.click(&format!("{panel} .show-need"));
    let need = wait("the out-of-sync list", || {
        let t = b.text("#items-list tr.item td.path");
        (!t.is_empty()).then_some(t)
    });
    assert_eq!(need, HOSTILE);
    assert!(b.text("#dlg-items-title").starts_with("Out of sync items"));
    no_script_ran(&b, "#dlg-items");
    no_script_ran(&b, "#folders");
}

#[test]
fn the_settings_dialog_sets_a_gui_login_that_is_stored_hashed() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let b = Browser::start(&tools);
    open_gui(&b, &d);
    assert!(
        b.js(
            "return document.getElementById('exposure-banner').hidden;",
            json!([])
        ) == json!(true),
        "no warning for a GUI on loopback"
    );
    b.click("#btn-settings");
    wait_js(
        &b,
        "the dialog filled in",
        "return document.getElementById('gui-address').value !== '';",
        json!([]),
    );
    b.type_into("#gui-user", "erin");
    b.type_into("#gui-password", "typed in the gui");
    b.click("#settings-save");
    wait_js(
        &b,
        "the saved message",
        "return document.getElementById('settings-msg').textContent.startsWith('Saved');",
        json!([]),
    );
    let gui = rest(&m, &d).get("/rest/config/gui").unwrap();
    assert_eq!(gui["user"], "erin");
    let hash = gui["password"].as_str().unwrap();
    assert!(hash.starts_with("$2b$10$"), "{hash}");
    let text = std::fs::read_to_string(m.home.join("config.toml")).unwrap();
    assert!(!text.contains("typed in the gui"), "{text}");
    // The page's own, unauthenticated, requests are now refused; a login works.
    assert_eq!(http_status(d.rest, "/", None), 401);
    let auth = format!("Basic {}", base64_encode(b"erin:typed in the gui"));
    assert_eq!(http_status(d.rest, "/", Some(&auth)), 200);
    assert!(!b.alert_open());
}

fn base64_encode(raw: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(T[((n >> (18 - 6 * i)) & 63) as usize])
            } else {
                '='
            });
        }
    }
    out
}

/// The status of a GET over loopback, with an optional `Authorization` header.
fn http_status(addr: SocketAddr, path: &str, auth: Option<&str>) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A device that asks to connect and the folder it then offers are accepted from their
/// banners in the GUI (Add device → the dialog comes prefilled with its ID and the name it
/// announced; Add → the folder dialog with its ID, label and the device ticked); the
/// announced name and the offered label, hostile markup, stay text.
#[test]
fn a_device_and_a_folder_asking_to_join_are_accepted_from_their_banners() {
    let Some(tools) = tools() else { return };
    let (ma, mb) = (Machine::new(), Machine::new());
    // B is named with markup (the name its Hello announces), set before it starts.
    let out = Command::new(BIN)
        .args(["generate", "--no-default-folder", "--home"])
        .arg(&mb.home)
        .env("HOME", mb.user())
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg = mb.home.join("config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let named: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("device_name = ") {
                format!("device_name = {}", serde_json::to_string(HOSTILE).unwrap())
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&cfg, named.join("\n") + "\n").unwrap();
    let (a, d_b) = (ma.start(), mb.start());
    let (ra, rb) = (rest(&ma, &a), rest(&mb, &d_b));
    let id_of = |c: &syncd::client::Client| {
        c.get("/rest/system/status").unwrap()["myID"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (id_a, id_b) = (id_of(&ra), id_of(&rb));
    // B knows A at its address and offers a folder to A.
    let root_b = mb.user().join("offered");
    write(&root_b, "from-b.txt", "offered by B\n");
    rb.json(
        "POST",
        "/rest/config/devices",
        Some(&json!({"deviceID": id_a, "name": "a",
                     "addresses": [format!("tcp://127.0.0.1:{}", a.listen.port())]})),
    )
    .unwrap();
    rb.json(
        "POST",
        "/rest/config/folders",
        Some(&json!({"id": "offer", "label": format!("Label {HOSTILE}"),
                     "path": root_b.to_string_lossy(), "devices": [{"deviceID": id_a}]})),
    )
    .unwrap();

    let b = Browser::start(&tools);
    open_gui(&b, &a);
    let row = wait("the pending device's banner", || {
        let t = b.text("#pending .ask .text");
        t.contains("wants to connect").then_some(t)
    });
    assert!(
        row.contains(HOSTILE) && row.contains(&id_b),
        "the announced name, as text: {row}"
    );
    b.screenshot("pending");
    b.click("#pending .ask button.primary");
    wait("the dialog prefilled and the ID checked", || {
        b.text("#device-id-msg")
            .starts_with("Valid device ID")
            .then_some(())
    });
    assert_eq!(
        b.js(
            "return document.getElementById('device-name').value;",
            json!([])
        ),
        json!(HOSTILE)
    );
    b.click("#device-save");
    let selector = format!("#devices [data-device=\"{id_b}\"]");
    wait("B connected in A's dashboard", || {
        (b.text(&format!("{selector} [data-field=connected]")) == "connected").then_some(())
    });

    // B's folder is offered now that they are connected.
    let row = wait("the pending folder's banner", || {
        let t = b.text("#pending .ask .text");
        t.contains("wants to share folder").then_some(t)
    });
    assert!(row.contains(&format!("Label {HOSTILE}")), "{row}");
    b.click("#pending .ask button.primary");
    wait("the folder dialog prefilled", || {
        (b.js(
            "return document.getElementById('folder-id').value;",
            json!([]),
        ) == json!("offer"))
        .then_some(())
    });
    assert_eq!(
        b.js(
            "return document.querySelector('#folder-devices input[value=\"' + arguments[0] + '\"]').checked;",
            json!([id_b])
        ),
        json!(true),
        "the offering device is ticked"
    );
    let root_a = ma.user().join("accepted");
    b.type_into("#folder-path", &root_a.to_string_lossy());
    b.click("#folder-save");
    wait("B's file on A", || {
        (std::fs::read_to_string(root_a.join("from-b.txt")).ok()? == "offered by B\n").then_some(())
    });
    wait("no banner left", || {
        b.js(
            "return document.getElementById('pending').hidden;",
            json!([]),
        )
        .as_bool()
        .filter(|h| *h)
    });
    assert_eq!(
        b.js(
            "return document.querySelectorAll('img[src=\"x\"]').length;",
            json!([])
        ),
        json!(0)
    );
    assert!(!b.alert_open(), "a script from a name or label ran");
}

/// Folder dialog → File versioning saves Syncthing's `versioning` object; the folder's
/// Versions browser lists a kept version and restores it (the file it replaces is kept).
#[test]
fn versioning_is_set_in_the_folder_dialog_and_a_version_is_restored_from_the_browser() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let root = m.user().join("v");
    c.json(
        "POST",
        "/rest/config/folders",
        Some(&json!({"id": "v", "path": root.to_string_lossy()})),
    )
    .unwrap();
    write(&root, "a.txt", "current");
    write(&root, ".stversions/a~20260102-150405.txt", "kept");
    let b = Browser::start(&tools);
    open_gui(&b, &d);
    plant_alert_recorder(&b);
    let panel = "#folders [data-folder=\"v\"]";
    b.click(&format!("{panel} summary"));
    b.click(&format!("{panel} .edit-folder"));
    b.js(
        "const s = document.getElementById('folder-versioning'); s.value = 'simple'; \
         s.dispatchEvent(new Event('change'));",
        json!([]),
    );
    b.js(
        "document.getElementById('folder-v-keep').value = '3';",
        json!([]),
    );
    b.click("#folder-save");
    wait("versioning saved", || {
        let v = c.get("/rest/config/folders/v").unwrap();
        (v["versioning"]["type"] == "simple" && v["versioning"]["params"]["keep"] == "3")
            .then_some(())
    });
    wait("the Versions button", || {
        b.js(
            "const x = document.querySelector(arguments[0]); return !!x && !x.hidden;",
            json!([format!("{panel} .show-versions")]),
        )
        .as_bool()
        .filter(|ok| *ok)
    });
    b.click(&format!("{panel} .show-versions"));
    let item = "#versions-list [data-path=\"a.txt\"] .restore-version";
    wait("the version listed", || b.find(item).ok().map(|_| ()));
    b.click(item);
    wait("the version restored", || {
        (std::fs::read_to_string(root.join("a.txt")).ok().as_deref() == Some("kept")).then_some(())
    });
    let v = c.get("/rest/folder/versions?folder=v").unwrap();
    assert_eq!(v["a.txt"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["a.txt"][0]["size"], 7, "the replaced file is kept: {v}");
    no_script_ran(&b, "#dlg-versions");
}

/// Folder dialog → Folder type saves Syncthing's `type`; a receive-only folder with a local
/// change shows it in its panel with **Revert local changes**, which (once confirmed) removes
/// the file that exists only here.
#[test]
fn folder_type_is_set_in_the_folder_dialog_and_local_changes_are_reverted_from_the_panel() {
    let Some(tools) = tools() else { return };
    let m = Machine::new();
    let d = m.start();
    let c = rest(&m, &d);
    let root = m.user().join("r");
    c.json(
        "POST",
        "/rest/config/folders",
        Some(&json!({"id": "r", "path": root.to_string_lossy()})),
    )
    .unwrap();
    let b = Browser::start(&tools);
    open_gui(&b, &d);
    plant_alert_recorder(&b);
    let panel = "#folders [data-folder=\"r\"]";
    b.click(&format!("{panel} summary"));
    b.click(&format!("{panel} .edit-folder"));
    b.js(
        "document.getElementById('folder-type').value = 'receiveonly';",
        json!([]),
    );
    b.click("#folder-save");
    wait("type saved", || {
        (c.get("/rest/config/folders/r").unwrap()["type"] == "receiveonly").then_some(())
    });
    write(&root, "local.txt", "made here");
    c.json("POST", "/rest/db/scan?folder=r", None).unwrap();
    let revert = format!("{panel} .revert-folder");
    wait("the Revert button", || {
        b.js(
            "const x = document.querySelector(arguments[0]); return !!x && !x.hidden;",
            json!([revert]),
        )
        .as_bool()
        .filter(|ok| *ok)
    });
    let shown = b
        .js(
            "return document.querySelector(arguments[0]).textContent;",
            json!([format!("{panel} [data-field=\"type\"]")]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(shown.contains("Receive only"), "{shown}");
    b.click(&revert);
    b.click("#confirm-yes");
    wait("the local-only file removed", || {
        (!root.join("local.txt").exists()).then_some(())
    });
    wait("no local change left", || {
        (c.get("/rest/db/status?folder=r").unwrap()["receiveOnlyTotalItems"] == 0).then_some(())
    });
    no_script_ran(&b, "#folders");
}

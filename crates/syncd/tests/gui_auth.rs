//! The GUI's login (user, bcrypt password, session cookie, CSRF, slow-down), HTTPS, restart,
//! and the endpoints of features syncd does not have (upgrade, usage report), against the
//! real `syncd` binary over real HTTP(S).
//!
//! Every daemon binds port 0 on loopback and is stopped by its PID when the test ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_syncd");

struct Machine {
    _dir: tempfile::TempDir,
    user: PathBuf,
    home: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user");
        std::fs::create_dir_all(&user).unwrap();
        let home = dir.path().join("syncd-home");
        Machine {
            _dir: dir,
            user,
            home,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--home")
            .arg(&self.home)
            .env("HOME", &self.user)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("SYNCD_RESTART_GUI_ADDRESS")
            .env("RUST_LOG", "warn");
        c
    }

    /// Runs with `stdin` as standard input; asserts success; returns stdout.
    fn ok(&self, args: &[&str], stdin: &str) -> String {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "syncd {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn api_key(&self) -> String {
        self.ok(&["api-key"], "").trim().to_owned()
    }

    fn config_text(&self) -> String {
        std::fs::read_to_string(self.home.join("config.toml")).unwrap()
    }

    fn start(&self) -> Daemon {
        self.ok(&["generate", "--no-default-folder"], "");
        let mut child = self
            .cmd(&[
                "serve",
                "--no-browser",
                "--no-discovery",
                "--gui-address",
                "127.0.0.1:0",
                "--listen",
                "tcp://127.0.0.1:0",
            ])
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
        let mut d = Daemon {
            child,
            lines: rx,
            rest: "127.0.0.1:0".parse().unwrap(),
            key: self.api_key(),
            id: String::new(),
        };
        d.rest = d.next_rest_address();
        d.id = d
            .request("GET", "/rest/system/status", &[("X-API-Key", &d.key)], "")
            .json()["myID"]
            .as_str()
            .unwrap()
            .to_owned();
        d
    }
}

/// A running daemon, killed by PID on drop.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    rest: SocketAddr,
    key: String,
    id: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The value of the cookie `name` that this answer sets.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
    }
    fn json(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        serde_json::from_str(&self.body).unwrap()
    }
}

fn http(
    stream: &mut dyn ReadWrite,
    host: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    // A TLS peer may close without close_notify after the answer; what was read counts.
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_owned(),
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn basic(user: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

impl Daemon {
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut s = TcpStream::connect(self.rest).unwrap();
        http(&mut s, self.rest, method, path, headers, body)
    }

    fn with_key(&self, method: &str, path: &str, body: &str) -> Resp {
        self.request(method, path, &[("X-API-Key", &self.key)], body)
    }

    fn short(&self) -> &str {
        &self.id[..5]
    }

    /// The next `REST API:` line the daemon prints (at start, and again after a restart).
    fn next_rest_address(&self) -> SocketAddr {
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the daemon printed its REST address");
            if let Some(a) = line
                .strip_prefix("REST API: http://")
                .or_else(|| line.strip_prefix("REST API: https://"))
            {
                return a.trim().parse().unwrap();
            }
        }
    }

    /// Logs in with Basic credentials on `/`: (session cookie, CSRF token).
    fn login(&self, user: &str, password: &str) -> (String, String) {
        let r = self.request("GET", "/", &[("Authorization", &basic(user, password))], "");
        assert_eq!(r.status, 200, "{r:?}");
        let session = r
            .cookie(&format!("sessionid-{}", self.short()))
            .expect("a session cookie");
        let csrf = r
            .cookie(&format!("CSRF-Token-{}", self.short()))
            .expect("a CSRF cookie");
        (session, csrf)
    }
}

fn with_password(m: &Machine, user: &str, password: &str) {
    m.ok(&["generate", "--no-default-folder"], "");
    let out = m.ok(
        &["gui", "set-password", "--user", user],
        &format!("{password}\n"),
    );
    assert!(out.contains("GUI login set"), "{out}");
}

#[test]
fn without_a_password_the_gui_works_on_loopback() {
    let m = Machine::new();
    let d = m.start();
    let page = d.request("GET", "/", &[], "");
    assert_eq!(page.status, 200);
    assert_eq!(page.cookie(&format!("sessionid-{}", d.short())), None);
    let csrf = page.cookie(&format!("CSRF-Token-{}", d.short())).unwrap();
    let r = d.request(
        "GET",
        "/rest/system/version",
        &[(&format!("X-CSRF-Token-{}", d.short()), &csrf)],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        d.request("GET", "/rest/system/version", &[], "").status,
        403
    );
    let gui = d.with_key("GET", "/rest/config/gui", "").json();
    assert_eq!(
        (gui["user"].as_str(), gui["password"].as_str()),
        (Some(""), Some(""))
    );
    assert_eq!(gui["useTLS"], false);
}

#[test]
fn with_a_password_the_page_and_rest_need_a_session_or_the_api_key() {
    let m = Machine::new();
    with_password(&m, "alice", "correct horse");
    let text = m.config_text();
    assert!(text.contains("user = \"alice\""), "{text}");
    assert!(
        !text.contains("correct horse"),
        "only the hash is stored: {text}"
    );
    assert!(text.contains("password = \"$2b$10$"), "{text}");
    let d = m.start();
    for path in [
        "/",
        "/index.html",
        "/app.js",
        "/meta.js",
        "/rest/system/version",
    ] {
        let r = d.request("GET", path, &[], "");
        assert_eq!(r.status, 401, "{path}: {r:?}");
        assert_eq!(
            r.header("WWW-Authenticate"),
            Some("Basic realm=\"Authorization Required\""),
            "{path}"
        );
        assert_eq!(
            r.header("X-Syncthing-ID"),
            None,
            "nothing about us before the login"
        );
    }
    // Scripts: the API key, either header.
    assert_eq!(d.with_key("GET", "/rest/system/version", "").status, 200);
    let bearer = format!("Bearer {}", d.key);
    assert_eq!(
        d.request(
            "GET",
            "/rest/system/version",
            &[("Authorization", &bearer)],
            ""
        )
        .status,
        200
    );
    // The health check stays open.
    assert_eq!(d.request("GET", "/rest/noauth/health", &[], "").status, 200);
    // A browser: Basic credentials once, then the session cookie with the CSRF header.
    let (session, csrf) = d.login("alice", "correct horse");
    let cookie = format!("sessionid-{}={session}", d.short());
    let csrf_header = format!("X-CSRF-Token-{}", d.short());
    let r = d.request("GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(r.status, 200);
    let r = d.request(
        "GET",
        "/rest/system/version",
        &[("Cookie", &cookie), (&csrf_header, &csrf)],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let forged = format!("sessionid-{}=notasession", d.short());
    let r = d.request(
        "GET",
        "/rest/system/version",
        &[("Cookie", &forged), (&csrf_header, &csrf)],
        "",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        d.request(
            "GET",
            "/",
            &[("Authorization", &basic("bob", "correct horse"))],
            ""
        )
        .status,
        401,
        "the user name counts too"
    );
}

#[test]
fn a_cookie_authenticated_post_without_the_csrf_header_is_refused() {
    let m = Machine::new();
    with_password(&m, "alice", "pw");
    let d = m.start();
    let (session, csrf) = d.login("alice", "pw");
    let cookie = format!("sessionid-{}={session}", d.short());
    let r = d.request(
        "POST",
        "/rest/system/error/clear",
        &[("Cookie", &cookie)],
        "",
    );
    assert_eq!((r.status, r.body.trim()), (403, "CSRF Error"));
    let csrf_header = format!("X-CSRF-Token-{}", d.short());
    let r = d.request(
        "POST",
        "/rest/system/error/clear",
        &[("Cookie", &cookie), (&csrf_header, &csrf)],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Basic credentials alone do not replace the token either (as Syncthing).
    let r = d.request(
        "POST",
        "/rest/system/error/clear",
        &[("Authorization", &basic("alice", "pw"))],
        "",
    );
    assert_eq!((r.status, r.body.trim()), (403, "CSRF Error"));
}

#[test]
fn five_wrong_passwords_in_a_row_are_slowed_down() {
    let m = Machine::new();
    with_password(&m, "alice", "right");
    let d = m.start();
    let wrong = basic("alice", "wrong");
    for i in 1..=5 {
        let r = d.request(
            "GET",
            "/rest/system/version",
            &[("Authorization", &wrong)],
            "",
        );
        assert_eq!(r.status, 401, "attempt {i}");
        assert_eq!(
            r.header("Retry-After"),
            None,
            "attempt {i} is not slowed down"
        );
    }
    // The sixth attempt is not even checked, right password or not: the address must wait.
    let r = d.request(
        "GET",
        "/",
        &[("Authorization", &basic("alice", "right"))],
        "",
    );
    assert_eq!(r.status, 429, "{r:?}");
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!(wait >= 1);
    // Each failure was an event, as Syncthing's LoginAttempt.
    let events = d
        .with_key("GET", "/rest/events?since=0&timeout=0", "")
        .json();
    let failed = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "LoginAttempt" && e["data"]["success"] == false)
        .count();
    assert_eq!(failed, 5);
    // Once the wait is over, the right password logs in and the count starts again.
    let mut status = 0;
    for _ in 0..600 {
        status = d
            .request(
                "GET",
                "/",
                &[("Authorization", &basic("alice", "right"))],
                "",
            )
            .status;
        if status != 429 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200);
    let r = d.request("GET", "/", &[("Authorization", &wrong)], "");
    assert_eq!((r.status, r.header("Retry-After")), (401, None));
}

#[test]
fn a_password_set_through_rest_is_stored_hashed_and_takes_effect_at_once() {
    let m = Machine::new();
    let d = m.start();
    let r = d.with_key(
        "PUT",
        "/rest/config/gui",
        r#"{"user":"carol","password":"from the gui","useTLS":false}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let gui = d.with_key("GET", "/rest/config/gui", "").json();
    let hash = gui["password"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("$2b$10$") && hash.len() == 60, "{hash}");
    assert!(m.config_text().contains(&hash));
    assert_eq!(d.request("GET", "/", &[], "").status, 401);
    let (session, _) = d.login("carol", "from the gui");
    // The whole config back, as the GUI's Settings dialog saves it: the hash is kept as it is.
    let mut config = d.with_key("GET", "/rest/config", "").json();
    assert_eq!(config["gui"]["password"], hash.as_str());
    assert_eq!(
        d.with_key("PUT", "/rest/config", &config.to_string())
            .status,
        200
    );
    assert_eq!(
        d.with_key("GET", "/rest/config/gui", "").json()["password"],
        hash.as_str()
    );
    let cookie = format!("sessionid-{}={session}", d.short());
    assert_eq!(
        d.request("GET", "/", &[("Cookie", &cookie)], "").status,
        200
    );
    // A new password through PUT /rest/config ends the sessions.
    config["gui"]["password"] = "second".into();
    assert_eq!(
        d.with_key("PUT", "/rest/config", &config.to_string())
            .status,
        200
    );
    assert_eq!(
        d.request("GET", "/", &[("Cookie", &cookie)], "").status,
        401
    );
    d.login("carol", "second");
    // Removing the password opens the loopback GUI again.
    assert_eq!(
        d.with_key("PATCH", "/rest/config/gui", r#"{"password":""}"#)
            .status,
        200
    );
    assert_eq!(d.request("GET", "/", &[], "").status, 200);
}

#[test]
fn a_plain_password_written_into_the_config_is_hashed_at_start() {
    let m = Machine::new();
    m.ok(&["generate", "--no-default-folder"], "");
    let text = m.config_text().replace(
        "[gui]\n",
        "[gui]\nuser = \"dave\"\npassword = \"typed by hand\"\n",
    );
    std::fs::write(m.home.join("config.toml"), text).unwrap();
    let d = m.start();
    let text = m.config_text();
    assert!(!text.contains("typed by hand"), "{text}");
    assert!(text.contains("password = \"$2b$10$"), "{text}");
    d.login("dave", "typed by hand");
}

/// A TLS client that trusts exactly the daemon's `https-cert.pem` and checks the name
/// `localhost` against it.
fn tls_connect(home: &Path, addr: SocketAddr) -> impl Read + Write {
    use rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls;
    let pem = std::fs::read(home.join("https-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(syncd_transport::tls::provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    rustls::StreamOwned::new(conn, TcpStream::connect(addr).unwrap())
}

#[test]
fn gui_tls_serves_https_with_a_certificate_made_at_first_start() {
    let m = Machine::new();
    m.ok(&["generate", "--no-default-folder"], "");
    assert!(m.ok(&["gui", "tls", "on"], "").contains("HTTPS on"));
    assert!(!m.home.join("https-cert.pem").exists());
    let d = m.start();
    assert!(m.home.join("https-cert.pem").exists());
    assert!(m.home.join("https-key.pem").exists());
    let mut tls = tls_connect(&m.home, d.rest);
    let r = http(
        &mut tls,
        d.rest,
        "GET",
        "/rest/system/version",
        &[("X-API-Key", &d.key)],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        d.with_key("GET", "/rest/config/gui", "").json()["useTLS"],
        true
    );
    let mut tls = tls_connect(&m.home, d.rest);
    let page = http(&mut tls, d.rest, "GET", "/", &[], "");
    assert_eq!(page.status, 200);
    // Plain HTTP from this machine still works (the CLI); the certificate stays the same
    // across restarts.
    let cert = std::fs::read(m.home.join("https-cert.pem")).unwrap();
    let status = m.ok(&["status"], "");
    assert!(status.contains(&d.id), "{status}");
    drop(d);
    let d = m.start();
    assert_eq!(std::fs::read(m.home.join("https-cert.pem")).unwrap(), cert);
    let mut tls = tls_connect(&m.home, d.rest);
    let r = http(&mut tls, d.rest, "GET", "/rest/noauth/health", &[], "");
    assert_eq!(r.status, 200);
}

#[test]
fn restart_comes_back_on_the_same_address_with_its_config() {
    let m = Machine::new();
    let d = m.start();
    let before = d.with_key("GET", "/rest/system/status", "").json();
    let pid = d.child.id();
    let folder = m.user.join("kept");
    let out = m.ok(&["folder", "add", "kept", folder.to_str().unwrap()], "");
    assert!(out.contains("running daemon"), "{out}");
    let events = d
        .with_key("GET", "/rest/events?since=0&timeout=0", "")
        .json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "ConfigSaved")
    );
    let r = d.with_key("POST", "/rest/system/restart", "");
    assert_eq!(r.status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        serde_json::json!({"ok": "restarting"})
    );
    let again = d.next_rest_address();
    assert_eq!(again, d.rest, "the same GUI address");
    assert_eq!(d.child.id(), pid, "the same process (re-executed in place)");
    let after = d.with_key("GET", "/rest/system/status", "").json();
    assert_eq!(after["myID"], before["myID"]);
    // A new run: a new event log, without the ConfigSaved of the folder added above.
    let events = d
        .with_key("GET", "/rest/events?since=0&timeout=0", "")
        .json();
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["type"] != "ConfigSaved"),
        "{events}"
    );
    let config = d.with_key("GET", "/rest/config", "").json();
    assert!(
        config["folders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "kept"),
        "{config}"
    );
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn upgrade_usage_report_and_debug_answer_as_syncthing_without_those_features() {
    let m = Machine::new();
    let d = m.start();
    let r = d.with_key("GET", "/rest/system/upgrade", "");
    assert_eq!((r.status, r.body.trim()), (503, "upgrade unsupported"));
    let r = d.with_key("POST", "/rest/system/upgrade", "");
    assert_eq!((r.status, r.body.trim()), (500, "upgrade unsupported"));
    let report = d.with_key("GET", "/rest/svc/report", "").json();
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/syncthing-1.19.2/svc_report.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sorted_keys(&report), sorted_keys(&fixture));
    for (k, v) in fixture.as_object().unwrap() {
        assert_eq!(
            std::mem::discriminant(v),
            std::mem::discriminant(&report[k]),
            "{k}: {v} vs {}",
            report[k]
        );
    }
    assert_eq!(report["urVersion"], 3);
    let debug = d.with_key("GET", "/rest/system/debug", "").json();
    assert_eq!(debug["enabled"], serde_json::json!([]));
    assert!(debug["facilities"]["model"].is_string());
    let r = d.with_key("POST", "/rest/system/debug?enable=model,api,bogus", "");
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let debug = d.with_key("GET", "/rest/system/debug", "").json();
    assert_eq!(debug["enabled"], serde_json::json!(["api", "model"]));
    d.with_key("POST", "/rest/system/debug?disable=api", "");
    let debug = d.with_key("GET", "/rest/system/debug", "").json();
    assert_eq!(debug["enabled"], serde_json::json!(["model"]));
}

//! The interop harness: one stock Syncthing 1.19.2 process and one `syncd` daemon process on
//! loopback, sharing folder `workspaces`, each configured to dial the other. Both are stopped
//! by PID on drop. Everything is observed through the two REST APIs and the two folders.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use syncd_testkit::{Rest, SyncthingConfig, Versioning};

/// The shared folder's ID.
pub const FOLDER: &str = "workspaces";
/// Syncthing's API key (syncd generates its own; we read it with `syncd api-key`).
pub const ST_API_KEY: &str = "interop-syncthing-api-key";
/// Failure bound for anything that should happen "soon" (start, connect, converge). Not a
/// timing claim: polls return as soon as the condition holds.
pub const PATIENCE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------------
// Binaries

/// The syncd daemon binary: `SYNCD_BIN`, or the one this package builds.
pub fn syncd_binary() -> PathBuf {
    match std::env::var_os("SYNCD_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_syncd-interop-daemon")),
    }
}

// ---------------------------------------------------------------------------------------------
// REST

/// A REST reply: status and parsed JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// A request with the API key (60 s per read); `None` while the server is not answering.
pub fn http(port: u16, api_key: &str, method: &str, path: &str) -> Option<Reply> {
    let (status, text) = Rest::loopback(port, api_key)
        .request(method, path, Duration::from_secs(60))
        .ok()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Some(Reply { status, body, text })
}

/// Polls `f` until it returns `Some`, or panics with `what` and `context()` after PATIENCE.
pub fn poll<T>(what: &str, context: impl Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    poll_for(PATIENCE, what, context, &mut f)
}

pub fn poll_for<T>(
    limit: Duration,
    what: &str,
    context: impl Fn() -> String,
    f: &mut dyn FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > limit {
            panic!(
                "timed out after {limit:?} waiting for: {what}\n{}",
                context()
            );
        }
        std::thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Nodes

/// Which implementation a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Syncthing,
    Syncd,
}

/// One device of the cluster: its home, folder, ports, ID and (while running) process.
pub struct Node {
    pub kind: Kind,
    pub home: PathBuf,
    pub folder: PathBuf,
    pub id: String,
    pub listen_port: u16,
    pub gui_port: u16,
    pub api_key: String,
    pub log: PathBuf,
    bin: PathBuf,
    child: Option<Child>,
    starts: u32,
    /// syncd only: run with the discovery its config sets, listening on
    /// `tcp://localhost:PORT` (what a discovery server keeps); otherwise `--no-discovery`.
    pub discovery: bool,
    /// syncd only: extra environment variables (e.g. `SYNCD_LOCAL_NFD=1`).
    pub env: Vec<(String, String)>,
}

impl Node {
    /// A node whose home is already set up (config written); nothing is started.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: Kind,
        home: PathBuf,
        folder: PathBuf,
        id: String,
        listen_port: u16,
        gui_port: u16,
        api_key: String,
        bin: PathBuf,
    ) -> Node {
        Node {
            kind,
            log: home.join(match kind {
                Kind::Syncthing => "syncthing.log",
                Kind::Syncd => "syncd.log",
            }),
            home,
            folder,
            id,
            listen_port,
            gui_port,
            api_key,
            bin,
            child: None,
            starts: 0,
            discovery: false,
            env: Vec::new(),
        }
    }

    /// `method path` with a JSON body; panics unless the answer is 2xx. Returns the JSON
    /// answer (`Null` when empty).
    pub fn send(&self, method: &str, path: &str, body: &Value) -> Value {
        let text = Rest::loopback(self.gui_port, &self.api_key)
            .send_json(method, path, &body.to_string(), Duration::from_secs(60))
            .unwrap_or_else(|e| {
                panic!("{} {method} {path}: {e}\n{}", self.name(), self.log_tail())
            });
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Syncthing => "syncthing",
            Kind::Syncd => "syncd",
        }
    }

    pub fn get(&self, path: &str) -> Option<Reply> {
        http(self.gui_port, &self.api_key, "GET", path)
    }

    pub fn post(&self, path: &str) -> Option<Reply> {
        http(self.gui_port, &self.api_key, "POST", path)
    }

    /// GET that must answer 200 with JSON.
    pub fn get_ok(&self, path: &str) -> Value {
        let r = poll(
            &format!("{} GET {path} answers", self.name()),
            || self.log_tail(),
            || self.get(path),
        );
        assert_eq!(r.status, 200, "{} GET {path}: {}", self.name(), r.text);
        r.body
    }

    /// Runs a full scan of the folder (synchronous on both implementations).
    pub fn scan(&self) {
        let r = poll(
            &format!("{} scan answers", self.name()),
            || self.log_tail(),
            || self.post(&format!("/rest/db/scan?folder={FOLDER}")),
        );
        assert_eq!(r.status, 200, "{} scan: {}", self.name(), r.text);
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!(
            "--- last lines of the {} log ({}):\n{}",
            self.name(),
            self.log.display(),
            lines[from..].join("\n")
        )
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Starts the process (again) with the same home, ports and folder.
    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already running", self.name());
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let err = log.try_clone().unwrap();
        let mut cmd = match self.kind {
            Kind::Syncthing => syncd_testkit::serve_command(&self.bin, &self.home),
            Kind::Syncd => {
                let mut cmd = Command::new(&self.bin);
                cmd.arg("--home")
                    .arg(&self.home)
                    .arg("serve")
                    .arg("--no-browser")
                    .arg("--no-default-folder")
                    .arg("--gui-address")
                    .arg(format!("127.0.0.1:{}", self.gui_port));
                if self.discovery {
                    // Only the test's own discovery server, which the config names.
                    cmd.arg("--listen")
                        .arg(format!("tcp://localhost:{}", self.listen_port));
                } else {
                    // Tests talk only to loopback: no announcements anywhere.
                    cmd.arg("--no-discovery")
                        .arg("--listen")
                        .arg(format!("tcp://127.0.0.1:{}", self.listen_port));
                }
                cmd.env(
                    "RUST_LOG",
                    std::env::var("SYNCD_LOG").unwrap_or_else(|_| "info".into()),
                );
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                cmd
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        self.child = Some(child);
        // REST up.
        poll(
            &format!("{} REST answers", self.name()),
            || self.log_tail(),
            || {
                let r = self.get("/rest/system/status")?;
                (r.status == 200).then_some(())
            },
        );
    }

    /// Stops the process by its PID (SIGTERM, then SIGKILL if it lingers) and reaps it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        syncd_testkit::stop_by_pid(&mut child, Duration::from_secs(20));
    }

    /// Whether this node's REST API reports `peer` connected.
    pub fn sees_connected(&self, peer: &str) -> bool {
        self.get("/rest/system/connections").is_some_and(|r| {
            r.status == 200 && r.body["connections"][peer]["connected"] == Value::Bool(true)
        })
    }

    /// This node's `/rest/system/connections` entry for `peer`.
    pub fn connection(&self, peer: &str) -> Value {
        self.get_ok("/rest/system/connections")["connections"][peer].clone()
    }

    /// This node's `/rest/folder/errors` for the shared folder: (path, error) pairs.
    pub fn folder_errors(&self) -> Vec<(String, String)> {
        let body = self.get_ok(&format!("/rest/folder/errors?folder={FOLDER}"));
        body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["path"].as_str().unwrap_or_default().to_owned(),
                            e["error"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Path inside the folder.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.folder.join(rel)
    }

    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| panic!("{} {rel}: {e}", self.name()))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).symlink_metadata().is_ok()
    }

    pub fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.path(rel)).unwrap();
    }

    pub fn chmod(&self, rel: &str, mode: u32) {
        std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    }

    pub fn symlink(&self, rel: &str, target: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// Sets a file's mtime to `secs` seconds (plus `nanos`) after the epoch.
    pub fn set_mtime(&self, rel: &str, secs: u64, nanos: u32) {
        let t = SystemTime::UNIX_EPOCH + Duration::new(secs, nanos);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(self.path(rel))
            .unwrap();
        f.set_modified(t).unwrap();
    }

    /// Names of the conflict copies of `rel` (same directory, `.sync-conflict-` in the name).
    pub fn conflict_copies(&self, rel: &str) -> Vec<String> {
        let p = self.path(rel);
        let dir = p.parent().unwrap();
        let stem = Path::new(rel)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&stem) && n.contains(".sync-conflict-"))
            .collect();
        out.sort();
        out
    }

    pub fn tree(&self) -> Tree {
        Tree::of(&self.folder)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------------
// Trees

/// The names directly in `dir` as stored on disk, without syncd's and Syncthing's own
/// (`.stfolder`, `.stignore`, temp files).
pub fn names(dir: &Path) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with(".st") && !n.starts_with(".syncthing."))
        .collect()
}

/// A set of names, to compare with [`names`].
pub fn name_set(names: &[&str]) -> std::collections::BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// What we compare of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        mtime_s: i64,
        mtime_ns: i64,
    },
    Symlink {
        target: PathBuf,
    },
}

/// A snapshot of a folder: relative path -> entry, without Syncthing/syncd internals
/// (`.stfolder`, `.stignore`, `.stversions`, temp files).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree(pub BTreeMap<String, Entry>);

fn internal(name: &str) -> bool {
    name == syncd_types::names::MARKER
        || name == syncd_types::names::IGNORE_FILE
        || name == syncd_types::names::VERSIONS_DIR
        || syncd_types::names::is_temp_name(name)
}

impl Tree {
    pub fn of(root: &Path) -> Tree {
        let mut t = Tree::default();
        walk(root, root, &mut t.0);
        t
    }

    /// Human-readable differences, empty when equal.
    pub fn diff(&self, other: &Tree) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.0 {
            match other.0.get(k) {
                None => out.push(format!("only left: {k} {v:?}")),
                Some(w) if w != v => out.push(format!("differs: {k}: {v:?} vs {w:?}")),
                _ => {}
            }
        }
        for (k, w) in &other.0 {
            if !self.0.contains_key(k) {
                out.push(format!("only right: {k} {w:?}"));
            }
        }
        out
    }

    pub fn files(&self) -> impl Iterator<Item = &String> {
        self.0
            .iter()
            .filter(|(_, e)| matches!(e, Entry::File { .. }))
            .map(|(k, _)| k)
    }
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if internal(&name) {
            continue;
        }
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let Ok(md) = p.symlink_metadata() else {
            continue;
        };
        let ft = md.file_type();
        if ft.is_symlink() {
            let target = std::fs::read_link(&p).unwrap_or_default();
            out.insert(rel, Entry::Symlink { target });
        } else if ft.is_dir() {
            out.insert(
                rel,
                Entry::Dir {
                    mode: md.mode() & 0o777,
                },
            );
            walk(root, &p, out);
        } else {
            out.insert(
                rel,
                Entry::File {
                    mode: md.mode() & 0o777,
                    size: md.len(),
                    mtime_s: md.mtime(),
                    mtime_ns: md.mtime_nsec(),
                },
            );
        }
    }
}

/// Byte-compares every file of two folders (the trees must already be equal).
pub fn assert_same_contents(a: &Node, b: &Node, skip: &[String]) {
    let ta = a.tree();
    for rel in ta.files() {
        if skip
            .iter()
            .any(|s| rel == s || rel.starts_with(&format!("{s}/")))
        {
            continue;
        }
        let (pa, pb) = (a.path(rel), b.path(rel));
        let (mut fa, mut fb) = (
            std::fs::File::open(&pa).unwrap(),
            std::fs::File::open(&pb).unwrap(),
        );
        let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        loop {
            let na = read_full(&mut fa, &mut ba);
            let nb = read_full(&mut fb, &mut bb);
            assert!(
                na == nb && ba[..na] == bb[..nb],
                "content of {rel} differs between {} and {}",
                a.name(),
                b.name()
            );
            if na == 0 {
                break;
            }
        }
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).unwrap() {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Deterministic pseudo-random bytes (xorshift), so big files do not compress or dedupe.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes a `len`-byte pseudo-random file without holding it all in memory.
pub fn write_noise_file(path: &Path, len: u64, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let chunk = 4 << 20;
    let mut left = len;
    let mut i = 0;
    while left > 0 {
        let n = left.min(chunk as u64) as usize;
        f.write_all(&noise(n, seed.wrapping_add(i))).unwrap();
        left -= n as u64;
        i += 1;
    }
    f.flush().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Cluster

/// One Syncthing and one syncd sharing FOLDER, each knowing the other's address.
pub struct Cluster {
    pub st: Node,
    pub sd: Node,
    /// Paths (and everything under them) left out of the tree comparison, e.g. ignored files
    /// that exist on one side only.
    pub skip: Vec<String>,
    /// Byte ranges of Syncthing's log during which this scenario disconnected on purpose
    /// (pause, restart): a "Connection ... closed" line there is expected.
    windows: std::cell::RefCell<Vec<(usize, Option<usize>)>>,
    _root: tempfile::TempDir,
}

/// Creates both homes and configs (nothing is started): Syncthing via `syncthing generate`
/// and a loopback-only config.xml; syncd via its own CLI (`generate`, `device add`,
/// `folder add`, `api-key`). `None` when Syncthing is absent (the test skips).
pub fn cluster() -> Option<Cluster> {
    let st_bin = syncd_testkit::syncthing_or_skip()?;
    let root = tempfile::Builder::new()
        .prefix("syncd-interop-")
        .tempdir()
        .unwrap();
    let st_home = root.path().join("st-home");
    let sd_home = root.path().join("sd-home");
    let st_folder = root.path().join("st").join(FOLDER);
    let sd_folder = root.path().join("sd").join(FOLDER);
    std::fs::create_dir_all(st_folder.join(syncd_types::names::MARKER)).unwrap();
    std::fs::create_dir_all(&st_home).unwrap();

    let st_id = syncd_testkit::generate(&st_bin, &st_home).unwrap();
    let sd_bin = syncd_binary();
    let sd = |args: &[&str]| -> String {
        let out = Command::new(&sd_bin)
            .arg("--home")
            .arg(&sd_home)
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
    };
    sd(&["generate", "--no-default-folder"]);
    let sd_id = sd(&["device-id"]).trim().to_string();
    let port = || syncd_testkit::free_port().unwrap();
    let (st_port, sd_port) = (port(), port());
    let (st_gui, sd_gui) = (port(), port());
    sd(&[
        "device",
        "add",
        &st_id,
        "--name",
        "st-peer",
        "--address",
        &format!("tcp://127.0.0.1:{st_port}"),
    ]);
    sd(&[
        "folder",
        "add",
        FOLDER,
        sd_folder.to_str().unwrap(),
        "--device",
        &st_id,
    ]);
    let sd_key = sd(&["api-key"]).trim().to_string();
    // Loopback only (../shared/syncthing/). The watcher is off: the tests trigger scans
    // through REST.
    SyncthingConfig::new(&st_id, &sd_id, FOLDER, &st_folder)
        .ports(st_port, st_gui)
        .api_key(ST_API_KEY)
        .peer_address(&format!("tcp://127.0.0.1:{sd_port}"))
        .reconnection_interval_s(2)
        .max_conflicts(10)
        .versioning(Versioning::Empty)
        .write(&st_home)
        .unwrap();
    let st = Node {
        kind: Kind::Syncthing,
        log: st_home.join("syncthing.log"),
        home: st_home,
        folder: st_folder,
        id: st_id,
        listen_port: st_port,
        gui_port: st_gui,
        api_key: ST_API_KEY.to_string(),
        bin: st_bin,
        child: None,
        starts: 0,
        discovery: false,
        env: Vec::new(),
    };
    let sd = Node {
        kind: Kind::Syncd,
        log: sd_home.join("syncd.log"),
        home: sd_home,
        folder: sd_folder,
        id: sd_id,
        listen_port: sd_port,
        gui_port: sd_gui,
        api_key: sd_key,
        bin: sd_bin,
        child: None,
        starts: 0,
        discovery: false,
        env: Vec::new(),
    };
    Some(Cluster {
        st,
        sd,
        skip: Vec::new(),
        windows: Default::default(),
        _root: root,
    })
}

impl Cluster {
    fn context(&self) -> String {
        format!("{}\n{}", self.st.log_tail(), self.sd.log_tail())
    }

    /// Starts both processes and waits until each REST API reports the other connected.
    pub fn start(&mut self) {
        self.sd.start();
        self.st.start();
        self.wait_connected();
    }

    pub fn wait_connected(&self) {
        poll(
            "both REST APIs report the peer connected",
            || self.context(),
            || {
                (self.st.sees_connected(&self.sd.id) && self.sd.sees_connected(&self.st.id))
                    .then_some(())
            },
        );
    }

    /// Scans both sides, then waits until the two folders hold the same tree (kinds, modes,
    /// sizes, mtimes, symlink targets) and both sides report nothing needed; then compares
    /// contents byte for byte.
    pub fn converge(&self) {
        self.sd.scan();
        self.st.scan();
        self.wait_converged();
    }

    pub fn wait_converged(&self) {
        let sd_in_sync = || -> bool {
            let Some(r) = self.sd.get(&format!("/rest/db/status?folder={FOLDER}")) else {
                return false;
            };
            r.body["needTotalItems"] == 0 && r.body["state"] == "idle"
        };
        let st_in_sync = || -> bool {
            let Some(r) = self.st.get(&format!("/rest/db/status?folder={FOLDER}")) else {
                return false;
            };
            let Some(c) = self.st.get(&format!(
                "/rest/db/completion?folder={FOLDER}&device={}",
                self.sd.id
            )) else {
                return false;
            };
            r.body["needTotalItems"] == 0
                && r.body["state"] == "idle"
                && c.body["needItems"] == 0
                && c.body["needDeletes"] == 0
        };
        let last_diff = std::cell::RefCell::new(Vec::new());
        let mut stable = 0;
        poll_for(
            PATIENCE,
            "the two folders converge",
            || {
                format!(
                    "last difference: {:#?}\n{}",
                    last_diff.borrow(),
                    self.context()
                )
            },
            &mut || {
                let diff = self.tree(&self.st).diff(&self.tree(&self.sd));
                let ok = diff.is_empty() && sd_in_sync() && st_in_sync();
                *last_diff.borrow_mut() = diff;
                // Two equal observations in a row: no transfer in flight between them.
                stable = if ok { stable + 1 } else { 0 };
                (stable >= 2).then_some(())
            },
        );
        assert_same_contents(&self.st, &self.sd, &self.skip);
    }

    /// A node's tree without the `skip` paths.
    pub fn tree(&self, n: &Node) -> Tree {
        let mut t = n.tree();
        t.0.retain(|k, _| {
            !self
                .skip
                .iter()
                .any(|s| k == s || k.starts_with(&format!("{s}/")))
        });
        t
    }

    /// Pauses the peer on Syncthing's side (`/rest/system/pause?device=`) and waits until
    /// neither side reports the connection.
    pub fn disconnect(&self) {
        self.begin_expected_disconnect();
        let r = self
            .st
            .post(&format!("/rest/system/pause?device={}", self.sd.id))
            .unwrap();
        assert_eq!(r.status, 200, "pause: {}", r.text);
        poll(
            "both sides report the peer disconnected",
            || self.context(),
            || {
                (!self.st.sees_connected(&self.sd.id) && !self.sd.sees_connected(&self.st.id))
                    .then_some(())
            },
        );
    }

    /// Resumes the peer on Syncthing's side and waits for the connection.
    pub fn reconnect(&self) {
        let r = self
            .st
            .post(&format!("/rest/system/resume?device={}", self.sd.id))
            .unwrap();
        assert_eq!(r.status, 200, "resume: {}", r.text);
        self.wait_connected();
        self.end_expected_disconnect();
    }

    /// Stops one side by PID, runs `while_down` (on the node left running), starts it again
    /// with the same home and ports, and waits for the connection.
    pub fn restart(&mut self, which: Kind, while_down: impl FnOnce(&Node)) {
        self.begin_expected_disconnect();
        let (down, up) = match which {
            Kind::Syncthing => (&mut self.st, &self.sd),
            Kind::Syncd => (&mut self.sd, &self.st),
        };
        down.stop();
        while_down(up);
        down.start();
        self.wait_connected();
        self.end_expected_disconnect();
    }

    /// Bytes `n` received from its peer since its process started (its REST API's
    /// `inBytesTotal` for the peer's connection).
    pub fn in_bytes(&self, which: Kind) -> u64 {
        let (n, peer) = match which {
            Kind::Syncthing => (&self.st, &self.sd.id),
            Kind::Syncd => (&self.sd, &self.st.id),
        };
        n.connection(peer)["inBytesTotal"].as_u64().unwrap()
    }

    /// From now on a dropped connection is this scenario's doing (until `end_...`).
    pub fn begin_expected_disconnect(&self) {
        let at = self.st.log_text().len();
        self.windows.borrow_mut().push((at, None));
    }

    /// The connection is back; later disconnects are failures again.
    pub fn end_expected_disconnect(&self) {
        let at = self.st.log_text().len();
        if let Some(w) = self.windows.borrow_mut().last_mut() {
            w.1 = Some(at);
        }
    }

    fn in_window(&self, offset: usize) -> bool {
        self.windows
            .borrow()
            .iter()
            .any(|&(a, b)| offset >= a && b.is_none_or(|b| offset < b))
    }

    /// Fails on protocol errors or unexpected disconnects in Syncthing's log. `allowed`
    /// lists substrings of lines this scenario provokes on purpose (e.g. a restart).
    pub fn assert_clean_logs(&self, allowed: &[&str]) {
        let text = self.st.log_text();
        let mut bad: Vec<&str> = Vec::new();
        let mut offset = 0;
        for l in text.split_inclusive('\n') {
            let expected =
                self.in_window(offset) && l.contains("Connection to") && l.contains("closed:");
            if is_bad_syncthing_line(l) && !expected && !allowed.iter().any(|a| l.contains(a)) {
                bad.push(l.trim_end());
            }
            offset += l.len();
        }
        assert!(
            bad.is_empty(),
            "Syncthing logged protocol errors or disconnects:\n{}",
            bad.join("\n")
        );
        let sd_text = self.sd.log_text();
        let sd_bad: Vec<&str> = sd_text
            .lines()
            .filter(|l| l.contains("panicked") || l.contains("ERROR"))
            .filter(|l| !allowed.iter().any(|a| l.contains(a)))
            .collect();
        assert!(
            sd_bad.is_empty(),
            "syncd logged errors:\n{}",
            sd_bad.join("\n")
        );
    }
}

/// Lines of a Syncthing 1.19 log that mean the protocol went wrong or a connection dropped.
pub fn is_bad_syncthing_line(l: &str) -> bool {
    const BAD: &[&str] = &[
        "protocol error",
        "Protocol error",
        "closed:",
        "Connection closed",
        "Failed to exchange Hello",
        "unexpected",
        "panic:",
        "invalid",
        "Puller (folder",
        "Peer device",
        "unknown message",
        "decoding",
        "Failed to sync",
    ];
    BAD.iter().any(|b| l.contains(b))
}

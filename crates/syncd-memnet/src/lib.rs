//! `syncd-memnet`: the engine's test harness — an in-memory network of real engines. Two or
//! three [`syncd_engine`] engines, each with its own home (identity, redb index file) and
//! folder in a temp dir, connected by in-memory byte streams instead of TCP. Each connection still runs the real TLS
//! handshake with device-ID authentication and the Hello exchange
//! ([`EngineHandle::attach_stream`]); only the sockets are replaced. Tests read as specs:
//!
//! ```no_run
//! # async fn spec() {
//! use syncd_memnet::MemNet;
//! let mut net = MemNet::builder(&["a", "b"]).build();
//! net.tree("a").write("notes.txt", "hello");
//! net.start().await; // engines up, every pair linked
//! net.settle().await; // run until idle: everyone in sync, nothing in flight
//! assert_eq!(net.tree("b").read("notes.txt"), b"hello");
//! net.assert_converged();
//! # }
//! ```
//!
//! # The link
//!
//! Each pair of engines shares one link: two `tokio::io::duplex` pipes joined by pump tasks,
//! one per direction, which deliver every chunk written on one side after the link's latency
//! ([`MemNet::set_latency`], zero by default), in order. [`MemNet::cut`] drops the pipes (both
//! engines see their connection end, as when a cable is pulled) and keeps the pair apart — a
//! partition — until [`MemNet::heal`] brings a new link and connects the pair again. Engines
//! have no listen address and no peer address, so nothing dials by itself: the harness is the
//! only way devices meet. Reordering is not offered: a TLS byte stream that is reordered is a
//! corrupt stream (TCP never delivers one), so it would only test "corruption closes the
//! connection", not the engine.
//!
//! # Time
//!
//! Tests run on tokio's paused clock: `#[tokio::test(start_paused = true)]` (a current-thread
//! runtime). The runtime's clock then jumps to the next timer whenever every task waits, so
//! retries, backoffs, keepalives and injected latency cost no real time, and a wait that can
//! never end fails fast. This works with the engine because
//!
//! - every blocking job of the engine (scans, which run the scanner's rayon pool inside
//!   them, index reads and writes, the puller's file I/O, request serving) runs in
//!   `spawn_blocking`, and tokio does not auto-advance the clock while a blocking task runs:
//!   real work never makes virtual time jump;
//! - the only std threads that wake the engine on their own are the filesystem watcher's; the
//!   harness turns the watcher off (and the periodic rescan), and tests scan explicitly with
//!   [`MemNet::scan`]. A test that needs the watcher cannot run on the paused clock: with the
//!   watcher's thread outside tokio, the clock would race past its debounce.
//!
//! [`MemNet::settle`] ("run until idle") waits, in virtual time, until every running engine
//! reports the folder in sync ([`EngineHandle::wait_until_synced`]: all peers connected, their
//! indexes received, nothing needed, every peer holding all of our state) and no byte is in
//! flight on any link, twice in a row. Nothing here measures or asserts time.
//!
//! The same harness runs on a normal (real-clock) runtime too; it just takes real time then.
//!
//! # Why a crate of its own
//!
//! It depends on `syncd-engine`, whose integration tests depend on it. Cargo allows that
//! (dev-dependency) cycle for building and testing, but `cargo package --workspace` cannot
//! order it when the harness lives in `syncd-testkit`: `syncd-transport` dev-depends on the
//! testkit (with a version, for its Syncthing tests), which closes a cycle of versioned
//! dependencies. Here, `syncd-engine` names this crate by path only, so packaging drops the
//! edge (and leaves `tests/memnet.rs` out of the engine's package).

// The README's example runs as a doctest, so the published front page stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use syncd_engine::{
    DeviceConfig, DeviceId, Direction, Engine, EngineConfig, EngineHandle, FolderConfig, FolderId,
    device_id_for_home, health,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How long (virtual time) [`MemNet::settle`] and [`MemNet::until`] wait before failing.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Bytes one pump reads at once: one chunk in flight.
const CHUNK: usize = 16 * 1024;

/// The result or a panic naming what failed (the harness's assertions).
fn ok<T, E: Debug>(r: Result<T, E>, what: impl std::fmt::Display) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e:?}"),
    }
}

/// Builds a [`MemNet`]: device names and the folder's settings.
pub struct MemNetBuilder {
    names: Vec<String>,
    tweak: Box<dyn Fn(&mut FolderConfig)>,
}

impl MemNetBuilder {
    /// Adjusts every device's folder config (e.g. `max_conflicts`) before the engines start.
    pub fn folder(mut self, tweak: impl Fn(&mut FolderConfig) + 'static) -> Self {
        self.tweak = Box::new(tweak);
        self
    }

    /// Creates each device's home (its identity) and folder root (with `.stfolder`) in a new
    /// temp dir. No engine runs yet: fill the trees, then [`MemNet::start`].
    pub fn build(self) -> MemNet {
        let tmp = ok(tempfile::tempdir(), "temp dir");
        let folder = ok(FolderId::new("f"), "folder id");
        let homes: Vec<PathBuf> = self
            .names
            .iter()
            .map(|n| tmp.path().join(n).join("home"))
            .collect();
        let ids: Vec<DeviceId> = homes
            .iter()
            .map(|h| ok(device_id_for_home(h), "identity"))
            .collect();
        let mut nodes = Vec::new();
        for (i, name) in self.names.iter().enumerate() {
            let root = tmp.path().join(name).join("folder");
            ok(std::fs::create_dir_all(&root), "folder root");
            ok(health::create_marker(&root), ".stfolder");
            let others: Vec<DeviceId> = ids
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, id)| *id)
                .collect();
            let mut f = FolderConfig::new(folder.clone(), &root);
            f.devices = others.clone();
            f.watcher_enabled = false;
            f.rescan_interval_s = 0;
            (self.tweak)(&mut f);
            let cfg = EngineConfig {
                home: homes[i].clone(),
                device_name: name.clone(),
                listen: Vec::new(),
                devices: others.into_iter().map(DeviceConfig::new).collect(),
                folders: vec![f],
                ..EngineConfig::default()
            };
            nodes.push(Node {
                name: name.clone(),
                id: ids[i],
                cfg,
                tree: Tree { root },
                engine: None,
            });
        }
        MemNet {
            tmp,
            folder,
            nodes,
            links: BTreeMap::new(),
            latency: BTreeMap::new(),
            cut: Vec::new(),
        }
    }
}

struct Node {
    name: String,
    id: DeviceId,
    cfg: EngineConfig,
    tree: Tree,
    engine: Option<EngineHandle>,
}

/// One live link between two engines: its pump tasks and the bytes they hold.
struct Link {
    pumps: Vec<JoinHandle<()>>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Link {
    fn drop(&mut self) {
        for p in &self.pumps {
            p.abort();
        }
    }
}

/// Real engines sharing one folder (`"f"`) over in-memory links; see the module docs.
pub struct MemNet {
    tmp: tempfile::TempDir,
    folder: FolderId,
    nodes: Vec<Node>,
    /// Live links by (lower, higher) node index.
    links: BTreeMap<(usize, usize), Link>,
    /// Latency (nanoseconds) per pair, shared with that pair's pumps.
    latency: BTreeMap<(usize, usize), Arc<AtomicU64>>,
    /// Pairs kept apart until healed.
    cut: Vec<(usize, usize)>,
}

impl MemNet {
    /// A network of the named devices, all sharing the folder with each other.
    pub fn builder(names: &[&str]) -> MemNetBuilder {
        MemNetBuilder {
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            tweak: Box::new(|_| {}),
        }
    }

    fn index(&self, name: &str) -> usize {
        match self.nodes.iter().position(|n| n.name == name) {
            Some(i) => i,
            None => panic!("no device named {name}"),
        }
    }

    fn pair(&self, a: &str, b: &str) -> (usize, usize) {
        let (i, j) = (self.index(a), self.index(b));
        assert_ne!(i, j, "a link joins two different devices");
        (i.min(j), i.max(j))
    }

    /// The shared folder's ID.
    pub fn folder(&self) -> &FolderId {
        &self.folder
    }

    /// The temp dir holding every home and folder (for files beside the folders).
    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `name`'s folder on disk.
    pub fn tree(&self, name: &str) -> &Tree {
        &self.nodes[self.index(name)].tree
    }

    /// `name`'s device ID.
    pub fn id(&self, name: &str) -> DeviceId {
        self.nodes[self.index(name)].id
    }

    /// `name`'s engine config (as it starts).
    pub fn config(&self, name: &str) -> &EngineConfig {
        &self.nodes[self.index(name)].cfg
    }

    /// `name`'s running engine.
    pub fn engine(&self, name: &str) -> &EngineHandle {
        match &self.nodes[self.index(name)].engine {
            Some(e) => e,
            None => panic!("{name} is not running"),
        }
    }

    /// Starts every engine that is not running and links every pair that is not cut.
    pub async fn start(&mut self) {
        for i in 0..self.nodes.len() {
            if self.nodes[i].engine.is_none() {
                self.start_index(i).await;
            }
        }
        self.link_all().await;
    }

    async fn start_index(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let e = ok(
            Engine::start(node.cfg.clone()).await,
            format!("start {}", node.name),
        );
        node.engine = Some(e);
    }

    /// Stops `name`'s engine (clean shutdown; its links go down with it).
    pub async fn stop(&mut self, name: &str) {
        let i = self.index(name);
        if let Some(e) = self.nodes[i].engine.take() {
            e.shutdown().await;
        }
        self.links.retain(|(a, b), _| *a != i && *b != i);
        self.until_disconnected(i).await;
    }

    /// Stops `name` and starts it again from its home (same identity, same index file), then
    /// links it to every device it is not cut from.
    pub async fn restart(&mut self, name: &str) {
        self.stop(name).await;
        self.start_with(name, |_| {}).await;
    }

    /// Starts the stopped `name` again from its home, and links it.
    pub async fn start_device(&mut self, name: &str) {
        self.start_with(name, |_| {}).await;
    }

    /// Starts the stopped `name` with its config adjusted by `change` (kept for later
    /// restarts), then links it to every device it is not cut from.
    pub async fn start_with(&mut self, name: &str, change: impl FnOnce(&mut EngineConfig)) {
        let i = self.index(name);
        assert!(self.nodes[i].engine.is_none(), "{name} is running");
        change(&mut self.nodes[i].cfg);
        self.start_index(i).await;
        self.link_all().await;
    }

    /// Scans `name`'s folder; returns once the scan has committed.
    pub async fn scan(&self, name: &str) {
        ok(
            self.engine(name).scan(&self.folder, None).await,
            format!("scan on {name}"),
        );
    }

    /// Scans every running engine's folder.
    pub async fn scan_all(&self) {
        for n in &self.nodes {
            if n.engine.is_some() {
                self.scan(&n.name).await;
            }
        }
    }

    /// Sets the one-way latency of the link between `a` and `b` (now and after heals).
    pub fn set_latency(&mut self, a: &str, b: &str, latency: Duration) {
        let key = self.pair(a, b);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_of(key).store(nanos, Ordering::SeqCst);
    }

    fn latency_of(&mut self, key: (usize, usize)) -> Arc<AtomicU64> {
        Arc::clone(self.latency.entry(key).or_default())
    }

    /// Cuts the link between `a` and `b` and keeps them apart until [`MemNet::heal`]; returns
    /// once both engines have seen their connection end.
    pub async fn cut(&mut self, a: &str, b: &str) {
        let key = self.pair(a, b);
        if !self.cut.contains(&key) {
            self.cut.push(key);
        }
        self.links.remove(&key);
        for (me, other) in [(key.0, key.1), (key.1, key.0)] {
            let peer = self.nodes[other].id;
            if let Some(e) = self.nodes[me].engine.clone() {
                let what = format!(
                    "{} sees {} gone",
                    self.nodes[me].name, self.nodes[other].name
                );
                self.until(&what, || !connected(&e, peer)).await;
            }
        }
    }

    /// Ends the partition between `a` and `b`: a new link, both connected again.
    pub async fn heal(&mut self, a: &str, b: &str) {
        let key = self.pair(a, b);
        self.cut.retain(|k| *k != key);
        self.link_all().await;
    }

    /// Links every pair of running engines that has no live link and is not cut.
    async fn link_all(&mut self) {
        let n = self.nodes.len();
        for i in 0..n {
            for j in i + 1..n {
                let running = self.nodes[i].engine.is_some() && self.nodes[j].engine.is_some();
                if running && !self.links.contains_key(&(i, j)) && !self.cut.contains(&(i, j)) {
                    self.link(i, j).await;
                }
            }
        }
    }

    /// Waits until no running engine shows `i` as connected.
    async fn until_disconnected(&self, i: usize) {
        let peer = self.nodes[i].id;
        for n in &self.nodes {
            if let Some(e) = &n.engine {
                let what = format!("{} sees {} gone", n.name, self.nodes[i].name);
                self.until(&what, || !connected(e, peer)).await;
            }
        }
    }

    /// A new link between nodes `i` < `j`; `i` takes the dialing (TLS client) role. Retried
    /// while an engine still holds the pair's previous connection (one per device).
    async fn link(&mut self, i: usize, j: usize) {
        let latency = self.latency_of((i, j));
        let (Some(ea), Some(eb)) = (self.nodes[i].engine.clone(), self.nodes[j].engine.clone())
        else {
            return;
        };
        let (ida, idb) = (self.nodes[i].id, self.nodes[j].id);
        let mut last = String::new();
        for _ in 0..100 {
            let (a_io, a_pump) = tokio::io::duplex(CHUNK * 4);
            let (b_io, b_pump) = tokio::io::duplex(CHUNK * 4);
            let in_flight = Arc::new(AtomicUsize::new(0));
            let (a_read, a_write) = tokio::io::split(a_pump);
            let (b_read, b_write) = tokio::io::split(b_pump);
            let mut pumps = pump(a_read, b_write, &latency, &in_flight);
            pumps.extend(pump(b_read, a_write, &latency, &in_flight));
            let link = Link { pumps, in_flight };
            let (ra, rb) = tokio::join!(
                ea.attach_stream(a_io, Direction::Outbound, Some(idb)),
                eb.attach_stream(b_io, Direction::Inbound, Some(ida)),
            );
            match (ra, rb) {
                (Ok(()), Ok(())) => {
                    self.links.insert((i, j), link);
                    return;
                }
                (ra, rb) => {
                    last = format!("{ra:?} / {rb:?}");
                    drop(link);
                    // Let both engines let go of the half-made connection, then retry.
                    self.until("the half-made connection is gone", || {
                        !connected(&ea, idb) && !connected(&eb, ida)
                    })
                    .await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        panic!(
            "could not link {} and {}: {last}",
            self.nodes[i].name, self.nodes[j].name
        );
    }

    /// Bytes written on some link and not yet delivered.
    pub fn in_flight(&self) -> usize {
        self.links
            .values()
            .map(|l| l.in_flight.load(Ordering::SeqCst))
            .sum()
    }

    /// Runs until idle: every running engine reports the folder in sync and no byte is in
    /// flight, in two checks 100 ms (virtual) apart. Panics (with every engine's folder
    /// status) after [`SETTLE_TIMEOUT`] of virtual time.
    pub async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        let mut quiet_rounds = 0;
        while quiet_rounds < 2 {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            for n in &self.nodes {
                let Some(e) = &n.engine else { continue };
                if let Err(err) = e.wait_until_synced(&self.folder, left).await {
                    panic!("{} not in sync: {err:?}\n{}", n.name, self.statuses());
                }
            }
            self.until("nothing in flight", || self.in_flight() == 0)
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            quiet_rounds = if self.all_synced_now().await {
                quiet_rounds + 1
            } else {
                0
            };
        }
    }

    /// Whether every running engine is in sync and nothing is in flight, right now.
    async fn all_synced_now(&self) -> bool {
        for n in &self.nodes {
            let Some(e) = &n.engine else { continue };
            if e.wait_until_synced(&self.folder, Duration::ZERO)
                .await
                .is_err()
            {
                return false;
            }
        }
        self.in_flight() == 0
    }

    /// Every running engine's folder status, for failure messages.
    pub fn statuses(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            if let Some(e) = &n.engine {
                out.push_str(&format!(
                    "{}: {:#?}\n",
                    n.name,
                    e.folder_status(&self.folder)
                ));
            }
        }
        out
    }

    /// Polls `cond` (every 10 ms of virtual time) until it holds; panics naming `what` after
    /// [`SETTLE_TIMEOUT`] of virtual time.
    pub async fn until(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}\n{}",
                self.statuses()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lets `d` of virtual time pass: on the paused clock, every engine runs until it waits,
    /// then the clock jumps timer by timer up to `d` — everything due by then has happened.
    pub async fn run_for(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Asserts that every device's tree holds the same entries with the same kind, content,
    /// permission bits and (for files) mtime.
    pub fn assert_converged(&self) {
        for n in &self.nodes[1..] {
            assert_same_tree(&self.nodes[0].tree, &n.tree);
        }
    }

    /// Shuts every engine down (the temp dir goes when the net is dropped).
    pub async fn shutdown(&mut self) {
        self.links.clear();
        for n in &mut self.nodes {
            if let Some(e) = n.engine.take() {
                e.shutdown().await;
            }
        }
    }
}

fn connected(e: &EngineHandle, peer: DeviceId) -> bool {
    e.connections()
        .iter()
        .any(|c| c.device == peer && c.connected)
}

/// One direction of a link: a reader task taking chunks off `from` and a writer task
/// delivering each one to `to` once the latency has passed, in order. When `from` ends, `to`
/// is shut down after the last chunk (the peer reads EOF, as over TCP).
fn pump(
    mut from: ReadHalf<DuplexStream>,
    mut to: WriteHalf<DuplexStream>,
    latency: &Arc<AtomicU64>,
    in_flight: &Arc<AtomicUsize>,
) -> Vec<JoinHandle<()>> {
    let (tx, mut rx) = mpsc::channel::<(tokio::time::Instant, Vec<u8>)>(64);
    let (lat, count) = (Arc::clone(latency), Arc::clone(in_flight));
    let reader = tokio::spawn(async move {
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.truncate(n);
            count.fetch_add(n, Ordering::SeqCst);
            let due =
                tokio::time::Instant::now() + Duration::from_nanos(lat.load(Ordering::SeqCst));
            if tx.send((due, buf)).await.is_err() {
                return;
            }
        }
    });
    let count = Arc::clone(in_flight);
    let writer = tokio::spawn(async move {
        while let Some((due, buf)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&buf).await.is_err() {
                return;
            }
            count.fetch_sub(buf.len(), Ordering::SeqCst);
        }
        let _ = to.shutdown().await;
    });
    vec![reader, writer]
}

/// A device's folder on disk, with helpers to shape and read it (relative paths, `/`-separated).
#[derive(Debug, Clone)]
pub struct Tree {
    root: PathBuf,
}

impl Tree {
    /// The tree rooted at `root` (any folder on disk, not only a harness device's).
    pub fn at(root: impl Into<PathBuf>) -> Tree {
        Tree { root: root.into() }
    }

    /// The folder root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The absolute path of `rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes `rel` (creating its parent directories).
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            ok(std::fs::create_dir_all(parent), format!("mkdir for {rel}"));
        }
        ok(std::fs::write(&p, data), format!("write {rel}"));
    }

    /// Creates the directory `rel` (and its parents).
    pub fn mkdir(&self, rel: &str) {
        ok(
            std::fs::create_dir_all(self.path(rel)),
            format!("mkdir {rel}"),
        );
    }

    /// Creates the symlink `rel` pointing at `target`.
    pub fn symlink(&self, rel: &str, target: &str) {
        ok(
            std::os::unix::fs::symlink(target, self.path(rel)),
            format!("symlink {rel}"),
        );
    }

    /// Sets the permission bits of `rel`.
    pub fn chmod(&self, rel: &str, mode: u32) {
        ok(
            std::fs::set_permissions(self.path(rel), std::fs::Permissions::from_mode(mode)),
            format!("chmod {rel}"),
        );
    }

    /// Renames `from` to `to`.
    pub fn rename(&self, from: &str, to: &str) {
        ok(
            std::fs::rename(self.path(from), self.path(to)),
            format!("rename {from} -> {to}"),
        );
    }

    /// Removes the file, symlink or (whole) directory `rel`.
    pub fn remove(&self, rel: &str) {
        let p = self.path(rel);
        let r = match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        ok(r, format!("remove {rel}"));
    }

    /// The content of `rel`.
    pub fn read(&self, rel: &str) -> Vec<u8> {
        ok(std::fs::read(self.path(rel)), format!("read {rel}"))
    }

    /// The content of `rel` as UTF-8 (lossy).
    pub fn read_string(&self, rel: &str) -> String {
        String::from_utf8_lossy(&self.read(rel)).into_owned()
    }

    /// Whether `rel` exists (a dangling symlink counts).
    pub fn exists(&self, rel: &str) -> bool {
        std::fs::symlink_metadata(self.path(rel)).is_ok()
    }

    /// Every entry below the root, relative and sorted; `.stfolder`, `.stignore` and temp
    /// files (`.syncthing.*`) left out.
    pub fn entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    /// The entries whose name marks a conflict copy (`.sync-conflict-`).
    pub fn conflict_copies(&self) -> Vec<String> {
        self.entries()
            .into_iter()
            .filter(|e| e.contains(".sync-conflict-"))
            .collect()
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let rd = ok(std::fs::read_dir(dir), format!("list {}", dir.display()));
    for e in rd {
        let e = ok(e, "directory entry");
        let name = e.file_name().to_string_lossy().into_owned();
        if name == ".stfolder" || name == ".stignore" || name.starts_with(".syncthing.") {
            continue;
        }
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap_or(&p);
        out.push(rel.to_string_lossy().into_owned());
        if ok(e.file_type(), "file type").is_dir() {
            walk(root, &p, out);
        }
    }
}

/// Asserts that two trees hold the same entries with the same kind, content, permission bits
/// and (for files) mtime.
pub fn assert_same_tree(a: &Tree, b: &Tree) {
    let (ea, eb) = (a.entries(), b.entries());
    assert_eq!(ea, eb, "entries differ");
    for rel in ea {
        let ma = ok(std::fs::symlink_metadata(a.path(&rel)), &rel);
        let mb = ok(std::fs::symlink_metadata(b.path(&rel)), &rel);
        assert_eq!(ma.file_type(), mb.file_type(), "{rel}: kind");
        if ma.file_type().is_symlink() {
            assert_eq!(
                ok(std::fs::read_link(a.path(&rel)), &rel),
                ok(std::fs::read_link(b.path(&rel)), &rel),
                "{rel}: target"
            );
            continue;
        }
        assert_eq!(
            ma.permissions().mode() & 0o777,
            mb.permissions().mode() & 0o777,
            "{rel}: mode"
        );
        if ma.is_file() {
            assert_eq!(a.read(&rel), b.read(&rel), "{rel}: content");
            assert_eq!(
                ok(ma.modified(), &rel),
                ok(mb.modified(), &rel),
                "{rel}: mtime"
            );
        }
    }
}

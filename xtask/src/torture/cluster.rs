//! Two syncd daemons on loopback (optionally through the fault proxy), scratch directories,
//! a tmpfs mount, and the convergence checks. Every guard cleans up on drop, so a failing
//! phase still stops its daemons (by PID) and removes its data.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::oracle::{self, Side, Tree};
use super::proxy::Proxy;
use crate::bench::daemon::{FOLDER_ID, Kind, Node};
use crate::bench::json::{self, Json, Members};

/// A scratch directory removed on drop (unless kept).
#[derive(Debug)]
pub(crate) struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    /// Creates `$TMPDIR/syncd-torture-<tag>-<pid>-<nanos>`.
    #[cfg(test)]
    pub(crate) fn new(tag: &str) -> std::io::Result<Scratch> {
        Scratch::under(&std::env::temp_dir(), tag, false)
    }

    /// Creates `<parent>/syncd-torture-<tag>-<pid>-<nanos>`.
    pub(crate) fn under(parent: &Path, tag: &str, keep: bool) -> std::io::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = parent.join(format!(
            "syncd-torture-{tag}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&path)?;
        Ok(Scratch { path, keep })
    }

    /// Its path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A size-limited tmpfs mounted for the life of the guard.
#[derive(Debug)]
pub(crate) struct Tmpfs {
    mnt: PathBuf,
}

impl Tmpfs {
    /// `mount -t tmpfs -o size=<mib>m tmpfs <mnt>` (creates `mnt`).
    pub(crate) fn mount(mnt: &Path, mib: u64) -> Result<Tmpfs, String> {
        fs::create_dir_all(mnt).map_err(|e| format!("{}: {e}", mnt.display()))?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(mnt)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            let _ = fs::remove_dir(mnt);
            return Err(format!(
                "`mount -t tmpfs` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            mnt: mnt.to_path_buf(),
        })
    }

    /// The mount point.
    pub(crate) fn path(&self) -> &Path {
        &self.mnt
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something still holds it: detach it lazily so it never outlives the run.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir(&self.mnt);
    }
}

/// Two syncd daemons sharing one folder; B dials A (through the proxy when there is one).
#[derive(Debug)]
pub(crate) struct Pair {
    /// The listening daemon.
    pub a: Node,
    /// The dialling daemon.
    pub b: Node,
    /// The fault proxy B dials, when asked for.
    pub proxy: Option<Proxy>,
    /// Per side: a directory on the folder's filesystem where the workload stages writes
    /// before renaming them into the folder (so every write is atomic).
    pub stage_a: PathBuf,
    /// B's staging directory.
    pub stage_b: PathBuf,
}

/// Both daemons' view after convergence.
#[derive(Debug)]
pub(crate) struct Converged {
    /// The tree (identical on both sides; its `temps` are A's).
    pub tree: Tree,
    /// Temp files left in B's folder.
    pub temps_b: Vec<String>,
    /// A's and B's local sequence.
    pub seq: (f64, f64),
    /// How long it took.
    pub took: Duration,
}

fn n(j: &Json, k: &str) -> f64 {
    j.num(k).unwrap_or(-1.0)
}

impl Pair {
    /// Creates both identities and configs under `home_dir`, folders at the given paths.
    pub(crate) fn create(
        bin: &Path,
        home_dir: &Path,
        folder_a: &Path,
        folder_b: &Path,
        via_proxy: bool,
        seed: u64,
    ) -> Result<Pair, String> {
        let mut a = Node::create(Kind::Syncd, bin, &home_dir.join("a"), folder_a, seed)?;
        let mut b = Node::create(Kind::Syncd, bin, &home_dir.join("b"), folder_b, seed ^ 1)?;
        let proxy = if via_proxy {
            Some(Proxy::start(SocketAddr::from((
                [127, 0, 0, 1],
                a.listen_port,
            )))?)
        } else {
            None
        };
        let dial_port = proxy.as_ref().map_or(a.listen_port, |p| p.port);
        // Only B dials (A has no address for B), so every byte between them crosses the proxy.
        a.introduce(&b.id.clone(), b.listen_port, false, 1)?;
        b.introduce(&a.id.clone(), dial_port, true, 1)?;
        let stage = |f: &Path, side: &str| -> Result<PathBuf, String> {
            let p = f
                .parent()
                .ok_or("folder has no parent")?
                .join(format!("stage-{side}"));
            fs::create_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(p)
        };
        Ok(Pair {
            stage_a: stage(folder_a, "a")?,
            stage_b: stage(folder_b, "b")?,
            a,
            b,
            proxy,
        })
    }

    /// The node of `side`.
    pub(crate) fn node(&mut self, side: Side) -> &mut Node {
        match side {
            Side::A => &mut self.a,
            // A pair has two sides; the phases on it only ever pick A or B.
            Side::B | Side::C => &mut self.b,
        }
    }

    /// `side`'s folder and staging directory.
    pub(crate) fn dirs(&self, side: Side) -> (PathBuf, PathBuf) {
        match side {
            Side::A => (self.a.folder.clone(), self.stage_a.clone()),
            Side::B | Side::C => (self.b.folder.clone(), self.stage_b.clone()),
        }
    }

    /// Starts both daemons and waits for their REST APIs.
    pub(crate) fn start(&mut self) -> Result<(), String> {
        self.a.start()?;
        self.b.start()?;
        self.a.wait_rest(Duration::from_secs(60))?;
        self.b.wait_rest(Duration::from_secs(60))
    }

    /// SIGKILLs `side`'s daemon, waits `down`, restarts it and waits for its REST API.
    pub(crate) fn kill_and_restart(&mut self, side: Side, down: Duration) -> Result<bool, String> {
        let node = self.node(side);
        let killed = node.kill9();
        std::thread::sleep(down);
        node.start()?;
        node.wait_rest(Duration::from_secs(60)).map_err(|e| {
            format!(
                "daemon {} did not come back after SIGKILL: {e}\n{}",
                side.tag(),
                node.log_tail(12)
            )
        })?;
        Ok(killed)
    }

    /// Errors when either daemon has exited.
    pub(crate) fn alive(&mut self) -> Result<(), String> {
        self.a.check_alive().map_err(|e| format!("daemon a: {e}"))?;
        self.b.check_alive().map_err(|e| format!("daemon b: {e}"))
    }

    /// Waits until both sides agree and are done: connected, both folders `idle` with nothing
    /// needed, each side has the other's latest index sequence, file counts in the index
    /// equal the files on disk, both trees hash-equal, and the sequences did not move while
    /// the trees were compared.
    pub(crate) fn converge(&mut self, timeout: Duration) -> Result<Converged, String> {
        let t0 = Instant::now();
        let deadline = t0 + timeout;
        let mut last = String::from("no status yet");
        loop {
            self.alive()?;
            match self.settled() {
                Ok(Some(seq)) => {
                    let ta = oracle::scan_tree(&self.a.folder)?;
                    let tb = oracle::scan_tree(&self.b.folder)?;
                    let again = self.settled().ok().flatten();
                    if ta.files == tb.files && again == Some(seq) {
                        let (sa, sb) = (self.a.db_status()?, self.b.db_status()?);
                        let disk = ta.files.len() as f64;
                        if n(&sa, "localFiles") == disk && n(&sb, "localFiles") == disk {
                            return Ok(Converged {
                                tree: ta,
                                temps_b: tb.temps,
                                seq,
                                took: t0.elapsed(),
                            });
                        }
                        last = format!(
                            "trees equal ({disk} files) but the index counts differ: a localFiles {}, b localFiles {}",
                            n(&sa, "localFiles"),
                            n(&sb, "localFiles")
                        );
                    } else if ta.files != tb.files {
                        last = format!("REST says done but {}", tree_diff(&ta, &tb));
                    }
                }
                Ok(None) => {}
                Err(e) => last = e,
            }
            if let Ok(s) = self.status_line() {
                last = format!("{last}; {s}");
            }
            if Instant::now() > deadline {
                let ta = oracle::scan_tree(&self.a.folder).unwrap_or_default();
                let tb = oracle::scan_tree(&self.b.folder).unwrap_or_default();
                return Err(format!(
                    "no convergence after {timeout:?}: {last}; {}\n--- a log:\n{}\n--- b log:\n{}",
                    tree_diff(&ta, &tb),
                    self.a.log_tail(10),
                    self.b.log_tail(10)
                ));
            }
            last = String::from("not settled");
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Both sequences when the REST status says both sides are done, else `None`.
    pub(crate) fn settled(&mut self) -> Result<Option<(f64, f64)>, String> {
        if !self.b.connected_to(&self.a.id)? {
            return Ok(None);
        }
        let (sa, sb) = (self.a.db_status()?, self.b.db_status()?);
        let done = |s: &Json| {
            n(s, "needTotalItems") == 0.0
                && s.str("state") == Some("idle")
                && n(s, "localFiles") == n(s, "globalFiles")
                && n(s, "pullErrors") == 0.0
        };
        // The peer's sequence as one side knows it: `sequence` of `/rest/db/completion?device=`
        // (Syncthing 1.19's `/rest/db/status`, which syncd matches, has no `remoteSequence`).
        let remote = |node: &Node, peer: &str| -> Result<f64, String> {
            let path = format!("/rest/db/completion?folder={FOLDER_ID}&device={peer}");
            let c = json::parse(&node.get(&path, Duration::from_secs(10))?)?;
            Ok(c.num("sequence").unwrap_or(-1.0))
        };
        let (qa, qb) = (n(&sa, "sequence"), n(&sb, "sequence"));
        let ok = done(&sa)
            && done(&sb)
            && n(&sa, "globalFiles") == n(&sb, "globalFiles")
            && remote(&self.a, &self.b.id)? == qb
            && remote(&self.b, &self.a.id)? == qa;
        Ok(ok.then_some((qa, qb)))
    }

    /// One line of both sides' status for progress and error messages.
    pub(crate) fn status_line(&self) -> Result<String, String> {
        let (sa, sb) = (self.a.db_status()?, self.b.db_status()?);
        let one = |s: &Json| {
            format!(
                "{} need {} global {} local {} seq {} errors {}",
                s.str("state").unwrap_or("?"),
                n(s, "needTotalItems"),
                n(s, "globalFiles"),
                n(s, "localFiles"),
                n(s, "sequence"),
                n(s, "pullErrors")
            )
        };
        Ok(format!("a: {} | b: {}", one(&sa), one(&sb)))
    }

    /// After convergence: `POST /rest/db/scan` on both; the index must agree with the fresh
    /// rescan (no sequence moves, nothing needed, trees unchanged).
    pub(crate) fn rescan_agrees(&mut self, before: &Converged) -> Result<(), String> {
        self.a.scan(Duration::from_secs(120))?;
        self.b.scan(Duration::from_secs(120))?;
        let after = self.converge(Duration::from_secs(120))?;
        if after.seq != before.seq {
            return Err(format!(
                "the index disagreed with a fresh rescan: sequences (a, b) {:?} -> {:?}",
                before.seq, after.seq
            ));
        }
        if after.tree.files != before.tree.files {
            return Err(format!(
                "a rescan changed the trees: {}",
                tree_diff(&before.tree, &after.tree)
            ));
        }
        Ok(())
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Quick and certain: SIGKILL by PID (a graceful stop is not what is under test here).
        self.b.kill9();
        self.a.kill9();
        self.proxy = None;
    }
}

/// A short description of how two trees differ.
pub(crate) fn tree_diff(a: &Tree, b: &Tree) -> String {
    let keys: BTreeSet<&String> = a.files.keys().chain(b.files.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| a.files.get(*k) != b.files.get(*k))
        .map(|k| match (a.files.get(k), b.files.get(k)) {
            (Some(_), None) => format!("{k} only on a"),
            (None, Some(_)) => format!("{k} only on b"),
            _ => format!("{k} differs"),
        })
        .collect();
    if diffs.is_empty() {
        return format!("trees equal ({} files)", a.files.len());
    }
    let shown: Vec<&String> = diffs.iter().take(6).collect();
    format!(
        "{} paths differ (a {} files, b {}): {}",
        diffs.len(),
        a.files.len(),
        b.files.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}
